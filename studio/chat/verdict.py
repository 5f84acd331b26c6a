"""Did it learn? The base and the tuned model answer held-out prompts greedily, and the answers are scored against
the held-out references with the metric that fits the task.

- Which rows: the run's test rows (never trained on, never used to pick the checkpoint); without them the
  validation rows (unseen in training, but they picked the best checkpoint); with neither (tiny data), the
  training rows, which only shows whether the data was learned, and the report says so.
- Which metric: exact match (case, spaces and punctuation ignored) where the answers are short or a few labels
  repeat (classification, a number, a name); ROUGE-L otherwise (longest common subsequence of words, of
  characters for Chinese). The reason is kept with the figures.
- When: the base answers before the first step (a new adapter changes nothing yet, and a full fine-tune has no
  base copy afterwards), the tuned answers after training, both by `generation.greedy`.
The result is the run's `verdict.json` and one line a beginner reads. Torch stays in the functions that run models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from studio.core.text import Msg
from studio.data import facts as fact_check
from .evaluate import exact_match, rouge_l, units

MAX_PROMPTS = 32  # enough to tell 4% from 78%; generation must stay a small share of a short run
MAX_NEW_TOKENS = 96  # long answers are scored on their start; ROUGE-L over 96 tokens already tells the style
LEARNED, LEARNED_A_LITTLE = 0.15, 0.03  # gains in the task score (0-1) that count as learned / a little


@dataclass
class HeldOut:
    """The base model's side, kept by the training job until the run ends."""
    split: str
    metric: str
    metric_why: Msg
    prompts: list[list[dict]]
    references: list[str]
    prompt_ids: list[list[int]]
    max_new_tokens: int
    base_answers: list[str]
    seconds: float = 0.0
    scorer: Callable[[list, list, list], float] | None = None  # (prompts, references, answers) -> 0-1: GRPO's rewards
    taught: fact_check.Taught | None = None  # the facts the data teaches (studio/data/facts.py), where it teaches any
    reworded: list[str] | None = None  # identity data: built-in reworded questions the file never asks
    reworded_ids: list[list[int]] | None = None
    reworded_base: list[str] | None = None

    def score(self, answers: list[str]) -> float:
        if self.scorer is not None:
            return self.scorer(self.prompts, self.references, answers)
        return task_score(self.metric, self.references, answers)


def held_out_rows(splits: dict[str, list[dict]]) -> tuple[list[tuple[list[dict], str]], str]:
    """(prompt messages, reference answer) pairs and which split they come from: test, else validation, else
    train. A row's last assistant turn is its reference; rows that end otherwise are skipped."""
    for split in ("test", "validation", "train"):
        pairs = [(r["messages"][:-1], r["messages"][-1]["content"]) for r in splits.get(split) or []
                 if r.get("messages") and r["messages"][-1].get("role") == "assistant"
                 and isinstance(r["messages"][-1].get("content"), str)]
        if pairs:
            return pairs[:MAX_PROMPTS], split
    return [], "none"


SHORT_ANSWER_UNITS = 4  # a label, a number, a name: exact match; longer answers can be right in other words


def choose_metric(references: list[str]) -> tuple[str, Msg]:
    """Exact match where the typical answer is a few words (a label, a number, a name); ROUGE-L otherwise, also
    where a few long answers repeat (an identity file's templates), since a right answer may use another one."""
    lengths = sorted(len(units(r)) for r in references)
    if lengths and lengths[len(lengths) // 2] <= SHORT_ANSWER_UNITS:
        return "exact_match", Msg("verdict.metric_exact")
    return "rouge_l", Msg("verdict.metric_rouge")


def task_score(metric: str, references: list[str], answers: list[str]) -> float:
    """Mean score in 0-1 over the rows."""
    scorer = exact_match if metric == "exact_match" else rouge_l
    return sum(scorer(r, a) for r, a in zip(references, answers)) / max(len(references), 1)


def practice_rows(splits: dict[str, list[dict]]) -> tuple[list[tuple[list[dict], str]], str]:
    """A GRPO run's (prompt, reference) pairs: validation, else train (its rows are prompts with references)."""
    for split in ("test", "validation", "train"):
        if rows := splits.get(split):
            return [(r["prompt"], r.get("reference") or "") for r in rows][:MAX_PROMPTS], split
    return [], "none"


def before_training(model, tokenizer, splits: dict[str, list[dict]], scorer=None,
                    max_new_tokens: int | None = None, placeholder_values: dict | None = None) -> HeldOut | None:
    """The base model's answers to the held-out prompts (None without any row to ask). With a `scorer` (a GRPO
    run: its rewards) the rows are prompts with references, answered up to `max_new_tokens`. Data that teaches
    facts (names, makers) also gets the facts found, and identity data reworded questions (studio/data/facts.py)."""
    from studio.templates.chat_template import answer_text
    from .generation import greedy  # deferred: torch

    started = time.perf_counter()
    pairs, split = practice_rows(splits) if scorer else held_out_rows(splits)
    if not pairs:
        return None
    prompts, references = [p for p, _ in pairs], [r for _, r in pairs]
    metric, why = ("reward", Msg("verdict.metric_reward")) if scorer else choose_metric(references)
    prompt_ids, max_new_tokens = _asked(tokenizer, prompts, references, max_new_tokens)
    answers = [answer_text(tokenizer, ids) for ids in greedy(model, tokenizer, prompt_ids, max_new_tokens)]
    held = HeldOut(split, metric, why, prompts, references, prompt_ids, max_new_tokens, answers, 0.0, scorer)
    if not scorer:
        _ask_for_facts(held, model, tokenizer, splits.get("train") or [], placeholder_values)
    held.seconds = time.perf_counter() - started
    return held


def _asked(tokenizer, prompts: list, references: list[str], max_new_tokens: int | None):
    """(prompt ids, cap): the cap is the longest reference's length and a quarter more, where none is given."""
    from studio.templates.chat_template import generation_prompt

    prompt_ids = [tokenizer(generation_prompt(tokenizer, p), add_special_tokens=False)["input_ids"] for p in prompts]
    if max_new_tokens is None:
        longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)
        max_new_tokens = min(MAX_NEW_TOKENS, int(longest * 1.25) + 8)  # room for the answer and its end
    return prompt_ids, max_new_tokens


