"""Detect a data file's format (reading it: studio/data/readers.py), normalise every row to chat messages, report
problems, split.

Everything returns data: a `LoadResult` holds the good rows (with their original row numbers), every problem as
(where, message) naming file, row and field, and the detected format. Nothing here touches the user's file on
disk and nothing raises for bad input. No torch, no pandas at module level (pandas only for CSV / Parquet).
"""

from __future__ import annotations

import json
import random
import re
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from studio.core.kept import Kept
from studio.core.preference_rows import SHAREGPT_ROLES
from studio.core.sources import DataSource, as_source
from studio.core.text import Msg
from .data_kinds import kind_verdict, media_in
from .readers import MAX_ROWS, capped, detect_format, read_documents, read_records, resolve_path, where

MAX_FIELD_CHARS = 1_000_000  # one text field of a conversation: no cutoff length comes near this
MAX_DOCUMENT_CHARS = 20_000_000  # one plain-text document (a book is 0.5-3 M): cut into blocks, never truncated
ROLES = ("system", "user", "assistant", "tool")
SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Row:
    number: int  # 1-based: the JSONL line, the JSON array index + 1, or the CSV / Parquet record
    raw: dict
    messages: list[dict] | None = None  # chat rows
    text: str | None = None  # plain-text rows
    tools: list[dict] | None = None  # tool definitions the conversation may call (OpenAI / ShareGPT "tools")
    rejected: list[dict] | None = None  # a preference pair's worse answer (messages holds prompt + chosen)

    def record(self) -> dict:
        """The normalised form TRL consumes (and the chat template renders)."""
        if self.messages is None:
            return {"text": self.text}
        return {"messages": self.messages, **({"tools": self.tools} if self.tools else {})}


@dataclass
class LoadResult:
    file: str
    format: str | None = None
    rows: list[Row] = field(default_factory=list)  # rows that normalised cleanly
    problems: list[tuple[str, str]] = field(default_factory=list)
    bad_rows: set[int] = field(default_factory=set)
    total_rows: int = 0
    layout: Msg | None = None  # plain text: how its documents were found (readers.text_layout)
    rows_left_out: int = 0  # rows past readers.MAX_ROWS: counted, not read

    @property
    def ok(self) -> bool:
        return not self.problems

    def records(self) -> list[dict]:
        """Normalised rows, the form TRL consumes."""
        return [r.record() for r in self.rows]


# ---------------------------------------------------------------- formats

def _text(value: Any, at: str, problems: list, required: bool = True, limit: int | None = None) -> str | None:
    limit = MAX_FIELD_CHARS if limit is None else limit  # read at call time: tests lower the module's limit
    if value is None or value == "":
        if required:
            problems.append((at, Msg("data.missing")))
        return None
    if not isinstance(value, str):
        problems.append((at, Msg("data.not_text", kind=type(value).__name__)))
        return None
    if required and not value.strip():
        problems.append((at, Msg("data.empty")))
        return None
    if len(value) > limit:
        problems.append((at, Msg("data.field_too_long", size=len(value), limit=limit)))
        return None
    if SURROGATE.search(value):  # JSON allows "\ud800"; it cannot be written as UTF-8 later, so refuse it here
        problems.append((at, Msg("data.surrogate")))
        return None
    return value


def _from_alpaca(r: dict, at, problems) -> list[dict]:
    messages = []
    if r.get("system"):
        messages.append({"role": "system", "content": _text(r["system"], at("system"), problems)})
    for i, pair in enumerate(r.get("history") or []):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            problems.append((at(f"history[{i}]"), Msg("data.bad_pair")))
            continue
        messages.append({"role": "user", "content": _text(pair[0], at(f"history[{i}][0]"), problems)})
        messages.append({"role": "assistant", "content": _text(pair[1], at(f"history[{i}][1]"), problems)})
    instruction = _text(r.get("instruction"), at("instruction"), problems)
    extra = _text(r.get("input"), at("input"), problems, required=False)
    prompt = f"{instruction}\n\n{extra}" if instruction and extra else instruction
    messages.append({"role": "user", "content": prompt})
    messages.append({"role": "assistant", "content": _text(r.get("output"), at("output"), problems)})
    return messages


