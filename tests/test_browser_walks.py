"""More walks in a real headless Chromium, in English and Chinese (a second file, so that the two test workers
share the browser walks): mixing files, a mixed run, GRPO from the form, the placeholders and system prompt, a run
served and judged, a file repaired and grown. Screenshots go to artifacts/."""

import json
import os
import re
from pathlib import Path

import pytest

from conftest import BLIND_WORDS, CHROMIUM, open_chat, open_export, open_page, pick, train_from_the_page  # noqa: F401

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


MIX_WORDS = {"en-US": ("Mix in more files", "Share of training rows", "Add to the mix", "training rows from 2 files",
                       "share of tokens"),
             "zh-CN": ("混入更多文件", "训练行占比", "加入混合", "来自 2 个文件", "词元占比")}


@pytest.mark.parametrize("locale", list(MIX_WORDS))
def test_a_second_file_joins_the_mix_and_the_table_shows_it(browser, app_url, artifacts, locale):
    from playwright.sync_api import expect

    title, share_label, add, summary, token_header = MIX_WORDS[locale]
    page = open_page(browser, app_url, locale)
    page.get_by_text(title, exact=True).click()  # the accordion
    page.locator("#mix-box input[type=file][accept*='.jsonl']").set_input_files(str(EXAMPLES / "alpaca.json"))
    expect(page.locator("#mix-path input")).to_have_value(re.compile(r"^alpaca\.json(?: \(uploaded\)|（已上传）)$"), timeout=20000)
    page.get_by_label(share_label, exact=True).fill("0.3")
    page.get_by_role("button", name=add).click()
    table = page.locator("#mix-table")
    expect(table).to_contain_text("alpaca.json", timeout=60000)
    expect(table).to_contain_text("identity.jsonl")
    expect(table).to_contain_text(token_header)
    expect(page.locator("#mix-note")).to_contain_text(summary)
    table.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / f"data-mix-{locale}.png"), full_page=True)
    page.close()


MIXED_RUN_WORDS = {
    "en-US": dict(hyper="Hyperparameters", model="Model", epochs="Epochs", data="Data", mix="Mix in more files",
                  share="Share of training rows", add="Add to the mix", load="Load and check", train="Train",
                  go="Start training", done="Next:", by_file="Validation loss by file", drift="nats per token",
                  samples="General prompts, base vs tuned (the most changed)",
                  sample_prompt=re.compile(r"\b(What|How|Who|Which|Write|List|Give|Tell|If|Tom|Hi|Can|Explain|Rewrite|Summarize|Translate|Thank|I )")),
    "zh-CN": dict(hyper="超参数", model="模型", epochs="训练轮数", data="数据", mix="混入更多文件", share="训练行占比",
                  add="加入混合", load="加载并检查", train="训练", go="开始训练", done="下一步",
                  by_file="各文件的验证损失", drift="奈特/词元", samples="通用问题：基础模型与微调后对比（变化最大的几个）",
                  sample_prompt=re.compile("[\u4e00-\u9fff]{4}"))}  # the sample prompts in the reader's language


@pytest.mark.parametrize("locale", list(MIXED_RUN_WORDS))
def test_a_mixed_run_reports_each_file_and_the_drift_in_train_and_chat(browser, app_url, artifacts, tiny_model_dir,
                                                                        locale):
    """A newcomer mixes a second file into the demo data, trains, and reads each file's validation loss and the
    general-ability drift on the Train tab, then the drift's sample answers in Chat, in the reader's language."""
    from playwright.sync_api import expect

    words = {**BLIND_WORDS[locale], **MIXED_RUN_WORDS[locale]}
    page = open_page(browser, app_url, locale)
    page.get_by_role("tab", name=words["hyper"]).click()
    pick(page, words["model"], str(tiny_model_dir))
    page.get_by_label(words["epochs"], exact=True).fill("1")
    page.get_by_label(words["epochs"], exact=True).press("Enter")
    page.get_by_role("tab", name=words["data"]).click()
    page.get_by_text(words["mix"], exact=True).click()
    page.locator("#mix-box input[type=file][accept*='.jsonl']").set_input_files(str(EXAMPLES / "sharegpt.json"))
    expect(page.locator("#mix-path input")).to_have_value(re.compile(r"^sharegpt\.json(?: \(uploaded\)|（已上传）)$"), timeout=20000)
    page.get_by_label(words["share"], exact=True).fill("0.2")
    page.get_by_role("button", name=words["add"]).click()
    expect(page.locator("#mix-table")).to_contain_text("sharegpt.json", timeout=60000)
    page.get_by_role("tab", name=words["train"]).click()
    run = str(train_from_the_page(page, words, timeout=240))
    body = page.locator("body")
    expect(body).to_contain_text(words["by_file"], timeout=30000)
    expect(body).to_contain_text(words["drift"])
    expect(page.locator("#train-drift")).to_be_visible(timeout=30000)
    page.screenshot(path=str(artifacts / f"train-mix-drift-{locale}.png"), full_page=True)
    by_file = json.loads((Path(run) / "status.json").read_text())["eval_by_file"]
    assert by_file[0]["file"] == "demo" and by_file[1]["file"].endswith("sharegpt.json")
    open_chat(page, words["tab"])
    pick(page, words["run"], run)
    page.get_by_role("button", name=words["samples"]).click()  # the Chat tab's accordion (the Train tab's table has it too)
    expect(page.locator("#chat-drift")).to_contain_text(words["drift"], timeout=60000)
    expect(page.locator("#chat-drift-samples")).to_contain_text(words["sample_prompt"])
    page.screenshot(path=str(artifacts / f"chat-drift-{locale}.png"), full_page=True)
    page.close()


