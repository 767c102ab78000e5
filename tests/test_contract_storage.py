"""design.md §3 "Storage keywords": ``filesystem`` is a ``pyarrow.fs.FileSystem`` or an
fsspec filesystem and ``path`` a path inside it. Views of a local folder (pyarrow's
``SubTreeFileSystem``, fsspec's ``DirFileSystem``) are written and read like the
folder itself, a day at a time, each day swapped in whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pyarrow.fs as pafs
import pytest
from fsspec.implementations.dirfs import DirFileSystem

import robotmia_frames as rf
from tests.conftest import SECRET, ServerFactory, local_seconds


def _views(root: Path) -> dict[str, Any]:
    return {
        "pyarrow SubTreeFileSystem": pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem()),
        "fsspec DirFileSystem": DirFileSystem(str(root), fs=fsspec.filesystem("file")),
        "nested SubTreeFileSystem": pafs.SubTreeFileSystem(
            "inner", pafs.SubTreeFileSystem(str(root.parent), pafs.LocalFileSystem())
        ),
    }


@pytest.mark.parametrize(
    "kind", ["pyarrow SubTreeFileSystem", "fsspec DirFileSystem", "nested SubTreeFileSystem"]
)
def test_contract_filesystem_view_of_a_local_folder(
    server: ServerFactory, tmp_path: Path, kind: str
) -> None:
    root = tmp_path / "inner"
    root.mkdir()
    fs = _views(root)[kind]
    events = [
        {"event": "e", "properties": {"time": local_seconds(day, 3600 * h), "n": h}}
        for day in ("2024-01-01", "2024-01-02")
        for h in range(3)
    ]
    srv = server(events)
    settings: dict[str, Any] = {
        "api_secret": SECRET,
        "project_timezone": "UTC",
        "base_url": srv.url,
        "filesystem": fs,
    }
    first = rf.export_to_parquet("events", "2024-01-01", "2024-01-02", **settings)
    again = rf.export_to_parquet("events", "2024-01-02", "2024-01-02", **settings)

    assert (first.rows, first.days, again.rows) == (6, 2, 3)
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert written == [
        "events/date=2024-01-01/part-0.parquet",
        "events/date=2024-01-02/part-0.parquet",
    ]
    table = rf.read_parquet_dataset("events", filesystem=fs, return_type="arrow")
    assert sorted(table.column("properties.n").to_pylist()) == [0, 0, 1, 1, 2, 2]
