"""Blind A/B votes from the Chat tab: the pair shown in a random order, the user's verdict saved in the run
folder (votes.jsonl, one line per vote, appended and flushed at once, so a reload or a restart loses nothing),
the tuned model's win rate with its confidence interval, the raters' agreement, and the votes as preference
data (TRL's prompt / chosen / rejected, and KTO's prompt / completion / label).

No torch here: the Chat tab, `launch.py chat` and the Data tab read votes without a model.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from studio.core.text import Msg

VERDICTS = ("A", "B", "tie", "both_bad")
SIDES = ("base", "tuned")
Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
_WRITE = threading.Lock()  # browser sessions vote at the same time; each line is written whole


@dataclass
class Comparison:
    """One blind pair as shown: which model wrote the answer shown as A, and which as B."""
    prompt: list[dict]  # the conversation up to the answers (system and user messages)
    answers: dict  # {"base": text, "tuned": text}
    order: tuple[str, str]  # (the side shown as A, the side shown as B)

    def shown(self, letter: str) -> str:
        return self.answers[self.side(letter)]

    def side(self, letter: str) -> str:
        return self.order["AB".index(letter)]


def blind_order(rng: random.Random | None = None) -> tuple[str, str]:
    """Base and tuned in a random order: the order is drawn anew for every prompt."""
    return tuple((rng or random).sample(SIDES, 2))


@dataclass
class Vote:
    prompt: list[dict]
    answers: dict  # {"base": text, "tuned": text}: what each model wrote
    order: list  # the sides shown as A and B
    verdict: str  # "A", "B", "tie" or "both_bad"
    voter: str
    run: str  # the tuned side: a run folder or one of its checkpoints
    edited: str | None = None  # the better answer as the voter corrected it (the chosen one in preference data)
    reference: str = ""  # what the "base" side was: "" for the base model, else another run on the same base
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def winner(self) -> str | None:
        """'base' or 'tuned' where one was preferred; None for a tie or both bad."""
        return self.order["AB".index(self.verdict)] if self.verdict in ("A", "B") else None


def vote_problem(comparison: Comparison | None, verdict: str) -> Msg | None:
    if comparison is None:
        return Msg("votes.nothing_to_vote")
    if verdict not in VERDICTS:
        return Msg("votes.bad_verdict", verdict=str(verdict)[:40], choices=", ".join(VERDICTS))
    return None


def votes_file(run_dir: str | Path) -> Path:
    """votes.jsonl of the run a run folder or one of its checkpoints (runs/x/checkpoints/checkpoint-N) belongs to."""
    from studio.core.runs import RunFolder  # deferred: runs reads settings, which this module does not need

    return RunFolder.of(run_dir)[0].path / "votes.jsonl"


def record_vote(vote: Vote, path: Path) -> None:
    """Append one line and flush it to disk before answering: the vote survives a crash right after."""
    line = json.dumps(asdict(vote), ensure_ascii=False) + "\n"
    with _WRITE, open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_votes(path: Path) -> list[Vote]:
    """Every whole vote in the file; a line cut short by a crash, or not a vote, is skipped."""
    if not path.exists():
        return []
    votes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
            vote = Vote(**data)
        except (json.JSONDecodeError, TypeError):
            continue
        if vote.verdict in VERDICTS and list(vote.order) in (list(SIDES), list(reversed(SIDES))):
            votes.append(vote)
    return votes


# ---------------------------------------------------------------- what the votes say

@dataclass
class WinRate:
    wins: int
    losses: int
    ties: int
    both_bad: int
    rate: float | None  # the tuned model's share of the decided votes, a tie counting half; None without any
    low: float | None  # Wilson score 95% interval of that share
    high: float | None

    @property
    def votes(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad


def wilson_interval(successes: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval: unlike the plain p ± z·se it stays inside [0, 1] and is honest for few votes."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate(votes: list[Vote]) -> WinRate:
    """The tuned model against the base: wins + ties/2 out of wins + losses + ties. "Both bad" says nothing
    about which is better, so it is counted but left out of the rate."""
    wins = sum(v.winner == "tuned" for v in votes)
    losses = sum(v.winner == "base" for v in votes)
    ties = sum(v.verdict == "tie" for v in votes)
    both_bad = sum(v.verdict == "both_bad" for v in votes)
    decided = wins + losses + ties
    if not decided:
        return WinRate(wins, losses, ties, both_bad, None, None, None)
    low, high = wilson_interval(wins + ties / 2, decided)
    return WinRate(wins, losses, ties, both_bad, (wins + ties / 2) / decided, low, high)


def _preference(vote: Vote) -> str:
    """What a vote says, independent of the order shown: 'tuned', 'base', 'tie' or 'both_bad'."""
    return vote.winner or vote.verdict


def agreement(votes: list[Vote]) -> tuple[float | None, int, int]:
    """(share of voter pairs that agree, prompts voted by two or more voters, voters): raw pairwise agreement on
    the same prompt and the same two answers, each voter's latest vote counting."""
    latest: dict[tuple, dict[str, str]] = {}
    for vote in votes:
        item = (json.dumps(vote.prompt, sort_keys=True, ensure_ascii=False), vote.answers["base"], vote.answers["tuned"])
        latest.setdefault(item, {})[vote.voter] = _preference(vote)
    shared = [by_voter for by_voter in latest.values() if len(by_voter) > 1]
    pairs = [(a == b) for by_voter in shared for a, b in combinations(by_voter.values(), 2)]
    voters = len({v.voter for v in votes})
    return (sum(pairs) / len(pairs) if pairs else None), len(shared), voters


