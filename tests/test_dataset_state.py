"""One dataset state (issue 14): kept in the data files' footers, read by export and
sync alike, never a file that a reader of the folder trips on; one writer at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames import _pipeline, sinks
from robotmia_frames.emulator import generate_events
from tests.conftest import SECRET, ServerFactory, errors_at_once, local_seconds


def _events(days: list[str], per_day: int = 3, tag: str = "a") -> list[dict[str, Any]]:
    return [
        {
            "event": "e",
            "properties": {
                "time": int(local_seconds(day, 60 * i + 1)),
                "distinct_id": f"u{i}",
                "$insert_id": f"{tag}-{day}-{i}",
                "n": i,
            },
        }
        for day in days
        for i in range(per_day)
    ]


def _kw(srv: Any, **extra: Any) -> dict[str, Any]:
    return dict(api_secret=SECRET, base_url=srv.url, progress=False, **extra)


def _every_reader(out: Path, rows: int) -> None:
    """Every reader reads every row of the folder."""
    assert len(rf.read_parquet_dataset(out)) == rows
    assert len(pd.read_parquet(out)) == rows
    assert pads.dataset(out, partitioning="hive").count_rows() == rows
    assert pl.read_parquet(out).height == rows
    assert pl.scan_parquet(out, hive_partitioning=True).collect().height == rows
    assert pl.read_parquet(f"{out}/**/*.parquet").height == rows
    got = (
        duckdb.connect()
        .execute(f"select count(*) from read_parquet('{out}/**/*.parquet', hive_partitioning=true)")
        .fetchall()
    )
    assert got == [(rows,)]


def test_synced_dataset_holds_only_parquet_and_every_reader_reads_it(
    server: ServerFactory, tmp_path: Path
) -> None:
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    srv = server(_events(days), project_timezone="UTC")
    out = tmp_path / "ds"
    rf.sync_to_parquet(out, "2024-01-01", "2024-01-04", project_timezone="UTC", **_kw(srv))
    rf.export_to_parquet(out, "2024-01-02", "2024-01-02", **_kw(srv))  # tz from the dataset
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".parquet" for p in files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    _every_reader(out, 9)


def test_state_is_in_the_footers(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(_events(["2024-01-01", "2024-01-02"]), project_timezone="UTC")
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-03", project_timezone="UTC", **_kw(srv))
    footer = json.loads(
        pq.read_schema(out / "date=2024-01-02" / "part-0.parquet").metadata[b"robotmia_frames"]
    )
    assert footer["project_timezone"] == "UTC"
    assert footer["day"] == "2024-01-02"
    assert dt.datetime.fromisoformat(footer["written_at"]).tzinfo is not None
    # the run's range is recorded (2024-01-03 came back empty: it has no file)
    assert footer["complete"] == [["2024-01-01", "2024-01-03"]]
    assert not (out / "date=2024-01-03").exists()
    state = _pipeline.dataset_state(sinks.locate(out))
    assert state.project_timezone == "UTC"
    assert state.done_through(dt.date(2024, 1, 1)) == dt.date(2024, 1, 3)
    # the state travels with a copied folder
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in out.rglob("*.parquet"):
        target = copy / p.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.read_bytes())
    assert _pipeline.dataset_state(sinks.locate(copy)) == state


def test_sync_takes_the_timezone_of_the_dataset(server: ServerFactory, tmp_path: Path) -> None:
    tz = "America/Los_Angeles"
    srv = server(_events(["2024-01-01", "2024-01-02"]), project_timezone=tz)
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", project_timezone=tz, **_kw(srv))
    s = rf.sync_to_parquet(out, "2024-01-01", "2024-01-03", **_kw(srv))  # no timezone given
    assert s.rows == 6
    back = rf.read_parquet_dataset(out, return_type="arrow")
    local = back.column("time").to_pandas().dt.tz_convert(tz).dt.date.astype(str)
    assert sorted(set(local)) == ["2024-01-01", "2024-01-02"]


@pytest.mark.parametrize("fn", ["sync_to_parquet", "export_to_parquet", "read_robotmia_export"])
def test_another_timezone_is_refused_before_any_request(
    server: ServerFactory, tmp_path: Path, fn: str
) -> None:
    srv = server(_events(["2024-01-01"]), project_timezone="America/Los_Angeles")
    out = tmp_path / "ds"
    rf.export_to_parquet(
        out, "2024-01-01", "2024-01-01", project_timezone="America/Los_Angeles", **_kw(srv)
    )
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    srv.clear_requests()
    kw = _kw(srv, project_timezone="Europe/Paris")
    with pytest.raises(rf.InvalidArgumentError) as info:
        if fn == "read_robotmia_export":
            rf.read_robotmia_export("2024-01-02", "2024-01-02", parquet_path=out, **kw)
        else:
            getattr(rf, fn)(out, "2024-01-02", "2024-01-02", **kw)
    message = str(info.value)
    assert "'America/Los_Angeles'" in message and "'Europe/Paris'" in message
    assert "project_timezone='America/Los_Angeles'" in message  # the way out
    assert srv.requests == []
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == before


def test_sync_knows_the_days_export_wrote(server: ServerFactory, tmp_path: Path) -> None:
    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    srv = server(_events(days, per_day=1), project_timezone="UTC")
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-10", project_timezone="UTC", **_kw(srv))
    srv.clear_requests()
    s = rf.sync_to_parquet(out, "2024-01-01", "2024-01-12", lookback_days=2, **_kw(srv))
    assert s.from_date == dt.date(2024, 1, 8)
    assert sorted(r.params["from_date"] for r in srv.requests)[0] == "2024-01-08"
    assert len(rf.read_parquet_dataset(out)) == 10


def test_trailing_empty_days_count_as_synced(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(_events(["2024-01-10"], per_day=2), project_timezone="UTC")
    kw = _kw(srv, project_timezone="UTC")
    rf.sync_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-20", **kw)
    s = rf.sync_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-21", lookback_days=2, **kw)
    assert s.from_date == dt.date(2024, 1, 18)


def test_days_after_today_are_never_done(server: ServerFactory, tmp_path: Path) -> None:
    tz = "Pacific/Kiritimati"  # UTC+14: "today" is the project's, not the machine's
    today = dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()
    srv = server([], project_timezone=tz)
    kw = _kw(srv, project_timezone=tz)
    out = tmp_path / "ds"
    rf.sync_to_parquet(out, today - dt.timedelta(days=1), today + dt.timedelta(days=3), **kw)
    state = _pipeline.dataset_state(sinks.locate(out))
    assert not state.done(today + dt.timedelta(days=1))
    srv.clear_requests()
    s = rf.sync_to_parquet(
        out, today - dt.timedelta(days=1), today + dt.timedelta(days=3), lookback_days=0, **kw
    )
    # today may have ended meanwhile; never later than that
    assert s.from_date is not None and s.from_date <= today + dt.timedelta(days=1)
    assert (
        min(r.params["from_date"] for r in srv.requests)
        <= (today + dt.timedelta(days=1)).isoformat()
    )


def test_a_second_writer_waits_then_fails_and_keeps_the_first_ones_work(
    server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server(generate_events(20, days=2), project_timezone="UTC")
    out = tmp_path / "ds"
    kw = _kw(srv, project_timezone="UTC")
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", **kw)
    location = sinks.locate(out)
    staging = sinks.ParquetDataset(location).staging
    monkeypatch.setenv(sinks.LOCK_TIMEOUT_ENV, "0.2")
    srv.clear_requests()
    with sinks.writer_lock(location):
        # the first writer is mid-day: its staging folder holds a day in progress
        (staging / "in-progress").mkdir(parents=True)
        (staging / "in-progress" / "part-0.parquet").write_bytes(b"partial")
        with pytest.raises(rf.InvalidArgumentError, match="being written by another process"):
            rf.export_to_parquet(out, "2024-01-01", "2024-01-02", **kw)
        with pytest.raises(rf.InvalidArgumentError, match="ROBOTMIA_LOCK_TIMEOUT"):
            rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", **kw)
        assert (staging / "in-progress" / "part-0.parquet").read_bytes() == b"partial"
        assert srv.requests == []
    # the lock file is never inside the dataset nor beside it
    assert [p for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet"] == []
    assert not sinks.lock_path(location).is_relative_to(tmp_path)


def test_two_writers_at_once_both_finish(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    out = tmp_path / "ds"
    kw = _kw(srv, project_timezone="UTC")
    errors = errors_at_once(lambda: rf.export_to_parquet(out, "2024-01-01", "2024-01-03", **kw))
    assert errors == []
    _every_reader(out, 60)


def test_legacy_sync_state_is_read_then_moved_out_of_the_folder(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_events(["2024-01-01", "2024-01-02"]), project_timezone="UTC")
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", project_timezone="UTC", **_kw(srv))
    legacy = out / "_robotmia" / "sync.json"
    legacy.parent.mkdir()
    legacy.write_text(
        json.dumps(
            {
                "last_day": "2024-01-05",
                "metadata": {"project_timezone": "UTC", "from_date": "2024-01-01"},
            }
        )
    )
    s = rf.sync_to_parquet(out, "2024-01-01", "2024-01-06", lookback_days=1, **_kw(srv))
    assert s.from_date == dt.date(2024, 1, 4)
    assert not (out / "_robotmia").exists()
    _every_reader(out, 6)
