"""Settings from what people type: `--set name=value` on the command line, and the values of the form or an API
call by field name, each made the field's type (a number box's 4.0 for an int field, an empty optional box as
None) before the strict validation judges it; every problem is named by its field."""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import ValidationError

from .config import SECTIONS, Problem, Settings, field_section, format_mapping, optional_type
from .text import Msg
from .validation import validate_settings


def parse_value(text: str) -> Any:
    """CLI values: JSON where it parses (numbers, true/false), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(settings: Settings, assignments: list[str],
                    sections: tuple[str, ...] = tuple(SECTIONS)) -> tuple[Settings | None, list[Problem]]:
    """Apply `name=value` or `section.name=value` to fields of `sections`; all problems are reported together."""
    data = settings.model_dump()
    problems: list[Problem] = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            problems.append((item, Msg("config.expected_assignment")))
            continue
        section, _, name = key.rpartition(".")
        try:
            section = section or field_section(name)
        except KeyError:
            problems.append((key, Msg("config.unknown")))
            continue
        if section not in sections or section not in data or name not in data[section]:
            problems.append((key, Msg("config.unknown")))
            continue
        # A text field takes the text as typed: `system_prompt=42` is the words "42", a JSON schema stays text.
        text_field = SECTIONS[section].model_fields[name].annotation is str
        value = raw if text_field else parse_value(raw)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(data[section][name], float):
            value = float(value)  # `--set num_train_epochs=3` means 3.0
        data[section][name] = value
    settings, invalid = validate_settings(data, prefix="--set")  # the values given, checked beside the names
    problems += invalid
    return (None if problems else settings), problems


def form_value(value: Any) -> Any:
    """A setting as its form component shows it: a column mapping as the text the user types."""
    return format_mapping(value) if isinstance(value, dict) else value


def _form_to_field(info, value):
    """What a form component hands back, as the field's type: number inputs give 4.0 for 4, an empty optional
    box means None. Anything else is left for the strict validation to judge."""
    kind, optional = optional_type(info.annotation)
    if optional and (value in ("", None) or (value == 0 and not _allowed(info, 0))):
        # Gradio's number box sends 0 for a box left empty from the start (a cleared one sends None); where 0 is
        # outside the field's limits it can only mean that. Remove when Gradio sends None for both.
        return None
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _allowed(info, value) -> bool:
    """Whether `value` is within a field's limits."""
    from pydantic import TypeAdapter  # deferred: only forms with optional numbers need it

    kind, _ = optional_type(info.annotation)
    if not info.metadata:
        return True
    try:
        TypeAdapter(typing.Annotated[(kind, *info.metadata)]).validate_python(kind(value))
        return True
    except (ValidationError, TypeError, ValueError):
        return False


def settings_from_flat(flat: dict[str, Any], base: Settings | None = None) -> tuple[Settings | None, list[Problem]]:
    """Values by field name (a form, an API call) as Settings, the fields not given from `base`; every invalid
    field is reported by its name. This is the one conversion: whether the files it names may be read is a
    separate step (`paths.settings_refusals`)."""
    data = (base or Settings()).model_dump()
    unknown = [(name, Msg("config.unknown")) for name in flat if not any(name in data[s] for s in data)]
    if unknown:
        return None, unknown
    for name, value in flat.items():
        section = field_section(name)
        data[section][name] = _form_to_field(SECTIONS[section].model_fields[name], value)
    settings, problems = validate_settings(data, prefix="")
    return settings, [(where.split(".")[1] if where.count(".") else where, message) for where, message in problems]
