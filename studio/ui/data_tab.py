"""Data tab: choose a file (or the demo data), detect its format, list its problems, preview it."""

from __future__ import annotations

import gradio as gr

from .. import data
from .forms import build_section_form
from .text import t


def load_data(dataset_path: str, dataset_format: str):
    result = data.load_dataset_file(dataset_path or "demo", dataset_format or "auto")
    problems = [[where, message] for where, message in result.problems[:500]]
    return data.summary_text(result), problems, data.preview_rows(result)


def use_upload(file_path: str | None, current: str) -> str:
    # Gradio hands us its own copy of the upload; the user's original file is never touched.
    return file_path or current


def build(defaults) -> dict:
    form = build_section_form("data", defaults)
    upload = gr.File(label=t("data.upload"), file_types=[".json", ".jsonl", ".csv", ".parquet"], type="filepath")
    load = gr.Button(t("data.load"), variant="primary")
    summary = gr.Markdown(label=t("data.summary"))
    problems = gr.Dataframe(headers=["where", "problem"], label=t("data.problems"), wrap=True, max_height=250)
    preview = gr.Dataframe(headers=["row", "conversation"], label=t("data.preview"), wrap=True, max_height=400)
    upload.upload(use_upload, [upload, form["dataset_path"]], form["dataset_path"], api_name="use_upload")
    load.click(load_data, [form["dataset_path"], form["dataset_format"]], [summary, problems, preview],
               api_name="load_data")
    return form
