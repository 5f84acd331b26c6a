"""A judge model that compares a run's base and tuned answers when no person has time to vote on every pair.

The judge sees the prompt, the reference answer where there is one, and the two answers unlabelled as A and B, in
both orders (base first, then tuned first): a pair counts as a win for one side only when both orders pick it,
otherwise a tie; an answer that names neither A nor B is an unclear verdict, counted as a tie and said. The result
is a win rate with its Wilson interval (the same reading as the blind votes, studio/data/votes.py), the judge's
one-line reasons, and the pairs where the judge and the people who voted disagree; it is saved with the run
(judge.json), and the verdict reads it (a judged line beside ROUGE-L).

A judge is any OpenAI-compatible endpoint (Ollama, LM Studio, llama.cpp, vLLM, a hosted API, the studio's own
served run: studio/chat/serve.py) or a local model folder. An API key is read from the field or the environment
and never written anywhere. Generated text is data: it is never run, and the page shows it as text.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from studio.core.runs import RunFolder
from studio.core.text import Msg
from studio.data.votes import read_votes, votes_file, wilson_interval
from .endpoint import EndpointError, chat_completion, completions_url

DEFAULT_RUBRIC = "Which answer is more correct and more helpful for the request?"
KEY_VARIABLE = "STUDIO_JUDGE_API_KEY"
TIMEOUT_S = 60.0  # one judge call; a slower judge is said, and the pairs judged so far are kept
SMALL_JUDGE_PARAMETERS = 3e9  # a local judge under this is allowed with a plain note that it cannot be trusted
JUDGE_FILE = "judge.json"
PROMPT = """You compare two answers to the same request.

What matters: {rubric}

Request:
{prompt}
{reference}
Answer A:
{a}

Answer B:
{b}

Reply with one line: the better answer's letter (A or B), or "tie" if neither is better, then " - " and one short \
reason."""
# the verdict first, then a separator or nothing ("A - ...", "b: ...", "Tie."); "A or B?" is no verdict
CHOICE = re.compile(r"^\W*(?:answer\s*)?(A|B|tie)\s*(?:$|[-:–—.,)])", re.IGNORECASE)
LONE_LETTER = re.compile(r"\b(A|B)\b")


class JudgeError(Exception):
    """A judge that cannot answer (unreachable, slow, a wrong key, not the protocol): a message, pairs kept."""


@dataclass
class JudgedPair:
    prompt: str
    reference: str
    base: str
    tuned: str
    choices: list = field(default_factory=list)  # the judge's pick in each order: base shown as A, then as B
    reasons: list = field(default_factory=list)
    outcome: str = "tie"  # "tuned", "base" or "tie" (the orders disagree, or an unclear verdict)
    unclear: int = 0  # verdicts that named neither A nor B
    human: str | None = None  # what the blind votes on the same prompt say, where someone voted


def parse_choice(text: str) -> tuple[str | None, str]:
    """("A" | "B" | "tie" | None, the reason). A verdict naming neither answer is None: never guessed."""
    text = (text or "").strip()
    first = text.splitlines()[0] if text else ""
    if match := CHOICE.match(first):
        choice = match.group(1)
        reason = first[match.end():].strip(" -:–—.")
        return ("tie" if choice.lower() == "tie" else choice.upper()), reason or text[len(first):].strip()[:200]
    letters = set(LONE_LETTER.findall(first))
    if len(letters) == 1:  # "I prefer B because ..." names one answer
        return letters.pop(), first[:200]
    return None, first[:200]


def outcome_of(base_first: str | None, tuned_first: str | None) -> str:
    """Both orders must agree. Base first: A is the base, B the tuned; tuned first: the other way round."""
    if base_first == "B" and tuned_first == "A":
        return "tuned"
    if base_first == "A" and tuned_first == "B":
        return "base"
    return "tie"


def judge_prompt(prompt: str, reference: str, a: str, b: str, rubric: str) -> str:
    said = f"\nA reference answer (what a good answer says):\n{reference}\n" if reference.strip() else ""
    return PROMPT.format(rubric=rubric.strip() or DEFAULT_RUBRIC, prompt=prompt, reference=said, a=a, b=b)


