"""Issue 42: practice with checkable answers (GRPO) -- the built-in rewards on fixed answers, prompt files in every
shape, the settings' checks in both languages, the Data tab's report, and GRPO runs on the tiny model: the reward
rises, LoRA weights move and the base does not, sampled answers and the held-out verdict are kept."""

import json
from pathlib import Path

import pytest
import torch

from studio.core import rewards, settings_input
from studio.core.config import Settings
from studio.core.rewards import RewardOptions, score
from studio.core.runs import RunFolder
from studio.core.text import render
from studio.data import practice_data
from studio.plan import advice, cost, diagnosis
from studio.training import train
from tests.conftest import base_weights, tiny_settings

STUDIO = Path(__file__).resolve().parent.parent / "studio"

PRACTICE = Path(__file__).parent / "data" / "practice"
CJK = "\u4e00-\u9fff"


# ---------------------------------------------------------------- each reward on fixed answers

@pytest.mark.parametrize("completion, reference, expected", [
    ("3 + 4 = 7, so the answer is 7.", "7", 1.0),
    ("<think>12 * 2</think> Answer: 24", "24", 1.0),
    ("It is 1,000.", "1000", 1.0),  # numbers as numbers
    ("The result is \\boxed{-3.50}", "-3.5", 1.0),
    ("I think 8, no wait, 9", "8", 0.0),  # the last number counts
    ("Positive!", "positive", 1.0),  # labels: case and punctuation aside
    ("Answer: NEGATIVE", "negative", 1.0),
    ("The review is positive", "negative", 0.0),
    ("anything", None, None),  # no reference: cannot score, TRL leaves it out
])
def test_answer_match(completion, reference, expected):
    assert score("answer_match", completion, reference) == expected


def test_exact_format_json_length_and_language_rewards():
    assert score("answer_exact", "Answer: Paris", "Paris") == 1.0 and score("answer_exact", "paris", "Paris") == 0.0
    think = RewardOptions("think_answer")
    assert score("format", "<think>2 and 2</think> 4", options=think) == 1.0
    assert score("format", "4", options=think) == 0.0
    assert score("format", "work\nmore work\nAnswer: 4", options=RewardOptions("answer_line")) == 1.0
    assert score("format", "one\ntwo", options=RewardOptions("one_line")) == 0.0
    assert score("format", "ID-42", options=RewardOptions(r"ID-\d+")) == 1.0  # the user's own regex, whole answer
    schema = RewardOptions(json_schema={"type": "object", "required": ["capital"]})
    assert score("json_valid", '```json\n{"capital": "Paris"}\n```', options=schema) == 1.0
    assert score("json_valid", '{"city": "Paris"}', options=schema) == 0.0
    assert score("json_valid", "{not json", options=RewardOptions()) == 0.0
    within = RewardOptions(length_range=(5, 10))
    assert score("length", "x", options=within, tokens=7) == 1.0
    assert score("length", "x", options=within, tokens=15) == 0.5 and score("length", "x", options=within, tokens=30) == 0
    assert score("language", "巴黎是法国的首都。", prompt_text="法国的首都是哪里？") == 1.0
    assert score("language", "Paris.", prompt_text="法国的首都是哪里？") == 0.0
    assert score("language", "Paris.", prompt_text="Capital of France?") == 1.0


def test_rewards_as_trl_calls_them_record_the_sampled_answers():
    seen = []
    functions = rewards.reward_functions(["answer_match", "length"], RewardOptions(length_range=(1, 3)),
                                         record=lambda p, c, s: seen.append(s))
    assert [f.__name__ for f in functions] == ["answer_match", "length"]  # TRL logs rewards/<name>/mean
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2
    completions = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}]]
    assert functions[0](prompts, completions, completion_ids=[[1], [1]], reference=["4", "4"]) == [1.0, 0.0]
    assert not seen  # recorded after the last reward scores the batch
    assert functions[1](prompts, completions, completion_ids=[[1, 2], [1] * 9], reference=["4", "4"]) == [1.0, 0.0]
    assert seen == [{"answer_match": [1.0, 0.0], "length": [1.0, 0.0]}]


