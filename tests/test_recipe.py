"""The recipe sized to the data (studio/plan/recipe.py), the verdict on held-out rows (studio/chat/verdict.py) and the
likely cause of a run that did not learn. Pure functions: no model, no torch."""

import pytest

from studio.core import presets, settings_input
from studio.core.config import Settings
from studio.core.text import render
from studio.models.hardware import HardwareFacts
from studio.chat import verdict
from studio.plan import advice, cost, recipe, diagnosis
from studio.plan.advice import Situation

CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2"}), total_memory_gb=24, free_memory_gb=20)
SMALL, LARGE = 135_000_000, 7_000_000_000


# rows, method, stage, parameters, devices -> validation, test, batch, accumulation, epochs, lr, steps
@pytest.mark.parametrize("rows,method,stage,parameters,devices,expected", [
    # a 91-row identity file: 20% validation, no test, effective batch 4, 4 epochs -> over 60 updates
    (91, "lora", "sft", SMALL, 1, (0.2, 0.0, 4, 1, 4.0, 2e-4, 76)),
    # the 191-row demo: a test set appears at 100 rows; 3 epochs already give 60 updates
    (191, "lora", "sft", SMALL, 1, (0.2, 0.1, 4, 1, 3.0, 2e-4, 102)),
    # tiny data: nothing held out, 10 epochs at most, no early stopping
    (12, "lora", "sft", SMALL, 1, (0.0, 0.0, 4, 1, 10.0, 2e-4, 30)),
    # 1,000 rows: effective batch 8, 3 epochs
    (1000, "lora", "sft", SMALL, 1, (0.1, 0.05, 4, 2, 3.0, 2e-4, 321)),
    # large data: one epoch, effective batch 32, a 7B model's lower rate
    (50_000, "lora", "sft", LARGE, 1, (0.05, 0.02, 4, 8, 1.0, 2e-4, 1454)),
    (5000, "lora", "sft", LARGE, 1, (0.078, 0.05, 4, 4, 1.0, 1e-4, 273)),
    # full fine-tuning: full's rates
    (5000, "full", "sft", LARGE, 1, (0.078, 0.05, 4, 4, 1.0, 1e-5, 273)),
    # two devices share the effective batch
    (5000, "lora", "sft", LARGE, 2, (0.078, 0.05, 4, 2, 1.0, 1e-4, 273)),
    # DPO: a tenth of the rate, three epochs at most
    (91, "lora", "dpo", SMALL, 1, (0.2, 0.0, 4, 1, 3.0, 5e-6, 57)),
])
def test_the_plan_sizes_the_run_to_the_data(rows, method, stage, parameters, devices, expected):
    plan = recipe.plan_recipe(rows, method=method, stage=stage, parameters=parameters, devices=devices)
    v = plan.values()
    got = (v["validation_share"], v["test_share"], v["per_device_train_batch_size"], v["gradient_accumulation_steps"],
           v["num_train_epochs"], v["learning_rate"], plan.steps)
    assert got == expected
    assert v["eval_steps"] == max(1, round(plan.steps / recipe.EVALUATIONS_PER_RUN))
    assert v["early_stopping_patience"] == (recipe.EARLY_STOPPING_PATIENCE if v["validation_share"] else 0)
    assert all(choice.why for choice in plan.choices.values())  # every value has its reason


def test_small_data_gets_enough_updates_and_large_data_few_epochs():
    for rows in (30, 60, 91, 150, 300, 600, 900):
        plan = recipe.plan_recipe(rows, parameters=SMALL)
        assert plan.steps >= recipe.MIN_UPDATES or plan.values()["num_train_epochs"] == 10, rows
        assert 3 <= plan.values()["num_train_epochs"] <= 10
    assert recipe.plan_recipe(20_000, parameters=SMALL).values()["num_train_epochs"] <= 2


