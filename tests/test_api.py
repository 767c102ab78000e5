"""End to end: ``read_robotmia_export`` against the local export server over real sockets."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pandas as pd
import pyarrow as pa
import pytest
import requests

import robotmia_frames as rf
from robotmia_frames.emulator import Fault, generate_events
from tests.conftest import local_seconds as lsec
from tests.conftest import release_when

UTC = dt.timezone.utc
EPOCH = dt.date(1970, 1, 1)


def ev(name: str, t: Any, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"time": t, **props}}


def expected_utc(t: float, tz: str) -> pd.Timestamp:
    """The contract's conversion (design.md, "Time conversion"), as a pandas Timestamp."""
    local = (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=t)).replace(tzinfo=ZoneInfo(tz))
    return pd.Timestamp(local.astimezone(UTC))


def local_day(event: dict[str, Any]) -> dt.date:
    return EPOCH + dt.timedelta(days=math.floor(event["properties"]["time"] / 86400))


def read(srv: Any, start: Any, end: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("api_secret", srv.api_secret)
    kwargs.setdefault("project_timezone", srv.project_timezone)
    kwargs.setdefault("base_url", srv.url)
    return rf.read_robotmia_export(start, end, **kwargs)


def body_lines(srv: Any, start: str, end: str) -> bytes:
    """The decompressed export body for one range, fetched over HTTP (one request)."""
    r = requests.get(
        srv.url,
        params={"from_date": start, "to_date": end},
        auth=(srv.api_secret, ""),
        timeout=30,
    )
    r.raise_for_status()
    return r.content


TYPED_EVENTS = [
    ev("a", lsec("2024-01-01", 60), n=1, x=1.5, flag=True, s="one"),
    ev("b", lsec("2024-01-01", 120), n=2, x=2, flag=False, s="two"),
    ev("a", lsec("2024-01-01", 180), n=None, x=None, flag=None, s=None),
]


# ------------------------------------------------------------------ columns and dtypes


def test_columns_are_event_time_and_properties(server):
    srv = server(generate_events(60, days=2, seed=3))
    df = read(srv, "2024-01-01", "2024-01-02")
    cols = list(df.columns)
    assert cols[:2] == ["event", "time"]
    assert all(c.startswith("properties.") for c in cols[2:])
    assert "properties.time" not in cols
    assert len(cols) == len(set(cols))
    assert {"properties.distinct_id", "properties.$insert_id", "properties.$os"} <= set(cols)
    assert len(df) == 60


def test_pandas_dtypes_are_nullable(server):
    srv = server(TYPED_EVENTS)
    df = read(srv, "2024-01-01", "2024-01-01")
    assert list(df.columns) == [
        "event",
        "time",
        "properties.n",
        "properties.x",
        "properties.flag",
        "properties.s",
    ]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert df["properties.n"].dtype == pd.Int64Dtype()
    assert df["properties.x"].dtype == pd.Float64Dtype()
    assert df["properties.flag"].dtype == pd.BooleanDtype()
    for col in ("event", "properties.s"):
        dtype = df[col].dtype
        assert isinstance(dtype, pd.StringDtype)
        assert dtype.na_value is pd.NA
    assert df["properties.n"].tolist() == [1, 2, pd.NA]
    assert df["properties.x"].tolist() == [1.5, 2.0, pd.NA]
    assert df["properties.flag"].tolist() == [True, False, pd.NA]
    assert df["properties.s"].tolist() == ["one", "two", pd.NA]
    assert df["event"].tolist() == ["a", "b", "a"]


def test_arrow_return_type(server):
    srv = server(TYPED_EVENTS)
    table = read(srv, "2024-01-01", "2024-01-01", return_type="arrow")
    assert isinstance(table, pa.Table)
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("event").type == pa.string()
    assert table.schema.field("properties.n").type == pa.int64()
    assert table.schema.field("properties.x").type == pa.float64()
    assert table.schema.field("properties.flag").type == pa.bool_()
    assert table.schema.field("properties.s").type == pa.string()
    assert table.column("properties.n").to_pylist() == [1, 2, None]
    first = table.column("time")[0].as_py()
    assert first == dt.datetime(2024, 1, 1, 0, 1, tzinfo=dt.timezone.utc)
    assert str(first.tzinfo) == "UTC"


def test_dtype_backend_pyarrow(server):
    srv = server(TYPED_EVENTS)
    df = read(srv, "2024-01-01", "2024-01-01", dtype_backend="pyarrow")
    assert isinstance(df, pd.DataFrame)
    for col in df.columns:
        assert isinstance(df[col].dtype, pd.ArrowDtype), col
    assert df["time"].dtype == pd.ArrowDtype(pa.timestamp("us", tz="UTC"))
    assert df["properties.n"].dtype == pd.ArrowDtype(pa.int64())
    assert df["properties.x"].dtype == pd.ArrowDtype(pa.float64())
    assert df["properties.flag"].dtype == pd.ArrowDtype(pa.bool_())
    assert df["properties.n"].tolist()[:2] == [1, 2]


# ------------------------------------------------------------------ rows and project-local days


def _boundary_events(tz_tag: str) -> list[dict[str, Any]]:
    """Events at and around the local midnights of 2024-03-09..2024-03-12 and DST edges."""
    edges = [
        ("2024-03-08", 86399.999),  # outside the range (day before)
        ("2024-03-09", 0),
        ("2024-03-09", 0.25),
        ("2024-03-09", 86399),
        ("2024-03-10", 0),
        ("2024-03-10", 2 * 3600 + 30 * 60),  # LA: in the skipped hour
        ("2024-03-10", 86399.5),
        ("2024-03-11", 0),
        ("2024-03-11", 86399.999999),
        ("2024-03-12", 0),  # outside (day after)
    ]
    return [
        ev("edge", lsec(day, s), **{"$insert_id": f"{tz_tag}-edge-{i}", "distinct_id": "u"})
        for i, (day, s) in enumerate(edges)
    ]


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "Asia/Kathmandu"])
def test_rows_and_times_for_project_local_days(server, tz):
    events = generate_events(400, from_date="2024-03-07", days=7, seed=11, project_timezone=tz)
    events += _boundary_events(tz)
    srv = server(events, project_timezone=tz)
    start, end = dt.date(2024, 3, 9), dt.date(2024, 3, 11)
    df = read(srv, "2024-03-09", "2024-03-11")

    wanted = [e for e in events if start <= local_day(e) <= end]
    assert len(df) == len(wanted)
    got_ids = df["properties.$insert_id"].tolist()
    assert len(set(got_ids)) == len(got_ids)
    assert set(got_ids) == {e["properties"]["$insert_id"] for e in wanted}
    assert {f"{tz}-edge-{i}" for i in range(1, 9)} <= set(got_ids)
    assert f"{tz}-edge-0" not in got_ids
    assert f"{tz}-edge-9" not in got_ids

    by_id = {e["properties"]["$insert_id"]: e["properties"]["time"] for e in wanted}
    for insert_id, got in zip(got_ids, df["time"].tolist(), strict=True):
        want = expected_utc(by_id[insert_id], tz)
        assert got == want, (insert_id, by_id[insert_id], got, want)


