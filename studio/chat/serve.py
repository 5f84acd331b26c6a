"""Any finished run served over the OpenAI chat-completions protocol (`launch.py serve RUN`, or the Serve switch on
the Export tab), so an app, an agent or a notebook uses the tuned model with the client it already has.

- `GET /v1/models`: the run's name (the tuned model) and `NAME:base` (its base model).
- `POST /v1/chat/completions`: messages, temperature, top_p, max_tokens (or max_completion_tokens), stop, seed,
  stream (server-sent events, ending `data: [DONE]`), with usage counts. The run's system prompt unless the
  request brings one.
- One engine with the Chat tab (studio/chat/loaded.py: one copy of the weights, the adapter toggled), the same
  caps (message, history, context and answer time), a bounded number of answers at once and a bounded queue: a
  request past it gets 429, a model that cannot be loaded 503, each in the protocol's JSON error shape.
- Loopback by default, and then only requests addressed to this machine by name (DNS rebinding); any other host
  needs an API key, asked as `Authorization: Bearer KEY`. The key is never written anywhere.
"""


import asyncio
import hmac
import json
import shlex
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from studio.core.config import GenerationSettings
from studio.core.runs import RunFolder
from studio.core.text import Msg, render
from .chat import ChatPair, stream, text_problem, token_problem

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_ACTIVE = 2  # answers decoded at once (they take turns step by step on the one copy of the weights)
MAX_WAITING = 8  # requests queued behind them; past that a client is told to come back (429)
MAX_STOPS = 4  # as OpenAI's API
BASE_SUFFIX = ":base"


class ApiError(Exception):
    """A refusal in the protocol's own shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Served:
    """What one server serves: a run, under its folder's name, with its own system prompt."""
    run_dir: Path
    pair_of: Callable[[], ChatPair]  # the shared engine, loaded when first asked
    system_prompt: str = ""
    name: str = ""

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.name = self.name or self.run_dir.name

    @property
    def model_ids(self) -> tuple[str, str]:
        return self.name, self.name + BASE_SUFFIX

    @classmethod
    def of_run(cls, run_dir: "str | Path", pair_of: Callable[[], ChatPair]) -> "Served":
        settings = RunFolder.of(run_dir)[0].settings()
        return cls(Path(run_dir), pair_of, settings.data.system_prompt if settings is not None else "")


@dataclass
class Completion:
    """A request, checked: which side answers, the conversation as the model sees it, and how."""
    model: str
    tuned: bool
    messages: list[dict]
    settings: GenerationSettings
    stop: list[str] = field(default_factory=list)
    stream: bool = False


def parse_request(body, served: Served) -> Completion:
    """A chat-completions body, every check before any model work; an ApiError names the parameter at fault."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if model not in served.model_ids:
        raise ApiError(404, f"The model {model!r} is not served here; the models are "
                            f"{served.model_ids[0]!r} (tuned) and {served.model_ids[1]!r} (its base).",
                       param="model", code="model_not_found")
    if body.get("n", 1) != 1:
        raise ApiError(400, "Only one answer per request (n=1) is served.", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(
                m.get("content"), str) for m in messages):
        raise ApiError(400, "messages must be a non-empty list of {role: system|user|assistant, content: text}.",
                       param="messages")
    if messages[-1]["role"] != "user":
        raise ApiError(400, "The last message must be the user's.", param="messages")
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    history = [m for m in messages[:-1] if m["role"] != "system"]
    if problem := text_problem(system, history, messages[-1]["content"]):
        raise ApiError(400, render(problem, "en"), param="messages", code="too_long")
    if system is None and served.system_prompt.strip():  # the run was trained with this system prompt
        messages = [{"role": "system", "content": served.system_prompt}, *messages]
    return Completion(model, model == served.model_ids[0], [{"role": m["role"], "content": m["content"]}
                                                             for m in messages],
                      generation_settings(body), stop_strings(body.get("stop")), bool(body.get("stream", False)))


def generation_settings(body: dict) -> GenerationSettings:
    """The protocol's sampling parameters as the Chat tab's settings, checked by the same limits. Absent
    parameters keep the Chat tab's defaults (greedy: the same answer to the same question)."""
    from pydantic import ValidationError

    given = {"max_new_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
             "temperature": body.get("temperature"), "top_p": body.get("top_p"), "sampling_seed": body.get("seed")}
    names = {"max_new_tokens": "max_tokens", "sampling_seed": "seed"}
    try:
        return GenerationSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        param = names.get(first["loc"][0], first["loc"][0])
        raise ApiError(400, f"{param}: {first['msg']}", param=param) from None


def stop_strings(stop) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, f"stop must be a string or a list of up to {MAX_STOPS} non-empty strings.", param="stop")
    return stops


