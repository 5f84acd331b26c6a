"""Stop, in every phase of a run: not only between training steps (train.make_callbacks) but also while the model
generates before and after training (replay answers, the drift check, the held-out verdict), which can take
minutes on a CPU. `run_training` names the run's stop event for its thread (`stop_on`); the generation loop
asks `check()` between batches and gives `criteria()` to `generate`, which then ends within one token.

`StopRequested` derives from BaseException on purpose: the checks catch `Exception` so that a failing measurement
never fails a run, and a Stop must not be taken for such a failure and carried on from.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar

_EVENT: ContextVar[threading.Event | None] = ContextVar("studio_stop_event", default=None)


class StopRequested(BaseException):
    """The user pressed Stop while the run was generating; the run ends as stopped."""


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
