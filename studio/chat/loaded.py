"""The one loaded base-and-tuned pair of this server process, shared by the Chat tab and the served endpoint
(studio/chat/serve.py): a second copy of the weights would double the memory. Loading another run frees the
previous one first. Folders outside the studio's are refused before anything is read."""

from __future__ import annotations

import gc
import threading

from studio.core.paths import run_model_refusal
from .chat import ChatPair

_LOADED: dict = {}
_LOCK = threading.Lock()


def get_pair(run_dir: str, compare_with: str | None = None) -> ChatPair:
    """The loaded pair: the run against its base model, or against another run on the same base."""
    compare_with = compare_with if isinstance(compare_with, str) and compare_with.strip() else None
    for folder in filter(None, (run_dir, compare_with)):
        if refusal := run_model_refusal(folder):  # a typed folder, or a preset's base model, outside the studio's
            raise PermissionError(refusal)
    with _LOCK:
        if (_LOADED.get("run_dir"), _LOADED.get("compare_with")) != (run_dir, compare_with):
            _LOADED.clear()  # free the previous run's model before loading the next
            gc.collect()
            pair = ChatPair.of_two_runs(run_dir, compare_with, progress=lambda _: None) if compare_with else \
                ChatPair.from_run(run_dir, progress=lambda _: None)
            _LOADED.update(run_dir=run_dir, compare_with=compare_with, pair=pair)
        return _LOADED["pair"]


def loaded_run() -> str | None:
    return _LOADED.get("run_dir")


def unload() -> None:
    with _LOCK:
        _LOADED.clear()
        gc.collect()
