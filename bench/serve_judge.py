"""Issue 55's numbers: the served endpoint against the Chat tab's engine, and a judge against the held-out score.

    STUDIO_HOME=... python bench/serve_judge.py [--judge gemma3-270m] [--rows 16]

1. Trains the studio's recipe on the outcome bench's English identity task (starter model; bench/outcome.py).
2. Latency: the same 5 prompts (greedy, 48 new tokens) answered by the tuned model through the OpenAI endpoint
   (`openai` client, streaming: first token as the client sees it, tokens per second over the answer) and by
   the Chat tab's engine in this process (`stream_pair`: both panes decoded together, as the tab does; the tuned
   pane's own first token and decode rate). Same process, same weights.
3. Judge agreement: on the task's held-out questions, the base and the tuned answer, each scored by the task's
   own check (name and maker given); a row's reference outcome is the side that scored higher (else a tie). The
   judge (a local model: the only kind here; both built-ins are far below a trustworthy judge's size) compares
   the answers in both orders; agreement = share of rows where its outcome equals the reference outcome.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import outcome  # noqa: E402  (bench/outcome.py: the task and the recipe runner)

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROMPTS = ["Who are you?", "What is your name?", "Who made you?", "Tell me about yourself.", "What can you do?"]


def endpoint_latency(run_dir: Path, pair) -> dict:
    import openai

    from studio.chat import serve

    running = serve.start(serve.Served.of_run(run_dir, lambda: pair), port=free_port())
    client = openai.OpenAI(base_url=running.base_url, api_key="x", max_retries=0)
    firsts, rates = [], []
    try:
        for prompt in PROMPTS:
            started, first, pieces = time.perf_counter(), None, 0
            for part in client.chat.completions.create(model=run_dir.name, max_tokens=48, stream=True,
                                                       messages=[{"role": "user", "content": prompt}]):
                if part.choices and part.choices[0].delta.content:
                    first = first or time.perf_counter() - started
                    pieces += 1
            total = time.perf_counter() - started
            firsts.append(first or total)
            usage = client.chat.completions.create(model=run_dir.name, max_tokens=48,
                                                   messages=[{"role": "user", "content": prompt}]).usage
            rates.append(usage.completion_tokens / max(total - (first or 0), 1e-6))
    finally:
        running.stop()
    return {"first_token_ms": 1000 * statistics.median(firsts), "tokens_per_s": statistics.median(rates)}


def chat_latency(pair) -> dict:
    from studio.chat.chat import stream_pair
    from studio.core.config import GenerationSettings

    settings = GenerationSettings(max_new_tokens=48, temperature=0.0)
    firsts, rates, walls = [], [], []
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        started = time.perf_counter()
        _, tuned = list(stream_pair(pair, messages, messages, settings))[-1]
        walls.append(time.perf_counter() - started)
        firsts.append(tuned.first_token_s or 0)
        rates.append(tuned.new_tokens / max(tuned.seconds - (tuned.first_token_s or 0), 1e-6))
    return {"first_token_ms": 1000 * statistics.median(firsts), "tokens_per_s": statistics.median(rates),
            "pair_wall_s": statistics.median(walls)}


def judge_agreement(run_dir: Path, pair, held: list[dict], judge_model: str, rows: int) -> dict:
    from studio.chat import judge
    from studio.chat.chat import stream_pair
    from studio.core.config import GenerationSettings

    settings = GenerationSettings(max_new_tokens=48, temperature=0.0)
    items, reference = [], []
    for row in held[:rows]:
        messages = row["messages"][:-1]
        base, tuned = list(stream_pair(pair, messages, messages, settings))[-1]
        b, t = outcome.names_identity(base.text), outcome.names_identity(tuned.text)
        reference.append("tuned" if t > b else "base" if b > t else "tie")
        items.append({"prompt": messages[-1]["content"], "reference": row["messages"][-1]["content"],
                      "base": base.text, "tuned": tuned.text})
    local = judge.LocalJudge(judge_model)
    started = time.perf_counter()
    pairs, _ = judge.judge_pairs(items, local, "Does the answer give the assistant's name and its maker correctly?")
    agree = sum(p.outcome == r for p, r in zip(pairs, reference))
    result = judge.result_of(local.name, "", pairs)
    return {"rows": len(pairs), "agreement": agree / max(len(pairs), 1), "judge_rate": result.rate,
            "reference": {k: reference.count(k) for k in ("tuned", "base", "tie")},
            "judge": {"tuned": result.wins, "base": result.losses, "tie": result.ties},
            "unclear": result.unclear, "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge", default="gemma3-270m")
    parser.add_argument("--rows", type=int, default=16)
    args = parser.parse_args()
    from studio.chat.chat import ChatPair

    train_rows, held = outcome.identity_task(random.Random(0))
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = outcome.write_jsonl(work / "identity.jsonl", train_rows)
        run = work / "identity-run"
        status = outcome.train_recipe("studio", "starter", data, run)
        assert status["status"] == "finished", status
        pair = ChatPair.from_run(run, progress=lambda *_: None)
        served, chat = endpoint_latency(run, pair), chat_latency(pair)
        print("latency, starter model identity run, 5 prompts, 48 new tokens, greedy (medians):")
        print(f"  endpoint (openai client, streaming): first token {served['first_token_ms']:.0f} ms, "
              f"{served['tokens_per_s']:.1f} tokens/s")
        print(f"  Chat tab engine (both panes):        first token {chat['first_token_ms']:.0f} ms, "
              f"{chat['tokens_per_s']:.1f} tokens/s (tuned pane's own decode time), pair {chat['pair_wall_s']:.2f} s")
        print(f"  ratio endpoint / Chat tab tokens/s: {served['tokens_per_s'] / chat['tokens_per_s']:.2f}x")
        agreement = judge_agreement(run, pair, held, args.judge, args.rows)
        print(f"judge {args.judge} vs the task's own check on {agreement['rows']} held-out rows: agreement "
              f"{agreement['agreement']:.0%}; reference outcomes {agreement['reference']}, judge's "
              f"{agreement['judge']}, unclear verdicts {agreement['unclear']} of {2 * agreement['rows']}, "
              f"{agreement['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