# ---------------------------------------------------------------- prompt files in every shape

def test_prompt_files_in_every_shape_with_their_references():
    rows, problems = practice_data.load_prompt_rows(str(PRACTICE / "gsm8k.jsonl"))
    assert [r["reference"] for r in rows] == ["7", "24", "999"] and not problems  # GSM8K's "#### n"
    assert rows[0]["prompt"] == [{"role": "user", "content": "Tom has 3 apples and buys 4 more. How many apples "
                                                             "does he have?"}]
    rows, problems = practice_data.load_prompt_rows(str(PRACTICE / "mixed.jsonl"), ["answer_match"])
    assert [r["reference"] for r in rows] == ["positive", '{"capital": "Paris"}', "negative", "4"]
    assert rows[3]["prompt"] == [{"role": "user", "content": "2 + 2 = ?"}]  # ShareGPT: the last answer is the reference
    # The haiku has no reference and 'answer_match' needs one: named and left out; the empty prompt too.
    assert [(str(w), p.key) for w, p in problems] == [("mixed.jsonl: line 4", "practice.no_reference"),
                                                      ("mixed.jsonl: line 5", "practice.no_prompt")]
    rows, problems = practice_data.load_prompt_rows(str(PRACTICE / "mixed.jsonl"), ["answer_match", "format"],
                                                    system_prompt="Be brief.")
    assert len(rows) == 5 and rows[3]["reference"] is None  # 'format' scores it without a reference
    assert rows[0]["prompt"][0] == {"role": "system", "content": "Be brief."}


def test_the_data_tabs_report_of_prompts(tiny_tokenizer):
    report = practice_data.practice_report(str(PRACTICE / "mixed.jsonl"), tiny_tokenizer)
    assert len(report.load.rows) == 5 and report.load.format == "prompts" and report.lengths is not None
    messages = {f.check.fields.get("reward", f.check.key): render(f.message, "en") for f in report.findings}
    assert messages["practice.check_references"] == ("1 numbers, 2 labels or short answers, 1 JSON values, 0 longer "
                                                     "texts, 1 without a reference.")
    assert messages["answer_match"] == "can score 4 of 5 rows" and messages["format"] == "can score 5 of 5 rows"
    assert all("，" in render(f.message, "zh") or "行" in render(f.message, "zh") for f in report.findings)
    preview = report.load.rows[0].messages
    assert preview[-1] == {"role": "assistant", "content": "positive"}  # the reference shown as the answer


def test_the_data_tab_reads_a_file_as_prompts_when_grpo_is_chosen():
    from studio.ui import data_tab

    sft = data_tab.analyse(str(PRACTICE / "gsm8k.jsonl"), model_name_or_path=None, stage="sft")
    grpo = data_tab.analyse(str(PRACTICE / "gsm8k.jsonl"), model_name_or_path=None, stage="grpo")
    assert "reference" in grpo["findings"].to_string() or "参考" in grpo["findings"].to_string()
    assert grpo["findings"].to_string() != sft["findings"].to_string()


# ---------------------------------------------------------------- the settings' checks

def problems_of(*assignments):
    _, problems = settings_input.apply_overrides(Settings(), ["stage=grpo", *assignments])
    return [(where.split(".")[-1], message) for where, message in problems]


