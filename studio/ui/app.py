"""The studio's page: one module per tab, placed in gr.Tabs. Settings components are shared by name."""

from __future__ import annotations

import gradio as gr

from ..config import Settings, all_fields
from . import chat_tab, data_tab, export_tab, hyperparams_tab, train_tab
from .text import I18N, t


def build_app() -> gr.Blocks:
    defaults = Settings()
    with gr.Blocks(title="Fine-tuning Studio") as demo:
        gr.Markdown(t("title"))
        gr.Markdown(t("subtitle"))
        with gr.Tabs():
            with gr.Tab(t("tab.data"), id="data"):
                form, wire_data = data_tab.build(defaults, demo)
            with gr.Tab(t("tab.hyper"), id="hyper"):
                hyper_form, hardware_md, wire_presets = hyperparams_tab.build(defaults)
            form.update(hyper_form)
            # Declaration order (studio/config.py) is the API's parameter order, whatever the layout.
            form = {name: form[name] for _, name, _ in all_fields() if name in form}
            with gr.Tab(t("tab.train"), id="train"):
                train_tab.build(dict(form), demo)  # training needs no generation settings
            with gr.Tab(t("tab.chat"), id="chat") as chat:
                form.update(chat_tab.build(defaults, demo, chat))
            with gr.Tab(t("tab.export"), id="export") as export:
                export_tab.build(export)
        full_form = {name: form[name] for _, name, _ in all_fields()}
        wire_presets(full_form)
        wire_data(full_form)
        inputs = [form["precision"], form["gradient_checkpointing"], form["finetuning_type"], form["packing"]]
        # Detecting hardware imports torch: done after the page is served, not while building it.
        demo.load(hyperparams_tab.hardware_view, inputs, [hardware_md, form["finetuning_type"]], api_name="hardware")
    return demo


def launch_app(host: str = "127.0.0.1", port: int = 7860, auth=None, share: bool = False, block: bool = True):
    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    return demo.launch(server_name=host, server_port=port, auth=auth, share=share, i18n=I18N,
                       prevent_thread_lock=not block, show_error=True)
