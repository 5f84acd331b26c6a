import dataclasses
from types import SimpleNamespace

import pytest

from studio.advice import ModelShape, estimate_memory_gb, trainable_parameters

LLAMA_7B = SimpleNamespace(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)


def test_shape_from_config_counts_llama_7b_parameters():
    shape = ModelShape.from_config(LLAMA_7B)
    assert 6.6e9 < shape.parameters < 6.8e9  # Llama-2-7B has 6.74B


def test_full_fine_tuning_bytes_per_parameter_before_activations():
    shape = ModelShape.from_config(LLAMA_7B)

    def per_param(precision):
        parts = estimate_memory_gb(shape, "full", precision, batch=1, seq_len=16)
        return (parts["weights"] + parts["optimizer_and_gradients"]) * 1024**3 / shape.parameters

    assert per_param("fp32") == pytest.approx(16, rel=0.01)  # weights 4 + gradients 4 + AdamW moments 8
    assert per_param("fp16") == pytest.approx(16, rel=0.01)  # fp16 mixed precision trains fp32 master weights
    assert per_param("bf16") == pytest.approx(8, rel=0.01)  # bf16 weights, gradients and moments


def test_lora_and_qlora_cost_far_less_than_full():
    shape = ModelShape.from_config(LLAMA_7B)
    def fixed(method):  # what does not depend on batch and cutoff
        parts = estimate_memory_gb(shape, method, "bf16", 1, 512)
        return parts["weights"] + parts["optimizer_and_gradients"]

    assert fixed("qlora") < fixed("lora") / 3 < fixed("full") / 9
    assert 0.002 < trainable_parameters(shape, "lora", 16) / shape.parameters < 0.02


def test_activations_grow_with_batch_and_cutoff_and_shrink_with_checkpointing():
    shape = ModelShape.from_config(LLAMA_7B)
    small = estimate_memory_gb(shape, "lora", "bf16", 1, 512)["activations"]
    assert estimate_memory_gb(shape, "lora", "bf16", 4, 512)["activations"] == 4 * small
    assert estimate_memory_gb(shape, "lora", "bf16", 1, 1024)["activations"] == 2 * small
    assert estimate_memory_gb(shape, "lora", "bf16", 1, 512, checkpointing=True)["activations"] < small / 10


# ---------------------------------------------------------------- advice rules: each triggered, each quiet

import pytest  # noqa: E402

from studio import advice, config  # noqa: E402
from studio.advice import Situation  # noqa: E402
from studio.config import Settings  # noqa: E402
from studio.hardware import HardwareFacts  # noqa: E402

CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2"}), total_memory_gb=24, free_memory_gb=20)
GPU = HardwareFacts(device="cuda", device_name="A100", cuda_capability=(8, 0), cuda_bf16=True, total_memory_gb=80,
                    free_memory_gb=78, bitsandbytes_cuda=True)
FLASH_GPU = dataclasses.replace(GPU, flash_attention=True)


def situation(*overrides, **facts):
    settings, problems = config.apply_overrides(Settings(), list(overrides))
    assert not problems, problems
    base = dict(rows=500, recommended_cutoff=512, share_over_cutoff=0.0, parameters=135_000_000, facts=CPU)
    return Situation(settings, **{**base, **facts})


def fields(items, rule_field):
    return [a for a in items if a.field == rule_field]


