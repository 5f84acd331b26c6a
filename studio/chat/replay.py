"""Replay: general conversations the base model writes itself, mixed into a run's training rows so that it keeps
what it knew (self-distillation; the guide's "mix in 20-30% general data", without needing a general data set).

Before training, the base model answers general prompts from a built-in set (studio/chat/replay_prompts/, English
and Chinese; none of them is a drift-check prompt, so the drift check still measures on unseen prompts) greedily,
in the languages of the user's data, as many as the run replays (identity data: the small talk first). Each answer is
cached per base model and template, like the drift check's, so a later run generates only the ones it lacks.
The run then takes `replay_share` of its training rows from them; validation and test stay the user's own rows.
Torch is imported inside the functions that run the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from pathlib import Path

from studio.core.text import CJK, Msg

PROMPTS_FILE = Path(__file__).parent / "replay_prompts" / "general.jsonl"
MAX_NEW_TOKENS = 64  # a general answer's start: enough to keep its style, cheap to train on and to generate
CACHE_VERSION = 2  # 2: one answer per prompt, filled as runs need them
WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")  # a Latin-script word weighs as much as one Chinese character


def builtin_prompts() -> list[dict]:
    return [json.loads(line) for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def data_languages(rows: list[dict]) -> list[str]:
    """'en' and/or 'zh': the languages of the rows' text, by Chinese characters against Latin-script words (a
    language under 30% of them is left out: names and terms in Latin letters run through Chinese text; English
    where nothing can be told)."""
    cjk = words = 0
    for row in rows[:2000]:
        for message in row.get("messages") or []:
            text = message.get("content") if isinstance(message.get("content"), str) else ""
            cjk += len(CJK.findall(text))
            words += len(WORD.findall(text))
    share = cjk / (cjk + words) if cjk + words else 0.0
    languages = [code for code, part in (("en", 1 - share), ("zh", share)) if part >= 0.3]
    return languages or ["en"]


def replay_count(train_rows: int, share: float) -> int:
    """Rows to add so that they are `share` of the training rows: n / (n + k) = 1 - share."""
    if share <= 0 or train_rows <= 0:
        return 0
    return max(1, round(train_rows * share / (1 - share)))


def cache_file(model_path: str, tokenizer) -> Path:
    """One file per base model and template: each prompt's answer, filled as runs need them."""
    from .drift import cache_dir, model_identity  # deferred: drift's cache lives beside this one

    parts = [CACHE_VERSION, model_identity(model_path), tokenizer.chat_template or "", MAX_NEW_TOKENS]
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return cache_dir().parent / "replay" / f"{key}.json"


def needed_prompts(languages: list[str], count: int | None, seed: int, small_talk_first: bool = False) -> list[dict]:
    """The prompts a run replays: `count` of those in the data's languages (all of them when the run needs as
    many or more), drawn in an order fixed by the seed; for identity data the small talk first (thanks, how was
    your day), where a model that learned to introduce itself on a greeting starts doing so everywhere. Only
    these are answered: a 64-row file replays 13 answers, not every prompt of its languages."""
    prompts = [p for p in builtin_prompts() if p["language"] in languages]
    random.Random(f"replay-prompts:{seed}").shuffle(prompts)
    if small_talk_first:
        prompts.sort(key=lambda p: p.get("kind") != "chat")  # stable: each group keeps the seeded order
    return prompts[:count] if count is not None and count > 0 else prompts


def base_answers(model_path: str, tokenizer, languages: list[str], load_model, log, count: int | None = None,
                 seed: int = 0, identity: bool = False) -> tuple[list[dict], bool, float]:
    """(rows, cached, seconds): the needed prompts (needed_prompts) with the base model's greedy answers, as
    message rows. Answers already cached for this model and template are read; only the others are generated,
    and `load_model()` (the base model) is called only then. The answers are replayed as the model gives them,
    loops and echoes included (a base model's usual answer): replay keeps what the model did."""
    started = time.perf_counter()
    prompts = needed_prompts(languages, count, seed, small_talk_first=identity)
    path = cache_file(model_path, tokenizer)
    known = _cached(path)
    missing = [p for p in prompts if p["prompt"] not in known]
    if missing:
        known = {**known, **_generate(missing, tokenizer, load_model, log)}
        _write(path, known)
    rows = [{"messages": [{"role": "user", "content": p["prompt"]},
                          {"role": "assistant", "content": known[p["prompt"]]}]}
            for p in prompts if str(known.get(p["prompt"]) or "").strip()]
    return rows, not missing, time.perf_counter() - started


def missing_asks(model_path: str, tokenizer, languages: list[str], count: int | None = None, seed: int = 0,
                 identity: bool = False) -> list[tuple[list[int], int]]:
    """The (prompt ids, cap) pairs base_answers would generate (none cached yet): answered ahead in one pass with
    the run's other base-model answers (generation.answer_ahead)."""
    known = _cached(cache_file(model_path, tokenizer))
    return [(_prompt_ids(tokenizer, p), MAX_NEW_TOKENS)
            for p in needed_prompts(languages, count, seed, small_talk_first=identity) if p["prompt"] not in known]


def _cached(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["answers"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _prompt_ids(tokenizer, prompt: dict) -> list[int]:
    from studio.templates.chat_template import generation_prompt

    return tokenizer(generation_prompt(tokenizer, [{"role": "user", "content": prompt["prompt"]}]),
                     add_special_tokens=False)["input_ids"]


def _generate(prompts: list[dict], tokenizer, load_model, log) -> dict[str, str]:
    from studio.templates.chat_template import answer_text
    from .generation import greedy, is_known  # deferred: torch

    model = load_model()  # the run's own model load (training takes it next), logged as such
    prompt_ids = [_prompt_ids(tokenizer, p) for p in prompts]
    if fresh := sum(not is_known(ids, MAX_NEW_TOKENS) for ids in prompt_ids):  # not answered in a shared pass
        log(Msg("log.replay_generating", prompts=fresh))
    answers = [answer_text(tokenizer, ids) for ids in greedy(model, tokenizer, prompt_ids, MAX_NEW_TOKENS)]
    del model
    return {p["prompt"]: a for p, a in zip(prompts, answers)}


def _write(path: Path, answers: dict[str, str]) -> None:
    try:  # a cache that cannot be written costs the next run a generation, never this run
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two processes filling the same cache never share a file
        tmp.write_text(json.dumps({"answers": answers}, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


def pick(rows: list[dict], count: int, seed: int) -> list[dict]:
    """`count` replay rows: each once before any repeats (a small set mixed into a large one cycles)."""
    if not rows or count <= 0:
        return []
    rng = random.Random(f"replay:{seed}")
    out = []
    while len(out) < count:
        shuffled = rows[:]
        rng.shuffle(shuffled)
        out += shuffled[:count - len(out)]
    return out