def test_replayed_rows_count_towards_the_steps():
    alone = recipe.plan_recipe(91, parameters=SMALL)
    mixed = recipe.plan_recipe(91, parameters=SMALL, replay_share=0.2)
    assert mixed.train_rows == alone.train_rows + 18  # 73 task rows + 18 replayed: 20% of 91
    assert mixed.values()["num_train_epochs"] == 3.0 and mixed.steps == 69 >= recipe.MIN_UPDATES
    settings, _ = settings_input.apply_overrides(Settings(), [])
    planned = recipe.recipe_for(settings, 91, SMALL)
    assert planned.steps == 69 and planned.notes[-1].key == "replay.auto_on"
    assert recipe.recipe_for(settings, 5000, SMALL).notes[-1].key == "replay.auto_off"


def test_a_max_steps_cap_spreads_the_evaluations_over_the_steps_that_run():
    assert recipe.plan_recipe(91, max_steps=20).values()["eval_steps"] == 2


def test_the_users_values_win_and_the_plan_fills_the_rest():
    settings, _ = settings_input.apply_overrides(Settings(), ["learning_rate=1e-4", "num_train_epochs=2"])
    plan = recipe.plan_recipe(91, parameters=SMALL)
    planned = recipe.apply_recipe(settings, plan, keep={"learning_rate"})
    assert planned.training.learning_rate == 1e-4  # the user's
    assert planned.training.num_train_epochs == 4.0  # not kept: the plan's
    assert planned.data.validation_share == 0.2
    table = {row[0]: row for row in recipe.plan_rows(plan, planned)}
    assert table["learning_rate"][3] == "yours" and table["num_train_epochs"][3] == "plan"
    assert render(table["learning_rate"][3], "zh") == "你的"


