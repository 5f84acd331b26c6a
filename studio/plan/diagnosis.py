"""After (or during) a run: what its curves say. Over-fitting, preference and practice warnings, why a run did not
learn and what to try, the remedies for forgetting, and whether the validation loss was still falling at the
planned end. The rules checked before a run are in studio/plan/advice.py; both read the same recipe."""

from __future__ import annotations

import math

from studio.core.config import Settings
from studio.core.text import Msg
from .advice import mixed_in_share
from .recipe import MIN_UPDATES


def drift_remedies(settings, report: dict) -> Msg:
    """The guide's remedies for forgetting, in its order, with values for this run: mix in general data, a lower
    learning rate or fewer epochs, LoRA with a lower rank."""
    t, m = settings.training, settings.method
    mixed = mixed_in_share(settings)
    replay = settings.data.replay == "on" or (settings.data.replay == "auto" and report.get("replayed"))
    if replay:
        steps = [Msg("advice.drift_more_replay", share=settings.data.replay_share,
                     suggested=min(0.5, max(0.3, settings.data.replay_share * 1.5)))]
    else:
        steps = [Msg("advice.drift_mix", share=0.3) if not mixed else
                 Msg("advice.drift_more_general", share=mixed, suggested=min(0.5, max(0.3, mixed * 1.5)))]
    steps.append(Msg("advice.drift_lr", current=t.learning_rate, suggested=t.learning_rate / 2))
    if t.max_steps <= 0 and t.num_train_epochs > 1:
        steps.append(Msg("advice.drift_epochs", current=t.num_train_epochs,
                         suggested=float(max(1, math.ceil(t.num_train_epochs / 2)))))
    if m.finetuning_type in ("lora", "qlora") and m.r > 4:
        steps.append(Msg("advice.drift_rank", current=m.r, suggested=max(4, m.r // 2)))
    elif m.finetuning_type in ("full", "freeze"):
        steps.append(Msg("advice.drift_use_lora"))
    return Msg("advice.drift_remedies", steps=Msg("list", items=steps))


def still_learning_note(metrics: list[dict], settings: Settings, stopped_early: str | None = None,
                        reached_end: bool = True) -> Msg | None:
    """A run that reached its planned end with the validation loss still falling by an amount that counts: more
    epochs would help (within the guide's cap for the data), said with the figures; None otherwise. Never for a run
    that stopped early (`BestKeeper.stop_reason`: its curve flattened or its loss is near zero, so more epochs
    would not help) or was stopped by hand (it never reached the planned end)."""
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    if stopped_early or not reached_end or settings.training.max_steps > 0:
        return None
    if not still_learning(evals, settings.training.early_stopping_threshold):
        return None
    epochs = settings.training.num_train_epochs
    return Msg("log.still_learning", first=evals[-2][1], last=evals[-1][1], epochs=epochs,
               more=float(min(10.0, max(epochs + 1, math.ceil(epochs * 1.5)))))


def overfitting_warning(metrics: list[dict], patience: int = 3) -> Msg | None:
    """Plain-language warning when validation loss rose `patience` evaluations in a row while train loss fell,
    or when train loss collapsed at an epoch boundary (memorising the data it has now seen twice). Not for GRPO,
    whose loss moves around 0 and says nothing of memorising (practice_warning reads its rewards)."""
    if any("reward" in m for m in metrics):
        return None
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


def preference_warning(metrics: list[dict], patience: int = 2) -> Msg | None:
    """DPO: the reward margin still growing while the validation preference accuracy falls `patience`
    evaluations in a row: the model is widening the gap on its training pairs without judging new ones better,
    as it does when it over-fits the pairs (or games a length or style cue in them)."""
    accuracy = [(m["step"], m["eval_rewards/accuracies"]) for m in metrics if "eval_rewards/accuracies" in m]
    margins = [m["rewards/margins"] for m in metrics if "rewards/margins" in m]
    if len(accuracy) <= patience or len(margins) < 2:
        return None
    tail = [a for _, a in accuracy[-patience - 1:]]
    falling = all(b < a for a, b in zip(tail, tail[1:]))
    since = [m["rewards/margins"] for m in metrics if "rewards/margins" in m and m["step"] >= accuracy[-patience - 1][0]]
    if falling and len(since) >= 2 and since[-1] > since[0]:
        best_step, best = max(accuracy, key=lambda a: a[1])
        return Msg("warn.preference_overfit", patience=patience, best=best, step=best_step)
    return None


PRACTICE_WINDOW = 5  # GRPO logs read together: one step's rewards are a handful of samples


def practice_warning(metrics: list[dict]) -> Msg | None:
    """GRPO's failure modes, from the run's own logs: the last steps' answers to each prompt all scored alike (no
    signal to learn from), or the answers collapsed to a few tokens (a reward that pays for saying little)."""
    logged = [m for m in metrics if "reward" in m]
    if len(logged) < PRACTICE_WINDOW:
        return None
    recent = logged[-PRACTICE_WINDOW:]
    if all(m.get("frac_reward_zero_std", 0.0) >= 1.0 for m in recent):
        return Msg("warn.no_signal", steps=PRACTICE_WINDOW, reward=recent[-1]["reward"])
    lengths = [m["completions/mean_length"] for m in logged if "completions/mean_length" in m]
    if len(lengths) >= 2 * PRACTICE_WINDOW:
        first = sum(lengths[:PRACTICE_WINDOW]) / PRACTICE_WINDOW
        last = sum(lengths[-PRACTICE_WINDOW:]) / PRACTICE_WINDOW
        if last < COLLAPSED_SHARE * first and last <= COLLAPSED_TOKENS:
            return Msg("warn.length_collapse", first=first, last=last)
    return None


COLLAPSED_SHARE, COLLAPSED_TOKENS = 0.3, 8  # answers this much shorter, and this short: collapsed


def practice_cause(metrics: list[dict]) -> Msg:
    """Why a GRPO run's held-out score did not rise: no signal, collapsed answers, a reward that rose on the
    training prompts only (over-fitted or gamed), or a reward that never rose."""
    if warning := practice_warning(metrics):
        return warning
    rewards = [m["reward"] for m in metrics if "reward" in m]
    window = max(1, len(rewards) // 4)
    first, last = sum(rewards[:window]) / window, sum(rewards[-window:]) / window
    if last > first + 0.1:
        return Msg("cause.reward_not_held_out", first=first, last=last)
    return Msg("cause.reward_flat", first=first, last=last)


def regularisation_remedies(settings, metrics: list[dict]) -> Msg:
    """What to change when the overfitting watch fires, with values: the guide's four levers."""
    t, m = settings.training, settings.method
    best = min((e for e in metrics if "eval_loss" in e and "epoch" in e), key=lambda e: e["eval_loss"], default=None)
    epochs = max(1.0, float(-(-best["epoch"] // 1))) if best else max(1.0, t.num_train_epochs - 1)
    dropout = ""
    if m.finetuning_type in ("lora", "qlora"):
        dropout = Msg("warn.remedy_dropout", dropout=0.1 if m.lora_dropout < 0.1 else min(0.3, m.lora_dropout + 0.05),
                      dropout_now=m.lora_dropout)
    return Msg("warn.remedies", weight_decay=0.1 if t.weight_decay < 0.1 else min(0.3, 2 * t.weight_decay),
               weight_decay_now=t.weight_decay, dropout=dropout, epochs=min(epochs, t.num_train_epochs),
               epochs_now=t.num_train_epochs, patience=3)


def not_learning(settings, metrics: list[dict]) -> Msg | None:
    """A finished run whose validation loss is not clearly below its step-0 baseline, or (without validation) whose
    training loss is still near where it began after 3+ epochs. The remedies, in the guide's order."""
    if any("reward" in m for m in metrics):  # GRPO: its loss is no measure of learning (practice_warning, verdict)
        return None
    evals = [e for e in metrics if "eval_loss" in e]
    train = [e for e in metrics if "loss" in e]
    baseline = next((e["eval_loss"] for e in evals if e["step"] == 0), None)
    later = [e for e in evals if e["step"] > 0]
    epochs = max((e.get("epoch", 0) for e in train), default=0)
    if baseline is not None and later:
        if later[-1]["eval_loss"] < 0.98 * baseline:
            return None
        evidence = Msg("warn.evidence_validation", final=later[-1]["eval_loss"], baseline=baseline)
    elif len(train) > 1 and epochs >= 3 and train[-1]["loss"] >= 0.9 * train[0]["loss"]:
        evidence = Msg("warn.evidence_train", last=train[-1]["loss"], epochs=epochs, first=train[0]["loss"])
    else:
        return None
    if epochs >= 10:
        return Msg("warn.too_weak", epochs=epochs, evidence=evidence)
    cause = likely_cause(settings, metrics)
    if cause.key in ("cause.capped", "cause.capped_epochs", "cause.few_steps"):  # more steps, not a bigger adapter
        return Msg("warn.not_learning_cause", evidence=evidence, cause=cause)
    return Msg("warn.not_learning", evidence=evidence, steps=learning_steps(settings))


def loss_ends(losses: list[float]) -> tuple[float, float]:
    """The training loss at the start and at the end, each the mean of up to five logged values (a quarter of them
    at most): one step's loss swings with its batch (0.44 to 3.9 within 30 steps of an identity run whose
    validation loss fell by 40%), so two single values could say it rose while the run learned."""
    window = max(1, min(5, len(losses) // 4))
    return sum(losses[:window]) / window, sum(losses[-window:]) / window


def likely_cause(settings, metrics: list[dict], stopped: bool = False) -> Msg:
    """Why a run did not learn, read from the run itself, the most likely first: stopped by hand, too few
    optimizer steps (a max-steps cap, or epochs x rows), a learning rate below the method's range, a training loss
    that never fell, a validation loss that rose (memorised rather than learned); else the data or the model."""

    t, method = settings.training, settings.method.finetuning_type
    steps = max((m.get("step", 0) for m in metrics), default=0)
    train = [m["loss"] for m in metrics if "loss" in m]
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    epochs = max((m.get("epoch", 0) for m in metrics), default=0)
    if stopped:
        return Msg("cause.stopped", steps=steps)
    if steps < MIN_UPDATES // 2:
        if t.max_steps > 0:
            return Msg("cause.capped", steps=steps, minimum=MIN_UPDATES)
        return Msg("cause.few_steps", steps=steps, minimum=MIN_UPDATES)
    if t.max_steps > 0 and 0 < epochs < 0.95 * t.num_train_epochs:  # the cap ended it before the planned epochs
        return Msg("cause.capped_epochs", steps=steps, epochs=epochs, planned=t.num_train_epochs)
    low = settings.stage.rates(method)["range"][0]
    if t.learning_rate < low:
        return Msg("cause.low_lr", lr=t.learning_rate, low=low)
    if any("reward" in m for m in metrics):  # GRPO: its loss says little; the rewards say why
        return practice_cause(metrics)
    if len(train) > 1 and (ends := loss_ends(train))[1] >= 0.9 * ends[0]:
        return Msg("cause.loss_flat", first=ends[0], last=ends[1])
    if len(evals) > 2 and min(evals, key=lambda e: e[1])[0] == evals[0][0]:
        return Msg("cause.memorised", first=evals[0][1], last=evals[-1][1])
    if still_learning(evals, settings.training.early_stopping_threshold):
        return Msg("cause.still_learning", first=evals[-2][1], last=evals[-1][1])
    return Msg("cause.data_or_model")


STILL_FALLING = 0.01  # the last evaluation 1% below the one before: the curve had not flattened yet


def still_learning(evals: list[tuple[int, float]], counts: float = 0.0) -> bool:
    """Whether the validation loss was still falling at the last two evaluations: by 1% of itself and by at least
    `counts` (the smallest improvement that counts for early stopping), with room left to fall that much again (a
    loss is never negative): 0.017 -> 0.006 is a third of the loss, but of answers already near-certain, not a run
    that wants more epochs."""
    if len(evals) < 2:
        return False
    before, last = evals[-2][1], evals[-1][1]
    return last < before * (1 - STILL_FALLING) and before - last >= counts and last >= counts


def learning_steps(settings) -> list[Msg]:
    t, m = settings.training, settings.method
    steps = []
    if m.finetuning_type in ("lora", "qlora") and m.r < 64:
        steps.append(Msg("warn.step_rank", r=min(64, 2 * m.r), r_now=m.r))
    top = settings.stage.rates(m.finetuning_type)["range"][1]  # as high as the advice goes without a warning
    if t.learning_rate < top:
        steps.append(Msg("warn.step_lr", lr=min(top, 2 * t.learning_rate), lr_now=t.learning_rate))
    if t.num_train_epochs < 10:
        steps.append(Msg("warn.step_epochs", epochs=min(10.0, 2 * t.num_train_epochs), epochs_now=t.num_train_epochs))
    return steps + [Msg("warn.step_model")]
