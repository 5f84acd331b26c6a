"""Preference rows in any common shape as TRL's conversational rows: pairs (prompt / chosen / rejected: TRL's
own, LLaMA-Factory's Alpaca and ShareGPT, HH-RLHF's text pairs, UltraFeedback's whole conversations) and labelled
answers (prompt / completion / label: TRL's, LLaMA-Factory's kto_tag). Pure functions, no studio imports: the stage
table (studio/core/stages.py) names them as its rows' converters."""

from __future__ import annotations

import json
import re

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def _user(text) -> list[dict]:
    return [{"role": "user", "content": text}] if isinstance(text, str) else list(text)


def _assistant(answer) -> list[dict]:
    if isinstance(answer, dict):  # LLaMA-Factory ShareGPT: {"from": "gpt", "value": ...}
        answer = answer.get("value", answer.get("content"))
    return [{"role": "assistant", "content": answer}] if isinstance(answer, str) else list(answer)


# ShareGPT's speakers as chat roles: the one map, read by the SFT readers (studio/data/data.py) too
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "function": "tool", "tool": "tool"}


def _sharegpt(turns: list[dict]) -> list[dict]:
    return [{"role": SHAREGPT_ROLES.get(t.get("from"), "user"), "content": t.get("value", "")} for t in turns]


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


# Columns a prompt file's reference answer is found in, the most specific first (GRPO: studio/core/rewards.py).
REFERENCE_COLUMNS = ("reference", "ground_truth", "solution", "answer", "label", "output", "completion", "response",
                     "chosen")
PROMPT_COLUMNS = ("prompt", "question", "query", "problem", "text", "input")


def prompt_row(record: dict) -> dict | None:
    """A row to practise on (GRPO) in any common shape, as TRL's conversational prompt and the reference answer
    (None: the row has none): messages / ShareGPT (the last assistant turn is the reference), Alpaca (instruction +
    input; output), prompt / question / text with an answer, solution or label column (GSM8K's '#### 72' and a
    classifier's label included; studio/rewards.reference_answer reads the final answer out of it)."""
    turns = record.get("messages") or (_sharegpt(record["conversations"]) if record.get("conversations") else None)
    if isinstance(turns, list) and turns:
        reference = turns[-1].get("content") if turns[-1].get("role") == "assistant" else None
        prompt = turns[:-1] if reference is not None else turns
        return {"prompt": prompt, "reference": _reference_text(reference)}
    if isinstance(record.get("instruction"), str):
        text = "\n\n".join(p for p in (record["instruction"], record.get("input") or "") if isinstance(p, str) and p)
        return {"prompt": _user(text), "reference": _reference_text(record.get("output"))}
    column = next((c for c in PROMPT_COLUMNS if record.get(c) not in (None, "")), None)
    if column is None:
        return None
    reference = next((record[c] for c in REFERENCE_COLUMNS if record.get(c) not in (None, "") and c != column), None)
    prompt = record[column]
    return {"prompt": _user(prompt) if isinstance(prompt, str) else list(prompt),
            "reference": _reference_text(reference)}


def _reference_text(value):
    """A reference as text: a classifier's label 1 / True as '1' / 'True'; a chosen message's content."""
    if value is None:
        return None
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    return value if isinstance(value, str) else json_text(value)


def json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)