class StopText:
    """Text as it is generated, held back only as far as a stop string could still be forming in it."""

    def __init__(self, stops: list[str]):
        self.stops, self.sent, self.stopped = stops, 0, False
        self.hold = max((len(s) for s in stops), default=1) - 1

    def new_text(self, text: str, final: bool) -> str:
        """The part of `text` (the whole answer so far) not yet sent that may be sent now."""
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, text, final = True, text[:cut], True
        ready = len(text) if final else max(self.sent, len(text) - self.hold)
        piece, self.sent = text[self.sent:ready], max(self.sent, ready)
        return piece


def answer_stream(pair: ChatPair, request: Completion, halt: threading.Event):
    """(new text, answer so far, finished) after every decoded token of the requested side."""
    if problem := token_problem(pair, request.messages, request.settings.max_new_tokens):
        raise ApiError(400, render(problem, "en"), param="messages", code="context_length_exceeded")
    if request.tuned and pair.tuned_model is None and not pair.shares_weights:
        raise ApiError(404, "This run has no tuned weights to serve.", param="model", code="model_not_found")
    text, answer = StopText(request.stop), None
    for (answer,) in stream([(lambda: pair.side(request.tuned), request.messages)], pair.tokenizer,
                            request.settings, stop=halt):
        piece = text.new_text(answer.text, final=False)
        if text.stopped:
            break
        yield piece, answer, False
    yield text.new_text(answer.text if answer else "", final=True), answer, text.stopped


def prompt_tokens(pair: ChatPair, messages: list[dict]) -> int:
    from .chat import generation_prompt

    return len(pair.tokenizer(generation_prompt(pair.tokenizer, messages), add_special_tokens=False)["input_ids"])


def finish_reason(answer, stopped: bool, settings: GenerationSettings) -> str:
    """"stop": the model ended its answer or a stop string did; "length": the token cap or the time cap did."""
    if stopped or answer is None:
        return "stop"
    return "length" if answer.timed_out or answer.new_tokens >= settings.max_new_tokens else "stop"


def completion_body(request: Completion, text: str, answer, stopped: bool, prompt: int, ident: str) -> dict:
    completion = answer.new_tokens if answer is not None else 0
    return {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason(answer, stopped, request.settings)}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}


