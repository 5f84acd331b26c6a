"""Measuring bench: the share of a default run's wall time spent measuring rather than training (issue 57).

    python bench/measuring.py                              # the quickstart demo and the bilingual identity task
    python bench/measuring.py --tasks identity_bilingual,chinese,topic --kinds cold   # each task on its own model

A run measures around its training: replay (the base model's own general answers, generated once per model and
cached), the drift check (the base model's answers to 60 general prompts, cached; the tuned model's afterwards)
and the held-out verdict (the base model's answers before, the tuned model's after). Each task is run twice with
the studio's defaults (nothing set by hand): **cold**, as a user's first run on a model (the replay and drift
caches empty; the converted model itself is kept), then **warm**, a later run on the same model. The phases are
read from the run's own log (`events.jsonl`, one-second stamps), so the figures are what the Train tab shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.core.config import DEMO_DATA, Settings  # noqa: E402
from studio.core.runs import studio_home  # noqa: E402
from studio.core.settings_input import apply_overrides  # noqa: E402


def task_data(task: str, folder: Path) -> tuple[str, str]:
    """(data file, model) of a task: the quickstart's demo on the default model, or an outcome-bench task on its own
    model (the Chinese task on gemma3-270m)."""
    if task == "quickstart":
        return DEMO_DATA, Settings().model.model_name_or_path
    from bench import outcome

    build, model = outcome.TASKS[task][:2]
    train, _ = build(random.Random(0))
    return str(outcome.write_jsonl(folder / f"{task}-train.jsonl", train)), model


def seconds(stamp: str) -> int:
    hours, minutes, secs = map(int, stamp.split(":"))
    return hours * 3600 + minutes * 60 + secs


def phases(run_dir: Path) -> dict[str, int]:
    """Seconds of each phase, from the log's stamps: replay (before the data is tokenised), the checks before
    the first step (drift baseline, the verdict's base answers), training, and the checks after the last step."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    stamps = [seconds(e["time"]) for e in events if e.get("time")]
    start, keys = stamps[0], [e.get("key", "") for e in events if e.get("time")]
    at = [(s - start) % 86400 for s in stamps]

    def first(key: str) -> int | None:
        return next((t for t, k in zip(at, keys) if k == key), None)

    tokenise, checks, train, saved, end = (first("log.phase_tokenise"), first("log.phase_drift"),
                                           first("log.phase_train"), first("log.saved"), at[-1])
    # replay's answers alone, or the pass the base model's answers share (replay, drift check, held-out check)
    replay_started = first("log.base_answers_start") if first("log.base_answers_start") is not None else \
        first("log.replay_generating")
    replay = (tokenise - replay_started) if replay_started is not None and tokenise is not None else 0
    before = (train - checks) if checks is not None and train is not None else 0
    after = (end - saved) if saved is not None else 0
    return {"wall": end, "replay": replay, "before": before, "train": (saved or end) - (train or 0), "after": after,
            "measuring": replay + before + after}


def run_once(data: str, model: str, out: Path) -> dict[str, int]:
    from studio.training.train import run_training

    settings, problems = apply_overrides(Settings(), [f"dataset_path={data}", f"model_name_or_path={model}"])
    assert settings is not None, problems
    started = time.perf_counter()
    # keep nothing: every recipe field is the plan's, as the Data tab hands the plan to the form
    status = run_training(settings, out, progress=None, keep=frozenset())
    assert status["status"] == "finished", status
    found = phases(out)
    found["wall"] = max(found["wall"], round(time.perf_counter() - started))
    found["steps"] = status["global_step"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="quickstart,identity_bilingual")
    parser.add_argument("--kinds", default="cold,warm", help="cold, warm or both (cold,warm)")
    parser.add_argument("--keep", default="", help="a folder to copy each run's log into (events.jsonl), to read")
    args = parser.parse_args()
    models = studio_home() / "models"  # converted once; the caches under test start empty
    rows = []
    for task in args.tasks.split(","):
        with tempfile.TemporaryDirectory(prefix="studio-measuring-") as home:
            if models.exists():
                os.symlink(models, Path(home) / "models")
            os.environ["STUDIO_HOME"] = home
            data, model = task_data(task, Path(home))
            for kind in args.kinds.split(","):
                found = run_once(data, model, Path(home) / f"{task}-{kind}")
                rows.append({"task": task, "caches": kind, **found})
                if args.keep:
                    kept = Path(args.keep) / f"{task}-{kind}"
                    kept.mkdir(parents=True, exist_ok=True)
                    shutil.copy(Path(home) / f"{task}-{kind}" / "events.jsonl", kept / "events.jsonl")
                print(json.dumps(rows[-1]), flush=True)
    print("\n| task | caches | steps | wall s | training s | replay s | checks before s | checks after s | "
          "measuring share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['task']} | {r['caches']} | {r['steps']} | {r['wall']} | {r['train']} | {r['replay']} | "
              f"{r['before']} | {r['after']} | {r['measuring'] / max(r['wall'], 1):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
