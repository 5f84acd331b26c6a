"""Base vs tuned from one copy of the weights: the base pane really has the adapter off, the tuned pane equals the
merged model, and memory stays about that of one model."""

import pytest
import torch

from studio.core import presets, runs, settings_input
from studio.core.config import GenerationSettings, Settings
from studio.chat import chat
from studio.training import train

GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0, repetition_penalty=1.0)
PROMPT = [{"role": "user", "content": "Who are you?"}]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("chat-run")
    settings, problems = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tiny_model_dir}", "max_steps=10",
                                                      "learning_rate=0.01", "lora_dropout=0.0", "precision=fp32", "r=2", "lora_alpha=8",
                                                      "validation_share=0.1", "test_share=0.05", "max_length=64"])
    assert not problems, problems
    assert train.run_training(settings, run, progress=None)["status"] == "finished"
    return run


def greedy_text(model, tokenizer):
    """transformers' own greedy generate: an independent reference for the studio's decoder."""
    from studio.templates.chat_template import generation_prompt

    inputs = tokenizer(generation_prompt(tokenizer, PROMPT), return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=GREEDY.max_new_tokens, do_sample=False, temperature=None,
                             top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return text.rstrip("\ufffd").rstrip()  # a character cut by the token cap is no character (answer_text)


def test_one_model_answers_through_the_same_decoder(lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    alone = chat.answer(original, pair.tokenizer, PROMPT, GREEDY)
    assert alone.text == greedy_text(original, pair.tokenizer) and alone.new_tokens == len(alone.ids) > 0


def test_both_panes_produce_text_and_latency(lora_run):
    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    assert pair.shares_weights
    updates = list(chat.stream_pair(pair, PROMPT, PROMPT, GREEDY))
    base, tuned = updates[-1]
    assert base.new_tokens > 0 and tuned.new_tokens > 0 and len(updates) >= 2
    assert base.first_token_s is not None and 0 < base.first_token_s <= base.seconds


def test_base_pane_is_the_original_model_and_tuned_pane_the_merged_one(lora_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    base, tuned = list(chat.stream_pair(pair, PROMPT, PROMPT, GREEDY))[-1]
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert base.text == greedy_text(original, pair.tokenizer)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                       str(lora_run / "adapter")).merge_and_unload().eval()
    assert tuned.text == greedy_text(merged, pair.tokenizer)
    assert base.text != tuned.text, "the adapter must change the answer for this test to mean anything"
    assert pair.answer(PROMPT, tuned=False, settings=GREEDY).text == base.text
    assert pair.answer(PROMPT, tuned=True, settings=GREEDY).text == tuned.text


def test_two_panes_cost_about_one_model(lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    def weight_bytes(model):
        storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}
        return sum(storages.values())

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    one = weight_bytes(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert weight_bytes(pair.base_model) <= 1.15 * one and pair.tuned_model is None


def test_stop_ends_generation_early(lora_run):
    import threading

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    stop = threading.Event()
    stop.set()
    updates = list(chat.stream_pair(pair, PROMPT, PROMPT, GenerationSettings(max_new_tokens=50, temperature=0.0)))
    stopped = list(chat.stream_pair(pair, PROMPT, PROMPT, GenerationSettings(max_new_tokens=50, temperature=0.0),
                                    stop=stop))
    assert len(stopped) == 1 < len(updates)


def test_sampling_is_repeatable_with_a_seed(lora_run):
    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    warm = GenerationSettings(max_new_tokens=10, temperature=1.0, top_p=0.9)
    seeded = GenerationSettings(max_new_tokens=10, temperature=1.0, top_p=0.9, sampling_seed=3)
    first = list(chat.stream_pair(pair, PROMPT, PROMPT, seeded))[-1]
    again = list(chat.stream_pair(pair, PROMPT, PROMPT, seeded))[-1]
    other = list(chat.stream_pair(pair, PROMPT, PROMPT, warm, seed=4))[-1]
    assert [a.text for a in first] == [a.text for a in again]
    assert [a.text for a in other] != [a.text for a in first]
    assert torch.__version__  # sampling ran on this torch


def test_evaluation_on_held_out_rows_is_saved_with_scores(lora_run):
    import json

    from studio.chat import evaluate

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    result = evaluate.evaluate_run(lora_run, pair, limit=3, settings=GREEDY)
    assert result["split"] == "validation" or result["split"] == "test"
    assert result["rows"] == 3 and len(result["examples"]) == 3
    for side in ("base", "tuned"):
        assert result[side]["perplexity"] == pytest.approx(__import__("math").exp(result[side]["loss"]))
        assert 0 <= result[side]["rouge_l"] <= 1 and 0 <= result[side]["bleu"] <= 100
    assert result["tuned"]["loss"] < result["base"]["loss"], "training lowered the answer loss on held-out rows"
    saved = json.loads((lora_run / "evaluation.json").read_text())
    assert saved["tuned"] == result["tuned"]
    assert [row[0] for row in evaluate.evaluation_table(result)] == ["answer loss", "perplexity", "ROUGE-L", "BLEU"]


def test_runs_without_held_out_rows_say_so(tmp_path):
    from studio.chat import evaluate

    assert evaluate.held_out_examples(tmp_path) == ([], "none")


def test_a_checkpoint_can_be_the_tuned_side(lora_run):
    checkpoint = sorted((lora_run / "checkpoints").glob("checkpoint-*"))
    if not checkpoint:  # the fixture's run saves no intermediate checkpoint; make one like Trainer does
        import shutil

        target = lora_run / "checkpoints" / "checkpoint-10"
        shutil.copytree(lora_run / "adapter", target)
        (target / "trainer_state.json").write_text("{}")
        checkpoint = [target]
    pair = chat.ChatPair.from_run(checkpoint[-1], progress=lambda _: None)
    assert pair.shares_weights and pair.tuned_path == str(checkpoint[-1])
    final = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    assert pair.answer(PROMPT, True, GREEDY).text == final.answer(PROMPT, True, GREEDY).text


def test_evaluation_shows_in_the_run_history(lora_run):
    from studio.chat import evaluate

    evaluate.evaluate_run(lora_run, chat.ChatPair.from_run(lora_run, progress=lambda _: None), limit=2,
                          settings=GREEDY)
    listed = [r for r in runs.list_runs(lora_run.parent) if r["run_dir"] == str(lora_run)]
    assert listed and set(listed[0]["evaluation"]) == {"base", "tuned"}


def test_each_pane_times_only_its_own_decoding(lora_run, monkeypatch):
    """Interleaving must not charge one pane for the other's steps: with the base pane's steps made 50 ms slower,
    the tuned pane's time stays far below the base pane's."""
    import contextlib
    import time as clock

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    original = pair.side

    @contextlib.contextmanager
    def slow_base(tuned):
        if not tuned:
            clock.sleep(0.05)
        with original(tuned) as model:
            yield model

    monkeypatch.setattr(pair, "side", slow_base)
    base, tuned = list(chat.stream_pair(pair, PROMPT, PROMPT, GenerationSettings(max_new_tokens=6, temperature=0.0,
                                                                                  repetition_penalty=1.0)))[-1]
    assert base.seconds >= 0.05 * base.new_tokens
    assert tuned.seconds < 0.5 * base.seconds


def test_chat_runs_on_the_gpu_in_its_half_precision_and_on_a_cpu_in_fp32(monkeypatch):
    """Found on a lent H100: the chat pair was loaded on the CPU in fp32 while the GPU sat idle."""
    from studio.chat import chat
    from studio.models import hardware

    facts = {"h100": hardware.HardwareFacts(device="cuda", cuda_bf16=True),
             "t4": hardware.HardwareFacts(device="cuda", cuda_bf16=False),
             "cpu": hardware.HardwareFacts(device="cpu", cpu_flags=frozenset({"amx_bf16"}))}
    expected = {"h100": ("bf16", "cuda"), "t4": ("fp16", "cuda"), "cpu": ("fp32", "cpu")}
    for name, fact in facts.items():
        monkeypatch.setattr(hardware, "detect", lambda fact=fact: fact)
        assert chat.inference_placement() == expected[name], name


def test_two_sessions_at_once_each_get_their_own_base_and_tuned_answers(lora_run):
    """All browser sessions share one pair, and the base side switches the adapter off. A slow forward pass widens
    the window: before the lock, one session's switch landed inside the other's step and its "tuned" answer came
    from the base model."""
    import threading
    import time as clock

    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    prompts = [[{"role": "user", "content": "Who are you?"}], [{"role": "user", "content": "Tell me a story."}]]
    alone = [[a.text for a in list(chat.stream_pair(pair, p, p, GREEDY))[-1]] for p in prompts]
    assert all(base != tuned for base, tuned in alone), alone  # otherwise this test could not fail
    hook = pair.base_model.get_base_model().register_forward_pre_hook(lambda *_: clock.sleep(0.01))
    together = [None, None]

    def session(i):
        together[i] = [a.text for a in list(chat.stream_pair(pair, prompts[i], prompts[i], GREEDY))[-1]]

    threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        hook.remove()
    assert together == alone


def test_two_runs_side_by_side_from_one_copy_of_their_base(lora_run, tiny_model_dir, tmp_path):
    """Any two adapter runs on one base: the left side answers as the other run does alone, the right side as
    this run does alone, and the weights are one base plus two adapters."""
    settings, _ = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tiny_model_dir}", "max_steps=10",
                                                      "learning_rate=0.01", "lora_dropout=0.0", "precision=fp32",
                                                      "r=2", "lora_alpha=8", "seed=7", "validation_share=0.0",
                                                      "max_length=64"])
    other = tmp_path / "other"
    assert train.run_training(settings, other, progress=None)["status"] == "finished"
    pair = chat.ChatPair.of_two_runs(lora_run, other, progress=lambda _: None)
    left, right = list(chat.stream_pair(pair, PROMPT, PROMPT, GREEDY))[-1]
    alone_this = list(chat.stream_pair(chat.ChatPair.from_run(lora_run, progress=lambda _: None), PROMPT, PROMPT,
                                       GREEDY))[-1][1]
    alone_other = list(chat.stream_pair(chat.ChatPair.from_run(other, progress=lambda _: None), PROMPT, PROMPT,
                                        GREEDY))[-1][1]
    assert right.text == alone_this.text and left.text == alone_other.text and left.text != right.text
    assert set(pair.base_model.peft_config) == {"default", "reference"}
    foreign = tmp_path / "foreign"
    (foreign / "adapter").mkdir(parents=True)
    (foreign / "adapter" / "adapter_config.json").write_text("{}")
    settings_other_base, _ = settings_input.apply_overrides(settings, ["model_name_or_path=starter"])
    (foreign / "preset.json").write_text(__import__("json").dumps(presets.preset_dict(settings_other_base)))
    with pytest.raises(ValueError) as refused:
        chat.ChatPair.of_two_runs(lora_run, foreign, progress=lambda _: None)
    assert refused.value.args[0].key == "chat.compare_other_base"


