from types import SimpleNamespace

from studio.advice import ModelShape, estimate_memory_gb, trainable_parameters

LLAMA_7B = SimpleNamespace(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)


def test_shape_from_config_counts_llama_7b_parameters():
    shape = ModelShape.from_config(LLAMA_7B)
    assert 6.6e9 < shape.parameters < 6.8e9  # Llama-2-7B has 6.74B


def test_full_fine_tuning_costs_about_12_bytes_per_parameter_before_activations():
    shape = ModelShape.from_config(LLAMA_7B)
    parts = estimate_memory_gb(shape, "full", "bf16", batch=1, seq_len=16)
    per_param = (parts["weights"] + parts["optimizer_and_gradients"]) * 1024**3 / shape.parameters
    assert 12 <= per_param <= 16


def test_lora_and_qlora_cost_far_less_than_full():
    shape = ModelShape.from_config(LLAMA_7B)
    full = estimate_memory_gb(shape, "full", "bf16", 1, 512)["total"]
    lora = estimate_memory_gb(shape, "lora", "bf16", 1, 512)["total"]
    qlora = estimate_memory_gb(shape, "qlora", "bf16", 1, 512)["total"]
    assert qlora < lora < full / 3
    assert 0.002 < trainable_parameters(shape, "lora", 16) / shape.parameters < 0.02


def test_activations_grow_with_batch_and_cutoff_and_shrink_with_checkpointing():
    shape = ModelShape.from_config(LLAMA_7B)
    small = estimate_memory_gb(shape, "lora", "bf16", 1, 512)["activations"]
    assert estimate_memory_gb(shape, "lora", "bf16", 4, 512)["activations"] == 4 * small
    assert estimate_memory_gb(shape, "lora", "bf16", 1, 1024)["activations"] == 2 * small
    assert estimate_memory_gb(shape, "lora", "bf16", 1, 512, checkpointing=True)["activations"] < small / 10
