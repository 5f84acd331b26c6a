"""Export tab: model files (adapter, merged model, GGUF) with a progress bar, a reload check and download links,
push to the hub, the run's preset and the commands / configs that repeat it without the studio (headless, TRL's
`trl sft` / `dpo` / `kto`, N GPUs)."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from studio.core.paths import FOLDERS, offer_downloads, offered, run_model_refusal
from studio.core.runs import RunFolder, list_runs
from studio.core.text import Msg
from studio.export import export
from studio.training import repeat
from studio.training.jobs import JOB
from . import serve_box
from .forms import TabContext, TabParts
from .handoff import handed_note, pick_run, session_of
from .named import Outputs
from .text import lang, render, t, tr


def run_choices() -> list[str]:
    return [r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped")]


def show_run(run_dir: str, request: gr.Request = None):
    """Summary, repeat commands, preset text and preset download for the chosen run."""
    language = lang(request)
    if not run_dir or refusal(run_dir) or (preset := RunFolder(run_dir).preset()) is None:
        return {"summary": tr("export.pick_run", language), "commands": "", "preset": "",
                "download_preset": gr.update(value=None, visible=False)}
    run = RunFolder(run_dir)
    return {"summary": render(export.run_summary(run_dir), language),
            "commands": repeat.headless_commands(run_dir, language),
            "preset": json.dumps(preset, indent=2, ensure_ascii=False),
            "download_preset": gr.update(value=offered(run.preset_file), visible=True)}


def open_tab(current: str | None, handed: str | None, request: gr.Request = None):
    """On opening the tab: the runs finished so far, the one just trained preselected (Gradio preselects the first
    choice, which fires no change event, so the chosen run is shown here at once)."""
    choices = run_choices()
    before = handed
    value, handed = pick_run(choices, current, handed)
    shown = show_run(value, request)
    if (whose := handed_note(value, handed != before, session_of(request))) is not None:
        shown["summary"] = render(whose, lang(request)) + "\n\n" + shown["summary"]
    return {"run": gr.update(choices=choices, value=value), **shown, "handed": handed}


def refusal(run_dir: str, out_dir: str = "") -> Msg | None:
    """Exports read the run and write beside it or into the chosen folder: both must be the studio's own."""
    if out_dir is not None and not isinstance(out_dir, str):
        return Msg("path.not_a_path")
    out = (out_dir or "").strip()
    return run_model_refusal(run_dir) or (FOLDERS.refusal(out, write=True) if out else None)


def export_files(run_dir: str, out_dir: str, adapter: bool, merged: bool, gguf: bool, gguf_type: str,
                 progress=gr.Progress(), request: gr.Request = None):
    """Write and check the chosen exports; the result lines, and a download for each (a folder as a .zip)."""
    language = lang(request)
    hidden = gr.update(value=None, visible=False)
    if JOB.running:  # each export loads the model again to check it answers as the run did
        return {"result": tr("job.busy_action", language), "downloads": hidden}
    if problem := refusal(run_dir, out_dir):
        return {"result": f"⚠️ {render(problem, language)}", "downloads": hidden}
    results, problems = export.export_selected(run_dir, out_dir.strip() or None, adapter, merged, gguf, gguf_type,
                                               progress=lambda f, m: progress(f, desc=render(m, language)))
    files, kept = offer_downloads([item for r in results for item in export.download_items(r)])
    lines = [f"```\n{r.text(language)}\n```" for r in results] + [f"⚠️ {render(p, language)}" for p in problems]
    lines += [render(k, language) for k in kept]
    return {"result": "\n\n".join(lines) or tr("export.nothing", language),
            "downloads": gr.update(value=files, visible=True) if files else hidden}


def push(run_dir: str, out_dir: str, repo_id: str, token: str, private: bool, request: gr.Request = None) -> str:
    if problem := refusal(run_dir, out_dir):
        return f"⚠️ {render(problem, lang(request))}"
    folder = Path(out_dir.strip() or export.default_export_dir(run_dir or "."))
    folder = folder / "merged" if (folder / "merged").exists() else folder / "adapter"
    try:
        return render(export.push_to_hub(folder, repo_id.strip(), token.strip() or None, private), lang(request))
    except export.ExportError as err:
        return f"⚠️ {render(err.args[0], lang(request))}"


def trl_config(run_dir: str, out_dir: str, request: gr.Request = None):
    if problem := refusal(run_dir, out_dir):
        return f"⚠️ {render(problem, lang(request))}", gr.update(value=None, visible=False)
    target = Path(out_dir.strip() or export.default_export_dir(run_dir or ".")) / "trl"
    try:
        result = repeat.export_trl_config(run_dir, target)
    except export.ExportError as err:
        return f"⚠️ {render(err.args[0], lang(request))}", gr.update(value=None, visible=False)
    except OSError:
        return f"⚠️ {tr('export.write_failed', lang(request))}", gr.update(value=None, visible=False)
    name = Path(result.path).name  # the stage's file: sft.yaml, dpo.yaml, kto.yaml
    return Path(result.path).read_text(encoding="utf-8"), gr.update(value=offered(result.path), label=name,
                                                                    visible=True)


