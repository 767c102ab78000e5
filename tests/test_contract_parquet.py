"""design.md §4 "Parquet datasets": plain readers read every row of the folder, the
library's reader every column, for a dataset partitioned by date and event too
(whose files hold only their event's columns, see docs/parquet.md#layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pytest

import robotmia_frames as rf
from tests.conftest import SECRET, ServerFactory, local_seconds
from tests.test_cli import assert_one_line_error, run_cli

EVENTS = [
    {"event": "Sign up", "properties": {"time": local_seconds("2024-01-01", 60), "plan": "pro"}},
    {"event": "Buy/é", "properties": {"time": local_seconds("2024-01-01", 120), "amount": 3}},
    {"event": "Buy/é", "properties": {"time": local_seconds("2024-01-02", 60), "amount": 4.5}},
    {"event": None, "properties": {"time": local_seconds("2024-01-02", 90), "odd": True}},
]


def _export_by_event(url: str, out: Path, **options: Any) -> rf.ExportSummary:
    return rf.export_to_parquet(
        out,
        "2024-01-01",
        "2024-01-02",
        partition_by=("date", "event"),
        api_secret=SECRET,
        project_timezone="UTC",
        base_url=url,
        **options,
    )


@pytest.fixture
def event_dataset(server: ServerFactory, tmp_path: Path) -> Path:
    srv = server(EVENTS)
    out = tmp_path / "events"
    summary = _export_by_event(srv.url, out)
    assert summary.rows == len(EVENTS)
    return out


def test_contract_event_partitions_plain_readers_read_every_row(event_dataset: Path) -> None:
    folder = str(event_dataset)
    rows = len(EVENTS)
    assert pads.dataset(folder, format="parquet", partitioning="hive").count_rows() == rows
    scanned = pl.scan_parquet(
        folder, hive_partitioning=True, missing_columns="insert", extra_columns="ignore"
    ).collect()
    assert scanned.height == rows
    assert sorted(scanned["event"].to_list(), key=str) == sorted(
        (e["event"] for e in EVENTS), key=str
    )
    union = duckdb.sql(
        f"select * from read_parquet('{folder}/**/*.parquet', hive_partitioning = true, "
        "union_by_name = true)"
    ).df()
    assert len(union) == rows
    assert {"properties.plan", "properties.amount", "properties.odd"} <= set(union.columns)


def test_contract_event_partitions_own_reader_reads_every_column(event_dataset: Path) -> None:
    table = rf.read_parquet_dataset(event_dataset, return_type="arrow")
    assert table.num_rows == len(EVENTS)
    assert {"properties.plan", "properties.amount", "properties.odd"} <= set(table.column_names)
    assert sorted(table.column("properties.amount").drop_null().to_pylist()) == [3.0, 4.5]
    assert table.column("event").null_count == 1


def test_contract_event_partitions_without_null_names_read_by_pandas(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server([e for e in EVENTS if e["event"] is not None])
    out = tmp_path / "named"
    _export_by_event(srv.url, out)
    plain = pd.read_parquet(out)
    assert len(plain) == 3
    assert sorted(plain["event"].astype(str)) == ["Buy/é", "Buy/é", "Sign up"]


def test_contract_event_name_too_long_for_a_folder_is_a_clear_error(
    server: ServerFactory, tmp_path: Path
) -> None:
    long_name = "é" * 60  # 366 bytes as a URL-quoted folder name
    srv = server(
        [
            {"event": "short", "properties": {"time": local_seconds("2024-01-01", 60)}},
            {"event": long_name, "properties": {"time": local_seconds("2024-01-02", 60)}},
        ]
    )
    out = tmp_path / "events"
    with pytest.raises(rf.InvalidArgumentError, match=r"day 2024-01-02.*partition_by=\('date',\)"):
        _export_by_event(srv.url, out, window_days=1, concurrency=1)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["events/date=2024-01-01/event=short/part-0.parquet"]


def test_contract_one_layout_per_dataset(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(EVENTS)
    out = tmp_path / "events"
    rf.export_to_parquet(
        out, "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC", base_url=srv.url
    )
    sent = len(srv.requests)
    with pytest.raises(rf.InvalidArgumentError, match=r"partitioned by \('date',\)") as err:
        _export_by_event(srv.url, out)
    assert "Pass partition_by=('date',) without split_by='event'" in str(err.value)
    assert len(srv.requests) == sent  # refused before any request
    assert len(pd.read_parquet(out)) == len(rf.read_parquet_dataset(out)) == 2


def _refused_export(out: Path, day: str, *flags: str) -> str:
    """The one-line error of ``export DAY DAY --out OUT FLAGS``, refused (exit 2)
    before any request: its base URL answers nothing."""
    proc = run_cli(
        "export",
        day,
        day,
        "--out",
        str(out),
        *flags,
        "--timezone",
        "UTC",
        "--base-url",
        "http://127.0.0.1:9/api/2.0/export/",  # never asked: refused before any request
        env={"ROBOTMIA_API_SECRET": SECRET},
    )
    assert proc.returncode == 2, proc.stderr
    return assert_one_line_error(proc.stderr, SECRET)


def test_contract_one_layout_per_dataset_on_the_command_line(event_dataset: Path) -> None:
    line = _refused_export(event_dataset, "2024-01-01")
    assert "Pass --partition-by-event" in line and "partition_by" not in line


def test_contract_split_by_on_a_date_dataset_on_the_command_line(
    server: ServerFactory, tmp_path: Path
) -> None:
    out = tmp_path / "events"
    rf.export_to_parquet(
        out,
        "2024-01-01",
        "2024-01-01",
        api_secret=SECRET,
        project_timezone="UTC",
        base_url=server(EVENTS).url,
    )
    line = _refused_export(out, "2024-01-02", "--split-by", "event")
    assert "Leave out --partition-by-event and --split-by" in line
    words = line.replace(str(out), "PATH")  # the folder's name holds the test's name
    assert "split_by" not in words and "partition_by" not in words


def test_contract_one_table_format_per_dataset(server: ServerFactory, tmp_path: Path) -> None:
    pytest.importorskip("deltalake")
    srv = server(EVENTS)
    out = tmp_path / "events"
    rf.export_to_parquet(
        out, "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC", base_url=srv.url
    )
    sent = len(srv.requests)
    with pytest.raises(rf.InvalidArgumentError, match="is a Hive dataset"):
        rf.export_to_parquet(
            out,
            "2024-01-02",
            "2024-01-02",
            table_format="delta",
            api_secret=SECRET,
            project_timezone="UTC",
            base_url=srv.url,
        )
    assert len(srv.requests) == sent
    assert not (out / "_delta_log").exists()
    assert len(rf.read_parquet_dataset(out)) == 2
