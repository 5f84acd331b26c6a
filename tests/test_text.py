"""Every word in every language: one catalogue per language, messages with named fields, the server's text in
Chinese, and a third language as one new file."""

import re
import string

import pytest

from studio.core import config, settings_input
from studio.core.config import Settings
from studio.core.text import CATALOGUES, TEXT, Msg, language_of, render, tr
from studio.models import estimates, hardware
from studio.plan import advice, data_report
from tests.conftest import english_with_fields

ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'-]*(?:[ ,]+[A-Za-z][A-Za-z'-]*){3,}")
# Names that stay as they are in Chinese text.
NAMES = re.compile(r"AMX / AVX512-BF16|flash-attn|liger-kernel|pip install \w+|Hugging Face Hub|trl sft --config|"
                   r"<tool_call>...</tool_call>|<think>...</think>|AutoModelForCausalLM|llama\.cpp / Ollama|Llama 3")


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_language_has_every_key_with_the_same_fields():
    english = english_with_fields()
    assert set(CATALOGUES) >= {"en", "zh"}
    for code, catalogue in CATALOGUES.items():
        expected = set(english) if code != "en" else set(TEXT)
        assert set(catalogue) == expected, (code, sorted(expected ^ set(catalogue))[:10])
        for key, text in catalogue.items():
            assert text.strip(), (code, key)
            assert fields_of(text) == fields_of(english[key]), (code, key)


def test_chinese_text_has_no_english_sentence():
    for key, zh in CATALOGUES["zh"].items():
        if key.startswith("locale."):
            continue  # the browser codes the catalogue answers to
        plain = NAMES.sub(" ", re.sub(r"\{[^}]*\}", " ", zh))
        assert not ENGLISH_RUN.search(plain), (key, zh)


def test_message_is_english_text_and_renders_in_chinese_with_nested_fields():
    reason = Msg("hw.cpu_fp32")
    message = Msg("log.precision", value="fp32", why=reason)
    assert message == "Precision fp32: " + str(reason) and isinstance(message, str)
    assert render(message, "zh").startswith("精度 fp32：这颗 CPU 没有 bf16 单元")
    assert render(Msg("advice.cutoff_short", share=0.123, cutoff=256), "zh").startswith("12% 的对话长于 256")
    again = Msg.from_json(message.to_json())
    assert render(again, "zh") == render(message, "zh") and again.key == "log.precision"
    import copy
    import pickle

    for twin in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):  # Gradio copies outputs
        assert render(twin, "zh") == render(message, "zh")
    with pytest.raises(KeyError):
        Msg("no.such.key")


def test_browser_language_decides():
    assert language_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert language_of("zh-TW") == "zh"
    assert language_of("en-US,zh;q=0.5") == "en" and language_of(None) == "en" and language_of("fr") == "en"


def test_field_advice_reaches_the_chinese_help():
    from studio.ui.text import translations

    zh, en = translations()["zh"], translations()["en"]
    for _, name, info in config.all_fields():
        if (info.json_schema_extra or {}).get("advice"):
            assert "建议：" in zh[f"{name}.help"] and "Advice:" in en[f"{name}.help"], name


def test_advice_plan_and_report_render_in_chinese():
    """Everything the server computes for the Hyperparameters and Data tabs, rendered for a Chinese reader."""
    settings, _ = settings_input.apply_overrides(Settings(), ["learning_rate=0.005", "r=2", "num_train_epochs=40.0",
                                                      "validation_share=0.0", "precision=bf16", "packing=on",
                                                      "gradient_checkpointing=on", "max_length=64"])
    facts = hardware.HardwareFacts(device="cpu", cpu_count=2, total_memory_gb=24, free_memory_gb=20)
    report = data_report.build_report("demo", tokenizer=None, model=None)
    situation = advice.Situation(settings, rows=120, recommended_cutoff=256, share_over_cutoff=0.3, facts=facts)
    texts = [a.message for a in advice.advise(situation)]
    assert len(texts) >= 8
    plan = hardware.plan(facts, settings.training)
    texts += [plan["hardware"], plan["precision_reason"], plan["packing_reason"], plan["gradient_checkpointing_reason"]]
    texts += [f.message for f in report.findings] + [f.check for f in report.findings]
    texts += [estimates.fit_message(30, 20, "lora"), estimates.time_estimate_text(2.0, 300), report.validation_share[1]]
    for text in texts:
        zh = render(text, "zh")
        assert re.search(r"[\u4e00-\u9fff]", zh), zh
        assert not ENGLISH_RUN.search(NAMES.sub(" ", zh)), zh


