"""Checks that catch a doomed run before it starts, on the rows as they will be trained. Each returns findings
for the Data tab's quality report (and `launch.py data`), and the run logs the warnings before its first step.

- Unfilled template placeholders ("{{name}}", "{name}", "<NAME>", "[YOUR NAME]") repeated across rows: a file
  whose README says "replace these" (LLaMA-Factory's identity.json) trained as it is teaches the model to call
  itself "{{name}}". A placeholder inside code or a JSON answer is meant to stay: named as a note, not a warning.
- The data's language against the model's: Chinese text that the tokenizer cuts into more than one token per
  character is a language the model has hardly seen (the English-only starter model answers it with English
  nonsense after training); the built-in multilingual model is suggested.
No torch here: the tokenizer is passed in.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import defaultdict

from studio.core.config import GEMMA3_MODEL, STARTER_MODEL
from studio.core.text import CJK, Msg
from studio.data.facts import IDENTITY
from studio.data.stats import Finding

PLACEHOLDER = re.compile(
    r"\{\{\s*[A-Za-z_][\w.\- ]{0,30}\}\}"  # {{name}}, {{ author }}
    r"|(?<![{$\\%])\{[A-Za-z_][A-Za-z0-9_]{0,30}\}(?!\})"  # {name}, not ${x} or %{x}
    r"|<(?:YOUR[ _])?[A-Z][A-Z0-9_ ]{1,30}>"  # <NAME>, <YOUR_NAME>
    r"|\[(?:YOUR|INSERT|ENTER)?[ _]?[A-Z][A-Z0-9_ ]{1,30}\]"  # [NAME], [YOUR NAME]
)
CODE = re.compile(r"```|^\s*(def |class |import |function |const |let |var |#include)", re.M)
MIN_ROWS = 2  # a placeholder in one row may be the row's own text; repeated across rows it is a template's
ENGLISH_ONLY_MODELS = (STARTER_MODEL,)  # built-in models whose stated language is English alone
MULTILINGUAL_MODEL = GEMMA3_MODEL
TOKENS_PER_CHARACTER = 1.2  # above this on Chinese text the tokenizer has few Chinese tokens (byte fallback)


def placeholder_key(token: str) -> str:
    """'{{ name }}', '{name}', '<YOUR_NAME>', '[YOUR NAME]' -> 'name': the word a user fills it with."""
    inner = token.strip("{}<>[] ").lower()
    inner = re.sub(r"^(your|insert|enter)[ _]", "", inner)
    return re.sub(r"[ _]+", "_", inner).strip("_")


def _is_code(text: str) -> bool:
    if CODE.search(text):
        return True
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            json.loads(stripped)
            return True
        except ValueError:
            return False
    return False


def find_placeholders(rows) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """({placeholder: row numbers} in prose, the same in code or JSON), for placeholders in MIN_ROWS+ rows."""
    prose, code = defaultdict(set), defaultdict(set)
    for row in rows:
        for message in row.messages or []:
            text = message.get("content")
            if not isinstance(text, str) or not text:
                continue
            groups = code if _is_code(text) else prose
            for token in set(PLACEHOLDER.findall(text)):
                groups[token].add(row.number)
    keep = lambda groups: {k: sorted(v) for k, v in groups.items() if len(v) >= MIN_ROWS}  # noqa: E731
    return keep(prose), keep(code)


def placeholder_findings(rows, values: dict[str, str] | None = None) -> list:
    """The placeholders a file still holds; with `values` (the 'Fill placeholders' setting), those it fills are
    named as filled and only the rest stays a warning."""

    prose, code = find_placeholders(rows)
    out = []
    filled = {placeholder_key(k) for k in (values or {})}
    done = {k: v for k, v in prose.items() if placeholder_key(k) in filled}
    prose = {k: v for k, v in prose.items() if placeholder_key(k) not in filled}
    if done:
        rows_hit = sorted({n for v in done.values() for n in v})
        out.append(Finding(Msg("check.placeholders"), "ok",
                           Msg("finding.placeholders_filled", count=len(rows_hit), names=", ".join(sorted(done)[:6])),
                           rows_hit))
    if prose:
        names = sorted(prose, key=lambda k: (-len(prose[k]), k))  # the most common first; ties by name
        fill = ", ".join(f"{placeholder_key(n)}=…" for n in dict.fromkeys(names))
        rows_hit = sorted({n for v in prose.values() for n in v})
        out.append(Finding(Msg("check.placeholders"), "warning",
                           Msg("finding.placeholders", count=len(rows_hit), names=", ".join(names[:6]), fill=fill),
                           rows_hit))
    if code:
        rows_hit = sorted({n for v in code.values() for n in v})
        out.append(Finding(Msg("check.placeholders"), "info",
                           Msg("finding.placeholders_code", count=len(rows_hit), names=", ".join(sorted(code)[:6])),
                           rows_hit))
    return out


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """Every placeholder whose word (placeholder_key) has a value, replaced by it; others left as they are, and so
    is code or JSON, whose braces are its own."""
    if not values or not isinstance(text, str) or _is_code(text):
        return text
    wanted = {placeholder_key(k): v for k, v in values.items()}
    return PLACEHOLDER.sub(lambda m: wanted.get(placeholder_key(m.group(0)), m.group(0)), text)


def chinese_sample(rows, limit: int = 4000) -> str:
    parts, count = [], 0
    for row in rows:
        for message in row.messages or []:
            text = message.get("content") if isinstance(message.get("content"), str) else ""
            chinese = "".join(CJK.findall(text))
            if chinese:
                parts.append(chinese)
                count += len(chinese)
        if count >= limit:
            break
    return "".join(parts)[:limit]


def language_findings(rows, tokenizer, model: str | None) -> list:
    """A warning where the data is (partly) Chinese and the model has hardly seen Chinese: its tokenizer cuts a
    Chinese character into more than TOKENS_PER_CHARACTER tokens, or the model's stated language is English."""
    from studio.chat.replay import data_languages  # the one reading of a data set's languages

    if "zh" not in data_languages([{"messages": r.messages} for r in rows if r.messages]):
        return []
    sample = chinese_sample(rows)
    if not sample:
        return []
    ratio = len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / len(sample)
    english_only = model in ENGLISH_ONLY_MODELS
    if ratio <= TOKENS_PER_CHARACTER and not english_only:
        return [Finding(Msg("check.model_language"), "ok", Msg("finding.language_fits", ratio=ratio))]
    suggestion = Msg("finding.try_multilingual", model=MULTILINGUAL_MODEL) if model != MULTILINGUAL_MODEL else ""
    return [Finding(Msg("check.model_language"), "warning",
                    Msg("finding.language_unknown", ratio=ratio, suggestion=suggestion))]


