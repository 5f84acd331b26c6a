"""Word-by-word token counts (studio/templates/word_counts.py) must equal the tokenizer's own, span by span."""

import pytest

from studio.templates import word_counts
from studio.templates.chat_template import encode_records, measure_records

TEXT = ("<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat's 12+30?  Tell me\t(twice)!\x1c\x0b"
        "\n\n   <|im_end|>\n<|im_start|>assistant\nIt's 42 -- they'll say   'hello' ;-)\r\n  x\x7f~<|im_end|>\n")


def tokenizer_counts(tokenizer, text, spans):
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    trained = sum(any(begin <= start < end for begin, end in spans) for start, _ in encoding.offsets)
    return len(encoding), trained


def test_word_counts_equal_the_tokenizers_for_spans_that_begin_and_end_anywhere(tiny_tokenizer):
    """Every span start and end: at added tokens, between words, inside multi-token words, inside runs of spaces."""
    counter = word_counts.counter_for(tiny_tokenizer)
    assert counter is not None
    cuts = range(0, len(TEXT) + 1, 3)
    for begin in cuts:
        for end in (begin + 1, begin + 7, len(TEXT)):
            spans = [(begin, end), (end + 5, end + 40)]  # two spans, as multi-turn conversations have
            assert counter.count(TEXT, spans) == tokenizer_counts(tiny_tokenizer, TEXT, spans), (begin, end)


def test_the_split_into_words_is_the_tokenizers_own_on_any_ascii(tiny_tokenizer):
    """Random ASCII strings heavy in what regexes disagree on: \\x1c-\\x1f are whitespace to Python's \\s but not to
    the tokenizer, runs of spaces before a word, apostrophes, digits, control characters."""
    import random

    pre_tokenizer = tiny_tokenizer.backend_tokenizer.pre_tokenizer
    alphabet = [" ", " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "\x7f", "'", "'s", "'ll",
                "a", "Zq", "7", "42", ".", "?!", "-", "_", "~"]
    rng = random.Random(0)
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        expected = [text[begin:end] for _, (begin, end) in pre_tokenizer.pre_tokenize_str(text)]
        assert word_counts.GPT2_ASCII_WORDS.findall(text) == expected, repr(text)


def test_added_tokens_are_cut_out_as_the_tokenizer_does(tiny_tokenizer):
    """Longest match first, tokens matched on raw text before those matched on normalised text."""
    from tokenizers import AddedToken

    tokenizer = _variant(tiny_tokenizer, lambda b: None)
    tokenizer.add_tokens([AddedToken("<|x", normalized=False), AddedToken("<|x|>", normalized=False),
                          AddedToken("a<|im", normalized=True), AddedToken("tool", normalized=True)])
    counter = word_counts.counter_for(tokenizer)
    text = "a<|x|>b<|xy tools a<|im_end|>c a<|im<|x|>"
    for spans in ([(0, len(text))], [(2, 9)], [(6, 30)]):
        assert counter.count(text, spans) == tokenizer_counts(tokenizer, text, spans)


def _variant(tiny_tokenizer, change):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tiny_tokenizer.backend_tokenizer.to_str())
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    change(tokenizer.backend_tokenizer)  # after wrapping: the wrapper sets encode_special_tokens itself
    return tokenizer


@pytest.mark.parametrize("change", [
    lambda b: setattr(b, "normalizer", __import__("tokenizers").normalizers.Lowercase()),
    lambda b: setattr(b, "pre_tokenizer", __import__("tokenizers").pre_tokenizers.ByteLevel(add_prefix_space=True)),
    lambda b: setattr(b, "post_processor", __import__("tokenizers").processors.ByteLevel(trim_offsets=True)),
    lambda b: setattr(b, "encode_special_tokens", True),
], ids=["normalizer", "prefix-space", "trimmed-offsets", "special-tokens-as-text"])
def test_tokenizers_this_split_does_not_fit_are_counted_by_the_tokenizer(tiny_tokenizer, change):
    tokenizer = _variant(tiny_tokenizer, change)
    assert word_counts.counter_for(tokenizer) is None
    tokenizer.chat_template = tiny_tokenizer.chat_template
    records = [{"messages": [{"role": "user", "content": "Hi  there!"}, {"role": "assistant", "content": " Fine."}]}]
    encoded = encode_records(tokenizer, records)
    assert measure_records(tokenizer, records)[:2] == (encoded.lengths, encoded.answer_lengths)


def test_a_disagreement_on_a_checked_row_hands_counting_back_to_the_tokenizer(tiny_tokenizer, monkeypatch):
    tokenizer = _variant(tiny_tokenizer, lambda b: None)
    tokenizer.chat_template = tiny_tokenizer.chat_template
    counter = word_counts.counter_for(tokenizer)
    assert counter is not None
    monkeypatch.setattr(counter, "count", lambda text, spans: (1, 1))  # wrong on purpose
    records = [{"messages": [{"role": "user", "content": f"question {i}"},
                             {"role": "assistant", "content": "answer " * i}]} for i in range(1, 30)]
    encoded = encode_records(tokenizer, records)
    assert measure_records(tokenizer, records)[:2] == (encoded.lengths, encoded.answer_lengths)
    assert word_counts.counter_for(tokenizer) is None  # and it stays with the tokenizer


def test_counts_stay_right_when_the_word_cache_is_dropped_part_way(tiny_tokenizer, monkeypatch):
    """The cache is bounded: with room for 3 words it is dropped many times within one text, spans included."""
    tokenizer = _variant(tiny_tokenizer, lambda b: None)
    counter = word_counts.counter_for(tokenizer)
    monkeypatch.setattr(word_counts, "MAX_WORDS", 3)
    for begin in range(0, len(TEXT), 11):
        spans = [(begin, begin + 9), (begin + 20, len(TEXT))]
        assert counter.count(TEXT, spans) == tokenizer_counts(tokenizer, TEXT, spans), begin
    assert len(counter.words) <= 4 and len(counter.words.starts) <= 4
