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
  with the same kernels, so they are bitwise the same. Where the down projection is LoRA without dropout, its
  input `act(gate) * up`, which the LoRA A product keeps, is recomputed as well (`GatedLoraDown`): another 113 MB.

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
    parts = None if args or kwargs else _vanilla_adapter(self, x)
    if parts is None:
        return LoraLinear.forward(self, x, *args, **kwargs)
    base, lora_a, lora_b, dropout, scaling = parts
    rows = x.reshape(-1, x.shape[-1])
    output = torch.nn.functional.linear(rows, base.weight, base.bias)
    # mm saves its inputs, not its output, so scaling that output in place leaves the backward pass intact
    low_rank = torch.mm(dropout(rows), lora_a.weight.t()).mul_(scaling)
    output.addmm_(low_rank, lora_b.weight.t())
    return output.view(*x.shape[:-1], output.shape[-1])


def _vanilla_adapter(module, x):
    """(base layer, lora_A, lora_B, dropout, scaling) where this call is plain LoRA on the lean path: one active
    vanilla adapter, not merged or disabled, no autocast, and one dtype throughout (elsewhere PEFT's casts
    decide the rounding); None otherwise."""
    adapters = module.active_adapters
    if module.disable_adapters or module.merged or len(adapters) != 1 or adapters[0] in module.lora_variant \
            or adapters[0] not in module.lora_A or torch.is_autocast_enabled(x.device.type):
        return None
    name = adapters[0]
    base, lora_a, lora_b = module.get_base_layer(), module.lora_A[name], module.lora_B[name]
    if not (x.dtype == base.weight.dtype == lora_a.weight.dtype == lora_b.weight.dtype):
        return None
    return base, lora_a, lora_b, module.lora_dropout[name], module.scaling[name]


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


class GatedLoraDown(torch.autograd.Function):
    """down_proj(act(gate) * up) for a LoRA down projection without dropout, keeping only gate and up: the
    product, which the LoRA A product would keep (as large as gate or up), is recomputed in the backward pass.
    The backward pass is autograd's for the lean LoRA forward, written out."""

    @staticmethod
    def forward(ctx, gate, up, lora_a, lora_b, weight, bias, act, scaling):
        rows = (act(gate) * up).reshape(-1, up.shape[-1])
        output = torch.nn.functional.linear(rows, weight, bias)
        low_rank = torch.mm(rows, lora_a.t()).mul_(scaling)
        output.addmm_(low_rank, lora_b.t())
        ctx.save_for_backward(gate, up, lora_a, lora_b, weight, low_rank)
        ctx.act, ctx.scaling = act, scaling
        return output.view(*up.shape[:-1], output.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        gate, up, lora_a, lora_b, weight, low_rank = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1])
        with torch.enable_grad():
            gate_leaf = gate.detach().requires_grad_()
            activated = ctx.act(gate_leaf)
        rows = (activated.detach() * up).reshape(-1, up.shape[-1])
        grad_low_rank = torch.mm(grad, lora_b).mul_(ctx.scaling)
        grad_a = torch.mm(grad_low_rank.t(), rows) if ctx.needs_input_grad[2] else None
        grad_b = torch.mm(grad.t(), low_rank) if ctx.needs_input_grad[3] else None
        grad_rows = torch.mm(grad, weight).addmm_(grad_low_rank, lora_a).view(up.shape)
        grad_gate = torch.autograd.grad(activated, gate_leaf, grad_rows * up)[0] if ctx.needs_input_grad[0] else None
        grad_up = grad_rows * activated.detach() if ctx.needs_input_grad[1] else None
        return grad_gate, grad_up, grad_a, grad_b, None, None, None, None


def gated_mlp_forward(self, x):
    gate, up = self.gate_proj(x), self.up_proj(x)
    down = self.down_proj
    parts = _vanilla_adapter(down, gate) if lean_lora_applies(down) else None
    if parts is not None and isinstance(parts[3], torch.nn.Identity) and not parts[0].weight.requires_grad \
            and (parts[0].bias is None or not parts[0].bias.requires_grad):
        base, lora_a, lora_b, _, scaling = parts
        return GatedLoraDown.apply(gate, up, lora_a.weight, lora_b.weight, base.weight, base.bias, self.act_fn,
                                   scaling)
    return down(GatedProduct.apply(gate, up, self.act_fn))


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
