"""``export_to_parquet`` and ``read_parquet_dataset`` end to end against the local server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import Fault, generate_events
from tests.conftest import local_seconds as lsec
from tests.conftest import release_when

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]


def ev(name: str, t: Any, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"time": t, **props}}


def tagged(tag: str, days: list[str] = DAYS, per_day: int = 3) -> list[dict[str, Any]]:
    """``per_day`` events a day; ``properties.tag`` says which server version sent them."""
    return [
        ev(f"e{i % 2}", lsec(d, 3600 * i + 1), tag=tag, day=d, i=i)
        for d in days
        for i in range(per_day)
    ]


def export(srv: Any, out: Path, start: str, end: str, **kwargs: Any) -> rf.ExportSummary:
    kwargs.setdefault("api_secret", srv.api_secret)
    kwargs.setdefault("project_timezone", "UTC")
    kwargs.setdefault("base_url", srv.url)
    return rf.export_to_parquet(out, start, end, **kwargs)


def data_files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
    )


def digest(root: Path, day: str) -> dict[str, str]:
    d = root / f"date={day}"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def stray(root: Path) -> list[str]:
    """Files (not folders) that are hidden, staging or temporary, anywhere under ``root``."""
    out = []
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(root)
        if (
            any(part.startswith(".") for part in rel.parts)
            or "staging" in str(rel)
            or p.suffix in (".tmp", ".part", ".partial")
            or ".part-" in p.name
        ):
            out.append(str(rel))
    return out


def by_day(df: pd.DataFrame) -> dict[str, set[tuple[str, int]]]:
    out: dict[str, set[tuple[str, int]]] = {}
    for day, tag, i in zip(
        df["properties.day"], df["properties.tag"], df["properties.i"], strict=True
    ):
        out.setdefault(day, set()).add((tag, i))
    return out


# ------------------------------------------------------------------ summary and layout


def test_summary_and_layout(server, tmp_path):
    srv = server(tagged("v1"))
    out = tmp_path / "ds"
    s = export(srv, out, "2024-01-01", "2024-01-04")
    assert isinstance(s, rf.ExportSummary)
    assert s.rows == 12
    assert s.days == 4
    assert s.files == 4
    assert Path(s.path) == out
    assert data_files(out) == [f"date={d}/part-0.parquet" for d in DAYS]
    assert s.bytes == sum((out / f).stat().st_size for f in data_files(out))
    assert s.rows_per_day == dict.fromkeys(DAYS, 3)
    schema = pq.read_schema(out / "date=2024-01-01" / "part-0.parquet")
    assert schema.field("time").type == pa.timestamp("us", tz="UTC")
    assert "date" not in schema.names  # the partition value lives in the path


def test_summary_counts_empty_days(server, tmp_path):
    srv = server(tagged("v1", days=["2024-01-02"]))
    s = export(srv, tmp_path / "ds", "2024-01-01", "2024-01-03")
    assert s.rows == 3
    assert s.files == 1
    assert data_files(tmp_path / "ds") == ["date=2024-01-02/part-0.parquet"]


def test_partition_by_date_and_event(server, tmp_path):
    names = ["Played song", "a/b", "100%", "é?", "x=y"]
    events = [ev(n, lsec(d, i), i=i, day=d) for d in DAYS[:2] for i, n in enumerate(names)]
    srv = server(events)
    out = tmp_path / "ds"
    s = export(srv, out, "2024-01-01", "2024-01-02", partition_by=("date", "event"))
    assert s.rows == 10
    assert s.files == 10
    files = data_files(out)
    assert len(files) == 10
    for f in files:
        parts = Path(f).parts
        assert parts[0] in ("date=2024-01-01", "date=2024-01-02")
        assert parts[1].startswith("event=")
        assert parts[2] == "part-0.parquet"
        assert "/" not in parts[1][len("event=") :]
    assert (out / "date=2024-01-01" / "event=Played%20song" / "part-0.parquet").is_file() or (
        out / "date=2024-01-01" / "event=Played song" / "part-0.parquet"
    ).is_file()
    back = rf.read_parquet_dataset(out)
    assert len(back) == 10
    assert sorted(back["event"].tolist()) == sorted(names * 2)
    got = set(zip(back["event"], back["properties.day"], back["properties.i"], strict=True))
    assert got == {(n, d, i) for d in DAYS[:2] for i, n in enumerate(names)}
    only = rf.read_parquet_dataset(out, event=["a/b", "é?"], from_date="2024-01-02")
    assert sorted(only["event"].tolist()) == ["a/b", "é?"]
    assert list(only.columns[:2]) == ["event", "time"]


def test_parquet_path_equals_export_to_parquet(server, tmp_path):
    srv = server(generate_events(60, days=3, seed=8))
    a, b = tmp_path / "a", tmp_path / "b"
    df = rf.read_robotmia_export(
        "2024-01-01",
        "2024-01-03",
        api_secret=srv.api_secret,
        project_timezone="UTC",
        base_url=srv.url,
        parquet_path=a,
    )
    export(srv, b, "2024-01-01", "2024-01-03", concurrency=1)
    back_a, back_b = rf.read_parquet_dataset(a), rf.read_parquet_dataset(b)
    pd.testing.assert_frame_equal(back_a, df)
    pd.testing.assert_frame_equal(back_b, df)


def test_dataset_column_order_does_not_depend_on_download_timing(server, tmp_path):
    events = [
        ev("a", lsec("2024-01-01", 10), first_day_key=1),
        ev("b", lsec("2024-01-02", 10), second_day_key="x"),
    ]
    srv = server(events)
    # The first day's answer is slow, so the second day is written first.
    gate = threading.Event()  # released once day 2 is logged (fully sent)
    srv.add_fault(Fault(hold=gate, match=lambda p: p["from_date"] == "2024-01-01"))
    release_when(lambda: any(r.params["from_date"] == "2024-01-02" for r in srv.requests), gate)
    export(srv, tmp_path / "ds", "2024-01-01", "2024-01-02", window_days=1)
    assert [r.params["from_date"] for r in srv.requests] == ["2024-01-02", "2024-01-01"]
    back = rf.read_parquet_dataset(tmp_path / "ds")
    direct = rf.read_robotmia_export(
        "2024-01-01",
        "2024-01-02",
        api_secret=srv.api_secret,
        project_timezone="UTC",
        base_url=srv.url,
    )
    assert list(direct.columns) == [
        "event",
        "time",
        "properties.first_day_key",
        "properties.second_day_key",
    ]
    pd.testing.assert_frame_equal(back, direct)


def test_partition_by_event_null_and_empty_event_names(server, tmp_path):
    events = [
        ev("a", lsec("2024-01-01", 1), i=1),
        ev(None, lsec("2024-01-01", 2), i=2),
        {"properties": {"time": lsec("2024-01-01", 3), "i": 3}},  # no "event" at all
        ev("", lsec("2024-01-01", 4), i=4),
    ]
    srv = server(events)
    out = tmp_path / "ds"
    s = export(srv, out, "2024-01-01", "2024-01-01", partition_by=("date", "event"))
    assert s.rows == 4
    back = rf.read_parquet_dataset(out)
    got = {
        int(i): (None if pd.isna(e) else e)
        for e, i in zip(back["event"], back["properties.i"], strict=True)
    }
    assert got == {1: "a", 2: None, 3: None, 4: ""}
    assert pads.dataset(out, partitioning="hive").count_rows() == 4


def test_partition_by_event_literal_default_partition_name(server, tmp_path):
    events = [
        ev("__HIVE_DEFAULT_PARTITION__", lsec("2024-01-01", 1), i=1),
        ev(None, lsec("2024-01-01", 2), i=2),
    ]
    srv = server(events)
    out = tmp_path / "ds"
    s = export(srv, out, "2024-01-01", "2024-01-01", partition_by=("date", "event"))
    assert s.rows == 2
    back = rf.read_parquet_dataset(out)
    got = {
        int(i): (None if pd.isna(e) else e)
        for e, i in zip(back["event"], back["properties.i"], strict=True)
    }
    assert got == {1: "__HIVE_DEFAULT_PARTITION__", 2: None}


AWKWARD = {
    " lead": "k1",
    "a.b": "k2",
    "$os": "k3",
    "ключ 🔑": "k4",
    "Plan": "k5",
    "plan": "k6",
    "": "k7",
    "tab\tkey": "k8",
    'q"k': "k9",
    "nul": "x\u0000y",
    "esc": 'a"b\\c\n',
    "obj": {"b": {"c": [1, "é"]}},
    "big": "x" * (1 << 20),
    "ints": [1, 2],
}


def test_awkward_keys_and_values_round_trip_through_parquet(server, tmp_path):
    events = [
        ev("e", lsec("2024-01-01", 1), **AWKWARD),
        ev("e", lsec("2024-01-02", 1), Plan=3, ints=None),
    ]
    srv = server(events)
    out = tmp_path / "ds"
    df = rf.read_robotmia_export(
        "2024-01-01",
        "2024-01-02",
        api_secret=srv.api_secret,
        project_timezone="UTC",
        base_url=srv.url,
        parquet_path=out,
    )
    assert df["properties.obj"].tolist()[0] == '{"b":{"c":[1,"é"]}}'
    assert df["properties.Plan"].tolist() == ["k5", "3"]
    assert df["properties."].tolist()[0] == "k7"
    back = rf.read_parquet_dataset(out)
    assert set(back.columns) == set(df.columns)
    pd.testing.assert_frame_equal(back[list(df.columns)], df)
    assert len(pd.read_parquet(out)) == 2
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT * FROM read_parquet(?, hive_partitioning=true)", [str(out / "**" / "*.parquet")]
        ).fetchall()
        assert len(rows) == 2
    finally:
        con.close()


def test_on_bad_lines_in_export_to_parquet(server, tmp_path):
    body = (
        b'{"event":"a","properties":{"time":1704067201,"i":1}}\n'
        b"not json\n"
        b'{"event":"b","properties":{"time":1704067202,"i":2}}\n'
    )
    srv = server([])
    srv.add_fault(Fault(raw_body=body, times=3))
    with pytest.warns(rf.RobotmiaWarning, match="line 2"):
        s = export(srv, tmp_path / "w", "2024-01-01", "2024-01-01", on_bad_lines="warn")
    assert s.rows == 2
    s = export(srv, tmp_path / "s", "2024-01-01", "2024-01-01", on_bad_lines="skip")
    assert s.rows == 2
    assert rf.read_parquet_dataset(tmp_path / "s")["properties.i"].tolist() == [1, 2]
    with pytest.raises(rf.ParseError) as info:
        export(srv, tmp_path / "e", "2024-01-01", "2024-01-01")
    assert info.value.line_number == 2
    assert data_files(tmp_path / "e") == [] if (tmp_path / "e").exists() else True


# ------------------------------------------------------------------ re-exports


def test_reexport_replaces_exactly_that_day(server, tmp_path):
    out = tmp_path / "ds"
    export(server(tagged("v1")), out, "2024-01-01", "2024-01-04")
    before = {d: digest(out, d) for d in DAYS}
    v2 = tagged("v2", per_day=5)
    export(server(v2), out, "2024-01-02", "2024-01-02")
    for d in ("2024-01-01", "2024-01-03", "2024-01-04"):
        assert digest(out, d) == before[d]
    back = rf.read_parquet_dataset(out)
    assert len(back) == 3 + 5 + 3 + 3
    days = by_day(back)
    assert days["2024-01-02"] == {("v2", i) for i in range(5)}
    for d in ("2024-01-01", "2024-01-03", "2024-01-04"):
        assert days[d] == {("v1", i) for i in range(3)}
    assert data_files(out) == [f"date={d}/part-0.parquet" for d in DAYS]


def test_reexport_same_range_twice_has_no_duplicates(server, tmp_path):
    srv = server(tagged("v1"))
    out = tmp_path / "ds"
    export(srv, out, "2024-01-01", "2024-01-04")
    export(srv, out, "2024-01-01", "2024-01-04")
    back = rf.read_parquet_dataset(out)
    assert len(back) == 12
    assert pads.dataset(out, partitioning="hive").count_rows() == 12


def test_day_that_comes_back_empty_removes_its_partition(server, tmp_path):
    out = tmp_path / "ds"
    export(server(tagged("v1")), out, "2024-01-01", "2024-01-04")
    # The new server has nothing for 2024-01-03.
    srv2 = server(tagged("v2", days=["2024-01-02", "2024-01-04"]))
    s = export(srv2, out, "2024-01-02", "2024-01-03")
    assert s.rows == 3
    assert not (out / "date=2024-01-03").exists()
    back = rf.read_parquet_dataset(out)
    days = by_day(back)
    assert set(days) == {"2024-01-01", "2024-01-02", "2024-01-04"}
    assert days["2024-01-02"] == {("v2", i) for i in range(3)}
    assert days["2024-01-04"] == {("v1", i) for i in range(3)}
    assert stray(tmp_path) == []


@pytest.mark.parametrize("concurrency", [1, 4])
def test_failing_day_keeps_old_partitions(server, tmp_path, concurrency):
    out = tmp_path / "ds"
    export(server(tagged("v1")), out, "2024-01-01", "2024-01-04")
    before = {d: digest(out, d) for d in DAYS}
    srv2 = server(tagged("v2"))
    srv2.add_fault(
        Fault(status=400, message="bad day", match=lambda p: p["from_date"] == "2024-01-03")
    )
    with pytest.raises(rf.APIError) as info:
        export(
            srv2, out, "2024-01-01", "2024-01-04", concurrency=concurrency, max_retries=0,
            window_days=1,
        )  # fmt: skip
    assert "2024-01-03" in str(info.value)
    assert info.value.status_code == 400
    assert digest(out, "2024-01-03") == before["2024-01-03"]
    back = rf.read_parquet_dataset(out)
    days = by_day(back)
    assert days["2024-01-03"] == {("v1", i) for i in range(3)}
    for d in ("2024-01-01", "2024-01-02", "2024-01-04"):
        # Each other day is entirely old or entirely new, never a mix.
        assert days[d] in ({("v1", i) for i in range(3)}, {("v2", i) for i in range(3)})
    if concurrency == 1:
        # One download at a time, days handed on in order: 01 is written before 03
        # fails; 04 (after the failing day) never is.
        assert days["2024-01-01"] == {("v2", i) for i in range(3)}
        assert digest(out, "2024-01-04") == before["2024-01-04"]
    assert len(back) == 12
    assert stray(tmp_path) == []


def test_failing_parse_keeps_old_partition(server, tmp_path):
    out = tmp_path / "ds"
    export(server(tagged("v1")), out, "2024-01-01", "2024-01-02")
    before = digest(out, "2024-01-02")
    srv2 = server(tagged("v2"))
    srv2.add_fault(
        Fault(
            raw_body=b'{"event":"a","properties":{"time":1704153600}}\n{broken\n',
            match=lambda p: p["from_date"] == "2024-01-02",
        )
    )
    with pytest.raises(rf.ParseError) as info:
        export(srv2, out, "2024-01-02", "2024-01-02")
    assert "2024-01-02" in str(info.value)
    assert info.value.line_number == 2
    assert digest(out, "2024-01-02") == before
    assert stray(tmp_path) == []


# ------------------------------------------------------------------ leftovers


def test_no_stray_files_after_success(server, tmp_path):
    srv = server(generate_events(40, days=4))
    export(srv, tmp_path / "ds", "2024-01-01", "2024-01-04")
    export(srv, tmp_path / "ds", "2024-01-02", "2024-01-03", partition_by=("date",))
    assert stray(tmp_path) == []
    assert [p.name for p in (tmp_path / "ds").iterdir() if p.is_file()] == []


def test_no_hidden_sibling_folder_after_success(server, tmp_path):
    srv = server(generate_events(10, days=1))
    export(srv, tmp_path / "ds", "2024-01-01", "2024-01-01")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_no_stray_files_after_truncated_download(server, tmp_path):
    out = tmp_path / "ds"
    srv = server(tagged("v1"))
    export(srv, out, "2024-01-01", "2024-01-02")
    srv.add_fault(Fault(truncate_at=30, times=5))
    with pytest.raises(rf.IncompleteDownloadError):
        export(srv, out, "2024-01-01", "2024-01-01", max_retries=0)
    assert stray(tmp_path) == []
    assert len(rf.read_parquet_dataset(out)) == 6


# ------------------------------------------------------------------ schema evolution

EVOLVING = [
    # day 1: a int, f int, only1 bool
    ev("x", lsec("2024-01-01", 1), a=3, f=1, only1=True),
    ev("x", lsec("2024-01-01", 2), a=4, f=2),
    # day 2: a string, f float, only2 list
    ev("y", lsec("2024-01-02", 1), a="three", f=1.5, only2=["p", "q"]),
    # day 3: a object, no f
    ev("z", lsec("2024-01-03", 1), a={"k": "ü"}, only3=7),
]


def _check_evolved(out: Path) -> None:
    back = rf.read_parquet_dataset(out)
    assert len(back) == 4
    assert isinstance(back["properties.a"].dtype, pd.StringDtype)
    assert back["properties.a"].tolist() == ["3", "4", "three", '{"k":"ü"}']
    assert back["properties.f"].dtype == pd.Float64Dtype()
    assert back["properties.f"].tolist()[:3] == [1.0, 2.0, 1.5]
    assert pd.isna(back["properties.f"].tolist()[3])
    assert back["properties.only1"].dtype == pd.BooleanDtype()
    assert back["properties.only1"].isna().tolist() == [False, True, True, True]
    assert back["properties.only2"].tolist()[2] == ["p", "q"]
    assert back["properties.only3"].tolist()[3] == 7
    assert back["event"].tolist() == ["x", "x", "y", "z"]

    # Plain readers read every row.
    assert len(pd.read_parquet(out)) == 4
    table = pads.dataset(out, partitioning="hive").to_table()
    assert table.num_rows == 4
    con = duckdb.connect()
    try:
        glob = str(out / "**" / "*.parquet")
        n = con.execute(
            "SELECT count(*) FROM read_parquet(?, hive_partitioning=true)", [glob]
        ).fetchone()
        assert n is not None
        assert n[0] == 4
        rows = con.execute(
            'SELECT "properties.a" FROM read_parquet(?, hive_partitioning=true, '
            'union_by_name=true) ORDER BY "time"',
            [glob],
        ).fetchall()
        assert [r[0] for r in rows] == ["3", "4", "three", '{"k":"ü"}']
    finally:
        con.close()


def test_types_unify_across_days_in_one_export(server, tmp_path):
    out = tmp_path / "ds"
    export(server(EVOLVING), out, "2024-01-01", "2024-01-03")
    _check_evolved(out)


def test_types_unify_across_separate_exports(server, tmp_path):
    out = tmp_path / "ds"
    srv = server(EVOLVING)
    for d in ("2024-01-01", "2024-01-02", "2024-01-03"):
        export(srv, out, d, d)
    _check_evolved(out)


def test_types_unify_when_wider_day_comes_first(server, tmp_path):
    out = tmp_path / "ds"
    srv = server(EVOLVING)
    for d in ("2024-01-03", "2024-01-02", "2024-01-01"):
        export(srv, out, d, d)
    _check_evolved(out)


def test_plain_readers_see_one_type_per_column(server, tmp_path):
    out = tmp_path / "ds"
    srv = server(EVOLVING)
    for d in ("2024-01-01", "2024-01-02"):
        export(srv, out, d, d)
    types = {
        str(f.relative_to(out)): pq.read_schema(f).field("properties.a").type
        for f in out.rglob("*.parquet")
    }
    assert set(types.values()) == {pa.string()}, types
    f_types = {pq.read_schema(f).field("properties.f").type for f in out.rglob("*.parquet")}
    assert f_types == {pa.float64()}


# ------------------------------------------------------------------ reading back with filters


def test_read_parquet_dataset_filters(server, tmp_path):
    out = tmp_path / "ds"
    export(server(tagged("v1")), out, "2024-01-01", "2024-01-04")
    df = rf.read_parquet_dataset(out, from_date="2024-01-02", to_date="2024-01-03")
    assert sorted(set(df["properties.day"])) == ["2024-01-02", "2024-01-03"]
    assert len(df) == 6
    df = rf.read_parquet_dataset(out, from_date=dt.date(2024, 1, 4))
    assert set(df["properties.day"]) == {"2024-01-04"}
    df = rf.read_parquet_dataset(out, to_date="2024-01-01")
    assert set(df["properties.day"]) == {"2024-01-01"}
    df = rf.read_parquet_dataset(out, columns=["properties.i", "time"])
    assert list(df.columns) == ["properties.i", "time"]
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert len(df) == 12
    df = rf.read_parquet_dataset(out, event="e1")
    assert set(df["event"]) == {"e1"}
    assert len(df) == 4
    df = rf.read_parquet_dataset(out, event=["e0", "e1"], columns=["properties.i"])
    assert list(df.columns) == ["properties.i"]
    assert len(df) == 12
    t = rf.read_parquet_dataset(out, return_type="arrow", from_date="2024-01-04")
    assert isinstance(t, pa.Table)
    assert t.num_rows == 3
    assert t.schema.field("time").type == pa.timestamp("us", tz="UTC")
    empty = rf.read_parquet_dataset(out, from_date="2025-01-01")
    assert len(empty) == 0
    assert list(empty.columns[:2]) == ["event", "time"]


def test_read_parquet_dataset_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        rf.read_parquet_dataset(tmp_path / "missing")
    (tmp_path / "ds").mkdir()
    with pytest.raises(ValueError):
        rf.read_parquet_dataset(tmp_path / "ds", from_date="2024-01-03", to_date="2024-01-01")
    with pytest.raises(ValueError):
        rf.read_parquet_dataset(tmp_path / "ds", event=[])


# ------------------------------------------------------------------ metadata


def test_metadata_records_dates_tz_version_and_never_the_secret(server, tmp_path, secret):
    tz = "Asia/Kathmandu"
    srv = server(generate_events(20, days=2, project_timezone=tz), project_timezone=tz)
    out = tmp_path / "ds"
    export(srv, out, "2024-01-01", "2024-01-02", project_timezone=tz)
    files = [out / f for f in data_files(out)]
    assert len(files) == 2
    for f in files:
        meta = pq.read_metadata(f).metadata
        assert meta is not None
        info = json.loads(meta[b"robotmia_frames"])
        assert info["from_date"] == "2024-01-01"
        assert info["to_date"] == "2024-01-02"
        assert info["project_timezone"] == tz
        assert rf.__version__ in info["library"]
        assert info["day"] == f.parent.name[len("date=") :]
        blob = b"".join(k + v for k, v in meta.items())
        assert secret.encode() not in blob
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p


def test_a_narrow_days_chunks_are_joined_four_to_a_row_group(tmp_path: Path) -> None:
    """Chunks of 16,384 rows (a narrow day's) are written four to a row group: one
    dictionary and one compression context per column for 65,536 rows, not four."""
    from robotmia_frames.sinks import ParquetDataset, locate

    ds = ParquetDataset(locate(str(tmp_path / "ds")))
    n = 16_384
    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([("time", ts), ("event", pa.string()), ("properties.n", pa.int64())])
    chunks = [
        pa.record_batch(
            [pa.array(range(i * n, (i + 1) * n), ts), pa.array(["e"] * n), pa.array(range(n))],
            schema=schema,
        )
        for i in range(5)
    ]
    result = ds.write_day(dt.date(2024, 1, 1), schema, iter(chunks))
    assert result.rows == 5 * n
    (path,) = ds.files()
    meta = pq.ParquetFile(ds.location.fs.open(path)).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4 * n, n]
