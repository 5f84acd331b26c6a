"""Handlers that return their outputs by name. A tab names its output components once
(`Outputs(summary=..., problems=...)`); a handler returns `{name: value}` and leaves out what it does not change;
`outputs.wire(handler)` is what the event calls, with `outputs=outputs.list`. The page and the API still get the
values in the order the components were named, so `gradio_client` callers see the same endpoint."""

from __future__ import annotations

import functools
import inspect

import gradio as gr


class Outputs:
    def __init__(self, **components):
        self.components = components

    @property
    def list(self) -> list:
        return list(self.components.values())

    def __getitem__(self, name: str):
        return self.components[name]

    def ordered(self, values: dict):
        """The values in the components' order; a name the handler left out keeps its component as it is."""
        unknown = set(values) - set(self.components)
        if unknown:  # a misspelt name would otherwise be dropped without a word
            raise KeyError(f"no output named {sorted(unknown)}")
        out = tuple(values.get(name, gr.skip()) for name in self.components)
        return out[0] if len(out) == 1 else out

    def wire(self, handler):
        """The handler as Gradio calls it; its signature (inputs, gr.Request, gr.Progress) is Gradio's to read."""
        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def streamed(*args, **kwargs):
                for values in handler(*args, **kwargs):
                    yield self.ordered(values)
            return streamed

        @functools.wraps(handler)
        def called(*args, **kwargs):
            return self.ordered(handler(*args, **kwargs))
        return called
