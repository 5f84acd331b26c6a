"""What repeats a run without the studio: the headless commands, a TRL config with the run's own split for the
stage's command (`trl sft`, `trl dpo`, `trl kto`: TRL's CLI), and `accelerate launch` configs for N GPUs (DDP, DeepSpeed ZeRO-2 / ZeRO-3, FSDP)."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import yaml

from studio.core.presets import parse_preset
from studio.core.runs import RunFolder, write_file
from studio.core.stages import DEFAULT_STAGE, EXAMPLES, stage_of
from studio.core.text import Msg, render, tr
from studio.core.trl_args import lora_config_kwargs, sft_config_kwargs
from studio.models import hardware
from studio.models.models import weights_dtype
from studio.export.export import (ExportError, ExportResult, Progress, base_model_path, commit_folder,
                                  default_export_dir, default_gguf_name, export_record, quiet, run_preset,
                                  staged_folder)
from .preference_train import SPLIT_NAMES, config_kwargs


def headless_commands(run_dir: str | Path, language: str = "en") -> str:
    run_dir = Path(run_dir)
    run = shlex.quote(str(run_dir))
    preset = shlex.quote(str(RunFolder(run_dir).preset_file))
    out = default_export_dir(run_dir)

    def target(name: str) -> str:
        return shlex.quote(str(out / name))

    return "\n".join([
        tr("cmd.repeat", language),
        f"python launch.py train --preset {preset}",
        tr("cmd.compare", language),
        f"python launch.py chat {run} --prompt {shlex.quote(tr('chat.default_prompt', language))}",
        tr("cmd.export", language),
        f"python launch.py export {run} --merged {target('merged')}",
        f"python launch.py export {run} --adapter {target('adapter')}",
        f"python launch.py export {run} --gguf {target(default_gguf_name(run_dir, 'Q8_0'))} --gguf-type Q8_0",
        f"python launch.py export {run} --trl-config {target('trl')}",
        f"python launch.py export {run} --accelerate 2 --strategy zero2",
    ])


# ---------------------------------------------------------------- TRL's own CLI

def trl_records(rows: list[dict], assistant_only: bool) -> list[dict]:
    """The run's rows in a form `trl sft` trains the way the studio did. The studio masks prompts with its own
    answer masks (any chat template); TRL does that for prompt/completion rows, so single-answer conversations
    become prompt + completion. Rows that do not end in an answer stay whole conversations."""
    if not assistant_only or not all("messages" in r and r["messages"][-1]["role"] == "assistant" for r in rows):
        return rows
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:],
             **({"tools": r["tools"]} if r.get("tools") else {})} for r in rows]


def trl_config(run_dir: str | Path, data_dir: Path, has_validation: bool) -> dict:
    """Arguments for `trl <stage> --config <stage>.yaml`: TRL's ScriptArguments, the stage's config (SFTConfig,
    DPOConfig, KTOConfig) and ModelConfig fields."""
    run = RunFolder(run_dir)
    settings, _, problems = parse_preset(run_preset(run_dir), str(run.preset_file))
    if problems:
        raise ExportError(Msg("list", items=[Msg("problem", where=w, problem=m) for w, m in problems]))
    method = settings.method
    if method.finetuning_type == "freeze":
        raise ExportError(Msg("export.freeze_trl"))
    plan = run.plan() or hardware.plan(hardware.detect(), settings.training)
    sft = stage_kwargs(settings, plan, has_validation)
    sft.pop("use_cpu", None)  # let TRL pick the device where the config is used
    config = {
        "model_name_or_path": base_model_path(run_dir),
        "dtype": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[
            weights_dtype(plan["precision"], method.finetuning_type)],  # how the studio loaded the weights
        "dataset_name": str(data_dir.resolve()), "dataset_train_split": "train",
        "dataset_test_split": "validation", "output_dir": str((data_dir.parent / "output").resolve()),
        **sft, "eval_strategy": sft["eval_strategy"] if has_validation else "no",
    }
    if not has_validation:
        config.update(eval_on_start=False, load_best_model_at_end=False)
    if method.finetuning_type in ("lora", "qlora"):
        lora = lora_config_kwargs(settings)
        config.update(use_peft=True, lora_r=lora["r"], lora_alpha=lora["lora_alpha"],
                      lora_dropout=lora["lora_dropout"], lora_target_modules=lora["target_modules"])
    if method.finetuning_type == "qlora":
        config.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    return config


def stage_kwargs(settings, plan: dict, has_validation: bool) -> dict:
    """The stage's config arguments, as its run passed them: SFT's, or a preference stage's (only the fields its
    TRL config class knows, as preference_train.trainer_config keeps)."""
    stage = settings.stage
    if stage.data == EXAMPLES:
        return sft_config_kwargs(settings, plan)
    config_class, _ = stage.classes()
    return {k: v for k, v in config_kwargs(settings, plan, has_validation).items()
            if k in config_class.__dataclass_fields__}


def trl_split(run_dir: Path, stage, name: str, assistant_only: bool) -> list[dict]:
    """The rows the run trained on, as TRL's command for its stage reads them."""
    run = RunFolder(run_dir)
    if stage.data == EXAMPLES:
        rows = run.split(name)
        return trl_records(rows, assistant_only) if rows else []
    return run.split(SPLIT_NAMES[name]) if run.split_file(SPLIT_NAMES[name]).exists() else []


