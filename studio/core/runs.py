"""A run folder: its layout, and every read and write of it.

    runs/<name>/
      preset.json    settings as a reusable preset      plan.json     device, precision, checkpointing + why
      data/{train,validation,test}.jsonl                 metrics.jsonl one JSON object per log / eval
      status.json    running | finished | stopped | failed, with final figures
      log.txt        progress lines and, on failure, the full traceback; events.jsonl the same as messages
      adapter/ or model/   the result; checkpoints/ for resume; export/ what the Export tab wrote
      evaluation.json      the Chat tab's held-out scores

Training writes it (studio/training/train.py); the job, the history, Chat, Evaluate and Export read it through here, so
a file's name and format live in one place. Light imports: the UI lists runs on start-up.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

from .presets import load_preset
from .text import Msg

SPLITS = ("train", "validation", "test")
TAIL_BYTES = 64_000  # the end of a growing file read for its last rows


class NotARun(ValueError):
    """A folder without a run's preset; the message names it."""


def studio_home() -> Path:
    return Path(os.environ.get("STUDIO_HOME", Path.home() / ".cache" / "fine-tuning-studio"))


def runs_root() -> Path:
    return Path(os.environ.get("STUDIO_RUNS", "runs"))


def new_run_dir(root: Path | None = None, name: str | None = None) -> Path:
    root = root or runs_root()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = root / (name or f"run-{stamp}")
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{name or f'run-{stamp}'}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


# ---------------------------------------------------------------- files written whole or not at all

