"""The lean LoRA and gated-MLP forwards give PEFT's and transformers' numbers with less work and memory; the
per-conversation attention covers sliding windows that every conversation fits in."""

import pytest
import torch

from studio.engine import lean_layers


def peft_pair(tiny_model_dir, lora_dropout=0.0):
    """The same LoRA model twice (random A and B, so the adapters matter): PEFT's and the lean one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    models = []
    for _ in range(2):
        torch.manual_seed(0)
        config = LoraConfig(r=4, lora_alpha=8, lora_dropout=lora_dropout, target_modules="all-linear",
                            init_lora_weights=False, task_type="CAUSAL_LM")
        models.append(get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config))
    counts = lean_layers.install_lean_layers(models[1])
    return models, counts


def loss_and_grads(model, ids, seed=0):
    torch.manual_seed(seed)  # the same dropout draws for both models
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_every_adapted_linear_and_gated_mlp_gets_the_lean_forward(tiny_model_dir):
    (_, lean), counts = peft_pair(tiny_model_dir)
    assert counts == {"lora": 2 * 7, "gated_mlp": 2}  # 2 layers: q, k, v, o, gate, up, down; one MLP each
    assert lean.base_model.model.model.layers[0].mlp.forward.__func__ is lean_layers.gated_mlp_forward


@pytest.mark.parametrize("lora_dropout", [0.0, 0.3])
def test_lean_layers_train_with_peft_loss_and_gradients(tiny_model_dir, lora_dropout):
    (plain, lean), _ = peft_pair(tiny_model_dir, lora_dropout)
    plain.train(), lean.train()
    ids = torch.randint(3, 100, (2, 11), generator=torch.Generator().manual_seed(1))
    (plain_loss, plain_grads), (lean_loss, lean_grads) = loss_and_grads(plain, ids), loss_and_grads(lean, ids)
    torch.testing.assert_close(lean_loss, plain_loss, rtol=1e-6, atol=1e-6)
    assert set(lean_grads) == set(plain_grads) and all("lora_" in name for name in plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-5, atol=1e-6)


def test_the_gated_product_gives_bitwise_the_same_gradients_and_keeps_less():
    gate, up = (torch.randn(5, 12, generator=torch.Generator().manual_seed(s), requires_grad=True) for s in (0, 1))
    weight = torch.randn(12, 4, generator=torch.Generator().manual_seed(2))
    results, kept = [], []
    for fused in (False, True):
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            product = lean_layers.GatedProduct.apply(gate, up, torch.nn.functional.gelu) if fused \
                else torch.nn.functional.gelu(gate) * up
        (product @ weight).sum().backward()
        results.append((product.detach(), gate.grad.clone(), up.grad.clone()))
        kept.append(sum(saved))
        gate.grad = up.grad = None
    for plain, fused in zip(*results):
        assert torch.equal(plain, fused)
    assert kept == [3 * 60, 2 * 60]  # gate, gelu(gate), up before; gate and up now


def test_lean_lora_steps_aside_for_merged_disabled_or_autocast_adapters(tiny_model_dir, monkeypatch):
    (plain, lean), _ = peft_pair(tiny_model_dir)
    calls, lean_modules = [], {id(m) for m in lean.modules()}
    peft_forward = lean_layers.LoraLinear.forward
    monkeypatch.setattr(lean_layers.LoraLinear, "forward",  # counts PEFT's own forward run by the lean model
                        lambda self, *a, **k: (id(self) in lean_modules and calls.append(1)) or
                        peft_forward(self, *a, **k))
    ids = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        lean(input_ids=ids)
        assert not calls  # the lean path itself
        with lean.disable_adapter(), plain.disable_adapter():
            torch.testing.assert_close(lean(input_ids=ids).logits, plain(input_ids=ids).logits)
        assert len(calls) == 14
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lean(input_ids=ids)
        assert len(calls) == 28
        expected = plain(input_ids=ids).logits
        lean.merge_adapter()
        torch.testing.assert_close(lean(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)
        assert len(calls) == 42


def test_an_mlp_that_computes_something_else_keeps_its_own_forward():
    class ScaledMLP(torch.nn.Module):  # the same layer names, another function
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj = torch.nn.Linear(6, 8), torch.nn.Linear(6, 8)
            self.down_proj, self.act_fn = torch.nn.Linear(8, 6), torch.nn.SiLU()

        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x)) * 2

    model = torch.nn.Sequential(ScaledMLP())
    assert lean_layers.install_lean_layers(model) == {"lora": 0, "gated_mlp": 0}
    assert "forward" not in vars(model[0])


def tiny_sliding_model(window: int):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=window,
                           attn_implementation="sdpa")
    return MistralForCausalLM(config).eval()


@pytest.mark.parametrize("window", [7, 4])
def test_sliding_windows_attend_per_conversation_where_each_conversation_fits(window, monkeypatch):
    """Conversations of 5 and 7 tokens in one row: a window of 7 changes nothing for either, so each is attended
    alone with the causal kernel; a window of 4 does, so transformers' masked SDPA keeps the window. Either way
    the packed row gives what each conversation gives alone under the same window."""
    from studio.engine import lean

    model = tiny_sliding_model(window)
    first, second = torch.randint(3, 64, (5,)), torch.randint(3, 64, (7,))
    with torch.no_grad():
        alone = model(input_ids=second[None], use_cache=False).logits[0]
        model.set_attn_implementation(lean.SDPA_PER_CONVERSATION)
        fallbacks = []
        original = lean.sdpa_attention_forward
        monkeypatch.setattr(lean, "sdpa_attention_forward", lambda *a, **k: fallbacks.append(1) or original(*a, **k))
        edges = torch.tensor([0, 5, 12], dtype=torch.int32)
        packed = model(input_ids=torch.cat([first, second])[None], use_cache=False,
                       position_ids=torch.cat([torch.arange(5), torch.arange(7)])[None],
                       cu_seq_lens_q=edges, cu_seq_lens_k=edges, max_length_q=7, max_length_k=7).logits[0, 5:]
    assert len(fallbacks) == (0 if window == 7 else 2)
    torch.testing.assert_close(packed, alone, rtol=1e-4, atol=1e-5)


def saved_elements(module, x) -> int:
    seen = {}
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: seen.setdefault(t.untyped_storage().data_ptr(), t.numel()) and t, lambda t: t):
        module(x)
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in parameters)


def test_a_lora_mlp_keeps_gate_and_up_only(tiny_model_dir, monkeypatch):
    """Without dropout the down projection's input is recomputed too (GatedLoraDown): of the MLP's four
    intermediate-size activations (gate, up, act(gate), their product) two are kept."""
    (plain, lean), _ = peft_pair(tiny_model_dir)
    plain_mlp, lean_mlp = (m.base_model.model.model.layers[0].mlp for m in (plain, lean))
    x = torch.randn(1, 9, plain_mlp.gate_proj.in_features, requires_grad=True)
    inner = 9 * plain_mlp.gate_proj.out_features
    assert saved_elements(plain_mlp, x) - saved_elements(lean_mlp, x) == 2 * inner
    used = []
    monkeypatch.setattr(lean_layers.GatedLoraDown, "apply",
                        staticmethod(lambda *a, original=lean_layers.GatedLoraDown.apply: used.append(1) or
                                     original(*a)))
    lean_mlp(x)
    assert used
