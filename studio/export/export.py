"""What a run leaves for use outside the studio: the adapter, a merged model folder, a GGUF file for llama.cpp /
Ollama (the format itself: studio/export/gguf_file.py) and its preset. The commands and configs that repeat a run
without the studio are in studio/training/repeat.py.

Every export is written to a temporary folder next to its target and moved into place only when complete, then
checked by loading it back and generating one answer; the result says what was written and what the check saw.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from studio.engine import heavy
from studio.core.config import GenerationSettings
from studio.core.runs import RunFolder, write_file
from studio.core.text import Msg, render, word, reason_of
from studio.models import models
from studio.templates import ollama
from studio.chat.chat import answer as decode_answer
from .gguf_file import GGUFError, load_gguf, write_gguf
from .model_card import model_card

Progress = Callable[[float, str], None]
CHECK_PROMPT = "Who are you?"
MARKER = "studio_export.json"  # written into every export; an existing folder without it is never overwritten


def quiet(fraction: float, message: str) -> None:
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
    preset = RunFolder(run_dir).preset()
    if preset is None:
        raise ExportError(Msg("export.not_run", run=str(run_dir)))
    return preset


def trained_weights(run_dir: str | Path) -> tuple[str, Path]:
    """('adapter', folder) for LoRA / QLoRA runs, ('model', folder) for full / freeze runs."""
    weights = RunFolder(run_dir).trained_weights()
    if weights is None:
        raise ExportError(Msg("export.no_weights", run=str(run_dir)))
    return weights


def base_model_path(run_dir: str | Path) -> str:
    run_preset(run_dir)  # a folder that is not a run is an ExportError that says so
    return models.resolve_model_path(RunFolder(run_dir).base_model(), progress=lambda _: None)


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


def commit_folder(tmp: Path, out: Path, record: dict) -> None:
    (tmp / MARKER).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    old = out.with_name(f".{out.name}-replaced-{os.getpid()}") if out.exists() else None
    if old is not None:
        os.replace(out, old)  # moved aside, not deleted: a crash here still leaves the previous export whole
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_record(kind: str, run_dir: Path, **extra) -> dict:
    return {"kind": kind, "run_dir": str(run_dir), "created": datetime.now().isoformat(timespec="seconds"), **extra}


def _copy_run_preset(run_dir: Path, target: Path) -> None:
    shutil.copy2(RunFolder(run_dir).preset_file, target / "preset.json")


# ---------------------------------------------------------------- check by generating

def _copy_licence(base: str, target: Path) -> None:
    """A built-in model's terms travel with every copy of its weights (Gemma's terms ask for it)."""
    for builtin in models.BUILTIN.values():
        for member in builtin.licence_files:
            source = Path(base) / Path(member).name
            if source.is_file():
                shutil.copy(source, target / source.name)


def check_answer(model, tokenizer, prompt: str = CHECK_PROMPT, max_new_tokens: int = 24) -> tuple[list[int], str]:
    """Greedy token ids and text of one short answer, from the Chat tab's decoder."""
    greedy = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    answer = decode_answer(model, tokenizer, [{"role": "user", "content": prompt}], greedy)
    return answer.ids, answer.text


# ---------------------------------------------------------------- adapter and merged model

def export_adapter(run_dir: str | Path, out: str | Path, progress: Progress = quiet) -> ExportResult:
    """The LoRA adapter alone (small; needs the base model to run), checked by loading it with PEFT."""
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
        from peft import PeftModel  # deferred: heavy

        base_path = base_model_path(run_dir)
        model = PeftModel.from_pretrained(models.load_model(base_path), str(tmp)).eval()
        _, answer = check_answer(model, models.load_tokenizer(base_path))
        commit_folder(tmp, out, export_record("adapter", run_dir, base_model=base_path, check_answer=answer))
    progress(1.0, Msg("export.progress_adapter_done"))
    return ExportResult("adapter", str(out), time.perf_counter() - started,
                        Msg("export.check_adapter", base=base_path, prompt=CHECK_PROMPT, answer=answer), sorted_files(out))