def _from_sharegpt(r: dict, at, problems) -> list[dict]:
    turns = r.get("conversations")
    if not isinstance(turns, list) or not turns:
        problems.append((at("conversations"), Msg("data.no_turns")))
        return []
    messages = []
    if r.get("system"):
        messages.append({"role": "system", "content": _text(r["system"], at("system"), problems)})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append((at(f"conversations[{i}]"), Msg("data.bad_turn")))
            continue
        speaker = turn.get("from")
        role = SHAREGPT_ROLES.get(speaker)
        if role is None:
            problems.append((at(f"conversations[{i}].from"), Msg("data.bad_role", role=repr(speaker),
                                                                   roles=", ".join(sorted(SHAREGPT_ROLES)))))
            continue
        value = _text(turn.get("value"), at(f"conversations[{i}].value"), problems)
        if speaker == "function_call":  # a tool call written as JSON text
            messages.append({"role": "assistant", "content": "", "tool_calls": [_tool_call(value)]})
        else:
            messages.append({"role": role, "content": value})
    return messages


def _tool_call(value: str | None) -> dict:
    try:
        call = json.loads(value or "{}")
    except json.JSONDecodeError:
        call = {"name": "unknown", "arguments": value}
    return {"type": "function", "function": {"name": call.get("name", "unknown"), "arguments": call.get("arguments", {})}}


def _from_parts(turn: dict, at: str, problems: list) -> dict:
    """Content as a list of parts: LLaMA-Factory's {type, value} (text, reasoning, tool_call / function_call,
    observation / tool_result) and OpenAI's {type: text, text}. The turn comes back with plain content."""
    turn, texts, calls = dict(turn), [], []
    for j, part in enumerate(turn.pop("content")):
        kind = part.get("type") if isinstance(part, dict) else None
        value = part.get("value", part.get("text")) if kind else None
        if kind in ("text", "observation", "tool_result") and isinstance(value, str):
            texts.append(value)
        elif kind == "reasoning" and isinstance(value, str):
            turn["reasoning_content"] = value
        elif kind in ("tool_call", "function_call") and isinstance(value, str):
            calls.append(_tool_call(value))
        else:
            problems.append((f"{at}[{j}]", Msg("data.bad_part", kind=repr(kind))))
    turn["content"] = "".join(texts)
    if calls:
        turn["tool_calls"] = calls
    return turn


def _from_messages(r: dict, at, problems) -> list[dict]:
    turns = r.get("messages")
    if not isinstance(turns, list) or not turns:
        problems.append((at("messages"), Msg("data.no_messages")))
        return []
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append((at(f"messages[{i}]"), Msg("data.bad_message")))
            continue
        role = turn.get("role")
        if role not in ROLES:
            problems.append((at(f"messages[{i}].role"), Msg("data.bad_role", role=repr(role), roles=", ".join(ROLES))))
            continue
        if isinstance(turn.get("content"), list):
            turn = _from_parts(turn, at(f"messages[{i}].content"), problems)
        message = {"role": role}
        if turn.get("reasoning_content") and role == "assistant":
            message["reasoning_content"] = _text(turn["reasoning_content"], at(f"messages[{i}].reasoning_content"),
                                                 problems)
        if role == "assistant" and turn.get("tool_calls"):
            message["tool_calls"] = turn["tool_calls"]
            message["content"] = _text(turn.get("content"), at(f"messages[{i}].content"), problems, required=False) or ""
        else:
            message["content"] = _text(turn.get("content"), at(f"messages[{i}].content"), problems)
        for key in ("tool_call_id", "name"):
            if key in turn:
                message[key] = turn[key]
        messages.append(message)
    return messages


