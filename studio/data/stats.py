"""Token-length statistics, a cutoff recommendation and a data-quality report.

Lengths are measured on exactly what training sees: the model's chat template applied, tokenised by the model's
tokenizer in batches, split into prompt and answer tokens with the same masks training uses (chat_template.py).
Quality findings name the rows (1-based numbers matching the file and the problem list) so the user can look.
No torch here.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from studio.core.text import WORD, Msg, script_language
from studio.templates.chat_template import added_template, exact_target, measure_records, token_view, replies_message
from studio.templates.template_profile import template_profile
from .data import LoadResult, summary_text
from .readers import where
ROUND_LENGTHS = (64, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 32768)


@dataclass
class Lengths:
    total: np.ndarray
    answer: np.ndarray
    notes: list = field(default_factory=list)  # chat_template.Rendered per row (text dropped): what is not trained

    @property
    def prompt(self) -> np.ndarray:
        return self.total - self.answer

    def without(self, keep: list[bool]) -> "Lengths":
        picked = np.asarray(keep, dtype=bool)
        return Lengths(self.total[picked], self.answer[picked], [n for n, k in zip(self.notes, keep) if k])


def token_lengths(tokenizer, records: list[dict], progress=None, batch_size: int = 1000) -> Lengths:
    totals, answers, notes = [], [], []
    for start in range(0, len(records), batch_size):
        batch_totals, batch_answers, batch_notes = measure_records(tokenizer, records[start:start + batch_size])
        totals += batch_totals
        answers += batch_answers
        notes += batch_notes
        if progress:
            done = min(start + batch_size, len(records))
            progress(Msg("progress.measuring", done=done, total=len(records)), done, len(records))
    return Lengths(np.asarray(totals, dtype=np.int64), np.asarray(answers, dtype=np.int64), notes)


def set_aside_refused(loaded: LoadResult, lengths: Lengths) -> tuple[Lengths, int]:
    """Rows the model's template refuses become problems naming the row, like any bad row; the lengths keep the
    rest (a refused row has no length). Returns the kept lengths and how many rows were refused."""
    keep = [note.problem is None for note in lengths.notes]
    if all(keep):
        return lengths, 0
    for row, note in zip(loaded.rows, lengths.notes):
        if note.problem is not None:
            loaded.problems.append((where(loaded.file, row.number), note.problem))
            loaded.bad_rows.add(row.number)
    loaded.rows = [row for row, k in zip(loaded.rows, keep) if k]
    return lengths.without(keep), keep.count(False)


def percentiles(values: np.ndarray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    marks = {f"p{p}": int(np.ceil(np.percentile(values, p))) for p in (50, 90, 95, 99)}
    return {**marks, "max": int(values.max()), "mean": int(round(float(values.mean())))}


@dataclass
class CutoffAdvice:
    cutoff: int
    truncated: int
    truncated_share: float
    message: str
    blocks: int | None = None  # plain text: the training rows are its blocks at this cutoff


BLOCK_CUTOFF = 1024  # plain text is cut into blocks of this many tokens unless a run's cutoff says otherwise


def block_cutoff(lengths: np.ndarray, cutoff: int = BLOCK_CUTOFF) -> CutoffAdvice:
    """Plain text (continued pre-training): documents are cut into blocks, so no cutoff "covers" them; the
    advice is the block length, with the documents, blocks and tokens it gives (studio/data/blocks.py)."""
    from .blocks import figures  # a pure helper

    counted = figures([int(n) for n in lengths], cutoff)
    return CutoffAdvice(cutoff, 0, 0.0, counted.message(cutoff), counted.blocks)


def recommend_cutoff(lengths: np.ndarray, coverage: float = 0.95) -> CutoffAdvice:
    """The smallest round length that covers `coverage` of the samples, with what it would cut."""
    if len(lengths) == 0:
        return CutoffAdvice(512, 0, 0.0, Msg("stats.no_data"))
    needed = float(np.percentile(lengths, 100 * coverage))
    cutoff = next((r for r in ROUND_LENGTHS if r >= needed), ROUND_LENGTHS[-1])
    truncated = int((lengths > cutoff).sum())
    share = truncated / len(lengths)
    message = Msg("stats.cutoff", cutoff=cutoff, covered=100 * (1 - share), truncated=truncated, share=100 * share)
    if share > 0.05:
        message = Msg("stats.cutoff_over", first=message)
    return CutoffAdvice(cutoff, truncated, share, message)


def histogram(values: np.ndarray, bins: int = 30) -> list[dict]:
    if len(values) == 0:
        return []
    counts, edges = np.histogram(values, bins=bins)
    return [{"tokens": int((a + b) / 2), "conversations": int(c)} for a, b, c in zip(edges[:-1], edges[1:], counts)]


def cumulative(values: np.ndarray, points: int = 60) -> list[dict]:
    if len(values) == 0:
        return []
    ordered = np.sort(values)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(points, len(ordered))).astype(int))
    return [{"tokens": int(ordered[i]), "share": round((i + 1) / len(ordered), 4)} for i in picks]


TINY_DATA_ROWS = 20  # below this no row is held out for validation


def recommended_validation_share(n: int) -> tuple[float, str]:
    """Under 1,000 rows: 10-20% and at least 100 rows where possible; over 10,000: 5-10% and at least 1,000.
    Under 20 rows nothing is held out: every row is needed to learn, and a validation loss on two rows is noise."""
    if n < TINY_DATA_ROWS:
        return 0.0, Msg("stats.tiny_data", rows=n, minimum=TINY_DATA_ROWS)
    if n < 1000:
        share = min(0.2, max(0.1, 100 / max(n, 1)))
        why = Msg("stats.small_data")
    elif n <= 10000:
        share = 0.1 - 0.05 * (n - 1000) / 9000
        why = Msg("stats.medium_data")
    else:
        share = min(0.1, max(0.05, 1000 / n))
        why = Msg("stats.large_data")
    return round(share, 3), why


def recommended_test_share(n: int) -> float:
    """Rows kept apart for the base-vs-tuned scores: none under 100 rows (every row is needed to learn), then
    10% under 1,000, 5% up to 10,000, and about 1,000 rows beyond."""
    if n < 100:
        return 0.0
    if n < 1000:
        return 0.1
    return 0.05 if n <= 10000 else round(max(0.01, 1000 / n), 3)


# ---------------------------------------------------------------- quality report

@dataclass
class Finding:
    check: str
    level: str  # "ok", "info", "warning"
    message: str
    rows: list[int] = field(default_factory=list)


def _normalised(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\W_]+", " ", text).strip()


def _prompt_and_answer(messages: list[dict]) -> tuple[str, str]:
    prompt = "\n".join(m.get("content") or "" for m in messages if m["role"] in ("system", "user", "tool"))
    answer = "\n".join(m.get("content") or "" for m in messages if m["role"] == "assistant")
    return prompt, answer


def _distinct_n(texts: list, n: int) -> float:
    """Share of unique n-grams; each text given as a string or as its list of words (already split)."""
    grams, total = set(), 0
    for text in texts:
        tokens = _words(text) if isinstance(text, str) else text
        grams.update(zip(*(tokens[i:] for i in range(n))))
        total += max(len(tokens) - n + 1, 0)
    return len(grams) / total if total else 0.0




def _words(text: str) -> list[str]:
    # CJK text has no spaces: count each character as a word, as character-level metrics do.
    return WORD.findall(text.lower())


def quality_report(rows, answer_lengths: np.ndarray | None = None, cutoff: int | None = None,
                   totals: np.ndarray | None = None, seed: int = 0, progress=None) -> list[Finding]:
    """rows: studio.data.data.Row objects (number + messages or text). progress(message, done, total) every few
    thousand rows: a large file takes seconds here."""
    chat = [r for r in rows if r.messages is not None]
    findings: list[Finding] = []
    exact, near, by_prompt = defaultdict(list), defaultdict(list), defaultdict(set)
    prompts, answers, normal_prompts, prompt_words, answer_words, languages = [], [], [], [], [], Counter()
    for i, r in enumerate(chat):  # each text is normalised and split into words once
        prompt, answer = _prompt_and_answer(r.messages)
        prompts.append(prompt)
        answers.append(answer)
        normal_prompt, normal_answer = _normalised(prompt), _normalised(answer)
        normal_prompts.append(normal_prompt)
        exact[(prompt, answer)].append(r.number)
        near[(normal_prompt, normal_answer)].append(r.number)
        by_prompt[normal_prompt].add(normal_answer)
        prompt_words.append(_words(prompt))
        answer_words.append(_words(answer))
        languages[script_language(prompt + " " + answer)] += 1
        if progress and (i + 1) % 2000 == 0:
            progress(Msg("progress.quality_rows", done=i + 1, total=len(chat)), i + 1, len(chat))
    dup_rows = sorted(n for group in exact.values() if len(group) > 1 for n in group[1:])
    findings.append(_count_finding("exact_duplicates", dup_rows))
    already = set(dup_rows)  # a set: `in` a list of a million duplicates took minutes
    near_rows = sorted(n for group in near.values() if len(group) > 1 for n in group[1:] if n not in already)
    findings.append(_count_finding("near_duplicates", near_rows))
    conflicting = sorted(r.number for r, p in zip(chat, normal_prompts) if len(by_prompt[p]) > 1)
    findings.append(_count_finding("conflicting", conflicting))
    short = [r.number for r, a in zip(chat, answers) if len(a.strip()) < 3]
    findings.append(_count_finding("short_answers", short))
    if cutoff is not None and totals is not None:  # plain text is cut into blocks, never truncated (blocks.py)
        long_rows = [r.number for r, total in zip(rows, totals) if r.messages is not None and total > cutoff]
        findings.append(_count_finding("too_long", long_rows, cutoff=cutoff))
    if chat:  # prompts and answers: plain text has neither
        findings.append(Finding(Msg("check.diversity"), "info", Msg(
            "finding.diversity", p1=_distinct_n(prompt_words, 1), p2=_distinct_n(prompt_words, 2),
            a1=_distinct_n(answer_words, 1), a2=_distinct_n(answer_words, 2))))
    for r in rows:
        if r.messages is None and r.text:
            languages[script_language(r.text[:2000])] += 1  # a document's start tells its language
    findings.append(Finding(Msg("check.languages"), "info", Msg("list", items=[
        Msg("finding.language_rows", language=Msg(f"lang.{k}"), rows=v) for k, v in languages.most_common()])))
    if chat:
        findings.append(_system_prompt_finding(chat))
    sample_size = min(len(rows), max(1, round(len(rows) * 50 / 1000))) if rows else 0
    sample = sorted(random.Random(seed).sample([r.number for r in rows], sample_size)) if sample_size else []
    findings.append(Finding(Msg("check.sample"), "info", Msg("finding.sample", count=len(sample)), sample))
    return findings


def template_findings(rows, tokenizer, notes: list | None = None, refused: int = 0) -> list[Finding]:
    """What training will see of this data with the model's template: which method finds the answers, what it
    cannot train (named, row by row), and how tool calls and reasoning are rendered."""
    profile = template_profile(tokenizer)
    chat = [r for r in rows if r.messages is not None]
    tools = [r.number for r in chat if any(m.get("tool_calls") or m["role"] == "tool" for m in r.messages)]
    thinking = [r.number for r in chat if any(m.get("reasoning_content") for m in r.messages)]
    out = []
    if getattr(tokenizer, "studio_added_template", False):
        message = Msg("finding.base_model", template=added_template(tokenizer))
        out.append(Finding(Msg("check.template"), "warning", message))
    if notes is not None and chat:  # plain text trains every token: the blocks line says so
        out += target_findings(profile, rows, notes, refused)
    if tools:
        message = Msg("finding.tools_template" if profile.tool_calls else "finding.tools_text", count=len(tools))
        out.append(Finding(Msg("check.tools"), "info" if profile.tool_calls else "warning", message, tools))
    if thinking:
        message = Msg("finding.thinking_template" if profile.thinking else "finding.thinking_text",
                      count=len(thinking))
        out.append(Finding(Msg("check.reasoning"), "info", message, thinking))
    return out


def target_findings(profile, rows, notes: list, refused: int = 0) -> list[Finding]:
    """The training target: exact, or which replies and reasoning are left untrained (never prompt text instead)."""
    out = []
    for attribute in ("untrained", "reasoning_lost"):
        hit = [(row.number, getattr(note, attribute)) for row, note in zip(rows, notes) if getattr(note, attribute)]
        if hit:
            out.append(Finding(Msg("check.target"), "warning", replies_message(attribute, hit), [n for n, _ in hit]))
    if not out:  # the rows the template takes train exactly; refused rows are a problem of their own
        out.append(Finding(Msg("check.target"), "ok", exact_target(profile)))
    split = [(row.number, note.reasoning_split) for row, note in zip(rows, notes) if note.reasoning_split]
    if split:
        out.append(Finding(Msg("check.reasoning"), "info", replies_message("reasoning_split", split),
                           [n for n, _ in split]))
    if refused:
        out.append(Finding(Msg("check.target"), "warning", Msg("finding.template_refused", count=refused)))
    folded = [row.number for row, note in zip(rows, notes) if note.folded_system]
    if folded:
        out.append(Finding(Msg("check.system"), "info", Msg("finding.folded_system", count=len(folded)), folded))
    return out


def _count_finding(check: str, rows: list[int], **fields) -> Finding:
    if not rows:
        return Finding(Msg(f"check.{check}"), "ok", Msg("finding.none"))
    return Finding(Msg(f"check.{check}"), "warning", Msg(f"finding.{check}", count=len(rows), **fields), rows)


def _system_prompt_finding(chat) -> Finding:
    systems = Counter(r.messages[0]["content"] for r in chat if r.messages and r.messages[0]["role"] == "system")
    with_system = sum(systems.values())
    if with_system == 0:
        return Finding(Msg("check.system"), "info", Msg("finding.no_system"))  # the guide: state the role
    without = [r.number for r in chat if r.messages[0]["role"] != "system"]
    if without or len(systems) > 1:
        return Finding(Msg("check.system"), "warning", Msg("finding.mixed_system", with_system=with_system,
                                                           kinds=len(systems), without=len(without)), without)
    return Finding(Msg("check.system"), "ok", Msg("finding.same_system"))


# ---------------------------------------------------------------- the whole report (Data tab and `launch.py data`)

@dataclass
class DataReport:
    load: object  # studio.data.data.LoadResult
    lengths: Lengths | None
    cutoff: CutoffAdvice | None
    findings: list[Finding]
    validation_share: tuple[float, str]
    tokenizer_problem: str | None = None
    tokenizer: object = None  # the tokenizer that measured the lengths, for the token view of a row
    parts: list = field(default_factory=list)  # (name, lengths) rows instead of the three: a preference file's

    @property
    def training_rows(self) -> int:
        """What a run trains on: the usable rows, or for plain text the blocks its documents are cut into."""
        if self.cutoff is not None and self.cutoff.blocks is not None:
            return self.cutoff.blocks
        return len(self.load.rows)

    def row_tokens(self, number: int):
        """(pieces, counts, notes) of one row as training sees it (chat_template.token_view), or None."""
        if self.tokenizer is None:
            return None
        row = next((r for r in self.load.rows if r.number == number), None)
        return None if row is None else token_view(self.tokenizer, row.record())

    def percentile_table(self) -> list[list]:
        if self.lengths is None:
            return []
        parts = ((Msg("stats.part.conversation"), self.lengths.total), (Msg("stats.part.prompt"), self.lengths.prompt),
                 (Msg("stats.part.answer"), self.lengths.answer))
        return [[name, *percentiles(values).values()] for name, values in (self.parts or parts)]

    def text(self) -> str:
        lines = [summary_text(self.load).replace("**", "")]
        if self.load.problems:
            lines.append(f"Problems ({len(self.load.problems)}):")
            lines += [f"  - {where}: {message}" for where, message in self.load.problems[:200]]
            if len(self.load.problems) > 200:
                lines.append(f"  ... and {len(self.load.problems) - 200} more")
        if self.tokenizer_problem:
            lines.append(f"Token lengths not measured: {self.tokenizer_problem}")
            lines.append("The data cannot be trained as it is with this model: fix the reason above first.")
        if self.lengths is not None:
            lines.append("Token lengths (chat template applied)     p50    p90    p95    p99    max   mean")
            lines += [f"  {row[0]:<38}" + "".join(f"{v:>7}" for v in row[1:]) for row in self.percentile_table()]
            lines.append(f"Recommended cutoff: {self.cutoff.cutoff}. {self.cutoff.message}")
        share, why = self.validation_share
        lines.append(f"Recommended validation share: {share:.0%}. {why}")
        lines.append("Quality:")
        for f in self.findings:
            rows = f" rows {', '.join(map(str, f.rows[:20]))}{' ...' if len(f.rows) > 20 else ''}" if f.rows else ""
            lines.append(f"  [{f.level}] {f.check}: {f.message}{rows}")
        return "\n".join(lines)