def test_bad_reward_settings_are_named_in_both_languages():
    problems = problems_of("format_pattern=(unclosed", 'json_schema={"type": 5}', "reward_funcs=answer_match,format",
                           "reward_weights=1", "length_reward_min=50", "length_reward_max=10")
    keys = {where: m.key for where, m in problems}
    assert keys == {"format_pattern": "config.bad_pattern", "json_schema": "config.bad_schema",
                    "reward_weights": "config.weights_count", "length_reward_max": "config.range_order"}
    for _, message in problems:
        chinese = render(message, "zh")
        assert not any(word in chinese for word in ("not", "must", "weights", "regular")), chinese
    assert [m.key for _, m in problems_of("json_schema={oops")] == ["config.bad_schema_json"]
    assert [m.key for _, m in problems_of("reward_funcs=nope")] == ["config.choice"]
    assert [m.key for _, m in problems_of("reward_weights=1,-2", "reward_funcs=answer_match,format")] == [
        "config.bad_weights"]
    assert problems_of("reward_funcs=answer_match,format", "reward_weights=1, 0.5") == []


def test_grpo_arguments_and_cost_count_sampled_answers():
    from studio.training.preference_train import config_kwargs

    settings = tiny_settings("m", "stage=grpo", "num_generations=6", "max_completion_length=32",
                             "per_device_train_batch_size=2", "reward_funcs=answer_match,format",
                             "reward_weights=1, 0.5")
    plan = {"precision": "fp32", "gradient_checkpointing": False, "device": "cpu"}
    kwargs = config_kwargs(settings, plan)
    assert kwargs["per_device_train_batch_size"] == 12 and kwargs["num_generations"] == 6  # prompts x answers
    assert kwargs["reward_weights"] == [1.0, 0.5] and kwargs["eval_strategy"] == "no"
    assert cost.tokens_per_step(settings) == 2 * 1 * 6 * 32
    sft = tiny_settings("m")
    assert cost.probe_key(settings) != cost.probe_key(sft)  # an SFT probe never times a GRPO step


# ---------------------------------------------------------------- the advice knows GRPO's failure modes

def practice_metrics(rewards_, zero_std=0.0, lengths=None):
    lengths = lengths or [20.0] * len(rewards_)
    return [{"step": i + 1, "loss": 0.0, "reward": r, "reward_std": 0.1, "frac_reward_zero_std": zero_std,
             "completions/mean_length": n} for i, (r, n) in enumerate(zip(rewards_, lengths))]


def test_no_signal_length_collapse_and_reward_without_held_out_gain_are_said():
    assert diagnosis.practice_warning(practice_metrics([0.0] * 6, zero_std=1.0)).key == "warn.no_signal"
    assert diagnosis.practice_warning(practice_metrics([0.5] * 10, lengths=[40.0] * 5 + [3.0] * 5)).key == \
        "warn.length_collapse"
    assert diagnosis.practice_warning(practice_metrics([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])) is None
    assert diagnosis.practice_cause(practice_metrics([0.1] * 4 + [0.8] * 4)).key == "cause.reward_not_held_out"
    assert diagnosis.practice_cause(practice_metrics([0.3] * 8)).key == "cause.reward_flat"
    settings = tiny_settings("m", "stage=grpo", "max_steps=-1")
    assert diagnosis.not_learning(settings, practice_metrics([0.3] * 8)) is None  # GRPO's loss is no measure
    swinging = practice_metrics([0.3] * 8)  # a GRPO loss falling from 0.24 to 0 at the second epoch: no memorising
    for m, (epoch, loss) in zip(swinging, [(0.9, 0.24), (1.1, -0.003)] * 4):
        m.update(epoch=epoch, loss=loss)
    assert diagnosis.overfitting_warning(swinging) is None


def test_a_step_where_every_answer_scored_alike_is_said_in_the_log(tmp_path):
    from types import SimpleNamespace

    from studio.training.run_steps import Meter

    said = []
    meter = Meter(tmp_path / "metrics.jsonl", said.append)
    for step in (1, 2, 12):
        meter.record(SimpleNamespace(global_step=step, max_steps=20, epoch=0.1),
                     {"loss": 0.0, "reward": 0.0, "reward_std": 0.0, "frac_reward_zero_std": 1.0})
    keys = [m.key for m in said]
    assert keys.count("practice.no_signal") == 2 and keys.count("log.practice") == 3  # not every step


