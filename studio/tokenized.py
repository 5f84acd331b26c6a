"""Tokenised splits, cached on disk: the same rows with the same tokenizer, chat template and masking are
tokenised once, and later runs (and every process of a multi-GPU run) memory-map the cached copy."""

from __future__ import annotations

import hashlib
import json
import os

from .chat_template import encode_records
from .models import studio_home
from .paths import prune_lru

TOKENIZED_CACHE_VERSION = 1  # bump when encode_records changes what it produces
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
    from datasets import Dataset  # deferred: datasets imports pyarrow and more; the UI does not need it to start

    folder = studio_home() / "cache" / "tokenized" / tokenized_cache_key(tokenizer, rows, assistant_only)
    if cache and (folder / "dataset_info.json").exists():
        os.utime(folder)  # the cache forgets the least recently used entries first
        return Dataset.load_from_disk(str(folder))
    encoded = encode_records(tokenizer, rows)
    columns = {"input_ids": encoded.input_ids}
    if assistant_only:
        columns["assistant_masks"] = encoded.assistant_masks
    dataset = Dataset.from_dict(columns)
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
