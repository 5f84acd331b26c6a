"""The run history (Train tab): every run with its status, losses and held-out scores, the resumable ones for the
Resume list, and runs compared side by side (curves, table, the settings that differ)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.core.runs import RunFolder, list_runs
from studio.core.text import word
from studio.training import history
from .curves import LOSS_COLUMNS, translated_series, typed_frame
from .text import frame, headers, lang, render, t, tr

RESUMABLE = ("stopped", "interrupted", "failed")
HISTORY_COLUMNS = ["col.run", "col.status", "col.method", "col.steps", "col.final_train_loss",
                   "col.best_validation_loss", "col.held_out", "col.started", "col.folder"]
# Left to itself the table gives the long folder paths the room and squeezes headers to a letter per line.
HISTORY_WIDTHS = ["16%", "8%", "7%", "6%", "9%", "9%", "14%", "12%", "19%"]
COMPARE_COLUMNS = ["col.run", "col.status", "col.steps", "col.final_train_loss", "col.final_validation_loss",
                   "col.best_validation_loss", "col.verdict", "col.data_version"]


def state_word(state: str, language: str) -> str:
    return render(word("state", state), language)


def history_table(language: str = "en") -> list[list]:
    rows = []
    for r in list_runs():
        scores = r.get("evaluation")
        held_out = (f"ROUGE-L {scores['base']['rouge_l']:.3f} -> {scores['tuned']['rouge_l']:.3f}, BLEU "
                    f"{scores['base']['bleu']:.1f} -> {scores['tuned']['bleu']:.1f}") if scores else ""
        rows.append([r["name"], state_word(r["status"], language), r.get("method"), r.get("global_step"),
                     _round(r.get("final_train_loss")), _round(r.get("best_eval_loss")), held_out, r.get("started"),
                     r["run_dir"]])
    return rows


def _round(value):
    return round(value, 4) if isinstance(value, (int, float)) else value


def refresh_history(request: gr.Request = None):
    language = lang(request)
    runs = list_runs()
    every = [r["run_dir"] for r in runs]
    return (frame(history_table(language), HISTORY_COLUMNS, language), resume_list(runs), gr.update(choices=every))


def resume_list(runs: list[dict], chosen: str | None = None):
    """The Resume list: the resumable runs by their folder's name (the value is the folder), `chosen` (else the
    newest) selected."""
    resumable = [r["run_dir"] for r in runs if r["status"] in RESUMABLE]
    if chosen is not None and chosen not in resumable:
        resumable.insert(0, chosen)
    return gr.update(choices=[(Path(r).name, r) for r in resumable],
                     value=chosen or (resumable[0] if resumable else None))


def compare_runs(run_dirs: list[str], request: gr.Request = None):
    language = lang(request)
    run_dirs, refusals = history.comparable(run_dirs)
    for refusal in refusals[:3]:  # said beside the table; the allowed runs are still compared
        gr.Warning(render(refusal, language))
    if not run_dirs:
        return typed_frame([], LOSS_COLUMNS), frame([], COMPARE_COLUMNS, language), []
    curves, table, diff = history.compare(run_dirs)
    table = [[row[0], state_word(row[1], language), *row[2:]] for row in table]
    names = [Path(r).name for r in run_dirs if RunFolder(r).has_preset()]
    return (translated_series(typed_frame(curves, LOSS_COLUMNS), language),
            frame(table, COMPARE_COLUMNS, language),
            pd.DataFrame(diff, columns=[tr("col.setting", language), *names]) if diff else [])


def layout() -> SimpleNamespace:
    box = SimpleNamespace()
    with gr.Accordion(t("train.history"), open=False):
        box.refresh = gr.Button(t("train.refresh"))
        box.runs = gr.Dataframe(headers=headers(HISTORY_COLUMNS), label=t("train.history"), wrap=True,
                                column_widths=HISTORY_WIDTHS)
        box.chosen = gr.Dropdown(label=t("train.compare_pick"), multiselect=True, choices=[], allow_custom_value=True)
        box.compare_btn = gr.Button(t("train.compare"))
        box.compare_plot = gr.LinePlot(x="step", y="loss", color="series", show_label=False, height=300)
        box.compare_table = gr.Dataframe(headers=headers(COMPARE_COLUMNS))
        box.compare_diff = gr.Dataframe(label=t("train.diff"), wrap=True)
    return box


def wire(box: SimpleNamespace, resume_target) -> None:
    box.refresh.click(refresh_history, None, [box.runs, resume_target, box.chosen], api_name="run_history")
    box.compare_btn.click(compare_runs, box.chosen, [box.compare_plot, box.compare_table, box.compare_diff],
                          api_name="compare_runs")
