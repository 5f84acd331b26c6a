"""The cost line next to the Train button (issue 39): steps, time on this machine, memory, and the cheaper
options for a run over an hour."""

import pytest
from gradio_client import Client

from studio.core.config import Settings
from studio.core.settings_input import apply_overrides
from studio.core.text import render
from studio.plan import cost


def settings(*overrides):
    values, problems = apply_overrides(Settings(), list(overrides))
    assert not problems
    return values


def test_without_a_measurement_the_line_says_how_to_get_one():
    lines = cost.cost_lines(settings("max_steps=30"), 200, None)
    assert [line.key for line in lines] == ["cost.steps", "cost.no_time"] and lines[0].fields["steps"] == 30
    assert "Estimate training time" in render(lines[1], "en") and "估算训练时间" in render(lines[1], "zh")
    assert [line.key for line in cost.cost_lines(settings(), None, None)] == ["cost.no_data"]


def test_a_past_run_of_the_same_model_times_the_steps_scaled_by_tokens_per_step(tmp_path):
    past = settings("per_device_train_batch_size=4", "gradient_accumulation_steps=1", "max_length=512")
    now = settings("per_device_train_batch_size=8", "gradient_accumulation_steps=1", "max_length=512", "max_steps=40")
    runs = [{"status": "failed", "run_dir": "a", "name": "a", "global_step": 3, "train_runtime_s": 1.0},
            {"status": "finished", "run_dir": "b", "name": "b", "global_step": 10, "train_runtime_s": 50.0}]
    step = cost.step_time(now, runs, lambda run_dir: past)
    assert step.seconds == pytest.approx(10.0) and step.source.fields["run"] == "b"  # 5 s x twice the tokens
    lines = cost.cost_lines(now, 500, step)
    assert lines[1].key == "cost.time_min" and lines[1].fields["minutes"] == pytest.approx(40 * 10 / 60)
    other_model = settings("model_name_or_path=gemma3-270m")
    assert cost.step_time(other_model, runs, lambda run_dir: past) is None
    # A run trained by two processes times a two-process plan only, and the reverse.
    assert cost.step_time(now, runs, lambda run_dir: past, devices=2) is None
    two = [{**runs[1], "processes": 2, "name": "c", "train_runtime_s": 80.0}, *runs]
    assert cost.step_time(now, two, lambda run_dir: past, devices=2).source.fields["run"] == "c"
    assert cost.step_time(now, two, lambda run_dir: past).source.fields["run"] == "b"


def test_a_run_over_an_hour_names_the_cheaper_options():
    slow = cost.StepTime(100.0, cost.Msg("cost.from_probe"))
    lines = cost.cost_lines(settings("max_steps=60"), 500, slow)
    assert lines[-1].key == "cost.long" and "pilot run" in render(lines[-1], "en")
    assert "试跑" in render(lines[-1], "zh") and "最大步数" in render(lines[-1], "zh")


def test_the_probe_figure_is_used_for_the_same_settings_only():
    probed = settings("model_name_or_path=some/model", "max_length=300")
    cost.remember_probe(probed, 2.5)
    assert cost.step_time(probed, [], lambda run_dir: None).seconds == 2.5
    assert cost.step_time(settings("model_name_or_path=some/model", "max_length=400"), [], lambda d: None) is None


def test_the_cost_line_through_the_api_follows_max_steps(app_url, tiny_model_dir):
    client = Client(app_url, verbose=False)
    for steps in (7, 12):
        line = client.predict(model_name_or_path=str(tiny_model_dir), max_steps=steps, api_name="/train_cost")
        assert line.startswith("**Cost of this run**\n- ") and f"**{steps}** optimizer steps" in line, line
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    line = zh.predict(model_name_or_path=str(tiny_model_dir), max_steps=7, api_name="/train_cost")
    assert "**7** 个优化步" in line and "optimizer" not in line


def test_a_loaded_file_pushed_out_of_the_kept_reports_still_gives_the_cost(tmp_path, tiny_model_dir):
    """The cost line reverted to "load a data file first" after a run: the run's own reports pushed the file the
    user loaded out of the four kept ones. A loaded file is made again; a path only typed stays unread."""
    import json

    from studio.plan import data_report

    def data_file(name: str, rows: int):
        path = tmp_path / name
        path.write_text("\n".join(json.dumps({"instruction": f"q{i} {name}", "output": f"a{i}"})
                                  for i in range(rows)))
        return str(path)

    model = str(tiny_model_dir)
    loaded = settings(f"dataset_path={data_file('mine.jsonl', 30)}", f"model_name_or_path={model}")
    data_report.cached_report(loaded.data.dataset_path, "auto", {}, model)  # the Data tab's Load
    for other in range(5):  # other work's reports push it out
        data_report.cached_report(data_file(f"other{other}.jsonl", 5), "auto", {}, model)
    report = data_report.advice_report(loaded)
    assert report is not None and len(report.load.rows) == 30
    typed = settings(f"dataset_path={data_file('typed.jsonl', 7)}", f"model_name_or_path={model}")
    assert data_report.advice_report(typed) is None  # never read without a Load
    lines = cost.cost_lines(loaded, len(report.load.rows), None)
    assert lines[0].key == "cost.steps"
