"""Data tab: choose a file (upload, path, demo or hub id), see its problems, a searchable preview, token lengths
measured with the model's own chat template, a cutoff recommendation, a quality report and the split.

Loading a file hands its recommendations (cutoff, validation share) to the settings form once, so the user
never re-types them; changing them afterwards is the user's choice and is kept."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.core import config
from studio.data import data, stats
from studio.data.facts import speaks_about_itself
from studio.plan import preflight
from studio.plan.data_choice import chosen_source, data_source, handed_changes, planned_for, report_of
from . import forms, mix_box, repair_box, workshop_box
from .forms import TabContext, TabParts, build_section_form, recommended_value
from .named import Outputs
from .source_names import data_sources, use_mix_upload, use_upload
from .text import chart_titles, frame, headers, lang, render, t, tr

PROBLEM_COLUMNS = ["col.where", "col.problem"]
PREVIEW_COLUMNS = ["col.row", "col.as_trained", "col.as_in_file"]
PERCENTILE_COLUMNS = ["col.part", "p50", "p90", "p95", "p99", "max", "mean"]
FINDING_COLUMNS = ["col.level", "col.check", "col.finding", "col.rows"]
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
    split = split_text(report, share, render(why, language), language)
    findings = findings_frame(found, language)
    percentiles = frame(report.percentile_table(), PERCENTILE_COLUMNS, language)
    page_text = tr("data.page_of", language, page=min(int(page or 1), pages), pages=pages)
    return {"summary": summary, "problems": problems, "preview": frame(rows, PREVIEW_COLUMNS, language),
            "pages": page_text, "percentiles": percentiles, "hist": hist, "cdf": cdf, "cutoff": cutoff, "split": split,
            "findings": findings, "recommended_cutoff": report.cutoff.cutoff if report.cutoff else None,
            "recommended_share": share}


def split_text(report, share: float, why: str, language: str) -> str:
    """The recommended split in what training holds out: rows, or for plain text its documents and the blocks of
    the cutoff they become (the Hyperparameters tab's plan counts the blocks)."""
    documents = len(report.load.rows)
    _, n_val, _ = data.split_sizes(documents, share, 0.0)
    if report.training_rows != documents:
        blocks = data.split_sizes(report.training_rows, share, 0.0)[1]
        return tr("data.split_blocks", language, share=share, rows=n_val, total=documents, blocks=blocks,
                  all_blocks=report.training_rows, why=why)
    return tr("data.split", language, share=share, rows=n_val, total=documents, why=why)


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
                   page=None, extra_datasets=None, report_on=None, applied=None, applied_values=None,
                   max_length=None, validation_share=None, test_share=None, finetuning_type=None, stage=None,
                   replay=None, replay_share=None, placeholder_values=None, system_prompt=None, progress=gr.Progress(),
                   request: gr.Request = None):
    """Load (as analyse), then hand the main file's recommendations (cutoff, validation and test shares, and the
    recipe sized to its rows: batch, accumulation, epochs, learning rate, evaluation and early stopping) to the
    form, once per file: loading the same file again, paging, or a mixed-in file's report leaves the user's own
    changes alone, and the note of what it handed over, which stays while the form holds those values."""
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
        kept = applied_values if usable else None  # a file that failed to load hands nothing: its note says nothing
        return {**shown, "applied": applied, "max_length": max_length, "validation_share": validation_share,
                "test_share": test_share, "applied_note": gr.update() if kept else "", "applied_values": kept,
                **{name: gr.update() for name in HANDED_RECIPE_FIELDS}}
    language = lang(request)
    # the plan at the cutoff it hands over, on this model: its batch must fit this machine's memory there
    form = dict(finetuning_type=finetuning_type, stage=stage, replay=replay, replay_share=replay_share,
                max_length=cutoff or max_length, model_name_or_path=model_name_or_path)
    plan = planned_for(report.training_rows, model_name_or_path, form, identity=speaks_about_itself(usable))
    test = plan.values()["test_share"]
    note = tr("data.applied", language, cutoff=cutoff, share=share) if cutoff else \
        tr("data.applied_share", language, share=share)
    if test:
        note += " " + tr("data.applied_test", language, share=test, rows=data.split_sizes(len(usable), share, test)[2])
    note += " " + tr("data.applied_recipe", language, steps=plan.steps, epochs=plan.values()["num_train_epochs"],
                     lr=plan.values()["learning_rate"])
    handed = {name: plan.values()[name] for name in HANDED_RECIPE_FIELDS if name in plan.values()}
    handed.update(max_length=cutoff or max_length, validation_share=share, test_share=test)
    return {**shown, "applied": key, **handed, "applied_note": note,
            "applied_values": {"note": note, "values": handed, "language": language},
            **{name: gr.update() for name in HANDED_RECIPE_FIELDS if name not in handed}}


