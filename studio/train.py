"""A training run: prepare -> train -> save.

Before the first step the run folder holds the settings (as a preset), the hardware plan with its reasons, the
data split and an empty metrics log, so a run can be inspected, resumed and reproduced without the UI. The same
`run_training` serves the headless CLI and the Train tab (which calls it from a background thread).

    runs/<name>/
      preset.json    settings as a reusable preset      plan.json     device, precision, checkpointing + why
      data/{train,validation,test}.jsonl                 metrics.jsonl one JSON object per log / eval
      status.json    running | finished | stopped | failed, with final figures
      log.txt        progress lines and, on failure, the full traceback
      adapter/ or model/   the result; checkpoints/ for resume
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from . import data as data_mod
from .config import Settings, preset_dict
from .text import Msg, on_off

Progress = Callable[[str], None]


def runs_root() -> Path:
    return Path(os.environ.get("STUDIO_RUNS", "runs"))


def new_run_dir(root: Path | None = None, name: str | None = None) -> Path:
    root = root or runs_root()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = root / (name or f"run-{stamp}")
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = root / f"{name or f'run-{stamp}'}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


# ---------------------------------------------------------------- several processes (torchrun / accelerate launch)
# Every process trains; only the main one writes the run folder's files, so a preset runs unchanged on N GPUs.

def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def shared_run_dir(requested: Path | None = None) -> Path:
    """The run folder every process writes into: the main process names it and tells the others."""
    if world_size() == 1 or requested is not None:
        return requested or new_run_dir()
    from accelerate.utils import broadcast_object_list

    _partial_state()
    name = [str(new_run_dir()) if is_main_process() else None]
    broadcast_object_list(name)
    return Path(name[0])


@contextmanager
def main_process_first():
    """The main process fills the tokenisation cache; the others then read it instead of racing to write it."""
    if world_size() == 1:
        yield
        return
    with _partial_state().main_process_first():
        yield


def _partial_state():
    """accelerate's view of the process group torchrun / accelerate launch set up. Without a GPU it must be told
    to use CPU processes (gloo), or it sees a single process."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def write_json(path: Path, value) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Written whole or not at all: a reader (or a crash) never sees half a split or half a metrics log."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class RunLog:
    """Progress lines to the console (or UI) and to the run's log.txt (English, with tracebacks, for reading and
    sharing), and each line also as a message in events.jsonl, so the Train tab shows it in the reader's language."""

    def __init__(self, run_dir: Path, echo: Progress | None = print):
        self.path = run_dir / "log.txt"
        self.events = run_dir / "events.jsonl"
        self.echo = echo

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


# ---------------------------------------------------------------- preparation

@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    format: str
    dropped: int


def prepare_data(settings: Settings) -> tuple[PreparedData | None, list[tuple[str, str]]]:
    from .config import parse_mapping

    d = settings.data
    mapping, problems = parse_mapping(d.column_mapping)
    if problems:
        return None, problems
    loaded = data_mod.load_dataset_file(d.dataset_path, d.dataset_format, mapping or None)
    if not loaded.rows:
        return None, loaded.problems or [(loaded.file, "no usable rows")]
    if loaded.bad_rows and not d.drop_bad_rows:
        return None, [("drop_bad_rows", f"{len(loaded.bad_rows)} rows have problems and dropping them is off; fix "
                       "the file or turn 'Drop rows with problems' on")] + loaded.problems
    records = loaded.records()[:d.max_samples] if d.max_samples > 0 else loaded.records()  # a pilot run
    train, validation, test = data_mod.split_rows(records, d.validation_share, d.test_share,
                                                  settings.training.seed, d.split_by_order)
    return PreparedData(train, validation, test, loaded.format or "?", len(loaded.bad_rows)), loaded.problems


def parse_jsonl_lines(lines) -> list[dict]:
    """Skip lines that do not parse: a killed run can leave half a line behind."""
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return parse_jsonl_lines(line for line in f if line.strip())