def chunk(request: Completion, ident: str, delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
    body = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": request.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


class Gate:
    """At most MAX_ACTIVE answers at once and MAX_WAITING behind them; the next is refused at once."""

    def __init__(self, active: int = MAX_ACTIVE, waiting: int = MAX_WAITING):
        self.active, self.limit, self.inside = asyncio.Semaphore(active), active + waiting, 0

    def enter(self) -> None:
        if self.inside >= self.limit:
            raise ApiError(429, "The server is busy: every answer slot and queue place is taken. Try again shortly.",
                           kind="rate_limit_error", code="queue_full")
        self.inside += 1

    def leave(self) -> None:
        self.inside -= 1


def build_api(served: Served, api_key: str | None = None, loopback: bool = True):
    """The ASGI app: FastAPI (it comes with Gradio)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI(title="Fine-tuning Studio: OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    gate = Gate()
    key = f"Bearer {api_key}".encode() if api_key else None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
        if loopback and host not in LOOPBACK:
            return JSONResponse(ApiError(403, "Host not allowed.", code="host_not_allowed").body(), 403)
        if key is not None and not hmac.compare_digest(request.headers.get("authorization", "").encode(), key):
            return JSONResponse(ApiError(401, "Incorrect API key: send it as 'Authorization: Bearer KEY'.",
                                         kind="authentication_error", code="invalid_api_key").body(), 401)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def refused(request, err: ApiError):
        headers = {"Retry-After": "2"} if err.status == 429 else None
        return JSONResponse(err.body(), err.status, headers=headers)

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [{"id": ident, "object": "model", "created": 0,
                                            "owned_by": "fine-tuning-studio"} for ident in served.model_ids]}

    @app.post("/v1/chat/completions")
    async def complete(request: Request):
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not JSON.") from None
        asked = parse_request(body, served)
        gate.enter()
        try:
            await gate.active.acquire()
        except BaseException:
            gate.leave()
            raise
        if asked.stream:
            return StreamingResponse(_streamed(served, asked, gate, request), media_type="text/event-stream")
        try:
            return await asyncio.to_thread(_whole, served, asked)
        finally:
            gate.active.release()
            gate.leave()

    return app


def _pair(served: Served) -> ChatPair:
    try:
        return served.pair_of()
    except Exception as err:  # a run without weights, a base model that cannot be had, training holding the memory
        message = render(err.args[0], "en") if err.args and isinstance(err.args[0], Msg) else str(err)
        raise ApiError(503, f"The model could not be loaded: {message}", kind="server_error",
                       code="model_unavailable") from None


def _whole(served: Served, asked: Completion) -> dict:
    pair = _pair(served)
    text, answer, stopped = "", None, False
    for piece, answer, stopped in answer_stream(pair, asked, threading.Event()):
        text += piece
    return completion_body(asked, text, answer, stopped, prompt_tokens(pair, asked.messages),
                           f"chatcmpl-{uuid.uuid4().hex}")


async def _streamed(served: Served, asked: Completion, gate: Gate, request):
    """Server-sent events from the decoding thread; a client that goes away stops the decoding."""
    loop, queue, halt = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
    ident = f"chatcmpl-{uuid.uuid4().hex}"

    def decode():
        try:
            pair = _pair(served)
            prompt = prompt_tokens(pair, asked.messages)
            for piece, answer, stopped in answer_stream(pair, asked, halt):
                loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece, answer, stopped, prompt))
        except ApiError as err:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", err))
        except Exception as err:  # noqa: BLE001 - said in the stream, never a dropped connection
            loop.call_soon_threadsafe(queue.put_nowait, ("error", ApiError(500, str(err), kind="server_error")))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("end",))

    worker = threading.Thread(target=decode, daemon=True)
    worker.start()
    try:
        yield chunk(asked, ident, {"role": "assistant", "content": ""})
        last = None
        while True:
            item = await queue.get()
            if item[0] == "end":
                break
            if item[0] == "error":
                yield f"data: {json.dumps(item[1].body())}\n\n"
                continue
            _, piece, answer, stopped, prompt = item
            last = (answer, stopped, prompt)
            if piece:
                yield chunk(asked, ident, {"content": piece})
            if await request.is_disconnected():
                halt.set()
        if last is not None:
            answer, stopped, prompt = last
            completion = answer.new_tokens if answer is not None else 0
            yield chunk(asked, ident, {}, finish_reason(answer, stopped, asked.settings),
                        {"prompt_tokens": prompt, "completion_tokens": completion,
                         "total_tokens": prompt + completion})
        yield "data: [DONE]\n\n"
    finally:
        halt.set()
        worker.join(timeout=1)
        gate.active.release()
        gate.leave()


# ---------------------------------------------------------------- running it

@dataclass
class Serving:
    """A server running in a thread (the Export tab's switch)."""
    served: Served
    host: str
    port: int
    server: object
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def key_refusal(host: str, api_key: str | None) -> Msg | None:
    """Another host than this machine needs an API key, as the page needs a password."""
    if host not in LOOPBACK and not (api_key or "").strip():
        return Msg("serve.needs_key", host=host)
    return None


def start(served: Served, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          block: bool = False) -> Serving | None:
    import uvicorn  # comes with Gradio

    if refusal := key_refusal(host, api_key):
        raise ValueError(refusal)
    config = uvicorn.Config(build_api(served, api_key, loopback=host in LOOPBACK), host=host, port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if block:
        server.run()
        return None
    thread = threading.Thread(target=server.run, daemon=True, name="studio-serve")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise OSError(Msg("serve.not_started", port=port))
    return Serving(served, host, port, server, thread)


def examples(serving: Serving, prompt: str = "Who are you?") -> dict:
    """What the page shows to copy: the base URL, the model ids, a curl line and a Python snippet, asking
    `prompt` (the reader's language's)."""
    tuned, base = serving.served.model_ids
    said = json.dumps(prompt, ensure_ascii=False)
    body = json.dumps({"model": tuned, "messages": [{"role": "user", "content": prompt}]}, ensure_ascii=False)
    curl = f"curl {serving.base_url}/chat/completions -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    python = (f"from openai import OpenAI\n\nclient = OpenAI(base_url=\"{serving.base_url}\", api_key=\"KEY\")\n"
              f"reply = client.chat.completions.create(model=\"{tuned}\",\n"
              f"    messages=[{{\"role\": \"user\", \"content\": {said}}}])\n"
              f"print(reply.choices[0].message.content)")
    return {"base_url": serving.base_url, "tuned": tuned, "base": base, "curl": curl, "python": python}


# ---------------------------------------------------------------- the Export tab's switch: one served run

_SERVING: dict = {}
_SWITCH = threading.Lock()


def serve_run(run_dir: "str | Path", port: int = 8000) -> Serving:
    """Serve this run on this machine (the page's switch; another host is the command line's, with a key),
    sharing the Chat tab's loaded model. A run served before is stopped first."""
    from .loaded import get_pair

    with _SWITCH:
        if (current := _SERVING.pop("serving", None)) is not None:
            current.stop()
        served = Served.of_run(run_dir, lambda: get_pair(str(run_dir)))
        _SERVING["serving"] = start(served, "127.0.0.1", int(port))
        return _SERVING["serving"]


def stop_serving() -> bool:
    with _SWITCH:
        current = _SERVING.pop("serving", None)
        if current is not None:
            current.stop()
        return current is not None


def serving_now() -> Serving | None:
    return _SERVING.get("serving")
