"""The Data tab's whole report for a large file: read, check, measure token lengths, quality report; with how
often the page hears progress (the longest silent stretch), so a newcomer never faces a silent wait.

    python bench/data_report.py [--rows 20000]

Times `data_report.build_report` as the Load button runs it (the tokenizer already loaded, as in the app after the
first load), and prints each stage's share. The baseline in the same run is the bare file read + normalise
(`data.load_dataset_file`), the part no report can avoid.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()

    from train_throughput import make_bench_data

    from studio.plan import data_report
    from studio.data.data import load_dataset_file
    from studio.models.models import ensure_starter_model, load_tokenizer

    tokenizer = load_tokenizer(str(ensure_starter_model(progress=lambda _: None)))
    path = make_bench_data(Path(f"/tmp/studio-bench-{args.rows}.jsonl"), rows=args.rows, seed=1)

    started = time.perf_counter()
    load_dataset_file(str(path))
    read_s = time.perf_counter() - started

    calls = []

    def progress(stage, done=None, total=None):
        calls.append((time.perf_counter(), stage.key, done))

    started = time.perf_counter()
    report = data_report.build_report(str(path), tokenizer=tokenizer, progress=progress)
    total_s = time.perf_counter() - started
    times = [started] + [t for t, _, _ in calls] + [started + total_s]
    longest = max(b - a for a, b in zip(times, times[1:]))
    stage_start = {}
    for t, key, _ in calls:
        stage_start.setdefault(key, t)
    print(f"{len(report.load.rows)} rows, {path.stat().st_size / 1e6:.1f} MB")
    print(f"read + normalise alone: {read_s:.2f} s")
    print(f"whole report: {total_s:.2f} s ({len(calls)} progress updates, longest silence {longest:.2f} s)")
    order = sorted(stage_start.items(), key=lambda kv: kv[1]) + [("end", started + total_s)]
    for (key, t0), (_, t1) in zip(order, order[1:]):
        print(f"  {key:<22} {t1 - t0:6.2f} s")


if __name__ == "__main__":
    main()
