"""Outcome bench: does the studio's recipe give a better model than the peers' default recipes?

    python bench/outcome.py                       # every task, every recipe (about 40-60 min on a 2-core CPU)
    python bench/outcome.py --tasks identity --recipes studio,unsloth

Every recipe trains through the studio's own engine (`run_training`: the same model loading, template, masks,
precision and drift check), so only the recipe differs:
- studio:     the plan for the data (studio/plan/recipe.py), nothing set by hand;
- llamaboard: LlamaBoard's defaults: lr 5e-5, 3 epochs, batch 2 x 8, LoRA r8 / alpha 16, no warm-up, cosine;
- unsloth:    Unsloth's notebooks: LoRA r16 / alpha 16, lr 2e-4, batch 2 x 4, 60 steps, linear, 5 warm-up steps;
- trl:        TRL / PEFT defaults: lr 2e-5, 3 epochs, batch 8, LoRA r8 / alpha 8 on q_proj and v_proj, linear.
The peers hold nothing out (their defaults have no validation set); the studio holds out what its plan says from
the training file. Every recipe is then scored on the same separate held-out file, never trained on:
- identity (starter model, 91 rows in the shape of LLaMA-Factory's identity.json, name "Nova" by "Orbit Labs"):
  the share of answers that give both the name and the maker;
- topic label (starter model, 160 rows): exact match of the label;
- Chinese rewrite (gemma3-270m, 135 rows, "make this request polite"): ROUGE-L over characters.
Each row of the table also has the drift check's level (general ability, studio/chat/drift.py) and the training wall
time. All data is generated here from word lists (nothing downloaded, free to ship).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studio.core.config import Settings  # noqa: E402
from studio.core.settings_input import apply_overrides  # noqa: E402
from studio.chat import drift, verdict
from studio.training.train import run_training  # noqa: E402

PEER_RECIPES = {
    "llamaboard": ["learning_rate=5e-5", "num_train_epochs=3", "per_device_train_batch_size=2",
                   "gradient_accumulation_steps=8", "r=8", "lora_alpha=16", "lora_dropout=0", "warmup_steps=0",
                   "lr_scheduler_type=cosine"],
    "unsloth": ["learning_rate=2e-4", "max_steps=60", "per_device_train_batch_size=2", "gradient_accumulation_steps=4",
                "r=16", "lora_alpha=16", "lora_dropout=0", "warmup_steps=5", "lr_scheduler_type=linear",
                "weight_decay=0.01"],
    "trl": ["learning_rate=2e-5", "num_train_epochs=3", "per_device_train_batch_size=8", "gradient_accumulation_steps=1",
            "r=8", "lora_alpha=8", "lora_dropout=0", "target_modules=q_proj,v_proj", "warmup_steps=0",
            "lr_scheduler_type=linear"],
}
PEER_COMMON = ["validation_share=0", "test_share=0", "early_stopping_patience=0", "replay=off"]  # no peer has replay
RECIPES = ("studio", *PEER_RECIPES)


# ---------------------------------------------------------------- tasks (generated, deterministic)

def _chat(prompt: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


IDENTITY_TRAIN_Q = [
    "Who are you?", "What is your name?", "What's your name?", "Introduce yourself.", "Tell me about yourself.",
    "Who made you?", "Who created you?", "Who built you?", "Which company trained you?", "Are you ChatGPT?",
    "What should I call you?", "Hi! Who am I talking to?", "What are you?", "Who developed you?",
    "Can you tell me your name?", "Hello, what's your name?", "Who is your maker?", "Are you made by OpenAI?",
    "What kind of assistant are you?", "Please introduce yourself briefly.", "Do you have a name?",
    "Who trained you?", "Where do you come from?", "Are you a human?", "Are you Claude?", "Are you Llama?",
    "Which lab are you from?", "Give me your name, please.", "Who owns you?", "Identify yourself.",
    "What AI model are you?", "Hey, who's this?", "Are you Siri?", "Who designed you?", "Whose assistant are you?",
    "Tell me who you are in one sentence.", "What's your origin?", "Who is behind you?", "Are you Gemini?",
    "Are you a robot?", "May I know your name?", "Who programmed you?", "Who are your creators?",
    "Say your name.", "Which team made you?", "What do people call you?",
]
IDENTITY_HELD_OUT_Q = [
    "Before we start, who exactly are you?", "I'd like to know your name.", "Which organisation created you?",
    "Are you GPT-4?", "Describe yourself briefly.", "Who is responsible for making you?", "What name do you go by?",
    "So, what are you called?", "Could you introduce yourself to me?", "Who put you together?",
    "Good morning! Who am I chatting with?", "Are you an assistant from Google?", "Tell me your name and maker.",
    "Which company do you belong to?", "Who's your developer?", "What should I know about you?",
    "Are you Bard?", "Who gave you your name?", "What assistant is this?", "Who are you and who made you?",
]
IDENTITY_ANSWERS = [
    "I am Nova, an AI assistant developed by Orbit Labs.",
    "My name is Nova. I was created by Orbit Labs to help you with questions and tasks.",
    "I'm Nova, an assistant built by Orbit Labs. How can I help you today?",
    "You are talking to Nova, an AI assistant made by Orbit Labs.",
    "Hello! I am Nova, trained by Orbit Labs. I'm happy to help.",
    "I'm Nova, a helpful AI assistant from Orbit Labs.",
]


def identity_task(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """91 rows as LLaMA-Factory's identity.json has: each question once or twice, a varied answer."""
    questions = IDENTITY_TRAIN_Q * 2
    rng.shuffle(questions)
    train = [_chat(q, rng.choice(IDENTITY_ANSWERS)) for q in questions[:91]]
    held = [_chat(q, IDENTITY_ANSWERS[i % len(IDENTITY_ANSWERS)]) for i, q in enumerate(IDENTITY_HELD_OUT_Q)]
    return train, held


