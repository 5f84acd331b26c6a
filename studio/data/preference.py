"""Preference data: pairs (a better and a worse answer to one prompt: DPO, ORPO) and answers marked good or bad
(KTO), trained with TRL's trainers in the same run folder, job, live view, stop and resume as SFT.

Data comes from a preference file in any of the common shapes (each stage's converter, studio/core/preference_rows.py,
makes TRL's conversational prompt / chosen / rejected, or prompt / completion / label) or from the blind votes of a
run (`votes:<run folder>`, see votes.py). A run usually starts from a finished SFT run: its adapter is trained
further, and a frozen copy of that adapter is the reference, on the one copy of the base weights (TRL does this
for a PEFT model given without `ref_model`).
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.sources import VOTES, DataSource, as_source, parse_source
from studio.core.sources import votes_source  # noqa: F401  (the Data tab's)
from studio.core.stages import LABELLED, PAIRS, Stage, stage_of
from studio.core.text import Msg
from . import votes
from .readers import read_records, resolve_path, where

VOTE_ROWS = {PAIRS: votes.preference_rows, LABELLED: votes.kto_rows}  # a run's blind votes as each kind of row


def _problem(row: dict | None, stage: Stage) -> Msg | None:
    if row is None:
        return Msg("pref.not_a_row", stage=stage.label)
    if not row["prompt"]:
        return Msg("pref.no_prompt")
    if stage.data == PAIRS:
        if not all(isinstance(m.get("content"), str) for m in row["chosen"] + row["rejected"]):
            return Msg("pref.no_answer")
        if json.dumps(row["chosen"]) == json.dumps(row["rejected"]):
            return Msg("pref.identical")  # a pair with nothing to prefer
    return None


def load_preference_rows(path: DataSource | str, stage_name: str) -> tuple[list[dict], list[tuple[str, Msg]]]:
    """The rows of a preference file (or of a run's votes) for a stage that learns from pairs or labelled answers,
    made by the stage's converter, and every row's problem (file, row)."""
    stage, source = stage_of(stage_name), as_source(path)
    if source.kind == VOTES:
        found = votes.read_votes(votes.votes_file(source.run))
        rows = VOTE_ROWS[stage.data](found)
        return rows, ([] if rows else [(source.text, Msg("pref.no_votes", stage=stage.label, votes=len(found)))])
    file_path = resolve_path(source)
    records, problems, unit = read_records(source, file_path.name)
    rows = []
    for number, record in records:
        row = stage.convert(record) if isinstance(record, dict) else None
        if problem := _problem(row, stage):
            problems.append((where(file_path.name, number, unit=unit), problem))
        else:
            rows.append(row)
    return rows, problems


def source_label(path: str) -> str:
    source = parse_source(path)
    return source.label() if source.kind == VOTES else path


def vote_sources() -> list[tuple[Msg, str]]:
    """(label, dataset path) for every run with blind votes: the Data tab's "my votes on run X"."""
    from studio.core.runs import list_runs  # deferred: runs imports the settings, which the CLI may not need here

    return [(Msg("pref.votes_of", run=Path(r["run_dir"]).name), votes_source(r["run_dir"])) for r in list_runs()
            if votes.votes_file(r["run_dir"]).exists()]


def adapter_runs() -> list[str]:
    """Finished runs with an adapter: what a DPO / KTO run can start from."""
    from studio.core.runs import RunFolder, list_runs

    return [r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped")
            and (RunFolder(r["run_dir"]).adapter_dir / "adapter_config.json").exists()]
