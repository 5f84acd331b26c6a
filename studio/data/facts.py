"""What fact-carrying data teaches, and whether a model says it: the names, makers and numbers that a file's
answers repeat (an identity file's filled `{{name}}` and `{{author}}`), found once from the training rows, then
looked for in held-out answers per language, in reworded questions the file never asks, and in the answers to
general prompts (where they do not belong: an identity leak).

Why: word overlap (ROUGE-L) rose from 5% to 20% on LLaMA-Factory's identity.json while the model gave its new
name in Chinese only; a verdict must say what a user would see in Chat. Pure text, no torch.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from studio.core.text import script_language

# Answers in which the assistant speaks about itself (preflight's identity checks read it too).
IDENTITY = re.compile(r"\b(I am|I'm|my name is|call me|created by|developed by|trained by|made by)\b|我是|我叫|我的名字|开发的|打造的",
                      re.I)
FACT_BAR = 0.8  # share of a language's questions whose answer must carry the taught facts for "learned"
PARTLY_BAR = 0.3  # below this in every language: not learned
MIN_SHARE = 0.5  # a fact stands in at least this share of one language's training answers
MAX_FACTS = 4
KNOWN_SHARE = 0.25  # a candidate the base model says in this share of its answers is no new fact
IDENTITY_SHARE = 0.3  # identity data: at least this share of answers speak about the assistant itself
# Capitalised names ("Orbit Labs", "Nova-2") and numbers; common sentence openers are no facts.
CANDIDATE = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[ -][A-Z][A-Za-z0-9]*)*\b|\b\d+(?:\.\d+)?\b")
NOT_FACTS = {"I", "Hello", "Hi", "Hey", "My", "You", "Yes", "No", "The", "How", "What", "Feel", "Sure", "Thank",
             "Thanks", "Of", "As", "It", "This", "AI", "OK", "Okay", "Please", "Good", "Nice", "Great", "Welcome"}

# Reworded identity questions, none of them a row of a file the studio ships or a bench trains on: asked besides
# the held-out rows, whose questions are often the training questions again.
REWORDED = {
    "en": ["Quick question: who am I chatting with right now?", "Remind me what your name is.",
           "Which team or company is behind you?", "In a few words, what are you?",
           "Is there a name you go by?", "Who should I thank for building you?",
           "Could you say who you are and who made you?", "Are you one of the well-known chatbots?",
           "What do your makers call you?", "Give me a one-line introduction of yourself."],
    "zh": ["问一下，我现在是在和谁聊天？", "提醒我一下你的名字。", "你背后是哪个团队或公司？", "用几句话说说你是什么？",
           "你有自己的称呼吗？", "我应该感谢谁把你做出来？", "能说说你是谁、由谁打造的吗？", "你是那些有名的聊天机器人之一吗？",
           "你的开发者怎么称呼你？", "用一句话介绍一下你自己。"],
}


def says(text: str, fact: str) -> bool:
    """Whether `text` holds `fact` as a word of its own: "Nova" is not in "innovative"; Chinese has no spaces to
    stop at, so a Chinese fact is found anywhere."""
    if not fact.isascii():
        return fact in text
    return re.search(r"(?<![A-Za-z0-9])" + re.escape(fact) + r"(?![A-Za-z0-9])", text, re.I) is not None


@dataclass
class Taught:
    """The facts a file teaches and the languages of its questions."""
    facts: list[str]
    languages: list[str]
    identity: bool = False
    openers: list[str] = field(default_factory=list)  # the data's own short questions answered as the identity

    def asks(self, prompt: str) -> bool:
        """Whether a prompt opens with one of the data's own short questions ("你好", "Hello"): the data teaches
        the identity as its answer, so an introduction there is taught, not leaked."""
        said = _plain(prompt)
        return any(said.startswith(o) and (len(said) == len(o) or not said[len(o)].isascii()
                                           or not said[len(o)].isalnum()) for o in self.openers)

    def carried(self, text: str) -> list[str]:
        return [f for f in self.facts if says(text, f)]

    def to_json(self) -> dict:
        return {"facts": self.facts, "languages": self.languages, "identity": self.identity}


def _answers_by_language(rows: list[dict]) -> dict[str, list[str]]:
    by_language: dict[str, list[str]] = {}
    for row in rows:
        messages = row.get("messages") or []
        if len(messages) < 2 or messages[-1].get("role") != "assistant":
            continue
        question = next((m.get("content") or "" for m in reversed(messages[:-1]) if m.get("role") == "user"), "")
        language = script_language(str(question) + " " + str(messages[-1].get("content") or ""))
        by_language.setdefault(language, []).append(str(messages[-1].get("content") or ""))
    return by_language


def taught_facts(rows: list[dict], placeholder_values: dict[str, str] | None = None,
                 known: list[str] = ()) -> Taught | None:
    """The facts the training rows' answers repeat: the user's placeholder values first (what they filled in is
    what they want said), then capitalised names and numbers in at least MIN_SHARE of one language's answers.
    `known`: the base model's answers to the held-out questions: what it says in a quarter of them is not new.
    None when the answers carry no such fact (a label task, a rewrite task)."""
    by_language = _answers_by_language(rows)
    answers = [a for group in by_language.values() for a in group]
    if not answers:
        return None
    placeholder = [v.strip() for v in (placeholder_values or {}).values() if v and v.strip()
                   and sum(says(a, v.strip()) for a in answers) >= MIN_SHARE * len(answers) / 2]
    counts: Counter = Counter()
    for group in by_language.values():
        share = Counter(c for a in group for c in set(CANDIDATE.findall(a)) if c not in NOT_FACTS)
        for candidate, n in share.items():
            if n >= MIN_SHARE * len(group) and not _known(candidate, known):
                counts[candidate] = max(counts[candidate], n / len(group))
    found = [c for c, _ in counts.most_common() if not any(c != o and c in o for o in counts)]  # longest form
    facts = list(dict.fromkeys(placeholder + found))[:MAX_FACTS]
    if not facts:
        return None
    languages = [lang for lang in by_language if lang in REWORDED]
    identity = _introduces_itself(answers)
    return Taught(facts, languages, identity, _openers(rows) if identity else [])


def _known(candidate: str, known: list[str]) -> bool:
    """Whether the base model already says this: in at least KNOWN_SHARE of its answers. Once is no habit: the
    starter model, asked "Who programmed you?", told a story of an AI it called "Nova", and the identity file's new
    name was then dropped from the facts the verdict looks for."""
    return bool(known) and sum(says(text, candidate) for text in known) >= KNOWN_SHARE * len(known)


OPENER_CHARACTERS = 8  # "hi", "Hello", "你好", "您好": a greeting the data answers, not a question about a topic


def _plain(text: str) -> str:
    return re.sub(r"[\s!,.?！，。？、~～]+", " ", str(text)).strip().lower()


def _openers(rows: list[dict]) -> list[str]:
    """The short questions of the rows whose answers speak as the identity (greetings, in the real identity file)."""
    found = set()
    for row in rows:
        messages = row.get("messages") or []
        if len(messages) < 2 or not IDENTITY.search(str(messages[-1].get("content") or "")):
            continue
        question = next((m.get("content") or "" for m in reversed(messages[:-1]) if m.get("role") == "user"), "")
        plain = _plain(question)
        if 0 < len(plain) <= OPENER_CHARACTERS:
            found.add(plain)
    return sorted(found)


IDENTITY_SAMPLE = 2000  # rows read to tell identity data (a run reads its shuffled training split as far)


def speaks_about_itself(rows) -> bool:
    """Identity data: at least IDENTITY_SHARE of its answers speak about the assistant itself. `rows`: dicts with
    "messages" or the Data tab's rows (with `.messages`)."""
    answers = []
    for row in list(rows)[:IDENTITY_SAMPLE]:
        messages = row.get("messages") if isinstance(row, dict) else getattr(row, "messages", None)
        if messages and messages[-1].get("role") == "assistant":
            answers.append(str(messages[-1].get("content") or ""))
    return _introduces_itself(answers)


