"""Replay in a run (studio/chat/replay.py): whether and how much the run replays, the replay prompts the base model
must still answer (answered ahead with the checks' prompts where it can: run_checks.base_answers_ahead), and the
training split with the base model's own general answers mixed in. Torch stays in the functions that run models."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from studio.core.config import Settings
from studio.core.runs import RunFolder
from studio.core.text import Msg, reason_of
from studio.data.facts import speaks_about_itself
from . import run_checks
from .distributed import is_main_process, main_process_first
from .run_steps import RunLog, RunModel


@dataclass
class ReplayChoice:
    """What a run replays (studio/plan/recipe.replay_decision): how many answers, in which languages, and why."""
    why: Msg
    languages: list[str]
    count: int
    training_rows: int
    identity: bool  # identity data: the small talk first


def replay_choice(settings: Settings, log: RunLog, train: list[dict], task_rows: int,
                  training_rows: int) -> ReplayChoice | None:
    """The run's replay, or None (logged with its reason) where it is off. `task_rows`: what the plan counts (all
    the task's rows, plain text as blocks); `training_rows`: the training split's, of which replay is a share."""
    from studio.chat import replay
    from studio.plan.recipe import replay_decision

    identity = speaks_about_itself(train)  # replayed at any length, and small talk first
    on, why = replay_decision(settings, task_rows, identity=identity)
    if not on:
        log(Msg("log.replay_off", why=why))
        return None
    return ReplayChoice(why, replay.data_languages(train),
                        replay.replay_count(training_rows, settings.data.replay_share), training_rows, identity)


def replay_asks(choice: ReplayChoice | None, model_path: str, tokenizer, settings: Settings) -> list:
    """The replay prompts the base model must still answer (none cached): [] without replay."""
    from studio.chat import replay

    if choice is None:
        return []
    return replay.missing_asks(model_path, tokenizer, choice.languages, choice.count, settings.training.seed,
                               choice.identity)


def with_replay(settings: Settings, run: RunFolder, log: RunLog, prepared, tokenizer, plan: dict, loaded: RunModel,
                choice: ReplayChoice):
    """The training split with the base model's own general answers mixed in where replay is on
    (studio/chat/replay.py); validation and test stay the user's rows, so the verdict and the kept checkpoint judge the
    task alone. A replay that cannot be made is logged and the run goes on without it."""
    from studio.chat import replay

    why, languages, count, training_rows = choice.why, choice.languages, choice.count, choice.training_rows

    def load_base():  # the model the checks before training answer with (RunModel.for_checks): one load for all
        return loaded.for_checks(plan)

    try:
        with main_process_first():  # one process generates and caches; the others read the cache
            with run_checks.answering(log, "phase.replay"):
                rows, cached, seconds = replay.base_answers(loaded.path, tokenizer, languages, load_base, log, count,
                                                            settings.training.seed, choice.identity)
    except Exception as err:  # noqa: BLE001 - replay helps a run; it is never a reason to stop one
        log(Msg("log.replay_off", why=reason_of(err)))
        loaded.drop()
        return prepared
    picked = replay.pick(rows, count, settings.training.seed)
    if not picked:
        return prepared
    if system := settings.data.system_prompt.strip():  # general answers in the task's own context: under the
        # same system prompt the model learns when to give its new identity and when a plain answer
        picked = [{**row, "messages": [{"role": "system", "content": system}, *row["messages"]]} for row in picked]
    log(Msg("log.replay", count=len(picked), total=training_rows + len(picked), languages=", ".join(languages),
            how=Msg("replay.cached" if cached else "replay.generated"), seconds=seconds, why=why))
    mixed = prepared.train + picked
    random.Random(settings.training.seed).shuffle(mixed)  # spread through the epoch, not a block at its end
    if is_main_process():
        run.write_splits({"train": mixed, "validation": prepared.validation, "test": prepared.test})
    return dataclasses.replace(prepared, train=mixed)
