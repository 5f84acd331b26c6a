"""Hyperparameters tab: the settings form (beginner fields first), the hardware plan, presets in and out."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from studio.core import config, presets, settings_input, trackers
from studio.core.paths import PRESET_DOWNLOAD, offered_dir
from studio.core.text import Msg
from studio.models import estimates, hardware
from studio.models.probe import probe_seconds_per_step
from studio.data import preference
from studio.plan import advice, cost, data_report, recipe
from studio.plan.form_plan import hardware_lines, memory_parts, situation_for
from studio.training.jobs import JOB
from .forms import TabContext, TabParts, build_section_form, form_settings, takes_form, updates, shown_when_applies
from .named import Outputs
from .text import field_labels, lang, render, t, tr

MAX_ECHO_CHARS = 2_000  # of a preset's description, shown after loading it
HARDWARE_FIELDS = ("model_name_or_path", "finetuning_type", "per_device_train_batch_size", "max_length", "precision",
                   "gradient_checkpointing", "packing", "use_liger_kernel", "num_processes", "distributed_strategy")


def hardware_view(values: dict, language: str):
    """The hardware plan for the form's settings, and the method dropdown without QLoRA where it cannot run."""
    facts = hardware.detect()  # read afresh each time (cheap once torch is imported): free memory changes
    settings, problems = settings_input.settings_from_flat(values)
    choices = ["lora", "qlora", "full", "freeze"]
    if not hardware.qlora_available(facts)[0]:
        choices.remove("qlora")
    method = settings.method.finetuning_type if settings is not None else "lora"
    text = hardware_text(settings, facts, language) if settings is not None else check_text(None, problems, language)
    # The value only where the form's method cannot run here: sent always, it would undo a method the user picked
    # while this (page-load) answer was on its way.
    offered = trackers.offered()  # only trackers installed here; the help names the others' install commands
    tracker = settings.training.report_to if settings is not None else "none"
    return (text, gr.update(choices=choices) if method in choices else gr.update(choices=choices, value="lora"),
            gr.update(choices=offered) if tracker in offered else gr.update(choices=offered, value="none"))


def hardware_text(settings: config.Settings, facts, language: str = "en") -> str:
    summary, lines = hardware_lines(settings, facts)
    return f"**{render(summary, language)}**\n\n" + "\n".join(f"- {render(m, language)}" for m in lines)


def advice_markdown(items: list[advice.Advice], language: str = "en") -> str:
    if not items:
        return tr("advice.none", language)
    labels = field_labels(language)
    return "\n".join(f"- *{tr('level.' + a.level, language)}* **{labels.get(a.field, a.field)}**: "
                     f"{render(a.message, language)}"
                     + (" " + tr("advice.suggested", language, value=a.suggested) if a.suggested is not None else "")
                     for a in items)


def estimate_markdown(settings: config.Settings, situation: advice.Situation, language: str = "en") -> str:
    t = settings.training
    lines = [Msg("hyper.effective_batch", effective=settings.effective_batch_size(situation.devices),
                 batch=t.per_device_train_batch_size, accumulation=t.gradient_accumulation_steps,
                 devices=situation.devices)]
    if situation.rows is not None:
        train_rows, per_epoch, total = recipe.planned_steps(settings, situation.rows, situation.devices,
                                                            situation.identity)
        lines.append(Msg("hyper.steps", rows=train_rows, per_epoch=per_epoch, total=total))
    if (parts := memory_parts(settings, situation)) is not None:
        # DoRA's recomputed weights (estimates.dora_gb) are a part of their own: the parts add up to the total said
        key = "hyper.memory_dora" if parts.get("dora") else "hyper.memory"
        lines.append(Msg(key, weights=parts["weights"], optimizer=parts["optimizer_and_gradients"],
                         activations=parts["activations"], logits=parts["logits"], dora=parts.get("dora", 0.0),
                         fit=parts["fit"]))
    text = "\n".join(f"- {render(line, language)}" for line in lines)
    if situation.rows is not None:
        text += "\n\n" + plan_markdown(settings, situation, language)
    return text


