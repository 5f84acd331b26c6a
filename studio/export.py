"""What a run leaves for use outside the studio: the adapter, a merged model folder, a GGUF file for llama.cpp /
Ollama, its preset, and the commands / configs that repeat it without the studio (headless, TRL's `trl sft`,
`accelerate launch` on N GPUs).

Every export is written to a temporary folder next to its target and moved into place only when complete, then
checked by loading it back and generating one answer; the result says what was written and what the check saw.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from .text import Msg, render, tr, word

Progress = Callable[[float, str], None]
CHECK_PROMPT = "Who are you?"
MARKER = "studio_export.json"  # written into every export; an existing folder without it is never overwritten


def _quiet(fraction: float, message: str) -> None:
    pass


@dataclass
class ExportResult:
    kind: str  # adapter | merged | gguf | trl-config | preset
    path: str
    seconds: float
    check: str = ""  # what reloading the export and generating one answer showed
    files: list[str] = field(default_factory=list)

    def text(self, language: str = "en") -> str:
        lines = [Msg("export.result", kind=word("result", self.kind), path=self.path, seconds=self.seconds)]
        if self.files:
            lines.append(Msg("export.result_files", files=", ".join(self.files)))
        if self.check:
            lines.append(Msg("export.result_check", check=self.check))
        return "\n".join(render(line, language) for line in lines)


class ExportError(ValueError):
    """An export cannot be made; the message says why and what to do."""


# ---------------------------------------------------------------- run facts

def run_preset(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "preset.json"
    if not path.exists():
        raise ExportError(Msg("export.not_run", run=str(run_dir)))
    return json.loads(path.read_text(encoding="utf-8"))


def run_status(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "status.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def trained_weights(run_dir: str | Path) -> tuple[str, Path]:
    """('adapter', folder) for LoRA / QLoRA runs, ('model', folder) for full / freeze runs."""
    run_dir = Path(run_dir)
    if (run_dir / "adapter" / "adapter_config.json").exists():
        return "adapter", run_dir / "adapter"
    if (run_dir / "model" / "config.json").exists():
        return "model", run_dir / "model"
    raise ExportError(Msg("export.no_weights", run=str(run_dir)))


def base_model_path(run_dir: str | Path) -> str:
    from . import models

    name = run_preset(run_dir)["settings"]["model"]["model_name_or_path"]
    return models.resolve_model_path(name, progress=lambda _: None)


# ---------------------------------------------------------------- folders written atomically

def _prepare_target(out: Path) -> Path:
    """A fresh temporary folder next to `out`; refuse to replace a folder the studio did not write."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ExportError(Msg("export.foreign_folder", folder=str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))


@contextmanager
def staged_folder(out: Path):
    """A temporary folder next to `out`; the block fills it and commits it, and on any failure it is removed, so a
    half-written export never stands where a finished one is expected."""
    tmp = _prepare_target(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, out: Path, record: dict) -> None:
    (tmp / MARKER).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    old = out.with_name(f".{out.name}-replaced-{os.getpid()}") if out.exists() else None
    if old is not None:
        os.replace(out, old)  # moved aside, not deleted: a crash here still leaves the previous export whole
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _record(kind: str, run_dir: Path, **extra) -> dict:
    return {"kind": kind, "run_dir": str(run_dir), "created": datetime.now().isoformat(timespec="seconds"), **extra}


# ---------------------------------------------------------------- model card

