"""What a training run measures besides its loss curve: the general-ability drift (studio/chat/drift.py) and, for a
mix of files, each file's validation loss. Neither may fail a run: a check that cannot run says why in the log
and the run goes on. Torch stays in the functions that run the models."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

from studio.core.stopping import StopRequested
from studio.core.text import Msg, reason_of
from studio.chat import drift, generation
from .distributed import is_main_process, sharded, world_size


def answering(log, phase: str):
    """A block whose answers are counted in the log (and so in the Train tab's status): "Held-out answers of the
    base model: 32 of 60 prompts (41 s)"."""
    started = time.perf_counter()
    return generation.counted(lambda done, total: log(Msg("log.answered", phase=Msg(phase), done=done, total=total,
                                                          seconds=time.perf_counter() - started)))


def measured_here(log, skipped: str) -> bool:
    """Whether this process measures. In several processes the main one measures alone, with the model it holds
    whole (data parallelism): the others meet it at the first training step, which waits for it. Weights sharded
    over the processes (FSDP, ZeRO-3) cannot answer in one of them, so the checks are left out there."""
    if world_size() == 1:
        return True
    if sharded():
        log(Msg(skipped, reason=Msg("drift.not_distributed")))
        return False
    return is_main_process()


def base_answers_ahead(settings, log, loaded, plan: dict, tokenizer, model_path: str, held_rows: dict,
                       replay_asks: list) -> dict:
    """Where replay must generate its answers, the base model also answers the drift check's and the held-out
    check's prompts in the same pass (those not cached): {(prompt ids, cap): answer ids}, handed to each check
    (generation.given). One pass of fuller batches instead of three: a step of a small model costs about the same
    for 40 rows as for 14. Empty where there is nothing to share (each check then answers on its own, as before)."""
    from studio.chat import verdict

    if not replay_asks or settings.training.pilot or world_size() > 1:
        return {}
    try:
        model = loaded.for_checks(plan)  # the model training takes next, or Chat's copy where Chat's dtype differs
        asks = list(replay_asks)
        if settings.training.drift_check:
            asks += drift.base_asks(model, tokenizer, model_path, settings.training.drift_dataset_path,
                                    settings.data.system_prompt)
        asks += verdict.base_asks(tokenizer, held_rows)
        if len(asks) == len(replay_asks):
            return {}
        log(Msg("log.base_answers_start", prompts=len(asks)))
        with answering(log, "phase.base_answers"):
            return generation.answer_ahead(model, tokenizer, asks)
    except Exception:  # noqa: BLE001 - a shortcut only: each check answers on its own and says what went wrong
        return {}


def drift_baseline(settings, log, model, tokenizer, model_path: str):
    """The base model's side of the drift check, before the first step (None when off or impossible)."""
    if settings.training.pilot:
        log(Msg("log.drift_skipped", reason=Msg("verdict.pilot_skipped")))
        return None
    if not settings.training.drift_check or not measured_here(log, "log.drift_skipped"):
        return None
    try:
        with answering(log, "phase.drift_base"), generation.as_base(model):
            baseline = drift.before_training(model, tokenizer, model_path, settings.training.drift_dataset_path,
                                             settings.data.system_prompt)
    except Exception as err:  # noqa: BLE001 - the check is a measurement, never a reason to stop a run
        log(Msg("log.drift_skipped", reason=reason_of(err)))
        return None
    if baseline is None:
        log(Msg("log.drift_skipped", reason=Msg("drift.no_prompts", source=settings.training.drift_dataset_path)))
        return None
    log(Msg("log.drift_before", prompts=len(baseline.prompts), seconds=baseline.seconds,
            how=Msg("drift.cached" if baseline.cached else "drift.generated")))
    return baseline


def tuned_answers(log, model, tokenizer, baseline, held):
    """A block in which the drift check and the verdict take the tuned model's answers from one shared
    generation pass (all the general prompts, the held-out prompts and the reworded questions): together they
    fill fewer, fuller batches than each alone. With only one of the checks, each answers alone as before (the
    drift check then generates only the answers that changed)."""
    from studio.chat import verdict

    generation.as_served(model)  # training is over: the adapter as Chat loads it
    if baseline is None or held is None:
        return nullcontext()
    asks = [(ids, drift.MAX_NEW_TOKENS) for ids in baseline.prompt_ids]
    asks += [(ids, held.max_new_tokens) for ids in held.prompt_ids]
    asks += [(ids, verdict.reworded_tokens(held)) for ids in held.reworded_ids or []]
    return _answered_together(log, model, tokenizer, asks)


@contextmanager
def _answered_together(log, model, tokenizer, asks):
    with answering(log, "phase.checks_tuned"), generation.answered_together(model, tokenizer, asks):
        yield


def drift_result(run, log, baseline, model, tokenizer, taught=None) -> dict | None:
    """The tuned model's side, written to drift.json and logged; the figures keep the headline numbers. `taught`:
    the facts the data teaches (studio/data/facts.py), looked for in the general answers."""
    if baseline is None:
        return None
    try:
        generation.as_served(model)  # a preference run comes here without tuned_answers
        with answering(log, "phase.drift_tuned"):
            report = drift.after_training(baseline, model, tokenizer, taught)
    except StopRequested:  # the weights are saved; Stop means now, so the check is left out
        log(Msg("log.drift_skipped", reason=Msg("verdict.stopped")))
        return None
    except Exception as err:  # noqa: BLE001
        log(Msg("log.drift_skipped", reason=reason_of(err)))
        return None
    run.write_drift(report)
    log(drift.summary(report))
    return {**{key: report[key] for key in ("drift", "changed", "prompts", "base_loss", "tuned_loss")},
            "leak": report["leak"], "collapse": report["collapse"]}


def validation_by_file(mix: dict | None, validation: list[dict]) -> list[tuple[str, list[dict]]]:
    """(file, its validation rows) for each file of a mix, from the run's record of which row came from where."""
    if not mix or not validation:
        return []
    sources = [i for i, _ in mix["rows"]["validation"]]
    files = [f["dataset_path"] for f in mix["files"]]
    return [(name, [row for row, src in zip(validation, sources) if src == i]) for i, name in enumerate(files)
            if i in sources]


def evaluate_by_file(settings, trainer, tokenizer, groups: list[tuple[str, list[dict]]], log) -> list[dict]:
    """Each file's validation loss on the trained model, with the trainer's own loss."""
    from studio.data.tokenized import encode_split  # deferred: heavy

    results = []
    for index, (name, rows) in enumerate(groups):
        try:
            dataset = encode_split(tokenizer, rows, settings.training.assistant_only_loss)
            if settings.data.drop_long_rows:
                keep = [i for i, ids in enumerate(dataset["input_ids"]) if len(ids) <= settings.training.max_length]
                dataset = dataset.select(keep)
            if len(dataset) == 0:
                continue
            metrics = trainer.evaluate(eval_dataset=dataset, metric_key_prefix=f"eval_file{index}")
        except Exception as err:  # noqa: BLE001 - the run is saved; a per-file figure must not undo that
            log(Msg("log.eval_file_failed", reason=reason_of(err)))
            return results
        loss = metrics.get(f"eval_file{index}_loss")
        if loss is not None:
            results.append({"file": name, "rows": len(dataset), "eval_loss": round(float(loss), 4)})
            log(Msg("log.eval_file", file=name, loss=loss, rows=len(dataset)))
    return results


def verdict_baseline(settings, log, model, tokenizer, splits: dict, scorer=None, max_new_tokens=None):
    """The base model's answers to the held-out prompts, before the first step (None when there are none or the
    check cannot run: a measurement never stops a run)."""
    from studio.chat import verdict

    if settings.training.pilot:
        log(Msg("log.verdict_skipped", reason=Msg("verdict.pilot_skipped")))
        return None
    if not measured_here(log, "log.verdict_skipped"):
        return None
    try:
        with answering(log, "phase.verdict_base"), generation.as_base(model):
            held = verdict.before_training(model, tokenizer, splits, scorer, max_new_tokens,
                                           settings.data.placeholder_values)
    except Exception as err:  # noqa: BLE001
        log(Msg("log.verdict_skipped", reason=reason_of(err)))
        return None
    if held is None:
        log(Msg("log.verdict_skipped", reason=Msg("verdict.no_rows")))
        return None
    log(Msg("log.verdict_before", rows=len(held.references), split=Msg(f"split.{held.split}"),
            metric=Msg(f"metric.{held.metric}"), why=held.metric_why, seconds=held.seconds))
    return held


def verdict_result(run, log, held, model, tokenizer, settings, drift_report, stopped: bool) -> dict | None:
    """The tuned model's answers, both scores and the one-line verdict; written to verdict.json and logged."""
    from studio.chat import verdict
    from studio.plan.diagnosis import likely_cause

    if held is None:
        return None
    if stopped:  # Stop means now: the tuned answers would cost another generation pass (Chat can still compare)
        log(Msg("log.verdict_skipped", reason=Msg("verdict.stopped")))
        return None
    try:
        generation.as_served(model)
        with answering(log, "phase.verdict_tuned"):
            report = verdict.after_training(held, model, tokenizer)
    except StopRequested:
        log(Msg("log.verdict_skipped", reason=Msg("verdict.stopped")))
        return None
    except Exception as err:  # noqa: BLE001
        log(Msg("log.verdict_skipped", reason=reason_of(err)))
        return None
    cause = verdict.facts_cause(report, likely_cause(settings, run.metrics()))  # a stopped run returned above
    line = verdict.verdict_line(report, drift_report, cause)
    report["line"], report["cause"] = line.to_json(), cause.to_json()  # read back in each reader's language
    report["metric_why"] = report["metric_why"].to_json()
    run.write_verdict(report)
    log(line)
    return report
