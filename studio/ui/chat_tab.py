"""Chat tab: the same prompt answered by the base and the tuned model side by side, streaming at once from one
copy of the weights, with latency figures, held-out answers and scores."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.core import config, settings_input
from studio.core.paths import run_model_refusal, run_refusal
from studio.core.runs import RunFolder, list_runs
from studio.core.text import reason_of
from studio.data import votes
from studio.chat import drift, evaluate
from studio.chat.chat import MAX_ANSWER_SECONDS, stream_pair, text_problem, token_problem
from studio.chat.loaded import get_pair, loaded_run
from studio.training.jobs import JOB
from . import judge_box
from .forms import TabContext, TabParts, build_section_form, takes_form
from .handoff import handed_note, pick_run, session_of
from .named import Outputs
from .text import field_labels, frame, headers, lang, render, t, tr

def finished_runs() -> list[str]:
    """Finished or stopped runs, each followed by its checkpoints (any of them can be the "tuned" side)."""
    choices = []
    for r in list_runs():
        if r.get("status") in ("finished", "stopped") and r.get("output"):
            choices.append(r["run_dir"])
            choices += [str(p) for p in RunFolder(r["run_dir"]).checkpoints()]
    return choices




def failure(err: Exception, language: str) -> str:
    return tr("chat.load_failed", language, error=render(reason_of(err), language))


def load_note(run_dir: str, compare_with: str | None = None, request: gr.Request = None) -> str:
    language = lang(request)
    if not run_dir:
        return tr("chat.no_runs", language)
    if JOB.running and loaded_run() != run_dir:
        return tr("chat.busy_training", language)
    try:
        pair = get_pair(run_dir, compare_with)
    except Exception as err:  # a run without weights, a missing base model: a message, never a crashed tab
        return failure(err, language)
    if pair.reference:
        return tr("chat.two_runs", language, run=Path(run_dir).name, other=Path(pair.reference).name)
    return tr("chat.shared_weights" if pair.shares_weights else "chat.two_copies", language, run=Path(run_dir).name)


def run_system_prompt(run_dir: str | None, current: str | None = None):
    """The system prompt the run was trained with (its 'System prompt' setting), put into an empty system box so
    the chat asks the model as it was trained; a prompt the user typed stays."""
    if not run_dir or (current or "").strip() or cannot_load(run_dir, "en"):
        return gr.update()
    settings = RunFolder.of(run_dir)[0].settings()  # a checkpoint has its run's settings
    prompt = settings.data.system_prompt if settings is not None else ""
    return prompt if prompt.strip() else gr.update()


def open_tab(current: str | None, handed: str | None, compare_with: str | None = None, request: gr.Request = None):
    """On opening the tab (and on page load): the runs finished so far, the one just trained preselected, its
    model loaded, so Send answers at once."""
    choices = finished_runs()
    before = handed
    value, handed = pick_run(choices, current, handed)
    note = load_note(value, compare_with, request=request)
    if (whose := handed_note(value, handed != before, session_of(request))) is not None:
        note = render(whose, lang(request)) + "\n\n" + note
    return gr.update(choices=choices, value=value), note, handed


def generation_settings(values: dict, language: str = "en") -> tuple[config.GenerationSettings | None, str]:
    """The Advanced generation fields, by name, as settings; or None and what is wrong with them, each named by
    the label the reader sees."""
    settings, problems = settings_input.settings_from_flat(values)
    if problems:
        labels = field_labels(language)
        return None, "\n".join(f"⚠️ **{labels.get(w, w)}**: {render(m, language)}" for w, m in problems)
    return settings.generation, ""


def message_text(content) -> str:
    """Gradio's Chatbot hands history back with content as a list of parts ({'type': 'text', 'text': ...})."""
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return content or ""


def conversation(system: str, history: list[dict], prompt: str) -> list[dict]:
    prefix = [{"role": "system", "content": system.strip()}] if (system or "").strip() else []
    past = [{"role": m["role"], "content": message_text(m["content"])} for m in history or []]
    return prefix + past + [{"role": "user", "content": prompt}]