APPLIED_FIELDS = ("max_length", "validation_share", "test_share", *HANDED_RECIPE_FIELDS)


def applied_note_now(applied_values=None, max_length=None, validation_share=None, test_share=None,
                     per_device_train_batch_size=None, gradient_accumulation_steps=None, num_train_epochs=None,
                     learning_rate=None, eval_steps=None, early_stopping_patience=None, replay_share=None,
                     request: gr.Request = None) -> str:
    """The note of what the loaded file handed to the form, while the form still holds those values; once the user
    changes one of them, which ones and that the plan is now theirs: the Data tab never states a plan ("72 steps,
    3 epochs") the form no longer holds."""
    current = {name: value for name, value in locals().items() if name in APPLIED_FIELDS}
    if not applied_values:
        return ""
    if not (changed := handed_changes(applied_values["values"], current)):
        return applied_values["note"]
    language = lang(request) if request is not None else applied_values.get("language", "en")
    changes = tr("list.separator", language).join(
        f"{config.field_text(name, 'label', language)} {_shown(was)} → {_shown(now)}" for name, was, now in changed)
    return tr("data.applied_changed", language, changes=changes)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


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


def capped(value, language: str) -> str:
    """At most MAX_ROW_CHARS of one row go to the page: a huge row must not freeze the browser."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    if len(text) <= MAX_ROW_CHARS:
        return text
    return text[:MAX_ROW_CHARS] + "\n...\n" + tr("data.truncated", language, size=len(text))


def localise(request: gr.Request = None):
    """Table headers, chart and axis titles in the reader's language from the first paint (values, not labels)."""
    language = lang(request)
    tables = {name: frame([], keys, language) for name, keys in (
        ("problems", PROBLEM_COLUMNS), ("preview", PREVIEW_COLUMNS), ("percentiles", PERCENTILE_COLUMNS),
        ("findings", FINDING_COLUMNS))}
    return {**tables, "hist": chart_titles("data.histogram", "col.tokens", "col.conversations", language),
            "cdf": chart_titles("data.cumulative", "col.tokens", "col.share", language)}


def build(ctx: TabContext) -> TabParts:
    """The tab's layout; its events are wired once the whole form exists (wire_loading, wire_mix, wire_views)."""
    page = layout(ctx)
    ctx.offers.update(workshop_mode=page.grower["mode"], workshop_run=page.grower["run"])  # the Train tab's loop
    ctx.demo.load(page.shown.wire(localise), None, page.shown.list, api_name=False, **IN_ORDER)  # before the report
    ctx.demo.load(data_sources, page.form["dataset_path"], page.form["dataset_path"], api_name=False)
    ctx.tab.select(data_sources, page.form["dataset_path"], page.form["dataset_path"], api_name="data_sources")

    def wire(full_form: dict) -> None:
        mixing_shown = mix_view(page, full_form)
        loading = wire_loading(ctx, page, full_form, mixing_shown)
        wire_mix(page, mixing_shown)
        page.load.click(**loading, api_name="load_data").then(**mixing_shown, api_name=False)
        repair_box.wire(page.repair, page.form, full_form, page.summary, loading)
        workshop_box.wire(page.grower, page.form, full_form, loading, ctx.tab)
        wire_views(page, full_form)

    return TabParts(page.form, wire)


