"""Preference rows in any common shape as TRL's conversational rows: pairs (prompt / chosen / rejected: TRL's
own, LLaMA-Factory's Alpaca and ShareGPT, HH-RLHF's text pairs, UltraFeedback's whole conversations) and labelled
answers (prompt / completion / label: TRL's, LLaMA-Factory's kto_tag). Pure functions, no studio imports: the stage
table (studio/stages.py) names them as its rows' converters."""

from __future__ import annotations

import re

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


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