def pane_latency(name: str, answer, samples: list, language: str = "en") -> str:
    first = tr("chat.first_token", language, ms=1000 * answer.first_token_s) if answer.first_token_s else ""
    return tr("chat.pane_latency", language, name=name, tokens=answer.new_tokens, seconds=answer.seconds, first=first,
              per_token=answer.ms_per_token, fit=render(evaluate.latency_text(samples), language))


def send(run_dir, system_prompt=None, prompt=None, base_history=None, tuned_history=None, samples=None, blind=False,
         compare_with=None, request: gr.Request = None, **generation):
    """Both models answer the prompt, streamed into their panes; with `blind`, a fresh single-turn pair shown as
    A and B in a random order, ready to vote on. Yields {output: value}: the panes ("base", "tuned"), "samples",
    "note", the "prompt" box, and for a blind pair its "comparison" and boxes "answer_a", "answer_b" (left out: the
    pending comparison and the edit boxes stay as they are)."""
    system = system_prompt or ""
    language = lang(request)

    def plain(history):
        return [{"role": m["role"], "content": message_text(m["content"])} for m in history or []]

    if problem := text_problem(system, base_history, prompt) or text_problem(system, tuned_history, prompt):
        yield {"samples": samples, "note": render(problem, language)}  # nothing is lost
        return
    base_history, tuned_history, samples = plain(base_history), plain(tuned_history), samples or {}
    if not run_dir or not isinstance(run_dir, str) or not (prompt or "").strip():
        message = tr("chat.pick_run" if not run_dir else "chat.type_first", language)
        yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": message, "prompt": prompt}
        return
    if JOB.running and loaded_run() != run_dir:
        yield {"base": base_history, "tuned": tuned_history, "samples": samples,
               "note": tr("chat.busy_training", language), "prompt": prompt}
        return
    settings, problems = generation_settings(generation, language)
    if settings is None:
        yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": problems, "prompt": prompt}
        return
    try:
        pair = get_pair(run_dir, compare_with)
    except Exception as err:  # a run without weights, a missing base model: said in the tab, never a popup
        yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": failure(err, language),
               "prompt": prompt}
        return
    if blind is True:
        yield from blind_pair(pair, settings, system, prompt, samples, language, run_dir, compare_with)
        return
    base_messages = conversation(system, base_history, prompt)
    tuned_messages = conversation(system, tuned_history, prompt)
    if problem := token_problem(pair, base_messages, settings.max_new_tokens) or token_problem(
            pair, tuned_messages, settings.max_new_tokens):
        yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": render(problem, language),
               "prompt": prompt}
        return
    base_history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
    tuned_history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
    base = tuned = None
    for base, tuned in stream_pair(pair, base_messages, tuned_messages, settings):
        base_history[-1]["content"], tuned_history[-1]["content"] = base.text, tuned.text
        yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": "", "prompt": ""}
    for history, reply in ((base_history, base), (tuned_history, tuned)):
        if reply.timed_out:
            history[-1]["content"] += "\n\n" + tr("chat.timed_out", language, seconds=MAX_ANSWER_SECONDS)
    samples = {"base": samples.get("base", []) + [(base.new_tokens, base.seconds)],
               "tuned": samples.get("tuned", []) + [(tuned.new_tokens, tuned.seconds)]}
    left = Path(pair.reference).name if pair.reference else tr("chat.base_short", language)
    latency = (pane_latency(left, base, samples["base"], language) + "\n\n"
               + pane_latency(tr("chat.tuned_short", language), tuned, samples["tuned"], language))
    yield {"base": base_history, "tuned": tuned_history, "samples": samples, "note": latency, "prompt": ""}


