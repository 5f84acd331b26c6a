"""Issue 56: trackers (report_to), Apple Silicon's device facts, DoRA and rsLoRA. The MCP server is in
tests/test_mcp.py."""

import json

import pytest

from conftest import tiny_settings
from studio.core import settings_input, trackers
from studio.core.config import Settings, TrainingSettings
from studio.core.runs import RunFolder
from studio.core.text import render
from studio.core.trl_args import lora_config_kwargs, sft_config_kwargs
from studio.models import hardware
from studio.models.hardware import HardwareFacts
from studio.plan import form_plan
from studio.training import train

M2 = HardwareFacts(device="mps", device_name="Apple M2", cpu_count=8, total_memory_gb=16.0, free_memory_gb=15.0,
                   mps_bf16=True)
OLD_MAC = HardwareFacts(device="mps", device_name="Apple M1", cpu_count=8, total_memory_gb=12.0,
                        free_memory_gb=11.0, mps_bf16=False)


# ---------------------------------------------------------------- Apple Silicon (the facts given: no Mac here)

@pytest.mark.parametrize("facts, precision", [(M2, "bf16"), (OLD_MAC, "fp32")])
def test_apple_silicon_trains_in_the_precision_its_gpu_has(facts, precision):
    plan = hardware.plan(facts)
    assert plan["device"] == "mps" and plan["precision"] == precision
    assert plan["processes"] == 1 and plan["strategy"] == "single"
    assert "MPS" in render(plan["hardware"], "en") and "MPS" in render(plan["hardware"], "zh")


def test_apple_silicon_refuses_qlora_with_the_reason_and_never_fp16():
    ok, why = hardware.qlora_available(M2)
    assert not ok and "bitsandbytes" in render(why, "en") and "LoRA" in render(why, "zh")
    assert hardware.resolve_precision(OLD_MAC, "bf16")[0] == "fp32"
    assert hardware.choose_devices(M2, TrainingSettings(num_processes=4))["processes"] == 1


def test_apple_silicon_plans_memory_against_its_unified_memory():
    """Checkpointing follows the estimate against the GPU's share of the machine's memory, as on CUDA."""
    assert hardware.plan(M2, estimated_gb=4)["gradient_checkpointing"] is False
    assert hardware.plan(M2, estimated_gb=14)["gradient_checkpointing"] is True
    plan = hardware.plan(M2)
    args = sft_config_kwargs(Settings(), plan)
    assert args["use_cpu"] is False and args["dataloader_pin_memory"] is False and args["bf16"] is True
    summary, lines = form_plan.hardware_lines(Settings(), M2)
    assert "16.0" in render(summary, "en") and any("bitsandbytes" in render(line, "en") for line in lines)


# ---------------------------------------------------------------- DoRA and rsLoRA

def test_dora_and_rslora_reach_the_lora_config_and_are_refused_without_lora():
    settings = tiny_settings("m", "use_dora=true", "use_rslora=true")
    kwargs = lora_config_kwargs(settings)
    assert kwargs["use_dora"] is True and kwargs["use_rslora"] is True
    _, problems = settings_input.settings_from_flat({"finetuning_type": "full", "use_dora": True})
    assert problems and problems[0][0] == "use_dora" and "DoRA" in str(problems[0][1])
    _, problems = settings_input.settings_from_flat({"finetuning_type": "qlora", "use_rslora": True})
    assert problems == []


def test_a_dora_run_trains_its_magnitudes_and_leaves_the_base_alone(tiny_model_dir, tmp_path, captured_model):
    import torch

    from conftest import base_weights

    run = tmp_path / "dora"
    status = train.run_training(tiny_settings(tiny_model_dir, "use_dora=true", "use_rslora=true", "drift_check=false"),
                                run, progress=None)
    assert status["status"] == "finished", status
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["use_dora"] is True and config["use_rslora"] is True
    trained = captured_model["model"]
    magnitudes = {n: p for n, p in trained.named_parameters() if "lora_magnitude_vector" in n}
    assert magnitudes and all(p.requires_grad for p in magnitudes.values())
    assert any(p.abs().sum() > 0 for n, p in trained.named_parameters() if "lora_B" in n)
    original = base_weights(tiny_model_dir)
    for name, tensor in trained.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, original[name.replace(".base_layer", "")]), name
    assert RunFolder(run).metrics() and any("loss" in m for m in RunFolder(run).metrics())


# ---------------------------------------------------------------- trackers

def test_only_installed_trackers_are_offered_and_the_rest_named_with_their_command(monkeypatch):
    monkeypatch.setattr(trackers, "installed", lambda name: name in ("none", "tensorboard"))
    assert trackers.offered() == ["none", "tensorboard"]
    _, problems = settings_input.settings_from_flat({"report_to": "wandb"})
    assert problems and "pip install wandb" in str(problems[0][1])
    assert sft_config_kwargs(Settings(), hardware.plan(M2))["report_to"] == "none"


def test_a_run_reports_its_losses_to_tensorboard_in_its_own_folder(tiny_model_dir, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is in the test extra; install it to run this")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "runs" / "tracked"
    status = train.run_training(tiny_settings(tiny_model_dir, "report_to=tensorboard", "drift_check=false"), run,
                                progress=None)
    assert status["status"] == "finished", status
    events = EventAccumulator(str(run / trackers.TENSORBOARD_DIR))
    events.Reload()
    logged = {tag: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    ours = [m["loss"] for m in RunFolder(run).metrics() if "loss" in m]
    assert logged["train/loss"] == pytest.approx(ours, rel=1e-5)  # the same losses the studio's chart draws
    assert "eval/loss" in logged
    said = trackers.dashboard("tensorboard", run, tmp_path)
    assert "tensorboard --logdir" in render(said, "en") and str(run.parent) in render(said, "zh")


def test_a_dora_plan_never_borrows_a_lora_runs_step_time():
    """The cost line's time comes from a past run of the same model and method; a DoRA step costs unlike a LoRA
    step (bench/dora_cost.py), so a LoRA run's time is not said of a DoRA plan, nor the other way round."""
    from studio.plan import cost

    lora, dora = tiny_settings("m"), tiny_settings("m", "use_dora=true")
    past = [{"status": "finished", "global_step": 10, "train_runtime_s": 20.0, "run_dir": "r", "name": "r"}]
    assert cost.step_time(dora, past, lambda _: lora) is None
    assert cost.step_time(lora, past, lambda _: lora).seconds == pytest.approx(2.0)
    assert cost.probe_key(dora) != cost.probe_key(lora)


def test_dora_is_counted_in_the_memory_estimate_and_said_in_the_advice():
    from studio.models import estimates
    from studio.models.models import ModelShape
    from studio.plan import advice

    shape = ModelShape(134_515_008, 30, 576, 1536, 49_152)  # the starter model (SmolLM2-135M)
    lora = estimates.training_memory_gb(tiny_settings("m"), shape, M2)
    dora = estimates.training_memory_gb(tiny_settings("m", "use_dora=true"), shape, M2)
    assert dora["total"] - lora["total"] == pytest.approx(1.2, abs=0.1)  # measured +1.25 GB (bench/dora_cost.py)
    assert hardware.per_device_gb(dora, "single", 1) > hardware.per_device_gb(lora, "single", 1)
    said = advice.rule_dora(advice.build_situation(tiny_settings("m", "use_dora=true")))
    assert said and "1.5" in render(said[0].message, "en") and "1.5" in render(said[0].message, "zh")
    assert advice.rule_dora(advice.build_situation(tiny_settings("m"))) == []
