"""Estimates the studio shows and decides with. Pure functions of numbers: no torch, no model loading.

Memory of a training run = weights + gradients + optimizer states + activations (+ the logits work).
Rules of thumb, each a line below: full fine-tuning with AdamW costs about 12 bytes per trained parameter in
mixed precision (fp32 master weights 4, gradients 4, two Adam moments 8 minus the half-precision copy); LoRA trains
about 1% of the parameters so its cost is mostly the frozen weights; activations grow with batch x cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "nf4": 0.55}  # nf4: 4-bit values + block scales


@dataclass(frozen=True)
class ModelShape:
    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        hidden = config.hidden_size
        intermediate = getattr(config, "intermediate_size", 4 * hidden)
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", heads) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        per_layer = hidden * head_dim * (2 * heads + 2 * kv) + 3 * hidden * intermediate
        embeddings = config.vocab_size * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
        return cls(layers * per_layer + embeddings, layers, hidden, intermediate, config.vocab_size)


def trainable_parameters(shape: ModelShape, method: str, lora_rank: int = 16, freeze_layers: int = 2) -> int:
    if method in ("lora", "qlora"):  # all linear layers: r * (fan_in + fan_out) each
        per_layer = lora_rank * (4 * 2 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
        return shape.layers * per_layer
    if method == "freeze":
        return min(freeze_layers, shape.layers) * (shape.parameters - shape.vocab * shape.hidden) // shape.layers
    return shape.parameters


def estimate_memory_gb(shape: ModelShape, method: str, precision: str, batch: int, seq_len: int,
                       checkpointing: bool = False, lora_rank: int = 16, freeze_layers: int = 2) -> dict:
    """Peak training memory in GB, by part, for the UI and for choosing gradient checkpointing."""
    weight_format = "nf4" if method == "qlora" else ("fp32" if precision == "fp32" else "bf16")
    if precision == "fp16" and method in ("full", "freeze"):
        weight_format = "fp32"  # fp16 mixed precision keeps fp32 master weights
    trainable = trainable_parameters(shape, method, lora_rank, freeze_layers)
    weights = shape.parameters * WEIGHT_BYTES[weight_format]
    # gradients (in the weights' format for half, else fp32) + two fp32 Adam moments + fp32 master copy if half
    grad_bytes = 2.0 if weight_format in ("bf16", "fp16") and method in ("full", "freeze") else 4.0
    master = 4.0 if weight_format in ("bf16",) and method in ("full", "freeze") else 0.0
    optimizer = trainable * (grad_bytes + 8.0 + master)
    act_bytes = 4.0 if precision == "fp32" else 2.0
    tokens = batch * seq_len
    # ~34 values per token per hidden unit per layer are kept for backward (Korthikanti et al. 2022); with
    # checkpointing only each layer's input is kept, plus one layer being recomputed.
    kept_layers = 1 + shape.layers * (1 / 34) if checkpointing else shape.layers
    activations = tokens * shape.hidden * 34 * act_bytes * kept_layers
    logits = tokens * shape.vocab * 4.0 * 2  # fp32 logits and their gradient
    gb = 1024**3
    parts = {"weights": weights / gb, "optimizer_and_gradients": optimizer / gb, "activations": activations / gb,
             "logits": logits / gb}
    parts["total"] = sum(parts.values())
    parts["trainable_parameters"] = trainable
    return parts