def model_card(run_dir: str | Path, kind: str) -> str:
    """A short README.md: base model, data, settings and final figures, and how to load the export."""
    run_dir = Path(run_dir)
    preset, status = run_preset(run_dir), run_status(run_dir)
    s = preset["settings"]
    base = s["model"]["model_name_or_path"]
    base_note = "SmolLM2-135M-Instruct (the studio's starter model)" if base == "starter" else base
    counts = {name: _count_lines(run_dir / "data" / f"{name}.jsonl") for name in ("train", "validation", "test")}
    m, t = s["method"], s["training"]
    method = m["finetuning_type"]
    method_text = f"LoRA r={m['r']}, alpha={m['lora_alpha']}, dropout={m['lora_dropout']}, targets {m['target_modules']}" \
        if method in ("lora", "qlora") else method
    figures = [("steps", status.get("global_step")), ("first train loss", status.get("first_train_loss")),
               ("final train loss", status.get("final_train_loss")),
               ("final validation loss", status.get("final_eval_loss")),
               ("best validation loss", status.get("best_eval_loss")), ("training time (s)", status.get("train_runtime_s"))]
    plan = run_dir / "plan.json"  # what 'auto' became on the machine the run was on
    precision = json.loads(plan.read_text(encoding="utf-8"))["precision"] if plan.exists() else t["precision"]
    evaluation = run_dir / "evaluation.json"
    if evaluation.exists():
        scores = json.loads(evaluation.read_text(encoding="utf-8"))
        for key in ("answer_loss", "rouge_l", "bleu"):
            if key in scores.get("tuned", {}):
                figures.append((f"test {key} (base -> tuned)", f"{scores['base'][key]:.4f} -> {scores['tuned'][key]:.4f}"))
    load = {
        "adapter": "from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")",
        "merged": "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
                  "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH\")",
    }[kind]
    # The hub reads base_model as a hub id: a local folder's path is left out of the metadata.
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct" if base == "starter" else None if Path(base).exists() else base
    lines = [
        "---", *([f"base_model: {hub_id}"] if hub_id else []),
        f"library_name: {'peft' if kind == 'adapter' else 'transformers'}",
        "tags: [fine-tuning-studio, trl, sft]", "---", "",
        f"# {run_dir.name}", "",
        f"Fine-tuned with Fine-tuning Studio (TRL `SFTTrainer`) from **{base_note}**.", "",
        "## Data", "",
        f"- source: `{s['data']['dataset_path']}`",
        f"- rows: {counts['train']} train / {counts['validation']} validation / {counts['test']} test",
        f"- cutoff: {t['max_length']} tokens; loss on {'answers only' if t['assistant_only_loss'] else 'whole conversations'}",
        "", "## Settings", "",
        f"- method: {method_text}",
        f"- learning rate {t['learning_rate']}, {t['num_train_epochs']} epochs (max steps {t['max_steps']}), "
        f"batch {t['per_device_train_batch_size']} x accumulation {t['gradient_accumulation_steps']}, "
        f"scheduler {t['lr_scheduler_type']}, seed {t['seed']}",
        f"- precision: {precision}",
        "", "The full settings are in `preset.json`; `python launch.py train --preset preset.json` repeats the run.",
        "", "## Results", "", "| figure | value |", "|---|---|",
        *[f"| {name} | {value if not isinstance(value, float) else f'{value:.4f}'} |" for name, value in figures
          if value is not None],
        "", "## Use", "", "```python", load, "```", "",
    ]
    return "\n".join(lines)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _copy_run_preset(run_dir: Path, target: Path) -> None:
    shutil.copy2(run_dir / "preset.json", target / "preset.json")


# ---------------------------------------------------------------- check by generating

def check_answer(model, tokenizer, prompt: str = CHECK_PROMPT, max_new_tokens: int = 24) -> tuple[list[int], str]:
    """Greedy token ids and text of one short answer."""
    import torch

    from .chat_template import generation_prompt

    ids = tokenizer(generation_prompt(tokenizer, [{"role": "user", "content": prompt}]), return_tensors="pt",
                    add_special_tokens=False)["input_ids"].to(model.device)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, temperature=None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id)
    new = out[0, ids.shape[1]:].tolist()
    return new, tokenizer.decode(new, skip_special_tokens=True).strip()


# ---------------------------------------------------------------- adapter and merged model

