"""The GGUF file format for llama.cpp / Ollama: a loaded Llama-family model and its tokenizer (with chat
template) written as one file, and read back through transformers' own GGUF loader. The export that uses it,
with its check, is `export.export_gguf`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from studio.core.text import Msg


class GGUFError(ValueError):
    """This model or tokenizer cannot be written as GGUF; the message says what to do instead."""


# Architectures written as GGUF: their HF tensors map 1:1 onto llama.cpp's "llama" graph (SmolLM / SmolLM2,
# Llama 2/3-style models with a byte-level BPE tokenizer). Others are refused with this list in the message.
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama"}
GGUF_TYPES = ("F16", "Q8_0", "F32")


def gguf_pre_tokenizer(tokenizer, model_name: str) -> str:
    """llama.cpp's name for how text is split before BPE; it must match how the vocabulary was trained."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise GGUFError(Msg("gguf.not_bpe", kind=spec["model"]["type"]))
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
    raise GGUFError(Msg("gguf.unknown_split", kinds=", ".join(str(kind) for kind in kinds)))


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
    import gguf  # deferred: a package only this export needs

    if array.ndim == 1 or qtype == "F32":
        return array.astype(np.float32), None
    if qtype == "Q8_0" and array.shape[-1] % 32 == 0:
        return gguf.quants.quantize(array.astype(np.float32), gguf.GGMLQuantizationType.Q8_0), \
            gguf.GGMLQuantizationType.Q8_0
    return array.astype(np.float16), None


def write_gguf(model, tokenizer, path: Path, qtype: str = "F16", name: str = "model",
               progress: Callable[[float, str], None] = lambda fraction, message: None) -> None:
    """Write a loaded Llama-family model and its tokenizer (with chat template) as one GGUF file."""
    import gguf  # deferred: a package only this export needs

    arch = _supported_architecture(model, qtype)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    _add_hyperparameters(writer, model.config, qtype)
    _add_tokenizer(writer, tokenizer, name)
    _add_tensors(writer, model, qtype, progress)
    progress(0.7, Msg("export.progress_write_gguf"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _supported_architecture(model, qtype: str) -> str:
    """llama.cpp's architecture name for the model, or GGUFError saying what to do instead."""
    config = model.config
    arch = GGUF_ARCHITECTURES.get((config.architectures or [type(model).__name__])[0]) \
        or GGUF_ARCHITECTURES.get(type(model).__name__)
    if arch is None:
        raise GGUFError(Msg("gguf.architecture", supported=", ".join(GGUF_ARCHITECTURES),
                            model=type(model).__name__))
    if qtype not in GGUF_TYPES:
        raise GGUFError(Msg("gguf.bad_type", choices=", ".join(GGUF_TYPES)))
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default" or getattr(config, "attention_bias", False) \
            or getattr(config, "mlp_bias", False):
        raise GGUFError(Msg("gguf.rope_or_bias"))
    return arch


def _add_hyperparameters(writer, config, qtype: str) -> None:
    import gguf  # deferred: a package only this export needs

    n_head = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(config.num_key_value_heads)
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


def _add_tensors(writer, model, qtype: str, progress) -> None:
    import gguf  # deferred: a package only this export needs

    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # llama.cpp reuses token_embd when output.weight is absent
    for i, (hf_name, tensor) in enumerate(state.items()):
        array = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            array = _permute_for_gguf(array, config.num_attention_heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            array = _permute_for_gguf(array, config.num_key_value_heads)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GGUFError(Msg("gguf.no_tensor_name", tensor=hf_name))
        data, raw = _gguf_tensor(hf_name, array, qtype)
        writer.add_tensor(gguf_name, data, raw_dtype=raw)
        progress(0.2 + 0.5 * i / len(state), Msg("export.progress_tensors", done=i + 1, total=len(state)))


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
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name).eval()
    return model, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


