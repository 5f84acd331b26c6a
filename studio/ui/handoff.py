"""Which run a tab offers: the one this server just trained, handed to each browser session once, so going from
Train to Chat or Export needs no picking and no refresh; after that the user's own choice is kept."""

from __future__ import annotations

from ..jobs import JOB


def pick_run(choices: list[str], current: str | None, handed: str | None) -> tuple[str | None, str | None]:
    """(the run to show, the run this session has now been handed)."""
    fresh = JOB.finished_run()
    if fresh and fresh != handed and fresh in choices:
        return fresh, fresh
    if current in choices:
        return current, handed
    return (choices[0] if choices else None), handed
