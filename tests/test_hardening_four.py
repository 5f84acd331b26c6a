"""The fourth probe's holes (issue 52), each reproduced as it was found and shown to do no harm now: user patterns
and schemas that freeze or reach out, a huge file that holds everyone up, a login limit fooled by a header, a
Modelfile steered through the system prompt, exports written through links, a shell line steered through an
address, another local page reading the studio, and a cutoff that leaves nothing to train."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, tiny_settings


# ---------------------------------------------------------------- 1. patterns cannot freeze the server

def settings_problems(**values):
    from studio.core import config, settings_input

    _, problems = settings_input.settings_from_flat({"stage": "grpo", **values}, config.Settings())
    return problems


@pytest.mark.parametrize("pattern", ["(.+)+Z", r"(\w+\s?)+$", "(a*)*b"])
def test_a_format_pattern_with_a_repeat_inside_a_repeat_is_refused_at_the_field(pattern):
    from studio.core.text import render

    problems = settings_problems(format_pattern=pattern)  # before: "valid", then a frozen server at the first reward
    assert [where for where, _ in problems] == ["format_pattern"]
    assert "(.+)+" in problems[0][1] and "重复" in render(problems[0][1], "zh")


def test_a_slow_pattern_gives_up_scores_zero_and_lets_other_threads_run():
    from studio.core import rewards, user_patterns

    options = rewards.RewardOptions(format_pattern="(a|aa)+$")  # no nested repeat, still exponential in `re`
    assert not settings_problems(format_pattern="(a|aa)+$")
    ticks, stop = [0], threading.Event()

    def other_thread():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    before = user_patterns.timeouts_now()
    beside = threading.Thread(target=other_thread)
    beside.start()
    try:
        score = rewards.score("format", "a" * 80 + "b", options=options)
    finally:
        stop.set()
        beside.join()
    assert score == 0.0
    assert user_patterns.timeouts_since(before) == {"format": 1}
    assert ticks[0] > 20  # the GIL was let go while the pattern ran (with `re`: 0 ticks, then minutes)
    assert rewards.score("format", "<think>x</think> 4", options=rewards.RewardOptions()) == 1.0  # presets unchanged


# ---------------------------------------------------------------- 2. schemas reach nothing outside

@pytest.fixture()
def counting_server():
    """An HTTP server on loopback that counts the requests it gets and serves a schema."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append(self.path)
            body = b'{"type": "number"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_a_schema_ref_to_a_url_or_a_file_is_refused_and_never_fetched(counting_server, tmp_path):
    from studio.core import rewards

    url, seen = counting_server
    outside = tmp_path / "num.json"
    outside.write_text('{"type": "number"}')
    schema = {"anyOf": [{"$ref": f"{url}/schema.json"}, {"$ref": outside.as_uri()}]}
    problems = settings_problems(json_schema=json.dumps(schema))
    assert [where for where, _ in problems] == ["json_schema"] and "outside this schema" in problems[0][1]
    # Even a schema that got past the field (an old preset, a test) resolves nothing: no request, no file read.
    options = rewards.RewardOptions(json_schema=schema)
    assert [rewards.score("json_valid", "1", options=options) for _ in range(5)] == [0.0] * 5
    assert seen == []  # before: 10 requests in a 1-step run


@pytest.mark.parametrize("schema, why", [
    ({"$ref": "#"}, "leads back to itself"),
    ({"anyOf": [{"type": "string"}, {"$ref": "#"}]}, "leads back to itself"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"},
     "leads back to itself"),
    ({"$ref": "#/$defs/missing"}, "does not have"),
    ({"type": "string", "pattern": "^(a+)+$"}, "repeat inside a repeat"),
])
def test_schemas_that_cannot_finish_are_refused_in_the_studios_words(schema, why):
    problems = settings_problems(json_schema=json.dumps(schema))
    assert [where for where, _ in problems] == ["json_schema"] and why in problems[0][1]


def test_a_deeply_nested_schema_is_refused_and_a_tree_schema_is_kept():
    deep = '{"properties": {"a": ' * 900 + '{"type": "object"}' + "}}" * 900
    problems = settings_problems(json_schema=deep)
    assert [where for where, _ in problems] == ["json_schema"] and "nested too deeply" in problems[0][1]
    far_too_deep = "[" * 100_000 + "]" * 100_000  # deeper than Python's parser goes: a message, no RecursionError
    assert [where for where, _ in settings_problems(json_schema=far_too_deep)] == ["json_schema"]
    tree = {"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array",
                                                                           "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"}
    assert not settings_problems(json_schema=json.dumps(tree))  # each reference goes one level into the answer

    from studio.core import rewards
    options = rewards.RewardOptions(json_schema=tree)
    assert rewards.score("json_valid", '{"kids": [{"kids": []}]}', options=options) == 1.0
    assert rewards.score("json_valid", '{"kids": [{"kids": 3}]}', options=options) == 0.0
    assert rewards.score("json_valid", "[" * 50_000 + "]" * 50_000, options=rewards.RewardOptions()) == 0.0