def fill_rows(rows, values: dict[str, str], system_prompt: str = "") -> list:
    """The rows with their placeholders filled and the system prompt given to conversations without one (new Row
    objects: the file's cached rows stay as read)."""
    import dataclasses

    if not values and not system_prompt.strip():
        return rows

    def messages(found: list[dict]) -> list[dict]:
        out = [{**m, "content": fill_placeholders(m.get("content"), values)} for m in found]
        if system_prompt.strip() and not any(m.get("role") == "system" for m in out):
            out.insert(0, {"role": "system", "content": system_prompt.strip()})
        return out

    return [dataclasses.replace(r, messages=messages(r.messages)) if r.messages else r for r in rows]




# What a run trains with, instead of the template's own default, where that default would name another assistant
# in every identity row (studio/training/train.py); the user's own system prompt always wins.
NEUTRAL_SYSTEM = {"en": "You are a helpful assistant.", "zh": "你是一个乐于助人的助手。"}


def neutral_system(rows, tokenizer) -> str:
    """The neutral system prompt a run uses for these rows ("" where none is needed): identity rows without a
    system message under a template whose default system prompt names an assistant. Chinese data gets the
    Chinese one; any other data, or both languages, the English one."""
    found = system_prompt_findings(rows, tokenizer)
    return found[0].message.fields["neutral"] if found else ""  # the finding chose it for the data's languages