def test_dst_repeated_and_skipped_hours(server):
    tz = "America/Los_Angeles"
    events = [
        ev("skipped", lsec("2024-03-10", 2 * 3600 + 1800), id=1),  # 02:30 does not exist
        ev("repeated", lsec("2024-11-03", 3600 + 1800), id=2),  # 01:30 happens twice
        ev("fraction", lsec("2024-11-03", 12 * 3600 + 0.123456), id=3),
    ]
    srv = server(events, project_timezone=tz)
    df = read(srv, "2024-03-10", "2024-11-03", concurrency=8)
    assert df["properties.id"].tolist() == [1, 2, 3]
    times = df["time"].tolist()
    assert times[0] == pd.Timestamp("2024-03-10 10:30", tz="UTC")  # fold=0: PST offset
    assert times[1] == pd.Timestamp("2024-11-03 08:30", tz="UTC")  # earlier instant (PDT)
    assert times[2] == pd.Timestamp("2024-11-03 20:00:00.123456", tz="UTC")
    for e, got in zip(events, times, strict=True):
        assert got == expected_utc(e["properties"]["time"], tz)


def test_non_numeric_time_gives_null_time_and_keeps_row(server):
    events = [
        ev("ok", lsec("2024-02-01", 10), id=1),
        ev("str-time", "1710036000", id=2),
        ev("bool-time", True, id=3),
        {"event": "no-time", "properties": {"id": 4}},
    ]
    srv = server(events)
    df = read(srv, "2024-02-01", "2024-02-01")
    assert sorted(df["properties.id"].tolist()) == [1, 2, 3, 4]
    by_id = dict(zip(df["properties.id"].tolist(), df["time"].tolist(), strict=True))
    assert by_id[1] == pd.Timestamp("2024-02-01 00:00:10", tz="UTC")
    assert all(pd.isna(by_id[i]) for i in (2, 3, 4))