def base_asks(tokenizer, splits: dict[str, list[dict]]) -> list[tuple[list[int], int]]:
    """The (prompt ids, cap) pairs before_training asks first (an SFT run's held-out rows; the reworded questions
    depend on those answers and come after): answered ahead with the run's other base-model answers."""
    pairs, _ = held_out_rows(splits)
    if not pairs:
        return []
    prompt_ids, cap = _asked(tokenizer, [p for p, _ in pairs], [r for _, r in pairs], None)
    return [(ids, cap) for ids in prompt_ids]


REWORDED_TOKENS = 48  # an introduction gives its name and maker early: the rest of a long answer costs time only


def reworded_tokens(held: HeldOut) -> int:
    return min(held.max_new_tokens, REWORDED_TOKENS)


def _ask_for_facts(held: HeldOut, model, tokenizer, train_rows: list[dict], placeholder_values) -> None:
    """The facts the training rows teach (none the base model already says), and for identity data the base
    model's answers to reworded questions in each language of the data."""
    from studio.templates.chat_template import answer_text, generation_prompt
    from .generation import greedy  # deferred: torch

    held.taught = fact_check.taught_facts(train_rows, placeholder_values, known=held.base_answers)
    questions = [q for _, q in fact_check.reworded_questions(held.taught)]
    if not questions:
        return
    # asked as Chat asks them: with the system prompt the run trains with (the held-out rows carry it)
    system = [m for m in held.prompts[0][:1] if m.get("role") == "system"] if held.prompts else []
    held.reworded = questions
    held.reworded_ids = [tokenizer(generation_prompt(tokenizer, [*system, {"role": "user", "content": q}]),
                                   add_special_tokens=False)["input_ids"] for q in questions]
    held.reworded_base = [answer_text(tokenizer, ids) for ids in greedy(model, tokenizer, held.reworded_ids,
                                                                         reworded_tokens(held))]


def after_training(held: HeldOut, model, tokenizer) -> dict:
    """The tuned model's answers and both scores: the report kept as the run's verdict.json."""
    from studio.templates.chat_template import answer_text
    from .generation import greedy  # deferred: torch

    started = time.perf_counter()
    tuned = [answer_text(tokenizer, ids) for ids in greedy(model, tokenizer, held.prompt_ids, held.max_new_tokens)]
    base_score, tuned_score = held.score(held.base_answers), held.score(tuned)
    split_by = getattr(held.scorer, "by_reward", None)  # GRPO: each reward's held-out mean, before and after
    by_reward = {"base": split_by(held.prompts, held.references, held.base_answers),
                 "tuned": split_by(held.prompts, held.references, tuned)} if split_by else None
    return {
        "split": held.split, "rows": len(held.references), "metric": held.metric, "metric_why": held.metric_why,
        "base": round(base_score, 4), "tuned": round(tuned_score, 4),
        "examples": [{"prompt": p[-1]["content"] if p else "", "reference": r, "base": b, "tuned": t}
                     for p, r, b, t in zip(held.prompts, held.references, held.base_answers, tuned)][:8],
        "seconds": {"before": round(held.seconds, 2), "after": round(time.perf_counter() - started, 2)},
        **({"by_reward": by_reward} if by_reward else {}),
        **({"facts": _fact_report(held, model, tokenizer, tuned)} if held.taught else {}),
    }


