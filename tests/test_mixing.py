"""Several files in one run: shares, the per-file split, the record of which row came from where, presets and
`--set`, and the advice that reads the mix."""

import json
import random
from collections import Counter

import pytest

from studio.core import config, presets, settings_input
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.plan import advice, mixing
from studio.training import train
from tests.conftest import tiny_settings


def write_rows(path, n, word):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"{word} question {i}"},
                                             {"role": "assistant", "content": f"{word} answer {i}"}]}) + "\n")
    return str(path)


def mixed(tmp_path, main_rows, other_rows, main_share, other_share, *overrides):
    task = write_rows(tmp_path / "task.jsonl", main_rows, "task")
    general = write_rows(tmp_path / "general.jsonl", other_rows, "general")
    extra = json.dumps([{"dataset_path": general, **({"share": other_share} if other_share else {})}])
    settings, problems = settings_input.apply_overrides(Settings(), [
        f"dataset_path={task}", f"extra_datasets={extra}", "validation_share=0.1", "test_share=0.05",
        *([f"dataset_share={main_share}"] if main_share else []), *overrides])
    assert not problems, problems
    return settings


def sources(prepared, split):
    return Counter(i for i, _ in prepared.mix["rows"][split])


def test_a_70_30_mix_is_within_one_row_of_the_shares_and_every_file_is_in_validation(tmp_path):
    prepared, problems = train.prepare_data(mixed(tmp_path, 400, 300, 0.7, 0.3))
    assert prepared is not None and not problems
    counts = sources(prepared, "train")
    total = counts[0] + counts[1]
    assert abs(counts[0] - 0.7 * total) <= 1 and abs(counts[1] - 0.3 * total) <= 1
    assert counts[0] == 340  # every training row of the task file (400 less 40 validation, 20 test) is used
    assert sources(prepared, "validation").keys() == {0, 1} and sources(prepared, "test").keys() == {0, 1}
    assert len(prepared.train) == total
    assert all("general" in row["messages"][0]["content"] for row, (i, _) in zip(prepared.train,
                                                                                 prepared.mix["rows"]["train"]) if i)


def test_all_rows_of_the_task_and_a_share_of_general_data_repeating_a_small_file(tmp_path):
    prepared, _ = train.prepare_data(mixed(tmp_path, 200, 20, None, 0.4))
    counts = sources(prepared, "train")
    assert counts[0] == 170 and abs(counts[1] - 0.4 * (counts[0] + counts[1])) <= 1  # 113 rows from 17 offered
    files = prepared.mix["files"]
    assert files[1]["repeated"] and files[1]["offered"] == 17 and not files[0]["repeated"]
    assert prepared.mix["rows"]["validation"] and {i for i, _ in prepared.mix["rows"]["validation"]} == {0, 1}


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_rows(tmp_path):
    first, _ = train.prepare_data(mixed(tmp_path, 300, 300, 0.5, 0.5))
    again, _ = train.prepare_data(mixed(tmp_path, 300, 300, 0.5, 0.5))
    other, _ = train.prepare_data(mixed(tmp_path, 300, 300, 0.5, 0.5, "seed=7"))
    assert first.mix == again.mix and first.train == again.train
    assert first.mix["rows"]["train"] != other.mix["rows"]["train"]


def test_one_file_without_a_share_is_split_exactly_as_before(tmp_path):
    task = write_rows(tmp_path / "task.jsonl", 50, "task")
    settings, _ = settings_input.apply_overrides(Settings(), [f"dataset_path={task}", "validation_share=0.2"])
    prepared, _ = train.prepare_data(settings)
    from studio.data import data

    expected = data.split_rows(data.load_dataset_file(task).records(), 0.2, 0.0, 42)
    assert (prepared.train, prepared.validation, prepared.test) == expected and prepared.mix is None


@pytest.mark.parametrize("main_share,other_share,wanted", [(None, 1.0, "mix.shares_too_large")])
def test_shares_that_cannot_be_met_are_refused_with_the_reason(tmp_path, main_share, other_share, wanted):
    prepared, problems = train.prepare_data(mixed(tmp_path, 100, 100, main_share, other_share))
    assert prepared is None and problems[0][0] == "extra_datasets" and problems[0][1].key == wanted


