"""The main flow in a real headless Chromium, in English and Chinese; screenshots go to artifacts/."""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


def open_page(browser, app_url, locale):
    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    return page


EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.mark.parametrize("locale,tabs,load_button,upload,expected", [
    ("en-US", ["Data", "Hyperparameters", "Train", "Chat", "Export"], "Load and check", "sharegpt.json",
     ("format sharegpt", "3 usable", "Madrid.")),
    ("zh-CN", ["数据", "超参数", "训练", "对话", "导出"], "加载并检查", None, ("format messages", "191 usable", "I am Lumen")),
])
def test_main_flow_in_each_language(browser, app_url, artifacts, locale, tabs, load_button, upload, expected):
    from playwright.sync_api import expect

    page = open_page(browser, app_url, locale)
    for name in tabs:
        expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=20000)
    if upload:
        page.locator("input[type=file]").first.set_input_files(str(EXAMPLES / upload))
        expect(page.get_by_role("textbox").first).to_have_value(re.compile(re.escape(upload) + "$"), timeout=20000)
    page.get_by_role("button", name=load_button).click()
    summary, usable, in_preview = expected
    expect(page.get_by_text(usable).first).to_be_visible(timeout=60000)
    expect(page.locator("body")).to_contain_text(summary)
    expect(page.get_by_role("grid").nth(1)).to_contain_text(in_preview)  # the preview table
    expect(page.locator("body")).to_contain_text("exact duplicates")  # the quality report
    expect(page.locator("body")).to_contain_text("covers 100.0%")  # the cutoff recommendation
    expect(page.locator("canvas, svg[class*=marks]").first).to_be_attached()  # the length plots drew
    page.screenshot(path=str(artifacts / f"data-tab-{locale}.png"), full_page=True)

    page.get_by_role("tab", name=tabs[1]).click()
    expect(page.get_by_text("Precision").first).to_be_visible(timeout=60000)  # hardware plan, loaded after start
    page.screenshot(path=str(artifacts / f"hyperparameters-tab-{locale}.png"), full_page=True)
    page.close()
