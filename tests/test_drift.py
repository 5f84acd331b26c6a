"""The general-ability drift check: about 0 for an untouched adapter, clearly positive after training hard on
unrelated data; the base answers cached per model; the user's own general file; the advice it leads to."""

import functools
import json
import re
from pathlib import Path

import pytest
import torch

from studio.core import settings_input
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.models import models
from studio.chat import drift
from studio.plan import diagnosis
from studio.training import run_status, train
from tests.conftest import tiny_settings


@pytest.fixture()
def drift_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "drift"


def test_the_prompt_set_covers_both_languages_and_five_kinds():
    prompts = drift.builtin_prompts()
    assert 55 <= len(prompts) <= 70 and len({p.id for p in prompts}) == len(prompts)
    assert {p.language for p in prompts} == {"en", "zh"}
    assert {p.kind for p in prompts} == {"facts", "reasoning", "instructions", "code", "chat"}


def test_an_untouched_adapter_has_no_drift_and_the_base_answers_are_cached(tiny_model_dir, drift_cache):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    tuned = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))  # B starts at zero
    baseline = drift.before_training(tuned, tokenizer, str(tiny_model_dir))
    assert not baseline.cached and len(list(drift_cache.glob("*.json"))) == 1
    report = drift.after_training(baseline, tuned, tokenizer)
    assert abs(report["drift"]) < 1e-4 and report["changed"] == 0 and report["prompts"] == len(baseline.prompts)
    assert len(report["samples"]) == 6 and all(s["base"] == s["tuned"] for s in report["samples"])  # 3 per language
    assert all(any("\u4e00" <= c <= "\u9fff" for c in row[0]) for row in drift.sample_rows(report, "zh"))
    assert [row[0] for row in drift.sample_rows(report, "en")] == [s["prompt"] for s in report["samples"][:3]]
    assert drift.level(report) == "low"
    again = drift.before_training(tuned, tokenizer, str(tiny_model_dir))
    assert again.cached and again.answer_ids == baseline.answer_ids and again.nll == pytest.approx(baseline.nll)


def test_changed_weights_raise_the_drift_and_change_answers(tiny_model_dir, drift_cache):
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    baseline = drift.before_training(model, tokenizer, str(tiny_model_dir))
    with torch.no_grad():
        torch.manual_seed(1)
        model.lm_head.weight.add_(torch.randn_like(model.lm_head.weight))
    report = drift.after_training(baseline, model, tokenizer)
    assert report["drift"] > 0.3 and report["changed"] > len(baseline.prompts) // 2 and drift.level(report) == "high"
    assert report["samples"][0]["changed"] and report["samples"][0]["base"] != report["samples"][0]["tuned"]


def unrelated_rows(path, n=24):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": "zq"},
                                             {"role": "assistant", "content": "zz zz zz zz zz zz zz zz"}]}) + "\n")
    return str(path)


def test_training_hard_on_unrelated_data_drifts_and_a_tiny_learning_rate_does_not(tiny_model_dir, tmp_path,
                                                                                   drift_cache):
    data = unrelated_rows(tmp_path / "zz.jsonl")
    hard = train.run_training(tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_steps=30",
                                            "learning_rate=0.01", "validation_share=0", "replay=off"),
                              tmp_path / "hard", progress=None)
    gentle = train.run_training(tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_steps=2",
                                              "learning_rate=1e-9", "validation_share=0"), tmp_path / "gentle",
                                progress=None)
    assert hard["status"] == gentle["status"] == "finished"
    assert hard["drift"]["drift"] > 0.2 and hard["drift"]["changed"] > 0
    assert abs(gentle["drift"]["drift"]) < 0.01 and gentle["drift"]["changed"] == 0
    report = RunFolder(tmp_path / "hard").drift()
    assert report["drift"] == hard["drift"]["drift"] and len(report["samples"]) == 6
    assert report["seconds"]["base_answers_cached"] is False or report["seconds"]["before"] >= 0
    log = (tmp_path / "hard" / "log.txt").read_text()
    assert "drift" in log and "Drift check:" in log


