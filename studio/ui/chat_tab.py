"""Chat tab: the same prompt answered by the base and the tuned model side by side, streaming at once from one
copy of the weights, with latency figures, held-out answers and scores."""

from __future__ import annotations

import threading

import gradio as gr

from .. import config, evaluate
from ..train import list_runs
from .forms import build_section_form
from .text import t

# One loaded pair at a time: a second model copy would double memory. Guarded, since tabs share the process.
_LOADED: dict = {}
_LOCK = threading.Lock()


def finished_runs() -> list[str]:
    """Finished or stopped runs, each followed by its checkpoints (any of them can be the "tuned" side)."""
    from pathlib import Path

    choices = []
    for r in list_runs():
        if r.get("status") in ("finished", "stopped") and r.get("output"):
            choices.append(r["run_dir"])
            checkpoints = Path(r["run_dir"]).glob("checkpoints/checkpoint-*/trainer_state.json")
            choices += sorted((str(p.parent) for p in checkpoints), key=lambda c: int(c.rsplit("-", 1)[-1]))
    return choices


def get_pair(run_dir: str):
    from ..chat import ChatPair

    with _LOCK:
        if _LOADED.get("run_dir") != run_dir:
            _LOADED.clear()  # free the previous run's model before loading the next
            import gc

            gc.collect()
            _LOADED.update(run_dir=run_dir, pair=ChatPair.from_run(run_dir, progress=lambda _: None))
        return _LOADED["pair"]


def load_note(run_dir: str) -> str:
    if not run_dir:
        return "Pick a finished run."
    pair = get_pair(run_dir)
    if pair.shares_weights:
        return "One copy of the base weights serves both panes: the tuned pane switches the adapter on."
    return "This run trained every weight, so the tuned model is a second copy in memory."


def generation_settings(max_new_tokens, temperature, top_p, repetition_penalty, sampling_seed=0):
    return config.GenerationSettings(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                                     top_p=float(top_p), repetition_penalty=float(repetition_penalty),
                                     sampling_seed=int(sampling_seed or 0))


def message_text(content) -> str:
    """Gradio's Chatbot hands history back with content as a list of parts ({'type': 'text', 'text': ...})."""
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return content or ""


def conversation(system: str, history: list[dict], prompt: str) -> list[dict]:
    prefix = [{"role": "system", "content": system.strip()}] if (system or "").strip() else []
    past = [{"role": m["role"], "content": message_text(m["content"])} for m in history or []]
    return prefix + past + [{"role": "user", "content": prompt}]


def pane_latency(name: str, answer, samples: list) -> str:
    first = f"first token {1000 * answer.first_token_s:.0f} ms, " if answer.first_token_s else ""
    return (f"**{name}**: {answer.new_tokens} tokens in {answer.seconds:.2f} s ({first}"
            f"{answer.ms_per_token:.0f} ms/token). {evaluate.latency_text(samples)}")


def send(run_dir, system, prompt, base_history, tuned_history, samples, max_new_tokens, temperature, top_p,
         repetition_penalty, sampling_seed=0):
    from ..chat import stream_pair

    def plain(history):
        return [{"role": m["role"], "content": message_text(m["content"])} for m in history or []]

    base_history, tuned_history, samples = plain(base_history), plain(tuned_history), samples or {}
    if not run_dir or not (prompt or "").strip():
        message = "Pick a finished run first." if not run_dir else "Type a message first."
        yield base_history, tuned_history, samples, message, prompt
        return
    settings = generation_settings(max_new_tokens, temperature, top_p, repetition_penalty, sampling_seed)
    pair = get_pair(run_dir)
    base_messages = conversation(system, base_history, prompt)
    tuned_messages = conversation(system, tuned_history, prompt)
    base_history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
    tuned_history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": ""}]
    base = tuned = None
    for base, tuned in stream_pair(pair, base_messages, tuned_messages, settings):
        base_history[-1]["content"], tuned_history[-1]["content"] = base.text, tuned.text
        yield base_history, tuned_history, samples, "", ""
    samples = {"base": samples.get("base", []) + [(base.new_tokens, base.seconds)],
               "tuned": samples.get("tuned", []) + [(tuned.new_tokens, tuned.seconds)]}
    latency = pane_latency("Base", base, samples["base"]) + "\n\n" + pane_latency("Tuned", tuned, samples["tuned"])
    yield base_history, tuned_history, samples, latency, ""