def export_adapter(run_dir: str | Path, out: str | Path, progress: Progress = _quiet) -> ExportResult:
    """The LoRA adapter alone (small; needs the base model to run), checked by loading it with PEFT."""
    from . import heavy, models

    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    kind, weights = trained_weights(run_dir)
    if kind != "adapter":
        raise ExportError(Msg("export.no_adapter"))
    with staged_folder(out) as tmp:
        progress(0.1, Msg("export.progress_copy"))
        for item in weights.iterdir():
            if item.is_file() and item.name != "training_args.bin":  # a pickle, and only the Trainer's
                shutil.copy2(item, tmp / item.name)
        _copy_run_preset(run_dir, tmp)
        (tmp / "README.md").write_text(model_card(run_dir, "adapter"), encoding="utf-8")
        progress(0.4, Msg("export.progress_check_adapter"))
        heavy.ensure_imported()
        from peft import PeftModel

        base_path = base_model_path(run_dir)
        model = PeftModel.from_pretrained(models.load_model(base_path), str(tmp)).eval()
        _, answer = check_answer(model, models.load_tokenizer(base_path))
        _commit(tmp, out, _record("adapter", run_dir, base_model=base_path, check_answer=answer))
    progress(1.0, Msg("export.progress_adapter_done"))
    return ExportResult("adapter", str(out), time.perf_counter() - started,
                        Msg("export.check_adapter", base=base_path, prompt=CHECK_PROMPT, answer=answer), sorted_files(out))


def sorted_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file())


def load_merged(run_dir: str | Path):
    """(model, tokenizer) with the run's training folded into plain weights, in fp32: merging in full precision
    keeps the LoRA update's small values from being rounded away before the sum."""
    from . import heavy, models

    heavy.ensure_imported()
    run_dir = Path(run_dir)
    kind, weights = trained_weights(run_dir)
    base_path = base_model_path(run_dir)
    tokenizer = models.load_tokenizer(base_path)
    if kind == "model":
        return models.load_model(str(weights)), tokenizer
    from peft import PeftModel

    model = PeftModel.from_pretrained(models.load_model(base_path), str(weights))
    return model.merge_and_unload(), tokenizer


def saved_dtype(base_path: str):
    """The dtype the base model was published in: a merged bf16 model stays bf16 (half the disk)."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_path)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32


def export_merged(run_dir: str | Path, out: str | Path, progress: Progress = _quiet, merged=None) -> ExportResult:
    """A standard model folder (safetensors, tokenizer with chat template, generation config, model card) that
    loads with plain `AutoModelForCausalLM.from_pretrained`; checked by loading it back and generating.
    `merged`: (model, tokenizer) from `load_merged` when the caller has it already; it is cast to the saved dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    with staged_folder(out) as tmp:
        progress(0.05, Msg("export.progress_merge"))
        model, tokenizer = merged or load_merged(run_dir)
        dtype = saved_dtype(base_model_path(run_dir))
        progress(0.45, Msg("export.progress_save", dtype=str(dtype).replace("torch.", "")))
        model.to(dtype).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)  # carries the chat template
        _copy_run_preset(run_dir, tmp)
        (tmp / "README.md").write_text(model_card(run_dir, "merged"), encoding="utf-8")
        del model
        progress(0.75, Msg("export.progress_check_merged"))
        reloaded = AutoModelForCausalLM.from_pretrained(str(tmp)).eval()
        _, answer = check_answer(reloaded, AutoTokenizer.from_pretrained(str(tmp)))
        _commit(tmp, out, _record("merged", run_dir, dtype=str(dtype), check_answer=answer))
    progress(1.0, Msg("export.progress_merged_done"))
    return ExportResult("merged", str(out), time.perf_counter() - started,
                        Msg("export.check_merged", prompt=CHECK_PROMPT, answer=answer), sorted_files(out))


# ---------------------------------------------------------------- preset and commands

def export_preset(run_dir: str | Path, out: str | Path) -> ExportResult:
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    shutil.copy2(Path(run_dir) / "preset.json", tmp)
    os.replace(tmp, out)  # a reader never sees half a preset
    return ExportResult("preset", str(out), time.perf_counter() - started)