def against(votes: list[Vote], reference: str = "") -> list[Vote]:
    """The votes of one comparison: the tuned run against its base model (""), or against another run."""
    return [v for v in votes if v.reference == (reference or "")]


def summary(votes: list[Vote], reference: str = "") -> Msg:
    """The win rate in words, with its interval and what it rests on; the agreement where several voted.
    `reference`: the other run the votes compared with (the base model where empty)."""
    votes = against(votes, reference)
    rate = win_rate(votes)
    if rate.rate is None:
        return Msg("votes.none_decided", votes=rate.votes, both_bad=rate.both_bad)
    parts = [Msg("votes.win_rate", rate=rate.rate, low=rate.low, high=rate.high, decided=rate.wins + rate.losses
                 + rate.ties, wins=rate.wins, losses=rate.losses, ties=rate.ties, both_bad=rate.both_bad)]
    share, shared, voters = agreement(votes)
    if voters > 1:
        parts.append(Msg("votes.agreement", share=share, prompts=shared, voters=voters) if share is not None
                     else Msg("votes.no_overlap", voters=voters))
    if reference:
        return Msg("votes.against", run=Path(reference).name, summary=Msg("list", items=parts))
    return Msg("list", items=parts)


# ---------------------------------------------------------------- votes as preference data

def preference_rows(votes: list[Vote]) -> list[dict]:
    """TRL's conversational preference rows: a preferred answer (as the voter edited it, if they did) against
    the other. Ties and "both bad" name no better answer and give no pair."""
    rows = []
    for vote in votes:
        if vote.winner is None:
            continue
        loser = "base" if vote.winner == "tuned" else "tuned"
        chosen = vote.edited if vote.edited else vote.answers[vote.winner]
        if chosen.strip() == vote.answers[loser].strip():
            continue  # the same answer on both sides teaches nothing
        rows.append({"prompt": vote.prompt, "chosen": [{"role": "assistant", "content": chosen}],
                     "rejected": [{"role": "assistant", "content": vote.answers[loser]}]})
    return rows


def kto_rows(votes: list[Vote]) -> list[dict]:
    """KTO's unpaired rows: each answer marked desirable or not. A win marks the winner good and the other bad;
    a tie marks both good; "both bad" marks both bad."""
    rows = []
    for vote in votes:
        labels = {"tie": {"base": True, "tuned": True}, "both_bad": {"base": False, "tuned": False}}.get(
            vote.verdict, {vote.winner: True, ("base" if vote.winner == "tuned" else "tuned"): False})
        for side, good in labels.items():
            text = vote.edited if good and vote.edited and side == vote.winner else vote.answers[side]
            rows.append({"prompt": vote.prompt, "completion": [{"role": "assistant", "content": text}], "label": good})
    return rows
