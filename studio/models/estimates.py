"""Estimates the studio shows and decides with. Pure functions of numbers: no torch, no model loading.

Memory of a training run = weights + gradients + optimizer states + activations (+ the logits work).
Rules of thumb, each a line below: full fine-tuning with AdamW costs about 12 bytes per trained parameter in
mixed precision (fp32 master weights 4, gradients 4, two Adam moments 8 minus the half-precision copy); LoRA trains
about 1% of the parameters so its cost is mostly the frozen weights; activations grow with batch x cutoff.
Each number is computed here once, from the settings: the Hyperparameters tab shows it, training decides with it.
"""

from __future__ import annotations

from studio.core.text import Msg
from . import hardware
from .models import ModelShape  # noqa: F401  (the sizes the estimates read)

WEIGHT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "nf4": 0.55}  # nf4: 4-bit values + block scales


def trainable_parameters(shape: ModelShape, method: str, lora_rank: int = 16, freeze_layers: int = 2) -> int:
    if method in ("lora", "qlora"):  # all linear layers: r * (fan_in + fan_out) each
        per_layer = lora_rank * (4 * 2 * shape.hidden + 3 * (shape.hidden + shape.intermediate))
        return shape.layers * per_layer
    if method == "freeze":
        return min(freeze_layers, shape.layers) * (shape.parameters - shape.vocab * shape.hidden) // shape.layers
    return shape.parameters


# Bytes kept for backward per token, per layer, per hidden unit. Calibrated on the starter model on a CPU
# (bench/memory_estimate.py: full fp32, LoRA fp32 and LoRA bf16 at batch 4 x 512; checked on the other cases):
# the base model keeps ~140 (about 35 fp32 values: norms, q/k/v, attention, the SwiGLU MLP's four wide tensors);
# LoRA dropout copies each adapted layer's input (+105); bf16 autocast on a CPU keeps about 70% of that, since
# norms, residuals and adapters stay fp32.
ACTIVATION_BYTES = 140.0
LORA_DROPOUT_BYTES = 105.0
HALF_PRECISION_FACTOR = 0.7


def estimate_memory_gb(shape: ModelShape, method: str, precision: str, batch: int, seq_len: int,
                       checkpointing: bool = False, lora_rank: int = 16, freeze_layers: int = 2,
                       lora_dropout: float = 0.05) -> dict:
    """Peak training memory in GB, by part, for the UI and for choosing gradient checkpointing."""
    weight_format = "nf4" if method == "qlora" else ("fp32" if precision == "fp32" else "bf16")
    if precision == "fp16" and method in ("full", "freeze"):
        weight_format = "fp32"  # fp16 mixed precision keeps fp32 master weights
    trainable = trainable_parameters(shape, method, lora_rank, freeze_layers)
    weights = shape.parameters * WEIGHT_BYTES[weight_format]
    # Trained parameters need a gradient and two AdamW moments, in the trained weights' own format: the studio
    # trains full / freeze on bf16 weights when bf16 is chosen (2 + 2 x 2 bytes), and on fp32 weights otherwise
    # (4 + 2 x 4 bytes: with the fp32 weights, the "16 bytes per parameter" of fp32 or fp16-mixed training).
    # LoRA adapters stay fp32 whatever the base.
    if method in ("full", "freeze") and weight_format == "bf16":
        optimizer = trainable * (2.0 + 4.0)
    else:
        optimizer = trainable * (4.0 + 8.0)
    tokens = batch * seq_len
    per_unit = ACTIVATION_BYTES + (LORA_DROPOUT_BYTES if method in ("lora", "qlora") and lora_dropout > 0 else 0)
    if precision != "fp32":
        per_unit *= HALF_PRECISION_FACTOR
    # With checkpointing only each layer's input (one half/fp32 value per unit) is kept, plus one layer recomputed.
    kept_layers = 1 + shape.layers * (4 / per_unit) if checkpointing else shape.layers
    activations = tokens * shape.hidden * per_unit * kept_layers
    logits = tokens * shape.vocab * 4.0  # one fp32 copy (TRL computes the loss from them in chunks)
    gb = 1024**3
    parts = {"weights": weights / gb, "optimizer_and_gradients": optimizer / gb, "activations": activations / gb,
             "logits": logits / gb}
    parts["total"] = sum(parts.values())
    parts["trainable_parameters"] = trainable
    return parts


# ---------------------------------------------------------------- steps and time

def steps_per_epoch(train_rows: int, batch: int, accumulation: int, devices: int = 1) -> int:
    micro_batches = -(-train_rows // (batch * devices))
    return max(1, -(-micro_batches // accumulation))


def total_steps(train_rows: int, batch: int, accumulation: int, epochs: float, max_steps: int = -1,
                devices: int = 1) -> int:
    if max_steps > 0:
        return max_steps
    return max(1, int(-(-steps_per_epoch(train_rows, batch, accumulation, devices) * epochs // 1)))


def training_memory_gb(settings, shape: ModelShape, facts) -> dict:
    """The run's peak memory by part, at the precision it will train in on this machine ('auto' resolved as
    training resolves it). The Hyperparameters tab shows it; training decides 'auto' checkpointing with it."""
    t, m = settings.training, settings.method
    precision = hardware.resolve_precision(facts, t.precision)[0]
    rows, length = t.per_device_train_batch_size, t.max_length
    if m.stage_row.generates:  # GRPO trains every prompt with each of its sampled answers
        rows, length = rows * m.num_generations, length + m.max_completion_length
    parts = estimate_memory_gb(shape, m.finetuning_type, precision, rows, length,
                               t.gradient_checkpointing == "on", m.r, m.freeze_trainable_layers, m.lora_dropout)
    if m.use_dora and m.finetuning_type in ("lora", "qlora"):
        parts["dora"] = dora_gb(shape)
        parts["total"] += parts["dora"]
    return parts


# DoRA recomputes each adapted weight with its adapter (W + BA, fp32) to take its norm, in every step: about three
# fp32 copies of the linear layers' weights at the peak. Calibrated on the starter model here: +1.25 GB measured
# (bench/dora_cost.py, 3.16 -> 4.41 GB peak), 1.28 GB by this rule. Its steps took about 1.5x a LoRA step there.
DORA_WEIGHT_COPIES = 3
DORA_STEP_FACTOR = 1.5


def dora_gb(shape: ModelShape) -> float:
    linear = max(shape.parameters - shape.vocab * shape.hidden, 0)  # the embeddings get no adapter
    return DORA_WEIGHT_COPIES * 4 * linear / 1024**3


FITS = 0.9  # of the free memory: what a run may plan to use (the estimate's own margin)


def fit_message(estimate_gb: float, free_gb: float, method: str) -> str:
    if estimate_gb <= FITS * free_gb:
        return Msg("advice.fits", needed=estimate_gb, free=free_gb)
    tries = [Msg("advice.try_batch"), Msg("advice.try_cutoff"), Msg("advice.try_ckpt")]
    if method == "full":
        tries.insert(0, Msg("advice.try_lora"))
    elif method == "lora":
        tries.append(Msg("advice.try_qlora"))
    return Msg("advice.no_fit", needed=estimate_gb, free=free_gb, tries=tries)


def time_estimate_text(seconds_per_step: float, steps: int) -> str:
    total = seconds_per_step * steps
    if total >= 90:
        return Msg("advice.time_min", steps=steps, seconds=seconds_per_step, minutes=total / 60)
    return Msg("advice.time_s", steps=steps, seconds=seconds_per_step, total=total)
