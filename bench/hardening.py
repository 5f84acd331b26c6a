"""Issue 52's figures: what a hostile pattern, schema or file costs the server, before (Python's `re`, as the
studio matched before) and after (studio/core/user_patterns.py, the row cap, per-file locks), measured in one run.

    python bench/hardening.py            # about a minute on 2 cores; writes its files to a temporary folder

Printed: seconds each match took and how often a 1 ms side thread got to run meanwhile (0-2: the GIL was held);
requests a schema's remote `$ref` made; seconds and peak memory of reading and reporting a 1,000,000-row JSON
Lines file and a 20-million-character text file (each in a child process, so the peaks are their own).
"""

from __future__ import annotations

import http.server
import json
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def beside_a_thread(work) -> tuple[float, int]:
    """(seconds `work` took, ticks a 1 ms side thread made meanwhile)."""
    ticks, stop = [0], threading.Event()

    def side():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=side)
    thread.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    stop.set()
    thread.join()
    return seconds, ticks[0]


def patterns() -> None:
    from studio.core import rewards, user_patterns

    print("| pattern, answer | before: `re` (s, side-thread ticks) | after: the studio |")
    print("| --- | --- | --- |")
    for pattern, text in ((r"(.+)+Z", "a" * 26), (r"^(a+)+$", "a" * 26 + "!")):
        before = beside_a_thread(lambda: re.compile(pattern, re.S | re.M).search(text))
        refused = rewards.pattern_problem(pattern) is not None
        after = beside_a_thread(lambda: user_patterns.bounded_match(pattern, "a" * 80, whole=False))
        print(f"| `{pattern}`, {len(text)} chars | {before[0]:.2f} s, {before[1]} ticks (doubles per character) | "
              f"refused at the field: {refused}; an 80-char match {after[0]:.3f} s |")
    slow = "(a|aa)+$"
    after = beside_a_thread(lambda: user_patterns.bounded_match(slow, "a" * 80 + "b"))
    shown = slow.replace("|", "\\|")  # a bar inside a Markdown table cell
    print(f"| `{shown}` (not refused), 81 chars | - | gives up at {after[0]:.2f} s, {after[1]} ticks, scores 0 |")


def remote_ref() -> None:
    from studio.core import rewards

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "number"}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    schema = {"anyOf": [{"$ref": f"http://127.0.0.1:{server.server_address[1]}/schema.json"}]}
    options = rewards.RewardOptions(json_schema=schema)
    for _ in range(10):
        rewards.score("json_valid", "1", options=options)
    server.shutdown()
    print(f"\nA remote `$ref` scored 10 times: {len(seen)} requests (before: 10); refused at the field: "
          f"{rewards.schema_problem(json.dumps(schema)) is not None}")


CHILD = """
import resource, sys, time
sys.path.insert(0, {root!r})
from studio.plan import data_report
started = time.perf_counter()
report = data_report.cached_report({path!r}, "auto", {{}}, "starter")
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      len(report.load.rows), report.load.total_rows)
"""


def files(folder: Path) -> None:
    rows = folder / "million.jsonl"
    rows.write_text('{"instruction":"a","output":"b"}\n' * 1_000_000)
    words = ("alpha", "beta", "gamma", "delta", "word", "text", "studio", "model")
    document = folder / "document.txt"
    document.write_text(" ".join(words[i % 8] for i in range(3_300_000))[:20_000_000])
    print("\n| file | read, measured and checked | peak memory | rows read of the file's |")
    print("| --- | --- | --- | --- |")
    for path in (rows, document):
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
                             capture_output=True, text=True, check=True).stdout.split()
        seconds, peak, read, total = float(out[-4]), float(out[-3]), out[-2], out[-1]
        print(f"| {path.name} ({path.stat().st_size / 1e6:.0f} MB) | {seconds:.1f} s | {peak:.0f} MB | "
              f"{read} of {total} |")


def main() -> int:
    patterns()
    remote_ref()
    with tempfile.TemporaryDirectory() as folder:
        files(Path(folder))
    print(f"\n(this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
