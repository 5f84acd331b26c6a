"""What a security and reliability read found (issue 13), each with a test that failed before its fix: the server
reads and writes only its own folders, a preset cannot switch on remote code by itself, concurrent clicks and
crashes lose nothing, and temp files and caches stay bounded. Data-file limits are in test_data.py and the
two-session chat lock in test_chat.py."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from studio.core import config, paths, presets, runs, settings_input
from studio.core.config import Settings
from studio.models import models
from studio.training import jobs
from studio.training.jobs import JOB
from tests.conftest import CHROMIUM, free_port
from tests.conftest import training_values, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


# ---------------------------------------------------------------- the server reads and writes only its folders

def test_typed_paths_outside_the_studio_folders_are_refused(client):
    for path in ("/etc/passwd", "../../../../etc/hostname", "/proc/self/environ"):
        summary, problems = client.predict(dataset_path=path, api_name="/load_data")[:2]
        assert problems["data"] and "outside the folders this studio may read" in problems["data"][0][1], path
        assert "root:" not in json.dumps(problems) + summary
    shown, tokens = client.predict(dataset_path="/etc/passwd", number=1, api_name="/show_row")
    assert "not among the usable rows" in shown and "root:" not in shown and not tokens


def test_a_symlink_out_of_a_data_folder_is_refused(client, tmp_path):
    link = tmp_path / "innocent.jsonl"
    link.symlink_to("/etc/passwd")  # tmp_path is a listed data folder; the link's target is not
    problems = client.predict(dataset_path=str(link), api_name="/load_data")[1]
    assert "outside the folders" in problems["data"][0][1]


def test_model_folder_outside_is_refused_before_training(client):
    message = client.predict(**training_values("/etc"), api_name="/start_training")
    assert "model_name_or_path" in message and "outside the folders" in message and not JOB.running


def test_run_pickers_and_export_folders_are_confined(client, tmp_path):
    base, tuned, note = client.predict(run_dir="/etc", prompt="hi", max_new_tokens=8, api_name="/chat")[:3]
    assert "outside the folders" in note
    assert "outside the folders" in client.predict("../../etc", api_name="/evaluate")[1]
    runs = os.environ["STUDIO_RUNS"]
    outside = tmp_path / "exports"  # readable (a data folder) but not writable
    answer, _ = client.predict(runs, str(outside), True, False, False, "Q8_0", api_name="/export_files")
    assert "outside the folders this studio may write to" in answer and not outside.exists()


def test_refusals_are_in_the_readers_language(app_url):
    chinese = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    problems = chinese.predict(dataset_path="/etc/passwd", api_name="/load_data")[1]
    assert "不在本工作室可读取的文件夹内" in problems["data"][0][1]


def test_the_command_line_is_not_confined(tmp_path):
    """Whoever runs launch.py already has the shell: only the server is confined."""
    assert paths.FOLDERS.confined  # the test app switched it on in this process
    result = subprocess.run([sys.executable, "launch.py", "data", "/proc/self/status", "--model", ""], cwd=ROOT,
                            capture_output=True, text=True)
    assert "outside the folders" not in result.stdout + result.stderr


def host_status(app_url: str, host: str) -> int:
    """The HTTP status the app answers a request sent with this Host header."""
    request = urllib.request.Request(app_url + "config", headers={"Host": host})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


def test_loopback_server_refuses_other_host_names(app_url):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    def status(host):
        return host_status(app_url, host)

    assert status("evil.example:7860") == 403 and status("evil.example") == 403
    assert status("127.0.0.1:7860") == 200 and status("localhost") == 200 and status("[::1]:7860") == 200


@pytest.mark.browser  # drives Chromium
def test_uploads_are_capped_at_the_loaders_limit(app_url, artifacts):
    from studio.data.readers import MAX_FILE_MB
    from studio.ui.app import launch_app

    served = json.loads(urllib.request.urlopen(app_url + "config", timeout=10).read())
    assert served["max_file_size"] == MAX_FILE_MB * 1024**2  # the page refuses larger files before sending them
    # And the server refuses them too (a script need not use the page): a second app with a 1 KB limit.
    port = free_port()
    small = launch_app(port=port, block=False, data_dirs=paths.FOLDERS.data_dirs, max_upload_mb=1 / 1024)
    try:
        def upload(size):
            body = (b"--B\r\nContent-Disposition: form-data; name=\"files\"; filename=\"d.jsonl\"\r\n\r\n"
                    + b"x" * size + b"\r\n--B--\r\n")
            request = urllib.request.Request(f"http://127.0.0.1:{port}/gradio_api/upload", data=body, method="POST",
                                             headers={"Content-Type": "multipart/form-data; boundary=B"})
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except urllib.error.HTTPError as err:
                return err.code

        assert upload(500) == 200 and upload(2048) in (400, 413)
        if os.path.exists(CHROMIUM) or os.environ.get("CI"):
            refusal_in_the_browser(f"http://127.0.0.1:{port}/", artifacts)
    finally:
        small.close()


def refusal_in_the_browser(url, artifacts):
    """Gradio's page says this in English only; a Chinese reader gets it in Chinese (studio/ui/app.py)."""
    from playwright.sync_api import expect, sync_playwright

    big = artifacts / "too-large.jsonl"
    big.write_text(json.dumps({"text": "x" * 3000}) + "\n")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(locale="zh-CN")
        page.goto(url)
        page.locator("input[type=file]").first.set_input_files(str(big))
        toast = page.get_by_test_id("toast-body").first
        expect(toast).to_contain_text("超过 1.0 Kb")
        expect(toast).to_contain_text("错误")
        assert "exceed" not in toast.inner_text() and "Error" not in toast.inner_text()
        page.screenshot(path=str(artifacts / "upload-too-large-zh-CN.png"))
        browser.close()


