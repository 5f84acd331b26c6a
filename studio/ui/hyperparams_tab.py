"""Hyperparameters tab: the settings form (beginner fields first), the hardware plan, presets in and out."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from .. import advice, config, stats
from ..jobs import JOB
from ..paths import PRESET_DOWNLOAD, source_refusal
from ..text import Msg, on_off
from .forms import build_section_form, settings_from_form
from .text import for_form, lang, render, t, tr


def hardware_view(precision: str, checkpointing: str, method: str, packing: str = "auto",
                  request: gr.Request = None):
    """The hardware plan, and the method dropdown without QLoRA where it cannot run."""
    from .. import hardware

    choices = ["lora", "qlora", "full", "freeze"]
    if not hardware.qlora_available(_facts())[0]:
        choices.remove("qlora")
    value = method if method in choices else "lora"
    return hardware_text(precision, checkpointing, packing, lang(request)), gr.update(choices=choices, value=value)


def hardware_text(precision: str, checkpointing: str, packing: str = "auto", language: str = "en") -> str:
    from .. import hardware

    facts = hardware.detect()
    plan = hardware.plan(facts, precision, checkpointing, packing=packing)
    lines = [Msg("hyper.plan_precision", value=plan["precision"], why=plan["precision_reason"]),
             Msg("hyper.plan_checkpointing", value=on_off(plan["gradient_checkpointing"]),
                 why=plan["gradient_checkpointing_reason"]),
             Msg("hyper.plan_packing", value=on_off(plan["packing"]), why=plan["packing_reason"]),
             Msg("hyper.plan_qlora", why=hardware.qlora_available(facts)[1])]
    return f"**{render(plan['hardware'], language)}**\n\n" + "\n".join(f"- {render(m, language)}" for m in lines)


def _facts():
    """Read afresh each time (a few file reads once torch is imported): free memory changes as models load."""
    from .. import hardware

    return hardware.detect()


def _shape(model: str):
    return None if source_refusal(model) else _cached_shape(model)  # advice never opens a path it may not read


@functools.lru_cache(maxsize=8)
def _cached_shape(model: str):
    from ..heavy import ensure_imported

    ensure_imported()
    from transformers import AutoConfig

    from ..models import resolve_model_path

    try:
        return advice.ModelShape.from_config(AutoConfig.from_pretrained(resolve_model_path(model, lambda _: None)))
    except Exception:  # an unreachable hub id or an unknown architecture: advise without model facts
        return None


def data_report(settings: config.Settings):
    """The data the advice reads: the file the Data tab loaded, or the built-in demo. A path typed into the
    dataset box is read only when the user presses Load (never on every keystroke)."""
    d, model = settings.data, settings.model.model_name_or_path
    report = stats.loaded_report(d.dataset_path, d.dataset_format, d.column_mapping, model)
    if report is None and d.dataset_path == config.DEMO_DATA:
        try:
            report = stats.cached_report(d.dataset_path, d.dataset_format, d.column_mapping, model)
        except Exception:
            report = None
    return report


def situation_for(settings: config.Settings) -> advice.Situation:
    return advice.build_situation(settings, data_report(settings), _facts(), _shape(settings.model.model_name_or_path))


def advice_markdown(items: list[advice.Advice], language: str = "en") -> str:
    if not items:
        return tr("advice.none", language)
    labels = field_labels(language)
    return "\n".join(f"- *{tr('level.' + a.level, language)}* **{labels.get(a.field, a.field)}**: "
                     f"{render(a.message, language)}"
                     + (" " + tr("advice.suggested", language, value=a.suggested) if a.suggested is not None else "")
                     for a in items)


def field_labels(language: str) -> dict[str, str]:
    """Advice names a setting by the label the user sees on the form."""
    key = "label_zh" if language == "zh" else "label"
    return {name: (info.json_schema_extra or {})[key] for _, name, info in config.all_fields()}


def estimate_markdown(settings: config.Settings, situation: advice.Situation, language: str = "en") -> str:
    from ..data import split_sizes
    from ..hardware import choose_precision

    t, m = settings.training, settings.method
    lines = [Msg("hyper.effective_batch", effective=settings.effective_batch_size(situation.devices),
                 batch=t.per_device_train_batch_size, accumulation=t.gradient_accumulation_steps,
                 devices=situation.devices)]
    if situation.rows is not None:
        train_rows = split_sizes(situation.rows, settings.data.validation_share, settings.data.test_share)[0]
        per_epoch = advice.steps_per_epoch(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps)
        total = advice.total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                                   t.num_train_epochs, t.max_steps)
        lines.append(Msg("hyper.steps", rows=train_rows, per_epoch=per_epoch, total=total))
    if situation.parameters is not None and situation.facts is not None:
        from ..advice import ModelShape

        shape = _shape(settings.model.model_name_or_path) or ModelShape(situation.parameters, 1, 1, 1, 1)
        precision = choose_precision(situation.facts)[0] if t.precision == "auto" else t.precision
        parts = advice.estimate_memory_gb(shape, m.finetuning_type, precision, t.per_device_train_batch_size,
                                          t.max_length, t.gradient_checkpointing == "on", m.r,
                                          m.freeze_trainable_layers, m.lora_dropout)
        lines.append(Msg("hyper.memory", weights=parts["weights"], optimizer=parts["optimizer_and_gradients"],
                         activations=parts["activations"], logits=parts["logits"],
                         fit=advice.fit_message(parts["total"], situation.facts.free_memory_gb, m.finetuning_type)))
    return "\n".join(f"- {render(line, language)}" for line in lines)


PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"


def shipped_presets() -> list[str]:
    return sorted(p.name for p in PRESETS_DIR.glob("*.json"))


def check_text(settings: config.Settings | None, problems: list, language: str = "en") -> str:
    if problems:
        labels = field_labels(language)
        return tr("hyper.fix_first", language) + "\n" + "\n".join(
            f"- **{labels.get(w, render(w, language))}** (`{w}`): {render(m, language)}" for w, m in problems)
    t = settings.training
    return tr("hyper.valid", language, effective=settings.effective_batch_size(), batch=t.per_device_train_batch_size,
              accumulation=t.gradient_accumulation_steps)


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

    def update_advice(*values, request=None):
        language = lang(request)
        settings, problems = settings_from_form(names, values)
        if problems:
            return check_text(None, problems, language), ""
        situation = situation_for(settings)
        return advice_markdown(advice.advise(situation), language), estimate_markdown(settings, situation, language)

    def reset_to_recommended(*values, request=None):
        current = dict(zip(names, values))
        settings, problems = config.settings_from_flat(current)
        if problems:
            return [gr.update() for _ in names] + [check_text(None, problems, lang(request))]
        recommended = advice.recommended_values(situation_for(settings))
        return [recommended.get(n, current[n]) for n in names] + [tr("hyper.restored", lang(request))]

    def measure_time(*values, request, progress):
        from ..train import probe_seconds_per_step

        language = lang(request)
        if JOB.running:  # the probe loads the model and trains a few steps: not beside a run
            return tr("job.busy_action", language)
        settings, problems = settings_from_form(names, values)
        if problems:
            return check_text(None, problems, language)
        situation = situation_for(settings)
        progress(0.1, desc=tr("hyper.probing", language))
        seq_len = settings.training.max_length
        report = data_report(settings)
        if report is not None and report.lengths is not None:  # batches are padded to their longest, roughly p75
            seq_len = min(seq_len, int(np.percentile(report.lengths.total, 75)))
        seconds = probe_seconds_per_step(settings, max(seq_len, 16), facts=_facts())
        if situation.rows is None:
            return tr("hyper.step_time", language, seconds=seconds)
        from ..data import split_sizes

        t = settings.training
        train_rows = split_sizes(situation.rows, settings.data.validation_share, settings.data.test_share)[0]
        steps = advice.total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                                   t.num_train_epochs, t.max_steps)
        return tr("hyper.time", language, estimate=render(advice.time_estimate_text(seconds, steps), language))

    n = len(components)
    update_advice, reset_to_recommended = for_form(update_advice, n), for_form(reset_to_recommended, n)
    measure_time = for_form(measure_time, n, progress=True)
    for component in components:
        component.change(update_advice, components, [advice_md, estimate_md], api_name=False,
                         show_progress="hidden", trigger_mode="always_last")
    gr.on([check.click], update_advice, components, [advice_md, estimate_md], api_name="advice")
    reset.click(reset_to_recommended, components, components + [status], api_name="reset_to_recommended")
    probe.click(measure_time, components, time_md, api_name="estimate_time")

    def check_settings(*values, request=None):
        settings, problems = settings_from_form(names, values)
        return check_text(settings, problems, lang(request))

    def export_preset(*values, request=None):
        language = lang(request)
        settings, problems = config.settings_from_flat(dict(zip(names, values)))
        if problems:
            return None, check_text(None, problems, language)
        # In the system temp folder (Gradio serves files from there); stale ones go at the next start.
        path = Path(tempfile.mkdtemp(prefix=PRESET_DOWNLOAD)) / "studio-preset.json"
        config.save_preset(settings, path, description=tr("hyper.export_description", "en"))
        return str(path), tr("hyper.preset_exported", language)

    def import_preset(path, request: gr.Request):
        language = lang(request)
        if not path:
            return [gr.update() for _ in names] + [tr("hyper.choose_preset", language)]
        settings, header, problems = config.load_preset(path)
        if problems:
            return [gr.update() for _ in names] + [check_text(None, problems, language)]
        values = config.flat_values(settings)
        if settings.model.trust_remote_code:  # a file must never switch on running a model's code by itself
            values["trust_remote_code"] = False
            return [values[n] for n in names] + [tr("hyper.preset_remote_code", language,
                                                    model=settings.model.model_name_or_path)]
        about = header.get("description_zh") if language == "zh" else None
        about = about or header.get("description")
        loaded = tr("hyper.preset_loaded_about", language, about=about) if about else tr("hyper.preset_loaded", language)
        return [values[n] for n in names] + [loaded]

    def load_shipped(name, request: gr.Request):
        return import_preset(str(PRESETS_DIR / name) if name else None, request)

    check_settings, export_preset = for_form(check_settings, n), for_form(export_preset, n)
    check.click(check_settings, components, status, api_name="check_settings")
    export_btn.click(export_preset, components, [preset_out, status], api_name="export_preset")
    import_btn.click(import_preset, preset_in, components + [status], api_name="import_preset")
    shipped.input(load_shipped, shipped, components + [status], api_name="load_shipped_preset")