def held_out_answers(run_dir, max_new_tokens, temperature, top_p, repetition_penalty, sampling_seed=0,
                     progress=gr.Progress()):
    from ..chat import stream_pair

    if not run_dir:
        return [], "Pick a finished run first."
    examples, split = evaluate.held_out_examples(run_dir, limit=8)
    if not examples:
        return [], "This run has no held-out rows (set a test share before training)."
    pair = get_pair(run_dir)
    settings = generation_settings(max_new_tokens, temperature, top_p, repetition_penalty, sampling_seed)
    table = []
    for i, (prompt, reference) in enumerate(examples):
        base, tuned = list(stream_pair(pair, prompt, prompt, settings))[-1]
        table.append([prompt[-1]["content"], reference, base.text, tuned.text])
        progress((i + 1) / len(examples))
    return table, f"{len(table)} prompts from the {split} split, never trained on."


def evaluate_held_out(run_dir, progress=gr.Progress()):
    if not run_dir:
        return [], "Pick a finished run first."
    result = evaluate.evaluate_run(run_dir, get_pair(run_dir), progress=lambda f: progress(f))
    if "error" in result:
        return [], result["error"]
    return evaluate.evaluation_table(result), (f"{result['rows']} rows of the {result['split']} split; saved to "
                                               "evaluation.json in the run folder.")


def build(defaults) -> dict:
    with gr.Row():
        run = gr.Dropdown(choices=finished_runs(), label=t("chat.run"), allow_custom_value=True, scale=3)
        refresh = gr.Button(t("chat.refresh"), scale=1)
    note = gr.Markdown()
    system = gr.Textbox(label=t("chat.system"), placeholder=t("chat.system_hint"))
    with gr.Row():
        base_bot = gr.Chatbot(label=t("chat.base"), height=360)
        tuned_bot = gr.Chatbot(label=t("chat.tuned"), height=360)
    prompt = gr.Textbox(label=t("chat.prompt"), value="Who are you?")
    with gr.Row():
        send_btn = gr.Button(t("chat.send"), variant="primary")
        stop_btn = gr.Button(t("chat.stop"), variant="stop")
        clear_btn = gr.Button(t("chat.clear"))
    latency = gr.Markdown()
    with gr.Accordion(t("hyper.advanced"), open=False):
        form = build_section_form("generation", defaults)
    with gr.Accordion(t("chat.held_out"), open=False):
        with gr.Row():
            answers_btn = gr.Button(t("chat.test_prompts"))
            eval_btn = gr.Button(t("chat.evaluate"))
        held_note = gr.Markdown()
        answers = gr.Dataframe(headers=["prompt", "reference", "base", "tuned"], wrap=True)
        scores = gr.Dataframe(headers=["metric", "base", "tuned", "tuned - base"])
    samples = gr.State({})
    sampling = [form["max_new_tokens"], form["temperature"], form["top_p"], form["repetition_penalty"],
                form["sampling_seed"]]

    refresh.click(lambda: gr.update(choices=finished_runs()), None, run, api_name="list_runs")
    run.input(load_note, run, note, api_name="load_run")
    sending = send_btn.click(send, [run, system, prompt, base_bot, tuned_bot, samples, *sampling],
                             [base_bot, tuned_bot, samples, latency, prompt], api_name="chat")
    submitting = prompt.submit(send, [run, system, prompt, base_bot, tuned_bot, samples, *sampling],
                               [base_bot, tuned_bot, samples, latency, prompt], api_name=False)
    stop_btn.click(None, None, None, cancels=[sending, submitting], api_name="stop_chat")
    clear_btn.click(lambda: ([], [], {}, ""), None, [base_bot, tuned_bot, samples, latency], api_name="clear_chat")
    answers_btn.click(held_out_answers, [run, *sampling], [answers, held_note], api_name="held_out_answers")
    eval_btn.click(evaluate_held_out, run, [scores, held_note], api_name="evaluate")
    return form