def test_a_preset_that_says_nothing_of_the_epochs_leaves_them_to_the_plan(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"studio_preset": 1, "settings": {"training": {"learning_rate": 0.0001}, '
                    '"data": {"dataset_path": "demo"}}}')
    settings, _, problems = presets.load_preset(path)
    assert not problems
    assert recipe.user_fields(settings) == {"learning_rate"}


def test_the_recipes_values_raise_no_advice_on_the_fields_it_sets():
    for rows in (12, 91, 191, 1000, 50_000):
        plan = recipe.plan_recipe(rows, parameters=SMALL)
        settings = recipe.apply_recipe(Settings(), plan)
        items = advice.advise(Situation(settings, rows=rows, parameters=SMALL, facts=CPU))
        assert not [a for a in items if a.field in recipe.RECIPE_FIELDS and a.level != "info"], rows
        assert not [a for a in items if a.field in ("gradient_accumulation_steps", "num_train_epochs",
                                                    "learning_rate", "validation_share")], (rows, items)


def test_reset_to_recommended_gives_the_plan():
    settings, _ = settings_input.apply_overrides(Settings(), ["num_train_epochs=1", "gradient_accumulation_steps=16"])
    values = advice.recommended_values(Situation(settings, rows=91, parameters=SMALL, facts=CPU))
    assert values["num_train_epochs"] == 3.0 and values["gradient_accumulation_steps"] == 1  # replay counted
    assert values["early_stopping_patience"] == recipe.EARLY_STOPPING_PATIENCE


# ---------------------------------------------------------------- the verdict on held-out rows

def test_the_metric_fits_the_task():
    assert verdict.choose_metric(["positive", "negative", "negative", "positive", "neutral"])[0] == "exact_match"
    assert verdict.choose_metric(["42", "17", "3"])[0] == "exact_match"
    long = ["I am Nova, an AI assistant developed by Orbit Labs to help with questions."] * 3
    assert verdict.choose_metric(long)[0] == "rouge_l"
    assert verdict.choose_metric(long[:1] * 10 + ["My name is Nova, made by Orbit Labs."] * 10)[0] == "rouge_l"
    assert verdict.choose_metric(["请问您方便帮我关一下门吗？非常感谢！", "请问您可以把灯关掉吗？辛苦您了！"])[0] == "rouge_l"


def test_task_scores_on_fixed_answers():
    assert verdict.task_score("exact_match", ["Sports", "food"], ["sports.", "weather"]) == 0.5
    score = verdict.task_score("rouge_l", ["请问您方便关门吗"], ["请问您关门吗"])
    assert score == pytest.approx(2 * 6 / (6 + 8))  # 6 of 8 characters in order; 6 of 6 answered
    assert verdict.task_score("rouge_l", ["a b"], [""]) == 0.0


def test_held_out_rows_prefer_test_then_validation_then_train():
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    assert verdict.held_out_rows({"test": [row], "validation": [row]})[1] == "test"
    assert verdict.held_out_rows({"test": [], "validation": [row]})[1] == "validation"
    assert verdict.held_out_rows({"train": [row]})[1] == "train"
    assert verdict.held_out_rows({"train": [{"messages": [{"role": "user", "content": "q"}]}]}) == ([], "none")


def test_the_verdict_line_reads_like_a_sentence_in_both_languages():
    report = {"split": "test", "rows": 20, "metric": "exact_match", "base": 0.04, "tuned": 0.78}
    line = verdict.verdict_line(report, {"drift": 0.01})
    assert str(line).startswith("Learned: held-out score 4% → 78% (accuracy (exact match), 20 test rows)")
    assert "general ability kept" in line
    assert render(line, "zh").startswith("学会了：留出数据得分 4% → 78%")
    flat = {**report, "tuned": 0.05}
    cause = diagnosis.likely_cause(Settings(), [{"step": 18, "loss": 2.0}])
    line = verdict.verdict_line(flat, None, cause)
    assert str(line).startswith("Did not learn") and "only 18 optimizer steps" in line


@pytest.mark.parametrize("overrides,metrics,stopped,key", [
    ([], [{"step": 3, "loss": 2.0}], True, "cause.stopped"),
    (["max_steps=4"], [{"step": 4, "loss": 2.0}], False, "cause.capped"),
    ([], [{"step": 18, "loss": 2.0}], False, "cause.few_steps"),
    (["learning_rate=1e-6"], [{"step": 120, "loss": 2.0}, {"step": 121, "loss": 1.0}], False, "cause.low_lr"),
    ([], [{"step": 1, "loss": 2.0}, {"step": 120, "loss": 1.95}], False, "cause.loss_flat"),
    # one step's loss swings with its batch: a last value above the first is no flat loss where the ends fell
    ([], [{"step": 0, "eval_loss": 3.6}, {"step": 60, "eval_loss": 2.2}, {"step": 120, "eval_loss": 2.25}]
     + [{"step": i + 1, "loss": v} for i, v in enumerate([0.7, 0.65, 1.1, 3.9, 2.5, 3.6, 0.7, 0.6, 2.3, 3.0, 3.2, 2.8,
                                                          0.6, 0.6, 0.8, 2.6, 2.6, 1.7, 0.6, 0.4, 0.5, 0.6, 1.5, 1.8])],
     False, "cause.data_or_model"),
    (["max_steps=30"], [{"step": 30, "loss": 2.0, "epoch": 1.25}], False, "cause.capped_epochs"),
    (["max_steps=30", "num_train_epochs=1"], [{"step": 30, "loss": 2.0, "epoch": 1.0},
                                             {"step": 31, "loss": 1.0, "epoch": 1.0}], False, "cause.data_or_model"),
    ([], [{"step": 0, "eval_loss": 1.0}, {"step": 60, "eval_loss": 1.2}, {"step": 120, "eval_loss": 1.4},
          {"step": 1, "loss": 2.0}, {"step": 120, "loss": 0.1}], False, "cause.memorised"),
    ([], [{"step": 0, "eval_loss": 2.0}, {"step": 60, "eval_loss": 1.2}, {"step": 120, "eval_loss": 1.3},
          {"step": 1, "loss": 2.0}, {"step": 120, "loss": 1.0}], False, "cause.data_or_model"),
])
def test_the_likely_cause_is_read_from_the_run(overrides, metrics, stopped, key):
    settings, problems = settings_input.apply_overrides(Settings(), overrides)
    assert not problems
    assert diagnosis.likely_cause(settings, metrics, stopped).key == key


def test_not_learning_names_a_max_steps_cap_before_rank_and_epochs():
    settings, _ = settings_input.apply_overrides(Settings(), ["max_steps=4"])
    metrics = [{"step": 0, "eval_loss": 2.0, "epoch": 0}, {"step": 4, "eval_loss": 2.0, "epoch": 0.2},
               {"step": 4, "loss": 2.0, "epoch": 0.2}]
    message = diagnosis.not_learning(settings, metrics)
    assert "max-steps cap" in message and "LoRA rank" not in message and "epochs (now" not in message
    assert "最大步数" in render(message, "zh")


# ---------------------------------------------------------------- replay of the base model's own answers

from studio.chat import replay


def test_replay_speaks_the_datas_languages():
    def rows(*texts):
        return [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}]} for t in texts]

    assert replay.data_languages(rows("Who are you?", "I am Nova.")) == ["en"]
    assert replay.data_languages(rows("你是谁？", "我是 Nova，由 Orbit Labs 开发的助手。")) == ["zh"]
    assert replay.data_languages(rows("Who are you, and who made you? Tell me in one sentence.",
                                      "我是由 Orbit 实验室开发的助手。")) == ["en", "zh"]
    assert replay.data_languages([]) == ["en"]


