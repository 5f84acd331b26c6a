"""The studio's CPU LM head alone (forward + backward) against TRL's chunked kernel, and optionally against the
studio's head at an earlier git revision, on the two built-in models' head shapes.

    python bench/lm_head.py [--against REV]

Each line: best of 3 seconds for log p(label) of N positions and its gradients (hidden states only, as in LoRA
training), in fp32 and under bf16 autocast; the ratio to TRL's `ChunkedLogProbFunction` measured in the same run
(and to REV's studio/engine/lean.py, loaded from `git show REV:studio/engine/lean.py`), and the largest difference in log p.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPES = [("gemma3-270m", 262144, 640, 240), ("gemma3-270m", 262144, 640, 1000), ("starter", 49152, 576, 250),
          ("starter", 49152, 576, 1000)]


def head_at(revision: str):
    """studio/engine/lean.py as it was at `revision`, imported as its own module."""
    source = subprocess.run(["git", "show", f"{revision}:studio/engine/lean.py"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "lean_then.py"
    path.write_text(source.replace("from .", "from studio."), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("studio_lean_then", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.CPULabelLogProbs.apply


def trl_head(hidden, weight, bias, labels):
    from trl.kernels import ChunkedLogProbFunction

    return ChunkedLogProbFunction.apply(hidden, weight, bias, labels, 1.0, 32768, None, 1.0, ("log_probs",))[0]


def timed(function, hidden, weight, labels, bf16: bool) -> tuple[float, object]:  # (seconds, log-probs)
    import torch

    best, log_probs = float("inf"), None
    for _ in range(4):  # the first is a warm-up
        hidden.grad = None
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            log_probs = function(hidden, weight, None, labels)
        log_probs.sum().backward()
        best = min(best, time.perf_counter() - started)
    return best, log_probs.detach().float()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", help="a git revision whose studio head to time as well")
    args = parser.parse_args()
    import torch

    from studio.engine.lean import CPULabelLogProbs

    heads = {"studio": CPULabelLogProbs.apply, "TRL": trl_head}
    if args.against:
        heads[args.against] = head_at(args.against)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for model, vocab, width, positions in SHAPES:
        generator = torch.Generator().manual_seed(0)
        weight = torch.randn(vocab, width, generator=generator) * 0.02
        labels = torch.randint(0, vocab, (positions,), generator=generator)
        hidden = torch.randn(positions, width, generator=generator).requires_grad_()
        for bf16 in (False, True):
            results = {name: timed(head, hidden, weight, labels, bf16) for name, head in heads.items()}
            mine, mine_log_probs = results["studio"]
            others = "  ".join(f"{name} {seconds:.3f} s ({seconds / mine:.2f}x, max|d log p| "
                               f"{float((log_probs - mine_log_probs).abs().max()):.1e})"
                               for name, (seconds, log_probs) in results.items() if name != "studio")
            print(f"{model} head {vocab}x{width}, {positions} positions, {'bf16' if bf16 else 'fp32'}: "
                  f"studio {mine:.3f} s  {others}")


if __name__ == "__main__":
    main()