def export_trl_config(run_dir: str | Path, out: str | Path, progress: Progress = quiet) -> ExportResult:
    """A folder with `<stage>.yaml` and the run's own split, so `trl <stage> --config <stage>.yaml` repeats the
    run (refused, with the reason, for a stage TRL's command line does not have)."""
    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    settings = run_preset(run_dir)["settings"]
    stage = stage_of(settings.get("method", {}).get("stage", DEFAULT_STAGE))
    if stage.trl_command is None:  # said instead of a config no TRL command reads
        raise ExportError(Msg(stage.trl_refusal, stage=stage.label))
    name = f"{stage.trl_command}.yaml"
    with staged_folder(out) as tmp:
        assistant_only = settings["training"].get("assistant_only_loss", True)
        (tmp / "data").mkdir()
        for split in ("train", "validation"):
            if rows := trl_split(run_dir, stage, split, assistant_only):
                with open(tmp / "data" / f"{split}.jsonl", "w", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        config = trl_config(run_dir, out / "data", (tmp / "data" / "validation.jsonl").exists())
        header = (f"# TRL's own CLI, same settings and data split as studio run {run_dir.name}.\n"
                  f"#   trl {stage.trl_command} --config {out / name}\n"
                  "# The studio picked precision and gradient checkpointing for the machine the run was on\n"
                  "# (bf16 / fp16 / gradient_checkpointing below); change them for another machine.\n")
        if start := settings.get("method", {}).get("adapter_name_or_path", "").strip():
            header += (f"# This run trained the adapter of {start} further. TRL's command starts from\n"
                       "# model_name_or_path: export that run as a merged model and put its folder there.\n")
        (tmp / name).write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                                encoding="utf-8")
        commit_folder(tmp, out, export_record("trl-config", run_dir))
    progress(1.0, Msg("export.progress_trl_done"))
    return ExportResult("trl-config", str(out / name), time.perf_counter() - started,
                        Msg("export.check_trl", command=stage.trl_command, path=str(out / name)), [name, "data/"])


# ---------------------------------------------------------------- accelerate: N GPUs, ZeRO / FSDP

STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")
MAX_GPUS_PER_MACHINE = 64  # the largest single nodes have 8-16; the bound keeps one request's work small
MAX_MACHINES = 1024  # one launch command is written per machine


