"""Training on several devices from the UI. The Train tab's job calls `train_on_devices`: where the plan
(hardware.choose_devices) gives one process, the run trains in this one, as always; where it gives several, this
module starts `launch.py train` under torchrun (CPU processes, gloo) or accelerate launch (GPUs: DDP, FSDP, ZeRO) as a
supervised child and waits for it. The child writes the run folder exactly as a one-process run does (status,
metrics, log, checkpoints), so the live view, Stop, Resume and the hand-off to Chat and Export read it unchanged.

Stop is a file the child's processes look for after every step (stopping.StopFile; they agree on it through
distributed.any_process). A child that dies is reported with its last lines, and its run folder keeps everything
it saved, so the run can be resumed from its last checkpoint.
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from studio.core import presets
from studio.core.code_rewards import refusal as reward_code_refusal
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.core.stopping import StopFile
from studio.core.text import Msg
from studio.models import hardware
from .distributed import world_size
from .run_steps import RunLog, estimated_memory
from .train import run_training

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.5
LINGER_S = 30  # after the main process wrote its last status, the others get this long to end before they are ended
LAST_LINES = 8  # of the child's output, in the log of a run whose processes died
FINAL = ("finished", "stopped", "failed")
_CHILDREN: set[subprocess.Popen] = set()


def devices_for(settings: Settings, facts=None) -> dict:
    """The plan's devices for these settings on this machine: how many processes, how they share the model."""
    facts = facts or hardware.detect()
    memory = estimated_memory(settings, settings.model.model_name_or_path, facts)
    return hardware.choose_devices(facts, settings.training, memory, settings.method.finetuning_type)


def train_on_devices(settings: Settings, run_dir: Path, progress=None, stop_event=None, resume: bool = False,
                     facts=None) -> dict:
    """The job's runner: one process trains here; several train in a supervised child."""
    facts = facts or hardware.detect()
    devices = devices_for(settings, facts) if world_size() == 1 else {"processes": 1}
    if devices["processes"] <= 1:
        return run_training(settings, run_dir, progress=progress, stop_event=stop_event, resume=resume, facts=facts)
    return run_in_processes(settings, Path(run_dir), devices, facts, stop_event, resume)


def run_in_processes(settings: Settings, run_dir: Path, devices: dict, facts, stop_event=None,
                     resume: bool = False, preset: Path | None = None, overrides=(), echo=None) -> dict:
    """Train in `devices["processes"]` processes and return the run's final status, as run_training does.
    `preset` (+ `overrides`): the command line's own, so the child plans what the user left to the plan; without
    it the settings are written as given (the form's, already planned). `echo`: where the child's lines also go."""
    run = RunFolder(run_dir)
    launch_dir = run.path / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    if preset is None:
        preset = launch_dir / "preset.json"
        presets.save_preset(settings, preset)
    stop = StopFile(launch_dir / f"stop-{os.getpid()}-{time.time_ns()}")  # new for every start: none is stale
    command = child_command(settings, run, devices, facts, preset, stop.path, resume)
    command += [arg for item in overrides for arg in ("--set", item)]
    output = run.path / "processes.log"
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                             env=child_env(devices, facts), start_new_session=True)
    _CHILDREN.add(child)
    pump = threading.Thread(target=copy_lines, args=(child.stdout, output, f"$ {shlex.join(command)}", echo),
                            daemon=True)
    pump.start()
    try:
        supervise(child, run, stop_event, stop, echo)
    finally:
        _CHILDREN.discard(child)
        pump.join(timeout=10)
    return child_result(run, child.returncode, output)


def copy_lines(stream, output: Path, first: str, echo=None) -> None:
    """The child's output into processes.log (its last lines explain a death), and to `echo` (the command line)."""
    with open(output, "a", encoding="utf-8") as log:
        log.write(first + "\n")
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            log.write(line + "\n")
            log.flush()
            if echo is not None:
                echo(line)


