"""Experiment trackers a run can also report to (TrainingArguments' `report_to`): which are installed here, the
command that installs one, where a local one writes, and the command that shows its dashboard. Light: a tracker
is looked for, never imported, here; transformers' own callbacks do the reporting."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

from .text import Msg

# name: (the package transformers needs, the install command, True where nothing leaves this machine)
TRACKERS = {
    "tensorboard": ("tensorboard", "pip install tensorboard", True),
    "trackio": ("trackio", "pip install trackio", True),
    "wandb": ("wandb", "pip install wandb", False),
    "mlflow": ("mlflow", "pip install mlflow", True),
}
NONE = "none"
TRACKER_PROJECT = "fine-tuning-studio"  # the project every run reports under (Trackio, W&B's run group)
TENSORBOARD_DIR = "tensorboard"  # under the run folder: `tensorboard --logdir runs` compares every run


def installed(name: str) -> bool:
    return name == NONE or (name in TRACKERS and importlib.util.find_spec(TRACKERS[name][0]) is not None)


def offered() -> list[str]:
    """The choices the form offers on this machine: none, and every installed tracker."""
    return [NONE, *(name for name in TRACKERS if installed(name))]


def missing(name: str) -> Msg | None:
    """Why a tracker cannot be chosen here (not installed: its install command), or None."""
    if installed(name):
        return None
    return Msg("tracker.missing", tracker=name, command=TRACKERS[name][1])


def dashboard(name: str, run_dir: str | Path, studio_home: Path) -> Msg | None:
    """The command that shows a run's curves in its tracker, said on the Train tab; None for none."""
    run_dir = Path(run_dir)
    if name == "tensorboard":
        return Msg("tracker.tensorboard", command=f"tensorboard --logdir {shlex.quote(str(run_dir.parent))}",
                   run=run_dir.name)
    if name == "trackio":
        return Msg("tracker.trackio", command=f"TRACKIO_DIR={shlex.quote(str(studio_home / 'trackio'))} "
                                              f"trackio show --project {TRACKER_PROJECT}")
    if name == "mlflow":
        return Msg("tracker.mlflow", command=f"mlflow ui --backend-store-uri {shlex.quote(str(studio_home / 'mlruns'))}")
    if name == "wandb":
        return Msg("tracker.wandb")
    return None
