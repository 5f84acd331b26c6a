"""The data workshop's plan: which seeds a teacher grows (studio/chat/teacher.py) and which questions it must not
come near (the rows a run holds out), what growing costs before it starts, and the accepted rows as a new version
of the file (studio/data/versions.py). The held-out rows stay the same in the new version: grown rows only ever
train (studio/data/data.py's split), so the next run is judged on the very rows the last one was."""

from __future__ import annotations

import time

from studio.chat import teacher as teachers
from studio.core.runs import RunFolder
from studio.core.text import Msg
from studio.data.data import split_rows
from studio.data.versions import Version, save_version, source_of


def held_questions(rows, validation_share: float, test_share: float, seed: int, by_order: bool = False) -> list[str]:
    """The questions of the rows a run with these settings holds out (validation and test)."""
    _, validation, test = split_rows(list(rows), validation_share, test_share, seed, by_order)
    return [q for row in validation + test if (q := _question(row))]


def _question(row) -> str:
    messages = getattr(row, "messages", None) or (row.get("messages") if isinstance(row, dict) else None) or []
    users = [m for m in messages if m.get("role") == "user"]
    return (users[-1].get("content") or "") if users else ""


def seeds_and_held(mode: str, rows, questions: list[str], run_dir: str | None, validation_share: float,
                   test_share: float, seed: int) -> tuple[list[dict], list[str]]:
    """The seeds of a mode and the held-out questions the new rows must not copy."""
    if mode == "misses":
        run = RunFolder(run_dir) if run_dir else None
        verdict = run.verdict() if run is not None else None
        if not verdict:
            return [], []
        held = [q for split in ("validation", "test") for row in run.split(split) if (q := _question(row))]
        return teachers.seeds_from_misses(verdict), held
    held = held_questions(rows, validation_share, test_share, seed)
    if mode == "answers":
        return [{"row": f"{i + 1}", "question": q, "answer": ""} for i, q in enumerate(questions) if q.strip()], held
    training = [r for r in rows if _question(r) not in set(held)]
    return teachers.seeds_from_rows(training), held


def cost(seeds: list[dict], mode: str, per_seed: int, keep_answers: bool, teacher) -> Msg:
    """The calls growing takes and their time, from one measured call on the first seed."""
    if not seeds:
        return Msg("workshop.no_seeds")
    calls = len(seeds) * (1 if mode == "answers" else 1 + (0 if keep_answers and mode == "more_like" else per_seed))
    started = time.perf_counter()
    teacher(teachers.QUESTIONS.format(question=seeds[0]["question"], count=per_seed))
    first = time.perf_counter() - started
    return Msg("workshop.cost", seeds=len(seeds), calls=calls, first=first, total=first * calls)


def accept(path: str, rows, grown_rows: list) -> Version:
    """The file's readable rows and the accepted new ones (with their provenance) as the next version."""
    records = [r.record() for r in rows] + [g.record() for g in grown_rows]
    return save_version(source_of(path), path, records, {"grown": len(grown_rows)})
