"""Render conversations with the model's chat template and mark exactly which tokens are the assistant's.

The trained tokens of a reply are what the model must produce after the generation prompt: the reply, its
reasoning and tool calls where the data has them, and its end-of-turn token. Never the role header the prompt
already holds, and never system, user or tool text. Three ways to find them, the first that applies:

1. **Generation markers.** Where TRL knows the template it hands a training variant with `{% generation %}`
   markers (template_profile.py); the template itself says which characters are answers. Each block is trimmed to
   start where the generation prompt ends (DeepSeek-R1's marked block includes `<｜Assistant｜>`, which the prompt
   holds at inference).
2. **Prefixes.** For most other templates the text for the first i turns plus the generation prompt is a prefix of
   the text for i+1 turns, and what lies between is the reply.
3. **Sentinels** (the studio's own; no library covers it). Where a template breaks the prefix property (Mistral
   folds the system text into the last user turn; DeepSeek's prompt ends inside `<think>`; Qwen3 drops earlier
   reasoning), every message's text is replaced by a unique marker, the reply is found by its marker, and the
   markers are mapped back onto the real text. A reply or its reasoning that the template does not render is
   named to the user (`untrained`, `reasoning_lost`), and a row with no reply left is a row problem: prompt text is
   never marked as an answer.

Token masks come from the fast tokenizer's offsets. The result is what training sees, so the Data tab's statistics
and its token view use the same functions.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace

import numpy as np

from studio.core.text import Msg
from . import word_counts
from .sentinels import sentinel_spans
from .template_profile import TemplateProfile, template_profile

logger = logging.getLogger(__name__)
CHECKED_ROWS = 8  # rows of each batch counted by the tokenizer too, against the word counts


@dataclass
class Rendered:
    text: str
    spans: list[tuple[int, int]]  # character spans of trained answers
    untrained: list[int] = field(default_factory=list)  # 1-based numbers of replies that could not be isolated
    reasoning_lost: list[int] = field(default_factory=list)  # replies whose reasoning the template drops
    folded_system: bool = False  # the template has no system role: its text went into the first user turn
    problem: Msg | None = None  # nothing of this row can be trained (the template refused it, or no reply found)
    reasoning_split: list[int] = field(default_factory=list)  # replies trained in a sequence of their own (extra)
    extra: list["Rendered"] = field(default_factory=list)  # those sequences: the row up to such a reply

    @property
    def exact(self) -> bool:
        return not (self.untrained or self.reasoning_lost or self.problem)


def fast_renderer(profile: TemplateProfile):
    """The compiled template rendered directly for plain conversations: the same text as render_jinja_template,
    without its per-call copying (about half the time of a 20k-row length report). Checked on a probe; None where
    they differ or the template needs prepared messages."""
    return _fast_renderer(profile) if not (profile.marked or profile.content_parts) else None


@functools.lru_cache(maxsize=8)
def _fast_renderer(profile: TemplateProfile):
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template  # deferred: heavy. Private: guarded

        template, extra = _compile_jinja_template(profile.template), dict(profile.extra)

        def render(messages, add_generation_prompt=False):
            return template.render(messages=messages, tools=None, add_generation_prompt=add_generation_prompt, **extra)

        probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]
        for upto, prompt in ((3, False), (4, True), (2, True)):
            if render(probe[:upto], prompt) != profile.render(probe[:upto], prompt):
                return None
        return render
    except Exception:  # noqa: BLE001 - another transformers version or a template that needs more: the ordinary path
        return None


def _plain(messages: list[dict]) -> bool:
    return all(m.keys() <= {"role", "content"} and isinstance(m.get("content"), str) for m in messages)


def render_messages(tokenizer, messages: list[dict], profile: TemplateProfile | None = None,
                    tools: list[dict] | None = None, fast=None) -> Rendered:
    """One conversation as training sees it. Never raises for a conversation the template refuses: that is the
    row's `problem`."""
    profile = profile or template_profile(tokenizer)
    rendered = _rendered(messages, profile, tools, fast)
    return _split_lost_reasoning(rendered, messages, profile, tools, fast) if rendered.reasoning_lost else rendered


