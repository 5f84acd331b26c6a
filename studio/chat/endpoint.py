"""One call to an OpenAI-compatible chat endpoint (Ollama, LM Studio, llama.cpp, vLLM, a hosted API, or a run the
studio serves), for the judge and the data workshop's teacher. Plain HTTP (urllib): no client library to install.
Every fault is a message naming the address: unreachable, too slow (per call), a refused key, not the protocol.
The key is held in memory only."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

from studio.core.text import Msg

TIMEOUT_S = 60.0


class EndpointError(Exception):
    """The endpoint could not answer; the message (a Msg) says why and where."""


def completions_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def chat_completion(url: str, model: str, messages: list[dict], api_key: str = "", temperature: float = 0.0,
                    max_tokens: int = 256, timeout_s: float = TIMEOUT_S, key_variable: str = "") -> str:
    """The answer's text ('' for an empty answer). `key_variable`: the environment variable read when no key is
    given."""
    url = completions_url(url)
    key = api_key or (os.environ.get(key_variable, "") if key_variable else "")
    body = json.dumps({"model": model, "messages": messages, "temperature": temperature,
                       "max_tokens": max_tokens}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            raw = response.read(4_000_000)
    except urllib.error.HTTPError as err:
        key_name = "judge.bad_key" if err.code in (401, 403) else "judge.refused"
        raise EndpointError(Msg(key_name, status=err.code, url=url)) from None
    except TimeoutError:
        raise EndpointError(Msg("judge.timeout", seconds=timeout_s, url=url)) from None
    except (urllib.error.URLError, OSError) as err:
        if time.monotonic() - started >= timeout_s or "timed out" in str(err):
            raise EndpointError(Msg("judge.timeout", seconds=timeout_s, url=url)) from None
        raise EndpointError(Msg("judge.unreachable", url=url)) from None
    try:
        return json.loads(raw)["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise EndpointError(Msg("judge.not_protocol", url=url)) from None
