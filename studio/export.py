"""What a run leaves for reuse: its preset and the command that repeats it without the studio."""

from __future__ import annotations

import json
import shlex
from pathlib import Path


def run_summary(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    status_file = run_dir / "status.json"
    status = json.loads(status_file.read_text(encoding="utf-8")) if status_file.exists() else {}
    return {"run": run_dir.name, "status": status.get("status", "unknown"),
            "final_train_loss": status.get("final_train_loss"), "final_eval_loss": status.get("final_eval_loss"),
            "output": status.get("output")}


def headless_commands(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    preset = shlex.quote(str(run_dir / "preset.json"))
    return "\n".join([
        "# repeat this run without the UI (same settings, same data split seed)",
        f"python launch.py train --preset {preset}",
        "# compare base and tuned answers",
        f"python launch.py chat {shlex.quote(str(run_dir))} --prompt \"Who are you?\"",
    ])