def headless_commands(run_dir: str | Path, language: str = "en") -> str:
    run_dir = Path(run_dir)
    run = shlex.quote(str(run_dir))
    preset = shlex.quote(str(run_dir / "preset.json"))
    out = default_export_dir(run_dir)

    def target(name: str) -> str:
        return shlex.quote(str(out / name))

    return "\n".join([
        tr("cmd.repeat", language),
        f"python launch.py train --preset {preset}",
        tr("cmd.compare", language),
        f"python launch.py chat {run} --prompt \"Who are you?\"",
        tr("cmd.export", language),
        f"python launch.py export {run} --merged {target('merged')}",
        f"python launch.py export {run} --adapter {target('adapter')}",
        f"python launch.py export {run} --gguf {target(default_gguf_name(run_dir, 'Q8_0'))} --gguf-type Q8_0",
        f"python launch.py export {run} --trl-config {target('trl')}",
        f"python launch.py export {run} --accelerate 2 --strategy zero2",
    ])


# ---------------------------------------------------------------- GGUF for llama.cpp / Ollama

# Architectures written as GGUF: their HF tensors map 1:1 onto llama.cpp's "llama" graph (SmolLM / SmolLM2,
# Llama 2/3-style models with a byte-level BPE tokenizer). Others are refused with this list in the message.
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama"}
GGUF_TYPES = ("F16", "Q8_0", "F32")


def gguf_pre_tokenizer(tokenizer, model_name: str) -> str:
    """llama.cpp's name for how text is split before BPE; it must match how the vocabulary was trained."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise ExportError(f"GGUF export supports byte-level BPE tokenizers; this one is {spec['model']['type']}")
    pre = spec.get("pre_tokenizer") or {}
    kinds = [pre.get("type")] + [p.get("type") for p in pre.get("pretokenizers", [])]
    if "smollm" in model_name.lower() or "SmolLM" in (tokenizer.name_or_path or ""):
        return "smollm"
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    if "Split" in kinds:
        pattern = next(p for p in pre["pretokenizers"] if p["type"] == "Split")["pattern"].get("Regex", "")
        if pattern.startswith("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"):
            return "llama-bpe"
    raise ExportError("GGUF export could not tell how this tokenizer splits text (its pre-tokenizer is "
                      f"{kinds}); supported: GPT-2 / SmolLM byte-level and Llama-3 style BPE tokenizers")


def _token_table(tokenizer) -> tuple[list[str], list[int], list[str]]:
    """(tokens by id, llama.cpp token types, merges) from a fast tokenizer."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [5] * size  # 5 = UNUSED, for ids no token has
    for token, index in vocab.items():
        tokens[index], types[index] = token, 1  # 1 = NORMAL
    for added in spec.get("added_tokens", []):
        types[added["id"]] = 3 if added["special"] else 4  # 3 = CONTROL, 4 = USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    return tokens, types, merges


