"""The Data tab's repairs (studio/plan/repairs.py): each repair offered with the rows it would act on, one click
for a new version of the file (never the user's own file), what changed and the rows left out, and the versions
of this file to go back to. A new version is loaded at once, so the report, plan and advice follow it."""

from __future__ import annotations

import gradio as gr

from studio.core import config
from studio.data import versions
from studio.plan import repairs
from studio.plan.data_choice import data_source, report_of
from .text import frame, headers, lang, render, t, tr

DROPPED_COLUMNS = ["col.row", "repair.col_repair", "col.prompt", "repair.col_answer"]
ORDER = ("duplicates", "conflicts", "too_long", "placeholders")


def offer(dataset_path=None, dataset_format=None, column_mapping=None, model_name_or_path=None,
          request: gr.Request = None):
    """The repairs with their counts for the file loaded, and its versions."""
    language = lang(request)
    source, _ = data_source(dataset_path, dataset_format, column_mapping)
    try:
        found = repairs.counts(report_of(source, model_name_or_path))
    except Exception:  # noqa: BLE001 - a file that cannot be read has nothing to repair: its report says why
        found = {}
    choices = [(tr(f"repair.offer_{name}", language, count=found.get(name, 0)), name) for name in ORDER
               if name == "placeholders" or found.get(name)]
    preselected = [name for name in ORDER if found.get(name)]
    lines = versions.list_versions(versions.source_of(source.dataset_path))
    listed = [(tr("repair.original", language), versions.source_of(source.dataset_path))] + [
        (v.name, v.path) for v in lines]
    note = tr("repair.unreadable", language, count=found["unreadable"]) if found.get("unreadable") else ""
    return (gr.update(choices=choices, value=preselected), gr.update(choices=listed, value=source.dataset_path),
            note)


def make(dataset_path=None, dataset_format=None, column_mapping=None, model_name_or_path=None, repairs_chosen=None,
         placeholder_values=None, request: gr.Request = None):
    """A repaired version: the new dataset path, what changed, and the rows left out."""
    language = lang(request)
    source, _ = data_source(dataset_path, dataset_format, column_mapping)
    report = report_of(source, model_name_or_path)
    values = placeholder_values if isinstance(placeholder_values, dict) else \
        (config.parse_mapping(placeholder_values)[0] if placeholder_values else {})
    if not report.load.rows:
        return gr.update(), tr("repair.no_rows", language), frame([], DROPPED_COLUMNS, language)
    version, result = repairs.make_version(source.dataset_path, report, repairs_chosen or [], values)
    rows = {r.number: r for r in report.load.rows}
    shown = [[number, tr(f"repair.name_{why}", language), *_excerpt(rows.get(number))]
             for number, why in result.dropped[:500]]
    note = tr("repair.made", language, version=version.name, summary=render(result.said(), language))
    return version.path, note, frame(shown, DROPPED_COLUMNS, language)


def _excerpt(row) -> list[str]:
    found = repairs.row_view([row], [row.number]) if row is not None else []
    return [found[0]["prompt"], found[0]["answer"]] if found else ["", ""]


def build():
    """The accordion; `wire` connects it once the form and the loading event exist."""
    with gr.Accordion(t("repair.title"), open=False, elem_id="repair-box") as box:
        gr.Markdown(t("repair.intro"))
        chosen = gr.CheckboxGroup(choices=[], label=t("repair.which"), elem_id="repair-which")
        make_btn = gr.Button(t("repair.make"), variant="primary", elem_id="repair-make")
        note = gr.Markdown(elem_id="repair-note")
        dropped = gr.Dataframe(headers=headers(DROPPED_COLUMNS), wrap=True, label=t("repair.dropped"),
                               elem_id="repair-dropped", max_height=300)
        version_list = gr.Dropdown(choices=[], label=t("repair.versions"), elem_id="repair-versions")
    return dict(box=box, chosen=chosen, make=make_btn, note=note, dropped=dropped, versions=version_list)


def wire(parts: dict, form: dict, full_form: dict, summary, loading: dict) -> None:
    boxes = dict(dataset_path=form["dataset_path"], dataset_format=form["dataset_format"],
                 column_mapping=form["column_mapping"], model_name_or_path=full_form["model_name_or_path"])
    summary.change(offer, inputs_kwargs=boxes, outputs=[parts["chosen"], parts["versions"], parts["note"]],
                   api_name="repair_offer", show_progress="hidden")
    parts["make"].click(make, inputs_kwargs=dict(**boxes, repairs_chosen=parts["chosen"],
                                                 placeholder_values=form["placeholder_values"]),
                        outputs=[form["dataset_path"], parts["note"], parts["dropped"]],
                        api_name="repair_data").then(**loading, api_name=False)
    parts["versions"].input(lambda path: path, parts["versions"], form["dataset_path"],
                            api_name="use_data_version").then(**loading, api_name=False)
