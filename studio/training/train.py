"""A training run: prepare -> train -> save.

Before the first step the run folder (layout: studio/core/runs.py) holds the settings (as a preset), the hardware plan
with its reasons, the data split and an empty metrics log, so a run can be inspected, resumed and reproduced
without the UI. The same `run_training` serves the headless CLI and the Train tab (which calls it from a
background thread). Heavy libraries are imported inside the functions that train, never at module level.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from studio.engine import heavy
from studio.core import stopping
from studio.core.config import Settings
from studio.core.runs import SPLITS, RunFolder, process_identity
from studio.core.stages import EXAMPLES
from studio.core.text import Msg, on_off, reason_of
from studio.core.trl_args import to_lora_config, to_sft_config
from studio.models import hardware, models
from studio.templates.chat_template import added_template, exact_target, replies_message
from studio.templates.template_profile import template_profile
from studio.data import blocks
from studio.data.facts import speaks_about_itself, taught_facts
from studio.data.tokenized import encode_split, notes_of
from studio.plan.advice import multi_turn_share, packing_suits_data
from studio.plan.diagnosis import not_learning, still_learning_note
from studio.plan.mixing import build_mix
from studio.chat import generation
from . import run_checks, run_replay
from .best import kept_message, BestKeeper, keeper_callback
from .distributed import is_main_process, main_process_first, shared_run_dir, world_size
from .preference_train import stage_rows, train_preference
from .run_steps import (DataError, Progress, RunLog, RunModel, check_method, explain_error, make_callbacks,
                        quiet_trainer, resume_point, run_figures, run_plan, save_result, stage_trainer,
                        tuned_for_checks, write_preset)

__all__ = ["DataError", "RunLog", "explain_error", "make_callbacks", "run_training"]  # the run's public names


# ---------------------------------------------------------------- preparation

@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    format: str
    dropped: int
    mix: dict | None = None  # several files: each file's counts and every row's file (mixing.Mix.record)


def prepare_data(settings: Settings) -> tuple[PreparedData | None, list[tuple[str, str]]]:
    """The run's rows split three ways, each file of a mix split on its own and sampled to its share."""
    mix, problems = build_mix(settings.data, settings.training.seed)
    if mix is None:
        return None, problems or [("dataset_path", Msg("data.no_usable_rows"))]
    formats = sorted({f.loaded.format or "?" for f in mix.files})
    return PreparedData(mix.split("train"), mix.split("validation"), mix.split("test"), "+".join(formats),
                        sum(len(f.loaded.bad_rows) for f in mix.files),
                        mix.record() if len(mix.files) > 1 else None), problems


def saved_split(run: RunFolder) -> PreparedData | None:
    """A resumed run trains on the split it was started with, even if the source file changed since."""
    if not run.split_file("train").exists():
        return None
    return PreparedData(*(run.split(name) for name in SPLITS), format="messages", dropped=0, mix=run.mix())


# ---------------------------------------------------------------- the run

FACT_ROWS = 500  # training rows read for the facts the data teaches: a repeated name shows in far fewer


def run_training(settings: Settings, run_dir: Path | None = None, progress: Progress | None = print,
                 stop_event: threading.Event | None = None, resume: bool = False, facts=None,
                 keep: set[str] | frozenset[str] | None = None) -> dict:
    """Train and return the final status dict. Never raises for a failed run: the status says what went wrong.
    `keep`: the recipe fields that are the user's own (studio/plan/recipe.py); every other recipe field takes the plan's
    value for this data. None: the settings are final as given (the form, which the plan already filled)."""
    run = RunFolder(shared_run_dir(run_dir))
    status = {"status": "running", "started": datetime.now().isoformat(timespec="seconds"), "pid": os.getpid(),
              "process": process_identity(), "run_dir": str(run.path)}
    if world_size() > 1:
        status["processes"] = world_size()
    write_status = run.write_status if is_main_process() else (lambda value: None)
    try:  # a folder that cannot be made or written is a failed run with a reason, not a silently dead thread
        run.path.mkdir(parents=True, exist_ok=True)
        log = RunLog(run, progress)
        write_status(status)
    except OSError as err:
        advice = explain_error(err)
        return {**status, "status": "failed", "error": f"{type(err).__name__}: {err}", "advice": advice,
                "advice_key": advice.key, "error_message": reason_of(err).to_json()}
    started = time.perf_counter()
    try:
        with stopping.stop_on(stop_event):
            status.update(_train(settings, run, log, stop_event, resume, facts, keep))
        status["status"] = "stopped" if stop_event is not None and stop_event.is_set() else "finished"
    except stopping.StopRequested:  # pressed before the first step: nothing new was trained
        status["status"] = "stopped"
        log(Msg("log.stopped_before_training"))
    except Exception as err:  # a failed run must never take the caller (the UI server) down with it
        status.update(_failure(run, err))
        log(Msg("log.failed", error=Msg.from_json(status["error_message"]), advice=status["advice"]))
    finally:
        status["wall_time_s"] = round(time.perf_counter() - started, 1)
        status["finished"] = datetime.now().isoformat(timespec="seconds")
        write_status(status)
        models.free_memory()
    return status


