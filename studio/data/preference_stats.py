"""The Data tab's report for preference data: pairs (DPO, ORPO) or labelled answers (KTO) as rows, chosen beside
rejected in the preview, token lengths of prompt + chosen and prompt + rejected with the model's chat template,
identical pairs and the balance of good and bad answers in the quality report."""

from __future__ import annotations

import logging

import numpy as np

from studio.core.sources import DataSource, as_source
from studio.core.stages import FILE_FORMATS, PAIRS, stages_for
from studio.core.text import Msg
from .data import LoadResult, Row
from .preference import load_preference_rows
from .stats import DataReport, Finding, Lengths, recommend_cutoff, recommended_validation_share

logger = logging.getLogger(__name__)


def _row_of(where) -> int | None:
    return getattr(where, "fields", {}).get("row")  # a problem's place: Msg("where.line", file=..., row=...)


def _report_tokenizer(tokenizer, model: str | None):
    if tokenizer is not None or not model:
        return tokenizer
    from studio.models.models import load_tokenizer, resolve_model_path  # deferred: heavy

    try:
        return load_tokenizer(resolve_model_path(model, progress=lambda _: None))
    except Exception:  # noqa: BLE001 - the report goes on without lengths
        logger.exception("tokenizer for the preference report not loaded")
        return None


def _tokens(tokenizer, messages: list[dict], prompt: bool = False) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _rows(pairs: list[dict], kind: str) -> list[Row]:
    answer = "chosen" if kind == PAIRS else "completion"
    return [Row(number, raw=pair, messages=pair["prompt"] + pair[answer], rejected=pair.get("rejected"))
            for number, pair in enumerate(pairs, 1)]


def _lengths(tokenizer, rows: list[Row]):
    """(prompt + chosen lengths with the chosen answer's share, prompt + rejected lengths), or Nones."""
    if tokenizer is None or not rows:
        return None, None
    prompts = np.array([_tokens(tokenizer, r.raw["prompt"], prompt=True) for r in rows])
    chosen = np.array([_tokens(tokenizer, r.messages) for r in rows])
    rejected = np.array([_tokens(tokenizer, r.raw["prompt"] + r.rejected) for r in rows if r.rejected])
    return Lengths(chosen, chosen - prompts), (rejected if len(rejected) else None)


def _findings(rows: list[Row], problems: list, kind: str) -> list[Finding]:
    identical = [_row_of(w) for w, m in problems if getattr(m, "key", "") == "pref.identical"]
    found = [Finding(Msg("pref.check_stage"), "info", Msg(f"pref.use_{stages_for(kind)[0]}", rows=len(rows)), [])]
    if kind == PAIRS:
        found.append(Finding(Msg("pref.check_identical"), "warning" if identical else "ok",
                             Msg("pref.identical_pairs", count=len(identical)), identical))
    else:
        good = sum(1 for r in rows if r.raw["label"])
        balanced = 0.2 <= good / max(len(rows), 1) <= 0.8
        found.append(Finding(Msg("pref.check_balance"), "ok" if balanced else "warning",
                             Msg("pref.balance", good=good, bad=len(rows) - good), []))
    return found


def preference_report(path: DataSource | str, kind: str, tokenizer=None, model: str | None = None) -> DataReport:
    """The report of a file (or a run's votes) of pairs or labelled answers (`kind`, studio/core/stages.py), read with
    the converter of the usual stage for that kind."""
    path, tokenizer = as_source(path), _report_tokenizer(tokenizer, model)
    pairs, problems = load_preference_rows(path, stages_for(kind)[0])
    rows = _rows(pairs, kind)
    label = path.label()
    loaded = LoadResult(file=label, format=FILE_FORMATS[kind], rows=rows,
                        problems=problems, bad_rows={_row_of(w) for w, _ in problems} - {None},
                        total_rows=len(rows) + len(problems))
    lengths, rejected = _lengths(tokenizer, rows)
    parts = [] if lengths is None or kind != PAIRS else [(Msg("pref.part_chosen"), lengths.total), (Msg("stats.part.prompt"),
                                        lengths.prompt), (Msg("pref.part_chosen_answer"), lengths.answer)]
    parts += [(Msg("pref.part_rejected"), rejected)] if rejected is not None else []
    cutoff = recommend_cutoff(np.maximum(lengths.total, rejected) if rejected is not None and len(rejected) ==
                              len(lengths.total) else lengths.total) if lengths is not None else None
    return DataReport(loaded, lengths, cutoff, _findings(rows, problems, kind),
                      recommended_validation_share(len(rows)), None if tokenizer else Msg("pref.no_tokenizer"),
                      tokenizer, parts)