def _permute_for_gguf(weight, n_head: int):
    """llama.cpp's rotary embedding pairs neighbouring dimensions; HF pairs the two halves of each head. The same
    reordering llama.cpp's converter applies (and transformers' GGUF loader undoes)."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _gguf_tensor(name: str, array, qtype: str):
    """(data, raw dtype or None) for one tensor: norms stay F32; matrices become F16 or Q8_0 (Q8_0 needs rows in
    blocks of 32 values, so narrower matrices fall back to F16, as llama.cpp's converter does)."""
    import gguf
    import numpy as np

    if array.ndim == 1 or qtype == "F32":
        return array.astype(np.float32), None
    if qtype == "Q8_0" and array.shape[-1] % 32 == 0:
        return gguf.quants.quantize(array.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), \
            gguf.GGMLQuantizationType.Q8_0
    return array.astype(np.float16), None


def write_gguf(model, tokenizer, path: Path, qtype: str = "F16", name: str = "model",
               progress: Progress = _quiet) -> None:
    """Write a loaded Llama-family model and its tokenizer (with chat template) as one GGUF file."""
    import gguf

    config = model.config
    arch = GGUF_ARCHITECTURES.get((config.architectures or [type(model).__name__])[0]) \
        or GGUF_ARCHITECTURES.get(type(model).__name__)
    if arch is None:
        raise ExportError(f"GGUF export supports {', '.join(GGUF_ARCHITECTURES)} (e.g. the starter model, SmolLM, "
                          f"Llama 2/3 with BPE tokenizers); this model is {type(model).__name__}. Export the merged "
                          "folder and convert it with llama.cpp's convert_hf_to_gguf.py.")
    if qtype not in GGUF_TYPES:
        raise ExportError(f"GGUF type must be one of {', '.join(GGUF_TYPES)}")
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default" or getattr(config, "attention_bias", False) \
            or getattr(config, "mlp_bias", False):
        raise ExportError("GGUF export supports Llama models without rope scaling or bias terms; convert this one "
                          "with llama.cpp's convert_hf_to_gguf.py")
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    file_types = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                  "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
    writer.add_file_type(file_types[qtype])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, tokenizer, name)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # llama.cpp reuses token_embd when output.weight is absent
    for i, (hf_name, tensor) in enumerate(state.items()):
        array = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            array = _permute_for_gguf(array, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            array = _permute_for_gguf(array, n_kv)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        data, raw = _gguf_tensor(hf_name, array, qtype)
        writer.add_tensor(gguf_name, data, raw_dtype=raw)
        progress(0.2 + 0.5 * i / len(state), Msg("export.progress_tensors", done=i + 1, total=len(state)))
    progress(0.7, Msg("export.progress_write_gguf"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _add_tokenizer(writer, tokenizer, name: str) -> None:
    tokens, types, merges = _token_table(tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(gguf_pre_tokenizer(tokenizer, name))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(token_id)
    probe = tokenizer("a")["input_ids"]
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    writer.add_add_space_prefix(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def load_gguf(path: Path):
    """(model, tokenizer) read back through transformers' own GGUF loader (weights dequantised to fp32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name).eval()
    return model, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def export_gguf(run_dir: str | Path, out_file: str | Path, qtype: str = "Q8_0",
                progress: Progress = _quiet, merged=None) -> ExportResult:
    """The merged model as one GGUF file; checked by reading it back with transformers' GGUF loader and comparing
    its greedy answer with the merged model's. `merged`: (model, tokenizer) from `load_merged`, if at hand."""
    started = time.perf_counter()
    run_dir, out_file = Path(run_dir), Path(out_file)
    if out_file.suffix != ".gguf":
        raise ExportError("the GGUF file name must end in .gguf")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    progress(0.05, Msg("export.progress_merge"))
    model, tokenizer = merged or load_merged(run_dir)
    name = run_dir.name
    tmp = out_file.with_name(f".{out_file.stem}.partial.gguf")  # the loader recognises GGUF by its suffix
    try:
        write_gguf(model, tokenizer, tmp, qtype, name, progress)
        progress(0.8, Msg("export.progress_check_gguf"))
        expected, _ = check_answer(model, tokenizer)
        reloaded, reloaded_tokenizer = load_gguf(tmp)
        got, answer = check_answer(reloaded, reloaded_tokenizer)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out_file)
    same = _agreement(expected, got)
    progress(1.0, Msg("export.progress_gguf_done"))
    return ExportResult("gguf", str(out_file), time.perf_counter() - started,
                        Msg("export.check_gguf", qtype=qtype, size=out_file.stat().st_size / 1e6, same=same,
                            answer=answer), [out_file.name])


def _agreement(expected: list[int], got: list[int]) -> str:
    if expected == got:
        return Msg("export.same_all", count=len(got))
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return Msg("export.same_first", first=first, count=len(expected))


# ---------------------------------------------------------------- TRL's own CLI

def trl_records(rows: list[dict], assistant_only: bool) -> list[dict]:
    """The run's rows in a form `trl sft` trains the way the studio did. The studio masks prompts with its own
    answer masks (any chat template); TRL does that for prompt/completion rows, so single-answer conversations
    become prompt + completion. Rows that do not end in an answer stay whole conversations."""
    if not assistant_only or not all("messages" in r and r["messages"][-1]["role"] == "assistant" for r in rows):
        return rows
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:],
             **({"tools": r["tools"]} if r.get("tools") else {})} for r in rows]


def trl_config(run_dir: str | Path, data_dir: Path, has_validation: bool) -> dict:
    """Arguments for `trl sft --config sft.yaml`: TRL's ScriptArguments, SFTConfig and ModelConfig fields."""
    from . import hardware
    from .config import parse_preset, sft_config_kwargs
    from .train import weights_dtype

    run_dir = Path(run_dir)
    settings, _, problems = parse_preset(run_preset(run_dir), str(run_dir / "preset.json"))
    if problems:
        raise ExportError(Msg("list", items=[Msg("problem", where=w, problem=m) for w, m in problems]))
    method = settings.method
    if method.finetuning_type == "freeze":
        raise ExportError(Msg("export.freeze_trl"))
    plan_path = run_dir / "plan.json"
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.exists() else \
        hardware.plan(hardware.detect(), settings.training.precision, settings.training.gradient_checkpointing)
    sft = sft_config_kwargs(settings, plan)
    sft.pop("use_cpu")  # let TRL pick the device where the config is used
    config = {
        "model_name_or_path": base_model_path(run_dir),
        "dtype": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[
            weights_dtype(plan["precision"], method.finetuning_type)],  # how the studio loaded the weights
        "dataset_name": str(data_dir.resolve()), "dataset_train_split": "train",
        "dataset_test_split": "validation", "output_dir": str((data_dir.parent / "output").resolve()),
        **sft, "eval_strategy": sft["eval_strategy"] if has_validation else "no",
    }
    if not has_validation:
        config.update(eval_on_start=False, load_best_model_at_end=False)
    if method.finetuning_type in ("lora", "qlora"):
        from .config import lora_config_kwargs

        lora = lora_config_kwargs(settings)
        config.update(use_peft=True, lora_r=lora["r"], lora_alpha=lora["lora_alpha"],
                      lora_dropout=lora["lora_dropout"], lora_target_modules=lora["target_modules"])
    if method.finetuning_type == "qlora":
        config.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    return config


def export_trl_config(run_dir: str | Path, out: str | Path, progress: Progress = _quiet) -> ExportResult:
    """A folder with `sft.yaml` and the run's own split, so `trl sft --config sft.yaml` repeats the run."""
    import yaml

    from .train import read_jsonl

    started = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    with staged_folder(out) as tmp:
        assistant_only = run_preset(run_dir)["settings"]["training"].get("assistant_only_loss", True)
        (tmp / "data").mkdir()
        for name in ("train", "validation"):
            source = run_dir / "data" / f"{name}.jsonl"
            rows = read_jsonl(source) if source.exists() else []
            if rows:
                with open(tmp / "data" / f"{name}.jsonl", "w", encoding="utf-8") as f:
                    for row in trl_records(rows, assistant_only):
                        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        config = trl_config(run_dir, out / "data", (tmp / "data" / "validation.jsonl").exists())
        header = (f"# TRL's own CLI, same settings and data split as studio run {run_dir.name}.\n"
                  f"#   trl sft --config {out / 'sft.yaml'}\n"
                  "# The studio picked precision and gradient checkpointing for the machine the run was on\n"
                  "# (bf16 / fp16 / gradient_checkpointing below); change them for another machine.\n")
        (tmp / "sft.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
                                      encoding="utf-8")
        _commit(tmp, out, _record("trl-config", run_dir))
    progress(1.0, Msg("export.progress_trl_done"))
    return ExportResult("trl-config", str(out / "sft.yaml"), time.perf_counter() - started,
                        Msg("export.check_trl", path=str(out / "sft.yaml")), ["sft.yaml", "data/"])


# ---------------------------------------------------------------- accelerate: N GPUs, ZeRO / FSDP

STRATEGIES = ("ddp", "zero2", "zero3", "fsdp")


def accelerate_config(run_dir: str | Path, num_gpus: int, strategy: str = "zero2", num_machines: int = 1,
                      main_process_ip: str = "MAIN_NODE_IP") -> dict:
    """An `accelerate launch` config for `num_gpus` GPUs per machine with plain DDP, DeepSpeed ZeRO-2 / ZeRO-3
    or FSDP; DeepSpeed and FSDP do the distribution, the studio only writes their settings."""
    if strategy not in STRATEGIES:
        raise ExportError(Msg("export.bad_strategy", choices=", ".join(STRATEGIES)))
    if num_gpus < 1 or num_machines < 1:
        raise ExportError(Msg("export.bad_counts"))
    settings = run_preset(run_dir)["settings"]
    t, method = settings["training"], settings["method"]["finetuning_type"]
    if method == "qlora" and strategy in ("zero3", "fsdp"):
        raise ExportError(Msg("export.qlora_sharded"))
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}.get(_gpu_precision(run_dir, t["precision"]))
    config = {
        "compute_environment": "LOCAL_MACHINE", "debug": False,
        "distributed_type": {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}[strategy],
        "mixed_precision": mixed, "num_machines": num_machines, "num_processes": num_gpus * num_machines,
        "machine_rank": 0, "main_training_function": "main", "rdzv_backend": "static", "same_network": True,
        "use_cpu": False, "downcast_bf16": "no",
    }
    if num_machines > 1:
        config.update(main_process_ip=main_process_ip, main_process_port=29500)
    if strategy.startswith("zero"):
        stage = int(strategy[-1])
        config["deepspeed_config"] = {
            "zero_stage": stage, "gradient_accumulation_steps": t["gradient_accumulation_steps"],
            "gradient_clipping": t["max_grad_norm"], "offload_optimizer_device": "none",
            "offload_param_device": "none", "zero3_init_flag": stage == 3, "zero3_save_16bit_model": stage == 3,
        }
    if strategy == "fsdp":
        config["fsdp_config"] = {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True, "fsdp_activation_checkpointing": False,
        }
    return config


