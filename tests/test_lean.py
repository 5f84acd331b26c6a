"""The studio's lean LM head gives TRL's losses and gradients while skipping logging-only work."""

import pytest
import torch

from studio.core import settings_input, trl_args
from studio.core.config import Settings
from studio.data import tokenized


def trainer_pair(tiny_model_dir, tmp_path, lean: bool, **extra):
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from studio.engine.lean import LeanSFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"messages": [{"role": "user", "content": f"question {i} " * (1 + i % 5)},
                          {"role": "assistant", "content": f"answer {i} " * (1 + i % 7)}]} for i in range(16)]
    dataset = tokenized.encode_split(tokenizer, rows, assistant_only=True, cache=False)
    torch.manual_seed(0)
    cls = LeanSFTTrainer if lean else SFTTrainer
    args = SFTConfig(output_dir=str(tmp_path / ("lean" if lean else "trl")), max_steps=3, learning_rate=0.01,
                     per_device_train_batch_size=4, logging_steps=1, report_to="none", use_cpu=True, bf16=False,
                     save_strategy="no", seed=0, **extra)
    return cls(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), args=args, train_dataset=dataset,
               processing_class=tokenizer, peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                  target_modules="all-linear", task_type="CAUSAL_LM"))


def lora_state(trainer):
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items() if "lora_" in k}


def test_lean_head_trains_exactly_like_trls(tiny_model_dir, tmp_path):
    results = {}
    for lean in (False, True):
        trainer = trainer_pair(tiny_model_dir, tmp_path, lean)
        assert getattr(trainer, "lean", False) == lean
        if lean:  # every batch without padding (the tiny model's attention is cheap enough to weigh nothing)
            trainer.data_collator.context_weight = 0.0
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        results[lean] = (losses, lora_state(trainer), trainer._total_train_tokens)
    (trl_losses, trl_weights, trl_tokens), (lean_losses, lean_weights, lean_tokens) = results[False], results[True]
    assert len(lean_losses) == 3 and lean_losses == pytest.approx(trl_losses, rel=1e-5)
    assert lean_tokens == trl_tokens
    for name, value in trl_weights.items():
        torch.testing.assert_close(lean_weights[name], value, atol=1e-6, rtol=1e-5)


def test_lean_head_scores_only_labelled_positions(tiny_model_dir, tmp_path, monkeypatch):
    """Prompt and padding positions never reach the vocabulary projection (TRL scores them all off CUDA)."""
    from studio.engine import lean

    trainer = trainer_pair(tiny_model_dir, tmp_path, lean=True)
    scored, original = [], lean.label_log_probs

    def counting(hidden, *args):
        scored.append(hidden.shape[0])
        return original(hidden, *args)

    monkeypatch.setattr(lean, "label_log_probs", counting)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.compute_loss(trainer.model, dict(batch))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert scored == [labelled] and labelled < batch["input_ids"].numel() // 2


def head_outputs(function, dtype):
    """log p(label) and the gradients of hidden states, head weight and bias for one random head."""
    generator = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(70, 24, generator=generator), torch.randn(300, 24, generator=generator) * 0.3
    bias, labels = torch.randn(300, generator=generator), torch.randint(0, 300, (70,), generator=generator)
    upstream = torch.randn(70, generator=generator)
    hidden, weight, bias = (t.to(dtype).requires_grad_() for t in (hidden, weight, bias))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        log_probs = function(hidden, weight, bias, labels)
    (log_probs * upstream).sum().backward()
    return [log_probs.detach(), hidden.grad, weight.grad, bias.grad]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("row_tile, tile_elements", [(1024, 300 * 24), (24, 300 * 24), (24, 50 * 24)],
                         ids=["vocabulary-chunks", "row-blocks", "both"])
def test_the_cpu_head_gives_trls_log_probs_and_gradients(dtype, row_tile, tile_elements, monkeypatch):
    """The CPU head against TRL's kernel and against the plain softmax, with tiles smaller than the batch: 70
    positions through the 300-word vocabulary in 3 chunks of 100; in row blocks of 24, 24 and 22; or both (6
    chunks of 50 for each block), where the log-sum-exp runs across the chunks."""
    from trl.kernels import ChunkedLogProbFunction

    from studio.engine import lean

    def trl_head(hidden, weight, bias, labels):
        return ChunkedLogProbFunction.apply(hidden, weight, bias, labels, 1.0, 128, None, 1.0, ("log_probs",))[0]

    def plain_head(hidden, weight, bias, labels):
        logits = (hidden.float() @ weight.float().t() + bias.float()).log_softmax(-1)
        return logits.gather(1, labels[:, None]).squeeze(1)

    monkeypatch.setattr(lean, "ROW_TILE", row_tile)
    monkeypatch.setattr(lean, "CPU_TILE_ELEMENTS", tile_elements)
    ours = head_outputs(lean.CPULabelLogProbs.apply, dtype)
    tolerance = {} if dtype == torch.float32 else {"atol": 0.05, "rtol": 0.02}  # one bf16 rounding apart
    for reference in (trl_head, plain_head):
        for mine, theirs in zip(ours, head_outputs(reference, dtype)):
            assert mine.dtype == theirs.dtype
            torch.testing.assert_close(mine.float(), theirs.float(), **tolerance)