def test_replay_rows_are_their_share_of_the_training_rows_and_cycle_without_repeats_first():
    assert replay.replay_count(80, 0.2) == 20  # 20 of 100
    assert replay.replay_count(80, 0.5) == 80
    assert replay.replay_count(0, 0.2) == 0
    pool = [{"messages": [{"role": "user", "content": str(i)}]} for i in range(5)]
    picked = replay.pick(pool, 7, seed=1)
    assert len(picked) == 7 and len({r["messages"][0]["content"] for r in picked[:5]}) == 5
    assert replay.pick(pool, 7, seed=1) == picked  # repeatable


def test_replay_prompts_are_never_drift_check_prompts():
    from studio.chat import drift

    checked = {p.text for p in drift.builtin_prompts()}
    mine = replay.builtin_prompts()
    assert len(mine) >= 100 and not checked & {p["prompt"] for p in mine}
    assert {p["language"] for p in mine} == {"en", "zh"}


@pytest.mark.parametrize("overrides,rows,on", [
    ([], 91, True),  # small data, 3 epochs: where forgetting is likely
    (["num_train_epochs=1"], 91, False),
    ([], 5000, False),
    (["replay=on"], 5000, True),
    (["replay=off"], 91, False),
    (["stage=dpo"], 91, False),
])
def test_replay_auto_turns_on_where_forgetting_is_likely(overrides, rows, on):
    settings, problems = settings_input.apply_overrides(Settings(), overrides)
    assert not problems
    decided, why = recipe.replay_decision(settings, rows)
    assert decided is on and why and render(why, "zh") != str(why)


