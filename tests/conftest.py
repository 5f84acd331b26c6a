"""Shared fixtures and helpers: a tiny random Llama with a real tokenizer (built offline), settings and finished
runs on it, the running app and a real browser, and the helpers several test modules use (no test module imports
another)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
GB_PER_WORKER = 6  # a worker may hold the real starter model training beside a browser and an app


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject.toml): a worker per core and one more, as many as the memory holds, at most 4 (beyond
    that the longest file alone sets the time). The spare worker keeps the cores busy while the others wait on a
    browser's poll, a process starting or a page loading."""
    try:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        ram_gb = 8.0
    return max(1, min(cores() + 1, int(ram_gb // GB_PER_WORKER), 4))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each worker's share of the cores, set before torch is imported (torch reads it once): two workers with two
    # threads each on two cores would fight over them; tiny models gain nothing from a second thread anyway.
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, cores() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))))
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; browsers cannot be downloaded here
sys.path.insert(0, str(ROOT))

CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(vocab_size: int = 800):
    """A real byte-level BPE tokenizer trained in a second on the demo data, with ChatML special tokens."""
    from studio.engine.heavy import ensure_imported

    ensure_imported()  # the app's server threads may be importing transformers right now; two at once break it
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [m["content"] for line in (ROOT / "assets/demo/identity.jsonl").read_text(encoding="utf-8").splitlines()
             for m in json.loads(line)["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


def save_llama(path: Path, hidden_size: int = 16, layers: int = 2, heads: int = 2, kv_heads: int = 1,
               vocab_size: int = 800) -> Path:
    """A random Llama with the tokenizer above, saved as a normal model folder (also used by bench/gpu_check.py)."""
    tokenizer = build_tokenizer(vocab_size)  # first: it imports the heavy libraries safely
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=1024, tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama, hidden size 16, random weights."""
    return save_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def other_tiny_model_dir(tmp_path_factory) -> Path:
    """Another tiny Llama whose tokenizer has half the vocabulary: the same data measures longer with it."""
    return save_llama(tmp_path_factory.mktemp("tiny-llama-small-vocab"), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def runs_dir(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("STUDIO_RUNS", str(path))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory, tiny_model_dir):
    """The studio running in this process on a free port (not blocking), with its own runs folder, its form starting
    with the tiny model (`launch.py --model`): no test downloads a model unless it names one."""
    os.environ["STUDIO_RUNS"] = str(tmp_path_factory.mktemp("app-runs"))
    from studio.ui.app import launch_app

    port = free_port()
    # The tests' models and data live in pytest's temp folder and tests/data: listed like a user's --data-dir.
    launch_app(port=port, block=False, data_dirs=[tmp_path_factory.getbasetemp(), Path(__file__).parent / "data"],
               model=str(tiny_model_dir))
    url = f"http://127.0.0.1:{port}/"
    yield url
    import gradio as gr

    gr.close_all()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Debian's), for the browser tests; the flags keep it off the closed network."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


# ---------------------------------------------------------------- settings and runs on the tiny model

def tiny_settings(model_dir, *overrides):
    """Settings for a 4-step run on the tiny model, with `--set`-style overrides."""
    from studio.core import settings_input
    from studio.core.config import Settings

    settings, problems = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={model_dir}", "max_steps=4", "learning_rate=0.01", "per_device_train_batch_size=4",
        "gradient_accumulation_steps=1", "logging_steps=1", "eval_steps=2", "save_steps=2", "max_length=128",
        "lora_dropout=0.0", "precision=fp32", *overrides])
    assert not problems, problems
    return settings


@pytest.fixture(scope="session")
def starter_identity_run(tmp_path_factory) -> Path:
    """The real starter model taught a new identity (tests/data/identity_nova.jsonl: 60 rows, "Nova" of "Orbit
    Labs") by the plan's recipe, capped at 40 steps; replay and the drift check off (each has its own tests).
    Trained once for every test that needs a real tuned model: the held-out verdict, the Chat tab, the merged
    export."""
    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings

    from filelock import FileLock

    data = Path(__file__).parent / "data" / "identity_nova.jsonl"
    settings, problems = settings_input.apply_overrides(Settings(), [f"dataset_path={data}", "max_steps=40",
                                                                     "drift_check=false", "replay=off"])
    assert not problems
    # One run for the whole session, whichever xdist worker asks first (the others wait and read it): two files
    # that need it land on two workers, and each trained it (about two minutes) before.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    run = shared / "starter-identity" / "run"
    with FileLock(str(shared / "starter-identity.lock")):
        status = json.loads((run / "status.json").read_text()) if (run / "status.json").exists() else {}
        if status.get("status") != "finished":
            shutil.rmtree(run, ignore_errors=True)
            status = train.run_training(settings, run, progress=None, keep=frozenset({"max_steps"}))  # the rest:
            assert status["status"] == "finished", status  # the plan's
    return run


@pytest.fixture()
def captured_model(monkeypatch):
    """Keep a handle on the model the run trains, to compare its weights afterwards."""
    from studio.models import models

    holder = {}
    original = models.load_model

    def load_and_keep(*args, **kwargs):
        holder["model"] = original(*args, **kwargs)
        return holder["model"]

    monkeypatch.setattr(models, "load_model", load_and_keep)
    return holder


def base_weights(model_dir):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(model_dir).state_dict().items()}


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """A finished 4-step LoRA run on the tiny model."""
    from studio.training import train

    run = tmp_path_factory.mktemp("export") / "run"
    status = train.run_training(tiny_settings(tiny_model_dir, "learning_rate=0.009"), run, progress=None)
    assert status["status"] == "finished", status
    return run


@pytest.fixture(scope="module")
def chat_run(tiny_model_dir):
    """A finished 8-step LoRA run with validation and test rows, in the app's runs folder."""
    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings

    settings, problems = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={tiny_model_dir}", "max_steps=8", "learning_rate=0.01", "r=2", "lora_alpha=8",
        "precision=fp32", "validation_share=0.1", "test_share=0.05", "max_length=64"])
    assert not problems
    run = Path(os.environ["STUDIO_RUNS"]) / "chat-run"
    assert train.run_training(settings, run, progress=None)["status"] == "finished"
    return str(run)


# ---------------------------------------------------------------- the Train tab through the API

def training_values(model_dir, **changes):
    """The whole form by field name, as the API takes it, for a short run on `model_dir`."""
    from studio.core import config, settings_input
    from studio.core.config import Settings

    values = config.flat_values(Settings())
    values.update({"model_name_or_path": str(model_dir), "logging_steps": 1, "eval_steps": 2, "save_steps": 1000,
                   "learning_rate": 0.01, "gradient_accumulation_steps": 1, **changes})
    return {name: settings_input.form_value(values[name]) for section, name, _ in config.all_fields()
            if section != "generation"}  # by name, as the API takes the form


def poll(client):
    """The Train tab's status, progress, loss plot, learning-rate plot and log."""
    status, progress, loss, lr, log = client.predict(api_name="/poll_training")[:5]
    return status, progress, loss, lr, log


def click_and_get_the_new_run(button, timeout=30) -> Path:
    """Click Start (or Resume) and return the run it started: a fresh page first shows an earlier run's status, so
    a test waits for this run, not for words that run's status may also hold."""
    from studio.training.jobs import JOB

    before = JOB.run_dir
    button.click()
    deadline = time.time() + timeout
    while JOB.run_dir == before and time.time() < deadline:
        time.sleep(0.2)
    assert JOB.run_dir != before, "the click started a run"
    return JOB.run_dir


def wait_for(client, predicate, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        snapshot = poll(client)
        if predicate(snapshot):
            return snapshot
        time.sleep(0.5)
    raise AssertionError(f"timed out; last status: {snapshot[0]}")


# ---------------------------------------------------------------- the catalogues

def english_with_fields() -> dict[str, str]:
    """The source language's every key: its catalogue, and each field's label, help and advice (the fields'
    own metadata in studio/core/config.py)."""
    from studio.core import config
    from studio.core.text import TEXT

    words = dict(TEXT)
    for _, name, info in config.all_fields():
        extra = info.json_schema_extra
        for part, text in (("label", extra["label"]), ("help", info.description), ("advice", extra["advice"])):
            if text:
                words[f"{name}.{part}"] = text  # as written: fields such as {lora_low} still unfilled
    return words


# ---------------------------------------------------------------- browser walks' shared steps

def train_from_the_page(page, words, timeout=180):
    """Start, then wait for this run (not the status of an earlier one, which a fresh page shows first) to end and
    its status to reach the page. The run's folder."""
    from playwright.sync_api import expect

    from studio.training.jobs import JOB

    run = click_and_get_the_new_run(page.get_by_role("button", name=words["go"], exact=True))
    JOB.wait(timeout)
    status = page.locator("#train-status")
    expect(status).to_contain_text(run.name, timeout=30000)
    expect(status).to_contain_text(words["done"], timeout=30000)
    return run


def open_page(browser, app_url, locale):
    """A fresh page, once the built-in demo it opens on has been loaded and its plan handed to the form (a value
    typed before that would be the plan's again)."""
    from playwright.sync_api import expect

    page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    expect(page.locator("#data-applied")).to_contain_text(re.compile("Applied to the settings|已应用到设置"),
                                                          timeout=90000)
    return page


def open_chat(page, tab_name):
    """Open the Chat tab and let it finish offering the run trained last (it loads that run's model) before
    the test picks its own: a pick made meanwhile would be replaced when the offer arrives."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab_name).click()
    # the note says what was loaded (a progress timer such as "0.6s" shows there before that)
    expect(page.locator("#chat-note")).to_contain_text(re.compile(r"Ready|No finished|已就绪|还没有"), timeout=60000)


def open_export(page, tab_name):
    """Open the Export tab and let it finish offering the run trained last before the test picks its own: a pick
    typed within milliseconds of the click can precede the offer's request, which then cannot be cancelled."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab_name).click()
    expect(page.locator("#export-summary")).to_contain_text(
        re.compile(r"Can export|Pick a finished run|可导出|请先选择"), timeout=60000)


def pick(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")


BLIND_WORDS = {"en-US": dict(tab="Chat", refresh="Refresh runs", run="Tuned run", blind="Blind A/B", send="Send to both",
                             votes=["A is better", "Tie", "B is better"], saved="Saved. A was the", tally="decided votes",
                             pair="is shown after your vote"),
               "zh-CN": dict(tab="对话", refresh="刷新运行列表", run="微调后的运行", blind="盲测 A/B", send="同时发送给两个模型",
                             votes=["A 更好", "差不多", "B 更好"], saved="已保存。A 是", tally="有效投票",
                             pair="投票后才显示")}