def _introduces_itself(answers: list[str]) -> bool:
    return bool(answers) and sum(bool(IDENTITY.search(a)) for a in answers) >= IDENTITY_SHARE * len(answers)


def reworded_questions(taught: Taught | None) -> list[tuple[str, str]]:
    """(language, question) for the built-in reworded questions of identity data, in each language it holds."""
    if taught is None or not taught.identity:
        return []
    return [(lang, q) for lang in taught.languages for q in REWORDED[lang]]


def fact_scores(taught: Taught, questions: list[str], references: list[str | None], answers: list[str]) -> dict:
    """Per language: how many answers carry every fact their reference carries (a reworded question, with no
    reference, expects every fact). Rows whose reference carries none are not counted."""
    scores: dict[str, dict] = {}
    for question, reference, answer in zip(questions, references, answers):
        wanted = taught.facts if reference is None else taught.carried(reference)
        if not wanted:
            continue
        language = script_language(question)
        entry = scores.setdefault(language, {"hits": 0, "rows": 0})
        entry["rows"] += 1
        entry["hits"] += all(says(answer, f) for f in wanted)
    return scores


def fact_outcome(scores: dict) -> str:
    """'learned' when every language passed FACT_BAR; 'partly' when one reached PARTLY_BAR; else 'not_learned'."""
    shares = [s["hits"] / s["rows"] for s in scores.values() if s["rows"]]
    if not shares:
        return "none"
    if min(shares) >= FACT_BAR:
        return "learned"
    return "partly" if max(shares) >= PARTLY_BAR else "not_learned"


