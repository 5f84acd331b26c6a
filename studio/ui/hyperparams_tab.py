"""Hyperparameters tab: the settings form (beginner fields first), the hardware plan, presets in and out."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr

from .. import config
from .forms import build_section_form
from .text import t


def hardware_text(precision: str, checkpointing: str) -> str:
    from .. import hardware

    facts = hardware.detect()
    plan = hardware.plan(facts, precision, checkpointing)
    return (f"**{plan['hardware']}**\n\n- Precision **{plan['precision']}**: {plan['precision_reason']}\n"
            f"- Gradient checkpointing **{'on' if plan['gradient_checkpointing'] else 'off'}**: "
            f"{plan['gradient_checkpointing_reason']}\n- QLoRA: {hardware.qlora_available(facts)[1]}")


def check_text(settings: config.Settings | None, problems: list) -> str:
    if problems:
        return "**Fix these before training:**\n" + "\n".join(f"- `{w}`: {m}" for w, m in problems)
    return (f"Settings are valid. Effective batch size: **{settings.effective_batch_size()}** "
            f"(batch {settings.training.per_device_train_batch_size} x accumulation "
            f"{settings.training.gradient_accumulation_steps}).")


def build(defaults):
    """Returns (form components by field name, hardware markdown, wire). `wire(full_form)` connects the check
    and preset buttons once every tab has built its part of the form (presets cover all settings)."""
    form = {}
    form.update(build_section_form("model", defaults, beginner_only=True))
    form.update(build_section_form("method", defaults, beginner_only=True))
    form.update(build_section_form("training", defaults, beginner_only=True))
    with gr.Accordion(t("hyper.advanced"), open=False):
        form.update(build_section_form("model", defaults, beginner_only=False))
        form.update(build_section_form("method", defaults, beginner_only=False))
        form.update(build_section_form("training", defaults, beginner_only=False))
    hardware_md = gr.Markdown(label=t("hyper.hardware"))
    check = gr.Button(t("hyper.check"))
    status = gr.Markdown(label=t("hyper.status"))
    with gr.Row():
        preset_in = gr.File(label=t("hyper.preset_file"), file_types=[".json"], type="filepath")
        import_btn = gr.Button(t("hyper.import"))
        export_btn = gr.Button(t("hyper.export"))
        preset_out = gr.File(label=t("hyper.export"), interactive=False)
    return form, hardware_md, lambda full_form: _wire(full_form, check, status, preset_in, import_btn, export_btn,
                                                      preset_out)


def _wire(all_form: dict, check, status, preset_in, import_btn, export_btn, preset_out) -> None:
    names = list(all_form)
    components = [all_form[n] for n in names]

    def check_settings(*values):
        settings, problems = config.settings_from_flat(dict(zip(names, values)))
        return check_text(settings, problems)

    def export_preset(*values):
        settings, problems = config.settings_from_flat(dict(zip(names, values)))
        if problems:
            return None, check_text(None, problems)
        path = Path(tempfile.mkdtemp(prefix="studio-preset-")) / "studio-preset.json"
        config.save_preset(settings, path, description="Exported from Fine-tuning Studio")
        return str(path), "Preset exported: it reproduces this run with `python launch.py train --preset FILE`."

    def import_preset(path):
        if not path:
            return [gr.update() for _ in names] + ["Choose a preset file first."]
        settings, _, problems = config.load_preset(path)
        if problems:
            return [gr.update() for _ in names] + [check_text(None, problems)]
        values = config.flat_values(settings)
        return [values[n] for n in names] + ["Preset loaded."]

    check.click(check_settings, components, status, api_name="check_settings")
    export_btn.click(export_preset, components, [preset_out, status], api_name="export_preset")
    import_btn.click(import_preset, preset_in, components + [status], api_name="import_preset")
