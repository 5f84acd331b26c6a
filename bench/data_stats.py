"""Token-length statistics for 20,000 conversations: the studio's batched path vs a naive per-row loop, same run.

    python bench/data_stats.py [--rows 20000] [--naive-rows 2000]

The naive loop is what a quick script does: `apply_chat_template(tokenize=True)` once for the whole conversation
and once for the prompt, row by row. It is timed on --naive-rows rows and scaled to --rows (it is linear), so the
bench stays short; pass --naive-rows 20000 to time it in full.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def naive_lengths(tokenizer, records):
    totals, prompts = [], []
    for r in records:
        ids = tokenizer.apply_chat_template(r["messages"], tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        prompt = tokenizer.apply_chat_template(r["messages"][:-1], tokenize=True, add_generation_prompt=True)
        prompt = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
        totals.append(len(ids))
        prompts.append(len(prompt))
    return totals, prompts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--naive-rows", type=int, default=2000)
    args = parser.parse_args()

    from train_throughput import make_bench_data

    from studio.data import stats
    from studio.data.data import load_dataset_file
    from studio.models.models import ensure_starter_model, load_tokenizer

    tokenizer = load_tokenizer(str(ensure_starter_model(progress=lambda _: None)))
    path = make_bench_data(Path("/tmp/studio-bench-20k.jsonl"), rows=args.rows, seed=1)
    records = load_dataset_file(str(path)).records()

    started = time.perf_counter()  # cold: the first measurement in this process
    lengths = stats.token_lengths(tokenizer, records)
    studio_s = time.perf_counter() - started
    started = time.perf_counter()
    totals, _ = naive_lengths(tokenizer, records[: args.naive_rows])
    naive_s = (time.perf_counter() - started) * len(records) / args.naive_rows
    assert list(lengths.total[: args.naive_rows]) == totals, "both paths must count the same tokens"
    from studio.templates.chat_template import encode_records

    encoded = encode_records(tokenizer, records[: args.naive_rows])  # what training trains on, token by token
    assert list(lengths.answer[: args.naive_rows]) == encoded.answer_lengths, "trained tokens must match training's"
    import os

    flags = sorted(set(Path("/proc/cpuinfo").read_text().split()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(f"CPU flags: {' '.join(flags)}; {len(os.sched_getaffinity(0))} cores")
    print(f"{len(records)} conversations, p50 {stats.percentiles(lengths.total)['p50']} tokens")
    print(f"studio (batched, with answer masks), cold: {studio_s:.2f} s (target <= 2.0 s)")
    print(f"naive per-row loop (timed on {args.naive_rows}, scaled): {naive_s:.2f} s")
    print(f"speed-up: {naive_s / studio_s:.1f}x (target >= 4x)")
    wide_vocabulary(tokenizer, args.rows)


def wide_vocabulary(tokenizer, rows: int) -> None:
    """The bench data above repeats a hundred words, which flatters counting word by word (each distinct word is
    encoded once). Here the same number of rows draws from 50,000 made-up words with Zipf frequencies, so tens of
    thousands of words are new, against the studio with word counting switched off, in the same run."""
    from studio.data import stats
    from studio.templates import word_counts
    from studio.data.data import load_dataset_file

    records = load_dataset_file(str(make_wide_vocabulary_data(Path("/tmp/studio-bench-wide.jsonl"), rows))).records()
    started = time.perf_counter()
    by_words = stats.token_lengths(tokenizer, records)
    words_s = time.perf_counter() - started
    learned = len(word_counts.counter_for(tokenizer).words)
    word_counts.give_up(tokenizer)  # from here on this tokenizer's texts are counted by the tokenizer
    started = time.perf_counter()
    by_tokenizer = stats.token_lengths(tokenizer, records)
    tokenizer_s = time.perf_counter() - started
    assert list(by_words.total) == list(by_tokenizer.total) and list(by_words.answer) == list(by_tokenizer.answer)
    print(f"{rows} conversations over 50,000 Zipf-distributed words ({learned} distinct words encoded), "
          f"p50 {stats.percentiles(by_words.total)['p50']} tokens: word by word {words_s:.2f} s, "
          f"tokenizer only {tokenizer_s:.2f} s, {tokenizer_s / words_s:.1f}x")


def make_wide_vocabulary_data(path: Path, rows: int, vocabulary: int = 50_000, seed: int = 2) -> Path:
    import itertools
    import json
    import math
    import random

    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=max(1, int(rng.lognormvariate(1.5, 0.5)))))
             for _ in range(vocabulary)]
    cumulative = list(itertools.accumulate(1 / rank for rank in range(1, vocabulary + 1)))
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            answer = rng.choices(words, cum_weights=cumulative, k=max(8, int(math.exp(rng.gauss(math.log(95), 0.67)))))
            question = rng.choices(words, cum_weights=cumulative, k=rng.randint(3, 12))
            f.write(json.dumps({"messages": [{"role": "user", "content": " ".join(question).capitalize() + "?"},
                                             {"role": "assistant", "content": " ".join(answer) + "."}]}) + "\n")
    return path


if __name__ == "__main__":
    main()