def judge_pairs(items: list[dict], ask: Callable[[str], str], rubric: str = "", stop: threading.Event | None = None,
                progress: Callable[[int, int], None] | None = None) -> tuple[list[JudgedPair], Msg | None]:
    """Each item ({prompt, reference, base, tuned}) judged in both orders. Returns the pairs judged and, where it
    ended early (Stop, or a judge that failed), why: what was judged so far is kept."""
    judged = []
    for i, item in enumerate(items):
        if stop is not None and stop.is_set():
            return judged, Msg("judge.stopped", done=len(judged), total=len(items))
        pair = JudgedPair(item["prompt"], item.get("reference", ""), item["base"], item["tuned"])
        try:
            for a, b in ((pair.base, pair.tuned), (pair.tuned, pair.base)):
                choice, reason = parse_choice(ask(judge_prompt(pair.prompt, pair.reference, a, b, rubric)))
                pair.choices.append(choice)
                pair.reasons.append(reason)
                pair.unclear += choice is None
        except JudgeError as err:
            return judged, err.args[0]
        pair.outcome = outcome_of(*pair.choices)
        judged.append(pair)
        if progress is not None:
            progress(i + 1, len(items))
    return judged, None


@dataclass
class JudgeResult:
    judge: str
    rubric: str
    pairs: list
    wins: int
    losses: int
    ties: int
    unclear: int
    rate: float | None
    low: float | None
    high: float | None
    note: dict | None = None  # why it ended early, or that the judge is too small to trust (Msg as JSON)
    small: bool = False

    @property
    def disagreements(self) -> list:
        return [p for p in self.pairs if p.human in ("tuned", "base", "tie") and p.human != p.outcome]

    def line(self) -> Msg:
        """The sentence beside the held-out score and the votes."""
        if self.rate is None:
            return Msg("judge.none")
        return Msg("judge.line", wins=self.wins, pairs=len(self.pairs), losses=self.losses, ties=self.ties,
                   rate=self.rate, low=self.low, high=self.high, judge=self.judge)


def result_of(judge: str, rubric: str, pairs: list[JudgedPair], note: Msg | None = None,
              small: bool = False) -> JudgeResult:
    """Wins + ties/2 out of the pairs, as the votes are read; with its 95% interval."""
    wins = sum(p.outcome == "tuned" for p in pairs)
    losses = sum(p.outcome == "base" for p in pairs)
    ties = len(pairs) - wins - losses
    rate = low = high = None
    if pairs:
        rate = (wins + ties / 2) / len(pairs)
        low, high = wilson_interval(wins + ties / 2, len(pairs))
    return JudgeResult(judge, rubric, pairs, wins, losses, ties, sum(p.unclear for p in pairs), rate, low, high,
                       note.to_json() if note is not None else None, small)


def with_human_votes(pairs: list[JudgedPair], run_dir: str | Path) -> list[JudgedPair]:
    """Each pair's blind-vote reading (the latest vote on the same prompt, against the base model)."""
    latest = {}
    for vote in read_votes(votes_file(run_dir)):
        if vote.reference:
            continue
        asked = next((m["content"] for m in reversed(vote.prompt) if m.get("role") == "user"), "")
        latest[asked] = vote.winner or ("tie" if vote.verdict == "tie" else None)
    for pair in pairs:
        pair.human = latest.get(pair.prompt)
    return pairs


