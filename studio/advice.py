"""Estimates the studio shows and decides with. Pure functions of numbers: no torch, no model loading.

Memory of a training run = weights + gradients + optimizer states + activations (+ the logits work).
Rules of thumb, each a line below: full fine-tuning with AdamW costs about 12 bytes per trained parameter in
mixed precision (fp32 master weights 4, gradients 4, two Adam moments 8 minus the half-precision copy); LoRA trains
about 1% of the parameters so its cost is mostly the frozen weights; activations grow with batch x cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import hardware
from .config import LEARNING_RATES, Settings, flat_values
from .data import split_sizes
from .stats import recommended_test_share, recommended_validation_share
from .text import Msg

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


# ---------------------------------------------------------------- advice rules

@dataclass(frozen=True)
class Situation:
    """What the advice looks at: the settings, and what is known of the data, the model and the machine."""
    settings: object  # studio.config.Settings
    rows: int | None = None  # usable rows in the data file
    recommended_cutoff: int | None = None  # covers ~95% of conversations (stats.recommend_cutoff)
    share_over_cutoff: float | None = None  # share of conversations longer than settings' max_length
    multi_turn_share: float | None = None
    parameters: int | None = None
    facts: object | None = None  # studio.hardware.HardwareFacts
    devices: int = 1
    median_tokens: float | None = None  # the median conversation, in tokens with the chat template


@dataclass(frozen=True)
class Advice:
    level: str  # "error" (cannot run), "warning" (likely a mistake), "info" (a tip)
    field: str
    message: str
    suggested: object = None


def suggested_learning_rate(method: str, parameters: int | None, rows: int | None) -> float:
    rates = LEARNING_RATES[method]
    small_model = parameters is not None and parameters < 1e9
    large_data = rows is not None and rows > 10_000
    return rates["small"] if (small_model or large_data) else rates["large"]


def rule_learning_rate(s: Situation) -> list[Advice]:
    method, lr = s.settings.method.finetuning_type, s.settings.training.learning_rate
    suggested = suggested_learning_rate(method, s.parameters, s.rows)
    low, high = LEARNING_RATES[method]["range"]
    if lr > high:
        return [Advice("warning", "learning_rate", Msg("advice.lr_high", lr=lr, method=method, low=low, high=high),
                       suggested)]
    if lr < low:
        return [Advice("warning", "learning_rate", Msg("advice.lr_low", lr=lr, method=method, low=low, high=high),
                       suggested)]
    return []


def suggested_epochs(rows: int | None) -> float:
    if rows is None or rows < 300:
        return 5.0
    if rows <= 1000:
        return 3.0
    return 2.0 if rows <= 10_000 else 1.0


def rule_epochs(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    epochs = s.settings.training.num_train_epochs
    limit = 10 if s.rows < 1000 else (5 if s.rows <= 10_000 else 3)
    if epochs > limit:
        return [Advice("warning", "num_train_epochs", Msg("advice.epochs", epochs=epochs, rows=s.rows, limit=limit),
                       suggested_epochs(s.rows))]
    return []


def rule_effective_batch(s: Situation) -> list[Advice]:
    t = s.settings.training
    effective = s.settings.effective_batch_size(s.devices)
    if effective < 16 and not (s.rows is not None and s.rows < 160):
        accumulation = -(-16 // (t.per_device_train_batch_size * s.devices))
        return [Advice("info", "gradient_accumulation_steps", Msg("advice.batch_small", effective=effective),
                       accumulation)]
    if effective > 128:
        return [Advice("warning", "gradient_accumulation_steps", Msg("advice.batch_large", effective=effective),
                       max(1, 128 // (t.per_device_train_batch_size * s.devices)))]
    return []


def rule_cutoff(s: Situation) -> list[Advice]:
    if s.recommended_cutoff is None:
        return []
    cutoff, recommended = s.settings.training.max_length, s.recommended_cutoff
    over = s.share_over_cutoff or 0.0
    if over > 0.05:
        out = [Advice("warning", "max_length", Msg("advice.cutoff_short", share=over, cutoff=cutoff), recommended)]
        if not s.settings.data.drop_long_rows and s.rows is not None:
            out.append(Advice("info", "drop_long_rows", Msg("advice.drop_long", share=over, rows=round(over * s.rows)),
                              True))
        return out
    if cutoff > 2 * recommended:
        return [Advice("info", "max_length", Msg("advice.cutoff_long", cutoff=cutoff, recommended=recommended),
                       recommended)]
    return []


def rule_lora(s: Situation) -> list[Advice]:
    m = s.settings.method
    if m.finetuning_type not in ("lora", "qlora"):
        return []
    out = []
    if m.r < 4:
        out.append(Advice("warning", "r", Msg("advice.rank_small", r=m.r), 8))
    elif m.r < 8:
        out.append(Advice("info", "r", Msg("advice.rank_low", r=m.r), 8))
    elif m.r > 64:
        out.append(Advice("info", "r", Msg("advice.rank_large", r=m.r), 16))
    elif m.r > 16:  # the guide: 8-16 suits most tasks
        out.append(Advice("info", "r", Msg("advice.rank_high", r=m.r), 16))
    if not 1 <= m.lora_alpha / m.r <= 4:
        out.append(Advice("info", "lora_alpha", Msg("advice.alpha", ratio=m.lora_alpha / m.r), 2 * m.r))
    return out


def rule_validation_share(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    share, why = recommended_validation_share(s.rows)
    current = s.settings.data.validation_share
    if current == 0:
        return [Advice("warning", "validation_share", Msg("advice.no_validation", why=why), share)]
    if abs(current - share) > 0.5 * share:
        return [Advice("info", "validation_share", Msg("advice.validation_share", current=current, share=share,
                                                       why=why), share)]
    return []


SHORT_MEDIAN_TOKENS = 256  # below this, one packed sequence holds many examples and the run takes few steps


def multi_turn_share(conversations: list[list[dict]]) -> float:
    """Share of conversations with more than one user turn."""
    return sum(sum(m["role"] == "user" for m in c) > 1 for c in conversations) / max(len(conversations), 1)


def packing_suits_data(multi_turn_share: float | None, median_tokens: float | None) -> tuple[bool, Msg | None]:
    """The guide: packing hurts short and multi-turn data. (False, why) when this data is either."""
    if multi_turn_share is not None and multi_turn_share > 0.5:
        return False, Msg("advice.packing_multi_turn", share=multi_turn_share)
    if median_tokens is not None and median_tokens < SHORT_MEDIAN_TOKENS:
        return False, Msg("advice.packing_short", median=SHORT_MEDIAN_TOKENS)
    return True, None


def rule_test_share(s: Situation) -> list[Advice]:
    """Without a test split, the Chat tab's held-out scores come from validation rows (which may also have picked
    the best checkpoint): keep some rows apart where the data allows."""
    if s.rows is None or s.settings.data.test_share > 0:
        return []
    share = recommended_test_share(s.rows)
    if share == 0:
        return []
    return [Advice("info", "test_share", Msg("advice.no_test", share=share, rows=round(s.rows * share)), share)]


def rule_packing(s: Situation) -> list[Advice]:
    packing = s.settings.training.packing
    flash = s.facts is not None and getattr(s.facts, "flash_attention", False)
    suits, why = packing_suits_data(s.multi_turn_share, s.median_tokens)
    if packing == "on" and not flash:
        return [Advice("warning", "packing", Msg("advice.packing_no_flash"), "auto")]
    if flash and not suits:
        return [Advice("info" if packing != "on" else "warning", "packing", Msg("advice.packing_data", why=why),
                       "auto" if packing == "on" else None)]
    if packing == "off" and flash:
        return [Advice("info", "packing", Msg("advice.packing_flash"), "auto")]
    return []


def rule_hardware(s: Situation) -> list[Advice]:
    if s.facts is None:
        return []
    t, out = s.settings.training, []
    if s.settings.method.finetuning_type == "qlora":
        ok, why = hardware.qlora_available(s.facts)
        if not ok:
            out.append(Advice("error", "finetuning_type", why, "lora"))
    best, why = hardware.choose_precision(s.facts)
    if t.precision not in ("auto", best):
        out.append(Advice("warning", "precision", Msg("advice.precision", chosen=t.precision, best=best, why=why),
                          "auto"))
    if t.gradient_checkpointing == "on" and s.facts.device == "cpu":
        out.append(Advice("info", "gradient_checkpointing", Msg("advice.ckpt_cpu"), "auto"))
    return out


def rule_data_size(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    out = [Advice("info", "dataset_path", Msg("advice.data_range", rows=s.rows))]  # the guide's range, always shown
    if s.rows < 300:
        out.append(Advice("warning", "dataset_path", Msg("advice.few_rows", rows=s.rows)))
    epochs = s.settings.training.num_train_epochs
    if s.rows < 1000:
        out.append(Advice("info", "dataset_path", Msg("advice.mix_general")))
    elif epochs >= 3:  # many passes over a larger set forget just as well
        out.append(Advice("info", "num_train_epochs", Msg("advice.mix_general_epochs", epochs=epochs)))
    return out


RULES = (rule_learning_rate, rule_epochs, rule_effective_batch, rule_cutoff, rule_lora, rule_validation_share,
         rule_test_share, rule_packing, rule_hardware, rule_data_size)


def advise(situation: Situation) -> list[Advice]:
    return [item for rule in RULES for item in rule(situation)]


# Fields "reset to recommended" returns to their defaults (studio/config.py) when no rule suggests another value.
RESET_TO_DEFAULT = ("r", "lora_alpha", "lora_dropout", "packing", "precision", "gradient_checkpointing",
                    "per_device_train_batch_size", "gradient_accumulation_steps")


def recommended_values(situation: Situation) -> dict:
    """The advised value of every field a rule has an opinion on ("reset to recommended")."""
    s = situation.settings
    defaults = flat_values(Settings())
    values = {name: defaults[name] for name in RESET_TO_DEFAULT}
    values["learning_rate"] = suggested_learning_rate(s.method.finetuning_type, situation.parameters, situation.rows)
    values["num_train_epochs"] = suggested_epochs(situation.rows)
    if situation.recommended_cutoff:
        values["max_length"] = situation.recommended_cutoff
    if situation.rows is not None:
        values["validation_share"] = recommended_validation_share(situation.rows)[0]
        values["test_share"] = recommended_test_share(situation.rows)
    return values


# ---------------------------------------------------------------- derived numbers

def steps_per_epoch(train_rows: int, batch: int, accumulation: int, devices: int = 1) -> int:
    micro_batches = -(-train_rows // (batch * devices))
    return max(1, -(-micro_batches // accumulation))


def total_steps(train_rows: int, batch: int, accumulation: int, epochs: float, max_steps: int = -1,
                devices: int = 1) -> int:
    if max_steps > 0:
        return max_steps
    return max(1, int(-(-steps_per_epoch(train_rows, batch, accumulation, devices) * epochs // 1)))


def planned_steps(settings, rows: int, devices: int = 1) -> tuple[int, int, int]:
    """(training rows after the split, optimizer steps per epoch, steps in all) for `rows` usable rows."""
    t = settings.training
    train_rows = split_sizes(rows, settings.data.validation_share, settings.data.test_share)[0]
    per_epoch = steps_per_epoch(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps, devices)
    total = total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                        t.num_train_epochs, t.max_steps, devices)
    return train_rows, per_epoch, total


def training_memory_gb(settings, shape: ModelShape, facts) -> dict:
    """The run's peak memory by part, at the precision it will train in on this machine ('auto' resolved as
    training resolves it). The Hyperparameters tab shows it; training decides 'auto' checkpointing with it."""
    t, m = settings.training, settings.method
    precision = hardware.resolve_precision(facts, t.precision)[0]
    return estimate_memory_gb(shape, m.finetuning_type, precision, t.per_device_train_batch_size, t.max_length,
                              t.gradient_checkpointing == "on", m.r, m.freeze_trainable_layers, m.lora_dropout)


def fit_message(estimate_gb: float, free_gb: float, method: str) -> str:
    if estimate_gb <= 0.9 * free_gb:
        return Msg("advice.fits", needed=estimate_gb, free=free_gb)
    tries = [Msg("advice.try_batch"), Msg("advice.try_cutoff"), Msg("advice.try_ckpt")]
    if method == "full":
        tries.insert(0, Msg("advice.try_lora"))
    elif method == "lora":
        tries.append(Msg("advice.try_qlora"))
    return Msg("advice.no_fit", needed=estimate_gb, free=free_gb, tries=tries)


def build_situation(settings, report=None, facts=None, shape: ModelShape | None = None) -> Situation:
    """Situation from a data report (studio.stats.DataReport), hardware facts and the model's shape."""
    rows = recommended = over = multi = median = None
    if report is not None and report.load.rows:
        rows = len(report.load.rows)
        multi = multi_turn_share([r.messages for r in report.load.rows if r.messages is not None])
        if report.lengths is not None:
            recommended = report.cutoff.cutoff
            over = float((report.lengths.total > settings.training.max_length).mean())
            median = float(np.median(report.lengths.total))
    return Situation(settings, rows, recommended, over, multi, shape.parameters if shape else None, facts,
                     median_tokens=median)


