"""Repairs with one click, from the quality report: drop repeated rows (keep the first), keep one answer where a
prompt has conflicting ones (the most common, or the one the user picks), fill placeholders, drop rows over the
cutoff; a version never holds the rows the loader could not read (an empty answer, a broken turn), which are
counted. A repair never edits the user's file: it writes a new version
(studio/data/versions.py) and says what changed; the report, plan and advice then read that version."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from studio.core.text import Msg
from studio.data.stats import _normalised, _prompt_and_answer
from studio.data.versions import Version, save_version, source_of
from .preflight import fill_rows

# repair: the quality checks whose rows it acts on
REPAIRS = {"duplicates": ("exact_duplicates", "near_duplicates"), "conflicts": ("conflicting",),
           "placeholders": ("placeholders",), "too_long": ("too_long",)}


@dataclass
class Repaired:
    rows: list
    changes: dict = field(default_factory=dict)  # {repair: rows dropped or changed}
    dropped: list = field(default_factory=list)  # (row number, repair)
    changed: list = field(default_factory=list)  # row numbers whose text changed (placeholders)

    def said(self) -> Msg:
        parts = [Msg(f"repair.done_{name}", count=count) for name, count in self.changes.items() if count]
        return Msg("repair.summary", rows=len(self.rows), changes=Msg("list", items=parts) if parts else
                   Msg("repair.nothing"))


def finding_rows(findings, check: str) -> list[int]:
    return next((list(f.rows) for f in findings if getattr(f.check, "key", "") == f"check.{check}"
                 and f.level == "warning"), [])


def counts(report) -> dict[str, int]:
    """How many rows each repair would act on, from the report (what the page offers): duplicates, conflicting
    answers left out (a group keeps its one answer), rows over the cutoff, and the unreadable rows."""
    found = report.findings
    out = {"duplicates": len({n for check in REPAIRS["duplicates"] for n in finding_rows(found, check)})}
    out["conflicts"] = sum(len(group) - sum(_normalised(a) == kept_answer(group) for _, a in group)
                           for group in conflict_groups(report.load.rows).values())
    out["too_long"] = len(finding_rows(found, "too_long"))
    out["unreadable"] = len(report.load.bad_rows)
    return out


def conflict_groups(rows) -> dict[str, list]:
    """Rows by their normalised prompt, where one prompt has more than one answer: [(row number, answer)]."""
    groups = defaultdict(list)
    for row in rows:
        if row.messages is not None:
            prompt, answer = _prompt_and_answer(row.messages)
            groups[_normalised(prompt)].append((row.number, answer))
    return {prompt: found for prompt, found in groups.items() if len({_normalised(a) for _, a in found}) > 1}


def kept_answer(found: list, pick: int | None = None) -> str:
    """The answer a conflicting group keeps: the one the user picked (a row number), else the most common
    (the first of equally common ones)."""
    if pick is not None and (chosen := next((a for n, a in found if n == pick), None)) is not None:
        return _normalised(chosen)
    common = Counter(_normalised(a) for _, a in found)
    top = max(common.values())
    return next(_normalised(a) for _, a in found if common[_normalised(a)] == top)


def repair(rows, findings, chosen, values: dict | None = None, picks: dict | None = None) -> Repaired:
    """The rows after the chosen repairs, in their order, with what each repair did."""
    chosen, values, picks = set(chosen), values or {}, picks or {}
    drop: dict[int, str] = {}
    for name in ("duplicates", "too_long"):
        if name in chosen:
            for check in REPAIRS[name]:
                for number in finding_rows(findings, check):
                    drop.setdefault(number, name)
    if "conflicts" in chosen:
        for prompt, found in conflict_groups([r for r in rows if r.number not in drop]).items():
            keep = kept_answer(found, picks.get(prompt))
            for number, answer in found:
                if _normalised(answer) != keep:
                    drop.setdefault(number, "conflicts")
    kept = [r for r in rows if r.number not in drop]
    result = Repaired(kept, dropped=sorted(drop.items()))
    for name in chosen - {"placeholders"}:
        result.changes[name] = sum(1 for why in drop.values() if why == name)
    if "placeholders" in chosen and values:
        filled = fill_rows(kept, values)
        result.changed = [a.number for a, b in zip(kept, filled) if a.messages != b.messages]
        result.rows, result.changes["placeholders"] = filled, len(result.changed)
    return result


def make_version(path: str, report, chosen, values: dict | None = None,
                 picks: dict | None = None) -> tuple[Version, Repaired]:
    """Repair and write the next version of the file's line of versions (the user's file is never written)."""
    result = repair(report.load.rows, report.findings, chosen, values, picks)
    if report.load.bad_rows:  # never in a version: the loader could not read them
        result.changes["unreadable"] = len(report.load.bad_rows)
    records = [_record(r) for r in result.rows]
    return save_version(source_of(path), path, records, result.changes), result


def _record(row) -> dict:
    record = row.record()
    return {k: v for k, v in record.items() if v is not None} if isinstance(record, dict) else record


def row_view(rows, numbers) -> list[dict]:
    """The rows named, as the page shows them before and after (their prompt and answer)."""
    wanted = set(numbers)
    out = []
    for row in rows:
        if row.number in wanted and row.messages is not None:
            prompt, answer = _prompt_and_answer(row.messages)
            out.append({"row": row.number, "prompt": prompt[:300], "answer": answer[:300]})
    return out

