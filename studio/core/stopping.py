"""Stop, in every phase of a run: not only between training steps (train.make_callbacks) but also while the model
generates before and after training (replay answers, the drift check, the held-out verdict), which can take
minutes on a CPU. `run_training` names the run's stop event for its thread (`stop_on`); the generation loop
asks `check()` between batches and at each step of its own loop (or gives `criteria()` to `generate`), so it
ends within one token.

`StopRequested` derives from BaseException on purpose: the checks catch `Exception` so that a failing measurement
never fails a run, and a Stop must not be taken for such a failure and carried on from.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_EVENT: ContextVar[threading.Event | None] = ContextVar("studio_stop_event", default=None)


class StopRequested(BaseException):
    """The user pressed Stop while the run was generating; the run ends as stopped."""


class StopFile:
    """A Stop that another process presses: the file's appearance. The Train tab writes it for a run it trains in
    several processes (studio/training/launcher.py); anyone may `touch` it to stop a headless run after its current step.
    It stands in for a threading.Event wherever a run reads one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._seen = False

    def is_set(self) -> bool:
        if not self._seen:  # once seen, never asked again (the file may be tidied away)
            self._seen = self.path.exists()
        return self._seen

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()


@contextmanager
def stop_on(event: threading.Event | None):
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


def requested() -> bool:
    event = _EVENT.get()
    return event is not None and event.is_set()


def check() -> None:
    if requested():
        raise StopRequested


def criteria():
    """For `generate(stopping_criteria=...)`: every row ends at the next token once Stop is pressed."""
    import torch  # deferred: heavy
    from transformers import StoppingCriteria, StoppingCriteriaList

    class OnStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), requested(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([OnStop()])
