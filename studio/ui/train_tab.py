"""Train tab: start / stop / resume the process-wide job, watch it live (polled every two seconds), browse and
compare past runs."""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.core import config, presets
from studio.core.paths import run_model_refusal, settings_refusals
from studio.core.runs import RunFolder, list_runs
from studio.core.text import Msg, word
from studio.chat import drift
from studio.plan import cost
from studio.training import history
from studio.training.jobs import JOB
from studio.training.run_status import status_messages
from .forms import TabContext, TabParts, form_settings, takes_form
from .handoff import session_of
from .named import Outputs
from .text import SERIES_COLOURS, chart_titles, frame, headers, lang, render, t, tr

RESUMABLE = ("stopped", "interrupted", "failed")


def typed_frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """Explicit dtypes: an empty first frame would otherwise be 'object' and the plot would keep a nominal axis."""
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


LOSS_COLUMNS = {"step": "int64", "loss": "float64", "series": "str"}


SERIES = ("train", "train (smoothed)", "validation")
SERIES_KEYS = {"train": "series.train", "train (smoothed)": "series.smoothed", "validation": "series.validation"}


def series_name(series: str, language: str) -> str:
    """'train' or, when runs are compared, 'run-1: train', in the reader's language."""
    run, sep, name = series.rpartition(": ")
    return run + sep + tr(SERIES_KEYS[name], language) if name in SERIES_KEYS else series


def loss_frame(metrics: list[dict], language: str = "en") -> pd.DataFrame:
    """Every frame names all three series: Gradio's line plot keeps the colour categories of the first frame it
    draws, so a series that appears later (train loss after the baseline evaluation) would never be drawn.
    A one-point placeholder draws nothing."""
    rows = history.loss_rows(metrics)
    if rows:
        present = {r["series"] for r in rows}
        rows += [{**rows[0], "series": s} for s in SERIES if s not in present]
    return translated_series(typed_frame(rows, LOSS_COLUMNS), language)


def translated_series(frame: pd.DataFrame, language: str) -> pd.DataFrame:
    frame["series"] = [series_name(s, language) for s in frame["series"]]
    return frame


PREFERENCE_COLUMNS = {"step": "int64", "value": "float64", "series": "str"}
PREFERENCE_SERIES_KEYS = tuple(f"series.{name}" for name in (*history.PREFERENCE_SERIES.values(),
                                                             *history.PRACTICE_SERIES.values()))


def preference_frame(metrics: list[dict], language: str = "en"):
    """The rewards plot's rows (DPO / KTO: margin and accuracy; GRPO: its rewards) with their series named in the
    reader's language; hidden for an SFT run."""
    rows = history.preference_rows(metrics)
    if not rows:
        return gr.update(visible=False)
    present = {r["series"] for r in rows}  # every series from the first frame on (see loss_frame)
    if not history.is_practice(metrics):  # GRPO logs each of its series from the first step on
        rows += [{**rows[0], "series": s} for s in history.PREFERENCE_SERIES.values() if s not in present]
    frame = typed_frame(rows, PREFERENCE_COLUMNS)
    frame["series"] = [tr(f"series.{s}", language) for s in frame["series"]]
    title = tr("train.practice" if history.is_practice(metrics) else "train.preference", language)
    return gr.update(value=frame, visible=True, title=title)


