from studio.chat_template import encode_records, render_messages

CHAT = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am Lumen."},
        {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You are welcome."}]


def test_assistant_spans_cover_each_answer_and_its_end_token(tiny_tokenizer):
    rendered = render_messages(tiny_tokenizer, CHAT)
    assert rendered.exact
    spans = [rendered.text[a:b] for a, b in rendered.spans]
    assert spans == ["I am Lumen.<|im_end|>\n", "You are welcome.<|im_end|>\n"]


def test_masks_select_exactly_the_answer_tokens(tiny_tokenizer):
    encoded = encode_records(tiny_tokenizer, [{"messages": CHAT}])
    ids, mask = encoded.input_ids[0], encoded.assistant_masks[0]
    assert len(ids) == len(mask)
    answer = tiny_tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert answer == "I am Lumen.<|im_end|>\nYou are welcome.<|im_end|>\n"
    assert tiny_tokenizer.decode(ids) == render_messages(tiny_tokenizer, CHAT).text
    assert encoded.answer_lengths[0] == sum(mask) < encoded.lengths[0]


def test_plain_text_rows_train_on_every_token_and_end_with_eos(tiny_tokenizer):
    encoded = encode_records(tiny_tokenizer, [{"text": "hello world"}])
    assert all(encoded.assistant_masks[0]) and encoded.input_ids[0][-1] == tiny_tokenizer.eos_token_id


def test_reasoning_without_template_support_gets_visible_markup(tiny_tokenizer):
    messages = [{"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4", "reasoning_content": "two plus two"}]
    rendered = render_messages(tiny_tokenizer, messages)
    answer = rendered.text[rendered.spans[0][0]:rendered.spans[0][1]]
    assert answer.startswith("<think>\ntwo plus two\n</think>\n\n4")


def test_tool_calls_without_template_support_are_kept_as_text(tiny_tokenizer):
    messages = [{"role": "user", "content": "time?"},
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "now", "arguments": {}}}]},
                {"role": "tool", "content": "09:30"}, {"role": "assistant", "content": "09:30."}]
    rendered = render_messages(tiny_tokenizer, messages)
    assert '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>' in rendered.text
    assert len(rendered.spans) == 2
