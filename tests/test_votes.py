"""Blind A/B votes: saved in the run folder and read back after a restart, the win rate and its interval against
hand-computed values, the raters' agreement, and the votes as DPO and KTO rows."""

import json
import subprocess
import sys

import pytest

from studio.core.text import render
from studio.data import votes
from studio.data.votes import Vote

PROMPT = [{"role": "user", "content": "Who are you?"}]


def vote(verdict, order=("tuned", "base"), voter="alice", prompt=PROMPT, base="I am a model.", tuned="I am Lumen.",
         edited=None):
    return Vote(prompt, {"base": base, "tuned": tuned}, list(order), verdict, voter, "runs/r", edited)


def test_the_order_is_random_per_prompt_and_the_winner_follows_it():
    orders = {votes.blind_order() for _ in range(200)}
    assert orders == {("base", "tuned"), ("tuned", "base")}
    assert vote("A").winner == "tuned" and vote("A", order=("base", "tuned")).winner == "base"
    assert vote("B", order=("base", "tuned")).winner == "tuned" and vote("tie").winner is None


def test_wilson_interval_matches_the_hand_computed_values():
    # 7 of 10: p = 0.7, z = 1.96; centre (0.7 + z²/20) / (1 + z²/10) = 0.6445, half-width 0.2477
    low, high = votes.wilson_interval(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4) and high == pytest.approx(0.8922, abs=1e-4)
    assert votes.wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=1e-4))  # stays inside [0, 1]


def test_the_win_rate_counts_a_tie_as_half_and_leaves_both_bad_out():
    ballot = [vote("A")] * 6 + [vote("B")] * 2 + [vote("tie")] * 2 + [vote("both_bad")]
    rate = votes.win_rate(ballot)
    assert (rate.wins, rate.losses, rate.ties, rate.both_bad, rate.votes) == (6, 2, 2, 1, 11)
    assert rate.rate == pytest.approx(0.7)  # (6 + 2/2) / 10
    assert (rate.low, rate.high) == (pytest.approx(0.3968, abs=1e-4), pytest.approx(0.8922, abs=1e-4))
    text = votes.summary(ballot)
    assert "wins **70%** of 10 decided votes (with this many votes the true rate is likely between 40% and 89%" in text
    assert "胜出 **70%**" in render(text, "zh")
    assert votes.win_rate([vote("both_bad")]).rate is None


def test_agreement_between_voters_on_the_same_pair():
    other = [{"role": "user", "content": "Where are you?"}]
    ballot = [vote("A", voter="alice"), vote("B", order=("base", "tuned"), voter="bob"),  # both: tuned
              vote("A", voter="alice", prompt=other), vote("tie", voter="bob", prompt=other),  # tuned vs tie
              vote("B", voter="carol", prompt=[{"role": "user", "content": "alone"}])]
    share, shared, voters = votes.agreement(ballot)
    assert (share, shared, voters) == (0.5, 2, 3)
    assert "3 voters agree on 50% of their shared judgements (2 prompts" in votes.summary(ballot)
    assert votes.agreement([vote("A")]) == (None, 0, 1)


def test_votes_survive_a_restart_and_a_line_cut_short(tmp_path):
    path = votes.votes_file(tmp_path / "run" / "checkpoints" / "checkpoint-8")
    assert path == tmp_path / "run" / "votes.jsonl"  # a checkpoint's votes belong to its run
    path.parent.mkdir()
    votes.record_vote(vote("A", edited="I am Lumen, made by you."), path)
    votes.record_vote(vote("both_bad"), path)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"prompt": [], "answers"')  # a crash in the middle of a line
    code = (f"from studio.data import votes; v = votes.read_votes(__import__('pathlib').Path({str(path)!r})); "
            "print(len(v), v[0].edited, v[1].verdict)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "I", "am", "Lumen,", "made", "by", "you.", "both_bad"]


def test_votes_become_dpo_and_kto_rows():
    ballot = [vote("A", edited="I am Lumen, made by you."), vote("B", order=("tuned", "base")),
              vote("tie"), vote("both_bad"), vote("A", base="same", tuned="same")]
    pairs = votes.preference_rows(ballot)
    assert pairs == [
        {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "I am Lumen, made by you."}],
         "rejected": [{"role": "assistant", "content": "I am a model."}]},
        {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": "I am a model."}],
         "rejected": [{"role": "assistant", "content": "I am Lumen."}]}]  # the identical pair gives nothing
    kto = votes.kto_rows(ballot[:4])
    assert [(r["completion"][0]["content"], r["label"]) for r in kto] == [
        ("I am Lumen, made by you.", True), ("I am a model.", False), ("I am a model.", True), ("I am Lumen.", False),
        ("I am a model.", True), ("I am Lumen.", True), ("I am a model.", False), ("I am Lumen.", False)]
    json.dumps(pairs + kto)  # rows a file can hold


def test_a_vote_needs_a_pair_and_a_known_verdict():
    assert votes.vote_problem(None, "A").key == "votes.nothing_to_vote"
    comparison = votes.Comparison(PROMPT, {"base": "x", "tuned": "y"}, ("base", "tuned"))
    assert votes.vote_problem(comparison, "C").key == "votes.bad_verdict"
    assert votes.vote_problem(comparison, "tie") is None and comparison.shown("B") == "y"