def lr_frame(metrics: list[dict]) -> pd.DataFrame:
    rows = [{"step": m["step"], "learning_rate": m["learning_rate"]} for m in metrics if m.get("learning_rate")]
    return typed_frame(rows, {"step": "int64", "learning_rate": "float64"})


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
    lines = cost.cost_lines(settings, situation.rows, step, memory["fit"] if memory else None, situation.devices)
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
    with gr.Row():
        start_btn = gr.Button(t("train.start"), variant="primary")
        pilot_btn = gr.Button(t("train.pilot"))
        stop_btn = gr.Button(t("train.stop"), variant="stop", interactive=False)  # the poll enables it
        resume_target = gr.Dropdown(label=t("train.resume_target"), choices=[], allow_custom_value=True, scale=2)
        resume_btn = gr.Button(t("train.resume"))
    cost_md = gr.Markdown(elem_id="train-cost")
    message = gr.Markdown()
    progress = gr.HTML()
    status = gr.Markdown(label=t("train.status"), elem_id="train-status")
    more_btn = gr.Button(t("train.more_like_misses"), size="sm", elem_id="train-more-data")
    with gr.Row():
        # No block labels: localise names the charts with chart_titles.
        plot = gr.LinePlot(x="step", y="loss", color="series", show_label=False, height=380, scale=2)
        lr_plot = gr.LinePlot(x="step", y="learning_rate", show_label=False, height=300, scale=1)
    pref_plot = gr.LinePlot(x="step", y="value", color="series", show_label=False, height=300, visible=False)
    drift_table = gr.Dataframe(headers=headers(drift.SAMPLE_COLUMNS), wrap=True,
                               column_widths=drift.SAMPLE_WIDTHS, visible=False, elem_id="train-drift")
    sampled = gr.Dataframe(headers=headers(SAMPLED_COLUMNS), wrap=True, visible=False, elem_id="train-sampled",
                           column_widths=["25%", "55%", "20%"])
    log = gr.Textbox(label=t("train.log"), lines=10, max_lines=10, autoscroll=True)
    with gr.Accordion(t("train.history"), open=False):
        refresh = gr.Button(t("train.refresh"))
        runs = gr.Dataframe(headers=headers(HISTORY_COLUMNS), label=t("train.history"), wrap=True,
                            column_widths=HISTORY_WIDTHS)
        chosen = gr.Dropdown(label=t("train.compare_pick"), multiselect=True, choices=[], allow_custom_value=True)
        compare_btn = gr.Button(t("train.compare"))
        compare_plot = gr.LinePlot(x="step", y="loss", color="series", show_label=False, height=300)
        compare_table = gr.Dataframe(headers=headers(COMPARE_COLUMNS))
        compare_diff = gr.Dataframe(label=t("train.diff"), wrap=True)
    timer = gr.Timer(2.0)
    stop_btn.click(stop, None, message, api_name="stop_training")
    seen, ended = gr.State(), gr.State()
    # The API's order is the one clients read (status, progress, loss, learning rate, log first).
    watched = Outputs(status=status, progress=progress, loss=plot, lr=lr_plot, log=log, seen=seen, preference=pref_plot,
                      drift=drift_table, sampled=sampled, resume_target=resume_target, message=message, ended=ended,
                      stop=stop_btn)
    timer.tick(watched.wire(poll), [seen, message], watched.list, api_name="poll_training", show_progress="hidden")
    refresh.click(refresh_history, None, [runs, resume_target, chosen], api_name="run_history")
    compare_btn.click(compare_runs, chosen, [compare_plot, compare_table, compare_diff], api_name="compare_runs")

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

    titled = Outputs(runs=runs, compare_table=compare_table, loss=plot, compare_plot=compare_plot, lr=lr_plot,
                     preference=pref_plot)
    ctx.demo.load(titled.wire(localise), None, titled.list, api_name=False)

    def wire(form: dict) -> None:
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
        ctx.tab.select(cost_now, inputs_kwargs=training, outputs=cost_md, api_name="train_cost")
        ended.change(cost_now, inputs_kwargs=training, outputs=cost_md, api_name=False)  # a run's own step time
        start_btn.click(start_training, inputs_kwargs=training, outputs=message, api_name="start_training")
        pilot_btn.click(pilot_run, inputs_kwargs=training, outputs=message, api_name="pilot_run")
        if "workshop_mode" in ctx.offers:  # the loop: what the run missed seeds new data on the Data tab
            aimed = Outputs(tabs=ctx.tabs, mode=ctx.offers["workshop_mode"], run=ctx.offers["workshop_run"],
                            message=message)
            more_btn.click(aimed.wire(aim_at_misses), None, aimed.list, api_name="aim_at_misses")
        resume_btn.click(resume, inputs_kwargs={"run_dir": resume_target,
                                                "trust_remote_code": form["trust_remote_code"]},
                         outputs=message, api_name="resume_training")

    return TabParts(wire=wire)
