"""The Train tab's plots as frames: the loss curves (train, smoothed, validation), the learning rate, and the
preference or reward series, with typed columns and series named in the reader's language."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from studio.training import history
from .text import tr


def typed_frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Explicit dtypes: an empty first frame would otherwise be 'object' and the plot would keep a nominal axis."""
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


LOSS_COLUMNS = {"step": "int64", "loss": "float64", "series": "str"}


SERIES = ("train", "train (smoothed)", "validation")
SERIES_KEYS = {"train": "series.train", "train (smoothed)": "series.smoothed", "validation": "series.validation"}


def series_name(series: str, language: str) -> str:
    """'train' or, when runs are compared, 'run-1: train', in the reader's language."""
    run, sep, name = series.rpartition(": ")
    return run + sep + tr(SERIES_KEYS[name], language) if name in SERIES_KEYS else series


def loss_frame(metrics: list[dict], language: str = "en") -> pd.DataFrame:
    """Every frame names all three series: Gradio's line plot keeps the colour categories of the first frame it
    draws, so a series that appears later (train loss after the baseline evaluation) would never be drawn.
    A one-point placeholder draws nothing."""
    rows = history.loss_rows(metrics)
    if rows:
        present = {r["series"] for r in rows}
        rows += [{**rows[0], "series": s} for s in SERIES if s not in present]
    return translated_series(typed_frame(rows, LOSS_COLUMNS), language)


def translated_series(frame: pd.DataFrame, language: str) -> pd.DataFrame:
    frame["series"] = [series_name(s, language) for s in frame["series"]]
    return frame


PREFERENCE_COLUMNS = {"step": "int64", "value": "float64", "series": "str"}
PREFERENCE_SERIES_KEYS = tuple(f"series.{name}" for name in (*history.PREFERENCE_SERIES.values(),
                                                             *history.PRACTICE_SERIES.values()))


def preference_frame(metrics: list[dict], language: str = "en"):
    """The rewards plot's rows (DPO / KTO: margin and accuracy; GRPO: its rewards) with their series named in the
    reader's language; hidden for an SFT run."""
    rows = history.preference_rows(metrics)
    if not rows:
        return gr.update(visible=False)
    present = {r["series"] for r in rows}  # every series from the first frame on (see loss_frame)
    if not history.is_practice(metrics):  # GRPO logs each of its series from the first step on
        rows += [{**rows[0], "series": s} for s in history.PREFERENCE_SERIES.values() if s not in present]
    frame = typed_frame(rows, PREFERENCE_COLUMNS)
    frame["series"] = [tr(f"series.{s}", language) for s in frame["series"]]
    title = tr("train.practice" if history.is_practice(metrics) else "train.preference", language)
    return gr.update(value=frame, visible=True, title=title)


def lr_frame(metrics: list[dict]) -> pd.DataFrame:
    rows = [{"step": m["step"], "learning_rate": m["learning_rate"]} for m in metrics if m.get("learning_rate")]
    return typed_frame(rows, {"step": "int64", "learning_rate": "float64"})
