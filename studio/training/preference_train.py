"""A run of a stage that learns from pairs or labelled answers (DPO, KTO, ORPO) or practises on prompts with
rewards (GRPO; studio/core/stages.py): prepare -> train -> save, on the steps every run shares (studio/training/run_steps.py), in
the run folder the SFT runs use (preset, plan, splits, metrics, status, checkpoints, result), so the Train tab
watches it, Stop stops it, Resume resumes it, Chat and Export read its result. Called by train.run_training for
every stage whose rows are not examples. A GRPO run also keeps a few sampled answers with their rewards
(completions.jsonl) and ends with the held-out verdict: the starting and the tuned model's greedy answers to the
validation prompts, scored by the same rewards."""

from __future__ import annotations

import json
from pathlib import Path

from studio.engine import heavy
from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.core.stages import PROMPTS, Stage
from studio.core.text import Msg
from studio.core.trl_args import sft_config_kwargs, to_bnb_config, to_lora_config
from studio.models import hardware, models
from studio.data import data as data_mod
from studio.data.practice_data import load_prompt_rows
from studio.data.preference import load_preference_rows, source_label
from .distributed import is_main_process
from .run_checks import drift_baseline, drift_result, verdict_baseline, verdict_result
from .run_steps import (DataError, base_for_checks, check_method, make_callbacks, quiet_trainer, resume_point,
                        run_figures, run_plan, save_result, stage_trainer, tuned_for_checks, write_preset)

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
    stage = settings.stage
    held = drift_base = None
    if stage.generates:  # GRPO: the starting model's side of the drift check and of the held-out verdict
        from studio.core.rewards import held_out_scorer  # deferred: only GRPO scores answers

        base = base_for_checks(settings, plan, model_path, log, trainer.model)  # as Chat's base side answers
        if settings.training.drift_check and not settings.method.adapter_name_or_path.strip():
            log(Msg("log.phase_drift"))  # from the base model only: the check's cache holds the base's answers
            drift_base = drift_baseline(settings, log, base, tokenizer, model_path)
        log(Msg("log.phase_verdict"))
        held = verdict_baseline(settings, log, base, tokenizer, {"validation": eval_rows, "train": train_rows},
                                held_out_scorer(settings.method), settings.method.max_completion_length)
        del base
    output = trainer.train(resume_from_checkpoint=resume_point(run, log, resume))
    target = run.output_dir(settings.method.finetuning_type)
    save_result(trainer, tokenizer, target, log)
    figures = run_figures(settings, trainer, output, target, plan)
    stopped = stop_event is not None and stop_event.is_set()
    checked = (drift_base is not None or held is not None) and not stopped  # Stop skips both: no load
    tuned = tuned_for_checks(settings, plan, trainer, target, model_path, log) if checked else trainer.model
    if drift_report := drift_result(run, log, drift_base, tuned, tokenizer):
        figures["drift"] = drift_report
    if report := verdict_result(run, log, held, tuned, tokenizer, settings, drift_report, stopped):
        figures["verdict"] = {key: report[key] for key in ("split", "rows", "metric", "base", "tuned", "line")}
    return figures


def preference_split(settings: Settings, run: RunFolder, log, resume: bool) -> tuple[list, list]:
    """Train and validation rows: the saved split when resuming, else the file (or the votes) read afresh."""
    if resume and run.split_file(SPLIT_NAMES["train"]).exists():
        return run.split(SPLIT_NAMES["train"]), run.split(SPLIT_NAMES["validation"])
    stage, d = settings.stage, settings.data
    rows, problems = stage_rows(settings)
    if not rows or (problems and not d.drop_bad_rows):
        raise DataError(Msg("log.no_data", problems=[Msg("problem", where=w, problem=m) for w, m in problems[:5]]))
    if problems:
        log(Msg("log.dropped", count=len(problems), where=problems[0][0], problem=problems[0][1]))
    train, validation, _ = data_mod.split_rows(rows, d.validation_share, 0.0, settings.training.seed, d.split_by_order)
    if is_main_process():
        run.write_splits({SPLIT_NAMES["train"]: train, SPLIT_NAMES["validation"]: validation})
    log(Msg("pref.log_data", stage=stage.label, source=source_label(d.dataset_path), train=len(train),
            validation=len(validation)))
    return train, validation


def stage_rows(settings: Settings) -> tuple[list[dict], list]:
    """The stage's usable rows (the first N where the settings say so) and every problem: what the run trains on
    and what the recipe is sized to."""
    stage, d = settings.stage, settings.data
    if stage.data == PROMPTS:
        rows, problems = load_prompt_rows(d.dataset_path, settings.method.reward_funcs, d.system_prompt)
    else:
        rows, problems = load_preference_rows(d.dataset_path, stage.name)
    return (rows[:d.max_samples] if d.max_samples > 0 else rows), problems


