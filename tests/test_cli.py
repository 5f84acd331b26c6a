import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import launch

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "launch.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_preset_is_refused_before_any_model_loads(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"studio_preset": 1, "settings": {
        "training": {"learning_rate": 5, "epochs": 3}, "method": {"finetuning_type": "magic"}}}))
    result = run_cli("train", "--preset", str(bad), "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 2
    for where in ("settings.training.learning_rate", "settings.training.epochs", "settings.method.finetuning_type"):
        assert where in result.stderr
    assert "3 problems" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_overrides_are_listed_together(tmp_path):
    result = run_cli("train", "--preset", "presets/quickstart-cpu.json", "--set", "r=-1", "--set", "nope=2")
    assert result.returncode == 2 and "nope" in result.stderr and "Traceback" not in result.stderr


def test_missing_preset_file():
    result = run_cli("train", "--preset", "presets/does-not-exist.json")
    assert result.returncode == 2 and "file not found" in result.stderr


def test_train_from_preset_with_overrides(tiny_model_dir, tmp_path):
    result = run_cli("train", "--preset", "presets/quickstart-cpu.json", "--set", f"model_name_or_path={tiny_model_dir}",
                     "--set", "max_steps=2", "--set", "eval_steps=1", "--output-dir", str(tmp_path / "run"),
                     timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[result.stdout.rindex("{\n"):])
    assert summary["status"] == "finished" and summary["global_step"] == 2
    assert "step 2/2" in result.stdout and "Precision" in result.stdout


def test_exposure_without_auth_is_refused():
    assert launch.check_exposure("0.0.0.0", False, None)
    assert launch.check_exposure("127.0.0.1", True, None)
    assert launch.check_exposure("0.0.0.0", False, "nocolon")
    assert not launch.check_exposure("0.0.0.0", False, "me:secret")
    assert not launch.check_exposure("127.0.0.1", False, None)
    result = run_cli("--host", "0.0.0.0")
    assert result.returncode == 2 and "--auth" in result.stderr


def test_data_command_reports_problems_and_exits_non_zero():
    result = run_cli("data", "tests/data/bad/role_order.jsonl", "--model", "")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "role_order.jsonl: line 1: turn 2: two user turns in a row" in result.stdout


def test_data_command_on_good_data(tiny_model_dir):
    result = run_cli("data", "assets/examples/alpaca.json", "--model", str(tiny_model_dir))
    assert result.returncode == 0, result.stderr[-1000:]
    assert "format alpaca" in result.stdout and "Recommended cutoff: 128" in result.stdout and "p95" in result.stdout


def test_data_command_with_column_mapping():
    result = run_cli("data", "tests/data/bad/unknown_columns.jsonl", "--model", "", "--map", "query=instruction",
                     "--map", "response=output")
    assert result.returncode == 0 and "format alpaca" in result.stdout


@pytest.mark.slow  # a training and a chat in subprocesses
def test_chat_command_answers_base_then_tuned(tiny_model_dir, tmp_path):
    result = run_cli("train", "--preset", "presets/quickstart-cpu.json", "--set", f"model_name_or_path={tiny_model_dir}",
                     "--set", "max_steps=2", "--output-dir", str(tmp_path / "run"), timeout=300)
    assert result.returncode == 0, result.stderr[-1000:]
    result = run_cli("chat", str(tmp_path / "run"), "--prompt", "Who are you?", "--set", "max_new_tokens=8",
                     "--set", "temperature=0.7", "--set", "sampling_seed=3")
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.index("--- base (") < result.stdout.index("--- tuned (") and "first token" in result.stdout
    assert all(int(n) <= 8 for n in re.findall(r"\((\d+) tokens", result.stdout))


def test_chat_command_takes_generation_settings_only_and_checks_them_first(tmp_path):
    """Checked before any model loads: the run folder does not even exist."""
    result = run_cli("chat", str(tmp_path / "none"), "--prompt", "hi", "--set", "temperature=9",
                     "--set", "learning_rate=1e-4", "--set", "top_k")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "3 problems" in result.stderr and "temperature" in result.stderr and "learning_rate" in result.stderr


def test_data_command_refuses_a_bad_column_mapping_instead_of_dropping_it():
    result = run_cli("data", "tests/data/bad/unknown_columns.jsonl", "--model", "", "--map", "query=instruction",
                     "--map", "response")
    assert result.returncode == 2 and "'response' should look like their_name=our_name" in result.stderr


def test_cli_choices_are_the_settings_own():
    from studio.core.config import DataSettings

    parser = launch.build_parser()
    data = parser._subparsers._group_actions[0].choices["data"]
    formats = next(a for a in data._actions if a.dest == "format").choices
    assert list(formats) == list(typing.get_args(DataSettings.model_fields["dataset_format"].annotation))


@pytest.mark.slow  # two trainings in subprocesses (about a minute)
def test_blind_vote_then_dpo_from_the_command_line(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """`chat --blind` prints A and B and saves the vote read from stdin; `train` with a DPO preset trains on the
    votes of that run, continuing its adapter. (The first vote goes through a real process, the next two through
    launch.main in this one: the same code, without loading torch twice more.)"""
    import io

    import launch

    sft = tmp_path / "sft"  # trained hard enough that its answers differ from the base model's
    result = run_cli("train", "--preset", "presets/quickstart-cpu.json", "--set", f"model_name_or_path={tiny_model_dir}",
                     "--set", "max_steps=8", "--set", "learning_rate=0.01", "--output-dir", str(sft), timeout=300)
    assert result.returncode == 0, result.stderr[-1000:]
    voted = subprocess.run([sys.executable, "launch.py", "chat", str(sft), "--prompt", "Who are you? 0",
                            "--max-new-tokens", "6", "--blind", "--voter", "cli-test"], cwd=ROOT,
                           input="A\n", capture_output=True, text=True, timeout=120)
    assert voted.returncode == 0, voted.stderr[-1000:]
    outputs = [voted.stdout]
    monkeypatch.setattr(sys, "stdin", io.StringIO("b\n"))
    assert launch.main(["chat", str(sft), "--prompt", "Who are you? 1", "--max-new-tokens", "6", "--blind",
                        "--voter", "cli-test"]) in (0, None)
    outputs.append(capsys.readouterr().out)
    for out in outputs:
        assert out.index("--- A") < out.index("--- B") < out.index("Saved to")
        assert "A was the" in out and "decided votes" in out
    lines = (sft / "votes.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == ["A", "B"]  # "b" read as B
    monkeypatch.setattr(sys, "stdin", io.StringIO("maybe\n"))
    assert launch.main(["chat", str(sft), "--prompt", "x", "--max-new-tokens", "2", "--blind"]) == 2
    assert "is not a vote" in capsys.readouterr().err
    dpo = tmp_path / "dpo"
    result = run_cli("train", "--preset", "presets/quickstart-cpu.json", "--set", f"model_name_or_path={tiny_model_dir}",
                     "--set", "stage=dpo", "--set", f"dataset_path=votes:{sft}", "--set",
                     f"adapter_name_or_path={sft}", "--set", "learning_rate=5e-5", "--set", "max_steps=2",
                     "--output-dir", str(dpo), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout[result.stdout.rindex("{\n"):])
    assert summary["status"] == "finished" and "DPO data from my votes on run sft" in result.stdout
    assert (dpo / "adapter" / "adapter_config.json").exists()


def test_data_command_shows_a_mix_and_refuses_shares_that_cannot_be_met(tiny_model_dir):
    result = run_cli("data", "demo", "--model", str(tiny_model_dir), "--mix", "assets/examples/sharegpt.json#0.3")
    assert result.returncode == 0, result.stderr[-1000:]
    assert "--- assets/examples/sharegpt.json" in result.stdout and "The mix" in result.stdout
    mix_rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith(("1 ", "2 "))]
    assert [row[1] for row in mix_rows[-2:]] == ["identity.jsonl", "sharegpt.json"]
    assert "repeated" in result.stdout  # 2 training rows cannot fill 30% of 245 without repeating
    refused = run_cli("data", "demo", "--model", "", "--mix", "assets/examples/sharegpt.json#1")
    assert refused.returncode == 2 and "must stay below 100%" in refused.stdout


def test_data_command_names_unfilled_placeholders_and_a_model_that_does_not_know_chinese():
    result = run_cli("data", "tests/data/preflight/identity_placeholders.json", "--model", "")
    assert result.returncode == 0, result.stderr[-1000:]
    assert "[warning] unfilled placeholders: 7 rows still hold template placeholders ({{author}}, {{name}})" \
        in result.stdout and "rows 1, 2, 3, 4, 5, 6, 7" in result.stdout
    assert "[info] unfilled placeholders: 2 rows hold placeholders inside code" in result.stdout


@pytest.mark.slow
def test_data_command_names_chinese_data_on_the_english_starter_model():
    result = run_cli("data", "tests/data/preflight/chinese.json", "--model", "starter", timeout=300)
    assert result.returncode == 0, result.stderr[-1000:]
    assert "[warning] model language: the data is (partly) Chinese, but the model hardly knows Chinese" in result.stdout
    assert "gemma3-270m" in result.stdout