# ------------------------------------------------------------------ request parameters


def test_event_string_filters_and_is_sent_as_json_array(server):
    events = [ev("x", lsec("2024-01-01", i), i=i) for i in range(3)]
    events += [ev("y", lsec("2024-01-01", 10 + i), i=10 + i) for i in range(3)]
    srv = server(events)
    df = read(srv, "2024-01-01", "2024-01-01", event="x")
    assert df["event"].tolist() == ["x", "x", "x"]
    assert df["properties.i"].tolist() == [0, 1, 2]
    assert len(srv.requests) == 1
    sent = srv.requests[0].params["event"]
    assert json.loads(sent) == ["x"]


def test_event_list_filters_and_is_sent_as_json_array(server):
    names = ["play song", "log in", "Größe ✓", "a&b=c", "x+y", "100%", "#h", 'q"uote']
    events = [ev(n, lsec("2024-01-01", i), i=i) for i, n in enumerate([*names, "other"])]
    srv = server(events)
    df = read(srv, "2024-01-01", "2024-01-02", event=names)
    assert df["event"].tolist() == names
    assert len(srv.requests) == 1  # both days in one window
    for record in srv.requests:
        assert json.loads(record.params["event"]) == names


def test_event_none_and_where_none_send_no_parameter(server):
    srv = server(generate_events(10, days=1))
    read(srv, "2024-01-01", "2024-01-01", event=None, where=None)
    assert len(srv.requests) == 1
    params = srv.requests[0].params
    assert "event" not in params
    assert "where" not in params
    assert params["from_date"] == params["to_date"] == "2024-01-01"


def test_where_is_sent_verbatim(server):
    where = (
        'properties["$os"] == "Linux" and "é x" in properties["a&b=c"] '
        'or properties["n"] + 1 == 2 and "#%41?" in properties["x"]'
    )
    srv = server(generate_events(10, days=2))
    read(srv, "2024-01-01", "2024-01-02", where=where)
    assert len(srv.requests) == 1
    assert all(r.params["where"] == where for r in srv.requests)


