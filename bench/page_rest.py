"""Does the page come to rest? The calls a real browser's page queues while nobody touches it, after opening, after
a setting changes and after a model change; and the calls typing into the system prompt costs. Counted on the
server (every call the queue takes), with the guard that keeps one deferred event per trigger
(studio/ui/triggers.py) and without it, in one process, alternating.

    STUDIO_HOME=<any> python bench/page_rest.py [--locale zh-CN] [--rest 5]

Uses a tiny random Llama built here (the page's views, not a model's quality, are measured) and Debian's Chromium.
Prints, for each moment, the calls in `--rest` seconds of rest with and without the guard; a page at rest queues
none (before the guard: about ten a second once the model's report was cached).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def count_calls():
    """Every call the queue takes, by event name: Gradio's queue patched to count before it pushes."""
    import gradio.queueing as queueing

    counts = collections.Counter()
    push = queueing.Queue.push

    async def counted(self, body, request, username):
        fn = self.blocks.fns[body.fn_index]
        counts[getattr(fn.fn, "__name__", "js")] += 1
        return await push(self, body, request, username)

    queueing.Queue.push = counted
    return counts


def serve(model: Path, guarded: bool) -> str:
    from conftest import free_port
    from studio.ui import app

    if not guarded:  # the app as it was built before the guard
        app.one_deferred_event_per_trigger = lambda demo: []
    port = free_port()
    app.launch_app(port=port, block=False, data_dirs=[ROOT / "tests" / "data"], model=str(model))
    return f"http://127.0.0.1:{port}/"


def walk(browser, url: str, locale: str, counts: collections.Counter, rest_s: float, other_model: Path) -> dict:
    from playwright.sync_api import expect

    def at_rest() -> int:
        page.wait_for_timeout(3000)  # what a change sets off, then rest
        counts.clear()
        page.wait_for_timeout(rest_s * 1000)
        return sum(counts.values())

    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    page.goto(url)
    expect(page.locator("#data-applied")).to_contain_text(re.compile("Applied to the settings|已应用到设置"),
                                                          timeout=120000)
    found = {"opened": at_rest()}
    page.get_by_role("tab", name=re.compile("Hyperparameters|超参数")).click()
    epochs = page.get_by_label(re.compile("^(Epochs|训练轮数)$"))
    epochs.fill("2")
    epochs.press("Tab")
    found["Epochs 3 -> 2"] = at_rest()
    model = page.get_by_label(re.compile("^(Model|模型)$"))
    model.fill(str(other_model))
    model.press("Enter")
    page.get_by_role("tab", name=re.compile("^(Data|数据)$")).click()
    expect(page.locator("#data-applied")).to_contain_text(re.compile("Applied to the settings|已应用到设置"),
                                                          timeout=120000)
    found["model changed"] = at_rest()
    page.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--locale", default="en-US")
    parser.add_argument("--rest", type=float, default=5.0, help="seconds of rest counted at each moment")
    args = parser.parse_args()
    from conftest import save_llama
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="page-rest-"))
    model, other = save_llama(folder / "tiny"), save_llama(folder / "tiny-small-vocab", vocab_size=400)
    counts = count_calls()
    urls = {"with the guard": serve(model, True), "without it": serve(model, False)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        for name, url in urls.items():
            walk(browser, url, args.locale, counts, 0.5, other)  # warm the model's reports: the loop needs them
            found = walk(browser, url, args.locale, counts, args.rest, other)
            print(f"{name}: " + ", ".join(f"{moment}: {n} calls in {args.rest:g} s of rest"
                                          for moment, n in found.items()), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
