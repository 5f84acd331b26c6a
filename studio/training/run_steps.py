"""The steps every training stage's run shares (studio/core/stages.py): the run's log, the metrics meter and the Stop
callback, the hardware plan, the preset written before the first step, resuming from the last checkpoint, the
trainer made quiet and described, the result saved, and the figures kept in status.json; and the reading of a
failure. Below every stage: train.py (example data) and preference_train.py (pairs, labelled answers) build on it.
Heavy libraries are imported inside the functions that need them."""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from studio.core.config import Settings
from studio.core.presets import preset_dict
from studio.core.runs import RunFolder, studio_home
from studio.core.stages import ALL_LOGS
from studio.core.text import Msg, on_off
from studio.core.trackers import TENSORBOARD_DIR, TRACKER_PROJECT
from studio.core.trl_args import to_bnb_config
from studio.models import hardware, models
from studio.models.estimates import training_memory_gb
from studio.models.models import ModelSourceError
from .distributed import any_process, is_main_process, world_size

Progress = Callable[[str], None]
NO_SIGNAL_EVERY = 10  # GRPO steps between two "every answer got the same reward" lines


class RunLog:
    """Progress lines to the console (or UI) and to the run's log.txt (English, with tracebacks, for reading and
    sharing), and each line also as a message in events.jsonl, so the Train tab shows it in the reader's language."""

    def __init__(self, run: RunFolder, echo: Progress | None = print):
        self.path, self.events, self.echo = run.log_file, run.events_file, echo

    def __call__(self, line: str) -> None:
        if not is_main_process():
            return
        stamp = f"{datetime.now():%H:%M:%S}"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"[{stamp}] {line}\n")
        event = {"time": stamp, "text": str(line), **(line.to_json() if isinstance(line, Msg) else {})}
        with open(self.events, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")
        if self.echo:
            self.echo(line)


def make_callbacks(run: RunFolder, log: RunLog, stop_event: threading.Event | None):
    from transformers import TrainerCallback  # deferred: heavy

    class MetricsCallback(TrainerCallback):
        """Each log to metrics.jsonl (see Meter); Stop ends the run after this step, with a checkpoint."""

        def __init__(self):
            self.meter = Meter(run.metrics_file, log)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:
                self.meter.record(state, dict(logs or {}))

        def on_step_end(self, args, state, control, **kwargs):
            if stop_event is not None and any_process(stop_event.is_set()):
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from
            return control

    return [MetricsCallback()]


class Meter:
    """The Trainer's logs as metrics.jsonl rows, with trained (non-padding) tokens per second since the last log,
    and as readable log lines."""

    def __init__(self, path: Path, log: RunLog):
        self.path, self.log = path, log
        self.started = time.perf_counter()
        self.last_time, self.last_tokens = self.started, 0.0
        self.quiet_until = 0  # GRPO: the step from which "no signal" is said again

    def record(self, state, logs: dict) -> None:
        if "loss" in logs and not math.isfinite(logs["loss"]):
            # Raised here so the run ends at once with an explanation instead of training on garbage.
            raise FloatingPointError(f"the training loss became NaN at step {state.global_step}")
        row = self.row(state, logs, time.perf_counter())
        if len(row) <= 4:  # nothing but the step counters
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if "loss" in row:
            self.log(Msg("log.step", step=row["step"], max_steps=row["max_steps"], epoch=row["epoch"],
                         loss=row["loss"], speed=row["tokens_per_s"]))
        if "eval_loss" in row:
            self.log(Msg("log.eval", step=row["step"], loss=row["eval_loss"]))
        if "reward" in row:  # GRPO: what the sampled answers earned
            self.log(Msg("log.practice", step=row["step"], reward=row["reward"], spread=row.get("reward_std", 0.0),
                         length=row.get("completions/mean_length", 0.0)))
        if row.get("frac_reward_zero_std") == 1.0 and row["step"] >= self.quiet_until:
            self.log(Msg("practice.no_signal", step=row["step"]))
            self.quiet_until = row["step"] + NO_SIGNAL_EVERY  # said again only if it lasts

    def row(self, state, logs: dict, now: float) -> dict:
        row = {"step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0, 4),
               "elapsed_s": round(now - self.started, 2)}
        if "loss" in logs:
            tokens = logs.get("num_tokens", self.last_tokens)
            row.update(loss=logs["loss"], learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                       num_tokens=tokens,
                       tokens_per_s=round((tokens - self.last_tokens) / max(now - self.last_time, 1e-9), 2))
            self.last_time, self.last_tokens = now, tokens
        row.update({key: logs[key] for key in ("eval_loss", "train_loss", "train_runtime", *ALL_LOGS)
                    if key in logs})
        return row



class DataError(ValueError):
    """The run's data could not be used; the message names the problems."""


def explain_error(err: Exception) -> Msg:
    """What to try, chosen by the kind of error (not by words in its message: "information" holds "inf")."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return Msg("error.memory")
    if isinstance(err, FloatingPointError):  # raised by MetricsCallback when the loss is not finite
        return Msg("error.nan")
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return Msg("error.disk")
    if isinstance(err, ModelSourceError):
        return Msg("error.model")
    if isinstance(err, DataError):
        return Msg("error.data")
    if isinstance(err, RuntimeError) and "out of memory" in str(err).lower():  # CPU allocator failures
        return Msg("error.memory")
    return Msg("error.other")


def run_plan(settings: Settings, run: RunFolder, log: RunLog, facts, model_path: str) -> dict:
    """The hardware plan for this run, written down and logged with its reasons."""
    plan = hardware.plan(facts, settings.training, memory=estimated_memory(settings, model_path, facts),
                         method=settings.method.finetuning_type)
    plan["processes"] = world_size()  # the processes this run was started with (studio/training/launcher.py chose them)
    if (version := data_version(settings.data.dataset_path)) is not None:
        plan["data_version"] = version  # a repaired or grown version of the user's file (studio/data/versions.py)
    if is_main_process():
        run.write_plan(plan)
    log(Msg("log.hardware", hardware=plan["hardware"]))
    log(Msg("log.precision", value=plan["precision"], why=plan["precision_reason"]))
    log(Msg("log.checkpointing", value=on_off(plan["gradient_checkpointing"]), why=plan["gradient_checkpointing_reason"]))
    if plan["use_liger_kernel"] or facts.device == "cuda":
        log(Msg("log.liger", value=on_off(plan["use_liger_kernel"]), why=plan["liger_reason"]))
    return plan




def data_version(path: str) -> dict | None:
    """The data version a run trains on, with the hash of the file as it is now (a version is never rewritten:
    a different hash would say the file was changed by hand)."""
    from studio.data.versions import file_sha256, version_of

    version = version_of(path) if path else None
    if version is None:
        return None
    return {"name": version.name, "number": version.number, "source": version.source,
            "sha256": file_sha256(version.path), "changes": version.changes}


# ---------------------------------------------------------------- the steps of a run

def write_preset(settings: Settings, run: RunFolder) -> None:
    """The run's settings as a preset, written before any model is loaded (by the main process only)."""
    if is_main_process():
        run.write_preset(preset_dict(settings, description=f"Settings of run {run.name}"))


def check_method(settings: Settings, facts) -> None:
    """QLoRA needs a CUDA GPU with bitsandbytes: refused with the reason before any model is loaded."""
    if settings.method.finetuning_type == "qlora" and not (qlora := hardware.qlora_available(facts))[0]:
        raise ValueError(qlora[1])


def resume_point(run: RunFolder, log: RunLog, resume: bool) -> str | None:
    """The checkpoint a resumed run continues from (its metrics trimmed to it), or None for a new run."""
    checkpoint = run.last_checkpoint() if resume else None
    if checkpoint is None:
        return None
    if is_main_process():
        run.trim_metrics(int(checkpoint.name.rsplit("-", 1)[-1]))
    log(Msg("log.resuming", checkpoint=checkpoint.name))
    return str(checkpoint)


def quiet_trainer(trainer, log: RunLog, method: str):
    """The trainer without the stock progress bar and dict printer (the MetricsCallback prints one readable line
    per log), and its trainable share logged."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback  # deferred: heavy

    if trainer.train_dataset is not None and len(trainer.train_dataset) == 0:  # TRL dropped every truncated row;
        # training would end in an IndexError or a sampler's "num_samples=0" that says nothing of the cause
        raise DataError(Msg("log.nothing_left_at_cutoff", cutoff=getattr(trainer.args, "max_length", None) or "?"))
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainable, total = models.count_parameters(trainer.model)
    log(Msg("log.parameters", trainable=trainable, total=total, share=100 * trainable / total, method=method))
    return trainer


def save_result(trainer, tokenizer, target: Path, log: RunLog) -> None:
    """The trained adapter or model, with its tokenizer. Every process takes part (ZeRO-3 / FSDP gather the
    shards); the main process writes."""
    trainer.save_model(str(target))
    if is_main_process():
        tokenizer.save_pretrained(str(target))
    log(Msg("log.saved", name=target.name, path=str(target)))


def stage_trainer(settings: Settings, run: RunFolder, model, config, train_dataset, eval_dataset, tokenizer,
                  peft_config, callbacks, **extra):
    """The one way every stage's trainer is made: the row's trainer class (studio/core/stages.py) with the stage's
    config, data, tokenizer, adapter config and the run's callbacks; `extra` what only that stage takes (a
    reference model, reward functions)."""
    _, trainer_class = settings.stage.classes()
    trackers_placed(settings, run)
    trainer = trainer_class(model=model, args=config, train_dataset=train_dataset, eval_dataset=eval_dataset,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks, **extra)
    return trainer_with_tracker_dirs(trainer, settings, run)


def trackers_placed(settings: Settings, run: RunFolder) -> None:
    """A local tracker writes under the studio home, never into the folder the studio was started from, unless
    the user's environment already names its place (studio/core/trackers.py)."""
    home = studio_home()
    if settings.training.report_to == "trackio":
        os.environ.setdefault("TRACKIO_DIR", str(home / "trackio"))
    elif settings.training.report_to == "mlflow":
        os.environ.setdefault("MLFLOW_TRACKING_URI", (home / "mlruns").resolve().as_uri())


