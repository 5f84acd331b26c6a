"""Tokenised splits, cached on disk: the same rows with the same tokenizer, chat template and masking are
tokenised once, and later runs (and every process of a multi-GPU run) memory-map the cached copy."""

from __future__ import annotations

import hashlib
import json
import os

from studio.core.paths import prune_lru
from studio.core.runs import studio_home
from studio.templates.chat_template import encode_records

TOKENIZED_CACHE_VERSION = 3  # bump when encode_records changes what it produces
TOKENIZED_CACHE_MB = 2048  # about 100M tokens of int32 ids: many datasets, never the whole disk


def tokenized_cache_key(tokenizer, rows: list[dict], assistant_only: bool) -> str:
    """Same rows, same tokenizer (vocabulary and rules), same chat template, same masking -> same tokens.
    Truncation to the cutoff happens later in TRL, so the cutoff is not part of the key."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    identity = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    for part in (str(TOKENIZED_CACHE_VERSION), identity, tokenizer.chat_template or "", str(assistant_only),
                 json.dumps(rows, ensure_ascii=False, sort_keys=True)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def encode_split(tokenizer, rows: list[dict], assistant_only: bool, cache: bool = True):
    """Tokenised rows as a datasets.Dataset, from the studio's cache when these rows were tokenised before."""
    from datasets import Dataset, DatasetInfo  # deferred: imports pyarrow and more; the UI starts without it

    folder = studio_home() / "cache" / "tokenized" / tokenized_cache_key(tokenizer, rows, assistant_only)
    if cache and (folder / "dataset_info.json").exists():
        os.utime(folder)  # the cache forgets the least recently used entries first
        return Dataset.load_from_disk(str(folder))
    encoded = encode_records(tokenizer, rows)
    kept = [i for i, note in enumerate(encoded.rendered) if note.problem is None]  # refused rows train nothing
    kept += range(len(encoded.rendered), len(encoded.input_ids))  # the extra sequences some rows add
    columns = {"input_ids": [encoded.input_ids[i] for i in kept]}
    if assistant_only:
        columns["assistant_masks"] = [encoded.assistant_masks[i] for i in kept]
    dataset = Dataset.from_dict(columns, info=DatasetInfo(description=json.dumps(template_notes(encoded.rendered))))
    if cache:
        try:
            tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")  # processes on other machines may race
            dataset.save_to_disk(str(tmp))
            os.replace(tmp, folder)  # atomic: a half-written cache entry is never read
            prune_lru(folder.parent, TOKENIZED_CACHE_MB * 1024**2, keep=folder)
            return Dataset.load_from_disk(str(folder))  # memory-mapped: no second copy of the data in RAM
        except OSError:
            pass  # a full or read-only disk only costs the next run a re-tokenisation
    return dataset


def template_notes(rendered: list) -> dict:
    """What the template could not train in these rows (1-based split rows), kept with the cached tokens so that
    a run that reuses them still tells the user."""
    def rows(attribute):
        return [[n, getattr(note, attribute)] for n, note in enumerate(rendered, 1) if getattr(note, attribute)]

    refused = [[n, note.problem.to_json()] for n, note in enumerate(rendered, 1) if note.problem is not None]
    return {"refused": refused, "untrained": rows("untrained"), "reasoning_lost": rows("reasoning_lost"),
            "reasoning_split": rows("reasoning_split"), "folded_system": sum(note.folded_system for note in rendered)}


def notes_of(dataset) -> dict:
    try:
        return json.loads(dataset.info.description or "{}")
    except (ValueError, AttributeError):
        return {}