def test_replay_of_the_base_models_own_answers_lowers_the_drift_of_the_same_run(tiny_model_dir, tmp_path,
                                                                                drift_cache):
    """The same hard run on unrelated data, with and without replay: the replayed general answers (generated by
    the base model once, then read from the cache) keep the drift lower; validation and test stay the user's."""
    data = unrelated_rows(tmp_path / "zz.jsonl")
    runs = {}
    for replay in ("off", "on", "on"):
        settings = tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_steps=30", "learning_rate=0.01",
                                 "validation_share=0.1", f"replay={replay}", "replay_share=0.3")
        runs.setdefault(replay, []).append(train.run_training(settings, tmp_path / f"{replay}-{len(runs)}",
                                                              progress=None))
    off, on, again = runs["off"][0], *runs["on"]
    assert off["status"] == on["status"] == again["status"] == "finished"
    assert on["drift"]["drift"] < 0.85 * off["drift"]["drift"], (on["drift"], off["drift"])  # 0.175 vs 0.237 here
    assert on["drift"]["replayed"] > 0 and off["drift"]["replayed"] == 0
    first, second = (Path(r["run_dir"]) / "log.txt" for r in (on, again))
    assert "generated now" in first.read_text() and "from the cache" in second.read_text()
    train_rows = RunFolder(on["run_dir"]).split("train")
    assert sum(r in RunFolder(off["run_dir"]).split("train") for r in train_rows) < len(train_rows)  # replayed rows
    assert RunFolder(on["run_dir"]).split("validation") == RunFolder(off["run_dir"]).split("validation")


def test_a_run_that_generates_replay_answers_loads_its_model_once(tiny_model_dir, tmp_path, drift_cache, monkeypatch):
    """Issue 57: replay's answers come from the model the run then trains (no second copy loaded), and the load is
    logged as the run's model load, before replay says it is answering."""
    data = unrelated_rows(tmp_path / "zz.jsonl")
    loads, real = [], models.load_model
    monkeypatch.setattr(models, "load_model", lambda *args, **kwargs: loads.append(args) or real(*args, **kwargs))
    settings = tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_steps=2", "validation_share=0.1",
                             "replay=on", "replay_share=0.3")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished" and status["drift"]["replayed"] > 0
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "generated now" in log and len(loads) == 1, loads
    answering = re.search("Replay: the base model answers|The base model's answers for replay", log)
    assert answering and log.index("Loading the model") < answering.start()  # alone, or in a pass shared with checks
    loads.clear()  # a later run reads the answers from the cache: training loads the model itself, once
    again = train.run_training(settings, tmp_path / "again", progress=None)
    assert again["status"] == "finished" and len(loads) == 1
    assert "from the cache" in (tmp_path / "again" / "log.txt").read_text()


def test_replay_answers_only_the_prompts_a_run_needs_and_each_once(tiny_model_dir, drift_cache):
    """Issue 57 (measuring costs little): a 64-row file replays 13 answers; every prompt of two languages was
    generated before. A later run that needs more generates only the ones not yet cached."""
    from studio.chat import replay

    tokenizer = models.load_tokenizer(str(tiny_model_dir))
    loads, said = [], []

    def load_model():
        loads.append(1)
        return models.load_model(str(tiny_model_dir))

    def answered(count):
        return replay.base_answers(str(tiny_model_dir), tokenizer, ["en", "zh"], load_model, said.append, count, 7)

    rows, cached, _ = answered(5)
    assert not cached and said[-1].fields["prompts"] == 5 and len(loads) == 1 and len(rows) <= 5
    rows, cached, _ = answered(8)  # three more, the first five read
    assert not cached and said[-1].fields["prompts"] == 3 and len(loads) == 2
    first = [r["messages"][0]["content"] for r in answered(5)[0]]
    assert first == [p["prompt"] for p in replay.needed_prompts(["en", "zh"], 5, 7)][:len(first)]
    rows, cached, _ = answered(8)
    assert cached and len(loads) == 2  # nothing generated, no model loaded
    assert len(replay.needed_prompts(["en", "zh"], None, 7)) == len(replay.builtin_prompts()) == 150


