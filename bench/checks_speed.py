"""The checks' answering and scoring speed: the studio's step loop with the adapter as Chat serves it, against
transformers' `generate` with PEFT's fp32 adapter (the path the checks took before), alternating in one process.

    STUDIO_HOME=<warm> python bench/checks_speed.py --model starter       # or gemma3-270m
    STUDIO_HOME=<warm> python bench/checks_speed.py --model gemma3-270m --scoring

Builds a LoRA adapter (r=16, all linear layers, small non-zero weights, as after training) over the bf16 model,
answers the 60 drift prompts greedily (32 tokens) and scores the base model's answers, `--repeats` times each way,
and prints each time, the ratio new / old, and how many answers the two ways share (the loop itself changes no
answer, tests/test_generation.py; the adapter's rounding to bf16 can turn a near-tie).

`--scoring`: the drift scoring of the 60 base answers with scoring batches of drift.LOGIT_ELEMENTS logits against
2**25 (before), alternating; the sums must agree to rounding.

`--batches`: the pass after training as it is shaped (the 60 drift prompts and 14 more, 32 tokens, the adapter as
served) with generation batches of generation.GENERATE_BATCH rows (one batch of 74) against 64 (two of 37).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starter")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scoring", action="store_true", help="scoring batches as now, against 2**25 logits")
    parser.add_argument("--batches", action="store_true", help="generation batches as now, against 64 rows")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from studio.chat import drift, generation
    from studio.models import models
    from studio.templates.chat_template import generation_prompt

    path = models.resolve_model_path(args.model)
    tokenizer = models.load_tokenizer(path)
    torch.manual_seed(0)
    old = get_peft_model(models.load_model(path, "bf16"), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in old.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.002)
    new = generation.as_served(copy.deepcopy(old))
    prompts = [tokenizer(generation_prompt(tokenizer, p.messages), add_special_tokens=False)["input_ids"]
               for p in drift.builtin_prompts()]
    caps = [drift.MAX_NEW_TOKENS] * len(prompts)
    with generation.as_base(old):
        base_answers = generation._generate(old, tokenizer, prompts, caps)
    if args.scoring:
        return scoring(new, prompts, base_answers, args)
    if args.batches:
        return batches(new, tokenizer, prompts + prompts[:14], args)
    step_loop = generation._step_cache_word
    times: dict[str, list] = {"old": [], "new": []}
    answers = {}
    for _ in range(args.repeats):
        for way, model in (("old", old), ("new", new)):
            generation._step_cache_word = (lambda m: None) if way == "old" else step_loop
            started = time.perf_counter()
            answers[way] = generation._generate(model, tokenizer, prompts, caps)
            answered = time.perf_counter() - started
            drift.score(model, prompts, base_answers)
            times[way].append({"answers_s": round(answered, 2), "scoring_s": round(time.perf_counter() - started
                                                                                     - answered, 2)})
    generation._step_cache_word = step_loop
    same = sum(a == b for a, b in zip(answers["old"], answers["new"]))
    mean = {way: {k: sum(t[k] for t in ts) / len(ts) for k in ("answers_s", "scoring_s")} for way, ts in times.items()}
    print(json.dumps({"model": args.model, "times": times, "identical_answers": f"{same} of {len(prompts)}",
                      "ratio_answers": round(mean["new"]["answers_s"] / mean["old"]["answers_s"], 3),
                      "ratio_scoring": round(mean["new"]["scoring_s"] / mean["old"]["scoring_s"], 3)}))
    return 0


def scoring(model, prompts, answers, args) -> int:
    """The drift scoring with today's batches against 2**25 logits a batch."""
    from studio.chat import drift

    now = drift.LOGIT_ELEMENTS
    times: dict[str, list] = {"2**25": [], "now": []}
    sums = {}
    for _ in range(args.repeats):
        for way, elements in (("2**25", 2**25), ("now", now)):
            drift.LOGIT_ELEMENTS = elements
            started = time.perf_counter()
            nll, top1 = drift.score(model, prompts, answers)
            times[way].append(round(time.perf_counter() - started, 2))
            sums[way] = (round(sum(nll), 4), sum(map(len, top1)))
    drift.LOGIT_ELEMENTS = now
    print(json.dumps({"model": args.model, "logit_elements": now, "times_s": times, "nll_sum_and_positions": sums,
                      "ratio": round(sum(times["now"]) / sum(times["2**25"]), 3)}))
    return 0


def batches(model, tokenizer, prompts, args) -> int:
    """The pass after training in batches of GENERATE_BATCH rows against 64, alternating."""
    from studio.chat import generation

    now, caps = generation.GENERATE_BATCH, [32] * len(prompts)
    times: dict[str, list] = {"64": [], "now": []}
    shapes = {}
    for _ in range(args.repeats):
        for way, limit in (("64", 64), ("now", now)):
            generation.GENERATE_BATCH = limit
            started = time.perf_counter()
            generation._generate(model, tokenizer, prompts, caps)
            times[way].append(round(time.perf_counter() - started, 2))
            shapes[way] = [len(b) for b in generation._generation_batches(prompts, caps)]
    generation.GENERATE_BATCH = now
    print(json.dumps({"model": args.model, "rows": len(prompts), "batches": shapes, "times_s": times,
                      "ratio": round(sum(times["now"]) / sum(times["64"]), 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
