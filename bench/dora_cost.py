"""What DoRA and rsLoRA cost against plain LoRA, through the studio's own engine, on the starter model here.

    STUDIO_HOME=... python bench/dora_cost.py [--steps 16]

Each variant trains the built-in demo for the same optimizer steps in its own process (the same data, seed and
recipe but the switch): seconds per step (the trainer's own runtime / steps, the first step's warm-up included
for every variant alike), the process's peak RSS, and the last training loss. Prints each variant's ratio to
plain LoRA, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VARIANTS = {"lora": [], "dora": ["use_dora=true"], "rslora": ["use_rslora=true"],
            "dora+rslora": ["use_dora=true", "use_rslora=true"]}


def one(name: str, steps: int, work: str) -> None:
    from studio.core import settings_input
    from studio.core.config import Settings
    from studio.training import train

    settings, problems = settings_input.apply_overrides(Settings(), [
        f"max_steps={steps}", "drift_check=false", "replay=off", "eval_steps=1000", "save_steps=1000",
        "early_stopping_patience=0", *VARIANTS[name]])
    assert not problems, problems
    status = train.run_training(settings, Path(work) / name, progress=None)
    assert status["status"] == "finished", status
    print(json.dumps({"seconds_per_step": status["train_runtime_s"] / status["global_step"],
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                      "last_loss": status["final_train_loss"], "precision": status["precision"]}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--one")
    parser.add_argument("--work")
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.steps, args.work)
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for name in VARIANTS:
            done = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--work",
                                   work], capture_output=True, text=True, check=True)
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["lora"]
    print(f"starter model, built-in demo, {args.steps} steps each, precision {base['precision']}")
    print("variant       s/step  x LoRA  peak RSS GB  x LoRA  last loss")
    for name, r in results.items():
        print(f"{name:12s} {r['seconds_per_step']:7.3f} {r['seconds_per_step'] / base['seconds_per_step']:6.2f}x "
              f"{r['peak_rss_gb']:11.2f} {r['peak_rss_gb'] / base['peak_rss_gb']:6.2f}x {r['last_loss']:10.4f}")


if __name__ == "__main__":
    main()
