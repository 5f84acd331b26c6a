"""Train tab: start / stop / resume the process-wide job, watch it live (polled every two seconds), browse and
compare past runs."""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio.core import config, presets
from studio.core.paths import run_model_refusal, settings_refusals
from studio.core.runs import RunFolder, list_runs
from studio.core.text import Msg
from studio.chat import drift
from studio.plan import cost
from studio.training.jobs import JOB
from studio.training.run_status import status_messages
from . import history_box
from .curves import PREFERENCE_SERIES_KEYS, SERIES_KEYS, loss_frame, lr_frame, preference_frame
from .forms import TabContext, TabParts, form_settings, takes_form
from .handoff import session_of
from .history_box import COMPARE_COLUMNS, HISTORY_COLUMNS, RESUMABLE, resume_list
from .named import Outputs
from .text import SERIES_COLOURS, chart_titles, frame, headers, lang, render, t, tr


def progress_html(snapshot: dict, language: str = "en") -> str:
    last = next((m for m in reversed(snapshot.get("metrics", [])) if "max_steps" in m), None)
    if last is None:
        return ""
    done = last["step"] / max(last["max_steps"], 1)
    words = tr("progress.step", language, step=last["step"], max_steps=last["max_steps"], percent=100 * done)
    return (f"<progress value='{last['step']}' max='{last['max_steps']}' style='width:100%;height:18px'></progress>"
            f"<div>{words}</div>")


def status_text(snapshot: dict, language: str = "en") -> str:
    return "\n\n".join(str(render(part, language)) for part in
                       status_messages(snapshot, run_settings(snapshot.get("run_dir"))))


def log_text(events: list[dict], language: str) -> str:
    return "\n".join(f"[{e.get('time', '')}] {event_text(e, language)}" for e in events)


def event_text(event: dict, language: str) -> str:
    """A log line in the reader's language; its English text where the message is unknown (an older studio)."""
    try:
        return render(Msg.from_json(event), language) if "key" in event else event.get("text", "")
    except (KeyError, IndexError, ValueError):
        return event.get("text", "")


def poll(seen: str | None = None, message: str | None = None, request: gr.Request = None):
    """Status every time; plots and log only when something new arrived since this page's last poll (`seen`),
    so watching a run costs the training thread next to nothing. `message`: the line under the buttons, cleared
    once it only says the run that has ended was started or is stopping."""
    language = lang(request)
    snapshot = JOB.snapshot()
    metrics = snapshot["metrics"]
    state, run_dir = snapshot.get("status", "idle"), snapshot.get("run_dir")
    version = f"{state}:{len(metrics)}:{snapshot.get('log_count')}:{run_dir}"  # the folder last: it may hold ':'
    status = status_text(snapshot, language)
    if (whose := ownership(snapshot, JOB.owner, session_of(request))) is not None:
        status = render(whose, language) + "\n\n" + status
    running = state in ("running", "stopping")
    shown = {"status": status, "progress": progress_html(snapshot, language), "seen": version,
             "stop": gr.update(interactive=running)}  # no red Stop while nothing runs
    last = seen.split(":", 3) if seen else [None]  # the version this page saw last: (state, …, folder)
    if (last[0], last[-1]) != (state, str(run_dir)) and state in RESUMABLE and RunFolder(run_dir).last_checkpoint() is not None:
        # The run just stopped (or failed) with a checkpoint: Resume is offered it at once, with no trip to the
        # history and its Refresh button first.
        shown["resume_target"] = resume_list(list_runs(), run_dir)
    over = state not in ("idle", "running", "stopping")
    if over:  # a State: a new value (a run that ended since this page last looked) refreshes the cost line, whose
        shown["ended"] = f"{state}:{run_dir}"  # time per step comes from the last finished run (wired in `wire`)
    if over and message and message in outdated_messages(run_dir, language):
        shown["message"] = ""  # the status says how the run ended
    if last[-1] != str(run_dir) and not metrics and state != "idle":  # a new run: none of the last run's views
        return {**shown, "log": log_text(snapshot["log"], language), "loss": gr.update(value=None),
                "lr": gr.update(value=None), "drift": gr.update(visible=False), "sampled": gr.update(visible=False),
                "preference": gr.update(visible=False)}
    if version == seen or not metrics:  # the plots and log as they are: an empty frame would also fix the plot's
        return shown                    # colour categories to none (see loss_frame)
    return {**shown, "loss": loss_frame(metrics, language), "lr": lr_frame(metrics),
            "log": log_text(snapshot["log"], language), "preference": preference_frame(metrics, language),
            "drift": drift_samples(snapshot, language), "sampled": sampled_answers(snapshot, language)}


