"""The GRPO stage's built-in rewards: a user picks them by name, no code. Each scores completions in [0, 1] (None:
this reward cannot score the row, e.g. no reference answer; TRL then leaves it out of the sum).

- answer_match: the completion's final answer equals the reference, numbers compared as numbers ("1,000" = 1000.0),
  labels and text case- and punctuation-insensitively.
- answer_exact: the final answer equals the reference character for character (spaces at the ends aside).
- format: the whole completion matches a regex the user types, or a preset (`FORMAT_PRESETS`).
- json_valid: the completion (code fences aside) is JSON, and valid against the schema when one is given.
- length: the completion's length in tokens is within a range; less outside it, the further the less.
- language: the answer is written in the prompt's language (Chinese vs. the rest, by script).

Pure functions of text, no torch: the Data tab's report and the tests call them as they are, and the GRPO run wraps
them (`reward_functions`) as TRL calls rewards: `f(prompts, completions, completion_ids, reference=..., **kw)`.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from .text import CJK
from .user_patterns import bounded_match, nested_quantifier, schema_shape_problem, schema_validator

REWARD_NAMES = ("answer_match", "answer_exact", "format", "json_valid", "length", "language")
NEEDS_REFERENCE = ("answer_match", "answer_exact")

# Formats a beginner picks by name; any other text in the box is a regex (matched against the whole completion).
FORMAT_PRESETS = {
    "think_answer": r"<think>.+?</think>\s*\S.*",  # reasoning in <think>...</think>, then the answer
    "think_answer_tags": r"<think>.+?</think>\s*<answer>.+?</answer>\s*",
    "answer_line": r"(?:.*\n)?Answer: *\S[^\n]*\s*",  # the last line is "Answer: ..."
    "one_line": r"[^\n]+",  # a single line
}

NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
ANSWER_LINE = re.compile(r"(?:final answer|answer|答案)\s*(?:is|是|[:：=])\s*[:：]?\s*(.+)", re.I)
LETTERS = re.compile(r"[^\W\d_]", re.U)
FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


# ---------------------------------------------------------------- answers

def reference_answer(text) -> str | None:
    """The final answer a reference holds: GSM8K's '... #### 72' -> '72', '\\boxed{3}' -> '3', a label as text;
    None for an empty reference."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    if "####" in text:
        return text.rsplit("####", 1)[1].strip() or None
    if boxed := BOXED.findall(text):
        return boxed[-1].strip()
    return text


def as_number(text: str) -> float | None:
    """'1,000' -> 1000.0, '-3.5' -> -3.5, '50%' -> 50.0; None when the text is not one number."""
    cleaned = text.strip().rstrip(".%").replace(",", "").replace("$", "").strip()
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def final_answer(completion: str) -> str:
    """What a completion gives as its answer: <answer>...</answer>, \\boxed{...}, the text after 'Answer:', else
    the last non-empty line."""
    if tags := ANSWER_TAG.findall(completion):
        return tags[-1].strip()
    if boxed := BOXED.findall(completion):
        return boxed[-1].strip()
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if found := ANSWER_LINE.search(line):
            return found.group(1).strip()
    return lines[-1] if lines else ""


def normalised(text: str) -> str:
    """Case, width, punctuation and spaces aside: 'Positive.' == 'positive' == ' POSITIVE!'."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "S")))


def answer_matches(completion: str, reference: str) -> bool:
    """Numbers as numbers (the completion's final answer's last number); labels and text normalised."""
    answer = final_answer(completion)
    wanted = as_number(reference)
    if wanted is not None:
        numbers = NUMBER.findall(answer) or NUMBER.findall(completion)
        got = as_number(numbers[-1]) if numbers else None
        return got is not None and math.isclose(got, wanted, rel_tol=1e-6, abs_tol=1e-9)
    target = normalised(reference)
    return bool(target) and (normalised(answer) == target or normalised(completion) == target)


# ---------------------------------------------------------------- the options of each reward

@dataclass(frozen=True)
class RewardOptions:
    """What the chosen rewards need besides the completion: the format's regex, the JSON schema, the length range."""
    format_pattern: str = "think_answer"
    json_schema: dict | None = None
    length_range: tuple[int, int] = (1, 256)

    def pattern(self) -> str:
        return FORMAT_PRESETS.get(self.format_pattern, self.format_pattern)

    def validator(self):
        """The schema's validator, made once per options (a run makes one RewardOptions)."""
        if "_validator" not in self.__dict__:
            object.__setattr__(self, "_validator", schema_validator(self.json_schema))
        return self.__dict__["_validator"]


