import json
from pathlib import Path

import pytest

from studio.core.text import Msg
from studio.data import data, readers

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
BAD = Path(__file__).resolve().parent / "data" / "bad"


@pytest.mark.parametrize("name,fmt,rows", [
    ("alpaca.json", "alpaca", 3), ("sharegpt.json", "sharegpt", 3), ("messages.jsonl", "messages", 3),
    ("cot.jsonl", "cot", 2), ("prompt_completion.csv", "prompt_completion", 2), ("text.jsonl", "text", 2),
])
def test_each_example_format_is_detected_and_normalised(name, fmt, rows):
    result = data.load_dataset_file(str(EXAMPLES / name))
    assert result.format == fmt and len(result.rows) == rows and result.ok, result.problems


def test_alpaca_history_system_and_input_become_messages():
    rows = data.load_dataset_file(str(EXAMPLES / "alpaca.json")).rows
    assert rows[0].messages == [{"role": "user", "content": "Translate to French.\n\nGood morning"},
                                {"role": "assistant", "content": "Bonjour"}]
    assert rows[1].messages[0] == {"role": "system", "content": "Answer in one word or two."}
    assert [m["role"] for m in rows[2].messages] == ["user", "assistant", "user", "assistant"]


def test_sharegpt_tool_calls_and_observations_are_kept():
    messages = data.load_dataset_file(str(EXAMPLES / "sharegpt.json")).rows[2].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_cot_keeps_reasoning():
    row = data.load_dataset_file(str(EXAMPLES / "cot.jsonl")).rows[1]
    assert row.messages[1]["reasoning_content"].startswith("7 has no divisors")


def test_csv_with_crlf_and_quotes():
    rows = data.load_dataset_file(str(EXAMPLES / "prompt_completion.csv")).rows
    assert rows[1].messages[0]["content"] == 'Say "hi" politely.'


def test_parquet_and_bom(tmp_path):
    import pandas as pd

    pd.DataFrame({"instruction": ["a", "b"], "output": ["x", "y"]}).to_parquet(tmp_path / "d.parquet")
    assert data.load_dataset_file(str(tmp_path / "d.parquet")).format == "alpaca"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "p", "completion": "c"}).encode() + b"\r\n")
    assert len(data.load_dataset_file(str(bom)).rows) == 1


@pytest.mark.parametrize("name,expected", [
    ("invalid_json_line.jsonl", [("invalid_json_line.jsonl: line 2", "invalid JSON")]),
    ("empty.jsonl", [("empty.jsonl", "the file is empty")]),
    ("missing_field.json", [("missing_field.json: row 1: output", "missing or empty"),
                            ("missing_field.json: row 2: instruction", "missing or empty")]),
    ("role_order.jsonl", [("role_order.jsonl: line 1: turn 2", "two user turns in a row"),
                          ("role_order.jsonl: line 2: last turn", "ends on a user turn")]),
    ("unknown_role.jsonl", [("unknown_role.jsonl: line 1: messages[0].role", "unknown role 'robot'")]),
    ("non_string.jsonl", [("non_string.jsonl: line 1: messages[0].content", "expected text, got int")]),
    ("latin1.jsonl", [("latin1.jsonl: line 1", "not UTF-8")]),
    ("unknown_columns.jsonl", [("unknown_columns.jsonl", "no known format")]),
])
def test_every_error_kind_names_file_row_and_field(name, expected):
    result = data.load_dataset_file(str(BAD / name))
    assert len(result.problems) == len(expected), result.problems
    for (where, message), (want_where, want_message) in zip(result.problems, expected):
        assert where == want_where and want_message in message


def test_mixed_formats_are_reported_and_good_rows_kept():
    result = data.load_dataset_file(str(BAD / "mixed.jsonl"))
    assert "mixed formats" in result.problems[0][1]
    assert [r.number for r in result.rows] == [1, 3] and result.bad_rows == {2}


def test_column_mapping_by_hand():
    result = data.load_dataset_file(str(BAD / "unknown_columns.jsonl"),
                                    mapping={"query": "instruction", "response": "output"})
    assert result.format == "alpaca" and result.ok


def test_file_is_never_modified(tmp_path):
    path = BAD / "role_order.jsonl"
    before = path.read_bytes()
    data.load_dataset_file(str(path))
    assert path.read_bytes() == before


def test_file_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_FILE_MB", 0)
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "x"}\n')
    assert "more than 0 MB" in data.load_dataset_file(str(path)).problems[0][1]


def test_size_cap_counts_bytes_read_not_the_reported_size(monkeypatch):
    # /proc files report st_size 0 whatever they hold; the old cap (st_size) let them through.
    monkeypatch.setattr(readers, "MAX_FILE_MB", 1e-6)
    for name in ("/proc/self/status", "/proc/self/maps"):
        assert Path(name).stat().st_size == 0
        problems = data.load_dataset_file(name).problems
        assert problems and "more than" in problems[0][1], problems


def test_folders_pipes_and_devices_are_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    for path in (tmp_path, fifo, Path("/dev/zero")):
        problems = data.load_dataset_file(str(path)).problems
        assert problems == [(path.name, "not a regular file (a folder, pipe or device); choose a data file")]


