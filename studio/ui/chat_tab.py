"""Chat tab: the same prompt answered by the base and the tuned model, with latency."""

from __future__ import annotations

import threading

import gradio as gr

from .. import config
from ..train import list_runs
from .forms import build_section_form
from .text import t

# One loaded pair at a time: a second model copy would double memory. Guarded, since tabs share the process.
_LOADED: dict = {}
_LOCK = threading.Lock()


def finished_runs() -> list[str]:
    return [r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped") and r.get("output")]


def get_pair(run_dir: str):
    from ..chat import ChatPair

    with _LOCK:
        if _LOADED.get("run_dir") != run_dir:
            _LOADED.clear()  # free the previous run's model before loading the next
            _LOADED.update(run_dir=run_dir, pair=ChatPair.from_run(run_dir, progress=lambda _: None))
        return _LOADED["pair"]


def answer_both(run_dir: str, prompt: str, max_new_tokens, temperature, top_p, repetition_penalty):
    if not run_dir:
        return "Train a model first (Train tab), then pick its run here.", ""
    if not (prompt or "").strip():
        return "Type a message first.", ""
    gen = config.GenerationSettings(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                                    top_p=float(top_p), repetition_penalty=float(repetition_penalty))
    pair = get_pair(run_dir)
    messages = [{"role": "user", "content": prompt}]
    out = []
    for tuned in (False, True):
        a = pair.answer(messages, tuned, gen)
        out.append(f"{a.text}\n\n_{a.new_tokens} tokens in {a.seconds:.2f} s ({a.ms_per_token:.0f} ms/token)_")
    return tuple(out)


def build(defaults) -> dict:
    with gr.Row():
        run = gr.Dropdown(choices=finished_runs(), label=t("chat.run"), allow_custom_value=True)
        refresh = gr.Button(t("chat.refresh"))
    prompt = gr.Textbox(label=t("chat.prompt"), value="Who are you?")
    with gr.Accordion(t("hyper.advanced"), open=False):
        form = build_section_form("generation", defaults)
    send = gr.Button(t("chat.send"), variant="primary")
    with gr.Row():
        base = gr.Markdown(label=t("chat.base"), container=True)
        tuned = gr.Markdown(label=t("chat.tuned"), container=True)
    refresh.click(lambda: gr.update(choices=finished_runs()), None, run, api_name="list_runs")
    inputs = [run, prompt, form["max_new_tokens"], form["temperature"], form["top_p"], form["repetition_penalty"]]
    send.click(answer_both, inputs, [base, tuned], api_name="chat")
    return form
