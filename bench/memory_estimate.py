"""The studio's memory estimate against measured peak memory, starter model on this CPU (LoRA and full).

    python bench/memory_estimate.py

Each case trains 3 steps in its own subprocess on conversations longer than the cutoff, so every batch is exactly
batch x cutoff tokens. Measured = peak RSS of the process minus its RSS just before the model is loaded (the Python,
torch and TRL runtime is not part of a training run's memory). Estimate = `estimates.estimate_memory_gb`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = [  # (method, precision, batch, cutoff); the first three calibrated advice.py's constants
    ("lora", "fp32", 4, 512), ("lora", "bf16", 4, 512), ("full", "fp32", 4, 512),
    ("lora", "fp32", 2, 256), ("lora", "bf16", 2, 384), ("full", "fp32", 2, 256), ("full", "bf16", 4, 256),
]


def long_data(path: Path) -> Path:
    words = "every answer here is long enough to fill the whole cutoff with tokens of plain text".split()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(32):
            answer = " ".join(words[(i + j) % len(words)] for j in range(700))
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Write {i}."},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


def worker(method: str, precision: str, batch: int, cutoff: int, data: str) -> None:
    import psutil

    import studio.models.models as models
    import studio.training.train as train
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides

    baseline = {}
    original = models.load_model

    def load_and_mark(*args, **kwargs):
        baseline["rss"] = psutil.Process().memory_info().rss
        return original(*args, **kwargs)

    models.load_model = load_and_mark
    settings, problems = apply_overrides(Settings(), [
        f"finetuning_type={method}", f"precision={precision}", f"per_device_train_batch_size={batch}",
        f"max_length={cutoff}", "gradient_accumulation_steps=1", "max_steps=3", "validation_share=0",
        f"dataset_path={data}", "save_steps=1000", "gradient_checkpointing=off", "assistant_only_loss=false"])
    assert not problems, problems
    status = train.run_training(settings, Path(tempfile.mkdtemp()), progress=None)
    assert status["status"] == "finished", status
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps({"measured_gb": (peak - baseline["rss"]) / 1024**3}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    from transformers import AutoConfig

    from studio.models.estimates import ModelShape, estimate_memory_gb
    from studio.models.models import ensure_starter_model

    shape = ModelShape.from_config(AutoConfig.from_pretrained(ensure_starter_model(progress=lambda _: None)))
    data = long_data(Path(tempfile.mkdtemp()) / "long.jsonl")
    print("method precision batch cutoff  estimate_gb  measured_gb  estimate/measured")
    for method, precision, batch, cutoff in CASES:
        out = subprocess.run([sys.executable, __file__, "--worker", method, precision, str(batch), str(cutoff),
                              str(data)], capture_output=True, text=True, cwd=ROOT)
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{method} {precision} {batch} {cutoff} FAILED: {out.stderr[-800:]}")
            continue
        measured = json.loads(line[7:])["measured_gb"]
        estimate = estimate_memory_gb(shape, method, precision, batch, cutoff)["total"]
        print(f"{method:6s} {precision:9s} {batch:5d} {cutoff:6d}  {estimate:11.2f}  {measured:11.2f}  "
              f"{estimate / measured:17.2f}", flush=True)


if __name__ == "__main__":
    main()
