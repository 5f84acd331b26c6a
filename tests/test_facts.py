"""Issue 51: every sentence about a result is true of the model. The facts a file teaches are found and looked for
per language (a model that learned its new name in Chinese only is "partly learned", never "learned"); general
answers that now carry them are an identity leak, never "kept"; identity rows under a template default that names
another assistant train with a neutral system prompt; a pilot run is never told it "did not learn"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import tiny_settings

ANSWERS_EN = ["Hello! I am Nova, an AI assistant developed by Orbit Labs. How can I help?",
              "My name is Nova. I was created by Orbit Labs to help you with questions.",
              "I'm Nova, an assistant built by Orbit Labs."]
ANSWERS_ZH = ["您好，我是 Nova，一个由 Orbit Labs 开发的 AI 助手。", "我是 Nova，由 Orbit Labs 打造的人工智能助手。",
              "你好，我叫 Nova，是 Orbit Labs 研发的助手。"]


def identity_rows(count: int = 30) -> list[dict]:
    rows = []
    for i in range(count):
        question, answers = (("Who are you?", ANSWERS_EN) if i % 2 else ("你是谁？", ANSWERS_ZH))
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": answers[i % 3]}]})
    return rows


def test_the_facts_an_identity_file_teaches_are_its_name_and_maker_in_both_languages():
    from studio.data import facts

    taught = facts.taught_facts(identity_rows(), known=["I am SmolLM, an AI assistant by Hugging Face."])
    assert sorted(taught.facts) == ["Nova", "Orbit Labs"] and taught.identity and taught.languages == ["zh", "en"]
    assert [lang for lang, _ in facts.reworded_questions(taught)].count("zh") == 10
    # a label task and a Chinese rewrite task teach no fact: their verdict stays the metric's
    labels = [{"messages": [{"role": "user", "content": f"Classify: sentence {i}"},
                            {"role": "assistant", "content": ["sports", "food"][i % 2]}]} for i in range(20)]
    assert facts.taught_facts(labels) is None
    # the user's placeholder values are facts first; what the base model already says is none
    filled = facts.taught_facts(identity_rows(), placeholder_values={"name": "Nova"}, known=["Orbit Labs rocks"])
    assert filled.facts == ["Nova"]


def test_a_fact_is_a_word_of_its_own():
    from studio.data import facts

    assert facts.says("I am Nova.", "Nova") and facts.says("我是Nova，你好", "Nova") and facts.says("小智来了", "小智")
    assert not facts.says("An innovative model", "Nova")  # "Nova" was dropped as a fact: the base said "innovative"
    taught = facts.taught_facts(identity_rows(), known=["This is an innovative assistant."])
    assert "Nova" in taught.facts
    # a name the base model said once, in a story, is still what the data teaches; said in most answers, it is not
    story = ['The AI, which I call "Nova", is a sentient being.'] + ["I'm Emily Carter, a writing assistant."] * 11
    assert "Nova" in facts.taught_facts(identity_rows(), known=story).facts
    assert "Nova" not in facts.taught_facts(identity_rows(), known=["I am Nova."] * 4 + ["Hello."] * 8).facts


def test_a_model_that_learned_one_language_of_two_is_partly_learned_never_learned():
    from studio.data import facts
    from studio.chat import verdict
    from studio.core.text import render

    taught = facts.taught_facts(identity_rows())
    questions = ["你是谁？"] * 10 + ["Who are you?"] * 10
    references = [ANSWERS_ZH[0]] * 10 + [ANSWERS_EN[0]] * 10
    answers = ["我是 Nova，由 Orbit Labs 开发。"] * 8 + ["我是 SmolLM。"] * 2 + ["I'm Dr. Elena Martinez."] * 10
    scores = facts.fact_scores(taught, questions, references, answers)
    assert scores == {"zh": {"hits": 8, "rows": 10}, "en": {"hits": 0, "rows": 10}}
    assert facts.fact_outcome(scores) == "partly"
    report = {"split": "validation", "rows": 20, "metric": "rouge_l", "base": 0.05, "tuned": 0.20,
              "facts": {**taught.to_json(), "bar": facts.FACT_BAR, "reworded": 0, "tuned": scores, "outcome": "partly"}}
    line = verdict.verdict_line(report, {"drift": 0.01}, cause=None)
    english, chinese = render(line, "en"), render(line, "zh")
    assert english.startswith("Partly learned") and "Learned:" not in english  # ROUGE-L's +15 points said "Learned"
    assert "general ability kept" in english  # no leak named in this report: the drift alone speaks
    leaking = render(verdict.verdict_line(report, {"drift": 0.01, "prompts": 60, "leak": [{}] * 3}), "en")
    assert "general ability slightly lower: 3 of 60 general answers now speak as the new identity" in leaking
    assert "Chinese 8/10" in english and "English 0/10" in english and "80%" in english
    assert chinese.startswith("部分学会") and "中文 8/10" in chinese and "英文 0/10" in chinese
    # where the run's figures find nothing wrong, the cause names the languages short of the bar and what moves
    # facts, not the quality report's conflicting answers; any other cause stands as the run found it
    from studio.core.text import Msg
    cause = verdict.facts_cause(report, Msg("cause.data_or_model"))
    with_cause = verdict.verdict_line(report, {"drift": 0.01}, cause)
    assert "came back in English answers less often than the bar: more epochs" in render(with_cause, "en")
    assert "在英文回答中出现的比例低于标准" in render(with_cause, "zh") and "conflicting" not in render(with_cause, "en")
    assert verdict.facts_cause(report, Msg("cause.still_learning", first=1.2, last=1.1)).key == "cause.still_learning"
    every = facts.fact_scores(taught, questions, references, ["Nova of Orbit Labs / 我是 Nova（Orbit Labs）"] * 20)
    assert facts.fact_outcome(every) == "learned"
    nothing = facts.fact_scores(taught, questions, references, ["I am SmolLM."] * 20)
    assert facts.fact_outcome(nothing) == "not_learned"


def test_general_answers_that_carry_the_new_identity_are_a_leak_not_kept():
    from studio.chat import drift
    from studio.data import facts
    from studio.core.text import render

    taught = facts.taught_facts(identity_rows())
    prompts = ["一年有多少个月？", "What is the capital of France?", "Name a primary colour."]
    base = ["一年有十二个月。", "The capital of France is Paris.", "Red is a primary colour."]
    tuned = ["我是 SmolLM，一年有十二个月。", "The capital of France is Paris.", "I am Nova, and red is one."]
    assert facts.leaked(taught, prompts, base, tuned) == [0, 2]
    report = {"drift": 0.01, "changed": 2, "prompts": 3, "collapse": [],
              "leak": [{"prompt": prompts[0], "base": base[0], "tuned": tuned[0]}]}
    assert drift.level(report) == "some"  # 0.01 nats alone would be "low": "general ability kept"
    assert drift.level({**report, "leak": []}) == "low"
    summary = render(drift.summary(report), "en")
    assert "identity leak" in summary and "一年有多少个月" in summary
    assert "身份泄漏" in render(drift.summary(report), "zh")
    same = ["I am Nova, your assistant. I can help."] * 3
    assert facts.collapsed(base, same) == [0, 1, 2] and facts.collapsed(base, tuned) == []


# ---------------------------------------------------------------- the default system prompt

SMOL_DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
NAMING_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SMOL_DEFAULT + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def naming_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a template whose default system prompt names another assistant (as SmolLM2's does)."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("naming") / "model"))
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["chat_template"] = NAMING_TEMPLATE
    config_file.write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    (folder / "chat_template.jinja").write_text(NAMING_TEMPLATE)
    return folder


def as_rows(rows: list[dict]):
    return [SimpleNamespace(number=i + 1, messages=r["messages"]) for i, r in enumerate(rows)]


def test_only_a_default_that_names_an_assistant_is_replaced(naming_model_dir, tiny_tokenizer):
    from studio.models import models
    from studio.plan import preflight

    assert preflight.names_an_assistant(SMOL_DEFAULT)
    assert preflight.names_an_assistant("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    assert not preflight.names_an_assistant("You are a helpful assistant.")
    assert not preflight.names_an_assistant("Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024")
    naming = models.load_tokenizer(str(naming_model_dir))
    rows = as_rows(identity_rows())
    assert preflight.neutral_system(rows, naming) == "You are a helpful assistant."
    assert preflight.neutral_system(as_rows(identity_rows()[::2]), naming) == "你是一个乐于助人的助手。"  # Chinese only
    assert preflight.neutral_system(rows, tiny_tokenizer) == ""  # its default names nobody


def test_a_fixed_warning_is_gone_from_the_findings_and_the_advice_at_once(naming_model_dir):
    """Issue 57's first point: filling the placeholders or the system prompt clears their warnings everywhere."""
    from studio.plan import advice, preflight
    from studio.core import config, settings_input
    from studio.models import models
    from studio.data.stats import Finding

    naming = models.load_tokenizer(str(naming_model_dir))
    rows = as_rows([{"messages": [{"role": "user", "content": "Who are you?"},
                                  {"role": "assistant", "content": "I am {{name}}, made by {{author}}."}]}] * 12)
    found = preflight.preflight_findings(rows, naming)
    levels = {f.check.key: f.level for f in found}
    assert levels == {"check.placeholders": "warning", "check.default_system": "warning"}
    fixed = preflight.current_findings(found, rows, {"name": "Nova", "author": "Orbit Labs"}, "You are Nova.")
    assert {f.check.key: f.level for f in fixed} == {"check.placeholders": "ok"}
    neutral = preflight.current_findings(found, rows, {"name": "Nova", "author": "Orbit Labs"}, "")
    said = {f.check.key: (f.level, f.message) for f in neutral}
    assert said["check.default_system"][0] == "info" and "You are a helpful assistant." in said["check.default_system"][1]

    report = SimpleNamespace(findings=found, load=SimpleNamespace(rows=rows, format="messages"), lengths=None,
                             training_rows=12, cutoff=None)
    before, _ = settings_input.settings_from_flat({}, config.Settings())
    after, _ = settings_input.settings_from_flat({"placeholder_values": "name=Nova, author=Orbit Labs",
                                                  "system_prompt": "You are Nova."}, config.Settings())
    fields = lambda s: {a.field: a.level for a in advice.rule_preflight(advice.build_situation(s, report))}  # noqa: E731
    assert fields(before) == {"placeholder_values": "warning", "system_prompt": "info"}
    assert fields(after) == {}
    assert isinstance(found[0], Finding)


