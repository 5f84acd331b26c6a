"""The page in the browser's language.

Labels and help go through Gradio's own i18n (`gr.I18n`), fed from the same catalogues as the server's messages
(studio/core/locales/<code>.json, see studio/core/text.py); a settings field brings its label and help keyed
`<field>.label` / `<field>.help`. A callback renders what it computed in the language of the browser that asked
(`lang(request)`: its Accept-Language, the same preference the page's i18n follows).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from studio.core.config import all_fields, field_text
from studio.core.text import CATALOGUES, TEXT, language_of, render, text_in, tr  # noqa: F401  (re-exported for the tabs)


def field_help(name: str, lang: str) -> str:
    help_text, advice = field_text(name, "help", lang), field_text(name, "advice", lang)
    return tr("field.help_with_advice", lang, help=help_text, advice=advice) if advice else help_text


def translations() -> dict[str, dict[str, str]]:
    """Every catalogue with the fields' labels and help, under its code and the browser codes it answers to."""
    out = {}
    for code, catalogue in CATALOGUES.items():
        words = {key: text_in(key, code) for key in TEXT}
        for _, name, _ in all_fields():
            words[f"{name}.label"], words[f"{name}.help"] = field_text(name, "label", code), field_help(name, code)
        aliases = [a.strip() for a in words.get("locale.aliases", "").split(",") if a.strip()]
        out.update({alias: words for alias in [code, *aliases]})
    return out


def field_labels(language: str) -> dict[str, str]:
    """Advice names a setting by the label the user sees on the form."""
    return {name: field_text(name, "label", language) for _, name, _ in all_fields()}


I18N = gr.I18n(**translations())


def t(key: str):
    return I18N(key)


def lang(request: gr.Request | None) -> str:
    """The code of the catalogue for the browser behind this event ('zh', 'en', ...); API clients that name no
    language get the source language."""
    headers = getattr(request, "headers", None) or {}
    return language_of(headers.get("accept-language"))


def headers(keys: list[str], language: str = "en") -> list[str]:
    """Column headers in the reader's language; a header that is a name ("p95") stays as it is."""
    return [tr(k, language) if k in TEXT else k for k in keys]


def frame(rows: list, keys: list[str], language: str):
    """A table with headers and any messages in its cells in the reader's language."""
    return pd.DataFrame([[render(v, language) for v in r] for r in rows], columns=headers(keys, language))


# One colour per series in every plot and every run: Gradio otherwise colours series in the order the first frame
# names them, so "validation" was orange in one run and blue in the next.
SERIES_COLOURS = {"series.train": "#2563eb", "series.smoothed": "#93c5fd", "series.validation": "#f97316",
                  "series.margin": "#2563eb", "series.margin_validation": "#f97316",
                  "series.accuracy": "#16a34a", "series.accuracy_validation": "#dc2626",
                  "series.reward": "#2563eb", "series.reward_spread": "#93c5fd", "series.reward_answer_match": "#16a34a",
                  "series.reward_answer_exact": "#15803d", "series.reward_format": "#f97316",
                  "series.reward_json_valid": "#9333ea", "series.reward_length": "#dc2626",
                  "series.reward_language": "#0d9488"}


def chart_titles(title_key: str, x_key: str, y_key: str, language: str, color_key: str | None = None,
                 series: tuple[str, ...] = ()):
    """A chart's title, axis titles (and legend title, and the fixed colour of each of its `series` keys) in the
    reader's language: an update sent once on page load, which the data frames sent later keep. Charts are built
    with show_label=False and named by this title instead: Gradio sizes a chart as if its block label took no room,
    which pushed legends and x-axis titles out of the box."""
    titles = dict(title=tr(title_key, language), x_title=tr(x_key, language), y_title=tr(y_key, language))
    if color_key:
        titles["color_title"] = tr(color_key, language)
    if series:
        titles["color_map"] = {tr(key, language): SERIES_COLOURS[key] for key in series}
    return gr.update(**titles)