def _from_cot(r: dict, at, problems) -> list[dict]:
    thinking_key = "thinking" if "thinking" in r else "reasoning"
    question = _text(r.get("question"), at("question"), problems)
    thinking = _text(r.get(thinking_key), at(thinking_key), problems)
    answer = _text(r.get("answer"), at("answer"), problems)
    # `reasoning_content` is rendered by templates that know thinking; render_messages() falls back to markup.
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": answer, "reasoning_content": thinking}]


def _from_prompt_completion(r: dict, at, problems) -> list[dict]:
    return [{"role": "user", "content": _text(r.get("prompt"), at("prompt"), problems)},
            {"role": "assistant", "content": _text(r.get("completion"), at("completion"), problems)}]


CONVERTERS = {"alpaca": _from_alpaca, "sharegpt": _from_sharegpt, "messages": _from_messages, "cot": _from_cot,
              "prompt_completion": _from_prompt_completion}


def check_role_order(messages: list[dict], at) -> list[tuple[str, str]]:
    """System only first; user and assistant alternate (tool results follow a tool call); end on the assistant."""
    problems = []
    previous = None
    for i, m in enumerate(messages):
        role = m["role"]
        if role == "system" and i != 0:
            problems.append((at(Msg("where.turn", n=i + 1)), Msg("data.system_first")))
        elif role == "user" and previous == "user":
            problems.append((at(Msg("where.turn", n=i + 1)), Msg("data.two_user")))
        elif role == "assistant" and previous == "assistant" and not messages[i - 1].get("tool_calls"):
            problems.append((at(Msg("where.turn", n=i + 1)), Msg("data.two_assistant")))
        elif role == "tool" and previous not in ("assistant", "tool"):
            problems.append((at(Msg("where.turn", n=i + 1)), Msg("data.tool_order")))
        elif role == "assistant" and previous in (None, "system"):
            problems.append((at(Msg("where.turn", n=i + 1)), Msg("data.assistant_first")))
        previous = role
    if messages and messages[-1]["role"] != "assistant":
        problems.append((at(Msg("where.last_turn")), Msg("data.bad_end", role=messages[-1]["role"])))
    return problems


def normalise(record: Any, fmt: str, file: str, number: int, unit: str = "row") -> tuple[Row | None, list]:
    at = lambda name: where(file, number, name, unit)  # noqa: E731
    if not isinstance(record, dict):
        return None, [(where(file, number, unit=unit), Msg("data.not_object", kind=type(record).__name__))]
    problems: list[tuple[str, str]] = []
    if media := media_in(record):  # a placeholder such as <image> would be trained as words
        return None, [(where(file, number, unit=unit), Msg("data.multimodal", found=", ".join(media)))]
    if fmt == "text":
        text = _text(record.get("text"), at("text"), problems, limit=MAX_DOCUMENT_CHARS)
        return (Row(number, record, text=text) if not problems else None), problems
    messages = CONVERTERS[fmt](record, at, problems)
    if not problems and SURROGATE.search(json.dumps(messages, ensure_ascii=False)):  # e.g. inside tool calls
        problems.append((where(file, number, unit=unit), Msg("data.surrogate")))
    if problems:
        return None, problems
    tools = _tools(record.get("tools"), at("tools"), problems)
    if tools and SURROGATE.search(json.dumps(tools, ensure_ascii=False)):
        problems.append((at("tools"), Msg("data.surrogate")))
    problems += check_role_order(messages, at)
    return (Row(number, record, messages=messages, tools=tools) if not problems else None), problems


