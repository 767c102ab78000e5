"""Property-based tests of the parser and the flattener: generated events are
written as JSONL, read back, and every input value must be recoverable from its cell,
in a column whose type follows the pinned type policy."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import parse
from tests.fuzz.reference import kind_of, unify
from tests.strategies import events, json_values

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# ----------------------------------------------------------------- the oracle
# An independent, deliberately naive statement of design.md's type policy: a value's
# kind and the kind of a column of two kinds are those of the C scanner's reference
# (``tests/fuzz/reference.py``), one statement of the policy for both oracles.
value_kind = kind_of
merge = unify


def arrow_of(kind: Any) -> pa.DataType:
    if isinstance(kind, tuple):
        return pa.list_(arrow_of(kind[1]))
    return {
        "null": pa.null(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "text": pa.string(),
    }[kind]


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that tells bools from ints and keeps dict key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def recovered(cell: Any, original: Any, kind: Any) -> bool:
    if original is None:
        return cell is None
    if kind == "float":
        return isinstance(cell, float) and cell == float(original)
    if kind in ("int", "bool", "str"):
        return strict_equal(cell, original)
    if kind == "text":
        if isinstance(original, str):
            return cell == original
        return isinstance(cell, str) and strict_equal(json.loads(cell), original)
    assert isinstance(kind, tuple)
    return (
        isinstance(cell, list)
        and len(cell) == len(original)
        and all(recovered(c, o, kind[1]) for c, o in zip(cell, original, strict=True))
    )


def write_jsonl(path: Path, lines: list[dict[str, Any]], *, compress: bool = False) -> Path:
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ------------------------------------------------------------------ properties


@SETTINGS
@given(lines=events(), compress=st.booleans())
def test_every_value_recoverable_and_typed_by_policy(
    tmp_path: Path, lines: list[dict[str, Any]], compress: bool
) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", lines, compress=compress)
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert table.num_rows == len(lines)
    keys: dict[str, Any] = {}
    for e in lines:
        for k, v in e["properties"].items():
            if k != "time":
                keys[k] = merge(keys.get(k, "null"), value_kind(v))
    expected_names = ["event", "time"] + ["properties." + k for k in keys]
    assert table.column_names == expected_names
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("event").type == pa.string()
    rows = table.to_pylist()
    for key, kind in keys.items():
        name = "properties." + key
        assert table.schema.field(name).type == arrow_of(kind), key
        for row, e in zip(rows, lines, strict=True):
            assert recovered(row[name], e["properties"].get(key), kind), (key, row[name])
    for row, e in zip(rows, lines, strict=True):
        ev = e["event"]
        assert row["event"] == ev


@settings(max_examples=60, deadline=None)
@given(lines=events(max_events=20), batch_rows=st.integers(min_value=1, max_value=7))
def test_batching_never_changes_the_result(lines: list[dict[str, Any]], batch_rows: int) -> None:
    raw = [json.dumps(e).encode() + b"\n" for e in lines]
    kinds: dict[str, Any] = {}
    scan = parse.scan_lines(raw, kinds, source="t")
    whole = pa.Table.from_batches(
        list(parse.iter_batches(raw, kinds, source="t", batch_rows=10_000)),
        schema=parse.export_schema(kinds),
    )
    small = pa.Table.from_batches(
        list(parse.iter_batches(raw, kinds, source="t", batch_rows=batch_rows)),
        schema=parse.export_schema(kinds),
    )
    assert scan.rows == len(lines)
    assert whole.equals(small)


def test_conflict_in_last_batch_widens_every_row() -> None:
    raw = [b'{"event":"a","properties":{"n":%d}}\n' % i for i in range(1000)]
    raw.append(b'{"event":"a","properties":{"n":"n/a"}}\n')
    kinds: dict[str, Any] = {}
    parse.scan_lines(raw, kinds, source="t")
    batches = list(parse.iter_batches(raw, kinds, source="t", batch_rows=100))
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 1001
    col = table.column("properties.n").to_pylist()
    assert col[:3] == ["0", "1", "2"] and col[-1] == "n/a"


@pytest.mark.parametrize(
    ("values", "arrow_type", "cells"),
    [
        ([1, 2], pa.int64(), [1, 2]),
        ([1, 2.5], pa.float64(), [1.0, 2.5]),
        ([True, False], pa.bool_(), [True, False]),
        ([3, "x"], pa.string(), ["3", "x"]),
        ([True, "x"], pa.string(), ["true", "x"]),
        ([1.5, "x"], pa.string(), ["1.5", "x"]),
        ([{"b": 1, "a": "é"}, None], pa.string(), ['{"b":1,"a":"é"}', None]),
        ([2**64, 1], pa.string(), ["18446744073709551616", "1"]),
        ([-(2**63) - 1], pa.string(), ["-9223372036854775809"]),
        ([2**63 - 1], pa.int64(), [2**63 - 1]),
        ([[1, 2], [3.5]], pa.list_(pa.float64()), [[1.0, 2.0], [3.5]]),
        ([[1, "a"], []], pa.list_(pa.string()), [["1", "a"], []]),
        ([[{"a": 1}], [None]], pa.list_(pa.string()), [['{"a":1}'], [None]]),
        ([[1, 2], "x"], pa.string(), ["[1,2]", "x"]),
        ([None, None], pa.null(), [None, None]),
    ],
)
def test_type_policy_table(
    tmp_path: Path, values: list[Any], arrow_type: pa.DataType, cells: list[Any]
) -> None:
    lines = [{"event": "e", "properties": {"time": 0, "x": v}} for v in values]
    table = rf.read_export_file(
        write_jsonl(tmp_path / "x.jsonl", lines), project_timezone="UTC", return_type="arrow"
    )
    assert table.schema.field("properties.x").type == arrow_type
    assert table.column("properties.x").to_pylist() == cells


def test_huge_integer_keeps_exact_decimal_text(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    p.write_bytes(b'{"event":"e","properties":{"id":123456789012345678901234567890}}\n')
    table = rf.read_export_file(p, project_timezone="UTC", return_type="arrow")
    assert table.column("properties.id").to_pylist() == ["123456789012345678901234567890"]


def test_crlf_blank_lines_and_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"event":"a","properties":{}}\r\n\r\n   \n{"event":"b"}\r\n{bad\n{"event":"c"}')
    with pytest.raises(rf.ParseError) as info:
        rf.read_export_file(p, project_timezone="UTC")
    assert info.value.line_number == 5
    assert str(p) in str(info.value)
    df = rf.read_export_file(p, project_timezone="UTC", on_bad_lines="skip")
    assert df["event"].tolist() == ["a", "b", "c"]
    with pytest.warns(rf.RobotmiaWarning, match="line 5"):
        df = rf.read_export_file(p, project_timezone="UTC", on_bad_lines="warn")
    assert len(df) == 3


@pytest.mark.parametrize(
    "line",
    [b"[1,2]", b'"x"', b'{"event":"a","properties":[1]}', b"NaN", b'{"a":1', b"\xff\xfe"],
)
def test_malformed_lines_are_parse_errors(tmp_path: Path, line: bytes) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"event":"ok"}\n' + line + b"\n")
    with pytest.raises(rf.ParseError) as info:
        rf.read_export_file(p, project_timezone="UTC")
    assert info.value.line_number == 2


def test_lone_surrogate_escape_is_kept_as_replacement_char(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"event":"a","properties":{"s":"x\\ud800y"}}\n')
    df = rf.read_export_file(p, project_timezone="UTC")
    assert df["properties.s"][0] == "x\ufffdy"


def test_multi_member_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"event":"a"}\n') + gzip.compress(b'{"event":"b"}\n'))
    assert rf.read_export_file(p, project_timezone="UTC")["event"].tolist() == ["a", "b"]
    whole = gzip.compress(b"".join(b'{"event":"e%d"}\n' % i for i in range(2000)))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(rf.IncompleteDownloadError, match=r"cut\.jsonl\.gz"):
        rf.read_export_file(cut, project_timezone="UTC")


def test_columns_projection(tmp_path: Path) -> None:
    lines = [{"event": "e", "properties": {"time": 0, "a": 1, "b": "x"}}]
    p = write_jsonl(tmp_path / "x.jsonl", lines)
    t = rf.read_export_file(
        p,
        project_timezone="UTC",
        return_type="arrow",
        columns=["properties.b", "event", "properties.a"],
    )
    assert t.column_names == ["properties.b", "event", "properties.a"]
    assert t.to_pylist() == [{"properties.b": "x", "event": "e", "properties.a": 1}]
    with pytest.raises(ValueError, match=r"unknown column 'b'.*did you mean 'properties\.b'"):
        rf.read_export_file(p, project_timezone="UTC", columns=["b"])
    with pytest.raises(ValueError, match=r"unknown column 'properties\.zz'"):
        rf.read_export_file(p, project_timezone="UTC", columns=["properties.zz"])


def test_empty_file_has_typed_event_and_time(tmp_path: Path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    df = rf.read_export_file(p, project_timezone="UTC")
    assert list(df.columns) == ["event", "time"]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert df["event"].dtype == "string"


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=events(max_events=20), batch_rows=st.integers(min_value=1, max_value=7))
def test_engine_equals_reference_builder_at_any_batch_size(
    tmp_path: Path, lines: list[dict[str, Any]], batch_rows: int
) -> None:
    """The fast engine (per-batch kinds, widened at the end, rare batches rebuilt)
    gives exactly what the row-by-row reference builder gives."""
    from robotmia_frames import parse as engine

    path = write_jsonl(tmp_path / "e.jsonl", lines)
    raw = path.read_bytes().splitlines(keepends=True)
    ref_kinds: dict[str, Any] = {}
    parse.scan_lines(raw, ref_kinds, source="t")
    schema = parse.export_schema(ref_kinds)
    reference = pa.Table.from_batches(
        list(parse.iter_batches(raw, ref_kinds, source="t")), schema=schema
    )
    kinds: dict[str, Any] = {}
    batches = list(engine.read_raw_batches(path, source="t", batch_rows=batch_rows))
    for b in batches:
        engine.merge_kinds(kinds, b)
    assert kinds == ref_kinds
    assert list(kinds) == list(ref_kinds)  # same column order
    got = pa.Table.from_batches(
        [engine.conform(b, kinds, schema, path=path) for b in batches if b.num_rows], schema=schema
    )
    assert got.equals(reference)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_json_text_is_compact_json_dumps(value: Any) -> None:
    """The fast path (orjson) never differs from the canonical json.dumps text."""
    from robotmia_frames.parse.typepolicy import json_text

    if isinstance(value, str):
        return
    assert json_text(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats()), max_size=60))
def test_float_texts_match_json_text(values: list[float | None]) -> None:
    """Widening a float column to text spells every float as json_text does."""
    from robotmia_frames.parse.typepolicy import float_texts, json_text

    got = float_texts(pa.array(values, type=pa.float64())).to_pylist()
    assert got == [None if v is None else json_text(v) for v in values]
