"""English and Chinese text through Gradio's own i18n (`gr.I18n`), following the browser's language.

Settings fields bring their own label and help (studio/config.py metadata), keyed `<field>.label` / `<field>.help`;
the few words that belong to the screens themselves are listed here once.
"""

from __future__ import annotations

import gradio as gr

from ..config import all_fields

SCREEN_TEXT = {
    # key: (English, Chinese)
    "title": ("# Fine-tuning Studio", "# 微调工作室"),
    "subtitle": ("Prepare data, fine-tune a chat model, watch it learn, and compare it with the original.",
                 "准备数据、微调对话模型、观察训练过程，并与原始模型对比。"),
    "tab.data": ("Data", "数据"),
    "tab.hyper": ("Hyperparameters", "超参数"),
    "tab.train": ("Train", "训练"),
    "tab.chat": ("Chat", "对话"),
    "tab.export": ("Export", "导出"),
    "data.upload": ("Upload a file (JSON, JSONL, CSV, Parquet)", "上传文件（JSON、JSONL、CSV、Parquet）"),
    "data.load": ("Load and check", "加载并检查"),
    "data.summary": ("Summary", "概要"),
    "data.problems": ("Problems", "问题"),
    "data.preview": ("Preview: each row as in the file and as training sees it", "预览：每一行的原始内容与训练时看到的内容"),
    "data.search": ("Search rows", "搜索行"),
    "data.page": ("Page", "页码"),
    "data.row": ("Row number", "行号"),
    "data.show_row": ("Show this row", "查看这一行"),
    "data.lengths_title": ("### Token lengths (the model's chat template applied, as in training)",
                           "### Token 长度（套用模型自己的对话模板，与训练时一致）"),
    "data.lengths": ("Percentiles", "分位数"),
    "data.histogram": ("Conversations by length", "按长度统计的对话数"),
    "data.cumulative": ("Share of conversations up to a length", "不超过某长度的对话占比"),
    "data.use_cutoff": ("Use the recommended cutoff", "使用推荐的截断长度"),
    "data.use_split": ("Use the recommended validation share", "使用推荐的验证集比例"),
    "data.quality": ("Quality report", "数据质量报告"),
    "hyper.advanced": ("Advanced settings", "高级设置"),
    "hyper.hardware": ("This machine", "本机硬件"),
    "hyper.check": ("Check settings", "检查设置"),
    "hyper.reset": ("Reset to recommended", "恢复推荐值"),
    "hyper.probe": ("Estimate training time (runs a few steps)", "估算训练时间（会试跑几步）"),
    "hyper.advice_title": ("### Advice for this data on this machine", "### 针对这份数据和这台机器的建议"),
    "hyper.estimate_title": ("### Estimates", "### 估算"),
    "hyper.preset_file": ("Preset file", "预设文件"),
    "hyper.shipped": ("Ready-made presets", "内置预设"),
    "hyper.import": ("Load preset", "加载预设"),
    "hyper.export": ("Export preset", "导出预设"),
    "hyper.status": ("Settings check", "设置检查"),
    "train.start": ("Start training", "开始训练"),
    "train.stop": ("Stop", "停止"),
    "train.status": ("Status", "状态"),
    "train.loss": ("Loss", "损失"),
    "train.log": ("Log", "日志"),
    "train.lr": ("Learning rate", "学习率"),
    "train.resume_target": ("Run to resume", "要继续的运行"),
    "train.resume": ("Resume", "继续训练"),
    "train.history": ("Run history", "历史运行"),
    "train.refresh": ("Refresh history", "刷新历史"),
    "train.compare_pick": ("Runs to compare", "要对比的运行"),
    "train.compare": ("Compare", "对比"),
    "train.diff": ("Settings that differ", "不同的设置"),
    "chat.run": ("Tuned run", "微调后的运行"),
    "chat.refresh": ("Refresh runs", "刷新运行列表"),
    "chat.prompt": ("Your message", "你的消息"),
    "chat.send": ("Send to both", "同时发送给两个模型"),
    "chat.stop": ("Stop", "停止"),
    "chat.clear": ("Clear", "清空"),
    "chat.system": ("System prompt (both panes)", "系统提示词（两边相同）"),
    "chat.system_hint": ("Empty: the model's default", "留空：使用模型默认值"),
    "chat.held_out": ("Held-out prompts and scores", "留出数据上的对比与评分"),
    "chat.test_prompts": ("Answer held-out prompts", "回答留出的提示"),
    "chat.evaluate": ("Evaluate base vs tuned", "评估基座与微调模型"),
    "chat.base": ("Base model", "基座模型"),
    "chat.tuned": ("Tuned model", "微调后的模型"),
    "export.run": ("Run", "运行"),
    "export.refresh": ("Refresh runs", "刷新运行列表"),
    "export.files_title": ("### Model files", "### 模型文件"),
    "export.out_dir": ("Export folder (empty: the run's export/ folder)", "导出目录（留空：运行目录下的 export/）"),
    "export.adapter": ("Adapter only (small, needs the base model)", "仅适配器（小，需要基座模型）"),
    "export.merged": ("Merged model (loads with plain transformers)", "合并后的模型（可直接用 transformers 加载）"),
    "export.gguf": ("GGUF for llama.cpp / Ollama", "GGUF（llama.cpp / Ollama）"),
    "export.gguf_type": ("GGUF type", "GGUF 类型"),
    "export.gguf_info": ("Llama-architecture models with a byte-level BPE tokenizer: the starter model, SmolLM, "
                         "Llama 3 style. Q8_0: half the size of F16, nearly the same answers.",
                         "支持 Llama 架构且使用字节级 BPE 分词器的模型：内置入门模型、SmolLM、Llama 3 风格。"
                         "Q8_0 体积约为 F16 的一半，回答几乎相同。"),
    "export.go": ("Export and check", "导出并检查"),
    "export.hub": ("Push to the Hugging Face Hub (needs internet)", "推送到 Hugging Face Hub（需要联网）"),
    "export.repo": ("Repository id", "仓库 ID"),
    "export.token": ("Write token", "写入令牌"),
    "export.private": ("Private", "私有"),
    "export.push": ("Push", "推送"),
    "export.repeat_title": ("### Repeat this run without the studio", "### 不用工作室复现此运行"),
    "export.commands": ("Commands to repeat this run", "复现此运行的命令"),
    "export.preset": ("Preset of this run", "此运行的预设"),
    "export.download_preset": ("Download preset", "下载预设"),
    "export.trl": ("Write a config for TRL's own `trl sft`", "生成 TRL 自带 `trl sft` 的配置"),
    "export.gpus_title": ("### Train on more GPUs", "### 在更多 GPU 上训练"),
    "export.gpus": ("GPUs per machine", "每台机器的 GPU 数"),
    "export.machines": ("Machines", "机器数"),
    "export.strategy": ("Strategy", "并行策略"),
    "export.accelerate": ("Write accelerate config", "生成 accelerate 配置"),
    "export.launch": ("Launch commands", "启动命令"),
}


def translations() -> dict[str, dict[str, str]]:
    en = {key: pair[0] for key, pair in SCREEN_TEXT.items()}
    zh = {key: pair[1] for key, pair in SCREEN_TEXT.items()}
    for _, name, info in all_fields():
        extra = info.json_schema_extra or {}
        en[f"{name}.label"], zh[f"{name}.label"] = extra["label"], extra["label_zh"]
        advice = f" Advice: {extra['advice']}" if extra.get("advice") else ""
        en[f"{name}.help"], zh[f"{name}.help"] = info.description + advice, extra["help_zh"]
    return {"en": en, "zh": zh, "zh-CN": zh}


I18N = gr.I18n(**translations())


def t(key: str):
    return I18N(key)