def trainer_with_tracker_dirs(trainer, settings: Settings, run: RunFolder):
    """The run's name and project in every tracker, and TensorBoard's events in the run folder (`tensorboard/`),
    so `tensorboard --logdir runs` shows each run under its own name."""
    if settings.training.report_to == "none":
        return trainer
    trainer.args.run_name, trainer.args.project = run.path.name, TRACKER_PROJECT
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "TensorBoardCallback":
            callback.logging_dir = str(run.path / TENSORBOARD_DIR)
    return trainer


def run_figures(settings: Settings, trainer, output, target: Path, plan: dict) -> dict:
    """The figures a reader wants first, kept in status.json (a DPO run's also its last reward margin)."""
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    margins = [h["rewards/margins"] for h in history if "rewards/margins" in h]
    stage, method = settings.stage, settings.method.finetuning_type
    return {
        "output": str(target),
        "method": method if stage.names_method else stage.name + ("" if method == "lora" else f" ({method})"),
        "global_step": trainer.state.global_step, "planned_steps": trainer.state.max_steps,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "first_train_loss": train_losses[0] if train_losses else None,
        "final_eval_loss": eval_losses[-1] if eval_losses else None,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        **({"final_reward_margin": margins[-1]} if margins else {}),
        "train_runtime_s": output.metrics.get("train_runtime"),
        "num_tokens": getattr(trainer, "_total_train_tokens", None),  # SFT's count; TRL's preference trainers keep none
        "trainable_parameters": models.count_parameters(trainer.model)[0], "precision": plan["precision"],
    }


