"""Which run a tab offers: the one this server just trained, handed to each browser session once, so going from
Train to Chat or Export needs no picking and no refresh; after that the user's own choice is kept."""

from __future__ import annotations

from studio.core.text import Msg
from studio.training.jobs import JOB


def session_of(request) -> str:
    """The browser session a request comes from (Gradio's session hash); empty for the command line."""
    return str(getattr(request, "session_hash", "") or "")


def handed_note(value: str | None, handed_now: bool, session: str) -> Msg | None:
    """A run handed to this session that another session trained is labelled so: a fresh page must not present
    someone else's run as the user's own."""
    if not handed_now or not value or not JOB.owner or JOB.owner == session:
        return None
    return Msg("handoff.other_session", run=value.rstrip("/").rsplit("/", 1)[-1])


def pick_run(choices: list[str], current: str | None, handed: str | None) -> tuple[str | None, str | None]:
    """(the run to show, the run this session has now been handed)."""
    fresh = JOB.finished_run()
    if fresh and fresh != handed and fresh in choices:
        return fresh, fresh
    if current in choices:
        return current, handed
    return (choices[0] if choices else None), handed