@pytest.mark.parametrize("epochs", [1.0, 2.0, 3.0])
def test_identity_data_replays_at_any_length_and_every_count_of_steps_says_so(epochs):
    """Identity data without replay speaks as the new identity in more general answers (bench, 2 epochs: 12 of 60
    against 10 with it, and the name learned less):
    so 'auto' replays it at any number of epochs, for any size, with its own reason, and the plan, the cost line
    and the advice count the replayed rows alike. Other small data at under 3 epochs trains on its rows alone."""
    settings, _ = settings_input.apply_overrides(Settings(), [f"num_train_epochs={epochs}"])
    on, why = recipe.replay_decision(settings, 91, identity=True)
    assert on and why.key == "replay.auto_identity" and render(why, "zh") != render(why, "en")
    assert recipe.replay_decision(settings, 5000, identity=True)[0]
    assert recipe.replay_decision(settings, 91)[0] is (epochs >= 3)
    replayed, _, steps = recipe.planned_steps(settings, 91, identity=True)
    task = recipe.split_sizes(91, settings.data.validation_share, settings.data.test_share)[0]
    assert replayed == task + replay.replay_count(task, settings.data.replay_share)
    assert f"**{steps}** optimizer steps" in render(cost.cost_lines(settings, 91, None, identity=True)[0], "en")
    planned = recipe.recipe_for(settings, 91, SMALL, identity=True)
    assert planned.notes[-1].key == "replay.auto_identity" and planned.notes[-1].fields["share"] == 0.5
    items = advice.advise(Situation(settings, rows=91, parameters=SMALL, facts=CPU, identity=True))
    assert [a for a in items if a.field == "replay"]  # the advice says the run replays
    off, _ = settings_input.apply_overrides(Settings(), [f"num_train_epochs={epochs}", "replay=off"])
    assert not recipe.replay_decision(off, 91, identity=True)[0]  # the user's word wins


def test_the_advice_reads_the_epochs_a_max_steps_cap_leaves():
    settings, _ = settings_input.apply_overrides(Settings(), ["num_train_epochs=20", "max_steps=4"])
    items = advice.advise(Situation(settings, rows=91, parameters=SMALL, facts=CPU))
    assert not [a for a in items if a.field == "num_train_epochs"]  # 4 steps are under one epoch, not 20
    assert advice.run_epochs(Situation(settings, rows=91)) < 1


def test_a_run_too_short_to_learn_is_named_before_it_starts():
    capped, _ = settings_input.apply_overrides(Settings(), ["max_steps=4"])
    [item] = [a for a in advice.advise(Situation(capped, rows=191, parameters=SMALL, facts=CPU))
              if a.field == "max_steps"]
    assert item.level == "warning" and "after 4 optimizer steps" in item.message and item.suggested == -1
    few, _ = settings_input.apply_overrides(Settings(), ["num_train_epochs=2", "gradient_accumulation_steps=4"])
    assert "Only 22 optimizer steps" in str(advice.advise(Situation(few, rows=191, parameters=SMALL, facts=CPU)))


def test_the_data_tabs_preflight_warnings_reach_the_advice_beside_the_setting_that_fixes_them():
    from studio.plan import data_report

    report = data_report.build_report("tests/data/preflight/identity_placeholders.json", model=None)
    situation = advice.build_situation(Settings(), report, CPU)
    [item] = [a for a in advice.advise(situation) if a.field == "placeholder_values"]
    assert item.level == "warning" and "{{name}}" in item.message


def test_held_out_shares_never_leave_nothing_to_train():
    from studio.data import data

    assert data.split_sizes(3, 0.5, 0.5) == (1, 2, 0)  # the test rows give way first
    assert data.split_sizes(10, 0.5, 0.5)[0] >= 1
    _, problems = settings_input.settings_from_flat({"validation_share": 0.5, "test_share": 0.5})
    assert problems and problems[0][0] == "test_share" and "at most 60%" in problems[0][1]
    assert "60%" in render(problems[0][1], "zh")