def estimated_memory(settings: Settings, model_path: str, facts) -> dict | None:
    """The run's memory by part without checkpointing, for the plan's devices and 'auto' checkpointing."""
    shape = models.model_shape(model_path, settings.model.trust_remote_code)
    if shape is None:
        return None  # unknown architecture: the plan falls back to one device's rules
    return training_memory_gb(settings, shape, facts)


class RunModel:
    """The run's model, loaded once: where replay must generate answers before the data is tokenised, it loads the
    model as training will, and training then takes that one (on the same dtype, quantization and attention) rather
    than loading a second copy. The load is logged as the run's model load, not as part of replay."""

    def __init__(self, settings: Settings, log: RunLog, path: str):
        self.settings, self.log, self.path = settings, log, path
        self.key, self.model = None, None

    def load(self, plan: dict, method: str, keep: bool = True):
        key = (models.weights_dtype(plan["precision"], method), plan["packing"])
        if self.model is not None and self.key == key:
            model = self.model
        else:
            self.drop()
            self.log(Msg("log.phase_model", model=self.settings.model.model_name_or_path))
            model = models.load_model(self.path, key[0], self.settings.model.trust_remote_code,
                                      quantization_config=to_bnb_config(self.settings, plan),
                                      attn_implementation="flash_attention_2" if plan["packing"] else None)
        self.key, self.model = (key, model) if keep else (None, None)
        return model

    def for_checks(self, plan: dict):
        """The base model the checks before training answer with (replay's answers, the drift check's and the
        held-out check's base side): the one training takes, or where Chat answers in another dtype
        (answers_dtype) a copy in Chat's, loaded once for all of them; training then loads its own."""
        dtype = answers_dtype(plan)
        if dtype is None:
            return self.load(plan, "lora")
        key = (dtype, "checks")
        if self.model is None or self.key != key:
            self.drop()
            self.key, self.model = key, base_for_checks(self.settings, plan, self.path, self.log)
        return self.model

    def drop(self) -> None:
        """Let go of a model that training will not take (it needs another dtype, or replay failed)."""
        if self.model is not None:
            self.key, self.model = None, None
            models.free_memory()


