"""The training stages, one row each: what a stage learns from, how its rows are made, which TRL classes train it,
which methods it trains, the learning rates and epochs its advice and recipe use, and what the run logs.

Adding a stage = one row here + its converter (studio/core/preference_rows.py) + its catalogue lines. Everything else
reads the row: the settings' `stage` choices and the fields that apply to it (config.py), the data check and report
(preference.py, preference_stats.py), the advice and recipe, the run (train.py for example data, preference_train.py
for pairs and labelled answers, both on the shared steps of run_steps.py), and the TRL config export (repeat.py).
Light: no torch or TRL at import; a stage's classes are imported when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .preference_rows import kto_row, pair_row, prompt_row
from .rewards import REWARD_NAMES

# What a stage's rows are.
EXAMPLES = "examples"  # conversations with the answers to learn (every SFT format, plain text)
PAIRS = "pairs"  # a prompt with a chosen and a rejected answer
LABELLED = "labelled"  # a prompt with one answer marked good or bad
PROMPTS = "prompts"  # a prompt to practise on, with the reference answer its rewards check (read from any example file)
# The loaded file format (data.detect_format) of each kind of preference data; every other format holds examples.
FILE_FORMATS = {PAIRS: "preference", LABELLED: "kto"}

ALL_METHODS = ("lora", "qlora", "full", "freeze")
# Learning rates by method: the range the advice warns outside of, and what the recipe suggests for a small model
# (under 1B parameters) or large data (over 10,000 rows) and otherwise. SFT's, and every stage's without its own.
_ADAPTER_RATES = {"range": (5e-5, 3e-4), "small": 2e-4, "large": 1e-4}
_FULL_RATES = {"range": (5e-6, 5e-5), "small": 1e-5, "large": 1e-5}
LEARNING_RATES = {"lora": _ADAPTER_RATES, "qlora": _ADAPTER_RATES, "full": _FULL_RATES, "freeze": _FULL_RATES}
# Preference tuning of a tuned adapter: about a tenth of SFT's rate (LLaMA-Factory's LoRA DPO examples use 5e-6).
PREFERENCE_RATES = {"range": (1e-6, 5e-5), "small": 5e-6, "large": 5e-6}
# What TRL's GRPO trainer logs: the summed reward, its spread, each built-in reward's mean, the completions' length.
PRACTICE_LOGS = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
                 "entropy", "kl", *(f"rewards/{name}/mean" for name in REWARD_NAMES))
# Practice with rewards, per method: TRL's default 1e-6 is for full fine-tuning of large models; LoRA GRPO runs of
# 1B+ models use 5e-6 to 5e-5. The starter model (135M) learned a task's answer format in 40 steps at 2e-4 with
# sampling temperature 0.7, and nothing at TRL's 1e-6 and 1.0 (bench/grpo_outcome.py, bench/RESULTS.md).
_PRACTICE_ADAPTER = {"range": (1e-6, 3e-4), "small": 2e-4, "large": 2e-5}
_PRACTICE_FULL = {"range": (1e-7, 3e-5), "small": 1e-5, "large": 1e-6}
PRACTICE_RATES = {"lora": _PRACTICE_ADAPTER, "qlora": _PRACTICE_ADAPTER, "full": _PRACTICE_FULL,
                  "freeze": _PRACTICE_FULL}
# What TRL's preference trainers log, kept in metrics.jsonl and drawn on the Train tab.
REWARD_LOGS = ("rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected",
               "eval_rewards/margins", "eval_rewards/accuracies")


@dataclass(frozen=True)
class Stage:
    name: str  # the settings' value ("sft"); shown in capitals
    data: str  # EXAMPLES, PAIRS, LABELLED or PROMPTS
    classes: Callable[[], tuple[type, type]]  # (TRL config class, trainer class), imported when a run starts
    convert: Callable[[dict], dict | None] | None = None  # a record -> TRL's row or None; None: SFT's own readers
    methods: tuple[str, ...] = ALL_METHODS  # the methods it trains; the settings refuse the others
    # {"range", "small", "large"} (or one such dict per method); None: SFT's rates for the method. "small": for a
    # model under 1B parameters or over 10,000 rows, as SFT's.
    learning_rates: dict | None = None
    # Pairs are over-fitted in a few epochs; GRPO samples fresh answers at every step, so one pass over the prompts
    # is the usual run. None: the data size decides.
    max_epochs: float | None = None
    sample_order: str = "random"  # "sequential": KTO estimates its KL term from each row's batch neighbours
    reference: bool = False  # held near a reference model: a frozen copy of the adapter it starts from
    continues_run: bool = False  # usually trains a finished SFT run's adapter further ("Start from run")
    beta: bool = False  # reads the settings' beta
    logs: tuple[str, ...] = ()  # TRL's figures worth keeping beside the loss
    trl_command: str | None = None  # TRL's command line that repeats the run (`trl dpo`); None: TRL has none
    trl_refusal: str = "export.trl_no_command"  # why there is no TRL config to write, where trl_command is None
    generates: bool = False  # samples its own answers while training (GRPO): no validation loss, rewards instead

    @property
    def label(self) -> str:
        return self.name.upper()

    def rates(self, method: str) -> dict:
        """{"range", "small", "large"}: the stage's learning rates for a method (its own, else SFT's)."""
        rates = self.learning_rates
        if rates is None:
            return LEARNING_RATES[method]
        return rates.get(method) if "range" not in rates else rates

    @property
    def names_method(self) -> bool:
        """A run of the first row is named by its method alone ("lora"); another by its stage ("dpo")."""
        return self is next(iter(STAGES.values()))


def _sft():
    from trl import SFTConfig

    from studio.engine.lean import LeanSFTTrainer  # the studio's SFTTrainer (padding-free batches, cached tokens)

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


def _grpo():
    from trl import GRPOConfig, GRPOTrainer

    return GRPOConfig, GRPOTrainer


def _rloo():
    from trl import RLOOConfig, RLOOTrainer

    return RLOOConfig, RLOOTrainer


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
    # GRPO: practice. The model answers each prompt several times, the built-in rewards (studio/core/rewards.py) score
    # the answers, and the better-than-average answers of each group are made likelier. From the base model or a
    # finished SFT run's adapter; no reference model (TRL's default beta 0: no KL term).
    Stage("grpo", PROMPTS, _grpo, prompt_row, methods=("lora", "qlora", "full", "freeze"),
          learning_rates=PRACTICE_RATES, max_epochs=1.0, continues_run=True, logs=PRACTICE_LOGS, generates=True,
          trl_refusal="export.trl_no_rewards"),  # `trl grpo` exists, but cannot call the studio's rewards
    # RLOO: practice like GRPO, on the same prompts and rewards; each answer's advantage is its reward minus the
    # mean of the other answers to its prompt, and a KL term (TRL's beta 0.05) holds it near the starting model.
    Stage("rloo", PROMPTS, _rloo, prompt_row, learning_rates=PRACTICE_RATES, max_epochs=1.0, continues_run=True,
          logs=PRACTICE_LOGS, generates=True, trl_refusal="export.trl_no_rewards"),
)}
DEFAULT_STAGE = next(iter(STAGES))  # the first row: what a new run trains
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
    """The stages that learn from this kind of data, the usual one first. A file of examples also serves as
    prompts to practise on: its answers are the references the rewards check."""
    kinds = (EXAMPLES, PROMPTS) if kind == EXAMPLES else (kind,)
    return names_where(lambda stage: stage.data in kinds)
