"""Versions of a data source: what a repair (studio/plan/repairs.py) or the data workshop makes, never written over
the user's file. Each version is a JSON Lines file of conversations (the studio's messages format, which every
reader takes) under the studio home, with a line in its source's `versions.json`: its number, its parent, what
changed, the row counts and the file's sha256. A run trained on a version records that hash (plan.json)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from studio.core.runs import studio_home

INDEX = "versions.json"


@dataclass
class Version:
    number: int
    path: str
    source: str  # the user's file (or the demo) the line of versions starts from
    parent: str  # the file this version was made from
    sha256: str
    rows: int
    changes: dict = field(default_factory=dict)  # {repair: rows changed or dropped}
    made: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def name(self) -> str:
        return f"{Path(self.source).name} v{self.number}"


def versions_root() -> Path:
    return studio_home() / "data_versions"


def folder_for(source: str) -> Path:
    """One folder per source file: its name and a short hash of its full path (two files of one name apart)."""
    stem = re.sub(r"[^\w.-]+", "_", Path(source).stem)[:60] or "data"
    return versions_root() / f"{stem}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_versions(source: str) -> list[Version]:
    try:
        found = json.loads((folder_for(source) / INDEX).read_text(encoding="utf-8"))
        return [Version(**v) for v in found]
    except (OSError, ValueError, TypeError):
        return []


def version_of(path: str | Path) -> Version | None:
    """The version a data file is, or None for a file that is no version (the user's own)."""
    path = Path(path)
    if versions_root() not in path.resolve().parents:
        return None
    for version in _index_of(path.parent):
        if Path(version.path) == path or Path(version.path).resolve() == path.resolve():
            return version
    return None


def _index_of(folder: Path) -> list[Version]:
    try:
        return [Version(**v) for v in json.loads((folder / INDEX).read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        return []


def save_version(source: str, parent: str, records: list[dict], changes: dict) -> Version:
    """Write the records as the source's next version (atomically: a half-written file never appears)."""
    folder = folder_for(source)
    folder.mkdir(parents=True, exist_ok=True)
    known = _index_of(folder)
    number = max((v.number for v in known), default=0) + 1
    path = folder / f"v{number}.jsonl"
    handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    version = Version(number, str(path), str(source), str(parent), file_sha256(path), len(records), dict(changes))
    index = folder / INDEX
    handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        json.dump([asdict(v) for v in [*known, version]], f, ensure_ascii=False, indent=1)
    os.replace(tmp, index)
    return version


def source_of(path: str) -> str:
    """The user's file a path's line of versions starts from (the path itself when it is no version)."""
    version = version_of(path) if path else None
    return version.source if version is not None else path
