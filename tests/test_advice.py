import dataclasses
from types import SimpleNamespace

import pytest

from studio.models.estimates import ModelShape, estimate_memory_gb, trainable_parameters

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

from studio.core import config, settings_input
from studio.core.config import Settings  # noqa: E402
from studio.core.text import render  # noqa: E402
from studio.models import estimates
from studio.models.hardware import HardwareFacts  # noqa: E402
from studio.plan import advice, diagnosis
from studio.plan.advice import Situation  # noqa: E402

CPU = HardwareFacts(device="cpu", cpu_flags=frozenset({"avx2"}), total_memory_gb=24, free_memory_gb=20)
GPU = HardwareFacts(device="cuda", device_name="A100", cuda_capability=(8, 0), cuda_bf16=True, total_memory_gb=80,
                    free_memory_gb=78, bitsandbytes_cuda=True)
FLASH_GPU = dataclasses.replace(GPU, flash_attention=True)


def situation(*overrides, **facts):
    settings, problems = settings_input.apply_overrides(Settings(), list(overrides))
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
     situation("per_device_train_batch_size=32", "gradient_accumulation_steps=2", rows=50_000),
     "gradient_accumulation_steps"),
    (advice.rule_cutoff, situation("max_length=256", share_over_cutoff=0.2), situation("max_length=512"),
     "max_length"),
    (advice.rule_cutoff, situation("max_length=4096"), situation("max_length=768"), "max_length"),
    (advice.rule_lora, situation("r=2", "lora_alpha=4"), situation("r=8", "lora_alpha=16"), "r"),
    (advice.rule_lora, situation("r=256", "lora_alpha=512"), situation("r=16", "lora_alpha=32"), "r"),
    (advice.rule_lora, situation("r=32", "lora_alpha=64"), situation("r=8", "lora_alpha=16"), "r"),
    (advice.rule_lora, situation("r=4", "lora_alpha=8"), situation("r=12", "lora_alpha=24"), "r"),
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
    settings, problems = settings_input.settings_from_flat(values)
    assert not problems  # every recommended value is a valid setting


def test_steps_per_epoch_and_total_steps():
    assert estimates.steps_per_epoch(172, 4, 2) == 22
    assert estimates.total_steps(172, 4, 2, 5.0) == 110
    assert estimates.total_steps(172, 4, 2, 5.0, max_steps=7) == 7
    assert estimates.steps_per_epoch(10, 4, 4, devices=2) == 1


def test_fit_message_says_what_to_try():
    assert estimates.fit_message(5, 20, "lora").startswith("Fits")
    message = estimates.fit_message(30, 20, "full")
    assert message.startswith("Won't fit") and "use LoRA" in message


def test_packing_stays_off_for_multi_turn_or_short_data_even_with_flash_attention():
    from studio.training import train
    from studio.models.hardware import HardwareFacts

    flash = HardwareFacts(device="cuda", cuda_bf16=True, flash_attention=True)
    short = advice.Situation(Settings(), rows=5000, multi_turn_share=0.1, median_tokens=90, facts=flash)
    multi = advice.Situation(Settings(), rows=5000, multi_turn_share=0.8, median_tokens=900, facts=flash)
    long_single = advice.Situation(Settings(), rows=5000, multi_turn_share=0.1, median_tokens=900, facts=flash)
    assert "under 256 tokens" in [a for a in advice.rule_packing(short)][0].message
    assert "80% of the conversations have several turns" in advice.rule_packing(multi)[0].message
    assert advice.rule_packing(long_single) == []
    plan = {"packing": True, "packing_reason": "flash"}
    one_turn = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 3
    two_turns = [{"messages": one_turn[0]["messages"] * 2}] * 3
    assert train.packing_for_data(plan, one_turn, {"input_ids": [[1] * 600] * 3})["packing"] is True
    assert train.packing_for_data(plan, one_turn, {"input_ids": [[1] * 20] * 3})["packing"] is False
    off = train.packing_for_data(plan, two_turns, {"input_ids": [[1] * 600] * 3})
    assert off["packing"] is False and "several turns" in off["packing_reason"]


def test_data_size_shows_the_guides_range_and_mixing_advice_for_many_epochs():
    def said(rows, *overrides):
        settings, _ = settings_input.apply_overrides(Settings(), list(overrides))
        return [a.message for a in advice.rule_data_size(advice.Situation(settings, rows=rows))]

    assert any("5,000 usable rows" in m and "2,000-100,000" in m and "1,000 very clean" in m for m in said(5000))
    assert not any("10-30%" in m for m in said(5000, "num_train_epochs=1"))
    assert any("4 epochs" in m and "10-30%" in m for m in said(5000, "num_train_epochs=4"))
    assert any("10-30%" in m for m in said(500, "num_train_epochs=1"))
    levels = lambda rows: [a.level for a in advice.rule_data_size(situation(rows=rows))]  # noqa: E731
    assert "warning" in levels(120) and "warning" not in levels(5000)


