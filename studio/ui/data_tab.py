"""Data tab: choose a file (upload, path, demo or hub id), see its problems, a searchable preview, token lengths
measured with the model's own chat template, a cutoff recommendation, a quality report and the split."""

from __future__ import annotations

import json
import threading

import gradio as gr
import pandas as pd

from .. import config, data, stats
from .forms import build_section_form
from .text import t

# The last report, per file + format + mapping + model, so paging and searching do not re-read the file.
_CACHE: dict = {}
_LOCK = threading.Lock()
_TOKENIZERS: dict = {}


def _tokenizer(model: str):
    if model not in _TOKENIZERS:
        from ..models import load_tokenizer, resolve_model_path

        _TOKENIZERS.clear()  # one at a time: they can be large
        _TOKENIZERS[model] = load_tokenizer(resolve_model_path(model, progress=lambda _: None))
    return _TOKENIZERS[model]


def get_report(path: str, fmt: str, mapping_text: str, model: str, progress=None) -> stats.DataReport:
    key = (path, fmt, mapping_text, model)
    with _LOCK:
        if _CACHE.get("key") != key:
            mapping, _ = config.parse_mapping(mapping_text or "")
            try:
                tokenizer = _tokenizer(model) if model else None
                report = stats.build_report(path, fmt, None, mapping or None, progress=progress, tokenizer=tokenizer)
            except Exception as err:  # the tokenizer's model could not be had: report the data without lengths
                report = stats.build_report(path, fmt, None, mapping or None)
                report.tokenizer_problem = f"{type(err).__name__}: {err}"
            _CACHE.update(key=key, report=report)
        return _CACHE["report"]


def analyse(path, fmt, mapping_text, model, query, page, progress=gr.Progress()):
    report = get_report(path or "demo", fmt or "auto", mapping_text, model, progress=lambda f: progress(f))
    _, mapping_problems = config.parse_mapping(mapping_text or "")
    problems = [[w, m] for w, m in (mapping_problems + report.load.problems)[:1000]]
    rows, pages = data.preview_rows(report.load, query, page)
    summary = data.summary_text(report.load)
    if report.tokenizer_problem:
        summary += f"\n\nToken lengths could not be measured: {report.tokenizer_problem}"
    lengths = report.lengths
    hist = pd.DataFrame(stats.histogram(lengths.total) if lengths is not None else [],
                        columns=["tokens", "conversations"]).astype("int64")
    cdf = pd.DataFrame(stats.cumulative(lengths.total) if lengths is not None else [],
                       columns=["tokens", "share"]).astype({"tokens": "int64", "share": "float64"})
    cutoff = report.cutoff.message if report.cutoff else ""
    share, why = report.validation_share
    n_train, n_val, n_test = data.split_sizes(len(report.load.rows), share, 0.0)
    split = f"Recommended validation share **{share:.0%}** ({n_val} of {len(report.load.rows)} rows). {why}"
    findings = [[f.level, f.check, f.message, ", ".join(map(str, f.rows[:50])) + (" ..." if len(f.rows) > 50 else "")]
                for f in report.findings]
    return (summary, problems, rows, f"page {min(int(page or 1), pages)} of {pages}", report.percentile_table(), hist,
            cdf, cutoff, split, findings, report.cutoff.cutoff if report.cutoff else None, share)


def show_row(path, fmt, mapping_text, model, number):
    report = get_report(path or "demo", fmt or "auto", mapping_text, model)
    raw, normalised = data.row_detail(report.load, int(number or 0))
    if raw is None:
        return f"Row {number} is not among the usable rows (see the problem list)."
    return (f"**Row {int(number)} as in the file**\n```json\n{json.dumps(raw, ensure_ascii=False, indent=2)}\n```\n"
            f"**As training sees it**\n```json\n{json.dumps(normalised, ensure_ascii=False, indent=2)}\n```")


def use_upload(file_path: str | None, current: str) -> str:
    # Gradio hands us its own copy of the upload; the user's original file is never touched.
    return file_path or current


def build(defaults):
    """Returns (form components by field name, wire). `wire(form)` connects what needs other tabs' fields."""
    form = build_section_form("data", defaults)
    upload = gr.File(label=t("data.upload"), file_types=[".json", ".jsonl", ".csv", ".parquet"], type="filepath")
    load = gr.Button(t("data.load"), variant="primary")
    summary = gr.Markdown()
    problems = gr.Dataframe(headers=["where", "problem"], label=t("data.problems"), wrap=True, max_height=250)
    with gr.Row():
        query = gr.Textbox(label=t("data.search"), scale=3)
        page = gr.Number(value=1, minimum=1, precision=0, label=t("data.page"), scale=1)
        pages = gr.Markdown()
    preview = gr.Dataframe(headers=["row", "as training sees it", "as in the file"], label=t("data.preview"), wrap=True, max_height=400)
    with gr.Row():
        row_number = gr.Number(value=1, minimum=1, precision=0, label=t("data.row"), scale=1)
        row_btn = gr.Button(t("data.show_row"), scale=1)
    row_view = gr.Markdown()
    gr.Markdown(t("data.lengths_title"))
    percentiles = gr.Dataframe(headers=["tokens", "p50", "p90", "p95", "p99", "max", "mean"], label=t("data.lengths"))
    with gr.Row():
        hist = gr.BarPlot(x="tokens", y="conversations", label=t("data.histogram"), height=260)
        cdf = gr.LinePlot(x="tokens", y="share", label=t("data.cumulative"), height=260)
    cutoff_text = gr.Markdown()
    use_cutoff = gr.Button(t("data.use_cutoff"))
    split_text = gr.Markdown()
    use_split = gr.Button(t("data.use_split"))
    findings = gr.Dataframe(headers=["level", "check", "finding", "rows"], label=t("data.quality"), wrap=True)
    # Hidden numbers rather than gr.State so API clients receive the recommendations too.
    recommended_cutoff, recommended_share = gr.Number(visible=False), gr.Number(visible=False)

    def wire(full_form: dict) -> None:
        sources = [form["dataset_path"], form["dataset_format"], form["column_mapping"], full_form["model_name_or_path"]]
        outputs = [summary, problems, preview, pages, percentiles, hist, cdf, cutoff_text, split_text, findings,
                   recommended_cutoff, recommended_share]
        upload.upload(use_upload, [upload, form["dataset_path"]], form["dataset_path"], api_name="use_upload")
        load.click(analyse, sources + [query, page], outputs, api_name="load_data")
        query.submit(analyse, sources + [query, page], outputs, api_name="search_data")
        page.submit(analyse, sources + [query, page], outputs, api_name="page_data")
        row_btn.click(show_row, sources + [row_number], row_view, api_name="show_row")
        use_cutoff.click(lambda c, current: c or current, [recommended_cutoff, full_form["max_length"]],
                         full_form["max_length"], api_name="use_recommended_cutoff")
        use_split.click(lambda s, current: current if s is None else s, [recommended_share, form["validation_share"]],
                        form["validation_share"], api_name="use_recommended_split")

    return form, wire
