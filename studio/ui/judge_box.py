"""The Chat tab's judge: a model compares the run's base and tuned answers in both orders (studio/chat/judge.py);
the result stands beside the blind votes, with the pairs where the two disagree. The API key is a password box
whose value is used for the calls and dropped."""

from __future__ import annotations

import threading

import gradio as gr

from studio.chat import judge
from studio.chat.loaded import get_pair
from studio.core.paths import run_refusal
from studio.core.text import Msg
from studio.data import votes
from .text import frame, headers, lang, render, t, tr

PAIR_COLUMNS = ["col.prompt", "col.judged", "col.human", "col.reasons"]
_STOP = threading.Event()  # the Stop button's: one judging at a time per server, as one training job


def judge_view(run_dir=None, judge_source=None, judge_model=None, judge_api_key=None, rubric=None,
               judge_prompts=None, request: gr.Request = None, progress=gr.Progress()):
    """Judge the run's held-out (or the pasted) prompts; the summary beside the votes, and the pairs."""
    language = lang(request)
    empty = frame([], PAIR_COLUMNS, language)
    if not run_dir or not isinstance(run_dir, str):
        return tr("chat.no_runs", language), empty
    if refusal := run_refusal(run_dir):
        return render(refusal, language), empty
    _STOP.clear()
    try:
        model = judge.make_judge(judge_source or "", judge_model or "", judge_api_key or "")
        pair = get_pair(run_dir)
    except judge.JudgeError as err:
        return render(err.args[0], language), empty
    except Exception as err:  # a run without weights, a judge folder that is no model: a message, never a trace
        return tr("chat.load_failed", language, error=render(err.args[0] if err.args else str(err), language)), empty
    prompts = [line.strip() for line in (judge_prompts or "").splitlines() if line.strip()]
    progress(0, desc=tr("judge.working", language))
    result = judge.run_judge(run_dir, pair, model, rubric or "", prompts or None, _STOP,
                             lambda done, total: progress(done / total, desc=tr("judge.working", language)))
    return summary(result, run_dir, language), pairs_frame(result, language)


def summary(result: judge.JudgeResult, run_dir: str, language: str) -> str:
    lines = [render(result.line(), language)]
    if result.note:
        lines.append(render(Msg.from_json(result.note), language))
    found = votes.against(votes.read_votes(votes.votes_file(run_dir)))
    if found:
        lines.append(tr("judge.votes_beside", language, votes=render(votes.summary(found), language)))
        lines.append(tr("judge.disagree", language, count=len(result.disagreements)))
    return "\n\n".join(lines)


def pairs_frame(result: judge.JudgeResult, language: str):
    def said(outcome):
        return tr(f"judge.outcome.{outcome}", language) if outcome in ("tuned", "base", "tie") else ""

    rows = [[p.prompt, said(p.outcome), said(p.human), " | ".join(r or "?" for r in p.reasons)] for p in result.pairs]
    return frame(rows, PAIR_COLUMNS, language)


def stop_judging() -> None:
    _STOP.set()


def endpoint_boxes(prefix: str):
    """A model to ask, in one row: an OpenAI-compatible address with its model name and key, or a model folder
    (the judge's and the workshop teacher's)."""
    with gr.Row():
        source = gr.Textbox(label=t("judge.source"), placeholder="http://127.0.0.1:11434/v1", scale=3,
                            elem_id=f"{prefix}-source")
        model = gr.Textbox(label=t("judge.model"), scale=2, elem_id=f"{prefix}-model")
        key = gr.Textbox(label=t("judge.key"), type="password", scale=2)
    return source, model, key


def build(run: gr.components.Component) -> None:
    """The accordion, wired to the run chosen at the top of the tab."""
    with gr.Accordion(t("judge.title"), open=False, elem_id="judge-box"):
        gr.Markdown(t("judge.intro"))
        source, model, key = endpoint_boxes("judge")
        rubric = gr.Textbox(label=t("judge.rubric"), placeholder=t("judge.rubric_default"))
        prompts = gr.Textbox(label=t("judge.prompts"), lines=3)
        with gr.Row():
            start = gr.Button(t("judge.run"), variant="primary", elem_id="judge-run")
            stop = gr.Button(t("judge.stop"), variant="stop")
        note = gr.Markdown(elem_id="judge-note")
        table = gr.Dataframe(headers=headers(PAIR_COLUMNS), wrap=True, label=t("judge.pairs_title"),
                             elem_id="judge-pairs")
    start.click(judge_view, inputs_kwargs=dict(run_dir=run, judge_source=source, judge_model=model,
                                               judge_api_key=key, rubric=rubric, judge_prompts=prompts),
                outputs=[note, table], api_name="judge")
    stop.click(stop_judging, None, None, api_name="stop_judging")