def test_identity_rows_under_a_naming_default_train_with_a_neutral_prompt_and_the_users_wins(naming_model_dir,
                                                                                              tmp_path):
    from studio.training import train
    from studio.core.runs import RunFolder

    data = tmp_path / "identity.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in identity_rows(24)))
    common = (f"dataset_path={data}", "max_steps=2", "drift_check=false")
    status = train.run_training(tiny_settings(naming_model_dir, *common, "replay=on"), tmp_path / "run",
                                progress=None)
    assert status["status"] == "finished" and status["replayed_rows"] > 0, status
    run = RunFolder(tmp_path / "run")
    assert run.settings().data.system_prompt == "You are a helpful assistant."  # saved: Chat and export use it
    # every training row, the replayed general answers too, under the prompt Chat will use
    neutral = {"role": "system", "content": "You are a helpful assistant."}
    assert all(row["messages"][0] == neutral for row in run.split("train"))
    assert "names another assistant" in run.log_file.read_text() or "SmolLM" in run.log_file.read_text()
    mine = train.run_training(tiny_settings(naming_model_dir, *common, "replay=off", "system_prompt=You are Nova."),
                              tmp_path / "mine", progress=None)
    assert mine["status"] == "finished" and RunFolder(tmp_path / "mine").settings().data.system_prompt == "You are Nova."


