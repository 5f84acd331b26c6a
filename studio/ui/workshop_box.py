"""The Data tab's workshop: grow the loaded file with a teacher (studio/chat/teacher.py, studio/plan/workshop.py),
see the cost first, review every new row (keep, edit or drop it), and make the kept ones a new version of the file,
which is loaded at once. The teacher's key is a password box, used for the calls and dropped."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio.chat import teacher as teachers
from studio.chat.judge import JudgeError, make_judge
from studio.core.runs import list_runs
from studio.plan import workshop
from studio.plan.data_choice import data_source, report_of
from .handoff import session_of
from .judge_box import endpoint_boxes
from .text import headers, lang, render, t, tr

INPUTS = ("dataset_path", "dataset_format", "column_mapping", "model_name_or_path", "validation_share", "test_share",
          "seed", "teacher_source", "teacher_model", "teacher_api_key", "mode", "per_seed", "keep_answers",
          "questions", "run_dir")
REVIEW_COLUMNS = ["workshop.col_keep", "col.prompt", "repair.col_answer", "workshop.col_seed", "workshop.col_mode"]
_STOP = threading.Event()
_MADE: dict = {}  # each browser session's last grown rows, with their provenance, until accepted




def _local(model):
    def ask(prompt: str, temperature: float = 0.7, max_tokens: int = 256) -> str:
        from studio.core.config import GenerationSettings
        from studio.chat.chat import answer

        return answer(model.model, model.tokenizer, [{"role": "user", "content": prompt}],
                      GenerationSettings(max_new_tokens=min(max_tokens, 256), temperature=temperature,
                                         sampling_seed=0)).text
    ask.name = model.name
    return ask


def _resolve(source, model, key):
    made = make_judge(source or "", model or "", key or "")
    if hasattr(made, "url"):
        return teachers.EndpointTeacher(made.url, made.model, key or "")
    return _local(made)


def _seeds(values: dict):
    source, _ = data_source(values.get("dataset_path"), values.get("dataset_format"), values.get("column_mapping"))
    report = report_of(source, values.get("model_name_or_path"))
    questions = [q.strip() for q in (values.get("questions") or "").splitlines() if q.strip()]
    seeds, held = workshop.seeds_and_held(values.get("mode") or "more_like", report.load.rows, questions,
                                          values.get("run_dir") or None, float(values.get("validation_share") or 0),
                                          float(values.get("test_share") or 0), int(values.get("seed") or 42))
    return SimpleNamespace(source=source, report=report, seeds=seeds, held=held)


def by_name(*first: str):
    """The handler's parameters by name, as the API shows them (the workshop's boxes and the form's fields);
    Gradio hands them over by position, in that order."""
    import functools
    import inspect

    def decorate(fn):
        own = inspect.signature(fn).parameters
        params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
                  for name in (*first, *INPUTS)]
        params += [own[name].replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("request", "progress")
                   if name in own]
        signature = inspect.Signature(params)

        @functools.wraps(fn)
        def named(*args, **kwargs):
            return fn(**signature.bind(*args, **kwargs).arguments)

        named.__signature__ = signature
        del named.__wrapped__  # Gradio reads the signature above, not the function's own
        return named
    return decorate


@by_name()
def estimate(request: gr.Request = None, **values):
    language = lang(request)
    try:
        ask = _resolve(values.get("teacher_source"), values.get("teacher_model"), values.get("teacher_api_key"))
        seeds = _seeds(values).seeds
        return render(workshop.cost(seeds, values.get("mode") or "more_like", int(values.get("per_seed") or 3),
                                    bool(values.get("keep_answers")), ask), language)
    except (JudgeError, teachers.EndpointError) as err:
        return render(err.args[0], language)


@by_name()
def grow(request: gr.Request = None, progress=gr.Progress(), **values):
    """Grow, then show every new row for review; what was made before a fault or Stop is shown too."""
    language = lang(request)
    empty = pd.DataFrame([], columns=headers(REVIEW_COLUMNS, language))
    _STOP.clear()
    try:
        ask = _resolve(values.get("teacher_source"), values.get("teacher_model"), values.get("teacher_api_key"))
    except JudgeError as err:
        return render(err.args[0], language), empty
    chosen = _seeds(values)
    seeds, held = chosen.seeds, chosen.held
    if not seeds:
        return tr("workshop.no_seeds", language), empty
    mode = values.get("mode") or "more_like"
    grown = teachers.grow(seeds, ask, mode, held, int(values.get("per_seed") or 3), bool(values.get("keep_answers")),
                          _STOP, lambda done, total: progress(done / total, desc=tr("workshop.working", language)))
    _MADE[session_of(request)] = grown.rows  # another browser's review never takes these rows
    lines = [tr("workshop.grown", language, rows=len(grown.rows), seconds=grown.seconds)]
    if grown.left_out:
        lines.append(tr("workshop.left_out", language, items=", ".join(
            f"{tr('workshop.why_' + why, language)} {count}" for why, count in grown.left_out.items())))
    if grown.ended is not None:
        lines.append(render(grown.ended, language))
    if getattr(ask, "name", "") and not str(values.get("teacher_source") or "").startswith("http"):
        lines.append(tr("workshop.small_teacher", language, teacher=ask.name))
    rows = [[True, r.messages[0]["content"], r.messages[1]["content"], str(r.provenance["seed_row"]),
             tr("workshop.mode_" + mode, language)] for r in grown.rows]
    return "\n\n".join(lines), pd.DataFrame(rows, columns=headers(REVIEW_COLUMNS, language))


@by_name("review")
def accept(request: gr.Request = None, review=None, **values):
    """The kept rows (as edited) and the file's own rows as a new version; its path goes into the dataset box."""
    language = lang(request)
    made = _MADE.get(session_of(request)) or []
    table = review if isinstance(review, pd.DataFrame) else pd.DataFrame(review or [])
    kept = []
    for grown_row, (_, cells) in zip(made, table.iterrows()):
        if bool(cells.iloc[0]) and str(cells.iloc[1]).strip() and str(cells.iloc[2]).strip():
            kept.append(teachers.GrownRow([{"role": "user", "content": str(cells.iloc[1])},
                                           {"role": "assistant", "content": str(cells.iloc[2])}],
                                          grown_row.provenance))
    if not kept:
        return gr.update(), tr("workshop.none_kept", language)
    chosen = _seeds(values)
    version = workshop.accept(chosen.source.dataset_path, chosen.report.load.rows, kept)
    _MADE.pop(session_of(request), None)
    return version.path, tr("workshop.accepted", language, version=version.name, rows=len(kept))


