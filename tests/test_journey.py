"""The whole journey in a real headless Chromium, as a newcomer walks it: upload a file, change a field, train the
starter model a few steps, open Chat and get both answers, open Export and export the adapter; in Chinese the whole
way, in English up to the finished run (English Chat and Export are walked in tests/test_browser.py). No path is
typed and no "Refresh" is pressed. On every tab, every visible text node is checked for English sentences (4+
English words in a row) in the Chinese page. Screenshots go to artifacts/."""

import json
import os
import re
from pathlib import Path

import pytest

from conftest import CHROMIUM, click_and_get_the_new_run, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

# Visible text of the page, without what the user wrote or the model said (their words, in their language):
# the data preview and row view, chat bubbles, the drift check's sample answers (model output; their prompts are
# in the reader's language, tests/test_drift.py), code and commands, and the text users type into boxes.
VISIBLE_TEXT = """() => {
  const skip = '#data-preview, #data-row, [data-testid=bot], [data-testid=user], #train-drift, #chat-drift-samples, code, pre, .cm-editor, textarea, input';
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest(skip)) continue;
    if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
    out.push(node.textContent.trim());
  }
  return out;
}"""
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ,]+[A-Za-z][A-Za-z'’-]*){3,}")
# Chart titles, axis titles and legends drawn outside their box (Gradio once sized charts as if the block label
# took no room, which cut off the loss chart's legend): their text, or nothing when every chart fits.
CHART_PARTS_OUTSIDE = """() => [...document.querySelectorAll('.block svg.marks')]
  .filter(svg => svg.getBoundingClientRect().width > 0)
  .flatMap(svg => {
    const box = svg.closest('.block').getBoundingClientRect();
    return [...svg.querySelectorAll('.role-legend, .role-axis-title, .role-title')]
      .filter(part => { const r = part.getBoundingClientRect();
                        return r.height > 0 && (r.bottom > box.bottom + 1 || r.top < box.top - 1 || r.right > box.right + 1); })
      .map(part => part.textContent.trim());
  })"""
LEGEND_TEXT = "() => [...document.querySelectorAll('.block svg.marks .role-legend')].map(l => l.textContent).join(' ')"

# Names and code that stay as they are in any language: model and file names, settings' own values, units.
ALLOWED = re.compile(r"SmolLM2?-\S+|Hugging Face Hub|llama\.cpp / Ollama|Llama 3|all-linear|q_proj,v_proj|"
                     r"query=instruction, response=output|AMX / AVX512-BF16|flash-attn|liger-kernel|"
                     r"group_by_length|trl sft|pip install \S+|\S+\.(?:json|jsonl|csv|parquet|txt|gguf|yaml)")


CATALOGUE_KEYS = re.compile(r"\b(?:%s)\b" % "|".join(
    re.escape(key) for key in json.loads((Path(__file__).parents[1] / "studio" / "core" / "locales" / "en.json").read_text())
    if re.fullmatch(r"[a-z_]+(?:\.[a-z0-9_]+)+", key)))  # the dotted keys; a few keys are English labels


def catalogue_keys(texts: list[str]) -> list[str]:
    """A raw key ('common.complete') shown where its translation should be, in any language."""
    return [t for t in texts if CATALOGUE_KEYS.search(t)]


def english_sentences(texts: list[str]) -> list[str]:
    return [t for t in texts if ENGLISH_RUN.search(ALLOWED.sub(" ", t))]


def journey_file(tmp_path: Path, rows: int = 64) -> Path:
    """An Alpaca file a user might bring: English and Chinese rows."""
    path = tmp_path / "my-data.json"
    records = []
    for i in range(rows):
        if i % 2:
            records.append({"instruction": f"第 {i} 号城市的天气怎么样？", "input": "", "output": f"第 {i} 号城市今天晴朗。"})
        else:
            records.append({"instruction": f"What is {i} plus {i}?", "input": "", "output": f"{i} plus {i} is {2 * i}."})
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


WORDS = {
    "zh-CN": dict(tabs=["数据", "超参数", "训练", "对话", "导出"], loaded="可用 64 行", applied="已应用到设置",
                  advanced="高级设置", max_steps="最大步数", start="开始训练", finished="已完成", next="下一步",
                  ready="已就绪", send="同时发送给两个模型", latency="毫秒", adapter="仅适配器（小，需要基座模型）",
                  merged="合并后的模型（可直接用 transformers 加载）", export="导出并检查", exported="已用 PEFT 加载到",
                  series=["训练", "验证"], gloss="中位数", cost="3 个优化步"),
    "en-US": dict(tabs=["Data", "Hyperparameters", "Train", "Chat", "Export"], loaded="64 usable",
                  applied="Applied to the settings", advanced="Advanced settings", max_steps="Max steps",
                  start="Start training", finished="finished", next="Next:", ready="Ready:", send="Send to both",
                  latency="ms/token", adapter="Adapter only (small, needs the base model)",
                  merged="Merged model (loads with plain transformers)", export="Export and check", exported="loaded with PEFT on",
                  series=["train", "validation"], gloss="median", cost="3 optimizer steps"),
}


@pytest.fixture(scope="module")
def newcomer_url(app_url, tmp_path_factory):
    """The studio as a newcomer gets it: the form starts with the built-in starter model (the shared test app
    starts with the tiny one). Same runs folder and process as the shared app."""
    from studio.ui.app import launch_app

    port = free_port()
    demo = launch_app(port=port, block=False, data_dirs=[tmp_path_factory.getbasetemp(), Path(__file__).parent / "data"])
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_whole_journey_without_typing_a_path(browser, newcomer_url, artifacts, tmp_path, locale):
    from playwright.sync_api import expect

    w = WORDS[locale]
    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    page.goto(newcomer_url)
    found: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    markdown: dict[str, list[str]] = {}

    def look(tab: str) -> None:
        page.screenshot(path=str(artifacts / f"journey-{tab}-{locale}.png"), full_page=True)
        texts = page.evaluate(VISIBLE_TEXT)
        found[tab] = english_sentences(texts)
        keys[tab] = catalogue_keys(texts)
        markdown[tab] = [t for t in texts if "**" in t or "`" in t]  # markdown shown as text, not rendered
        assert page.evaluate(CHART_PARTS_OUTSIDE) == [], tab

    # Data: choosing the file loads it and hands its recommendations to the settings.
    for name in w["tabs"]:
        expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=20000)
    page.locator("input[type=file]").first.set_input_files(str(journey_file(tmp_path)))
    expect(page.get_by_text(w["loaded"]).first).to_be_visible(timeout=120000)
    expect(page.locator("#data-applied")).to_contain_text(w["applied"], timeout=30000)
    expect(page.locator("canvas, svg[class*=marks]").first).to_be_attached()
    expect(page.locator("#data-lengths-gloss")).to_contain_text(w["gloss"])  # what p50 / p99 mean
    look("data")

    # Hyperparameters: one change a newcomer makes, a short run.
    page.get_by_role("tab", name=w["tabs"][1]).click()
    page.get_by_role("button", name=w["advanced"]).click()
    steps = page.get_by_label(w["max_steps"], exact=True)
    steps.fill("3")
    steps.press("Enter")
    expect(page.locator("body")).to_contain_text("bf16", timeout=60000)  # the hardware plan arrived
    page.wait_for_timeout(1500)  # the advice reacts to the change
    look("hyperparameters")

    # Train: start, watch it finish, and be told where to go next.
    page.get_by_role("tab", name=w["tabs"][2]).click()
    expect(page.locator("#train-cost")).to_contain_text(w["cost"], timeout=60000)  # the cost before the start
    run = click_and_get_the_new_run(page.get_by_role("button", name=w["start"]))
    status = page.locator("#train-status")
    expect(status).to_contain_text(run.name, timeout=30000)
    expect(status).to_contain_text(w["next"], timeout=420000)
    expect(status).to_contain_text(w["finished"])
    assert all(name in page.evaluate(LEGEND_TEXT) for name in w["series"])  # the reader can tell the curves apart
    look("train")

    if locale == "en-US":  # Chat and Export in English are walked by tests/test_browser.py on the same app
        page.close()
        assert not any(keys.values()) and not any(markdown.values()), (keys, markdown)
        return
    # Chat: the run just trained is chosen and loaded; Send answers in both panes.
    page.get_by_role("tab", name=w["tabs"][3]).click()
    expect(page.locator("#chat-note")).to_contain_text(w["ready"], timeout=120000)
    page.get_by_role("button", name=w["send"]).click()
    expect(page.locator("#chat-latency")).to_contain_text(w["latency"], timeout=120000)
    bubbles = page.locator("[data-testid='bot']")
    expect(bubbles).to_have_count(2, timeout=30000)
    assert all(bubbles.nth(i).inner_text().strip() for i in range(2))
    look("chat")

    # Export: the same run, ready; export the adapter only.
    page.get_by_role("tab", name=w["tabs"][4]).click()
    chosen = page.locator("#export-run input")
    expect(chosen).to_have_value(re.compile(r"run-\d{8}-\d{6}"), timeout=30000)
    page.get_by_label(w["adapter"]).check()
    page.get_by_label(w["merged"]).uncheck()
    page.get_by_role("button", name=w["export"]).click()
    expect(page.locator("#export-result")).to_contain_text(w["exported"], timeout=240000)
    expect(page.locator("#export-downloads a")).to_have_attribute("href", re.compile(r"adapter\.zip$"))  # a link
    look("export")
    run_dir = chosen.input_value()
    assert (Path(run_dir) / "export" / "adapter" / "adapter_config.json").exists(), page.locator("#export-result").inner_text()
    page.close()

    assert not any(keys.values()), json.dumps(keys, ensure_ascii=False, indent=1)
    assert not any(markdown.values()), json.dumps(markdown, ensure_ascii=False, indent=1)
    if locale == "zh-CN":
        assert not any(found.values()), json.dumps(found, ensure_ascii=False, indent=1)
        footer = page_text_of_footer(browser, newcomer_url)
        assert "Runs" not in footer, footer  # Gradio's untranslated call-history link is not offered


def page_text_of_footer(browser, app_url) -> str:
    page = browser.new_page(locale="zh-CN")
    page.goto(app_url)
    page.wait_for_selector("footer", timeout=20000)
    text = page.locator("footer").inner_text()
    page.close()
    return text


def test_a_large_file_shows_progress_with_rows_done(browser, app_url, artifacts, tmp_path):
    """20,000 rows take seconds to measure: the page says what it is doing and how many rows are done."""
    from playwright.sync_api import expect

    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    expect(page.get_by_role("tab", name="数据")).to_be_visible(timeout=20000)
    page.locator("input[type=file]").first.set_input_files(str(journey_file(tmp_path, rows=20000)))
    expect(page.get_by_text(re.compile(r"\d+ / 20000 行")).first).to_be_visible(timeout=60000)
    page.screenshot(path=str(artifacts / "data-progress-zh-CN.png"), full_page=False)
    expect(page.get_by_text("可用 20000 行").first).to_be_visible(timeout=180000)
    page.close()
