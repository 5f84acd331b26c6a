"""Token counts for many texts at once, learned word by word from the tokenizer itself.

A byte-level BPE tokenizer with the GPT-2 split (GPT-2, SmolLM, StarCoder and their kin) cuts each stretch of text
between added tokens into words with one fixed regex and encodes every word on its own. A text's token count is
therefore the sum of its words' counts, and a word needs encoding once per dataset, not once per occurrence. The
tokenizer's own BPE model encodes each new word; only the split is done here, and only for ASCII text, where
Python's `re` with explicit character classes matches what the tokenizer's regex engine matches. This takes a
20k-conversation length report from 3.3-4.0 s to 1.5-1.8 s on 2 cores (bench/RESULTS.md).

Everything else (other pre-tokenizers, a normalizer, offsets that the post-processor trims, non-ASCII rows) goes to
the tokenizer, and `counter_for` only hands out a counter whose split agrees with the tokenizer on a probe; callers
also compare a few rows of every batch (chat_template.measure_records).
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
import weakref

# The GPT-2 pre-tokenizer regex (tokenizers' ByteLevel, use_regex=True) for ASCII text: \p{L} is [A-Za-z], \p{N}
# is [0-9], and \s is spelled out, because Python's \s also matches \x1c-\x1f, which the tokenizer's does not.
_SPACE, _NOT_SPACE = r"[\t\n\x0b\x0c\r ]", r"[^\t\n\x0b\x0c\r ]"
GPT2_ASCII_WORDS = re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\t\n\x0b\x0c\r A-Za-z0-9]+"
                              rf"|{_SPACE}+(?!{_NOT_SPACE})|{_SPACE}+")
PROBE = "Hello,  world!\tIt's 2024 -- 3.14 \x1c\x0b\n\n  end  \r\n'LL'd x  \x7f~ ok\n"
MAX_WORDS = 500_000  # a word cache bigger than this is dropped and started again: memory stays bounded


class _WordTokens(dict):
    """word -> its token count, asked of the BPE model the first time the word is seen."""

    def __init__(self, model, byte_level: dict):
        super().__init__()
        self.model, self.byte_level, self.starts = model, byte_level, {}

    def __missing__(self, word: str) -> int:
        if len(self) > MAX_WORDS:
            self.clear()
        count = self[word] = len(self._tokenize(word))
        return count

    def _tokenize(self, word: str) -> list:
        return self.model.tokenize(word.translate(self.byte_level))  # the model reads byte-level characters

    def starts_of(self, word: str) -> list[int]:
        """Where each of the word's tokens begins (in characters), for spans that begin or end inside the word.
        Kept apart from the counts: only words at span bounds need them, and most words never are."""
        starts = self.starts.get(word)
        if starts is None:
            if len(self.starts) > MAX_WORDS:
                self.starts.clear()
            lengths = [len(token.value) for token in self._tokenize(word)]
            starts = self.starts[word] = list(itertools.accumulate(lengths, initial=0))[:-1]
        return starts


class WordCounter:
    def __init__(self, backend, added_tokens: list):
        ascii_chars = "".join(map(chr, range(128)))
        mapped = "".join(piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(ascii_chars))
        if len(mapped) != len(ascii_chars):
            raise ValueError("the byte-level alphabet does not map one character to one")
        self.words = _WordTokens(backend.model, str.maketrans(dict(zip(ascii_chars, mapped))))
        # The tokenizer cuts out added tokens in two passes, those matched on the raw text first, then (on what is
        # left) those matched on normalised text, which here is the same text
        self.raw_added = _splitter([t.content for t in added_tokens if not t.normalized])
        self.normalized_added = _splitter([t.content for t in added_tokens if t.normalized])

    def count(self, text: str, spans: list[tuple[int, int]]) -> tuple[int, int]:
        """(tokens in `text`, tokens whose first character lies in one of `spans`); `text` must be ASCII."""
        total = trained = at = 0
        for i, piece in enumerate(self._pieces(text)):
            if i % 2:  # an added token: one token
                total += 1
                trained += any(begin <= at < end for begin, end in spans)
            elif piece:
                words = GPT2_ASCII_WORDS.findall(piece)
                counts = list(map(self.words.__getitem__, words))
                total += sum(counts)
                trained += self._in_spans(piece, at, spans, words, counts)
            at += len(piece)
        return total, trained

    def _pieces(self, text: str) -> list[str]:
        """Text and added tokens in turn, the tokens at odd places (as split() with a group gives them)."""
        pieces = self.raw_added.split(text) if self.raw_added else [text]
        if self.normalized_added is None:
            return pieces
        # each text piece becomes text, token, ..., text: an odd number of parts, so tokens stay at odd places
        return [part for i, piece in enumerate(pieces)
                for part in ([piece] if i % 2 else self.normalized_added.split(piece))]

    def _in_spans(self, piece, at, spans, words, counts) -> int:
        """Tokens of `piece` (which begins at `at`) whose first character lies in one of the spans."""
        end, trained, starts = at + len(piece), 0, None
        for begin, stop in spans:
            low, high = max(begin, at) - at, min(stop, end) - at
            if low >= high:
                continue
            if low == 0 and high == len(piece):
                trained += sum(counts)
                continue
            starts = starts or list(itertools.accumulate(map(len, words), initial=0))
            trained += (self._tokens_before(high, words, counts, starts)
                        - self._tokens_before(low, words, counts, starts))
        return trained

    def _tokens_before(self, char: int, words, counts, starts) -> int:
        """Tokens that begin before `char`: all of the words before the one holding it, and that word's first few."""
        if char >= starts[-1]:
            return sum(counts)
        k = bisect.bisect_right(starts, char) - 1
        return sum(counts[:k]) + bisect.bisect_left(self.words.starts_of(words[k]), char - starts[k])


