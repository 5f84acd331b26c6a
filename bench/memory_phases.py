"""Where a studio run's peak memory is: resident memory sampled every 20 ms through the phases of one run.

    python bench/memory_phases.py [--model gemma3-270m] [--steps 6]

Trains with train_throughput.py's "identical" settings (fp32, random order, no checkpointing) on its bench data
and prints the highest RSS seen before training, in training, and in the drift check after it, and the tokens of
each step (the longest step sets the training peak). The bench's own peak RSS is ru_maxrss: the same peak, with no
phases.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def rss_gb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    os.environ["STUDIO_BENCH_MODEL"] = args.model  # read by train_throughput's COMMON settings
    import transformers

    import studio.training.run_checks
    import train_throughput
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides
    from studio.training.train import run_training

    phase, peaks, steps = ["before training"], {}, []

    def sample() -> None:
        while True:
            peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss_gb())
            time.sleep(0.02)

    def in_phase(function, name):
        def wrapped(*a, **k):
            phase[0] = name
            try:
                return function(*a, **k)
            finally:
                phase[0] = "between"
        return wrapped

    transformers.Trainer.train = in_phase(transformers.Trainer.train, "training")
    studio.training.run_checks.drift_result = in_phase(studio.training.run_checks.drift_result, "drift check after training")
    training_step = transformers.Trainer.training_step

    def counted_step(self, model, inputs, *a, **k):
        steps.append(int(inputs["input_ids"].numel()))
        return training_step(self, model, inputs, *a, **k)

    transformers.Trainer.training_step = counted_step
    threading.Thread(target=sample, daemon=True).start()
    data = train_throughput.make_bench_data(Path(tempfile.gettempdir()) / "studio-bench-data.jsonl")
    settings, problems = apply_overrides(Settings(), [
        *train_throughput.COMMON, f"dataset_path={data}", f"max_steps={args.steps}", "precision=fp32",
        "gradient_checkpointing=off", "train_sampling_strategy=random"])
    assert not problems, problems
    status = run_training(settings, Path(tempfile.mkdtemp(prefix="bench-memory-")), progress=None)
    time.sleep(0.1)
    assert status["status"] == "finished", status
    print(f"{args.model}: {status['num_tokens'] / status['train_runtime_s']:.1f} tokens/s; tokens per step {steps}")
    for name, peak in peaks.items():
        print(f"  {peak:5.2f} GB  {name}")


if __name__ == "__main__":
    main()
