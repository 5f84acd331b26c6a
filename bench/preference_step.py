"""Time per DPO step: the studio's run against plain TRL `DPOTrainer` with identical settings, in one bench run;
and the peak memory of a DPO run against an SFT run on the same rows.

    python bench/preference_step.py [--steps 8] [--rows 64]

Each variant runs in a fresh subprocess (its peak RSS is its own) on the starter model (SmolLM2-135M-Instruct),
LoRA r8 on all linear layers, batch 2, cutoff 256, fp32, the same seeded pairs. The studio variants start from a
new adapter (as plain TRL does when given `peft_config`), so the reference is the base model in both. Time per
step is TRL's `train_runtime` / steps (model loading and tokenising excluded), each variant measured twice,
best kept. Printed: studio / plain TRL step-time ratio (target <= 1.0, i.e. no studio overhead), and
peak RSS of DPO / SFT.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = ("the model answers questions clearly and kindly about science history cooking travel music code and "
         "everyday life while keeping each reply short").split()
COMMON = ["model_name_or_path=starter", "learning_rate=5e-6", "r=8", "lora_alpha=16", "lora_dropout=0.0",
          "per_device_train_batch_size=2", "gradient_accumulation_steps=1", "max_length=256", "validation_share=0",
          "logging_steps=1", "save_steps=100000", "seed=0", "precision=fp32", "gradient_checkpointing=off"]


def make_pairs(path: Path, rows: int) -> Path:
    rng = random.Random(0)
    sentence = lambda n: " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."  # noqa: E731
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            f.write(json.dumps({"prompt": "Tell me about " + sentence(rng.randint(3, 10)),
                                "chosen": sentence(rng.randint(20, 60)), "rejected": sentence(rng.randint(20, 60))})
                    + "\n")
    return path


def studio_worker(kind: str, data: Path, steps: int, out: Path) -> dict:
    from studio.core import config, settings_input
    from studio.training import train

    stage = ["stage=dpo", f"dataset_path={data}"] if kind == "dpo" else [f"dataset_path={data.with_suffix('.sft.jsonl')}"]
    settings, problems = settings_input.apply_overrides(config.Settings(), COMMON + stage + [f"max_steps={steps}"])
    assert not problems, problems
    status = train.run_training(settings, out, progress=None)
    assert status["status"] == "finished", status
    return {"seconds_per_step": status["train_runtime_s"] / steps}


def plain_worker(data: Path, steps: int, out: Path) -> dict:
    """A hand-written TRL script with the same settings: what a user would write without the studio."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from studio.models.models import resolve_model_path

    path = resolve_model_path("starter", progress=lambda _: None)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = load_dataset("json", data_files=str(data), split="train")
    rows = rows.map(lambda r: {"prompt": [{"role": "user", "content": r["prompt"]}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    args = DPOConfig(output_dir=str(out), max_steps=steps, learning_rate=5e-6, per_device_train_batch_size=2,
                     gradient_accumulation_steps=1, max_length=256, logging_steps=1, save_strategy="no", seed=0,
                     use_cpu=True, bf16=False, report_to="none", beta=0.1, lr_scheduler_type="cosine",
                     warmup_steps=0.05, weight_decay=0.0, max_grad_norm=1.0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer, peft_config=lora)
    output = trainer.train()
    return {"seconds_per_step": output.metrics["train_runtime"] / steps}


def run_variant(name: str, data: Path, steps: int, out: Path) -> dict:
    code = (f"import sys, json, resource; sys.path.insert(0, {str(ROOT)!r}); from bench.preference_step import *; "
            f"r = {'plain_worker' if name == 'plain' else 'studio_worker'}("
            f"{'' if name == 'plain' else repr(name) + ', '}Path({str(data)!r}), {steps}, Path({str(out)!r})); "
            "r['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20; print(json.dumps(r))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args()
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="pref-bench-"))
    data = make_pairs(work / "pairs.jsonl", args.rows)
    with open(data.with_suffix(".sft.jsonl"), "w", encoding="utf-8") as f:  # the same rows, chosen answers only
        for line in data.read_text().splitlines():
            r = json.loads(line)
            f.write(json.dumps({"messages": [{"role": "user", "content": r["prompt"]},
                                             {"role": "assistant", "content": r["chosen"]}]}) + "\n")
    results = {}
    for name in ("plain", "dpo", "plain", "dpo", "sft"):  # interleaved, twice: the machine's speed drifts
        r = run_variant(name, data, args.steps, work / f"{name}-{len(results)}")
        best = results.get(name)
        results[name] = r if best is None or r["seconds_per_step"] < best["seconds_per_step"] else best
        print(name, json.dumps(r), flush=True)
    ratio = results["dpo"]["seconds_per_step"] / results["plain"]["seconds_per_step"]
    print(f"\nstudio DPO step / plain TRL DPOTrainer step: {ratio:.2f} (target <= 1.0)")
    print(f"seconds per step: studio {results['dpo']['seconds_per_step']:.3f}, plain TRL "
          f"{results['plain']['seconds_per_step']:.3f}, studio SFT {results['sft']['seconds_per_step']:.3f}")
    print(f"peak RSS: DPO {results['dpo']['peak_rss_gb']:.2f} GB, plain TRL DPO {results['plain']['peak_rss_gb']:.2f} GB,"
          f" SFT {results['sft']['peak_rss_gb']:.2f} GB (DPO / SFT {results['dpo']['peak_rss_gb'] / results['sft']['peak_rss_gb']:.2f})")
    cpu = next((line for line in open("/proc/cpuinfo") if line.startswith("model name")), "").split(":")[-1].strip()
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    print(f"CPU: {cpu}; avx512_bf16={'avx512_bf16' in flags}, amx_bf16={'amx_bf16' in flags}")


if __name__ == "__main__":
    main()