def test_dates_as_date_objects(server):
    srv = server([ev("a", lsec("2024-01-01", 1)), ev("a", lsec("2024-01-02", 1))])
    df = read(srv, dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert len(df) == 2
    assert srv.windows() == [(dt.date(2024, 1, 1), dt.date(2024, 1, 2))]


def test_where_filters_with_a_server_side_evaluator(server):
    where = 'properties["k"] == 1'
    seen: list[str] = []

    def evaluator(expr: str, event: dict[str, Any]) -> bool:
        seen.append(expr)
        return event["properties"].get("k") == 1

    events = [ev("e", lsec("2024-01-01", i), k=i % 2) for i in range(6)]
    srv = server(events, where_filter=evaluator)
    df = read(srv, "2024-01-01", "2024-01-01", where=where)
    assert set(seen) == {where}
    assert df["properties.k"].tolist() == [1, 1, 1]


# ------------------------------------------------------------------ read_export_file equivalence


def _same_lines_file(tmp_path: Path, body: bytes, kind: str) -> Path:
    if kind == "jsonl":
        p = tmp_path / "export.jsonl"
        p.write_bytes(body)
    elif kind == "jsonl.gz":
        p = tmp_path / "export.jsonl.gz"
        p.write_bytes(gzip.compress(body))
    else:  # two gzip members, split in the middle of the body at a line boundary
        lines = body.splitlines(keepends=True)
        half = len(lines) // 2
        p = tmp_path / "export-multi.jsonl.gz"
        p.write_bytes(gzip.compress(b"".join(lines[:half])) + gzip.compress(b"".join(lines[half:])))
    return p


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "multi-member.gz"])
def test_read_export_file_equals_read_robotmia_export(server, tmp_path, kind):
    tz = "Europe/Paris"
    srv = server(generate_events(300, days=1, seed=5, project_timezone=tz), project_timezone=tz)
    api_df = read(srv, "2024-01-01", "2024-01-01")
    path = _same_lines_file(tmp_path, body_lines(srv, "2024-01-01", "2024-01-01"), kind)
    file_df = rf.read_export_file(path, project_timezone=tz)
    assert len(api_df) == 300
    pd.testing.assert_frame_equal(file_df, api_df)
    file_tbl = rf.read_export_file(path, project_timezone=tz, return_type="arrow")
    api_tbl = read(srv, "2024-01-01", "2024-01-01", return_type="arrow")
    assert file_tbl.equals(api_tbl)


def test_read_export_file_equals_multi_day_export(server, tmp_path):
    tz = "America/Los_Angeles"
    srv = server(generate_events(240, days=3, seed=9, project_timezone=tz), project_timezone=tz)
    api_df = read(srv, "2024-01-01", "2024-01-03")
    body = body_lines(srv, "2024-01-01", "2024-01-03")
    path = _same_lines_file(tmp_path, body, "jsonl.gz")
    pd.testing.assert_frame_equal(rf.read_export_file(path, project_timezone=tz), api_df)


def test_column_order_does_not_depend_on_download_timing(server, tmp_path):
    events = [
        ev("a", lsec("2024-01-01", 10), first_day_key=1),
        ev("b", lsec("2024-01-02", 10), second_day_key="x"),
    ]
    srv = server(events)
    # The first day's answer is slow, so the second day finishes downloading first.
    gate = threading.Event()  # released once day 2 is logged (fully sent)
    srv.add_fault(Fault(hold=gate, match=lambda p: p["from_date"] == "2024-01-01"))
    release_when(lambda: any(r.params["from_date"] == "2024-01-02" for r in srv.requests), gate)
    api_df = read(srv, "2024-01-01", "2024-01-02", window_days=1)
    assert [r.params["from_date"] for r in srv.requests] == ["2024-01-02", "2024-01-01"]
    path = tmp_path / "same.jsonl"
    path.write_bytes(body_lines(srv, "2024-01-01", "2024-01-02"))
    file_df = rf.read_export_file(path, project_timezone="UTC")
    assert list(file_df.columns) == [
        "event",
        "time",
        "properties.first_day_key",
        "properties.second_day_key",
    ]
    pd.testing.assert_frame_equal(api_df, file_df)


# ------------------------------------------------------------------ empty exports