def layout(ctx: TabContext) -> SimpleNamespace:
    # The first action first: choose a file (or keep the demo); the rarely changed settings wait behind "More".
    gr.Markdown(t("data.what_now"), elem_id="data-what-now")
    page = SimpleNamespace()
    page.upload = gr.File(label=t("data.upload"), file_types=[".json", ".jsonl", ".csv", ".parquet", ".txt"],
                          type="filepath", elem_id="data-upload")
    page.form = build_section_form("data", ctx.defaults, beginner_only=True)
    with gr.Accordion(t("data.more_settings"), open=False, elem_id="data-more"):
        page.form.update(build_section_form("data", ctx.defaults, beginner_only=False))
    page.mix = mix_box.build(open_=bool(ctx.defaults.data.extra_datasets))
    page.report_on = gr.Dropdown(choices=[(t("mix.main_file"), 1)], value=1, label=t("mix.report_on"),
                                 elem_id="data-report-on")
    page.load = gr.Button(t("data.load"), variant="primary", elem_id="data-load")
    page.summary = gr.Markdown(elem_id="data-summary")
    # the cost-free fix of a language the model hardly knows, one click from its warning (preflight)
    page.multilingual = gr.Button(t("data.use_multilingual"), visible=False, elem_id="data-use-multilingual")
    page.applied_note = gr.Markdown(elem_id="data-applied")
    problems = gr.Dataframe(headers=headers(PROBLEM_COLUMNS, "en"), label=t("data.problems"), wrap=True,
                            column_widths=PROBLEM_WIDTHS, max_height=250)
    with gr.Row():
        page.query = gr.Textbox(label=t("data.search"), scale=3)
        page.page = gr.Number(value=1, precision=0, label=t("data.page"), scale=1)
        pages = gr.Markdown()
    preview = gr.Dataframe(headers=headers(PREVIEW_COLUMNS, "en"), label=t("data.preview"), wrap=True, max_height=400,
                           column_widths=PREVIEW_WIDTHS, elem_id="data-preview")
    with gr.Row():
        page.row_number = gr.Number(value=1, precision=0, label=t("data.row"), scale=1)
        page.row_btn = gr.Button(t("data.show_row"), scale=1)
    page.row_view = gr.Markdown(elem_id="data-row")
    page.row_tokens = gr.HighlightedText(label=t("data.row_tokens"), elem_id="data-row-tokens", show_legend=True,
                                         combine_adjacent=True)
    gr.Markdown(t("data.lengths_title"))
    gr.Markdown(t("data.lengths_gloss"), elem_id="data-lengths-gloss")
    percentiles = gr.Dataframe(headers=headers(PERCENTILE_COLUMNS, "en"), label=t("data.lengths"))
    with gr.Row():
        # No block labels: localise names the charts with chart_titles.
        hist = gr.BarPlot(x="tokens", y="conversations", show_label=False, height=260)
        cdf = gr.LinePlot(x="tokens", y="share", show_label=False, height=260)
    cutoff_text = gr.Markdown(elem_id="data-cutoff")
    page.use_cutoff = gr.Button(t("data.use_cutoff"))
    split_text = gr.Markdown()
    page.use_split = gr.Button(t("data.use_split"))
    findings = gr.Dataframe(headers=headers(FINDING_COLUMNS, "en"), label=t("data.quality"), wrap=True,
                            column_widths=FINDING_WIDTHS, elem_id="data-findings")
    page.repair, page.grower = repair_box.build(), workshop_box.build()
    # Hidden numbers rather than gr.State so API clients receive the recommendations too.
    page.recommended_cutoff, page.recommended_share = gr.Number(visible=False), gr.Number(visible=False)
    page.applied = gr.State()  # the file whose recommendations the form has received (once per file)
    page.applied_values = gr.State()  # what it handed over and the note that says so, while the form holds them
    page.shown = Outputs(summary=page.summary, problems=problems, preview=preview, pages=pages,
                         percentiles=percentiles, hist=hist, cdf=cdf, cutoff=cutoff_text, split=split_text,
                         findings=findings, recommended_cutoff=page.recommended_cutoff,
                         recommended_share=page.recommended_share)
    return page