def _gpu_precision(run_dir: Path, precision: str) -> str:
    """'auto' follows what the run chose if it ran on a GPU (fp16 on a V100 / T4, bf16 on Ampere or newer);
    a run made on a CPU says nothing about the GPUs, so bf16, with a comment in the YAML to change it."""
    if precision != "auto":
        return precision
    try:
        plan = json.loads((Path(run_dir) / "plan.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        plan = {}
    return plan["precision"] if plan.get("device") == "cuda" and plan.get("precision") in ("bf16", "fp16") else "bf16"


def accelerate_files(run_dir: str | Path, num_gpus: int, strategy: str = "zero2", num_machines: int = 1,
                     out_dir: str | Path | None = None, language: str = "en") -> tuple[str, str]:
    """(YAML text, launch commands); the YAML is written to out_dir (default: the run's export/ folder)."""
    import yaml

    run_dir = Path(run_dir)
    config = accelerate_config(run_dir, num_gpus, strategy, num_machines)
    name = f"accelerate-{strategy}-{num_gpus}x{num_machines}.yaml"
    path = Path(out_dir or run_dir / "export") / name
    text = (f"# accelerate config: {num_gpus} GPU(s) x {num_machines} machine(s), strategy {strategy}\n"
            + ("# mixed_precision bf16 needs Ampere or newer (compute capability 8.0+); on a V100 or T4 use fp16\n"
               if config["mixed_precision"] == "bf16" else "")
            + yaml.safe_dump(config, sort_keys=False))
    preset = shlex.quote(str(run_dir / "preset.json"))
    target = shlex.quote(str(run_dir.parent / f"{run_dir.name}-{num_gpus * num_machines}gpu"))
    needs = {"zero2": "pip install deepspeed", "zero3": "pip install deepspeed"}.get(strategy)
    lines = [Msg("cmd.where", needs=Msg("cmd.needs", package=needs) if needs else "")]
    for rank in range(num_machines):
        rank_flag = f" --machine_rank {rank}" if num_machines > 1 else ""
        lines.append(f"accelerate launch --config_file {shlex.quote(str(path))}{rank_flag} launch.py train "
                     f"--preset {preset} --output-dir {target}")
    lines.append(Msg("cmd.torchrun", command=f"torchrun --nproc_per_node {num_gpus} launch.py train --preset {preset} "
                                              f"--output-dir {target}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return text, "\n".join(render(line, language) for line in lines)


# ---------------------------------------------------------------- what the Export tab calls

def default_export_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "export"


def default_gguf_name(run_dir: str | Path, qtype: str) -> str:
    return f"{Path(run_dir).name}-{qtype}.gguf"


def export_selected(run_dir: str | Path, out_dir: str | Path | None, adapter: bool, merged: bool, gguf: bool,
                    gguf_type: str = "Q8_0", progress: Progress = _quiet) -> tuple[list[ExportResult], list[str]]:
    """Run the chosen exports into out_dir (default: the run's export/ folder). One failing export does not stop
    the others: (results, problems) says what was written and what was not, and why."""
    if not run_dir or not (Path(run_dir) / "preset.json").exists():
        return [], [Msg("export.pick_run")]
    out = Path(out_dir) if out_dir else default_export_dir(run_dir)
    shared = {}  # merged weights, loaded (and merged) once when both the folder and the GGUF file are wanted

    def loaded():
        if merged and gguf and "model" not in shared:
            shared["model"] = load_merged(run_dir)
        return shared.get("model")

    # GGUF before the merged folder: the folder export casts the shared model to the base's dtype.
    chosen = [(adapter, Msg("kind.adapter"), lambda p: export_adapter(run_dir, out / "adapter", p)),
              (gguf, Msg("kind.gguf", qtype=gguf_type), lambda p: export_gguf(run_dir, out / default_gguf_name(run_dir, gguf_type),
                                                                 gguf_type, p, loaded())),
              (merged, Msg("kind.merged"), lambda p: export_merged(run_dir, out / "merged", p, loaded()))]
    chosen = [(name, job) for wanted, name, job in chosen if wanted]
    if not chosen:
        return [], [Msg("export.choose_one")]
    results, problems = [], []
    for i, (name, job) in enumerate(chosen):
        def step(fraction: float, message: str, i=i, name=name) -> None:
            progress((i + fraction) / len(chosen), Msg("export.progress_item", name=name, step=message))
        try:
            results.append(job(step))
        except ExportError as err:
            problems.append(Msg("export.item_problem", name=name, problem=err.args[0] if err.args else str(err)))
        except Exception as err:  # noqa: BLE001 - an export failure is a message, never a crashed tab
            problems.append(Msg("export.item_failed", name=name, error=f"{type(err).__name__}: {err}"))
    return results, problems


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload an exported folder to the Hugging Face Hub. Needs internet and a write token."""
    folder = Path(folder)
    if not repo_id or "/" not in repo_id:
        raise ExportError(Msg("export.bad_repo"))
    if not (folder / MARKER).exists():
        raise ExportError(Msg("export.not_exported", folder=str(folder)))
    from huggingface_hub import HfApi

    api = HfApi(token=token or None)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Fine-tuning Studio export")
    except Exception as err:  # noqa: BLE001 - offline, bad token, no permission: all become one plain message
        reason = Msg("export.offline") if _is_network_error(err) else \
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise ExportError(Msg("export.push_failed", repo=repo_id, reason=reason, folder=str(folder))) from err
    return Msg("export.pushed", name=folder.name, repo=repo_id, commit=getattr(commit, "oid", "")[:8])


def _is_network_error(err: Exception) -> bool:
    names = {type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None}
    return bool(names & {"OfflineModeIsEnabled", "ConnectionError", "ConnectTimeout", "ConnectError",
                         "LocalEntryNotFoundError", "MaxRetryError", "NewConnectionError"}) \
        or "offline" in str(err).lower() or "connect" in str(err).lower()


def run_summary(run_dir: str | Path) -> str:
    """One paragraph about a run for the Export tab: what it trained and what can be exported from it."""
    try:
        preset, status = run_preset(run_dir), run_status(run_dir)
    except ExportError as err:
        return err.args[0]
    except (OSError, json.JSONDecodeError) as err:
        return str(err)
    method = preset["settings"]["method"]["finetuning_type"]
    try:
        kind, _ = trained_weights(run_dir)
        can = Msg("export.can_adapter") if kind == "adapter" else Msg("export.can_full")
    except ExportError as err:
        can = Msg("export.can_nothing", why=err.args[0])
    loss = status.get("final_train_loss")
    return Msg("export.summary", run=Path(run_dir).name, state=word("state", status.get("status", "?")), method=method, steps=status.get("global_step", "?"),
               loss=Msg("export.summary_loss", loss=loss) if isinstance(loss, float) else "", can=can)
