"""The Data tab's report of a data source: read once, measured with the model's tokenizer, checked for quality
and pre-flight problems (studio/data/stats.py, studio/plan/preflight.py), or, for pairs and labelled answers, the preference
report (studio/data/preference_stats.py); and the last few reports kept for paging, searching and the advice, keyed on
the file's version so a file changed on disk is read afresh. No torch here."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict

from studio.core.config import DEMO_DATA, STARTER_MODEL
from studio.core.kept import Kept
from studio.core.paths import source_refusal
from studio.core.sources import VOTES, DataSource, as_source
from studio.core.stages import EXAMPLES, PAIRS, PROMPTS, data_kind, stage_of
from studio.core.text import Msg, reason_of
from studio.models.models import load_tokenizer, resolve_model_path
from studio.data.data import LoadResult, load_dataset_file
from studio.data.practice_data import checkable_finding, practice_report
from studio.data.preference_stats import preference_report
from studio.data.readers import resolve_path
from studio.data.stats import (DataReport, block_cutoff, quality_report, recommend_cutoff, recommended_validation_share,
                    set_aside_refused, template_findings, token_lengths)
from .preflight import preflight_findings

logger = logging.getLogger(__name__)


def build_report(path: DataSource | str, fmt: str = "auto", model: str | None = STARTER_MODEL, mapping: dict | None = None,
                 label: str | None = None, progress=None, tokenizer=None, reads: str | None = None) -> DataReport:
    """progress(stage message, rows done, rows in all) is called as the report is built. `reads`: PROMPTS for
    the GRPO stage, which reads any file as prompts with reference answers (studio/data/practice_data.py)."""
    progress = progress or (lambda stage, done=None, total=None: None)
    progress(Msg("progress.reading"))
    path = as_source(path)
    if reads == PROMPTS:
        if tokenizer is None and model:
            tokenizer = load_tokenizer(resolve_model_path(model, progress=lambda _: None))
        return practice_report(path, tokenizer)
    loaded = None if path.kind == VOTES else load_dataset_file(path, fmt, mapping, label)
    kind = data_kind(loaded.format) if loaded is not None else PAIRS  # a run's votes: pairs
    if kind != EXAMPLES:  # pairs or labelled answers: the preference stages' data
        return preference_report(path, kind, tokenizer, model)
    lengths = cutoff = None
    tokenizer_problem = None
    refused = 0
    if loaded.rows and (tokenizer is not None or model):
        try:
            if tokenizer is None:
                tokenizer = load_tokenizer(resolve_model_path(model, progress=lambda _: None))
            lengths = token_lengths(tokenizer, loaded.records(), progress)
            lengths, refused = set_aside_refused(loaded, lengths)
            cutoff = recommend_cutoff(lengths.total) if loaded.format != "text" else block_cutoff(lengths.total)
            if not loaded.rows:
                lengths, cutoff, tokenizer_problem = None, None, Msg("stats.all_refused")
        except Exception as err:  # a tokenizer that cannot be had must not hide the rest of the report
            logger.exception("token lengths not measured")
            tokenizer_problem = Msg("stats.not_measured", reason=reason_of(err))
    progress(Msg("progress.quality"))
    findings = quality_report(loaded.rows, None if lengths is None else lengths.answer,
                              cutoff.cutoff if cutoff else None, None if lengths is None else lengths.total,
                              progress=progress)
    if tokenizer is not None:
        findings += template_findings(loaded.rows, tokenizer, None if lengths is None else lengths.notes, refused)
    findings += preflight_findings(loaded.rows, tokenizer, model)
    if (practice := checkable_finding(loaded.rows)) is not None:
        findings.append(practice)
    return DataReport(loaded, lengths, cutoff, findings, recommended_validation_share(len(loaded.rows)),
                      tokenizer_problem, tokenizer)


# ---------------------------------------------------------------- the last report, kept for paging and advice
# One report and one tokenizer at a time (tokenizers can be large): paging, searching and the Hyperparameters
# tab's advice read the file that was loaded instead of reading it again. Guarded, since sessions share it.

_CACHE = Kept(4)  # the last few reports: the files of a mix, each read once
# The keys of every report made (bounded): a report pushed out of the cache by other work (a run's own reports,
# a mix) is made again for the advice and the cost line, since the user did load that file; a path only typed
# into the box is never among them.
_LOADED: OrderedDict = OrderedDict()
_LOADED_KEEP = 64
_LOADED_LOCK = threading.Lock()
_TOKENIZERS: dict = {}
_TOKENIZER_LOCK = threading.Lock()


def _tokenizer(model: str, progress=None):
    """The model's tokenizer, kept for the next report; a built-in model's first use (download, conversion) is
    said through `progress` (the Data tab's progress bar), with its size."""
    with _TOKENIZER_LOCK:
        if model not in _TOKENIZERS:
            said = (lambda message: progress(message)) if progress else (lambda _: None)
            tokenizer = load_tokenizer(resolve_model_path(model, progress=said))
            _TOKENIZERS.clear()
            _TOKENIZERS[model] = tokenizer
        return _TOKENIZERS[model]


def file_version(path: DataSource) -> tuple | None:
    """(modification time, size) of a data file: a file changed on disk is reported afresh, as training reads
    it afresh (data.load_dataset_file keys the same way). None for the demo name, hub ids and votes."""
    try:
        info = resolve_path(path).stat()
    except (OSError, ValueError):
        return None
    return info.st_mtime_ns, info.st_size


def reads_for(stage: str | None) -> str | None:
    """How a stage reads a file, where it differs from the file's own kind: GRPO reads prompts."""
    try:
        return PROMPTS if stage and stage_of(stage).data == PROMPTS else None
    except KeyError:  # a stage name the settings will refuse: the file as it is
        return None


def report_key(path: DataSource | str, fmt: str, mapping: dict[str, str], model: str | None,
               reads: str | None = None) -> tuple:
    """What a kept report is found by: the source as read (with the file's version), the model that measured it,
    and how the stage reads it."""
    path = as_source(path)
    return path, fmt, tuple(mapping.items()), model, file_version(path), reads


def cached_report(path: DataSource | str, fmt: str, mapping: dict[str, str], model: str, progress=None,
                  reads: str | None = None) -> DataReport:
    """The kept report, or a new one. A report being built holds up only callers that want the same report: the
    advice and other files' reports go on meanwhile (studio/core/kept.py)."""
    path = as_source(path)
    key = report_key(path, fmt, mapping, model, reads)
    report = _CACHE.get_or_make(key, lambda: _new_report(path, fmt, mapping, model, progress, reads))
    with _LOADED_LOCK:
        _LOADED[key] = True
        _LOADED.move_to_end(key)
        while len(_LOADED) > _LOADED_KEEP:
            _LOADED.popitem(last=False)
    return report


def _new_report(path: DataSource, fmt: str, mapping: dict[str, str], model: str, progress, reads) -> DataReport:
    try:
        tokenizer = _tokenizer(model, progress) if model else None
        return build_report(path, fmt, None, mapping or None, progress=progress, tokenizer=tokenizer, reads=reads)
    except Exception as err:  # the tokenizer's model could not be had: report the data without lengths
        report = build_report(path, fmt, None, mapping or None, progress=progress, reads=reads)
        report.tokenizer_problem = Msg("stats.not_measured", reason=reason_of(err))
        return report


def refused_report(path: str, refusal: str) -> DataReport:
    """What the Data tab shows for a path it may not open: the refusal as the file's one problem."""
    return DataReport(LoadResult(file=path, problems=[(path, refusal)]), None, None, [],
                      recommended_validation_share(0))


def report_for(path: DataSource | str, fmt: str, mapping: dict[str, str], model: str, progress=None,
               reads: str | None = None) -> DataReport:
    """The Data tab's report, from the cache. A typed path outside the studio's folders is never opened: the
    refusal is the report; a refused model folder gives the data without lengths (the cached report untouched)."""
    path = as_source(path)  # the one reading of the box's text on a Load click
    if refusal := source_refusal(path):
        return refused_report(path.text, refusal)
    if refusal := source_refusal(model):
        return dataclasses.replace(cached_report(path, fmt, mapping, None, progress, reads), tokenizer_problem=refusal)
    return cached_report(path, fmt, mapping, model, progress, reads)


def advice_report(settings) -> DataReport | None:
    """The data the advice reads: the file the Data tab loaded, or the built-in demo. A path typed into the
    dataset box is read only when the user presses Load (never on every keystroke)."""
    d, model, reads = settings.data, settings.model.model_name_or_path, reads_for(settings.method.stage)
    report = loaded_report(d.dataset_path, d.dataset_format, d.column_mapping, model, reads)
    if report is None and d.dataset_path == DEMO_DATA:
        try:
            report = cached_report(d.dataset_path, d.dataset_format, d.column_mapping, model, reads=reads)
        except Exception:  # noqa: BLE001 - the advice goes on without data facts
            report = None
    return report


def loaded_report(path: str, fmt: str, mapping: dict[str, str], model: str,
                  reads: str | None = None) -> DataReport | None:
    """The report of this file if it was loaded (made again if other reports pushed it out of the cache); None
    otherwise (advice never reads a file the user has not loaded)."""
    key = report_key(path, fmt, mapping, model, reads)
    if (report := _CACHE.get(key)) is None and key in _LOADED:
        try:
            report = cached_report(path, fmt, mapping, model, reads=reads)
        except Exception:  # noqa: BLE001 - the file went away since: the advice goes on without data facts
            report = None
    return report