def outdated_messages(run_dir: str, language: str) -> tuple[str, ...]:
    """The lines a Start, Resume or Stop left that mean nothing once the run has ended."""
    return render(Msg("job.started", name=Path(run_dir).name), language), render(Msg("job.stopping"), language)


def ownership(snapshot: dict, owner: str, session: str) -> Msg | None:
    """A run this browser session did not start is labelled as such, with when it started: a fresh page does not
    present another person's run as its own (Stop asks twice before stopping it)."""
    if snapshot.get("status", "idle") == "idle" or not owner or owner == session:
        return None
    started = str(snapshot.get("started") or "").replace("T", " ")[:16]
    running = snapshot.get("status") in ("running", "stopping")
    return Msg("status.other_session_running" if running else "status.other_session_done", started=started)


def drift_samples(snapshot: dict, language: str):
    """The drift check's base vs tuned answers, once the run has them (hidden before)."""
    rows = drift.sample_rows(RunFolder(snapshot["run_dir"]).drift(), language) if snapshot.get("drift") else []
    return gr.update(value=frame(rows, drift.SAMPLE_COLUMNS, language), visible=bool(rows),
                     label=tr("drift.samples_title", language))


SAMPLED_COLUMNS = ["col.prompt", "col.sampled_answer", "col.rewards"]
SAMPLED_SHOWN = 8  # a GRPO run's last sampled answers on the page


def sampled_answers(snapshot: dict, language: str):
    """A GRPO run's last sampled answers with what each reward gave them (hidden for other runs)."""
    rows = RunFolder(snapshot["run_dir"]).completions(SAMPLED_SHOWN) if snapshot.get("run_dir") else []
    shown = [[str(r.get("prompt", ""))[:500], str(r.get("completion", ""))[:2000], reward_words(r, language)]
             for r in rows]
    return gr.update(value=frame(shown, SAMPLED_COLUMNS, language), visible=bool(shown),
                     label=tr("train.sampled", language))


def reward_words(sample: dict, language: str) -> str:
    """'answer matches 1.00 · format 0.00' in the reader's language ('-': the reward could not score it)."""
    def named(name: str) -> str:  # a built-in reward in the reader's language; the user's own by its name
        return tr(f"series.reward_{name}", language) if f"series.reward_{name}" in SERIES_COLOURS else name

    return tr("list.separator", language).join(
        f"{named(name)} {'-' if value is None else f'{value:.2f}'}" for name, value in (sample.get("rewards") or {}).items())


def problems_text(problems: list, language: str) -> str:
    return tr("train.fix_first", language) + "\n" + "\n".join(
        f"- `{render(w, language)}`: {render(m, language)}" for w, m in problems)


@functools.lru_cache(maxsize=16)
def _preset_settings(run_dir: str, mtime: float):
    return RunFolder(run_dir).settings()


def run_settings(run_dir: str | None):
    """The settings a run was started with (its preset.json); read once per change, since the status polls."""
    try:
        return _preset_settings(run_dir, RunFolder(run_dir).preset_file.stat().st_mtime) if run_dir else None
    except OSError:
        return None


PILOT_ROWS = 64  # enough for a few steps and a validation row; cheap on any machine


def pilot_values(values: dict) -> dict:
    """The form as it is, on the first rows only (the user's "Use only the first N rows", else 64) for one
    epoch, as a pilot (no replay, drift check or verdict: config's `pilot`): the whole pipeline (data, template,
    model, saving) checked and a step timed before the full run is paid for."""
    max_samples = values.get("max_samples")
    pilot = int(max_samples) if isinstance(max_samples, (int, float)) and max_samples > 0 else PILOT_ROWS
    return {**values, "max_samples": pilot, "num_train_epochs": 1.0, "max_steps": -1, "pilot": True}


def start(values: dict, language: str = "en", session: str = "") -> str:
    settings, problems = form_settings(values)
    if problems:
        return problems_text(problems, language)
    return render(JOB.start(settings, owner=session)[1], language)


def stop(request: gr.Request = None) -> str:
    return render(JOB.stop(session_of(request)), lang(request))