def test_the_cpu_head_takes_a_batch_without_labelled_positions():
    from studio.engine import lean

    hidden = torch.randn(0, 24, requires_grad=True)
    log_probs = lean.CPULabelLogProbs.apply(hidden, torch.randn(300, 24), None, torch.zeros(0, dtype=torch.long))
    log_probs.sum().backward()
    assert log_probs.shape == (0,) and hidden.grad.shape == (0, 24)


def test_lean_head_steps_aside_where_trl_must_handle_the_loss(tiny_model_dir, tmp_path):
    assert not trainer_pair(tiny_model_dir, tmp_path, lean=True, loss_type="dft").lean
    assert not trainer_pair(tiny_model_dir, tmp_path, lean=True, label_smoothing_factor=0.1).lean


def test_generation_is_untouched_by_the_lean_head(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    trainer = trainer_pair(tiny_model_dir, tmp_path, lean=True)
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        with trainer.model.disable_adapter():
            logits = trainer.model(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    torch.testing.assert_close(logits, plain)


def test_studio_evaluation_asks_for_the_loss_only(tiny_model_dir):
    settings, problems = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tiny_model_dir}"])
    plan = {"precision": "fp32", "gradient_checkpointing": False, "device": "cpu"}
    assert trl_args.sft_config_kwargs(settings, plan)["prediction_loss_only"] is True


def test_short_batches_go_without_padding_and_give_the_padded_loss(tiny_model_dir, tmp_path):
    """The same conversations laid end to end in one row (position ids restart for each): no padding work, and
    the loss and its gradients equal those of the padded batch."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    trainer = trainer_pair(tiny_model_dir, tmp_path, lean=True)
    assert trainer.padding_free_batches
    trainer.data_collator.context_weight = 0.0  # the tiny model's attention is costly next to its tiny layers
    examples = [trainer.train_dataset[i] for i in range(4)]
    packed = trainer.data_collator(examples)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == sum(len(e["input_ids"]) for e in examples)
    padded = DataCollatorForLanguageModeling(pad_token_id=trainer.processing_class.pad_token_id)(examples)
    losses, grads = [], []
    for batch in (padded, packed):
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4)


def test_long_conversations_stay_padded_where_one_long_row_would_cost_more():
    from studio.engine.lean import padding_free_is_cheaper

    assert padding_free_is_cheaper([100, 300, 120, 90], context_weight=3e-4)  # the starter model's weight
    assert padding_free_is_cheaper([300, 200], context_weight=0.0)  # without attention cost, padding only costs
    assert not padding_free_is_cheaper([8000, 7900, 8100, 8000], context_weight=3e-4)  # attention dominates
    assert not padding_free_is_cheaper([500, 500], context_weight=1e-2)


def test_a_model_whose_attention_crosses_packed_rows_keeps_padded_batches():
    """Remote code (or an older transformers) may ignore restarting position ids: checked, never assumed."""
    from types import SimpleNamespace

    from studio.engine.lean import attention_stays_inside_packed_rows

    class SeesEverythingBefore(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = SimpleNamespace(get_text_config=lambda: SimpleNamespace(vocab_size=50))
            self.embed = torch.nn.Embedding(50, 50)

        def forward(self, input_ids, position_ids=None, use_cache=False):
            return SimpleNamespace(logits=self.embed(input_ids).cumsum(dim=1))  # every token sees all before it

    assert not attention_stays_inside_packed_rows(SeesEverythingBefore())


def test_padding_free_rows_attend_one_conversation_at_a_time_with_the_same_result(tiny_model_dir, tmp_path):
    """Where the model uses transformers' SDPA, a padding-free row is attended conversation by conversation (no
    work between conversations, the causal kernel); the logits equal those of transformers' masked SDPA."""
    from studio.engine.lean import SDPA_PER_CONVERSATION

    trainer = trainer_pair(tiny_model_dir, tmp_path, lean=True)
    base = trainer.model.get_base_model()
    assert base.config._attn_implementation == SDPA_PER_CONVERSATION
    assert trainer.data_collator.attention_per_conversation
    examples = [trainer.train_dataset[i] for i in range(3)]
    row = trainer.data_collator(examples)
    inputs = {k: row[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                  "max_length_k")}
    with torch.no_grad():
        per_conversation = base(**inputs, use_cache=False).logits
        base.set_attn_implementation("sdpa")
        masked = base(**inputs, use_cache=False).logits
    torch.testing.assert_close(per_conversation, masked, atol=1e-5, rtol=1e-4)


