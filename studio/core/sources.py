"""What a dataset box's text names, parsed in one place: the built-in demo, a file, a hub dataset id, or the blind
votes of a run (`votes:<run folder>`). Every reader, the folder check, the report and the preference loader ask
`parse_source` instead of looking at the text themselves. Light: no file is read here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .text import Msg

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEMO_PATH = ASSETS / "demo" / "identity.jsonl"
VOTES_PREFIX = "votes:"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

DEMO_DATA = "demo"  # the dataset box's name of the built-in demo (assets/demo/identity.jsonl)
DEMO, FILE, HUB, VOTES = "demo", "file", "hub", "votes"  # the kinds of source


@dataclass(frozen=True)
class DataSource:
    kind: str  # DEMO, FILE, HUB or VOTES
    text: str  # as the settings hold it

    @property
    def path(self) -> Path | None:
        """The file to read: the demo's, the user's; None for a hub id or a run's votes."""
        if self.kind == DEMO:
            return DEMO_PATH
        return Path(self.text).expanduser() if self.kind == FILE else None

    @property
    def run(self) -> Path | None:
        """The run whose votes these are."""
        return Path(self.text[len(VOTES_PREFIX):]) if self.kind == VOTES else None

    def label(self) -> str | Msg:
        """How the source is named to the reader: the file's name, "my votes on run X", or the hub id."""
        if self.kind == VOTES:
            return Msg("pref.votes_of", run=self.run.name)
        return self.path.name if self.path is not None else self.text


def parse_source(text: str) -> DataSource:
    """The source a dataset box names. A hub id is `owner/name` that is not also a local path."""
    text = text or ""
    if text == DEMO_DATA:
        return DataSource(DEMO, text)
    if text.startswith(VOTES_PREFIX):
        return DataSource(VOTES, text)
    if HUB_ID.match(text) and not Path(text).expanduser().exists():
        return DataSource(HUB, text)
    return DataSource(FILE, text)


def as_source(value: DataSource | str) -> DataSource:
    """A source parsed at the boundary passes inward as it is; text (a caller outside) is parsed here, once."""
    return value if isinstance(value, DataSource) else parse_source(value)


def votes_source(run_dir: str | Path) -> str:
    """The dataset box's text that names a run's blind votes: what the Data tab offers as "my votes on run X"."""
    return VOTES_PREFIX + str(run_dir)
