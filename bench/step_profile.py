"""Where a training step's time goes: each step's useful FLOP/s against the matmul peak, and optionally the ops.

    python bench/step_profile.py [--variant defaults|identical] [--steps 8] [--profile] [--model gemma3-270m]

Trains the starter model on train_throughput.py's bench data with the studio's defaults (bf16 where the CPU has
bf16 units) or the "identical" settings (fp32, random order), timing every `training_step` (forward + backward,
not the optimizer) with the tokens it trained. train_throughput.py's (e) divides a whole run by its runtime, so
its figure mixes the first, longest batches (the length-grouped sampler puts the longest first) and the optimizer
in; this shows the steps one by one. --profile adds torch.profiler's op table from the third step on (the profiler
slows the steps it watches, so compare its shares, not its times), the matmuls' own FLOP/s, the matmuls by shape,
and the LM head's share of the step (the studio's lean head, forward and backward: on a 262k vocabulary it is what
decides). --model picks another built-in model, as in train_throughput.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

if "--model" in sys.argv:  # read by train_throughput's COMMON settings when it is imported
    os.environ["STUDIO_BENCH_MODEL"] = sys.argv[sys.argv.index("--model") + 1]
from train_throughput import COMMON, lora_flops_per_token, make_bench_data, matmul_peak_gflops  # noqa: E402

HEAD = "studio_lm_head"

VARIANTS = {"defaults": [], "identical": ["precision=fp32", "gradient_checkpointing=off",
                                          "train_sampling_strategy=random"]}


def timed_training_steps(profiler=None) -> list[dict]:
    """Wrap Trainer.training_step: seconds and trained tokens (non-padding) of each call."""
    import transformers

    steps, original = [], transformers.Trainer.training_step

    def training_step(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask")
        tokens = int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
        started = time.perf_counter()
        loss = original(self, model, inputs, *args, **kwargs)
        steps.append({"seconds": time.perf_counter() - started, "tokens": tokens,
                      "shape": tuple(inputs["input_ids"].shape)})
        if profiler is not None:
            profiler.step()
        return loss

    transformers.Trainer.training_step = training_step
    return steps


def label_the_head() -> None:
    """Mark the lean head's forward in the profile (its backward shows as CPULabelLogProbsBackward)."""
    import torch

    import studio.engine.lean

    original = studio.engine.lean.label_log_probs

    def labelled(*args):
        with torch.profiler.record_function(HEAD):
            return original(*args)

    studio.engine.lean.label_log_probs = labelled


def print_profile(profiler) -> None:
    events = profiler.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
    total = sum(e.self_cpu_time_total for e in events)
    head = sum(e.cpu_time_total for e in events if e.key in (HEAD, "CPULabelLogProbsBackward"))
    print(f"LM head (forward + backward): {head / 1e6:.2f} s of {total / 1e6:.2f} s = {100 * head / total:.1f}%")
    matmuls = [e for e in profiler.key_averages(group_by_input_shape=True) if e.key == "aten::mm"]
    seconds, flops = sum(e.self_cpu_time_total for e in matmuls) / 1e6, sum(e.flops for e in matmuls)
    print(f"aten::mm: {seconds:.2f} s, {flops / 1e9:.0f} GFLOP, {flops / seconds / 1e9:.0f} GFLOP/s (profiled)")
    print("aten::mm by shape (share of mm time, GFLOP/s, calls, shapes), the 12 largest:")
    for e in sorted(matmuls, key=lambda e: -e.self_cpu_time_total)[:12]:
        print(f"  {100 * e.self_cpu_time_total / 1e6 / seconds:5.1f}%  {e.flops / e.self_cpu_time_total / 1e3:5.0f}"
              f"  {e.count:5d}  {e.input_shapes}")
    low_rank = [e for e in matmuls if any(8 in shape for shape in e.input_shapes[:2])]
    print(f"rank-8 LoRA products: {100 * sum(e.self_cpu_time_total for e in low_rank) / 1e6 / seconds:.1f}% of mm "
          f"time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=VARIANTS, default="defaults")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--model", default="starter", help="a built-in model: starter or gemma3-270m")
    args = parser.parse_args()

    import torch

    from studio.core.config import Settings

    from studio.core.settings_input import apply_overrides
    from studio.models.models import resolve_model_path
    from studio.training.train import run_training

    data = make_bench_data(Path("/tmp/studio-bench-data.jsonl"))
    settings, problems = apply_overrides(Settings(), [*COMMON, f"dataset_path={data}", f"max_steps={args.steps}",
                                                      *VARIANTS[args.variant]])
    assert not problems, problems
    profiler = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile, schedule

        profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True,
                           schedule=schedule(wait=2, warmup=0, active=max(1, args.steps - 2)))
        profiler.start()
        label_the_head()
    steps = timed_training_steps(profiler)
    status = run_training(settings, Path(tempfile.mkdtemp(prefix="bench-steps-")), progress=None)
    if profiler is not None:
        profiler.stop()
    assert status["status"] == "finished", status
    precision = status["precision"]
    peak = matmul_peak_gflops(precision)
    per_token = lora_flops_per_token(str(resolve_model_path(args.model, lambda _: None)))
    print(f"{args.model}, {args.variant}: {precision}, torch {torch.__version__}, {precision} mm peak "
          f"{peak:.0f} GFLOP/s, {per_token / 1e6:.0f} MFLOP per token; whole run {status['num_tokens']} tokens in "
          f"{status['train_runtime_s']:.1f} s")
    for i, step in enumerate(steps, 1):
        achieved = step["tokens"] * per_token / step["seconds"] / 1e9
        print(f"step {i}: batch {step['shape']}, {step['tokens']} tokens, {step['seconds']:.2f} s, "
              f"{achieved:.0f} GFLOP/s = {100 * achieved / peak:.1f}% of the peak")
    later = steps[2:] or steps
    achieved = sum(s["tokens"] for s in later) * per_token / sum(s["seconds"] for s in later) / 1e9
    print(f"steps 3-{len(steps)}: {achieved:.0f} GFLOP/s = {100 * achieved / peak:.1f}% of the {precision} peak")
    if profiler is not None:
        print_profile(profiler)


if __name__ == "__main__":
    main()