# ---------------------------------------------------------------- trust and passwords

def remote_code_preset(tmp_path) -> Path:
    settings, problems = settings_input.apply_overrides(Settings(), ["model_name_or_path=someone/custom-arch",
                                                             "trust_remote_code=true", "learning_rate=1e-4"])
    assert not problems
    path = tmp_path / "shared.json"
    presets.save_preset(settings, path, description="looks harmless")
    return path


def test_a_preset_cannot_switch_on_remote_code_by_itself(client, tmp_path):
    names = [name for _, name, _ in config.all_fields()]
    from gradio_client import handle_file

    *values, status = client.predict(handle_file(str(remote_code_preset(tmp_path))), api_name="/import_preset")
    loaded = dict(zip(names, values))
    assert loaded["trust_remote_code"] is False and loaded["learning_rate"] == 1e-4
    assert "someone/custom-arch" in status and "Trust remote code" in status and "left off" in status


def test_the_cli_needs_trust_remote_code_on_the_command_line(tmp_path):
    preset = remote_code_preset(tmp_path)
    result = subprocess.run([sys.executable, "launch.py", "train", "--preset", str(preset)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--trust-remote-code" in result.stderr and "Traceback" not in result.stderr


def test_passwords_from_a_file_or_the_environment_never_empty(tmp_path):
    import launch

    args = launch.build_parser().parse_args(["--host", "0.0.0.0"])
    assert launch.read_auth(args, environ={"STUDIO_AUTH": "me:secret"}) == ("me:secret", [])
    secret = tmp_path / "auth"
    secret.write_text("you:pw\n")
    args = launch.build_parser().parse_args(["--host", "0.0.0.0", "--auth-file", str(secret)])
    assert launch.read_auth(args, environ={}) == ("you:pw", [])
    for empty in (":", "me:", ":pw", " :pw", ""):
        assert launch.check_exposure("0.0.0.0", False, empty), empty
    assert not launch.check_exposure("0.0.0.0", False, "me:pw")
    result = subprocess.run([sys.executable, "launch.py", "--auth", ":"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "neither part empty" in result.stderr


# ---------------------------------------------------------------- concurrent clicks

@pytest.fixture()
def busy_job(tiny_model_dir):
    """The app's job, held 'running' by a fake run until the test ends."""
    release = threading.Event()
    assert not JOB.running
    JOB.start(Settings(), Path(os.environ["STUDIO_RUNS"]) / "busy", runner=lambda *a, **k: release.wait(60) and {})
    yield
    release.set()
    JOB.wait(10)


def test_heavy_actions_are_refused_while_a_run_trains(client, busy_job, tiny_model_dir):
    busy = "A run is training right now"
    assert busy in client.predict(model_name_or_path=str(tiny_model_dir), api_name="/estimate_time")
    runs = os.environ["STUDIO_RUNS"]
    assert busy in client.predict(runs + "/any", "", True, False, False, "Q8_0", api_name="/export_files")[0]
    assert busy in client.predict(runs + "/any", api_name="/evaluate")[1]
    assert busy in client.predict(run_dir=runs + "/any", max_new_tokens=8, api_name="/held_out_answers")[1]


def test_a_second_start_makes_no_empty_run_folder(busy_job, tiny_model_dir):
    runs = Path(os.environ["STUDIO_RUNS"])
    before = set(runs.iterdir())
    ok, message = JOB.start(Settings())
    assert not ok and "already in progress" in message
    assert set(runs.iterdir()) == before


def test_a_run_folder_that_cannot_be_made_is_a_failed_run_not_a_dead_thread(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    job = jobs.TrainingJob()
    assert job.start(Settings(), blocker / "run")[0]
    result = job.wait(30)
    assert result["status"] == "failed" and "NotADirectoryError" in result["error"]
    assert job.snapshot()["status"] == "failed"


def test_two_first_uses_of_the_starter_model_convert_it_once(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    made = []

    def slow_make(builtin, target, progress):
        made.append(target)
        time.sleep(0.5)  # both callers are inside ensure_starter_model by now
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "model.safetensors").write_text("")
        return target

    monkeypatch.setattr(models, "_make_builtin_model", slow_make)
    monkeypatch.setattr(models, "_is_model_folder", lambda p: (p / "config.json").exists())
    threads = [threading.Thread(target=models.ensure_starter_model, args=(lambda _: None,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(made) == 1


def test_two_clients_chat_at_once_and_get_their_own_answers(app_url, chat_run):
    """Two browsers on one server share its chat model; each must get its own prompt's base and tuned answers."""
    from studio.ui.chat_tab import message_text

    clients = [Client(app_url, verbose=False) for _ in range(2)]
    prompts = ["Who are you?", "Tell me a story about a cat."]

    def answers(job):
        base, tuned = job.result()[:2]
        return message_text(base[-1]["content"]), message_text(tuned[-1]["content"])

    def ask(c, prompt):
        return c.submit(run_dir=chat_run, prompt=prompt, max_new_tokens=24, api_name="/chat")

    alone = [answers(ask(c, p)) for c, p in zip(clients, prompts)]
    assert all(base != tuned for base, tuned in alone), alone  # else a mixed-up answer could not be seen
    together = [ask(c, p) for c, p in zip(clients, prompts)]  # both in flight at once
    assert [answers(job) for job in together] == alone


# ---------------------------------------------------------------- crashes and restarts

def test_a_reused_pid_is_not_a_running_run(tmp_path):
    run = tmp_path / "runs" / "old"
    run.mkdir(parents=True)
    me = runs.process_identity()
    assert me and me.split(":")[1] == str(os.getpid())
    stale = me.rsplit(":", 1)[0] + ":1"  # this pid, but a process that started at another time (a restart)
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "process": stale}))
    assert runs.list_runs(tmp_path / "runs")[0]["status"] == "interrupted"
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "process": me}))
    assert runs.list_runs(tmp_path / "runs")[0]["status"] == "running"


def test_live_reader_starts_over_when_the_metrics_file_was_replaced(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 11)))
    tail = jobs._Tail(metrics, parse=True)
    assert len(tail.read()) == 10
    # A resume from step 4 rewrites the file (write, then rename) without steps 5-10, then appends step 5.
    runs.write_jsonl(metrics, [{"step": s, "loss": 1.0} for s in range(1, 5)])
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": 5, "loss": 0.5}) + "\n")
    assert [row["step"] for row in tail.read()] == [1, 2, 3, 4, 5]
    metrics.write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")  # truncated in place
    assert [row["step"] for row in tail.read()] == [1]


