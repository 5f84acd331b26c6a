"""Issue 55: a finished run served over the OpenAI chat-completions protocol, checked with the official `openai`
client (a client nobody here wrote) and with raw HTTP: the models, a completion, streaming, the system prompt, stop
strings, the key rule off this machine, the caps, and 20 requests at once answered or refused cleanly."""

import concurrent.futures
import json

import httpx
import pytest

from conftest import free_port
from studio.chat import serve
from studio.chat.chat import ChatPair

openai = pytest.importorskip("openai", reason="the openai package is in the test extra; install it to run this")


@pytest.fixture(scope="module")
def served(lora_run):
    pair = {}

    def pair_of():
        if "pair" not in pair:
            pair["pair"] = ChatPair.from_run(lora_run, progress=lambda _: None)
        return pair["pair"]

    running = serve.start(serve.Served.of_run(lora_run, pair_of), port=free_port())
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served.base_url, api_key="not-needed-on-this-machine", max_retries=0)


def test_the_models_are_the_run_and_its_base(client, served, lora_run):
    assert sorted(m.id for m in client.models.list().data) == sorted([lora_run.name, f"{lora_run.name}:base"])


def test_a_completion_with_usage_and_the_same_answer_streamed(client, lora_run):
    asked = dict(model=lora_run.name, messages=[{"role": "user", "content": "Who are you?"}], max_tokens=12)
    reply = client.chat.completions.create(**asked)
    text = reply.choices[0].message.content
    assert isinstance(text, str) and reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 3
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.choices[0].finish_reason in ("stop", "length")
    pieces = list(client.chat.completions.create(**asked, stream=True))
    streamed = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert streamed == text  # greedy: the same answer, token by token
    assert pieces[-1].choices[0].finish_reason == reply.choices[0].finish_reason
    base = client.chat.completions.create(**{**asked, "model": f"{lora_run.name}:base"})
    assert base.model == f"{lora_run.name}:base"


def test_a_stop_string_ends_the_answer_before_it(client, lora_run):
    asked = dict(model=lora_run.name, messages=[{"role": "user", "content": "Tell me something."}], max_tokens=24)
    full = client.chat.completions.create(**asked).choices[0].message.content
    # two whole characters after the third ("\ufffd": bytes a random model emitted that make no character)
    starts = [i for i in range(3, len(full) - 1) if "\ufffd" not in full[i:i + 2]]
    if not starts:
        pytest.skip(f"the tiny model's answer is too short to cut: {full!r}")
    stop = full[starts[0]:starts[0] + 2]
    cut = client.chat.completions.create(**asked, stop=[stop])
    text = cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop" and stop not in text and len(text) < len(full)
    if "\ufffd" not in full[:full.find(stop) + 1]:
        assert text == full[:full.find(stop)]
    # (bytes that make no character decode otherwise a token at a time than at once: the cut may then differ)
    streamed = "".join(p.choices[0].delta.content or "" for p in
                       client.chat.completions.create(**asked, stop=stop, stream=True) if p.choices)
    assert streamed == text  # never a partial stop string sent ahead


def test_the_runs_system_prompt_unless_the_request_brings_one(tmp_path):
    run = serve.Served(tmp_path / "nova", pair_of=lambda: None, system_prompt="You are Nova.")
    plain = serve.parse_request({"model": "nova", "messages": [{"role": "user", "content": "Hi"}]}, run)
    assert plain.messages[0] == {"role": "system", "content": "You are Nova."} and plain.tuned
    own = serve.parse_request({"model": "nova:base", "messages": [{"role": "system", "content": "Be brief."},
                                                                  {"role": "user", "content": "Hi"}]}, run)
    assert own.messages[0]["content"] == "Be brief." and len(own.messages) == 2 and not own.tuned


