"""Chat tab: the same prompt answered by the base and the tuned model side by side, streaming at once from one
copy of the weights, with latency figures, held-out answers and scores."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

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
from . import judge_box, vote_box
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
            "note": load_note(run_dir, other, request), "tally": vote_box.vote_tally(run_dir, other, request)}


def compare_choices(request: gr.Request = None):
    """The base model, then every finished run: what the left pane can show."""
    return gr.update(choices=[(tr("chat.compare_base", lang(request)), ""), *finished_runs()])


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
    """The tab's layout, then its events: the run and what it is compared with, chatting, votes, held-out rows."""
    page = layout(ctx)
    wire_run_choice(ctx, page)
    wire_chat(page)
    vote_box.wire(page)
    page.answers_btn.click(takes_form(page.form)(held_out_answers), inputs_kwargs=dict(run_dir=page.run, **page.form),
                           outputs=[page.answers, page.held_note], api_name="held_out_answers")
    page.eval_btn.click(evaluate_held_out, page.run, [page.scores, page.held_note], api_name="evaluate")
    first = Outputs(answers=page.answers, scores=page.scores, prompt=page.prompt, run=page.run)
    ctx.demo.load(first.wire(localise), None, first.list, api_name=False)
    ctx.demo.load(compare_choices, None, page.compare, api_name=False)
    return TabParts(page.form)


def layout(ctx: TabContext) -> SimpleNamespace:
    page = SimpleNamespace()
    with gr.Row():
        page.run = gr.Dropdown(choices=[], label=t("chat.run"), allow_custom_value=True, scale=3, elem_id="chat-run")
        page.refresh = gr.Button(t("chat.refresh"), scale=1)
    page.compare = gr.Dropdown(choices=[("", "")], value="", label=t("chat.compare_with"),
                               info=t("chat.compare_info"), allow_custom_value=True, elem_id="chat-compare")
    page.note = gr.Markdown(elem_id="chat-note")
    page.system = gr.Textbox(label=t("chat.system"), placeholder=t("chat.system_hint"))
    page.blind = gr.Checkbox(label=t("chat.blind"), info=t("chat.blind_info"), value=False, elem_id="chat-blind")
    with gr.Row():
        page.base_bot = gr.Chatbot(label=t("chat.base"), height=360, elem_id="chat-base")
        page.tuned_bot = gr.Chatbot(label=t("chat.tuned"), height=360, elem_id="chat-tuned")
    page.prompt = gr.Textbox(label=t("chat.prompt"), value="Who are you?", elem_id="chat-prompt")
    with gr.Row():
        page.send_btn = gr.Button(t("chat.send"), variant="primary", elem_id="chat-send")
        page.stop_btn = gr.Button(t("chat.stop"), variant="stop")
        page.clear_btn = gr.Button(t("chat.clear"))
    page.latency = gr.Markdown(elem_id="chat-latency")
    page.votes = vote_box.layout()
    page.tally = gr.Markdown(elem_id="vote-tally")
    with gr.Accordion(t("drift.samples_title"), open=False):
        page.drift_note = gr.Markdown(elem_id="chat-drift")
        page.drift_table = gr.Dataframe(headers=headers(drift.SAMPLE_COLUMNS), wrap=True,
                                        column_widths=drift.SAMPLE_WIDTHS, elem_id="chat-drift-samples")
    with gr.Accordion(t("hyper.advanced"), open=False):
        page.form = build_section_form("generation", ctx.defaults)
    with gr.Accordion(t("chat.held_out"), open=False):
        with gr.Row():
            page.answers_btn = gr.Button(t("chat.test_prompts"))
            page.eval_btn = gr.Button(t("chat.evaluate"))
        page.held_note = gr.Markdown()
        page.answers = gr.Dataframe(headers=headers(ANSWER_COLUMNS), wrap=True,
                                    column_widths=[f"{100 // len(ANSWER_COLUMNS)}%"] * len(ANSWER_COLUMNS))
        page.scores = gr.Dataframe(headers=headers(SCORE_COLUMNS))
    judge_box.build(page.run)
    page.samples = gr.State({})
    page.handed = gr.State()  # the freshly trained run this session was already shown (offered once, then the user's)
    page.comparison = gr.State()  # the blind pair waiting for its vote
    return page


