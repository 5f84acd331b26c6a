"""Settings -> the arguments TRL's `SFTConfig`, PEFT's `LoraConfig` and bitsandbytes receive. Every training
field whose name `SFTConfig` knows passes through unchanged; the hardware plan supplies what 'auto' became.
Plain dicts first, so the mapping is testable without importing TRL."""

from __future__ import annotations

from .config import Settings, all_fields

# Fields the studio resolves or implements itself (marked `studio_only` on the field): precision and checkpointing
# come from the hardware plan, assistant-only loss from the studio's own masks, GRPO's rewards from studio/core/rewards.py.
STUDIO_ONLY = frozenset(name for _, name, info in all_fields() if (info.json_schema_extra or {}).get("studio_only"))


def sft_config_kwargs(settings: Settings, plan: dict) -> dict:
    """Keyword arguments for TRL's `SFTConfig`: every training field whose name SFTConfig knows, plus the
    hardware plan's resolved precision and checkpointing. Plain dict, so it is testable without importing TRL."""
    t = settings.training
    passthrough = t.model_dump(exclude=STUDIO_ONLY)
    has_eval = settings.data.validation_share > 0
    kwargs = {
        **passthrough,
        "bf16": plan["precision"] == "bf16",
        "fp16": plan["precision"] == "fp16",
        "gradient_checkpointing": plan["gradient_checkpointing"],
        "packing": plan.get("packing", False),
        "use_liger_kernel": plan.get("use_liger_kernel", False),  # padding-free (TRL's "bfd"): only with flash-attention, see hardware.plan
        "use_cpu": plan["device"] == "cpu",
        "eval_strategy": "steps" if has_eval else "no",
        "eval_on_start": has_eval,  # the base model's validation loss: the reference every later figure is read against
        "per_device_eval_batch_size": t.per_device_train_batch_size,
        "save_strategy": "steps",
        # Evaluation needs only the loss: without this, Trainer also gathers every token's log-probability.
        "prediction_loss_only": True,
        "dataloader_pin_memory": plan["device"] == "cuda",
        # The best weights are kept by the studio (studio/training/best.py), not by Trainer, which would save a whole
        # checkpoint at every evaluation and take over the save interval Resume depends on.
        "load_best_model_at_end": False,
    }
    if settings.method.finetuning_type in ("lora", "qlora"):
        # Under several processes (DDP) every adapter weight takes part in every forward pass; telling DDP so saves
        # it a search of the autograd graph each step.
        kwargs["ddp_find_unused_parameters"] = False
    return kwargs


def lora_config_kwargs(settings: Settings) -> dict:
    m = settings.method
    targets = m.target_modules.strip()
    return {
        "r": m.r,
        "lora_alpha": m.lora_alpha,
        "lora_dropout": m.lora_dropout,
        "target_modules": targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
        "task_type": "CAUSAL_LM",
        "bias": "none",
        "use_dora": m.use_dora,
        "use_rslora": m.use_rslora,
    }


def to_sft_config(settings: Settings, plan: dict, output_dir: str):
    from trl import SFTConfig  # deferred: heavy (the UI imports this module on start-up)

    return SFTConfig(output_dir=output_dir, **sft_config_kwargs(settings, plan))


def to_lora_config(settings: Settings):
    if settings.method.finetuning_type not in ("lora", "qlora"):
        return None
    from peft import LoraConfig  # deferred: heavy

    return LoraConfig(**lora_config_kwargs(settings))


def to_bnb_config(settings: Settings, plan: dict):
    if settings.method.finetuning_type != "qlora":
        return None
    import torch  # deferred: heavy
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if plan["precision"] == "bf16" else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
    )
