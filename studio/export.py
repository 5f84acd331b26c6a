"""What a run leaves for reuse: its preset and the command that repeats it without the studio."""

from __future__ import annotations

import shlex
from pathlib import Path


def headless_commands(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    preset = shlex.quote(str(run_dir / "preset.json"))
    return "\n".join([
        "# repeat this run without the UI (same settings, same data split seed)",
        f"python launch.py train --preset {preset}",
        "# compare base and tuned answers",
        f"python launch.py chat {shlex.quote(str(run_dir))} --prompt \"Who are you?\"",
    ])
