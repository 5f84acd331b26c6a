"""One deferred event per trigger: a guard against Gradio 6's page re-running events forever.

An event in "always_last" mode (Gradio's default for `.change`) that is triggered while it runs is deferred, and
when it ends the page dispatches the *trigger* again, which starts every event on that trigger, not only the
deferred one. Two such events on one field (the advice and the hardware plan on the cutoff, say) each find the
other running, each defers, and each re-dispatches the field's change when it ends: they then run in turn, one after
the other, for as long as the page is open (measured: about five runs a second of the advice, the plan and the Data
tab's note after a model change, until the tab was closed; a model change re-read the data again and again).

So each trigger keeps at most one "always_last" event: the one that listens to the most fields (the advice, which a
preset or Reset triggers thirty times at once) keeps it, and each other event that shares a trigger with a kept one
runs in "multiple" mode: once per change, its calls one at a time in the order of the changes (the app's default
would run four at once, and an older view could land last), so the last change still lands last, and it never
re-dispatches a trigger."""

from __future__ import annotations

from collections import defaultdict

import gradio as gr

DEFERRED = "always_last"


def one_deferred_event_per_trigger(demo: gr.Blocks) -> list[str]:
    """Leaves one "always_last" event per trigger (the widest first); the others run once per change. Returns the
    names of the events changed (for the log and the test)."""
    claimed: set[tuple] = set()
    changed = []
    deferred = [fn for fn in demo.fns.values() if fn.trigger_mode == DEFERRED]
    for fn in sorted(deferred, key=lambda fn: -len(fn.targets)):  # stable: ties keep the order they were wired
        targets = {tuple(target) for target in fn.targets}
        if targets & claimed:
            fn.trigger_mode = "multiple"
            if fn.concurrency_limit == "default":  # the app's default runs 4 at once: one at a time keeps the order
                fn.concurrency_limit = 1
            changed.append(getattr(fn.fn, "__name__", str(fn.fn)))
        else:
            claimed |= targets
    return changed


def deferred_events_by_trigger(demo: gr.Blocks) -> dict[tuple, list[str]]:
    """The "always_last" events on each trigger (block id, event name): more than one on a trigger loops."""
    found = defaultdict(list)
    for fn in demo.fns.values():
        if fn.trigger_mode == DEFERRED:
            for target in fn.targets:
                found[tuple(target)].append(getattr(fn.fn, "__name__", str(fn.fn)))
    return dict(found)
