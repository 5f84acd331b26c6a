"""Render conversations with the model's own chat template and mark which tokens are the assistant's.

TRL's `assistant_only_loss` needs templates with `{% generation %}` markers, which most models (SmolLM2, Llama,
Qwen) do not ship. The studio finds the assistant spans itself: the text a template renders for the first i turns
plus the generation prompt is a prefix of the text for i+1 turns, and what lies between is the assistant's answer
(including its end-of-turn token, which the model must learn to emit). Token masks come from the fast tokenizer's
offsets. The result is what training sees, so the Data tab's statistics use the same function.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from . import word_counts
from .data import THINK_CLOSE, THINK_OPEN

logger = logging.getLogger(__name__)
CHECKED_ROWS = 8  # rows of each batch counted by the tokenizer too, against the word counts

TOOLS_OPEN, TOOLS_CLOSE = "You can call these tools:\n<tools>", "</tools>"  # for templates without tool support


@dataclass
class Rendered:
    text: str
    spans: list[tuple[int, int]]  # character spans of assistant answers
    exact: bool  # False when the template broke the prefix property and only the last answer could be found


def template_features(tokenizer) -> dict:
    template = tokenizer.chat_template or ""
    return {"thinking": "reasoning_content" in template, "tools": "tool_calls" in template,
            "tool_definitions": re.search(r"\btools\b", template) is not None}


def adapt_messages(messages: list[dict], features: dict, tools: list[dict] | None = None) -> list[dict]:
    """Fold what the template cannot render (reasoning, tool calls, tool definitions) into plain content, visibly:
    a model must never learn to call tools whose definitions it was not shown."""
    out = []
    if tools and not features["tool_definitions"]:
        listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
        definitions = f"{TOOLS_OPEN}\n{listed}\n{TOOLS_CLOSE}"
        if messages and messages[0]["role"] == "system":
            messages = [{**messages[0], "content": f"{messages[0]['content']}\n\n{definitions}"}, *messages[1:]]
        else:
            messages = [{"role": "system", "content": definitions}, *messages]
    for m in messages:
        m = dict(m)
        reasoning = m.pop("reasoning_content", None)
        if reasoning and not features["thinking"]:
            m["content"] = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{m.get('content') or ''}"
        elif reasoning:
            m["reasoning_content"] = reasoning
        if m.get("tool_calls") and not features["tools"]:
            calls = "\n".join(json.dumps(c.get("function", c), ensure_ascii=False) for c in m.pop("tool_calls"))
            m["content"] = f"{m.get('content') or ''}<tool_call>\n{calls}\n</tool_call>".lstrip()
        out.append(m)
    return out


def _render_with(messages, tokenizer, add_generation_prompt=False, tools=None) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def fast_renderer(tokenizer):
    """The model's template rendered by its compiled Jinja template directly: the same text as
    apply_chat_template for plain messages, without its per-call copying and checks (about half the time of a
    20k-row length report). Checked against apply_chat_template on a probe; None where they differ."""
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template  # deferred: heavy. Private: guarded

        template = _compile_jinja_template(tokenizer.chat_template)
        extra = dict(tokenizer.special_tokens_map)  # what apply_chat_template hands the template besides messages

        def render(messages, add_generation_prompt=False, tools=None):
            return template.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                   **extra)

        probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]
        for upto, prompt in ((3, False), (4, True), (2, True)):
            if render(probe[:upto], prompt) != _render_with(probe[:upto], tokenizer, prompt):
                return None
        return render
    except Exception:  # another transformers version or a template that needs more: the ordinary path
        return None


def _plain(messages: list[dict]) -> bool:
    return all(m.keys() <= {"role", "content"} and isinstance(m.get("content"), str) for m in messages)


def render_messages(tokenizer, messages: list[dict], features: dict | None = None,
                    tools: list[dict] | None = None, fast=None) -> Rendered:
    """`fast` (from fast_renderer) is used for plain conversations; tool calls, reasoning and tool definitions take
    apply_chat_template, which prepares them for the template."""
    features = features or template_features(tokenizer)
    messages = adapt_messages(messages, features, tools)
    tools = tools if features["tool_definitions"] else None  # otherwise already in the system message
    if fast is not None and tools is None and _plain(messages):
        render = fast
    else:
        render = functools.partial(_render_with, tokenizer=tokenizer, tools=tools)
    full = render(messages)
    spans, exact = [], True
    last = len(messages) - 1
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render(messages[:i], add_generation_prompt=True)
        upto = full if i == last else render(messages[: i + 1])  # one render fewer per conversation
        if upto.startswith(prefix) and full.startswith(upto):
            spans.append((len(prefix), len(upto)))
        else:
            exact = False
    if not exact:  # e.g. templates that drop earlier reasoning: fall back to the last answer, which always renders
        prefix = render(messages[:-1], add_generation_prompt=True)
        spans = [(len(prefix), len(full))] if full.startswith(prefix) else [(0, len(full))]
    return Rendered(full, spans, exact)


def _mask_from_offsets(offsets: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """1 for tokens whose first character lies inside an assistant span."""
    if len(offsets) == 0:
        return np.zeros(0, dtype=np.int8)
    starts = offsets[:, 0]
    mask = np.zeros(len(starts), dtype=np.int8)
    for begin, end in spans:
        mask[(starts >= begin) & (starts < end)] = 1
    return mask


@dataclass
class Encoded:
    input_ids: list[list[int]]
    assistant_masks: list[list[int]]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    @property
    def answer_lengths(self) -> list[int]:
        return [int(sum(m)) for m in self.assistant_masks]


def rendered_texts(tokenizer, records: list[dict]) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Each record's text as training sees it, and the character spans whose tokens are trained on."""
    features, fast = template_features(tokenizer), fast_renderer(tokenizer)
    texts, spans = [], []
    for record in records:
        if "messages" in record:
            rendered = render_messages(tokenizer, record["messages"], features, record.get("tools"), fast)
            texts.append(rendered.text)
            spans.append(rendered.spans)
        else:  # plain text: every token is trained on; end with EOS so the model learns to stop
            text = record["text"] + (tokenizer.eos_token or "")
            texts.append(text)
            spans.append([(0, len(text))])
    return texts, spans