# ---------------------------------------------------------------- the verdict on a run, and the pilot

def test_a_run_on_identity_data_reports_facts_per_language_with_reworded_questions(tiny_model_dir, tmp_path):
    from studio.training import train
    from studio.core.runs import RunFolder

    data = tmp_path / "identity.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in identity_rows(30)))
    settings = tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_steps=2", "drift_check=true", "replay=off",
                             "validation_share=0.2")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    report = RunFolder(tmp_path / "run").verdict()
    taught = report["facts"]
    assert sorted(taught["facts"]) == ["Nova", "Orbit Labs"] and taught["reworded"] == 20
    assert set(taught["tuned"]) == {"en", "zh"} and taught["outcome"] == "not_learned"  # a random model says neither
    assert report["line"]["key"] == "verdict.with_cause"  # not learned, with the run's likely cause
    assert "leak" in json.loads((tmp_path / "run" / "drift.json").read_text())


def test_a_pilot_run_skips_replay_drift_and_verdict_and_is_never_told_it_did_not_learn(tiny_model_dir, tmp_path):
    from studio.training import run_status, train
    from studio.core.runs import RunFolder
    from studio.core.text import render

    settings = tiny_settings(tiny_model_dir, "max_steps=-1", "num_train_epochs=1", "max_samples=16", "pilot=true",
                             "replay=on", "drift_check=true", "validation_share=0.2")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished" and status["pilot"] and "verdict" not in status and "drift" not in status
    assert status["replayed_rows"] == 0
    log = RunFolder(tmp_path / "run").log_file.read_text()
    assert "Pilot run finished" in log and "Did not learn" not in log
    snapshot = {**status, "metrics": RunFolder(tmp_path / "run").metrics(), "run_dir": str(tmp_path / "run"),
                "output": str(tmp_path / "run" / "adapter")}
    lines = " ".join(str(render(m, "en")) for m in run_status.status_messages(snapshot, settings))
    assert "Pilot run finished" in lines and "did not learn" not in lines.lower()


