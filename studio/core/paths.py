"""Which files the web UI may read and write.

Whoever can reach the page can type a path, so the server reads only from uploads, the studio home, the runs
folder, the project's assets and presets, and folders the user lists with `--data-dir`; it writes only under the
runs folder and the studio home. The command line is not confined: whoever runs it already has the shell.
`FOLDERS` is process-wide on purpose (one server, one set of folders); `launch_app` switches it on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .code_rewards import refusal as code_refusal
from .config import GEMMA3_MODEL, STARTER_MODEL
from .runs import RunFolder, runs_root, studio_home
from .sources import DEMO, HUB, VOTES, VOTES_PREFIX, DataSource, parse_source
from .text import Msg

PROJECT = Path(__file__).resolve().parents[2]


def prepare_upload_dir() -> Msg | None:
    """Uploads go to a folder of the studio's own (studio home/uploads, mode 0700) unless GRADIO_TEMP_DIR names
    one; either must be a real folder of this user that nobody else can write to. Otherwise the confinement's
    "uploads" root could be a link to / or a folder another user fills. Returns why the studio must not start."""
    chosen = os.environ.get("GRADIO_TEMP_DIR")
    folder = Path(chosen) if chosen else studio_home() / "uploads"
    if not chosen and not folder.is_symlink():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return upload_dir_refusal(folder)


def upload_dir_refusal(folder: Path) -> Msg | None:
    if folder.is_symlink() or not folder.is_dir():
        return Msg("path.upload_dir", folder=str(folder), why=Msg("path.upload_link"))
    info = folder.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return Msg("path.upload_dir", folder=str(folder), why=Msg("path.upload_owner"))
    if info.st_mode & 0o022:
        return Msg("path.upload_dir", folder=str(folder), why=Msg("path.upload_writable"))
    return None


def upload_dir() -> Path:
    # Gradio's own rule (gradio.utils.get_upload_folder), repeated to keep gradio out of this module's imports.
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


@dataclass
class Folders:
    data_dirs: list[Path] = field(default_factory=list)
    confined: bool = False

    def readable(self) -> list[Path]:
        return [upload_dir(), PROJECT / "assets", PROJECT / "presets", *self.writable(), *self.data_dirs]

    def writable(self) -> list[Path]:
        return [runs_root(), studio_home()]

    def refusal(self, path: str | Path, write: bool = False) -> Msg | None:
        """None when the UI may use `path`, else the message that says which folders it may use."""
        if not isinstance(path, (str, Path)) or "\x00" in str(path) or len(str(path)) > MAX_PATH_CHARS:
            return Msg("path.not_a_path")  # a NUL byte or a 200 KB "path" is no file name on any system
        if not self.confined:
            return None
        roots = self.writable() if write else self.readable()
        if any(inside(path, root) for root in roots):
            return None
        listed = ", ".join(str(root.resolve()) for root in roots)
        return Msg("path.outside_write" if write else "path.outside_read", path=str(path), folders=listed)


def inside(path: str | Path, root: Path) -> bool:
    """After resolving symlinks and '..', so neither a link nor '../../etc' leads out."""
    try:
        real, base = os.path.realpath(Path(path).expanduser()), os.path.realpath(root)
    except (OSError, ValueError):  # a name too long for the system, or one it cannot represent
        return False
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


FOLDERS = Folders()
MAX_PATH_CHARS = 4096  # Linux's PATH_MAX


def source_refusal(value: DataSource | str) -> Msg | None:
    """A dataset or model box: the built-in names and hub ids pass; a path must lie in a readable folder."""
    if isinstance(value, DataSource):  # parsed at the boundary already
        source, value = value, value.text.strip()
    else:
        value = (value or "").strip()
        source = None
    if value in (STARTER_MODEL, GEMMA3_MODEL, ""):
        return None
    source = source or parse_source(value)  # a model's hub id passes as a dataset's does
    if source.kind in (DEMO, HUB):
        return None
    if source.kind == VOTES:  # a run's votes: the run folder must be the studio's
        return run_refusal(value[len(VOTES_PREFIX):])
    return FOLDERS.refusal(value)


def settings_refusals(settings) -> list[tuple[str, str]]:
    """The settings' data files and model folder, as problems (where, message) beside the other settings problems."""
    places = [("dataset_path", settings.data.dataset_path), ("model_name_or_path", settings.model.model_name_or_path),
              *(("extra_datasets", part.dataset_path) for part in settings.data.extra_datasets),
              ("drift_dataset_path", settings.training.drift_dataset_path)]
    problems = [(where, refusal) for where, value in places if (refusal := source_refusal(value))]
    code = settings.method.reward_code_path.strip()  # GRPO's own rewards: imported, so code runs
    if code and (refusal := code_refusal(code) or FOLDERS.refusal(code)):
        problems.append(("reward_code_path", refusal))
    start = settings.method.adapter_name_or_path.strip()  # a run folder whose adapter_config.json is read
    if start and (refusal := FOLDERS.refusal(start)):
        problems.append(("adapter_name_or_path", refusal))
    return problems


