import json
import re
import threading

import pytest
import torch

from studio.core import presets, runs, settings_input
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.models import models
from studio.data import tokenized
from studio.plan import diagnosis
from studio.training import train
from tests.conftest import base_weights, tiny_settings


def test_lora_run_logs_loss_and_changes_only_adapter_weights(tiny_model_dir, tmp_path, captured_model):
    status = train.run_training(tiny_settings(tiny_model_dir), tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert any("eval_loss" in m for m in metrics) and all(m["tokens_per_s"] > 0 for m in metrics if "loss" in m)

    trained = captured_model["model"]
    lora = {n: p for n, p in trained.named_parameters() if "lora_" in n}
    assert lora and all(p.requires_grad for p in lora.values())
    assert any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n), "LoRA B starts at zero and must move"
    original = base_weights(tiny_model_dir)
    for name, tensor in trained.state_dict().items():  # LoRA is injected into this very object
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(tensor, original[key]), f"base weight {key} changed"
    assert (run / "adapter" / "adapter_config.json").exists()


def test_run_folder_holds_settings_plan_and_split_before_the_first_step(tiny_model_dir, tmp_path, monkeypatch):
    seen = {}
    original = train.make_callbacks

    def spy(run, log, stop_event):
        seen["files"] = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file())
        return original(run, log, stop_event)

    monkeypatch.setattr(train, "make_callbacks", spy)
    settings = tiny_settings(tiny_model_dir, "max_steps=1", "test_share=0.1")
    assert train.run_training(settings, tmp_path / "run", progress=None)["status"] == "finished"
    for name in ("preset.json", "plan.json", "status.json", "metrics.jsonl", "log.txt", "data/train.jsonl",
                 "data/validation.jsonl", "data/test.jsonl"):
        assert name in seen["files"], name
    reloaded, _, problems = presets.load_preset(tmp_path / "run" / "preset.json")
    assert not problems and reloaded == settings


def test_full_run_changes_base_weights(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    status = train.run_training(tiny_settings(tiny_model_dir, "finetuning_type=full"), tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model").state_dict()
    original = base_weights(tiny_model_dir)
    changed = [k for k in original if not torch.equal(original[k], tuned[k])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed and "lm_head.weight" in changed


def test_freeze_run_trains_only_the_last_layers(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    settings = tiny_settings(tiny_model_dir, "finetuning_type=freeze", "freeze_trainable_layers=1")
    assert train.run_training(settings, tmp_path / "run", progress=None)["status"] == "finished"
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model").state_dict()
    original = base_weights(tiny_model_dir)
    changed = {k for k in original if not torch.equal(original[k], tuned[k])}
    assert changed and all(k.startswith("model.layers.1.") for k in changed), changed


def test_stop_event_ends_the_run_with_a_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    stop = threading.Event()
    baseline = train.run_checks.verdict_baseline

    def then_press_stop(*args, **kwargs):  # the last step before training: Stop pressed as the first step runs
        result = baseline(*args, **kwargs)
        stop.set()
        return result

    monkeypatch.setattr(train.run_checks, "verdict_baseline", then_press_stop)
    status = train.run_training(tiny_settings(tiny_model_dir, "max_steps=50"), tmp_path / "run", progress=None,
                                stop_event=stop)
    assert status["status"] == "stopped" and status["global_step"] == 1
    assert list((tmp_path / "run" / "checkpoints").glob("checkpoint-1"))


def test_failed_run_reports_instead_of_raising(tmp_path):
    settings, _ = settings_input.apply_overrides(Settings(), [f"model_name_or_path={tmp_path / 'no-such-model'}",
                                                      "max_steps=1"])
    (tmp_path / "no-such-model").mkdir()
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "failed" and "config.json" in status["error"]
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"


def test_bad_data_fails_cleanly(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "only a question"}]}\n')
    status = train.run_training(tiny_settings(tiny_model_dir, f"dataset_path={bad}"), tmp_path / "run", progress=None)
    assert status["status"] == "failed" and "ends on a user turn" in status["error"]


def test_interrupted_run_is_listed_as_interrupted(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345}))
    assert runs.list_runs(tmp_path)[0]["status"] == "interrupted"


def test_weights_dtype_keeps_fp32_masters_for_fp16_full_training():
    assert models.weights_dtype("fp16", "full") == "fp32"
    assert models.weights_dtype("fp16", "lora") == "fp16"
    assert models.weights_dtype("bf16", "full") == "bf16"


def test_overfitting_warning_when_validation_rises_while_train_falls():
    metrics = [{"step": s, "loss": 2.0 - 0.1 * s, "epoch": s / 10} for s in range(1, 11)]
    metrics += [{"step": s, "eval_loss": v} for s, v in ((2, 1.5), (4, 1.4), (6, 1.45), (8, 1.5), (10, 1.6))]
    warning = diagnosis.overfitting_warning(metrics)
    assert warning and "risen 3 evaluations in a row" in warning and "step 4" in warning
    healthy = [m if "eval_loss" not in m else {**m, "eval_loss": 2 - m["step"] / 10} for m in metrics]
    assert diagnosis.overfitting_warning(healthy) is None


