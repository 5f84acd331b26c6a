"""Issue 57: every view computed from the inputs follows each input it depends on, at once, not only on selected
clicks. Two halves: the page's wiring (an input's own change reaches every view that reads it: checked on the
built Blocks, so a view left out of an input's events fails here), and the values (the same endpoint asked with
two values of the input gives two different views: gradio_client, as a script would)."""

import re
from collections import defaultdict
from pathlib import Path

import pytest
from gradio_client import Client

from studio.core import config

DATA = Path(__file__).parent / "data"
PLACEHOLDERS = str(DATA / "preflight" / "identity_placeholders.json")

# view (its elem_id) -> the fields whose change must recompute it
FOLLOWS = {
    # the report's views: a new model measures the file again; GRPO reads it as prompts; the fixes as typed
    "data-summary": ("model_name_or_path", "stage", "placeholder_values", "system_prompt"),
    "data-preview": ("model_name_or_path", "stage", "placeholder_values", "system_prompt"),
    "data-findings": ("model_name_or_path", "stage", "placeholder_values", "system_prompt"),
    # the mix table and the report-on-file list
    "mix-table": ("extra_datasets", "dataset_share", "replay", "replay_share"),
    "data-report-on": ("extra_datasets", "dataset_share", "replay", "replay_share"),
    # the advice and the estimates read every setting
    "hyper-advice": tuple(name for _, name, _ in config.all_fields()),
    "hyper-estimate": tuple(name for _, name, _ in config.all_fields()),
    # what the loaded file handed to the form, while the form still holds it (the user's later change is said)
    "data-applied": ("max_length", "validation_share", "test_share", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "num_train_epochs", "learning_rate", "eval_steps",
                     "early_stopping_patience", "replay_share"),
    # the hardware plan: the devices, the memory each needs, the precision
    "hyper-hardware": ("model_name_or_path", "finetuning_type", "per_device_train_batch_size", "max_length",
                       "precision", "gradient_checkpointing", "packing", "num_processes"),
}


@pytest.fixture(scope="module")
def built(tiny_model_dir):
    from studio.ui.app import build_app

    return build_app(model=str(tiny_model_dir))


def triggers_by_output(demo) -> dict[int, set[tuple[int, str]]]:
    """Each block's triggers: the (block id, event) pairs that end in a function writing it, through `.then`."""
    by_index = dict(demo.fns.items())  # a `.then` names the function it follows by this key
    fns = list(by_index.values())

    def own_targets(fn, depth=0) -> list:
        if fn.trigger_after is None or depth > 20:
            return list(fn.targets)
        return own_targets(by_index[fn.trigger_after], depth + 1)  # a `.then`: its target is (None, "then")

    found = defaultdict(set)
    for fn in fns:
        for block in fn.outputs:
            found[block._id].update(own_targets(fn))
    return found


def test_each_view_is_recomputed_when_any_input_it_reads_changes(built):
    form, blocks = built.studio_form, {b.elem_id: b for b in built.blocks.values() if getattr(b, "elem_id", None)}
    triggers = triggers_by_output(built)
    missing = []
    for view, fields in FOLLOWS.items():
        reached = triggers[blocks[view]._id]
        for name in fields:
            if not {(form[name]._id, "change"), (form[name]._id, "input")} & reached:
                missing.append(f"{view} <- {name}")
    assert not missing, missing
    # a file chosen with the upload button reaches the report, the mix table and the report-on-file list
    upload = (blocks["data-upload"]._id, "upload")
    assert [view for view in ("data-summary", "data-preview", "mix-table", "data-report-on")
            if upload not in triggers[blocks[view]._id]] == []


def test_the_data_tabs_applied_note_says_what_the_user_changed_after_the_file_handed_it_over():
    """The note said "The plan for these rows: 72 optimizer steps (epochs: 3 ...)" after the user had set 2 epochs;
    now it says the change, in the reader's language, and returns to the plan when the value is set back."""
    from studio.ui.data_tab import applied_note_now

    handed = {"note": "Applied to the settings: ... 72 optimizer steps (epochs: 3, learning rate 0.0002)",
              "values": {"num_train_epochs": 3.0, "learning_rate": 2e-4, "max_length": 512}, "language": "zh"}
    assert applied_note_now(handed, num_train_epochs=3, learning_rate=0.0002, max_length=512) == handed["note"]
    changed = applied_note_now(handed, num_train_epochs=2.0, learning_rate=0.0002, max_length=1024)
    assert "训练轮数 3 → 2" in changed and "512 → 1024" in changed and "72" not in changed
    assert "；" in changed and not [w for w in re.findall("[A-Za-z]+", changed) if w != "token"], changed
    assert applied_note_now(None, num_train_epochs=2) == ""  # nothing handed over: nothing to say