def config_kwargs(settings: Settings, plan: dict, has_eval: bool = True) -> dict:
    """The stage's TRL config arguments from the same fields as SFT's: every SFT argument (learning rate, epochs,
    batches, schedule, precision, saving, evaluation), the stage's sample order and its beta. Plain dict, so the
    TRL config export writes the same (studio/training/repeat.py)."""
    stage = settings.stage
    kwargs = sft_config_kwargs(settings, plan)
    # Length grouping needs SFT's token lengths, and padding-free batches SFT's collator: neither exists here.
    # Their collators read the prompt / chosen / rejected columns themselves: the Trainer must not drop them.
    kwargs.update(train_sampling_strategy=stage.sample_order, padding_free=False, remove_unused_columns=False)
    if stage.beta:
        kwargs["beta"] = settings.method.beta
    if stage.generates:
        kwargs.update(practice_kwargs(settings))
    if not has_eval or stage.generates:  # too few pairs for a validation row (a handful of votes): no evaluation
        kwargs.update(eval_strategy="no", eval_on_start=False, load_best_model_at_end=False)
    return kwargs


def practice_kwargs(settings: Settings) -> dict:
    """GRPO's own arguments. The studio's batch size counts prompts (what a user has rows of); TRL's counts sampled
    answers, so it is the prompts times the answers per prompt. No evaluation loss: the run's held-out verdict
    scores greedy answers with the same rewards instead (TRL would sample every validation prompt as often)."""
    from studio.core.rewards import weights_of  # light

    m = settings.method
    return {"num_generations": m.num_generations, "max_completion_length": m.max_completion_length,
            "temperature": m.sampling_temperature,
            "per_device_train_batch_size": settings.training.per_device_train_batch_size * m.num_generations,
            "reward_weights": weights_of(m), "disable_dropout": True, "log_completions": False}


def trainer_config(settings: Settings, plan: dict, output_dir: str, has_eval: bool = True):
    """The stage's TRL config (DPOConfig, KTOConfig, ORPOConfig), with the arguments it knows."""
    config_class, _ = settings.stage.classes()
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

    stage = settings.stage
    model, peft_config = _policy(settings, stage, plan, model_path, log)
    config = trainer_config(settings, plan, str(run.checkpoints_dir), has_eval=bool(eval_rows))
    extra = {"ref_model": None} if stage.reference else {}  # None: TRL's frozen copy of the adapter
    if stage.generates:  # GRPO: the chosen rewards score the sampled answers; no evaluation set (see above)
        functions = practice_rewards(settings, run, log)
        config.reward_weights = [*config.reward_weights, *[1.0] * (len(functions) - len(config.reward_weights))]
        extra, eval_rows = {"reward_funcs": functions}, []
    trainer = stage_trainer(settings, run, model, config, Dataset.from_list(train_rows),
                            Dataset.from_list(eval_rows) if eval_rows else None, tokenizer, peft_config, callbacks,
                            **extra)
    return quiet_trainer(trainer, log, f"{stage.label} {settings.method.finetuning_type}")


SAMPLES_PER_STEP = 4  # sampled answers kept per scored batch: enough to read what the rewards reward


def practice_rewards(settings: Settings, run: RunFolder, log=lambda message: None) -> list:
    """The chosen built-in rewards (and the user's own, where allowed) as TRL's reward functions; each scored
    batch leaves a few of its answers with their rewards in the run's completions.jsonl, which the Train tab
    shows. Answers a user's pattern gave up on (studio/core/user_patterns.py) scored 0 and are said in the log."""
    from studio.core.rewards import message_text, options_of, reward_functions, user_text  # light
    from studio.core.user_patterns import timeouts_now, timeouts_since

    counted = timeouts_now()

    def record(prompts, completions, scores: dict) -> None:
        if not is_main_process():
            return
        if given_up := timeouts_since(counted):
            counted.update({name: counted.get(name, 0) + n for name, n in given_up.items()})
            for name, count in given_up.items():
                log(Msg("log.pattern_timeouts", reward=name, count=count))
        with open(run.completions_file, "a", encoding="utf-8") as f:
            for i in range(min(SAMPLES_PER_STEP, len(completions))):
                f.write(json.dumps({"prompt": user_text(prompts[i]), "completion": message_text(completions[i]),
                                    "rewards": {name: values[i] for name, values in scores.items()}},
                                   ensure_ascii=False) + "\n")

    own = own_rewards(settings.method.reward_code_path)
    names = [*settings.method.reward_funcs, *(f.__name__ for f in own)]
    return reward_functions(names, options_of(settings.method), record, own)


def own_rewards(path: str) -> list:
    """The user's own reward functions (studio/core/code_rewards.py), refused unless the switch is on."""
    if not path.strip():
        return []
    from studio.core.code_rewards import load_rewards

    try:
        return load_rewards(path)
    except ValueError as err:
        raise DataError(err.args[0]) from err

