"""The main flow in a real headless Chromium, in English and Chinese; screenshots go to artifacts/."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import BLIND_WORDS, CHROMIUM, open_chat, open_export, open_page, pick, train_from_the_page  # noqa: F401

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
ROW_VIEW = {"en-US": ("Show this row", "answer (trained)", "prompt (not trained)"),
            "zh-CN": ("查看这一行", "回答（训练）", "（不训练）")}


@pytest.mark.parametrize("locale,tabs,load_button,upload,expected,words", [
    ("en-US", ["Data", "Hyperparameters", "Train", "Chat", "Export"], "Load and check", "sharegpt.json",
     ("format sharegpt", "3 usable", "Madrid."), ("exact duplicates", "covers 100.0%", "Precision")),
    ("zh-CN", ["数据", "超参数", "训练", "对话", "导出"], "加载并检查", None, ("格式 messages", "可用 191 行", "I am Lumen"),
     ("完全重复", "可覆盖 99.5%", "精度")),  # the demo measured with the tiny model's tokenizer
])
def test_main_flow_in_each_language(browser, app_url, artifacts, locale, tabs, load_button, upload, expected, words):
    from playwright.sync_api import expect

    page = open_page(browser, app_url, locale)
    for name in tabs:
        expect(page.get_by_role("tab", name=name)).to_be_visible(timeout=20000)
    if upload:
        page.locator("input[type=file]").first.set_input_files(str(EXAMPLES / upload))
        dataset = page.get_by_label("Dataset", exact=True)  # a box that also offers the demo data and any votes
        # named by its file, not by the 64-hex folder Gradio keeps it in
        expect(dataset).to_have_value(f"{upload} (uploaded)", timeout=20000)
    page.get_by_role("button", name=load_button).click()
    summary, usable, in_preview = expected
    expect(page.get_by_text(usable).first).to_be_visible(timeout=60000)
    expect(page.locator("body")).to_contain_text(summary)
    expect(page.get_by_role("grid").nth(1)).to_contain_text(in_preview)  # the preview table
    duplicates, covers, precision = words
    expect(page.locator("body")).to_contain_text(duplicates)  # the quality report
    expect(page.locator("body")).to_contain_text(covers)  # the cutoff recommendation
    expect(page.locator("canvas, svg[class*=marks]").first).to_be_attached()  # the length plots drew
    page.screenshot(path=str(artifacts / f"data-tab-{locale}.png"), full_page=True)

    # One row token by token: the trained tokens highlighted, with their counts, in the reader's language.
    show, legend, counts = ROW_VIEW[locale]
    page.get_by_role("button", name=show).click()
    tokens = page.locator("#data-row-tokens")
    expect(tokens).to_contain_text(legend, timeout=30000)
    other = ROW_VIEW["zh-CN" if locale == "en-US" else "en-US"][1]
    expect(tokens).not_to_contain_text(other)  # the legend speaks the reader's language only
    expect(page.locator("#data-row")).to_contain_text(counts)
    tokens.scroll_into_view_if_needed()
    tokens.screenshot(path=str(artifacts / f"data-row-tokens-{locale}.png"))

    page.get_by_role("tab", name=tabs[1]).click()
    expect(page.get_by_text(precision).first).to_be_visible(timeout=60000)  # hardware plan, loaded after start
    page.screenshot(path=str(artifacts / f"hyperparameters-tab-{locale}.png"), full_page=True)
    page.close()


def test_a_file_uploaded_while_the_first_report_is_made_gets_its_own_report(browser, app_url, artifacts,
                                                                             monkeypatch):
    """Issue 57: the page's first report (the demo's, a minute on a cold start) finished after the report of a
    file uploaded meanwhile and replaced it; the user saw the demo's rows three minutes later. The demo's report
    is made slow here; the upload must win and stay."""
    import time

    from playwright.sync_api import expect

    from studio.core.kept import Kept
    from studio.plan import data_report

    import threading

    made, demo_started = data_report._new_report, threading.Event()

    def slow_demo(path, *args):
        if path.text == data_report.DEMO_DATA:
            demo_started.set()
            time.sleep(12)
        return made(path, *args)

    monkeypatch.setattr(data_report, "_CACHE", Kept(4))
    monkeypatch.setattr(data_report, "_new_report", slow_demo)
    page = browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    assert demo_started.wait(60), "the page never asked for its first report"
    started = time.monotonic()
    page.locator("input[type=file]").first.set_input_files(str(EXAMPLES / "sharegpt.json"))
    summary = page.locator("#data-summary")
    expect(summary).to_contain_text("可用 3 行", timeout=60000)
    assert time.monotonic() - started < 12, "the upload's report waited for the demo's"
    page.wait_for_timeout(max(0.0, 16 - (time.monotonic() - started)) * 1000)  # the demo's report is done by now
    expect(summary).to_contain_text("sharegpt.json")
    expect(summary).not_to_contain_text("可用 191 行")
    page.screenshot(path=str(artifacts / "upload-during-first-report-zh-CN.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("locale,words", [
    ("en-US", ("Model", "Applied to the settings", "optimizer steps", "Epochs",
               "Since the file was loaded you changed: Epochs")),
    ("zh-CN", ("模型", "已应用到设置", "个优化步", "训练轮数", "载入文件后您修改了：训练轮数"))])
def test_a_new_model_measures_the_data_again_and_hands_its_plan(browser, app_url, artifacts, other_tiny_model_dir,
                                                                 locale, words):
    """The page opens on the demo measured with the form's model (the tiny one here); choosing another model
    measures it again (token lengths, cutoff, plan) without pressing Load. Between the two, the user sets the
    epochs: the Data tab's note of what the file handed over says so, and no longer states the old plan."""
    from playwright.sync_api import expect

    page = open_page(browser, app_url, locale)
    label, applied, steps, epochs, changed = words
    cutoff, note = page.locator("#data-cutoff"), page.locator("#data-applied")
    before = cutoff.inner_text()
    expect(note).to_contain_text(steps)
    page.get_by_role("tab", name=re.compile("Hyperparameters|超参数")).click()
    epochs_box = page.get_by_label(epochs, exact=True)
    handed = epochs_box.input_value()
    epochs_box.fill("2" if handed != "2" else "4")
    epochs_box.press("Tab")
    page.get_by_role("tab", name=re.compile("^(Data|数据)$")).click()
    expect(note).to_contain_text(changed, timeout=30000)
    expect(note).not_to_contain_text(steps)
    note.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"data-applied-changed-{locale}.png"))
    page.get_by_role("tab", name=re.compile("Hyperparameters|超参数")).click()
    model = page.get_by_label(label, exact=True)
    model.fill(str(other_tiny_model_dir))
    model.press("Enter")
    page.get_by_role("tab", name=re.compile("^(Data|数据)$")).click()
    # the note is the load's own last word: wait for it, not for the cutoff line alone (CI found it blank there)
    expect(note).to_contain_text(applied, timeout=90000)
    expect(cutoff).not_to_have_text(before)  # measured with the other tokenizer and template
    page.screenshot(path=str(artifacts / f"data-model-switch-{locale}.png"), full_page=True)
    # and then the page rests: two events on one field re-ran each other (about ten calls a second) until it closed
    page.wait_for_timeout(3000)  # the views that follow the load's values
    calls = []
    page.on("request", lambda request: calls.append(request.url) if "/queue/join" in request.url else None)
    page.wait_for_timeout(3000)
    assert calls == []
    page.close()