def test_no_field_has_two_events_that_wait_for_each_other(built):
    """Two "always_last" events on one field re-dispatch its change for each other when they end, so Gradio's page
    ran the advice, the hardware plan and the Data tab's note (and, on a model change, the whole load) in turn for
    as long as it was open. Each trigger keeps one such event; the browser test counts the page's calls at rest."""
    deferred = defaultdict(list)  # (block id, event) -> the "always_last" events on it
    for fn in built.fns.values():
        for target in fn.targets if fn.trigger_mode == "always_last" else ():
            deferred[tuple(target)].append(getattr(fn.fn, "__name__", "js"))
    assert {trigger: names for trigger, names in deferred.items() if len(names) > 1} == {}
    # the widest keeps waiting for the last change: a preset's thirty changes are one advice, not thirty
    modes = {fn.fn.__name__: fn.trigger_mode for fn in built.fns.values() if fn.fn is not None}
    assert modes["advice_view"] == "always_last" and modes["plan_now"] == modes["applied_note_now"] == "multiple"
    # a view that runs once per change runs those calls one at a time: the last change's view lands last
    assert all(fn.concurrency_limit == 1 for fn in built.fns.values() if fn.trigger_mode == "multiple")


def test_the_guard_keeps_the_wider_event_deferred_and_runs_the_other_once_per_change():
    import gradio as gr

    from studio.ui.triggers import one_deferred_event_per_trigger

    with gr.Blocks() as demo:
        number, other, out = gr.Number(), gr.Number(), gr.Markdown()
        gr.on([number.change, other.change], lambda a, b: "", [number, other], out)
        number.change(lambda a: "", number, out)
        other.input(lambda a: "", other, out, trigger_mode="always_last")  # another trigger: left alone
    assert one_deferred_event_per_trigger(demo) == ["<lambda>"]
    assert [fn.trigger_mode for fn in demo.fns.values()] == ["always_last", "multiple", "always_last"]
    assert [fn.concurrency_limit for fn in demo.fns.values()] == ["default", 1, "default"]  # one at a time, in order


def test_loading_the_same_file_again_keeps_the_note_of_what_it_handed_over(tiny_model_dir):
    """A second load of the file the form already received (Load pressed again, a model change's second trigger)
    hands nothing again and leaves the note alone; it blanked it, though the form still held those values. A file
    that fails to load hands nothing: its note says nothing."""
    from studio.ui.data_tab import load_and_apply

    first = load_and_apply("demo", model_name_or_path=str(tiny_model_dir))
    assert "optimizer steps" in first["applied_note"] and first["applied_values"]["values"]
    again = load_and_apply("demo", model_name_or_path=str(tiny_model_dir), applied=first["applied"],
                           applied_values=first["applied_values"])
    assert again["applied_values"] == first["applied_values"] and again["applied_note"] == {"__type__": "update"}
    broken = load_and_apply("/nowhere/missing.jsonl", model_name_or_path=str(tiny_model_dir),
                            applied=first["applied"], applied_values=first["applied_values"])
    assert broken["applied_note"] == "" and broken["applied_values"] is None


def test_a_view_fed_by_several_inputs_shows_the_last_change(built):
    """The events that recompute a view from its inputs' changes run one function: Gradio runs a function's calls
    one at a time, in order, so the view ends on the latest values. Separate functions ran side by side, and the
    one that started first (reading the other input as it was then) could land last (CI saw the preview without
    the system prompt just typed, after the placeholders were filled)."""
    form, blocks = built.studio_form, {b.elem_id: b for b in built.blocks.values() if getattr(b, "elem_id", None)}
    for view, fields in (("hyper-advice", tuple(name for _, name, _ in config.all_fields())),
                         ("data-preview", ("placeholder_values", "system_prompt"))):
        ids = {form[name]._id for name in fields}
        writers = {fn.concurrency_id for fn in built.fns.values() if blocks[view] in fn.outputs
                   and any(block in ids and event in ("change", "input") for block, event in fn.targets)}
        assert len(writers) == 1, f"{view}: {len(writers)} functions recompute it on a change"