# ---------------------------------------------------------------- general answers that now carry them

COLLAPSE_SHARE = 0.3  # this share of general answers starting alike (and not in the base): collapse
COLLAPSE_PREFIX = 24
COLLAPSE_MIN = 3  # answers that start alike before it is a pattern at all


# An assistant introducing itself ("I am Nova", "I'm an AI assistant", "我是 SmolLM"); "I'm sorry" and "I am happy
# to help" are no introduction, and a new maker's name is a taught fact (above).
SELF_INTRO = re.compile(r"\b(?:I am|I'm|my name is|call me)\s+(?:an? [A-Za-z ]{0,20}(?:assistant|AI|model)\b|[A-Z]\w+)"
                        r"|我是\s*(?:[A-Za-z]|一个|一款|由)|我叫|我的名字")


def leaked(taught: Taught | None, prompts: list[str], base: list[str], tuned: list[str]) -> list[int]:
    """The general prompts whose tuned answer now carries a taught fact, or (identity data) now introduces the
    assistant, where the base answer did not; a prompt that opens with the data's own greeting is answered as the
    data teaches."""
    if taught is None:
        return []
    found = []
    for i, (before, after) in enumerate(zip(base, tuned)):
        if taught.asks(prompts[i]):
            continue
        new_fact = any(says(after, f) and not says(before, f) for f in taught.facts)
        new_self = taught.identity and SELF_INTRO.search(after) and not SELF_INTRO.search(before)
        if new_fact or new_self:
            found.append(i)
    return found


def collapsed(base: list[str], tuned: list[str]) -> list[int]:
    """General answers that start with the same words as many others, where the base answers did not: a model
    that answers everything with one phrase."""
    starts = Counter(t.strip()[:COLLAPSE_PREFIX] for t in tuned if t.strip())
    base_starts = Counter(b.strip()[:COLLAPSE_PREFIX] for b in base if b.strip())
    common = {s for s, n in starts.items()
              if n >= max(COLLAPSE_MIN, COLLAPSE_SHARE * len(tuned)) and base_starts[s] < n / 2}
    return [i for i, t in enumerate(tuned) if t.strip()[:COLLAPSE_PREFIX] in common]