def test_a_missing_file_in_the_mix_is_named(tmp_path):
    settings = mixed(tmp_path, 50, 50, None, None)
    settings.data.extra_datasets.append(config.DatasetPart(dataset_path=str(tmp_path / "gone.jsonl")))
    prepared, problems = train.prepare_data(settings)
    assert prepared is None and any("gone.jsonl" in str(where) for where, _ in problems)


def test_the_mix_travels_in_presets_and_set_text(tmp_path):
    settings, problems = settings_input.apply_overrides(Settings(), ["extra_datasets=general.jsonl#0.3; more.csv",
                                                             "dataset_share=0.7"])
    assert not problems
    assert [(p.dataset_path, p.share) for p in settings.data.extra_datasets] == [("general.jsonl", 0.3),
                                                                                ("more.csv", None)]
    path = presets.save_preset(settings, tmp_path / "p.json")
    loaded, _, problems = presets.load_preset(path)
    assert not problems and loaded == settings
    _, problems = settings_input.apply_overrides(Settings(), ["extra_datasets=general.jsonl#lots"])
    assert problems and "extra_datasets" in problems[0][0]
    values, problems = settings_input.settings_from_flat({"extra_datasets": [{"dataset_path": "a.jsonl", "share": 2}]})
    assert values is None and problems[0][0] == "extra_datasets"


def test_the_mix_table_shows_rows_and_token_shares(tmp_path):
    from studio.plan import data_report

    settings = mixed(tmp_path, 400, 300, 0.7, 0.3)
    reports = [data_report.build_report(p.dataset_path, model=None) for p in mixing.parts_of(settings.data)]
    table = mixing.mix_table(settings.data, reports)
    rows, refusal, warnings = table.rows, table.refusal, table.warnings
    assert table.training_rows == 340 + 145
    assert refusal is None and not warnings
    assert [r[5] for r in rows] == [340, 145] and [r[4] for r in rows] == [400, 300]
    assert rows[0][8] == rows[0][9] == ""  # no model named: no token counts
    small = mixed(tmp_path, 400, 10, None, 0.4)
    reports = [data_report.build_report(p.dataset_path, model=None) for p in mixing.parts_of(small.data)]
    table = mixing.mix_table(small.data, reports)
    rows, warnings = table.rows, table.warnings
    assert "×" in str(rows[1][5]) and warnings[0].key == "mix.repeated"


def test_advice_tells_a_small_set_trained_long_without_general_data_to_mix():
    settings, _ = settings_input.apply_overrides(Settings(), ["num_train_epochs=5", "replay=off"])
    found = advice.rule_data_size(advice.Situation(settings, rows=500))
    assert any(a.level == "warning" and a.message.key == "advice.mix_needed" for a in found)
    replaying, _ = settings_input.apply_overrides(settings, ["replay=auto"])  # replay is the general data, made here
    found = advice.rule_data_size(advice.Situation(replaying, rows=500))
    assert [a.message.key for a in found if a.field == "replay"] == ["advice.replay_on"]
    settings, _ = settings_input.apply_overrides(settings, ['extra_datasets=general.jsonl#0.3'])
    found = advice.rule_data_size(advice.Situation(settings, rows=500))
    assert [a.message.key for a in found if a.field == "extra_datasets"] == ["advice.mix_ok"]
    assert advice.mixed_in_share(settings) == pytest.approx(0.3)


def test_a_mixed_run_records_each_row_and_scores_each_file(tiny_model_dir, tmp_path):
    settings = mixed(tmp_path, 60, 40, 0.6, 0.4)
    settings = tiny_settings(tiny_model_dir, *[f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                                               for k, v in config.flat_values(settings).items()
                                               if config.field_section(k) == "data" and k != "column_mapping"])
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    run = RunFolder(tmp_path / "run")
    record = run.mix()
    assert [f["train"] for f in record["files"]] == [len([r for r in record["rows"]["train"] if r[0] == i])
                                                     for i in range(2)]
    assert [e["file"] for e in status["eval_by_file"]] == [p.dataset_path for p in mixing.parts_of(settings.data)]
    assert all(e["eval_loss"] > 0 for e in status["eval_by_file"])
    assert run.status()["eval_by_file"] == status["eval_by_file"]