def _split_lost_reasoning(rendered: Rendered, messages, profile, tools, fast) -> Rendered:
    """Reasoning a template leaves out of earlier turns (gpt-oss, GLM-4.5, Nemotron keep it only after the last
    question) is still trained: each such reply gets a sequence of its own, the row up to that reply, where the
    template keeps its reasoning, as when the model answers it. The reply leaves the full row's spans, so that it
    is trained once, with its reasoning."""
    replies = _replies(messages)
    spans, extra, split, lost = list(rendered.spans), [], [], []
    for number in rendered.reasoning_lost:
        i = replies[number - 1]
        upto = _rendered(messages[: i + 1], profile, tools, fast)
        own = [span for span in upto.spans if _holds(upto.text, span, messages[i], messages)]
        if upto.problem or number in upto.reasoning_lost or not own:
            lost.append(number)
            continue
        spans = [span for span in spans if not _holds(rendered.text, span, messages[i], messages)]
        extra.append(Rendered(upto.text, own))
        split.append(number)
    return replace(rendered, spans=spans, reasoning_lost=lost, reasoning_split=split, extra=extra)


def _holds(text: str, span: tuple[int, int], reply: dict, messages: list[dict]) -> bool:
    """Whether a trained span is this reply's: it holds the reply's text and no other reply's."""
    inside = text[span[0]:span[1]]
    own = [t for t in ((reply.get("content") or "").strip(), (reply.get("reasoning_content") or "").strip()) if t]
    others = [(m.get("content") or "").strip() for m in messages if m["role"] == "assistant" and m is not reply]
    return any(t in inside for t in own) and not any(o and o not in own and o in inside for o in others)


def _rendered(messages: list[dict], profile: TemplateProfile, tools, fast) -> Rendered:
    try:
        adapted, tools, folded = profile.adapt(messages, tools)
        if fast is not None and tools is None and _plain(adapted):
            render = fast
        else:
            render = functools.partial(profile.render, tools=tools)
        rendered = (_marked if profile.marked else _found)(profile, adapted, tools, render)
    except Exception as err:  # noqa: BLE001 - the template's own refusal (raise_exception) or a type it cannot take
        logger.debug("the chat template refused a conversation", exc_info=True)
        return Rendered("", [], problem=refusal(err))
    return _checked(replace(rendered, folded_system=folded), messages)


def _checked(rendered: Rendered, messages: list[dict]) -> Rendered:
    """Each reply's text and reasoning must lie in a trained span; what does not is named, whatever the method."""
    inside = "\0".join(rendered.text[a:b] for a, b in rendered.spans)
    untrained, lost = set(rendered.untrained), set(rendered.reasoning_lost)
    for number, m in enumerate((m for m in messages if m["role"] == "assistant"), 1):
        names = [c.get("function", c).get("name") or "" for c in m.get("tool_calls") or []]
        if (m.get("content") or "").strip() not in inside or any(name not in inside for name in names):
            untrained.add(number)
        if (m.get("reasoning_content") or "").strip() not in inside:
            lost.add(number)
    problem = rendered.problem or (Msg("template.no_reply") if not rendered.spans else None)
    return replace(rendered, untrained=sorted(untrained), reasoning_lost=sorted(lost - untrained), problem=problem)


def refusal(err: Exception) -> Msg:
    reason = str(err).strip() or type(err).__name__
    if "alternate" in reason.lower():
        return Msg("template.alternate")
    return Msg("template.refused", reason=reason[:300])


def _replies(messages: list[dict]) -> list[int]:
    return [i for i, m in enumerate(messages) if m["role"] == "assistant"]


def _marked(profile, messages, tools, render) -> Rendered:
    """Spans from the template's generation markers, each trimmed to start after its generation prompt."""
    full, blocks = profile.render(messages, tools=tools, indices=True)
    blocks = [(a, b) for a, b in blocks if b > a]
    for i in _replies(messages):
        prompt, history = render(messages[:i], add_generation_prompt=True), render(messages[:i])
        if full.startswith(prompt):
            blocks = [(max(a, len(prompt)) if len(history) <= a < len(prompt) else a, b) for a, b in blocks]
    return Rendered(full, [(a, b) for a, b in blocks if b > a])