def test_data_problems_name_row_and_field_in_chinese(tmp_path):
    from studio.data import data

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": ""}\n{not json\n', encoding="utf-8")
    problems = data.load_dataset_file(str(bad)).problems
    assert [render(w, "zh") for w, _ in problems] == ["bad.jsonl：第 2 行", "bad.jsonl：第 1 行：output"]
    assert [render(m, "zh") for _, m in problems][1] == "缺失或为空"
    assert [str(w) for w, _ in problems] == ["bad.jsonl: line 2", "bad.jsonl: line 1: output"]


def test_error_advice_follows_the_kind_of_error():
    """Chosen by exception type: words inside a message ("information" holds "inf") do not decide."""
    import errno

    from studio.training.train import DataError, explain_error

    assert explain_error(ValueError("missing information")).key == "error.other"
    assert explain_error(FloatingPointError("the training loss became NaN")).key == "error.nan"
    assert explain_error(MemoryError()).key == "error.memory"
    assert explain_error(OSError(errno.ENOSPC, "No space left on device")).key == "error.disk"
    assert explain_error(DataError(Msg("log.no_data", problems=[]))).key == "error.data"
    assert tr("error.nan", "zh").startswith("损失变成了 NaN")


def test_no_message_key_is_defined_twice():
    """A repeated key in a catalogue silently replaces the first message (it happened: 'data.unreadable')."""
    import json

    from studio.core.text import LOCALES_DIR

    def no_repeats(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})
        return dict(pairs)

    for path in LOCALES_DIR.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_repeats)


def test_chinese_bold_closes_before_full_width_punctuation():
    """CommonMark does not close '**' that follows a full-width colon and precedes a character ('**注意：**文字'
    showed its asterisks on the Train tab, issue 39): the colon goes outside the bold."""
    import re

    from studio.core.text import CATALOGUES

    punctuation = "：。，！？；、（）"

    def unclosed(text: str) -> bool:
        for bold in re.finditer(r"\*\*(.+?)\*\*", text):
            after = text[bold.end():bold.end() + 1]
            if bold.group(1)[-1] in punctuation and after and not after.isspace() and after not in punctuation:
                return True
        return False

    wrong = {key: text for key, text in CATALOGUES["zh"].items() if unclosed(text)}
    assert not wrong, wrong


@pytest.mark.parametrize("key, en, zh", [
    ("status.validation", "lower is better", "越低越好"), ("status.baseline", "lower is better", "越低越好"),
    ("drift.summary_low", "0 means unchanged", "0 表示没有变化"),
    ("drift.summary_high", "no sampling", "不随机采样"), ("export.check_gguf", "no sampling", "不随机采样"),
    ("data.lengths_gloss", "median", "中位数"), ("finding.diversity", "low values mean repetitive", "数值低说明数据重复"),
    ("votes.win_rate", "the true rate is likely between", "真实胜率大概率在")])
def test_every_statistic_a_beginner_meets_comes_with_a_plain_gloss(key, en, zh):
    """Issue 39: perplexity, nats per token, greedy answers, distinct-n, percentiles and the win rate's interval
    each say what they mean, in both languages."""
    assert en in CATALOGUES["en"][key] and zh in CATALOGUES["zh"][key]
    assert "greedy" not in CATALOGUES["en"][key] and "贪心" not in CATALOGUES["zh"][key]


def test_each_series_has_one_colour_in_every_plot_and_language():
    """Issue 39: Gradio coloured series in the order a run's first frame named them, so validation changed colour
    between runs."""
    from studio.ui.text import chart_titles

    keys = ("series.train", "series.smoothed", "series.validation")
    english = chart_titles("train.loss", "col.step", "col.loss", "en", "col.series", series=keys)["color_map"]
    chinese = chart_titles("train.loss", "col.step", "col.loss", "zh", "col.series", series=keys)["color_map"]
    assert list(english) == ["train", "train (smoothed)", "validation"] and list(chinese.values()) == list(english.values())
    assert len(set(english.values())) == 3 and chinese[tr("series.validation", "zh")] == english["validation"]