def sorted_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file())


def load_merged(run_dir: str | Path):
    """(model, tokenizer) with the run's training folded into plain weights, in fp32: merging in full precision
    keeps the LoRA update's small values from being rounded away before the sum."""
    heavy.ensure_imported()
    run_dir = Path(run_dir)
    kind, weights = trained_weights(run_dir)
    base_path = base_model_path(run_dir)
    tokenizer = models.load_tokenizer(base_path)
    if kind == "model":
        return models.load_model(str(weights)), tokenizer
    from peft import PeftModel  # deferred: heavy

    model = PeftModel.from_pretrained(models.load_model(base_path), str(weights))
    return model.merge_and_unload(), tokenizer


def saved_dtype(base_path: str):
    """The dtype the base model was published in: a merged bf16 model stays bf16 (half the disk)."""
    import torch  # deferred: heavy
    from transformers import AutoConfig  # deferred: heavy

    config = AutoConfig.from_pretrained(base_path)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32


def export_merged(run_dir: str | Path, out: str | Path, progress: Progress = quiet, merged=None) -> ExportResult:
    """A standard model folder (safetensors, tokenizer with chat template, generation config, model card) that
    loads with plain `AutoModelForCausalLM.from_pretrained`; checked by loading it back and generating.
    `merged`: (model, tokenizer) from `load_merged` when the caller has it already; it is cast to the saved dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy

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
        _copy_licence(base_model_path(run_dir), tmp)
        (tmp / "README.md").write_text(model_card(run_dir, "merged"), encoding="utf-8")
        del model
        progress(0.75, Msg("export.progress_check_merged"))
        reloaded = AutoModelForCausalLM.from_pretrained(str(tmp)).eval()
        _, answer = check_answer(reloaded, AutoTokenizer.from_pretrained(str(tmp)))
        commit_folder(tmp, out, export_record("merged", run_dir, dtype=str(dtype), check_answer=answer))
    progress(1.0, Msg("export.progress_merged_done"))
    return ExportResult("merged", str(out), time.perf_counter() - started,
                        Msg("export.check_merged", prompt=CHECK_PROMPT, answer=answer), sorted_files(out))


# ---------------------------------------------------------------- preset and commands

def export_preset(run_dir: str | Path, out: str | Path) -> ExportResult:
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_file(out, RunFolder(run_dir).preset_file.read_bytes())  # never through a link at `out`
    return ExportResult("preset", str(out), time.perf_counter() - started)


# ---------------------------------------------------------------- GGUF

def export_gguf(run_dir: str | Path, out_file: str | Path, qtype: str = "Q8_0",
                progress: Progress = quiet, merged=None) -> ExportResult:
    """The merged model as one GGUF file; checked by reading it back with transformers' GGUF loader and comparing
    its greedy answer with the merged model's. `merged`: (model, tokenizer) from `load_merged`, if at hand."""
    started = time.perf_counter()
    run_dir, out_file = Path(run_dir), Path(out_file)
    if out_file.suffix != ".gguf":
        raise ExportError(Msg("gguf.file_suffix"))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    progress(0.05, Msg("export.progress_merge"))
    model, tokenizer = merged or load_merged(run_dir)
    name = run_dir.name
    tmp = out_file.with_name(f".{out_file.stem}.partial.gguf")  # the loader recognises GGUF by its suffix
    tmp.unlink(missing_ok=True)  # a link left under that name would be written through
    try:
        try:
            write_gguf(model, tokenizer, tmp, qtype, name, progress)
        except GGUFError as err:
            raise ExportError(*err.args) from err
        progress(0.8, Msg("export.progress_check_gguf"))
        expected, _ = check_answer(model, tokenizer)
        reloaded, reloaded_tokenizer = load_gguf(tmp)
        got, answer = check_answer(reloaded, reloaded_tokenizer)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out_file)
    same = _agreement(expected, got)
    served = write_serving_files(run_dir, out_file, tokenizer)
    progress(1.0, Msg("export.progress_gguf_done"))
    return ExportResult("gguf", str(out_file), time.perf_counter() - started,
                        Msg("paragraphs", items=[Msg("export.check_gguf", qtype=qtype, size=out_file.stat().st_size / 1e6,
                                                     same=same, answer=answer), served]),
                        [out_file.name, f"{out_file.stem}.Modelfile", f"{out_file.stem}.README.md"])