def sources_of(page: SimpleNamespace, full_form: dict) -> dict:
    """The inputs that choose the file and how it is read (the report's key)."""
    form = page.form
    return dict(dataset_path=form["dataset_path"], dataset_format=form["dataset_format"],
                column_mapping=form["column_mapping"], model_name_or_path=full_form["model_name_or_path"],
                extra_datasets=form["extra_datasets"], report_on=page.report_on, stage=full_form["stage"])


def browsing_of(page: SimpleNamespace, full_form: dict) -> dict:
    fixes = dict(placeholder_values=page.form["placeholder_values"], system_prompt=page.form["system_prompt"])
    return dict(**sources_of(page, full_form), query=page.query, page=page.page, **fixes)


# Every way into a load and every view of the loaded report take turns in one queue, in the order the user acted:
# a fix typed while a file is still being read is shown after that load's report, not overwritten by it (the load
# read the fixes as they were when it began), and a huge file being read holds one thread, not the others' too.
IN_ORDER = dict(concurrency_id="data_report", concurrency_limit=1)


def wire_loading(ctx: TabContext, page: SimpleNamespace, full_form: dict, mixing_shown: dict) -> dict:
    """Every way into a load: Load, an upload, the page opening, a model or stage change. Returns the event's
    arguments for the others (repair, workshop) that end in a load."""
    form = page.form
    handed = Outputs(**page.shown.components, applied=page.applied, max_length=full_form["max_length"],
                     validation_share=form["validation_share"], test_share=form["test_share"],
                     applied_note=page.applied_note, applied_values=page.applied_values,
                     **{name: full_form[name] for name in HANDED_RECIPE_FIELDS})
    # the note follows the form: a value the user changes after the file handed it over is said, never hidden
    gr.on([full_form[name].change for name in APPLIED_FIELDS], applied_note_now,
          inputs_kwargs=dict(applied_values=page.applied_values, **{name: full_form[name] for name in APPLIED_FIELDS}),
          outputs=page.applied_note, api_name=False, trigger_mode="always_last", show_progress="hidden")
    loading = dict(fn=handed.wire(load_and_apply),
                   inputs_kwargs=dict(**browsing_of(page, full_form), applied=page.applied,
                                      applied_values=page.applied_values, max_length=full_form["max_length"],
                                      validation_share=form["validation_share"],
                                      test_share=form["test_share"], finetuning_type=full_form["finetuning_type"],
                                      replay=form["replay"], replay_share=form["replay_share"]),
                   outputs=handed.list, **IN_ORDER)
    # The page opens on the built-in demo, loaded, with its plan in the form: a newcomer who goes straight to
    # Train trains a recipe sized to the data, not the declared defaults (3 epochs of batch 16: 18 updates).
    opening = ctx.demo.load(**loading, api_name=False)
    opening.then(**mixing_shown, api_name=False)
    # What the user does next wins over the page's first report still being made (a minute on a cold start):
    # finishing later, it would overwrite the report of the file just uploaded.
    after_opening = dict(loading, cancels=[opening])
    # An upload is loaded at once (choosing the file is the user's "load"), and the report-on-file list and the
    # mix table then name it, not the file before
    uploaded = page.upload.upload(use_upload, inputs_kwargs=dict(file_path=page.upload, current=form["dataset_path"]),
                                  outputs=form["dataset_path"], api_name="use_upload", cancels=[opening])
    uploaded.then(**after_opening, api_name=False).then(**mixing_shown, api_name=False)
    # Token lengths, the cutoff and the recipe belong to the model: a new model measures the file again (and,
    # being a new model, hands its recommendations to the form once). GRPO reads the file as prompts with
    # reference answers: its own report (and recipe) when it is chosen.
    for name in ("model_name_or_path", "stage"):
        full_form[name].change(**after_opening, api_name=False, trigger_mode="always_last")
    return after_opening