def blind_pair(pair, settings, system: str, prompt: str, samples, language: str, run_dir: str,
               compare_with: str | None = None):
    """One prompt, answered afresh by both models, shown as A (left) and B (right) in an order drawn for this
    prompt; the comparison waits in the session for the vote, with the run it was made on."""
    messages = conversation(system, [], prompt)
    if problem := token_problem(pair, messages, settings.max_new_tokens):
        yield {"samples": samples, "note": render(problem, language), "prompt": prompt, "comparison": None,
               "answer_a": "", "answer_b": ""}
        return
    order = votes.blind_order()
    panes = [[{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}] for _ in order]
    by_side = {}
    for base, tuned in stream_pair(pair, messages, messages, settings):
        by_side = {"base": base, "tuned": tuned}
        for pane, side in zip(panes, order):
            pane[-1]["content"] = by_side[side].text
        yield {"base": panes[0], "tuned": panes[1], "samples": samples, "note": "", "prompt": "", "comparison": None}
    a, b = (by_side[side] for side in order)
    comparison = {"prompt": messages, "answers": {side: by_side[side].text for side in order}, "order": list(order),
                  "run_dir": str(run_dir), "compare_with": compare_with if isinstance(compare_with, str) else ""}
    note = tr("chat.blind_latency", language, a_tokens=a.new_tokens, a_seconds=a.seconds, b_tokens=b.new_tokens,
              b_seconds=b.seconds)
    yield {"base": panes[0], "tuned": panes[1], "samples": samples, "note": note, "prompt": "",
           "comparison": comparison, "answer_a": a.text, "answer_b": b.text}


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


def drift_view(run_dir, request: gr.Request = None):
    """The chosen run's general-ability check: its summary and three base vs tuned answers from the set."""
    language = lang(request)
    if not run_dir or not isinstance(run_dir, str) or run_refusal(run_dir):
        return "", frame([], drift.SAMPLE_COLUMNS, language)
    report = RunFolder.of(run_dir)[0].drift()
    if not report:
        return tr("drift.none", language), frame([], drift.SAMPLE_COLUMNS, language)
    rows = drift.sample_rows(report, language)
    return render(drift.summary(report), language), frame(rows, drift.SAMPLE_COLUMNS, language)


def compare_view(run_dir, compare_with=None, request: gr.Request = None):
    """Picking what the run is compared with: the left pane renamed and emptied, the pair loaded, the tally."""
    language = lang(request)
    other = compare_with if isinstance(compare_with, str) and compare_with.strip() else None
    if other and (problem := run_model_refusal(other)):  # a made-up name is refused, not shown back as a label
        return {"note": render(problem, language)}
    label = Path(other).name if other else tr("chat.base", language)
    return {"base": gr.update(value=[], label=label), "tuned": gr.update(value=[]),
            "note": load_note(run_dir, other, request), "tally": vote_tally(run_dir, other, request)}


def compare_choices(request: gr.Request = None):
    """The base model, then every finished run: what the left pane can show."""
    return gr.update(choices=[(tr("chat.compare_base", lang(request)), ""), *finished_runs()])


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


def cannot_load(run_dir: str, language: str) -> str | None:
    """Why this run's model may not be loaded now (a run is training; a folder outside the runs), or None."""
    if JOB.running and loaded_run() != run_dir:
        return tr("job.busy_action", language)
    refusal = run_refusal(run_dir)
    return render(refusal, language) if refusal else None


def held_out_answers(run_dir, progress=gr.Progress(), request: gr.Request = None, **generation):
    language = lang(request)
    if not run_dir:
        return frame([], ANSWER_COLUMNS, language), tr("chat.pick_run", language)
    if why := cannot_load(run_dir, language):
        return frame([], ANSWER_COLUMNS, language), why
    examples, split = evaluate.held_out_examples(run_dir, limit=8)
    if not examples:
        return frame([], ANSWER_COLUMNS, language), tr("chat.no_held_out", language)
    settings, problems = generation_settings(generation, language)
    if settings is None:
        return frame([], ANSWER_COLUMNS, language), problems
    pair = get_pair(run_dir)
    table = []
    for i, (prompt, reference) in enumerate(examples):
        base, tuned = list(stream_pair(pair, prompt, prompt, settings))[-1]
        table.append([prompt[-1]["content"], reference, base.text, tuned.text])
        progress((i + 1) / len(examples))
    return frame(table, ANSWER_COLUMNS, language), tr("chat.held_out_note", language, count=len(table),
                                                       split=tr(f"split.{split}", language))