def _found(profile, messages, tools, render) -> Rendered:
    """Prefix spans for every reply where the template keeps the prefix property; sentinels for the rest."""
    full = render(messages)
    spans, broken = {}, []
    last = len(messages) - 1
    for i in _replies(messages):
        prompt = render(messages[:i], add_generation_prompt=True)
        upto = full if i == last else render(messages[: i + 1])  # one render fewer per conversation
        if upto.startswith(prompt) and full.startswith(upto) and len(upto) > len(prompt):
            spans[i] = (len(prompt), len(upto))
        else:
            broken.append(i)
    lost = []
    if broken:
        found, lost = sentinel_spans(profile, messages, tools, broken, full)
        spans.update(found)
    numbers = {i: n for n, i in enumerate(_replies(messages), 1)}
    untrained = [numbers[i] for i in broken if i not in spans]
    return Rendered(full, [spans[i] for i in sorted(spans)], untrained, sorted(numbers[i] for i in lost))


# ---------------------------------------------------------------- tokens

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
    rendered: list[Rendered] = field(default_factory=list)  # each row's notes (text dropped to save memory)

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    @property
    def answer_lengths(self) -> list[int]:
        return [int(sum(m)) for m in self.assistant_masks]


def rendered_rows(tokenizer, records: list[dict]) -> list[Rendered]:
    """Each record as training sees it: text, trained character spans and what could not be trained."""
    profile = template_profile(tokenizer)
    fast = fast_renderer(profile)
    out = []
    for record in records:
        if "messages" in record:
            out.append(render_messages(tokenizer, record["messages"], profile, record.get("tools"), fast))
        else:  # plain text: every token is trained on; end with EOS so the model learns to stop
            text = record["text"] + (tokenizer.eos_token or "")
            out.append(Rendered(text, [(0, len(text))]))
    return out


def _notes(rendered: list[Rendered]) -> list[Rendered]:
    return [replace(r, text="", extra=[]) for r in rendered]


CHECKED_MAX_CHARS = 100_000


def measure_records(tokenizer, records: list[dict]) -> tuple[list[int], list[int], list[Rendered]]:
    """(tokens per record, trained tokens per record, each record's notes), equal to encode_records' lengths, mask
    sums and notes; a row with a problem counts 0 tokens. ASCII rows of GPT-2-style tokenizers are counted word by
    word (word_counts); the rest from the fast tokenizer's own encodings, with no id lists or offset arrays built in
    Python (the Data tab's statistics)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        encoded = encode_records(tokenizer, records)
        return encoded.lengths, encoded.answer_lengths, encoded.rendered
    rendered = rendered_rows(tokenizer, records)
    texts, spans = [r.text for r in rendered], [r.spans for r in rendered]
    counter = word_counts.counter_for(tokenizer)
    counted = [counter.count(text, row_spans) if counter and text.isascii() else None
               for text, row_spans in zip(texts, spans)]
    # rows checked against the tokenizer are short ones: encoding a 20-million-character document to check the word
    # count took 16 s and 3 GB
    by_words = [i for i, c in enumerate(counted) if c is not None and len(texts[i]) <= CHECKED_MAX_CHARS]
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
    return [c[0] for c in counted], [c[1] for c in counted], _notes(rendered)


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
    """Tokenise normalised records ({'messages': ...} or {'text': ...}) exactly as training sees them: one sequence
    per record, in order, then the extra sequences some rows add (reasoning trained in its own sequence). A row the
    template refuses comes back empty, with its problem in `rendered`."""
    rendered = rendered_rows(tokenizer, records)
    sequences = rendered + [extra for r in rendered for extra in r.extra]
    input_ids, masks = [], []
    for start in range(0, len(sequences), batch_size):
        rows = sequences[start:start + batch_size]
        batch = tokenizer([r.text for r in rows], add_special_tokens=False, return_offsets_mapping=True)
        for ids, offsets, row in zip(batch["input_ids"], batch["offset_mapping"], rows):
            input_ids.append(list(ids))
            masks.append(_mask_from_offsets(np.asarray(offsets, dtype=np.int64).reshape(-1, 2), row.spans).tolist())
    return Encoded(input_ids, masks, _notes(rendered))


def token_view(tokenizer, record: dict) -> tuple[list[tuple[str, str | None]], dict, Rendered]:
    """One row as the model sees it, token by token: [(token text, "answer" | "end" | None)], the counts of prompt,
    answer and end-of-turn tokens, and the row's notes (the Data tab's and `launch.py data --row`'s view)."""
    rendered = rendered_rows(tokenizer, [record])[0]
    if rendered.problem:
        return [], {"prompt": 0, "answer": 0, "end": 0}, rendered
    encoded = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    mask = _mask_from_offsets(np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2), rendered.spans)
    ends = _turn_ends(rendered.text, encoded["offset_mapping"], encoded["input_ids"], mask, special_ids(tokenizer))
    pieces, counts, shown = [], {"prompt": 0, "answer": 0, "end": 0}, 0
    for (begin, end), trained, last in zip(encoded["offset_mapping"], mask, ends):
        kind = None if not trained else ("end" if last else "answer")
        counts[kind or "prompt"] += 1
        # byte-level tokens of one character share its offsets: show each character once
        pieces.append((rendered.text[max(begin, shown):end], kind))
        shown = max(shown, end)
    return pieces, counts, rendered


