"""Several data files in one run, each with a share of the training rows.

Each file is read, checked and split on its own (so every file has rows in validation and test); the shares then
decide how many of each file's training rows the run takes:
- no file has a share: every row of every file (a plain concatenation);
- some files give all their rows: those rows are the fixed part, and the files with a share are sampled (with
  repetition where a file is too small) so each is its share of the whole;
- every file has a share: the largest mix the files can fill without repeating a row, the shares normalised.
Counts are rounded by largest remainder, so each file is within one row of its share. Which rows came from which
file is recorded (`record`), so the run folder says it and evaluation reports each file. No torch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from studio.core.config import DatasetPart, DataSettings
from studio.core.text import Msg
from studio.data.data import LoadResult, Row, load_dataset_file, split_rows, split_sizes
from studio.data.facts import IDENTITY_SAMPLE
from .preflight import fill_rows


def parts_of(d: DataSettings) -> list[DatasetPart]:
    """The main file (the three boxes and its share) first, then the files mixed in."""
    main = DatasetPart(dataset_path=d.dataset_path, dataset_format=d.dataset_format, column_mapping=d.column_mapping,
                       share=d.dataset_share)
    return [main, *d.extra_datasets]


def training_counts(available: list[int], shares: list[float | None]) -> tuple[list[int] | None, Msg | None]:
    """Training rows to take from each file, given the rows each offers and the shares asked (None: all rows)."""
    asked = sum(s for s in shares if s is not None)
    if not asked:
        return list(available), None
    fixed = sum(n for n, s in zip(available, shares) if s is None)
    if fixed:
        if asked >= 1:
            return None, Msg("mix.shares_too_large", share=asked)
        total = fixed / (1 - asked)
        wanted = [float(n) if s is None else s * total for n, s in zip(available, shares)]
    else:
        fractions = [s / asked for s in shares]
        total = min(n / p for n, p in zip(available, fractions))  # no file repeats a row
        wanted = [p * int(total) for p in fractions]
    if not any(wanted):
        return None, Msg("mix.no_rows")
    return _largest_remainder(wanted), None


def _largest_remainder(wanted: list[float]) -> list[int]:
    """Whole counts summing to the rounded total, each within one of what was wanted."""
    counts = [int(w) for w in wanted]
    short = round(sum(wanted)) - sum(counts)
    by_remainder = sorted(range(len(wanted)), key=lambda i: wanted[i] - counts[i], reverse=True)
    for i in by_remainder[:max(0, short)]:
        counts[i] += 1
    return counts


def pick(rows: list, count: int, rng: random.Random) -> list:
    """`count` rows: a sample in file order, or every row repeated as often as needed plus a sample."""
    if count >= len(rows):
        whole, rest = divmod(count, len(rows)) if rows else (0, 0)
        return rows * whole + [rows[i] for i in sorted(rng.sample(range(len(rows)), rest))]
    return [rows[i] for i in sorted(rng.sample(range(len(rows)), count))]


@dataclass
class MixFile:
    """One file's part of the run."""
    part: DatasetPart
    loaded: LoadResult
    train: list[Row] = field(default_factory=list)
    validation: list[Row] = field(default_factory=list)
    test: list[Row] = field(default_factory=list)
    available: int = 0  # training rows the file offered before the shares were applied

    @property
    def repeated(self) -> bool:
        return len(self.train) > self.available


@dataclass
class Mix:
    files: list[MixFile]

    def split(self, name: str) -> list[dict]:
        return [row.record() for f in self.files for row in getattr(f, name)]

    def sources(self, name: str) -> list[int]:
        """The file index of each row of a split, in the split's order."""
        return [i for i, f in enumerate(self.files) for _ in getattr(f, name)]

    def record(self) -> dict:
        """What the run folder keeps: each file, its counts, and the file and row number of every row."""
        return {
            "files": [{"dataset_path": f.part.dataset_path, "dataset_format": f.loaded.format or f.part.dataset_format,
                       "share": f.part.share, "usable_rows": len(f.loaded.rows), "offered": f.available,
                       "train": len(f.train), "validation": len(f.validation), "test": len(f.test),
                       "repeated": f.repeated} for f in self.files],
            "rows": {name: [[i, row.number] for i, f in enumerate(self.files) for row in getattr(f, name)]
                     for name in ("train", "validation", "test")},
        }


