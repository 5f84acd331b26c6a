"""Data tab: choose a file (upload, path, demo or hub id), see its problems, a searchable preview, token lengths
measured with the model's own chat template, a cutoff recommendation, a quality report and the split.

Loading a file hands its recommendations (cutoff, validation share) to the settings form once, so the user
never re-types them; changing them afterwards is the user's choice and is kept."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.core import config, settings_input
from studio.data import data, preference, stats
from studio.data.facts import speaks_about_itself
from studio.plan import mixing, preflight, recipe
from studio.plan.data_choice import chosen_source, data_source, planned_for, replay_for, report_of
from . import forms, repair_box, workshop_box
from .forms import TabContext, TabParts, build_section_form
from .named import Outputs
from .text import chart_titles, frame, headers, lang, render, t, tr

PROBLEM_COLUMNS = ["col.where", "col.problem"]
PREVIEW_COLUMNS = ["col.row", "col.as_trained", "col.as_in_file"]
PERCENTILE_COLUMNS = ["col.part", "p50", "p90", "p95", "p99", "max", "mean"]
FINDING_COLUMNS = ["col.level", "col.check", "col.finding", "col.rows"]
MIX_COLUMNS = ["col.number", "col.file", "col.format", "col.share_asked", "col.usable", "col.train_rows",
               "col.validation_rows", "col.test_rows", "col.tokens", "col.token_share"]
# Fixed shares of the page's width: wrapped text stays inside it (without them a long cell pushes the right-hand
# columns past the edge, where a beginner never sees them).
PROBLEM_WIDTHS = ["30%", "70%"]
PREVIEW_WIDTHS = ["7%", "48%", "45%"]
FINDING_WIDTHS = ["9%", "16%", "60%", "15%"]
MAX_ROW_CHARS = 20_000  # a single row sent to the page; the rest stays on the server
MAX_ROW_TOKENS = 8_000  # tokens of one row shown highlighted
ANSWER_COLOUR, END_COLOUR = "#86efac", "#fcd34d"  # trained answer tokens, trained end-of-turn tokens


def length_plots(report: stats.DataReport):
    lengths = report.lengths
    hist = pd.DataFrame(stats.histogram(lengths.total) if lengths is not None else [],
                        columns=["tokens", "conversations"]).astype("int64")
    cdf = pd.DataFrame(stats.cumulative(lengths.total) if lengths is not None else [],
                       columns=["tokens", "share"]).astype({"tokens": "int64", "share": "float64"})
    return hist, cdf


def analyse(dataset_path=None, dataset_format=None, column_mapping=None, model_name_or_path=None, query=None, page=None,
            extra_datasets=None, report_on=None, placeholder_values=None, stage=None, system_prompt=None,
            progress=gr.Progress(), request: gr.Request = None):
    language = lang(request)

    def report_progress(stage, done=None, total=None):
        progress((done, total) if total else None, desc=render(stage, language), unit=tr("col.rows", language))

    source, source_problems = chosen_source(dataset_path, dataset_format, column_mapping, extra_datasets, report_on)
    report = report_of(source, model_name_or_path, progress=report_progress, stage=stage)
    problems = frame((source_problems + report.load.problems)[:1000], PROBLEM_COLUMNS, language)
    # read against the form as it is now: a filled placeholder or a system prompt set is fixed, and the
    # preview's "as trained" column is what the run will train (preflight.current_findings / trained_rows)
    values, system = fixed_values(placeholder_values, system_prompt)
    found = preflight.current_findings(report.findings, report.load.rows, values, system)
    trained = dataclasses.replace(report.load, rows=preflight.trained_rows(report.load.rows, found, values, system))
    rows, pages = data.preview_rows(trained, query, page)
    summary = render(data.summary_text(report.load), language)
    if warnings := [f for f in found if f.level == "warning"]:  # above the fold, each with its fix
        summary = "\n".join([tr("data.preflight_count", language, count=len(warnings)),
                              *("- " + tr("data.warning_item", language, check=f.check, message=f.message)
                                for f in warnings)]) + "\n\n" + summary
    if report.tokenizer_problem:
        summary += "\n\n" + tr("data.no_lengths", language, problem=report.tokenizer_problem)
    hist, cdf = length_plots(report)
    cutoff = render(report.cutoff.message, language) if report.cutoff else ""
    share, why = report.validation_share
    _, n_val, _ = data.split_sizes(len(report.load.rows), share, 0.0)
    split = tr("data.split", language, share=share, rows=n_val, total=len(report.load.rows), why=render(why, language))
    findings = findings_frame(found, language)
    percentiles = frame(report.percentile_table(), PERCENTILE_COLUMNS, language)
    page_text = tr("data.page_of", language, page=min(int(page or 1), pages), pages=pages)
    return {"summary": summary, "problems": problems, "preview": frame(rows, PREVIEW_COLUMNS, language),
            "pages": page_text, "percentiles": percentiles, "hist": hist, "cdf": cdf, "cutoff": cutoff, "split": split,
            "findings": findings, "recommended_cutoff": report.cutoff.cutoff if report.cutoff else None,
            "recommended_share": share}


# The recipe's fields that a loaded file hands to the form besides the cutoff and the shares (studio/plan/recipe.py).
HANDED_RECIPE_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                        "learning_rate", "eval_steps", "early_stopping_patience", "replay_share")


def fixed_values(placeholder_values, system_prompt) -> tuple[dict, str]:
    """The form's 'Fill placeholders' and 'System prompt' as typed values (a mapping that does not parse fills
    nothing; the Hyperparameters tab names it)."""
    values, problems = config.parse_mapping(placeholder_values) if isinstance(placeholder_values, str) \
        else (placeholder_values or {}, [])
    return ({} if problems else values), (system_prompt if isinstance(system_prompt, str) else "")


def findings_frame(found: list, language: str):
    """The quality and pre-flight findings, those that need the user first (above the fold)."""
    level = {k: tr(f"level.{k}", language) for k in ("ok", "info", "warning", "error")}
    order = {"warning": 0, "error": 0, "info": 1, "ok": 2}
    found = sorted(found, key=lambda f: order.get(f.level, 1))
    return frame([[level.get(f.level, f.level), f.check, f.message,
                   ", ".join(map(str, f.rows[:50])) + (" ..." if len(f.rows) > 50 else "")] for f in found],
                 FINDING_COLUMNS, language)


def load_and_apply(dataset_path=None, dataset_format=None, column_mapping=None, model_name_or_path=None, query=None,
                   page=None, extra_datasets=None, report_on=None, applied=None, max_length=None,
                   validation_share=None, test_share=None, finetuning_type=None, stage=None, replay=None,
                   replay_share=None, placeholder_values=None, system_prompt=None, progress=gr.Progress(),
                   request: gr.Request = None):
    """Load (as analyse), then hand the main file's recommendations (cutoff, validation and test shares, and the
    recipe sized to its rows: batch, accumulation, epochs, learning rate, evaluation and early stopping) to the
    form, once per file: loading the same file again, paging, or a mixed-in file's report leaves the user's own
    changes alone."""
    given = forms.filled(test_share=test_share, finetuning_type=finetuning_type, stage=stage, replay=replay,
                         replay_share=replay_share)
    test_share, finetuning_type, stage, replay, replay_share = given.values()
    shown = analyse(dataset_path, dataset_format, column_mapping, model_name_or_path, query, page, extra_datasets,
                    report_on, placeholder_values, stage, system_prompt, progress=progress, request=request)
    cutoff, share = shown["recommended_cutoff"], shown["recommended_share"]
    source, _ = data_source(dataset_path, dataset_format, column_mapping)
    key = json.dumps([source.dataset_path, source.dataset_format, source.column_mapping, str(model_name_or_path),
                      str(stage)])
    report = report_of(source, model_name_or_path, stage=stage)
    usable = report.load.rows
    if key == applied or not usable or int(report_on or 1) > 1:
        return {**shown, "applied": applied, "max_length": max_length, "validation_share": validation_share,
                "test_share": test_share, "applied_note": "", **{name: gr.update() for name in HANDED_RECIPE_FIELDS}}
    language = lang(request)
    plan = planned_for(report.training_rows, model_name_or_path, dict(finetuning_type=finetuning_type, stage=stage,
                                                             replay=replay, replay_share=replay_share),
                       identity=speaks_about_itself(usable))
    test = plan.values()["test_share"]
    note = tr("data.applied", language, cutoff=cutoff, share=share) if cutoff else \
        tr("data.applied_share", language, share=share)
    if test:
        note += " " + tr("data.applied_test", language, share=test, rows=data.split_sizes(len(usable), share, test)[2])
    note += " " + tr("data.applied_recipe", language, steps=plan.steps, epochs=plan.values()["num_train_epochs"],
                     lr=plan.values()["learning_rate"])
    return {**shown, "applied": key, "max_length": cutoff or max_length, "validation_share": share, "test_share": test,
            "applied_note": note, **{name: plan.values().get(name, gr.update()) for name in HANDED_RECIPE_FIELDS}}


def multilingual_offer(dataset_path=None, dataset_format=None, column_mapping=None, model_name_or_path=None,
                       extra_datasets=None, report_on=None, stage=None):
    """The 'use the multilingual model' button, shown while the language check warns (a kept report: no file
    is read)."""
    if model_name_or_path == preflight.MULTILINGUAL_MODEL:
        return gr.update(visible=False)
    source, _ = chosen_source(dataset_path, dataset_format, column_mapping, extra_datasets, report_on)
    report = report_of(source, model_name_or_path, stage=stage)
    return gr.update(visible=any(getattr(f.check, "key", None) == "check.model_language" and f.level == "warning"
                                 for f in report.findings))


def show_row(dataset_path, dataset_format, column_mapping, model_name_or_path, number, extra_datasets=None,
             report_on=None, stage=None, placeholder_values=None, system_prompt=None, request: gr.Request = None):
    """The row as in the file, as trained (placeholders filled, the run's system prompt), and token by token with
    the trained tokens highlighted."""
    language = lang(request)
    report = report_of(chosen_source(dataset_path, dataset_format, column_mapping, extra_datasets, report_on)[0],
                       model_name_or_path, stage=stage)
    values, system = fixed_values(placeholder_values, system_prompt)
    found = preflight.current_findings(report.findings, report.load.rows, values, system)
    trained = dataclasses.replace(report.load, rows=preflight.trained_rows(report.load.rows, found, values, system))
    raw, normalised = data.row_detail(trained, int(number or 0))
    if raw is None:
        return tr("data.row_missing", language, number=number), []
    detail = (f"{tr('data.row_as_in_file', language, number=int(number))}\n```json\n{capped(raw, language)}\n```\n"
              f"{tr('data.row_as_trained', language)}\n```json\n{capped(normalised, language)}\n```")
    view = report.row_tokens(int(number))
    if view is None:
        return detail, []
    pieces, counts, notes = view
    names = {"answer": tr("token.answer", language), "end": tr("token.end", language)}
    summary = tr("data.token_counts", language, **counts)
    for key in ("untrained", "reasoning_lost", "reasoning_split"):
        if getattr(notes, key):
            summary += " " + tr(f"data.row_{key}", language, replies=", ".join(map(str, getattr(notes, key))))
    shown = [(text, names.get(kind)) for text, kind in pieces[:MAX_ROW_TOKENS]]
    # the legend lists the colour map's names: only the reader's language may be in it
    colours = {names["answer"]: ANSWER_COLOUR, names["end"]: END_COLOUR}
    return detail + "\n\n" + summary, gr.HighlightedText(value=shown, color_map=colours)


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
    replaying = settings.data.replay != "off" and replay_for(settings, parts, model_name_or_path)
    if len(parts) == 1 and not replaying:
        return gr.update(visible=False, value=frame([], MIX_COLUMNS, language)), "", \
            gr.update(choices=[(tr("mix.main_file", language), 1)], value=1)
    reports = [report_of(part, model_name_or_path) for part in parts]
    table = mixing.mix_table(settings.data, reports, replaying)
    rows = [[render(cell, language) for cell in row] for row in table.rows]
    note = render(table.refusal, language) if table.refusal else \
        tr("mix.summary", language, files=len(parts), rows=table.training_rows)
    note = "\n\n".join([note, *(render(w, language) for w in table.warnings)])
    names = [(f"{i}. {r.load.file}", i) for i, r in enumerate(reports, start=1)]
    if replaying:
        note += "\n\n" + render(recipe.replay_decision(settings, sum(len(r.load.rows) for r in reports))[1], language)
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


def capped(value, language: str) -> str:
    """At most MAX_ROW_CHARS of one row go to the page: a huge row must not freeze the browser."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    if len(text) <= MAX_ROW_CHARS:
        return text
    return text[:MAX_ROW_CHARS] + "\n...\n" + tr("data.truncated", language, size=len(text))


def use_upload(file_path: str | None, current: str) -> str:
    # Gradio hands us its own copy of the upload; the user's original file is never touched.
    return file_path or current


def data_sources(request: gr.Request = None):
    """The dataset box's choices: the demo data and, for DPO / KTO, the blind votes collected on each run."""
    language = lang(request)
    voted = [(render(label, language), path) for label, path in preference.vote_sources()]
    return gr.update(choices=[config.DEMO_DATA, *voted])


def localise(request: gr.Request = None):
    """Table headers, chart and axis titles in the reader's language from the first paint (values, not labels)."""
    language = lang(request)
    tables = {name: frame([], keys, language) for name, keys in (
        ("problems", PROBLEM_COLUMNS), ("preview", PREVIEW_COLUMNS), ("percentiles", PERCENTILE_COLUMNS),
        ("findings", FINDING_COLUMNS))}
    return {**tables, "hist": chart_titles("data.histogram", "col.tokens", "col.conversations", language),
            "cdf": chart_titles("data.cumulative", "col.tokens", "col.share", language)}


def recommended_value(recommended, low: float, high: float):
    """The report's recommendation put into its field; anything else (none yet, a value a caller made up) leaves
    the field as the user set it rather than echoing the value back."""
    if isinstance(recommended, (int, float)) and not isinstance(recommended, bool) and low <= recommended <= high:
        return recommended
    return gr.update()


def mix_box(open_: bool) -> SimpleNamespace:
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


def build(ctx: TabContext) -> TabParts:
    # The first action first: choose a file (or keep the demo); the rarely changed settings wait behind "More".
    gr.Markdown(t("data.what_now"), elem_id="data-what-now")
    upload = gr.File(label=t("data.upload"), file_types=[".json", ".jsonl", ".csv", ".parquet", ".txt"], type="filepath")
    form = build_section_form("data", ctx.defaults, beginner_only=True)
    with gr.Accordion(t("data.more_settings"), open=False, elem_id="data-more"):
        form.update(build_section_form("data", ctx.defaults, beginner_only=False))
    mix = mix_box(open_=bool(ctx.defaults.data.extra_datasets))
    report_on = gr.Dropdown(choices=[(t("mix.main_file"), 1)], value=1, label=t("mix.report_on"),
                            elem_id="data-report-on")
    load = gr.Button(t("data.load"), variant="primary", elem_id="data-load")
    summary = gr.Markdown(elem_id="data-summary")
    # the cost-free fix of a language the model hardly knows, one click from its warning (preflight)
    multilingual = gr.Button(t("data.use_multilingual"), visible=False, elem_id="data-use-multilingual")
    applied_note = gr.Markdown(elem_id="data-applied")
    problems = gr.Dataframe(headers=headers(PROBLEM_COLUMNS, "en"), label=t("data.problems"), wrap=True,
                            column_widths=PROBLEM_WIDTHS,
                            max_height=250)
    with gr.Row():
        query = gr.Textbox(label=t("data.search"), scale=3)
        page = gr.Number(value=1, precision=0, label=t("data.page"), scale=1)
        pages = gr.Markdown()
    preview = gr.Dataframe(headers=headers(PREVIEW_COLUMNS, "en"), label=t("data.preview"), wrap=True, max_height=400,
                           column_widths=PREVIEW_WIDTHS,
                           elem_id="data-preview")
    with gr.Row():
        row_number = gr.Number(value=1, precision=0, label=t("data.row"), scale=1)
        row_btn = gr.Button(t("data.show_row"), scale=1)
    row_view = gr.Markdown(elem_id="data-row")
    row_tokens = gr.HighlightedText(label=t("data.row_tokens"), elem_id="data-row-tokens", show_legend=True,
                                    combine_adjacent=True)
    gr.Markdown(t("data.lengths_title"))
    gr.Markdown(t("data.lengths_gloss"), elem_id="data-lengths-gloss")
    percentiles = gr.Dataframe(headers=headers(PERCENTILE_COLUMNS, "en"), label=t("data.lengths"))
    with gr.Row():
        # No block labels: localise names the charts with chart_titles.
        hist = gr.BarPlot(x="tokens", y="conversations", show_label=False, height=260)
        cdf = gr.LinePlot(x="tokens", y="share", show_label=False, height=260)
    cutoff_text = gr.Markdown(elem_id="data-cutoff")
    use_cutoff = gr.Button(t("data.use_cutoff"))
    split_text = gr.Markdown()
    use_split = gr.Button(t("data.use_split"))
    findings = gr.Dataframe(headers=headers(FINDING_COLUMNS, "en"), label=t("data.quality"), wrap=True,
                            column_widths=FINDING_WIDTHS, elem_id="data-findings")
    repair = repair_box.build()
    grower = workshop_box.build()
    ctx.offers.update(workshop_mode=grower["mode"], workshop_run=grower["run"])  # the Train tab's loop
    # Hidden numbers rather than gr.State so API clients receive the recommendations too.
    recommended_cutoff, recommended_share = gr.Number(visible=False), gr.Number(visible=False)
    applied = gr.State()  # the file whose recommendations the form has received (once per file)
    shown = Outputs(summary=summary, problems=problems, preview=preview, pages=pages, percentiles=percentiles,
                    hist=hist, cdf=cdf, cutoff=cutoff_text, split=split_text, findings=findings,
                    recommended_cutoff=recommended_cutoff, recommended_share=recommended_share)
    ctx.demo.load(shown.wire(localise), None, shown.list, api_name=False)
    ctx.demo.load(data_sources, None, form["dataset_path"], api_name=False)
    ctx.tab.select(data_sources, None, form["dataset_path"], api_name="data_sources")

    def wire(full_form: dict) -> None:
        sources = dict(dataset_path=form["dataset_path"], dataset_format=form["dataset_format"],
                       column_mapping=form["column_mapping"], model_name_or_path=full_form["model_name_or_path"])
        sources = dict(**sources, extra_datasets=form["extra_datasets"], report_on=report_on, stage=full_form["stage"])
        fixes = dict(placeholder_values=form["placeholder_values"], system_prompt=form["system_prompt"])
        browsing = dict(**sources, query=query, page=page, **fixes)
        mix_inputs = dict(dataset_path=form["dataset_path"], dataset_format=form["dataset_format"],
                          column_mapping=form["column_mapping"], dataset_share=form["dataset_share"],
                          extra_datasets=form["extra_datasets"], validation_share=form["validation_share"],
                          test_share=form["test_share"], max_samples=form["max_samples"],
                          model_name_or_path=full_form["model_name_or_path"], replay=form["replay"],
                          replay_share=form["replay_share"], num_train_epochs=full_form["num_train_epochs"],
                          max_steps=full_form["max_steps"], stage=full_form["stage"])
        mixing_shown = dict(fn=show_mix, inputs_kwargs=mix_inputs, outputs=[mix.frame, mix.note, report_on])
        handed = Outputs(**shown.components, applied=applied, max_length=full_form["max_length"],
                         validation_share=form["validation_share"], test_share=form["test_share"],
                         applied_note=applied_note, **{name: full_form[name] for name in HANDED_RECIPE_FIELDS})
        loading = dict(fn=handed.wire(load_and_apply),
                       inputs_kwargs=dict(**browsing, applied=applied, max_length=full_form["max_length"],
                                          validation_share=form["validation_share"], test_share=form["test_share"],
                                          finetuning_type=full_form["finetuning_type"],
                                          replay=form["replay"], replay_share=form["replay_share"]),
                       outputs=handed.list,
                       # every way into a load (Load, an upload, the page, a model or stage change) shares two
                       # workers: a huge file being read cannot take the threads other events need
                       concurrency_id="load_data", concurrency_limit=2)
        # An upload is loaded at once: choosing the file is the user's "load".
        upload.upload(use_upload, inputs_kwargs=dict(file_path=upload, current=form["dataset_path"]),
                      outputs=form["dataset_path"], api_name="use_upload").then(**loading, api_name=False)
        load.click(**loading, api_name="load_data").then(**mixing_shown, api_name=False)
        repair_box.wire(repair, form, full_form, summary, loading)
        workshop_box.wire(grower, form, full_form, loading, ctx.tab)
        # The page opens on the built-in demo, loaded, with its plan in the form: a newcomer who goes straight to
        # Train trains a recipe sized to the data, not the declared defaults (3 epochs of batch 16: 18 updates).
        ctx.demo.load(**loading, api_name=False).then(**mixing_shown, api_name=False)
        # Token lengths, the cutoff and the recipe belong to the model: a new model measures the file again (and,
        # being a new model, hands its recommendations to the form once).
        full_form["model_name_or_path"].change(**loading, api_name=False, trigger_mode="always_last")
        # GRPO reads the file as prompts with reference answers: its own report (and recipe) when it is chosen.
        full_form["stage"].change(**loading, api_name=False, trigger_mode="always_last")
        mix.upload.upload(use_upload, inputs_kwargs=dict(file_path=mix.upload, current=mix.path), outputs=mix.path,
                          api_name=False)
        mix.add.click(add_file, inputs_kwargs=dict(extra_datasets=form["extra_datasets"], mix_path=mix.path,
                                                   mix_format=mix.format, mix_mapping=mix.mapping, mix_share=mix.share),
                      outputs=[form["extra_datasets"], mix.note], api_name="add_to_mix")
        mix.remove.click(remove_file,
                         inputs_kwargs=dict(extra_datasets=form["extra_datasets"], number=mix.remove_number),
                         outputs=[form["extra_datasets"], mix.note], api_name="remove_from_mix")
        form["extra_datasets"].change(**mixing_shown, api_name="show_mix")
        form["dataset_share"].change(**mixing_shown, api_name=False)
        for name in ("replay", "replay_share"):
            form[name].change(**mixing_shown, api_name=False)
        report_on.input(shown.wire(analyse), inputs_kwargs=browsing, outputs=shown.list, api_name=False)
        # a value that fixes a finding clears it, and shows in the preview, as it is typed (the report is kept:
        # no file is read again), not only on the next Load
        for name in fixes:
            form[name].change(shown.wire(analyse), inputs_kwargs=browsing, outputs=shown.list, api_name=False,
                              trigger_mode="always_last", show_progress="hidden")
        query.submit(shown.wire(analyse), inputs_kwargs=browsing, outputs=shown.list, api_name="search_data")
        page.submit(shown.wire(analyse), inputs_kwargs=browsing, outputs=shown.list, api_name="page_data")
        summary.change(multilingual_offer, inputs_kwargs=sources, outputs=multilingual, api_name=False,
                       show_progress="hidden")
        multilingual.click(lambda: preflight.MULTILINGUAL_MODEL, None, full_form["model_name_or_path"],
                           api_name="use_multilingual_model")
        row_btn.click(show_row, inputs_kwargs=dict(**sources, **fixes, number=row_number),
                      outputs=[row_view, row_tokens], api_name="show_row")
        use_cutoff.click(lambda recommended, max_length: recommended_value(recommended, 1, 1_000_000),
                         inputs_kwargs=dict(recommended=recommended_cutoff, max_length=full_form["max_length"]),
                         outputs=full_form["max_length"], api_name="use_recommended_cutoff")
        use_split.click(lambda recommended, validation_share: recommended_value(recommended, 0.0, 0.5),
                        inputs_kwargs=dict(recommended=recommended_share, validation_share=form["validation_share"]),
                        outputs=form["validation_share"], api_name="use_recommended_split")

    return TabParts(form, wire)
