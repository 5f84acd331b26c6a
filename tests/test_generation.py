"""Greedy answers for the run's checks (studio/chat/generation.py): each row to its own cap in a shared batch, batches
within a row and token budget, the base model's answers with the fresh adapter off, one shared pass after training
for the drift check and the verdict, and a failed or stopped pass that leaves each check to answer alone."""

import functools

from studio.chat import generation
from studio.models import models


def counting_generate(model, monkeypatch) -> list[int]:
    """The rows of each generation batch answered."""
    rows: list[int] = []
    answer = generation._answer_batch

    def counted(model, ids, *args):
        rows.append(int(ids.shape[0]))
        return answer(model, ids, *args)

    monkeypatch.setattr(generation, "_answer_batch", counted)
    return rows


def test_each_prompt_keeps_its_own_cap_in_a_shared_batch(tiny_model_dir):
    """A greedy answer's first n tokens are its answer with a cap of n: prompts of different caps share a batch
    and each is cut to its own, as if answered alone."""
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    prompts = [[1, 5, 9, 11], [1, 7, 3], [1, 8, 8, 8, 2]]
    caps = [3, 9, 6]
    together = generation._generate(model, tokenizer, prompts, caps)
    alone = [generation.greedy(model, tokenizer, [ids], cap)[0] for ids, cap in zip(prompts, caps)]
    assert together == alone and [len(a) <= c for a, c in zip(together, caps)] == [True] * 3


def test_generation_batches_hold_a_row_and_token_budget(monkeypatch):
    """Fewer, fuller batches (a small model's step reads every weight once, whatever the rows), but never more
    rows x (prompt + answer) tokens than GENERATE_TOKENS: long prompts get smaller batches."""
    short, long = [[1] * 40] * 100, [[1] * 900] * 30
    batches = generation._generation_batches(short, [32] * 100)
    assert [len(b) for b in batches] == [50, 50]  # two batches either way: the rows shared evenly
    assert [len(b) for b in generation._generation_batches(short[:64], [32] * 64)] == [64]
    # the pass after training (60 general prompts and 14 held-out ones): one batch, not two of 37
    assert [len(b) for b in generation._generation_batches(short[:74], [32] * 74)] == [74]
    long_batches = generation._generation_batches(long, [96] * 30)
    assert all(len(b) * (900 + 96) <= generation.GENERATE_TOKENS for b in long_batches) and len(long_batches) > 1
    mixed = generation._generation_batches(short[:3] + long[:2], [48, 32, 96, 32, 32])
    assert sorted(i for b in mixed for i in b) == list(range(5))


