"""Two layer forwards for training on the CPU that give the same numbers as PEFT's and transformers' with less
work and memory. Profiled on the starter model (bench/RESULTS.md, issue 30), everything but the matmuls took a
quarter of each step, most of it elementwise passes over whole activations; and on Gemma 3 270M the saved
activations, not the weights, decided the peak memory.

* **LoRA** (`lean_lora_forward`). PEFT computes `result + lora_B(lora_A(x)) * scaling`: the scaling multiplies,
  and the sum adds, a whole [tokens, out_features] tensor, forward and backward, in every adapted layer. Here the
  scaling multiplies the small [tokens, r] product instead and lora_B's GEMM accumulates straight into the base
  layer's output (`addmm_`). The same function of the same weights: only the rounding order differs (tests).
* **Gated MLPs** (`GatedProduct`). `down_proj(act_fn(gate_proj(x)) * up_proj(x))` keeps gate, up, act(gate) and
  their product for the backward pass. `act(gate)` is cheap to recompute from gate, so it is not kept: a quarter
  of the MLP's activations (113 MB of Gemma's 926 MB on a 764-token step). Forward and gradients are computed
  with the same kernels, so they are bitwise the same.

Both are installed per module only where they provably apply (plain `nn.Linear` under one vanilla adapter; an
MLP whose forward gives exactly the original output on the model as loaded) and step aside per call where they
do not (autocast, merged or disabled adapters, extra arguments).
"""

from __future__ import annotations

import types

from .heavy import ensure_imported

ensure_imported()
import torch  # noqa: E402
from peft.tuners.lora.layer import Linear as LoraLinear  # noqa: E402


# ---------------------------------------------------------------- LoRA


def lean_lora_forward(self, x, *args, **kwargs):
    """PEFT's LoRA Linear forward for one active vanilla adapter, with the scaling on the rank-r product and
    lora_B accumulated into the base output. Anything else goes to PEFT's own forward."""
    adapters = self.active_adapters
    if args or kwargs or self.disable_adapters or self.merged or len(adapters) != 1 \
            or adapters[0] in self.lora_variant or adapters[0] not in self.lora_A \
            or torch.is_autocast_enabled(x.device.type):
        return LoraLinear.forward(self, x, *args, **kwargs)
    name = adapters[0]
    base, lora_a, lora_b = self.get_base_layer(), self.lora_A[name], self.lora_B[name]
    if not (x.dtype == base.weight.dtype == lora_a.weight.dtype == lora_b.weight.dtype):
        return LoraLinear.forward(self, x, *args, **kwargs)  # PEFT's casts decide the rounding there
    rows = x.reshape(-1, x.shape[-1])
    output = torch.nn.functional.linear(rows, base.weight, base.bias)
    # mm saves its inputs, not its output, so scaling that output in place leaves the backward pass intact
    low_rank = torch.mm(self.lora_dropout[name](rows), lora_a.weight.t()).mul_(self.scaling[name])
    output.addmm_(low_rank, lora_b.weight.t())
    return output.view(*x.shape[:-1], output.shape[-1])


def lean_lora_applies(module) -> bool:
    """Plain LoRA on a plain nn.Linear, without lora_B bias (PEFT's `lora_bias`) or a variant (DoRA, ...)."""
    return type(module) is LoraLinear and type(module.get_base_layer()) is torch.nn.Linear \
        and not module.lora_variant and all(b.bias is None and a.bias is None
                                            for a, b in zip(module.lora_A.values(), module.lora_B.values()))


# ---------------------------------------------------------------- gated MLPs


class GatedProduct(torch.autograd.Function):
    """act(gate) * up, keeping gate and up for the backward pass and recomputing act(gate) there."""

    @staticmethod
    def forward(ctx, gate, up, act):
        ctx.act = act
        ctx.save_for_backward(gate, up)
        return act(gate) * up

    @staticmethod
    def backward(ctx, grad):
        gate, up = ctx.saved_tensors
        with torch.enable_grad():
            gate_leaf = gate.detach().requires_grad_()
            activated = ctx.act(gate_leaf)
        grad_gate = torch.autograd.grad(activated, gate_leaf, grad * up)[0] if ctx.needs_input_grad[0] else None
        grad_up = grad * activated.detach() if ctx.needs_input_grad[1] else None
        return grad_gate, grad_up, None


def gated_mlp_forward(self, x):
    return self.down_proj(GatedProduct.apply(self.gate_proj(x), self.up_proj(x), self.act_fn))


def _is_gated_mlp(module) -> bool:
    return all(isinstance(getattr(module, name, None), torch.nn.Module)
               for name in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def gives_the_same_output(module) -> bool:
    """Whether the gated forward computes exactly what this module's class forward does (transformers' Llama,
    Mistral, Qwen and Gemma MLPs do; a model with a different MLP under the same names keeps its own). Checked in
    eval mode, so LoRA dropout draws no random numbers."""
    gate = module.gate_proj.get_base_layer() if hasattr(module.gate_proj, "get_base_layer") else module.gate_proj
    weight = getattr(gate, "weight", None)
    if weight is None or not weight.is_floating_point():  # a quantized layer: left as it is
        return False
    x = torch.randn(1, 3, weight.shape[1], generator=torch.Generator().manual_seed(0)).to(weight.device, weight.dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return torch.equal(type(module).forward(module, x), gated_mlp_forward(module, x))
    except Exception:  # noqa: BLE001 - whatever the reason, that module keeps its own forward
        return False
    finally:
        module.train(was_training)


# ---------------------------------------------------------------- installing


def install_lean_layers(model) -> dict:
    """Give each module the lean forward that applies to it; returns how many of each were installed."""
    counts = {"lora": 0, "gated_mlp": 0}
    checked: dict[type, bool] = {}
    for module in model.modules():
        if lean_lora_applies(module):
            module.forward = types.MethodType(lean_lora_forward, module)
            counts["lora"] += 1
    for module in model.modules():  # after LoRA, so the check runs the MLP as it will train
        if _is_gated_mlp(module) and type(module).forward is not gated_mlp_forward:
            if type(module) not in checked:
                checked[type(module)] = gives_the_same_output(module)
            if checked[type(module)]:
                module.forward = types.MethodType(gated_mlp_forward, module)
                counts["gated_mlp"] += 1
    return counts