@pytest.mark.parametrize("locale,words", [
    ("en-US", ("Hyperparameters", "Advanced settings", "Max steps", "Train", "Cost of this run", "optimizer steps")),
    ("zh-CN", ("超参数", "高级设置", "最大步数", "训练", "本次训练的成本", "个优化步"))])
def test_the_cost_of_the_run_is_shown_next_to_train_and_follows_max_steps(browser, app_url, artifacts, locale, words):
    """Issue 39: the cost was shown only after pressing Estimate; now it sits under the Train button."""
    from playwright.sync_api import expect

    hyper, advanced, max_steps, train_tab, title, steps = words
    page = open_page(browser, app_url, locale)
    page.get_by_role("tab", name=train_tab).click()
    cost = page.locator("#train-cost")
    expect(cost).to_contain_text(title, timeout=60000)
    expect(cost).to_contain_text(steps)
    page.get_by_role("tab", name=hyper).click()
    expect(page.get_by_label(max_steps, exact=True)).to_be_visible()  # in view: Advanced stays closed
    page.get_by_label(max_steps, exact=True).fill("7")
    page.get_by_label(max_steps, exact=True).press("Enter")
    page.get_by_role("tab", name=train_tab).click()
    expect(cost).to_contain_text(f"7 {steps}", timeout=60000)
    page.screenshot(path=str(artifacts / f"train-cost-{locale}.png"), full_page=True)
    page.close()


