"""The files mixed into a run (Data tab): add a file with its format, mapping and share, remove one, and the mix
table (each file's rows, splits, tokens and share of the tokens, and the replayed general answers)."""

from __future__ import annotations

import math
import typing
from types import SimpleNamespace

import gradio as gr

from studio.core import config, settings_input
from studio.plan import mixing
from studio.plan.data_choice import replay_for, report_of
from . import forms
from .text import frame, headers, lang, render, t, tr

MIX_COLUMNS = ["col.number", "col.file", "col.format", "col.share_asked", "col.usable", "col.train_rows",
               "col.validation_rows", "col.test_rows", "col.tokens", "col.token_share"]


def build(open_: bool) -> SimpleNamespace:
    """The files mixed into the run: a path (or upload), its format, mapping and share; add, remove, the table."""
    with gr.Accordion(t("mix.title"), open=open_, elem_id="mix-box"):
        gr.Markdown(t("mix.intro"))
        with gr.Row():
            mix_path = gr.Dropdown(choices=[config.DEMO_DATA], value=None, allow_custom_value=True,
                                   label=t("mix.path"), scale=3, elem_id="mix-path")
            mix_format = gr.Dropdown(choices=list(typing.get_args(config.DatasetFormat)), value="auto",
                                     label=t("dataset_format.label"), scale=1)
            mix_mapping = gr.Textbox(label=t("column_mapping.label"), scale=2)
            mix_share = gr.Number(value=None, label=t("mix.share"), info=t("mix.share_info"), scale=1,
                                  elem_id="mix-share")
        mix_upload = gr.File(label=t("mix.upload"), file_types=[".json", ".jsonl", ".csv", ".parquet", ".txt"],
                             type="filepath")
        with gr.Row():
            add_btn = gr.Button(t("mix.add"), elem_id="mix-add")
            remove_number = gr.Number(value=2, precision=0, label=t("mix.remove_number"))
            remove_btn = gr.Button(t("mix.remove"))
        mix_note = gr.Markdown(elem_id="mix-note")
        mix_frame = gr.Dataframe(headers=headers(MIX_COLUMNS, "en"), label=t("mix.table"), visible=False,
                                 elem_id="mix-table")
    return SimpleNamespace(path=mix_path, format=mix_format, mapping=mix_mapping, share=mix_share, upload=mix_upload,
                           add=add_btn, remove_number=remove_number, remove=remove_btn, note=mix_note, frame=mix_frame)



def show_mix(dataset_path=None, dataset_format=None, column_mapping=None, dataset_share=None, extra_datasets=None,
             validation_share=None, test_share=None, max_samples=None, model_name_or_path=None, replay=None,
             replay_share=None, num_train_epochs=None, max_steps=None, stage=None, request: gr.Request = None):
    """The mix table (each file's rows, training rows, validation, test, tokens and share of the tokens, and the
    replayed general answers where replay is on), what stops the mix, and which file the report shows. Hidden
    while there is only the main file and no replay."""
    language = lang(request)
    values = forms.filled(dataset_path=dataset_path or None, dataset_format=dataset_format or None,
                          column_mapping=column_mapping, dataset_share=dataset_share, extra_datasets=extra_datasets,
                          validation_share=validation_share, test_share=test_share, max_samples=max_samples,
                          replay=replay, replay_share=replay_share, num_train_epochs=num_train_epochs,
                          max_steps=max_steps, stage=stage)
    settings, problems = settings_input.settings_from_flat(values)
    if settings is None:
        note = "\n".join(f"- `{where}`: {render(message, language)}" for where, message in problems)
        return gr.update(visible=True), note, gr.update()
    parts = mixing.parts_of(settings.data)
    # with replay off the single file's report is not needed: the box stays hidden
    replaying, why = replay_for(settings, parts, model_name_or_path) if settings.data.replay != "off" else (False, None)
    if len(parts) == 1 and not replaying:
        return gr.update(visible=False, value=frame([], MIX_COLUMNS, language)), "", \
            gr.update(choices=[(tr("mix.main_file", language), 1)], value=1)
    reports = [report_of(part, model_name_or_path) for part in parts]
    table = mixing.mix_table(settings.data, reports, replaying)
    rows = [[render(cell, language) for cell in row] for row in table.rows]
    summary = "mix.summary" if len(parts) > 1 else "mix.summary_one"  # one file with replay: "from one file"
    note = render(table.refusal, language) if table.refusal else \
        tr(summary, language, files=len(parts), rows=table.training_rows)
    note = "\n\n".join([note, *(render(w, language) for w in table.warnings)])
    names = [(f"{i}. {r.load.file}", i) for i, r in enumerate(reports, start=1)]
    if replaying:
        reason = render(why, language)  # a clause ("identity data: …"), here a sentence of its own
        note += "\n\n" + tr("mix.replay_reason", language, why=reason[:1].upper() + reason[1:])
    return gr.update(visible=True, value=frame(rows, MIX_COLUMNS, language)), note, gr.update(choices=names)


def add_file(extra_datasets=None, mix_path=None, mix_format=None, mix_mapping=None, mix_share=None,
             request: gr.Request = None):
    """One more file in the mix, checked first: a bad share, mapping or path is named and nothing is added."""
    language = lang(request)
    if (current := mix_list(extra_datasets)) is None:
        return gr.skip(), f"- {tr('config.list', language)}"
    parts, problems = mixing.added_part(current, mix_path, mix_format, mix_mapping, mix_share)
    if parts is None:
        return gr.skip(), "\n".join(f"- {render(message, language)}" for _, message in problems)
    return parts, tr("mix.added", language, file=str(mix_path).strip())


def remove_file(extra_datasets=None, number=None, request: gr.Request = None):
    if (current := mix_list(extra_datasets)) is None:
        return gr.skip(), f"- {tr('config.list', lang(request))}"
    if not isinstance(number, (int, float)) or not math.isfinite(number):
        return gr.skip(), ""
    return mixing.without_part(current, number), ""


def mix_list(extra_datasets) -> list | None:
    """The mix as a list (the API may send the --set text form), or None when it is no list or too long: the
    caller then keeps the mix as it was instead of echoing what it was sent."""
    if isinstance(extra_datasets, str):
        extra_datasets = config.parse_parts(extra_datasets)
    if not isinstance(extra_datasets, (list, tuple, type(None))) or len(extra_datasets or []) > config.MAX_MIX_FILES:
        return None
    return list(extra_datasets or [])
