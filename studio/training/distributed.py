"""Several processes (torchrun / accelerate launch): every process trains; only the main one writes the run
folder's files, so a preset runs unchanged on N GPUs. With one process (the UI, a plain CLI run) nothing here
imports torch or accelerate."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from studio.core.runs import new_run_dir


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


def sharded() -> bool:
    """The model's weights are split over the processes (accelerate launch with FSDP or DeepSpeed), so no one
    process holds them whole. Not on CPU processes: accelerate runs an FSDP or DeepSpeed config there as plain
    data-parallel (its state.py shards only on accelerators), so each process still holds the model whole."""
    def flag(name: str) -> bool:
        return os.environ.get(name, "").lower() == "true"

    if world_size() == 1 or flag("ACCELERATE_USE_CPU"):
        return False
    if not (flag("ACCELERATE_USE_FSDP") or flag("ACCELERATE_USE_DEEPSPEED")):
        return False
    return _partial_state().distributed_type.name != "MULTI_CPU"


@contextmanager
def main_process_first():
    """The main process fills the tokenisation cache; the others then read it instead of racing to write it."""
    if world_size() == 1:
        yield
        return
    state = _partial_state()
    if not state.is_main_process:
        state.wait_for_everyone()
    try:
        yield
    finally:  # also when the main process raised (a Stop while it generated): the others must not wait forever
        if state.is_main_process:
            state.wait_for_everyone()


def any_process(flag: bool) -> bool:
    """True where any process says so, for every process alike (a Stop seen by one at this step stops all of them
    at this step: a process that went on alone would wait forever for the others). Every process must call it at
    the same point: it is a collective."""
    if world_size() == 1:
        return flag
    import torch  # deferred: only several processes need it here
    import torch.distributed as dist

    if not dist.is_initialized():
        return flag
    on_gpu = torch.cuda.is_available() and "nccl" in str(dist.get_backend())
    value = torch.tensor([int(flag)], device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _partial_state():
    """accelerate's view of the process group torchrun / accelerate launch set up. Without a GPU it must be told
    to use CPU processes (gloo), or it sees a single process."""
    import torch  # deferred: only several processes need it here
    from accelerate import PartialState  # deferred: imports torch

    return PartialState(cpu=not torch.cuda.is_available())
