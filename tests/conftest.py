"""Shared fixtures: a tiny random Llama with a real tokenizer (built offline), tiny data, the running app."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"  # Debian's package; browsers cannot be downloaded here
sys.path.insert(0, str(ROOT))

CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer():
    """A real byte-level BPE tokenizer trained in a second on the demo data, with ChatML special tokens."""
    from studio.heavy import ensure_imported

    ensure_imported()  # the app's server threads may be importing transformers right now; two at once break it
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [m["content"] for line in (ROOT / "assets/demo/identity.jsonl").read_text(encoding="utf-8").splitlines()
             for m in json.loads(line)["messages"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML_TEMPLATE
    return fast


def save_llama(path: Path, hidden_size: int = 16, layers: int = 2, heads: int = 2, kv_heads: int = 1) -> Path:
    """A random Llama with the tokenizer above, saved as a normal model folder (also used by bench/gpu_check.py)."""
    tokenizer = build_tokenizer()  # first: it imports the heavy libraries safely
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
def app_url(tmp_path_factory):
    """The studio running in this process on a free port (not blocking), with its own runs folder."""
    os.environ["STUDIO_RUNS"] = str(tmp_path_factory.mktemp("app-runs"))
    from studio.ui.app import launch_app

    port = free_port()
    # The tests' models and data live in pytest's temp folder and tests/data: listed like a user's --data-dir.
    launch_app(port=port, block=False, data_dirs=[tmp_path_factory.getbasetemp(), Path(__file__).parent / "data"])
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