def curve(evals=(), losses=(), epochs_per_step=0.5):
    return ([{"step": s, "eval_loss": v, "epoch": s * epochs_per_step} for s, v in evals]
            + [{"step": s, "loss": v, "epoch": s * epochs_per_step} for s, v in losses])


def test_a_run_that_did_not_learn_gets_the_guides_remedies_in_order():
    settings, _ = settings_input.apply_overrides(Settings(), ["r=8", "learning_rate=5e-5", "num_train_epochs=3"])
    # enough steps (120 in 3 epochs) that too few steps is not the cause
    flat = curve(evals=[(0, 2.0), (120, 1.99)], losses=[(1, 2.1), (120, 2.0)], epochs_per_step=0.025)
    verdict = diagnosis.not_learning(settings, flat)
    assert "validation loss 1.990, against 2.000 before training" in verdict
    text = str(verdict)
    assert text.index("LoRA rank 16 (now 8)") < text.index("learning rate 0.0001 (now 5e-05)") \
        < text.index("6 epochs (now 3)") < text.index("a bigger model")
    assert "此次" not in render(verdict, "zh") and "LoRA 秩 16（现在 8）" in render(verdict, "zh")
    assert diagnosis.not_learning(settings, curve(evals=[(0, 2.0), (6, 1.5)])) is None  # it learnt
    no_validation = curve(losses=[(1, 2.0), (8, 1.95)])  # 4 epochs, train loss barely moved
    assert "training loss still 1.950 after 4 epochs" in diagnosis.not_learning(settings, no_validation)
    ten_epochs = curve(evals=[(0, 2.0), (20, 2.1)], losses=[(20, 2.0)])
    assert "too weak" in diagnosis.not_learning(settings, ten_epochs)


def test_the_overfitting_warning_names_the_regularisation_levers_with_values():
    settings, _ = settings_input.apply_overrides(Settings(), ["weight_decay=0.0", "lora_dropout=0.05", "num_train_epochs=5"])
    metrics = curve(evals=[(2, 1.5), (4, 1.4), (6, 1.6)], epochs_per_step=0.5)
    remedies = str(diagnosis.regularisation_remedies(settings, metrics))
    assert "weight decay 0.1 (now 0)" in remedies and "LoRA dropout 0.1 (now 0.05)" in remedies
    assert "2 epochs instead of 5" in remedies and "early stopping with patience 3" in remedies
    full, _ = settings_input.apply_overrides(Settings(), ["finetuning_type=full"])
    assert "dropout" not in str(diagnosis.regularisation_remedies(full, metrics))


def test_rows_over_the_cutoff_can_be_dropped_and_the_advice_says_when():
    settings, _ = settings_input.apply_overrides(Settings(), ["max_length=128"])
    over = advice.Situation(settings, rows=1000, recommended_cutoff=512, share_over_cutoff=0.2)
    drop = fields(advice.rule_cutoff(over), "drop_long_rows")
    assert drop and "20% of the conversations (200 rows)" in drop[0].message and drop[0].suggested is True
    dropping, _ = settings_input.apply_overrides(settings, ["drop_long_rows=true"])
    assert not fields(advice.rule_cutoff(dataclasses.replace(over, settings=dropping)), "drop_long_rows")
    assert not fields(advice.rule_cutoff(dataclasses.replace(over, share_over_cutoff=0.03)), "drop_long_rows")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_learning_rate_help_states_the_range_the_rule_checks(method):
    """One source: the field's advice text and the rule both come from config.LEARNING_RATES."""
    from studio.core.config import LEARNING_RATES

    low, high = LEARNING_RATES[method]["range"]
    for text in (config.field_text("learning_rate", "advice"), config.field_text("learning_rate", "advice", "zh")):
        assert f"{low:.0e}".replace("e-0", "e-") in text and f"{high:.0e}".replace("e-0", "e-") in text
    assert advice.rule_learning_rate(situation(f"finetuning_type={method}", f"learning_rate={high}")) == []
    assert advice.rule_learning_rate(situation(f"finetuning_type={method}", f"learning_rate={high * 1.5}"))
    assert advice.rule_learning_rate(situation(f"finetuning_type={method}", f"learning_rate={low}")) == []
    assert advice.rule_learning_rate(situation(f"finetuning_type={method}", f"learning_rate={low / 2}"))


def test_reset_to_recommended_returns_the_fields_own_defaults():
    values = advice.recommended_values(situation())
    defaults = config.flat_values(config.Settings())
    for name in advice.RESET_TO_DEFAULT:
        assert values[name] == defaults[name], name


def test_a_small_set_gets_one_data_size_tip_not_two_that_contradict():
    """Issue 39: "2,000-100,000 rows are typical" beside "enough to teach an identity" on a 91-row identity file."""
    small = [a.message.key for a in advice.rule_data_size(situation(rows=91)) if a.field == "dataset_path"]
    large = [a.message.key for a in advice.rule_data_size(situation(rows=5000)) if a.field == "dataset_path"]
    assert small == ["advice.few_rows"] and large == ["advice.data_range"]
