"""Issue 43: every device of the machine. The plan's device choice on a table of machines; the Train tab's job
training in several processes (a supervised child): Stop passed on, a child that dies reported with its last lines,
processes left behind ended; two CPU processes from the UI through gradio_client; two "machines" on this host."""

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from studio.core import presets
from studio.core.config import Settings, TrainingSettings
from studio.core.runs import RunFolder
from studio.models import hardware
from studio.models.hardware import HardwareFacts
from studio.plan import advice
from studio.training import launcher
from tests.conftest import tiny_settings, training_values, wait_for

ROOT = Path(__file__).resolve().parent.parent
CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2"}), cpu_count=8, total_memory_gb=64, free_memory_gb=60)
SMALL = {"weights": 1.0, "optimizer_and_gradients": 0.5, "activations": 2.0, "logits": 0.5}  # 4 GB on one device
LARGE = {"weights": 16.0, "optimizer_and_gradients": 96.0, "activations": 6.0, "logits": 2.0}  # 120 GB: an 8B model


def gpus(count: int, free: float = 78.0, deepspeed: bool = False) -> HardwareFacts:
    return HardwareFacts(device="cuda", device_name="H100", cuda_capability=(9, 0), cuda_bf16=True,
                         total_memory_gb=80, free_memory_gb=free, device_count=count, bitsandbytes_cuda=True,
                         device_free_gb=(free,) * count, deepspeed=deepspeed)


@pytest.mark.parametrize("facts,memory,processes,strategy,each", [
    (CPU, SMALL, 1, "single", 4.0),  # no GPU: one process
    (gpus(1), SMALL, 1, "single", 4.0),
    (gpus(2), SMALL, 2, "ddp", 4.0),  # every GPU, each with the whole model
    (gpus(8), SMALL, 8, "ddp", 4.0),
    (gpus(2), LARGE, 2, "fsdp", 64.0),  # 120 GB does not fit one 78 GB GPU: weights and optimizer split in two
    (gpus(8), LARGE, 8, "fsdp", 22.0),
    (gpus(8), None, 8, "ddp", None),  # an unknown model: no estimate, plain data parallelism
])
def test_the_plan_uses_every_gpu_and_shards_what_one_cannot_hold(facts, memory, processes, strategy, each):
    chosen = hardware.plan(facts, TrainingSettings(), memory=memory)
    assert (chosen["processes"], chosen["strategy"], chosen["per_device_gb"]) == (processes, strategy, each)
    reasons = " ".join(chosen["devices_reason"])
    if strategy == "fsdp":
        assert "does not fit" not in reasons and "sharded over" in reasons and "more than one GPU's 78.0 GB" in reasons
    assert all(reason for reason in chosen["devices_reason"])


def test_a_run_too_big_even_sharded_says_what_to_try():
    chosen = hardware.plan(gpus(2, free=40), memory=LARGE)
    assert chosen["strategy"] == "fsdp" and chosen["per_device_gb"] == 64.0
    assert any("each device would need about 64.0 GB and has 40.0 GB free" in r for r in chosen["devices_reason"])
    assert hardware.plan(gpus(2, free=40), memory=LARGE)["gradient_checkpointing"] is True  # per device, sharded