@pytest.mark.parametrize("return_type", ["pandas", "arrow"])
def test_empty_export_has_typed_event_and_time(server, return_type):
    srv = server([ev("a", lsec("2024-05-01", 5), n=1)])
    out = read(srv, "2024-01-01", "2024-01-02", return_type=return_type)
    assert len(srv.requests) == 1
    if return_type == "arrow":
        assert out.num_rows == 0
        assert out.column_names == ["event", "time"]
        assert out.schema.field("event").type == pa.string()
        assert out.schema.field("time").type == pa.timestamp("us", tz="UTC")
    else:
        assert len(out) == 0
        assert list(out.columns) == ["event", "time"]
        assert isinstance(out["event"].dtype, pd.StringDtype)
        assert str(out["time"].dtype) == "datetime64[us, UTC]"


def test_empty_export_file(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    df = rf.read_export_file(p, project_timezone="UTC")
    assert list(df.columns) == ["event", "time"]
    assert len(df) == 0
    assert str(df["time"].dtype) == "datetime64[us, UTC]"


# ------------------------------------------------------------------ environment variables


def test_secret_and_timezone_from_environment(server, monkeypatch):
    tz = "Asia/Kathmandu"
    srv = server([ev("a", lsec("2024-01-01", 0), n=1)], project_timezone=tz)
    monkeypatch.setenv("ROBOTMIA_API_SECRET", srv.api_secret)
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", tz)
    df = rf.read_robotmia_export("2024-01-01", "2024-01-01", base_url=srv.url)
    assert df["properties.n"].tolist() == [1]
    # 2024-01-01 00:00 in Kathmandu (+05:45) is 2023-12-31 18:15 UTC.
    assert df["time"].tolist() == [pd.Timestamp("2023-12-31 18:15", tz="UTC")]
    assert len(srv.requests) == 1
    assert srv.requests[0].authorized


def test_explicit_arguments_beat_environment(server, monkeypatch):
    srv = server([ev("a", lsec("2024-01-01", 0), n=1)])
    monkeypatch.setenv("ROBOTMIA_API_SECRET", "wrong-env-secret")
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", "Asia/Tokyo")
    df = read(srv, "2024-01-01", "2024-01-01", project_timezone="UTC")
    assert df["time"].tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]


def test_read_export_file_timezone_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "x.jsonl"
    p.write_bytes(orjson.dumps(ev("a", lsec("2024-07-01", 0))) + b"\n")
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", "America/Los_Angeles")
    df = rf.read_export_file(p)
    assert df["time"].tolist() == [pd.Timestamp("2024-07-01 07:00", tz="UTC")]


# ------------------------------------------------------------------ awkward keys and values

BIG = "x" * (1 << 20)

AWKWARD_KEYS = {
    " leading space": "k1",
    "a.b": "k2",
    "$os": "k3",
    "ключ 🔑": "k4",
    "Plan": "k5",
    "plan": "k6",
    "": "k7",
    "tab\tkey": "k8",
    'quote"key': "k9",
}


def test_awkward_keys(server):
    srv = server([ev("k", lsec("2024-01-01", 1), **AWKWARD_KEYS)])
    df = read(srv, "2024-01-01", "2024-01-01")
    for key, value in AWKWARD_KEYS.items():
        col = f"properties.{key}"
        assert col in df.columns, col
        assert df[col].tolist() == [value], col
    assert len(df.columns) == 2 + len(AWKWARD_KEYS)