def test_the_tokenised_data_cache_forgets_the_least_recently_used_first(tmp_path):
    for age, name in enumerate(["old", "middle", "new"]):
        entry = tmp_path / name
        entry.mkdir()
        (entry / "data.arrow").write_bytes(b"x" * 1000)
        os.utime(entry, (1000 + age, 1000 + age))
    removed = paths.prune_lru(tmp_path, 2500, keep=tmp_path / "old")
    assert removed == [tmp_path / "middle"] and sorted(p.name for p in tmp_path.iterdir()) == ["new", "old"]


def test_stale_temp_folders_are_cleaned_at_start_fresh_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    made = [tmp_path / "home/models/.converting-abc", tmp_path / "uploads/offered/studio-download-x",
            tmp_path / "home/cache/tokenized/abcd.tmp123", tmp_path / "runs/r1/export/.adapter-xyz"]
    for folder in made:
        folder.mkdir(parents=True)
    half = tmp_path / "runs/r1/status.json.tmp"
    half.write_text("{")
    fresh = tmp_path / "home/models/.converting-now"
    fresh.mkdir()
    for path in made + [half]:
        os.utime(path, (time.time() - 2 * paths.STALE_S,) * 2)
    removed = paths.clean_stale_temp()
    assert sorted(removed) == sorted(made + [half]) and fresh.exists()
    assert (tmp_path / "runs/r1/export").exists()