def write_file(path: Path, content: str | bytes) -> None:
    """`path` written whole or not at all, never through a link: the text goes into a new file beside it (created
    exclusively, so a link planted under a guessable temporary name is never followed) that then replaces the
    entry at `path`, a link there included, never what a link there points to."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide an export from the user's other tools
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value) -> None:
    write_file(path, json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Written whole or not at all: a reader (or a crash) never sees half a split or half a metrics log."""
    write_file(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def parse_jsonl_lines(lines) -> list[dict]:
    """Skip lines that do not parse: a killed run can leave half a line behind."""
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return parse_jsonl_lines(line for line in f if line.strip())


def read_json(path: Path) -> dict | None:
    """None for a missing or half-written file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------- the folder

class RunFolder:
    """One run's folder. Reads never raise for a missing file: a run may be looked at while it starts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of(cls, path: str | Path) -> tuple["RunFolder", Path | None]:
        """(the run, the checkpoint) for a run folder or one of its checkpoints (a checkpoint is trained weights
        of its own, with the run's settings)."""
        path = Path(path)
        if path.parent.name == "checkpoints":
            return cls(path.parent.parent), path
        return cls(path), None

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # Paths, one place for each name.
    preset_file = property(lambda self: self.path / "preset.json")
    plan_file = property(lambda self: self.path / "plan.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    events_file = property(lambda self: self.path / "events.jsonl")
    log_file = property(lambda self: self.path / "log.txt")
    evaluation_file = property(lambda self: self.path / "evaluation.json")
    mix_file = property(lambda self: self.path / "data" / "mix.json")  # several files: which row came from which
    drift_file = property(lambda self: self.path / "drift.json")  # the general-ability check (studio/chat/drift.py)
    verdict_file = property(lambda self: self.path / "verdict.json")  # did it learn? (studio/chat/verdict.py)
    completions_file = property(lambda self: self.path / "completions.jsonl")  # GRPO: sampled answers, rewards
    data_dir = property(lambda self: self.path / "data")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    best_dir = property(lambda self: self.path / "best")  # the trained weights at the lowest validation loss
    export_dir = property(lambda self: self.path / "export")
    adapter_dir = property(lambda self: self.path / "adapter")  # the result of a LoRA / QLoRA run
    model_dir = property(lambda self: self.path / "model")  # the result of a full / freeze run

    def split_file(self, split: str) -> Path:
        return self.data_dir / f"{split}.jsonl"

    def output_dir(self, method: str) -> Path:
        """Where training saves its result: the adapter of a LoRA / QLoRA run, the weights of a full / freeze one."""
        return self.adapter_dir if method in ("lora", "qlora") else self.model_dir

    # ------------------------------------------------ reads
    def has_preset(self) -> bool:
        return self.preset_file.exists()

    def preset(self) -> dict | None:
        return read_json(self.preset_file)

    def settings(self):
        """The settings the run was started with, or None when its preset is missing or invalid."""
        settings, _, problems = load_preset(self.preset_file)
        return None if problems else settings

    def base_model(self) -> str:
        """The base model as the user named it ('starter', a folder, a hub id)."""
        preset = self.preset()
        if preset is None:
            raise NotARun(Msg("export.not_run", run=str(self.path)))
        return preset["settings"]["model"]["model_name_or_path"]

    def status(self) -> dict:
        return read_json(self.status_file) or {}

    def plan(self) -> dict | None:
        return read_json(self.plan_file)

    def evaluation(self) -> dict | None:
        return read_json(self.evaluation_file)

    def mix(self) -> dict | None:
        return read_json(self.mix_file)

    def drift(self) -> dict | None:
        return read_json(self.drift_file)

    def verdict(self) -> dict | None:
        return read_json(self.verdict_file)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file) if self.metrics_file.exists() else []

    def completions(self, last: int = 8) -> list[dict]:
        """A GRPO run's last sampled answers with their rewards (the file's tail only: it grows every step)."""
        if not self.completions_file.exists():
            return []
        with open(self.completions_file, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - TAIL_BYTES))
            lines = f.read().decode("utf-8", errors="ignore").splitlines()
        lines = lines[1:] if size > TAIL_BYTES else lines  # the first line read may be cut
        rows = []
        for line in lines[-last:]:
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written
                continue
        return rows

    def split(self, split: str) -> list[dict]:
        path = self.split_file(split)
        return read_jsonl(path) if path.exists() else []

    def split_rows(self, split: str) -> int:
        path = self.split_file(split)
        if not path.exists():
            return 0
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints, oldest first. Trainer writes trainer_state.json last, so a process killed while
        saving leaves a folder without it, which is skipped."""
        complete = [p for p in self.checkpoints_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        return sorted(complete, key=lambda p: int(p.name.rsplit("-", 1)[-1]))

    def last_checkpoint(self) -> Path | None:
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None

    def trained_weights(self) -> tuple[str, Path] | None:
        """('adapter', folder) for LoRA / QLoRA runs, ('model', folder) for full / freeze runs, None before."""
        if (self.adapter_dir / "adapter_config.json").exists():
            return "adapter", self.adapter_dir
        if (self.model_dir / "config.json").exists():
            return "model", self.model_dir
        return None

    # ------------------------------------------------ writes
    def write_preset(self, preset: dict) -> None:
        write_json(self.preset_file, preset)

    @property
    def stop_file(self) -> Path:
        """Its appearance stops the run after the current step (studio/stopping.StopFile)."""
        return self.path / "stop.request"

    def write_plan(self, plan: dict) -> None:
        write_json(self.plan_file, plan)

    def write_status(self, status: dict) -> None:
        write_json(self.status_file, status)

    def write_evaluation(self, result: dict) -> None:
        write_json(self.evaluation_file, result)  # atomic: the run history may read it at any moment

    def write_splits(self, splits: dict[str, list[dict]]) -> None:
        self.data_dir.mkdir(exist_ok=True)
        for name, rows in splits.items():
            write_jsonl(self.split_file(name), rows)
        self.metrics_file.touch()

    def write_mix(self, record: dict) -> None:
        self.data_dir.mkdir(exist_ok=True)
        write_json(self.mix_file, record)

    def write_drift(self, report: dict) -> None:
        write_json(self.drift_file, report)

    def write_verdict(self, report: dict) -> None:
        write_json(self.verdict_file, report)

    def trim_metrics(self, step: int) -> None:
        """Drop log lines after the checkpoint a run resumes from; they will be logged again."""
        write_jsonl(self.metrics_file, [row for row in self.metrics() if row.get("step", 0) <= step])

    # ------------------------------------------------ state
    def summary(self) -> dict | None:
        """The status with what a list of runs shows: 'interrupted' for a running run whose process is gone,
        the held-out scores, the name and folder. None for a folder that is not a run."""
        status = read_json(self.status_file)
        if status is None:
            return None
        if status.get("status") == "running" and not process_alive(status):
            status["status"] = "interrupted"
        scores = self.evaluation()
        if scores and all(side in scores for side in ("base", "tuned")):
            status["evaluation"] = {side: scores[side] for side in ("base", "tuned")}
        return {**status, "name": self.name, "run_dir": str(self.path)}


def list_runs(root: Path | None = None) -> list[dict]:
    """Run folders, newest first, with their status (see RunFolder.summary)."""
    root = root or runs_root()
    files = sorted(root.glob("*/status.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [s for s in (RunFolder(f.parent).summary() for f in files) if s is not None]


# ---------------------------------------------------------------- is the run's process still there?

def process_identity(pid: int | None = None) -> str | None:
    """boot id + pid + the process's start time (Linux /proc): a pid alone is reused after a restart, and a
    container restart even gives the studio the same pid, so 'running' would never turn into 'interrupted'."""
    pid = pid or os.getpid()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start_ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces
    return f"{boot}:{pid}:{start_ticks}"


def process_alive(status: dict) -> bool:
    pid = status.get("pid")
    if not isinstance(pid, int):
        return False
    if status.get("process"):  # recorded where /proc exists: the same process, not just the same number
        return process_identity(pid) == status["process"]
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