def answers_dtype(plan: dict) -> str | None:
    """The dtype the run's checks answer in where it is not training's: Chat's on a CPU that trains in bf16, where
    Chat answers in fp32 (studio/chat/chat.py: inference_placement). Greedy answers in bf16 are not Chat's: on the
    starter model taught an identity, 7 of 12 held-out answers generated in a batch in bf16 were Chat's, 12 of 12
    in fp32 (bench/RESULTS.md). None: the model training holds answers as it is (a GPU, or fp32 training)."""
    if plan.get("device") != "cpu" or plan.get("precision") != "bf16":
        return None
    from studio.chat.chat import inference_placement  # deferred: the chat module imports the decoder

    dtype, device = inference_placement()
    return dtype if device == "cpu" and dtype != "bf16" else None


def base_for_checks(settings: Settings, plan: dict, model_path: str, log: RunLog, model=None):
    """The base model as Chat's base side answers: `model` (the one training holds) where Chat answers in its dtype,
    else a copy loaded in Chat's (answers_dtype)."""
    dtype = answers_dtype(plan)
    if dtype is None and model is not None:
        return model
    log(Msg("log.phase_model_checks", model=settings.model.model_name_or_path, dtype=dtype))
    return models.load_model(model_path, dtype, settings.model.trust_remote_code)


def tuned_for_checks(settings: Settings, plan: dict, trainer, target, model_path: str, log: RunLog):
    """The tuned model the checks after training answer with: the trainer's, or where Chat answers in another
    dtype (answers_dtype) the saved result loaded as Chat loads it (studio/chat/chat.py: ChatPair), so the drift
    table and the verdict read the answers a user then meets in Chat."""
    dtype = answers_dtype(plan)
    if dtype is None or not is_main_process():
        return trainer.model
    log(Msg("log.phase_model_checks", model=settings.model.model_name_or_path, dtype=dtype))
    trust = settings.model.trust_remote_code
    if not (Path(target) / "adapter_config.json").exists():  # every weight trained: the saved model itself
        return models.load_model(str(target), dtype, trust).eval()
    from peft import PeftModel  # deferred: peft imports torch

    base = models.load_model(model_path, dtype, trust)
    return PeftModel.from_pretrained(base, str(target), autocast_adapter_dtype=False).eval()
