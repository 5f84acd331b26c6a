"""Blind votes (Chat tab): the pair shown as A and B, the vote saved in the run folder with the voter's
corrections, the win rate so far, and the switch between the named and the blind view."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio.core.paths import run_refusal
from studio.data import votes
from .named import Outputs
from .text import lang, render, t, tr


def layout() -> SimpleNamespace:
    """The vote buttons, the voter's name and the boxes to correct an answer: shown while blind is on."""
    box = SimpleNamespace()
    with gr.Column(visible=False) as box.column:
        with gr.Row():
            box.buttons = {verdict: gr.Button(t(f"chat.vote_{verdict.lower()}"), elem_id=f"vote-{verdict.lower()}")
                           for verdict in votes.VERDICTS}
        box.voter = gr.Textbox(label=t("chat.voter"), placeholder=t("chat.voter_hint"), max_lines=1)
        with gr.Accordion(t("chat.edit_title"), open=False):
            with gr.Row():
                box.answer_a = gr.Textbox(label=t("chat.edit_a"), lines=4, elem_id="answer-a")
                box.answer_b = gr.Textbox(label=t("chat.edit_b"), lines=4, elem_id="answer-b")
        box.note = gr.Markdown(elem_id="vote-note")
    return box


def cast_vote(verdict: str, comparison, answer_a=None, answer_b=None, voter=None, run_dir=None, compare_with=None,
              request: gr.Request = None):
    """Save the vote on the pair shown (in the run folder), say which model was which, and the tally so far.
    An answer the voter corrected in its box is saved as the better answer. Returns the vote's "note", the
    "tally", and the pair cleared: its "comparison", boxes "answer_a" and "answer_b", and its "latency" note."""
    language = lang(request)
    pending = votes.Comparison(comparison["prompt"], comparison["answers"], tuple(comparison["order"])) \
        if isinstance(comparison, dict) else None
    if isinstance(comparison, dict) and comparison.get("run_dir"):
        # The pair belongs to the run (and the comparison) it was made on, whichever run is picked now.
        run_dir, compare_with = comparison["run_dir"], comparison.get("compare_with") or ""
    if problem := votes.vote_problem(pending, verdict) or (run_refusal(run_dir) if run_dir else None):
        return {"note": render(problem, language)}
    edited = {"A": answer_a, "B": answer_b}.get(verdict)
    if not isinstance(edited, str) or edited.strip() == pending.shown(verdict).strip():
        edited = None  # unchanged: the model's own answer is the chosen one
    who = voter.strip()[:80] if isinstance(voter, str) and voter.strip() else f"session:{getattr(request, 'session_hash', '')}"
    reference = compare_with if isinstance(compare_with, str) else ""
    vote = votes.Vote(pending.prompt, pending.answers, list(pending.order), verdict, who, str(run_dir), edited,
                      reference=reference)
    path = votes.votes_file(run_dir)
    votes.record_vote(vote, path)
    names = {"base": Path(reference).name if reference else tr("side.base", language), "tuned": tr("side.tuned", language)}
    note = tr("votes.saved", language, a=names[pending.order[0]], b=names[pending.order[1]])
    return {"note": note, "tally": render(votes.summary(votes.read_votes(path), reference), language),
            "comparison": None, "answer_a": "", "answer_b": "", "latency": ""}


def vote_for(verdict: str):
    """The handler of one vote button: the API's vote_a, vote_b, vote_tie and vote_both_bad."""
    def vote(comparison=None, answer_a=None, answer_b=None, voter=None, run_dir=None, compare_with=None,
             request: gr.Request = None):
        return cast_vote(verdict, comparison, answer_a, answer_b, voter, run_dir, compare_with, request)
    vote.__name__ = f"vote_{verdict.lower()}"
    return vote


def vote_tally(run_dir, compare_with=None, request: gr.Request = None) -> str:
    """The win rate of the chosen run over what it is compared with, from the votes saved in its folder."""
    if not run_dir or not isinstance(run_dir, str) or run_refusal(run_dir):
        return ""
    reference = compare_with if isinstance(compare_with, str) else ""
    found = votes.against(votes.read_votes(votes.votes_file(run_dir)), reference)
    return render(votes.summary(found, reference), lang(request)) if found else ""


def blind_view(blind, compare_with=None, request: gr.Request = None):
    """Switching blind on or off starts clean: panes emptied and named for what they show, votes shown or not."""
    language = lang(request)
    if blind:
        left, right = tr("chat.answer_a", language), tr("chat.answer_b", language)
    else:
        other = compare_with if isinstance(compare_with, str) and compare_with.strip() else None
        left, right = Path(other).name if other else tr("chat.base", language), tr("chat.tuned", language)
    return {"base": gr.update(value=[], label=left), "tuned": gr.update(value=[], label=right),
            "vote_box": gr.update(visible=bool(blind)), "comparison": None}


def wire(page: SimpleNamespace) -> None:
    """Blind on or off, and the four vote buttons (the API's vote_a, vote_b, vote_tie, vote_both_bad)."""
    box = page.votes
    switched = Outputs(base=page.base_bot, tuned=page.tuned_bot, vote_box=box.column, comparison=page.comparison)
    page.blind.change(switched.wire(blind_view), [page.blind, page.compare], switched.list, api_name=False)
    voted = Outputs(note=box.note, tally=page.tally, comparison=page.comparison, answer_a=box.answer_a,
                    answer_b=box.answer_b, latency=page.latency)
    for verdict, button in box.buttons.items():
        button.click(voted.wire(vote_for(verdict)),
                     inputs_kwargs=dict(comparison=page.comparison, answer_a=box.answer_a, answer_b=box.answer_b,
                                        voter=box.voter, run_dir=page.run, compare_with=page.compare),
                     outputs=voted.list, api_name=f"vote_{verdict.lower()}")
