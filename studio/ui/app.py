"""The studio's page: one module per tab, placed in gr.Tabs. Settings components are shared by name."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
from pathlib import Path

import gradio as gr
from fastapi.middleware import Middleware

from ..config import Settings, all_fields
from ..readers import MAX_FILE_MB
from ..paths import FOLDERS, clean_stale_temp, prepare_upload_dir
from ..runs import runs_root
from ..text import CATALOGUES, SOURCE_LANGUAGE, text_in
from . import chat_tab, data_tab, export_tab, hyperparams_tab, train_tab
from .forms import TabContext
from .text import I18N, lang, t, tr

TABS = (("data", data_tab), ("hyper", hyperparams_tab), ("train", train_tab), ("chat", chat_tab),
        ("export", export_tab))


def build_app() -> gr.Blocks:
    defaults = Settings()
    # Uploads and files made for download are deleted after a day (checked hourly), and all of them at a restart:
    # each run keeps its own copy of its data.
    with gr.Blocks(title="Fine-tuning Studio", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(t("title"))
        gr.Markdown(t("subtitle"))
        parts = []
        with gr.Tabs():
            for key, module in TABS:
                with gr.Tab(t(f"tab.{key}"), id=key) as tab:
                    parts.append(module.build(TabContext(demo, tab, defaults)))
        built = {name: component for part in parts for name, component in part.form.items()}
        # Declaration order (studio/config.py) is the API's parameter order, whatever the layout.
        form = {name: built[name] for _, name, _ in all_fields()}
        for part in parts:
            part.wire(form)
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
        logger.exception("event %s failed", getattr(fn, "__name__", fn))
        return gr.Error(tr("error.unexpected", lang(request)))

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


class UploadFolderError(RuntimeError):
    """The upload folder is not the studio's own; the message says which and why."""


def launch_app(host: str = "127.0.0.1", port: int = 7860, auth=None, share: bool = False, block: bool = True,
               data_dirs=(), max_upload_mb: float = MAX_FILE_MB):
    """The server reads only its own folders plus `data_dirs` (see studio/paths.py) and takes uploads up to the
    size the data loader accepts."""
    if refusal := prepare_upload_dir():  # before the app exists: Gradio reads the folder when it is built
        raise UploadFolderError(refusal)
    FOLDERS.data_dirs, FOLDERS.confined = [Path(d).expanduser().resolve() for d in data_dirs], True
    clean_stale_temp()
    demo = build_app()
    guard_events(demo)
    demo.queue(default_concurrency_limit=4)
    loopback = host in LOOPBACK_NAMES and not share
    demo.launch(server_name=host, server_port=port, auth=auth, share=share, i18n=I18N,
                # show_error off: what Gradio itself raises (a value its own check refuses) shows as a plain
                # "Error", not as Python's text; the studio's messages are gr.Error, which always show.
                prevent_thread_lock=not block, show_error=False, js=TOAST_TRANSLATED,
                max_file_size=int(max_upload_mb * 1024**2),
                allowed_paths=[str(runs_root().resolve())],  # run files offered for download
                app_kwargs={"middleware": [Middleware(LoopbackHostOnly)]} if loopback else None)
    return demo
