"""GRPO on the starter model: the step cost, the reward curve, and the held-out verdict (the starting model's
greedy answers vs the tuned model's, scored by the run's own rewards), for the studio's GRPO recipe against TRL's
default learning rate through the same engine, in one bench run.

    python bench/grpo_outcome.py [--steps 40] [--rows 96] [--variants studio,trl_defaults] [--set name=value]

The task: small additions and subtractions ("What is 7 + 12?"), each with its number as the reference; the system
prompt asks for a last line "Answer: <number>". Rewards: 'answer_match' (the final answer's number equals the
reference) and 'format' with the preset 'answer_line', weights 1 and 1. 30% of the rows are held out (validation;
a GRPO run never trains on them). Each variant runs in its own process through `studio.training.train.run_training`
(LoRA r16 on all linear layers, 4 answers per prompt, answers up to 64 tokens, 2 prompts a step, seed 0): the
studio's recipe (learning rate 2e-4 for a model under 1B, sampling temperature 0.7) and TRL's GRPOConfig defaults
for the two (1e-6, 1.0), the rest held equal (TRL's default 8 answers of up to 256 tokens would cost 8x per step
on a CPU). Printed per variant: seconds per step (TRL's train_runtime / steps), the mean reward of the first and
last quarter of the steps, and the held-out score before -> after. The figure to read: held-out after - before.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SYSTEM = "You are a careful calculator. Work it out briefly, then end with a last line 'Answer: <number>'."
VARIANTS = {
    "studio": [],  # the recipe's GRPO learning rate (studio/core/stages.py PRACTICE_RATES), the studio's temperature 0.7
    "trl_defaults": ["learning_rate=1e-6", "sampling_temperature=1.0"],  # GRPOConfig's learning rate and temperature
}


def make_questions(path: Path, rows: int) -> Path:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(rows):
            a, b = rng.randint(2, 30), rng.randint(2, 30)
            op = rng.choice("+-")
            a, b = (a, b) if op == "+" or a >= b else (b, a)
            f.write(json.dumps({"question": f"What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a - b)})
                    + "\n")
    return path


def run_variant(name: str, data: Path, out: Path, steps: int, extra: list[str]) -> dict:
    from studio.core import settings_input
    from studio.training import train
    from studio.core.config import Settings
    from studio.core.stages import stage_of

    sets = [f"dataset_path={data}", "stage=grpo", "reward_funcs=answer_match,format", "format_pattern=answer_line",
            f"system_prompt={SYSTEM}", "num_generations=4", "max_completion_length=64", f"max_steps={steps}",
            "per_device_train_batch_size=2", "gradient_accumulation_steps=1", "validation_share=0.3",
            "logging_steps=1", "save_steps=100000", "seed=0", "drift_check=false",
            f"learning_rate={stage_of('grpo').rates('lora')['small']}", *extra, *VARIANTS[name]]
    # The recipe's rate for a model under 1B; the sampling temperature is the settings' default.
    settings, problems = settings_input.apply_overrides(Settings(), sets)
    assert not problems, problems
    status = train.run_training(settings, out, progress=None)
    rewards = [json.loads(line)["reward"] for line in open(out / "metrics.jsonl") if '"reward"' in line]
    quarter = max(1, len(rewards) // 4)
    verdict = status.get("verdict") or {}
    return {"variant": name, "status": status["status"], "steps": status.get("global_step"),
            "s_per_step": round((status.get("train_runtime_s") or 0) / max(status.get("global_step") or 1, 1), 2),
            "reward_first": round(sum(rewards[:quarter]) / quarter, 3) if rewards else None,
            "reward_last": round(sum(rewards[-quarter:]) / quarter, 3) if rewards else None,
            "held_out_rows": verdict.get("rows"), "held_out_before": verdict.get("base"),
            "held_out_after": verdict.get("tuned"), "wall_s": status.get("wall_time_s")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: one variant
    parser.add_argument("--work", default="/tmp/grpo-bench")
    parser.add_argument("--set", action="append", default=[], help="name=value for every variant")
    args = parser.parse_args()
    work = Path(args.work)
    if args.one:
        print(json.dumps(run_variant(args.one, work / "questions.jsonl", work / args.one, args.steps, args.set)))
        return
    work.mkdir(parents=True, exist_ok=True)
    make_questions(work / "questions.jsonl", args.rows)
    results = []
    for name in args.variants.split(","):
        sets = [part for value in args.set for part in ("--set", value)]
        done = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--work",
                               str(work), *sets], capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            print(done.stdout[-2000:], done.stderr[-4000:])
            raise SystemExit(f"variant {name} failed")
        results.append(json.loads(lines[-1]))
        print(json.dumps(results[-1]))
    print("\nvariant          s/step  reward first->last  held-out before->after")
    for r in results:
        print(f"{r['variant']:<16} {r['s_per_step']:>6}  {r['reward_first']} -> {r['reward_last']}"
              f"           {r['held_out_before']} -> {r['held_out_after']} ({r['held_out_rows']} rows)")


if __name__ == "__main__":
    main()