def test_the_data_reports_loads_and_views_take_turns_in_the_order_the_user_acted(built):
    """Every event that writes the Data tab's preview (the first paint, each way into a load, the fixes, search,
    paging, another file's report) waits in one queue of one worker: a fix typed while a file is still being read
    lands after that load's report (which read the fixes as they were when it began), never under it."""
    blocks = {b.elem_id: b for b in built.blocks.values() if getattr(b, "elem_id", None)}
    writers = [fn for fn in built.fns.values() if blocks["data-preview"] in fn.outputs]
    assert len(writers) >= 8  # the first paint, demo, Load, upload, model, stage, repair, workshop, fixes, search...
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in writers} == {("data_report", 1)}, \
        [(fn.name, fn.concurrency_id, fn.concurrency_limit) for fn in writers]


def test_the_chat_notes_writers_take_turns(built):
    """The Chat tab's offer, the run picked and the comparison each load a pair and write the note: one queue of
    one worker, so the note is the last choice's."""
    blocks = {b.elem_id: b for b in built.blocks.values() if getattr(b, "elem_id", None)}
    writers = [fn for fn in built.fns.values() if blocks["chat-note"] in fn.outputs]
    assert len(writers) >= 3
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in writers} == {("chat_pair", 1)}, \
        [(fn.name, fn.concurrency_id, fn.concurrency_limit) for fn in writers]


def test_the_cost_line_reads_every_training_setting_when_the_train_tab_opens(built):
    """The cost line is made when the tab is opened (its settings all live on other tabs) and when a run ends."""
    form, blocks = built.studio_form, {b.elem_id: b for b in built.blocks.values() if getattr(b, "elem_id", None)}
    cost = blocks["train-cost"]
    writers = [fn for fn in built.fns.values() if cost in fn.outputs]
    assert writers and any(event == "select" for fn in writers for _, event in fn.targets)
    read = {block._id for fn in writers for block in fn.inputs}
    training = [name for name in form if config.field_section(name) != "generation"]
    assert not [name for name in training if form[name]._id not in read]


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def advice(client, model, **values):
    _, advice_text, estimate = client.predict(model_name_or_path=model, **values, api_name="/check_settings")
    return advice_text + "\n" + estimate


def cost(client, model, **values):
    return client.predict(model_name_or_path=model, **values, api_name="/train_cost")


def report(client, **values):
    summary, _, preview, *_ = client.predict(dataset_path=PLACEHOLDERS, model_name_or_path="", **values,
                                             api_name="/search_data")
    return summary + "\n" + preview["data"][0][1]


def mix(client, model, **values):
    table, note, report_on = client.predict(model_name_or_path=model, **values, api_name="/show_mix")
    return f"{table}\n{note}\n{report_on}"


# (input, value before, value after, the view as a function of the client, what it says before, and after)
ROWS = [
    ("max_steps", 7, 12, cost, "**7** optimizer steps", "**12** optimizer steps"),
    # the demo: identity data, replayed at any length (172 rows and 43 of the base model's answers)
    ("per_device_train_batch_size", 4, 8, cost, "**54** optimizer steps", "**27** optimizer steps"),
    ("num_train_epochs", 1.0, 2.0, cost, "**54** optimizer steps", "**108** optimizer steps"),
    ("learning_rate", 2e-4, 5e-3, advice, None, "is high for lora"),
    ("per_device_train_batch_size", 4, 8, advice, "Effective batch: **16**", "Effective batch: **32**"),
    ("placeholder_values", "", "name=Nova, author=Orbit Labs", report, "{{name}}", "I am Nova"),
    ("system_prompt", "", "You are Nova.", report, None, "system: You are Nova."),
    ("replay", "off", "on", mix, None, "Replay is on"),
]


@pytest.mark.parametrize("name,before,after,view,says_before,says_after", ROWS,
                         ids=[f"{row[0]}-{row[3].__name__}" for row in ROWS])
def test_the_view_says_what_the_input_now_holds(client, tiny_model_dir, name, before, after, view, says_before,
                                                says_after):
    fixed = {"gradient_accumulation_steps": 1, "max_steps": -1, "num_train_epochs": 1.0,
             "per_device_train_batch_size": 4} if view is cost else {}
    if view is report:
        shown = [view(client, **{name: value}) for value in (before, after)]
    else:
        shown = [view(client, str(tiny_model_dir), **{**fixed, name: value}) for value in (before, after)]
    assert shown[0] != shown[1], f"{name}: the view did not change"
    if says_before:
        assert says_before in shown[0] and says_before not in shown[1], shown
    assert says_after in shown[1] and says_after not in shown[0], shown
