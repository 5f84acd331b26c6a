"""The data workshop's teacher: grows a small data set with new rows aimed where they help (issue 54).

A teacher is any OpenAI-compatible chat endpoint (studio/chat/endpoint.py) or a model on this machine. Modes:
- `more_like`: new wordings and variations of the user's questions; the answers kept (identity and style data
  teach exactly those answers) or rewritten by the teacher in the example's style;
- `answers`: the user brings questions only, the teacher answers;
- `misses`: the held-out rows a finished run got wrong become seeds of new questions of the same kind (never the
  held-out rows themselves).
Every row carries its provenance (teacher, mode, seed row). A row whose question is a near copy of a validation or
test question is left out and counted (no leak into the verdict), as is one in another language than its seed,
an empty one and a repeat. What was made before a fault or Stop is kept. Generated text is data: never run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from studio.core.text import Msg, script_language
from studio.data.stats import _normalised
from .endpoint import EndpointError, chat_completion, completions_url

MODES = ("more_like", "answers", "misses")
KEY_VARIABLE = "STUDIO_TEACHER_API_KEY"
LEAK_OVERLAP = 0.8  # character 3-gram overlap with a held-out question above which a new question is a near copy
MISS_BAR = 0.5  # ROUGE-L of the tuned answer against the reference below which a held-out row counts as missed
QUESTIONS = ("Here is a question from a chat data set:\n{question}\n\nWrite {count} new questions a user could ask "
             "instead: the same request in other words, or a small variation of it. Write them in the same language "
             "as the question. One question per line, no numbering, nothing else.")
ANSWER = ("Answer the new question in the same style, length and language as the example answer.\n\n"
          "Example question: {question}\nExample answer: {answer}\n\nNew question: {new}\nAnswer:")


@dataclass
class GrownRow:
    messages: list
    provenance: dict  # {"teacher", "mode", "seed_row"}

    def record(self) -> dict:
        return {"messages": self.messages, "provenance": self.provenance}


@dataclass
class Grown:
    rows: list = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)  # "leak", "language", "empty", "repeat"
    ended: Msg | None = None  # why it ended early (Stop, a teacher fault); what was made is kept
    seconds: float = 0.0


class EndpointTeacher:
    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 60.0):
        self.url, self.model, self.timeout_s, self._key = completions_url(base_url), model, timeout_s, api_key

    @property
    def name(self) -> str:
        return f"{self.model} ({self.url.removesuffix('/chat/completions')})"

    def __call__(self, prompt: str, temperature: float = 0.7, max_tokens: int = 256) -> str:
        return chat_completion(self.url, self.model, [{"role": "user", "content": prompt}], self._key, temperature,
                               max_tokens, self.timeout_s, KEY_VARIABLE)


def near_copy(question: str, held: list[str]) -> bool:
    """A question that is (nearly) one of the held-out questions: the same words, or most of the same letters."""
    mine = _normalised(question)
    grams = _grams(mine)
    for other in held:
        theirs = _normalised(other)
        if mine == theirs:
            return True
        other_grams = _grams(theirs)
        if grams and other_grams and len(grams & other_grams) / len(grams | other_grams) >= LEAK_OVERLAP:
            return True
    return False


def _grams(text: str) -> set:
    return {text[i:i + 3] for i in range(max(len(text) - 2, 0))}


def _lines(text: str) -> list[str]:
    out = []
    for line in (text or "").splitlines():
        line = line.strip().lstrip("-*•0123456789.) ").strip()
        if line:
            out.append(line)
    return out


def grow(seeds: list[dict], teacher, mode: str, held: list[str], per_seed: int = 3, keep_answers: bool = True,
         stop: threading.Event | None = None, progress: Callable[[int, int], None] | None = None) -> Grown:
    """`seeds`: {"row", "question", "answer"} (the answer '' in `answers` mode). Each seed gives up to `per_seed`
    new rows (one in `answers` mode), filtered as the module says."""
    result, seen = Grown(), {_normalised(h) for h in held}
    if mode != "answers":  # new wordings must differ from the questions they grow from
        seen |= {_normalised(s["question"]) for s in seeds}
    started = time.perf_counter()
    name = getattr(teacher, "name", "teacher")
    for i, seed in enumerate(seeds):
        if stop is not None and stop.is_set():
            result.ended = Msg("workshop.stopped", made=len(result.rows))
            break
        try:
            made = _from_seed(seed, teacher, mode, per_seed, keep_answers)
        except EndpointError as err:
            result.ended = err.args[0]
            break
        for question, answer in made:
            why = _left_out_why(question, answer, seed, held, seen, mode == "answers" or not keep_answers)
            if why:
                result.left_out[why] += 1
                continue
            seen.add(_normalised(question))
            result.rows.append(GrownRow([{"role": "user", "content": question},
                                         {"role": "assistant", "content": answer}],
                                        {"teacher": name, "mode": mode, "seed_row": seed.get("row")}))
        if progress is not None:
            progress(i + 1, len(seeds))
    result.seconds = time.perf_counter() - started
    return result


def _from_seed(seed: dict, teacher, mode: str, per_seed: int, keep_answers: bool) -> list[tuple[str, str]]:
    if mode == "answers":
        return [(seed["question"], teacher(seed["question"]).strip())]
    questions = _lines(teacher(QUESTIONS.format(question=seed["question"], count=per_seed)))[:per_seed]
    if keep_answers and mode == "more_like":
        return [(q, seed["answer"]) for q in questions]
    return [(q, teacher(ANSWER.format(question=seed["question"], answer=seed["answer"], new=q)).strip())
            for q in questions]


def _left_out_why(question: str, answer: str, seed: dict, held: list[str], seen: set,
                  teachers_answer: bool) -> str | None:
    if not question.strip() or not answer.strip():
        return "empty"
    if near_copy(question, held):
        return "leak"
    wanted = script_language(seed["question"])
    if script_language(question) != wanted or (teachers_answer and script_language(answer) != wanted):
        return "language"  # the teacher switched languages
    if _normalised(question) in seen:
        return "repeat"
    return None


def seeds_from_rows(rows) -> list[dict]:
    """Seeds from a loaded file's rows: each conversation's last question and its answer."""
    seeds = []
    for row in rows:
        messages = row.messages or []
        users = [m for m in messages if m.get("role") == "user"]
        answers = [m for m in messages if m.get("role") == "assistant"]
        if users:
            seeds.append({"row": row.number, "question": users[-1].get("content") or "",
                          "answer": answers[-1].get("content") if answers else ""})
    return seeds


def seeds_from_misses(verdict: dict) -> list[dict]:
    """The held-out rows a run got wrong (its answer far from the reference), as seeds: their question and the
    reference answer, never as rows to train on."""
    from .evaluate import rouge_l

    return [{"row": f"held-out {i + 1}", "question": e["prompt"], "answer": e["reference"]}
            for i, e in enumerate(verdict.get("examples") or [])
            if e.get("reference") and rouge_l(e["reference"], e.get("tuned") or "") < MISS_BAR]