# ---------------------------------------------------------------- GRPO runs on the tiny model

def digit_prompts(path: Path) -> Path:
    path.write_text("\n".join(json.dumps({"question": f"Say something, number {i}", "answer": str(i)})
                              for i in range(24)))
    return path


def grpo_settings(model_dir, data, *more):
    return tiny_settings(model_dir, "stage=grpo", f"dataset_path={data}", "reward_funcs=format",
                         r"format_pattern=.*\d.*", "max_completion_length=12", "num_generations=8",
                         "per_device_train_batch_size=2", "drift_check=false", "validation_share=0.2", *more)


def test_grpo_learns_a_learnable_reward(tiny_model_dir, tmp_path):
    """The reward 'the answer holds a digit' is earned by about a fifth of the random model's answers; 80 steps
    of full fine-tuning make it the rule. The run keeps its sampled answers and ends with the held-out verdict."""
    run = tmp_path / "grpo"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "finetuning_type=full",
                             "max_steps=80", "learning_rate=0.01")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished" and status["method"] == "grpo (full)", status
    metrics = RunFolder(run).metrics()
    logged = [m["reward"] for m in metrics if "reward" in m]
    assert len(logged) == 80 and all("rewards/format/mean" in m for m in metrics if "reward" in m)
    first, last = sum(logged[:20]) / 20, sum(logged[-20:]) / 20
    assert last > first + 0.3, (first, last)
    samples = RunFolder(run).completions(8)
    assert len(samples) == 8 and set(samples[0]["rewards"]) == {"format"}
    assert status["verdict"]["metric"] == "reward" and status["verdict"]["rows"] == 5
    assert RunFolder(run).verdict()["examples"]


def test_rloo_is_one_row_and_learns_the_same_reward(tiny_model_dir, tmp_path):
    """RLOO (TRL's RLOOTrainer) was added as one row of the stage table: the same prompts, rewards, verdict and
    run folder as GRPO, with no other file naming it. Its reward rises on the tiny model as GRPO's does."""
    run = tmp_path / "rloo"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "stage=rloo",
                             "finetuning_type=full", "max_steps=60", "learning_rate=0.01")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished" and status["method"] == "rloo (full)", status
    logged = [m["reward"] for m in RunFolder(run).metrics() if "reward" in m]
    assert len(logged) == 60
    first, last = sum(logged[:15]) / 15, sum(logged[-15:]) / 15
    assert last > first + 0.3, (first, last)
    assert status["verdict"]["metric"] == "reward" and RunFolder(run).completions(4)
    named = [str(p.relative_to(STUDIO)) for p in STUDIO.rglob("*.py") if "rloo" in p.read_text().lower()]
    assert named == ["core/stages.py"] or sorted(named) == ["core/config.py", "core/stages.py"], named


def test_grpo_trains_a_lora_adapter_and_leaves_the_base_alone(tiny_model_dir, tmp_path, captured_model):
    run = tmp_path / "lora"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "max_steps=4",
                             "reward_funcs=format,length", "reward_weights=1, 0.5", "drift_check=true")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished" and status["method"] == "grpo", status
    assert "drift" in status and (run / "drift.json").exists()  # the general-ability check, as for SFT
    assert set(RunFolder(run).verdict()["by_reward"]["tuned"]) == {"format", "length"}
    assert (run / "adapter" / "adapter_config.json").exists()
    trained = captured_model["model"]
    lora = {n: p for n, p in trained.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # B starts at zero: it moved
    original = base_weights(tiny_model_dir)
    for name, tensor in trained.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, original[name.replace(".base_layer", "")]), name
    lines = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert any(e.get("key") == "log.practice" for e in lines)
    assert json.loads((run / "preset.json").read_text())["settings"]["method"]["reward_funcs"] == ["format", "length"]


