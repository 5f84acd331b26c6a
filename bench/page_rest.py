"""Does a page come to rest? Gradio 6's page re-dispatches a field's change when a deferred ("always_last") event on
it ends; two such events on one field then re-run each other for as long as the page is open. The studio had 25
such fields (studio/ui/triggers.py keeps one deferred event per trigger). This measures it on the smallest page that
shows it, in a real browser: a number set twice by the page's load, with one listener, with two, and with two under
the studio's guard; each listener takes 0.3 s.

    python bench/page_rest.py [--seconds 8]

Prints each page's listener runs in `--seconds` of the page open (a page at rest: 2, one per value it was set to).
"""

from __future__ import annotations

import argparse
import collections
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page(listeners: int, guarded: bool, runs: collections.Counter):
    import gradio as gr

    from studio.ui.triggers import one_deferred_event_per_trigger

    def listener(name):
        def view(value):
            runs[name] += 1
            time.sleep(0.3)
            return f"{name}: {value}"
        return view

    with gr.Blocks() as demo:
        number = gr.Number(value=512, precision=0)
        shown = [gr.Markdown() for _ in range(listeners)]
        demo.load(lambda: 128, None, number).then(lambda: time.sleep(0.1) or 129, None, number)
        for i in range(listeners):
            number.change(listener(f"listener {i + 1}"), number, shown[i], show_progress="hidden")
    if guarded:
        one_deferred_event_per_trigger(demo)
    port = free_port()
    demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cases = {"one listener": (1, False), "two listeners": (2, False), "two listeners, guarded": (2, True)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for name, (listeners, guarded) in cases.items():
            runs = collections.Counter()
            url = page(listeners, guarded, runs)
            tab = browser.new_page()
            tab.goto(url)
            tab.wait_for_timeout(args.seconds * 1000)
            tab.close()
            print(f"{name}: {dict(runs)} in {args.seconds:g} s", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
