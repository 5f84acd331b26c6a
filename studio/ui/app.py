"""The studio's page: one module per tab, placed in gr.Tabs. Settings components are shared by name."""

from __future__ import annotations

import collections
import contextvars
import functools
import inspect
import json
import logging
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import gradio as gr
from fastapi.middleware import Middleware

from studio.core.config import Settings, all_fields
from studio.core.paths import FOLDERS, clean_stale_temp, prepare_upload_dir
from studio.core.text import CATALOGUES, SOURCE_LANGUAGE, text_in
from studio.data.readers import MAX_FILE_MB
from studio.ui import chat_tab, data_tab, export_tab, hyperparams_tab, train_tab
from .forms import TabContext
from .mcp import McpKeyOnly, log_in_tool_calls, mend_schemas, offer_tools
from .text import I18N, lang, t, tr
from .triggers import one_deferred_event_per_trigger

TABS = (("data", data_tab), ("hyper", hyperparams_tab), ("train", train_tab), ("chat", chat_tab),
        ("export", export_tab))


def build_app(model: str | None = None) -> gr.Blocks:
    """The five tabs; the form starts with `model` (a built-in name, hub id or folder) or the settings' default."""
    defaults = Settings()
    if model:
        defaults = defaults.model_copy(update={"model": defaults.model.model_copy(
            update={"model_name_or_path": model})})
    # Uploads and files made for download are deleted after a day (checked hourly), and all of them at a restart:
    # each run keeps its own copy of its data.
    with gr.Blocks(title="Fine-tuning Studio", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(t("title"))
        gr.Markdown(t("subtitle"))
        parts, offers = [], {}
        with gr.Tabs() as tabs:
            for key, module in TABS:
                with gr.Tab(t(f"tab.{key}"), id=key) as tab:
                    parts.append(module.build(TabContext(demo, tab, defaults, tabs, offers)))
        built = {name: component for part in parts for name, component in part.form.items()}
        # Declaration order (studio/core/config.py) is the API's parameter order, whatever the layout.
        form = {name: built[name] for _, name, _ in all_fields()}
        for part in parts:
            part.wire(form)
    one_deferred_event_per_trigger(demo)  # else two views on one field re-run each other for as long as it is open
    demo.studio_form = form  # the settings' fields by name: what the views follow (tests/test_views.py)
    return demo


logger = logging.getLogger(__name__)
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


HOST_HEADER = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^\[\]:]+))(?::\d{1,5})?$")


def host_name(header: str) -> str:
    """'localhost:7860' -> 'localhost', '[::1]:7860' -> '::1'; anything else whole (never allowed): the name is
    parsed exactly, so '[::1].evil.example' is not taken for '::1'."""
    if header in LOOPBACK_NAMES:
        return header
    match = HOST_HEADER.match(header)
    return (match.group("v6") or match.group("name")) if match else header


