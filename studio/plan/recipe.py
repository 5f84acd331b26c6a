"""The recipe: how long, in what batches and how fast to train, computed from the data, the model and the machine.

One pure function, `plan_recipe`, turns (usable rows, model size, method, stage, devices) into the values of the
recipe's fields, each with its one-line reason. The Data tab hands them to the form when a file is loaded, the
Hyperparameters tab shows them beside the user's own values, "Reset to recommended" restores them, and
`launch.py train` fills every recipe field its preset and `--set` leave unset with them. The user's own values
always win: `apply_recipe` only fills the fields it is told are the plan's.

Why these rules (the guide, and the outcome bench's measurements in bench/RESULTS.md):
- A small set must be seen often enough to be learned: at least 60 optimizer updates (replayed rows counted),
  3-10 epochs below 1,000 rows and fewer above (18 updates on a 91-row identity file did not teach the model its
  name; 60 and more did).
- Small data gets a small effective batch, so that those updates exist without twenty epochs.
- The learning rate follows the method and the model size (stages.LEARNING_RATES), or the stage's own rates
  (studio/core/stages.py: preference tuning of a tuned adapter moves it a little).
- Validation loss is measured about eight times a run, the best weights are kept (studio/training/best.py) and training
  stops once it has stopped improving (the U-shape of over-training).
No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from studio.core.config import Settings, flat_values
from studio.core.stages import DEFAULT_STAGE, EXAMPLES, stage_of
from studio.core.text import Msg
from studio.models.estimates import steps_per_epoch, total_steps
from studio.data.data import split_sizes
from studio.data.stats import recommended_test_share, recommended_validation_share

MIN_UPDATES = 60  # optimizer steps a small set needs: Unsloth's 60-step default learns an identity file, 18 do not (bench/outcome.py)
EVALUATIONS_PER_RUN = 8  # validation measurements across a run: enough to see the U, few enough to stay cheap
EARLY_STOPPING_PATIENCE = 3  # evaluations without a new best before a run stops (one is noise, three a trend)
MAX_DEVICE_BATCH = 4  # conversations per forward pass before accumulation; memory is checked by the estimates

# The fields the recipe decides, in the order the plan shows them.
RECIPE_FIELDS = ("validation_share", "test_share", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "num_train_epochs", "learning_rate", "eval_steps", "early_stopping_patience", "replay_share")
# Replayed general answers as a share of the training rows (studio/chat/replay.py). Identity data gets half: on the
# bilingual identity bench task 19 of 60 general answers spoke as the new identity at 0.2, 5 at 0.5, with the
# name given in 90-100% of reworded questions either way (bench/RESULTS.md).
REPLAY_SHARE, IDENTITY_REPLAY_SHARE = 0.2, 0.5


@dataclass(frozen=True)
class Choice:
    value: object
    why: Msg


@dataclass(frozen=True)
class Recipe:
    """The plan's value and reason per field, and the numbers that follow from it."""
    choices: dict[str, Choice]
    rows: int  # usable rows before the split
    train_rows: int
    steps: int  # optimizer steps of the whole run
    notes: list[Msg] = field(default_factory=list)  # what the plan could not do (tiny data, ...)

    def values(self) -> dict:
        return {name: choice.value for name, choice in self.choices.items()}


def effective_batch_for(train_rows: int) -> int:
    """Small data: small batches, so a few epochs still give many updates; large data: the usual 16-32."""
    if train_rows < 200:
        return 4
    if train_rows < 1000:
        return 8
    return 16 if train_rows < 10_000 else 32


def epoch_limits(train_rows: int) -> tuple[int, int]:
    """The guide's range: 3-10 epochs for small data, 1-3 for large."""
    if train_rows < 1000:
        return 3, 10
    return (1, 3) if train_rows < 10_000 else (1, 2)


def learning_rate_for(method: str, stage: str, parameters: int | None, rows: int | None) -> tuple[float, Msg]:
    """The one suggested learning rate (the recipe's, the advice's and "reset to recommended"), and why."""
    small = (parameters is not None and parameters < 1e9) or (rows or 0) > 10_000
    own = stage_of(stage)
    rates = own.rates(method)
    if own.generates:
        return rates["small" if small else "large"], Msg("recipe.lr_practice", method=method,
                                                         size=Msg("recipe.size_small" if small else "recipe.size_large"))
    if own.learning_rates:
        return rates["small"], Msg("recipe.lr_preference", stage=own.label)
    if small:
        return rates["small"], Msg("recipe.lr_small", method=method)
    return rates["large"], Msg("recipe.lr_large", method=method)


