"""Preference tuning: DPO on pairs (a better and a worse answer to one prompt) and KTO on answers marked good or
bad, with TRL's `DPOTrainer` / `KTOTrainer`, in the same run folder, job, live view, stop and resume as SFT.

Data comes from a preference file in any of the common shapes (normalised here to TRL's conversational
prompt / chosen / rejected, or prompt / completion / label) or from the blind votes of a run
(`votes:<run folder>`, see votes.py). A run usually starts from a finished SFT run: its adapter is trained
further, and a frozen copy of that adapter is the reference, on the one copy of the base weights (TRL does this
for a PEFT model given without `ref_model`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import votes
from .readers import read_records, resolve_path, where
from .text import Msg

VOTES_PREFIX = "votes:"
PREFERENCE_LOGS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
                   "eval_rewards/margins", "eval_rewards/accuracies")
HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def votes_source(run_dir: str) -> str:
    """The dataset path that names a run's blind votes: what the Data tab offers as "my votes on run X"."""
    return VOTES_PREFIX + str(run_dir)


def _user(text) -> list[dict]:
    return [{"role": "user", "content": text}] if isinstance(text, str) else list(text)


def _assistant(answer) -> list[dict]:
    if isinstance(answer, dict):  # LLaMA-Factory ShareGPT: {"from": "gpt", "value": ...}
        answer = answer.get("value", answer.get("content"))
    return [{"role": "assistant", "content": answer}] if isinstance(answer, str) else list(answer)


def _sharegpt(turns: list[dict]) -> list[dict]:
    roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
    return [{"role": roles.get(t.get("from"), "user"), "content": t.get("value", "")} for t in turns]


def _hh(text: str) -> list[dict]:
    """HH-RLHF's '\\n\\nHuman: ...\\n\\nAssistant: ...' as messages."""
    parts = HH_TURN.split(text)[1:]
    return [{"role": "user" if who == "Human" else "assistant", "content": said.strip()}
            for who, said in zip(parts[::2], parts[1::2])]


def pair_row(record: dict) -> dict | None:
    """A preference row in any common shape as TRL's conversational prompt / chosen / rejected, or None."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if chosen is None or rejected is None:
        return None
    if "conversations" in record:  # LLaMA-Factory ShareGPT
        return {"prompt": _sharegpt(record["conversations"]), "chosen": _assistant(chosen),
                "rejected": _assistant(rejected)}
    if "instruction" in record:  # LLaMA-Factory Alpaca
        prompt = "\n\n".join(p for p in (record["instruction"], record.get("input") or "") if p)
        return {"prompt": _user(prompt), "chosen": _assistant(chosen), "rejected": _assistant(rejected)}
    if isinstance(chosen, str) and "prompt" not in record and HH_TURN.search(chosen):  # HH-RLHF text pairs
        chosen, rejected = _hh(chosen), _hh(rejected)
    if isinstance(chosen, list) and "prompt" not in record or (isinstance(chosen, list) and len(chosen) > 1):
        shared = 0  # UltraFeedback: whole conversations; the prompt is what both share before the answers
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        return {"prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}
    return {"prompt": _user(record.get("prompt", "")), "chosen": _assistant(chosen), "rejected": _assistant(rejected)}


def kto_row(record: dict) -> dict | None:
    """A KTO row (TRL's label, LLaMA-Factory's kto_tag) as prompt / completion / label, or None."""
    label = record.get("label", record.get("kto_tag"))
    if not isinstance(label, bool):
        return None
    if "completion" in record:
        return {"prompt": _user(record.get("prompt", "")), "completion": _assistant(record["completion"]),
                "label": label}
    turns = record.get("messages") or _sharegpt(record.get("conversations") or [])
    if not turns or turns[-1].get("role") != "assistant":
        return None
    return {"prompt": turns[:-1], "completion": turns[-1:], "label": label}


def _problem(row: dict | None, stage: str) -> Msg | None:
    if row is None:
        return Msg("pref.not_a_row", stage=stage.upper())
    if not row["prompt"]:
        return Msg("pref.no_prompt")
    if stage == "dpo":
        if not all(isinstance(m.get("content"), str) for m in row["chosen"] + row["rejected"]):
            return Msg("pref.no_answer")
        if json.dumps(row["chosen"]) == json.dumps(row["rejected"]):
            return Msg("pref.identical")  # a pair with nothing to prefer
    return None


def load_preference_rows(path: str, stage: str) -> tuple[list[dict], list[tuple[str, Msg]]]:
    """The rows of a preference file (or of a run's votes) for `stage` ('dpo' or 'kto'), and every row's
    problem (file, row)."""
    if path.startswith(VOTES_PREFIX):
        found = votes.read_votes(votes.votes_file(path[len(VOTES_PREFIX):]))
        rows = votes.preference_rows(found) if stage == "dpo" else votes.kto_rows(found)
        return rows, ([] if rows else [(path, Msg("pref.no_votes", stage=stage.upper(), votes=len(found)))])
    file_path = resolve_path(path)
    records, problems, unit = read_records(file_path, file_path.name)
    rows = []
    for number, record in records:
        row = (pair_row if stage == "dpo" else kto_row)(record) if isinstance(record, dict) else None
        if problem := _problem(row, stage):
            problems.append((where(file_path.name, number, unit=unit), problem))
        else:
            rows.append(row)
    return rows, problems


def source_label(path: str) -> str:
    return Msg("pref.votes_of", run=Path(path[len(VOTES_PREFIX):]).name) if path.startswith(VOTES_PREFIX) else path


def vote_sources() -> list[tuple[Msg, str]]:
    """(label, dataset path) for every run with blind votes: the Data tab's "my votes on run X"."""
    from .runs import list_runs  # deferred: runs imports the settings, which the CLI may not need here

    return [(Msg("pref.votes_of", run=Path(r["run_dir"]).name), votes_source(r["run_dir"])) for r in list_runs()
            if votes.votes_file(r["run_dir"]).exists()]


def adapter_runs() -> list[str]:
    """Finished runs with an adapter: what a DPO / KTO run can start from."""
    from .runs import RunFolder, list_runs

    return [r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped")
            and (RunFolder(r["run_dir"]).adapter_dir / "adapter_config.json").exists()]