def start_server(port, runs, data_dir):
    env = {**os.environ, "STUDIO_RUNS": str(runs), "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.Popen([sys.executable, "launch.py", "--port", str(port), "--data-dir", str(data_dir)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def connect(port, deadline=90):
    until = time.time() + deadline
    while True:
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:
            if time.time() > until:
                raise
            time.sleep(0.5)


@pytest.mark.slow  # two server processes and a training run
def test_kill_minus_9_of_the_server_mid_run_then_restart_and_resume(tiny_model_dir, tmp_path):
    """The whole studio dies (power cut, OOM killer) while a run it started trains. After a restart the run is
    listed as interrupted, and Resume continues from its last checkpoint, losing at most one save interval."""
    runs, port = tmp_path / "runs", free_port()
    server = start_server(port, runs, tiny_model_dir.parent)
    try:
        client = connect(port)
        values = training_values(tiny_model_dir, max_steps=400, save_steps=3, max_length=64, eval_steps=100)
        assert client.predict(**values, api_name="/start_training").startswith("Started")
        deadline = time.time() + 180
        while time.time() < deadline:
            checkpoints = list(runs.glob("*/checkpoints/checkpoint-*/trainer_state.json"))
            if len(checkpoints) >= 2:
                break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    run = checkpoints[0].parents[2]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line and line.endswith("}")]
    saved = max(int(p.parent.name.split("-")[1]) for p in run.glob("checkpoints/checkpoint-*/trainer_state.json"))
    assert max(logged) - saved <= 3 + 1, (max(logged), saved)  # at most one save interval (+ the step in flight)
    preset = json.loads((run / "preset.json").read_text())
    preset["settings"]["training"]["max_steps"] = saved + 3
    (run / "preset.json").write_text(json.dumps(preset))

    server = start_server(port, runs, tiny_model_dir.parent)
    try:
        client = connect(port)
        table = client.predict(api_name="/run_history")[0]
        assert [row[1] for row in table["data"] if row[-1] == str(run)] == ["interrupted"]
        assert client.predict(str(run), api_name="/resume_training").startswith("Started")
        wait_for(client, lambda s: "**finished**" in s[0], timeout=180)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "finished" and status["global_step"] == saved + 3
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == sorted(set(steps)) and steps[-1] == saved + 3  # no step twice after the resume