PRACTICE_WORDS = {
    "en-US": dict(hyper="Hyperparameters", model="Model", stage="Training stage", advanced="Advanced settings",
                  pattern="Answer format", answers="Answers per prompt", longest="Longest sampled answer (tokens)",
                  max_steps="Max steps", data="Data", dataset="Dataset", load="Load and check", report="reference answers",
                  replay="Replay general answers",
                  train="Train", go="Start training", done="Next:", chart="Rewards of the sampled answers",
                  sampled="sampled answer", verdict="held-out score"),
    "zh-CN": dict(hyper="超参数", model="模型", stage="训练阶段", advanced="高级设置", pattern="回答格式",
                  answers="每个提示的回答数", longest="采样回答的最大长度（词元）", max_steps="最大步数", data="数据",
                  dataset="数据集", load="加载并检查", report="参考答案", replay="回放通用回答", train="训练",
                  go="开始训练", done="下一步",
                  chart="采样回答的奖励", sampled="采样的回答", verdict="留出数据得分")}


@pytest.mark.parametrize("locale", list(PRACTICE_WORDS))
def test_a_grpo_run_from_the_form_shows_its_rewards_and_sampled_answers(browser, app_url, artifacts, tiny_model_dir,
                                                                        tmp_path, locale):
    """Issue 42: the newcomer's GRPO journey on a small file of checkable answers: the stage and a reward picked by
    name (no code), the Data tab's prompt report, the run's reward chart, its sampled answers with their rewards and
    the held-out verdict, in the reader's language."""
    from playwright.sync_api import expect

    words = PRACTICE_WORDS[locale]
    data = tmp_path / "questions.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"Say a number, please ({i})", "answer": str(i)})
                              for i in range(20)))
    page = open_page(browser, app_url, locale)
    page.get_by_role("tab", name=words["hyper"]).click()
    pick(page, words["model"], str(tiny_model_dir))
    pick(page, words["stage"], "grpo")
    page.get_by_label("format", exact=True).check()  # the rewards, ticked by name
    page.get_by_label("answer_match", exact=True).uncheck()
    for label, value in ((words["answers"], "2"), (words["longest"], "8")):
        page.get_by_label(label, exact=True).fill(value)
        page.get_by_label(label, exact=True).press("Enter")
    page.get_by_role("button", name=words["advanced"]).first.click()
    pick(page, words["pattern"], r".*\d.*")
    page.get_by_label(words["max_steps"], exact=True).fill("3")
    page.get_by_label(words["max_steps"], exact=True).press("Enter")
    page.screenshot(path=str(artifacts / f"hyper-grpo-{locale}.png"), full_page=True)
    page.get_by_role("tab", name=words["data"]).click()
    pick(page, words["dataset"], str(data))
    page.get_by_role("button", name=words["load"]).click()
    expect(page.locator("body")).to_contain_text(words["report"], timeout=60000)
    expect(page.get_by_label(words["replay"], exact=True)).to_be_hidden()  # replay feeds example stages only
    page.get_by_role("tab", name=words["train"]).click()
    train_from_the_page(page, words)
    expect(page.locator("body")).to_contain_text(words["chart"], timeout=30000)
    expect(page.locator("#train-sampled")).to_contain_text(words["sampled"], timeout=30000)
    expect(page.locator("body")).to_contain_text(words["verdict"])
    from studio.training.jobs import JOB
    from studio.core.text import Msg, render

    # The cost line next to Train takes its time per step from the run that just finished, without a tab change.
    expect(page.locator("#train-cost")).to_contain_text(JOB.run_dir.name, timeout=30000)
    started = render(Msg("job.started", name=JOB.run_dir.name), locale[:2])  # over: the status says how it ended
    expect(page.get_by_text(started, exact=True)).to_have_count(0)
    page.screenshot(path=str(artifacts / f"train-grpo-{locale}.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("locale,words", [
    ("en-US", dict(dataset="Dataset", load="Load and check", more="More data settings", fill="Fill placeholders",
                   system="System prompt", hyper="Hyperparameters", before="2 warning(s)", after="1 warning(s)",
                   advice="placeholders")),
    ("zh-CN", dict(dataset="数据集", load="加载并检查", more="更多数据设置", fill="填写占位符", system="系统提示",
                   hyper="超参数", before="2 条警告", after="1 条警告", advice="占位符")),
])
def test_filling_placeholders_and_the_system_prompt_updates_every_view(browser, app_url, artifacts, locale, words):
    """Issue 57's walk: after the user fills what the warnings ask, the summary, the findings, the preview "as
    trained" and the Hyperparameters advice follow at once, with no second Load."""
    from playwright.sync_api import expect

    page = open_page(browser, app_url, locale)
    path = str(Path(__file__).parent / "data" / "preflight" / "identity_placeholders.json")
    page.get_by_label(words["dataset"], exact=True).fill(path)
    page.get_by_role("button", name=words["load"]).click()
    summary = page.locator("#data-summary")
    expect(summary).to_contain_text(words["before"], timeout=60000)
    page.screenshot(path=str(artifacts / f"fill-before-{locale}.png"), full_page=False)
    page.get_by_text(words["more"]).click()
    more = page.locator("#data-more")
    fill, system = more.get_by_label(words["fill"]).first, more.get_by_label(words["system"]).first
    fill.fill("name=Nova, author=Orbit Labs")
    fill.press("Enter")
    system.fill("You are Nova.")
    system.blur()
    expect(summary).to_contain_text(words["after"], timeout=30000)
    expect(page.get_by_role("grid").nth(1)).to_contain_text("I am Nova", timeout=30000)  # the preview, as trained
    expect(page.get_by_role("grid").nth(1)).to_contain_text("system: You are Nova.")
    page.screenshot(path=str(artifacts / f"fill-after-{locale}.png"), full_page=True)
    page.get_by_role("tab", name=words["hyper"]).click()
    advice = page.locator("#hyper-advice")
    expect(advice).not_to_contain_text(words["advice"], timeout=30000)
    page.screenshot(path=str(artifacts / f"fill-advice-{locale}.png"), full_page=False)
    page.close()