def time_estimate_text(seconds_per_step: float, steps: int) -> str:
    total = seconds_per_step * steps
    if total >= 90:
        return Msg("advice.time_min", steps=steps, seconds=seconds_per_step, minutes=total / 60)
    return Msg("advice.time_s", steps=steps, seconds=seconds_per_step, total=total)


# ---------------------------------------------------------------- after (or during) a run: what the curves say

def overfitting_warning(metrics: list[dict], patience: int = 3) -> Msg | None:
    """Plain-language warning when validation loss rose `patience` evaluations in a row while train loss fell,
    or when train loss collapsed at an epoch boundary (memorising the data it has now seen twice)."""
    evals = [m for m in metrics if "eval_loss" in m]
    train = [m for m in metrics if "loss" in m]
    if len(evals) > patience:
        tail = [e["eval_loss"] for e in evals[-patience - 1:]]
        rising = all(b > a for a, b in zip(tail, tail[1:]))
        start = next((t["loss"] for t in train if t["step"] >= evals[-patience - 1]["step"]), None)
        falling = start is not None and train and train[-1]["loss"] < start
        if rising and falling:
            best = min(evals, key=lambda e: e["eval_loss"])
            return Msg("warn.overfitting", patience=patience, best=best["eval_loss"], step=best["step"])
    for previous, current in zip(train, train[1:]):
        if int(current["epoch"]) > int(previous["epoch"]) and current["loss"] < 0.5 * previous["loss"] \
                and current["loss"] < 0.3:
            return Msg("warn.memorising", epoch=int(current["epoch"]) + 1, before=previous["loss"],
                       after=current["loss"])
    return None