def resume(run_dir: str, trust_remote_code: bool = False, request: gr.Request = None) -> str:
    """Resume a run from its last checkpoint. `trust_remote_code` is the form's switch: a run whose preset runs
    the model's own code resumes only when the user has turned it on in this session, as for import and the CLI."""
    language = lang(request)
    if not run_dir or not isinstance(run_dir, str):
        return tr("train.pick_resume", language)
    if refusal := run_model_refusal(run_dir):  # confined, and no link in it leads out
        return render(refusal, language)
    run = RunFolder(run_dir)
    settings, _, problems = presets.load_preset(run.preset_file)
    if problems:
        return tr("train.bad_preset", language, problems=render(
            [Msg("problem", where=w, problem=m) for w, m in problems], language))
    if refusal := presets.remote_code_refusal(settings, trust_remote_code is True):
        return render(refusal, language)
    if refused := settings_refusals(settings):  # the preset's model and data, checked as a new run's are
        return problems_text(refused, language)
    if run.last_checkpoint() is None:
        return tr("train.no_checkpoint", language)
    return render(JOB.start(settings, Path(run_dir), resume=True, owner=session_of(request))[1], language)


def cost_view(values: dict, language: str) -> str:
    """The cost line next to the Train button: steps, time on this machine, memory (studio/plan/cost.py). Settings
    with problems give none: the Hyperparameters tab names them and Start refuses them."""
    from studio.plan.form_plan import memory_parts, situation_for

    settings, problems = form_settings(values)
    if problems:
        return ""
    situation = situation_for(settings)
    memory = memory_parts(settings, situation)
    step = cost.step_time(settings, list_runs(), run_settings, situation.devices)
    lines = cost.cost_lines(settings, situation.rows, step, memory["fit"] if memory else None, situation.devices,
                            situation.identity)
    return tr("cost.title", language) + "\n" + "\n".join(f"- {render(line, language)}" for line in lines)