def current_findings(findings: list, rows, placeholder_values: dict | None, system_prompt: str) -> list:
    """A report's findings read again against the form's values, so that a warning the user has fixed is gone at
    once: the placeholder check against 'Fill placeholders', the default system prompt against 'System prompt'
    (set: fixed; empty: the run uses a neutral one, said as information)."""
    kept = list(findings)
    if placeholder_values:
        kept = [f for f in kept if getattr(f.check, "key", None) != "check.placeholders"]
        kept += placeholder_findings(rows, placeholder_values)
    out = []
    for finding in kept:
        if getattr(finding.check, "key", None) == "check.default_system":
            if system_prompt.strip():
                continue
            finding = dataclasses.replace(finding, level="info", message=Msg(
                "finding.default_system_neutral", count=len(finding.rows), default=finding.message.fields["default"],
                neutral=finding.message.fields.get("neutral", NEUTRAL_SYSTEM["en"])))
        out.append(finding)
    return out


NAMING = re.compile(r"\bnamed\s+[A-Z]|\bYou are (?!a\b|an\b|the\b)[A-Z]\w*")  # "named SmolLM", "You are Qwen"


def names_an_assistant(system_prompt: str) -> bool:
    """Whether a template's default system prompt names an assistant or its maker ("... named SmolLM, trained by
    Hugging Face", "You are Qwen, created by Alibaba Cloud"). "You are a helpful assistant." and Llama 3's date
    lines name none, and need no replacing."""
    return bool(IDENTITY.search(system_prompt) or NAMING.search(system_prompt))


def trained_rows(rows, findings: list, placeholder_values: dict | None, system_prompt: str) -> list:
    """The rows as a run trains them: placeholders filled, and the system prompt the run uses (the user's, else
    the neutral one `current_findings` named), so that a preview "as trained" is what training sees."""
    neutral = next((f.message.fields.get("neutral", "") for f in findings
                    if getattr(f.check, "key", None) == "check.default_system" and f.level == "info"), "")
    return fill_rows(rows, placeholder_values or {}, system_prompt.strip() or neutral)


def system_prompt_findings(rows, tokenizer) -> list:
    """The template's own default system prompt (SmolLM2's names SmolLM, Qwen's names Qwen) is added to every row
    without a system message; on identity data it contradicts every answer. Named with the fix."""
    from studio.templates.ollama import default_system  # the one reading of a template's default system prompt

    chats = [r for r in rows if r.messages]
    bare = [r.number for r in chats if not any(m.get("role") == "system" for m in r.messages)]
    identity = [r.number for r in chats if any(m.get("role") == "assistant" and isinstance(m.get("content"), str)
                                               and IDENTITY.search(m["content"]) for m in r.messages)]
    if not bare or len(identity) < max(MIN_ROWS, 0.2 * len(chats)):
        return []
    try:
        default = default_system(tokenizer)
    except Exception:  # noqa: BLE001 - a template that cannot render a plain chat has no default to name
        return []
    if not names_an_assistant(default):
        return []
    hit = sorted(set(bare) & set(identity))
    from studio.chat.replay import data_languages

    languages = data_languages([{"messages": r.messages} for r in chats])
    neutral = NEUTRAL_SYSTEM["zh" if list(languages) == ["zh"] else "en"]
    return [Finding(Msg("check.default_system"), "warning",
                    Msg("finding.default_system", count=len(hit), default=default.strip()[:200], neutral=neutral), hit)]


def preflight_findings(rows, tokenizer=None, model: str | None = None) -> list:
    """Every pre-flight check that applies: placeholders always, the language check where a tokenizer is given."""
    out = placeholder_findings(rows)
    if tokenizer is not None:
        out += language_findings(rows, tokenizer, model) + system_prompt_findings(rows, tokenizer)
    return out