def _turn_ends(text: str, offsets, ids, mask, special: set) -> list[bool]:
    """The special token each trained stretch stops on (<|im_end|>, <|eot_id|>; only whitespace may follow it in
    the stretch): the end of turn, as opposed to special tokens inside a reply such as <think>."""
    ends = [False] * len(ids)
    for k in range(len(ids)):
        if not mask[k] or (k + 1 < len(ids) and mask[k + 1]):
            continue  # not the last trained token of a stretch
        j = k
        while j >= 0 and mask[j] and ids[j] not in special and not text[offsets[j][0]:offsets[j][1]].strip():
            j -= 1
        if j >= 0 and mask[j] and ids[j] in special:
            ends[j] = True
    return ends


def end_of_turn_ids(tokenizer) -> list[int]:
    """The special token the template writes right after a reply (<|im_end|>, <end_of_turn>, <|eot_id|>)."""
    probe = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "QZXendXZQ"}]
    try:
        text = template_profile(tokenizer).render(probe)
    except Exception:  # noqa: BLE001 - a template that cannot render the probe has no turn end to find
        return []
    after = text.rsplit("QZXendXZQ", 1)[-1]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    return ids[:1] if ids and ids[0] in special_ids(tokenizer) else []


def special_ids(tokenizer) -> set[int]:
    """The named special tokens and every added token marked special (<end_of_turn>, <|eot_id|>, <think>)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return set(tokenizer.all_special_ids) | {i for i, token in added.items() if getattr(token, "special", False)}


def answer_text(tokenizer, ids) -> str:
    """A generated answer as text. Byte-level tokenizers spread a Chinese character or an emoji over several
    tokens, so an answer cut off by the token limit (or still streaming) can end inside a character, which decodes
    as U+FFFD; that tail is no character of the answer, so it is dropped."""
    return tokenizer.decode(ids, skip_special_tokens=True).strip().rstrip("\ufffd").rstrip()


def generation_prompt(tokenizer, messages: list[dict]) -> str:
    """The model's own template (not the training variant) for Chat: what the tuned model sees at inference."""
    profile = replace(template_profile(tokenizer), template=tokenizer.chat_template, marked=False)
    messages, tools, _ = profile.adapt(messages)
    return profile.render(messages, add_generation_prompt=True, tools=tools)


def added_template(tokenizer) -> Msg:
    """Which template the studio gave a base model (models.template_for_base), named for the user."""
    return Msg("template.gemma" if "<start_of_turn>" in (tokenizer.chat_template or "") else "template.chatml")


def exact_target(profile: TemplateProfile) -> Msg:
    """How the answers are found, for a template that trains every reply exactly."""
    from .template_profile import profile_name

    key = {"trl": "finding.target_trl", "marked": "finding.target_marked"}.get(profile.origin, "finding.target_model")
    return Msg(key, name=profile_name(profile))


def replies_message(attribute: str, hits: list) -> Msg:
    """`hits`: [(row number, [reply numbers])] of rows whose replies are not trained ("untrained"), whose reasoning
    is not ("reasoning_lost"), or whose reasoning is trained in a sequence of its own ("reasoning_split"); the
    message names the first five."""
    where = Msg("list", items=[Msg("finding.reply_numbers", row=n, replies=", ".join(map(str, replies)))
                               for n, replies in hits[:5]])
    return Msg(f"finding.{attribute}", count=len(hits), where=where)


def marked_text(pieces: list[tuple[str, str | None]]) -> str:
    """The token view as plain text: trained stretches between ⟦ and ⟧ (the `data --row` command)."""
    out, inside = [], False
    for text, kind in pieces:
        if bool(kind) != inside:
            out.append("⟦" if kind else "⟧")
            inside = bool(kind)
        out.append(text)
    return "".join(out) + ("⟧" if inside else "")