def pattern_problem(text: str) -> dict | None:
    """Why a format box's regex cannot be used, or None: {"position": where it fails to compile, counted from 1},
    or {"slow": True} for a repeat inside a repeat (`(.+)+`), whose matching can take longer than the universe."""
    pattern = FORMAT_PRESETS.get(text, text)
    try:
        re.compile(pattern, re.S | re.M)
    except re.error as err:
        return {"position": (err.pos or 0) + 1}
    return {"slow": True} if nested_quantifier(pattern, re.S | re.M) else None


def schema_problem(text: str) -> dict | None:
    """Why a JSON schema box cannot be used ({"line": n} when it is not JSON, {"path": p} where it breaks JSON
    Schema's rules), or None. Empty: no schema. No English sentence from a parser: the reader's language says it."""
    if not text.strip():
        return None
    try:
        schema = json.loads(text)
    except ValueError as err:
        return {"line": getattr(err, "lineno", 1)}
    except RecursionError:  # nested far beyond any schema: the shape check below would name the depth
        return {"path": "$", "why": "depth"}
    import jsonschema  # deferred: only a schema needs it

    if not isinstance(schema, (dict, bool)):
        return {"path": "$"}
    if problem := schema_shape_problem(schema):  # before jsonschema walks it: it recurses as deep as the schema
        return problem
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        return {"path": err.json_path}
    return None


# ---------------------------------------------------------------- the rewards, one completion at a time

def answer_match(completion: str, reference: str | None, **_) -> float | None:
    return None if reference is None else float(answer_matches(completion, reference))


def answer_exact(completion: str, reference: str | None, **_) -> float | None:
    return None if reference is None else float(final_answer(completion) == reference.strip())


def format_reward(completion: str, options: RewardOptions, **_) -> float:
    """0 also when the match runs out of time (counted in user_patterns.TIMEOUTS)."""
    return float(bounded_match(options.pattern(), completion.strip(), re.S | re.M))


def json_valid(completion: str, options: RewardOptions, **_) -> float:
    text = completion.strip()
    if fenced := FENCE.match(text):
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # an answer nested deeper than the parser goes is no valid answer
        return 0.0
    if options.json_schema is None:
        return 1.0
    from referencing.exceptions import Unresolvable  # deferred, with jsonschema

    try:
        return float(options.validator().is_valid(value))
    except (RecursionError, Unresolvable):  # nested beyond what validation walks; a `$ref` to elsewhere (refused)
        return 0.0


def length_reward(completion: str, options: RewardOptions, tokens: int | None = None, **_) -> float:
    """1 inside the range; outside it falls linearly to 0 at twice the range's width away."""
    size = tokens if tokens is not None else len(completion.split())
    low, high = options.length_range
    width = max(high - low, 1)
    distance = low - size if size < low else size - high if size > high else 0
    return max(0.0, 1.0 - distance / (2 * width))


def is_chinese(text: str) -> bool:
    """Chinese when at least a fifth of its letters are Chinese characters."""
    letters = len(LETTERS.findall(text))
    return letters > 0 and len(CJK.findall(text)) / letters >= 0.2


def language_reward(completion: str, prompt_text: str = "", **_) -> float:
    return float(bool(completion.strip()) and is_chinese(completion) == is_chinese(prompt_text))


SCORERS: dict[str, Callable[..., float | None]] = {
    "answer_match": answer_match, "answer_exact": answer_exact, "format": format_reward, "json_valid": json_valid,
    "length": length_reward, "language": language_reward,
}


def score(name: str, completion: str, reference: str | None = None, prompt_text: str = "",
          options: RewardOptions | None = None, tokens: int | None = None) -> float | None:
    """One reward of one completion."""
    return SCORERS[name](completion, reference=reference, options=options or RewardOptions(),
                         prompt_text=prompt_text, tokens=tokens)