def test_unusual_attention_is_left_to_transformers():
    """A sliding window shorter than a conversation, soft-capping and sinks change what a token may see: those calls
    go to transformers' SDPA."""
    from unittest import mock

    from studio.engine import lean

    q = torch.randn(1, 2, 6, 4)
    module = torch.nn.Module()
    with mock.patch.object(lean, "sdpa_attention_forward", return_value=("transformers", None)) as plain:
        edges = torch.tensor([0, 3, 6], dtype=torch.int32)
        assert lean.sdpa_per_conversation(module, q, q, q, None, cu_seq_lens_q=edges, sliding_window=2)[0] == \
            "transformers"
        assert lean.sdpa_per_conversation(module, q, q, q, None)[0] == "transformers"  # a padded batch
        short = torch.tensor([0, 3, 5], dtype=torch.int32)  # bounds that do not cover the row
        assert lean.sdpa_per_conversation(module, q, q, q, None, cu_seq_lens_q=short)[0] == "transformers"
        output, _ = lean.sdpa_per_conversation(module, q, q, q, None, cu_seq_lens_q=edges)
        assert plain.call_count == 3 and output.shape == (1, 6, 2, 4)


def test_attention_per_conversation_gives_each_conversations_gradients():
    """Forward and backward of the packed row equal each conversation attended alone (grouped-query heads)."""
    from studio.engine import lean

    generator = torch.Generator().manual_seed(0)
    query = torch.randn(1, 4, 9, 8, generator=generator, requires_grad=True)
    key, value = (torch.randn(1, 2, 9, 8, generator=generator, requires_grad=True) for _ in range(2))
    edges = torch.tensor([0, 2, 7, 9], dtype=torch.int32)
    output, _ = lean.sdpa_per_conversation(torch.nn.Module(), query, key, value, None, cu_seq_lens_q=edges)
    weights = torch.randn(output.shape, generator=generator)
    packed = torch.autograd.grad((output * weights).sum(), (query, key, value))
    alone = []
    for start, end in ((0, 2), (2, 7), (7, 9)):
        part = torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], is_causal=True, enable_gqa=True)
        alone.append(part.transpose(1, 2))
    expected = torch.autograd.grad((torch.cat(alone, dim=1) * weights).sum(), (query, key, value))
    torch.testing.assert_close(output, torch.cat(alone, dim=1))
    for got, want in zip(packed, expected):
        torch.testing.assert_close(got, want)


def test_the_flop_count_is_trainers_counted_once(tiny_model_dir, tmp_path):
    from unittest import mock

    from transformers import Trainer

    trainer = trainer_pair(tiny_model_dir, tmp_path, lean=True)
    inputs = {"input_ids": torch.ones(2, 7, dtype=torch.long)}
    expected = Trainer.floating_point_ops(trainer, inputs)
    base = trainer.model.get_base_model()  # PEFT hands num_parameters on to it
    with mock.patch.object(type(base), "num_parameters", wraps=base.num_parameters) as count:
        assert [trainer.floating_point_ops(inputs) for _ in range(3)] == [expected] * 3
    assert count.call_count <= 1 and expected > 0


def test_batches_with_little_padding_stay_padded():
    from studio.engine.lean import PaddingFreeWhenCheaper

    collate = PaddingFreeWhenCheaper(pad_token_id=0, attention_per_conversation=True)
    rows = lambda *lengths: [{"input_ids": list(range(1, n + 1))} for n in lengths]  # noqa: E731
    assert "attention_mask" in collate(rows(100, 98, 97, 99))  # 1.5% padding: one batched attention call
    packed = collate(rows(100, 40, 60, 20))  # 45% padding: laid end to end
    assert "attention_mask" not in packed and packed["input_ids"].shape == (1, 220)
    assert packed["position_ids"][0, 100].item() == 0 and (packed["labels"][0, [0, 100, 140, 200]] == -100).all()