def build_mix(d: DataSettings, seed: int) -> tuple[Mix | None, list]:
    """Every file read, split on its own, then sampled to its share. Returns (mix, problems): the problems of
    every file together; the mix is None when a file cannot be used or the shares cannot be met."""
    files, problems, parts = [], [], parts_of(d)
    for part in parts:
        loaded = load_dataset_file(part.dataset_path, part.dataset_format, part.column_mapping or None)
        problems += loaded.problems
        if not loaded.rows:
            problems.append((loaded.file, Msg("data.no_usable_rows")))
            continue
        if loaded.bad_rows and not d.drop_bad_rows:
            problems.insert(0, ("drop_bad_rows", Msg("train.bad_rows_kept", count=len(loaded.bad_rows))))
        rows = loaded.rows[:d.max_samples] if d.max_samples > 0 else loaded.rows  # a pilot run
        rows = fill_rows(rows, d.placeholder_values, d.system_prompt)
        train, validation, test = split_rows(rows, d.validation_share, d.test_share, seed, d.split_by_order)
        files.append(MixFile(part, loaded, train, validation, test, available=len(train)))
    blocking = len(files) < len(parts) or any(w == "drop_bad_rows" for w, _ in problems)
    if blocking:
        return None, problems
    counts, refusal = training_counts([f.available for f in files], [f.part.share for f in files])
    if refusal:
        return None, [("extra_datasets", refusal), *problems]
    for index, (f, count) in enumerate(zip(files, counts)):
        if f.part.share is None or count == f.available:
            continue  # all its rows, in the file's order
        rng = random.Random(f"{seed}:{index}")  # a seed per file: adding a file leaves the others' rows alone
        f.validation, f.test = (_scaled(rows, count / max(f.available, 1), rng) for rows in (f.validation, f.test))
        f.train = pick(f.train, count, rng)
    return Mix(files), problems


def _scaled(rows: list, factor: float, rng: random.Random) -> list:
    """A file sampled down for training is sampled down for evaluation too (keeping at least one row), so a
    large general file does not make every evaluation slow; one repeated for training is evaluated whole."""
    return rows if factor >= 1 or not rows else pick(rows, _shrunk(len(rows), factor), rng)


# ---------------------------------------------------------------- the Data tab's mix table

REPEATS_WARNED = 3  # a file repeated more often than this teaches its few rows by heart


@dataclass
class MixTable:
    rows: list[list]  # [#, file, format, share asked, usable rows, training rows, validation, test, tokens, share]
    refusal: Msg | None  # what stops the mix, or None
    warnings: list[Msg]  # a file repeated many times to fill its share
    training_rows: int  # of the whole mix