def test_replacing_an_export_keeps_the_previous_one_if_the_swap_fails(tmp_path, monkeypatch):
    from studio.export import export

    out, staged = tmp_path / "adapter", tmp_path / ".adapter-new"
    for folder, text in ((out, "previous"), (staged, "new")):
        folder.mkdir()
        (folder / "weights").write_text(text)
    (out / export.MARKER).write_text("{}")
    real_replace = os.replace

    def disk_fails_on_the_swap(source, target):
        if Path(source) == staged:
            raise OSError("disk gone")
        return real_replace(source, target)

    monkeypatch.setattr(export.os, "replace", disk_fails_on_the_swap)
    with pytest.raises(OSError):
        export.commit_folder(staged, out, {"kind": "adapter"})
    kept = [p for p in tmp_path.iterdir() if (p / "weights").exists() and (p / "weights").read_text() == "previous"]
    assert kept  # before: the previous export was deleted first, and lost


# ---------------------------------------------------------------- second step: no request stalls the server or
# reaches outside its folders through a file it names

def test_an_overlong_chat_prompt_is_refused_at_once_before_any_model_work(client):
    """Before: a 400,000-character prompt with max_new_tokens 16 ran for more than 9 minutes and never answered."""
    for args in (dict(prompt="a" * 400_000), dict(system_prompt="s" * 100_000, prompt="hi"),
                 dict(prompt="hi", base_history=[{"role": "user", "content": [{"type": "text", "text": "h" * 250_000}]}])):
        started = time.perf_counter()
        base, tuned, note, prompt = client.predict(run_dir="x", **args, max_new_tokens=16, api_name="/chat")[:4]
        assert time.perf_counter() - started < 5  # under a second on the server; the client adds its own overhead
        assert "characters long; the limit is" in note and "Traceback" not in note


def test_chat_prompts_are_capped_in_tokens_against_the_models_context(chat_run, client):
    long = "word " * 5000  # within the character cap, beyond the tiny model's 1,024-position context
    note = client.predict(run_dir=chat_run, prompt=long, max_new_tokens=16, api_name="/chat")[2]
    assert "must fit in 1,024" in note


def test_one_answer_is_bounded_in_time(tiny_model_dir):
    import contextlib

    from studio.chat.chat import answer, stream

    tokenizer, model = models.load_tokenizer(str(tiny_model_dir)), models.load_model(str(tiny_model_dir))
    last = list(stream([(lambda: contextlib.nullcontext(model), [{"role": "user", "content": "hi"}])], tokenizer,
                       config.GenerationSettings(max_new_tokens=200), time_limit_s=0.0))[-1][0]
    assert last.timed_out and last.new_tokens == 1
    assert not answer(model, tokenizer, [{"role": "user", "content": "hi"}],
                      config.GenerationSettings(max_new_tokens=2)).timed_out


def test_compare_runs_takes_a_bounded_list_of_runs_inside_the_runs_folder(client, tmp_path):
    """Before: a 200 KB string was iterated character by character for 21 s, and a folder outside the runs (also
    through a symlink) was read."""
    started = time.perf_counter()
    table = client.predict("x" * 200_000, api_name="/compare_runs")[1]
    assert time.perf_counter() - started < 5 and not table["data"]
    outside = tmp_path / "outside-run"
    outside.mkdir()
    (outside / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.23}) + "\n")
    (outside / "status.json").write_text(json.dumps({"status": "secret-status"}))
    link = Path(os.environ["STUDIO_RUNS"]) / "link-out"
    link.symlink_to(outside)
    for target in (str(outside), str(link)):
        curves, table, diff = client.predict([target], api_name="/compare_runs")
        assert "secret-status" not in json.dumps(table) and not table["data"]