def saved_split(run_dir: Path) -> PreparedData | None:
    """A resumed run trains on the split it was started with, even if the source file changed since."""
    folder = run_dir / "data"
    if not (folder / "train.jsonl").exists():
        return None
    parts = [read_jsonl(folder / f"{name}.jsonl") if (folder / f"{name}.jsonl").exists() else []
             for name in ("train", "validation", "test")]
    return PreparedData(*parts, format="messages", dropped=0)


def overfitting_warning(metrics: list[dict], patience: int = 3) -> str | None:
    """Plain-language warning when validation loss rose `patience` evaluations in a row while train loss fell,
    or when train loss collapsed at an epoch boundary (memorising the data it has now seen twice)."""
    evals = [m for m in metrics if "eval_loss" in m]
    train = [m for m in metrics if "loss" in m]
    if len(evals) > patience:
        tail = [e["eval_loss"] for e in evals[-patience - 1:]]
        rising = all(b > a for a, b in zip(tail, tail[1:]))
        start = next((t["loss"] for t in train if t["step"] >= evals[-patience - 1]["step"]), None)
        falling = start is not None and train and train[-1]["loss"] < start
        if rising and falling:
            best = min(evals, key=lambda e: e["eval_loss"])
            return Msg("warn.overfitting", patience=patience, best=best["eval_loss"], step=best["step"])
    for previous, current in zip(train, train[1:]):
        if int(current["epoch"]) > int(previous["epoch"]) and current["loss"] < 0.5 * previous["loss"] \
                and current["loss"] < 0.3:
            return Msg("warn.memorising", epoch=int(current["epoch"]) + 1, before=previous["loss"],
                       after=current["loss"])
    return None


def weights_dtype(precision: str, finetuning_type: str) -> str:
    """fp16 mixed precision needs fp32 master weights for the trained parameters; LoRA keeps its adapters in fp32."""
    if precision == "fp16" and finetuning_type in ("full", "freeze"):
        return "fp32"
    return precision