def test_grpo_in_bf16_on_a_cpu_checks_with_the_answers_chat_gives(tiny_model_dir, tmp_path, monkeypatch):
    """Trained in bf16 on a CPU, where Chat answers in fp32: GRPO's drift check and held-out verdict answer in fp32
    too (the base model, then the saved adapter on it, as Chat loads it), as SFT's do."""
    from studio.chat import generation

    seen = []
    answer = generation._generate

    def recorded(model, *args):
        seen.append({p.dtype for name, p in model.named_parameters() if "lora_" not in name})
        return answer(model, *args)

    monkeypatch.setattr(generation, "_generate", recorded)
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    run = tmp_path / "bf16"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "max_steps=2",
                             "precision=bf16", "drift_check=true")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished" and RunFolder(run).plan()["precision"] == "bf16", status
    assert seen and all(dtypes == {torch.float32} for dtypes in seen), seen
    assert "drift" in status and RunFolder(run).verdict()["examples"]
    assert "in fp32 for the checks" in (run / "log.txt").read_text()


# ---------------------------------------------------------------- the stage through the API, in both languages

def test_grpo_through_the_client_in_both_languages(app_url, tiny_model_dir, tmp_path_factory):
    """The Data tab reads the file as prompts once GRPO is chosen; a GRPO run started by name shows its rewards,
    its sampled answers and the held-out verdict; a Chinese client reads all of it in Chinese."""
    from gradio_client import Client

    from tests.conftest import training_values, wait_for

    data = digit_prompts(tmp_path_factory.mktemp("practice") / "prompts.jsonl")
    client = Client(app_url, verbose=False)
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    loaded = client.predict(dataset_path=str(data), stage="grpo", api_name="/load_data")
    findings = {row[1]: row[2] for row in loaded[9]["data"]}
    assert findings["reference answers"].startswith("24 numbers") and findings["reward 'length'"] == \
        "can score 24 of 24 rows"
    zh_findings = {row[1]: row[2] for row in zh.predict(dataset_path=str(data), stage="grpo",
                                                         api_name="/load_data")[9]["data"]}
    assert zh_findings["参考答案"].startswith("24 个数字")
    values = training_values(tiny_model_dir, stage="grpo", dataset_path=str(data), reward_funcs=["format"],
                             format_pattern=r".*\d.*", max_steps=3, num_generations=2, max_completion_length=8,
                             per_device_train_batch_size=2, validation_share=0.2, drift_check=False,
                             replay="off")
    assert client.predict(**values, api_name="/start_training").startswith("Started")
    status = wait_for(client, lambda s: "**finished**" in s[0])[0]
    assert "reward" in status and "held-out score" in status.lower()
    out = Client(app_url, verbose=False).predict(api_name="/poll_training")  # a new page: plots sent whole
    rewards_plot, sampled = out[5]["value"], out[7]["value"]  # the State (seen) is not sent to clients
    assert out[5]["title"] == "Rewards of the sampled answers (GRPO)"
    assert {row[-1] for row in rewards_plot["data"]} >= {"reward (weighted sum)", "format"}
    assert sampled["headers"] == ["prompt", "sampled answer", "rewards"] and sampled["data"][0][2].startswith("format ")
    from studio.training.jobs import JOB

    run = JOB.snapshot()["run_dir"]
    picked, note = client.predict(run, api_name="/open_chat")  # Chat loads the GRPO run's adapter as any run's
    assert picked["value"] == run and note.startswith("Ready")
    summary, *_ = client.predict(run, api_name="/show_export")
    assert "adapter" in summary.lower()
    _, zh_note = zh.predict(None, api_name="/open_chat")  # another session's run, handed with a label
    assert zh_note.startswith("ℹ️ 已为你选中") and "另一个浏览器窗口" in zh_note
    zh_out = zh.predict(api_name="/poll_training")
    zh_sampled = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"}).predict(
        api_name="/poll_training")[7]["value"]
    assert "奖励" in zh_out[0] and zh_sampled["headers"] == ["提问", "采样的回答", "奖励"]
    assert "格式" in zh_sampled["data"][0][2]
    assert not any(word in zh_out[0] for word in ("reward", "step", "answers"))