def plan_markdown(settings: config.Settings, situation: advice.Situation, language: str = "en") -> str:
    """The recipe for this data beside the values in use: which are the plan's and which the user's, and why."""
    plan = recipe.recipe_for(settings, situation.rows, situation.parameters, situation.devices,
                             situation.identity)
    labels = field_labels(language)
    head = [tr(key, language) for key in ("col.setting", "recipe.col_plan", "recipe.col_used", "recipe.col_whose",
                                          "recipe.col_why")]
    lines = [tr("recipe.title", language, rows=situation.rows, steps=plan.steps),
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, planned, used, whose, why in recipe.plan_rows(plan, settings):
        mark = f"**{render(whose, language)}**" if whose.key == "recipe.yours" else render(whose, language)
        lines.append(f"| {labels.get(name, name)} | {_number(planned)} | {_number(used)} | {mark} | "
                     f"{render(why, language)} |")
    lines += [f"- {render(note, language)}" for note in plan.notes]
    return "\n".join(lines)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"


def shipped_presets() -> list[str]:
    """The beginner's preset first; none is chosen until the user picks one (the form already holds the plan)."""
    return sorted((p.name for p in PRESETS_DIR.glob("*.json")), key=lambda name: (not name.startswith("quickstart"), name))


def check_text(settings: config.Settings | None, problems: list, language: str = "en") -> str:
    if problems:
        labels = field_labels(language)
        return tr("hyper.fix_first", language) + "\n" + "\n".join(
            f"- **{labels.get(w, render(w, language))}** (`{w}`): {render(m, language)}" for w, m in problems)
    t = settings.training
    return tr("hyper.valid", language, effective=settings.effective_batch_size(), batch=t.per_device_train_batch_size,
              accumulation=t.gradient_accumulation_steps)


def build(ctx: TabContext) -> TabParts:
    """The settings form (beginner fields first, the rest under Advanced) and the buttons that work on it."""
    form = {}
    for beginner in (True, False):
        with gr.Accordion(t("hyper.advanced"), open=False) if not beginner else contextlib.nullcontext():
            for section in ("model", "method", "training"):
                form.update(build_section_form(section, ctx.defaults, beginner_only=beginner))
    with gr.Row():
        reset = gr.Button(t("hyper.reset"))
        check = gr.Button(t("hyper.check"))
        probe = gr.Button(t("hyper.probe"))
    gr.Markdown(t("hyper.advice_title"))
    advice_md = gr.Markdown(elem_id="hyper-advice")
    gr.Markdown(t("hyper.estimate_title"))
    estimate_md = gr.Markdown(elem_id="hyper-estimate")
    time_md = gr.Markdown()
    hardware_md = gr.Markdown(label=t("hyper.hardware"), elem_id="hyper-hardware")
    status = gr.Markdown(label=t("hyper.status"))
    with gr.Row():
        # wide enough for the longest ready-made preset's name (a cut name was a 57 finding)
        shipped = gr.Dropdown(choices=shipped_presets(), value=None, label=t("hyper.shipped"), allow_custom_value=False,
                              scale=2, min_width=340, elem_id="preset-shipped")
        preset_in = gr.File(label=t("hyper.preset_file"), file_types=[".json"], type="filepath", elem_id="preset-file",
                            scale=2)
        import_btn = gr.Button(t("hyper.import"), scale=1)
    with gr.Row():
        export_btn = gr.Button(t("hyper.export"), scale=1)
        preset_out = gr.File(label=t("hyper.export"), interactive=False, scale=3)
    views = _Views(ctx.demo, ctx.tab, check, reset, probe, shipped, preset_in, import_btn, export_btn, preset_out, status,
                   advice_md, estimate_md, time_md, hardware_md)
    return TabParts(form, views.wire)


@dataclass
class _Views:
    demo: gr.Blocks
    tab: gr.Tab
    check: gr.Button
    reset: gr.Button
    probe: gr.Button
    shipped: gr.Dropdown
    preset_in: gr.File
    import_btn: gr.Button
    export_btn: gr.Button
    preset_out: gr.File
    status: gr.Markdown
    advice_md: gr.Markdown
    estimate_md: gr.Markdown
    time_md: gr.Markdown
    hardware_md: gr.Markdown

    def wire(self, form: dict) -> None:
        """Presets cover every setting, so everything here gets the whole form, by field name."""
        shown_when_applies(form)
        self.wire_advice(form)
        self.wire_presets(form)
        self.wire_hardware(form)

    def wire_advice(self, form: dict) -> None:
        """The advice and estimates follow every field; Check and Reset; the measured time."""
        @takes_form(form)
        def advice_view(request: gr.Request = None, time_text=None, **values):
            return {**update_advice(values, lang(request)), "time": stale_time(time_text, lang(request))}

        @takes_form(form)
        def checked(request: gr.Request = None, **values):
            return check_settings(values, lang(request))

        @takes_form(form)
        def reset(request: gr.Request = None, **values):
            changed, status = reset_to_recommended(values, lang(request))
            return {**updates(form, changed), self.status: status}

        @takes_form(form)
        def probe(request: gr.Request = None, progress=gr.Progress(), **values):
            return measure_time(values, lang(request), progress)

        advised = Outputs(advice=self.advice_md, estimate=self.estimate_md, time=self.time_md)
        # One event for every field: a preset or Reset changes many fields at once (one advice, not one per field),
        # and a later change waits for the running advice instead of racing it (a slower, older advice could
        # otherwise land last and describe the form as it was).
        gr.on([component.change for component in form.values()], advised.wire(advice_view),
              inputs_kwargs={**form, "time_text": self.time_md}, outputs=advised.list, api_name=False,
              show_progress="hidden", trigger_mode="always_last")
        checked_view = Outputs(status=self.status, advice=self.advice_md, estimate=self.estimate_md)
        self.check.click(checked_view.wire(checked), inputs_kwargs=form, outputs=checked_view.list,
                         api_name="check_settings")
        self.reset.click(reset, inputs_kwargs=form, outputs=[*form.values(), self.status],
                         api_name="reset_to_recommended")
        self.probe.click(probe, inputs_kwargs=form, outputs=self.time_md, api_name="estimate_time")

    def wire_presets(self, form: dict) -> None:
        """Export a preset, import a file or a ready-made one, and the runs a new run may start from."""
        outputs = [*form.values(), self.status]

        @takes_form(form)
        def exported(request: gr.Request = None, **values):
            return export_preset(values, lang(request))

        def import_file(path, shipped=None, request: gr.Request = None):
            """The file chosen, else the ready-made preset picked in the list (which loads on its own when picked:
            pressing Load after it loads it again instead of asking for a file)."""
            chosen = path or (str(PRESETS_DIR / shipped) if shipped in shipped_presets() else None)
            values, status = import_preset(chosen, lang(request))
            return {**updates(form, values), self.status: status}

        def import_shipped(name, request: gr.Request = None):
            values, status = import_preset(str(PRESETS_DIR / name) if name else None, lang(request))
            return {**updates(form, values), self.status: status}

        def starting_runs():
            return gr.update(choices=["", *preference.adapter_runs()])

        self.export_btn.click(exported, inputs_kwargs=form, outputs=[self.preset_out, self.status],
                              api_name="export_preset")
        self.import_btn.click(import_file, inputs_kwargs=dict(path=self.preset_in, shipped=self.shipped),
                              outputs=outputs, api_name="import_preset")
        self.shipped.input(import_shipped, self.shipped, outputs, api_name="load_shipped_preset")
        self.demo.load(starting_runs, None, form["adapter_name_or_path"], api_name=False)
        self.tab.select(starting_runs, None, form["adapter_name_or_path"], api_name="starting_runs")

    def wire_hardware(self, form: dict) -> None:
        """This machine's plan: detected after the page is served (it imports torch), re-planned when the devices,
        the memory each needs or the precision change."""
        @takes_form(form)
        def hardware_now(request: gr.Request = None, **values):
            return hardware_view(values, lang(request))

        @takes_form(form)
        def plan_now(request: gr.Request = None, **values):
            return hardware_view(values, lang(request))[0]

        @takes_form(form)
        def devices_changed(request: gr.Request = None, **values):
            changed, status = follow_devices(values, lang(request))
            return {**updates(form, changed), self.status: status} if changed else {self.status: status}

        self.demo.load(hardware_now, inputs_kwargs=form,
                       outputs=[self.hardware_md, form["finetuning_type"], form["report_to"]], api_name="hardware")
        # A user's own change of the processes (not a preset's): the batch planned for one device is re-planned for
        # the new count, so the effective batch and the steps stay what the data asked for.
        form["num_processes"].input(devices_changed, inputs_kwargs=form, outputs=[*form.values(), self.status],
                                    api_name="devices_changed")
        for name in HARDWARE_FIELDS:
            form[name].change(plan_now, inputs_kwargs=form, outputs=self.hardware_md, api_name=False,
                              show_progress="hidden", trigger_mode="always_last")


def stale_time(time_text: str | None, language: str):
    """A measured time estimate, marked out of date once a setting changes (the steps, the batch or the model it
    was measured for may be other now); nothing to mark before the first estimate."""
    if not time_text or time_text.startswith(tr("hyper.time_stale_mark", language)):
        return gr.update()
    return f"{tr('hyper.time_stale_mark', language)} {tr('hyper.time_stale', language)}\n\n~~{time_text}~~"


def update_advice(values: dict, language: str) -> dict:
    settings, problems = form_settings(values)
    return advice_for(settings, problems, language)


def advice_for(settings: config.Settings | None, problems: list, language: str) -> dict:
    """{"advice": the advice, "estimate": the estimates} for the form's settings (or what is wrong with them)."""
    if problems:
        return {"advice": check_text(None, problems, language), "estimate": ""}
    situation = situation_for(settings)
    return {"advice": advice_markdown(advice.advise(situation), language),
            "estimate": estimate_markdown(settings, situation, language)}


def check_settings(values: dict, language: str) -> dict:
    """Whether the settings are valid ("status"), the advice and the estimates: the Check button's one answer."""
    settings, problems = form_settings(values)
    return {"status": check_text(settings, problems, language), **advice_for(settings, problems, language)}


def reset_to_recommended(values: dict, language: str) -> tuple[dict, str]:
    settings, problems = settings_input.settings_from_flat(values)
    if problems:
        return {}, check_text(None, problems, language)
    return advice.recommended_values(situation_for(settings)), tr("hyper.restored", language)


def follow_devices(values: dict, language: str) -> tuple[dict, str]:
    """After the user changes the processes: the recipe's batch for the new count where the form held the plan's
    for the old one (advice.values_for_devices), and a line saying what changed ("" when nothing did)."""
    settings, problems = form_settings(values)
    if problems:
        return {}, ""
    situation = situation_for(settings)
    changed = advice.values_for_devices(situation)
    if not changed:
        return {}, ""
    labels, before = field_labels(language), config.flat_values(settings)
    what = tr("list.separator", language).join(
        f"{labels[name]} {_number(before[name])} → {_number(value)}" for name, value in changed.items())
    return changed, tr("hyper.devices_followed", language, devices=situation.devices, changes=what)


def measure_time(values: dict, language: str, progress) -> str:
    if JOB.running:  # the probe loads the model and trains a few steps: not beside a run
        return tr("job.busy_action", language)
    settings, problems = form_settings(values)
    if problems:
        return check_text(None, problems, language)
    situation = situation_for(settings)
    progress(0.1, desc=tr("hyper.probing", language))
    seq_len = settings.training.max_length
    report = data_report.advice_report(settings)
    if report is not None and report.lengths is not None:  # batches are padded to their longest, roughly p75
        seq_len = min(seq_len, int(np.percentile(report.lengths.total, 75)))
    seconds = probe_seconds_per_step(settings, max(seq_len, 16), facts=situation.facts,
                                     progress=lambda share, message: progress(share, desc=render(message, language)))
    cost.remember_probe(settings, seconds)  # the Train tab's cost line uses the measured figure from now on
    if situation.rows is None:
        return tr("hyper.step_time", language, seconds=seconds)
    steps = recipe.planned_steps(settings, situation.rows, situation.devices, situation.identity)[2]
    return tr("hyper.time", language, estimate=render(estimates.time_estimate_text(seconds, steps), language))


def export_preset(values: dict, language: str):
    settings, problems = settings_input.settings_from_flat(values)
    if problems:
        return None, check_text(None, problems, language)
    # Under the upload folder (Gradio serves files from there), never the system temp folder; stale ones go at
    # the next start.
    path = Path(tempfile.mkdtemp(prefix=PRESET_DOWNLOAD, dir=offered_dir())) / "studio-preset.json"
    presets.save_preset(settings, path, description=tr("hyper.export_description", "en"))
    return str(path), tr("hyper.preset_exported", language)


def import_preset(path: str | None, language: str) -> tuple[dict, str]:
    """(the preset's values by field name, what to tell the user); no values where it cannot be loaded."""
    if not path:
        return {}, tr("hyper.choose_preset", language)
    settings, header, problems = presets.load_preset(path)
    if problems:
        return {}, check_text(None, problems, language)
    values = config.flat_values(settings)
    if settings.model.trust_remote_code:  # a file must never switch on running a model's code by itself
        values["trust_remote_code"] = False
        return values, tr("hyper.preset_remote_code", language, model=settings.model.model_name_or_path)
    about = header.get(f"description_{language}") or header.get("description") or ""
    about = about[:MAX_ECHO_CHARS]  # echoed back: never a megabyte of it
    loaded = tr("hyper.preset_loaded_about", language, about=about) if about else tr("hyper.preset_loaded", language)
    return values, loaded