def test_json_lines_are_streamed_with_a_per_line_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_MB", 0.001)  # 1 KB
    path = tmp_path / "lines.jsonl"
    path.write_text('{"text": "short"}\n' + json.dumps({"text": "x" * 5000}) + "\n" + '{"text": "fine"}\n')
    result = data.load_dataset_file(str(path))
    assert [r.number for r in result.rows] == [1, 3]
    assert result.problems == [("lines.jsonl: line 2", "this line is 0 MB; one line may hold at most 0.001 MB")]


def test_reading_json_lines_does_not_hold_the_whole_file(tmp_path):
    import tracemalloc

    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "y" * 200}) + "\n"
    path.write_text(line * 20000)  # 4.2 MB on disk
    tracemalloc.start()
    result = readers.read_records(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(result[0]) == 20000
    # The records themselves take ~3x the file; reading it whole added the text and its split lines on top (~6x).
    assert peak < 3.5 * path.stat().st_size, peak  # measured: 4.96x before, 2.70x after


def test_one_field_over_the_limit_names_row_and_field(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_FIELD_CHARS", 100)
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({"instruction": "hi", "output": "z" * 101}) + "\n")
    assert data.load_dataset_file(str(path)).problems == [
        ("wide.jsonl: line 1: output", "101 characters; one field may hold at most 100")]


def test_parquet_cap_is_on_the_uncompressed_size(tmp_path, monkeypatch):
    import pandas as pd

    path = tmp_path / "zipped.parquet"
    pd.DataFrame({"text": ["a" * 100_000] * 20}).to_parquet(path)  # 2 MB of text, a few KB compressed
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(readers, "MAX_FILE_MB", 1)
    assert data.load_dataset_file(str(path)).problems == [("zipped.parquet", Msg("data.too_large", limit=1))]


def test_demo_data_is_bilingual_identity_data():
    result = data.load_dataset_file("demo")
    assert result.ok and 100 <= len(result.rows) <= 300
    answers = [m["content"] for r in result.rows for m in r.messages if m["role"] == "assistant"]
    assert sum("Lumen" in a for a in answers) > 50 and any("保持好奇" in a for a in answers)


def test_split_is_deterministic_and_disjoint():
    rows = list(range(100))
    train, val, test = data.split_rows(rows, 0.1, 0.2, seed=1)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    assert sorted(train + val + test) == rows
    assert data.split_rows(rows, 0.1, 0.2, seed=1) == (train, val, test)
    assert data.split_rows(rows, 0.1, 0.2, seed=2)[1] != val


def test_split_by_order_holds_out_the_newest_rows():
    train, val, test = data.split_rows(list(range(10)), 0.2, 0.1, by_order=True)
    assert train == list(range(7)) and val == [7, 8] and test == [9]


def test_split_sizes_edge_cases():
    assert data.split_sizes(2, 0.1, 0.1) == (2, 0, 0)
    assert data.split_sizes(10, 0.01, 0) == (9, 1, 0)
    assert data.split_sizes(10, 0, 0) == (10, 0, 0)


def test_deeply_nested_json_is_a_file_problem_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.jsonl").write_text('{"instruction": "hi", "output": "ho"}\n' + deep + "\n")
    result = data.load_dataset_file(str(tmp_path / "deep.json"))
    assert not result.rows and "nested too deeply" in result.problems[0][1]
    result = data.load_dataset_file(str(tmp_path / "deep.jsonl"))
    assert len(result.rows) == 1 and result.problems[0][0] == "deep.jsonl: line 2"


def test_a_lone_surrogate_is_refused_at_load_with_row_and_field(tmp_path):
    """JSON may spell "\\ud800"; such text cannot be written as UTF-8, so the run's split would crash later."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"instruction": "hi", "output": "fine"}\n{"instruction": "bad \\ud800", "output": "x"}\n'
                    '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "",'
                    ' "tool_calls": [{"function": {"name": "\\udc00"}}]}]}\n')
    result = data.load_dataset_file(str(path), "auto")
    assert [r.number for r in result.rows] == [1]
    assert ("s.jsonl: line 2: instruction", "holds a broken character") in [
        (str(w), str(m)[:24]) for w, m in result.problems]
    result.records()[0]["messages"][0]["content"].encode("utf-8")  # what is kept can be written


def test_tool_definitions_are_kept_shown_and_checked(tmp_path):
    result = data.load_dataset_file(str(EXAMPLES / "sharegpt.json"))
    row = result.rows[2]
    assert [t["name"] for t in row.tools] == ["get_weather"]  # a JSON string in ShareGPT, parsed
    assert result.records()[2]["tools"] == row.tools and "tools" not in result.records()[0]
    assert data.shown(row).startswith("tools: get_weather\n")
    path = tmp_path / "bad-tools.jsonl"
    path.write_text(json.dumps({"tools": "not json", "messages": [{"role": "user", "content": "hi"},
                                                                   {"role": "assistant", "content": "yo"}]}) + "\n")
    assert data.load_dataset_file(str(path)).problems == [("bad-tools.jsonl: line 1: tools", Msg("data.bad_tools"))]


def test_a_file_that_cannot_be_opened_says_why_in_both_languages(tmp_path, monkeypatch):
    """Its message key was defined twice in the text table, so the reason was replaced by another message's text."""
    from studio.core.text import render

    path = tmp_path / "locked.json"
    path.write_text("[]")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers, "_peek", refuse)
    result = data.load_dataset_file(str(path))
    assert not result.rows and len(result.problems) == 1
    where, message = result.problems[0]
    assert where == "locked.json" and render(message, "en") == "cannot be read: Permission denied"
    assert render(message, "zh") == "无法读取：Permission denied"