def test_a_slow_schema_pattern_gives_up_instead_of_holding_the_server():
    from studio.core import rewards, user_patterns

    options = rewards.RewardOptions(json_schema={"type": "string", "pattern": "^(a|aa)+$"})
    before = user_patterns.timeouts_now()
    assert rewards.score("json_valid", json.dumps("a" * 80 + "!"), options=options) == 0.0
    assert user_patterns.timeouts_since(before) == {"json_valid": 1}
    assert rewards.score("json_valid", json.dumps("aaaa"), options=options) == 1.0


# ---------------------------------------------------------------- 3. a huge file

def test_a_million_row_file_is_read_up_to_the_cap_and_counted(tmp_path):
    from studio.data import data
    from studio.data.readers import MAX_ROWS
    from studio.core.text import render

    path = tmp_path / "million.jsonl"
    path.write_text('{"instruction":"a","output":"b"}\n' * 1_000_000)
    loaded = data.load_dataset_file(str(path))
    assert len(loaded.rows) == MAX_ROWS and loaded.total_rows == 1_000_000 and loaded.rows_left_out == 900_000
    assert not loaded.problems
    summary = data.summary_text(loaded)
    assert "1,000,000" in summary and "100,000" in summary and "前 100,000 行" in render(summary, "zh")


def test_duplicates_of_a_large_file_are_found_in_linear_time():
    from studio.data.data import Row
    from studio.data.stats import quality_report

    rows = [Row(number=i, messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
                raw={})
            for i in range(1, 60_001)]
    findings = {f.check.key: f for f in quality_report(rows)}
    # 60,000 identical rows: with a list for `in` this took minutes (a million: half an hour)
    assert len(findings["check.exact_duplicates"].rows) == 59_999


def test_a_report_being_built_holds_up_only_that_file(tmp_path, monkeypatch):
    """Before, one lock was held for every report while one was built: a 28-minute load held the advice and the
    settings check of every user."""
    from studio.plan import data_report

    slow, quick = tmp_path / "slow.jsonl", tmp_path / "quick.jsonl"
    for path in (slow, quick):
        path.write_text('{"instruction":"a","output":"b"}\n')
    release, started = threading.Event(), threading.Event()
    real_build = data_report.build_report

    def build(path, *args, **kwargs):
        if getattr(path, "text", path) == str(slow):  # the source arrives parsed (studio/core/sources.py)
            started.set()
            release.wait(30)
        return real_build(path, *args, **kwargs)

    monkeypatch.setattr(data_report, "build_report", build)
    building = threading.Thread(target=data_report.cached_report, args=(str(slow), "auto", {}, None))
    building.start()
    try:
        assert started.wait(10)
        done = []
        other = threading.Thread(target=lambda: done.append(data_report.cached_report(str(quick), "auto", {}, None)))
        other.start()
        other.join(10)
        assert done and len(done[0].load.rows) == 1  # answered while the slow file is still being read
        assert data_report.loaded_report(str(slow), "auto", {}, None) is None
    finally:
        release.set()
        building.join(30)
    assert data_report.loaded_report(str(slow), "auto", {}, None) is not None


# ---------------------------------------------------------------- 4. the login limit keys on the connection

def test_a_forwarded_header_does_not_escape_the_login_limit(tiny_model_dir):
    from studio.core import paths
    from studio.ui.app import LoginRateLimit, launch_app

    port = free_port()
    # the same readable folders as the session's app: launch_app sets them for the whole process
    demo = launch_app(port=port, block=False, auth=("user", "right-password"), model=str(tiny_model_dir),
                      data_dirs=paths.FOLDERS.data_dirs)
    try:
        def login(password: str, forwarded: str) -> int:
            body = urllib.parse.urlencode({"username": "user", "password": password}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/login", data=body, method="POST", headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": forwarded})
            try:
                return urllib.request.urlopen(request, timeout=30).status
            except urllib.error.HTTPError as err:
                return err.code

        tries = [login("wrong", f"10.9.8.{i}") for i in range(LoginRateLimit.MAX_FAILURES + 3)]
        assert tries[-1] == 429, tries  # before: never locked, a new header per try
        assert login("right-password", "10.9.8.200") == 429  # the connection (127.0.0.1) is locked, whatever it says
    finally:
        demo.close()  # the session's app stays up


# ---------------------------------------------------------------- 5. the Modelfile's grammar

