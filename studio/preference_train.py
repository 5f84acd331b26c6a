"""A DPO or KTO run: prepare -> train -> save, in the run folder the SFT runs use (preset, plan, splits, metrics,
status, checkpoints, adapter), so the Train tab watches it, Stop stops it, Resume resumes it, Chat and Export
read its adapter. Called by train.run_training for a settings' stage 'dpo' or 'kto'."""

from __future__ import annotations

from pathlib import Path

from . import data as data_mod
from . import hardware, heavy, models
from .config import Settings, preset_dict
from .distributed import is_main_process
from .preference import load_preference_rows, source_label
from .runs import RunFolder
from .text import Msg
from .trl_args import sft_config_kwargs, to_lora_config

SPLIT_NAMES = {"train": "preference-train", "validation": "preference-validation"}  # apart from SFT's splits


def train_preference(settings: Settings, run: RunFolder, log, stop_event, resume: bool, facts) -> dict:
    from .train import _figures, _plan, make_callbacks  # deferred: train.py imports this module lazily

    heavy.ensure_imported()
    if is_main_process():
        run.write_preset(preset_dict(settings, description=f"Settings of run {run.name}"))
    facts = facts or hardware.detect()
    model_path = models.resolve_model_path(settings.model.model_name_or_path, log)
    plan = _plan(settings, run, log, facts, model_path)
    train_rows, eval_rows = preference_split(settings, run, log, resume)
    tokenizer = models.load_tokenizer(model_path, settings.model.trust_remote_code)
    trainer = _trainer(settings, run, log, plan, model_path, tokenizer, train_rows, eval_rows,
                       make_callbacks(run, log, stop_event))
    checkpoint = run.last_checkpoint() if resume else None
    if checkpoint and is_main_process():
        run.trim_metrics(int(checkpoint.name.rsplit("-", 1)[-1]))
        log(Msg("log.resuming", checkpoint=checkpoint.name))
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    target = run.adapter_dir
    trainer.save_model(str(target))
    if is_main_process():
        tokenizer.save_pretrained(str(target))
    log(Msg("log.saved", name=target.name, path=str(target)))
    return _figures(settings, trainer, output, target, plan)


def preference_split(settings: Settings, run: RunFolder, log, resume: bool) -> tuple[list, list]:
    """Train and validation rows: the saved split when resuming, else the file (or the votes) read afresh."""
    from .train import DataError  # deferred: train.py imports this module lazily

    if resume and run.split_file(SPLIT_NAMES["train"]).exists():
        return run.split(SPLIT_NAMES["train"]), run.split(SPLIT_NAMES["validation"])
    stage, d = settings.method.stage, settings.data
    rows, problems = load_preference_rows(d.dataset_path, stage)
    if not rows or (problems and not d.drop_bad_rows):
        raise DataError(Msg("log.no_data", problems=[Msg("problem", where=w, problem=m) for w, m in problems[:5]]))
    if problems:
        log(Msg("log.dropped", count=len(problems), where=problems[0][0], problem=problems[0][1]))
    rows = rows[:d.max_samples] if d.max_samples > 0 else rows
    train, validation, _ = data_mod.split_rows(rows, d.validation_share, 0.0, settings.training.seed, d.split_by_order)
    if is_main_process():
        run.write_splits({SPLIT_NAMES["train"]: train, SPLIT_NAMES["validation"]: validation})
    log(Msg("pref.log_data", stage=stage.upper(), source=source_label(d.dataset_path), train=len(train),
            validation=len(validation)))
    return train, validation


def trainer_config(settings: Settings, plan: dict, output_dir: str, has_eval: bool = True):
    """DPOConfig / KTOConfig from the same fields as SFT's: every SFT argument the preference config also knows
    (learning rate, epochs, batches, schedule, precision, saving, evaluation), plus beta."""
    from trl import DPOConfig, KTOConfig  # deferred: heavy

    cls = DPOConfig if settings.method.stage == "dpo" else KTOConfig
    known = set(cls.__dataclass_fields__)
    kwargs = sft_config_kwargs(settings, plan)
    # Length grouping needs SFT's token lengths, and padding-free batches SFT's collator: neither exists here.
    # KTO estimates its KL term from each row's neighbours in a fixed-order batch, so it keeps the order.
    order = "random" if settings.method.stage == "dpo" else "sequential"
    kwargs.update(train_sampling_strategy=order, beta=settings.method.beta, padding_free=False)
    if not has_eval:  # too few pairs for a validation row (a handful of votes): train without evaluating
        kwargs.update(eval_strategy="no", eval_on_start=False, load_best_model_at_end=False)
    return cls(output_dir=output_dir, **{k: v for k, v in kwargs.items() if k in known})  # KTO has no padding_free


def _policy(settings: Settings, plan: dict, model_path: str, log):
    """The model to train and the LoRA config for a new adapter. A finished run's adapter is loaded trainable;
    TRL then keeps a frozen copy of it as the "ref" adapter, so the reference is that run's model, on the same
    single copy of the base weights (a new adapter's reference is the base, adapter off)."""
    model = models.load_model(model_path, models.weights_dtype(plan["precision"], "lora"),
                              settings.model.trust_remote_code)
    start = settings.method.adapter_name_or_path.strip()
    if not start:
        return model, to_lora_config(settings.model_copy(update={"method": settings.method.model_copy(
            update={"finetuning_type": "lora"})}))
    from peft import PeftModel  # deferred: heavy

    adapter = RunFolder(start).adapter_dir if (Path(start) / "adapter").exists() else Path(start)
    log(Msg("pref.log_start", run=str(start)))
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), None


def _trainer(settings, run, log, plan, model_path, tokenizer, train_rows, eval_rows, callbacks):
    from datasets import Dataset  # deferred: heavy
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import DPOTrainer, KTOTrainer

    model, peft_config = _policy(settings, plan, model_path, log)
    trainer_cls = DPOTrainer if settings.method.stage == "dpo" else KTOTrainer
    config = trainer_config(settings, plan, str(run.checkpoints_dir), has_eval=bool(eval_rows))
    trainer = trainer_cls(model=model, ref_model=None, args=config,
                          train_dataset=Dataset.from_list(train_rows),
                          eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainable, total = models.count_parameters(trainer.model)
    log(Msg("log.parameters", trainable=trainable, total=total, share=100 * trainable / total,
            method=settings.method.stage.upper()))
    return trainer
