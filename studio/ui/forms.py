"""Settings classes -> Gradio components, and the one shape every tab has.

Adding a knob to studio/core/config.py adds it to the form. Every tab module has `build(ctx: TabContext) -> TabParts`:
it lays out its components inside its tab and returns the settings fields it shows (if any) and `wire(form)`,
which app.py calls once all tabs are built, with every settings component by field name.

Events take the form by name: `inputs_kwargs=form` hands the function the values as keyword arguments named after
the fields (`def check(request=None, **values)`), and the API names its parameters the same way, so a script calls
`check_settings(learning_rate=2e-4)` and declaring a new field shifts nobody's values. Events that fill the form
return `{component: value}` (`updates`), never a list in declaration order.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

from studio.core.config import SECTIONS, Settings, applies, conditional_fields, flat_values, optional_type

from studio.core.paths import settings_refusals
from studio.core.settings_input import form_value, settings_from_flat
from .text import t


@dataclass
class TabContext:
    demo: gr.Blocks
    tab: gr.Tab
    defaults: Settings
    tabs: object = None  # the gr.Tabs, for a button that takes the user to another tab
    offers: dict = field(default_factory=dict)  # components a tab lets the others drive (filled while building)


@dataclass
class TabParts:
    form: dict[str, gr.components.Component] = field(default_factory=dict)  # settings fields, by name
    wire: Callable[[dict], None] = lambda form: None  # events that need the whole form


def component_for(name: str, info, value):
    """Choices become dropdowns, numbers number inputs with their limits, flags checkboxes."""
    label, help_text = t(f"{name}.label"), t(f"{name}.help")
    annotation, _ = optional_type(info.annotation)  # `float | None`: a number box, empty meaning None
    value = form_value(value)
    if typing.get_origin(annotation) is typing.Literal:
        return gr.Dropdown(choices=list(typing.get_args(annotation)), value=value, label=label, info=help_text)
    if typing.get_origin(annotation) is list and typing.get_origin(typing.get_args(annotation)[0]) is typing.Literal:
        # Several of a few choices (GRPO's rewards): ticked boxes, by name.
        return gr.CheckboxGroup(choices=list(typing.get_args(typing.get_args(annotation)[0])), value=value,
                                label=label, info=help_text)
    if typing.get_origin(annotation) is list:
        # A list of records (the files of a mix): the tab that owns it builds the controls that edit it; the
        # value travels with the form, and API callers pass the list as JSON.
        return gr.JSON(value=value, label=label, visible=False, elem_id=f"field-{name}")
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
    components, conditional = {}, conditional_fields()
    cls = SECTIONS[section]
    for name, info in cls.model_fields.items():
        is_beginner = bool((info.json_schema_extra or {}).get("beginner"))
        if beginner_only is not None and is_beginner != beginner_only:
            continue
        components[name] = component_for(name, info, getattr(getattr(defaults, section), name))
        if name in conditional:  # a DPO-only or freeze-only field, hidden while it does not apply
            components[name].visible = applies(name, flat_values(defaults))
    return components


def shown_when_applies(form: dict) -> None:
    """Each field with an `applies` condition (config.knob) shown or hidden as the stage and method change."""
    conditional = conditional_fields()
    drivers = sorted({field for condition in conditional.values() for field in condition})
    targets = [form[name] for name in conditional if name in form]

    def visibility(**values):
        return {form[name]: gr.update(visible=applies(name, values)) for name in conditional if name in form}

    for driver in drivers:
        form[driver].change(visibility, inputs_kwargs={d: form[d] for d in drivers}, outputs=targets,
                            api_name=False, queue=False)


def updates(form: dict[str, gr.components.Component], values: dict) -> dict:
    """New values for the form, by field name, as the {component: value} Gradio applies to its outputs."""
    return {form[name]: form_value(value) for name, value in values.items() if name in form}


def form_settings(values: dict) -> tuple[Settings | None, list]:
    """The form as settings, then whether the files it names may be read: two steps, both reported together."""
    settings, problems = settings_from_flat(values)
    if settings is not None:
        problems += settings_refusals(settings)
    return (None if problems else settings), problems


def takes_form(form: dict):
    """For a handler `fn(..., **values)` given the form with `inputs_kwargs=form`: its signature names each field
    (default None), so the API documents every field by name and a field whose form value may be empty (an
    optional knob) is still optional for a script, which Gradio decides from the signature's defaults."""
    def named(fn):
        fixed = [p for p in inspect.signature(fn).parameters.values()
                 if p.kind is not p.VAR_KEYWORD and p.name not in form]  # (named already by an earlier build)
        fields = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in form]
        fn.__signature__ = inspect.Signature(fixed + fields)
        return fn
    return named


def filled(**values) -> dict:
    """The values an event handler was given, each one not given (None) the setting's own default: a handler
    never re-declares a default (an API caller who leaves a parameter out gets what a new form shows)."""
    defaults = flat_values(Settings())
    return {name: defaults[name] if value is None else value for name, value in values.items()}


def recommended_value(recommended, low: float, high: float):
    """The report's recommendation put into its field; anything else (none yet, a value a caller made up) leaves
    the field as the user set it rather than echoing the value back."""
    if isinstance(recommended, (int, float)) and not isinstance(recommended, bool) and low <= recommended <= high:
        return recommended
    return gr.update()
