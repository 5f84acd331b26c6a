"""Training throughput: the studio's run vs a plain hand-written TRL script, on the same data, in one bench run.

    python bench/train_throughput.py [--steps 8] [--default-steps 2] [--model gemma3-270m] [--variants a,b]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python bench/train_throughput.py   # an AVX2-only CPU

Each variant trains the starter model (LoRA r8 on all linear layers, batch 4, cutoff 512) in a fresh subprocess
so its peak RSS is its own. Throughput is trained (non-padding) tokens per second of training time, as counted
by TRL (`attention_mask.sum()` per batch). Printed ratios:
  (a) studio, identical settings (fp32, random order, no checkpointing) / plain TRL with those settings, once with
      TRL's default loss (every token) and once with answers-only loss (prompt/completion rows), the studio's own
  (a') the same studio run with TRL's LM head (and so TRL's padded batches) instead of the studio's lean head
       and padding-free batches (studio/engine/lean.py): before / after
  (a'') padding-free batches / padded batches, both with the lean head; (b'') the same with the studio defaults
  (b) studio defaults (hardware-aware precision, length-grouped batches) / plain TRL, random order
  (c) studio defaults / TRL's own defaults (bf16 + gradient checkpointing), few steps
  (d) peak RSS of each variant
  (e) achieved FLOP/s as a share of this machine's matmul peak in the precision the variant trained in
      (a large torch.mm in fp32 and in bf16, same run)
Where bf16 is emulated (no AVX512-BF16 / AMX units, or oneDNN capped below them with ONEDNN_MAX_CPU_ISA, which
the studio's hardware plan also honours), TRL's defaults are timed on one step of rows cut to 64 tokens and (c)
is marked as that projection; the bf16 peak is then a 512² product, marked emulated. So the bench ends in about
ten minutes on two cores whatever the CPU; the CPU flags head every run's output.
The bench data are written here, seeded: lengths spread like real chat data (median ~128 tokens, long tail).
--model picks another built-in model (gemma3-270m: 262k vocabulary, where the LM head decides); --variants runs
only the named variants (the ratios that need others print nan). --pairs N runs plain TRL and the studio's
identical settings N more times, one after the other, and prints (a) for each pair and their median: between
runs of the bench plain TRL moved 127-155 tokens/s on one machine, more than one change moves the studio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ("the model learns to answer questions clearly and kindly while the data shows many short and long "
         "conversations about science history cooking travel music code and everyday life").split()
MODEL = os.environ.get("STUDIO_BENCH_MODEL", "starter")  # set by --model, read by every worker
COMMON = [f"model_name_or_path={MODEL}", "learning_rate=1e-4", "r=8", "lora_alpha=16", "lora_dropout=0.0",
          "per_device_train_batch_size=4", "gradient_accumulation_steps=1", "max_length=512", "validation_share=0",
          "logging_steps=1", "save_steps=100000", "seed=0"]


def make_bench_data(path: Path, rows: int = 400, seed: int = 0) -> Path:
    """Answers with log-normal word counts: median ~95 words (~128 tokens with the template), p95 ~3x that."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            words = max(8, int(math.exp(rng.gauss(math.log(95), 0.67))))
            answer = " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."
            question = "Tell me about " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + "?"
            f.write(json.dumps({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


# ---------------------------------------------------------------- workers (one per subprocess)

def worker_studio(data: Path, steps: int, overrides: list[str], lean: bool = True, padding_free: bool = True) -> dict:
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides

    if not lean:  # the "before" of the lean head: TRL's fused head, as SFTTrainer runs it (padded batches)
        import studio.engine.lean

        studio.engine.lean.lean_head_supported = lambda model: False
    if not padding_free:  # the lean head with TRL's padded batches
        import studio.engine.lean

        studio.engine.lean.attention_stays_inside_packed_rows = lambda model: False
    from studio.training.train import run_training

    settings, problems = apply_overrides(Settings(), [*COMMON, f"dataset_path={data}", f"max_steps={steps}",
                                                      *overrides])
    assert not problems, problems
    import tempfile

    status = run_training(settings, Path(tempfile.mkdtemp(prefix="bench-studio-")), progress=None)
    assert status["status"] == "finished", status
    return {"tokens": status["num_tokens"], "seconds": status["train_runtime_s"], "precision": status["precision"]}


def token_sized_batches(budget: int) -> None:
    """An experiment, not the studio's behaviour: each step takes shuffled rows until their tokens would pass
    `budget` (the most a step of batch-size rows at the cutoff could hold), instead of a fixed number of rows.
    Installed into the studio's trainer for one worker by returning a batch sampler the Trainer passes through."""
    import torch
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    import studio.engine.lean

    class TokenBudgetBatches(BatchRebalanceSampler):  # the Trainer hands this class to the DataLoader as batches
        def __init__(self, lengths, seed):
            self.lengths, self.seed, self.epoch, self.budget = list(lengths), seed, 0, budget
            self.batches = self._batches(0)

        def _batches(self, epoch):
            order = torch.randperm(len(self.lengths), generator=torch.Generator().manual_seed(self.seed + epoch))
            batches, current, tokens = [], [], 0
            for i in order.tolist():
                if current and tokens + self.lengths[i] > self.budget:
                    batches.append(current)
                    current, tokens = [], 0
                current.append(i)
                tokens += self.lengths[i]
            return batches + ([current] if current else [])

        def set_epoch(self, epoch):
            self.epoch, self.batches = epoch, self._batches(epoch)

        def __iter__(self):
            return iter(self.batches)

        def __len__(self):
            return len(self.batches)

    def sampler(self, dataset=None):
        dataset = dataset if dataset is not None else self.train_dataset
        return TokenBudgetBatches([len(ids) for ids in dataset["input_ids"]], self.args.seed)

    studio.engine.lean.LeanSFTTrainer._get_train_sampler = sampler


def worker_plain_trl(data: Path, steps: int, strategy: str, trl_defaults: bool, answers_only: bool = False,
                     max_length: int = 512) -> dict:
    """What a user would write by hand with TRL: a messages dataset, SFTConfig, LoraConfig. With answers_only the
    rows become prompt/completion pairs, so TRL trains on the answers only, as the studio does by default."""
    import tempfile

    from datasets import load_dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from studio.models.models import load_tokenizer, resolve_model_path

    model = resolve_model_path(MODEL, progress=lambda _: None)
    tokenizer = load_tokenizer(model)  # a base model gets the template the studio gives it, as a user would
    dataset = load_dataset("json", data_files=str(data), split="train")
    if answers_only:
        dataset = dataset.map(lambda row: {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]},
                              remove_columns=["messages"])
    args = dict(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_steps=steps, learning_rate=1e-4,
                per_device_train_batch_size=4, gradient_accumulation_steps=1, max_length=max_length, logging_steps=1,
                save_strategy="no", report_to="none", seed=0, use_cpu=True)
    if not trl_defaults:  # identical to the studio's "identical settings" variant
        args.update(bf16=False, gradient_checkpointing=False, train_sampling_strategy=strategy)
    trainer = SFTTrainer(model=model, args=SFTConfig(**args), train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    output = trainer.train()
    return {"tokens": trainer._total_train_tokens, "seconds": output.metrics["train_runtime"],
            "precision": "bf16" if trainer.args.bf16 else "fp32"}


def run_worker(args) -> None:
    data, steps = Path(args.data), args.steps
    variant = args.worker
    if variant == "studio_identical":
        result = worker_studio(data, steps, ["precision=fp32", "gradient_checkpointing=off",
                                             "train_sampling_strategy=random"])
    elif variant == "studio_identical_trl_head":
        result = worker_studio(data, steps, ["precision=fp32", "gradient_checkpointing=off",
                                             "train_sampling_strategy=random"], lean=False)
    elif variant == "studio_identical_padded":
        result = worker_studio(data, steps, ["precision=fp32", "gradient_checkpointing=off",
                                             "train_sampling_strategy=random"], padding_free=False)
    elif variant == "studio_defaults_padded":
        result = worker_studio(data, steps, [], padding_free=False)
    elif variant == "plain_trl_answers":
        result = worker_plain_trl(data, steps, "random", trl_defaults=False, answers_only=True)
    elif variant == "studio_defaults":
        result = worker_studio(data, steps, [])
    elif variant == "studio_defaults_token_batches":  # the experiment above: 4 x 512 tokens a step
        token_sized_batches(4 * 512)
        result = worker_studio(data, steps, [])
    elif variant == "plain_trl_random":
        result = worker_plain_trl(data, steps, "random", trl_defaults=False)
    elif variant == "trl_defaults":
        result = worker_plain_trl(data, steps, "random", trl_defaults=True)
    elif variant == "trl_defaults_short":  # emulated bf16: one step of rows cut short (see main)
        result = worker_plain_trl(data, steps, "random", trl_defaults=True, max_length=SHORT_TOKENS)
    else:
        raise SystemExit(f"unknown variant {variant}")
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------- orchestration

SHORT_TOKENS = 64  # rows are cut to this where bf16 is emulated, for the one step of TRL's defaults


def matmul_peak_gflops(precision: str = "fp32", size: int = 4096) -> float:
    """The best of three torch.mm in the precision a run trained in (bf16 runs on bf16 units where the CPU
    has them, emulated otherwise; there a 4096² product takes minutes, so the caller asks for a smaller one)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def bf16_emulated() -> tuple[bool, float]:
    """Whether this CPU (as torch sees it: flags, and any ONEDNN_MAX_CPU_ISA cap) emulates bf16 matmuls, from a
    512² product in both precisions (milliseconds where bf16 is native): bf16 / fp32 speed, emulated below 0.5."""
    speed = matmul_peak_gflops("bf16", 512) / matmul_peak_gflops("fp32", 512)
    return speed < 0.5, speed


def cpu_flags() -> str:
    from studio.models import hardware

    shown = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    raw = hardware._cpu_flags(cap="DEFAULT")
    seen = hardware._cpu_flags()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return " ".join(f for f in shown if f in raw) + (f" (ONEDNN_MAX_CPU_ISA={cap}: torch sees "
                                                     f"{' '.join(f for f in shown if f in seen)})" if cap else "")


def lora_flops_per_token(model_path: str) -> float:
    """Forward 2N + backward ~2N (activation gradients through frozen weights; LoRA weight grads are negligible)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(model_path)
    params = c.num_hidden_layers * (
        c.hidden_size * c.head_dim * (c.num_attention_heads * 2 + c.num_key_value_heads * 2)  # q, o, k, v
        + 3 * c.hidden_size * c.intermediate_size) + c.vocab_size * c.hidden_size  # mlp + lm head
    return 4.0 * params  # attention score FLOPs (~2 * seq * hidden per layer) are left out: small at these lengths


def spawn(variant: str, data: Path, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--data", str(data), "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        return {"error": (out.stderr or out.stdout)[-1500:]}
    result = json.loads(line[7:])
    result["tokens_per_s"] = result["tokens"] / result["seconds"]
    return result


def token_stats(data: Path) -> dict:
    import numpy as np

    from studio.templates.chat_template import encode_records
    from studio.data.data import load_dataset_file
    from studio.models.models import load_tokenizer, resolve_model_path

    tokenizer = load_tokenizer(resolve_model_path(MODEL, progress=lambda _: None))
    lengths = np.array(encode_records(tokenizer, load_dataset_file(str(data)).records()).lengths)
    return {"median": float(np.median(lengths)), "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max())}


def print_pairs(pairs: list[tuple[dict, dict]]) -> None:
    """(a) for each pair of runs, plain TRL then the studio's identical settings, and the median of those."""
    ratios = []
    for i, (plain, studio) in enumerate(pairs, 1):
        if "error" in plain or "error" in studio:
            print(f"(a) pair {i}: FAILED")
            continue
        ratios.append(studio["tokens_per_s"] / plain["tokens_per_s"])
        print(f"(a) pair {i}: plain TRL {plain['tokens_per_s']:.1f}, studio identical {studio['tokens_per_s']:.1f} "
              f"tokens/s -> {ratios[-1]:.3f}")
    if ratios:
        print(f"(a) median of {len(ratios)} pairs: {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--default-steps", type=int, default=2, help="steps for TRL's (slow) own defaults")
    parser.add_argument("--worker")
    parser.add_argument("--data")
    parser.add_argument("--model", default="starter", help="a built-in model: starter or gemma3-270m")
    parser.add_argument("--variants", default="", help="comma-separated variants to run (default: all)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="extra alternating runs of plain TRL and studio identical, for (a)'s spread")
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)
    global MODEL
    MODEL = os.environ["STUDIO_BENCH_MODEL"] = args.model  # the workers are subprocesses: they read it there

    from studio.models.models import resolve_model_path

    model_path = resolve_model_path(MODEL)
    chosen = set(filter(None, args.variants.split(",")))
    if "trl_defaults" in chosen:
        chosen.add("trl_defaults_short")  # its emulated-bf16 form
    data = make_bench_data(Path("/tmp/studio-bench-data.jsonl"))
    emulated, bf16_speed = bf16_emulated()
    print(f"CPU flags: {cpu_flags()}; bf16 / fp32 matmul speed {bf16_speed:.2f} -> bf16 "
          f"{'EMULATED' if emulated else 'native'}")
    print(f"bench data: {data} token lengths {token_stats(data)}")
    # Where bf16 is emulated, TRL's defaults run at ~1 GFLOP/s: one step of rows cut to SHORT_TOKENS tokens
    # instead; its tokens/s stands for the full rows' (emulated matmuls cost in proportion to the tokens, and
    # attention's quadratic part is small at these lengths), so (c) is a projection there, and says so.
    defaults = ("trl_defaults_short", 1) if emulated else ("trl_defaults", args.default_steps)
    results = {}
    for variant, steps in (("plain_trl_random", args.steps), ("plain_trl_answers", args.steps),
                           ("studio_identical", args.steps), ("studio_identical_trl_head", args.steps),
                           ("studio_identical_padded", args.steps), ("studio_defaults", args.steps),
                           ("studio_defaults_padded", args.steps), ("studio_defaults_token_batches", args.steps),
                           defaults):
        if chosen and variant not in chosen:
            results[variant] = {"error": "not run"}
            continue
        results[variant] = spawn(variant, data, steps)
        r = results[variant]
        if "error" in r:
            print(f"{variant:26s} FAILED: {r['error']}")
        else:
            print(f"{variant:26s} {r['precision']:5s} {steps:3d} steps  {r['tokens']:7d} tokens  {r['seconds']:7.1f} s  "
                  f"{r['tokens_per_s']:7.1f} tokens/s  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    pairs = [(results["plain_trl_random"], results["studio_identical"])] + [
        (spawn("plain_trl_random", data, args.steps), spawn("studio_identical", data, args.steps))
        for _ in range(args.pairs)]
    peaks = {"fp32": matmul_peak_gflops("fp32"), "bf16": matmul_peak_gflops("bf16", 512 if emulated else 4096)}
    print("matmul peaks: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
          + (" (bf16 emulated: a 512² product)" if emulated else ""))
    if emulated:
        results["trl_defaults"] = results.pop("trl_defaults_short")
    flops_token = lora_flops_per_token(model_path)

    def ratio(a, b):
        ra, rb = results[a], results[b]
        return ra["tokens_per_s"] / rb["tokens_per_s"] if "error" not in ra and "error" not in rb else float("nan")

    print(f"(a) studio identical / plain TRL          : {ratio('studio_identical', 'plain_trl_random'):.3f}")
    if args.pairs:
        print_pairs(pairs)
    print(f"(a) ... / plain TRL, answers-only loss     : {ratio('studio_identical', 'plain_trl_answers'):.3f}")
    print(f"(a') lean head, no padding / TRL's head    : {ratio('studio_identical', 'studio_identical_trl_head'):.3f}")
    print(f"(a'') no padding / padded (lean head both) : {ratio('studio_identical', 'studio_identical_padded'):.3f}")
    print(f"(b) studio defaults / plain TRL random     : {ratio('studio_defaults', 'plain_trl_random'):.3f}")
    print(f"(b'') defaults, no padding / padded        : {ratio('studio_defaults', 'studio_defaults_padded'):.3f}")
    print(f"(b*) experiment: token-sized batches / TRL : {ratio('studio_defaults_token_batches', 'plain_trl_random'):.3f}"
          "  (not the studio's behaviour: each step up to 4 x 512 tokens of rows)")
    print(f"(c) studio defaults / TRL's own defaults   : {ratio('studio_defaults', 'trl_defaults'):.3f}"
          + (f"  (projected: TRL's defaults timed on one step of rows cut to {SHORT_TOKENS} tokens, bf16 emulated)"
             if emulated else ""))
    print("(d) peak RSS GB: " + ", ".join(f"{k} {v.get('peak_rss_gb', float('nan')):.2f}" for k, v in results.items()))
    for name in ("studio_identical", "studio_defaults"):
        r = results[name]
        if "error" not in r:
            achieved = r["tokens_per_s"] * flops_token / 1e9
            peak = peaks.get(r["precision"], peaks["fp32"])  # against the peak of the precision it trained in
            print(f"(e) {name}: ~{achieved:.1f} GFLOP/s achieved ({flops_token / 1e6:.0f} MFLOP/token), "
                  f"{r['precision']} mm peak {peak:.0f} GFLOP/s -> {100 * achieved / peak:.1f}%")


if __name__ == "__main__":
    main()
