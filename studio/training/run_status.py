"""What the Train tab says about a run, as messages: state, the base model's validation loss, progress and time
left, the latest validation loss, the warning that matters most, the error and what to try, and what to do next.
Pure functions of the job's snapshot and the run's settings; the tab only renders them."""

from __future__ import annotations

import math

from pathlib import Path

from studio.core import trackers
from studio.core.runs import studio_home
from studio.core.text import Msg, word
from studio.chat import drift, judge
from studio.plan import diagnosis


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50))  # capped: a diverged loss must not overflow


def seconds_left(step: int, max_steps: int, elapsed_s: float) -> float:
    """Time left at the pace so far; 0 before the first step."""
    done = step / max(max_steps, 1)
    return elapsed_s / done - elapsed_s if done > 0 else 0.0


def status_messages(snapshot: dict, settings=None) -> list:
    """The status, one message (or the library's own error text) per paragraph. `settings`: the run's own, for
    the warnings that name remedies; None where the run's preset cannot be read."""
    state = snapshot.get("status", "idle")
    if state == "idle":
        return [Msg("status.idle")]
    metrics = snapshot["metrics"]
    parts = [Msg("status.head", state=word("state", state), run=snapshot["run_dir"])]
    if (processes := snapshot.get("processes") or 1) > 1:  # several processes train it (studio/training/launcher.py)
        parts.append(Msg("status.processes", count=processes))
    baseline = next((m for m in metrics if "eval_loss" in m and m["step"] == 0), None)
    if baseline:
        parts.append(Msg("status.baseline", loss=baseline["eval_loss"], ppl=perplexity(baseline["eval_loss"])))
    if last := next((m for m in reversed(metrics) if "loss" in m), None):
        parts.append(progress_message(last, running=state == "running"))
        finishing = state == "running" and last["step"] >= last["max_steps"]
        if finishing and (now := current_phase(snapshot.get("log") or [])) is not None:
            parts.append(Msg("status.finishing", now=now))  # the checks after the last step, not "0 s left"
    elif state == "running" and (now := current_phase(snapshot.get("log") or [])) is not None:
        parts.append(Msg("status.preparing", now=now))  # the minutes before the first step say what happens
    if evals := [m for m in metrics if "eval_loss" in m and m["step"] > 0]:
        parts.append(Msg("status.validation", loss=evals[-1]["eval_loss"], ppl=perplexity(evals[-1]["eval_loss"]),
                         step=evals[-1]["step"]))
    pilot = bool(snapshot.get("pilot")) or bool(settings is not None and settings.training.pilot)
    if warning := run_warning(state, metrics, settings, judged=bool(snapshot.get("verdict")) or pilot):
        parts.append(Msg("status.warning", text=warning))
    if snapshot.get("error"):
        parts.append(Msg("status.error", error=failure(snapshot), advice=Msg(snapshot.get("advice_key") or "error.other")))
    if settings is not None and (tracker := trackers.dashboard(settings.training.report_to, snapshot["run_dir"],
                                                               studio_home())) is not None:
        parts.append(tracker)  # the same curves in the tracker the user chose, and how to open it
    if state in ("finished", "stopped") and snapshot.get("output"):
        parts += [Msg("status.done", state=word("state", state), seconds=snapshot.get("wall_time_s"),
                      output=snapshot["output"]), *result_checks(snapshot, settings), Msg("status.next")]
    return parts


def result_checks(snapshot: dict, settings=None) -> list:
    """Each file's validation loss (a mix), the drift check and, where it is high, the remedies with values."""
    out = []
    if verdict := snapshot.get("verdict"):  # did it learn: the line a beginner reads first
        out.append(Msg.from_json(verdict["line"]))
    elif snapshot.get("pilot") and snapshot.get("global_step"):  # a trial: how it went, never "did not learn"
        out.append(Msg("log.pilot_done", steps=snapshot["global_step"], seconds=snapshot.get("train_runtime_s") or 0.0))
    if more := snapshot.get("still_learning"):  # the plan's end came before the curve flattened
        out.append(Msg.from_json(more))
    if snapshot.get("best_step") is not None and snapshot.get("best_eval_loss") is not None:
        out.append(Msg("status.kept", step=snapshot["best_step"], loss=snapshot["best_eval_loss"],
                       last=snapshot.get("global_step")))
    if by_file := snapshot.get("eval_by_file"):
        out.append(Msg("status.eval_by_file", items=Msg("list", items=[
            Msg("status.eval_file", file=Path(f["file"]).name, loss=f["eval_loss"], rows=f["rows"]) for f in by_file])))
    if snapshot.get("run_dir") and (judged := judge.saved(snapshot["run_dir"])) is not None and judged.pairs:
        out.append(judged.line())  # a judge's reading of long answers, beside the held-out score (Chat tab)
    if report := snapshot.get("drift"):
        out.append(drift.summary(report))
        if drift.level(report) == "high" and settings is not None:
            out.append(diagnosis.drift_remedies(settings, report))
    return out


def current_phase(events: list[dict]) -> Msg | None:
    """What the run is doing before its first step: its latest log message."""
    for event in reversed(events):
        if "key" in event:
            try:
                return Msg.from_json(event)
            except (KeyError, ValueError):
                return None
    return None


def progress_message(last: dict, running: bool) -> Msg:
    eta = Msg("status.eta", eta=seconds_left(last["step"], last["max_steps"], last["elapsed_s"])) if running else ""
    if "reward" in last:  # GRPO: the reward is what moves; its loss is no measure of learning
        return Msg("status.progress_practice", step=last["step"], max_steps=last["max_steps"], reward=last["reward"],
                   length=last.get("completions/mean_length", 0.0), elapsed=last["elapsed_s"], eta=eta)
    return Msg("status.progress", step=last["step"], max_steps=last["max_steps"], epoch=last["epoch"],
               loss=last["loss"], speed=last["tokens_per_s"], elapsed=last["elapsed_s"], eta=eta)


def run_warning(state: str, metrics: list[dict], settings, judged: bool = False) -> Msg | None:
    """Overfitting first (with the remedies this run can still use); after the run, a model that did not learn,
    unless the held-out verdict (`judged`) already says so with its cause, or the run was a pilot."""
    if preference := diagnosis.preference_warning(metrics) or diagnosis.practice_warning(metrics):
        return preference
    warning = diagnosis.overfitting_warning(metrics)
    if warning and settings is not None:
        return Msg("warn.with_remedies", warning=warning, remedies=diagnosis.regularisation_remedies(settings, metrics))
    # A run stopped by hand is not judged: its few steps are the user's choice, not a reason it "did not learn".
    if warning is None and state == "finished" and settings is not None and not judged:
        return diagnosis.not_learning(settings, metrics)
    return warning


def failure(snapshot: dict) -> Msg:
    """The studio's own explanation, or the kind of failure; Python's text stays in log.txt and the server log."""
    if snapshot.get("error_message"):
        return Msg.from_json(snapshot["error_message"])
    return Msg("reason.other")