def test_identity_data_replays_small_talk_first():
    """Issue 51: identity data teaches an introduction on a greeting, and the model starts introducing itself on
    thanks and small talk too; its replay takes the built-in small talk (none of it a drift-check prompt) first."""
    from studio.chat import replay

    small_talk = [p for p in replay.builtin_prompts() if p.get("kind") == "chat"]
    assert {p["language"] for p in small_talk} == {"en", "zh"} and len(small_talk) == 20
    checked = {p.text for p in drift.builtin_prompts()}
    assert not checked & {p["prompt"] for p in replay.builtin_prompts()}
    first = replay.needed_prompts(["en", "zh"], 24, 3, small_talk_first=True)
    assert [p.get("kind") for p in first[:20]] == ["chat"] * 20 and first[20].get("kind") != "chat"
    plain = replay.needed_prompts(["en", "zh"], 24, 3)
    assert sum(p.get("kind") == "chat" for p in plain) < 20  # other data: the seeded draw alone
    chinese = replay.needed_prompts(["zh"], 5, 3, small_talk_first=True)
    assert all(p["language"] == "zh" and p.get("kind") == "chat" for p in chinese)


def test_the_train_tab_says_the_drift_and_the_remedies_with_values(tiny_model_dir):
    settings, _ = settings_input.apply_overrides(Settings(), ["learning_rate=0.0002", "num_train_epochs=5", "r=16"])
    snapshot = {"status": "finished", "run_dir": "/tmp/x", "metrics": [], "output": "/tmp/x/adapter",
                "wall_time_s": 10, "drift": {"drift": 0.8, "changed": 40, "prompts": 60}}
    parts = run_status.status_messages(snapshot, settings)
    keys = [getattr(p, "key", None) for p in parts]
    assert "drift.summary_high" in keys and "advice.drift_remedies" in keys
    text = str(parts[keys.index("advice.drift_remedies")])
    assert "30%" in text and "0.0002 to 0.0001" in text and "3 epochs instead of 5" in text and "8 instead of 16" in text
    zh = run_status.status_messages(snapshot, settings)
    from studio.core.text import render

    assert "奈特" in render(zh[keys.index("drift.summary_high")], "zh")
    mixed, _ = settings_input.apply_overrides(settings, ["extra_datasets=general.jsonl#0.2"])
    assert "20% to about 30%" in str(diagnosis.drift_remedies(mixed, snapshot["drift"]))


def test_own_general_prompts_from_a_data_file(tiny_model_dir, tmp_path, drift_cache):
    data = unrelated_rows(tmp_path / "own.jsonl", n=5)
    prompts, source = drift.prompts_for(data)
    assert source == data and len(prompts) == 5 and prompts[0].messages == [{"role": "user", "content": "zq"}]
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    assert drift.before_training(model, tokenizer, str(tiny_model_dir), data).source == data


def test_the_check_can_be_turned_off(tiny_model_dir, tmp_path):
    status = train.run_training(tiny_settings(tiny_model_dir, "drift_check=false", "max_steps=1"), tmp_path / "r",
                                progress=None)
    assert status["status"] == "finished" and "drift" not in status and RunFolder(tmp_path / "r").drift() is None


def test_scoring_projects_only_the_answer_positions_with_the_same_scores(tiny_model_dir, monkeypatch):
    """`logits_to_keep` limits the vocabulary projection to the positions that predict answer tokens; the scores
    equal those of whole-row logits, and each batch's kept logits stay within LOGIT_ELEMENTS."""
    model = models.load_model(str(tiny_model_dir))
    prompts = [[1, 2, 3] + [7] * n for n in (2, 9, 4, 15, 6)]
    answers = [[5 + n] * (1 + n % 4) for n in range(5)]
    kept = []
    forward = type(model).forward

    @functools.wraps(forward)  # keeps the signature, which says the model takes logits_to_keep
    def recording(self, *args, **kwargs):
        kept.append(kwargs.get("logits_to_keep"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", recording)
    vocab = model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(drift, "LOGIT_ELEMENTS", 2 * 8 * vocab)  # room for two rows of short answers
    nll, top1 = drift.score(model, prompts, answers)
    spans = [k for k in kept if k is not None]
    assert len(spans) >= 3 and all(len(k) <= 16 for k in spans)  # never the whole prompt length (up to 18)
    monkeypatch.setattr(drift, "_takes_logits_to_keep", lambda model: False)
    monkeypatch.setattr(drift, "LOGIT_ELEMENTS", 2**25)
    whole_nll, whole_top1 = drift.score(model, prompts, answers)
    assert nll == pytest.approx(whole_nll, rel=1e-4) and top1 == whole_top1