def find_layer_stack(model):
    """The decoder's list of transformer blocks (model.model.layers for Llama-like models)."""
    import torch

    stacks = [m for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ValueError("could not find the model's transformer layers to unfreeze")
    return max(stacks, key=len)


def freeze_all_but_last(model, n_layers: int) -> None:
    for p in model.parameters():
        p.requires_grad = False
    for layer in list(find_layer_stack(model))[-n_layers:]:
        for p in layer.parameters():
            p.requires_grad = True


TOKENIZED_CACHE_VERSION = 1  # bump when encode_records changes what it produces
TOKENIZED_CACHE_MB = 2048  # about 100M tokens of int32 ids: many datasets, never the whole disk


def tokenized_cache_key(tokenizer, rows: list[dict], assistant_only: bool) -> str:
    """Same rows, same tokenizer (vocabulary and rules), same chat template, same masking -> same tokens.
    Truncation to the cutoff happens later in TRL, so the cutoff is not part of the key."""
    import hashlib

    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    identity = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    for part in (str(TOKENIZED_CACHE_VERSION), identity, tokenizer.chat_template or "", str(assistant_only),
                 json.dumps(rows, ensure_ascii=False, sort_keys=True)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def encode_split(tokenizer, rows: list[dict], assistant_only: bool, cache: bool = True):
    """Tokenised rows as a datasets.Dataset, from the studio's cache when these rows were tokenised before."""
    from datasets import Dataset

    from .chat_template import encode_records
    from .models import studio_home
    from .paths import prune_lru

    folder = studio_home() / "cache" / "tokenized" / tokenized_cache_key(tokenizer, rows, assistant_only)
    if cache and (folder / "dataset_info.json").exists():
        os.utime(folder)  # the cache forgets the least recently used entries first
        return Dataset.load_from_disk(str(folder))
    encoded = encode_records(tokenizer, rows)
    columns = {"input_ids": encoded.input_ids}
    if assistant_only:
        columns["assistant_masks"] = encoded.assistant_masks
    dataset = Dataset.from_dict(columns)
    if cache:
        try:
            tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")  # processes on other machines may race
            dataset.save_to_disk(str(tmp))
            os.replace(tmp, folder)  # atomic: a half-written cache entry is never read
            prune_lru(folder.parent, TOKENIZED_CACHE_MB * 1024**2, keep=folder)
            return Dataset.load_from_disk(str(folder))  # memory-mapped: no second copy of the data in RAM
        except OSError:
            pass  # a full or read-only disk only costs the next run a re-tokenisation
    return dataset


# ---------------------------------------------------------------- callbacks

def make_callbacks(run_dir: Path, log: RunLog, stop_event: threading.Event | None):
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """Appends each log to metrics.jsonl with trained (non-padding) tokens per second."""

        def __init__(self):
            self.path = run_dir / "metrics.jsonl"
            self.started = time.perf_counter()
            self.last_time, self.last_tokens = self.started, 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:
                return
            logs = dict(logs or {})
            if "loss" in logs and not math.isfinite(logs["loss"]):
                # Raised here so the run ends at once with an explanation instead of training on garbage.
                raise FloatingPointError(f"the training loss became NaN at step {state.global_step}")
            now = time.perf_counter()
            row = {"step": state.global_step, "max_steps": state.max_steps, "epoch": round(state.epoch or 0, 4),
                   "elapsed_s": round(now - self.started, 2)}
            if "loss" in logs:
                tokens = logs.get("num_tokens", self.last_tokens)
                row.update(loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                           grad_norm=logs.get("grad_norm"), num_tokens=tokens,
                           tokens_per_s=round((tokens - self.last_tokens) / max(now - self.last_time, 1e-9), 2))
                self.last_time, self.last_tokens = now, tokens
            for key in ("eval_loss", "train_loss", "train_runtime"):
                if key in logs:
                    row[key] = logs[key]
            if len(row) > 4:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                if "loss" in row:
                    log(Msg("log.step", step=row["step"], max_steps=row["max_steps"], epoch=row["epoch"],
                            loss=row["loss"], speed=row["tokens_per_s"]))
                if "eval_loss" in row:
                    log(Msg("log.eval", step=row["step"], loss=row["eval_loss"]))

        def on_step_end(self, args, state, control, **kwargs):
            if stop_event is not None and stop_event.is_set():
                control.should_training_stop = True
                control.should_save = True  # a checkpoint to resume from
            return control

    return [MetricsCallback()]


# ---------------------------------------------------------------- the run

def run_training(settings: Settings, run_dir: Path | None = None, progress: Progress | None = print,
                 stop_event: threading.Event | None = None, resume: bool = False, facts=None) -> dict:
    """Train and return the final status dict. Never raises for a failed run: the status says what went wrong."""
    run_dir = shared_run_dir(run_dir)
    status = {"status": "running", "started": datetime.now().isoformat(timespec="seconds"), "pid": os.getpid(),
              "process": process_identity(), "run_dir": str(run_dir)}
    if world_size() > 1:
        status["processes"] = world_size()
    write_status = write_json if is_main_process() else (lambda path, value: None)
    try:  # a folder that cannot be made or written is a failed run with a reason, not a silently dead thread
        run_dir.mkdir(parents=True, exist_ok=True)
        log = RunLog(run_dir, progress)
        write_status(run_dir / "status.json", status)
    except OSError as err:
        advice = explain_error(err)
        return {**status, "status": "failed", "error": f"{type(err).__name__}: {err}", "advice": advice,
                "advice_key": advice.key}
    started = time.perf_counter()
    try:
        result = _train(settings, run_dir, log, stop_event, resume, facts)
        status.update(result)
        status["status"] = "stopped" if stop_event is not None and stop_event.is_set() else "finished"
    except Exception as err:  # a failed run must never take the caller (the UI server) down with it
        name = "log.txt" if is_main_process() else f"log-rank{os.environ.get('RANK')}.txt"  # one file per writer
        with open(run_dir / name, "a", encoding="utf-8") as f:
            f.write(traceback.format_exc())
        advice = explain_error(err)
        status.update(status="failed", error=f"{type(err).__name__}: {err}", advice=advice, advice_key=advice.key)
        if err.args and isinstance(err.args[0], Msg):  # the studio's own explanation, kept for the reader's language
            status["error_message"] = err.args[0].to_json()
        log(Msg("log.failed", error=status["error"], advice=status["advice"]))
    finally:
        status["wall_time_s"] = round(time.perf_counter() - started, 1)
        status["finished"] = datetime.now().isoformat(timespec="seconds")
        write_status(run_dir / "status.json", status)
        _free_memory()
    return status


class DataError(ValueError):
    """The run's data could not be used; the message names the problems."""


def explain_error(err: Exception) -> Msg:
    """What to try, chosen by the kind of error (not by words in its message: "information" holds "inf")."""
    import errno

    from .models import ModelSourceError

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


def drop_long(dataset, max_length: int, log, split: str):
    """Rows longer than the cutoff left out rather than truncated (the guide: drop when more than 5% exceed)."""
    if dataset is None:
        return None
    keep = [i for i, ids in enumerate(dataset["input_ids"]) if len(ids) <= max_length]
    dropped = len(dataset) - len(keep)
    if dropped:
        log(Msg("log.dropped_long", count=dropped, total=len(dataset), split=Msg(f"split.{split}"),
                cutoff=max_length))
        if not keep:
            raise DataError(Msg("log.all_too_long", cutoff=max_length))
        dataset = dataset.select(keep)
    return dataset


def packing_for_data(plan: dict, rows: list[dict], encoded) -> dict:
    """Packing stays off for multi-turn or short data (the guide), whatever the hardware allows."""
    from .advice import multi_turn_share, packing_suits_data

    multi = multi_turn_share([r["messages"] for r in rows if "messages" in r])
    lengths = sorted(len(ids) for ids in encoded["input_ids"])
    suits, why = packing_suits_data(multi, lengths[len(lengths) // 2] if lengths else None)
    return plan if suits else {**plan, "packing": False, "packing_reason": why}


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _train(settings: Settings, run_dir: Path, log: RunLog, stop_event, resume: bool, facts) -> dict:
    from . import hardware, heavy, models

    heavy.ensure_imported()
    from .config import to_bnb_config, to_lora_config, to_sft_config

    # 1. Everything a reader needs, written before any model is loaded (by the main process only).
    main = is_main_process()
    write = write_json if main else (lambda path, value: None)
    write(run_dir / "preset.json", preset_dict(settings, description=f"Settings of run {run_dir.name}"))
    facts = facts or hardware.detect()
    with main_process_first():  # the starter model is downloaded and converted once, not by every process
        model_path = models.resolve_model_path(settings.model.model_name_or_path, log)
    plan = hardware.plan(facts, settings.training.precision, settings.training.gradient_checkpointing,
                         estimated_gb=_estimated_memory_gb(settings, model_path, facts),
                         packing=settings.training.packing, liger=settings.training.use_liger_kernel)
    write(run_dir / "plan.json", plan)
    log(Msg("log.hardware", hardware=plan["hardware"]))
    log(Msg("log.precision", value=plan["precision"], why=plan["precision_reason"]))
    log(Msg("log.checkpointing", value=on_off(plan["gradient_checkpointing"]), why=plan["gradient_checkpointing_reason"]))
    if plan["use_liger_kernel"] or facts.device == "cuda":
        log(Msg("log.liger", value=on_off(plan["use_liger_kernel"]), why=plan["liger_reason"]))
    prepared, problems = (saved_split(run_dir), []) if resume else (None, [])
    if prepared is None:
        prepared, problems = prepare_data(settings)
    if prepared is None:
        raise DataError(Msg("log.no_data", problems=[Msg("problem", where=w, problem=m) for w, m in problems[:5]]))
    if problems:
        log(Msg("log.dropped", count=prepared.dropped, where=problems[0][0], problem=problems[0][1]))
    if main:  # every process splits the same way (same seed); one writes it down
        (run_dir / "data").mkdir(exist_ok=True)
        for name, rows in (("train", prepared.train), ("validation", prepared.validation), ("test", prepared.test)):
            write_jsonl(run_dir / "data" / f"{name}.jsonl", rows)
        (run_dir / "metrics.jsonl").touch()
    log(Msg("log.data", format=prepared.format, train=len(prepared.train), validation=len(prepared.validation),
            test=len(prepared.test)))

    # 2. Model and tokenised data.
    method = settings.method.finetuning_type
    if method == "qlora":
        ok, why = hardware.qlora_available(facts)
        if not ok:
            raise ValueError(why)
    tokenizer = models.load_tokenizer(model_path, settings.model.trust_remote_code)
    if getattr(tokenizer, "studio_added_template", False):
        log(Msg("log.base_model", model=settings.model.model_name_or_path))
    assistant_only = settings.training.assistant_only_loss
    with main_process_first():
        train_ds = encode_split(tokenizer, prepared.train, assistant_only)
        eval_ds = encode_split(tokenizer, prepared.validation, assistant_only) if prepared.validation else None
    if settings.data.drop_long_rows:
        train_ds, eval_ds = (drop_long(ds, settings.training.max_length, log, name)
                             for ds, name in ((train_ds, "train"), (eval_ds, "validation")))
    if plan["packing"] and settings.training.packing == "auto":  # the hardware could pack; does the data suit it?
        plan = packing_for_data(plan, prepared.train, train_ds)
        write(run_dir / "plan.json", plan)
    log(Msg("log.packing", value=on_off(plan["packing"]), why=plan["packing_reason"]))
    del prepared  # the rows live on in the run folder and the memory-mapped token cache; no third copy in RAM
    model = models.load_model(model_path, weights_dtype(plan["precision"], method), settings.model.trust_remote_code,
                              quantization_config=to_bnb_config(settings, plan),
                              attn_implementation="flash_attention_2" if plan["packing"] else None)
    if method == "freeze":
        freeze_all_but_last(model, settings.method.freeze_trainable_layers)

    # 3. Train.
    from transformers import EarlyStoppingCallback

    from .lean import LeanSFTTrainer

    args = to_sft_config(settings, plan, str(run_dir / "checkpoints"))
    callbacks = make_callbacks(run_dir, log, stop_event)
    if eval_ds is not None and settings.training.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(settings.training.early_stopping_patience))
    trainer = LeanSFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tokenizer, peft_config=to_lora_config(settings), callbacks=callbacks)
    # Our MetricsCallback prints one readable line per log; the stock progress bar and dict printer only add noise.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainable, total = models.count_parameters(trainer.model)
    log(Msg("log.parameters", trainable=trainable, total=total, share=100 * trainable / total, method=method))
    if world_size() > 1:
        log(Msg("log.processes", count=world_size(), kind=trainer.accelerator.distributed_type.value))
    checkpoint = _last_checkpoint(run_dir) if resume else None
    if checkpoint and main:
        trim_metrics(run_dir, int(checkpoint.rsplit("-", 1)[-1]))
        log(Msg("log.resuming", checkpoint=Path(checkpoint).name))
    output = trainer.train(resume_from_checkpoint=checkpoint)

    # 4. Save the result and the figures a reader wants first.
    target = run_dir / ("adapter" if method in ("lora", "qlora") else "model")
    trainer.save_model(str(target))  # every process takes part (ZeRO-3 / FSDP gather the shards); main writes
    if main:
        tokenizer.save_pretrained(str(target))
    log(Msg("log.saved", name=target.name, path=str(target)))
    from .advice import not_learning

    verdict = not_learning(settings, read_jsonl(run_dir / "metrics.jsonl"))
    if verdict is not None:  # said where the CLI and the log show it, not only on the Train tab
        log(verdict)
    history = trainer.state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    return {
        "output": str(target), "method": method, "global_step": trainer.state.global_step,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "first_train_loss": train_losses[0] if train_losses else None,
        "final_eval_loss": eval_losses[-1] if eval_losses else None,
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        "train_runtime_s": output.metrics.get("train_runtime"), "num_tokens": trainer._total_train_tokens,
        "trainable_parameters": trainable, "precision": plan["precision"],
    }


def _estimated_memory_gb(settings: Settings, model_path: str, facts) -> float | None:
    """Memory the run needs without checkpointing, at the precision 'auto' would pick (for the 'auto' choice)."""
    from transformers import AutoConfig

    from . import hardware
    from .advice import ModelShape, estimate_memory_gb

    try:
        shape = ModelShape.from_config(AutoConfig.from_pretrained(model_path,
                                                                  trust_remote_code=settings.model.trust_remote_code))
    except (OSError, ValueError, AttributeError):
        return None  # unknown architecture: the plan falls back to "off"
    precision = hardware.choose_precision(facts)[0] if settings.training.precision == "auto" else settings.training.precision
    t, m = settings.training, settings.method
    return estimate_memory_gb(shape, m.finetuning_type, precision, t.per_device_train_batch_size, t.max_length,
                              lora_rank=m.r, freeze_layers=m.freeze_trainable_layers,
                              lora_dropout=m.lora_dropout)["total"]


def trim_metrics(run_dir: Path, step: int) -> None:
    """Drop log lines after the checkpoint a run resumes from; they will be logged again."""
    path = run_dir / "metrics.jsonl"
    kept = [row for row in read_jsonl(path) if row.get("step", 0) <= step] if path.exists() else []
    write_jsonl(path, kept)


def _last_checkpoint(run_dir: Path) -> str | None:
    """The newest complete checkpoint. Trainer writes trainer_state.json last, so a process killed while saving
    leaves a folder without it, which is skipped."""
    complete = [p for p in (run_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    complete.sort(key=lambda p: int(p.name.split("-")[-1]))
    return str(complete[-1]) if complete else None


def list_runs(root: Path | None = None) -> list[dict]:
    """Run folders, newest first, with their status. A 'running' run whose process is gone was interrupted."""
    root = root or runs_root()
    runs = []
    for status_file in sorted(root.glob("*/status.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            status = json.loads(status_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if status.get("status") == "running" and not _process_alive(status):
            status["status"] = "interrupted"
        evaluation = status_file.parent / "evaluation.json"
        if evaluation.exists():  # written by the Chat tab's evaluation
            try:
                scores = json.loads(evaluation.read_text(encoding="utf-8"))
                status["evaluation"] = {side: scores[side] for side in ("base", "tuned")}
            except (OSError, json.JSONDecodeError, KeyError):
                pass
        runs.append({**status, "name": status_file.parent.name, "run_dir": str(status_file.parent)})
    return runs


def process_identity(pid: int | None = None) -> str | None:
    """boot id + pid + the process's start time (Linux /proc): a pid alone is reused after a restart, and a
    container restart even gives the studio the same pid, so 'running' would never turn into 'interrupted'."""
    pid = pid or os.getpid()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start_ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces
    return f"{boot}:{pid}:{start_ticks}"


def _process_alive(status: dict) -> bool:
    pid = status.get("pid")
    if not isinstance(pid, int):
        return False
    if status.get("process"):  # recorded where /proc exists: the same process, not just the same number
        return process_identity(pid) == status["process"]
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def probe_seconds_per_step(settings: Settings, seq_len: int, steps: int = 2, facts=None) -> float:
    """Time a few real forward/backward/update steps at the run's batch size and a typical length, on this
    machine, with the run's method and precision. Returns seconds per optimizer step (x accumulation)."""
    from . import hardware, heavy, models

    heavy.ensure_imported()
    import torch

    from .config import to_lora_config

    facts = facts or hardware.detect()
    plan = hardware.plan(facts, settings.training.precision, settings.training.gradient_checkpointing)
    path = models.resolve_model_path(settings.model.model_name_or_path, progress=lambda _: None)
    method = settings.method.finetuning_type
    model = models.load_model(path, weights_dtype(plan["precision"], method), settings.model.trust_remote_code)
    if method in ("lora", "qlora"):
        from peft import get_peft_model

        model = get_peft_model(model, to_lora_config(settings))
    elif method == "freeze":
        freeze_all_but_last(model, settings.method.freeze_trainable_layers)
    device = "cuda" if plan["device"] == "cuda" else "cpu"
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    batch = torch.randint(0, model.config.vocab_size, (settings.training.per_device_train_batch_size, seq_len),
                          device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(plan["precision"])
    timings = []
    for _ in range(steps + 1):  # the first step warms up kernels and allocators and is not counted
        started = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    del model, optimizer
    _free_memory()
    return sum(timings[1:]) / steps * settings.training.gradient_accumulation_steps