@pytest.mark.parametrize("facts,asked,method,processes,strategy,reason", [
    (gpus(8), {"num_processes": 1}, "lora", 1, "single", "one GPU"),
    (gpus(8), {"num_processes": 16}, "lora", 8, "ddp", "you asked for 16 processes, but this machine has 8 GPUs"),
    (gpus(4), {"distributed_strategy": "zero3"}, "lora", 4, "fsdp", "deepspeed package is not installed"),
    (gpus(4, deepspeed=True), {"distributed_strategy": "zero3"}, "lora", 4, "zero3", "set by you"),
    (gpus(4, deepspeed=True), {"distributed_strategy": "zero2"}, "full", 4, "zero2", "set by you"),
    (gpus(4), {"distributed_strategy": "fsdp"}, "qlora", 4, "ddp", "QLoRA's 4-bit weights are not sharded"),
    (CPU, {"num_processes": 2}, "lora", 2, "ddp", "2 processes on the CPU (gloo)"),
    (CPU, {"num_processes": 2, "distributed_strategy": "fsdp"}, "lora", 2, "ddp",
     "sharding (FSDP, ZeRO) runs only on GPUs"),
    (CPU, {"num_processes": 64}, "lora", 8, "ddp", "this machine has 8 cores"),
])
def test_the_user_overrides_the_devices_and_is_told_what_could_not_be_done(facts, asked, method, processes, strategy,
                                                                          reason):
    chosen = hardware.choose_devices(facts, TrainingSettings(**asked), SMALL, method)
    assert (chosen["processes"], chosen["strategy"]) == (processes, strategy)
    assert any(reason in r for r in chosen["devices_reason"]), chosen["devices_reason"]


def test_the_recipe_sizes_the_batch_for_the_processes_the_plan_uses():
    settings = Settings()
    one = advice.build_situation(settings, facts=gpus(1))
    four = advice.build_situation(settings, facts=gpus(4))
    assert (one.devices, four.devices) == (1, 4)
    from studio.plan.recipe import plan_recipe

    per_gpu = plan_recipe(rows=2000, parameters=135_000_000, method="lora", devices=4).values()
    alone = plan_recipe(rows=2000, parameters=135_000_000, method="lora", devices=1).values()
    effective = lambda v, n: v["per_device_train_batch_size"] * v["gradient_accumulation_steps"] * n  # noqa: E731
    assert effective(per_gpu, 4) == effective(alone, 1)  # the same effective batch, shared by the GPUs


def planned_for(devices: int, rows: int = 2000, **training) -> Settings:
    """Settings holding the recipe's values for `devices`, then the training fields given (the user's edits)."""
    from studio.plan.recipe import apply_recipe, recipe_for

    settings = apply_recipe(Settings(), recipe_for(Settings(), rows, 135_000_000, devices))
    return settings.model_copy(update={"training": settings.training.model_copy(update=training)})


def test_a_form_planned_for_one_device_is_replanned_for_the_processes_the_user_sets():
    """Processes 1 → 4: the per-device batch shrinks so the effective batch (and the steps) stay the data's."""
    def on(devices: int, settings: Settings) -> dict:
        return advice.values_for_devices(advice.Situation(settings, rows=2000, parameters=135_000_000,
                                                          devices=devices))

    one = planned_for(1)
    changed = on(4, one)
    batch = lambda v: v["per_device_train_batch_size"] * v["gradient_accumulation_steps"]  # noqa: E731
    new = {**one.training.model_dump(), **changed}
    assert changed and batch(new) * 4 == batch(one.training.model_dump()) * 1
    assert set(changed) <= {"per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs",
                            "eval_steps"}
    assert on(1, planned_for(4)) == {name: getattr(one.training, name) for name in on(1, planned_for(4))}  # and back
    assert on(4, planned_for(4)) == {}  # already planned for four
    assert on(4, planned_for(1, per_device_train_batch_size=3)) == {}  # a batch no plan gives is the user's own
    assert "learning_rate" not in on(4, planned_for(1, learning_rate=1e-3))  # the user's other fields are kept
    assert advice.values_for_devices(advice.Situation(one, devices=4)) == {}  # no data measured: no plan to follow


def test_the_hyperparameters_tab_says_what_it_replanned_for_the_devices(monkeypatch):
    """The handler behind a user's change of Processes, in both languages (a fake 8-core CPU allows 2 processes)."""
    from studio.core.config import flat_values
    from studio.ui import hyperparams_tab

    monkeypatch.setattr(hardware, "detect", lambda: CPU)
    rows = advice.build_situation(Settings(), hyperparams_tab.data_report.advice_report(Settings())).rows
    values = flat_values(planned_for(1, rows=rows, num_processes=2))
    changed, english = hyperparams_tab.follow_devices(values, "en")
    _, chinese = hyperparams_tab.follow_devices(values, "zh")
    assert changed["per_device_train_batch_size"] == values["per_device_train_batch_size"] // 2
    assert english.startswith("Re-planned for 2 training process(es)") and "Batch size 4 → 2" in english
    assert chinese.startswith("已按 2 个训练进程重新规划") and not any("a" <= c <= "z" for c in chinese), chinese
    assert hyperparams_tab.follow_devices({**values, **changed}, "en") == ({}, "")  # planned: nothing more


