"""The Data tab's boxes as typed values, parsed once at this boundary (a column mapping or a mixed-in file that
does not parse is a problem named by field), and the report and recipe for the file they name. Plain functions:
the tab wires them to the page; tests call them without a browser."""

from __future__ import annotations

import math

from studio.core import config, settings_input
from studio.models.models import model_parameters
from studio.data import stats
from studio.data.facts import speaks_about_itself
from . import data_report, mixing, recipe


def data_source(dataset_path, dataset_format, column_mapping) -> tuple[config.DataSettings, list]:
    """The Data tab's three boxes as typed settings, parsed once here: a column mapping that does not parse is
    reported beside the file's problems, and the file is read without it."""
    values = dict(dataset_path=dataset_path or config.DEMO_DATA, dataset_format=dataset_format or "auto",
                  column_mapping=column_mapping or "")
    settings, problems = settings_input.settings_from_flat(values)
    if settings is None:
        settings, _ = settings_input.settings_from_flat({**values, "column_mapping": ""})
    return (settings or config.Settings()).data, problems


def mix_parts(extra_datasets) -> tuple[list[config.DatasetPart], list]:
    """The files mixed in, as the form holds them (a JSON list), checked as settings; problems by field."""
    settings, problems = settings_input.settings_from_flat({"extra_datasets": extra_datasets or []})
    return (settings.data.extra_datasets if settings else []), problems


def chosen_source(dataset_path, dataset_format, column_mapping, extra_datasets=None, report_on=None):
    """The file whose report the tab shows: the main file (1) or a file of the mix (2, 3, ...)."""
    source, problems = data_source(dataset_path, dataset_format, column_mapping)
    parts, _ = mix_parts(extra_datasets)
    index = int(report_on or 1) - 2
    return (parts[index] if 0 <= index < len(parts) else source), problems


def report_of(source: config.DataSettings, model, progress=None, stage=None) -> stats.DataReport:
    """The file's report as the stage reads it (GRPO: prompts with their reference answers)."""
    return data_report.report_for(source.source, source.dataset_format, source.column_mapping,
                                  model if isinstance(model, str) else None, progress=progress,
                                  reads=data_report.reads_for(stage if isinstance(stage, str) else None))


def planned_for(rows: int, model, form: dict, identity: bool = False) -> recipe.Recipe:
    """The recipe for a file of `rows` usable rows on this model with the form's method, stage and replay (a value
    the form cannot hold is left at its default here; the Hyperparameters tab names it)."""
    settings = config.Settings()
    for name, value in form.items():
        candidate, problems = settings_input.settings_from_flat({name: value}, settings)
        settings = candidate if not problems else settings
    return recipe.recipe_for(settings, rows, model_parameters(model), identity=identity)


def replay_for(settings: config.Settings, parts: list, model):
    """(whether a run with these settings replays general answers, why), judged as the run judges it: on the rows
    it plans with (the whole mix, each file to its share: mixing.plan_rows; identity data replays at any length)."""
    reports = [report_of(part, model) for part in parts]
    planned = mixing.plan_rows(settings.data, reports) if len(parts) > 1 else None
    if planned is None:
        planned = (sum(len(r.load.rows) for r in reports), [row for r in reports for row in r.load.rows])
    return recipe.replay_decision(settings, planned[0], identity=speaks_about_itself(planned[1]))


def handed_changes(handed: dict, current: dict) -> list[tuple[str, object, object]]:
    """(field, value a loaded file handed to the form, value the form holds now) for each handed value the form no
    longer holds; a value not read (None) is not counted."""
    return [(name, was, current[name]) for name, was in handed.items()
            if current.get(name) is not None and not _same(was, current[name])]


def _same(was, now) -> bool:
    try:
        return math.isclose(float(was), float(now), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return was == now
