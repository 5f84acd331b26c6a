"""Hyperparameters tab: the settings form (beginner fields first), the hardware plan, presets in and out."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from .. import advice, config
from .forms import build_section_form
from .text import t


def hardware_view(precision: str, checkpointing: str, method: str, packing: str = "auto"):
    """The hardware plan, and the method dropdown without QLoRA where it cannot run."""
    from .. import hardware

    choices = ["lora", "qlora", "full", "freeze"]
    if not hardware.qlora_available(_facts())[0]:
        choices.remove("qlora")
    value = method if method in choices else "lora"
    return hardware_text(precision, checkpointing, packing), gr.update(choices=choices, value=value)


def hardware_text(precision: str, checkpointing: str, packing: str = "auto") -> str:
    from .. import hardware

    facts = hardware.detect()
    plan = hardware.plan(facts, precision, checkpointing, packing=packing)
    return (f"**{plan['hardware']}**\n\n- Precision **{plan['precision']}**: {plan['precision_reason']}\n"
            f"- Gradient checkpointing **{'on' if plan['gradient_checkpointing'] else 'off'}**: "
            f"{plan['gradient_checkpointing_reason']}\n- Packing **{'on' if plan['packing'] else 'off'}**: "
            f"{plan['packing_reason']}\n- QLoRA: {hardware.qlora_available(facts)[1]}")


def _facts():
    """Read afresh each time (a few file reads once torch is imported): free memory changes as models load."""
    from .. import hardware

    return hardware.detect()


@functools.lru_cache(maxsize=8)
def _shape(model: str):
    from ..heavy import ensure_imported

    ensure_imported()
    from transformers import AutoConfig

    from ..models import resolve_model_path

    try:
        return advice.ModelShape.from_config(AutoConfig.from_pretrained(resolve_model_path(model, lambda _: None)))
    except Exception:  # an unreachable hub id or an unknown architecture: advise without model facts
        return None


def situation_for(settings: config.Settings) -> advice.Situation:
    from . import data_tab

    d = settings.data
    try:
        report = data_tab.get_report(d.dataset_path, d.dataset_format, d.column_mapping,
                                     settings.model.model_name_or_path)
    except Exception:
        report = None
    return advice.build_situation(settings, report, _facts(), _shape(settings.model.model_name_or_path))


LEVEL_WORD = {"error": "Cannot run", "warning": "Check", "info": "Tip"}


def advice_markdown(items: list[advice.Advice]) -> str:
    if not items:
        return "No advice: these settings suit your data and this machine."
    return "\n".join(f"- *{LEVEL_WORD[a.level]}* **{a.field}**: {a.message}"
                     + (f" Suggested: `{a.suggested}`." if a.suggested is not None else "") for a in items)


def estimate_markdown(settings: config.Settings, situation: advice.Situation) -> str:
    from ..data import split_sizes
    from ..hardware import choose_precision

    t, m = settings.training, settings.method
    lines = [f"- Effective batch: **{settings.effective_batch_size(situation.devices)}** "
             f"({t.per_device_train_batch_size} x {t.gradient_accumulation_steps} x {situation.devices} device)"]
    if situation.rows is not None:
        train_rows = split_sizes(situation.rows, settings.data.validation_share, settings.data.test_share)[0]
        per_epoch = advice.steps_per_epoch(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps)
        total = advice.total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                                   t.num_train_epochs, t.max_steps)
        lines.append(f"- {train_rows} training rows: **{per_epoch}** steps per epoch, **{total}** steps in all")
    if situation.parameters is not None and situation.facts is not None:
        from ..advice import ModelShape

        shape = _shape(settings.model.model_name_or_path) or ModelShape(situation.parameters, 1, 1, 1, 1)
        precision = choose_precision(situation.facts)[0] if t.precision == "auto" else t.precision
        parts = advice.estimate_memory_gb(shape, m.finetuning_type, precision, t.per_device_train_batch_size,
                                          t.max_length, t.gradient_checkpointing == "on", m.r,
                                          m.freeze_trainable_layers, m.lora_dropout)
        lines.append(f"- Memory at the cutoff: weights {parts['weights']:.1f} GB + optimizer and gradients "
                     f"{parts['optimizer_and_gradients']:.1f} GB + activations {parts['activations']:.1f} GB + "
                     f"logits {parts['logits']:.1f} GB. "
                     + advice.fit_message(parts["total"], situation.facts.free_memory_gb, m.finetuning_type))
    return "\n".join(lines)


PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"


def shipped_presets() -> list[str]:
    return sorted(p.name for p in PRESETS_DIR.glob("*.json"))


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
    with gr.Row():
        reset = gr.Button(t("hyper.reset"))
        check = gr.Button(t("hyper.check"))
        probe = gr.Button(t("hyper.probe"))
    gr.Markdown(t("hyper.advice_title"))
    advice_md = gr.Markdown()
    gr.Markdown(t("hyper.estimate_title"))
    estimate_md = gr.Markdown()
    time_md = gr.Markdown()
    hardware_md = gr.Markdown(label=t("hyper.hardware"))
    status = gr.Markdown(label=t("hyper.status"))
    with gr.Row():
        shipped = gr.Dropdown(choices=shipped_presets(), label=t("hyper.shipped"), allow_custom_value=False)
        preset_in = gr.File(label=t("hyper.preset_file"), file_types=[".json"], type="filepath", elem_id="preset-file")
        import_btn = gr.Button(t("hyper.import"))
        export_btn = gr.Button(t("hyper.export"))
        preset_out = gr.File(label=t("hyper.export"), interactive=False)
    buttons = dict(check=check, reset=reset, probe=probe, shipped=shipped, preset_in=preset_in, import_btn=import_btn,
                   export_btn=export_btn, preset_out=preset_out)
    views = dict(status=status, advice_md=advice_md, estimate_md=estimate_md, time_md=time_md)
    return form, hardware_md, lambda full_form: _wire(full_form, **buttons, **views)


def _wire(all_form: dict, check, reset, probe, shipped, preset_in, import_btn, export_btn, preset_out, status,
          advice_md, estimate_md, time_md) -> None:
    names = list(all_form)
    components = [all_form[n] for n in names]

    def update_advice(*values):
        settings, problems = config.settings_from_flat(dict(zip(names, values)))
        if problems:
            return check_text(None, problems), ""
        situation = situation_for(settings)
        return advice_markdown(advice.advise(situation)), estimate_markdown(settings, situation)

    def reset_to_recommended(*values):
        current = dict(zip(names, values))
        settings, problems = config.settings_from_flat(current)
        if problems:
            return [gr.update() for _ in names] + [check_text(None, problems)]
        recommended = advice.recommended_values(situation_for(settings))
        return [recommended.get(n, current[n]) for n in names] + ["Recommended values restored."]

    def measure_time(*values, progress=gr.Progress()):
        from ..train import probe_seconds_per_step

        settings, problems = config.settings_from_flat(dict(zip(names, values)))
        if problems:
            return check_text(None, problems)
        situation = situation_for(settings)
        progress(0.1, desc="Running a few training steps on this machine...")
        seq_len = settings.training.max_length
        from . import data_tab

        try:
            report = data_tab.get_report(settings.data.dataset_path, settings.data.dataset_format,
                                         settings.data.column_mapping, settings.model.model_name_or_path)
            if report.lengths is not None:  # batches are padded to their longest member, roughly the p75
                seq_len = min(seq_len, int(np.percentile(report.lengths.total, 75)))
        except Exception:
            pass
        seconds = probe_seconds_per_step(settings, max(seq_len, 16), facts=_facts())
        if situation.rows is None:
            return f"One optimizer step takes about {seconds:.1f} s here."
        from ..data import split_sizes

        t = settings.training
        train_rows = split_sizes(situation.rows, settings.data.validation_share, settings.data.test_share)[0]
        steps = advice.total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                                   t.num_train_epochs, t.max_steps)
        return "Estimated training time: " + advice.time_estimate_text(seconds, steps)

    for component in components:
        component.change(update_advice, components, [advice_md, estimate_md], api_name=False,
                         show_progress="hidden", trigger_mode="always_last")
    gr.on([check.click], update_advice, components, [advice_md, estimate_md], api_name="advice")
    reset.click(reset_to_recommended, components, components + [status], api_name="reset_to_recommended")
    probe.click(measure_time, components, time_md, api_name="estimate_time")

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
        settings, header, problems = config.load_preset(path)
        if problems:
            return [gr.update() for _ in names] + [check_text(None, problems)]
        values = config.flat_values(settings)
        about = f" {header['description']}" if header.get("description") else ""
        return [values[n] for n in names] + ["Preset loaded." + about]

    def load_shipped(name):
        return import_preset(str(PRESETS_DIR / name) if name else None)

    check.click(check_settings, components, status, api_name="check_settings")
    export_btn.click(export_preset, components, [preset_out, status], api_name="export_preset")
    import_btn.click(import_preset, preset_in, components + [status], api_name="import_preset")
    shipped.input(load_shipped, shipped, components + [status], api_name="load_shipped_preset")
