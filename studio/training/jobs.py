"""The one training job of this server process.

Training holds the machine's memory and cores, so one run at a time per process is the rule, and every browser
tab sees the same job: `JOB` is deliberately process-wide (a second tab re-attaches instead of starting another
run). The thread calls the same `run_training` as the CLI (in a child of several processes where the plan uses
several devices: studio/training/launcher.py); the UI polls `snapshot()`, which reads only the new
lines of metrics.jsonl and log.txt since the last poll.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio.core.config import Settings
from studio.core.runs import RunFolder, new_run_dir, parse_jsonl_lines
from studio.core.text import Msg, reason_of
from .launcher import train_on_devices

logger = logging.getLogger(__name__)
CONFIRM_WINDOW_S = 60  # a second Stop from another session within this time confirms the first


@dataclass
class _Tail:
    """Incremental reader: remembers the byte offset so each poll reads (and parses) only what was appended."""
    path: Path
    parse: bool = False  # JSON lines -> dicts, parsed once
    offset: int = 0
    lines: list = field(default_factory=list)
    inode: int | None = None

    def read(self) -> list:
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                if info.st_ino != self.inode or info.st_size < self.offset:
                    # Replaced (a resumed run rewrites metrics.jsonl without the steps after its checkpoint) or
                    # truncated: read it again from the start, or the plot would keep steps that no longer exist.
                    self.inode, self.offset, self.lines = info.st_ino, 0, []
                f.seek(self.offset)
                chunk = f.read()
        except OSError:  # not written yet, or its folder could not be made
            return self.lines
        complete = chunk.rfind(b"\n") + 1  # leave a half-written last line for the next poll
        self.offset += complete
        new = [line for line in chunk[:complete].decode("utf-8", errors="replace").splitlines() if line.strip()]
        if self.parse:
            new = parse_jsonl_lines(new)
        self.lines.extend(new)
        return self.lines


class TrainingJob:
    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.run_dir: Path | None = None
        self.result: dict | None = None
        self._metrics: _Tail | None = None
        self._log: _Tail | None = None
        self.owner = ""  # the browser session that started the run (empty: the command line or a test)
        self._stop_asked: dict[str, float] = {}  # another session's first Stop: when it was pressed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, settings: Settings, run_dir: Path | None = None, resume: bool = False,
              runner=None, owner: str = "") -> tuple[bool, str]:
        """Start a run unless one is already going; without `run_dir`, in a new run folder, made only once the run
        is sure to start. `runner` is injectable for tests."""
        with self._lock:
            if self.running:
                return False, Msg("job.busy", name=self.run_dir.name)
            run_dir = run_dir or new_run_dir()
            self._stop = threading.Event()
            self.run_dir, self.result, self.owner, self._stop_asked = run_dir, None, owner or "", {}
            run = RunFolder(run_dir)
            self._metrics, self._log = _Tail(run.metrics_file, parse=True), _Tail(run.events_file, parse=True)
            target = runner or train_on_devices  # one process here, or several in a child (launcher.py)

            def work():
                try:
                    self.result = target(settings, run_dir, progress=None, stop_event=self._stop, resume=resume)
                except BaseException as err:  # run_training reports failures itself; this is the last guard
                    self.result = {"status": "failed", "error": f"{type(err).__name__}: {err}",
                                   "error_message": reason_of(err).to_json()}

            self._thread = threading.Thread(target=work, name="studio-training", daemon=True)
            self._thread.start()
            return True, Msg("job.started", name=run_dir.name)

    def stop(self, session: str = "", now: float | None = None) -> str:
        """Stop the run. From a browser session other than the one that started it, the first Stop only asks for
        confirmation (another person may be training on this server) and a second within CONFIRM_WINDOW_S stops
        it; that is logged."""
        if not self.running:
            return Msg("job.idle")
        now = time.monotonic() if now is None else now
        if session and self.owner and session != self.owner:
            asked = self._stop_asked.get(session)
            if asked is None or now - asked > CONFIRM_WINDOW_S:
                self._stop_asked[session] = now
                return Msg("job.stop_confirm", name=self.run_dir.name, seconds=CONFIRM_WINDOW_S)
            logger.warning("run %s stopped by session %s (started by session %s)", self.run_dir.name, session[:16],
                           self.owner[:16])
        self._stop.set()
        return Msg("job.stopping")

    def finished_run(self) -> str | None:
        """The run this server trained last, once it has finished or was stopped with weights saved: the run the
        Chat and Export tabs offer first, so the user goes from training to trying it without picking a folder."""
        if self.running or not self.result or self.result.get("status") not in ("finished", "stopped"):
            return None
        return str(self.run_dir) if self.result.get("output") else None

    def wait(self, timeout: float | None = None) -> dict | None:
        with self._lock:  # start() names the run before it starts its thread: never join one not yet started
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.result

    def snapshot(self) -> dict:
        if self.run_dir is None:
            return {"status": "idle", "metrics": [], "log": []}
        metrics = self._metrics.read()
        # No status file: e.g. the run folder could not be made, and the result says why.
        status = RunFolder(self.run_dir).status() or dict(self.result or {})
        if self.running:
            status["status"] = "stopping" if self._stop.is_set() else "running"
        log = self._log.read()
        return {**status, "run_dir": str(self.run_dir), "metrics": metrics, "log": log[-40:], "log_count": len(log)}


JOB = TrainingJob()