def plan_recipe(rows: int, *, method: str = "lora", stage: str = DEFAULT_STAGE, parameters: int | None = None,
                devices: int = 1, max_steps: int = -1, replay_share: float = 0.0,
                max_device_batch: int = MAX_DEVICE_BATCH) -> Recipe:
    """The recipe for `rows` usable rows (before the split), with `replay_share` of the training rows replayed
    general answers (studio/chat/replay.py; they count towards the steps). Pure: a table test covers it
    (tests/test_recipe.py)."""
    from studio.chat.replay import replay_count  # deferred: a pure helper of the replay module

    rows = max(int(rows), 0)
    validation, test = recommended_validation_share(rows)[0], recommended_test_share(rows)
    train_rows = max(split_sizes(rows, validation, test)[0], 1)
    effective = effective_batch_for(train_rows)
    row = stage_of(stage)
    if row.generates:  # GRPO's batch counts prompts, each answered several times: half as many
        effective = max(1, effective // 2)
    batch = max(1, min(max_device_batch, effective // devices))
    accumulation = max(1, effective // (batch * devices))
    trained = train_rows + replay_count(train_rows, replay_share)
    per_epoch = steps_per_epoch(trained, batch, accumulation, devices)
    low, high = epoch_limits(train_rows)
    epochs = float(min(high, max(low, math.ceil(MIN_UPDATES / per_epoch))))
    if row.max_epochs:
        epochs = min(epochs, row.max_epochs)  # pairs are over-fitted within a few epochs
    steps = max(1, math.ceil(per_epoch * epochs))
    if max_steps > 0:  # the user's cap: the evaluations are spread over the steps that will run
        steps = max_steps
    lr, lr_why = learning_rate_for(method, stage, parameters, rows)
    eval_every = max(1, round(steps / EVALUATIONS_PER_RUN))
    notes = []
    if validation == 0:
        notes.append(Msg("recipe.tiny_data", rows=rows))
    choices = {
        "validation_share": Choice(validation, Msg("recipe.validation", rows=round(rows * validation))),
        "test_share": Choice(test, Msg("recipe.test", rows=round(rows * test)) if test else Msg("recipe.no_test")),
        "per_device_train_batch_size": Choice(batch, Msg("recipe.batch_memory", effective=effective, batch=batch)
                                              if batch == max_device_batch < MAX_DEVICE_BATCH  # memory capped it
                                              else Msg("recipe.batch", effective=effective)),
        "gradient_accumulation_steps": Choice(accumulation, Msg("recipe.accumulation", effective=effective)),
        "num_train_epochs": Choice(epochs, Msg("recipe.epochs", rows=trained, steps=steps, low=low, high=high,
                                                   minimum=MIN_UPDATES)),
        "learning_rate": Choice(lr, lr_why),
        "eval_steps": Choice(eval_every, Msg("recipe.eval_steps", count=EVALUATIONS_PER_RUN)),
        "early_stopping_patience": Choice(EARLY_STOPPING_PATIENCE if validation else 0,
                                          Msg("recipe.patience", patience=EARLY_STOPPING_PATIENCE)
                                          if validation else Msg("recipe.no_patience")),
    }
    if stage_of(stage).generates:
        choices.update(practice_reasons(choices, round(rows * validation), trained, steps, effective))
    return Recipe(choices, rows, trained, steps, notes)


def practice_reasons(choices: dict, held_out: int, prompts: int, steps: int, effective: int) -> dict:
    """GRPO's reasons for the same values: prompts rather than conversations, one pass, and no validation loss to
    watch (the held-out verdict scores the answers at the end), so no early stopping either."""
    value = {name: choice.value for name, choice in choices.items()}
    return {
        "validation_share": Choice(value["validation_share"], Msg("recipe.validation_practice", rows=held_out)),
        "per_device_train_batch_size": Choice(value["per_device_train_batch_size"],
                                              Msg("recipe.batch_practice", effective=effective)),
        "gradient_accumulation_steps": Choice(value["gradient_accumulation_steps"],
                                              Msg("recipe.batch_practice", effective=effective)),
        "num_train_epochs": Choice(value["num_train_epochs"], Msg("recipe.epochs_practice", rows=prompts, steps=steps)),
        "eval_steps": Choice(value["eval_steps"], Msg("recipe.no_eval_practice")),
        "early_stopping_patience": Choice(0, Msg("recipe.no_eval_practice")),
    }


def replay_decision(settings: Settings, rows: int, epochs: float | None = None,
                    identity: bool = False) -> tuple[bool, Msg]:
    """Whether this run replays the base model's general answers (studio/chat/replay.py), and why. 'auto': on for
    identity data (`identity`, studio/data/facts.py) at any length (bench, 2 epochs: 12 of 60 general answers spoke
    as the new identity without replay, 10 with it, and the name came back in 35% of reworded questions against
    75%); else on where forgetting is likely (a small set seen 3+ times: `epochs`, else the settings'); never for
    preference stages (their rows are pairs)."""
    d, t = settings.data, settings.training
    if settings.stage.data != EXAMPLES:
        return False, Msg("replay.not_sft")
    if t.pilot:  # a pilot times the run's own rows
        return False, Msg("replay.pilot")
    if d.replay != "auto":
        return d.replay == "on", Msg("replay.user_" + d.replay)
    if identity:
        return True, Msg("replay.auto_identity", share=d.replay_share)
    epochs = t.num_train_epochs if epochs is None else epochs
    if rows < 1000 and (epochs >= 3 or t.max_steps > 0):
        return True, Msg("replay.auto_on", rows=rows, epochs=epochs, share=d.replay_share)
    return False, Msg("replay.auto_off", rows=rows)


def planned_steps(settings, rows: int, devices: int = 1, identity: bool = False) -> tuple[int, int, int]:
    """(training rows after the split, replayed rows included where replay is on, optimizer steps per epoch,
    steps in all) for `rows` usable rows (`identity`: identity data, which replays at any length)."""
    from studio.chat.replay import replay_count  # deferred: a pure helper of the replay module

    t = settings.training
    train_rows = split_sizes(rows, settings.data.validation_share, settings.data.test_share)[0]
    if replay_decision(settings, rows, identity=identity)[0]:
        train_rows += replay_count(train_rows, settings.data.replay_share)
    per_epoch = steps_per_epoch(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps, devices)
    total = total_steps(train_rows, t.per_device_train_batch_size, t.gradient_accumulation_steps,
                        t.num_train_epochs, t.max_steps, devices)
    return train_rows, per_epoch, total


def recipe_for(settings: Settings, rows: int, parameters: int | None = None, devices: int = 1,
               identity: bool = False) -> Recipe:
    """The plan for these settings' method, stage and data: replay on where it will be, at the plan's share
    (`identity`: the data speaks about the assistant itself, studio/data/facts.py), counted in the steps, and its
    decision in the plan's notes."""
    cap = device_batch_cap(settings) if devices == 1 else MAX_DEVICE_BATCH

    def plan(share: float) -> Recipe:
        return plan_recipe(rows, method=settings.method.finetuning_type, stage=settings.method.stage,
                           parameters=parameters, devices=devices, max_steps=settings.training.max_steps,
                           replay_share=share, max_device_batch=cap)

    share = IDENTITY_REPLAY_SHARE if identity else REPLAY_SHARE
    first = plan(0.0)
    on, why = replay_decision(settings, rows, first.values()["num_train_epochs"], identity)
    planned = plan(share) if on else first
    if on and "epochs" in why.fields:  # replayed rows lengthen an epoch: the note names the epochs the plan trains
        why = Msg(why.key, **{**why.fields, "epochs": planned.values()["num_train_epochs"], "share": share})
    elif on and "share" in why.fields:
        why = Msg(why.key, **{**why.fields, "share": share})
    planned.notes.append(why)
    if settings.stage.data == EXAMPLES:  # the stages that replay
        planned.choices["replay_share"] = Choice(share, Msg("recipe.replay_identity" if identity
                                                            else "recipe.replay_share"))
    return planned


def device_batch_cap(settings: Settings) -> int:
    """The largest batch per pass, up to MAX_DEVICE_BATCH, whose estimated memory fits this machine at the
    settings' cutoff (the Hyperparameters tab's own estimate and bar): a plan must never be "won't fit" (plain
    text at a long cutoff was). The effective batch is kept by accumulating more. Unknown model: no cap."""
    from studio.models import estimates, hardware
    from studio.models.models import allowed_shape

    shape = allowed_shape(settings.model.model_name_or_path)
    if shape is None:
        return MAX_DEVICE_BATCH
    facts = hardware.detect()
    batch = MAX_DEVICE_BATCH
    while batch > 1:
        trial = settings.model_copy(update={"training": settings.training.model_copy(
            update={"per_device_train_batch_size": batch})})
        if estimates.training_memory_gb(trial, shape, facts)["total"] <= estimates.FITS * facts.free_memory_gb:
            break
        batch //= 2
    return batch


def apply_recipe(settings: Settings, recipe: Recipe, keep: set[str] | frozenset[str] = frozenset()) -> Settings:
    """The settings with every recipe field not in `keep` (the user's own values) set to the plan's value."""
    data = settings.model_dump()
    for name, choice in recipe.choices.items():
        if name in keep:
            continue
        for section in data.values():
            if name in section:
                section[name] = choice.value
    return Settings.model_validate(data)


def user_fields(settings: Settings) -> set[str]:
    """The recipe fields a preset (or any settings built from a partial dict) gave explicitly: pydantic keeps
    which fields were set, so a preset that says nothing of the epochs lets the plan choose them."""
    given = set()
    for section in ("data", "training"):
        given |= getattr(settings, section).model_fields_set
    return given & set(RECIPE_FIELDS)


def plan_rows(recipe: Recipe, settings: Settings) -> list[list]:
    """The plan table: field, the plan's value, the value that will be used, whose it is, and why."""
    current = flat_values(settings)
    rows = []
    for name, choice in recipe.choices.items():
        value = current[name]
        mine = not _same(value, choice.value)
        rows.append([name, choice.value, value, Msg("recipe.yours" if mine else "recipe.plans"), choice.why])
    return rows


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b
