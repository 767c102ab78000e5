"""Where a local day is staged: always on the dataset's own filesystem, so that the
``rename`` that swaps it in never fails with ``EXDEV`` (a dataset folder that is its
own mount point, such as a Docker volume, stages inside itself).

A test cannot mount a filesystem; it watches where the day's file is while it is
being written, and checks the place chosen for a dataset folder that is a mount point.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from robotmia_frames.sinks import ParquetDataset
from robotmia_frames.sinks._dataset import staging_folder

DAY = dt.date(2024, 1, 2)
TABLE = pa.table(
    {
        "event": ["a", "b"],
        "time": pa.array([0, 1], pa.timestamp("us", tz="UTC")),
        "properties.x": [1, 2],
    }
)


def _write_watching(ds: ParquetDataset) -> tuple[list[Path], list[dt.date], list[str]]:
    """Write one day; return the Parquet files that existed, anywhere near the dataset,
    while the day was being written (between its two batches), and the dataset's days
    and data files as its readers saw them then."""
    seen: list[Path] = []
    during: list[dt.date] = []
    files: list[str] = []
    devices: set[int] = set()
    top = Path(ds.root).parent

    def batches() -> Iterator[pa.RecordBatch]:
        first, second = TABLE.to_batches(max_chunksize=1)
        yield first
        seen.extend(top.rglob("*.parquet"))
        devices.update(os.stat(p).st_dev for p in seen)
        during.extend(ParquetDataset(ds.root).days())
        files.extend(ParquetDataset(ds.root).files())
        yield second

    assert ds.write_day(DAY, TABLE.schema, batches()).rows == 2
    assert devices == {os.stat(ds.root).st_dev}  # staged on the dataset's filesystem
    return seen, during, files


def test_a_day_is_staged_beside_the_dataset_on_its_filesystem(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ds = ParquetDataset(root)
    assert ds.staging == tmp_path / ".ds.robotmia-staging"
    seen, during, _ = _write_watching(ds)
    assert during == []
    assert len(seen) == 1  # the day in progress, staged
    (staged,) = seen
    assert staged.is_relative_to(ds.staging)
    assert not staged.is_relative_to(root)  # no reader of the folder sees it
    assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [
        "date=2024-01-02/part-0.parquet"
    ]
    assert not ds.staging.exists()  # removed once the day is in


def test_a_dataset_folder_that_is_a_mount_point_stages_inside_itself(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    # a mount point's parent is another filesystem (or not writable): stage inside it
    inside = staging_folder(root, beside_ok=False)
    assert inside == root / ".robotmia-staging"
    assert inside.parent == root and inside.name.startswith(".")

    class MountPoint(ParquetDataset):
        """The dataset as it is placed when ``root`` is a mount point."""

        @property
        def staging(self) -> Path:
            return inside

    ds = MountPoint(root)
    seen, during, files_during = _write_watching(ds)
    (staged,) = seen
    assert staged.is_relative_to(inside)  # inside the dataset folder: the same filesystem
    assert during == [] and files_during == []  # the library's readers skip it
    assert ds.days() == [DAY]
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert files == ["date=2024-01-02/part-0.parquet"]  # staging gone once the day is in
    assert pq.read_table(root / "date=2024-01-02" / "part-0.parquet").num_rows == 2