def regularisation_remedies(settings, metrics: list[dict]) -> Msg:
    """What to change when the overfitting watch fires, with values: the guide's four levers."""
    t, m = settings.training, settings.method
    best = min((e for e in metrics if "eval_loss" in e and "epoch" in e), key=lambda e: e["eval_loss"], default=None)
    epochs = max(1.0, float(-(-best["epoch"] // 1))) if best else max(1.0, t.num_train_epochs - 1)
    dropout = ""
    if m.finetuning_type in ("lora", "qlora"):
        dropout = Msg("warn.remedy_dropout", dropout=0.1 if m.lora_dropout < 0.1 else min(0.3, m.lora_dropout + 0.05),
                      dropout_now=m.lora_dropout)
    return Msg("warn.remedies", weight_decay=0.1 if t.weight_decay < 0.1 else min(0.3, 2 * t.weight_decay),
               weight_decay_now=t.weight_decay, dropout=dropout, epochs=min(epochs, t.num_train_epochs),
               epochs_now=t.num_train_epochs, patience=3)


def not_learning(settings, metrics: list[dict]) -> Msg | None:
    """A finished run whose validation loss is not clearly below its step-0 baseline, or (without validation) whose
    training loss is still near where it began after 3+ epochs. The remedies, in the guide's order."""
    evals = [e for e in metrics if "eval_loss" in e]
    train = [e for e in metrics if "loss" in e]
    baseline = next((e["eval_loss"] for e in evals if e["step"] == 0), None)
    later = [e for e in evals if e["step"] > 0]
    epochs = max((e.get("epoch", 0) for e in train), default=0)
    if baseline is not None and later:
        if later[-1]["eval_loss"] < 0.98 * baseline:
            return None
        evidence = Msg("warn.evidence_validation", final=later[-1]["eval_loss"], baseline=baseline)
    elif len(train) > 1 and epochs >= 3 and train[-1]["loss"] >= 0.9 * train[0]["loss"]:
        evidence = Msg("warn.evidence_train", last=train[-1]["loss"], epochs=epochs, first=train[0]["loss"])
    else:
        return None
    if epochs >= 10:
        return Msg("warn.too_weak", epochs=epochs, evidence=evidence)
    return Msg("warn.not_learning", evidence=evidence, steps=learning_steps(settings))


def learning_steps(settings) -> list[Msg]:
    t, m = settings.training, settings.method
    steps = []
    if m.finetuning_type in ("lora", "qlora") and m.r < 64:
        steps.append(Msg("warn.step_rank", r=min(64, 2 * m.r), r_now=m.r))
    top = LEARNING_RATES[m.finetuning_type]["range"][1]  # as high as the advice goes without a warning
    if t.learning_rate < top:
        steps.append(Msg("warn.step_lr", lr=min(top, 2 * t.learning_rate), lr_now=t.learning_rate))
    if t.num_train_epochs < 10:
        steps.append(Msg("warn.step_epochs", epochs=min(10.0, 2 * t.num_train_epochs), epochs_now=t.num_train_epochs))
    return steps + [Msg("warn.step_model")]
