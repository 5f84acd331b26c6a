"""Continued pre-training on plain text (issue 44): the three .txt layouts, long documents cut into blocks of the
cutoff instead of truncated or refused, a `text` column blocked the same way, and a short real run on blocks."""

import json
import random

import pytest

from studio.core.text import render
from studio.data import blocks, data, readers
from studio.plan import data_report

WORDS = ("the river valley holds old towns whose markets trade grain wool and salt along roads first laid by "
         "traders long before the kingdoms rose and fell across the northern plains").split()


def article(chars: int, seed: int) -> str:
    """Prose of about `chars` characters, sentence after sentence, no newlines (one article on one line)."""
    rng, out, size = random.Random(seed), [], 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "."
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)


@pytest.mark.parametrize("layout, text, documents", [
    ("paragraphs", "First document,\nwrapped over lines.\n\nSecond one.\n\n\nThird.\n", 3),
    ("lines", "\n".join(article(400, seed) for seed in range(5)) + "\n", 5),
    ("whole", "A manual wrapped\nat sixty characters\nwithout blank lines\nbetween its lines.\n", 1),
])
def test_each_txt_layout_is_recognised_and_said(tmp_path, layout, text, documents):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    loaded = data.load_dataset_file(str(path))
    assert loaded.format == "text" and len(loaded.rows) == documents and not loaded.problems
    assert readers.text_layout(text)[0] == layout
    summary = render(data.summary_text(loaded), "zh")
    assert {"paragraphs": "空行", "lines": "每行一篇", "whole": "整个文件"}[layout] in summary