def evaluate_held_out(run_dir, progress=gr.Progress(), request: gr.Request = None):
    language = lang(request)
    if not run_dir:
        return frame([], SCORE_COLUMNS, language), tr("chat.pick_run", language)
    if why := cannot_load(run_dir, language):
        return frame([], SCORE_COLUMNS, language), why
    result = evaluate.evaluate_run(run_dir, get_pair(run_dir), progress=lambda f: progress(f))
    if "error" in result:
        return frame([], SCORE_COLUMNS, language), render(result["error"], language)
    rows = [[render(row[0], language), *row[1:]] for row in evaluate.evaluation_table(result)]
    note = tr("chat.evaluated", language, rows=result["rows"], split=tr(f"split.{result['split']}", language))
    settings = RunFolder(run_dir).settings()
    if result["split"] == "validation" and settings is not None and settings.training.early_stopping_patience > 0:
        note += " " + tr("chat.validation_caveat", language)
    return frame(rows, SCORE_COLUMNS, language), note


ANSWER_COLUMNS = ["col.prompt", "col.reference", "col.base", "col.tuned"]
SCORE_COLUMNS = ["col.metric", "col.base", "col.tuned", "col.difference"]


def build(ctx: TabContext) -> TabParts:
    with gr.Row():
        run = gr.Dropdown(choices=[], label=t("chat.run"), allow_custom_value=True, scale=3, elem_id="chat-run")
        refresh = gr.Button(t("chat.refresh"), scale=1)
    compare = gr.Dropdown(choices=[("", "")], value="", label=t("chat.compare_with"), info=t("chat.compare_info"),
                          allow_custom_value=True, elem_id="chat-compare")
    note = gr.Markdown(elem_id="chat-note")
    system = gr.Textbox(label=t("chat.system"), placeholder=t("chat.system_hint"))
    blind = gr.Checkbox(label=t("chat.blind"), info=t("chat.blind_info"), value=False, elem_id="chat-blind")
    with gr.Row():
        base_bot = gr.Chatbot(label=t("chat.base"), height=360, elem_id="chat-base")
        tuned_bot = gr.Chatbot(label=t("chat.tuned"), height=360, elem_id="chat-tuned")
    prompt = gr.Textbox(label=t("chat.prompt"), value="Who are you?", elem_id="chat-prompt")
    with gr.Row():
        send_btn = gr.Button(t("chat.send"), variant="primary", elem_id="chat-send")
        stop_btn = gr.Button(t("chat.stop"), variant="stop")
        clear_btn = gr.Button(t("chat.clear"))
    latency = gr.Markdown(elem_id="chat-latency")
    with gr.Column(visible=False) as vote_box:
        with gr.Row():
            vote_buttons = {verdict: gr.Button(t(f"chat.vote_{verdict.lower()}"), elem_id=f"vote-{verdict.lower()}")
                            for verdict in votes.VERDICTS}
        voter = gr.Textbox(label=t("chat.voter"), placeholder=t("chat.voter_hint"), max_lines=1)
        with gr.Accordion(t("chat.edit_title"), open=False):
            with gr.Row():
                answer_a = gr.Textbox(label=t("chat.edit_a"), lines=4, elem_id="answer-a")
                answer_b = gr.Textbox(label=t("chat.edit_b"), lines=4, elem_id="answer-b")
        vote_note = gr.Markdown(elem_id="vote-note")
    tally = gr.Markdown(elem_id="vote-tally")
    with gr.Accordion(t("drift.samples_title"), open=False):
        drift_note = gr.Markdown(elem_id="chat-drift")
        drift_table = gr.Dataframe(headers=headers(drift.SAMPLE_COLUMNS), wrap=True,
                                   column_widths=drift.SAMPLE_WIDTHS, elem_id="chat-drift-samples")
    with gr.Accordion(t("hyper.advanced"), open=False):
        form = build_section_form("generation", ctx.defaults)
    with gr.Accordion(t("chat.held_out"), open=False):
        with gr.Row():
            answers_btn = gr.Button(t("chat.test_prompts"))
            eval_btn = gr.Button(t("chat.evaluate"))
        held_note = gr.Markdown()
        answers = gr.Dataframe(headers=headers(ANSWER_COLUMNS), wrap=True,
                               column_widths=[f"{100 // len(ANSWER_COLUMNS)}%"] * len(ANSWER_COLUMNS))
        scores = gr.Dataframe(headers=headers(SCORE_COLUMNS))
    judge_box.build(run)
    samples = gr.State({})
    handed = gr.State()  # the freshly trained run this session was already shown (offered once, then the user's)
    comparison = gr.State()  # the blind pair waiting for its vote
    chat_inputs = dict(run_dir=run, system_prompt=system, prompt=prompt, base_history=base_bot, tuned_history=tuned_bot,
                       samples=samples, blind=blind, compare_with=compare, **form)
    chat_outputs = Outputs(base=base_bot, tuned=tuned_bot, samples=samples, note=latency, prompt=prompt,
                           comparison=comparison, answer_a=answer_a, answer_b=answer_b)

    refresh.click(lambda: gr.update(choices=finished_runs()), None, run, api_name="list_runs")
    run.change(run_system_prompt, inputs_kwargs=dict(run_dir=run, current=system), outputs=system,
               api_name="run_system_prompt")
    ctx.tab.select(open_tab, [run, handed, compare], [run, note, handed], api_name="open_chat").then(
        vote_tally, [run, compare], tally, api_name=False).then(compare_choices, None, compare, api_name=False).then(
        drift_view, inputs_kwargs=dict(run_dir=run), outputs=[drift_note, drift_table], api_name=False)
    run.input(load_note, inputs_kwargs=dict(run_dir=run, compare_with=compare), outputs=note,
              api_name="load_run").then(vote_tally, [run, compare], tally, api_name=False).then(
        drift_view, inputs_kwargs=dict(run_dir=run), outputs=[drift_note, drift_table], api_name="drift_check")
    compared = Outputs(base=base_bot, tuned=tuned_bot, note=note, tally=tally)
    compare.input(compared.wire(compare_view), inputs_kwargs=dict(run_dir=run, compare_with=compare),
                  outputs=compared.list, api_name="compare_with")
    send_named = chat_outputs.wire(takes_form(form)(send))
    held_out_named = takes_form(form)(held_out_answers)
    sending = send_btn.click(send_named, inputs_kwargs=chat_inputs, outputs=chat_outputs.list, api_name="chat")
    submitting = prompt.submit(send_named, inputs_kwargs=chat_inputs, outputs=chat_outputs.list, api_name=False)
    switched = Outputs(base=base_bot, tuned=tuned_bot, vote_box=vote_box, comparison=comparison)
    blind.change(switched.wire(blind_view), [blind, compare], switched.list, api_name=False)
    voted = Outputs(note=vote_note, tally=tally, comparison=comparison, answer_a=answer_a, answer_b=answer_b,
                    latency=latency)
    for verdict, button in vote_buttons.items():
        button.click(voted.wire(vote_for(verdict)),
                     inputs_kwargs=dict(comparison=comparison, answer_a=answer_a, answer_b=answer_b, voter=voter,
                                        run_dir=run, compare_with=compare),
                     outputs=voted.list, api_name=f"vote_{verdict.lower()}")
    stop_btn.click(None, None, None, cancels=[sending, submitting], api_name="stop_chat")
    clear_btn.click(lambda: ([], [], {}, ""), None, [base_bot, tuned_bot, samples, latency], api_name="clear_chat")
    answers_btn.click(held_out_named, inputs_kwargs=dict(run_dir=run, **form), outputs=[answers, held_note],
                      api_name="held_out_answers")
    eval_btn.click(evaluate_held_out, run, [scores, held_note], api_name="evaluate")

    def localise(request: gr.Request):
        language = lang(request)
        # The demo prompt in the reader's language; the run list as it is now (the page may be opened long
        # after the server started), without loading a model before the user opens the tab.
        choices = finished_runs()
        return {"answers": frame([], ANSWER_COLUMNS, language), "scores": frame([], SCORE_COLUMNS, language),
                "prompt": tr("chat.default_prompt", language),
                "run": gr.update(choices=choices, value=choices[0] if choices else None)}

    first = Outputs(answers=answers, scores=scores, prompt=prompt, run=run)
    ctx.demo.load(first.wire(localise), None, first.list, api_name=False)
    ctx.demo.load(compare_choices, None, compare, api_name=False)
    return TabParts(form)
