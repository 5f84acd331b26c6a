"""Settings classes -> Gradio components, and the one shape every tab has.

Adding a knob to studio/config.py adds it to the form. Every tab module has `build(ctx: TabContext) -> TabParts`:
it lays out its components inside its tab and returns the settings fields it shows (if any) and `wire(form)`,
which app.py calls once all tabs are built, with every settings component in declaration order.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

from ..config import SECTIONS, Settings, settings_from_flat
from ..paths import settings_refusals
from .text import t


@dataclass
class TabContext:
    demo: gr.Blocks
    tab: gr.Tab
    defaults: Settings


@dataclass
class TabParts:
    form: dict[str, gr.components.Component] = field(default_factory=dict)  # settings fields, by name
    wire: Callable[[dict], None] = lambda form: None  # events that need the whole form


def component_for(name: str, info, value):
    """Choices become dropdowns, numbers number inputs with their limits, flags checkboxes."""
    label, help_text = t(f"{name}.label"), t(f"{name}.help")
    annotation = info.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return gr.Dropdown(choices=list(typing.get_args(annotation)), value=value, label=label, info=help_text)
    if annotation is bool:
        return gr.Checkbox(value=value, label=label, info=help_text)
    if annotation in (int, float):
        # No minimum / maximum on the component: Gradio would refuse an out-of-range number with its own English
        # message; the settings' validation names the field and the limit in the reader's language instead.
        step = 1 if annotation is int else None
        return gr.Number(value=value, label=label, info=help_text, precision=0 if annotation is int else None,
                         step=step)
    if suggestions := (info.json_schema_extra or {}).get("suggestions"):
        return gr.Dropdown(choices=suggestions, value=value, label=label, info=help_text, allow_custom_value=True)
    return gr.Textbox(value=value, label=label, info=help_text)


def build_section_form(section: str, defaults, beginner_only: bool | None = None) -> dict[str, gr.components.Component]:
    """Components for one settings section. beginner_only: True -> beginner fields, False -> the rest."""
    components = {}
    cls = SECTIONS[section]
    for name, info in cls.model_fields.items():
        is_beginner = bool((info.json_schema_extra or {}).get("beginner"))
        if beginner_only is not None and is_beginner != beginner_only:
            continue
        components[name] = component_for(name, info, getattr(getattr(defaults, section), name))
    return components


def settings_from_form(names: list[str], values) -> tuple[Settings | None, list]:
    """The form's values as Settings, with a data file or model folder outside the studio's folders reported
    beside the other problems, so nothing reads it."""
    settings, problems = settings_from_flat(dict(zip(names, values)))
    if settings is not None:
        problems += settings_refusals(settings)
    return (None if problems else settings), problems
