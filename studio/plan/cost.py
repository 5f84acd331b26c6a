"""What the planned run costs, said before it starts (next to the Train button): optimizer steps, the expected time
on this machine and the memory it needs; a run expected to take over an hour says so with the cheapest fixes.

The time per step comes from what was measured here: the Hyperparameters tab's probe for these settings, else the
most recent finished run of the same model, method and kind of step, scaled by the tokens a step trains (effective
batch x cutoff; for GRPO the answers it samples). Without either, the line says how to get one. No torch here."""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.config import Settings

from studio.core.text import Msg
from .recipe import planned_steps

LONG_RUN_S = 3600  # over an hour: the line says so, with the cheapest fixes
_PROBED: dict[tuple, float] = {}  # seconds per optimizer step the probe measured, by what decides them


def probe_key(settings: Settings) -> tuple:
    m, t, method = settings.model, settings.training, settings.method
    practice = (method.num_generations, method.max_completion_length) if method.stage_row.generates else ()
    return (m.model_name_or_path, method.stage, method.finetuning_type, method.use_dora,
            t.per_device_train_batch_size, t.gradient_accumulation_steps, t.max_length, *practice)


def remember_probe(settings: Settings, seconds_per_step: float) -> None:
    _PROBED[probe_key(settings)] = seconds_per_step


def tokens_per_step(settings: Settings) -> int:
    """What a step's time grows with: the tokens it trains; for GRPO the answers it samples (generation is most
    of its time)."""
    t, m = settings.training, settings.method
    if m.stage_row.generates:
        return t.per_device_train_batch_size * t.gradient_accumulation_steps * m.num_generations * m.max_completion_length
    return t.per_device_train_batch_size * t.gradient_accumulation_steps * t.max_length


@dataclass(frozen=True)
class StepTime:
    seconds: float
    source: Msg  # where the figure was measured


def step_time(settings: Settings, runs: list[dict], run_settings, devices: int = 1) -> StepTime | None:
    """Seconds per optimizer step: the probe's for these settings, else the newest finished run of the same model
    and method trained by as many processes as `devices` (its wall time per step, evaluations included, scaled by
    tokens per step). `run_settings(run_dir)` reads a run's settings (None where it has none)."""
    if (probed := _PROBED.get(probe_key(settings))) is not None:
        return StepTime(probed, Msg("cost.from_probe"))
    for run in runs:
        if run.get("status") != "finished" or not run.get("global_step") or not run.get("train_runtime_s"):
            continue
        if run.get("processes", 1) != devices:  # a step of N processes sharing a CPU costs unlike one process's
            continue
        past = run_settings(run["run_dir"])
        # The same model, method and kind of step: a GRPO step (sampling answers) costs unlike an SFT step, and a
        # DoRA step (the weight's norm every step) unlike a LoRA one (bench/dora_cost.py).
        if past is None or (past.model.model_name_or_path, past.method.finetuning_type, past.method.use_dora,
                            past.stage.generates) != (
                settings.model.model_name_or_path, settings.method.finetuning_type, settings.method.use_dora,
                settings.stage.generates):
            continue
        per_step = run["train_runtime_s"] / run["global_step"]
        return StepTime(per_step * tokens_per_step(settings) / max(tokens_per_step(past), 1),
                        Msg("cost.from_run", run=run["name"]))
    return None


def cost_lines(settings: Settings, rows: int | None, step: StepTime | None, memory: Msg | None = None,
               devices: int = 1, identity: bool = False) -> list[Msg]:
    """The cost line's parts: steps, time, memory, and for a long run what makes it cheaper (`identity`: identity
    data, whose run replays at any length)."""
    if rows is None:
        return [Msg("cost.no_data")]
    train_rows, per_epoch, steps = planned_steps(settings, rows, devices, identity)
    lines = [Msg("cost.steps", steps=steps, rows=train_rows, per_epoch=per_epoch)]
    if step is None:
        lines.append(Msg("cost.no_time"))
    else:
        total = step.seconds * steps
        lines.append(Msg("cost.time_min" if total >= 90 else "cost.time_s", minutes=total / 60, seconds=total,
                         per_step=step.seconds, source=step.source))
        if total > LONG_RUN_S:
            lines.append(Msg("cost.long", hours=total / 3600))
    if memory is not None:
        lines.append(memory)
    return lines