class LoopbackHostOnly:
    """On a loopback bind, serve only requests addressed to this machine by name. Otherwise a web page elsewhere
    could point its own host name at 127.0.0.1 (DNS rebinding) and drive the studio from the user's browser."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host_name(host) not in LOOPBACK_NAMES:
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain")]})
                return await send({"type": "http.response.body", "body": b"Host not allowed"})
        await self.app(scope, receive, send)


# Gradio's page words its upload-size refusal and its toast title in English only. In a browser whose language has
# a catalogue they are replaced as they appear, from the same catalogues as every other text. Remove when Gradio
# translates them.
TOAST_WORDS = {code: {"title": text_in("toast.error", code), "tooLarge": text_in("upload.too_large", code)}
               for code in CATALOGUES if code != SOURCE_LANGUAGE}
TOAST_TRANSLATED = """() => {
  const words = %s[(navigator.language || "").toLowerCase().split("-")[0]];
  if (!words) return;
  const sizeRefusal = /^File\\(s\\) exceed the maximum allowed size of (.+?): (.+)$/;
  const translate = () => {
    document.querySelectorAll(".toast-title").forEach((el) => {
      const text = el.firstChild;
      if (text && text.nodeType === 3 && text.textContent.trim() === "Error") text.textContent = words.title + " ";
    });
    document.querySelectorAll("[data-testid=toast-text]").forEach((el) => {
      const m = el.textContent.match(sizeRefusal);
      if (m) el.textContent = words.tooLarge.replace("{size}", m[1]).replace("{files}", m[2]);
    });
  };
  new MutationObserver(translate).observe(document.body, {childList: true, subtree: true, characterData: true});
}""" % json.dumps(TOAST_WORDS, ensure_ascii=False)


def guarded(fn):
    """An event that answers with the studio's own message whatever goes wrong: an unexpected exception is logged
    whole and the reader gets a sentence in their language, never Python's text. The wrapper keeps the signature
    (functools.wraps), so Gradio still sees the API's parameter names and where to put the request."""
    def refusal(args, kwargs) -> gr.Error:
        request = kwargs.get("request") or next((a for a in args if isinstance(a, gr.Request)), None)
        logger.exception("event %s failed", getattr(fn, "__name__", fn))  # a real failure: its traceback, once
        return gr.Error(tr("error.unexpected", lang(request)), print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001 - the whole point: no raw exception reaches the client
                raise refusal(args, kwargs) from err
        return generator

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - the whole point: no raw exception reaches the client
            raise refusal(args, kwargs) from err
    return plain


def guard_events(demo: gr.Blocks) -> None:
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and not inspect.iscoroutinefunction(block_fn.fn):
            block_fn.fn = guarded(block_fn.fn)
    guard_values(demo)


_CALL_LANGUAGE = contextvars.ContextVar("studio_call_language", default="en")


def _beyond_64_bits(value, depth: int = 0) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if depth < 3 and isinstance(value, (list, tuple)):
        return any(_beyond_64_bits(item, depth + 1) for item in value[:10_000])
    if depth < 3 and isinstance(value, dict):
        return any(_beyond_64_bits(item, depth + 1) for item in list(value.values())[:10_000])
    return False


def guard_values(demo: gr.Blocks) -> None:
    """Gradio checks each value against its component (a choice not in the list, a number that is text) before
    the studio's function runs, and answers in English with Python's type names and the whole value echoed. Those
    refusals become the studio's one sentence in the caller's language, logged in one short line."""
    process_api, preprocess_data = demo.process_api, demo.preprocess_data

    async def process_in_language(block_fn, inputs, state=None, request=None, *args, **kwargs):
        first = request[0] if isinstance(request, list) and request else request
        token = _CALL_LANGUAGE.set(lang(first))
        try:
            return await process_api(block_fn, inputs, state, request, *args, **kwargs)
        finally:
            _CALL_LANGUAGE.reset(token)

    async def checked_values(block_fn, inputs, state, explicit_call=False):
        try:
            if any(_beyond_64_bits(value) for value in inputs or ()):
                # JSON allows 10**400; Python keeps it, a control echoing it back then breaks the reply's encoder
                raise ValueError("a number beyond 64 bits")
            values = preprocess_data(block_fn, inputs, state, explicit_call)
            return await values if inspect.isawaitable(values) else values  # async since Gradio 6
        except Exception as err:  # noqa: BLE001 - gr.Error included: its text is Gradio's, not the reader's
            name = getattr(block_fn, "api_name", None) or getattr(getattr(block_fn, "fn", None), "__name__", "?")
            logger.info("refused a value for %s: %s", name, str(err)[:160].replace("\n", " "))
            raise gr.Error(tr("error.bad_value", _CALL_LANGUAGE.get()), print_exception=False) from None

    demo.process_api, demo.preprocess_data = process_in_language, checked_values


class SameOriginOnly:
    """A browser names the page a request comes from (Origin, else Referer) on every cross-site POST and
    WebSocket handshake, and Origin on a script's cross-site GET. Without this check any web page the user visits
    could upload files into the studio home or start a run, and a page on another local port could read the
    studio's answers (Gradio's own CORS answers allow every localhost origin). A page's own links and navigation
    send no Origin on GET; clients that are not browsers (gradio_client, curl) send neither and pass."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("websocket", "http"):
            headers = dict(scope.get("headers") or [])
            reading = scope["type"] == "http" and scope.get("method") in ("GET", "HEAD", "OPTIONS")
            # a Referer on a GET is any link followed from elsewhere: only the Origin of a script's request counts
            source = (headers.get(b"origin") or (b"" if reading else headers.get(b"referer")) or b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1").lower()
            if source and urlsplit(source).netloc.lower() != host:
                logger.info("refused a %s request from another origin", scope.get("path", "")[:80])
                if scope["type"] == "websocket":
                    return await send({"type": "websocket.close", "code": 1008})
                return await _plain(send, 403, b"Origin not allowed")
        await self.app(scope, receive, send)


async def _plain(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


class LoginRateLimit:
    """Under --auth: after MAX_FAILURES wrong logins from one address within WINDOW_S, that address is refused
    (429) for LOCK_S, so a password cannot be guessed at thousands of tries a second."""
    MAX_FAILURES, WINDOW_S, LOCK_S = 5, 60.0, 60.0

    def __init__(self, app, clock=time.monotonic):
        self.app, self.clock = app, clock
        self.failures: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.locked_until: dict[str, float] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").rstrip("/") \
                .endswith("/login"):
            return await self.app(scope, receive, send)
        address, now = (scope.get("client") or ("?",))[0], self.clock()
        if self.locked_until.get(address, 0) > now:
            return await _plain(send, 429, b"Too many wrong logins; wait a minute and try again.")
        answered = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if answered.get("status") == 200:
            self.failures.pop(address, None)
            return
        tries = self.failures[address]
        tries.append(now)
        while tries and now - tries[0] > self.WINDOW_S:
            tries.popleft()
        if len(tries) >= self.MAX_FAILURES:
            self.locked_until[address] = now + self.LOCK_S
            tries.clear()
            logger.warning("logins from %s refused for %.0f s after %d wrong ones", address, self.LOCK_S,
                           self.MAX_FAILURES)


class UploadFolderError(RuntimeError):
    """The upload folder is not the studio's own; the message says which and why."""


def launch_app(host: str = "127.0.0.1", port: int = 7860, auth=None, share: bool = False, block: bool = True,
               data_dirs=(), max_upload_mb: float = MAX_FILE_MB, model: str | None = None,
               trusted_proxy: str | None = None, mcp: bool = False):
    """The server reads only its own folders plus `data_dirs` (see studio/core/paths.py) and takes uploads up to the
    size the data loader accepts; the form starts with `model` (default: the built-in starter). The client's
    address is the connection's own unless `trusted_proxy` names the proxy whose X-Forwarded-For may be believed:
    uvicorn believes that header from 127.0.0.1 by default, so a client on this machine could be anyone to the
    login limit. `mcp`: the agent's tools over MCP as well (studio/ui/mcp.py)."""
    if refusal := prepare_upload_dir():  # before the app exists: Gradio reads the folder when it is built
        raise UploadFolderError(refusal)
    FOLDERS.data_dirs, FOLDERS.confined = [Path(d).expanduser().resolve() for d in data_dirs], True
    clean_stale_temp()
    # read by uvicorn when Gradio makes its server; an empty value trusts no proxy (it matches no address)
    os.environ["FORWARDED_ALLOW_IPS"] = trusted_proxy or ""
    demo = build_app(model)
    guard_events(demo)
    demo.queue(default_concurrency_limit=4)
    loopback = host in LOOPBACK_NAMES and not share
    middleware = [Middleware(LoopbackHostOnly)] if loopback else []
    if not share:  # a share link's tunnel rewrites the host; the page it serves is the only origin there
        middleware.append(Middleware(SameOriginOnly))
    if auth:
        middleware.append(Middleware(LoginRateLimit))
    if mcp:
        offer_tools(demo)
        if auth:
            middleware.append(Middleware(McpKeyOnly, key=auth[1]))
    demo.launch(server_name=host, server_port=port, auth=auth, share=share, i18n=I18N,
                # show_error off: what Gradio itself raises (a value its own check refuses) shows as a plain
                # "Error", not as Python's text; the studio's messages are gr.Error, which always show.
                prevent_thread_lock=not block, show_error=False, js=TOAST_TRANSLATED,
                max_file_size=int(max_upload_mb * 1024**2),
                # No run folder is served: a file offered for download is copied to the upload folder first
                # (paths.offered), so log.txt or status.json cannot be fetched by path.
                allowed_paths=[],
                # Gradio's "Runs" (its call history) is untranslated and easily taken for the studio's own runs
                footer_links=["api", "gradio", "settings"], run_history=False,
                app_kwargs={"middleware": middleware} if middleware else None, mcp_server=mcp)
    if mcp:
        mend_schemas(demo)
    if mcp and auth:
        log_in_tool_calls(demo, auth)
    return demo