def measure_records(tokenizer, records: list[dict]) -> tuple[list[int], list[int]]:
    """(tokens per record, trained tokens per record), equal to encode_records' lengths and mask sums. ASCII rows of
    GPT-2-style tokenizers are counted word by word (word_counts); the rest from the fast tokenizer's own encodings,
    with no id lists or offset arrays built in Python (the Data tab's statistics)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        encoded = encode_records(tokenizer, records)
        return encoded.lengths, encoded.answer_lengths
    texts, spans = rendered_texts(tokenizer, records)
    counter = word_counts.counter_for(tokenizer)
    counted = [counter.count(text, row_spans) if counter and text.isascii() else None
               for text, row_spans in zip(texts, spans)]
    by_words = [i for i, c in enumerate(counted) if c is not None]
    checked = by_words[:: max(1, len(by_words) // CHECKED_ROWS)][:CHECKED_ROWS]  # a few rows counted both ways
    encode = [i for i, c in enumerate(counted) if c is None] + checked
    for i, encoding in zip(encode, backend.encode_batch([texts[i] for i in encode], add_special_tokens=False)):
        from_encoding = (len(encoding), sum(_tokens_starting_in(encoding, begin, end, len(texts[i]))
                                            for begin, end in spans[i]))
        if counted[i] is not None and counted[i] != from_encoding:
            logger.warning("Word counts differ from the tokenizer's on row %d; counting with the tokenizer", i)
            word_counts.give_up(tokenizer)
            return measure_records(tokenizer, records)
        counted[i] = from_encoding
    return [c[0] for c in counted], [c[1] for c in counted]


def _tokens_starting_in(encoding, begin: int, end: int, text_length: int) -> int:
    """Tokens whose first character lies in [begin, end): the rule _mask_from_offsets applies."""
    first, after = _first_token_at(encoding, begin, text_length), _first_token_at(encoding, end, text_length)
    if first is None or after is None:  # a character no token covers: count from the offsets
        return sum(begin <= start < end for start, _ in encoding.offsets)
    return after - first


def _first_token_at(encoding, char: int, text_length: int) -> int | None:
    """Index of the first token starting at or after `char`. Offsets do not overlap, so it is the token holding
    `char` when that token starts there, else the next one."""
    if char >= text_length:
        return len(encoding)
    token = encoding.char_to_token(char)
    if token is None:
        return None
    return token if encoding.token_to_chars(token)[0] >= char else token + 1


def encode_records(tokenizer, records: list[dict], batch_size: int = 1000) -> Encoded:
    """Tokenise normalised records ({'messages': ...} or {'text': ...}) exactly as training sees them."""
    texts, spans = rendered_texts(tokenizer, records)
    input_ids, masks = [], []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], add_special_tokens=False, return_offsets_mapping=True)
        for ids, offsets, row_spans in zip(batch["input_ids"], batch["offset_mapping"], spans[start:start + batch_size]):
            input_ids.append(list(ids))
            masks.append(_mask_from_offsets(np.asarray(offsets, dtype=np.int64).reshape(-1, 2), row_spans).tolist())
    return Encoded(input_ids, masks)


def generation_prompt(tokenizer, messages: list[dict]) -> str:
    return _render_with(adapt_messages(messages, template_features(tokenizer)), tokenizer, add_generation_prompt=True)
