"""Past runs: their metrics, and side-by-side comparison (loss curves, final and best validation loss, settings)."""

from __future__ import annotations

import json

from studio.core.paths import run_refusal
from studio.core.rewards import REWARD_NAMES
from studio.core.runs import RunFolder
from studio.core.text import Msg


def smoothed(values: list[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard draws it)."""
    out, average = [], 0.0
    for i, v in enumerate(values, start=1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight**i))
    return out


def loss_rows(metrics: list[dict], run: str | None = None) -> list[dict]:
    """Long-format rows for one plot: raw and smoothed train loss, validation loss."""
    train = [m for m in metrics if "loss" in m]
    label = (lambda s: f"{run}: {s}") if run else (lambda s: s)
    rows = [{"step": m["step"], "loss": m["loss"], "series": label("train")} for m in train]
    rows += [{"step": m["step"], "loss": v, "series": label("train (smoothed)")}
             for m, v in zip(train, smoothed([m["loss"] for m in train]))]
    rows += [{"step": m["step"], "loss": m["eval_loss"], "series": label("validation")} for m in metrics
             if "eval_loss" in m]
    return rows


PREFERENCE_SERIES = {"rewards/margins": "margin", "eval_rewards/margins": "margin_validation",
                     "rewards/accuracies": "accuracy", "eval_rewards/accuracies": "accuracy_validation"}


# GRPO: the summed reward (each reward's weight applied), its spread across the sampled answers, each reward's mean.
PRACTICE_SERIES = {"reward": "reward", "reward_std": "reward_spread",
                   **{f"rewards/{name}/mean": f"reward_{name}" for name in REWARD_NAMES}}


def is_practice(metrics: list[dict]) -> bool:
    """A GRPO run's metrics (rewards of sampled answers) rather than a DPO / KTO run's."""
    return any("reward" in m for m in metrics)


def reward_series(metrics: list[dict]) -> dict[str, str]:
    """{logged key: series name} of the run's rewards plot: GRPO's rewards or DPO / KTO's margin and accuracy."""
    return PRACTICE_SERIES if is_practice(metrics) else PREFERENCE_SERIES


def preference_rows(metrics: list[dict]) -> list[dict]:
    """Long-format rows for the rewards plot. DPO / KTO / ORPO: the reward margin (chosen minus rejected) and the
    preference accuracy (share of pairs whose chosen answer scores higher), in training and on validation. GRPO:
    the reward, its spread and each reward's mean. Series are keys ('series.margin', ...) the tab names in the
    reader's language."""
    return [{"step": m["step"], "value": m[key], "series": series} for m in metrics
            for key, series in reward_series(metrics).items() if key in m]


def _flat_settings(preset: dict) -> dict:
    return {f"{section}.{k}": v for section, values in preset["settings"].items() for k, v in values.items()}


MAX_COMPARED = 20  # runs overlaid at once: more is unreadable, and each is read from disk


def comparable(run_dirs) -> tuple[list[str], list[Msg]]:
    """The run folders a request may compare (a list of at most MAX_COMPARED paths inside the runs folder), and
    what was refused. A string is not a list of runs: iterated, it would be read character by character."""
    if not isinstance(run_dirs, (list, tuple)) or not all(isinstance(r, str) for r in run_dirs):
        return [], [Msg("compare.not_list")]
    if len(run_dirs) > MAX_COMPARED:
        return [], [Msg("compare.too_many", limit=MAX_COMPARED)]
    refusals = [refusal for r in run_dirs if (refusal := run_refusal(r))]
    return [r for r in run_dirs if not run_refusal(r)], refusals


def verdict_cell(verdict: dict | None) -> str:
    """A run's held-out result in a table cell: the metric, base -> tuned, over how many rows. Two runs on
    versions of one file are judged on the same held-out rows (grown rows only train), so the cells compare."""
    if not verdict:
        return ""
    return f"{verdict['metric']} {verdict['base']:.3g} → {verdict['tuned']:.3g} ({verdict['rows']})"


def compare(run_dirs: list[str]) -> tuple[list[dict], list[list], list[list]]:
    """(overlaid curves, [run, status, steps, final train loss, final / best validation loss], settings diff)."""
    curves, table, settings = [], [], {}
    for run in map(RunFolder, run_dirs):
        metrics = run.metrics()
        curves += [r for r in loss_rows(metrics, run.name) if "smoothed" not in r["series"]]
        evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
        losses = [m["loss"] for m in metrics if "loss" in m]
        status = run.status()
        table.append([run.name, status.get("status", "unknown"), max((m["step"] for m in metrics), default=0),
                      round(losses[-1], 4) if losses else None, round(evals[-1], 4) if evals else None,
                      round(min(evals), 4) if evals else None, verdict_cell(status.get("verdict")),
                      ((run.plan() or {}).get("data_version") or {}).get("name", "")])
        if (preset := run.preset()) is not None:
            settings[run.name] = _flat_settings(preset)
    keys = sorted({k for values in settings.values() for k in values})
    # One run: show all its settings; several: only those that differ.
    diff = [[k, *[settings[name].get(k) for name in settings]] for k in keys
            if len(settings) == 1 or len({json.dumps(values.get(k)) for values in settings.values()}) > 1]
    return curves, table, diff
