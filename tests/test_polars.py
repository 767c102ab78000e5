"""``return_type="polars"``: the same table as ``"arrow"``, as a polars DataFrame."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import generate_events
from tests.conftest import ServerFactory

pl = pytest.importorskip("polars")

LINES = (
    '{"event":"a","properties":{"time":1704067200,"n":1,"x":1.5,"s":"u"}}\n'
    '{"event":"b","properties":{"time":1704070800,"n":2,"ok":true}}\n'
)


def export_file(tmp_path: Path) -> Path:
    p = tmp_path / "export.jsonl"
    p.write_text(LINES)
    return p


def same(frame: Any, table: pa.Table) -> None:
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == table.column_names
    assert frame.to_arrow().to_pylist() == table.to_pylist()


def test_read_export_file_polars_matches_arrow(tmp_path: Path) -> None:
    p = export_file(tmp_path)
    table = rf.read_export_file(p, project_timezone="Europe/Paris", return_type="arrow")
    frame = rf.read_export_file(p, project_timezone="Europe/Paris", return_type="polars")
    same(frame, table)
    assert frame.schema["time"] == pl.Datetime("us", "UTC")
    assert frame.schema["properties.n"] == pl.Int64
    assert frame.schema["properties.ok"] == pl.Boolean


def test_export_and_dataset_polars(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(40, days=2))
    client = rf.Client(api_secret=srv.api_secret, project_timezone="UTC", base_url=srv.url)
    table = client.read_robotmia_export("2024-01-01", "2024-01-02", return_type="arrow")
    frame = client.read_robotmia_export("2024-01-01", "2024-01-02", return_type="polars")
    same(frame, table)
    client.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-02")
    back = rf.read_parquet_dataset(tmp_path / "ds", return_type="polars")
    same(back, rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow"))
    assert back.height == 40


def test_profiles_polars(server: ServerFactory) -> None:
    srv = server(generate_profiles=5)
    frame = rf.read_robotmia_profiles(
        api_secret=srv.api_secret,
        project_timezone="UTC",
        base_url=srv.engage_url,
        output_properties=["plan"],
        return_type="polars",
    )
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["distinct_id", "properties.plan"]
    assert frame.height == 5


def test_polars_shares_the_arrow_buffers() -> None:
    """``polars.from_arrow`` keeps the Arrow memory: no copy of a numeric column."""
    from robotmia_frames._pipeline import deliver

    table = pa.table({"properties.n": pa.array(range(1000), pa.int64())})
    frame = deliver(table, "polars", "numpy_nullable")
    theirs = frame["properties.n"].to_arrow()
    ours = table.column(0).chunk(0)
    assert theirs.buffers()[1].address == ours.buffers()[1].address


def test_without_polars_the_error_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # as if it were not installed
    with pytest.raises(rf.InvalidArgumentError, match="pip install polars"):
        rf.read_export_file(export_file(tmp_path), project_timezone="UTC", return_type="polars")


def test_unknown_return_type_lists_polars(tmp_path: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError, match="'pandas', 'arrow' or 'polars'"):
        rf.read_export_file(export_file(tmp_path), project_timezone="UTC", return_type="df")  # type: ignore[call-overload]
