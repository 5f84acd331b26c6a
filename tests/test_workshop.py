"""Issue 54, the teacher's core: new rows from seeds in each mode, with their provenance; near copies of held-out
questions, rows in another language, empty rows and repeats left out and counted; a teacher fault or Stop keeps
what was made; a real teacher behind the studio's own served endpoint."""

import threading

from conftest import free_port
from studio.chat import serve, teacher
from studio.chat.chat import ChatPair

SEEDS = [{"row": 1, "question": "Who are you?", "answer": "I am Nova, made by Orbit Labs."},
         {"row": 2, "question": "你是谁？", "answer": "我是 Nova，由 Orbit Labs 开发。"}]
HELD = ["What is your name?", "你叫什么名字？"]


def scripted(prompt: str, temperature: float = 0.7, max_tokens: int = 256) -> str:
    """A teacher with fixed habits: two good wordings, one copy of a held-out question, one in the wrong language."""
    if "你是谁" in prompt:
        return "请介绍一下你自己\n你是哪位？\n你叫什么名字？\nWho is this?"
    if "Who are you?" in prompt and "New question" not in prompt:
        return "1. Tell me who you are.\n2. What should I call you?\n3. What is your name?\n4. 你是谁？"
    return "I am Nova, an assistant by Orbit Labs."


def test_more_like_keeps_the_answers_and_leaves_out_leaks_and_other_languages():
    grown = teacher.grow(SEEDS, scripted, "more_like", HELD, per_seed=4)
    questions = [r.messages[0]["content"] for r in grown.rows]
    assert questions == ["Tell me who you are.", "What should I call you?", "请介绍一下你自己", "你是哪位？"]
    assert grown.rows[0].messages[1]["content"] == SEEDS[0]["answer"]  # identity answers are kept as they are
    assert grown.left_out == {"leak": 2, "language": 2}
    assert grown.rows[2].provenance == {"teacher": "teacher", "mode": "more_like", "seed_row": 2}


def test_answers_mode_asks_the_teacher_for_each_question():
    grown = teacher.grow([{"row": 7, "question": "What can you do?", "answer": ""}], scripted, "answers", [])
    assert [r.messages[1]["content"] for r in grown.rows] == ["I am Nova, an assistant by Orbit Labs."]


def test_misses_seed_new_questions_never_the_held_out_rows():
    verdict = {"examples": [{"prompt": "Who made you?", "reference": "Orbit Labs made me.", "tuned": "I am SmolLM."},
                            {"prompt": "Hi", "reference": "Hello!", "tuned": "Hello!"}]}
    seeds = teacher.seeds_from_misses(verdict)
    assert [s["question"] for s in seeds] == ["Who made you?"]

    def copier(prompt, temperature=0.7, max_tokens=256):
        return "Who made you?\nWho built you?" if "New question" not in prompt else "Orbit Labs built me."

    grown = teacher.grow(seeds, copier, "misses", ["Who made you?"])
    assert [r.messages[0]["content"] for r in grown.rows] == ["Who built you?"]
    assert grown.rows[0].messages[1]["content"] == "Orbit Labs built me." and grown.left_out["leak"] == 1


def test_a_fault_or_stop_keeps_what_was_made():
    calls = []

    def failing(prompt, temperature=0.7, max_tokens=256):
        calls.append(prompt)
        if len(calls) > 1:
            raise teacher.EndpointError(teacher.Msg("judge.unreachable", url="http://127.0.0.1:9/v1"))
        return scripted(prompt)

    grown = teacher.grow(SEEDS, failing, "more_like", HELD, per_seed=4)
    assert len(grown.rows) == 2 and grown.ended.key == "judge.unreachable"
    stop = threading.Event()
    stop.set()
    assert teacher.grow(SEEDS, scripted, "more_like", HELD, stop=stop).ended.key == "workshop.stopped"