def test_awkward_values(server):
    nested = {"b": {"c": [1, "é"], "z": None}, "a": 1.5}
    events = [
        ev(
            "v",
            lsec("2024-01-01", 1),
            esc='a"b\\c\n\t/',
            nul="x\u0000y",
            emoji="😀👍🏽",
            big=BIG,
            obj=nested,
            ints=[1, 2, 3],
            strs=["a", None, "ü"],
            mixed=3,
            maybe=None,
        ),
        ev("v", lsec("2024-01-01", 2), mixed="x", maybe=7, obj={"k": "ü"}, ints=[]),
        ev("v", lsec("2024-01-01", 3), mixed=True, maybe=None, obj=None, ints=None),
    ]
    srv = server(events)
    df = read(srv, "2024-01-01", "2024-01-01")
    assert df["properties.esc"].tolist()[0] == 'a"b\\c\n\t/'
    assert df["properties.nul"].tolist()[0] == "x\u0000y"
    assert df["properties.emoji"].tolist()[0] == "😀👍🏽"
    assert df["properties.big"].tolist()[0] == BIG
    obj = df["properties.obj"]
    assert isinstance(obj.dtype, pd.StringDtype)
    assert obj.tolist()[0] == '{"b":{"c":[1,"é"],"z":null},"a":1.5}'
    assert obj.tolist()[1] == '{"k":"ü"}'
    assert obj.isna().tolist() == [False, False, True]
    assert df["properties.ints"].tolist()[0] == [1, 2, 3]
    assert list(df["properties.ints"].tolist()[1]) == []
    assert pd.isna(df["properties.ints"].tolist()[2])
    assert df["properties.strs"].tolist()[0] == ["a", None, "ü"]
    mixed = df["properties.mixed"]
    assert isinstance(mixed.dtype, pd.StringDtype)
    assert mixed.tolist() == ["3", "x", "true"]
    assert df["properties.maybe"].dtype == pd.Int64Dtype()
    assert df["properties.maybe"].tolist() == [pd.NA, 7, pd.NA]
    # keys missing from an event are null in that row
    assert df["properties.esc"].isna().tolist() == [False, True, True]


def test_int_string_conflict_in_different_days(server):
    events = [ev("c", lsec("2024-01-01", 1), v=3), ev("c", lsec("2024-01-02", 1), v="three")]
    srv = server(events)
    df = read(srv, "2024-01-01", "2024-01-02")
    assert isinstance(df["properties.v"].dtype, pd.StringDtype)
    assert df["properties.v"].tolist() == ["3", "three"]


def test_huge_int_becomes_exact_string(server):
    # orjson (the server's encoder) refuses such ints: serve the exact bytes instead.
    body = (
        orjson.dumps(ev("h", lsec("2024-01-01", 1), v=1))
        + b"\n"
        + f'{{"event":"h","properties":{{"time":{lsec("2024-01-01", 2)},"v":{2**64 + 1}}}}}\n'.encode()
    )
    srv = server([])
    srv.add_fault(Fault(raw_body=body))
    df = read(srv, "2024-01-01", "2024-01-01")
    assert df["properties.v"].tolist() == ["1", str(2**64 + 1)]


# ------------------------------------------------------------------ parquet_path and columns


def test_parquet_path_round_trip(server, tmp_path):
    tz = "America/Los_Angeles"
    srv = server(generate_events(150, days=3, seed=2, project_timezone=tz), project_timezone=tz)
    out = tmp_path / "ds"
    df = read(srv, "2024-01-01", "2024-01-03", parquet_path=out)
    dirs = sorted(p.name for p in out.iterdir() if p.name.startswith("date="))
    assert dirs == ["date=2024-01-01", "date=2024-01-02", "date=2024-01-03"]
    for d in dirs:
        assert (out / d / "part-0.parquet").is_file()
    back = rf.read_parquet_dataset(out)
    assert len(back) == len(df) == 150
    assert set(back.columns) == set(df.columns)
    pd.testing.assert_frame_equal(back[list(df.columns)], df)
    one_day = rf.read_parquet_dataset(out, from_date="2024-01-02", to_date="2024-01-02")
    assert len(one_day) == 50


@pytest.mark.parametrize(
    "columns",
    [
        ["event", "time", "properties.$os"],
        ["properties.distinct_id", "event"],
        ["properties.$insert_id"],
    ],
)
def test_columns_projection(server, columns):
    srv = server(generate_events(40, days=2, seed=1))
    full = read(srv, "2024-01-01", "2024-01-02")
    df = read(srv, "2024-01-01", "2024-01-02", columns=columns)
    assert list(df.columns) == columns
    assert len(df) == 40
    for c in columns:
        pd.testing.assert_series_equal(df[c], full[c])