def test_on_half_precision_weights_chat_serves_the_adapter_as_the_run_checked_it(lora_run, tiny_model_dir,
                                                                                   monkeypatch):
    """A GPU serves bf16 weights: Chat keeps the adapter in bf16 rather than PEFT's fp32 autocast, the dtype in which
    the run's checks answered after training (generation.as_served), so the verdict's answers are the ones Chat
    gives; over fp32 weights the adapter stays fp32."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.chat import generation
    from studio.templates.chat_template import generation_prompt

    def adapter(model):
        return {name: p for name, p in model.named_parameters() if "lora_" in name}

    monkeypatch.setattr(chat, "inference_placement", lambda: ("bf16", "cpu"))
    pair = chat.ChatPair.from_run(lora_run, progress=lambda _: None)
    assert {p.dtype for p in adapter(pair.base_model).values()} == {torch.bfloat16}
    adapter_dir = str(runs.RunFolder.of(lora_run)[0].adapter_dir)
    # the run's own model after training: bf16 weights under the fp32 adapter it trained
    trained = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16),
                                        adapter_dir)
    assert {p.dtype for p in adapter(trained).values()} == {torch.float32}
    generation.as_served(trained)
    served = adapter(pair.base_model)
    assert adapter(trained).keys() == served.keys()
    assert all(torch.equal(p, served[name]) for name, p in adapter(trained).items())
    ids = [pair.tokenizer(generation_prompt(pair.tokenizer, PROMPT), add_special_tokens=False)["input_ids"]]
    assert generation.greedy(trained, pair.tokenizer, ids, 12) == generation.greedy(pair.base_model, pair.tokenizer,
                                                                                   ids, 12)
    full = generation.as_served(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                                          adapter_dir))
    assert {p.dtype for p in adapter(full).values()} == {torch.float32}