def test_a_teacher_behind_the_served_endpoint(lora_run):
    pair = ChatPair.from_run(lora_run, progress=lambda _: None)
    running = serve.start(serve.Served.of_run(lora_run, lambda: pair), port=free_port())
    try:
        live = teacher.EndpointTeacher(running.base_url, lora_run.name)
        grown = teacher.grow(SEEDS[:1], live, "more_like", HELD, per_seed=2, keep_answers=False)
    finally:
        running.stop()
    assert grown.ended is None  # a random tiny model writes nonsense, filtered or kept, but the calls all worked
    assert len(grown.rows) + sum(grown.left_out.values()) <= 2
    for row in grown.rows:
        assert row.provenance["mode"] == "more_like" and lora_run.name in row.provenance["teacher"]


def test_an_answer_in_another_language_than_the_question_is_left_out():
    grown = teacher.grow([{"row": 3, "question": "你能做什么？", "answer": ""}],
                         lambda prompt, temperature=0.7, max_tokens=256: "I can help with many things.", "answers", [])
    assert grown.rows == [] and grown.left_out == {"language": 1}


# ---------------------------------------------------------------- the page: grow, review, accept (gradio_client)

class _Teacher:
    """An OpenAI-compatible teacher on loopback with fixed habits: two new wordings per question."""

    @staticmethod
    def handler():
        import http.server
        import json

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                asked = body["messages"][0]["content"]
                question = asked.split("\n")[1] if asked.startswith("Here is a question") else asked
                text = f"Could you say: {question.rstrip('?.')}?\nPlease tell me: {question.rstrip('?.')}"
                answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass
        return Handler


def test_grow_review_and_accept_through_the_client_in_both_languages(app_url, tmp_path):
    import http.server
    import json
    from pathlib import Path

    from gradio_client import Client

    from studio.data import versions

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Teacher.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = str(Path(__file__).parent / "data" / "identity_nova.jsonl")
    boxes = dict(dataset_path=data, teacher_source=f"http://127.0.0.1:{port}/v1", teacher_model="fixed",
                 mode="more_like", per_seed=2, keep_answers=True, validation_share=0.2, test_share=0.0, seed=42)
    try:
        for language, accepted in (("en-US", "Made **identity_nova.jsonl v"), ("zh-CN", "已生成 **identity_nova.jsonl v")):
            client = Client(app_url, verbose=False, headers={"Accept-Language": language})
            client.predict(dataset_path=data, api_name="/load_data")
            cost = client.predict(**boxes, api_name="/workshop_cost")
            assert ("calls to the teacher" in cost) if language == "en-US" else ("调用教师" in cost), cost
            note, review = client.predict(**boxes, api_name="/workshop_grow")
            rows = review["data"]
            assert rows and all(r[0] is True for r in rows), note
            rows[0][0] = False  # the user drops one row and edits another
            rows[1][2] = "I am Nova, made by Orbit Labs (edited)."
            path, said = client.predict(review={"headers": review["headers"], "data": rows}, **boxes,
                                        api_name="/workshop_accept")
            assert said.startswith(accepted) and versions.version_of(path) is not None
            records = [json.loads(line) for line in Path(path).read_text().splitlines()]
            grown = [r for r in records if "provenance" in r]
            assert len(grown) == len(rows) - 1 and grown[0]["messages"][1]["content"].endswith("(edited).")
            assert grown[0]["provenance"]["mode"] == "more_like" and "fixed" in grown[0]["provenance"]["teacher"]
    finally:
        server.shutdown()


def test_the_train_tab_aims_the_workshop_at_what_a_run_missed(app_url, chat_run):
    """The loop: a finished run's held-out misses open the Data tab's workshop in 'misses' mode on that run, in the
    reader's language; the run comparison then shows each run's held-out result and data version."""
    from gradio_client import Client

    from studio.core.runs import RunFolder

    misses = teacher.seeds_from_misses(RunFolder(chat_run).verdict() or {})
    zh = Client(app_url, verbose=False, headers={"Accept-Language": "zh-CN"})
    mode, run, said = zh.predict(api_name="/aim_at_misses")[-3:]  # the tab switch is no value
    if misses and run == chat_run:
        assert mode == "misses" and f"{len(misses)} 个留出行" in said
    else:
        assert said  # another run trained later in this app: its own answer, in Chinese
    _, table, _ = Client(app_url, verbose=False).predict([chat_run], api_name="/compare_runs")
    assert table["headers"][-2:] == ["held-out: base → tuned (rows)", "data version"]
    assert "→" in table["data"][0][-2]