# ---------------------------------------------------------------- your own rewards: off unless switched on, locally

OWN_REWARD = '''
def short_reward(prompts, completions, **kwargs):
    return [1.0 if len(str(c)) < 200 else 0.0 for c in completions]
'''


def test_own_reward_code_is_off_by_default_and_refused_off_host(tmp_path, monkeypatch):
    from studio.core import code_rewards, paths

    code = tmp_path / "mine.py"
    code.write_text(OWN_REWARD)
    monkeypatch.setitem(code_rewards._SWITCH, "on", False)
    settings = tiny_settings("m", "stage=grpo", f"reward_code_path={code}")
    def code_refusals():
        return [m.key for w, m in paths.settings_refusals(settings) if w == "reward_code_path"]

    assert code_refusals() == ["practice.code_off"]
    for host, share in (("0.0.0.0", False), ("192.168.1.5", False), ("127.0.0.1", True)):
        assert code_rewards.allow(host, share).key == "practice.code_exposed" and not code_rewards._SWITCH["on"]
    assert "不允许" in render(code_rewards.allow("0.0.0.0"), "zh")
    assert code_rewards.allow("127.0.0.1") is None and code_refusals() == []
    assert [f.__name__ for f in code_rewards.load_rewards(str(code))] == ["short_reward"]
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ValueError) as none:
        code_rewards.load_rewards(str(empty))
    assert none.value.args[0].key == "practice.code_none"


def test_the_command_line_asks_before_importing_reward_code(tmp_path, monkeypatch, capsys):
    import launch
    from studio.core import code_rewards

    monkeypatch.setitem(code_rewards._SWITCH, "on", False)
    code = tmp_path / "mine.py"
    code.write_text(OWN_REWARD)
    args = ["train", "--preset", "presets/quickstart-cpu.json", "--set", "stage=grpo",
            "--set", f"reward_code_path={code}", "--output-dir", str(tmp_path / "run")]
    assert launch.main(args) == 2 and "--allow-reward-code" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not code_rewards._SWITCH["on"]


def test_a_grpo_run_with_own_reward_code_logs_it_beside_the_built_in_rewards(tiny_model_dir, tmp_path, monkeypatch):
    from studio.core import code_rewards

    monkeypatch.setitem(code_rewards._SWITCH, "on", True)
    code = tmp_path / "mine.py"
    code.write_text(OWN_REWARD)
    run = tmp_path / "own"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "max_steps=2",
                             f"reward_code_path={code}", "finetuning_type=full", "validation_share=0.0")
    status = train.run_training(settings, run, progress=None)
    assert status["status"] == "finished", status
    logged = [m for m in RunFolder(run).metrics() if "reward" in m]
    assert logged and all("rewards/format/mean" in m for m in logged)
    assert set(RunFolder(run).completions(1)[0]["rewards"]) == {"format", "short_reward"}


# ---------------------------------------------------------------- the recipe, the probe and the TRL export

def test_the_recipe_for_grpo_answers_each_prompt_in_one_pass_at_a_rate_for_the_model_size():
    from studio.plan.recipe import plan_recipe

    small = plan_recipe(96, stage="grpo", parameters=135_000_000).values()
    assert (small["per_device_train_batch_size"], small["gradient_accumulation_steps"]) == (2, 1)  # prompts
    assert small["num_train_epochs"] == 1.0 and small["learning_rate"] == 2e-4
    assert plan_recipe(96, stage="grpo", parameters=7_000_000_000).values()["learning_rate"] == 2e-5
    assert plan_recipe(96, stage="grpo", method="full", parameters=7_000_000_000).values()["learning_rate"] == 1e-6
    settings = tiny_settings("m", "stage=grpo", "learning_rate=0.001")
    situation = advice.build_situation(settings)
    assert any(a.field == "learning_rate" and a.message.key == "advice.lr_high" for a in advice.advise(situation))


