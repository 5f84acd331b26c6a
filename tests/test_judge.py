"""Issue 55: the judge. Its order swap and tie rule on a scripted judge, its reading of verdicts, its faults (a
judge that is unreachable, slow, not the protocol, or refuses the key: a message, the pairs so far kept), and a
real judge run on the tiny model behind the studio's own served endpoint."""

import http.server
import json
import threading
import time

import pytest

from conftest import free_port
from studio.chat import judge, serve
from studio.chat.chat import ChatPair
from studio.core.text import render

ITEMS = [{"prompt": f"Question {i}?", "reference": f"Answer {i}.", "base": f"base says {i}",
          "tuned": f"tuned says {i}"} for i in range(4)]


def scripted(prefer: str, flip_on: set = frozenset()):
    """A judge that always prefers one side's text, except for prompts in `flip_on`, where it answers by position
    (always A: the order-bias a real judge has, which the swap must expose)."""
    def ask(prompt: str) -> str:
        a = prompt.split("Answer A:\n")[1].split("\n")[0]
        question = prompt.split("Request:\n")[1].split("\n")[0]
        if question in flip_on:
            return "A - it comes first"
        return ("A" if prefer in a else "B") + f" - the {prefer} answer is better"
    return ask


def test_a_pair_counts_only_when_both_orders_agree():
    pairs, ended = judge.judge_pairs(ITEMS, scripted("tuned", flip_on={"Question 3?"}))
    assert ended is None and [p.outcome for p in pairs] == ["tuned", "tuned", "tuned", "tie"]
    assert pairs[0].choices == ["B", "A"] and "tuned answer" in pairs[0].reasons[0]
    result = judge.result_of("scripted", "", pairs)
    assert (result.wins, result.losses, result.ties) == (3, 0, 1)
    assert result.rate == pytest.approx(3.5 / 4) and result.low < result.rate < result.high
    assert "3 of 4" in render(result.line(), "en") and "4" in render(result.line(), "zh")


@pytest.mark.parametrize("text, choice", [
    ("A - clearer", "A"), ("b: more correct", "B"), ("Tie - both fine", "tie"), ("Answer B is better.", "B"),
    ("I prefer B because it is right.", "B"), ("Both answers are wrong.", None), ("", None), ("A or B?", None),
])
def test_a_verdict_is_read_and_never_guessed(text, choice):
    assert judge.parse_choice(text)[0] == choice


def test_an_unclear_verdict_is_a_tie_and_counted():
    pairs, _ = judge.judge_pairs(ITEMS[:2], lambda prompt: "Both are fine, I cannot say.")
    assert [p.outcome for p in pairs] == ["tie", "tie"] and sum(p.unclear for p in pairs) == 4


def test_stop_keeps_what_was_judged():
    stop = threading.Event()
    calls = []

    def ask(prompt):
        calls.append(prompt)
        if len(calls) == 4:
            stop.set()
        return "A - first"

    pairs, ended = judge.judge_pairs(ITEMS, ask, stop=stop)
    assert len(pairs) == 2 and ended.key == "judge.stopped"


class _Fake(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.mode == "slow":
            time.sleep(2)
        if self.mode == "key":
            self.send_response(401)
            self.end_headers()
            return
        body = b"<html>not json</html>" if self.mode == "html" else json.dumps(
            {"choices": [{"message": {"content": "B - better"}}]}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_judge():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/v1"
    server.shutdown()


@pytest.mark.parametrize("mode, key", [("slow", "judge.timeout"), ("html", "judge.not_protocol"),
                                       ("key", "judge.bad_key")])
def test_a_faulty_judge_is_a_message_and_the_pairs_so_far_are_kept(fake_judge, mode, key, monkeypatch):
    calls = []
    endpoint = judge.EndpointJudge(fake_judge, "m", api_key="wrong", timeout_s=1.0)

    def ask(prompt):
        calls.append(prompt)
        if len(calls) <= 2:
            return "B - better"
        _Fake.mode = mode
        return endpoint(prompt)

    try:
        pairs, ended = judge.judge_pairs(ITEMS, ask)
    finally:
        _Fake.mode = "ok"
    assert len(pairs) == 1 and ended.key == key
    assert fake_judge.split("//")[1] in render(ended, "en") and render(ended, "zh")


def test_an_unreachable_judge_is_said_with_its_address():
    with pytest.raises(judge.JudgeError) as err:
        judge.EndpointJudge(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_s=2)("x")
    assert err.value.args[0].key == "judge.unreachable"


def test_the_key_is_never_written(fake_judge, lora_run, monkeypatch):
    monkeypatch.setenv(judge.KEY_VARIABLE, "env-secret-key")
    endpoint = judge.EndpointJudge(fake_judge, "m")
    result = judge.result_of(endpoint.name, "", judge.judge_pairs(ITEMS[:1], endpoint)[0])
    path = judge.save(result, lora_run)
    assert "env-secret-key" not in path.read_text() and judge.saved(lora_run).ties == 1  # "B" in both orders


def test_a_real_judge_run_on_the_tiny_model_behind_the_served_endpoint(lora_run):
    """The studio's own served run judges the same run's base and tuned answers: the plumbing end to end (a
    random tiny model's verdicts mean nothing, and most are unclear: counted as ties, never guessed)."""
    pair = ChatPair.from_run(lora_run, progress=lambda _: None)
    running = serve.start(serve.Served.of_run(lora_run, lambda: pair), port=free_port())
    try:
        endpoint = judge.make_judge(running.base_url, lora_run.name)
        result = judge.run_judge(lora_run, pair, endpoint, prompts=["Who are you?", "Say hi."])
    finally:
        running.stop()
    assert len(result.pairs) == 2 and all(len(p.choices) == 2 for p in result.pairs)
    assert result.wins + result.losses + result.ties == 2 and result.rate is not None
    assert judge.saved(lora_run).pairs[0].prompt == "Who are you?"