def _tools(value: Any, at: str, problems: list) -> list[dict] | None:
    """Tool definitions: a list of objects, or (ShareGPT / LLaMA-Factory) that list as a JSON string."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            problems.append((at, Msg("data.bad_tools")))
            return None
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        problems.append((at, Msg("data.bad_tools")))
        return None
    return value


def column_mapping_applied(record: Any, mapping: dict[str, str] | None) -> Any:
    """Rename user columns (e.g. {'query': 'instruction', 'response': 'output'}) before detection."""
    if not mapping or not isinstance(record, dict):
        return record
    return {mapping.get(k, k): v for k, v in record.items()}


_LOADED = Kept(4)  # the last files read (a mix of a few): the Data tab's load and the training run share one read


def load_dataset_file(path: DataSource | str, fmt: str = "auto", mapping: dict[str, str] | None = None,
                      label: str | None = None) -> LoadResult:
    """The file read, its format detected and its rows normalised: once per file version. Loading it again with
    the same format and mapping (training after the Data tab's load) reuses that work; a changed file (its size
    or modification time) is read afresh. Each caller gets its own lists, so none sees another's edits. A large
    file being read holds up only the callers that want the same file (studio/core/kept.py)."""
    path = as_source(path)  # parsed once; passed inward as it is
    try:
        stat = resolve_path(path).stat()
        key = (path, fmt, tuple((mapping or {}).items()), label, stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):
        key = None  # unreadable: reading it says why
    read = lambda: _read_and_normalise(path, fmt, mapping, label)  # noqa: E731
    result = read() if key is None else _LOADED.get_or_make(key, read)
    return dataclasses.replace(result, rows=list(result.rows), problems=list(result.problems),
                               bad_rows=set(result.bad_rows))


def _read_and_normalise(path: DataSource, fmt: str, mapping: dict[str, str] | None, label: str | None) -> LoadResult:
    file_path = resolve_path(path)
    label = label or path.label()
    layout = None
    if file_path.suffix.lower() == ".txt" and file_path.is_file():
        records, problems, unit, layout = read_documents(file_path, label, fmt.removeprefix("text_"))
    else:
        records, problems, unit = read_records(path, label)
    if fmt.startswith("text_"):  # a layout of plain text: its rows are text rows
        fmt = "text"
    records, cap_note = capped(records, label)  # JSON Lines were capped as they were read
    notes = [m for _, m in [*problems, *cap_note] if getattr(m, "key", "") == "data.rows_capped"]
    left_out = notes[0].fields["total"] - MAX_ROWS if notes else 0
    problems = [p for p in problems if p[1] not in notes]
    result = LoadResult(file=label, problems=list(problems), total_rows=len(records) + len(problems) + left_out,
                        layout=layout, rows_left_out=left_out)
    if not records:
        return result
    records = [(n, column_mapping_applied(r, mapping)) for n, r in records]
    if verdict := kind_verdict(records, label):  # not SFT data, whatever format was asked for
        result.format, message = verdict
        result.problems.append((label, message))
        result.bad_rows = {n for n, _ in records}
        return result
    detected = {n: detect_format(r) for n, r in records}
    if fmt == "auto":
        counts: dict[str, int] = {}
        for f in detected.values():
            if f:
                counts[f] = counts.get(f, 0) + 1
        if not counts:
            result.problems.append((label, Msg("data.no_format")))
            return result
        fmt = max(counts, key=counts.get)
        if len(counts) > 1:
            counted = [Msg("data.format_rows", format=k, rows=v) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
            result.problems.append((label, Msg("data.mixed_formats", counts=Msg("list", items=counted), format=fmt)))
    result.format = fmt
    for number, record in records:
        row, row_problems = normalise(record, fmt, label, number, unit)
        if row is not None:
            result.rows.append(row)
        else:
            result.problems.extend(row_problems)
            result.bad_rows.add(number)
    return result


# ---------------------------------------------------------------- split

def split_sizes(n: int, validation_share: float, test_share: float) -> tuple[int, int, int]:
    """(train, validation, test). A share > 0 always yields at least one row when there are rows to spare."""
    def take(share):
        return 0 if share <= 0 or n < 3 else max(1, round(n * share))
    validation, test = take(validation_share), take(test_share)
    while validation + test >= n > 0:  # never nothing to train on: the test rows give way first
        test, validation = (test - 1, validation) if test else (test, validation - 1)
    return n - validation - test, validation, test


def split_rows(rows: list, validation_share: float, test_share: float, seed: int = 42,
               by_order: bool = False) -> tuple[list, list, list]:
    """Train, validation and test rows. Rows a teacher made (their record has a `provenance`, studio/chat/teacher.py)
    only ever train: the user's own rows are split exactly as they would be without them, so a grown version is
    judged on the same held-out rows as the data it grew from, and no generated row can leak into the verdict."""
    grown = [r for r in rows if "provenance" in (getattr(r, "raw", r) if isinstance(getattr(r, "raw", r), dict)
                                                 else {})]
    if grown:
        made = {id(r) for r in grown}
        train, validation, test = split_rows([r for r in rows if id(r) not in made], validation_share, test_share,
                                             seed, by_order)
        return train + grown, validation, test
    _, n_val, n_test = split_sizes(len(rows), validation_share, test_share)
    order = list(range(len(rows)))
    if not by_order:
        random.Random(seed).shuffle(order)
    # By order: the newest rows (end of file) are held out, as for time-ordered data.
    test_idx = order[len(order) - n_test:] if n_test else []
    val_idx = order[len(order) - n_test - n_val:len(order) - n_test] if n_val else []
    held = set(test_idx) | set(val_idx)
    # Training rows keep the file's order: the trainer's seeded sampler does the shuffling, so a run sees the
    # same batches as a plain TRL script on the same file.
    train = [rows[i] for i in range(len(rows)) if i not in held]
    return train, [rows[i] for i in val_idx], [rows[i] for i in test_idx]


# ---------------------------------------------------------------- what the Data tab and `launch.py data` show

def summary_text(result: LoadResult) -> str:
    if result.format is None:
        return Msg("data.unreadable", file=result.file, count=len(result.problems))
    summary = Msg("data.summary_line", file=result.file, format=result.format, total=result.total_rows,
                  usable=len(result.rows), bad=len(result.bad_rows))
    items = [summary] + ([result.layout] if result.layout is not None else []) + \
        ([Msg("data.bad_rows_left_out")] if result.bad_rows else []) + \
        ([Msg("data.rows_capped", total=result.total_rows, limit=MAX_ROWS)] if result.rows_left_out else [])
    return Msg("paragraphs", items=items) if len(items) > 1 else summary


def shown(row: Row) -> str:
    if row.messages is None:
        return row.text or ""
    tools = [f"tools: {', '.join(tool_names(row.tools))}"] if row.tools else []
    rejected = [f"✗ {m['role']}: {m.get('content') or ''}" for m in row.rejected or []]  # beside the chosen one
    chosen_mark = "✓ " if rejected else ""
    lines = [f"{chosen_mark if m is row.messages[-1] else ''}{m['role']}: {m.get('content') or ''}" for m in row.messages]
    return "\n".join(tools + lines + rejected)


def tool_names(tools: list[dict]) -> list[str]:
    return [str((t.get("function") or t).get("name", "?")) for t in tools]


def preview_rows(result: LoadResult, query: str = "", page: int = 1, page_size: int = 50) -> tuple[list[list], int]:
    """One page of [row number, normalised, raw] rows matching `query` (case-insensitive), and the page count.
    Row numbers are the file's, so they match the problem list."""
    query = (query or "").strip().lower()
    matches = [r for r in result.rows if not query or query in shown(r).lower()
               or query in json.dumps(r.raw, ensure_ascii=False).lower()]
    pages = max(1, -(-len(matches) // page_size))
    page = min(max(1, int(page or 1)), pages)
    chunk = matches[(page - 1) * page_size: page * page_size]
    return [[r.number, shown(r)[:1500], json.dumps(r.raw, ensure_ascii=False)[:1500]] for r in chunk], pages


def row_detail(result: LoadResult, number: int) -> tuple[dict | None, dict | None]:
    """(raw record, normalised form) of one row by its file row number."""
    for r in result.rows:
        if r.number == number:
            return r.raw, r.record()
    return None, None