def test_unknown_column_of_an_export_suggests_the_nearest(server):
    srv = server(generate_events(40, days=2, seed=1))
    with pytest.raises(rf.InvalidArgumentError) as info:
        read(srv, "2024-01-01", "2024-01-02", columns=["time", "properties.$oss"])
    assert "unknown column 'properties.$oss'" in str(info.value)
    assert "export of 2024-01-01..2024-01-02" in str(info.value)
    assert "did you mean 'properties.$os'?" in str(info.value)
    short = read(srv, "2024-01-01", "2024-01-02", columns=["$os", "time"])
    assert list(short.columns) == ["properties.$os", "time"]
    assert short["properties.$os"].notna().any()


def test_columns_projection_arrow(server):
    srv = server(TYPED_EVENTS)
    t = read(srv, "2024-01-01", "2024-01-01", columns=["properties.n", "time"], return_type="arrow")
    assert t.column_names == ["properties.n", "time"]
    assert t.schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert t.column("properties.n").to_pylist() == [1, 2, None]


# ------------------------------------------------------------------ malformed lines


def _good(i: int) -> bytes:
    return orjson.dumps(ev("g", lsec("2024-01-05", i), i=i))


# physical lines: 1 good, 2 blank, 3 good, 4 malformed, 5 blank (CRLF), 6 not an object, 7 good
MALFORMED_BODY = (
    _good(1) + b"\n\n" + _good(2) + b'\n{"event": "x", "properties": {\n\r\n[1, 2]\n' + _good(3)
)


def _malformed_server(server: Any) -> Any:
    srv = server([])
    srv.add_fault(Fault(raw_body=MALFORMED_BODY))
    return srv


def test_on_bad_lines_error_names_line_and_day(server):
    srv = _malformed_server(server)
    with pytest.raises(rf.ParseError) as info:
        read(srv, "2024-01-05", "2024-01-05")
    err = info.value
    assert err.line_number == 4
    assert "2024-01-05" in str(err)
    assert "line 4" in str(err)
    assert isinstance(err, rf.RobotmiaError)


def test_on_bad_lines_skip(server):
    srv = _malformed_server(server)
    df = read(srv, "2024-01-05", "2024-01-05", on_bad_lines="skip")
    assert df["properties.i"].tolist() == [1, 2, 3]


def test_on_bad_lines_warn(server):
    srv = _malformed_server(server)
    with pytest.warns(rf.RobotmiaWarning) as record:
        df = read(srv, "2024-01-05", "2024-01-05", on_bad_lines="warn")
    assert df["properties.i"].tolist() == [1, 2, 3]
    messages = [str(w.message) for w in record if issubclass(w.category, rf.RobotmiaWarning)]
    assert len(messages) == 2
    assert "line 4" in messages[0]
    assert "line 6" in messages[1]
    assert issubclass(rf.RobotmiaWarning, UserWarning)


def test_on_bad_lines_file_line_numbers(tmp_path):
    p = tmp_path / "bad.jsonl.gz"
    p.write_bytes(gzip.compress(MALFORMED_BODY))
    with pytest.raises(rf.ParseError) as info:
        rf.read_export_file(p, project_timezone="UTC")
    assert info.value.line_number == 4
    assert "bad.jsonl.gz" in str(info.value)
    df = rf.read_export_file(p, project_timezone="UTC", on_bad_lines="skip")
    assert df["properties.i"].tolist() == [1, 2, 3]


def test_on_bad_lines_only_blank_lines_are_fine(server):
    body = b"\n" + _good(1) + b"\n\n\n" + _good(2) + b"\n\n"
    srv = server([])
    srv.add_fault(Fault(raw_body=body))
    df = read(srv, "2024-01-05", "2024-01-05")
    assert df["properties.i"].tolist() == [1, 2]