def can_score(name: str, reference: str | None) -> bool:
    return name not in NEEDS_REFERENCE or reference is not None


# ---------------------------------------------------------------- as TRL calls them

def message_text(message) -> str:
    """A completion or prompt as text: TRL hands conversational ones as message lists."""
    if isinstance(message, str):
        return message
    return "\n".join(str(m.get("content", "")) for m in message if isinstance(m, dict))


def user_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1:] or prompt)


def reward_functions(names, options: RewardOptions, record: Callable | None = None,
                     own: list[Callable] = ()) -> list[Callable]:
    """The chosen rewards as TRL's reward functions, each named as the reward (TRL logs `rewards/<name>/mean`),
    the user's `own` functions (studio/core/code_rewards.py) last, as they are named. `record(prompts, completions,
    {name: scores})` is called after the last one scores a batch: the run keeps a few sampled completions with
    their rewards."""
    scored: dict[str, list] = {}
    names = list(names)
    own_by_name = {f.__name__: f for f in own}

    def make(name: str):
        def reward(prompts, completions, completion_ids=None, reference=None, **kwargs):
            references = reference if reference is not None else [None] * len(completions)
            ids = completion_ids if completion_ids is not None else [None] * len(completions)
            if name in own_by_name:
                scores = list(own_by_name[name](prompts=prompts, completions=completions,
                                                completion_ids=completion_ids, reference=references, **kwargs))
            else:
                scores = [score(name, message_text(c), r, user_text(p), options, None if i is None else len(i))
                          for p, c, r, i in zip(prompts, completions, references, ids)]
            scored[name] = scores
            if record is not None and name == names[-1]:
                record(prompts, completions, dict(scored))
                scored.clear()
            return scores

        reward.__name__ = name
        return reward

    return [make(name) for name in names]


def options_of(method_settings) -> RewardOptions:
    """The rewards' options from the settings' GRPO fields."""
    schema = method_settings.json_schema.strip()
    return RewardOptions(method_settings.format_pattern, json.loads(schema) if schema else None,
                         (method_settings.length_reward_min, method_settings.length_reward_max))


def parse_weights(text: str) -> list[float] | None:
    """'1, 0.5' -> [1.0, 0.5]; None when a part is not a finite number."""
    try:
        weights = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        return None
    return weights if all(math.isfinite(w) for w in weights) else None


def weights_of(method_settings) -> list[float]:
    """One weight per chosen reward: the settings' own, else 1 each (the settings checked their count)."""
    parsed = parse_weights(method_settings.reward_weights) or []
    return parsed if len(parsed) == len(method_settings.reward_funcs) else [1.0] * len(method_settings.reward_funcs)


def weighted_score(names, weights, options: RewardOptions, prompt_text: str, reference: str | None,
                   completion: str) -> float:
    """One answer's score in [0, 1]: the weighted mean of the rewards that can score it (as TRL sums them, but
    divided by the weights used, so 1 means every reward was earned)."""
    pairs = [(w, score(n, completion, reference, prompt_text, options)) for n, w in zip(names, weights)]
    used = [(w, s) for w, s in pairs if s is not None]
    total = sum(w for w, _ in used)
    return sum(w * s for w, s in used) / total if total else 0.0


def held_out_scorer(method_settings) -> Callable[[list, list, list], float]:
    """The held-out verdict's score of a GRPO run: the mean weighted reward of the answers (studio/chat/verdict.py)."""
    names, weights, options = list(method_settings.reward_funcs), weights_of(method_settings), options_of(method_settings)

    def scorer(prompts, references, answers) -> float:
        scores = [weighted_score(names, weights, options, user_text(p), r, a)
                  for p, r, a in zip(prompts, references, answers)]
        return sum(scores) / max(len(scores), 1)

    def by_reward(prompts, references, answers) -> dict[str, float]:
        """Each reward's mean over the rows it can score: which one moved."""
        means = {}
        for name in names:
            scored = [s for p, r, a in zip(prompts, references, answers)
                      if (s := score(name, a, r, user_text(p), options)) is not None]
            if scored:
                means[name] = round(sum(scored) / len(scored), 4)
        return means

    scorer.by_reward = by_reward
    return scorer
