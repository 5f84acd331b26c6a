"""The training stages, one row each: what a stage learns from, how its rows are made, which TRL classes train it,
which methods it trains, the learning rates and epochs its advice and recipe use, and what the run logs.

Adding a stage = one row here + its converter (studio/preference_rows.py) + its catalogue lines. Everything else
reads the row: the settings' `stage` choices and the fields that apply to it (config.py), the data check and report
(preference.py, preference_stats.py), the advice and recipe, the run (train.py for example data, preference_train.py
for pairs and labelled answers, both on the shared steps of run_steps.py), and the TRL config export (repeat.py).
Light: no torch or TRL at import; a stage's classes are imported when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .preference_rows import kto_row, pair_row

# What a stage's rows are.
EXAMPLES = "examples"  # conversations with the answers to learn (every SFT format, plain text)
PAIRS = "pairs"  # a prompt with a chosen and a rejected answer
LABELLED = "labelled"  # a prompt with one answer marked good or bad
# The loaded file format (data.detect_format) of each kind of preference data; every other format holds examples.
FILE_FORMATS = {PAIRS: "preference", LABELLED: "kto"}

ALL_METHODS = ("lora", "qlora", "full", "freeze")
# Preference tuning of a tuned adapter: about a tenth of SFT's rate (LLaMA-Factory's LoRA DPO examples use 5e-6).
PREFERENCE_RATES = {"range": (1e-6, 5e-5), "small": 5e-6, "large": 5e-6}
# What TRL's preference trainers log, kept in metrics.jsonl and drawn on the Train tab.
REWARD_LOGS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
               "eval_rewards/margins", "eval_rewards/accuracies")


@dataclass(frozen=True)
class Stage:
    name: str  # the settings' value ("sft"); shown in capitals
    data: str  # EXAMPLES, PAIRS or LABELLED
    classes: Callable[[], tuple[type, type]]  # (TRL config class, trainer class), imported when a run starts
    convert: Callable[[dict], dict | None] | None = None  # a record -> TRL's row or None; None: SFT's own readers
    methods: tuple[str, ...] = ALL_METHODS  # the methods it trains; the settings refuse the others
    learning_rates: dict | None = None  # {"range", "small", "large"}; None: SFT's rates for the method
    max_epochs: float | None = None  # pairs are over-fitted in a few epochs; None: the data size decides
    sample_order: str = "random"  # "sequential": KTO estimates its KL term from each row's batch neighbours
    reference: bool = False  # held near a reference model: a frozen copy of the adapter it starts from
    continues_run: bool = False  # usually trains a finished SFT run's adapter further ("Start from run")
    beta: bool = False  # reads the settings' beta
    logs: tuple[str, ...] = ()  # TRL's figures worth keeping beside the loss
    trl_command: str | None = None  # TRL's command line that repeats the run (`trl dpo`); None: TRL has none

    @property
    def label(self) -> str:
        return self.name.upper()


def _sft():
    from trl import SFTConfig

    from .lean import LeanSFTTrainer  # the studio's SFTTrainer (padding-free batches, cached tokens)

    return SFTConfig, LeanSFTTrainer


def _dpo():
    from trl import DPOConfig, DPOTrainer

    return DPOConfig, DPOTrainer


def _kto():
    from trl import KTOConfig, KTOTrainer

    return KTOConfig, KTOTrainer


def _orpo():
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in TRL's experimental package
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOConfig, ORPOTrainer


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("sft", EXAMPLES, _sft, trl_command="sft"),
    Stage("dpo", PAIRS, _dpo, pair_row, methods=("lora",), learning_rates=PREFERENCE_RATES, max_epochs=3.0,
          reference=True, continues_run=True, beta=True, logs=REWARD_LOGS, trl_command="dpo"),
    Stage("kto", LABELLED, _kto, kto_row, methods=("lora",), learning_rates=PREFERENCE_RATES, max_epochs=3.0,
          sample_order="sequential", reference=True, continues_run=True, beta=True, logs=REWARD_LOGS,
          trl_command="kto"),
    # ORPO: the example answers' loss plus an odds-ratio term for the pair, from the base model in one stage and
    # without a reference model, so every method trains it and SFT's rates suit it (its loss is mostly SFT's).
    Stage("orpo", PAIRS, _orpo, pair_row, max_epochs=3.0, beta=True,
          logs=REWARD_LOGS + ("nll_loss", "log_odds_ratio", "eval_nll_loss", "eval_log_odds_ratio")),
)}
STAGE_NAMES = tuple(STAGES)
ALL_LOGS = tuple(dict.fromkeys(log for stage in STAGES.values() for log in stage.logs))


def stage_of(name: str) -> Stage:
    return STAGES[name]


def names_where(test: Callable[[Stage], bool]) -> tuple[str, ...]:
    """The stages a field applies to (config's `applies`), e.g. those that read beta."""
    return tuple(name for name, stage in STAGES.items() if test(stage))


def data_kind(file_format: str | None) -> str:
    """What a loaded file holds, from its format: pairs, labelled answers, or examples."""
    return next((kind for kind, fmt in FILE_FORMATS.items() if fmt == file_format), EXAMPLES)


def stages_for(kind: str) -> tuple[str, ...]:
    """The stages that learn from this kind of data, the usual one first."""
    return names_where(lambda stage: stage.data == kind)