SERVE_WORDS = {"en-US": ("Export", "Serve over the OpenAI API", "Serve this run", "Serving at", "Chat",
                         "Judge base vs tuned with a model", "Judge", "Judged by"),
               "zh-CN": ("导出", "通过 OpenAI API 提供服务", "为这次运行提供服务", "正在", "对话",
                         "用模型评判基础模型与微调模型", "评判", "评判：")}


@pytest.mark.parametrize("locale", list(SERVE_WORDS))
def test_a_run_served_from_export_is_judged_in_chat(browser, app_url, artifacts, chat_run, locale):
    """Issue 55 as a user: Serve on the Export tab, then the Chat tab's judge uses that endpoint; both in the
    reader's language, with screenshots."""
    from playwright.sync_api import expect

    from conftest import free_port
    from studio.chat import serve

    export_tab, serve_title, serve_button, serving, chat_tab, judge_title, judge_button, judged = SERVE_WORDS[locale]
    page = open_page(browser, app_url, locale)
    try:
        open_export(page, export_tab)
        run_box = page.locator("#export-run input")
        run_box.fill(chat_run)
        run_box.press("Enter")
        expect(page.locator("#export-summary")).to_contain_text("chat-run", timeout=30000)
        page.get_by_text(serve_title).click()
        page.locator("#serve-box input[type=number]").fill(str(free_port()))
        page.get_by_role("button", name=serve_button).click()
        note = page.locator("#serve-note")
        expect(note).to_contain_text(serving, timeout=60000)
        expect(page.locator("#serve-curl")).to_contain_text("chat-run", timeout=10000)
        page.screenshot(path=str(artifacts / f"export-serve-{locale}.png"), full_page=True)
        url = re.search(r"http://127\.0\.0\.1:\d+/v1", note.inner_text()).group(0)

        open_chat(page, chat_tab)
        chat_box = page.locator("#chat-run input")
        chat_box.fill(chat_run)
        chat_box.press("Enter")
        page.get_by_text(judge_title).click()
        page.locator("#judge-source textarea, #judge-source input").first.fill(url)
        page.locator("#judge-model textarea, #judge-model input").first.fill("chat-run")
        page.get_by_role("button", name=judge_button, exact=True).click()
        expect(page.locator("#judge-note")).to_contain_text(judged, timeout=180000)
        outcomes = r"tie|tuned better|base better" if locale == "en-US" else r"持平|微调更好|基础更好"
        expect(page.locator("#judge-pairs")).to_contain_text(re.compile(outcomes), timeout=5000)
        page.screenshot(path=str(artifacts / f"chat-judge-{locale}.png"), full_page=True)
    finally:
        serve.stop_serving()
        page.close()


