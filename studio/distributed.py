"""Several processes (torchrun / accelerate launch): every process trains; only the main one writes the run
folder's files, so a preset runs unchanged on N GPUs. With one process (the UI, a plain CLI run) nothing here
imports torch or accelerate."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .runs import new_run_dir


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def shared_run_dir(requested: Path | None = None) -> Path:
    """The run folder every process writes into: the main process names it and tells the others."""
    if world_size() == 1 or requested is not None:
        return requested or new_run_dir()
    from accelerate.utils import broadcast_object_list  # deferred: accelerate imports torch

    _partial_state()
    name = [str(new_run_dir()) if is_main_process() else None]
    broadcast_object_list(name)
    return Path(name[0])


@contextmanager
def main_process_first():
    """The main process fills the tokenisation cache; the others then read it instead of racing to write it."""
    if world_size() == 1:
        yield
        return
    with _partial_state().main_process_first():
        yield


def _partial_state():
    """accelerate's view of the process group torchrun / accelerate launch set up. Without a GPU it must be told
    to use CPU processes (gloo), or it sees a single process."""
    import torch  # deferred: only several processes need it here
    from accelerate import PartialState  # deferred: imports torch

    return PartialState(cpu=not torch.cuda.is_available())
