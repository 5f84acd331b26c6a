"""Rows that are not SFT data: preference pairs and KTO rows (which SFT would learn wrongly: a rejected answer as
a good one), and rows only a vision or audio model could read. data.py asks here before normalising a file."""

from __future__ import annotations

import json
from typing import Any

from studio.core.stages import FILE_FORMATS, LABELLED, PAIRS
from studio.core.text import Msg

MEDIA_KEYS = ("images", "videos", "audios", "image", "video", "audio")
PAIRED, LABELLED_FORMAT = FILE_FORMATS[PAIRS], FILE_FORMATS[LABELLED]  # "preference", "kto": the formats' names
MEDIA_PLACEHOLDERS = ("<image>", "<video>", "<audio>")
MEDIA_PARTS = {"image", "image_url", "video", "video_url", "audio", "input_audio", "audio_url"}


def data_kind(record: Any) -> tuple[str, str] | None:
    """(the file format of pairs or of labelled answers, the file's shape) for rows made for preference tuning,
    which SFT must not train: a pair's rejected answer, or a KTO row labelled undesirable, would be learnt as a good answer."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if {"chosen", "rejected"} <= keys:
        if "conversations" in keys:
            return PAIRED, "LLaMA-Factory (ShareGPT)"
        if "instruction" in keys:
            return PAIRED, "LLaMA-Factory (Alpaca)"
        if isinstance(record["chosen"], list):
            return PAIRED, "UltraFeedback"
        if "prompt" in keys:
            return PAIRED, "TRL prompt/chosen/rejected"
        return PAIRED, "HH-RLHF" if "Human:" in str(record["chosen"]) else "chosen/rejected"
    if "kto_tag" in keys:
        return LABELLED_FORMAT, "LLaMA-Factory kto_tag"
    if isinstance(record.get("label"), bool) and keys & {"completion", "messages", "output", "conversations"}:
        return LABELLED_FORMAT, "TRL prompt/completion/label"
    return None


def kind_verdict(records: list, label: str) -> tuple[str, Msg] | None:
    """The file-wide verdict when most rows are preference or KTO rows: (kind, message naming it)."""
    kinds = [data_kind(r) for _, r in records]
    found = [k for k in kinds if k]
    if len(found) * 2 <= len(records):
        return None
    kind, shape = max(set(found), key=found.count)
    if kind == "preference":
        return kind, Msg("data.kind_preference", shape=shape, rows=len(found))
    good = sum(1 for _, r in records if r.get("kto_tag", r.get("label")) is True)
    return kind, Msg("data.kind_kto", shape=shape, rows=len(found), good=good, bad=len(found) - good)


def media_in(record: dict) -> list[str]:
    """What a row holds that only a vision or audio model could read: media columns, placeholders, media parts."""
    found = [key for key in MEDIA_KEYS if record.get(key)]
    text = json.dumps(record, ensure_ascii=False)
    found += [tag for tag in MEDIA_PLACEHOLDERS if tag in text]
    found += sorted({f'"type": "{part}"' for part in MEDIA_PARTS if f'"type": "{part}"' in text})
    return found