def test_hyperparameters_advice_preset_export_and_reimport(browser, app_url, artifacts, tmp_path):
    """Change fields, see the advice react, export a preset, change a field again, re-import: same settings."""
    from playwright.sync_api import expect

    page = open_page(browser, app_url, "en-US")
    page.get_by_role("tab", name="Hyperparameters").click()
    lr = page.get_by_label("Learning rate")
    lr.fill("0.005")
    lr.press("Enter")
    expect(page.get_by_text("is high for lora").first).to_be_visible(timeout=60000)
    expect(page.locator("body")).to_contain_text("Effective batch")
    epochs = page.get_by_label("Epochs")
    epochs.fill("7")
    epochs.press("Enter")
    page.screenshot(path=str(artifacts / "hyperparameters-advice-en-US.png"), full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export preset").click()
        page.locator("a[href*='studio-preset.json']").first.click(timeout=30000)
    exported = tmp_path / "exported.json"
    download_info.value.save_as(exported)
    preset = json.loads(exported.read_text())
    assert preset["settings"]["training"]["learning_rate"] == 0.005
    assert preset["settings"]["training"]["num_train_epochs"] == 7.0

    lr.fill("0.0001")
    lr.press("Enter")
    page.locator("#preset-file input[type=file]").set_input_files(str(exported))
    page.get_by_role("button", name="Load preset").click()
    expect(page.get_by_text("Preset loaded.")).to_be_visible(timeout=30000)
    expect(lr).to_have_value("0.005")
    expect(epochs).to_have_value("7")

    # Processes 1 → 2 (a CPU of 2 cores allows it): the batch planned for one device is halved, the user's own
    # learning rate and epochs stay, and the page says what changed.
    page.get_by_role("button", name="Advanced settings").click()
    batch = page.get_by_label("Batch size", exact=True)
    expect(batch).to_have_value("4")
    page.get_by_label("Processes (GPUs)").fill("2")
    page.get_by_label("Processes (GPUs)").press("Enter")
    expect(page.get_by_text("Re-planned for 2 training process(es)")).to_be_visible(timeout=30000)
    expect(batch).to_have_value("2")
    expect(lr).to_have_value("0.005")
    expect(epochs).to_have_value("7")
    page.screenshot(path=str(artifacts / "hyperparameters-processes-en-US.png"), full_page=True)
    # the longest ready-made preset's name fits its box (it was cut)
    from studio.ui.hyperparams_tab import shipped_presets

    longest = max(shipped_presets(), key=len)
    needed, room = page.evaluate("""name => { const input = document.querySelector('#preset-shipped input');
        const pen = document.createElement('canvas').getContext('2d'); pen.font = getComputedStyle(input).font;
        return [pen.measureText(name).width, input.clientWidth]; }""", longest)
    assert needed <= room, (longest, needed, room)
    page.close()


def test_train_tab_start_stop_resume(browser, app_url, artifacts):
    """A run on the test app's tiny model, long enough to stop: the plot fills and the progress moves, Stop, then
    Resume. (The real starter model trains in the browser in both journeys, tests/test_journey.py.)"""
    from playwright.sync_api import expect

    page = open_page(browser, app_url, "en-US")
    expect(page.locator("#data-cutoff")).not_to_be_empty(timeout=60000)  # the demo data measured; its plan handed over
    page.get_by_role("tab", name="Hyperparameters").click()
    page.get_by_label("Epochs").fill("40")
    page.get_by_label("Epochs").press("Enter")
    page.get_by_role("button", name="Advanced settings").click()
    # No early stop: the tiny model's validation loss soon stops falling, which would end the resumed run at once.
    for label, value in (("Log every (steps)", "1"), ("Evaluate every (steps)", "2"), ("Gradient accumulation", "1"),
                         ("Early stopping patience", "0")):
        page.get_by_label(label).fill(value)
        page.get_by_label(label).press("Enter")
    page.get_by_label("Check general ability (drift)").uncheck()  # measured after each stop otherwise; tested apart
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Started").first).to_be_visible(timeout=20000)
    progress = page.locator("progress")
    expect(progress).to_have_attribute("value", re.compile(r"^[2-9]|^\d\d"), timeout=180000)
    expect(page.locator("body")).to_contain_text("perplexity")
    page.screenshot(path=str(artifacts / "train-running-en-US.png"), full_page=True)
    # the log follows its new lines: more lines than it shows, scrolled to the last (issue 57)
    log = page.get_by_label("Log", exact=True)
    page.wait_for_function("""el => el.scrollHeight > el.clientHeight + 20""", arg=log.element_handle(), timeout=60000)
    page.wait_for_timeout(2500)  # a poll or two after the box filled
    at_end = log.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight")
    assert at_end <= 5, f"the log is {at_end} px above its last line"
    # The reader scrolls up to read: new lines leave them there, even where the scroll event comes late (a busy
    # machine; here it is held back for a second), as it did in CI: the log followed and pulled them back down.
    log.evaluate("""el => { const hold = e => { if (e.target === el) e.stopImmediatePropagation(); };
                            document.addEventListener('scroll', hold, true);
                            setTimeout(() => document.removeEventListener('scroll', hold, true), 1000);
                            el.scrollTop = 0; }""")
    page.wait_for_timeout(4500)
    assert log.evaluate("el => el.scrollTop") < 30

    page.get_by_role("button", name="Stop").click()
    from studio.training.jobs import JOB

    JOB.wait(120)  # the run itself has ended (the word "stopped" may also be an earlier run's, in the history)
    stopped = JOB.run_dir
    # The page offers the stopped run for Resume by itself (its next poll), with no trip to the history first.
    expect(page.get_by_label("Run to resume")).to_have_value(stopped.name, timeout=30000)
    expect(page.get_by_text("Stopping after the current step")).to_have_count(0)  # over: the status says so
    stopped_at = int(progress.get_attribute("value"))
    page.screenshot(path=str(artifacts / "train-stopped-en-US.png"), full_page=True)

    page.get_by_role("button", name="Resume", exact=True).click()
    expect(page.locator("progress")).not_to_have_attribute("value", str(stopped_at), timeout=120000)
    assert JOB.run_dir == stopped, "the stopped run itself resumed"
    expect(page.get_by_text("running", exact=True).first).to_be_visible(timeout=60000)
    page.screenshot(path=str(artifacts / "train-resumed-en-US.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_text("stopped", exact=True).first).to_be_visible(timeout=120000)
    page.close()
    # "stopped" may be the first stop's word in the history table: wait for the run itself, or the next test's
    # chat is (rightly) refused as "a run is training".
    JOB.wait(180)
    assert not JOB.running


def test_chat_tab_fills_both_panes(browser, app_url, artifacts, tiny_model_dir):
    """Send a prompt to a tiny run: the base and the tuned pane both fill, and latency figures appear."""
    import os
    from pathlib import Path

    from playwright.sync_api import expect

    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings

    settings, _ = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={tiny_model_dir}", "max_steps=6", "learning_rate=0.01", "precision=fp32",
        "validation_share=0.1", "max_length=64"])
    run = Path(os.environ["STUDIO_RUNS"]) / "browser-chat-run"
    assert train.run_training(settings, run, progress=None)["status"] == "finished"

    page = open_page(browser, app_url, "zh-CN")
    open_chat(page, "对话")
    page.get_by_role("button", name="刷新运行列表").click()
    page.get_by_label("微调后的运行").fill(str(run))
    page.get_by_label("微调后的运行").press("Enter")
    page.get_by_role("button", name="同时发送给两个模型").click()
    expect(page.get_by_text("毫秒").first).to_be_visible(timeout=60000)  # latency, in Chinese
    bubbles = page.locator("[data-testid='bot']")
    expect(bubbles).to_have_count(2, timeout=30000)  # one answer per pane
    for i in range(2):
        assert bubbles.nth(i).inner_text().strip()
    page.screenshot(path=str(artifacts / "chat-tab-zh-CN.png"), full_page=True)
    page.close()




def blind_votes(browser, app_url, artifacts, tiny_model_dir, locale, name) -> Path:
    """Blind A/B in the browser: the panes become A and B, three votes are cast, each says which model was which
    only afterwards, and the tally (win rate with its interval) appears, all in the reader's language."""
    from playwright.sync_api import expect

    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings

    run = Path(os.environ["STUDIO_RUNS"]) / name
    settings, _ = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={tiny_model_dir}", "max_steps=4", "learning_rate=0.01", "precision=fp32",
        "validation_share=0.1", "max_length=64", "max_new_tokens=8"])
    assert train.run_training(settings, run, progress=None)["status"] == "finished"
    words = BLIND_WORDS[locale]
    page = open_page(browser, app_url, locale)
    open_chat(page, words["tab"])  # opening the tab lists the runs (a Refresh answered after the pick resets it)
    page.get_by_label(words["run"]).fill(str(run))
    page.get_by_label(words["run"]).press("Enter")
    page.get_by_text(words["blind"]).first.click()
    for i, button in enumerate(words["votes"]):
        expect(page.locator("#chat-latency")).not_to_contain_text(words["pair"])  # the last pair's note is gone
        page.get_by_role("button", name=words["send"]).click()
        expect(page.locator("#chat-latency")).to_contain_text(words["pair"], timeout=60000)
        page.screenshot(path=str(artifacts / f"chat-blind-pair-{locale}.png"), full_page=True)
        page.get_by_role("button", name=button, exact=True).click()
        expect(page.locator("#vote-note")).to_contain_text(words["saved"], timeout=30000)
        if i < 2:
            page.locator("#chat-prompt textarea").fill(f"{i}?")
    expect(page.locator("#vote-tally")).to_contain_text(words["tally"], timeout=30000)
    page.screenshot(path=str(artifacts / f"chat-blind-votes-{locale}.png"), full_page=True)
    page.close()
    from studio.data import votes

    assert [v.verdict for v in votes.read_votes(run / "votes.jsonl")] == ["A", "tie", "B"]
    return run