def run_refusal(run_dir: str | Path) -> Msg | None:
    """Run folders are read and written (exports go inside them): they must lie under the runs folder or home."""
    return FOLDERS.refusal(run_dir, write=True) if run_dir else None


def link_out_of(folder: Path, limit: int = 100_000) -> Path | None:
    """The first entry under `folder` (links not followed) that is a link leading out of it, if any: an `adapter`
    link to /etc would otherwise be read as the run's weights."""
    base = os.path.realpath(folder)
    seen = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            seen += 1
            if path.is_symlink() and not inside(path, Path(base)):
                return path
            if seen > limit:  # a run holds hundreds of files; this many is no run
                return path
    return None


def run_model_refusal(run_dir: str | Path) -> Msg | None:
    """A run a request names, and the base model its preset names (a file the request points at): both must be
    inside the studio's folders before Chat or Export loads anything, and nothing in the run may link out of it."""
    if not isinstance(run_dir, (str, Path)):
        return Msg("path.not_a_path")
    if refusal := run_refusal(run_dir):
        return refusal
    run = RunFolder.of(run_dir)[0]
    try:
        link = link_out_of(run.path) if FOLDERS.confined and Path(run_dir).is_dir() else None
    except OSError:
        link = None
    if link is not None:
        return Msg("path.link_out", name=str(link.name)[:200])
    try:
        base = run.base_model()
    except Exception:  # noqa: BLE001 - not a run (or no preset): the caller says so in its own words
        return None
    return source_refusal(base)


def offered(path: str | Path) -> str:
    """A copy of a file the page offers for download, in a fresh folder under the upload folder (which Gradio
    serves): the run folders themselves are not served, so their logs cannot be fetched by path. Copies older
    than STALE_S go at the next start, and Gradio's cache cleaning takes them within a day."""
    folder = Path(tempfile.mkdtemp(prefix=PRESET_DOWNLOAD, dir=offered_dir()))
    target = folder / Path(path).name
    shutil.copyfile(path, target)
    return str(target)


MAX_OFFERED_BYTES = 2 * 1024**3  # one download copy; a larger export stays where it was written (its path is shown)


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def offered_archive(folder: str | Path) -> str:
    """A .zip of a folder the page offers for download, named after it. Stored, not compressed: model weights
    barely compress, and storing is as fast as copying."""
    folder = Path(folder)
    target = Path(tempfile.mkdtemp(prefix=PRESET_DOWNLOAD, dir=offered_dir())) / f"{folder.name}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            archive.write(file, f"{folder.name}/{file.relative_to(folder).as_posix()}")
    return str(target)


def offer_downloads(items: list[Path]) -> tuple[list[str], list[Msg]]:
    """Download copies of exported files and folders (a folder as a .zip), and for each one too large to copy
    (over MAX_OFFERED_BYTES) where it lies instead."""
    copies, kept = [], []
    for item in items:
        if size_of(item) > MAX_OFFERED_BYTES:
            kept.append(Msg("export.too_large_to_offer", name=item.name, path=str(item),
                            limit=MAX_OFFERED_BYTES // 1024**3))
        else:
            copies.append(offered_archive(item) if item.is_dir() else offered(item))
    return copies, kept


def offered_dir() -> Path:
    folder = upload_dir() / "offered"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------- housekeeping: caches and leftovers stay bounded

PRESET_DOWNLOAD = "studio-download-"  # prefix of the folders that hold a copy of a file the user downloads
STALE_S = 3600  # a temp folder this old belongs to no running write (exports and conversions take minutes)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def prune_lru(root: Path, limit_bytes: int, keep: Path | None = None) -> list[Path]:
    """Delete the least recently used entries of a cache folder until it fits in `limit_bytes`. Entries are touched
    when read, so mtime is the last use. `keep` (the entry just written) is never deleted."""

    entries = sorted((p for p in root.iterdir() if p.is_dir() and ".tmp" not in p.name), key=lambda p: p.stat().st_mtime)
    sizes = {p: folder_bytes(p) for p in entries}
    total, removed = sum(sizes.values()), []
    for entry in entries:
        if total <= limit_bytes:
            break
        if keep is not None and entry == keep:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        total -= sizes[entry]
        removed.append(entry)
    return removed


def clean_stale_temp(now: float | None = None) -> list[Path]:
    """Leftovers of writes a crash interrupted: staging folders of exports and model conversions, half-written
    cache entries and '.tmp' files, and preset downloads. Only those older than STALE_S, so a write that another
    process is doing right now is left alone."""

    now = now or time.time()
    home, runs = studio_home(), runs_root()
    patterns = [(home / "models", ".converting-*"), (home / "models", ".download-*"),
                (upload_dir() / "offered", PRESET_DOWNLOAD + "*"),
                (home / "cache" / "tokenized", "*.tmp*"), (runs, "*/export/.*-*"), (runs, "*/*.tmp")]
    removed = []
    for folder, pattern in patterns:
        for path in folder.glob(pattern) if folder.is_dir() else []:
            if now - path.lstat().st_mtime > STALE_S:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
    return removed

