"""Exports of a finished run: merged model, adapter, GGUF, preset, TRL CLI config, accelerate config; and the same
preset trained by two processes under torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from studio.core import config, presets, settings_input
from studio.core.runs import RunFolder
from studio.core.text import render
from studio.export import export, gguf_file
from studio.training import repeat, train
from tests.conftest import tiny_settings

ROOT = Path(__file__).resolve().parent.parent


def prompt_ids(tokenizer):
    from studio.templates.chat_template import generation_prompt

    text = generation_prompt(tokenizer, [{"role": "user", "content": "Who are you?"}])
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def base_plus_adapter(tiny_model_dir, run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(run / "adapter")).eval()


def test_merged_model_loads_with_plain_transformers_and_answers_like_base_plus_adapter(lora_run, tiny_model_dir,
                                                                                       tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export.export_merged(lora_run, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert not hasattr(merged, "peft_config") and "model.safetensors" in result.files
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    assert (tmp_path / "merged" / "generation_config.json").exists()
    reference = base_plus_adapter(tiny_model_dir, lora_run)
    ids = prompt_ids(tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reference(ids).logits, atol=1e-5, rtol=1e-4)
    assert export.check_answer(merged, tokenizer)[0] == export.check_answer(reference, tokenizer)[0]
    assert "reloaded with AutoModelForCausalLM" in result.check
    card = (tmp_path / "merged" / "README.md").read_text()
    status = json.loads((lora_run / "status.json").read_text())
    for expected in (str(tiny_model_dir), "172 train / 19 validation / 0 test", "LoRA r=16",
                     f"{status['final_train_loss']:.4f}", "library_name: transformers"):
        assert expected in card


def test_adapter_export_loads_with_peft_and_holds_the_trained_weights(lora_run, tiny_model_dir, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    result = export.export_adapter(lora_run, tmp_path / "adapter")
    assert "training_args.bin" not in result.files and "README.md" in result.files
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path / "adapter"))
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    trained = load_file(lora_run / "adapter" / "adapter_model.safetensors")
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)
    assert any(n for n, p in model.named_parameters() if "lora_B" in n and p.abs().sum() > 0)
    assert "library_name: peft" in (tmp_path / "adapter" / "README.md").read_text()


def test_gguf_f16_reads_back_with_the_merged_weights_tokenizer_and_greedy_answer(lora_run, tmp_path):
    merged, tokenizer = export.load_merged(lora_run)
    result = export.export_gguf(lora_run, tmp_path / "model-F16.gguf", "F16")
    reloaded, reloaded_tokenizer = gguf_file.load_gguf(tmp_path / "model-F16.gguf")
    # F16 must reproduce the merged weights rounded to fp16 exactly; a wrong rotary reordering of q/k would not.
    expected = {k: v.half().float() for k, v in merged.state_dict().items()}
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    text = "Hello Lumen, 你好 <|im_start|>user\nhi<|im_end|>"
    assert reloaded_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded_tokenizer.chat_template == tokenizer.chat_template
    assert "answer (no sampling) is identical" in result.check
    # the Chinese sentence reads as one: "...的回答（不随机采样）与合并模型的回答完全相同（N 个 token）：" then the answer
    zh = render(result.check, "zh")
    assert "（不随机采样）与合并模型的回答完全相同" in zh and "相同于" not in zh and "\n\n> " in zh
    assert export.check_answer(reloaded, tokenizer)[0] == export.check_answer(merged.half().float(), tokenizer)[0]


def test_gguf_q8_0_quantises_matrices_and_stays_close(tiny_tokenizer, tmp_path):
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)  # rows of 64 values: Q8_0 works in blocks of 32, which the session's tiny model lacks
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         tie_word_embeddings=True)).eval()
    gguf_file.write_gguf(model, tiny_tokenizer, tmp_path / "q8.gguf", "Q8_0")
    kinds = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "q8.gguf").tensors}
    assert kinds["blk.0.attn_q.weight"] == kinds["token_embd.weight"] == "Q8_0"
    assert kinds["blk.0.attn_norm.weight"] == "F32" and "output.weight" not in kinds  # tied: llama.cpp reuses it
    reloaded, _ = gguf_file.load_gguf(tmp_path / "q8.gguf")
    for name, tensor in model.state_dict().items():
        error = (reloaded.state_dict()[name] - tensor).abs().max() / tensor.abs().max()
        assert error < 0.01, (name, float(error))


def test_gguf_refuses_architectures_it_cannot_write(tiny_tokenizer, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=len(tiny_tokenizer)))
    with pytest.raises(gguf_file.GGUFError, match="supports LlamaForCausalLM") as refused:
        gguf_file.write_gguf(model, tiny_tokenizer, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    assert render(refused.value.args[0], "zh").startswith("GGUF 导出支持 LlamaForCausalLM")  # a message, in both languages


@pytest.mark.slow
def test_gguf_of_the_real_starter_model_answers_the_same():
    from studio.models import models

    path = str(models.ensure_starter_model(progress=lambda _: None))
    model, tokenizer = models.load_model(path).eval(), models.load_tokenizer(path)
    target = Path(path).parent.parent / "test-exports" / "starter-F16.gguf"
    target.parent.mkdir(exist_ok=True)
    try:
        gguf_file.write_gguf(model, tokenizer, target, "F16", "SmolLM2-135M-Instruct")
        reloaded, reloaded_tokenizer = gguf_file.load_gguf(target)
        expected, text = export.check_answer(model.half().float(), tokenizer, max_new_tokens=32)
        assert export.check_answer(reloaded, reloaded_tokenizer, max_new_tokens=32) == (expected, text)
        assert len(expected) == 32 and text
    finally:
        target.unlink(missing_ok=True)


def test_exported_preset_reproduces_the_run_settings(lora_run, tiny_model_dir, tmp_path):
    export.export_preset(lora_run, tmp_path / "p.json")
    settings, _, problems = presets.load_preset(tmp_path / "p.json")
    assert not problems
    assert settings == tiny_settings(tiny_model_dir, "learning_rate=0.009")


def test_trl_cli_config_is_accepted_by_trls_own_parser(lora_run, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from trl.scripts.sft import make_parser

    result = repeat.export_trl_config(lora_run, tmp_path / "trl")
    script, training, model, _ = make_parser().parse_args_and_config(args=["--config", result.path])
    settings = tiny_settings(tiny_model_dir, "learning_rate=0.009")
    assert training.learning_rate == 0.009 and training.max_steps == 4 and training.max_length == 128
    assert training.train_sampling_strategy == "group_by_length" and training.eval_strategy == "steps"
    assert model.model_name_or_path == str(tiny_model_dir) and model.use_peft
    assert (model.lora_r, model.lora_alpha) == (settings.method.r, settings.method.lora_alpha)
    data = load_dataset(script.dataset_name)
    # The split the run trained on: 172 of the demo's rows and, with replay on ('auto' here), 43 general answers.
    trained = RunFolder(lora_run).split_rows("train")
    assert trained == 172 + 43
    assert data[script.dataset_train_split].num_rows == trained and data[script.dataset_test_split].num_rows == 19
    # Single-answer conversations become prompt + completion, so TRL trains on the answers only, as the studio did.
    row = data["train"][0]
    assert row["completion"][0]["role"] == "assistant" and row["prompt"][-1]["role"] == "user"


@pytest.mark.slow
def test_trl_cli_trains_from_the_exported_config(lora_run, tmp_path):
    result = repeat.export_trl_config(lora_run, tmp_path / "trl")
    trl = Path(sys.executable).with_name("trl")
    done = subprocess.run([str(trl), "sft", "--config", result.path], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "trl" / "output" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("strategy,kind", [("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"),
                                           ("fsdp", "FSDP")])
def test_accelerate_config_loads_in_accelerate(lora_run, tmp_path, strategy, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    text, commands = repeat.accelerate_files(lora_run, 4, strategy, num_machines=2, out_dir=tmp_path)
    path = tmp_path / f"accelerate-{strategy}.yaml"
    loaded = load_config_from_file(str(path))
    assert loaded.distributed_type.value == kind and loaded.num_processes == 8 and loaded.num_machines == 2
    if strategy.startswith("zero"):
        assert loaded.deepspeed_config["zero_stage"] == int(strategy[-1])
    assert commands.count("accelerate launch") == 2 and "--machine_rank 1" in commands
    assert f"--config_file {path}" in commands and "launch.py train --preset" in commands


def test_accelerate_refuses_sharded_qlora(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    presets.save_preset(tiny_settings(tiny_model_dir, "finetuning_type=qlora"), run / "preset.json")
    with pytest.raises(export.ExportError, match="QLoRA"):
        repeat.accelerate_config(run, 2, "zero3")
    assert repeat.accelerate_config(run, 2, "zero2")["deepspeed_config"]["zero_stage"] == 2


def test_exports_refuse_foreign_folders_and_runs_without_weights(lora_run, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(export.ExportError, match="not written by the studio"):
        export.export_adapter(lora_run, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    (empty_run / "preset.json").write_text((lora_run / "preset.json").read_text())
    with pytest.raises(export.ExportError, match="no trained weights"):
        export.export_merged(empty_run, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out-*"))


def test_export_again_replaces_an_earlier_export(lora_run, tmp_path):
    export.export_adapter(lora_run, tmp_path / "adapter")
    export.export_adapter(lora_run, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_cli_export_writes_what_it_is_asked_for(lora_run, tmp_path, capsys):
    import launch

    code = launch.main(["export", str(lora_run), "--adapter", str(tmp_path / "a"), "--preset",
                        str(tmp_path / "p.json"), "--accelerate", "2", "--strategy", "fsdp"])
    out = capsys.readouterr().out
    assert code == 0 and (tmp_path / "a" / "adapter_config.json").exists() and (tmp_path / "p.json").exists()
    assert "distributed_type: FSDP" in out and "[100%] adapter saved" in out
    assert launch.main(["export", str(lora_run)]) == 2


def cpu_accelerate_config(run_dir, path):
    """The Export tab's 2-GPU FSDP config with `use_cpu` on. accelerate then starts two processes with torchrun,
    which train as plain CPU data-parallel (gloo): FSDP and ZeRO themselves are applied only on GPUs. (A MULTI_CPU
    config would instead need mpirun for more than one process.)"""
    import yaml

    settings = repeat.accelerate_config(run_dir, 2, "fsdp")
    path.write_text(yaml.safe_dump({**settings, "use_cpu": True}))
    return path


@pytest.mark.slow  # two training processes per launcher
@pytest.mark.parametrize("launcher", ["accelerate", "the preset's num_processes"])
def test_two_processes_train_one_run_with_one_adapter(tiny_model_dir, lora_run, tmp_path, launcher):
    """The preset runs unchanged under accelerate launch and under torchrun, which the studio starts itself for a
    preset that asks for two processes (studio/training/launcher.py runs `torchrun --nproc_per_node 2 launch.py train`, as
    the README's command does): two CPU processes (gloo) share the data and write one run."""
    preset = tmp_path / "tiny.json"
    asked = ["num_processes=2"] if launcher.startswith("the preset") else []
    presets.save_preset(tiny_settings(tiny_model_dir, *asked), preset)
    env = {**os.environ, "STUDIO_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    if asked:
        command = [sys.executable]
    else:
        command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file",
                   str(cpu_accelerate_config(lora_run, tmp_path / "accelerate.yaml"))]
    done = subprocess.run(command + [str(ROOT / "launch.py"), "train", "--preset", str(preset)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs  # both processes agreed on one folder
    status = json.loads((runs[0] / "status.json").read_text())
    assert status["status"] == "finished" and status["processes"] == 2 and status["global_step"] == 4
    assert (runs[0] / "adapter" / "adapter_model.safetensors").exists()
    steps = [json.loads(line)["step"] for line in (runs[0] / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4]  # logged once, by the main process
    # Two processes x batch 4 per step: an epoch of 215 rows (172 + 43 replayed) takes 26.9 steps, not 53.8.
    assert RunFolder(runs[0]).split_rows("train") == 215
    epochs = [json.loads(line)["epoch"] for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert max(epochs) == pytest.approx(4 / 26.875, abs=0.01)
    assert done.stdout.count("Run folder:") == 1 and "2 processes, distributed as MULTI_CPU" in done.stdout
    # Each CPU process holds the model whole (accelerate runs an FSDP config as data-parallel there): the main one
    # measures the drift and the held-out verdict.
    assert status["drift"]["prompts"] > 0 and status["verdict"]["rows"] > 0


def test_push_to_hub_reports_offline_plainly_and_uploads_when_reachable(lora_run, tmp_path, monkeypatch):
    import huggingface_hub

    export.export_adapter(lora_run, tmp_path / "adapter")

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", offline)
    with pytest.raises(export.ExportError, match="cannot reach the Hugging Face Hub.*stays in"):
        export.push_to_hub(tmp_path / "adapter", "me/lumen", "hf_token")
    uploaded = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: uploaded.update(kw))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, **kw: uploaded.update(kw) or type("Commit", (), {"oid": "abcdef123456"})())
    message = export.push_to_hub(tmp_path / "adapter", "me/lumen", "hf_token", private=True)
    assert message.startswith("Pushed adapter to https://huggingface.co/me/lumen (abcdef12)")
    assert uploaded["private"] is True and uploaded["folder_path"] == str(tmp_path / "adapter")
    with pytest.raises(export.ExportError, match="not an export yet"):
        export.push_to_hub(lora_run, "me/lumen")


def test_full_run_exports_its_own_weights_and_has_no_adapter(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    run = tmp_path / "full"
    status = train.run_training(tiny_settings(tiny_model_dir, "finetuning_type=full", "max_steps=2"), run, progress=None)
    assert status["status"] == "finished", status
    with pytest.raises(export.ExportError, match="no adapter"):
        export.export_adapter(run, tmp_path / "adapter")
    export.export_merged(run, tmp_path / "merged")
    saved, trained = load_file(tmp_path / "merged" / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    assert saved.keys() == trained.keys() and all(torch.equal(saved[k], trained[k]) for k in saved)
    assert "method: full" in (tmp_path / "merged" / "README.md").read_text()


def test_merged_folder_and_gguf_together_merge_once(lora_run, tmp_path, monkeypatch):
    calls, original = [], export.load_merged
    monkeypatch.setattr(export, "load_merged", lambda run_dir: calls.append(run_dir) or original(run_dir))
    results, problems = export.export_selected(lora_run, tmp_path, adapter=False, merged=True, gguf=True,
                                               gguf_type="F16")
    assert not problems and [r.kind for r in results] == ["gguf", "merged"] and len(calls) == 1
    assert "answer (no sampling) is identical" in results[0].check
    assert (tmp_path / export.default_gguf_name(lora_run, "F16")).exists()
    assert str(tmp_path / "merged") in results[1].path


def test_accelerate_precision_follows_the_gpu_the_run_chose(tiny_model_dir, tmp_path):
    """'auto' is bf16 only where the GPU has it natively: a run planned on a T4 (fp16) keeps fp16 on N GPUs."""
    run = tmp_path / "run"
    run.mkdir()
    presets.save_preset(tiny_settings(tiny_model_dir, "precision=auto"), run / "preset.json")
    assert repeat.accelerate_config(run, 2, "ddp")["mixed_precision"] == "bf16"  # no GPU plan: bf16, commented
    assert "on a V100 or T4 use fp16" in repeat.accelerate_files(run, 2, "ddp", out_dir=tmp_path)[0]
    (run / "plan.json").write_text(json.dumps({"device": "cuda", "precision": "fp16"}))
    assert repeat.accelerate_config(run, 2, "ddp")["mixed_precision"] == "fp16"
    assert "use fp16" not in repeat.accelerate_files(run, 2, "ddp", out_dir=tmp_path)[0]


def test_the_model_card_shows_the_held_out_scores_the_chat_tab_saved(tmp_path):
    """evaluate.evaluate_run writes 'loss', 'rouge_l', ...; the card used to look for 'answer_loss' and showed none."""
    from studio.export.model_card import model_card
    from studio.core.runs import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.write_preset(presets.preset_dict(config.Settings()))
    run.write_status({"status": "finished", "global_step": 7, "final_train_loss": 1.25})
    run.write_evaluation({"base": {"loss": 2.0, "rouge_l": 0.1, "bleu": 3.0},
                          "tuned": {"loss": 1.5, "rouge_l": 0.4, "bleu": 9.0}})
    card = model_card(run.path, "adapter")
    assert "| held-out loss (base -> tuned) | 2.0000 -> 1.5000 |" in card
    assert "| held-out rouge_l (base -> tuned) | 0.1000 -> 0.4000 |" in card
    assert "| steps | 7 |" in card and "| final train loss | 1.2500 |" in card
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card
    # an upload is named by its file, never by the hash-named folder it sat in on this machine (issue 57)
    upload = str(tmp_path / "uploads" / ("ab" * 32) / "my-data.json")
    settings, _ = settings_input.apply_overrides(config.Settings(), [f"dataset_path={upload}"])
    run.write_preset(presets.preset_dict(settings))
    card = model_card(run.path, "adapter")
    assert "- source: `my-data.json`" in card and "abab" not in card


def test_exports_are_offered_for_download_and_an_oversized_one_is_named_where_it_lies(tmp_path, monkeypatch):
    """Issue 39: a finished export had a server path but no download link."""
    import zipfile

    from studio.core import paths

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    folder = tmp_path / "adapter"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "sub" / "w.bin").write_bytes(b"x" * 100)
    single = tmp_path / "run.Modelfile"
    single.write_text("FROM ./run.gguf\n")
    copies, kept = paths.offer_downloads([folder, single])
    assert [Path(c).name for c in copies] == ["adapter.zip", "run.Modelfile"] and kept == []
    assert sorted(zipfile.ZipFile(copies[0]).namelist()) == ["adapter/adapter_config.json", "adapter/sub/w.bin"]
    monkeypatch.setattr(paths, "MAX_OFFERED_BYTES", 50)
    copies, kept = paths.offer_downloads([folder])
    assert copies == [] and kept[0].key == "export.too_large_to_offer" and kept[0].fields["path"] == str(folder)
