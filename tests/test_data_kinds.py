"""Every file read for what it is: preference pairs, KTO labels and multimodal rows are named and never trained as
SFT data; LLaMA-Factory's content parts, a JSON object holding conversations, and plain text files are read."""

import subprocess
import sys
from pathlib import Path

import pytest

from studio.data.data import load_dataset_file

KINDS = Path(__file__).parent / "data" / "kinds"
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name,shape", [
    ("pref_alpaca.json", "LLaMA-Factory (Alpaca)"), ("pref_sharegpt.json", "LLaMA-Factory (ShareGPT)"),
    ("pref_ultrafeedback.jsonl", "UltraFeedback"), ("pref_hh.jsonl", "HH-RLHF"),
    ("pref_trl.jsonl", "TRL prompt/chosen/rejected")])
def test_preference_pairs_are_named_and_not_trained_as_sft(name, shape):
    result = load_dataset_file(str(KINDS / name))
    assert result.rows == [] and result.format == "preference"
    message = result.problems[0][1]
    assert message.key == "data.kind_preference" and shape in message and "chosen" in message


@pytest.mark.parametrize("name", ["kto_trl.jsonl", "kto_llamafactory.json"])
def test_kto_files_are_named_and_their_undesirable_answers_never_trained(name):
    result = load_dataset_file(str(KINDS / name))
    assert result.rows == [] and result.format == "kto"
    message = result.problems[0][1]
    assert message.key == "data.kind_kto" and message.fields["bad"] == 1 and message.fields["good"] == 1


def test_multimodal_rows_are_problems_naming_the_row_and_text_rows_stay():
    result = load_dataset_file(str(KINDS / "multimodal.json"))
    assert [r.number for r in result.rows] == [2] and result.bad_rows == {1}
    where, message = result.problems[0]
    assert "row 1" in where and message.key == "data.multimodal" and "images" in message


def test_llamafactory_content_parts_with_reasoning_and_tool_calls():
    result = load_dataset_file(str(KINDS / "content_parts.jsonl"))
    assert not result.problems, result.problems
    first, second = (r.messages for r in result.rows)
    assert first[0] == {"role": "system", "content": "You are terse."}
    assert first[2]["reasoning_content"] == "Use the tool." and first[2]["content"] == ""
    assert first[2]["tool_calls"][0]["function"] == {"name": "multiply", "arguments": {"a": 6, "b": 8}}
    assert first[3] == {"role": "tool", "content": "48"}
    assert first[4] == {"role": "assistant", "content": "48.", "reasoning_content": "The tool said 48."}
    assert second[1]["content"] == "work too."  # OpenAI-style {"type": "text", "text": ...} parts


def test_a_json_object_holding_one_conversation_or_a_list_of_them():
    one = load_dataset_file(str(KINDS / "one_conversation.json"))
    assert not one.problems and len(one.rows) == 1 and len(one.rows[0].messages) == 4
    many = load_dataset_file(str(KINDS / "conversation_list.json"))
    assert not many.problems and [len(r.messages) for r in many.rows] == [2, 2] and many.format == "sharegpt"


def test_plain_text_files_are_documents_separated_by_blank_lines():
    for fmt in ("auto", "text"):
        result = load_dataset_file(str(KINDS / "plain.txt"), fmt)
        assert not result.problems and result.format == "text"
        assert [r.text for r in result.rows] == ["The first document.\nIt has two lines.", "The second document.",
                                                 "第三篇文档。"]


@pytest.mark.parametrize("name,kind", [("pref_trl.jsonl", "preference"), ("kto_trl.jsonl", "KTO"),
                                       ("multimodal.json", "image")])
def test_the_data_command_names_the_kind(name, kind):
    result = subprocess.run([sys.executable, "launch.py", "data", str(KINDS / name), "--model", ""], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and kind in result.stdout and "Traceback" not in result.stderr


def test_the_data_tab_shows_preference_pairs_in_the_readers_language(app_url, tiny_model_dir):
    """A preference file on the Data tab: its pairs, chosen beside rejected; token lengths of both sides; the
    identical pair named; and the way to train it (stage 'dpo'), in English and in Chinese."""
    from gradio_client import Client

    for language, words in (("en", ("training stage 'dpo'", "prompt + rejected", "the same")),
                            ("zh", ("训练阶段 'dpo'", "提示 + 被拒绝的回答", "相同"))):
        client = Client(app_url, verbose=False, headers={"Accept-Language": language})
        out = client.predict(dataset_path=str(KINDS / "pref_trl.jsonl"), model_name_or_path=str(tiny_model_dir),
                             api_name="/load_data")
        summary, problems, preview, percentiles, findings = out[0], out[1], out[2], out[4], out[9]
        assert "preference" in summary
        assert preview["data"][0][1] == "user: Say hi.\n✓ assistant: Hi!\n✗ assistant: No."
        assert [row[0] for row in percentiles["data"]][-1] == words[1]
        assert any(words[0] in row[2] for row in findings["data"]), findings
        assert words[2] in problems["data"][0][1] and "2" in problems["data"][0][0]
