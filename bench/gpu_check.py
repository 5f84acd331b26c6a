"""What the studio chooses and does on a CUDA GPU, checked on a small random Llama (no hub, nothing downloaded).

    python bench/gpu_check.py [--out results.json]

For a lent GPU machine (the `device` tool), where the starter model cannot be carried: it prints the hardware
facts and the plan 'auto' resolves to, then trains LoRA (auto precision), QLoRA (bitsandbytes 4-bit) and full
fine-tuning in forced fp16 (the pre-Ampere path: fp32 master weights, loss scaling), each for a few steps, and
reports the loss, whether the right weights moved, the precision used and the peak GPU memory; finally both chat
panes answer from one weight copy. Each figure is this run's own; nothing here is a speed claim.
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
sys.path.insert(0, str(ROOT / "tests"))


def small_model(folder: Path) -> Path:
    from conftest import save_llama

    return save_llama(folder, hidden_size=256, layers=4, heads=4, kv_heads=2)


def train_once(model_dir: Path, runs: Path, name: str, overrides: list[str]) -> dict:
    import torch
    from safetensors.torch import load_file

    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings

    settings, problems = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={model_dir}", "max_steps=6", "learning_rate=0.001", "logging_steps=1", "eval_steps=3",
        "max_length=128", "validation_share=0.1", *overrides])
    assert not problems, problems
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    status = train.run_training(settings, runs / name, progress=None)
    out = {"status": status["status"], "error": status.get("error"), "seconds": round(time.perf_counter() - started, 1),
           "precision": status.get("precision"), "first_loss": status.get("first_train_loss"),
           "final_loss": status.get("final_train_loss"), "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
           "plan": {k: str(v) for k, v in json.loads((runs / name / "plan.json").read_text()).items() if k != "facts"}}
    if status["status"] == "finished" and (runs / name / "adapter").exists():
        adapter = load_file(str(runs / name / "adapter" / "adapter_model.safetensors"))
        out["lora_b_nonzero"] = sum(int(v.abs().sum() > 0) for k, v in adapter.items() if "lora_B" in k)
        out["lora_b_tensors"] = sum(1 for k in adapter if "lora_B" in k)
    if status["status"] == "finished" and (runs / name / "model").exists():
        base, tuned = load_file(str(model_dir / "model.safetensors")), load_file(str(runs / name / "model" / "model.safetensors"))
        out["weights_changed"] = sum(int(not torch.equal(base[k].float(), tuned[k].float())) for k in base if k in tuned)
        out["weights_total"] = len(base)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    args = parser.parse_args()

    import torch

    from studio.models import hardware

    facts = hardware.detect()
    report = {"torch": torch.__version__, "facts": {k: str(v) for k, v in facts.__dict__.items() if k != "cpu_flags"},
              "plan_auto": {k: str(v) for k, v in hardware.plan(facts).items() if k != "facts"},
              "qlora_available": str(hardware.qlora_available(facts))}
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    model_dir = small_model(work / "small-llama")
    runs = work / "runs"
    report["lora_auto"] = train_once(model_dir, runs, "lora", [])
    report["qlora"] = train_once(model_dir, runs, "qlora", ["finetuning_type=qlora"])
    report["full_fp16"] = train_once(model_dir, runs, "full-fp16", ["finetuning_type=full", "precision=fp16",
                                                                       "learning_rate=0.0001"])
    from studio.chat.chat import ChatPair, stream_pair
    from studio.core.config import GenerationSettings

    pair = ChatPair.from_run(str(runs / "lora"), progress=lambda _: None)
    messages = [{"role": "user", "content": "Who are you?"}]
    base, tuned = list(stream_pair(pair, messages, messages, GenerationSettings(max_new_tokens=16)))[-1]
    report["chat"] = {"device": str(next(pair.base_model.parameters()).device), "base_tokens": base.new_tokens,
                      "tuned_tokens": tuned.new_tokens, "tuned_differs": base.text != tuned.text}
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
