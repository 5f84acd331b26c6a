"""A run of a stage that learns from pairs or labelled answers (DPO, KTO, ORPO: studio/stages.py): prepare ->
train -> save, on the steps every run shares (studio/run_steps.py), in the run folder the SFT runs use (preset,
plan, splits, metrics, status, checkpoints, result), so the Train tab watches it, Stop stops it, Resume resumes it,
Chat and Export read its result. Called by train.run_training for every stage whose rows are not examples."""

from __future__ import annotations

from pathlib import Path

from . import data as data_mod
from . import hardware, heavy, models
from .config import Settings
from .distributed import is_main_process
from .preference import load_preference_rows, source_label
from .run_steps import (DataError, check_method, make_callbacks, quiet_trainer, resume_point, run_figures, run_plan,
                        save_result, write_preset)
from .runs import RunFolder
from .stages import Stage, stage_of
from .text import Msg
from .trl_args import sft_config_kwargs, to_bnb_config, to_lora_config

SPLIT_NAMES = {"train": "preference-train", "validation": "preference-validation"}  # apart from SFT's splits


def train_preference(settings: Settings, run: RunFolder, log, stop_event, resume: bool, facts) -> dict:
    heavy.ensure_imported()
    write_preset(settings, run)
    facts = facts or hardware.detect()
    check_method(settings, facts)
    model_path = models.resolve_model_path(settings.model.model_name_or_path, log)
    plan = run_plan(settings, run, log, facts, model_path)
    train_rows, eval_rows = preference_split(settings, run, log, resume)
    tokenizer = models.load_tokenizer(model_path, settings.model.trust_remote_code)
    trainer = _trainer(settings, run, log, plan, model_path, tokenizer, train_rows, eval_rows,
                       make_callbacks(run, log, stop_event))
    output = trainer.train(resume_from_checkpoint=resume_point(run, log, resume))
    target = run.output_dir(settings.method.finetuning_type)
    save_result(trainer, tokenizer, target, log)
    return run_figures(settings, trainer, output, target, plan)


def preference_split(settings: Settings, run: RunFolder, log, resume: bool) -> tuple[list, list]:
    """Train and validation rows: the saved split when resuming, else the file (or the votes) read afresh."""
    if resume and run.split_file(SPLIT_NAMES["train"]).exists():
        return run.split(SPLIT_NAMES["train"]), run.split(SPLIT_NAMES["validation"])
    stage, d = stage_of(settings.method.stage), settings.data
    rows, problems = load_preference_rows(d.dataset_path, stage.name)
    if not rows or (problems and not d.drop_bad_rows):
        raise DataError(Msg("log.no_data", problems=[Msg("problem", where=w, problem=m) for w, m in problems[:5]]))
    if problems:
        log(Msg("log.dropped", count=len(problems), where=problems[0][0], problem=problems[0][1]))
    rows = rows[:d.max_samples] if d.max_samples > 0 else rows
    train, validation, _ = data_mod.split_rows(rows, d.validation_share, 0.0, settings.training.seed, d.split_by_order)
    if is_main_process():
        run.write_splits({SPLIT_NAMES["train"]: train, SPLIT_NAMES["validation"]: validation})
    log(Msg("pref.log_data", stage=stage.label, source=source_label(d.dataset_path), train=len(train),
            validation=len(validation)))
    return train, validation


def config_kwargs(settings: Settings, plan: dict, has_eval: bool = True) -> dict:
    """The stage's TRL config arguments from the same fields as SFT's: every SFT argument (learning rate, epochs,
    batches, schedule, precision, saving, evaluation), the stage's sample order and its beta. Plain dict, so the
    TRL config export writes the same (studio/repeat.py)."""
    stage = stage_of(settings.method.stage)
    kwargs = sft_config_kwargs(settings, plan)
    # Length grouping needs SFT's token lengths, and padding-free batches SFT's collator: neither exists here.
    # Their collators read the prompt / chosen / rejected columns themselves: the Trainer must not drop them.
    kwargs.update(train_sampling_strategy=stage.sample_order, padding_free=False, remove_unused_columns=False)
    if stage.beta:
        kwargs["beta"] = settings.method.beta
    if not has_eval:  # too few pairs for a validation row (a handful of votes): train without evaluating
        kwargs.update(eval_strategy="no", eval_on_start=False, load_best_model_at_end=False)
    return kwargs


def trainer_config(settings: Settings, plan: dict, output_dir: str, has_eval: bool = True):
    """The stage's TRL config (DPOConfig, KTOConfig, ORPOConfig), with the arguments it knows."""
    config_class, _ = stage_of(settings.method.stage).classes()
    known = set(config_class.__dataclass_fields__)
    kwargs = config_kwargs(settings, plan, has_eval)
    return config_class(output_dir=output_dir, **{k: v for k, v in kwargs.items() if k in known})


def _policy(settings: Settings, stage: Stage, plan: dict, model_path: str, log):
    """The model to train and the LoRA config for a new adapter (None: the model is trained as it is). A stage
    with a reference that starts from a finished run's adapter loads it trainable; TRL then keeps a frozen copy of
    it as the "ref" adapter, so the reference is that run's model, on the same single copy of the base weights (a
    new adapter's reference is the base, adapter off). A stage without a reference trains with any method."""
    method = settings.method.finetuning_type
    model = models.load_model(model_path, models.weights_dtype(plan["precision"], method),
                              settings.model.trust_remote_code, quantization_config=to_bnb_config(settings, plan))
    start = settings.method.adapter_name_or_path.strip()
    if start and stage.continues_run:
        from peft import PeftModel  # deferred: heavy

        adapter = RunFolder(start).adapter_dir if (Path(start) / "adapter").exists() else Path(start)
        log(Msg("pref.log_start", run=str(start)))
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), None
    if method == "freeze":
        models.freeze_all_but_last(model, settings.method.freeze_trainable_layers)
    return model, to_lora_config(settings)


def _trainer(settings, run, log, plan, model_path, tokenizer, train_rows, eval_rows, callbacks):
    from datasets import Dataset  # deferred: heavy

    stage = stage_of(settings.method.stage)
    model, peft_config = _policy(settings, stage, plan, model_path, log)
    _, trainer_class = stage.classes()
    config = trainer_config(settings, plan, str(run.checkpoints_dir), has_eval=bool(eval_rows))
    reference = {"ref_model": None} if stage.reference else {}  # None: TRL's frozen copy of the adapter
    trainer = trainer_class(model=model, args=config, train_dataset=Dataset.from_list(train_rows),
                            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
                            processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks, **reference)
    return quiet_trainer(trainer, log, f"{stage.label} {settings.method.finetuning_type}")
