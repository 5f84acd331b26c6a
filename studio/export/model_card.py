"""The README.md written into every model export: base model, data, settings, final figures and held-out
scores, and how to load it. Its metadata block is what the Hugging Face Hub reads."""

from __future__ import annotations

import re
from pathlib import Path

from studio.core.runs import SPLITS, RunFolder
from studio.core.sources import as_source
from studio.core.text import render
from studio.models.models import BUILTIN


def model_card(run_dir: str | Path, kind: str, gguf_name: str = "") -> str:
    """A short README.md: base model, data, settings and final figures, and how to load the export (a GGUF: the
    two Ollama commands for the Modelfile beside it)."""
    run = RunFolder(run_dir)
    s = run.preset()["settings"]
    base, m, t = s["model"]["model_name_or_path"], s["method"], s["training"]
    builtin = BUILTIN.get(base)
    base_note = f"{builtin.title} (built into the studio; {builtin.licence})" if builtin else base
    counts = {name: run.split_rows(name) for name in SPLITS}
    replayed = run.status().get("replayed_rows") or 0  # the base model's own general answers (studio/chat/replay.py)
    counts["train"] -= replayed
    method = m["finetuning_type"]
    method_text = f"LoRA r={m['r']}, alpha={m['lora_alpha']}, dropout={m['lora_dropout']}, targets {m['target_modules']}" \
        if method in ("lora", "qlora") else method
    precision = (run.plan() or t)["precision"]  # what 'auto' became on the machine the run was on
    lines = [
        *_card_metadata(base, kind), f"# {run.name}", "",
        f"Fine-tuned with Fine-tuning Studio (TRL `SFTTrainer`) from **{base_note}**.", "",
        "## Data", "",
        f"- source: `{source_name(s['data']['dataset_path'])}`"
        + "".join(f", `{source_name(p['dataset_path'])}`" + (f" ({p['share']:.0%})" if p.get("share") else "")
                  for p in s["data"].get("extra_datasets", [])),
        *version_lines((run.plan() or {}).get("data_version")),
        f"- rows: {counts['train']} train / {counts['validation']} validation / {counts['test']} test"
        + (f"; plus {replayed} of the base model's own answers to general prompts (replay)" if replayed else ""),
        f"- cutoff: {t['max_length']} tokens; loss on {'answers only' if t['assistant_only_loss'] else 'whole conversations'}",
        "", "## Settings", "",
        f"- method: {method_text}",
        f"- learning rate {t['learning_rate']}, {t['num_train_epochs']} epochs (max steps {t['max_steps']}), "
        f"batch {t['per_device_train_batch_size']} x accumulation {t['gradient_accumulation_steps']}, "
        f"scheduler {t['lr_scheduler_type']}, seed {t['seed']}",
        f"- precision: {precision}",
        "", "The full settings are in `preset.json`; `python launch.py train --preset preset.json` repeats the run.",
        "", "## Results", "", "| figure | value |", "|---|---|",
        *[f"| {name} | {value if not isinstance(value, float) else f'{value:.4f}'} |" for name, value in
          _card_figures(run) if value is not None],
        "", "## Use", "", *_use(kind, run.name, gguf_name), "",
        *(["## Licence", "", f"The base model is under the {builtin.licence}"
           + (f" (`{'`, `'.join(Path(f).name for f in builtin.licence_files)}` in this folder)."
              if builtin.licence_files and kind == "merged" else "."), ""] if builtin else []),
    ]
    return "\n".join(lines)


def source_name(text: str) -> str:
    """A data source as the card names it: a file by its name (never the folder it sat in on this machine: an
    upload's is a 64-hex hash), a hub id as it is, a run's votes as "my votes on run X"."""
    return str(render(as_source(text).label(), "en"))


LOAD_SNIPPETS = {
    "adapter": "from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")",
    "merged": "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
              "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\ntokenizer = AutoTokenizer.from_pretrained(\"PATH\")",
}


def _use(kind: str, name: str, gguf_name: str) -> list[str]:
    if kind != "gguf":
        return ["```python", LOAD_SNIPPETS[kind], "```"]
    model = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "tuned"  # Ollama's model names are lower case
    modelfile = gguf_name[:-len(".gguf")] + ".Modelfile"
    return ["In Ollama (the Modelfile beside this file holds the chat template, stop tokens, system prompt and the "
            "run's generation settings):", "", "```bash", f"ollama create {model} -f {modelfile}",
            f"ollama run {model}", "```", "", "In llama.cpp:", "", "```bash",
            f"llama-cli -m {gguf_name} -cnv", "```"]


def version_lines(version: dict | None) -> list[str]:
    """A repaired or grown version of the user's file (studio/data/versions.py): which, what changed, its hash."""
    if not version:
        return []
    changes = ", ".join(f"{name} {count}" for name, count in version["changes"].items() if count) or "as read"
    return [f"- version: {version['name']} of `{version['source']}` ({changes}; sha256 {version['sha256'][:16]}…)"]


def _card_metadata(base: str, kind: str) -> list[str]:
    # The hub reads base_model as a hub id: a local folder's path is left out of the metadata.
    hub_id = BUILTIN[base].hub_id if base in BUILTIN else None if Path(base).exists() else base
    return ["---", *([f"base_model: {hub_id}"] if hub_id else []),
            f"library_name: {'peft' if kind == 'adapter' else 'gguf' if kind == 'gguf' else 'transformers'}",
            "tags: [fine-tuning-studio, trl, sft]", "---", ""]


def _card_figures(run: RunFolder) -> list[tuple[str, object]]:
    """The run's final figures, and its held-out scores where the Chat tab measured them."""
    status = run.status()
    figures = [("steps", status.get("global_step")), ("first train loss", status.get("first_train_loss")),
               ("final train loss", status.get("final_train_loss")),
               ("final validation loss", status.get("final_eval_loss")),
               ("best validation loss", status.get("best_eval_loss")),
               ("training time (s)", status.get("train_runtime_s"))]
    if drift := status.get("drift"):  # the general-ability check (studio/chat/drift.py)
        figures += [("general-ability drift (nats/token)", drift["drift"]),
                     ("general prompts answered differently", f"{drift['changed']} of {drift['prompts']}")]
    figures += [(f"validation loss on {Path(f['file']).name}", f["eval_loss"]) for f in status.get("eval_by_file", [])]
    scores = run.evaluation() or {}
    for key in ("exact_match", "f1", "loss", "rouge_l", "bleu"):  # the keys evaluate.evaluate_run writes
        if key in scores.get("tuned", {}) and key in scores.get("base", {}):
            figures.append((f"held-out {key} (base -> tuned)", f"{scores['base'][key]:.4f} -> {scores['tuned'][key]:.4f}"))
    return figures