# The tab's offer, the run picked and what it is compared with each load a pair and write the note: they take turns
# in the order the user acted, so the note (and the pair loaded) is the last choice's, never an earlier one's that
# finished later.
IN_ORDER = dict(concurrency_id="chat_pair", concurrency_limit=1)


def wire_run_choice(ctx: TabContext, page: SimpleNamespace) -> None:
    """Which run is talked to, what it is compared with, and what the page says about them."""
    run, compare = page.run, page.compare
    page.refresh.click(lambda: gr.update(choices=finished_runs()), None, run, api_name="list_runs")
    run.change(run_system_prompt, inputs_kwargs=dict(run_dir=run, current=page.system), outputs=page.system,
               api_name="run_system_prompt")
    opening = ctx.tab.select(open_tab, [run, page.handed, compare], [run, page.note, page.handed],
                             api_name="open_chat", **IN_ORDER)
    opened = opening.then(vote_box.vote_tally, [run, compare], page.tally, api_name=False)
    opened = opened.then(compare_choices, None, compare, api_name=False)
    opened.then(drift_view, inputs_kwargs=dict(run_dir=run), outputs=[page.drift_note, page.drift_table],
                api_name=False)
    # a run the user picks while the tab's offer (which loads a model) is on its way wins over the offer
    run.input(load_note, inputs_kwargs=dict(run_dir=run, compare_with=compare), outputs=page.note,
              api_name="load_run", cancels=[opening], **IN_ORDER).then(vote_box.vote_tally, [run, compare], page.tally, api_name=False).then(
        drift_view, inputs_kwargs=dict(run_dir=run), outputs=[page.drift_note, page.drift_table],
        api_name="drift_check")
    compared = Outputs(base=page.base_bot, tuned=page.tuned_bot, note=page.note, tally=page.tally)
    compare.input(compared.wire(compare_view), inputs_kwargs=dict(run_dir=run, compare_with=compare),
                  outputs=compared.list, api_name="compare_with", **IN_ORDER)


def wire_chat(page: SimpleNamespace) -> None:
    chat_inputs = dict(run_dir=page.run, system_prompt=page.system, prompt=page.prompt, base_history=page.base_bot,
                       tuned_history=page.tuned_bot, samples=page.samples, blind=page.blind,
                       compare_with=page.compare, **page.form)
    chat_outputs = Outputs(base=page.base_bot, tuned=page.tuned_bot, samples=page.samples, note=page.latency,
                           prompt=page.prompt, comparison=page.comparison, answer_a=page.votes.answer_a,
                           answer_b=page.votes.answer_b)
    send_named = chat_outputs.wire(takes_form(page.form)(send))
    sending = page.send_btn.click(send_named, inputs_kwargs=chat_inputs, outputs=chat_outputs.list, api_name="chat")
    submitting = page.prompt.submit(send_named, inputs_kwargs=chat_inputs, outputs=chat_outputs.list,
                                    api_name=False)
    page.stop_btn.click(None, None, None, cancels=[sending, submitting], api_name="stop_chat")
    page.clear_btn.click(lambda: ([], [], {}, ""), None, [page.base_bot, page.tuned_bot, page.samples, page.latency],
                         api_name="clear_chat")


def localise(request: gr.Request):
    language = lang(request)
    # The demo prompt in the reader's language; the run list as it is now (the page may be opened long after the
    # server started), without loading a model before the user opens the tab.
    choices = finished_runs()
    return {"answers": frame([], ANSWER_COLUMNS, language), "scores": frame([], SCORE_COLUMNS, language),
            "prompt": tr("chat.default_prompt", language),
            "run": gr.update(choices=choices, value=choices[0] if choices else None)}