@pytest.mark.parametrize("environment,whole", [
    ({"WORLD_SIZE": "1", "ACCELERATE_USE_FSDP": "true"}, True),  # one process holds everything
    ({"WORLD_SIZE": "2"}, True),  # data-parallel: each process a whole copy
    ({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}, False),
    ({"WORLD_SIZE": "4", "ACCELERATE_USE_DEEPSPEED": "true"}, False),
    ({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true", "ACCELERATE_USE_CPU": "True"}, True),  # accelerate: DDP
    ({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true", "on": "MULTI_CPU"}, True),  # no GPU: DDP too
])
def test_the_checks_know_when_a_process_holds_the_model_whole(monkeypatch, environment, whole):
    """The verdict and drift check run on the main process wherever it holds the whole model (run_checks)."""
    from types import SimpleNamespace

    from studio.training import distributed

    for name in ("WORLD_SIZE", "ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(name, raising=False)
    environment = dict(environment)
    kind = environment.pop("on", "MULTI_GPU")  # what accelerate made of the processes (no process group here)
    made = SimpleNamespace(distributed_type=SimpleNamespace(name=kind))
    monkeypatch.setattr(distributed, "_partial_state", lambda: made)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert distributed.sharded() is not whole


def test_the_hyperparameters_tab_names_the_devices_in_both_languages():
    from studio.plan.form_plan import devices_line
    from studio.core.text import render

    chosen = hardware.plan(gpus(2), memory=LARGE)
    english, chinese = render(devices_line(chosen), "en"), render(devices_line(chosen), "zh")
    assert english.startswith("Devices: **2 × sharded (FSDP)** (about 64.0 GB each)")
    assert chinese.startswith("设备：**2 × 切分（FSDP）**（每个约 64.0 GB）")
    assert render(devices_line(hardware.plan(CPU, memory=SMALL)), "zh").startswith("设备：**单设备**（约 4.0 GB）")


def test_the_train_tab_says_how_many_processes_train_the_run():
    from studio.training.run_status import status_messages
    from studio.core.text import render

    snapshot = {"status": "running", "run_dir": "/runs/r", "metrics": [], "log": [], "processes": 2}
    assert "由 2 个进程共同训练" in render(status_messages(snapshot), "zh")
    assert not any("processes" in str(m) for m in status_messages({**snapshot, "processes": 1}))


# ---------------------------------------------------------------- the supervised child, with fake children

FAKE_CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    args = sys.argv[1:]
    run, stop, how = Path(args[args.index("--output-dir") + 1]), Path(args[args.index("--stop-file") + 1]), args[0]
    (run / "status.json").write_text(json.dumps({"status": "running"}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\\n")
    if how == "crash":
        print("Traceback (most recent call last):")
        print('  File "train.py", line 1, in <module>')
        print("RuntimeError: rank 1 lost its GPU")
        sys.exit(3)
    if how == "killed":
        print("training...", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "linger":
        (run / "status.json").write_text(json.dumps({"status": "finished", "global_step": 1}))
        time.sleep(600)  # a process that never ends after the main one finished
    while not stop.exists():
        time.sleep(0.05)
    (run / "status.json").write_text(json.dumps({"status": "stopped", "global_step": 1}))
""")


@pytest.fixture()
def fake_child(monkeypatch, tmp_path):
    """The child replaced by a small script told how to behave; the supervision is the real one."""
    script = tmp_path / "child.py"
    script.write_text(FAKE_CHILD)

    def use(how: str):
        real = launcher.child_command

        def command(*args, **kwargs):
            # the real command's last six words: --preset, --output-dir and --stop-file with their values
            return [sys.executable, str(script), how] + real(*args, **kwargs)[-6:]
        monkeypatch.setattr(launcher, "child_command", command)

    return use


def run_fake(tiny_model_dir, tmp_path, stop_event=None):
    facts = hardware.detect()
    return launcher.run_in_processes(tiny_settings(tiny_model_dir, "num_processes=2"), tmp_path / "run",
                                     {"processes": 2, "strategy": "ddp"}, facts, stop_event)


def test_stop_reaches_the_child_processes_as_a_file(fake_child, tiny_model_dir, tmp_path):
    fake_child("wait")
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    status = run_fake(tiny_model_dir, tmp_path, stop)
    assert status["status"] == "stopped"
    assert list((tmp_path / "run" / "launch").glob("stop-*"))  # the request the child's processes read


def test_a_child_that_dies_is_reported_with_its_last_lines_and_the_run_is_kept(fake_child, tiny_model_dir, tmp_path):
    fake_child("crash")
    status = run_fake(tiny_model_dir, tmp_path)
    run = RunFolder(tmp_path / "run")
    assert status["status"] == "failed" and run.status()["status"] == "failed"  # not "running" for ever
    assert status["global_step"] == 1 and run.metrics()  # how far it got, and its curve, are kept
    assert status["last_lines"][-1] == "RuntimeError: rank 1 lost its GPU"
    assert not any(line.startswith(("Traceback", "File ")) for line in status["last_lines"])
    event = json.loads(run.events_file.read_text().splitlines()[-1])
    assert event["key"] == "log.processes_died" and "rank 1 lost its GPU" in event["fields"]["lines"]
    from studio.core.text import Msg, render

    assert render(Msg.from_json(status["error_message"]), "zh") == "训练进程意外结束（退出码 3）"


def test_a_child_the_system_killed_is_named_as_such(fake_child, tiny_model_dir, tmp_path):
    fake_child("killed")
    status = run_fake(tiny_model_dir, tmp_path)
    assert status["error_message"]["key"] == "error.processes_killed" and status["advice_key"] == "error.memory"
    assert launcher.worker_exit_code(["exitcode  : -9 (pid: 3745)  (SIGKILL)"], 1) == -9  # as torchrun reports it


def test_processes_left_behind_after_the_run_ended_are_ended(fake_child, tiny_model_dir, tmp_path, monkeypatch):
    fake_child("linger")
    monkeypatch.setattr(launcher, "LINGER_S", 1.0)
    started = time.monotonic()
    assert run_fake(tiny_model_dir, tmp_path)["status"] == "finished"
    assert time.monotonic() - started < 60


def test_the_child_is_told_only_what_this_server_allowed(tiny_model_dir, tmp_path):
    settings = tiny_settings(tiny_model_dir, "num_processes=2")
    run = RunFolder(tmp_path / "run")
    command = launcher.child_command(settings, run, {"processes": 2, "strategy": "ddp"}, hardware.detect(),
                                     tmp_path / "p.json", tmp_path / "stop", resume=True)
    assert command[1:4] == ["-m", "torch.distributed.run", "--nproc_per_node"] and "--resume" in command
    assert "--trust-remote-code" not in command and "--allow-reward-code" not in command
    env = launcher.child_env({"processes": 2}, HardwareFacts(device="cpu", cpu_count=8))
    assert env["OMP_NUM_THREADS"] == "4"


def test_on_gpus_the_child_runs_accelerate_with_the_plans_strategy(tiny_model_dir, tmp_path):
    import yaml

    settings = tiny_settings(tiny_model_dir, "num_processes=8")
    command = launcher.child_command(settings, RunFolder(tmp_path), {"processes": 8, "strategy": "fsdp"}, gpus(8),
                                     tmp_path / "p.json", tmp_path / "stop", resume=False)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    config = yaml.safe_load((tmp_path / "accelerate.yaml").read_text())
    assert config["distributed_type"] == "FSDP" and config["num_processes"] == 8 and config["mixed_precision"] == "no"


# ---------------------------------------------------------------- several machines from one preset

def test_machines_checks_before_it_prints(tmp_path, capsys):
    import launch

    assert launch.main(["machines", "--preset", str(tmp_path / "none.json"), "--machines", "2",
                        "--main-address", "10.0.0.5"]) == 2
    preset = ROOT / "presets" / "quickstart-cpu.json"
    assert launch.main(["machines", "--preset", str(preset), "--machines", "0", "--main-address", "a b;rm",
                        "--port", "80"]) == 2
    err = capsys.readouterr().err
    assert "--machines must be 1 to" in err and "not an IP address or host name" in err and "--port 80" in err
    assert launch.main(["machines", "--preset", str(preset), "--machines", "3", "--gpus", "8",
                        "--main-address", "10.0.0.5", "--port", "29400"]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if line.startswith("torchrun")]
    assert len(commands) == 3 and all("--nnodes 3" in c and "--nproc_per_node 8" in c for c in commands)
    assert [c.split("--node_rank ")[1].split()[0] for c in commands] == ["0", "1", "2"]
    assert "3 machines x 8 GPUs = 24 processes" in out and "shared file system" in out


def test_machines_refuses_a_port_this_machine_already_uses():
    import socket

    from studio.training import machines

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        problems, _ = machines.rendezvous_problems("127.0.0.1", taken.getsockname()[1])
    assert problems and problems[0].key == "machines.port_in_use"


def test_a_sharded_preset_gets_accelerate_commands_and_its_config(tmp_path, tiny_model_dir):
    import yaml

    from studio.training import machines

    preset = tmp_path / "big.json"
    settings = tiny_settings(tiny_model_dir, "distributed_strategy=fsdp")
    presets.save_preset(settings, preset)
    lines = machines.machine_commands(preset, settings, 2, 4, "10.0.0.5", 29400, "runs/big")
    commands = [line for line in lines if line.startswith("accelerate launch")]
    assert len(commands) == 2 and "--machine_rank 1" in commands[1]
    config = yaml.safe_load((tmp_path / "big-accelerate-fsdp-2x4.yaml").read_text())
    assert (config["num_machines"], config["num_processes"], config["main_process_ip"],
            config["main_process_port"], config["distributed_type"]) == (2, 8, "10.0.0.5", 29400, "FSDP")


@pytest.mark.slow  # two training processes
def test_two_machines_on_this_host_train_one_run_with_one_adapter(tiny_model_dir, tmp_path):
    """The commands `launch.py machines` prints, run as two torchrun groups of one process each on the loopback
    address (gloo): one run folder, one adapter, two processes."""
    preset = tmp_path / "tiny.json"
    presets.save_preset(tiny_settings(tiny_model_dir), preset)
    out = subprocess.run([sys.executable, "launch.py", "machines", "--preset", str(preset), "--machines", "2",
                          "--main-address", "127.0.0.1", "--port", str(launcher.free_port()),
                          "--output-dir", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    commands = [shlex.split(line) for line in out.stdout.splitlines() if line.startswith("torchrun")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    groups = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *command[1:]], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for command in commands]
    outputs = [group.communicate(timeout=600)[0] for group in groups]
    assert [group.returncode for group in groups] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "finished" and status["processes"] == 2 and status["global_step"] == 4
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()
    assert sum("Run folder:" in output for output in outputs) == 1  # the global rank 0 alone speaks


# ---------------------------------------------------------------- the Train tab, two CPU processes

@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def loss_steps(snapshot) -> list[int]:
    plot = snapshot[2]
    if not isinstance(plot, dict) or "columns" not in plot:
        return []
    rows = [dict(zip(plot["columns"], row)) for row in plot["data"]]
    return [r["step"] for r in rows if r["series"] == "train"]


@pytest.mark.slow  # two training processes, stopped and resumed
def test_two_cpu_processes_from_the_train_tab_stop_and_resume(client, tiny_model_dir):
    from studio.training.jobs import JOB

    values = training_values(tiny_model_dir, max_steps=3000, max_length=64, num_processes=2)
    assert client.predict(**values, api_name="/start_training").startswith("Started")
    snapshot = wait_for(client, lambda s: len(loss_steps(s)) >= 2)  # the live curve, from the child's processes
    assert "<progress" in snapshot[1]
    assert client.predict(api_name="/stop_training").startswith("Stopping")
    wait_for(client, lambda s: "**stopped**" in s[0])
    run = RunFolder(JOB.run_dir)
    stopped_at = run.status()["global_step"]
    assert run.status()["processes"] == 2 and (run.path / "adapter" / "adapter_config.json").exists()
    assert "2 processes, distributed as MULTI_CPU" in run.log_file.read_text()
    assert [c.name for c in run.checkpoints()] == [f"checkpoint-{stopped_at}"]
    preset = json.loads(run.preset_file.read_text())
    preset["settings"]["training"]["max_steps"] = stopped_at + 2
    run.preset_file.write_text(json.dumps(preset))
    assert client.predict(str(run.path), api_name="/resume_training").startswith("Started")
    status = wait_for(client, lambda s: "**finished**" in s[0])[0]
    assert "Trained by 2 processes together" in status
    steps = [m["step"] for m in run.metrics() if "loss" in m]
    assert steps == list(range(1, stopped_at + 3)) and run.status()["processes"] == 2
    assert "Resuming from checkpoint-" in run.log_file.read_text() and str(run.path) in status
    assert JOB.finished_run() == str(run.path)  # handed to Chat and Export as a one-process run is
    assert run.verdict() is not None and run.drift() is not None  # measured by the main process, the other waiting


@pytest.mark.slow  # two training processes, one killed
def test_a_training_process_killed_mid_run_fails_the_run_with_its_reason(tiny_model_dir, tmp_path):
    from studio.training.jobs import TrainingJob

    job = TrainingJob()
    job.start(tiny_settings(tiny_model_dir, "num_processes=2", "max_steps=3000", "save_steps=2"), tmp_path / "run")
    deadline = time.time() + 240
    while len([m for m in job.snapshot()["metrics"] if "loss" in m]) < 3 and time.time() < deadline:
        time.sleep(0.3)
    os.kill(RunFolder(tmp_path / "run").status()["pid"], signal.SIGKILL)  # as the kernel's OOM killer would
    status = job.wait(240)
    assert status["status"] == "failed" and status["error_message"]["key"] == "error.processes_killed"
    assert "exitcode  : -9" in " ".join(status["last_lines"])
    run = RunFolder(tmp_path / "run")
    assert run.last_checkpoint() is not None and status["global_step"] >= 3  # what it saved is there to resume


@pytest.mark.slow  # two processes and one
def test_the_studios_lora_model_shards_with_fsdp2_on_cpu_processes(tiny_model_dir, tmp_path):
    """accelerate applies FSDP only on GPUs (a CPU run is plain data-parallel), so this checks the part that can run
    here: PyTorch's FSDP2 shards the studio's model with its LoRA per decoder layer over two CPU processes, trains
    the same steps as one unsharded process on the same global batch, and gathers the whole adapter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    results = {}
    for name, command in (("one", [sys.executable]),
                          ("sharded", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                       "--master_port", str(launcher.free_port())])):
        out = tmp_path / f"{name}.json"
        done = subprocess.run(command + [str(ROOT / "tests" / "fsdp_worker.py"), str(tiny_model_dir), str(out)],
                              capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        results[name] = json.loads(out.read_text())
    one, sharded = results["one"], results["sharded"]
    assert sharded["sharded_lora"] is True  # the adapter's weights really were split over the processes
    assert sharded["losses"] == pytest.approx(one["losses"], rel=1e-4)
    assert sharded["losses"][-1] < sharded["losses"][0]
    assert sharded["adapter_norms"].keys() == one["adapter_norms"].keys()
    for name, norm in one["adapter_norms"].items():
        assert sharded["adapter_norms"][name] == pytest.approx(norm, rel=1e-3), name