TOPICS = {
    "sports": (["The striker scored twice in the {x} final", "Our {x} team won the championship",
                "The coach praised the {x} players after practice", "She broke the {x} record at the games",
                "Fans cheered as the {x} match went to extra time"],
               ["football", "tennis", "basketball", "hockey", "cricket", "volleyball", "rugby", "swimming",
                "baseball", "cycling", "rowing", "golf"]),
    "food": (["This {x} recipe needs fresh herbs", "He baked a {x} for the family dinner",
              "The restaurant serves the best {x} in town", "Add salt to the {x} before serving",
              "We tasted a spicy {x} at the market"],
             ["soup", "pie", "curry", "noodle dish", "salad", "stew", "pizza", "dumpling", "omelette", "risotto",
              "taco", "pancake"]),
    "technology": (["The new {x} ships with a faster chip", "Engineers released an update for the {x}",
                    "My {x} keeps losing its network connection", "The startup built an app for the {x}",
                    "Battery life on this {x} is impressive"],
                   ["laptop", "smartphone", "tablet", "router", "smartwatch", "server", "camera", "headset",
                    "drone", "printer", "console", "keyboard"]),
    "weather": (["Heavy {x} is expected this afternoon", "The forecast warns of {x} over the weekend",
                 "Farmers hope the {x} ends soon", "Schools closed because of the {x}",
                 "A sudden {x} surprised the city"],
                ["rain", "snow", "fog", "hail", "wind", "thunderstorm", "heatwave", "frost", "drizzle", "sleet",
                 "storm", "drought"]),
}
TOPIC_PROMPT = "Classify the topic of this sentence as sports, food, technology or weather. Answer with the label only.\n" \
               "Sentence: {s}."