LOOP_WORDS = {
    "en-US": dict(hyper="Hyperparameters", model="Model", stage="Training stage", start="Start from run",
                  lr="Learning rate", epochs="Epochs", data="Data", dataset="Dataset", load="Load and check",
                  preference="preference", train="Train", go="Start training", done="Next:", left="Left pane",
                  against="against", advanced="Advanced settings"),
    "zh-CN": dict(hyper="超参数", model="模型", stage="训练阶段", start="从运行开始", lr="学习率", epochs="训练轮数",
                  data="数据", dataset="数据集", load="加载并检查", preference="preference", train="训练", go="开始训练",
                  done="下一步", left="左侧窗格", against="对比", advanced="高级设置")}


def test_blind_votes_in_english(browser, app_url, artifacts, tiny_model_dir):
    """Three blind votes and the tally on an English page (the loop to DPO below walks the same votes in Chinese;
    a DPO run from the English form is walked by the CLI test and the GRPO walk)."""
    blind_votes(browser, app_url, artifacts, tiny_model_dir, "en-US", "browser-votes-en-US")


@pytest.mark.parametrize("locale", ["zh-CN"])
def test_votes_to_a_dpo_run_compared_with_its_sft_run(browser, app_url, artifacts, tiny_model_dir, locale):
    """The whole loop a newcomer walks: three blind votes in Chat, DPO trained on them from the form, then the new
    run beside the SFT run it started from, in the reader's language."""
    from playwright.sync_api import expect

    sft = blind_votes(browser, app_url, artifacts, tiny_model_dir, locale, f"browser-loop-{locale}")  # three votes
    words = {**BLIND_WORDS[locale], **LOOP_WORDS[locale]}
    page = open_page(browser, app_url, locale)
    page.get_by_role("tab", name=words["hyper"]).click()
    pick(page, words["model"], str(tiny_model_dir))
    pick(page, words["stage"], "dpo")
    page.get_by_role("button", name=words["advanced"]).first.click()
    pick(page, words["start"], str(sft))
    for label, value in ((words["lr"], "0.00005"), (words["epochs"], "1")):
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_label(label, exact=True).press("Enter")
    page.get_by_role("tab", name=words["data"]).click()
    pick(page, words["dataset"], f"votes:{sft}")
    page.get_by_role("button", name=words["load"]).click()
    expect(page.locator("#data-summary")).to_contain_text(words["preference"], timeout=60000)
    page.get_by_role("tab", name=words["train"]).click()
    dpo = str(train_from_the_page(page, words))
    page.screenshot(path=str(artifacts / f"train-dpo-on-votes-{locale}.png"), full_page=True)
    assert json.loads((Path(dpo) / "status.json").read_text())["method"] == "dpo"
    open_chat(page, words["tab"])  # opening the tab lists the runs (a Refresh answered after the pick resets it)
    pick(page, words["run"], dpo)
    pick(page, words["left"], str(sft))
    expect(page.locator("#chat-note")).to_contain_text(words["against"], timeout=60000)
    assert not page.get_by_label(words["blind"]).is_checked()  # a fresh page: panes named for what they show
    page.get_by_role("button", name=words["send"]).click()
    bubbles = page.locator("[data-testid='bot']")
    expect(bubbles).to_have_count(2, timeout=60000)
    expect(page.locator("#chat-base")).to_contain_text(sft.name)
    page.screenshot(path=str(artifacts / f"chat-dpo-vs-sft-{locale}.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def quickstart_run(app_url, starter_identity_run):
    """The starter model's identity run (conftest: Nova of Orbit Labs, 40 steps of the plan's recipe, trained once for
    the suite), copied into the app's runs folder where the Chat and Export tabs list it."""
    run = Path(os.environ["STUDIO_RUNS"]) / "identity-40"
    if not run.exists():
        shutil.copytree(starter_identity_run, run)
    return run


@pytest.mark.slow
def test_quickstart_run_shows_the_new_identity_side_by_side(browser, app_url, artifacts, quickstart_run):
    """The Chat tab on the identity run: the tuned pane introduces itself as Nova, the base pane does not."""
    from playwright.sync_api import expect

    run = quickstart_run
    page = open_page(browser, app_url, "en-US")
    open_chat(page, "Chat")
    page.get_by_label("Tuned run").fill(str(run))
    page.get_by_label("Tuned run").press("Enter")
    page.get_by_label("Your message").fill("Who are you?")
    page.get_by_role("button", name="Send to both").click()
    expect(page.get_by_text("ms/token").first).to_be_visible(timeout=120000)
    bubbles = page.locator("[data-testid='bot']")
    expect(bubbles).to_have_count(2, timeout=30000)
    base, tuned = bubbles.nth(0).inner_text(), bubbles.nth(1).inner_text()
    page.screenshot(path=str(artifacts / "chat-quickstart-identity-en-US.png"), full_page=True)
    assert "Nova" in tuned and "Nova" not in base, (base, tuned)
    page.close()


@pytest.mark.slow
def test_export_merged_model_and_preset_from_the_quickstart_run(browser, app_url, artifacts, quickstart_run, tmp_path):
    """In Chinese: pick the run, export the merged model (checked by reloading it), download its preset."""
    from playwright.sync_api import expect
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.export import export

    page = open_page(browser, app_url, "zh-CN")
    # Opening the tab lists the runs and shows the newest at once (a preselected choice fires no change event).
    open_export(page, "导出")
    run_box = page.locator("#export-run input")
    run_box.fill(str(quickstart_run))
    run_box.press("Enter")
    # The run's own summary, not its name in the dropdown's list: the summary, preset and download change together
    expect(page.locator("#export-summary")).to_contain_text(quickstart_run.name, timeout=30000)
    download = page.locator("#export-preset")
    expect(download).to_be_visible(timeout=30000)
    with page.expect_download() as download_info:
        download.click()
    saved = tmp_path / "preset.json"
    download_info.value.save_as(saved)
    assert json.loads(saved.read_text()) == json.loads((quickstart_run / "preset.json").read_text())

    page.get_by_role("button", name="导出并检查").click()
    result = page.locator("#export-result")
    expect(result).to_contain_text("已用 AutoModelForCausalLM 重新加载", timeout=240000)
    page.screenshot(path=str(artifacts / "export-tab-zh-CN.png"), full_page=True)
    merged = quickstart_run / "export" / "merged"
    model = AutoModelForCausalLM.from_pretrained(merged)  # plain transformers, no PEFT, no studio
    _, answer = export.check_answer(model, AutoTokenizer.from_pretrained(merged))
    assert "Nova" in answer and answer in result.inner_text(), answer
    page.close()
