"""The plan for the settings a form holds, as the Hyperparameters and Train tabs show it: the situation the advice
reads (data report, hardware, model shape), the hardware choices with their reasons, and the run's memory by part.
Plain functions of the settings; the tabs render the messages."""

from __future__ import annotations

from studio.core.config import Settings
from studio.core.text import Msg, on_off, word
from studio.models import estimates, hardware
from studio.models.models import allowed_shape
from . import advice, data_report, mixing


def situation_for(settings: Settings) -> advice.Situation:
    report = data_report.advice_report(settings)
    return advice.build_situation(settings, report, hardware.detect(), allowed_shape(settings.model.model_name_or_path),
                                  mix=mixed_rows(settings, report))


def mixed_rows(settings: Settings, report) -> tuple[int, list] | None:
    """With files mixed in (each shown in the mix box, so read already): the rows a run on the whole mix plans with
    (mixing.plan_rows); None without a mix, or where a mixed file's report is not at hand (the advice never reads a
    file the user did not load: the main file's figures then stand)."""
    d = settings.data
    if not d.extra_datasets or report is None:
        return None
    model, reads = settings.model.model_name_or_path, data_report.reads_for(settings.method.stage)
    reports = [report]
    for part in d.extra_datasets:
        extra = data_report.loaded_report(part.dataset_path, part.dataset_format, part.column_mapping, model, reads)
        if extra is None or not extra.load.rows:
            return None
        reports.append(extra)
    return mixing.plan_rows(d, reports)


def hardware_lines(settings: Settings, facts) -> tuple[Msg, list[Msg]]:
    """The hardware plan for the form's settings, as the Hyperparameters tab says it: the machine, then the
    devices, precision, checkpointing, packing and QLoRA, each with its reason."""
    shape = allowed_shape(settings.model.model_name_or_path)
    memory = estimates.training_memory_gb(settings, shape, facts) if shape is not None else None
    plan = hardware.plan(facts, settings.training, memory=memory, method=settings.method.finetuning_type)
    lines = [devices_line(plan),
             Msg("hyper.plan_precision", value=plan["precision"], why=plan["precision_reason"]),
             Msg("hyper.plan_checkpointing", value=on_off(plan["gradient_checkpointing"]),
                 why=plan["gradient_checkpointing_reason"]),
             Msg("hyper.plan_packing", value=on_off(plan["packing"]), why=plan["packing_reason"]),
             Msg("hyper.plan_qlora", why=hardware.qlora_available(facts)[1])]
    return plan["hardware"], lines


def devices_line(plan: dict) -> Msg:
    """How many devices train and how they share the model, with each one's memory."""
    one = plan["processes"] == 1
    each = "" if plan["per_device_gb"] is None else Msg("hyper.plan_one_gb" if one else "hyper.plan_each",
                                                        gb=plan["per_device_gb"])
    if one:
        return Msg("hyper.plan_devices_one", each=each, why=plan["devices_reason"])
    return Msg("hyper.plan_devices", processes=plan["processes"], strategy=word("strategy", plan["strategy"]),
               each=each, why=plan["devices_reason"])


def memory_parts(settings: Settings, situation: advice.Situation) -> dict | None:
    """The run's peak memory by part and whether it fits (estimates.fit_message); None without model facts. The
    Hyperparameters estimates and the Train tab's cost line both read it."""
    if situation.parameters is None or situation.facts is None:
        return None
    shape = allowed_shape(settings.model.model_name_or_path) or estimates.ModelShape(situation.parameters, 1, 1, 1, 1)
    parts = estimates.training_memory_gb(settings, shape, situation.facts)
    return {**parts, "fit": estimates.fit_message(parts["total"], situation.facts.free_memory_gb,
                                                  settings.method.finetuning_type)}
