"""Presets: a run's settings as a JSON file with a header (description, hardware, measured cost), read with every
problem named and bounded in size and depth, written atomically. The same file repeats a run headless."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import Problem, Settings
from .text import Msg
from .validation import problems_from_validation_error, validate_settings

PRESET_VERSION = 1


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    studio_preset: Literal[1]
    description: str = ""
    description_zh: str = ""  # the same description for Chinese readers (optional)
    hardware: str = ""
    measured: dict[str, Any] = Field(default_factory=dict)  # cost where it was measured: wall time, peak memory, loss
    settings: dict[str, Any] = Field(default_factory=dict)  # validated as Settings separately, for clean paths


def parse_preset(data: Any, source: str = "preset") -> tuple[Settings | None, dict, list[Problem]]:
    """Validate a preset dict. Returns (settings, header, problems); every problem is listed, none dropped."""
    if not isinstance(data, dict):
        return None, {}, [(source, Msg("config.not_object"))]
    try:
        header = Preset.model_validate(data)
    except ValidationError as err:
        return None, {}, problems_from_validation_error(err)
    settings, problems = validate_settings(header.settings)
    return settings, header.model_dump(exclude={"settings"}), problems


MAX_PRESET_BYTES = 1_000_000  # a preset is a few KB; a 50 MB one was once echoed back to the page whole
MAX_PRESET_DEPTH = 16  # settings nest three levels; 100,000 levels once exhausted Python's recursion


def _depth(value, level: int = 0) -> int:
    if level > MAX_PRESET_DEPTH or not isinstance(value, (dict, list)):
        return level
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, level + 1) for child in children), default=level + 1)


def load_preset(path: str | Path) -> tuple[Settings | None, dict, list[Problem]]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PRESET_BYTES + 1)
        if len(raw) > MAX_PRESET_BYTES:
            return None, {}, [(str(path), Msg("config.too_large", limit=MAX_PRESET_BYTES // 1000))]
        data = json.loads(raw.decode("utf-8-sig"))
    except FileNotFoundError:
        return None, {}, [(str(path), Msg("config.file_not_found"))]
    except json.JSONDecodeError as err:
        return None, {}, [(str(path), Msg("config.bad_json", detail=str(err)[:300]))]
    except (OSError, ValueError):  # not UTF-8, a folder, or a 5,000-digit number Python will not convert
        return None, {}, [(str(path), Msg("config.unreadable"))]
    except RecursionError:
        return None, {}, [(str(path), Msg("config.too_deep", limit=MAX_PRESET_DEPTH))]
    if _depth(data) > MAX_PRESET_DEPTH:
        return None, {}, [(str(path), Msg("config.too_deep", limit=MAX_PRESET_DEPTH))]
    return parse_preset(data, str(path))


def preset_dict(settings: Settings, description: str = "", hardware: str = "", measured: dict | None = None) -> dict:
    return {
        "studio_preset": PRESET_VERSION,
        "description": description,
        "hardware": hardware,
        "measured": measured or {},
        "settings": settings.model_dump(mode="json"),
    }


def save_preset(settings: Settings, path: str | Path, **header) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")  # write, then rename: never half a preset on disk
    tmp.write_text(json.dumps(preset_dict(settings, **header), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def remote_code_refusal(settings: "Settings", allowed_here: bool) -> Msg | None:
    """A preset or run may ask to run the model's own code; it does so only once the user allowed it in this
    session (the form's switch, or --trust-remote-code): a file never switches it on by itself."""
    if settings.model.trust_remote_code and not allowed_here:
        return Msg("train.remote_code_resume")
    return None
