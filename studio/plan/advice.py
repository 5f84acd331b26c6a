"""The advice: rules that read the settings against the data, the model and the machine, each returning what
it would change and why, in plain language; and, after (or during) a run, what its curves say. No torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.core.config import Settings, flat_values
from studio.core.stages import DEFAULT_STAGE, EXAMPLES, data_kind, stages_for
from studio.core.text import Msg
from studio.models import hardware
from studio.models.estimates import DORA_STEP_FACTOR, ModelShape
from studio.data.facts import speaks_about_itself
from studio.data.stats import recommended_test_share, recommended_validation_share
from .preflight import current_findings
from .recipe import MIN_UPDATES, learning_rate_for, planned_steps, recipe_for, replay_decision


# ---------------------------------------------------------------- advice rules

@dataclass(frozen=True)
class Situation:
    """What the advice looks at: the settings, and what is known of the data, the model and the machine."""
    settings: object  # studio.core.config.Settings
    rows: int | None = None  # usable rows in the data file
    recommended_cutoff: int | None = None  # covers ~95% of conversations (stats.recommend_cutoff)
    share_over_cutoff: float | None = None  # share of conversations longer than settings' max_length
    multi_turn_share: float | None = None
    parameters: int | None = None
    facts: object | None = None  # studio.models.hardware.HardwareFacts
    devices: int = 1
    median_tokens: float | None = None  # the median conversation, in tokens with the chat template
    data_kind: str | None = None  # the loaded file's format ("preference" and "kto": pairs and labelled answers)
    preflight: tuple = ()  # the pre-flight findings to act on (studio/plan/preflight.py): (check key, message, level)
    identity: bool = False  # the data speaks about the assistant itself (studio/data/facts.py): the plan replays more


@dataclass(frozen=True)
class Advice:
    level: str  # "error" (cannot run), "warning" (likely a mistake), "info" (a tip)
    field: str
    message: str
    suggested: object = None


def rule_learning_rate(s: Situation) -> list[Advice]:
    method, lr, stage = s.settings.method.finetuning_type, s.settings.training.learning_rate, s.settings.stage
    suggested = learning_rate_for(method, stage.name, s.parameters, s.rows)[0]
    low, high = stage.rates(method)["range"]
    if stage.learning_rates is not None:  # preference tuning, practice: the range is the stage's, said as such
        method = stage.label
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
    _, per_epoch, _ = planned_steps(s.settings, s.rows, s.devices, s.identity)
    return round(min(t.num_train_epochs, t.max_steps / max(per_epoch, 1)), 2)


def rule_epochs(s: Situation) -> list[Advice]:
    if s.rows is None:
        return []
    epochs = run_epochs(s)
    limit = 10 if s.rows < 1000 else (5 if s.rows <= 10_000 else 3)
    limit = min(limit, s.settings.stage.max_epochs or limit)  # pairs: over-fitted in a few
    if epochs > limit:
        return [Advice("warning", "num_train_epochs", Msg("advice.epochs", epochs=epochs, rows=s.rows, limit=limit),
                       suggested_epochs(s.rows))]
    return []


def rule_effective_batch(s: Situation) -> list[Advice]:
    """Against the recipe's effective batch for this data (studio/plan/recipe.py): much smaller gives noisy updates,
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
    if s.rows is None or s.settings.stage.data != EXAMPLES:
        return []
    # The guide's range; a small set gets the one tip that fits it (a style or an identity needs few rows), not
    # both, which read as a contradiction ("2,000+ rows are typical" beside "91 is fine for an identity").
    out = [Advice("info", "dataset_path", Msg("advice.data_range", rows=s.rows))] if s.rows >= 300 else [
        Advice("warning", "dataset_path", Msg("advice.few_rows", rows=s.rows))]
    epochs = run_epochs(s)
    mixed = mixed_in_share(s.settings)

    if replay_decision(s.settings, s.rows, epochs, s.identity)[0]:  # the base model's own general answers are mixed in
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
    """The share of the training rows that comes from the files mixed in (studio/plan/mixing.py's rules), 0 without
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



def rule_dora(s: Situation) -> list[Advice]:
    """DoRA's cost, said where it is switched on: measured, not guessed (bench/dora_cost.py)."""
    m = s.settings.method
    if not m.use_dora or m.finetuning_type not in ("lora", "qlora"):
        return []
    return [Advice("info", "use_dora", Msg("advice.dora_cost", factor=DORA_STEP_FACTOR))]


def rule_stage(s: Situation) -> list[Advice]:
    """The training stage against the data it is given, and where a DPO / KTO run starts from."""
    stage, kind = s.settings.stage, s.data_kind
    fits = stages_for(data_kind(kind)) if kind else ()
    if fits and stage.name not in fits:
        key = "advice.stage_needs_pairs" if stage.data != EXAMPLES and fits[0] == DEFAULT_STAGE else "advice.stage_data"
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

    if s.rows is None or s.settings.stage.data != EXAMPLES:
        return []
    _, per_epoch, total = planned_steps(s.settings, s.rows, s.devices, s.identity)
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


RULES = (rule_preflight, rule_pretraining, rule_steps, rule_stage, rule_dora, rule_learning_rate, rule_epochs, rule_effective_batch, rule_cutoff, rule_lora, rule_validation_share,
         rule_test_share, rule_packing, rule_hardware, rule_data_size)


def advise(situation: Situation) -> list[Advice]:
    return [item for rule in RULES for item in rule(situation)]


# Fields "reset to recommended" returns to their defaults (studio/core/config.py) when no rule or the recipe suggests
# another value.
RESET_TO_DEFAULT = ("r", "lora_alpha", "lora_dropout", "packing", "precision", "gradient_checkpointing")


def recommended_values(situation: Situation) -> dict:
    """The advised value of every field a rule or the recipe has an opinion on ("reset to recommended")."""

    s = situation.settings
    defaults = flat_values(Settings())
    values = {name: defaults[name] for name in RESET_TO_DEFAULT}
    values["learning_rate"] = learning_rate_for(s.method.finetuning_type, s.method.stage, situation.parameters,
                                                situation.rows)[0]
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


def build_situation(settings, report=None, facts=None, shape: ModelShape | None = None,
                    mix: tuple[int, list] | None = None) -> Situation:
    """Situation from a data report (studio.data.stats.DataReport), hardware facts and the model's shape. `mix`:
    with files mixed in, the rows the run plans with and the rows in its proportions (mixing.plan_rows): the plan,
    the cost and the replay advice count the whole mix, as the run does."""
    rows = recommended = over = multi = median = None
    if report is not None and report.load.rows:
        rows = report.training_rows  # plain text trains as blocks of its documents
        if mix is not None and report.load.format != "text":
            rows = mix[0]
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
    identity = report is not None and speaks_about_itself(mix[1] if mix is not None else report.load.rows)
    return Situation(settings, rows, recommended, over, multi, shape.parameters if shape else None, facts, devices,
                     median_tokens=median, data_kind=report.load.format if report is not None else None,
                     preflight=preflight, identity=identity)