def finished_runs():
    """The finished runs whose held-out misses can seed new rows."""
    return gr.update(choices=[r["run_dir"] for r in list_runs() if r.get("status") in ("finished", "stopped")])


def build():
    with gr.Accordion(t("workshop.title"), open=False, elem_id="workshop-box"):
        gr.Markdown(t("workshop.intro"))
        source, model, key = endpoint_boxes("workshop")
        with gr.Row():
            mode = gr.Radio([(t(f"workshop.mode_{m}"), m) for m in teachers.MODES], value="more_like",
                            label=t("workshop.mode"), scale=3)
            per_seed = gr.Number(value=3, precision=0, minimum=1, maximum=20, label=t("workshop.per_seed"), scale=1)
            keep_answers = gr.Checkbox(value=True, label=t("workshop.keep_answers"), scale=2)
        questions = gr.Textbox(label=t("workshop.questions"), lines=3)
        run = gr.Dropdown(choices=[], label=t("workshop.run"), allow_custom_value=True, elem_id="workshop-run")
        with gr.Row():
            cost_btn = gr.Button(t("workshop.estimate"))
            grow_btn = gr.Button(t("workshop.grow"), variant="primary", elem_id="workshop-grow")
            stop_btn = gr.Button(t("workshop.stop"), variant="stop")
        note = gr.Markdown(elem_id="workshop-note")
        review = gr.Dataframe(headers=headers(REVIEW_COLUMNS), datatype=["bool", "str", "str", "str", "str"],
                              interactive=True, wrap=True, label=t("workshop.review"), elem_id="workshop-review")
        accept_btn = gr.Button(t("workshop.accept"), elem_id="workshop-accept")
    return dict(source=source, model=model, key=key, mode=mode, per_seed=per_seed, keep_answers=keep_answers,
                questions=questions, run=run, cost=cost_btn, grow=grow_btn, stop=stop_btn, note=note, review=review,
                accept=accept_btn)


def wire(parts: dict, form: dict, full_form: dict, loading: dict, tab) -> None:
    values = dict(dataset_path=form["dataset_path"], dataset_format=form["dataset_format"],
                  column_mapping=form["column_mapping"], model_name_or_path=full_form["model_name_or_path"],
                  validation_share=form["validation_share"], test_share=form["test_share"], seed=full_form["seed"],
                  teacher_source=parts["source"], teacher_model=parts["model"], teacher_api_key=parts["key"],
                  mode=parts["mode"], per_seed=parts["per_seed"], keep_answers=parts["keep_answers"],
                  questions=parts["questions"], run_dir=parts["run"])
    tab.select(finished_runs, None, parts["run"], api_name=False)
    parts["cost"].click(estimate, inputs_kwargs=values, outputs=parts["note"], api_name="workshop_cost")
    parts["grow"].click(grow, inputs_kwargs=values, outputs=[parts["note"], parts["review"]],
                        api_name="workshop_grow")
    parts["stop"].click(lambda: _STOP.set(), None, None, api_name="workshop_stop")
    parts["accept"].click(accept, inputs_kwargs=dict(review=parts["review"], **values),
                          outputs=[form["dataset_path"], parts["note"]],
                          api_name="workshop_accept").then(**loading, api_name=False)

