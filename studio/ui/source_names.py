"""How the Data tab's boxes name their sources: the demo, the blind votes collected on each run, and an upload by
its file (Gradio keeps an upload in a folder named by a 64-hex hash, which is no name; the value stays the path)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.core import config
from studio.core.paths import inside, upload_dir
from studio.data import preference
from .text import lang, render, tr


def use_upload(file_path: str | None, current: str, request: gr.Request = None):
    # Gradio hands us its own copy of the upload; the user's original file is never touched.
    if not file_path:
        return current
    return gr.update(value=file_path, choices=source_choices(lang(request), file_path))


def use_mix_upload(file_path: str | None, current: str, request: gr.Request = None):
    if not file_path:
        return current
    return gr.update(value=file_path, choices=[config.DEMO_DATA, uploaded_choice(file_path, lang(request))])


def uploaded_choice(path: str, language: str) -> tuple[str, str]:
    """An upload named by its file: Gradio keeps it in a folder named by a 64-hex hash, which is no name."""
    return tr("data.uploaded_name", language, name=Path(path).name), path


def source_choices(language: str, current: str | None = None) -> list:
    """The dataset box's choices: the demo data, the blind votes collected on each run (DPO / KTO), and the file
    uploaded into it, named by its file."""
    voted = [(render(label, language), path) for label, path in preference.vote_sources()]
    uploaded = [uploaded_choice(current, language)] if current and inside(current, upload_dir()) else []
    return [config.DEMO_DATA, *voted, *uploaded]


def data_sources(dataset_path: str | None = None, request: gr.Request = None):
    return gr.update(choices=source_choices(lang(request), dataset_path))