def child_command(settings: Settings, run: RunFolder, devices: dict, facts, preset: Path, stop_file: Path,
                  resume: bool) -> list[str]:
    """torchrun for CPU processes (accelerate shards only on GPUs); accelerate launch with the plan's strategy on
    GPUs. The child is told what this server already allowed (the model's own code, the user's reward code)."""
    processes, port = devices["processes"], free_port()
    if facts.device == "cuda":
        from . import repeat

        precision = hardware.resolve_precision(facts, settings.training.precision)[0]
        config = repeat.launch_config(settings.training.gradient_accumulation_steps, settings.training.max_grad_norm,
                                      precision, processes, devices["strategy"])
        path = preset.with_name("accelerate.yaml")
        path.write_text(repeat.yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(path),
                    "--main_process_port", str(port)]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                    "--master_addr", "127.0.0.1", "--master_port", str(port)]
    command = launcher + [str(ROOT / "launch.py"), "train", "--preset", str(preset), "--output-dir", str(run.path),
                          "--stop-file", str(stop_file)]
    if resume:
        command.append("--resume")
    if settings.model.trust_remote_code:
        command.append("--trust-remote-code")
    if settings.method.reward_code_path.strip() and reward_code_refusal(settings.method.reward_code_path) is None:
        command.append("--allow-reward-code")
    return command


def child_env(devices: dict, facts) -> dict:
    env = dict(os.environ)
    if facts.device != "cuda":  # CPU processes share the cores: oversubscribed threads slow every one of them
        env["OMP_NUM_THREADS"] = str(max(1, facts.cpu_count // devices["processes"]))
    env["PYTHONUNBUFFERED"] = "1"  # its last lines reach processes.log before it dies
    return env


def free_port() -> int:
    """A port no other run on this machine is using for its rendezvous (two servers may train at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def supervise(child: subprocess.Popen, run: RunFolder, stop_event, stop: StopFile, echo=None) -> None:
    """Wait for the child; pass Stop on; end processes left behind once the main one has written its last status
    (one that waits at a barrier for a process that has gone would otherwise wait forever). On the command line
    Ctrl-C is Stop (after the current step, with a checkpoint) and a second Ctrl-C ends the processes now."""
    final_since = None
    while child.poll() is None:
        try:
            if stop_event is not None and stop_event.is_set() and not stop.is_set():
                stop.set()
            if (run.status() or {}).get("status") in FINAL:
                final_since = final_since or time.monotonic()
                if time.monotonic() - final_since > LINGER_S:
                    end(child)
            time.sleep(POLL_S)
        except KeyboardInterrupt:
            if stop.is_set():
                end(child)
                raise
            stop.set()
            if echo is not None:
                echo(str(Msg("job.stopping")))


def end(child: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the child's whole process group (torchrun and its workers), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            child.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def child_result(run: RunFolder, returncode: int, output: Path) -> dict:
    """The run's status as its main process left it; where it died before saying how the run ended, a failure
    that says so, with its last lines in the run's log (and everything it saved kept for Resume)."""
    status = run.status() or {}
    if status.get("status") in FINAL:
        return status
    lines = last_lines(output)
    code = worker_exit_code(lines, returncode)  # torchrun exits 1 whatever ended its worker; the worker's says more
    killed = code in (-signal.SIGKILL, 128 + signal.SIGKILL)
    reason = Msg("error.processes_killed" if killed else "error.processes_died", code=code)
    if "global_step" not in status and (steps := [m["step"] for m in run.metrics() if "loss" in m]):
        status["global_step"] = steps[-1]  # how far it got, for the run history
    status.update({"status": "failed", "error": f"training processes exited with code {returncode}",
                   "error_message": reason.to_json(), "advice": Msg("error.processes_log", path=str(output)),
                   "advice_key": "error.memory" if killed else "error.other", "run_dir": str(run.path),
                   "last_lines": lines})
    run.write_status(status)
    RunLog(run, echo=None)(Msg("log.processes_died", reason=reason, lines="\n".join(lines)))  # log panel, log.txt
    return status


def worker_exit_code(lines: list[str], returncode: int) -> int:
    """The exit code torchrun reports for the first worker that failed ("exitcode  : -9 (pid: ...)"), else the
    child's own."""
    for line in lines:
        if match := re.match(r"exitcode\s*:\s*(-?\d+)", line):
            return int(match.group(1))
    return returncode


def last_lines(path: Path, count: int = LAST_LINES) -> list[str]:
    """The child's last lines that say something: a traceback's frames and blank lines left out, each cut short."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    kept = [line.strip()[:300] for line in text.splitlines()
            if line.strip() and not line.startswith(("  File ", "    ")) and not line.startswith("Traceback")]
    return kept[-count:]


@atexit.register
def _end_children() -> None:
    """A server that exits takes its training processes with it, rather than leaving them to train unwatched."""
    for child in list(_CHILDREN):
        end(child, grace=5.0)