@pytest.mark.parametrize("body, status, param", [
    ({"model": "nobody", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ({"messages": [{"role": "user", "content": "x" * 40_000}]}, 400, "messages"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10 ** 6}, 400, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, 400, "messages"),
    ({"messages": "hello"}, 400, "messages"),
])
def test_bad_requests_are_refused_in_the_protocols_error_shape(served, lora_run, body, status, param):
    body = {"model": lora_run.name, **body}
    answer = httpx.post(f"{served.base_url}/chat/completions", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_a_page_elsewhere_cannot_reach_the_loopback_server(served):
    """DNS rebinding: a web page that points its own name at 127.0.0.1 is refused by the Host check."""
    answer = httpx.get(f"{served.base_url}/models", headers={"host": "evil.example:80"})
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "host_not_allowed"


def test_another_host_needs_a_key_and_then_the_key_is_asked(lora_run):
    assert serve.key_refusal("0.0.0.0", None) is not None and serve.key_refusal("127.0.0.1", None) is None
    with pytest.raises(ValueError):
        serve.start(serve.Served.of_run(lora_run, lambda: None), host="0.0.0.0", port=free_port())
    locked = serve.start(serve.Served.of_run(lora_run, lambda: None), port=free_port(), api_key="k3y")
    try:
        assert httpx.get(f"{locked.base_url}/models").status_code == 401
        assert httpx.get(f"{locked.base_url}/models", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{locked.base_url}/models", headers={"authorization": "Bearer k3y"}).status_code == 200
    finally:
        locked.stop()


def test_twenty_requests_at_once_are_answered_or_refused_cleanly(served, lora_run):
    body = {"model": lora_run.name, "messages": [{"role": "user", "content": "Count."}], "max_tokens": 6}

    def ask(i):
        answer = httpx.post(f"{served.base_url}/chat/completions", json={**body, "seed": i}, timeout=120)
        return answer.status_code, answer.json()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(ask, range(20)))
    statuses = [status for status, _ in results]
    assert set(statuses) <= {200, 429} and statuses.count(200) >= serve.MAX_ACTIVE
    for status, body in results:
        assert ("choices" in body) if status == 200 else body["error"]["code"] == "queue_full"
    assert httpx.get(f"{served.base_url}/models").status_code == 200  # and the server is still there


def test_a_model_that_cannot_be_loaded_is_a_503_not_a_dropped_connection(lora_run):
    def broken():
        raise RuntimeError("no weights here")

    running = serve.start(serve.Served.of_run(lora_run, broken), port=free_port())
    try:
        body = {"model": lora_run.name, "messages": [{"role": "user", "content": "Hi"}]}
        answer = httpx.post(f"{running.base_url}/chat/completions", json=body, timeout=30)
        assert answer.status_code == 503 and "no weights here" in answer.json()["error"]["message"]
        streamed = httpx.post(f"{running.base_url}/chat/completions", json={**body, "stream": True}, timeout=30)
        events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and any("no weights here" in e for e in events)
        assert json.loads(events[0])["object"] == "chat.completion.chunk"
    finally:
        running.stop()


# ---------------------------------------------------------------- the page: Serve on Export, the judge in Chat

def test_the_export_tab_serves_a_run_and_the_chat_tab_judges_it_in_both_languages(app_url, chat_run):
    """One click serves the run (the Chat tab's engine); the openai client reads it; the judge in Chat uses that
    very endpoint, and answers in the reader's language; Stop serving ends it."""
    from gradio_client import Client

    en = Client(app_url, verbose=False)
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    name = chat_run.rstrip("/").rsplit("/", 1)[-1]
    note, curl, python = en.predict(run_dir=chat_run, port=free_port(), api_name="/serve_run")
    assert "Serving at" in note and name in curl and "OpenAI(base_url=" in python
    url = note.split("**")[1]
    reply = openai.OpenAI(base_url=url, api_key="x", max_retries=0).chat.completions.create(
        model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert reply.choices[0].message.content is not None
    zh_note, table = zh.predict(run_dir=chat_run, judge_source=url, judge_model=name, judge_api_key="",
                                rubric="", judge_prompts="Who are you?\nSay hi.", api_name="/judge")
    assert "评判" in zh_note and len(table["data"]) == 2 and table["headers"][0] == "提问"
    en_note, _ = en.predict(run_dir=chat_run, judge_source=url, judge_model="", judge_api_key="", rubric="",
                            judge_prompts="Hi", api_name="/judge")
    assert en_note.startswith("Name the judge's model")
    stopped, _, _ = zh.predict(api_name="/stop_serving")
    assert stopped == "已停止服务。"
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="x", max_retries=0).models.list()


def test_launch_py_serve_answers_the_openai_client(lora_run):
    """The command line: `launch.py serve RUN` in its own process, asked by the openai client, streaming too."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    port = free_port()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, str(root / "launch.py"), "serve", str(lora_run), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                ids = [m.id for m in client.models.list().data]
                break
            except openai.APIConnectionError:
                time.sleep(0.5)
        assert ids == [lora_run.name, f"{lora_run.name}:base"]
        asked = dict(model=lora_run.name, messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        whole = client.chat.completions.create(**asked).choices[0].message.content
        streamed = "".join(p.choices[0].delta.content or "" for p in client.chat.completions.create(**asked, stream=True)
                           if p.choices)
        assert streamed == whole
        refused = subprocess.run([sys.executable, str(root / "launch.py"), "serve", str(lora_run), "--host", "0.0.0.0"],
                                 capture_output=True, text=True, timeout=60, env={**__import__("os").environ,
                                                                                 "STUDIO_API_KEY": ""})
        assert refused.returncode == 2 and "API key" in refused.stderr
    finally:
        process.terminate()
        process.wait(timeout=20)

