"""Reading data files safely: the user's file is read, never written; JSON Lines line by line; every read capped
(whole file, one line), so a huge, endless or hostile file becomes a problem message, not a frozen server.
Returns raw records as (row number, value) with problems as (where, message); studio/data/data.py normalises them."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from studio.core.sources import DataSource, HUB, as_source
from studio.core.text import Msg

MAX_FILE_MB = 512  # a whole file; JSON Lines are read line by line, the rest whole
MAX_COLUMNS = 1000  # a table's columns: formats use 2-6; pandas' cost grows faster than linearly with them
MAX_LINE_MB = 16  # one JSON line: far beyond any trainable row, small enough to parse safely
# Rows read from one file. Far beyond what a run here trains on (a default run on a GPU takes about 3,000 rows a
# minute); reading, measuring and checking 100,000 rows takes about 20 s on 2 cores, where a million took half an
# hour and 4 GB. The rest of a larger file is counted, not parsed, and said (data.rows_capped).
MAX_ROWS = 100_000


def capped(records: list, label: str, total: int | None = None) -> tuple[list, list]:
    """The first MAX_ROWS records, and the note that says how many were left out (`total`: the file's count
    where the records were not all parsed)."""
    total = len(records) if total is None else total
    if total <= MAX_ROWS:
        return records, []
    return records[:MAX_ROWS], [(label, Msg("data.rows_capped", total=total, limit=MAX_ROWS))]


def where(file: str, row: int | None = None, fieldname: str | None = None, unit: str = "row") -> str:
    if row is None:
        return file if fieldname is None else f"{file}: {fieldname}"
    if fieldname is None:
        return Msg(f"where.{unit}", file=file, row=row)
    return Msg(f"where.{unit}_field", file=file, row=row, field=fieldname)


def resolve_path(path: DataSource | str) -> Path:
    """The file a dataset box names (studio/core/sources.py); a hub id as a path that does not exist locally."""
    source = as_source(path)
    return source.path or Path(source.text)


def read_hub_dataset(dataset_id: str) -> tuple[list[tuple[int, Any]], list[tuple[str, str]], str]:
    """A hub dataset id (online only); offline, the user gets a plain message instead of a traceback."""
    try:
        from datasets import load_dataset  # deferred: heavy, and only for a hub id

        dataset = load_dataset(dataset_id, split="train")
    except Exception as err:  # network errors, missing datasets and auth errors all end here
        return [], [(dataset_id, Msg("data.hub_failed", error=type(err).__name__))], "row"
    return list(enumerate(dataset.to_list(), start=1)), [], "row"


def read_records(source: DataSource | Path, label: str | None = None) -> tuple[list[tuple[int, Any]], list, str]:
    """Raw records as (row number, value) plus problems. The unit word ('line' or 'row') goes into messages."""
    source = source if isinstance(source, DataSource) else as_source(str(source))
    if source.kind == HUB:
        return read_hub_dataset(source.text)
    path = resolve_path(source)
    label = label or path.name
    if not path.exists():
        return [], [(label, Msg("data.not_found"))], "row"
    if not path.is_file():  # a folder, FIFO or device would block or never end
        return [], [(label, Msg("data.not_regular"))], "row"
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, label) + ("row",)
    try:
        head = _peek(path)
    except OSError as err:
        return [], [(label, Msg("data.cannot_read", error=err.strerror or type(err).__name__))], "row"
    if suffix == ".txt":
        records, problems, unit, _ = read_documents(path, label)
        return records, problems, unit
    if suffix == ".jsonl" or (suffix != ".json" and suffix != ".csv" and not head.lstrip().startswith(b"[")):
        return *_read_jsonl(path, label), "line"
    # JSON and CSV are parsed whole; the cap counts bytes actually read, since /proc-style files report size 0.
    data = _read_capped(path)
    if data is None:
        return [], [(label, Msg("data.too_large", limit=MAX_FILE_MB))], "row"
    if suffix == ".csv":
        return _read_table(data, label) + ("row",)
    try:
        text = data.decode("utf-8-sig")  # BOM or not
    except UnicodeDecodeError as err:
        return [], [(label, Msg("data.not_utf8", offset=err.start))], "row"
    if not text.strip():
        return [], [(label, Msg("data.empty_file"))], "row"
    return *_read_json(text, label), "row"


def _peek(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as f:
        return f.read(size).removeprefix(b"\xef\xbb\xbf")


def _read_capped(path: Path) -> bytes | None:
    limit = MAX_FILE_MB * 1024**2
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def _read_jsonl(path: Path, label: str):
    """Line by line, so memory holds one line of text at a time plus the parsed records, never the whole file."""
    records, problems, total = [], [], 0
    at = lambda number: where(label, number, unit="line")  # noqa: E731  (built only for a problem: it is a message)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            total += len(raw)
            if total > MAX_FILE_MB * 1024**2:
                return [], [(label, Msg("data.too_large", limit=MAX_FILE_MB))]
            if len(raw) > MAX_LINE_MB * 1024**2:
                problems.append((at(number), Msg("data.line_too_long", size=len(raw) / 1024**2, limit=MAX_LINE_MB)))
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:  # a whole file in another encoding: one problem, not one per line
                return [], problems + [(at(number), Msg("data.not_utf8", offset=err.start))]
            if not line.strip():
                continue
            if len(records) >= MAX_ROWS:  # counted, not parsed: see MAX_ROWS
                rest = _count_lines(f, total)
                if rest is None:
                    return [], [(label, Msg("data.too_large", limit=MAX_FILE_MB))]
                return records, problems + capped(records, label, len(records) + 1 + rest)[1]
            try:
                records.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                problems.append((at(number), Msg("data.bad_json_line", error=err.msg, column=err.colno)))
            except RecursionError:  # json's parser recurses once per nesting level
                problems.append((at(number), Msg("data.too_deep", depth=sys.getrecursionlimit())))
    if not records and not problems:
        return [], [(label, Msg("data.empty_file"))]
    return records, problems


def _count_lines(f, read_so_far: int) -> int | None:
    """The non-blank lines left in a file, without parsing them; None past the file cap."""
    count = 0
    for raw in f:
        read_so_far += len(raw)
        if read_so_far > MAX_FILE_MB * 1024**2:
            return None
        count += bool(raw.strip())
    return count


TEXT_LAYOUTS = ("paragraphs", "lines", "whole")  # how a .txt file holds its documents (dataset_format text_*)
LONG_LINE_CHARS = 200  # a median line this long is no hard-wrapped prose: each line is a document


def text_layout(text: str) -> tuple[str, Msg]:
    """Which layout a plain-text file has, and why: documents between blank lines; one document per line (lines
    far longer than wrapped prose, as in LLaMA-Factory's wiki_demo.txt); else one document."""
    if re.search(r"\n[ \t]*\n\s*\S", text.strip()):
        return "paragraphs", Msg("layout.paragraphs_why")
    lengths = sorted(len(line) for line in text.split("\n") if line.strip())
    if len(lengths) > 1 and lengths[len(lengths) // 2] >= LONG_LINE_CHARS:
        return "lines", Msg("layout.lines_why", lines=len(lengths), median=lengths[len(lengths) // 2])
    return "whole", Msg("layout.whole_why")


def read_documents(path: Path, label: str, layout: str = "auto"):
    """Plain text for continued pre-training: (records as {"text": ...}, problems, unit, the layout note). The
    layout is detected (`text_layout`) unless the user picked one (dataset_format text_paragraphs / text_lines /
    text_whole); long documents are kept whole here and cut into blocks at the cutoff when tokenised."""
    data = _read_capped(path)
    if data is None:
        return [], [(label, Msg("data.too_large", limit=MAX_FILE_MB))], "document", None
    try:
        text = data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as err:
        return [], [(label, Msg("data.not_utf8", offset=err.start))], "document", None
    detected, why = text_layout(text)
    chosen = layout if layout in TEXT_LAYOUTS else detected
    note = Msg("layout.note", layout=Msg(f"layout.{chosen}"), why=why if chosen == detected else Msg("layout.yours"))
    if chosen == "lines":
        documents = [(n, line.strip()) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        unit = "line"  # problems name the file's own line numbers
    else:
        pieces = re.split(r"\n[ \t]*\n", text) if chosen == "paragraphs" else [text]
        documents = list(enumerate((d.strip() for d in pieces if d.strip()), start=1))
        unit = "document"
    if not documents:
        return [], [(label, Msg("data.empty_file"))], unit, note
    return [(n, {"text": d}) for n, d in documents], [], unit, note


def detect_format(record: Any) -> str | None:
    """The SFT format a record is in, from its keys (None: none the studio reads)."""
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "question" in keys and "answer" in keys and keys & {"thinking", "reasoning"}:
        return "cot"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    return None


def _records_in_object(data: dict) -> list:
    """A JSON object is one record (a conversation), wraps a list of records ({"data": [...]}), or holds a list of
    conversations ({"conversations": [[...], [...]]})."""
    lists = {k: v for k, v in data.items() if isinstance(v, list) and v}
    records = [v for v in lists.values() if isinstance(v[0], dict) and detect_format(v[0])]
    if len(records) == 1:
        return records[0]
    conversations = {k: v for k, v in lists.items() if all(isinstance(c, list) for c in v)}
    if len(conversations) == 1:
        key, value = next(iter(conversations.items()))
        return [{key: c} for c in value]
    if detect_format(data):
        return [data]
    plain = [v for v in lists.values() if isinstance(v[0], dict)]
    return plain[0] if len(plain) == 1 else [data]


def _read_json(text: str, label: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return [], [(label, Msg("data.bad_json", error=err.msg, line=err.lineno, column=err.colno))]
    except RecursionError:  # json's parser recurses once per nesting level
        return [], [(label, Msg("data.too_deep", depth=sys.getrecursionlimit()))]
    if isinstance(data, dict):
        data = _records_in_object(data)
    if not isinstance(data, list):
        return [], [(label, Msg("data.not_list"))]
    if not data:
        return [], [(label, Msg("data.no_records"))]
    return list(enumerate(data, start=1)), []


def _read_parquet(path: Path, label: str):
    """Parquet is compressed and dictionary-encoded: the cap counts the decoded size, batch by batch, so a small
    file that unpacks to gigabytes stops at the cap instead of filling memory."""
    def read_frame():
        import pyarrow as pa  # deferred: only Parquet files need it
        import pyarrow.parquet as pq

        batches, size = [], 0
        parquet = pq.ParquetFile(path)
        if (columns := len(parquet.schema_arrow)) > MAX_COLUMNS:
            raise _TooWide(columns)
        for batch in parquet.iter_batches(batch_size=4096):
            size += batch.nbytes
            if size > MAX_FILE_MB * 1024**2:
                raise _TooLarge
            batches.append(batch)
        return pa.Table.from_batches(batches).to_pandas() if batches else None

    try:
        return _records_of(read_frame, label)
    except _TooLarge:
        return [], [(label, Msg("data.too_large", limit=MAX_FILE_MB))]
    except _TooWide as wide:
        return [], [(label, Msg("data.too_many_columns", columns=wide.args[0], limit=MAX_COLUMNS))]


class _TooLarge(Exception):
    pass


class _TooWide(Exception):
    pass


def csv_columns(data: bytes) -> int:
    """The header's column count, read by the csv module (quotes respected) before pandas builds anything."""
    import csv

    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace", newline="")
    csv.field_size_limit(MAX_FILE_MB * 1024**2)
    try:
        return len(next(csv.reader(text), []))
    except csv.Error:
        return 0  # pandas names what is wrong


def _read_table(data: bytes, label: str):
    import pandas as pd  # deferred: about 0.3 s to import, and only CSV and Parquet files need it

    if (columns := csv_columns(data)) > MAX_COLUMNS:
        return [], [(label, Msg("data.too_many_columns", columns=columns, limit=MAX_COLUMNS))]
    return _records_of(lambda: pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str,
                                           keep_default_na=False), label)


def _records_of(read_frame, label: str):
    try:
        frame = read_frame()
    except (_TooLarge, _TooWide):
        raise
    except UnicodeDecodeError as err:
        return [], [(label, Msg("data.not_utf8", offset=err.start))]
    except Exception as err:  # pandas raises many parser errors; all mean "this is not a readable table"
        # pandas' sentence is English and may quote the data; the line it names is what the reader needs
        line = re.search(r"line (\d+)", str(err))
        message = Msg("data.empty_file") if "No columns" in str(err) else \
            Msg("data.bad_table_line", line=int(line.group(1))) if line else Msg("data.bad_table")
        return [], [(label, message)]
    if frame is None or frame.empty:
        return [], [(label, Msg("data.no_records"))]
    records = frame.to_dict(orient="records")
    for record in records:  # JSON-in-a-cell is how CSV carries conversations
        for key, value in record.items():
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    record[key] = json.loads(value)
                except json.JSONDecodeError:
                    pass
            elif hasattr(value, "tolist"):
                record[key] = value.tolist()
    return list(enumerate(records, start=1)), []