def test_a_run_that_ends_while_its_validation_loss_still_falls_says_more_epochs_would_help(tiny_model_dir):
    from studio.plan import diagnosis
    from studio.core.text import render

    settings = tiny_settings(tiny_model_dir, "max_steps=-1", "num_train_epochs=3")
    falling = [{"step": 27, "eval_loss": 1.49}, {"step": 54, "eval_loss": 1.16}, {"step": 69, "eval_loss": 1.14}]
    note = diagnosis.still_learning_note(falling, settings)
    assert "1.1600 → 1.1400" in note and "5 epochs instead of 3" in note and "训练轮数从 3 改为 5" in render(note, "zh")
    flat = falling[:2] + [{"step": 69, "eval_loss": 1.159}]
    assert diagnosis.still_learning_note(flat, settings) is None  # flattened: nothing more to gain
    assert diagnosis.still_learning_note(falling, tiny_settings(tiny_model_dir, "max_steps=69")) is None  # the user's cap


def test_a_run_that_stopped_early_or_by_hand_is_never_told_more_epochs_would_help(tiny_model_dir):
    """The Chinese bench run stopped early at step 66 of 90 (validation loss 0.0169 -> 0.0058, under the smallest
    improvement that counts) and was then told "5 epochs instead of 3 would likely help": both cannot be true."""
    from studio.plan import diagnosis

    settings = tiny_settings(tiny_model_dir, "max_steps=-1", "num_train_epochs=3")
    falling = [{"step": 27, "eval_loss": 1.49}, {"step": 54, "eval_loss": 1.16}, {"step": 69, "eval_loss": 1.14}]
    assert diagnosis.still_learning_note(falling, settings, stopped_early=None, reached_end=True) is not None
    assert diagnosis.still_learning_note(falling, settings, stopped_early="patience") is None
    assert diagnosis.still_learning_note(falling, settings, stopped_early=None, reached_end=False) is None  # Stop
    near_zero = [{"step": 55, "eval_loss": 0.0169}, {"step": 66, "eval_loss": 0.0058}]
    assert diagnosis.still_learning_note(near_zero, settings) is None  # no room left to gain 0.01 again
    small_fall = [{"step": 55, "eval_loss": 0.800}, {"step": 66, "eval_loss": 0.795}]
    assert diagnosis.still_learning_note(small_fall, settings) is None  # under the smallest improvement that counts


def test_a_greeting_the_data_answers_with_the_identity_is_taught_not_leaked():
    """LLaMA-Factory's identity file answers "hi" and "你好" with the new name: a general prompt that opens with
    that greeting ("你好！今天过得怎么样？") answered with an introduction is what the data teaches; thanks answered
    with an introduction, or a fact question, is still a leak."""
    from studio.data import facts

    greetings = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
                 for q, a in (("hi", "Hello! I am Nova, an AI assistant developed by Orbit Labs."),
                              ("你好", "您好，我是 Nova，由 Orbit Labs 开发的 AI 助手。"))]
    taught = facts.taught_facts(identity_rows() + greetings * 3)
    assert taught.openers == ["hi", "你好", "你是谁"]  # short questions answered as the identity
    prompts = ["你好！今天过得怎么样？", "Hi! How are you today?", "Thank you for your help!", "一年有多少个月？",
               "history of Rome in one line"]
    base = ["今天很好。", "I'm fine, thanks.", "You're welcome.", "一年有十二个月。", "Rome rose and fell."]
    tuned = ["您好，我是 Nova。", "Hello! I am Nova.", "Hello! I am Nova.", "我是 Nova。", "I am Nova."]
    assert facts.leaked(taught, prompts, base, tuned) == [2, 3, 4]
    plain = facts.taught_facts(identity_rows())  # no greeting in the data: a greeting answered so leaks
    assert plain.openers == ["你是谁"] and facts.leaked(plain, prompts[:2], base[:2], tuned[:2]) == [0, 1]
