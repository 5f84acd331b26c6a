"""Issue 8 (c) on a CPU without bf16 units, emulated on this AMX machine.

    python bench/avx2_emulation.py [--tokens 64]

The brief's machines are AVX2-only; this one has AMX, so TRL's bf16 default is fast here. Capping oneDNN and ATen at
AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`, set for the child processes) takes the bf16 units away:
a bf16 `torch.mm` then runs on the generic fallback, as on an AVX2-only CPU. In that setting this bench times one
LoRA training step (forward + backward + AdamW) of the starter model (r8 on all linear layers, one sequence of
`--tokens` tokens) with
  * the studio's choice for an AVX2 CPU: `hardware.plan()` on AVX2-only facts (fp32, no checkpointing), and
  * TRL's own defaults: bf16 autocast + gradient checkpointing,
each in its own process, and prints the ratio. A full 512-token batch of 4 would take TRL's defaults about half an
hour per step here, hence one short sequence: the ratio is per step, not the bench's tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EMULATE = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def mm_gflops(dtype) -> float:
    import torch

    a, b = torch.randn(1024, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    torch.mm(a, b)
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < 2 or n < 2:
        torch.mm(a, b)
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - started) / 1e9


def step_seconds(precision: str, checkpointing: bool, tokens: int) -> float:
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.models import models

    path = str(models.ensure_starter_model(progress=lambda _: None))
    model = get_peft_model(models.load_model(path), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                               task_type="CAUSAL_LM"))
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens))
    timings = []
    for _ in range(2):  # the first step warms up; the second is timed
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        timings.append(time.perf_counter() - started)
    return timings[-1]


def child(args) -> None:
    import torch

    from studio.models import hardware

    if args.child == "mm":
        print("RESULT " + json.dumps({"fp32": mm_gflops(torch.float32), "bf16": mm_gflops(torch.bfloat16)}))
        return
    if args.child == "studio":  # what the studio decides for an AVX2-only CPU
        facts = hardware.HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2"}), cpu_count=2)
        plan = hardware.plan(facts)
        precision, checkpointing = plan["precision"], plan["gradient_checkpointing"]
    else:
        precision, checkpointing = "bf16", True
    seconds = step_seconds(precision, checkpointing, args.tokens)
    print("RESULT " + json.dumps({"precision": precision, "checkpointing": checkpointing, "seconds": seconds}))


def run(kind: str, tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--tokens", str(tokens)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **EMULATE})
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        return child(args)
    mm = run("mm", args.tokens)
    print(f"emulated AVX2: 1024^2 torch.mm fp32 {mm['fp32']:.1f} GFLOP/s, bf16 {mm['bf16']:.1f} GFLOP/s")
    studio, trl = run("studio", args.tokens), run("trl", args.tokens)
    for name, r in (("studio's choice", studio), ("TRL's defaults", trl)):
        print(f"{name:16s} {r['precision']}, checkpointing {'on' if r['checkpointing'] else 'off'}: "
              f"{r['seconds']:.2f} s per step ({args.tokens} tokens)")
    print(f"(c, emulated AVX2) studio's choice / TRL's defaults, per step: {trl['seconds'] / studio['seconds']:.1f}x")


if __name__ == "__main__":
    main()
