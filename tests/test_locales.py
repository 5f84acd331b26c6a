"""A third language is one new file: a test-only catalogue, dropped into a folder named by STUDIO_LOCALES, renders
the page (Gradio's i18n, in a real Chromium) and the server's messages, with no other change."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from gradio_client import Client

from studio.core.text import TEXT
from tests.conftest import ARTIFACTS, free_port
from tests.conftest import english_with_fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "⟦fr⟧"  # a code Gradio's page knows; the studio ships no French, so this file is the only one


def pseudo_catalogue() -> dict[str, str]:
    """Every key the English text has, each value marked, its named fields kept: what a translator would write."""
    words = {key: marked(text) for key, text in english_with_fields().items()}
    words.update({"locale.name": "Français (test)", "locale.aliases": "fr-FR, fr-CA", "list.separator": " · "})
    return words


def marked(text: str) -> str:
    """The mark after a Markdown heading's hashes, so a heading stays a heading."""
    heading, rest = re.match(r"(#+ )?(.*)", text, re.S).groups()
    return f"{heading or ''}{MARK} {rest}"


@pytest.fixture(scope="module")
def third_language_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("locales")
    (folder / "fr.json").write_text(json.dumps(pseudo_catalogue(), ensure_ascii=False), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "STUDIO_LOCALES": str(folder), "STUDIO_RUNS": str(tmp_path_factory.mktemp("fr-runs")),
           "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, "launch.py", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    until = time.time() + 120
    while True:
        try:
            Client(url, verbose=False)
            break
        except Exception:
            if time.time() > until or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(30)


def test_the_pseudo_catalogue_has_every_key():
    assert set(pseudo_catalogue()) >= set(TEXT)


def test_a_third_language_reaches_the_servers_messages(third_language_server):
    reader = Client(third_language_server, verbose=False, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    status, advice_text, estimate = reader.predict(learning_rate=0.005, api_name="/check_settings")
    assert status.startswith(MARK) and MARK in advice_text and estimate.startswith(f"- {MARK}")
    assert f"{MARK} Learning rate" in advice_text  # the field's label from the new file
    english = Client(third_language_server, verbose=False)
    assert MARK not in english.predict(learning_rate=0.005, api_name="/check_settings")[0]


@pytest.mark.browser  # drives Chromium
def test_a_third_language_renders_the_page(third_language_server, browser):
    page = browser.new_page(locale="fr-FR")
    try:
        page.goto(third_language_server)
        page.get_by_role("tab", name=f"{MARK} Hyperparameters").wait_for(timeout=60_000)
        page.get_by_role("tab", name=f"{MARK} Hyperparameters").click()
        page.get_by_text(f"{MARK} Learning rate").first.wait_for(timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "third-language.png"), full_page=False)
    finally:
        page.close()
