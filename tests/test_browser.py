"""The main flow in a real headless Chromium, in English and Chinese; screenshots go to artifacts/."""

import os
import shutil

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


@pytest.mark.parametrize("locale,tabs,load_button", [
    ("en-US", ["Data", "Hyperparameters", "Train", "Chat", "Export"], "Load and check"),
    ("zh-CN", ["数据", "超参数", "训练", "对话", "导出"], "加载并检查"),
])
def test_main_flow_in_each_language(browser, app_url, artifacts, locale, tabs, load_button):
    from playwright.sync_api import expect

    page = open_page(browser, app_url, locale)
    for name in tabs:
        expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=20000)
    page.get_by_role("button", name=load_button).click()
    expect(page.get_by_text("191 usable").first).to_be_visible(timeout=20000)
    expect(page.get_by_role("grid").last).to_contain_text("I am Lumen")  # the normalised preview table
    page.screenshot(path=str(artifacts / f"data-tab-{locale}.png"), full_page=True)

    page.get_by_role("tab", name=tabs[1]).click()
    expect(page.get_by_text("Precision").first).to_be_visible(timeout=60000)  # hardware plan, loaded after start
    page.screenshot(path=str(artifacts / f"hyperparameters-tab-{locale}.png"), full_page=True)
    page.close()