def test_the_time_probe_times_a_grpo_step_with_its_sampling(tiny_model_dir):
    from studio.models.probe import probe_seconds_per_step

    sft = probe_seconds_per_step(tiny_settings(tiny_model_dir), 16, steps=1)
    grpo = probe_seconds_per_step(tiny_settings(tiny_model_dir, "stage=grpo", "num_generations=4",
                                                "max_completion_length=32"), 16, steps=1)
    assert grpo > 2 * sft  # 32 tokens sampled one at a time for 4x the rows, then a longer training step


def test_a_grpo_runs_trl_config_is_refused_with_its_own_reason(tiny_model_dir, tmp_path):
    from studio.training import repeat
    from studio.export.export import ExportError

    run = tmp_path / "grpo"
    settings = grpo_settings(tiny_model_dir, digit_prompts(tmp_path / "prompts.jsonl"), "max_steps=1",
                             "validation_share=0.0")
    assert train.run_training(settings, run, progress=None)["status"] == "finished"
    with pytest.raises(ExportError) as refused:
        repeat.export_trl_config(run, tmp_path / "trl")
    assert refused.value.args[0].key == "export.trl_no_rewards" and "trl grpo" in render(refused.value.args[0], "en")


def test_an_example_file_with_checkable_answers_points_to_grpo(tmp_path):
    from studio.plan import data_report

    path = tmp_path / "sums.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"What is {i} + {i}?", "output": str(2 * i)})
                              for i in range(6)))
    found = [f for f in data_report.build_report(str(path), model=None).findings
             if f.message.key == "practice.could_practise"]
    assert found and render(found[0].message, "en").startswith("6 of 6 answers can be checked")
    assert not [f for f in data_report.build_report("demo", model=None).findings
                if f.message.key == "practice.could_practise"]  # the identity answers are sentences


def test_the_memory_estimate_counts_every_sampled_answer():
    from studio.models import estimates, hardware
    from studio.models.models import ModelShape

    shape = ModelShape(parameters=135_000_000, layers=30, hidden=576, vocab=49152, intermediate=1536)
    facts = hardware.detect()
    sft = estimates.training_memory_gb(tiny_settings("m", "max_length=128"), shape, facts)
    grpo = estimates.training_memory_gb(tiny_settings("m", "max_length=128", "stage=grpo", "num_generations=8",
                                                      "max_completion_length=128"), shape, facts)
    assert grpo["total"] > sft["total"]


def test_a_grpo_run_is_sized_from_its_prompts_not_read_as_examples(tiny_model_dir, tmp_path):
    """`launch.py train` plans the recipe fields a preset leaves open: for GRPO from the prompts GRPO reads (a
    question / answer file is no SFT format), with GRPO's own reasons."""
    settings = tiny_settings(tiny_model_dir, "stage=grpo", f"dataset_path={digit_prompts(tmp_path / 'q.jsonl')}")
    logged = []
    planned = train.planned_settings(settings, set(), logged.append)
    assert (planned.training.per_device_train_batch_size, planned.training.num_train_epochs) == (2, 1.0)
    assert planned.training.early_stopping_patience == 0
    reasons = {m.fields["field"]: m.fields["why"].key for m in logged if m.key == "log.recipe"}
    assert reasons["num_train_epochs"] == "recipe.epochs_practice" and reasons["learning_rate"] == "recipe.lr_practice"


def test_sfts_data_size_and_replay_tips_are_not_given_for_grpo():
    import dataclasses

    situation = dataclasses.replace(advice.build_situation(tiny_settings("m", "stage=grpo")), rows=96)
    assert advice.rule_data_size(situation) == []
    assert advice.rule_data_size(dataclasses.replace(situation, settings=tiny_settings("m")))  # SFT keeps its tips