def accelerate(run_dir: str, gpus: float, machines: float, strategy: str, request: gr.Request = None):
    language = lang(request)
    if problem := repeat.counts_problem(gpus, machines) or refusal(run_dir):  # the bounds first: no work before
        return f"# {render(problem, language)}", "", gr.update(value=None, visible=False)
    try:
        text, commands = repeat.accelerate_files(run_dir, int(gpus), strategy, int(machines), language=language)
    except export.ExportError as err:
        return f"# {render(err.args[0], language)}", "", gr.update(value=None, visible=False)
    except OSError:  # its number and text are the system's, not the reader's
        return f"# {tr('export.write_failed', language)}", "", gr.update(value=None, visible=False)
    name = f"accelerate-{strategy}.yaml"
    return text, commands, gr.update(value=offered(export.default_export_dir(run_dir) / name), visible=True)


def repeat_section(run, out_dir) -> tuple:
    """Repeat the run elsewhere: the headless commands, the preset, TRL's own config, and accelerate for a bigger
    machine. Returns the commands, the preset and its download (filled when a run is shown)."""
    gr.Markdown(t("export.repeat_title"))
    # copy only: the download the component offers would be named file.sh; the preset and configs have their own
    commands = gr.Code(label=t("export.commands"), language="shell", buttons=["copy"])
    with gr.Row():
        preset = gr.Code(label=t("export.preset"), language="json", max_lines=16, buttons=["copy"])
        download_preset = gr.DownloadButton(t("export.download_preset"), visible=False, elem_id="export-preset")
    trl_button = gr.Button(t("export.trl"))
    with gr.Row():
        trl_yaml = gr.Code(label=t("export.trl_yaml"), language="yaml", buttons=["copy"])
        trl_file = gr.DownloadButton("sft.yaml", visible=False)
    with gr.Accordion(t("export.gpus_title"), open=False, elem_id="export-gpus"):  # for a bigger machine, later
        with gr.Row():
            gpus = gr.Number(value=2, precision=0, label=t("export.gpus"))
            machines = gr.Number(value=1, precision=0, label=t("export.machines"))
            strategy = gr.Radio(list(repeat.STRATEGIES), value="zero2", label=t("export.strategy"),
                                info=t("export.strategy_info"))
        accelerate_button = gr.Button(t("export.accelerate"))
        with gr.Row():
            accelerate_yaml = gr.Code(label=t("export.accelerate_yaml"), language="yaml", buttons=["copy"])
            accelerate_file = gr.DownloadButton("accelerate.yaml", visible=False)
        launch_commands = gr.Code(label=t("export.launch"), language="shell", buttons=["copy"])
    trl_button.click(trl_config, [run, out_dir], [trl_yaml, trl_file], api_name="trl_config")
    accelerate_button.click(accelerate, [run, gpus, machines, strategy], [accelerate_yaml, launch_commands,
                                                                           accelerate_file], api_name="accelerate")
    return commands, preset, download_preset


def build(ctx: TabContext) -> TabParts:
    with gr.Row():
        run = gr.Dropdown(choices=[], label=t("export.run"), allow_custom_value=True, scale=4,
                          elem_id="export-run")
        refresh = gr.Button(t("export.refresh"), scale=1)
    summary = gr.Markdown(elem_id="export-summary")
    gr.Markdown(t("export.files_title"))
    out_dir = gr.Textbox(label=t("export.out_dir"), placeholder="RUN/export")
    with gr.Row():
        adapter = gr.Checkbox(label=t("export.adapter"), value=False)
        merged = gr.Checkbox(label=t("export.merged"), value=True)
        gguf = gr.Checkbox(label=t("export.gguf"), value=False, info=t("export.gguf_info"))
        gguf_type = gr.Radio(["Q8_0", "F16"], value="Q8_0", label=t("export.gguf_type"))
    go = gr.Button(t("export.go"), variant="primary", elem_id="export-go")
    result = gr.Markdown(elem_id="export-result")
    downloads = gr.File(label=t("export.downloads"), file_count="multiple", interactive=False, visible=False,
                        elem_id="export-downloads")
    with gr.Accordion(t("export.hub"), open=False):
        with gr.Row():
            repo = gr.Textbox(label=t("export.repo"), placeholder="user/model-name")
            token = gr.Textbox(label=t("export.token"), type="password")
            private = gr.Checkbox(label=t("export.private"), value=True)
        push_button = gr.Button(t("export.push"))
        push_status = gr.Markdown()
    commands, preset, download_preset = repeat_section(run, out_dir)
    serve_box.build(run)

    shown = Outputs(summary=summary, commands=commands, preset=preset, download_preset=download_preset)
    run.change(shown.wire(show_run), run, shown.list, api_name="show_export")
    refresh.click(lambda: gr.update(choices=run_choices()), None, run, api_name="export_runs")
    handed = gr.State()  # the freshly trained run this session was already shown
    opened = Outputs(run=run, **shown.components, handed=handed)
    opening = ctx.tab.select(opened.wire(open_tab), [run, handed], opened.list, api_name="open_export")
    # a run the user picks while the tab's offer is still on its way is theirs: the offer arriving later must
    # not replace it
    run.input(None, None, None, cancels=[opening], api_name=False)
    written = Outputs(result=result, downloads=downloads)
    go.click(written.wire(export_files), [run, out_dir, adapter, merged, gguf, gguf_type], written.list,
             api_name="export_files")
    push_button.click(push, [run, out_dir, repo, token, private], push_status, api_name="push_to_hub")
    return TabParts()