def test_gains_under_the_threshold_do_not_reset_the_patience_but_the_lowest_loss_is_kept(tmp_path):
    """The topic bench's validation curve (bench/outcome.py), raised by 0.5 so that it stays above the threshold:
    once the loss only creeps down by thousandths (memorising, not learning) the run stops three measurements after
    the last real gain, and the lowest loss is the one kept."""
    from studio.training.best import BestKeeper

    curve = [(13, 0.8521), (26, 0.5462), (39, 0.5089), (52, 0.5055), (65, 0.5028), (78, 0.5018), (91, 0.5017)]
    keeper, stopped_at = BestKeeper(tmp_path, patience=3, threshold=0.01), None
    for step, loss in curve:
        keeper.seen(step, loss, model=None, main=False)
        if keeper.should_stop():
            stopped_at = step
            break
    assert stopped_at == 78 and keeper.stop_reason() == "patience"
    assert keeper.best_step == 78 and keeper.best_loss == 0.5018
    every_gain = BestKeeper(tmp_path, patience=3, threshold=0.0)
    for step, loss in curve:
        every_gain.seen(step, loss, model=None, main=False)
    assert not every_gain.should_stop() and every_gain.best_step == 91


def test_a_validation_loss_under_the_threshold_ends_the_run_at_once(tmp_path):
    """The topic bench's real curve: at 0.0089 nats/token no later measurement can gain 0.01, so waiting out the
    patience (three more measurements, a third of the run) would only memorise."""
    from studio.training.best import BestKeeper

    curve = [(13, 0.3521), (26, 0.0462), (39, 0.0089), (52, 0.0055), (65, 0.0028)]
    keeper = BestKeeper(tmp_path, patience=3, threshold=0.01)
    stopped_at = next(step for step, loss in curve if keeper.seen(step, loss, None, main=False) is not None
                      and keeper.should_stop())
    assert stopped_at == 39 and keeper.stop_reason() == "converged" and keeper.best_step == 39
    off = BestKeeper(tmp_path / "off", patience=0, threshold=0.01)  # early stopping off: never
    off.seen(39, 0.0089, None, main=False)
    assert off.stop_reason() is None
    every_gain = BestKeeper(tmp_path / "all", patience=3, threshold=0.0)  # every gain counts: no such floor
    every_gain.seen(39, 0.0001, None, main=False)
    assert every_gain.stop_reason() is None


def test_the_planned_batch_fits_this_machines_memory_at_the_cutoff(monkeypatch):
    """Issue 57: plain text at a long cutoff got a plan of batch 4 that the estimates called "won't fit: 17.5 GB
    needed, 16.1 GB free". The plan takes the largest batch that fits and accumulates the rest."""
    from studio.models import hardware, models
    from studio.models.estimates import ModelShape

    starter = ModelShape(parameters=134_515_008, layers=30, hidden=576, intermediate=1536, vocab=49152)
    monkeypatch.setattr(models, "allowed_shape", lambda model: starter)
    facts = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx512_bf16", "amx_bf16"}), cpu_count=2,
                          total_memory_gb=24.0, free_memory_gb=16.1)
    monkeypatch.setattr(hardware, "detect", lambda: facts)
    short, _ = settings_input.apply_overrides(Settings(), ["max_length=512"])
    long, _ = settings_input.apply_overrides(Settings(), ["max_length=2048"])  # batch 4: about 24 GB
    roomy = recipe.recipe_for(short, 2000).values()
    tight = recipe.recipe_for(long, 2000)
    values = tight.values()
    assert roomy["per_device_train_batch_size"] == 4
    assert values["per_device_train_batch_size"] < 4
    assert (values["per_device_train_batch_size"] * values["gradient_accumulation_steps"]
            == roomy["per_device_train_batch_size"] * roomy["gradient_accumulation_steps"])  # the same updates
    planned, _ = settings_input.apply_overrides(long, [f"{k}={v}" for k, v in values.items()
                                                       if k in ("per_device_train_batch_size",
                                                                "gradient_accumulation_steps")])
    from studio.models import estimates

    assert estimates.training_memory_gb(planned, starter, facts)["total"] <= estimates.FITS * facts.free_memory_gb
    why = tight.choices["per_device_train_batch_size"].why
    assert "would not fit" in render(why, "en") and "放不进" in render(why, "zh")