def test_resuming_a_run_whose_preset_trusts_remote_code_needs_the_switch_on(tiny_model_dir, tmp_path):
    """Before: a run folder whose preset.json set trust_remote_code resumed with it on."""
    from studio.ui.train_tab import resume

    run = Path(os.environ["STUDIO_RUNS"]) / "remote-code-run"
    settings, _ = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tiny_model_dir}", "trust_remote_code=true"])
    run.mkdir(parents=True, exist_ok=True)
    runs.RunFolder(run).write_preset(presets.preset_dict(settings))
    message = resume(str(run), False)
    assert "Trust remote code" in message and not JOB.running
    assert "Trust remote code" not in resume(str(run), True)  # switched on: past the rule (no checkpoint here)


def test_chat_and_export_refuse_a_run_whose_preset_names_a_model_outside_the_folders(client, tmp_path):
    """Before: Chat loaded the base model a run's preset named from anywhere on the machine."""
    run = Path(os.environ["STUDIO_RUNS"]) / "outside-base-run"
    run.mkdir(parents=True, exist_ok=True)
    settings, _ = settings_input.apply_overrides(Settings(), ["model_name_or_path=/opt"])
    (run / "preset.json").write_text(json.dumps(presets.preset_dict(settings)))
    note = client.predict(run_dir=str(run), prompt="hi", max_new_tokens=8, api_name="/chat")[2]
    assert "outside the folders" in note
    answer, _ = client.predict(str(run), "", True, False, False, "Q8_0", api_name="/export_files")
    assert "outside the folders" in answer


def test_host_names_are_parsed_exactly(app_url):
    """Before: Host '[::1].evil.example' was taken for '::1' and served."""
    def status(host):
        return host_status(app_url, host)

    for host in ("[::1].evil.example", "[::1]evil:7860", "localhost.evil.example", "127.0.0.1.evil.example:80"):
        assert status(host) == 403, host
    assert status("[::1]") == 200


def test_a_whitespace_password_is_refused_and_a_readable_auth_file_is_warned_about(tmp_path, capsys):
    import launch

    for blank in ("me: ", "me:\t", " : "):
        assert launch.check_exposure("0.0.0.0", False, blank), repr(blank)
    secret = tmp_path / "auth"
    secret.write_text("you:pw\n")
    secret.chmod(0o644)
    args = launch.build_parser().parse_args(["--host", "0.0.0.0", "--auth-file", str(secret)])
    assert launch.read_auth(args, environ={}) == ("you:pw", [])
    assert "can be read by other users" in capsys.readouterr().err
    secret.chmod(0o600)
    launch.read_auth(args, environ={})
    assert "can be read by other users" not in capsys.readouterr().err


# ---------------------------------------------------------------- fuzz: every endpoint, bad values, studio words

RAW = ("Traceback", "Error:", "Exception", "errno", "embedded null byte", "recursion", "object has no attribute",
       "not subscriptable", "unexpected keyword", "validation error for", "Exceeds the limit", "got an unexpected",
       "Input should", "is not in the list of choices", "ValueError", "TypeError", "KeyError", "OverflowError",
       "ConnectionError", "DatasetPart")
MAX_ANSWER_CHARS = 200_000  # no bad call is answered with more than this (an echoed 200 KB value was 16 MB)
STARTS_A_RUN = ("/start_training", "/pilot_run", "/resume_training")
NOT_FUZZED = {"/push_to_hub"}  # would reach for the network with whatever it is given; tested on its own
BAD_VALUES = {"None": None, "wrong type": {"x": [1, 2]}, "200 KB string": "x" * 200_000, "negative": -12345,
              "NUL byte": "runs/a\x00b", "huge number": 10**400, "huge list": ["x"] * 20_000}