def write_serving_files(run_dir: Path, gguf: Path, tokenizer) -> Msg:
    """An Ollama Modelfile and a model card beside the GGUF; the message says whether the chat template could
    be written in Ollama's syntax (checked by rendering sample chats both ways, studio/templates/ollama.py)."""
    from studio.core.config import Settings

    settings = RunFolder(run_dir).settings() or Settings()
    probe = tokenizer("a")["input_ids"]
    adds_bos = bool(probe) and probe[0] == tokenizer.bos_token_id  # as gguf_file records it for llama.cpp
    write_file(gguf.parent / f"{gguf.stem}.README.md", model_card(run_dir, "gguf", gguf.name))
    try:
        text, chosen = ollama.modelfile(gguf.name, tokenizer, settings.generation, adds_bos,
                                        settings.data.system_prompt)
    except ollama.ModelfileValueError as err:  # the GGUF stands; only the Modelfile cannot be written
        return err.args[0]
    write_file(gguf.parent / f"{gguf.stem}.Modelfile", text)
    if chosen.template:
        return Msg("export.modelfile", file=f"{gguf.stem}.Modelfile", family=chosen.family)
    return Msg("export.modelfile_plain", file=f"{gguf.stem}.Modelfile", reason=chosen.reason)


def _agreement(expected: list[int], got: list[int]) -> str:
    if expected == got:
        return Msg("export.same_all", count=len(got))
    first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return Msg("export.same_first", first=first, count=len(expected))


# ---------------------------------------------------------------- what the Export tab calls

def default_export_dir(run_dir: str | Path) -> Path:
    return RunFolder(run_dir).export_dir


def default_gguf_name(run_dir: str | Path, qtype: str) -> str:
    return f"{Path(run_dir).name}-{qtype}.gguf"


def download_items(result: ExportResult) -> list[Path]:
    """What the page offers to download for an export: the folder (adapter, merged model), or its files (the GGUF
    with its Modelfile and model card, a preset, a TRL config)."""
    path = Path(result.path)
    if path.is_dir():
        return [path]
    return [path.parent / name for name in (result.files or [path.name]) if (path.parent / name).is_file()]


def export_selected(run_dir: str | Path, out_dir: str | Path | None, adapter: bool, merged: bool, gguf: bool,
                    gguf_type: str = "Q8_0", progress: Progress = quiet) -> tuple[list[ExportResult], list[str]]:
    """Run the chosen exports into out_dir (default: the run's export/ folder). One failing export does not stop
    the others: (results, problems) says what was written and what was not, and why."""
    if not run_dir or not RunFolder(run_dir).has_preset():
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
            problems.append(Msg("export.item_failed", name=name, error=reason_of(err)))
    return results, problems


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Upload an exported folder to the Hugging Face Hub. Needs internet and a write token."""
    folder = Path(folder)
    if not repo_id or "/" not in repo_id:
        raise ExportError(Msg("export.bad_repo"))
    if not (folder / MARKER).exists():
        raise ExportError(Msg("export.not_exported", folder=str(folder)))
    from huggingface_hub import HfApi  # deferred: only a push needs it

    api = HfApi(token=token or None)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Fine-tuning Studio export")
    except Exception as err:  # noqa: BLE001 - offline, bad token, no permission: all become one plain message
        reason = Msg("export.offline") if _is_network_error(err) else reason_of(err)
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
        preset, status = run_preset(run_dir), RunFolder(run_dir).status()
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
