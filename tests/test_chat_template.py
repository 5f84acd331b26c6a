from studio.templates.chat_template import answer_text, encode_records, render_messages

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


WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOL_CHAT = [{"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                 "name": "get_weather", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "content": '{"temp_c": 18}'}, {"role": "assistant", "content": "18 °C."}]


def test_tool_definitions_reach_a_template_that_takes_them(tiny_tokenizer):
    """Before, a row's tools were dropped: the model learnt to call tools it was never shown."""
    import copy

    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = ("{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}"
                               "{% endfor %}</tools><|im_end|>\n{% endif %}" + tiny_tokenizer.chat_template)
    rendered = render_messages(tokenizer, TOOL_CHAT, tools=WEATHER)
    assert '"name": "get_weather", "description": "Current weather in a city"' in rendered.text
    assert rendered.text.index("<tools>") < rendered.text.index("Weather in Paris?")
    assert [rendered.text[a:b] for a, b in rendered.spans][-1] == "18 °C.<|im_end|>\n"
    assert encode_records(tokenizer, [{"messages": TOOL_CHAT, "tools": WEATHER}]).lengths[0] > \
        encode_records(tokenizer, [{"messages": TOOL_CHAT}]).lengths[0]


def test_tool_definitions_go_into_the_system_message_when_the_template_has_no_tools(tiny_tokenizer):
    rendered = render_messages(tiny_tokenizer, TOOL_CHAT, tools=WEATHER)
    system = rendered.text.split("<|im_end|>")[0]
    assert "You can call these tools" in system and "get_weather" in system and "Current weather" in system
    assert not any("Current weather" in rendered.text[a:b] for a, b in rendered.spans)  # a prompt, not an answer


def test_length_measurement_equals_what_training_encodes(tiny_tokenizer):
    """The Data tab's fast measurement (fast tokenizer encodings, no id lists) must count exactly the tokens and
    trained tokens that encode_records gives training: multi-turn, Chinese (several byte tokens per character),
    tool calls and definitions, reasoning and plain text."""
    from pathlib import Path

    from studio.templates.chat_template import measure_records
    from studio.data.data import load_dataset_file

    root = Path(__file__).resolve().parent.parent / "assets"
    records = [r for f in ["demo/identity.jsonl", *(f"examples/{n}" for n in ("alpaca.json", "sharegpt.json",
               "messages.jsonl", "cot.jsonl", "text.jsonl"))] for r in load_dataset_file(str(root / f)).records()]
    records += [{"messages": CHAT}, {"messages": TOOL_CHAT, "tools": WEATHER},
                {"messages": [{"role": "user", "content": "你好，世界"}, {"role": "assistant", "content": "你好！🙂"}]}]
    encoded = encode_records(tiny_tokenizer, records)
    assert measure_records(tiny_tokenizer, records)[:2] == (encoded.lengths, encoded.answer_lengths)


def test_the_fast_renderer_gives_apply_chat_templates_text(tiny_tokenizer):
    from studio.templates.chat_template import fast_renderer
    from studio.templates.template_profile import template_profile

    profile = template_profile(tiny_tokenizer)
    fast = fast_renderer(profile)
    assert fast is not None
    assert fast(CHAT) == profile.render(CHAT) == tiny_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert fast(CHAT[:3], add_generation_prompt=True) == tiny_tokenizer.apply_chat_template(
        CHAT[:3], tokenize=False, add_generation_prompt=True)


def test_an_answer_cut_inside_a_character_ends_before_it(tiny_tokenizer):
    """An answer cut off by the token limit inside a Chinese character or an emoji shows no replacement mark."""
    for whole in ("中国的首都是北京", "Stay curious! 🌟"):
        ids = tiny_tokenizer(whole, add_special_tokens=False)["input_ids"]
        cut = next(ids[:n] for n in range(len(ids) - 1, 0, -1)
                   if tiny_tokenizer.decode(ids[:n]).endswith("\ufffd"))  # a byte-level split exists
        assert answer_text(tiny_tokenizer, ids) == whole
        text = answer_text(tiny_tokenizer, cut)
        assert "\ufffd" not in text and whole.startswith(text) and text