def test_the_base_answers_come_from_the_model_with_its_fresh_adapter_off(tiny_model_dir, monkeypatch):
    """Before the first step the adapter adds nothing, so switching it off gives the same answers without the
    adapted layers' extra products (about a third of a small model's generation time)."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    tuned = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    prompts = [[1, 5, 9, 11], [1, 7, 3, 4, 4]]
    calls = []
    lora_a = next(m for name, m in tuned.named_modules() if name.endswith("lora_A.default"))
    lora_a.register_forward_hook(lambda *args: calls.append(1))
    with_adapter = generation.greedy(tuned, tokenizer, prompts, 8)
    assert calls
    calls.clear()
    with generation.as_base(tuned):
        without = generation.greedy(tuned, tokenizer, prompts, 8)
    assert without == with_adapter and not calls
    generation.greedy(tuned, tokenizer, prompts, 2)
    assert calls, "the adapter is on again after the block"
    plain = models.load_model(str(tiny_model_dir))  # full fine-tuning: no adapter to switch off, the model as is
    with generation.as_base(plain) as same:
        assert same is plain and generation.greedy(plain, tokenizer, prompts, 8) == with_adapter


def test_the_checks_after_training_share_one_generation_pass(tiny_model_dir, monkeypatch):
    """The drift check's, the held-out rows' and the reworded questions' answers are generated together once; each
    check then finds its own answers (the same as answering alone), and an ask outside the pass is generated."""
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    general, held, reworded = [[1, 5, 9, 11], [1, 7, 3]], [[1, 8, 8, 2]], [[1, 6, 6], [1, 4, 2, 2]]
    alone = (generation.greedy(model, tokenizer, general, 4), generation.greedy(model, tokenizer, held, 9),
             generation.greedy(model, tokenizer, reworded, 6))
    rows = counting_generate(model, monkeypatch)
    asks = [(ids, 4) for ids in general] + [(ids, 9) for ids in held] + [(ids, 6) for ids in reworded]
    with generation.answered_together(model, tokenizer, asks):
        assert rows == [5]  # one batch for all five
        shared = (generation.greedy(model, tokenizer, general, 4), generation.greedy(model, tokenizer, held, 9),
                  generation.greedy(model, tokenizer, reworded, 6))
        assert rows == [5] and shared == alone
        generation.greedy(model, tokenizer, held, 3)  # another cap: not in the pass
        assert rows == [5, 1]
    generation.greedy(model, tokenizer, held, 9)
    assert rows == [5, 1, 1], "outside the block every ask is generated"


def test_a_failed_shared_pass_leaves_each_check_to_answer(tiny_model_dir, monkeypatch):
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    rows = counting_generate(model, monkeypatch)
    working = generation._answer_batch

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(generation, "_answer_batch", out_of_memory)
    with generation.answered_together(model, tokenizer, [([1, 5, 9], 4)]):  # the run goes on
        monkeypatch.setattr(generation, "_answer_batch", working)
        assert generation.greedy(model, tokenizer, [[1, 5, 9]], 4)
    assert rows == [1], "the check answered on its own"


def test_a_batch_ends_when_every_row_has_its_cap(tiny_model_dir, monkeypatch):
    """A row capped short that never says its end token stops at its cap, and the batch ends with its other row's
    end token: no steps are paid up to the largest cap when no row needs them."""
    from studio.chat import chat

    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    short, long = [1, 5, 9], [1, 7, 3, 4]
    monkeypatch.setattr(chat, "_eos_ids", lambda model, tokenizer: {-1})  # nothing ends: the bare answers
    free = generation._generate(model, tokenizer, [short, long], [12, 12])
    end = next(t for t in free[1][2:] if t not in free[0])  # a token the long row says and the short never does
    monkeypatch.setattr(chat, "_eos_ids", lambda model, tokenizer: {end})
    steps = []
    forward = type(model).forward

    @functools.wraps(forward)
    def counting(self, *args, **kwargs):
        steps.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", counting)
    answers = generation._generate(model, tokenizer, [short, long], [2, 12])
    ends_at = free[1].index(end) + 1
    assert answers == [free[0][:2], free[1][:ends_at]]
    assert len(steps) == ends_at < 12  # one forward pass per token; not up to the larger cap


def test_the_step_loop_answers_as_transformers_generate_does(tiny_model_dir, monkeypatch):
    """The checks' own greedy loop (no fp32 copy of each step's logits) gives the answers `generate` gives: left
    padding, rows of different caps, end tokens, with and without a trained adapter; a model the loop cannot drive
    answers through `generate`."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    prompts = [[1, 5, 9, 11, 4, 4, 7], [1, 7, 3], [1, 8, 8, 8, 2], [1, 6]]
    caps = [5, 12, 9, 12]
    assert generation._step_cache_word(model) in ("cache", "past_key_values")
    tuned = get_peft_model(models.load_model(str(tiny_model_dir)), LoraConfig(r=4, target_modules="all-linear"))
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter: its answers differ from the base's
    free = [generation._generate(each, tokenizer, prompts, [12] * 4) for each in (model, tuned)]
    assert free[0] != free[1]
    ends = {answer[min(3, len(answer) - 1)] for answers in free for answer in answers[1:3]}  # said midway
    monkeypatch.setattr("studio.chat.chat._eos_ids", lambda model, tokenizer: ends)
    for each in (model, tuned):
        stepped = generation._generate(each, tokenizer, prompts, caps)
        with monkeypatch.context() as m:
            m.setattr(generation, "_step_cache_word", lambda model: None)
            generated = generation._generate(each, tokenizer, prompts, caps)
        assert stepped == generated, (stepped, generated)
        assert any(len(a) < c and a[-1] in ends for a, c in zip(stepped, caps))  # a row ended before its cap


def test_stop_ends_the_step_loop_at_the_next_token(tiny_model_dir, monkeypatch):
    import threading

    import pytest

    from studio.core import stopping

    pressed = threading.Event()
    model, tokenizer = models.load_model(str(tiny_model_dir)), models.load_tokenizer(str(tiny_model_dir))
    monkeypatch.setattr("studio.chat.chat._eos_ids", lambda model, tokenizer: {-1})  # nothing ends by itself
    steps = []
    forward = type(model).forward

    def pressed_after_three(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            pressed.set()
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", pressed_after_three)
    with stopping.stop_on(pressed), pytest.raises(stopping.StopRequested):
        generation._generate(model, tokenizer, [[1, 5, 9]], [40])
    assert len(steps) == 3