def test_the_user_can_pick_another_layout(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one\ntwo\n\nthree\n")
    assert len(data.load_dataset_file(str(path)).rows) == 2
    by_line = data.load_dataset_file(str(path), "text_lines")
    assert [r.text for r in by_line.rows] == ["one", "two", "three"] and by_line.format == "text"
    assert "you chose" in render(by_line.layout, "en")
    assert len(data.load_dataset_file(str(path), "text_whole").rows) == 1


def test_a_wiki_demo_shaped_file_gives_every_article(tmp_path):
    """LLaMA-Factory's wiki_demo.txt: 30 articles of 77k-110k characters, one a line, no blank line. Before: one
    document of 1.03 M characters, refused; 0 of 30 usable."""
    path = tmp_path / "wiki_demo.txt"
    path.write_text("\n".join(article(77_000 + 1_100 * i, i) for i in range(30)) + "\n")
    loaded = data.load_dataset_file(str(path))
    assert len(loaded.rows) == 30 and not loaded.problems
    assert all(77_000 <= len(r.text) <= 110_500 for r in loaded.rows)


def test_a_document_of_one_and_a_half_million_characters_is_read(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(article(1_500_000, 7))
    loaded = data.load_dataset_file(str(path))
    assert len(loaded.rows) == 1 and len(loaded.rows[0].text) >= 1_500_000 and not loaded.problems
    too_long = tmp_path / "huge.txt"  # one document past the limit: named, never silently truncated
    too_long.write_text("word " * (data.MAX_DOCUMENT_CHARS // 5 + 1))
    problem = data.load_dataset_file(str(too_long), "text_whole").problems[0][1]
    assert problem.key == "data.field_too_long" and problem.fields["limit"] == data.MAX_DOCUMENT_CHARS


def test_blocks_cover_the_document_and_decode_back_to_it(tiny_model_dir):
    from transformers import AutoTokenizer

    from studio.templates.chat_template import encode_records

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    document = article(3_000, 3)
    ids = encode_records(tokenizer, [{"text": document}]).input_ids[0]
    cutoff = 64
    pieces = blocks.cut(ids, cutoff)
    assert len(pieces) == -(-len(ids) // cutoff) and all(len(p) <= cutoff for p in pieces)
    joined = [token for piece in pieces for token in piece]
    assert joined == ids and ids[-1] == tokenizer.eos_token_id  # the end-of-text closes the document
    assert tokenizer.decode(joined, skip_special_tokens=True).strip() == document
    counted = blocks.figures([len(ids), 10], cutoff)
    assert counted.documents == 2 and counted.blocks == len(pieces) + 1 and counted.tokens == len(ids) + 10
    assert counted.truncated_share == pytest.approx((cutoff + 10) / (len(ids) + 10))


def test_a_lone_end_token_is_no_block():
    assert blocks.cut(list(range(129)), 64) == [list(range(64)), list(range(64, 128))]
    assert blocks.cut([5], 64) == [[5]]


def test_the_report_shows_documents_blocks_and_tokens(tmp_path, tiny_model_dir):
    path = tmp_path / "notes.jsonl"  # a text column, as in c4_demo.jsonl
    path.write_text("".join(json.dumps({"text": article(6_000, i)}) + "\n" for i in range(3)))
    report = data_report.build_report(str(path), model=str(tiny_model_dir))
    assert report.load.format == "text" and report.cutoff.blocks > 3 and report.training_rows == report.cutoff.blocks
    english, chinese = render(report.cutoff.message, "en"), render(report.cutoff.message, "zh")
    assert "3 documents" in english and "blocks" in english and "块" in chinese and "documents" not in chinese
    # the split line counts what the plan counts: the blocks (it said "1 of 3 rows" beside a plan of blocks)
    from studio.ui.data_tab import split_text

    line = split_text(report, 0.34, "", "en")
    assert "1 of 3 documents" in line and f"of the {report.training_rows} blocks" in line, line
    assert "篇文档" in split_text(report, 0.34, "", "zh")


def test_a_short_run_trains_on_blocks(tiny_model_dir, tmp_path):
    from studio.training import train
    from tests.conftest import tiny_settings

    path = tmp_path / "domain.txt"
    path.write_text("\n\n".join(article(2_500, i) for i in range(6)) + "\n")
    settings = tiny_settings(tiny_model_dir, f"dataset_path={path}", "max_length=64", "max_steps=3",
                             "validation_share=0", "test_share=0", "drift_check=false", "replay=off")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished" and status["global_step"] == 3, status
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "Continued pre-training: 6 documents" in log and "blocks of at most 64 tokens" in log


def test_the_advice_names_continued_pretraining(tmp_path, tiny_model_dir):
    from studio.plan import advice
    from studio.core.config import Settings

    path = tmp_path / "domain.txt"
    path.write_text(article(5_000, 1))
    report = data_report.build_report(str(path), model=str(tiny_model_dir))
    found = advice.advise(advice.build_situation(Settings(), report))
    keys = {a.message.key for a in found}
    assert {"advice.pretraining", "advice.pretraining_lr"} <= keys and "advice.cutoff_short" not in keys
    # the range the advice states holds the plan's own rates (it said 5e-5 to 1e-4 beside a plan of 2e-4)
    from studio.plan.recipe import learning_rate_for

    assert learning_rate_for("lora", "sft", 135_000_000, 500)[0] <= 2e-4
    assert learning_rate_for("lora", "sft", 7_000_000_000, 500)[0] <= 1e-4
    assert 1e-5 <= learning_rate_for("full", "sft", 135_000_000, 500)[0] <= 5e-5


def test_the_data_report_follows_a_file_changed_on_disk(tmp_path):
    """Issue 41's bug: the report cache was keyed without the file's version, so the Data tab kept showing one
    row while training read two."""
    import os

    path = tmp_path / "rows.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path.write_text(json.dumps(row) + "\n")
    assert len(data_report.cached_report(str(path), "auto", {}, None).load.rows) == 1
    path.write_text((json.dumps(row) + "\n") * 2)
    os.utime(path, ns=(1, 10**18))  # a new modification time even on a coarse clock
    assert len(data_report.cached_report(str(path), "auto", {}, None).load.rows) == 2


def test_the_advice_reads_the_report_of_the_file_the_data_tab_loaded(tmp_path):
    """The advice's lookup of the loaded report missed the file's version in its key (after the stale-report fix),
    so the Hyperparameters tab never read a loaded file: it must, and must not read an older version of it."""
    import os

    path = tmp_path / "rows.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path.write_text(json.dumps(row) + "\n")
    shown = data_report.report_for(str(path), "auto", {}, None)
    assert data_report.loaded_report(str(path), "auto", {}, None) is shown
    path.write_text((json.dumps(row) + "\n") * 3)
    os.utime(path, ns=(1, 10**18))
    assert data_report.loaded_report(str(path), "auto", {}, None) is None  # changed since: load it again


def test_replay_is_a_share_of_the_blocks_not_of_the_documents(tiny_model_dir, tmp_path, monkeypatch):
    """Three long documents are hundreds of blocks: 20% replay must be sized on those, not on 3 rows."""
    from studio.chat import replay
    from studio.training import train
    from tests.conftest import tiny_settings

    answers = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                             {"role": "assistant", "content": f"Answer {i}."}]} for i in range(200)]
    monkeypatch.setattr(replay, "base_answers", lambda *args, **kwargs: (answers, True, 0.0))
    path = tmp_path / "domain.txt"
    path.write_text("\n\n".join(article(7_000, i) for i in range(3)) + "\n")
    settings = tiny_settings(tiny_model_dir, f"dataset_path={path}", "max_length=64", "max_steps=1",
                             "validation_share=0", "test_share=0", "drift_check=false", "replay=on",
                             "replay_share=0.2")
    assert train.run_training(settings, tmp_path / "run", progress=None)["status"] == "finished"
    estimated = blocks.estimated_blocks([{"text": article(7_000, i)} for i in range(3)], 64)
    log = (tmp_path / "run" / "log.txt").read_text()
    expected = replay.replay_count(estimated, 0.2)
    assert expected > 20 and f"Replay: {expected} of {estimated + expected} training rows" in log, log
    assert "Training target" not in log  # plain text trains every token; the blocks line says so


def test_the_quality_report_does_not_call_long_documents_truncated(tmp_path, tiny_model_dir):
    """Found walking the Data tab with a wiki-like file: '30 rows are over the cutoff and will be truncated' stood
    under the line saying every document is cut into blocks and trained whole; the chat-only checks (system prompts,
    the reply target) spoke of replies the file does not have."""
    path = tmp_path / "articles.txt"
    path.write_text("\n".join(article(9_000, i) for i in range(4)) + "\n")
    report = data_report.build_report(str(path), model=str(tiny_model_dir))
    found = {render(f.check, "en"): f for f in report.findings}
    assert found["longer than the cutoff"].level == "ok", render(found["longer than the cutoff"].message, "en")
    assert not {"diversity", "system prompts", "training target"} & set(found) and render(found["language mix"].message, "en") == "en: 4 rows"
