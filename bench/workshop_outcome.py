"""Issue 54's outcome: the studio's recipe on a small identity file as given against the same file grown by the
workshop, same engine, scored on held-out questions the teacher never saw.

    STUDIO_HOME=... python bench/workshop_outcome.py [--rows 12] [--teacher starter] [--per-seed 3]

The file: the first `--rows` rows of the outcome bench's English identity task (bench/outcome.py: "Nova" by
"Orbit Labs"); held out: that task's own held-out questions. The teacher (a built-in model here: no other is
reachable; both are far below a good teacher's size) writes new wordings of each question, the answers kept
(identity data teaches exactly them); rows near a held-out question, in another language, empty or repeated are
left out. Both runs use the studio's plan for their data. Printed: rows, the held-out task score (name and maker
given), the drift level and the training time of each.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import outcome  # noqa: E402


def grow_file(rows: list[dict], held: list[dict], teacher_model: str, per_seed: int, out: Path):
    from studio.chat import teacher as teachers
    from studio.chat.judge import LocalJudge
    from studio.core.config import GenerationSettings
    from studio.chat.chat import answer

    local = LocalJudge(teacher_model)  # a model on this machine, loaded once

    def ask(prompt: str, temperature: float = 0.7, max_tokens: int = 256) -> str:
        return answer(local.model, local.tokenizer, [{"role": "user", "content": prompt}],
                      GenerationSettings(max_new_tokens=min(max_tokens, 128), temperature=temperature)).text

    ask.name = teacher_model
    seeds = [{"row": i + 1, "question": r["messages"][0]["content"], "answer": r["messages"][1]["content"]}
             for i, r in enumerate(rows)]
    held_questions = [r["messages"][-2]["content"] for r in held]
    grown = teachers.grow(seeds, ask, "more_like", held_questions, per_seed=per_seed, keep_answers=True)
    records = rows + [g.record() for g in grown.rows]
    return outcome.write_jsonl(out, records), grown


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--teacher", default="starter")
    parser.add_argument("--per-seed", type=int, default=3)
    args = parser.parse_args()
    train_rows, held = outcome.identity_task(random.Random(0))
    small = train_rows[:args.rows]
    results = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        given = outcome.write_jsonl(work / "small.jsonl", small)
        grown_path, grown = grow_file(small, held, args.teacher, args.per_seed, work / "grown.jsonl")
        print(f"grown by {args.teacher}: {len(grown.rows)} new rows from {args.rows} in {grown.seconds:.0f} s; "
              f"left out {dict(grown.left_out)}")
        for sample in grown.rows[:4]:
            print("  e.g.", json.dumps(sample.messages[0]["content"], ensure_ascii=False))
        for name, data in (("as given", given), ("grown", grown_path)):
            run = work / name.replace(" ", "-")
            status = outcome.train_recipe("studio", "starter", data, run)
            assert status["status"] == "finished", status
            report = outcome.score_run(run, held, outcome.names_identity)
            from studio.chat import drift

            level = drift.level(status["drift"]) if status.get("drift") else "-"
            results[name] = (sum(1 for _ in open(data, encoding="utf-8")), report["task_base"], report["task_tuned"],
                             level, status.get("train_runtime_s") or 0.0)
    print(f"held-out: {len(held)} questions (name and maker given), studio recipe, starter model")
    print("data       rows  base  tuned  drift  train s")
    for name, (rows, base, tuned, level, seconds) in results.items():
        print(f"{name:9s} {rows:5d} {base:5.0%} {tuned:6.0%}  {level:5s} {seconds:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