def mix_view(page: SimpleNamespace, full_form: dict) -> dict:
    """The mix table's event arguments (shown after each load and each change of the mix)."""
    form = page.form
    mix_inputs = {name: form[name] for name in ("dataset_path", "dataset_format", "column_mapping", "dataset_share",
                                                "extra_datasets", "validation_share", "test_share", "max_samples",
                                                "replay", "replay_share")}
    mix_inputs.update({name: full_form[name] for name in ("model_name_or_path", "num_train_epochs", "max_steps",
                                                          "stage")})
    return dict(fn=mix_box.show_mix, inputs_kwargs=mix_inputs,
                outputs=[page.mix.frame, page.mix.note, page.report_on])


def wire_mix(page: SimpleNamespace, mixing_shown: dict) -> None:
    """The mix box's events: a file added (or uploaded) or removed, a share changed."""
    form, mix = page.form, page.mix
    mix.upload.upload(use_mix_upload, inputs_kwargs=dict(file_path=mix.upload, current=mix.path), outputs=mix.path,
                      api_name=False)
    mix.add.click(mix_box.add_file, inputs_kwargs=dict(extra_datasets=form["extra_datasets"], mix_path=mix.path,
                                                       mix_format=mix.format, mix_mapping=mix.mapping,
                                                       mix_share=mix.share),
                  outputs=[form["extra_datasets"], mix.note], api_name="add_to_mix")
    mix.remove.click(mix_box.remove_file,
                     inputs_kwargs=dict(extra_datasets=form["extra_datasets"], number=mix.remove_number),
                     outputs=[form["extra_datasets"], mix.note], api_name="remove_from_mix")
    form["extra_datasets"].change(**mixing_shown, api_name="show_mix")
    for name in ("dataset_share", "replay", "replay_share"):
        form[name].change(**mixing_shown, api_name=False)


def wire_views(page: SimpleNamespace, full_form: dict) -> None:
    """The report's views that read a kept report (no file is read again): another file of the mix, the fixes
    as they are typed, search and paging, one row, and the recommendations put into the form."""
    form, shown, browsing = page.form, page.shown, browsing_of(page, full_form)
    analysed = shown.wire(analyse)  # one function: its events queue behind each other, the latest view lands last
    page.report_on.input(analysed, inputs_kwargs=browsing, outputs=shown.list, api_name=False, **IN_ORDER)
    # a value that fixes a finding clears it, and shows in the preview, as it is typed, not only on the next Load.
    # One event for both fixes: two events would run side by side, and the one that started first (reading the
    # other fix as it was then) could finish last and show a preview without the other fix.
    gr.on([form["placeholder_values"].change, form["system_prompt"].change], analysed,
          inputs_kwargs=browsing, outputs=shown.list, api_name=False, trigger_mode="always_last",
          show_progress="hidden", **IN_ORDER)
    page.query.submit(analysed, inputs_kwargs=browsing, outputs=shown.list, api_name="search_data", **IN_ORDER)
    page.page.submit(analysed, inputs_kwargs=browsing, outputs=shown.list, api_name="page_data", **IN_ORDER)
    page.summary.change(multilingual_offer, inputs_kwargs=sources_of(page, full_form), outputs=page.multilingual,
                        api_name=False, show_progress="hidden")
    page.multilingual.click(lambda: preflight.MULTILINGUAL_MODEL, None, full_form["model_name_or_path"],
                            api_name="use_multilingual_model")
    page.row_btn.click(show_row, inputs_kwargs=dict(**sources_of(page, full_form), number=page.row_number,
                                                    placeholder_values=form["placeholder_values"],
                                                    system_prompt=form["system_prompt"]),
                       outputs=[page.row_view, page.row_tokens], api_name="show_row")
    page.use_cutoff.click(lambda recommended, max_length: recommended_value(recommended, 1, 1_000_000),
                          inputs_kwargs=dict(recommended=page.recommended_cutoff, max_length=full_form["max_length"]),
                          outputs=full_form["max_length"], api_name="use_recommended_cutoff")
    page.use_split.click(lambda recommended, validation_share: recommended_value(recommended, 0.0, 0.5),
                         inputs_kwargs=dict(recommended=page.recommended_share,
                                            validation_share=form["validation_share"]),
                         outputs=form["validation_share"], api_name="use_recommended_split")
