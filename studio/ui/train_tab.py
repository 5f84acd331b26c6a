"""Train tab: start / stop the process-wide job and watch it live (polled every two seconds)."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import config
from ..jobs import JOB
from .text import t


def loss_frame(metrics: list[dict]) -> pd.DataFrame:
    """Long format for one line plot: train loss and validation loss against the step."""
    rows = [{"step": m["step"], "loss": m["loss"], "series": "train"} for m in metrics if "loss" in m]
    rows += [{"step": m["step"], "loss": m["eval_loss"], "series": "validation"} for m in metrics if "eval_loss" in m]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def status_text(snapshot: dict) -> str:
    state = snapshot.get("status", "idle")
    if state == "idle":
        return "No run yet. Press **Start training**."
    last = next((m for m in reversed(snapshot["metrics"]) if "loss" in m), None)
    parts = [f"**{state}**: `{snapshot['run_dir']}`"]
    if last:
        done = last["step"] / max(last["max_steps"], 1)
        eta = last["elapsed_s"] / done - last["elapsed_s"] if done > 0 else 0
        parts.append(f"step {last['step']} / {last['max_steps']} ({100 * done:.0f}%), epoch {last['epoch']:.2f}, "
                     f"loss {last['loss']:.4f}, {last['tokens_per_s']:.0f} tokens/s, elapsed {last['elapsed_s']:.0f} s, "
                     f"about {eta:.0f} s left")
    if snapshot.get("error"):
        parts.append(f"**Error:** {snapshot['error']}\n\n**What to try:** {snapshot.get('advice', '')}")
    if state == "finished":
        parts.append(f"Finished in {snapshot.get('wall_time_s')} s; final train loss "
                     f"{snapshot.get('final_train_loss')}, validation loss {snapshot.get('final_eval_loss')}.")
    return "\n\n".join(parts)


def poll():
    snapshot = JOB.snapshot()
    return status_text(snapshot), loss_frame(snapshot["metrics"]), "\n".join(snapshot["log"])


def start(names: list[str], values: tuple):
    from ..train import new_run_dir

    settings, problems = config.settings_from_flat(dict(zip(names, values)))
    if problems:
        return "**Fix these settings first:**\n" + "\n".join(f"- `{w}`: {m}" for w, m in problems)
    ok, message = JOB.start(settings, new_run_dir())
    return message


def build(form: dict) -> None:
    names = list(form)
    with gr.Row():
        start_btn = gr.Button(t("train.start"), variant="primary")
        stop_btn = gr.Button(t("train.stop"), variant="stop")
    message = gr.Markdown()
    status = gr.Markdown(label=t("train.status"))
    plot = gr.LinePlot(x="step", y="loss", color="series", label=t("train.loss"), height=300)
    log = gr.Textbox(label=t("train.log"), lines=10, max_lines=10, autoscroll=True)
    timer = gr.Timer(2.0)
    start_btn.click(lambda *values: start(names, values), [form[n] for n in names], message, api_name="start_training")
    stop_btn.click(JOB.stop, None, message, api_name="stop_training")
    timer.tick(poll, None, [status, plot, log], api_name="poll_training", show_progress="hidden")
