"""Cost of the general-ability drift check against the quickstart run it measures, in one bench run.

    python bench/drift_check.py [--preset presets/quickstart-cpu.json] [--set name=value ...]

Trains the preset (the starter model on the demo data) with the drift check on and an empty drift cache, as a
first run on a new base model pays it: the base model's greedy answers to the ~60 general prompts and its scores
(before), then the tuned model's scores and three sample answers (after). Then measures the check again on the
trained run with the base answers cached, as every later run on that model pays it. Printed: the seconds of
each part, the training time (TRL's train_runtime, the whole run's wall time beside it), the check's share of
each (target <= 10% of a quickstart run), the drift itself, and the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=str(ROOT / "presets" / "quickstart-cpu.json"))
    parser.add_argument("--set", action="append", default=[], dest="assignments")
    args = parser.parse_args()

    from studio.chat import drift
    from studio.models import models
    from studio.core import presets, settings_input
    from studio.training import train

    settings, _, problems = presets.load_preset(args.preset)
    settings, more = settings_input.apply_overrides(settings, ["drift_check=true", *args.assignments])
    if problems or more:
        sys.exit(f"bad settings: {problems or more}")
    with tempfile.TemporaryDirectory() as folder:
        drift.cache_dir = lambda: Path(folder) / "drift"  # an empty cache: the first run on this base model
        run_dir = Path(folder) / "run"
        status = train.run_training(settings, run_dir, progress=None)
        if status["status"] != "finished":
            sys.exit(f"run {status['status']}: {status.get('error')}")
        report = json.loads((run_dir / "drift.json").read_text())
        first = report["seconds"]["before"] + report["seconds"]["after"]
        again = cached_check(run_dir, settings, status["precision"], drift, models)
    runtime, wall = status["train_runtime_s"], status["wall_time_s"]
    print(f"CPU flags: {cpu_flags()}; precision {status['precision']}; {report['prompts']} prompts")
    print(f"training (train_runtime) {runtime:.1f} s; whole run {wall:.1f} s")
    print(f"drift check, first run on the model: before {report['seconds']['before']:.1f} s + after "
          f"{report['seconds']['after']:.1f} s = {first:.1f} s -> {first / runtime:.1%} of training, "
          f"{first / wall:.1%} of the run")
    print(f"drift check, base answers cached: {again:.1f} s -> {again / runtime:.1%} of training")
    print(f"  (after: scoring {report['seconds']['after_scoring']:.1f} s, the rest the three sample answers)")
    print(f"drift {report['drift']:+.4f} nats/token, {report['changed']} of {report['prompts']} answers changed, "
          f"level {drift.level(report)}; by kind {report['by_kind']}")
    for sample in report["samples"]:
        print(f"  {sample['prompt']!r}\n    base:  {sample['base']!r}\n    tuned: {sample['tuned']!r}")


def cached_check(run_dir: Path, settings, precision: str, drift, models) -> float:
    """The check as a later run pays it: cached base answers, fresh base scores read from the cache, the tuned
    side scored again (the adapter loaded on the base model)."""
    from peft import PeftModel

    path = models.resolve_model_path(settings.model.model_name_or_path, progress=lambda _: None)
    tokenizer = models.load_tokenizer(path)
    base = models.load_model(path, models.weights_dtype(precision, settings.method.finetuning_type))  # as trained
    started = time.perf_counter()
    baseline = drift.before_training(base, tokenizer, path)
    tuned = PeftModel.from_pretrained(base, str(run_dir / "adapter"))
    drift.after_training(baseline, tuned, tokenizer)
    assert baseline.cached, "the first run should have cached the base answers"
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
