"""``export_to_parquet`` takes ``read_robotmia_export``'s keywords (less ``parquet_path``
and ``return_type``), each with a meaning for a dataset: real exports from the
emulator into real Parquet folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import generate_events

from .conftest import ServerFactory


def _export(srv: Any, out: Path, **options: Any) -> rf.ExportSummary:
    return rf.export_to_parquet(
        out, "2024-01-01", "2024-01-03", api_secret=srv.api_secret, project_timezone="UTC",
        base_url=srv.url, progress=False, **options,
    )  # fmt: skip


def test_columns_writes_only_those(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    s = _export(srv, tmp_path / "ds", columns=["event", "time", "$os"])
    assert s.rows == 60
    for f in sorted((tmp_path / "ds").rglob("*.parquet")):
        assert pq.read_schema(f).names == ["event", "time", "properties.$os"]
    t = rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow")
    assert set(t.column_names) == {"event", "time", "properties.$os"}
    full = rf.read_robotmia_export(
        "2024-01-01", "2024-01-03", api_secret=srv.api_secret, project_timezone="UTC",
        base_url=srv.url, progress=False, columns=["event", "time", "$os"], return_type="arrow",
    )  # fmt: skip
    key = ["time", "event", "properties.$os"]
    assert (
        t.select(key)
        .sort_by([(c, "ascending") for c in key])
        .equals(full.select(key).sort_by([(c, "ascending") for c in key]))
    )


def test_unknown_column_is_named(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(30, days=3), project_timezone="UTC")
    with pytest.raises(rf.InvalidArgumentError, match=r"unknown column 'properties\.nope'"):
        _export(srv, tmp_path / "ds", columns=["event", "properties.nope"])
    with pytest.raises(rf.InvalidArgumentError, match=r"did you mean 'properties\.nope'"):
        _export(srv, tmp_path / "ds2", columns=["nope"])


def test_dtype_backend_is_checked_and_changes_nothing(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate_events(30, days=3), project_timezone="UTC")
    _export(srv, tmp_path / "a")
    _export(srv, tmp_path / "b", dtype_backend="pyarrow")
    a = rf.read_parquet_dataset(tmp_path / "a", return_type="arrow")
    b = rf.read_parquet_dataset(tmp_path / "b", return_type="arrow")
    assert a.equals(b)
    with pytest.raises(rf.InvalidArgumentError, match="dtype_backend"):
        _export(srv, tmp_path / "c", dtype_backend="numpy")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.parquet"))


def test_split_by_event_is_the_event_layout(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    s = _export(srv, tmp_path / "split", split_by="event")
    _export(srv, tmp_path / "parts", partition_by=("date", "event"))
    split = sorted(
        p.relative_to(tmp_path / "split") for p in (tmp_path / "split").rglob("*.parquet")
    )
    parts = sorted(
        p.relative_to(tmp_path / "parts") for p in (tmp_path / "parts").rglob("*.parquet")
    )
    assert split == parts
    assert all(p.parts[1].startswith("event=") for p in split)
    for p in split:  # each event's files: that event's columns, as partition_by writes
        assert (
            pq.read_schema(tmp_path / "split" / p).names
            == pq.read_schema(tmp_path / "parts" / p).names
        )
    assert rf.read_parquet_dataset(tmp_path / "split", return_type="arrow").num_rows == s.rows == 60


def test_split_by_with_another_partition_by_names_both(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate_events(10, days=1), project_timezone="UTC")
    with pytest.raises(
        rf.InvalidArgumentError, match=r"split_by='event'.*partition_by=\('event',\)"
    ):
        _export(srv, tmp_path / "ds", split_by="event", partition_by=("event",))
    with pytest.raises(rf.InvalidArgumentError, match="split_by"):
        _export(srv, tmp_path / "ds", split_by="date")


def test_sparse_columns_map_is_refused_clearly(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(10, days=1), project_timezone="UTC")
    with pytest.raises(rf.InvalidArgumentError, match=r"sparse_columns='map'.*sparse_columns=None"):
        _export(srv, tmp_path / "ds", sparse_columns="map")
    with pytest.raises(rf.InvalidArgumentError, match="sparse_threshold"):
        _export(srv, tmp_path / "ds", sparse_threshold=2.0)
    _export(srv, tmp_path / "ok", sparse_threshold=0.5)  # checked, valid


def test_max_memory_checks_each_day(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(300, days=3), project_timezone="UTC")
    with pytest.raises(rf.MemoryBudgetError, match="writing one day") as err:
        _export(srv, tmp_path / "small", max_memory=1)
    assert "max_memory=None" in str(err.value)
    assert not list((tmp_path / "small").rglob("*.parquet"))  # no day was written
    s = _export(srv, tmp_path / "off", max_memory=None)
    assert s.rows == 300
    with pytest.raises(rf.InvalidArgumentError, match="max_memory"):
        _export(srv, tmp_path / "bad", max_memory=-5)


@pytest.mark.parametrize(
    "options",
    [
        {"columns": ["$os"], "split_by": "event"},  # the event is in the folder names
        {"columns": ["time", "$os"], "limit": 7},  # the last day, empty, records the run
        {"columns": ["$os"], "dedupe": True},  # the dedupe keys are parsed, not written
    ],
)
def test_columns_hold_with_other_options(
    server: ServerFactory, tmp_path: Path, options: dict[str, Any]
) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    s = _export(srv, tmp_path / "ds", **options)
    wanted = {"properties.$os", *(["time"] if "time" in options["columns"] else [])}
    files = sorted((tmp_path / "ds").rglob("*.parquet"))
    assert files
    for f in files:
        assert set(pq.read_schema(f).names) == wanted, f
    t = rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow")
    assert t.num_rows == s.rows == options.get("limit", 60)
    if "split_by" in options:  # each row is read back under its event
        assert t.column("event").null_count == 0