def test_overfitting_warning_when_train_loss_collapses_at_an_epoch_boundary():
    metrics = [{"step": 1, "loss": 0.9, "epoch": 0.5}, {"step": 2, "loss": 0.8, "epoch": 0.99},
               {"step": 3, "loss": 0.2, "epoch": 1.2}]
    assert "start of epoch 2" in diagnosis.overfitting_warning(metrics)
    gentle = [{**m, "loss": 0.7} if m["step"] == 3 else m for m in metrics]
    assert diagnosis.overfitting_warning(gentle) is None


def test_resume_reproduces_the_uninterrupted_run(tiny_model_dir, tmp_path):
    """Stop at step 4 and resume: steps 5-8 see the same batches in the same order and log the same losses."""
    from transformers import TrainerCallback

    settings = tiny_settings(tiny_model_dir, "max_steps=8", "save_steps=4", "eval_steps=100",
                             "per_device_train_batch_size=2", "train_sampling_strategy=group_by_length")
    assert train.run_training(settings, tmp_path / "whole", progress=None)["status"] == "finished"

    stop = threading.Event()

    class StopAtFour(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                stop.set()

    original = train.make_callbacks
    train.make_callbacks = lambda run_dir, log, event: original(run_dir, log, event) + [StopAtFour()]
    try:
        assert train.run_training(settings, tmp_path / "split", progress=None, stop_event=stop)["status"] == "stopped"
    finally:
        train.make_callbacks = original
    assert train.run_training(settings, tmp_path / "split", progress=None, resume=True)["status"] == "finished"

    def losses(run):
        rows = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    whole, split = losses("whole"), losses("split")
    assert sorted(split) == list(range(1, 9))
    for step in range(1, 9):
        assert split[step] == pytest.approx(whole[step], rel=1e-4), step


def test_saved_split_is_reused_on_resume(tmp_path):
    (tmp_path / "data").mkdir()
    runs.write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": "a"}])
    runs.write_jsonl(tmp_path / "data" / "validation.jsonl", [{"text": "b"}])
    split = train.saved_split(RunFolder(tmp_path))
    assert split.train == [{"text": "a"}] and split.validation == [{"text": "b"}] and split.test == []
    assert train.saved_split(RunFolder(tmp_path / "nothing")) is None


def test_resume_skips_a_checkpoint_left_half_written(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert RunFolder(tmp_path).last_checkpoint().name == "checkpoint-4"


def test_tokenised_data_is_cached_by_rows_tokenizer_and_template(tiny_tokenizer, tmp_path, monkeypatch):
    from studio.templates import chat_template

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    first = tokenized.encode_split(tiny_tokenizer, rows, assistant_only=True)
    calls = []
    original = chat_template.encode_records
    monkeypatch.setattr(tokenized, "encode_records", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = tokenized.encode_split(tiny_tokenizer, rows, assistant_only=True)
    assert calls == [] and again["input_ids"] == first["input_ids"]
    assert again["assistant_masks"] == first["assistant_masks"]
    tokenized.encode_split(tiny_tokenizer, rows + rows, assistant_only=True)  # other rows: tokenised again
    tokenized.encode_split(tiny_tokenizer, rows, assistant_only=False)  # other masking: tokenised again
    assert calls == [1, 1]
    key = tokenized.tokenized_cache_key(tiny_tokenizer, rows, True)
    monkeypatch.setattr(tiny_tokenizer, "chat_template", tiny_tokenizer.chat_template + "{{ '' }}")
    assert tokenized.tokenized_cache_key(tiny_tokenizer, rows, True) != key  # another template, another entry


def test_split_and_metrics_files_are_written_whole_or_not_at_all(tmp_path):
    """A failure half-way (here: a row that is not JSON) leaves the previous file as it was."""
    path = tmp_path / "train.jsonl"
    runs.write_jsonl(path, [{"a": 1}, {"a": 2}])
    with pytest.raises(TypeError):
        runs.write_jsonl(path, [{"a": 3}, {"a": object()}])
    assert runs.read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_drop_long_rows_and_a_pilot_run_on_the_first_rows(tiny_model_dir, runs_dir):
    """A pilot run trains on the first N rows; rows over the cutoff are left out (and counted), not truncated."""
    settings, problems = settings_input.apply_overrides(tiny_settings(tiny_model_dir), [
        "max_samples=40", "drop_long_rows=true", "max_length=64", "max_steps=2", "validation_share=0.1",
        "replay=off"])  # the split holds the file's rows alone
    assert not problems
    status = train.run_training(settings, runs_dir / "pilot", progress=None)
    assert status["status"] == "finished", status
    split = {name: runs.read_jsonl(runs_dir / "pilot" / "data" / f"{name}.jsonl") for name in ("train", "validation")}
    assert len(split["train"]) + len(split["validation"]) == 40  # the first 40 rows of 191
    log = (runs_dir / "pilot" / "log.txt").read_text()
    dropped = re.search(r"Left out (\d+) of 36 training rows longer than the cutoff \(64 tokens\)", log)
    assert dropped and 0 < int(dropped.group(1)) < 36, log[-2000:]


def test_neftune_noise_reaches_the_embeddings_during_training(tiny_model_dir, tmp_path, monkeypatch):
    """The optional knob, set, changes what the model sees: the same run with NEFTune noise logs a different
    first loss from the run without it (the noise is on the input embeddings from the first step)."""
    from studio.training import train

    losses = {}
    for alpha in ("null", "100"):
        settings = tiny_settings(tiny_model_dir, f"neftune_noise_alpha={alpha}", "max_steps=2", "validation_share=0.0")
        status = train.run_training(settings, tmp_path / alpha, progress=None)
        assert status["status"] == "finished", status
        losses[alpha] = status["first_train_loss"]
    assert losses["null"] != losses["100"], losses


def test_the_best_checkpoint_is_kept_and_a_rising_validation_loss_stops_the_run(tiny_model_dir, tmp_path):
    """Training rows answer 'alpha', the validation rows (the file's end) 'beta' to the same prompts: validation
    loss rises as training goes on. The run stops after `patience` evaluations without a new best, and the adapter
    Chat and Export use is the best checkpoint's, not the last step's."""
    from safetensors.torch import load_file

    rows = [{"messages": [{"role": "user", "content": f"Say the word {i % 4}"},
                          {"role": "assistant", "content": "alpha alpha alpha" if i < 16 else "beta beta beta"}]}
            for i in range(20)]
    data = tmp_path / "conflict.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = tiny_settings(tiny_model_dir, f"dataset_path={data}", "validation_share=0.2", "split_by_order=true",
                             "test_share=0", "max_steps=40", "eval_steps=1", "save_steps=1", "save_total_limit=100",
                             "early_stopping_patience=2",
                             "learning_rate=0.01", "drift_check=false")
    status = train.run_training(settings, tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    evals = [(m["step"], m["eval_loss"]) for m in RunFolder(tmp_path / "run").metrics() if "eval_loss" in m and m["step"]]
    best_step = min(evals, key=lambda e: e[1])[0]
    assert status["global_step"] < 40, "early stopping ended the run"
    threshold = settings.training.early_stopping_threshold
    counted = evals[0]  # the last evaluation that beat the best by at least the threshold: patience counts from it
    for step, loss in evals[1:]:
        counted = (step, loss) if loss < counted[1] - threshold else counted
    assert status["global_step"] == evals[-1][0] and status["global_step"] - counted[0] == 2  # patience 2
    assert status["best_step"] == best_step
    kept = load_file(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    best = load_file(tmp_path / "run" / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in kept)
    assert f"step {best_step}" in (tmp_path / "run" / "log.txt").read_text()


def test_a_run_with_held_out_rows_ends_with_a_verdict(tiny_model_dir, tmp_path):
    status = train.run_training(tiny_settings(tiny_model_dir, "test_share=0.2", "drift_check=false"),
                                tmp_path / "run", progress=None)
    assert status["status"] == "finished", status
    report = RunFolder(tmp_path / "run").verdict()
    assert report["split"] == "test" and report["rows"] > 0 and report["metric"] in ("exact_match", "rouge_l")
    assert 0 <= report["base"] <= 1 and 0 <= report["tuned"] <= 1 and len(report["examples"]) > 0
    assert status["verdict"]["line"]["key"].startswith("verdict.")
    from studio.core.text import Msg, render
    assert "留出数据得分" in render(Msg.from_json(status["verdict"]["line"]), "zh")


def test_the_drift_check_and_the_verdict_take_the_tuned_answers_from_one_pass(tiny_model_dir, tmp_path,
                                                                               monkeypatch):
    """After the last step the general prompts and the held-out prompts are answered in one shared pass (the
    log counts it as one phase); before the first step, where replay generates, one pass answers replay's, the
    drift check's and the held-out prompts, and the rest (reworded questions) come from the base model too. Trained
    in bf16 on a CPU, where Chat answers in fp32, every check answers in fp32 (the base model, then the saved
    adapter on it, loaded as Chat loads it): the held-out answers the verdict reads are the ones Chat gives."""
    from studio.chat import chat, generation
    from studio.core.config import GenerationSettings

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    seen = []
    answer = generation._generate

    def recorded(model, *args):
        weights = {p.dtype for name, p in model.named_parameters() if "lora_" not in name}
        seen.append((weights, {p.dtype for name, p in model.named_parameters() if "lora_" in name}))
        return answer(model, *args)

    monkeypatch.setattr(generation, "_generate", recorded)
    status = train.run_training(tiny_settings(tiny_model_dir, "test_share=0.2", "precision=bf16"), tmp_path / "run",
                                progress=None)
    assert status["status"] == "finished", status
    run = RunFolder(tmp_path / "run")
    assert run.plan()["precision"] == "bf16" and run.plan()["device"] == "cpu"
    assert all(weights == {torch.float32} for weights, _ in seen), seen  # Chat's dtype on a CPU, not training's
    assert seen[0][1] == set() and seen[-1][1] == {torch.float32}, seen  # the base alone; the saved adapter on it
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "Loading the model" in log and "in fp32 for the checks" in log
    report = run.verdict()
    assert report["rows"] > 0 and run.drift()["prompts"] > 0
    asked = {next(m["content"] for m in row["messages"] if m["role"] == "user"): row["messages"][:-1]
             for row in run.split(report["split"])}
    pair = chat.ChatPair.from_run(tmp_path / "run", progress=lambda _: None)
    for example in report["examples"]:  # Chat's own settings: what a user sees without touching any
        shown = pair.answer(asked[example["prompt"]], tuned=True, settings=GenerationSettings()).text
        assert shown.strip().startswith(example["tuned"].strip()), (example, shown)
    assert "General-ability and held-out checks, the tuned model's answers:" in log
    assert "General-ability check, the tuned model's answers:" not in log  # found in the shared pass
    assert "Held-out check, the tuned model's answers:" not in log
    # before the first step, the base model answered replay's, the drift check's and the held-out prompts in one
    # pass (replay had to generate anyway): no pass of their own
    assert "The base model's answers for replay, the general-ability check and the held-out check: 126 of 126" in log
    assert "General-ability check, the base model's answers:" not in log
    assert "Replay: the base model answers" not in log


def test_without_replay_to_generate_each_check_answers_before_training_on_its_own(tiny_model_dir, tmp_path,
                                                                                  monkeypatch):
    """Replay off (or its answers cached): nothing to share a pass with; the drift check and the held-out check
    answer with the fresh adapter switched off, each counted in the log as its own phase."""
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    status = train.run_training(tiny_settings(tiny_model_dir, "test_share=0.2", "replay=off"), tmp_path / "run",
                                progress=None)
    assert status["status"] == "finished", status
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "General-ability check, the base model's answers: 60 of 60" in log
    assert "The base model's answers for replay" not in log
    assert RunFolder(tmp_path / "run").drift()["prompts"] == 60


def test_stop_during_the_shared_pass_after_training_keeps_the_run_and_skips_both_checks(tiny_model_dir, tmp_path,
                                                                                         monkeypatch):
    """Stop pressed as the tuned model answers for both checks: the pass ends, each check says it was left out, and
    the trained adapter stays saved."""
    import threading

    from studio.training import run_checks

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    stop = threading.Event()
    shared = run_checks.tuned_answers

    def pressed_now(*args):
        stop.set()
        return shared(*args)

    monkeypatch.setattr(run_checks, "tuned_answers", pressed_now)
    status = train.run_training(tiny_settings(tiny_model_dir, "test_share=0.2"), tmp_path / "run", progress=None,
                                stop_event=stop)
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "Drift check skipped: the run was stopped" in log and "Held-out check skipped: the run was stopped" in log
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists() and "Traceback" not in log
    assert status["status"] in ("stopped", "finished"), status


def test_launch_train_plans_what_the_preset_leaves_open(tiny_model_dir, tmp_path, capsys):
    """A preset that sets only the model, the data and a learning rate: the plan sizes the rest and says so; the
    learning rate stays the preset's."""
    import launch

    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"studio_preset": 1, "settings": {
        "model": {"model_name_or_path": str(tiny_model_dir)},
        "training": {"learning_rate": 0.01, "max_length": 128, "precision": "fp32", "drift_check": False}}}))
    code = launch.main(["train", "--preset", str(preset), "--set", "max_samples=40", "--set", "max_steps=3",
                        "--output-dir", str(tmp_path / "run")])
    assert code == 0
    saved = RunFolder(tmp_path / "run").settings()
    assert saved.training.learning_rate == 0.01  # the preset's own value
    # the plan's, for 40 identity rows (32 trained + as many replayed, since identity data replays half: 16 steps
    # an epoch, so 4 epochs for 60 updates)
    assert saved.data.validation_share == 0.2 and saved.training.num_train_epochs == 4.0
    assert saved.training.early_stopping_patience == 3 and saved.data.replay_share == 0.5
    assert "Plan: num_train_epochs = 4.0" in capsys.readouterr().out