@pytest.mark.parametrize("rule,triggering,quiet,field", [
    (advice.rule_learning_rate, situation("learning_rate=0.005"), situation("learning_rate=2e-4"), "learning_rate"),
    (advice.rule_learning_rate, situation("finetuning_type=full", "learning_rate=2e-4"),
     situation("finetuning_type=full", "learning_rate=1e-5"), "learning_rate"),
    (advice.rule_learning_rate, situation("learning_rate=1e-6"), situation("learning_rate=1e-4"), "learning_rate"),
    (advice.rule_epochs, situation("num_train_epochs=20"), situation("num_train_epochs=5"), "num_train_epochs"),
    (advice.rule_epochs, situation("num_train_epochs=5", rows=50_000), situation("num_train_epochs=1", rows=50_000),
     "num_train_epochs"),
    (advice.rule_effective_batch, situation("per_device_train_batch_size=2", "gradient_accumulation_steps=1"),
     situation("per_device_train_batch_size=4", "gradient_accumulation_steps=4"), "gradient_accumulation_steps"),
    (advice.rule_effective_batch, situation("per_device_train_batch_size=32", "gradient_accumulation_steps=8"),
     situation("per_device_train_batch_size=32", "gradient_accumulation_steps=2"), "gradient_accumulation_steps"),
    (advice.rule_cutoff, situation("max_length=256", share_over_cutoff=0.2), situation("max_length=512"),
     "max_length"),
    (advice.rule_cutoff, situation("max_length=4096"), situation("max_length=768"), "max_length"),
    (advice.rule_lora, situation("r=2", "lora_alpha=4"), situation("r=8", "lora_alpha=16"), "r"),
    (advice.rule_lora, situation("r=256", "lora_alpha=512"), situation("r=32", "lora_alpha=64"), "r"),
    (advice.rule_lora, situation("r=16", "lora_alpha=128"), situation("r=16", "lora_alpha=32"), "lora_alpha"),
    (advice.rule_validation_share, situation("validation_share=0"), situation("validation_share=0.2"),
     "validation_share"),
    (advice.rule_validation_share, situation("validation_share=0.5", rows=50_000),
     situation("validation_share=0.05", rows=50_000), "validation_share"),
    (advice.rule_packing, situation("packing=true"), situation("packing=false"), "packing"),
    (advice.rule_packing, situation("packing=off", facts=FLASH_GPU), situation("packing=auto", facts=FLASH_GPU),
     "packing"),
    (advice.rule_hardware, situation("finetuning_type=qlora"), situation("finetuning_type=qlora", facts=GPU),
     "finetuning_type"),
    (advice.rule_hardware, situation("precision=bf16"), situation("precision=auto"), "precision"),
    (advice.rule_hardware, situation("gradient_checkpointing=on"), situation("gradient_checkpointing=on", facts=GPU),
     "gradient_checkpointing"),
    (advice.rule_data_size, situation(rows=120), situation(rows=5000), "dataset_path"),
])
def test_each_rule_fires_in_its_situation_and_stays_quiet_otherwise(rule, triggering, quiet, field):
    fired = fields(rule(triggering), field)
    assert fired and fired[0].message
    assert not fields(rule(quiet), field)


def test_advice_carries_level_and_suggested_value():
    items = advice.advise(situation("learning_rate=0.005", "finetuning_type=qlora"))
    lr = fields(items, "learning_rate")[0]
    assert lr.level == "warning" and lr.suggested == 2e-4
    assert fields(items, "finetuning_type")[0].level == "error"


def test_overfitting_pattern_is_explained():
    message = advice.rule_epochs(situation("num_train_epochs=30"))[0].message
    assert "validation loss rises" in message


def test_recommended_values_follow_the_situation():
    values = advice.recommended_values(situation("finetuning_type=full", rows=50_000, recommended_cutoff=1024))
    assert values["learning_rate"] == 1e-5 and values["num_train_epochs"] == 1.0
    assert values["max_length"] == 1024 and values["validation_share"] == 0.05
    settings, problems = config.settings_from_flat(values)
    assert not problems  # every recommended value is a valid setting


def test_steps_per_epoch_and_total_steps():
    assert advice.steps_per_epoch(172, 4, 2) == 22
    assert advice.total_steps(172, 4, 2, 5.0) == 110
    assert advice.total_steps(172, 4, 2, 5.0, max_steps=7) == 7
    assert advice.steps_per_epoch(10, 4, 4, devices=2) == 1


def test_fit_message_says_what_to_try():
    assert advice.fit_message(5, 20, "lora").startswith("Fits")
    message = advice.fit_message(30, 20, "full")
    assert message.startswith("Won't fit") and "use LoRA" in message