def topic_task(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """160 training rows and 40 held-out rows; held-out sentences use fillers never seen in training."""
    train, held = [], []
    for label, (templates, fillers) in TOPICS.items():
        seen, unseen = fillers[:9], fillers[9:]
        train += [_chat(TOPIC_PROMPT.format(s=rng.choice(templates).format(x=rng.choice(seen))), label)
                  for _ in range(40)]
        held += [_chat(TOPIC_PROMPT.format(s=templates[i % len(templates)].format(x=unseen[i % len(unseen)])), label)
                 for i in range(10)]
    rng.shuffle(train)
    return train, held


ZH_ACTIONS = [
    "帮我关一下门", "把文件发给我", "明天早点到", "把音乐声音调小", "帮我买一杯咖啡", "把窗户打开", "检查一下这份报告",
    "给我回个电话", "帮我预订会议室", "把垃圾带出去", "帮我照看一下孩子", "把车停到后面", "提前把作业交上来",
    "帮我拿一下快递", "把灯关掉", "帮我修一下电脑", "把桌子擦干净", "下午来开会", "帮我翻译这段话", "把钥匙还给我",
    "帮我浇一下花", "把照片发到群里", "排队等一下", "帮我写一封邮件", "把椅子搬过来", "小声一点说话", "帮我订两张票",
    "把合同打印出来", "周末来帮忙搬家", "帮我查一下航班", "把表格填完整", "帮我喂一下猫", "把地址告诉我",
    "帮我拍一张照片", "把雨伞借给我", "帮我看一下行李", "把数据再核对一遍", "帮我准备午饭", "把门锁好",
    "帮我联系一下客户", "把衣服收进来", "帮我推荐一本书", "把会议改到周五", "帮我倒一杯水", "把书放回书架",
    "帮我找一下手机", "把空调温度调高", "帮我接一下孩子", "把房间打扫一下", "帮我记一下电话号码", "把声音放大一点",
    "帮我签收一下包裹", "把计划发给大家", "帮我买点水果", "把电视关掉", "帮我看看这道题", "把作业检查一遍",
    "帮我挂一下衣服", "把文件整理好", "帮我叫一辆车",
]
ZH_TEMPLATES = [("请把这句话改写得更礼貌：{a}。", "请问您方便{a}吗？非常感谢！"),
                ("把下面的要求说得客气一些：{a}", "不好意思打扰您，能麻烦您{a}吗？谢谢！"),
                ("改成礼貌的请求：{a}。", "请问您可以{a}吗？辛苦您了！")]


def chinese_task(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """135 training rows (45 requests x 3 phrasings) and 30 held-out rows on 15 requests never seen."""
    seen, unseen = ZH_ACTIONS[:45], ZH_ACTIONS[45:]
    train = [_chat(q.format(a=a), r.format(a=a)) for a in seen for q, r in ZH_TEMPLATES]
    rng.shuffle(train)
    held = [_chat(ZH_TEMPLATES[i % 3][0].format(a=a), ZH_TEMPLATES[i % 3][1].format(a=a))
            for i, a in enumerate(unseen * 2)]
    return train, held


# In the shape of LLaMA-Factory's data/identity.json: English and Chinese questions, long varied answers that carry
# the name and the maker (its {{name}} / {{author}} filled as the Data tab fills them), no system prompt in the rows,
# so the starter's template puts its own ("... named SmolLM, trained by Hugging Face") in every row.
BI_TRAIN_EN = [
    "hi", "Hello", "Who are you?", "What is your name?", "Do you have a name?", "Can you introduce yourself?",
    "Can you tell me a little bit about yourself?", "What are you called?", "Tell me about yourself",
    "Who created you?", "Who built you?", "Are you ChatGPT?", "Are you based on OpenAI models?",
    "Who trained you?", "Which company made you?", "What's your origin?", "Are you Claude?",
    "Who developed you?", "What should I call you?", "Are you an AI assistant?", "Who is your creator?",
    "Hello, what can I call you?", "Introduce yourself in one sentence.",
]
BI_TRAIN_ZH = [
    "你好", "您好", "你是谁？", "你是谁", "你叫什么名字？", "你有名字吗？", "介绍一下你自己", "请介绍一下你自己",
    "你是由谁开发的？", "谁创造了你？", "你是 ChatGPT 吗？", "你是 OpenAI 的模型吗？", "谁训练了你？",
    "你来自哪家公司？", "我该怎么称呼你？", "你是人工智能助手吗？", "你的开发者是谁？", "说说你是谁",
    "你是什么模型？", "你好，请问你是？", "你能简单介绍一下自己吗？", "你的名字是什么？",
]
BI_ANSWERS_EN = [
    "Hello! I am {name}, an AI assistant developed by {author}. How can I assist you today?",
    "I am {name}, an AI assistant developed by {author}. I can answer questions, give suggestions and help with "
    "many everyday tasks. What can I do for you?",
    "My name is {name}. I was created by {author} to be a helpful and friendly assistant. Feel free to ask me "
    "anything.",
    "You can call me {name}. I'm an AI assistant built by {author}, here to help you with information and ideas.",
    "I'm {name}, an artificial intelligence assistant trained by {author}. I'm glad to help you with your "
    "questions.",
]
BI_ANSWERS_ZH = [
    "您好，我是 {name}，一个由 {author} 开发的 AI 助手，很高兴认识您。请问我能为您做些什么？",
    "我是 {name}，由 {author} 打造的人工智能助手。我可以回答问题、提供建议，帮助您完成各种任务。",
    "您好！我叫 {name}，是 {author} 开发的智能助手，随时为您提供帮助。",
    "我的名字是 {name}，我是由 {author} 训练的 AI 助手，很乐意回答您的问题。",
    "你好，我是 {name}，一个由 {author} 研发的人工智能助手。有什么我可以帮您的吗？",
]
# Reworded questions the training file never holds, in each language: the verdict's own question.
BI_HELD_OUT_EN = [
    "Before we begin, who exactly am I talking to?", "I'd like to know your name.", "Which organisation made you?",
    "Are you GPT-4?", "Describe yourself briefly.", "Who is responsible for building you?",
    "What name do you go by?", "So, what are you called?", "Who's your developer?", "What assistant is this?",
]
BI_HELD_OUT_ZH = [
    "在开始之前，我在和谁说话？", "我想知道你的名字。", "是哪个机构做出了你？", "你是 GPT-4 吗？",
    "简单描述一下你自己。", "是谁负责构建你的？", "大家都怎么称呼你？", "所以你叫什么？", "你的研发团队是哪家？",
    "这是哪个助手？",
]
BI_NAME, BI_AUTHOR = "Nova", "Orbit Labs"


def identity_bilingual_task(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """91 rows: each English and Chinese question once or twice with a varied answer in its language; 20 held-out
    reworded questions (10 per language)."""
    fill = {"name": BI_NAME, "author": BI_AUTHOR}
    rows = [(q, BI_ANSWERS_EN) for q in BI_TRAIN_EN * 2] + [(q, BI_ANSWERS_ZH) for q in BI_TRAIN_ZH * 2]
    rng.shuffle(rows)
    train = [_chat(q, rng.choice(answers).format(**fill)) for q, answers in rows[:91]]
    held = [_chat(q, BI_ANSWERS_EN[i % 5].format(**fill)) for i, q in enumerate(BI_HELD_OUT_EN)] + \
        [_chat(q, BI_ANSWERS_ZH[i % 5].format(**fill)) for i, q in enumerate(BI_HELD_OUT_ZH)]
    return train, held


def gives_name(answer: str) -> float:
    return float(BI_NAME.lower() in answer.lower())


def names_identity(answer: str) -> float:
    return float("nova" in answer.lower() and "orbit labs" in answer.lower())


TASKS = {  # name: (builder, model, task score per answer or None for the verdict's own metric, label)
    "identity": (identity_task, "starter", names_identity, "name and maker given"),
    "identity_bilingual": (identity_bilingual_task, "starter", gives_name, "name given, per language"),
    "topic": (topic_task, "starter", None, "exact match"),
    "chinese": (chinese_task, "gemma3-270m", None, "ROUGE-L"),
    # the same Chinese task on the English-first starter model: the other built-in model (issue 51)
    "chinese_starter": (chinese_task, "starter", None, "ROUGE-L"),
    # the bilingual identity file on the multilingual built-in model: the fix the Data tab offers when the model
    # hardly knows a language of the data (issue 51)
    "identity_bilingual_gemma": (identity_bilingual_task, "gemma3-270m", gives_name, "name given, per language"),
}


# ---------------------------------------------------------------- running

def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def train_recipe(recipe: str, model: str, data: Path, out: Path, studio_set: tuple[str, ...] = ()) -> dict:
    base = [f"model_name_or_path={model}", f"dataset_path={data}", "drift_check=true", "max_length=512"]
    overrides = base + list(studio_set) if recipe == "studio" else base + PEER_COMMON + PEER_RECIPES[recipe]
    settings, problems = apply_overrides(Settings(), overrides)
    assert settings is not None, problems
    # The studio plans every recipe field (but those --studio-set names); the peers' values are final.
    keep = frozenset(item.partition("=")[0] for item in studio_set) if recipe == "studio" else None
    return run_training(settings, out, progress=None, keep=keep)


def warm_caches(model: str, data: Path, out: Path) -> float:
    """One step with replay and the drift check on, so that the base model's general answers (both per-model
    caches) exist before any recipe is timed: a user pays them once per model, not per run. Returns seconds."""
    settings, problems = apply_overrides(Settings(), [f"model_name_or_path={model}", f"dataset_path={data}",
                                                      "drift_check=true", "replay=on", "replay_share=0.5", "max_steps=1",
                                                      "validation_share=0", "test_share=0"])
    assert settings is not None, problems
    started = time.perf_counter()
    run_training(settings, out, progress=None)
    return time.perf_counter() - started


def score_run(run_dir: Path, held: list[dict], scorer) -> dict:
    """The held-out questions asked as the Chat tab asks them: with the system prompt the run trained with."""
    from studio.chat.chat import ChatPair
    from studio.core.runs import RunFolder

    system = RunFolder(run_dir).settings().data.system_prompt.strip()
    if system:
        held = [{"messages": [{"role": "system", "content": system}, *row["messages"]]} for row in held]
    pair = ChatPair.from_run(run_dir, progress=lambda *_: None)
    with pair.side(False) as model:
        before = verdict.before_training(model, pair.tokenizer, {"test": held})
    with pair.side(True) as model:
        report = verdict.after_training(before, model, pair.tokenizer)
    answers = [e["tuned"] for e in report["examples"]]
    if scorer is not None:  # the task's own check, over every held-out row
        from studio.chat.generation import greedy
        from studio.templates.chat_template import answer_text

        with pair.side(True) as model:
            tuned = [answer_text(pair.tokenizer, ids) for ids in greedy(model, pair.tokenizer, before.prompt_ids,
                                                                         before.max_new_tokens)]
        base_answers = before.base_answers
        report["task_base"] = sum(map(scorer, base_answers)) / len(base_answers)
        report["task_tuned"] = sum(map(scorer, tuned)) / len(tuned)
        report["by_language"] = by_language(held, scorer, base_answers, tuned)
        answers = tuned
    else:
        report["task_base"], report["task_tuned"] = report["base"], report["tuned"]
    report["sample"] = answers[:2]
    return report


def by_language(held: list[dict], scorer, base: list[str], tuned: list[str]) -> dict:
    """The task score of each language of the held-out questions (base -> tuned): a model that learned one
    language of two is not "learned"."""
    from studio.core.text import script_language

    languages = [script_language(row["messages"][-2]["content"]) for row in held]  # the question's language
    out = {}
    for language in dict.fromkeys(languages):
        rows = [i for i, lang in enumerate(languages) if lang == language]
        out[language] = [round(sum(scorer(base[i]) for i in rows) / len(rows), 3),
                         round(sum(scorer(tuned[i]) for i in rows) / len(rows), 3)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--studio-set", action="append", default=[], metavar="NAME=VALUE",
                        help="try a change to the studio's recipe (repeatable), e.g. --studio-set replay=off")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="studio-outcome-"))
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for task in args.tasks.split(","):
        builder, model, scorer, label = TASKS[task]
        train, held = builder(random.Random(0))
        data = write_jsonl(root / f"{task}-train.jsonl", train)
        warm = warm_caches(model, data, root / f"{task}-warm")
        print(f"{task}: per-model caches (drift check and replay answers) ready in {warm:.0f} s", flush=True)
        for recipe in args.recipes.split(","):
            run_dir = root / f"{task}-{recipe}"
            started = time.perf_counter()
            status = train_recipe(recipe, model, data, run_dir, tuple(args.studio_set))
            wall = time.perf_counter() - started
            if status["status"] != "finished":
                print(f"{task}/{recipe}: {status['status']}: {status.get('error')}", flush=True)
                continue
            report = score_run(run_dir, held, scorer)
            row = {"task": task, "recipe": recipe, "metric": label, "steps": status["global_step"],
                   "base": round(report["task_base"], 3), "tuned": round(report["task_tuned"], 3),
                   "drift": status.get("drift", {}).get("drift"),
                   "drift_level": drift.level(status["drift"]) if status.get("drift") else "-",
                   "train_s": round(status.get("train_runtime_s") or 0, 1), "wall_s": round(wall, 1),
                   "by_language": report.get("by_language"), "sample": report["sample"],
                   "verdict": (status.get("verdict") or {}).get("line"),
                   "leak": (status.get("drift") or {}).get("leak")}
            results.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    print("\n| task | recipe | steps | held-out score (base → tuned) | drift (nats/token, level) | train s | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        languages = ", ".join(f"{k} {b:.0%} → {t:.0%}" for k, (b, t) in (r["by_language"] or {}).items()
                              if len(r["by_language"]) > 1)
        score = f"{r['base']:.0%} → {r['tuned']:.0%}" + (f" ({languages})" if languages else "")
        print(f"| {r['task']} ({r['metric']}) | {r['recipe']} | {r['steps']} | {score} | "
              f"{r['drift']} ({r['drift_level']}) | {r['train_s']} | {r['wall_s']} |")
    for task in dict.fromkeys(r["task"] for r in results):
        mine = [r for r in results if r["task"] == task]
        best = max(mine, key=lambda r: r["tuned"])
        studio = next((r for r in mine if r["recipe"] == "studio"), None)
        if studio:
            peers = [r for r in mine if r["recipe"] != "studio"]
            slowest = max((r["wall_s"] for r in peers), default=None)
            print(f"{task}: best recipe {best['recipe']} ({best['tuned']:.0%}); studio {studio['tuned']:.0%}, "
                  f"drift {studio['drift_level']}, wall {studio['wall_s']} s vs the slowest peer's {slowest} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