def _splitter(added: list[str]) -> re.Pattern | None:
    """Longest first: at one position the tokenizer takes the longest added token, as this alternation then does."""
    longest_first = sorted(added, key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, longest_first)) + ")") if added else None


_counters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def counter_for(tokenizer) -> WordCounter | None:
    """The tokenizer's word counter, or None where its counts cannot be had this way. Kept per tokenizer, so words
    learned in one batch serve the next; rebuilt when tokens were added."""
    kept = _counters.get(tokenizer)
    if kept is None or kept[0] != len(tokenizer):
        kept = _counters[tokenizer] = (len(tokenizer), _build(tokenizer))
    return kept[1]


def give_up(tokenizer) -> None:
    """After a disagreement with the tokenizer: count this tokenizer's texts with the tokenizer from now on."""
    _counters[tokenizer] = (len(tokenizer), None)


def _build(tokenizer) -> WordCounter | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        pre = _state(backend.pre_tokenizer)
        added = list(backend.get_added_tokens_decoder().values())
        splits_like_gpt2 = (backend.normalizer is None and not backend.encode_special_tokens
                            and pre.get("type") == "ByteLevel"
                            and pre.get("use_regex", True) and not pre.get("add_prefix_space"))
        if not (splits_like_gpt2 and _keeps_offsets(_state(backend.post_processor)) and _plain_bpe(backend.model)
                and not any(t.lstrip or t.rstrip or t.single_word for t in added)):
            return None
        pieces = backend.pre_tokenizer.pre_tokenize_str(PROBE)
        if [PROBE[begin:end] for _, (begin, end) in pieces] != GPT2_ASCII_WORDS.findall(PROBE):
            return None
        counter = WordCounter(backend, added)
        probe = PROBE + "".join(t.content for t in added[:1]) + PROBE
        expected = backend.encode(probe, add_special_tokens=False)
        spans = [(3, len(probe) - 5)]
        trained = sum(spans[0][0] <= start < spans[0][1] for start, _ in expected.offsets)
        return counter if counter.count(probe, spans) == (len(expected), trained) else None
    except Exception:  # a tokenizer this reading does not know: the tokenizer counts instead
        return None


def _keeps_offsets(post_processor) -> bool:
    """True where the post-processor neither trims offsets nor adds tokens (measurement adds no special tokens)."""
    if not post_processor or post_processor["type"] == "TemplateProcessing":
        return True
    if post_processor["type"] == "ByteLevel":
        return not post_processor.get("trim_offsets", True)
    if post_processor["type"] == "Sequence":
        return all(map(_keeps_offsets, post_processor["processors"]))
    return False


def _state(component) -> dict:
    """A tokenizer component's settings as the tokenizer saves them ({} for none). The model is never read this
    way: its state holds the whole vocabulary."""
    return {} if component is None else json.loads(component.__getstate__())


def _plain_bpe(model) -> bool:
    return (type(model).__name__ == "BPE" and not model.dropout and not model.continuing_subword_prefix
            and not model.end_of_word_suffix)
