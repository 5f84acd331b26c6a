"""Several processes against one, the same run: the studio's multi-process path (studio/training/launcher.py, the Train
tab's and the CLI's) against one process, in one bench run on this machine.

    python bench/processes.py [--steps 12] [--processes 2] [--model starter]

Both train the same preset with the same global batch (one process: batch 8; N processes: 8/N each) for the same
steps, replay, drift and held-out checks off. Printed: each run's training time (the Trainer's train_runtime, without
model loading), samples per second, first and last training loss, and the ratio N processes / one. On a CPU the
processes share its cores (each gets cores/N threads), so the ratio shows what the multi-process path costs here;
on N GPUs it is the data-parallel speed-up (not measured here: no GPU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GLOBAL_BATCH = 8


def run(preset: Path, processes: int, steps: int, out: Path) -> dict:
    per_device = GLOBAL_BATCH // processes
    command = [sys.executable, str(ROOT / "launch.py"), "train", "--preset", str(preset), "--output-dir", str(out),
               "--set", f"num_processes={processes}", "--set", f"per_device_train_batch_size={per_device}",
               "--set", f"max_steps={steps}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    status = json.loads((out / "status.json").read_text())
    runtime = status["train_runtime_s"]
    return {"processes": processes, "train_runtime_s": round(runtime, 1), "wall_s": round(wall, 1),
            "samples_per_s": round(steps * GLOBAL_BATCH / runtime, 2), "first_loss": round(status["first_train_loss"], 4),
            "final_loss": round(status["final_train_loss"], 4), "recorded_processes": status.get("processes", 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--model", default="starter")
    args = parser.parse_args()
    from studio.models import hardware
    from studio.core import presets, settings_input
    from studio.core.config import Settings

    facts = hardware.detect()
    print(f"machine: {facts.summary()}; flags {sorted(facts.cpu_flags & {'avx2', 'avx512_bf16', 'amx_bf16'})}")
    settings, problems = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={args.model}", "dataset_path=demo", "gradient_accumulation_steps=1", "max_length=256",
        "replay=off", "drift_check=false", "validation_share=0", "test_share=0", "logging_steps=1",
        "eval_steps=100000", "save_steps=100000", "early_stopping_patience=0", "train_sampling_strategy=random"])
    assert not problems, problems
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp) / "bench.json"
        presets.save_preset(settings, preset)
        one = run(preset, 1, args.steps, Path(tmp) / "one")
        many = run(preset, args.processes, args.steps, Path(tmp) / "many")
    for result in (one, many):
        print(json.dumps(result))
    print(f"samples/s, {args.processes} processes / 1 process: {many['samples_per_s'] / one['samples_per_s']:.2f} "
          f"(same global batch {GLOBAL_BATCH}, {args.steps} steps); final loss {many['final_loss']} vs "
          f"{one['final_loss']}")


if __name__ == "__main__":
    main()