def _failure(run: RunFolder, err: Exception) -> dict:
    """The traceback to the log file, and the status fields that explain the failure."""
    path = run.log_file if is_main_process() else run.path / f"log-rank{os.environ.get('RANK')}.txt"  # one per writer
    with open(path, "a", encoding="utf-8") as f:
        f.write(traceback.format_exc())
    advice = explain_error(err)
    # "error" keeps Python's text for the command line and log.txt (neither is served to the page);
    # "error_message" is what the page shows: the studio's own explanation, or the kind of failure.
    return {"status": "failed", "error": f"{type(err).__name__}: {err}", "advice": advice, "advice_key": advice.key,
            "error_message": reason_of(err).to_json()}


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
    multi = multi_turn_share([r["messages"] for r in rows if "messages" in r])
    lengths = sorted(len(ids) for ids in encoded["input_ids"])
    suits, why = packing_suits_data(multi, lengths[len(lengths) // 2] if lengths else None)
    return plan if suits else {**plan, "packing": False, "packing_reason": why}


def _train(settings: Settings, run: RunFolder, log: RunLog, stop_event, resume: bool, facts, keep=None) -> dict:
    if keep is not None and not resume:  # a resumed run keeps the recipe it was started with
        settings = planned_settings(settings, keep, log, facts)
    if settings.stage.data != EXAMPLES:  # pairs or labelled answers: TRL's preference trainers
        return train_preference(settings, run, log, stop_event, resume, facts)
    heavy.ensure_imported()
    write_preset(settings, run)  # 1. Everything a reader needs, written before any model is loaded.
    facts = facts or hardware.detect()
    with main_process_first():  # the starter model is downloaded and converted once, not by every process
        model_path = models.resolve_model_path(settings.model.model_name_or_path, log)
    plan = run_plan(settings, run, log, facts, model_path)
    if not resume:  # before the split is saved: a resumed run trains on the rows (and prompt) it started with
        settings = with_neutral_system(settings, run, log, model_path)
    prepared = _split(settings, run, log, resume)
    check_method(settings, facts)
    tokenizer = models.load_tokenizer(model_path, settings.model.trust_remote_code)  # 2. Model and data.
    if getattr(tokenizer, "studio_added_template", False):
        log(Msg("log.base_model", model=settings.model.model_name_or_path, template=added_template(tokenizer)))
    log_preflight(log, prepared.train, tokenizer, settings.model.model_name_or_path)
    # The verdict's rows are the user's own: taken before replay adds general answers to the training split.
    held_rows = {"test": prepared.test, "validation": prepared.validation, "train": prepared.train[:64]}
    taught = taught_facts(prepared.train[:FACT_ROWS], settings.data.placeholder_values)  # for the drift check
    task_rows = len(prepared.train)
    loaded = RunModel(settings, log, model_path)
    choice = None if resume else run_replay.replay_choice(  # a resumed split already holds its replay rows
        settings, log, prepared.train, planning_rows(prepared, settings, prepared.train + prepared.validation +
                                                     prepared.test), planning_rows(prepared, settings, prepared.train))
    # the base model's answers that replay, the drift check and the verdict will ask, in one pass where replay
    # must generate anyway: fewer, fuller batches than three passes of their own
    ahead = run_checks.base_answers_ahead(settings, log, loaded, plan, tokenizer, model_path, held_rows,
                                          run_replay.replay_asks(choice, loaded.path, tokenizer, settings))
    if choice is not None:
        with generation.given(ahead):
            prepared = run_replay.with_replay(settings, run, log, prepared, tokenizer, plan, loaded, choice)
    replayed = len(prepared.train) - task_rows
    stopping.check()
    log(Msg("log.phase_tokenise", rows=len(prepared.train) + len(prepared.validation)))
    train_ds, eval_ds, plan = _tokenise(settings, run, log, plan, prepared, tokenizer)
    stopping.check()
    by_file = run_checks.validation_by_file(prepared.mix, prepared.validation)
    del prepared  # the rows live on in the run folder and the memory-mapped token cache; no third copy in RAM
    drift_base, held_out = _base_checks(settings, log, loaded, plan, tokenizer, model_path, held_rows, ahead)
    del ahead
    trainer = _trainer(settings, run, log, plan, facts, loaded, tokenizer, train_ds, eval_ds, stop_event)
    log(Msg("log.phase_train"))
    output = trainer.train(resume_from_checkpoint=resume_point(run, log, resume))  # 3. Train.
    hardware.return_free_memory()  # the UI process lives on, and the checks below would add to the freed heap
    best = trainer.studio_keeper.restore(trainer.model, trainer.state.global_step) if trainer.studio_keeper else None
    target = run.output_dir(settings.method.finetuning_type)  # 4. Save the result and the figures.
    save_result(trainer, tokenizer, target, log)
    figures = run_figures(settings, trainer, output, target, plan)
    figures["replayed_rows"] = replayed
    if best is not None:
        figures.update(best_step=best["step"], best_eval_loss=best["eval_loss"])
    if best is not None:
        stopped_early = trainer.studio_keeper.stop_reason()
        log(kept_message(figures, settings, stopped_early))
        reached_end = figures["global_step"] >= figures.get("planned_steps", figures["global_step"])
        if (more := still_learning_note(run.metrics(), settings, stopped_early, reached_end)) is not None:
            figures["still_learning"] = more.to_json()
            log(more)
    if by_file:
        figures["eval_by_file"] = run_checks.evaluate_by_file(settings, trainer, tokenizer, by_file, log)
    stopped = stop_event is not None and stop_event.is_set()
    checked = (drift_base is not None or held_out is not None) and not stopped  # Stop skips both: no load
    tuned = tuned_for_checks(settings, plan, trainer, target, model_path, log) if checked else trainer.model
    with run_checks.tuned_answers(log, tuned, tokenizer, drift_base, None if stopped else held_out):
        if drift_report := run_checks.drift_result(run, log, drift_base, tuned, tokenizer, taught):
            figures["drift"] = {**drift_report, "replayed": replayed}  # the remedies differ with replay on
        report = run_checks.verdict_result(run, log, held_out, tuned, tokenizer, settings, drift_report, stopped)
    if report is not None:
        figures["verdict"] = {key: report[key] for key in ("split", "rows", "metric", "base", "tuned", "line")}
    elif settings.training.pilot:  # a trial of the settings: how it went, never whether it learned
        figures["pilot"] = True
        log(Msg("log.pilot_done", steps=figures["global_step"], seconds=figures.get("train_runtime_s") or 0.0))
    elif (warning := not_learning(settings, run.metrics())) is not None:  # no held-out rows: the curves' word
        log(warning)
    return figures




def planning_rows(prepared: PreparedData, settings: Settings, rows: list[dict]) -> int:
    """What the plan and replay count as rows: the rows, or for plain text the blocks its documents become."""
    if prepared.format == "text":
        return blocks.estimated_blocks(rows, settings.training.max_length)
    return len(rows)


def planned_settings(settings: Settings, keep, log: RunLog, facts=None) -> Settings:
    """The settings with the recipe's values for this data in every recipe field the user left to the plan
    (studio/plan/recipe.py), each logged with its reason. Data that cannot be read is left to the split to report."""
    from studio.plan.recipe import apply_recipe, recipe_for  # deferred: only runs that plan need it

    identity = False
    if settings.stage.data != EXAMPLES:  # pairs, labelled answers, prompts: the stage's own reader
        try:
            rows = len(stage_rows(settings)[0])
        except (OSError, ValueError):  # a file that cannot be read: the run's split says why
            return settings
    else:
        prepared, _ = prepare_data(settings)
        rows = planning_rows(prepared, settings, prepared.train + prepared.validation + prepared.test) if prepared else 0
        identity = bool(prepared) and speaks_about_itself(prepared.train)
    if not rows:
        return settings
    shape = models.model_shape(settings.model.model_name_or_path, settings.model.trust_remote_code)
    devices = max(world_size(), 1)
    recipe = recipe_for(settings, rows, shape.parameters if shape else None, devices, identity)
    planned = apply_recipe(settings, recipe, keep)
    for name, choice in recipe.choices.items():
        if name not in keep:
            log(Msg("log.recipe", field=name, value=choice.value, why=choice.why))
    for note in recipe.notes:
        if not note.key.startswith("replay."):  # the replay decision is logged where replay is made
            log(note)
    return planned


def _split(settings: Settings, run: RunFolder, log: RunLog, resume: bool) -> PreparedData:
    """The run's rows split three ways: the saved split when resuming, else read from the data file."""
    prepared, problems = (saved_split(run), []) if resume else (None, [])
    if prepared is None:
        prepared, problems = prepare_data(settings)
    if prepared is None:
        raise DataError(Msg("log.no_data", problems=[Msg("problem", where=w, problem=m) for w, m in problems[:5]]))
    if problems:
        log(Msg("log.dropped", count=prepared.dropped, where=problems[0][0], problem=problems[0][1]))
    if is_main_process():  # every process splits the same way (same seed); one writes it down
        run.write_splits({"train": prepared.train, "validation": prepared.validation, "test": prepared.test})
        if prepared.mix:
            run.write_mix(prepared.mix)
    log(Msg("log.data", format=prepared.format, train=len(prepared.train), validation=len(prepared.validation),
            test=len(prepared.test)))
    return prepared


def with_neutral_system(settings: Settings, run: RunFolder, log: RunLog, model_path: str) -> Settings:
    """Identity rows without a system prompt under a template whose default names another assistant ("... named
    SmolLM, trained by Hugging Face") train with a neutral system prompt instead (preflight.neutral_system), and
    the run's preset says so, so that Chat and the exports use the prompt the model was trained with. The user's
    own system prompt always wins."""
    from studio.data.data import load_dataset_file
    from studio.templates.ollama import default_system
    from studio.plan.preflight import neutral_system

    d = settings.data
    if d.system_prompt.strip():
        return settings
    try:
        rows = load_dataset_file(d.dataset_path, d.dataset_format, d.column_mapping or None).rows
        tokenizer = models.load_tokenizer(model_path, settings.model.trust_remote_code)
        neutral = neutral_system(rows, tokenizer)
    except Exception:  # noqa: BLE001 - unreadable data or tokenizer: the steps below say why
        return settings
    if not neutral:
        return settings
    settings = settings.model_copy(update={"data": d.model_copy(update={"system_prompt": neutral})})
    write_preset(settings, run)
    log(Msg("log.neutral_system", neutral=neutral, default=default_system(tokenizer).strip()[:200]))
    return settings


def log_preflight(log: RunLog, rows: list[dict], tokenizer, model: str) -> None:
    """The pre-flight checks' warnings (studio/plan/preflight.py) on the rows this run trains, before its first step:
    said where the CLI and the log show them, not only on the Data tab."""
    from types import SimpleNamespace

    from studio.plan.preflight import preflight_findings

    as_rows = [SimpleNamespace(number=i + 1, messages=r.get("messages")) for i, r in enumerate(rows)]
    for finding in preflight_findings(as_rows, tokenizer, model):
        if finding.level == "warning":
            log(Msg("log.preflight", check=finding.check, message=finding.message))


def _base_checks(settings: Settings, log: RunLog, loaded: RunModel, plan: dict, tokenizer, model_path: str,
                 held_rows: dict, ahead: dict):
    """(drift baseline, held-out baseline): the base model's side of both checks before the first step, answered
    by the model Chat's base side would be (RunModel.for_checks), with the answers found ahead (each None when
    off or impossible)."""
    t = settings.training
    if t.pilot or not (t.drift_check or any(held_rows.values())):
        model = None  # a pilot skips both (each says so); no check at all needs no model
    else:
        model = loaded.for_checks(plan)
    if t.drift_check and not t.pilot:
        log(Msg("log.phase_drift"))
    with generation.given(ahead):
        drift_base = run_checks.drift_baseline(settings, log, model, tokenizer, model_path)  # untrained yet
        if any(held_rows.values()) and not t.pilot:
            log(Msg("log.phase_verdict"))
        held_out = run_checks.verdict_baseline(settings, log, model, tokenizer, held_rows)
    return drift_base, held_out


def _tokenise(settings: Settings, run: RunFolder, log: RunLog, plan: dict, prepared: PreparedData, tokenizer):
    """(train dataset, validation dataset or None, plan): tokenised once per data and template (cached), rows
    over the cutoff dropped when asked, and packing turned off where the data does not suit it."""
    assistant_only = settings.training.assistant_only_loss
    with main_process_first():
        train_ds = encode_split(tokenizer, prepared.train, assistant_only)
        eval_ds = encode_split(tokenizer, prepared.validation, assistant_only) if prepared.validation else None
    if prepared.format != "text":  # plain text trains every token; log.blocks below says so
        log_target(log, tokenizer, [notes_of(ds) for ds in (train_ds, eval_ds) if ds is not None])
    if len(train_ds) == 0:
        raise DataError(Msg("stats.all_refused"))
    if prepared.format == "text":  # long documents: cut into blocks of the cutoff, not truncated
        cutoff = settings.training.max_length
        counted = blocks.figures([len(ids) for ids in train_ds["input_ids"]], cutoff)
        train_ds, eval_ds = blocks.blocked(train_ds, cutoff), blocks.blocked(eval_ds, cutoff)
        log(Msg("log.blocks", figures=counted.message(cutoff)))
    if settings.data.drop_long_rows:
        train_ds, eval_ds = (drop_long(ds, settings.training.max_length, log, name)
                             for ds, name in ((train_ds, "train"), (eval_ds, "validation")))
    if plan["packing"] and settings.training.packing == "auto":  # the hardware could pack; does the data suit it?
        plan = packing_for_data(plan, prepared.train, train_ds)
        if is_main_process():
            run.write_plan(plan)
    log(Msg("log.packing", value=on_off(plan["packing"]), why=plan["packing_reason"]))
    return train_ds, eval_ds, plan


def log_target(log: RunLog, tokenizer, notes: list[dict]) -> None:
    """Before the first step: which tokens are trained, and every reply, reasoning or row that is not."""
    merged = {k: [item for n in notes for item in n.get(k, [])]
              for k in ("refused", "untrained", "reasoning_lost", "reasoning_split")}
    for attribute in ("untrained", "reasoning_lost", "reasoning_split"):
        if merged[attribute]:
            log(replies_message(attribute, merged[attribute]))
    if not merged["untrained"] and not merged["reasoning_lost"]:
        log(Msg("log.target", target=exact_target(template_profile(tokenizer))))
    if refused := merged["refused"]:
        log(Msg("log.template_rows", count=len(refused), problem=Msg.from_json(refused[0][1])))
    if folded := sum(n.get("folded_system", 0) for n in notes):
        log(Msg("finding.folded_system", count=folded))


def _trainer(settings: Settings, run: RunFolder, log: RunLog, plan: dict, facts, loaded: RunModel, tokenizer,
             train_ds, eval_ds, stop_event):
    """TRL's SFTTrainer (the studio's lean variant) on the loaded model, with the studio's callbacks; with
    validation rows, the best weights are kept and a validation loss that stopped improving ends the run
    (studio/training/best.py)."""
    method = settings.method.finetuning_type
    model = loaded.load(plan, method, keep=False)
    if method == "freeze":
        models.freeze_all_but_last(model, settings.method.freeze_trainable_layers)
    callbacks = make_callbacks(run, log, stop_event)
    holder = {}
    keeper = BestKeeper(run.best_dir, settings.training.early_stopping_patience,
                        settings.training.early_stopping_threshold) if eval_ds is not None else None
    if keeper is not None:
        callbacks.append(keeper_callback(keeper, lambda: holder["trainer"].model, log, is_main_process()))
    config = to_sft_config(settings, plan, str(run.checkpoints_dir))
    trainer = stage_trainer(settings, run, model, config, train_ds, eval_ds, tokenizer, to_lora_config(settings),
                            callbacks)
    holder["trainer"], trainer.studio_keeper = trainer, keeper
    if keeper is not None and trainer.accelerator.distributed_type.value in ("FSDP", "DEEPSPEED"):
        # Each process holds shards only: the run keeps its last weights (said in the log).
        trainer.remove_callback(type(callbacks[-1]))
        trainer.studio_keeper = None
        log(Msg("log.best_sharded"))
    quiet_trainer(trainer, log, method)
    log(Msg("log.padding_free", value=on_off(trainer.padding_free_batches),
            why=Msg("log.padding_free_on" if trainer.padding_free_batches else "log.padding_free_off")))
    if world_size() > 1:
        log(Msg("log.processes", count=world_size(), kind=trainer.accelerator.distributed_type.value))
    return trainer


