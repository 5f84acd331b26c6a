"""Does watching a run in the UI slow it down? The same run headless, and started from the UI while a watcher in
another process (as a browser would be) polls the live view every 2 s like the Train tab, in one bench run.

    python bench/ui_overhead.py [--steps 12]

Throughput is trained tokens / training seconds from each run's status.json (starter model, LoRA, batch 4).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OVERRIDES = ["validation_share=0", "logging_steps=1", "gradient_accumulation_steps=1", "seed=0"]


def headless(steps: int) -> dict:
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides
    from studio.training.train import run_training

    settings, _ = apply_overrides(Settings(), [*OVERRIDES, f"max_steps={steps}"])
    return run_training(settings, Path(tempfile.mkdtemp(prefix="bench-headless-")), progress=None)


def with_ui(steps: int) -> dict:
    os.environ["STUDIO_RUNS"] = tempfile.mkdtemp(prefix="bench-ui-")
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import free_port
    from gradio_client import Client

    from studio.core import config
    from studio.core.config import Settings
    from studio.core.settings_input import apply_overrides
    from studio.training.jobs import JOB
    from studio.ui.app import launch_app

    port = free_port()
    launch_app(port=port, block=False)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    settings, _ = apply_overrides(Settings(), [*OVERRIDES, f"max_steps={steps}"])
    values = config.flat_values(settings)
    names = [n for section, n, _ in config.all_fields() if section != "generation"]
    client.predict(*[values[n] for n in names], api_name="/start_training")
    # The watcher lives in its own process, as a browser does; the training process only serves its polls.
    watcher = subprocess.run([sys.executable, __file__, "--watch", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, cwd=ROOT)
    result = JOB.wait()
    result["polls"] = int(watcher.stdout.strip().splitlines()[-1])
    return result


def watch(url: str, interval: float) -> None:
    """Poll the live view like the Train tab's timer until the run ends; print the number of polls."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    polls = 0
    while True:
        status = client.predict(api_name="/poll_training")[0]  # the API has no page state: full data each poll
        polls += 1
        if "**finished**" in status or "**failed**" in status:
            break
        time.sleep(interval)
    print(polls)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--mode")
    parser.add_argument("--watch", help="(internal) poll this studio URL")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls (the Train tab: 2)")
    args = parser.parse_args()
    if args.watch:
        return watch(args.watch, args.interval)
    if args.mode:
        status = headless(args.steps) if args.mode == "headless" else with_ui(args.steps)
        print("RESULT " + json.dumps({k: status.get(k) for k in ("status", "num_tokens", "train_runtime_s", "polls")}))
        os._exit(0)  # the UI server's threads would keep the process alive
    results = {}
    for mode in ("headless", "ui", "headless", "ui"):  # interleaved, to spread the machine's drift
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--steps", str(args.steps)],
                             capture_output=True, text=True, cwd=ROOT)
        line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
        r = json.loads(line[7:])
        r["tokens_per_s"] = r["num_tokens"] / r["train_runtime_s"]
        results.setdefault(mode, []).append(r)
        print(f"{mode:8s} {r['num_tokens']} tokens in {r['train_runtime_s']:.1f} s = {r['tokens_per_s']:.1f} tokens/s"
              + (f" ({r['polls']} polls)" if r.get("polls") else ""), flush=True)
    mean = {m: sum(r["tokens_per_s"] for r in rs) / len(rs) for m, rs in results.items()}
    print(f"UI-polled / headless tokens/s: {mean['ui'] / mean['headless']:.3f}")


if __name__ == "__main__":
    main()