def counts_problem(num_gpus, num_machines) -> Msg | None:
    """Whole numbers within the bounds, checked before anything is built or written."""
    for value, limit in ((num_gpus, MAX_GPUS_PER_MACHINE), (num_machines, MAX_MACHINES)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or not 1 <= value <= limit \
                or value != int(value):
            return Msg("export.bad_counts", gpus=MAX_GPUS_PER_MACHINE, machines=MAX_MACHINES)
    return None


def accelerate_config(run_dir: str | Path, num_gpus: int, strategy: str = "zero2", num_machines: int = 1,
                      main_process_ip: str = "MAIN_NODE_IP") -> dict:
    """An `accelerate launch` config for `num_gpus` GPUs per machine with plain DDP, DeepSpeed ZeRO-2 / ZeRO-3
    or FSDP; DeepSpeed and FSDP do the distribution, the studio only writes their settings."""
    if strategy not in STRATEGIES:
        raise ExportError(Msg("export.bad_strategy", choices=", ".join(STRATEGIES)))
    if problem := counts_problem(num_gpus, num_machines):
        raise ExportError(problem)
    settings = run_preset(run_dir)["settings"]
    t, method = settings["training"], settings["method"]["finetuning_type"]
    if method == "qlora" and strategy in ("zero3", "fsdp"):
        raise ExportError(Msg("export.qlora_sharded"))
    return launch_config(t["gradient_accumulation_steps"], t["max_grad_norm"], _gpu_precision(run_dir, t["precision"]),
                         num_gpus * num_machines, strategy, num_machines, main_process_ip)


def launch_config(accumulation: int, max_grad_norm: float, precision: str, processes: int, strategy: str,
                  num_machines: int = 1, main_process_ip: str = "MAIN_NODE_IP") -> dict:
    """accelerate's settings for `processes` GPUs in all: the Export tab's file, and the Train tab's own
    multi-GPU runs (studio/training/launcher.py)."""
    config = {
        "compute_environment": "LOCAL_MACHINE", "debug": False,
        "distributed_type": {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}[strategy],
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}.get(precision),
        "num_machines": num_machines, "num_processes": processes,
        "machine_rank": 0, "main_training_function": "main", "rdzv_backend": "static", "same_network": True,
        "use_cpu": False, "downcast_bf16": "no",
    }
    if num_machines > 1:
        config.update(main_process_ip=main_process_ip, main_process_port=29500)
    if strategy.startswith("zero"):
        stage = int(strategy[-1])
        config["deepspeed_config"] = {
            "zero_stage": stage, "gradient_accumulation_steps": accumulation,
            "gradient_clipping": max_grad_norm, "offload_optimizer_device": "none",
            "offload_param_device": "none", "zero3_init_flag": stage == 3, "zero3_save_16bit_model": stage == 3,
        }
    if strategy == "fsdp":
        config["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_activation_checkpointing": False,
        }
    return config


def _gpu_precision(run_dir: Path, precision: str) -> str:
    """'auto' follows what the run chose if it ran on a GPU (fp16 on a V100 / T4, bf16 on Ampere or newer);
    a run made on a CPU says nothing about the GPUs, so bf16, with a comment in the YAML to change it."""
    if precision != "auto":
        return precision
    plan = RunFolder(run_dir).plan() or {}
    return plan["precision"] if plan.get("device") == "cuda" and plan.get("precision") in ("bf16", "fp16") else "bf16"


def accelerate_files(run_dir: str | Path, num_gpus: int, strategy: str = "zero2", num_machines: int = 1,
                     out_dir: str | Path | None = None, language: str = "en") -> tuple[str, str]:
    """(YAML text, launch commands); the YAML is written to out_dir (default: the run's export/ folder)."""
    run_dir = Path(run_dir)
    config = accelerate_config(run_dir, num_gpus, strategy, num_machines)
    name = f"accelerate-{strategy}.yaml"  # one per strategy, rewritten: repeated calls add no files
    path = Path(out_dir or default_export_dir(run_dir)) / name
    text = (f"# accelerate config: {num_gpus} GPU(s) x {num_machines} machine(s), strategy {strategy}\n"
            + ("# mixed_precision bf16 needs Ampere or newer (compute capability 8.0+); on a V100 or T4 use fp16\n"
               if config["mixed_precision"] == "bf16" else "")
            + yaml.safe_dump(config, sort_keys=False))
    preset = shlex.quote(str(RunFolder(run_dir).preset_file))
    target = shlex.quote(str(run_dir.parent / f"{run_dir.name}-{num_gpus * num_machines}gpu"))
    needs = {"zero2": "pip install deepspeed", "zero3": "pip install deepspeed"}.get(strategy)
    lines = [Msg("cmd.where", needs=Msg("cmd.needs", package=needs) if needs else "")]
    for rank in range(num_machines):
        rank_flag = f" --machine_rank {rank}" if num_machines > 1 else ""
        lines.append(f"accelerate launch --config_file {shlex.quote(str(path))}{rank_flag} launch.py train "
                     f"--preset {preset} --output-dir {target}")
    lines.append(Msg("cmd.torchrun", command=f"torchrun --nproc_per_node {num_gpus} launch.py train --preset {preset} "
                                              f"--output-dir {target}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, text)
    return text, "\n".join(render(line, language) for line in lines)


