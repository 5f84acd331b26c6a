"""Your own GRPO rewards in Python: a file whose functions score answers as TRL's reward functions do
(`def my_reward(prompts, completions, reference, **kwargs) -> list[float | None]`), trained beside the built-in
rewards with weight 1 each.

Importing a file runs its code. So the switch is off by default: a GRPO run reads `reward_code_path` only when
the studio was started with `--allow-reward-code`, and the UI refuses that flag on a server other machines can
reach (a non-loopback --host, or --share): whoever reaches the page could otherwise make the server run any file
it can read (LocalAI turned inline reward code off for this reason). The command line honours the flag as it
honours --trust-remote-code: whoever runs it already has the shell. Process-wide, like paths.FOLDERS.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Callable

from .text import Msg

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_SWITCH = {"on": False}


def allow(host: str | None = None, share: bool = False) -> Msg | None:
    """Turn user reward code on for this process; refused (stays off, the reason returned) for a server that other
    hosts can reach. `host` None: the command line."""
    if host is not None and (host not in LOOPBACK_HOSTS or share):
        return Msg("practice.code_exposed", host=host if not share else "--share")
    _SWITCH["on"] = True
    return None


def switch_off() -> None:
    _SWITCH["on"] = False


def refusal(path: str) -> Msg | None:
    """Why a run may not import `path` now (the switch is off), or None."""
    return None if not path.strip() or _SWITCH["on"] else Msg("practice.code_off")


def load_rewards(path: str) -> list[Callable]:
    """The file's reward functions: its `REWARDS` list where it has one, else every function named `reward_*` or
    `*_reward` defined in it. Raises ValueError with the studio's message when the file has none."""
    if (why := refusal(path)) is not None:
        raise ValueError(why)
    file = Path(path).expanduser()
    spec = importlib.util.spec_from_file_location(f"studio_user_rewards_{abs(hash(str(file)))}", file)
    if spec is None or spec.loader is None:
        raise ValueError(Msg("practice.code_unreadable", path=str(file)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = list(getattr(module, "REWARDS", None) or [
        f for name, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__
        and (name.startswith("reward_") or name.endswith("_reward"))])
    if not found or not all(callable(f) for f in found):
        raise ValueError(Msg("practice.code_none", path=str(file)))
    return found