WORKSHOP_WORDS = {"en-US": ("Load and check", "Repair this file", "Make a repaired version", "Made **", "Made",
                            "Grow this data with a teacher", "Grow", "new rows", "Make a version with the kept rows"),
                  "zh-CN": ("加载并检查", "修复这个文件", "生成修复后的版本", "已生成", "已生成",
                            "用教师模型扩充这份数据", "扩充", "行新数据", "用保留的行生成新版本")}


@pytest.mark.parametrize("locale", list(WORKSHOP_WORDS))
def test_a_messy_file_is_repaired_then_grown_from_the_page(browser, app_url, artifacts, locale):
    """Issue 54 as a user, no path typed after the first: repair the file (a new version is loaded), grow it with a
    teacher on loopback, keep the rows, and the new version is loaded; in the reader's language."""
    import http.server
    import threading

    from playwright.sync_api import expect

    from conftest import free_port

    load, repair_title, repair_button, _, made, grow_title, grow_button, grown, accept = WORKSHOP_WORDS[locale]

    class Teacher(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            asked = json.loads(self.rfile.read(int(self.headers["content-length"])))["messages"][0]["content"]
            question = asked.split("\n")[1].rstrip("?.") if asked.startswith("Here is a question") else asked
            body = {"choices": [{"message": {"content": f"Could you tell me: {question}?\nI wonder: {question}?"}}]}
            self.send_response(200)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = open_page(browser, app_url, locale)
    try:
        dataset = page.get_by_label("Dataset" if locale == "en-US" else "数据集",
                                    exact=True)
        dataset.fill(str(Path(__file__).parent / "data" / "messy.jsonl"))
        page.get_by_role("button", name=load).click()
        expect(page.locator("#data-summary")).to_contain_text("messy.jsonl", timeout=60000)
        page.get_by_text(repair_title).click()
        page.get_by_role("button", name=repair_button).click()
        expect(page.locator("#repair-note")).to_contain_text(made, timeout=60000)
        expect(dataset).to_have_value(re.compile(r"v\d+\.jsonl$"), timeout=30000)
        expect(page.locator("#data-summary")).to_contain_text(re.compile(r"v\d+\.jsonl"), timeout=60000)
        page.screenshot(path=str(artifacts / f"data-repair-{locale}.png"), full_page=True)

        page.get_by_text(grow_title).click()
        page.locator("#workshop-source textarea, #workshop-source input").first.fill(f"http://127.0.0.1:{port}/v1")
        page.locator("#workshop-model textarea, #workshop-model input").first.fill("fixed")
        page.get_by_role("button", name=grow_button, exact=True).click()
        expect(page.locator("#workshop-note")).to_contain_text(grown, timeout=60000)
        expect(page.locator("#workshop-review")).to_contain_text("Could you tell me", timeout=10000)
        page.get_by_role("button", name=accept).click()
        expect(page.locator("#workshop-note")).to_contain_text(made, timeout=60000)
        expect(dataset).to_have_value(re.compile(r"v\d+\.jsonl$"), timeout=30000)
        page.screenshot(path=str(artifacts / f"data-workshop-{locale}.png"), full_page=True)
    finally:
        server.shutdown()
        page.close()
