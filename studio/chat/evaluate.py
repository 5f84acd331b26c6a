"""Scores for base vs tuned answers: ROUGE-L and BLEU against references, and the latency fit.

Both metrics are computed here in a few lines rather than with a metrics package, so nothing is downloaded and
Chinese is scored per character (it has no spaces), English per word. No torch here.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from studio.core.config import GenerationSettings
from studio.core.runs import RunFolder
from studio.core.text import WORD, Msg
from studio.templates.chat_template import encode_records


def units(text: str) -> list[str]:
    """Words for alphabetic text, single characters for CJK (character-level scoring for Chinese)."""
    return WORD.findall(text.lower())


def exact_match(reference: str, candidate: str) -> float:
    """1.0 when the answers are the same words, ignoring case, spaces and punctuation."""
    return float(units(reference) == units(candidate))


def token_f1(reference: str, candidate: str) -> float:
    """F1 of the shared units (SQuAD style): partial credit for a short answer that is partly right."""
    ref, cand = Counter(units(reference)), Counter(units(candidate))
    common = sum((ref & cand).values())
    if not common:
        return 0.0
    precision, recall = common / sum(cand.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def short_answers(references: list[str]) -> bool:
    """Classification-like or short-answer data, where exact match and F1 say more than ROUGE / BLEU: most
    references are a few words, or a few distinct answers repeat."""
    if not references:
        return False
    lengths = sorted(len(units(r)) for r in references)
    distinct = len({" ".join(units(r)) for r in references})
    return lengths[len(lengths) // 2] <= 3 or (len(references) >= 5 and distinct <= 0.3 * len(references))


def lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1: longest common subsequence of units, as precision/recall harmonic mean."""
    ref, cand = units(reference), units(candidate)
    if not ref or not cand:
        return 0.0
    lcs = lcs_length(ref, cand)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu(references: list[str], candidates: list[str], max_n: int = 4) -> float:
    """Corpus BLEU-4 (Papineni et al.) with the brevity penalty and add-one smoothing for n > 1 (Lin & Och), so
    short answers do not score 0 for lacking a 4-gram match. 0-100."""
    matches, totals = [0] * max_n, [0] * max_n
    ref_length = cand_length = 0
    for reference, candidate in zip(references, candidates):
        ref, cand = units(reference), units(candidate)
        ref_length, cand_length = ref_length + len(ref), cand_length + len(cand)
        for n in range(1, max_n + 1):
            ref_grams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            cand_grams = Counter(tuple(cand[i:i + n]) for i in range(len(cand) - n + 1))
            matches[n - 1] += sum(min(c, ref_grams[g]) for g, c in cand_grams.items())
            totals[n - 1] += max(len(cand) - n + 1, 0)
    if cand_length == 0 or matches[0] == 0:
        return 0.0
    log_precision = sum(math.log((matches[i] + (i > 0)) / (totals[i] + (i > 0))) for i in range(max_n)) / max_n
    brevity = 1.0 if cand_length > ref_length else math.exp(1 - ref_length / cand_length)
    return 100 * brevity * math.exp(log_precision)


def fit_latency(samples: list[tuple[int, float]]) -> tuple[float, float] | None:
    """Least-squares fit of time = k * new_tokens + b over answers. k: seconds per token; b: the fixed cost of an
    answer (mostly reading the prompt, so it grows with prompt length). None until two answer lengths differ."""
    if len({tokens for tokens, _ in samples}) < 2:
        return None
    tokens = np.array([t for t, _ in samples], dtype=float)
    seconds = np.array([s for _, s in samples], dtype=float)
    k, b = np.polyfit(tokens, seconds, 1)
    if b < 0:  # noise, not a negative fixed cost ("+ -5770 ms"): the line through the origin instead
        k, b = float(tokens @ seconds / (tokens @ tokens)), 0.0
    return float(k), float(b)


