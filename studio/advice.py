"""The advice: rules that read the settings against the data, the model and the machine, each returning what
it would change and why, in plain language; and, after (or during) a run, what its curves say. No torch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import hardware
from .config import LEARNING_RATES, Settings, flat_values
from .stages import EXAMPLES, data_kind, stage_of, stages_for
from .estimates import ModelShape
from .facts import speaks_about_itself
from .preflight import current_findings
from .recipe import MIN_UPDATES, learning_rate_for, planned_steps, recipe_for, replay_decision
from .stats import recommended_test_share, recommended_validation_share
from .text import Msg


# ---------------------------------------------------------------- advice rules

@dataclass(frozen=True)
class Situation:
    """What the advice looks at: the settings, and what is known of the data, the model and the machine."""
    settings: object  # studio.config.Settings
    rows: int | None = None  # usable rows in the data file
    recommended_cutoff: int | None = None  # covers ~95% of conversations (stats.recommend_cutoff)
    share_over_cutoff: float | None = None  # share of conversations longer than settings' max_length
    multi_turn_share: float | None = None
    parameters: int | None = None
    facts: object | None = None  # studio.hardware.HardwareFacts
    devices: int = 1
    median_tokens: float | None = None  # the median conversation, in tokens with the chat template
    data_kind: str | None = None  # the loaded file's format ("preference" and "kto": pairs and labelled answers)
    preflight: tuple = ()  # the pre-flight findings to act on (studio/preflight.py): (check key, message, level)
    identity: bool = False  # the data speaks about the assistant itself (studio/facts.py): the plan replays more


@dataclass(frozen=True)
class Advice:
    level: str  # "error" (cannot run), "warning" (likely a mistake), "info" (a tip)
    field: str
    message: str
    suggested: object = None


def suggested_learning_rate(method: str, parameters: int | None, rows: int | None) -> float:
    rates = LEARNING_RATES[method]
    small_model = parameters is not None and parameters < 1e9
    large_data = rows is not None and rows > 10_000
    return rates["small"] if (small_model or large_data) else rates["large"]


def rule_learning_rate(s: Situation) -> list[Advice]:
    method, lr, stage = s.settings.method.finetuning_type, s.settings.training.learning_rate, s.settings.method.stage
    suggested = suggested_learning_rate(method, s.parameters, s.rows)
    low, high = LEARNING_RATES[method]["range"]
    if own := stage_of(stage).rates(method):  # preference tuning, practice: the stage's own rates, as the recipe's
        suggested = learning_rate_for(method, stage, s.parameters, s.rows or 0)[0]
        (low, high), method = own["range"], stage_of(stage).label
    if lr > high:
        return [Advice("warning", "learning_rate", Msg("advice.lr_high", lr=lr, method=method, low=low, high=high),
                       suggested)]
    if lr < low:
        return [Advice("warning", "learning_rate", Msg("advice.lr_low", lr=lr, method=method, low=low, high=high),
                       suggested)]
    return []


def suggested_epochs(rows: int | None) -> float:
    if rows is None or rows < 300:
        return 5.0
    if rows <= 1000:
        return 3.0
    return 2.0 if rows <= 10_000 else 1.0


def run_epochs(s: Situation) -> float:
    """The epochs the run will really train: the setting, or what a max-steps cap leaves of it."""

    t = s.settings.training
    if t.max_steps <= 0 or s.rows is None:
        return t.num_train_epochs
    _, per_epoch, _ = planned_steps(s.settings, s.rows, s.devices)
    return round(min(t.num_train_epochs, t.max_steps / max(per_epoch, 1)), 2)


def rule_epochs(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    epochs = run_epochs(s)
    limit = 10 if s.rows < 1000 else (5 if s.rows <= 10_000 else 3)
    limit = min(limit, stage_of(s.settings.method.stage).max_epochs or limit)  # pairs: over-fitted in a few
    if epochs > limit:
        return [Advice("warning", "num_train_epochs", Msg("advice.epochs", epochs=epochs, rows=s.rows, limit=limit),
                       suggested_epochs(s.rows))]
    return []


def rule_effective_batch(s: Situation) -> list[Advice]:
    """Against the recipe's effective batch for this data (studio/recipe.py): much smaller gives noisy updates,
    much larger too few of them on small data; above 128 always few."""

    t = s.settings.training
    effective = s.settings.effective_batch_size(s.devices)
    per_pass = t.per_device_train_batch_size * s.devices
    if effective > 128:
        return [Advice("warning", "gradient_accumulation_steps", Msg("advice.batch_large", effective=effective),
                       max(1, 128 // per_pass))]
    planned = 16
    if s.rows is not None:
        values = recipe_for(s.settings, s.rows, s.parameters, s.devices, s.identity).values()
        planned = values["per_device_train_batch_size"] * values["gradient_accumulation_steps"] * s.devices
    if effective * 2 <= planned:
        return [Advice("info", "gradient_accumulation_steps",
                       Msg("advice.batch_small", effective=effective, planned=planned), -(-planned // per_pass))]
    if s.rows is not None and effective >= 4 * planned:
        return [Advice("info", "gradient_accumulation_steps",
                       Msg("advice.batch_few_updates", effective=effective, planned=planned, rows=s.rows),
                       max(1, planned // per_pass))]
    return []


def rule_cutoff(s: Situation) -> list[Advice]:
    if s.recommended_cutoff is None:
        return []
    cutoff, recommended = s.settings.training.max_length, s.recommended_cutoff
    over = s.share_over_cutoff or 0.0
    if over > 0.05:
        out = [Advice("warning", "max_length", Msg("advice.cutoff_short", share=over, cutoff=cutoff), recommended)]
        if not s.settings.data.drop_long_rows and s.rows is not None:
            out.append(Advice("info", "drop_long_rows", Msg("advice.drop_long", share=over, rows=round(over * s.rows)),
                              True))
        return out
    if cutoff > 2 * recommended:
        return [Advice("info", "max_length", Msg("advice.cutoff_long", cutoff=cutoff, recommended=recommended),
                       recommended)]
    return []


def rule_lora(s: Situation) -> list[Advice]:
    m = s.settings.method
    if m.finetuning_type not in ("lora", "qlora"):
        return []
    out = []
    if m.r < 4:
        out.append(Advice("warning", "r", Msg("advice.rank_small", r=m.r), 8))
    elif m.r < 8:
        out.append(Advice("info", "r", Msg("advice.rank_low", r=m.r), 8))
    elif m.r > 64:
        out.append(Advice("info", "r", Msg("advice.rank_large", r=m.r), 16))
    elif m.r > 16:  # the guide: 8-16 suits most tasks
        out.append(Advice("info", "r", Msg("advice.rank_high", r=m.r), 16))
    if not 1 <= m.lora_alpha / m.r <= 4:
        out.append(Advice("info", "lora_alpha", Msg("advice.alpha", ratio=m.lora_alpha / m.r), 2 * m.r))
    return out


def rule_validation_share(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    share, why = recommended_validation_share(s.rows)
    current = s.settings.data.validation_share
    if current == 0 and share == 0:  # tiny data: every row is needed to learn
        return []
    if current == 0:
        return [Advice("warning", "validation_share", Msg("advice.no_validation", why=why), share)]
    if abs(current - share) > 0.5 * share:
        return [Advice("info", "validation_share", Msg("advice.validation_share", current=current, share=share,
                                                       why=why), share)]
    return []


SHORT_MEDIAN_TOKENS = 256  # below this, one packed sequence holds many examples and the run takes few steps


def multi_turn_share(conversations: list[list[dict]]) -> float:
    """Share of conversations with more than one user turn."""
    return sum(sum(m["role"] == "user" for m in c) > 1 for c in conversations) / max(len(conversations), 1)


def packing_suits_data(multi_turn_share: float | None, median_tokens: float | None) -> tuple[bool, Msg | None]:
    """The guide: packing hurts short and multi-turn data. (False, why) when this data is either."""
    if multi_turn_share is not None and multi_turn_share > 0.5:
        return False, Msg("advice.packing_multi_turn", share=multi_turn_share)
    if median_tokens is not None and median_tokens < SHORT_MEDIAN_TOKENS:
        return False, Msg("advice.packing_short", median=SHORT_MEDIAN_TOKENS)
    return True, None


def rule_test_share(s: Situation) -> list[Advice]:
    """Without a test split, the Chat tab's held-out scores come from validation rows (which may also have picked
    the best checkpoint): keep some rows apart where the data allows."""
    if s.rows is None or s.settings.data.test_share > 0:
        return []
    share = recommended_test_share(s.rows)
    if share == 0:
        return []
    return [Advice("info", "test_share", Msg("advice.no_test", share=share, rows=round(s.rows * share)), share)]


def rule_packing(s: Situation) -> list[Advice]:
    packing = s.settings.training.packing
    flash = s.facts is not None and getattr(s.facts, "flash_attention", False)
    suits, why = packing_suits_data(s.multi_turn_share, s.median_tokens)
    if packing == "on" and not flash:
        return [Advice("warning", "packing", Msg("advice.packing_no_flash"), "auto")]
    if flash and not suits:
        return [Advice("info" if packing != "on" else "warning", "packing", Msg("advice.packing_data", why=why),
                       "auto" if packing == "on" else None)]
    if packing == "off" and flash:
        return [Advice("info", "packing", Msg("advice.packing_flash"), "auto")]
    return []


def rule_hardware(s: Situation) -> list[Advice]:
    if s.facts is None:
        return []
    t, out = s.settings.training, []
    if s.settings.method.finetuning_type == "qlora":
        ok, why = hardware.qlora_available(s.facts)
        if not ok:
            out.append(Advice("error", "finetuning_type", why, "lora"))
    best, why = hardware.choose_precision(s.facts)
    if t.precision not in ("auto", best):
        out.append(Advice("warning", "precision", Msg("advice.precision", chosen=t.precision, best=best, why=why),
                          "auto"))
    if t.gradient_checkpointing == "on" and s.facts.device == "cpu":
        out.append(Advice("info", "gradient_checkpointing", Msg("advice.ckpt_cpu"), "auto"))
    return out


def rule_data_size(s: Situation) -> list[Advice]:
    # SFT's sizes and its remedies for forgetting (replay, mixing): pairs and prompts to practise on follow neither.
    if s.rows is None or stage_of(s.settings.method.stage).data != EXAMPLES:
        return []
    # The guide's range; a small set gets the one tip that fits it (a style or an identity needs few rows), not
    # both, which read as a contradiction ("2,000+ rows are typical" beside "91 is fine for an identity").
    out = [Advice("info", "dataset_path", Msg("advice.data_range", rows=s.rows))] if s.rows >= 300 else [
        Advice("warning", "dataset_path", Msg("advice.few_rows", rows=s.rows))]
    epochs = run_epochs(s)
    mixed = mixed_in_share(s.settings)

    if replay_decision(s.settings, s.rows, epochs)[0]:  # the base model's own general answers are mixed in
        return out + [Advice("info", "replay", Msg("advice.replay_on", share=s.settings.data.replay_share))]
    if mixed is None:  # every file gives all its rows: the share depends on sizes the advice has not read
        return out
    if mixed > 0:
        key = "advice.mix_small_share" if mixed < 0.1 else "advice.mix_ok"
        out.append(Advice("info", "extra_datasets", Msg(key, share=mixed)))
    elif s.rows < 1000 and epochs >= 3:  # a small set seen many times: the guide's case for mixing
        out.append(Advice("warning", "replay", Msg("advice.mix_needed", rows=s.rows, epochs=epochs), "on"))
    elif s.rows < 1000:
        out.append(Advice("info", "replay", Msg("advice.mix_general")))
    elif epochs > 3:  # many passes over a larger set forget just as well (3 is the plan's most for 1,000+ rows)
        out.append(Advice("info", "num_train_epochs", Msg("advice.mix_general_epochs", epochs=epochs)))
    return out


def mixed_in_share(settings) -> float | None:
    """The share of the training rows that comes from the files mixed in (studio/mixing.py's rules), 0 without
    any, None where it depends on the files' sizes (no file has a share, or only some of the extra files)."""
    d = settings.data
    extra = [part.share for part in d.extra_datasets]
    if not extra:
        return 0.0
    if d.dataset_share is not None and all(share is not None for share in extra):
        return sum(extra) / (sum(extra) + d.dataset_share)  # every file has a share: normalised
    if d.dataset_share is not None:
        return 1 - d.dataset_share  # the main file is its share of the whole, the rest is mixed in
    return sum(extra) if all(share is not None for share in extra) else None


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


def rule_stage(s: Situation) -> list[Advice]:
    """The training stage against the data it is given, and where a DPO / KTO run starts from."""
    stage, kind = stage_of(s.settings.method.stage), s.data_kind
    fits = stages_for(data_kind(kind)) if kind else ()
    if fits and stage.name not in fits:
        key = "advice.stage_needs_pairs" if stage.data != EXAMPLES and fits[0] == "sft" else "advice.stage_data"
        return [Advice("error", "stage", Msg(key, stage=stage.label, wanted=fits[0], kind=kind), fits[0])]
    if stage.continues_run and not s.settings.method.adapter_name_or_path.strip():
        return [Advice("info", "adapter_name_or_path", Msg("advice.start_from_sft", stage=stage.label))]
    return []


# The setting that fixes each pre-flight check: where the advice puts it.
PREFLIGHT_FIELDS = {"check.placeholders": "placeholder_values", "check.model_language": "model_name_or_path",
                    "check.default_system": "system_prompt"}


def rule_preflight(s: Situation) -> list[Advice]:
    """What the Data tab's pre-flight checks found, beside the setting that fixes it."""
    from .preflight import MULTILINGUAL_MODEL  # the language check's cost-free fix, as the value to take

    return [Advice(level, PREFLIGHT_FIELDS.get(key, "dataset_path"), message,
                   MULTILINGUAL_MODEL if key == "check.model_language" else None)
            for key, message, level in s.preflight]


def rule_steps(s: Situation) -> list[Advice]:
    """A run too short to learn: a max-steps cap, or epochs x rows, far under the updates a small set needs."""

    if s.rows is None or stage_of(s.settings.method.stage).data != EXAMPLES:
        return []
    _, per_epoch, total = planned_steps(s.settings, s.rows, s.devices)
    if total >= MIN_UPDATES // 2:
        return []
    if s.settings.training.max_steps > 0:
        return [Advice("warning", "max_steps", Msg("advice.steps_capped", steps=total, per_epoch=per_epoch,
                                                    minimum=MIN_UPDATES), -1)]
    if s.settings.training.num_train_epochs >= 10:  # the guide's most: the data is tiny (the plan says so)
        return []
    return [Advice("warning", "num_train_epochs", Msg("advice.steps_few", steps=total, minimum=MIN_UPDATES))]


def rule_pretraining(s: Situation) -> list[Advice]:
    """Plain text is continued pre-training: the guide's caveats, said once beside the data."""
    if s.data_kind != "text":
        return []
    return [Advice("info", "dataset_path", Msg("advice.pretraining")),
            Advice("info", "learning_rate", Msg("advice.pretraining_lr"))]


RULES = (rule_preflight, rule_pretraining, rule_steps, rule_stage, rule_learning_rate, rule_epochs, rule_effective_batch, rule_cutoff, rule_lora, rule_validation_share,
         rule_test_share, rule_packing, rule_hardware, rule_data_size)


def advise(situation: Situation) -> list[Advice]:
    return [item for rule in RULES for item in rule(situation)]


# Fields "reset to recommended" returns to their defaults (studio/config.py) when no rule or the recipe suggests
# another value.
RESET_TO_DEFAULT = ("r", "lora_alpha", "lora_dropout", "packing", "precision", "gradient_checkpointing")


def recommended_values(situation: Situation) -> dict:
    """The advised value of every field a rule or the recipe has an opinion on ("reset to recommended")."""

    s = situation.settings
    defaults = flat_values(Settings())
    values = {name: defaults[name] for name in RESET_TO_DEFAULT}
    values["learning_rate"] = suggested_learning_rate(s.method.finetuning_type, situation.parameters, situation.rows)
    values["num_train_epochs"] = suggested_epochs(situation.rows)
    if situation.recommended_cutoff:
        values["max_length"] = situation.recommended_cutoff
    if situation.rows is not None:
        values.update(recipe_for(s, situation.rows, situation.parameters, situation.devices,
                                 situation.identity).values())
    return values


BATCH_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps")
DEVICE_COUNTS = range(1, 17)  # the counts a form's batch may have been planned for


def values_for_devices(situation: Situation) -> dict:
    """The recipe's values for the situation's device count, where the form still holds the recipe's values for
    another count: a form planned for one device keeps its effective batch (and so its steps) on two, rather than
    doubling it. The batch the form holds tells which count it was planned for; fields the user set are kept, and a
    batch that no count's plan gives is the user's own: nothing changes then."""

    if situation.rows is None:
        return {}
    s = situation.settings

    def planned(devices: int) -> dict:
        return recipe_for(s, situation.rows, situation.parameters, devices, situation.identity).values()

    current, now = flat_values(s), planned(situation.devices)
    if all(current[name] == now[name] for name in BATCH_FIELDS):
        return {}
    for before in DEVICE_COUNTS:
        if before == situation.devices:
            continue
        old = planned(before)
        if all(current[name] == old[name] for name in BATCH_FIELDS):
            return {name: value for name, value in now.items() if current.get(name) == old[name] != value}
    return {}


def build_situation(settings, report=None, facts=None, shape: ModelShape | None = None) -> Situation:
    """Situation from a data report (studio.stats.DataReport), hardware facts and the model's shape."""
    rows = recommended = over = multi = median = None
    if report is not None and report.load.rows:
        rows = report.training_rows  # plain text trains as blocks of its documents
        multi = multi_turn_share([r.messages for r in report.load.rows if r.messages is not None])
        if report.lengths is not None:
            recommended = report.cutoff.cutoff
            over = float((report.lengths.total > settings.training.max_length).mean()) \
                if report.load.format != "text" else 0.0  # cut into blocks, never truncated
            median = float(np.median(report.lengths.total))
    # read against the form's own values: a placeholder the user filled or a system prompt set is fixed now
    found = current_findings(report.findings, report.load.rows, settings.data.placeholder_values,
                             settings.data.system_prompt) if report is not None else []
    preflight = tuple((f.check.key, f.message, f.level) for f in found
                      if f.level in ("warning", "info") and getattr(f.check, "key", "") in PREFLIGHT_FIELDS
                      and (f.level == "warning" or f.check.key == "check.default_system"))
    # The processes the run will train in (all GPUs by default): the recipe sizes the per-device batch for them.
    devices = hardware.choose_devices(facts, settings.training)["processes"] if facts is not None else 1
    identity = report is not None and speaks_about_itself(report.load.rows)
    return Situation(settings, rows, recommended, over, multi, shape.parameters if shape else None, facts, devices,
                     median_tokens=median, data_kind=report.load.format if report is not None else None,
                     preflight=preflight, identity=identity)


# ---------------------------------------------------------------- after (or during) a run: what the curves say

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
    if cause.key in ("cause.capped", "cause.few_steps"):  # the remedy is more steps, not a bigger adapter
        return Msg("warn.not_learning_cause", evidence=evidence, cause=cause)
    return Msg("warn.not_learning", evidence=evidence, steps=learning_steps(settings))


def likely_cause(settings, metrics: list[dict], stopped: bool = False) -> Msg:
    """Why a run did not learn, read from the run itself, the most likely first: stopped by hand, too few
    optimizer steps (a max-steps cap, or epochs x rows), a learning rate below the method's range, a training loss
    that never fell, a validation loss that rose (memorised rather than learned); else the data or the model."""

    t, method = settings.training, settings.method.finetuning_type
    steps = max((m.get("step", 0) for m in metrics), default=0)
    train = [m["loss"] for m in metrics if "loss" in m]
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    if stopped:
        return Msg("cause.stopped", steps=steps)
    if steps < MIN_UPDATES // 2:
        if t.max_steps > 0:
            return Msg("cause.capped", steps=steps, minimum=MIN_UPDATES)
        return Msg("cause.few_steps", steps=steps, minimum=MIN_UPDATES)
    low = (stage_of(settings.method.stage).rates(method) or LEARNING_RATES[method])["range"][0]
    if t.learning_rate < low:
        return Msg("cause.low_lr", lr=t.learning_rate, low=low)
    if any("reward" in m for m in metrics):  # GRPO: its loss says little; the rewards say why
        return practice_cause(metrics)
    if len(train) > 1 and train[-1] >= 0.9 * train[0]:
        return Msg("cause.loss_flat", first=train[0], last=train[-1])
    if len(evals) > 2 and min(evals, key=lambda e: e[1])[0] == evals[0][0]:
        return Msg("cause.memorised", first=evals[0][1], last=evals[-1][1])
    if still_learning(evals):
        return Msg("cause.still_learning", first=evals[-2][1], last=evals[-1][1])
    return Msg("cause.data_or_model")


STILL_FALLING = 0.01  # the last evaluation 1% below the one before: the curve had not flattened yet


def still_learning(evals: list[tuple[int, float]]) -> bool:
    """Whether the validation loss was still falling at the last two evaluations."""
    return len(evals) >= 2 and evals[-1][1] < evals[-2][1] * (1 - STILL_FALLING)


def learning_steps(settings) -> list[Msg]:
    t, m = settings.training, settings.method
    steps = []
    if m.finetuning_type in ("lora", "qlora") and m.r < 64:
        steps.append(Msg("warn.step_rank", r=min(64, 2 * m.r), r_now=m.r))
    top = LEARNING_RATES[m.finetuning_type]["range"][1]  # as high as the advice goes without a warning
    if t.learning_rate < top:
        steps.append(Msg("warn.step_lr", lr=min(top, 2 * t.learning_rate), lr_now=t.learning_rate))
    if t.num_train_epochs < 10:
        steps.append(Msg("warn.step_epochs", epochs=min(10.0, 2 * t.num_train_epochs), epochs_now=t.num_train_epochs))
    return steps + [Msg("warn.step_model")]