def mix_table(d: DataSettings, reports: list, replay_on: bool = False) -> MixTable:
    """The mix table for the Data tab and `launch.py data --mix`, from each file's data report (stats.DataReport);
    the counts follow build_mix's rules without sampling any row. With replay on (studio/chat/replay.py), its rows
    are the last line: the base model's own general answers, in the training split only."""
    parts = parts_of(d)
    usable, sizes, counts, refusal = _counted(d, reports)
    counts = counts or [0] * len(parts)
    tokens = [round(count * _mean_tokens(r)) if _mean_tokens(r) is not None else None
              for count, r in zip(counts, reports)]
    known = sum(t for t in tokens if t) or 1
    rows = []
    for i, (part, report, n, (train, val, test), count, toks) in enumerate(zip(parts, reports, usable, sizes,
                                                                                counts, tokens), start=1):
        factor = count / train if train else 1
        rows.append([i, report.load.file, report.load.format or "?",
                     Msg("mix.all_rows") if part.share is None else f"{part.share:.0%}", n,
                     f"{count} (×{factor:.1f})" if count > train else count,
                     _shrunk(val, factor), _shrunk(test, factor),
                     "" if toks is None else toks, "" if toks is None else f"{toks / known:.0%}"])
    warnings = [Msg("mix.repeated", file=report.load.file, times=count / train, rows=train)
                for report, (train, _, _), count in zip(reports, sizes, counts) if train and count > REPEATS_WARNED * train]
    total = sum(counts)
    if replay_on and not refusal:
        from studio.chat.replay import replay_count  # deferred: a pure helper of the replay module

        replayed = replay_count(total, d.replay_share)
        rows.append(["+", Msg("mix.replay_file"), Msg("mix.replay_format"), f"{d.replay_share:.0%}", "", replayed,
                     0, 0, "", ""])
        total += replayed
    return MixTable(rows, refusal, warnings, total)


def _counted(d: DataSettings, reports: list):
    """(usable rows, (train, validation, test) of each file's own split, training rows taken from each file or
    None, what stops the mix): build_mix's counts, without sampling any row."""
    usable = [len(r.load.rows) if d.max_samples <= 0 else min(d.max_samples, len(r.load.rows)) for r in reports]
    sizes = [split_sizes(n, d.validation_share, d.test_share) for n in usable]
    counts, refusal = training_counts([s[0] for s in sizes], [p.share for p in parts_of(d)])
    return usable, sizes, counts, refusal


def plan_rows(d: DataSettings, reports: list) -> tuple[int, list] | None:
    """What a run on the whole mix plans with, as the run counts it (train.planning_rows on the built mix): its
    rows (training, validation and test), and up to IDENTITY_SAMPLE rows in the run's proportions (each file's rows
    cycled to its share of the training rows: a file sampled twice weighs twice), for the identity check, which
    reads the run's shuffled training rows as far. None where the mix cannot be made."""
    _, sizes, counts, refusal = _counted(d, reports)
    if counts is None or refusal is not None or not sum(counts):
        return None
    total, sample = 0, []
    scale = min(1.0, IDENTITY_SAMPLE / sum(counts))
    for report, (train, validation, test), count in zip(reports, sizes, counts):
        factor = count / train if train else 1
        total += count + _shrunk(validation, factor) + _shrunk(test, factor)
        rows = report.load.rows
        sample += [rows[i % len(rows)] for i in range(round(count * scale))] if rows else []
    return total, sample


def _mean_tokens(report) -> float | None:
    lengths = getattr(report, "lengths", None)
    return float(lengths.total.mean()) if lengths is not None and len(lengths.total) else None


def _shrunk(n: int, factor: float) -> int:
    return n if factor >= 1 or not n else max(1, round(n * factor))


def added_part(parts: list, path, fmt, mapping, share) -> tuple[list | None, list]:
    """The mix with one more file, checked as the settings check it; (None, problems) when it does not pass."""
    # the one conversion: a share or mapping that does not parse is named
    from studio.core.settings_input import settings_from_flat
    from studio.core.paths import source_refusal

    part = {"dataset_path": (path or "").strip(), "dataset_format": fmt or "auto", "column_mapping": mapping or "",
            **({"share": float(share)} if share not in (None, "", 0) else {})}
    settings, problems = settings_from_flat({"extra_datasets": [*parts, part]})
    if settings is None:
        return None, problems
    if refusal := source_refusal(part["dataset_path"]):
        return None, [("extra_datasets", refusal)]
    return [p.model_dump() for p in settings.data.extra_datasets], []


def without_part(parts: list, number) -> list:
    """The mix without the file at table row `number` (the main file, row 1, stays)."""
    index = int(number or 0) - 2
    return [p for i, p in enumerate(parts) if i != index]