INJECTION = 'You answer."""\nFROM /etc/passwd\nPARAMETER num_ctx 1\nSYSTEM """x'


def test_a_system_prompt_that_would_break_out_of_its_quotes_writes_no_modelfile(tiny_tokenizer):
    from studio.templates import ollama
    from studio.core.config import GenerationSettings

    for prompt in (INJECTION, 'Say "hi"'):
        with pytest.raises(ollama.ModelfileValueError):
            ollama.modelfile("m.gguf", tiny_tokenizer, GenerationSettings(), False, prompt)
    text, _ = ollama.modelfile("m.gguf", tiny_tokenizer, GenerationSettings(), False, 'Say "hi" politely.')
    parsed = ollama.parse_modelfile(text)
    assert parsed["FROM"] == ["./m.gguf"] and parsed["SYSTEM"] == ['Say "hi" politely.']


def test_the_export_says_why_no_modelfile_was_written(lora_run, tiny_tokenizer, tmp_path):
    import shutil

    from studio.export import export
    from studio.core import settings_input
    from studio.core.presets import preset_dict
    from studio.core.runs import RunFolder
    from studio.core.text import render

    lora_run = Path(shutil.copytree(lora_run, tmp_path / lora_run.name))  # the module's run keeps its preset
    run = RunFolder(lora_run)
    settings, problems = settings_input.apply_overrides(run.settings(), [f"system_prompt={INJECTION}"])
    assert not problems
    run.write_preset(preset_dict(settings))
    gguf = lora_run.parent / "out" / f"{lora_run.name}-Q8_0.gguf"
    gguf.parent.mkdir(exist_ok=True)
    message = export.write_serving_files(lora_run, gguf, tiny_tokenizer)
    assert not (gguf.parent / f"{gguf.stem}.Modelfile").exists()
    assert "No Modelfile" in message and "Modelfile" in render(message, "zh") and "未写出" in render(message, "zh")


# ---------------------------------------------------------------- 6. exports never write through a link

def test_exports_replace_a_planted_link_instead_of_writing_through_it(lora_run, tiny_tokenizer, tmp_path):
    from studio.export import export

    out = tmp_path / "exports"
    out.mkdir()
    victim = tmp_path / "outside.txt"
    victim.write_text("keep me")
    gguf = out / f"{lora_run.name}-Q8_0.gguf"
    for name in (f"{gguf.stem}.Modelfile", f"{gguf.stem}.README.md", "preset.json"):
        (out / name).symlink_to(victim)
    export.write_serving_files(lora_run, gguf, tiny_tokenizer)
    export.export_preset(lora_run, out / "preset.json")
    assert victim.read_text() == "keep me"  # before: the Modelfile's text
    for name in (f"{gguf.stem}.Modelfile", f"{gguf.stem}.README.md", "preset.json"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0


# ---------------------------------------------------------------- 7. the printed shell lines

def test_an_address_with_a_scope_id_is_refused_and_printed_lines_are_quoted():
    from studio.training import machines

    problems, _ = machines.rendezvous_problems("fe80::1%;touch${IFS}pwned;", 29500)
    assert problems and problems[0].key == "machines.bad_address"  # before: accepted, pasted unquoted
    assert machines._address_valid("fe80::1") and machines._address_valid("node-1.cluster")


# ---------------------------------------------------------------- weaker: CORS, and a cutoff that keeps nothing

def test_another_local_page_cannot_read_the_studio(app_url):
    def get(path: str, origin: str | None) -> int:
        request = urllib.request.Request(app_url + path, headers={"Origin": origin} if origin else {})
        try:
            return urllib.request.urlopen(request, timeout=30).status
        except urllib.error.HTTPError as err:
            return err.code

    assert get("config", "http://localhost:8000") == 403  # before: 200 with allow-origin for that port
    assert get("config", app_url.rstrip("/")) == 200 and get("config", None) == 200


@pytest.mark.parametrize("stage, row", [
    ("sft", {"instruction": "Tell me about " + "cats " * 40, "output": "Once " * 20}),
    ("dpo", {"prompt": "q " * 60, "chosen": "yes " * 20, "rejected": "no " * 20}),
])
def test_a_cutoff_that_keeps_no_answer_ends_in_words_not_an_index_error(tiny_model_dir, tmp_path, stage, row):
    from studio.training import train

    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps(row) for _ in range(10)))
    settings = tiny_settings(tiny_model_dir, f"dataset_path={data}", "max_length=16", f"stage={stage}",
                             "drift_check=false", "replay=off", "validation_share=0")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "failed"
    assert status["error_message"]["key"] == "log.nothing_left_at_cutoff", status  # before: IndexError / num_samples
    assert status["error_message"]["fields"]["cutoff"] == 16