def save(result: JudgeResult, run_dir: str | Path) -> Path:
    path = RunFolder(run_dir).path / JUDGE_FILE
    body = {**asdict(result), "pairs": [asdict(p) for p in result.pairs]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def saved(run_dir: str | Path) -> JudgeResult | None:
    """The run's last judge result, or None."""
    path = RunFolder(run_dir).path / JUDGE_FILE
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        body["pairs"] = [JudgedPair(**p) for p in body["pairs"]]
        return JudgeResult(**body)
    except (OSError, ValueError, TypeError, KeyError):
        return None


# ---------------------------------------------------------------- judges

class EndpointJudge:
    """Any OpenAI-compatible chat endpoint (studio/chat/endpoint.py), asked greedily for a short verdict. The key
    comes from the field or STUDIO_JUDGE_API_KEY and stays in memory."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = TIMEOUT_S):
        self.url, self.model, self.timeout_s = completions_url(base_url), model, timeout_s
        self._key = api_key

    @property
    def name(self) -> str:
        return f"{self.model} ({self.url.removesuffix('/chat/completions')})"

    def __call__(self, prompt: str) -> str:
        try:
            return chat_completion(self.url, self.model, [{"role": "user", "content": prompt}], self._key,
                                   max_tokens=64, timeout_s=self.timeout_s, key_variable=KEY_VARIABLE)
        except EndpointError as err:
            raise JudgeError(err.args[0]) from None


class LocalJudge:
    """A model folder (or a built-in model) on this machine, answering greedily with the Chat tab's decoder."""

    def __init__(self, model: str):
        from studio.models import models

        self.model_name = model
        path = models.resolve_model_path(model, progress=lambda _: None)
        self.tokenizer = models.load_tokenizer(path)
        self.model = models.load_model(path, "fp32").eval()
        self.parameters = models.count_parameters(self.model)[1]

    @property
    def name(self) -> str:
        return self.model_name

    @property
    def small(self) -> bool:
        return self.parameters < SMALL_JUDGE_PARAMETERS

    def __call__(self, prompt: str) -> str:
        from studio.core.config import GenerationSettings
        from .chat import answer

        return answer(self.model, self.tokenizer, [{"role": "user", "content": prompt}],
                      GenerationSettings(max_new_tokens=48, temperature=0.0)).text


def make_judge(source: str, model: str = "", api_key: str = ""):
    """An endpoint for a URL (http:// or https://), else a model folder or built-in name on this machine. A folder
    outside the studio's is refused before anything is read."""
    source = (source or "").strip()
    if source.startswith(("http://", "https://")):
        if not model.strip():
            raise JudgeError(Msg("judge.needs_model"))
        return EndpointJudge(source, model.strip(), api_key)
    from studio.core.paths import source_refusal

    if not source:
        raise JudgeError(Msg("judge.needs_source"))
    if refusal := source_refusal(source):
        raise JudgeError(refusal)
    return LocalJudge(source)


def judge_items(run_dir: str | Path, pair, prompts: list[str] | None = None, limit: int = 20,
                stop: threading.Event | None = None) -> list[dict]:
    """The pairs to judge: the run's held-out prompts with their references (or the prompts the user pasted,
    without), each answered greedily by the base and the tuned model with the Chat tab's decoder."""
    from studio.core.config import GenerationSettings
    from .chat import stream_pair
    from .evaluate import held_out_examples

    if prompts:
        examples = [([{"role": "user", "content": p}], "") for p in prompts[:limit]]
    else:
        examples, _ = held_out_examples(run_dir, limit)
    settings = GenerationSettings(max_new_tokens=96, temperature=0.0)
    items = []
    for messages, reference in examples:
        if stop is not None and stop.is_set():
            break
        base, tuned = list(stream_pair(pair, messages, messages, settings, stop=stop))[-1]
        items.append({"prompt": messages[-1]["content"], "reference": reference, "base": base.text,
                      "tuned": tuned.text})
    return items


def run_judge(run_dir: str | Path, pair, judge, rubric: str = "", prompts: list[str] | None = None,
              stop: threading.Event | None = None, progress: Callable[[int, int], None] | None = None) -> JudgeResult:
    """Answer, judge in both orders, read beside the votes, save with the run."""
    items = judge_items(run_dir, pair, prompts, stop=stop)
    if not items:
        return result_of(judge.name, rubric, [], Msg("chat.no_held_out"))
    pairs, ended = judge_pairs(items, judge, rubric, stop, progress)
    small = bool(getattr(judge, "small", False))
    note = ended or (Msg("judge.small", judge=judge.name) if small else None)
    result = result_of(judge.name, rubric or DEFAULT_RUBRIC, with_human_votes(pairs, run_dir), note, small)
    if pairs:
        save(result, run_dir)
    return result
