"""The Export tab's Serve switch: the chosen run over the OpenAI chat-completions API on this machine
(studio/chat/serve.py), with the base URL, the model ids and examples to copy. Another host, with a key, is
`launch.py serve RUN --host H` on the command line."""

from __future__ import annotations

import gradio as gr

from studio.chat import serve
from studio.core.paths import run_model_refusal
from studio.core.text import reason_of
from .text import lang, render, t, tr


def serve_view(run_dir=None, port=8000, request: gr.Request = None):
    """Start serving the run; what to copy, or why it could not start."""
    language = lang(request)
    if not run_dir or not isinstance(run_dir, str):
        return tr("export.no_run", language), "", ""
    if refusal := run_model_refusal(run_dir):
        return render(refusal, language), "", ""
    try:
        serving = serve.serve_run(run_dir, int(port or 8000))
    except (OSError, ValueError) as err:
        return render(reason_of(err), language), "", ""
    shown = serve.examples(serving, tr("chat.default_prompt", language))
    return (tr("serve.running", language, url=shown["base_url"], tuned=shown["tuned"], base=shown["base"]),
            shown["curl"], shown["python"])


def stop_view(request: gr.Request = None):
    stopped = serve.stop_serving()
    return tr("serve.stopped" if stopped else "serve.not_running", lang(request)), "", ""


def build(run: gr.components.Component) -> None:
    with gr.Accordion(t("serve.title"), open=False, elem_id="serve-box"):
        gr.Markdown(t("serve.intro"))
        with gr.Row():
            port = gr.Number(value=8000, precision=0, minimum=1024, maximum=65535, label=t("serve.port"), scale=1)
            start = gr.Button(t("serve.start"), variant="primary", scale=2, elem_id="serve-start")
            stop = gr.Button(t("serve.stop"), scale=1)
        note = gr.Markdown(elem_id="serve-note")
        with gr.Row():
            curl = gr.Code(label="curl", language="shell", elem_id="serve-curl", buttons=["copy"])
            python = gr.Code(label="Python (openai)", language="python", buttons=["copy"])
    start.click(serve_view, inputs_kwargs=dict(run_dir=run, port=port), outputs=[note, curl, python],
                api_name="serve_run")
    stop.click(stop_view, None, [note, curl, python], api_name="stop_serving")