def aim_at_misses(request: gr.Request = None):
    """The run just trained (or the newest finished one): if its held-out answers missed, the Data tab's workshop
    opens aimed at them; otherwise a note says there is nothing to aim at."""
    from studio.chat.teacher import seeds_from_misses

    language = lang(request)
    finished = [r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped")]
    run = str(JOB.run_dir) if JOB.run_dir and not JOB.running else (finished[0] if finished else None)
    misses = seeds_from_misses(RunFolder(run).verdict() or {}) if run else []
    if not misses:
        return {"message": tr("train.no_misses", language)}
    return {"tabs": gr.Tabs(selected="data"), "mode": "misses", "run": gr.update(choices=finished, value=run),
            "message": tr("train.misses_offered", language, count=len(misses), run=Path(run).name)}


def build(ctx: TabContext) -> TabParts:
    """The tab's layout, the poll that follows the run, the history, and (once the form exists) Start and Pilot."""
    page = layout()
    page.stop_btn.click(stop, None, page.message, api_name="stop_training")
    # The API's order is the one clients read (status, progress, loss, learning rate, log first).
    watched = Outputs(status=page.status, progress=page.progress, loss=page.plot, lr=page.lr_plot, log=page.log,
                      seen=page.seen, preference=page.pref_plot, drift=page.drift_table, sampled=page.sampled,
                      resume_target=page.resume_target, message=page.message, ended=page.ended, stop=page.stop_btn)
    page.timer.tick(watched.wire(poll), [page.seen, page.message], watched.list, api_name="poll_training",
                    show_progress="hidden")
    history_box.wire(page.history, page.resume_target)
    # the log follows its new lines (Gradio's autoscroll did not, measured in Chromium, and is off: it pulled a
    # reader who had scrolled up back down when their scroll event came late), unless the reader has scrolled up to
    # read: then it stays where they are
    page.log.change(None, None, None, js=FOLLOW_LOG, api_name=False)
    titled = Outputs(runs=page.history.runs, compare_table=page.history.compare_table, loss=page.plot,
                     compare_plot=page.history.compare_plot, lr=page.lr_plot, preference=page.pref_plot)
    ctx.demo.load(titled.wire(localise), None, titled.list, api_name=False)
    return TabParts(wire=lambda form: wire_start(ctx, page, form))


FOLLOW_LOG = """() => setTimeout(() => {
  const box = document.querySelector('#train-log textarea');
  if (!box) return;
  if (!box.dataset.watched) {
    box.dataset.watched = '1'; box.dataset.follow = '1';
    box.addEventListener('scroll', () => {
      box.dataset.follow = box.scrollHeight - box.scrollTop - box.clientHeight < 30 ? '1' : '0'; });
  }
  // Where the reader is now counts too: on a busy machine (a run training beside the page) this can run before the
  // scroll event of their move up has arrived, and it would pull them back down.
  // (A box at its end now, shorter text clamping it there, has not been moved up.)
  const placed = Number(box.dataset.placed || -1);
  const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 30;
  if (placed >= 0 && box.scrollTop < placed - 30 && !atEnd) box.dataset.follow = '0';
  if (box.dataset.follow === '1') box.scrollTop = box.scrollHeight;
  box.dataset.placed = box.scrollTop;
}, 50)"""


def layout() -> SimpleNamespace:
    page = SimpleNamespace()
    with gr.Row():
        page.start_btn = gr.Button(t("train.start"), variant="primary")
        page.pilot_btn = gr.Button(t("train.pilot"))
        page.stop_btn = gr.Button(t("train.stop"), variant="stop", interactive=False)  # the poll enables it
        page.resume_target = gr.Dropdown(label=t("train.resume_target"), choices=[], allow_custom_value=True,
                                         scale=2)
        page.resume_btn = gr.Button(t("train.resume"))
    page.cost_md = gr.Markdown(elem_id="train-cost")
    page.message = gr.Markdown()
    page.progress = gr.HTML()
    page.status = gr.Markdown(label=t("train.status"), elem_id="train-status")
    page.more_btn = gr.Button(t("train.more_like_misses"), size="sm", elem_id="train-more-data")
    with gr.Row():
        # No block labels: localise names the charts with chart_titles.
        page.plot = gr.LinePlot(x="step", y="loss", color="series", show_label=False, height=380, scale=2)
        page.lr_plot = gr.LinePlot(x="step", y="learning_rate", show_label=False, height=300, scale=1)
    page.pref_plot = gr.LinePlot(x="step", y="value", color="series", show_label=False, height=300, visible=False)
    page.drift_table = gr.Dataframe(headers=headers(drift.SAMPLE_COLUMNS), wrap=True,
                                    column_widths=drift.SAMPLE_WIDTHS, visible=False, elem_id="train-drift")
    page.sampled = gr.Dataframe(headers=headers(SAMPLED_COLUMNS), wrap=True, visible=False, elem_id="train-sampled",
                                column_widths=["25%", "55%", "20%"])
    page.log = gr.Textbox(label=t("train.log"), lines=10, max_lines=10, autoscroll=False, elem_id="train-log")
    page.history = history_box.layout()
    page.timer = gr.Timer(2.0)
    page.seen, page.ended = gr.State(), gr.State()
    return page


def localise(request: gr.Request):
    """Headers and axis titles in the reader's language from the first paint (they are values, not labels)."""
    language = lang(request)
    # Titles only: an empty frame would fix the plot's colour categories to none (see loss_frame).
    loss = chart_titles("train.loss", "col.step", "col.loss", language, color_key="col.series")
    return {"runs": frame([], HISTORY_COLUMNS, language), "compare_table": frame([], COMPARE_COLUMNS, language),
            "loss": chart_titles("train.loss", "col.step", "col.loss", language, color_key="col.series",
                                 series=tuple(SERIES_KEYS.values())),
            "compare_plot": loss,  # its series are named after the runs compared
            "lr": chart_titles("train.lr", "col.step", "col.learning_rate", language),
            "preference": chart_titles("train.preference", "col.step", "col.value", language,
                                       color_key="col.series", series=PREFERENCE_SERIES_KEYS)}


def wire_start(ctx: TabContext, page: SimpleNamespace, form: dict) -> None:
    """Start and Pilot send every setting except the generation ones (training needs none), by name."""
    training = {n: c for n, c in form.items() if config.field_section(n) != "generation"}

    @takes_form(training)
    def start_training(request: gr.Request = None, **values):
        return start(values, lang(request), session_of(request))

    @takes_form(training)
    def pilot_run(request: gr.Request = None, **values):
        return start(pilot_values(values), lang(request), session_of(request))

    @takes_form(training)
    def cost_now(request: gr.Request = None, **values):
        return cost_view(values, lang(request))

    # Every setting lives on another tab: opening this one is when the line must be current (recomputing it on
    # each field change cost a pass over the runs and the data report for every value a file load hands over).
    ctx.tab.select(cost_now, inputs_kwargs=training, outputs=page.cost_md, api_name="train_cost")
    page.ended.change(cost_now, inputs_kwargs=training, outputs=page.cost_md, api_name=False)  # a run's step time
    page.start_btn.click(start_training, inputs_kwargs=training, outputs=page.message, api_name="start_training")
    page.pilot_btn.click(pilot_run, inputs_kwargs=training, outputs=page.message, api_name="pilot_run")
    if "workshop_mode" in ctx.offers:  # the loop: what the run missed seeds new data on the Data tab
        aimed = Outputs(tabs=ctx.tabs, mode=ctx.offers["workshop_mode"], run=ctx.offers["workshop_run"],
                        message=page.message)
        page.more_btn.click(aimed.wire(aim_at_misses), None, aimed.list, api_name="aim_at_misses")
    page.resume_btn.click(resume, inputs_kwargs={"run_dir": page.resume_target,
                                                 "trust_remote_code": form["trust_remote_code"]},
                          outputs=page.message, api_name="resume_training")
