"""Export tab: a run's preset and the commands that repeat it without the studio."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from .. import export
from ..train import list_runs
from .text import t


def show_export(run_dir: str):
    if not run_dir or not (Path(run_dir) / "preset.json").exists():
        return "Pick a run first.", ""
    preset = json.loads((Path(run_dir) / "preset.json").read_text(encoding="utf-8"))
    return export.headless_commands(run_dir), json.dumps(preset, indent=2, ensure_ascii=False)


def build() -> None:
    run = gr.Dropdown(choices=[r["run_dir"] for r in list_runs()], label=t("export.run"), allow_custom_value=True)
    show = gr.Button(t("export.show"), variant="primary")
    commands = gr.Code(label=t("export.commands"), language="shell")
    preset = gr.Code(label=t("export.preset"), language="json")
    show.click(show_export, run, [commands, preset], api_name="show_export")
    run.focus(lambda: gr.update(choices=[r["run_dir"] for r in list_runs()]), None, run, api_name="export_runs")
