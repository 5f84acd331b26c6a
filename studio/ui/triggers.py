"""One deferred event per trigger: a guard against Gradio 6's page re-running events forever.

An event in "always_last" mode (Gradio's default for `.change`) that is triggered while it runs is deferred, and
when it ends the page dispatches the *trigger* again, which starts every event on that trigger, not only the
deferred one. Two such events on one field (the advice and the hardware plan on the cutoff, say) each find the
other running, each defers, and each re-dispatches the field's change when it ends: they then run in turn, one after
the other, for as long as the page is open (measured: about ten calls a second in all of the advice, the plan and
the Data tab's note once the model's report was cached; on the model field, the data was loaded again and again).

So each trigger keeps at most one "always_last" event: the one that listens to the most fields (the advice, which a
preset or Reset triggers thirty times at once) keeps it, and each other event that shares a trigger with a kept one
runs in "multiple" mode: once per change, its calls one at a time in the order of the changes (the app's default
would run four at once, and an older view could land last), so the last change still lands last, and it never
re-dispatches a trigger."""

from __future__ import annotations

import gradio as gr

DEFERRED = "always_last"


def one_deferred_event_per_trigger(demo: gr.Blocks) -> list[str]:
    """Leaves one "always_last" event per trigger (the widest first); the others run once per change. Returns the
    names of the events changed."""
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