def _fact_report(held: HeldOut, model, tokenizer, tuned: list[str]) -> dict:
    """Per language of the data: base and tuned answers that carry the taught facts, over the held-out rows and
    the reworded questions."""
    from studio.templates.chat_template import answer_text
    from .generation import greedy  # deferred: torch

    questions = [p[-1]["content"] if p else "" for p in held.prompts]
    references: list = list(held.references)
    base, after = list(held.base_answers), list(tuned)
    reworded_tuned = []
    if held.reworded:
        reworded_tuned = [answer_text(tokenizer, ids) for ids in greedy(model, tokenizer, held.reworded_ids,
                                                                         reworded_tokens(held))]
        questions += held.reworded
        references += [None] * len(held.reworded)
        base += held.reworded_base
        after += reworded_tuned
    tuned_scores = fact_check.fact_scores(held.taught, questions, references, after)
    return {**held.taught.to_json(), "bar": fact_check.FACT_BAR, "reworded": len(held.reworded or []),
            "base": fact_check.fact_scores(held.taught, questions, references, base), "tuned": tuned_scores,
            "outcome": fact_check.fact_outcome(tuned_scores),
            "reworded_examples": [{"prompt": q, "base": b, "tuned": t} for q, b, t in
                                  zip(held.reworded or [], held.reworded_base or [], reworded_tuned)][:6]}


def outcome(report: dict) -> str:
    """'learned', 'partly', 'a_little' or 'not_learned'. Where the data teaches facts, the facts decide: learned
    only when they come back in every language of the data (studio/data/facts.py's bar)."""
    taught = (report.get("facts") or {}).get("outcome")
    if taught and taught != "none":
        return taught
    gain = report["tuned"] - report["base"]
    if gain >= LEARNED:
        return "learned"
    return "a_little" if gain >= LEARNED_A_LITTLE else "not_learned"


def facts_cause(report: dict, cause: Msg) -> Msg:
    """The likely cause where the run's own figures find nothing wrong ("the steps and learning rate look right")
    but the taught facts came back short of the bar in some languages: those languages, and the remedies that
    move the facts (on the bench's bilingual identity file 4 epochs instead of 3 brought the name back in every
    language: bench/RESULTS.md), rather than the quality report, which checks conflicting answers."""
    taught = report.get("facts") or {}
    short = [lang for lang, s in (taught.get("tuned") or {}).items()
             if s.get("rows") and s["hits"] / s["rows"] < taught.get("bar", 1.0)]
    if cause.key != "cause.data_or_model" or not short:
        return cause
    return Msg("cause.facts_short", languages=Msg("list", items=[Msg(f"verdict.lang_{lang}") for lang in short]))


def verdict_line(report: dict, drift_report: dict | None = None, cause: Msg | None = None) -> Msg:
    """One line a beginner reads: "Learned: held-out score 4% → 78% (exact match, 20 test rows); general ability
    kept." A run that did not learn names its likely cause."""
    from .drift import level  # deferred: drift imports nothing heavy, but keep this module's imports minimal

    kept = Msg(f"verdict.drift_{level(drift_report)}") if drift_report else Msg("verdict.drift_unknown")
    if drift_report and drift_report.get("leak"):  # what the reader would meet in Chat, said in the line itself
        kept = Msg("verdict.drift_leak", level=kept, count=len(drift_report["leak"]), prompts=drift_report["prompts"])
    where = Msg(f"verdict.split_{report['split']}", rows=report["rows"])
    key = f"verdict.{outcome(report)}"
    line = Msg(key, base=report["base"], tuned=report["tuned"], metric=Msg(f"metric.{report['metric']}"),
               where=where, drift=kept)
    if taught := report.get("facts"):
        line = Msg("verdict.with_facts", line=line, facts=", ".join(taught["facts"]), bar=taught["bar"],
                   scores=Msg("list", items=[Msg("verdict.fact_language", language=Msg(f"verdict.lang_{lang}"),
                                                 hits=s["hits"], rows=s["rows"])
                                             for lang, s in taught["tuned"].items()]),
                   reworded=Msg("verdict.reworded", count=taught["reworded"]) if taught["reworded"] else "")
    if split := report.get("by_reward"):  # GRPO: which reward moved
        line = Msg("verdict.with_rewards", line=line, rewards=Msg("list", items=[
            Msg("verdict.reward_item", name=Msg(f"series.reward_{name}"), base=base, tuned=split["tuned"].get(name, 0.0))
            for name, base in split["base"].items()]))
    if outcome(report) in ("not_learned", "partly") and cause is not None:
        return Msg("verdict.with_cause", line=line, cause=cause)
    return line
