"""The Train tab through gradio_client against the running app: start, live metrics, stop, resume, errors,
one run at a time, interrupted runs."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client

from studio.core import runs
from studio.training import train
from studio.training.jobs import JOB
from tests.conftest import training_values, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def plot_rows(loss_plot) -> list[dict]:
    """A native plot's value as the client receives it: {'columns': [...], 'data': [[...], ...]}."""
    if not isinstance(loss_plot, dict) or "columns" not in loss_plot:
        return []
    return [dict(zip(loss_plot["columns"], row)) for row in loss_plot["data"]]


def test_start_live_metrics_stop_and_resume(client, app_url, tiny_model_dir):
    message = client.predict(**training_values(tiny_model_dir, max_steps=3000, max_length=64),
                             api_name="/start_training")
    assert message.startswith("Started")
    snapshot = wait_for(client, lambda s: len([r for r in plot_rows(s[2]) if r["series"] == "train"]) >= 3)
    rows = plot_rows(snapshot[2])
    assert {"train", "train (smoothed)", "validation"} <= {r["series"] for r in rows}
    assert any(r["step"] == 0 for r in rows if r["series"] == "validation"), "baseline evaluation before step 1"
    assert "<progress" in snapshot[1] and "tokens/s" in snapshot[0] and "perplexity" in snapshot[0]

    assert client.predict(api_name="/stop_training").startswith("Stopping")
    status = wait_for(client, lambda s: "**stopped**" in s[0])[0]
    assert "did not learn" not in status  # stopped by hand: the user's choice, not a failure to learn
    run_dir = Path(JOB.run_dir)
    checkpoints = list((run_dir / "checkpoints").glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (run_dir / "adapter" / "adapter_config.json").exists()
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"

    # A page is offered the stopped run for Resume by its poll, with no trip to the history first.
    assert Client(app_url, verbose=False).predict(api_name="/poll_training")[-2]["value"] == str(run_dir)
    table, resume_choice, _ = client.predict(api_name="/run_history")
    assert [row[1] for row in table["data"] if row[-1] == str(run_dir)] == ["stopped"]
    # Resume with a shorter horizon so the test ends soon: same folder, same settings otherwise.
    preset = json.loads((run_dir / "preset.json").read_text())
    preset["settings"]["training"]["max_steps"] = stopped_at + 3
    (run_dir / "preset.json").write_text(json.dumps(preset))
    assert client.predict(str(run_dir), api_name="/resume_training").startswith("Started")
    wait_for(client, lambda s: "**finished**" in s[0])
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [m["step"] for m in metrics if "loss" in m]
    assert train_steps == sorted(train_steps) and train_steps[-1] == stopped_at + 3
    assert stopped_at + 1 in train_steps, "resume continues from the checkpoint's step"
    assert "Resuming from checkpoint-" in (run_dir / "log.txt").read_text()


def test_two_clients_cannot_start_two_runs(app_url, tiny_model_dir):
    clients = [Client(app_url, verbose=False) for _ in range(2)]
    values = training_values(tiny_model_dir, max_steps=6, max_length=64)
    by_client = {}
    threads = [threading.Thread(target=lambda i=i, c=c: by_client.update({i: c.predict(**values,
                                                                                    api_name="/start_training")}))
               for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers = [by_client[i] for i in range(len(clients))]
    assert sorted(a.startswith("Started") for a in answers) == [False, True], answers
    assert any("already in progress" in a for a in answers)
    wait_for(clients[0], lambda s: "**finished**" in s[0])
    # Issue 39: the session that did not start the run sees it labelled as another session's.
    starter = [a.startswith("Started") for a in answers].index(True)
    starter, other = clients[starter], clients[1 - starter]
    assert "another browser window" not in starter.predict(api_name="/poll_training")[0]
    assert other.predict(api_name="/poll_training")[0].startswith("ℹ️ The last run on this server, started from")


def test_an_exception_in_the_run_leaves_the_app_usable(client, tiny_model_dir, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (injected)")

    monkeypatch.setattr(train, "_train", explode)
    assert client.predict(**training_values(tiny_model_dir, max_steps=3), api_name="/start_training").startswith("Started")
    status = wait_for(client, lambda s: "**failed**" in s[0])[0]
    assert "it ran out of memory" in status and "lower the batch size" in status  # what happened, what to try
    assert "injected" not in status  # Python's own (English) text stays off the page ...
    log = (Path(JOB.run_dir) / "log.txt").read_text()
    assert "Traceback" in log and "injected" in log  # ... and the full story is in the log file
    monkeypatch.undo()
    assert client.predict(**training_values(tiny_model_dir, max_steps=2), api_name="/start_training").startswith("Started")
    wait_for(client, lambda s: "**finished**" in s[0])


@pytest.mark.slow  # a training subprocess killed and resumed
def test_killed_run_is_listed_as_interrupted_and_resumes(client, tiny_model_dir, tmp_path):
    runs_root = Path(os.environ["STUDIO_RUNS"])  # the app's runs folder
    run_dir = runs_root / "killed-run"
    proc = subprocess.Popen([sys.executable, "launch.py", "train", "--preset", "presets/quickstart-cpu.json",
                             "--set", f"model_name_or_path={tiny_model_dir}", "--set", "max_steps=400",
                             "--set", "save_steps=2", "--set", "max_length=64", "--set", "eval_steps=100",
                             "--output-dir", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while not list((run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.3)
    time.sleep(1.0)  # let the checkpoint finish writing
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    table, _, _ = client.predict(api_name="/run_history")
    assert [row[1] for row in table["data"] if row[-1] == str(run_dir)] == ["interrupted"]
    preset = json.loads((run_dir / "preset.json").read_text())
    last = max(int(p.parent.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    preset["settings"]["training"]["max_steps"] = last + 2
    (run_dir / "preset.json").write_text(json.dumps(preset))
    assert client.predict(str(run_dir), api_name="/resume_training").startswith("Started")
    wait_for(client, lambda s: "**finished**" in s[0])
    assert json.loads((run_dir / "status.json").read_text())["global_step"] == last + 2


def test_compare_runs(client):
    table, _, chosen = client.predict(api_name="/run_history")
    finished = [row[-1] for row in table["data"] if row[1] == "finished"][:2]
    assert len(finished) == 2
    plot, summary, diff = client.predict(finished, api_name="/compare_runs")
    series = {r["series"] for r in plot_rows(plot)}
    assert any(s.endswith(": train") for s in series) and len({s.split(":")[0] for s in series}) == 2
    assert [row[0] for row in summary["data"]] == [Path(f).name for f in finished]
    assert any(row[0] == "training.max_steps" for row in diff["data"])


def test_pilot_run_trains_one_epoch_on_the_first_rows(client, tiny_model_dir):
    message = client.predict(**training_values(tiny_model_dir, max_steps=500, num_train_epochs=3, max_length=64),
                             api_name="/pilot_run")
    assert message.startswith("Started"), message
    wait_for(client, lambda s: "**finished**" in s[0])
    run = Path(JOB.run_dir)
    rows = sum(len(runs.read_jsonl(run / "data" / f"{name}.jsonl")) for name in ("train", "validation", "test"))
    settings = json.loads((run / "preset.json").read_text())["settings"]
    assert rows == 64 and settings["data"]["max_samples"] == 64
    assert settings["training"]["num_train_epochs"] == 1.0 and settings["training"]["max_steps"] == -1