def test_the_mix_box_replays_an_identity_file_at_one_epoch_as_the_run_will(tmp_path):
    """The mix box judges replay as the run does: an identity file replays at any number of epochs (with its own
    reason), a plain small file of the same size at one epoch does not."""
    from pathlib import Path

    from studio.plan.data_choice import replay_for

    identity = str(Path(__file__).parent / "data" / "identity_nova.jsonl")
    plain = write_rows(tmp_path / "plain.jsonl", 60, "plain")
    for path, replays in ((identity, True), (plain, False)):
        settings, _ = settings_input.apply_overrides(Settings(), [f"dataset_path={path}", "num_train_epochs=1"])
        on, why = replay_for(settings, mixing.parts_of(settings.data), None)
        assert on is replays and why.key == ("replay.auto_identity" if replays else "replay.auto_off"), path


@pytest.mark.parametrize("other_rows,other_share", [(300, None), (300, 0.5), (20, 0.5)])
def test_the_plan_cost_and_replay_advice_count_the_whole_mix_as_the_run_does(tmp_path, tiny_model_dir, other_rows,
                                                                              other_share):
    """Issue 57: with a file mixed in, the Hyperparameters advice and the Train tab's cost line planned with the
    main file's rows alone while the run trained the whole mix (more rows, more steps), and judged identity data on
    the main file alone. Now both count the rows the run plans with (every file split, then each to its share) and
    the identity check reads the rows in the run's proportions. Identity rows (60) mixed with plain rows: all rows, a
    half share, and a small file repeated to its share."""
    from pathlib import Path

    from studio.data.facts import speaks_about_itself
    from studio.plan import data_choice, form_plan, recipe

    identity = str(Path(__file__).parent / "data" / "identity_nova.jsonl")
    general = write_rows(tmp_path / "general.jsonl", other_rows, "general")
    extra = json.dumps([{"dataset_path": general, **({"share": other_share} if other_share else {})}])
    settings, problems = settings_input.apply_overrides(Settings(), [
        f"dataset_path={identity}", f"extra_datasets={extra}", f"model_name_or_path={tiny_model_dir}"])
    assert not problems, problems
    for part in mixing.parts_of(settings.data):  # the mix box shows each file: each is read (loaded) once
        data_choice.report_of(part, settings.model.model_name_or_path)
    situation = form_plan.situation_for(settings)
    mix, problems = mixing.build_mix(settings.data, settings.training.seed)
    assert mix is not None, problems
    run_rows = sum(len(mix.split(name)) for name in ("train", "validation", "test"))
    assert situation.rows == run_rows > 60  # as train.planning_rows counts the built mix
    assert situation.identity == speaks_about_itself(mix.split("train"))
    on, why = data_choice.replay_for(settings, mixing.parts_of(settings.data), settings.model.model_name_or_path)
    assert (on, why.key) == tuple(x if i == 0 else x.key for i, x in enumerate(
        recipe.replay_decision(settings, run_rows, identity=speaks_about_itself(mix.split("train")))))
    alone = form_plan.situation_for(settings.model_copy(update={"data": settings.data.model_copy(
        update={"extra_datasets": []})}))
    assert alone.rows == 60 and alone.identity  # the main file alone is identity data


def test_a_large_main_file_with_identity_rows_mixed_in_is_judged_on_the_runs_proportions(tmp_path, tiny_model_dir):
    """The identity check reads the first 2,000 rows of the run's shuffled training split; the plan's must read the
    mix in the same proportions, not the main file's first 2,000 rows (2,500 plain rows, then identity rows at half
    the training rows: the run sees half identity answers)."""
    from pathlib import Path

    from studio.data.facts import speaks_about_itself
    from studio.plan import data_choice, form_plan

    plain = write_rows(tmp_path / "plain.jsonl", 2500, "plain")
    identity = str(Path(__file__).parent / "data" / "identity_nova.jsonl")
    extra = json.dumps([{"dataset_path": identity, "share": 0.5}])
    settings, problems = settings_input.apply_overrides(Settings(), [
        f"dataset_path={plain}", f"extra_datasets={extra}", f"model_name_or_path={tiny_model_dir}"])
    assert not problems, problems
    for part in mixing.parts_of(settings.data):
        data_choice.report_of(part, settings.model.model_name_or_path)
    mix, _ = mixing.build_mix(settings.data, settings.training.seed)
    shuffled = mix.split("train")
    random.Random(settings.training.seed).shuffle(shuffled)  # as the run spreads its training rows
    assert speaks_about_itself(shuffled)  # about half of the rows it reads speak as Nova
    assert form_plan.situation_for(settings).identity
