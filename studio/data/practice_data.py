"""The GRPO stage's data: prompts to practise on, each with the reference answer its rewards check, read from any
file of examples (messages, ShareGPT, Alpaca, prompt / answer, question / answer as GSM8K writes it, text / label);
and the Data tab's report of it: prompt lengths with the model's chat template, what kind of reference each row has,
and how many rows each built-in reward can score. No torch here."""

from __future__ import annotations

from collections import Counter

import numpy as np

from studio.core.preference_rows import prompt_row
from studio.core.rewards import NEEDS_REFERENCE, REWARD_NAMES, as_number, can_score, reference_answer
from studio.core.sources import DataSource, VOTES, as_source
from studio.core.text import Msg
from .data import LoadResult, Row
from .readers import read_records, resolve_path, where
from .stats import DataReport, Finding, Lengths, recommend_cutoff, recommended_validation_share

REFERENCE_KINDS = ("number", "label", "json", "text", "none")
LABEL_WORDS = 4  # a reference of at most this many words is a label ("positive", "New York")


def reference_kind(reference: str | None) -> str:
    if reference is None:
        return "none"
    if as_number(reference) is not None:
        return "number"
    if reference.lstrip().startswith(("{", "[")):
        return "json"
    return "label" if len(reference.split()) <= LABEL_WORDS and len(reference) <= 40 else "text"


def load_prompt_rows(path: DataSource | str, rewards=("answer_match",), system_prompt: str = "") -> tuple[list[dict], list]:
    """The rows of a prompt file as TRL's {"prompt": messages, "reference": final answer or None}, and every row's
    problem (file, row). A row none of the chosen rewards can score (no reference, and only rewards that need one)
    is named and left out."""
    source = as_source(path)
    if source.kind == VOTES:
        return [], [(source.text, Msg("practice.no_votes"))]
    file_path = resolve_path(source)
    records, problems, unit = read_records(source, file_path.name)
    rows = []
    for number, record in records:
        row = prompt_row(record) if isinstance(record, dict) else None
        at = where(file_path.name, number, unit=unit)
        if row is None or not _has_prompt(row["prompt"]):
            problems.append((at, Msg("practice.no_prompt")))
            continue
        reference = reference_answer(row["reference"])
        if not any(can_score(name, reference) for name in rewards):
            problems.append((at, Msg("practice.no_reference", rewards=", ".join(rewards))))
            continue
        prompt = row["prompt"]
        if system_prompt and prompt[0].get("role") != "system":
            prompt = [{"role": "system", "content": system_prompt}, *prompt]
        rows.append({"prompt": prompt, "reference": reference})
    return rows, problems


def _has_prompt(prompt) -> bool:
    return isinstance(prompt, list) and any(isinstance(m, dict) and isinstance(m.get("content"), str)
                                            and m["content"].strip() for m in prompt)


# ---------------------------------------------------------------- the Data tab's report

def _rows(rows: list[dict]) -> list[Row]:
    """Each prompt with its reference as the answer, for the preview."""
    return [Row(number, raw=row, messages=row["prompt"] + ([{"role": "assistant", "content": row["reference"]}]
                                                           if row["reference"] is not None else []))
            for number, row in enumerate(rows, 1)]


def _prompt_lengths(tokenizer, rows: list[dict]) -> Lengths | None:
    """The prompts' token lengths with the chat template and its generation prompt (what the model reads before
    it answers); no answer part: the model writes its own."""
    if tokenizer is None or not rows:
        return None
    sizes = []
    for row in rows:
        text = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        sizes.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    total = np.array(sizes)
    return Lengths(total, np.zeros_like(total))


def practice_findings(rows: list[dict], problems: list) -> list[Finding]:
    """What kind of reference the rows have, and how many rows each reward can score."""
    kinds = Counter(reference_kind(row["reference"]) for row in rows)
    found = [Finding(Msg("practice.check_references"), "info",
                     Msg("practice.references", **{kind: kinds.get(kind, 0) for kind in REFERENCE_KINDS}), [])]
    with_reference = sum(1 for row in rows if row["reference"] is not None)
    for name in REWARD_NAMES:
        scored = with_reference if name in NEEDS_REFERENCE else len(rows)
        found.append(Finding(Msg("practice.check_reward", reward=name), "ok" if scored == len(rows) else "info",
                             Msg("practice.reward_rows", rows=scored, total=len(rows)), []))
    if rows and kinds.get("text", 0) > len(rows) / 2:
        found.append(Finding(Msg("practice.check_checkable"), "warning",
                             Msg("practice.long_references", rows=kinds["text"]), []))
    return found


def practice_report(path: DataSource | str, tokenizer=None) -> DataReport:
    """The report of a file read as prompts to practise on (every reward's rows counted, none left out)."""
    path = as_source(path)
    rows, problems = load_prompt_rows(path, rewards=REWARD_NAMES)
    shown = _rows(rows)
    loaded = LoadResult(file=path.label(), format="prompts", rows=shown, problems=problems,
                        bad_rows={getattr(w, "fields", {}).get("row") for w, _ in problems} - {None},
                        total_rows=len(rows) + len(problems))
    lengths = _prompt_lengths(tokenizer, rows)
    cutoff = recommend_cutoff(lengths.total) if lengths is not None else None
    parts = [(Msg("stats.part.prompt"), lengths.total)] if lengths is not None else []
    return DataReport(loaded, lengths, cutoff, practice_findings(rows, problems),
                      recommended_validation_share(len(rows)), None if tokenizer else Msg("pref.no_tokenizer"),
                      tokenizer, parts)


CHECKABLE_SHARE = 0.6  # answers that are numbers, labels or JSON: above this share, GRPO is worth a mention


def checkable_finding(rows: list[Row]) -> Finding | None:
    """An example file whose answers can mostly be checked (a number, a label, JSON): the SFT report says that
    GRPO could practise on it with 'answer_match' (a beginner would not find the stage otherwise)."""
    answers = [r.messages[-1].get("content") for r in rows
               if r.messages and r.messages[-1].get("role") == "assistant"]
    kinds = Counter(reference_kind(reference_answer(a)) for a in answers if isinstance(a, str))
    checkable = kinds["number"] + kinds["label"] + kinds["json"]
    if not answers or checkable < CHECKABLE_SHARE * len(answers):
        return None
    return Finding(Msg("practice.check_checkable"), "info",
                   Msg("practice.could_practise", rows=checkable, total=len(answers)), [])
