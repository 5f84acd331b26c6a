"""Seconds from `python launch.py` to the first page served (HTTP 200), next to the bare cost of importing
gradio + torch + transformers, measured in the same run.

    python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_first_page() -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "launch.py", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("the studio did not serve its page within 120 s")
    finally:
        proc.terminate()
        proc.wait(10)


def time_import(modules: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    page = min(time_to_first_page() for _ in range(args.repeats))
    heavy = min(time_import("gradio, torch, transformers, trl") for _ in range(args.repeats))
    gradio_only = min(time_import("gradio") for _ in range(args.repeats))
    print(f"launch.py -> first page (HTTP 200): {page:.2f} s (best of {args.repeats})")
    print(f"bare `import gradio, torch, transformers, trl`: {heavy:.2f} s")
    print(f"bare `import gradio`: {gradio_only:.2f} s")
    print(f"first page / heavy imports: {page / heavy:.2f}")


if __name__ == "__main__":
    main()
