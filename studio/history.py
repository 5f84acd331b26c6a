"""Past runs: their metrics, and side-by-side comparison (loss curves, final and best validation loss, settings)."""

from __future__ import annotations

import json

from .runs import RunFolder


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


def _flat_settings(preset: dict) -> dict:
    return {f"{section}.{k}": v for section, values in preset["settings"].items() for k, v in values.items()}


def compare(run_dirs: list[str]) -> tuple[list[dict], list[list], list[list]]:
    """(overlaid curves, [run, status, steps, final train loss, final / best validation loss], settings diff)."""
    curves, table, settings = [], [], {}
    for run in map(RunFolder, run_dirs):
        metrics = run.metrics()
        curves += [r for r in loss_rows(metrics, run.name) if "smoothed" not in r["series"]]
        evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
        losses = [m["loss"] for m in metrics if "loss" in m]
        table.append([run.name, run.status().get("status", "unknown"), max((m["step"] for m in metrics), default=0),
                      round(losses[-1], 4) if losses else None, round(evals[-1], 4) if evals else None,
                      round(min(evals), 4) if evals else None])
        if (preset := run.preset()) is not None:
            settings[run.name] = _flat_settings(preset)
    keys = sorted({k for values in settings.values() for k in values})
    # One run: show all its settings; several: only those that differ.
    diff = [[k, *[settings[name].get(k) for name in settings]] for k in keys
            if len(settings) == 1 or len({json.dumps(values.get(k)) for values in settings.values()}) > 1]
    return curves, table, diff
