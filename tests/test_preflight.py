"""Pre-flight checks (studio/plan/preflight.py): unfilled placeholders and a model that does not know the data's
language, on small real-shaped files, in both languages; the fill setting reaches the trained rows."""

from pathlib import Path

from studio.core import config, settings_input
from studio.core.config import Settings
from studio.core.text import render
from studio.data import data
from studio.plan import mixing, preflight

DATA = Path(__file__).parent / "data" / "preflight"


def test_identity_placeholders_are_named_with_their_rows_and_the_fix():
    rows = data.load_dataset_file(str(DATA / "identity_placeholders.json")).rows
    findings = preflight.placeholder_findings(rows)
    warning = next(f for f in findings if f.level == "warning")
    assert warning.rows == [1, 2, 3, 4, 5, 6, 7]
    assert "{{name}}" in warning.message and "{{author}}" in warning.message
    assert 'placeholder_values="author=…, name=…"' in warning.message
    assert "占位符" in render(warning.message, "zh")
    note = next(f for f in findings if f.level == "info")  # a format string inside code is meant to stay
    assert note.rows == [8, 9] and "{name}" in note.message


def test_a_placeholder_in_one_row_only_is_not_named():
    rows = data.load_dataset_file(str(DATA / "identity_placeholders.json")).rows[:1]
    assert preflight.placeholder_findings(rows) == []


def test_placeholder_words_and_filling():
    assert [preflight.placeholder_key(t) for t in ("{{ name }}", "{author}", "<YOUR_NAME>", "[YOUR NAME]")] == \
        ["name", "author", "name", "name"]
    text = "I am {{name}} by {{author}}; [YOUR NAME] <NAME> {other}"
    assert preflight.fill_placeholders(text, {"name": "Nova", "author": "Orbit Labs"}) == \
        "I am Nova by Orbit Labs; Nova Nova {other}"


def test_the_fill_setting_reaches_the_training_rows_and_the_report_says_so():
    settings, problems = settings_input.apply_overrides(Settings(), [
        f"dataset_path={DATA / 'identity_placeholders.json'}", "placeholder_values=name=Nova, author=Orbit Labs",
        "validation_share=0", "test_share=0"])
    assert not problems and settings.data.placeholder_values == {"name": "Nova", "author": "Orbit Labs"}
    mix, _ = mixing.build_mix(settings.data, 0)
    answers = [r["messages"][-1]["content"] for r in mix.split("train")]
    assert any("I am Nova, an AI assistant developed by Orbit Labs" in a for a in answers)
    assert not any("{{" in a for a in answers)
    assert any("{name}" in a for a in answers)  # the code rows keep theirs
    rows = data.load_dataset_file(str(DATA / "identity_placeholders.json")).rows
    filled = [f for f in preflight.placeholder_findings(rows, {"name": "Nova", "author": "x"}) if f.level == "ok"]
    assert filled and "filled" in filled[0].message


class FakeTokenizer:
    """`per_char` tokens for every character, as a tokenizer with (1) or without (3) Chinese tokens cuts them."""

    def __init__(self, per_char: int):
        self.per_char = per_char

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [0] * (len(text) * self.per_char)}


def test_chinese_data_on_a_model_that_does_not_know_chinese_is_a_warning():
    rows = data.load_dataset_file(str(DATA / "chinese.json")).rows
    [finding] = preflight.language_findings(rows, FakeTokenizer(3), "some/local-model")
    assert finding.level == "warning" and "3.0 tokens" in finding.message and "gemma3-270m" in finding.message
    assert "中文" in render(finding.message, "zh")
    [stated] = preflight.language_findings(rows, FakeTokenizer(1), "starter")  # its stated language is English
    assert stated.level == "warning"
    [fits] = preflight.language_findings(rows, FakeTokenizer(1), "gemma3-270m")
    assert fits.level == "ok"
    english = data.load_dataset_file("demo").rows[:1]
    assert preflight.language_findings([r for r in english if "Who" in str(r.messages)] or english[:0],
                                       FakeTokenizer(3), "starter") == []


def test_identity_rows_under_a_templates_default_system_prompt_are_named(tiny_tokenizer):
    """A template that adds a default system prompt naming an assistant to a chat without a system message
    (SmolLM2's "...named SmolLM, trained by Hugging Face") is named; the test tokenizer's ChatML default "You are
    a helpful assistant." names nobody and is left alone."""
    import copy

    smol = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    naming = copy.deepcopy(tiny_tokenizer)
    naming.chat_template = tiny_tokenizer.chat_template.replace("You are a helpful assistant.", smol)
    rows = data.load_dataset_file("demo").rows
    [finding] = preflight.system_prompt_findings(rows, naming)
    assert finding.level == "warning" and smol in finding.message
    assert "System prompt" in finding.message and "系统提示" in render(finding.message, "zh")
    assert preflight.system_prompt_findings(rows, tiny_tokenizer) == []
    with_system = preflight.fill_rows(rows, {}, "You are Lumen.")
    assert all(r.messages[0] == {"role": "system", "content": "You are Lumen."} for r in with_system)
    assert preflight.system_prompt_findings(with_system, naming) == []
    general = [r for r in rows if not preflight.IDENTITY.search(str(r.messages))]
    assert preflight.system_prompt_findings(general, naming) == []


def test_the_runs_system_prompt_is_the_modelfiles(tiny_tokenizer):
    from studio.templates import ollama

    text, _ = ollama.modelfile("x.gguf", tiny_tokenizer, config.GenerationSettings(), False, "You are Nova.")
    assert 'SYSTEM """You are Nova."""' in text
    default, _ = ollama.modelfile("x.gguf", tiny_tokenizer, config.GenerationSettings(), False)
    assert 'SYSTEM """You are a helpful assistant."""' in default
