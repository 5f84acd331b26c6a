"""The studio's events as MCP tools (`launch.py --mcp`), through Gradio's MCP server: an agent checks settings,
loads and reports a data file, plans, starts, watches and stops a run, reads its verdict, chats with base and tuned,
and exports, by the same events the page uses, with the same confinement and caps. Each tool is named by its
event's `api_name`, described from the catalogue (`mcp.<api_name>`), and its parameters are the settings' field
names with their help. The other events stay on the page (and in the gradio_client API) only.

Loopback by default (launch.py refuses another host without a password). With a password the MCP endpoint asks
for it as `Authorization: Bearer <password>`, since an MCP client cannot log in through the page."""

from __future__ import annotations

import hmac
import typing
from typing import Literal

from studio.core.config import all_fields, field_text, optional_type
from studio.core.text import text_in

MCP_PATH = "/gradio_api/mcp"
TOOLS = ("check_settings", "hardware", "train_cost", "estimate_time", "load_data", "show_row", "start_training",
         "pilot_run", "poll_training", "stop_training", "resume_training", "list_runs", "run_history", "evaluate",
         "held_out_answers", "drift_check", "chat", "export_files", "trl_config", "export_preset",
         "load_shipped_preset")
FIELDS = {name for _, name, _ in all_fields()}
CHOICE_FIELDS = {name for _, name, info in all_fields() if typing.get_origin(optional_type(info.annotation)[0]) is Literal}


def offer_tools(demo) -> list[str]:
    """Name and describe the agent's tools before the server starts (Gradio reads the names then); hide the rest
    from the tool list. Returns the tools offered."""
    offered = []
    for block_fn in demo.fns.values():
        if block_fn.api_visibility != "public" or not block_fn.api_name or block_fn.fn is None:
            continue
        if block_fn.api_name not in TOOLS:
            _mark(block_fn.fn, "_mcp_type", "page")  # Gradio lists only functions whose type is "tool" (or none)
            continue
        _mark(block_fn.fn, "__name__", block_fn.api_name)
        _mark(block_fn.fn, "__doc__", tool_doc(block_fn))
        block_fn.api_description = text_in(f"mcp.{block_fn.api_name}", "en")
        offered.append(block_fn.api_name)
    return offered


def _mark(fn, attribute: str, value) -> None:
    try:
        setattr(fn, attribute, value)
    except (AttributeError, TypeError):  # a bound method or builtin: it keeps its own
        pass


def tool_doc(block_fn) -> str:
    """A docstring Gradio reads the parameters' descriptions from: each settings field with its help."""
    import inspect

    try:
        names = list(inspect.signature(block_fn.fn).parameters)
    except (TypeError, ValueError):
        names = []
    lines = [f"    {name}: {' '.join(field_text(name, 'help').split())}" for name in names if name in FIELDS]
    return text_in(f"mcp.{block_fn.api_name}", "en") + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")


class McpKeyOnly:
    """Under a password: the MCP endpoint answers only a request that carries it (`Authorization: Bearer ...`)."""

    def __init__(self, app, key: str):
        self.app, self.key = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("path", "").startswith(MCP_PATH):
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.key):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                return await send({"type": "http.response.body",
                                   "body": b'{"error": "this MCP server needs the studio\'s password as a bearer key"}'})
        await self.app(scope, receive, send)


def mend_schemas(demo) -> None:
    """The tools' input schemas say what the settings accept, not what the page's components happen to show, so
    the settings' own check (every problem at once, by field) answers a call rather than a schema error:
    - a JSON component's value has an empty type (`"type": {}`), which is no JSON Schema: any JSON, no type named;
    - a box that takes any text (a model folder, a data path) has its suggestions as an `enum`: only a field whose
      values are fixed choices keeps one;
    - a field left empty (None) is the setting's own default, so every value may be null."""
    server = getattr(demo, "mcp_server_obj", None)
    if server is None:
        return
    original = server.get_input_schema

    def mended(tool_name, parameters=None):
        schema, positions = original(tool_name, parameters)
        for name, prop in schema.get("properties", {}).items():
            kind = prop.get("type")
            if not isinstance(kind, (str, list)):
                prop.pop("type", None)
            elif isinstance(kind, str) and kind != "null":
                prop["type"] = [kind, "null"]
            if "enum" in prop and name not in CHOICE_FIELDS:
                prop.pop("enum")
            elif "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        return schema, positions

    server.get_input_schema = mended
    popped = server.pop_returned_state

    def without_state(components, data):
        # A queued event's answer reaches the MCP server through Gradio's client, which already leaves a gr.State
        # output out (the Data tab's "file whose plan the form has"): popping it again would fail the call.
        return popped(components, data) if len(data) == len(components) else data

    server.pop_returned_state = without_state


def log_in_tool_calls(demo, auth: tuple[str, str]) -> None:
    """Gradio's MCP server calls queued events through a client of this same server, which the page's login
    would refuse: that client logs in with the studio's password."""
    server = getattr(demo, "mcp_server_obj", None)
    if server is None:
        return
    made = {}

    def logged_in():
        if "client" not in made:
            from gradio_client import Client

            made["client"] = Client(server.local_url or demo.local_url, auth=auth, download_files=False,
                                    verbose=False, analytics_enabled=False, ssl_verify=False,
                                    headers={"x-gradio-user": "mcp"})
        return made["client"]

    server._get_or_create_client = logged_in
