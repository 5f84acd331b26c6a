"""Train tab: start / stop / resume the process-wide job, watch it live (polled every two seconds), browse and
compare past runs."""

from __future__ import annotations

import math
from pathlib import Path

import gradio as gr
import pandas as pd

from .. import config, history
from ..jobs import JOB
from ..train import list_runs, overfitting_warning
from .text import t

RESUMABLE = ("stopped", "interrupted", "failed")


def typed_frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Explicit dtypes: an empty first frame would otherwise be 'object' and the plot would keep a nominal axis."""
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


LOSS_COLUMNS = {"step": "int64", "loss": "float64", "series": "str"}


SERIES = ("train", "train (smoothed)", "validation")


def loss_frame(metrics: list[dict]) -> pd.DataFrame:
    """Every frame names all three series: Gradio's line plot keeps the colour categories of the first frame it
    draws, so a series that appears later (train loss after the baseline evaluation) would never be drawn.
    A one-point placeholder draws nothing."""
    rows = history.loss_rows(metrics)
    if rows:
        present = {r["series"] for r in rows}
        rows += [{**rows[0], "series": s} for s in SERIES if s not in present]
    return typed_frame(rows, LOSS_COLUMNS)


def lr_frame(metrics: list[dict]) -> pd.DataFrame:
    rows = [{"step": m["step"], "learning_rate": m["learning_rate"]} for m in metrics if m.get("learning_rate")]
    return typed_frame(rows, {"step": "int64", "learning_rate": "float64"})


def progress_html(snapshot: dict) -> str:
    last = next((m for m in reversed(snapshot.get("metrics", [])) if "max_steps" in m), None)
    if last is None:
        return ""
    done = last["step"] / max(last["max_steps"], 1)
    return (f"<progress value='{last['step']}' max='{last['max_steps']}' style='width:100%;height:18px'></progress>"
            f"<div>step {last['step']} / {last['max_steps']} ({100 * done:.0f}%)</div>")


def status_text(snapshot: dict) -> str:
    state = snapshot.get("status", "idle")
    if state == "idle":
        return "No run in this session yet. Press **Start training**, or resume a run from the history below."
    metrics = snapshot["metrics"]
    last = next((m for m in reversed(metrics) if "loss" in m), None)
    parts = [f"**{state}**: `{snapshot['run_dir']}`"]
    baseline = next((m for m in metrics if "eval_loss" in m and m["step"] == 0), None)
    if baseline:
        parts.append(f"Base model before training: validation loss {baseline['eval_loss']:.4f} "
                     f"(perplexity {math.exp(min(baseline['eval_loss'], 50)):.1f}).")
    if last:
        done = last["step"] / max(last["max_steps"], 1)
        eta = last["elapsed_s"] / done - last["elapsed_s"] if done > 0 else 0
        parts.append(f"step {last['step']} / {last['max_steps']}, epoch {last['epoch']:.2f}, loss {last['loss']:.4f}, "
                     f"{last['tokens_per_s']:.0f} tokens/s, elapsed {last['elapsed_s']:.0f} s"
                     + (f", about {eta:.0f} s left" if state == "running" else ""))
    evals = [m for m in metrics if "eval_loss" in m and m["step"] > 0]
    if evals:
        parts.append(f"validation loss {evals[-1]['eval_loss']:.4f} (perplexity "
                     f"{math.exp(min(evals[-1]['eval_loss'], 50)):.2f}) at step {evals[-1]['step']}")
    warning = overfitting_warning(metrics)
    if warning:
        parts.append(f"**Warning:** {warning}")
    if snapshot.get("error"):
        parts.append(f"**Error:** {snapshot['error']}\n\n**What to try:** {snapshot.get('advice', '')}")
    if state in ("finished", "stopped") and snapshot.get("output"):
        parts.append(f"{state.capitalize()} after {snapshot.get('wall_time_s')} s; saved to `{snapshot['output']}`.")
    return "\n\n".join(parts)


def poll(seen: str | None = None):
    """Status every time; plots and log only when something new arrived since this page's last poll (`seen`),
    so watching a run costs the training thread next to nothing."""
    snapshot = JOB.snapshot()
    metrics = snapshot["metrics"]
    version = f"{snapshot.get('run_dir')}:{len(metrics)}:{snapshot.get('log_count')}"
    if version == seen or not metrics:
        # An empty frame would also fix the plot's categories to none (see loss_frame).
        return status_text(snapshot), progress_html(snapshot), gr.skip(), gr.skip(), gr.skip(), version
    return (status_text(snapshot), progress_html(snapshot), loss_frame(metrics), lr_frame(metrics),
            "\n".join(snapshot["log"]), version)


def start(names: list[str], values: tuple) -> str:
    from ..train import new_run_dir

    settings, problems = config.settings_from_flat(dict(zip(names, values)))
    if problems:
        return "**Fix these settings first:**\n" + "\n".join(f"- `{w}`: {m}" for w, m in problems)
    return JOB.start(settings, new_run_dir())[1]


def resume(run_dir: str) -> str:
    if not run_dir:
        return "Pick a stopped or interrupted run to resume."
    settings, _, problems = config.load_preset(Path(run_dir) / "preset.json")
    if problems:
        return "This run's preset is not valid: " + "; ".join(f"{w}: {m}" for w, m in problems)
    if not list((Path(run_dir) / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        return "This run has no checkpoint to resume from; start it again instead."
    return JOB.start(settings, Path(run_dir), resume=True)[1]


def history_table() -> list[list]:
    rows = []
    for r in list_runs():
        scores = r.get("evaluation")
        held_out = (f"ROUGE-L {scores['base']['rouge_l']:.3f} -> {scores['tuned']['rouge_l']:.3f}, BLEU "
                    f"{scores['base']['bleu']:.1f} -> {scores['tuned']['bleu']:.1f}") if scores else ""
        rows.append([r["name"], r["status"], r.get("method"), r.get("global_step"), _round(r.get("final_train_loss")),
                     _round(r.get("best_eval_loss")), held_out, r.get("started"), r["run_dir"]])
    return rows


def _round(value):
    return round(value, 4) if isinstance(value, (int, float)) else value


def refresh_history():
    runs = list_runs()
    resumable = [r["run_dir"] for r in runs if r["status"] in RESUMABLE]
    every = [r["run_dir"] for r in runs]
    return (history_table(), gr.update(choices=resumable, value=resumable[0] if resumable else None),
            gr.update(choices=every))


def compare_runs(run_dirs: list[str]):
    if not run_dirs:
        return typed_frame([], LOSS_COLUMNS), [], []
    curves, table, diff = history.compare(run_dirs)
    return typed_frame(curves, LOSS_COLUMNS), table, diff


def build(form: dict) -> None:
    names = list(form)
    with gr.Row():
        start_btn = gr.Button(t("train.start"), variant="primary")
        stop_btn = gr.Button(t("train.stop"), variant="stop")
        resume_target = gr.Dropdown(label=t("train.resume_target"), choices=[], allow_custom_value=True, scale=2)
        resume_btn = gr.Button(t("train.resume"))
    message = gr.Markdown()
    progress = gr.HTML()
    status = gr.Markdown(label=t("train.status"))
    with gr.Row():
        plot = gr.LinePlot(x="step", y="loss", color="series", label=t("train.loss"), height=380, scale=2)
        lr_plot = gr.LinePlot(x="step", y="learning_rate", label=t("train.lr"), height=300, scale=1)
    log = gr.Textbox(label=t("train.log"), lines=10, max_lines=10, autoscroll=True)
    with gr.Accordion(t("train.history"), open=False):
        refresh = gr.Button(t("train.refresh"))
        runs = gr.Dataframe(headers=["run", "status", "method", "steps", "final train loss", "best validation loss",
                                     "held-out scores (base -> tuned)", "started", "folder"], label=t("train.history"),
                            wrap=True)
        chosen = gr.Dropdown(label=t("train.compare_pick"), multiselect=True, choices=[], allow_custom_value=True)
        compare_btn = gr.Button(t("train.compare"))
        compare_plot = gr.LinePlot(x="step", y="loss", color="series", height=300)
        compare_table = gr.Dataframe(headers=["run", "status", "steps", "final train loss", "final validation loss",
                                              "best validation loss"])
        compare_diff = gr.Dataframe(label=t("train.diff"), wrap=True)
    timer = gr.Timer(2.0)
    start_btn.click(lambda *values: start(names, values), [form[n] for n in names], message, api_name="start_training")
    stop_btn.click(JOB.stop, None, message, api_name="stop_training")
    resume_btn.click(resume, resume_target, message, api_name="resume_training")
    seen = gr.State()
    timer.tick(poll, seen, [status, progress, plot, lr_plot, log, seen], api_name="poll_training",
               show_progress="hidden")
    refresh.click(refresh_history, None, [runs, resume_target, chosen], api_name="run_history")
    compare_btn.click(compare_runs, chosen, [compare_plot, compare_table, compare_diff], api_name="compare_runs")