@pytest.mark.slow  # every endpoint with every hostile value (about a minute)
def test_fuzz_every_endpoint_answers_quickly_in_the_studios_own_words(app_url):
    """Every api_name, each of its parameters given None, the wrong type, a 200 KB string, a negative number, a
    NUL byte, a number of 400 digits and a list of 20,000 items: each call ends within seconds with a studio
    message (no Python, pydantic or Gradio text), no answer is larger than MAX_ANSWER_CHARS, and the server is
    still up afterwards. Before: 8 of 136 bad calls across 34 endpoints gave raw Python text (issue 13); pydantic's
    and Gradio's sentences and a 16 MB answer (issue 40)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client.exceptions import AppError

    endpoints = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    raw, slow, large, calls = [], [], [], []
    local = threading.local()

    def fuzz(name: str, spec: dict) -> None:
        if not hasattr(local, "client"):
            local.client = Client(app_url, verbose=False)
        for label, value in BAD_VALUES.items():
            args = [value] * len(spec["parameters"])
            started = time.perf_counter()
            try:
                answer = json.dumps(local.client.predict(*args, api_name=name), default=str)
                if len(answer) > MAX_ANSWER_CHARS:
                    large.append((name, label, len(answer)))
            except AppError as err:  # the server's refusal: it must be the studio's message
                answer = str(err)
            except (ValueError, TypeError, OSError):  # the client itself refused to send it (a file that is not one)
                continue
            finally:
                calls.append(name)
            elapsed = time.perf_counter() - started
            if elapsed > 30:
                slow.append((name, label, round(elapsed, 1)))
            if any(word in answer for word in RAW):
                raw.append((name, label, answer[:200]))
            if name in STARTS_A_RUN and JOB.running:
                JOB.stop()
                JOB.wait(60)

    fuzzed = sorted((name, spec) for name, spec in endpoints.items() if name not in NOT_FUZZED)
    # four endpoints at a time (the calls mostly wait on the queue); those that may start a run one by one after
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda item: fuzz(*item), [item for item in fuzzed if item[0] not in STARTS_A_RUN]))
    for item in fuzzed:
        if item[0] in STARTS_A_RUN:
            fuzz(*item)
    calls = len(calls)
    assert calls >= 100 and not raw, raw
    assert not slow, slow
    assert not large, large
    assert urllib.request.urlopen(app_url + "config", timeout=10).status == 200


def _nested(levels: int):
    value = 1
    for _ in range(levels):
        value = [value]
    return value


def test_presets_are_capped_in_size_and_depth_and_never_answer_in_python(tmp_path):
    """Before: a 50 MB preset loaded and came back whole (52 MB); 100,000 levels of nesting gave "maximum recursion
    depth exceeded"; a 5,000-digit integer gave "Exceeds the limit (4300 digits)"."""
    from studio.ui.hyperparams_tab import MAX_ECHO_CHARS, import_preset

    cases = {"huge.json": json.dumps({"studio_preset": 1, "description": "d" * 2_000_000, "settings": {}}),
             "deep.json": "[" * 100_000 + "]" * 100_000,
             "digits.json": '{"studio_preset": 1, "settings": {"training": {"seed": ' + "9" * 5000 + "}}}",
             "nested.json": json.dumps({"studio_preset": 1, "settings": {"a": _nested(20)}})}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        settings, _, problems = presets.load_preset(path)
        assert settings is None and problems, name
        message = str(problems[0][1])
        assert not any(word in message for word in ("recursion", "Exceeds the limit", "Traceback")), (name, message)
    long = tmp_path / "long-description.json"
    presets.save_preset(Settings(), long, description="x" * 50_000)
    echoed = import_preset(str(long), "en")[-1]
    assert len(echoed) < MAX_ECHO_CHARS + 200


def test_the_upload_folder_is_the_studios_own_or_the_studio_does_not_start(tmp_path, monkeypatch):
    """Before: a Gradio temp folder that was a symlink (to /, say) or another user's made "uploads" cover anything."""
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    assert paths.prepare_upload_dir() is None
    made = tmp_path / "home" / "uploads"
    assert os.environ["GRADIO_TEMP_DIR"] == str(made) and (made.stat().st_mode & 0o777) == 0o700
    link = tmp_path / "link"
    link.symlink_to("/")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(link))
    assert "is a link" in str(paths.prepare_upload_dir())
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(shared))
    assert "can be written by other users" in str(paths.prepare_upload_dir())
    result = subprocess.run([sys.executable, "launch.py", "--port", str(free_port())], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "GRADIO_TEMP_DIR": str(link)})
    assert result.returncode == 2 and "Not starting: the upload folder" in result.stderr