def latency_text(samples: list[tuple[int, float]]) -> str:
    fit = fit_latency(samples)
    if fit is None:
        return Msg("chat.latency_few", count=len(samples))
    k, b = fit
    if k > 0:
        return Msg("chat.latency_fit", count=len(samples), per_token=1000 * k, fixed=1000 * b, speed=1 / k)
    return Msg("chat.latency_flat", count=len(samples), per_token=1000 * k)


# ---------------------------------------------------------------- a run's held-out evaluation

def held_out_examples(run_dir, limit: int = 20) -> tuple[list[tuple[list[dict], str]], str]:
    """(prompt messages, reference answer) pairs from the run's test split, else its validation split."""
    run = RunFolder(run_dir)
    for split in ("test", "validation"):
        rows = run.split(split)
        pairs = [(r["messages"][:-1], r["messages"][-1]["content"]) for r in rows
                 if "messages" in r and r["messages"][-1]["role"] == "assistant"]
        if pairs:
            return pairs[:limit], split
    return [], "none"


def answer_loss(pair, rows: list[dict], tuned: bool) -> float:
    """Mean loss per answer token (the quantity training lowers), adapter on or off."""
    import torch  # deferred: the UI imports this module on start-up

    encoded = encode_records(pair.tokenizer, rows)
    total, count = 0.0, 0
    with pair.side(tuned) as model, torch.inference_mode():
        for ids, mask in zip(encoded.input_ids, encoded.assistant_masks):
            labels = torch.tensor([[i if m else -100 for i, m in zip(ids, mask)]])
            if (labels[:, 1:] != -100).sum() == 0:
                continue
            out = model(input_ids=torch.tensor([ids], device=model.device), labels=labels.to(model.device))
            n = int((labels[:, 1:] != -100).sum())
            total, count = total + float(out.loss) * n, count + n
    return total / max(count, 1)


def evaluate_run(run_dir, pair, limit: int = 20, settings=None, progress=None) -> dict:
    """Loss, perplexity, ROUGE-L and BLEU of base and tuned on held-out prompts; saved as evaluation.json."""
    from .chat import stream_pair  # deferred: decoding imports torch

    examples, split = held_out_examples(run_dir, limit)
    if not examples:
        return {"error": Msg("chat.no_held_out")}
    settings = settings or GenerationSettings(max_new_tokens=96, temperature=0.0)
    rows = [{"messages": prompt + [{"role": "assistant", "content": reference}]} for prompt, reference in examples]
    answers = []
    for i, (prompt, reference) in enumerate(examples):
        base, tuned = list(stream_pair(pair, prompt, prompt, settings))[-1]
        answers.append({"prompt": prompt[-1]["content"], "reference": reference, "base": base.text,
                        "tuned": tuned.text})
        if progress:
            progress((i + 1) / len(examples))
    result = {"split": split, "rows": len(examples), "short_answers": short_answers([a["reference"] for a in answers])}
    for side in ("base", "tuned"):
        loss = answer_loss(pair, rows, tuned=side == "tuned")
        result[side] = {"loss": loss, "perplexity": math.exp(min(loss, 50)),
                        "rouge_l": float(np.mean([rouge_l(a["reference"], a[side]) for a in answers])),
                        "bleu": bleu([a["reference"] for a in answers], [a[side] for a in answers])}
        if result["short_answers"]:
            result[side]["exact_match"] = float(np.mean([exact_match(a["reference"], a[side]) for a in answers]))
            result[side]["f1"] = float(np.mean([token_f1(a["reference"], a[side]) for a in answers]))
    result["examples"] = answers
    RunFolder(run_dir).write_evaluation(result)
    return result


def evaluation_table(result: dict) -> list[list]:
    rows = []
    for key in ("exact_match", "f1", "loss", "perplexity", "rouge_l", "bleu"):  # task metrics first when present
        if key not in result["base"]:
            continue
        label = Msg(f"metric.{key}")
        base, tuned = result["base"][key], result["tuned"][key]
        rows.append([label, round(base, 4), round(tuned, 4), round(tuned - base, 4)])
    return rows
