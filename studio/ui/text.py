"""English and Chinese on the page, following the browser's language.

Labels and help go through Gradio's own i18n (`gr.I18n`): settings fields bring their label, help and advice
(studio/config.py metadata, keyed `<field>.label` / `<field>.help`); screen words and every message the server
computes live once in studio/text.py. A callback renders what it computed in the language of the browser that
asked (`lang(request)`: its Accept-Language, the same preference the page's i18n follows).
"""

from __future__ import annotations

import functools
import inspect

import gradio as gr
import pandas as pd

from ..config import all_fields
from ..text import TEXT, language_of, render, tr  # noqa: F401  (re-exported for the tabs)


def field_help(info, lang: str) -> str:
    extra = info.json_schema_extra or {}
    if lang == "zh":
        advice = f" 建议：{extra['advice_zh']}" if extra.get("advice_zh") else ""
        return extra["help_zh"] + advice
    advice = f" Advice: {extra['advice']}" if extra.get("advice") else ""
    return info.description + advice


def translations() -> dict[str, dict[str, str]]:
    en = {key: pair[0] for key, pair in TEXT.items()}
    zh = {key: pair[1] for key, pair in TEXT.items()}
    for _, name, info in all_fields():
        extra = info.json_schema_extra or {}
        en[f"{name}.label"], zh[f"{name}.label"] = extra["label"], extra["label_zh"]
        en[f"{name}.help"], zh[f"{name}.help"] = field_help(info, "en"), field_help(info, "zh")
    return {"en": en, "zh": zh, "zh-CN": zh}


def field_labels(language: str) -> dict[str, str]:
    """Advice names a setting by the label the user sees on the form."""
    key = "label_zh" if language == "zh" else "label"
    return {name: (info.json_schema_extra or {})[key] for _, name, info in all_fields()}


I18N = gr.I18n(**translations())


def t(key: str):
    return I18N(key)


def lang(request: gr.Request | None) -> str:
    """'zh' or 'en' for the browser behind this event; API clients that name no language get English."""
    headers = getattr(request, "headers", None) or {}
    return language_of(headers.get("accept-language"))


def headers(keys: list[str], language: str = "en") -> list[str]:
    """Column headers in the reader's language; a header that is a name ("p95") stays as it is."""
    return [tr(k, language) if k in TEXT else k for k in keys]


def frame(rows: list, keys: list[str], language: str):
    """A table with headers and any messages in its cells in the reader's language."""
    return pd.DataFrame([[render(v, language) for v in r] for r in rows], columns=headers(keys, language))


def chart_titles(title_key: str, x_key: str, y_key: str, language: str, color_key: str | None = None):
    """A chart's title, axis titles (and legend title) in the reader's language: an update sent once on page load,
    which the data frames sent later keep. Charts are built with show_label=False and named by this title instead: Gradio sizes a chart as if its block
    label took no room, which pushed legends and x-axis titles out of the box."""
    titles = dict(title=tr(title_key, language), x_title=tr(x_key, language), y_title=tr(y_key, language))
    return gr.update(**titles, **({"color_title": tr(color_key, language)} if color_key else {}))


def for_form(fn, count: int, progress: bool = False):
    """`fn(*values, request=..., [progress=...])` with an explicit signature of `count` inputs: Gradio passes the
    request (and a progress tracker) only to parameters it can see, and a `*values` signature shows none."""
    params = [inspect.Parameter(f"value_{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(count)]
    params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request))
    if progress:
        params.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))

    def split(args, kwargs):
        extra = {"request": kwargs.pop("request", None)}
        if progress:
            extra["progress"] = kwargs.pop("progress", None)
        for name, value in zip([p.name for p in params[count:]], args[count:]):
            extra[name] = value
        return args[:count], extra

    if inspect.isgeneratorfunction(fn):  # Gradio streams only from a function that is itself a generator
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values, extra = split(args, kwargs)
            yield from fn(*values, **extra)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            values, extra = split(args, kwargs)
            return fn(*values, **extra)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {"request": gr.Request}  # Gradio reads type hints, not the signature
    return wrapper
