"""robotmia_frames.dask on a real LocalCluster: 2 worker processes, over loopback.

The export server runs in this process; the workers reach it at 127.0.0.1. One
cluster serves every test of the module (starting one takes seconds).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")
pytest.importorskip("dask.dataframe")

import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import robotmia_frames as rf  # noqa: E402
import robotmia_frames.dask as rfd  # noqa: E402
from robotmia_frames import _pipeline, sinks  # noqa: E402
from robotmia_frames.emulator import ExportServer, Fault, GeneratorConfig  # noqa: E402
from tests.conftest import SECRET, ServerFactory, local_seconds, wait_until  # noqa: E402
from tests.test_wide import run_child, scanned_and_projected, wide_events  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """2 workers, 1 thread each, in their own processes (processes=True, with nannies).

    The client keeps no log of the messages it sent (a debugging aid of
    ``distributed`` that holds on to the futures inside them), so that a test's
    bodies are released with its DataFrames and a worker killed later does not
    fetch them again from servers long stopped.
    """
    with (
        dask.config.set({"distributed.admin.low-level-log-length": 0}),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",  # a free port: no clash with other runs
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(autouse=True)
def _idle_cluster_after(client: Any, server: ServerFactory) -> Iterator[None]:
    """Wait, before the test's servers stop, for tasks still running on the workers
    (a compute that raised leaves its running tasks to finish), so that no test
    finds a worker busy with another test's work."""
    yield
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        busy = client.run(
            lambda dask_worker: (
                len(dask_worker.state.executing) + len(dask_worker.state.long_running)
            )
        )
        if not any(busy.values()) and not any(client.processing().values()):
            break
        time.sleep(0.05)


def _kw(srv: ExportServer, **extra: Any) -> dict[str, Any]:
    return {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url, **extra}


def _footer(schema: Any) -> dict[str, Any]:
    """What a file records, less when it was written (which differs run to run)."""
    meta = dict(json.loads(schema.metadata[b"robotmia_frames"]))
    meta.pop("written_at")
    return meta


def _assert_same_dataset(got: Path, want: Path) -> None:
    """Same files, same per-file schemas (metadata included), same rows read back."""
    files = sorted(p.relative_to(want) for p in want.rglob("*.parquet"))
    assert files, "the reference dataset is empty"
    assert sorted(p.relative_to(got) for p in got.rglob("*.parquet")) == files
    for rel in files:
        mine, theirs = pq.read_schema(got / rel), pq.read_schema(want / rel)
        assert mine.equals(theirs)
        assert _footer(mine) == _footer(theirs)
    pd.testing.assert_frame_equal(rf.read_parquet_dataset(got), rf.read_parquet_dataset(want))
    leftovers = [p.name for p in got.parent.iterdir() if p.name.endswith("robotmia-staging")]
    assert not leftovers


def _assert_partitions_match_meta(ddf: Any) -> None:
    meta = dict(ddf.dtypes)
    for i in range(ddf.npartitions):
        part = ddf.get_partition(i).compute()
        assert list(part.columns) == list(ddf.columns)
        assert dict(part.dtypes) == meta


def _conflicting_events() -> list[dict[str, Any]]:
    """Types that change from day to day: int, then float, then string (and lists)."""

    def ev(name: str, day: str, n: int, **props: Any) -> dict[str, Any]:
        t = local_seconds(day, 3600 + n)
        return {"event": name, "properties": {"time": t, "$insert_id": f"id-{n}", **props}}

    return [
        ev("a", "2024-03-01", 1, x=1, tags=[1, 2], distinct_id="u1"),
        ev("b", "2024-03-01", 2, x=4, distinct_id="u2"),
        ev("b", "2024-03-02", 3, x=2.5, tags=["s"], flag=True),
        ev("a", "2024-03-02", 4, x=3),
        ev("a", "2024-03-03", 5, x="str", extra={"k": [1, None]}),
        ev("c", "2024-03-04", 6, flag=7, x=None),
    ]


# ------------------------------------------------------------------------ import


def test_base_package_does_not_import_dask() -> None:
    code = (
        "import sys, robotmia_frames, robotmia_frames.api, robotmia_frames.sinks\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_limiter_pickles_by_name_and_falls_back_outside_workers() -> None:
    limiter = rfd.ClusterRateLimiter(rf.RateLimit(per_hour=None, per_second=50, concurrent=1))
    copy = pickle.loads(pickle.dumps(limiter))
    assert (copy.name, copy.limit, copy.margin) == (limiter.name, limiter.limit, limiter.margin)
    with copy.slot():  # not on a worker: a plain per-process limiter
        pass
    assert copy.queries == 1
    with pytest.raises(ValueError, match="margin"):
        rfd.ClusterRateLimiter(margin=-1)
    with pytest.raises(ValueError, match="margin"):  # a wait without end is refused too
        rfd.ClusterRateLimiter(margin=float("inf"))


# ------------------------------------------------------------------ read exports


@pytest.mark.parametrize(("window_days", "requests"), [(1, 4), ("auto", 1)])
def test_read_export_equals_single_machine(
    client: Any, server: ServerFactory, window_days: Any, requests: int
) -> None:
    srv = server(
        generate=GeneratorConfig(events_per_day=400, seed=7, to_date="2024-01-03"),
    )
    kw = _kw(srv, window_days=window_days)
    ddf = rfd.read_robotmia_export("2024-01-01", "2024-01-04", **kw)  # the 4th day is empty
    assert ddf.npartitions == 4  # one partition per day, whatever the windows
    got = ddf.compute()
    # one download per window: the second pass reuses the days' bodies
    assert len(srv.requests) == requests
    want = rf.read_robotmia_export("2024-01-01", "2024-01-04", **kw)
    assert len(want) == 1200
    # row for row, in the same order: partitions are days, rows keep the body's order
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    by_id = got.sort_values("properties.$insert_id", ignore_index=True)
    pd.testing.assert_frame_equal(
        by_id, want.sort_values("properties.$insert_id", ignore_index=True)
    )
    assert dict(ddf.dtypes) == dict(got.dtypes) == dict(want.dtypes)
    _assert_partitions_match_meta(ddf)
    assert str(got["time"].dtype) == "datetime64[us, UTC]"


def test_window_target_bytes_sizes_the_cluster_windows_as_on_one_machine(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """A target smaller than two days' bodies: auto windows of one or two days, the
    same windows as one machine sends, and the same rows; a bad target is refused."""
    srv = server(generate=GeneratorConfig(events_per_day=300, seed=5))
    kw = _kw(srv, window_target_bytes=60_000)
    got = rfd.read_robotmia_export("2024-01-01", "2024-01-06", **kw).compute()
    cluster_windows = sorted(srv.windows())
    srv.clear_requests()
    want = rf.read_robotmia_export("2024-01-01", "2024-01-06", **kw)
    assert cluster_windows == sorted(srv.windows())
    assert len(cluster_windows) > 1  # not one 6-day window: the target cut them
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    srv.clear_requests()
    rfd.export_to_parquet(tmp_path, "2024-01-01", "2024-01-06", **kw)
    assert len(srv.windows()) > 1
    with pytest.raises(rf.InvalidArgumentError, match="window_target_bytes"):
        rfd.read_robotmia_export("2024-01-01", "2024-01-06", **_kw(srv, window_target_bytes=0))


def test_types_unified_across_partitions(client: Any, server: ServerFactory) -> None:
    srv = server(_conflicting_events())
    kw = _kw(srv)
    ddf = rfd.read_robotmia_export("2024-03-01", "2024-03-04", **kw)
    want = rf.read_robotmia_export("2024-03-01", "2024-03-04", **kw)
    assert str(ddf.dtypes["properties.x"]) == "string"  # decided by day 3, typed on day 1
    assert "properties.extra" in ddf.columns  # a column first seen on day 3
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), want)
    _assert_partitions_match_meta(ddf)

    columns = ["event", "properties.x", "properties.extra"]
    projected = rfd.read_robotmia_export("2024-03-01", "2024-03-04", columns=columns, **kw)
    assert list(projected.columns) == columns
    pd.testing.assert_frame_equal(
        projected.compute().reset_index(drop=True),
        rf.read_robotmia_export("2024-03-01", "2024-03-04", columns=columns, **kw),
    )
    unknown = ["event", "properties.nowhere"]
    with pytest.raises(rf.InvalidArgumentError, match="nowhere"):
        rfd.read_robotmia_export("2024-03-01", "2024-03-04", columns=unknown, **kw)
    with pytest.raises(rf.InvalidArgumentError, match="nowhere"):
        rf.read_robotmia_export("2024-03-01", "2024-03-04", columns=unknown, **kw)


def test_meta_sample_first(client: Any, server: ServerFactory) -> None:
    stable = server(generate=GeneratorConfig(events_per_day=50, seed=1))
    kw = _kw(stable, columns=["event", "time", "properties.distinct_id"])
    want = rf.read_robotmia_export("2024-01-01", "2024-01-06", **kw)
    for window_days, windows in ((1, 6), (2, 3), ("auto", 1)):
        stable.requests.clear()
        ddf = rfd.read_robotmia_export(
            "2024-01-01", "2024-01-06", meta_sample="first", window_days=window_days, **kw
        )
        assert len(stable.requests) == 1  # only the sample so far: the rest is lazy
        assert ddf.npartitions == 6
        got = ddf.compute().reset_index(drop=True)
        # each window once, for all its days (the sampled one is reused)
        assert len(stable.requests) == windows, window_days
        pd.testing.assert_frame_equal(got, want)

    changing = server(_conflicting_events())
    # sampled from the first window: with one-day windows, the first day alone
    lazy = rfd.read_robotmia_export(
        "2024-03-01",
        "2024-03-04",
        meta_sample="first",
        **_kw(changing, max_retries=0, window_days=1),
    )
    with pytest.raises(rfd.MetaMismatchError, match=r"window 2024-03-0\d.*meta_sample=\"all\""):
        lazy.compute()
    with pytest.raises(ValueError, match="meta_sample"):
        rfd.read_robotmia_export("2024-03-01", "2024-03-01", meta_sample="some", **_kw(changing))


def test_errors_reach_the_client(client: Any, server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=10))
    with pytest.raises(rf.AuthenticationError) as info:
        rfd.read_robotmia_export("2024-01-01", "2024-01-02", **_kw(srv, api_secret="wrong-secret"))
    assert "wrong-secret" not in str(info.value)
    bad = server(
        [{"event": "a", "properties": {"time": local_seconds("2024-01-02", 5)}}],
    )
    bad.add_fault(Fault(raw_body=b'{"event": "a", "properties": {"time": 1}}\n{oops\n', times=9))
    with pytest.raises(rf.ParseError, match=r"window 2024-01-0\d, line 2") as perr:
        rfd.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-02", **_kw(bad))
    assert not list((tmp_path / "ds").glob("date=*"))  # a failed first pass writes nothing
    assert perr.value.line_number == 2
    with pytest.raises(ValueError, match="from_date"):  # checked before anything is sent
        rfd.read_robotmia_export("2024-01-02", "2024-01-01", **_kw(srv))


# ---------------------------------------------------------------------- datasets


@pytest.mark.parametrize("partition_by", [("date",), ("date", "event")])
def test_export_identical_to_single_machine(
    client: Any, server: ServerFactory, tmp_path: Path, partition_by: tuple[str, ...]
) -> None:
    # fewer events when partitioned by event: a file per (day, event) makes it slow
    per_day = 300 if partition_by == ("date",) else 80
    srv = server(generate=GeneratorConfig(events_per_day=per_day, seed=11))
    kw = _kw(srv, partition_by=partition_by)
    got = rfd.export_to_parquet(tmp_path / "dask" / "ds", "2024-02-01", "2024-02-03", **kw)
    want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-02-01", "2024-02-03", **kw)
    assert (got.rows, got.days, got.files, got.rows_per_day) == (
        want.rows,
        want.days,
        want.files,
        want.rows_per_day,
    )
    _assert_same_dataset(got.path, want.path)


def test_export_with_widening_days_identical(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_conflicting_events())
    kw = _kw(srv)
    root = tmp_path / "dask" / "ds"
    rf.export_to_parquet(root, "2024-02-27", "2024-02-28", **kw)  # empty days: no partition
    rfd.export_to_parquet(root, "2024-03-01", "2024-03-04", **kw)
    want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-03-01", "2024-03-04", **kw)
    _assert_same_dataset(root, want.path)
    # an existing dataset: days outside the range are rewritten when a column widens
    rfd.export_to_parquet(root, "2024-03-03", "2024-03-03", **kw)
    rf.export_to_parquet(want.path, "2024-03-03", "2024-03-03", **kw)
    _assert_same_dataset(root, want.path)


# The where case compares a mixed-type column: both sides warn (tests/test_where_mixed.py).
@pytest.mark.filterwarnings("ignore:where=.*stored as text:robotmia_frames.errors.RobotmiaWarning")
def test_read_parquet_dataset_equals_single_machine(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_conflicting_events())
    root = tmp_path / "ds"
    rf.export_to_parquet(root, "2024-03-01", "2024-03-04", **_kw(srv))
    cases: list[dict[str, Any]] = [
        {},
        {"from_date": "2024-03-02", "to_date": "2024-03-03"},
        {"columns": ["properties.x", "event", "properties.extra"]},
        {"event": ["a"], "columns": ["properties.x"]},
        {"where": 'properties["x"] == "str" or properties["flag"] == true'},
        {"dedupe": True, "columns": ["event"]},
        {"from_date": "2025-01-01"},  # nothing selected: still typed
    ]
    for case in cases:
        ddf = rfd.read_parquet_dataset(root, **case)
        got = ddf.compute().reset_index(drop=True)
        want = rf.read_parquet_dataset(root, **case)
        pd.testing.assert_frame_equal(got, want, obj=str(case))
        assert dict(ddf.dtypes) == dict(want.dtypes), case
    for read in (rfd.read_parquet_dataset, rf.read_parquet_dataset):  # both refuse it
        with pytest.raises(rf.InvalidArgumentError, match=r"unknown column 'properties\.absent'"):
            read(root, columns=["properties.x", "properties.absent"])
    days = rfd.read_parquet_dataset(root)
    assert days.npartitions == 4
    _assert_partitions_match_meta(days)


# ------------------------------------------------------------------ pinned types


PINS = {"properties.Price": "float64", "properties.Success": "bool"}


def _priced_days() -> list[dict[str, Any]]:
    """Prices that fit float64 but on 2024-05-02 ("n/a"); a "yes" among booleans on
    2024-05-03."""
    out = []
    for d, day in enumerate(["2024-05-01", "2024-05-02", "2024-05-03"]):
        for i in range(6):
            price: Any = "n/a" if (d, i) == (1, 2) else (1.5 * i if i % 2 else i)
            ok: Any = "yes" if (d, i) == (2, 4) else i % 2 == 0
            props = {"time": local_seconds(day, 60 * i + 1), "$insert_id": f"{d}-{i}"}
            out.append({"event": "P", "properties": {**props, "Price": price, "Success": ok}})
    return out


@pytest.mark.parametrize("mode", ["null", "text"])
def test_read_export_pins_types_as_one_machine(
    client: Any, server: ServerFactory, mode: str
) -> None:
    srv = server(_priced_days())
    kw = _kw(srv, dtype=PINS, on_type_mismatch=mode)
    with pytest.warns(rf.RobotmiaWarning) as seen:
        ddf = rfd.read_robotmia_export("2024-05-01", "2024-05-03", **kw)
    with pytest.warns(rf.RobotmiaWarning) as seen_one:
        want = rf.read_robotmia_export("2024-05-01", "2024-05-03", **kw)
    # one warning on the client, word for word the one machine's: counts and examples
    assert [str(w.message) for w in seen] == [str(w.message) for w in seen_one]
    assert "properties.Price: 1 value does not fit float64 (e.g. 'n/a')" in str(seen[0].message)
    assert seen[0].filename == __file__  # it points at the caller's line
    assert dict(ddf.dtypes) == dict(want.dtypes)
    _assert_partitions_match_meta(ddf)  # the days without a misfit too
    got = ddf.compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    if mode == "null":
        assert got.dtypes["properties.Price"] == pd.Float64Dtype()
        assert got.dtypes["properties.Success"] == pd.BooleanDtype()
        assert got["properties.Price__raw"].dropna().tolist() == ["n/a"]
        assert got["properties.Success__raw"].dropna().tolist() == ["yes"]
    else:  # one misfit anywhere: the column keeps the policy's text, on every day
        assert got.dtypes["properties.Price"] == "string"
        assert "properties.Price__raw" not in got.columns


def test_read_export_type_mismatch_error_and_checks(client: Any, server: ServerFactory) -> None:
    srv = server(_priced_days())
    price = {"properties.Price": "float64"}  # one misfit in all: the error is that one
    with pytest.raises(rf.TypeMismatchError, match=r"'n/a'\) in window 2024-05-02") as info:
        rfd.read_robotmia_export(
            "2024-05-01", "2024-05-03", **_kw(srv, dtype=price, on_type_mismatch="error")
        )
    assert info.value.column == "properties.Price"  # it crossed from the worker whole
    # the days that fit take the type silently
    fits = rfd.read_robotmia_export(
        "2024-05-01", "2024-05-01", **_kw(srv, dtype=PINS, on_type_mismatch="error")
    )
    assert fits.dtypes["properties.Price"] == pd.Float64Dtype()
    assert fits.compute()["properties.Price"].tolist()[:2] == [0.0, 1.5]
    with pytest.raises(rf.InvalidArgumentError, match=r"did you mean 'properties\.Price'"):
        rfd.read_robotmia_export(
            "2024-05-01", "2024-05-03", **_kw(srv, dtype={"properties.price": "float64"})
        )
    with pytest.raises(rf.InvalidArgumentError, match="'text', 'null' or 'error'"):
        rfd.read_robotmia_export(
            "2024-05-01", "2024-05-03", **_kw(srv, dtype=PINS, on_type_mismatch="drop")
        )
    # the sampled first day (a one-day first window) fits: a later misfit cannot
    # match the meta
    lazy = rfd.read_robotmia_export(
        "2024-05-01", "2024-05-03", meta_sample="first",
        **_kw(srv, dtype=PINS, on_type_mismatch="null", max_retries=0, window_days=1),
    )  # fmt: skip
    assert "properties.Price__raw" not in lazy.columns
    with pytest.raises(rfd.MetaMismatchError, match=r"window 2024-05-0[23].*meta_sample=\"all\""):
        lazy.compute()


@pytest.mark.parametrize("mode", ["null", "text"])
def test_export_pins_types_as_one_machine(
    client: Any, server: ServerFactory, tmp_path: Path, mode: str
) -> None:
    srv = server(_priced_days())
    kw = _kw(srv, dtype=PINS, on_type_mismatch=mode)
    with pytest.warns(rf.RobotmiaWarning) as seen:
        got = rfd.export_to_parquet(tmp_path / "dask" / "ds", "2024-05-01", "2024-05-03", **kw)
    with pytest.warns(rf.RobotmiaWarning) as seen_one:
        want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-05-01", "2024-05-03", **kw)
    # a warning per day with misfits, on the client, as one machine gives them
    assert [str(w.message) for w in seen] == [str(w.message) for w in seen_one]
    assert [str(w.message)[:17] for w in seen] == ["window 2024-05-02", "window 2024-05-03"]
    _assert_same_dataset(got.path, want.path)  # files, schemas, footers (the pins), rows
    back = rf.read_parquet_dataset(got.path, return_type="arrow")
    price = str(back.schema.field("properties.Price").type)
    assert price == ("double" if mode == "null" else "string")
    footer = _footer(pq.read_schema(next(got.path.glob("date=2024-05-01/*.parquet"))))
    assert footer["dtype"] == {"properties.Price": "float64", "properties.Success": "bool"}


def test_export_type_mismatch_error_writes_nothing(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_priced_days())
    with pytest.raises(rf.TypeMismatchError, match="in window 2024-05-02"):
        rfd.export_to_parquet(
            tmp_path / "ds", "2024-05-01", "2024-05-03",
            **_kw(srv, dtype={"properties.Price": "float64"}, on_type_mismatch="error"),
        )  # fmt: skip
    assert not list((tmp_path / "ds").glob("date=*"))  # the first pass found it


@pytest.mark.parametrize("mode", ["null", "text"])
def test_read_parquet_dataset_pins_types_as_one_machine(
    client: Any, server: ServerFactory, tmp_path: Path, mode: str
) -> None:
    srv = server(_priced_days())
    root = tmp_path / "ds"
    rf.export_to_parquet(root, "2024-05-01", "2024-05-03", **_kw(srv))  # as text
    for case in [{}, {"from_date": "2024-05-02", "columns": ["event", "properties.Price"]}]:
        kw: dict[str, Any] = {"dtype": PINS, "on_type_mismatch": mode, **case}
        with pytest.warns(rf.RobotmiaWarning) as seen:
            ddf = rfd.read_parquet_dataset(root, **kw)
        with pytest.warns(rf.RobotmiaWarning) as seen_one:
            want = rf.read_parquet_dataset(root, **kw)
        assert [str(w.message) for w in seen] == [str(w.message) for w in seen_one]
        assert dict(ddf.dtypes) == dict(want.dtypes), case
        _assert_partitions_match_meta(ddf)
        pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), want, obj=str(case))
    with pytest.raises(rf.TypeMismatchError, match=r"properties\.Price: 1 value") as info:
        rfd.read_parquet_dataset(
            root, dtype={"properties.Price": "float64"}, on_type_mismatch="error"
        )
    assert info.value.column == "properties.Price"


# ------------------------------------------------------------------- resilience


def test_worker_killed_mid_export(client: Any, server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=500, seed=3))
    # Day 1's first answer sends nothing until its worker is dead: the kill surely
    # lands mid-download, whatever the machine's load.
    gate = threading.Event()
    srv.add_fault(Fault(hold=gate, match=lambda p: p["from_date"] == "2024-01-01"))
    kw = _kw(srv, window_days=1)
    days = 6
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(rfd.export_to_parquet, tmp_path / "dask" / "ds", "2024-01-01",
                          "2024-01-06", **kw)  # fmt: skip
        try:
            wait_until(
                lambda: job.done() or any(p["from_date"] == "2024-01-01" for p in srv.in_flight),
                "day 1's request to reach the server",
            )
            assert not job.done()
            # the worker running day 1's download (a running task is on one worker)
            (victim,) = (
                addr
                for addr, keys in client.processing().items()
                if any("robotmia-download-2024-01-01" in str(k) for k in keys)
            )
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)  # a worker process this test's cluster started
            # dead, its sockets closed, once the scheduler has lost it
            wait_until(
                lambda: victim not in client.scheduler_info()["workers"],
                "the scheduler to lose the killed worker",
            )
        finally:
            gate.set()  # the held answer now finds its client gone
        summary = job.result(timeout=300)
    wait_until(
        lambda: any(r.error and "disconnected" in r.error for r in srv.requests),
        "the killed worker's download to be logged as disconnected",
    )
    assert summary.days == days
    assert len(srv.requests) > days  # the killed worker's download was made again
    assert victim not in client.scheduler_info()["workers"]
    srv.clear_faults()
    want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-01-01", "2024-01-06", **kw)
    assert summary.rows == want.rows == 3000
    _assert_same_dataset(summary.path, want.path)
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it for the next tests


def test_rate_limit_held_across_workers(client: Any, server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=20, seed=2))
    # per_hour keeps the whole run in the cluster's log of starts (an hour's horizon)
    limit = rfd.ClusterRateLimiter(
        rf.RateLimit(per_hour=1000, per_second=2, concurrent=1), margin=0.5
    )
    with distributed.get_task_stream(client) as stream:
        summary = rfd.export_to_parquet(
            tmp_path / "ds",
            "2024-01-01",
            "2024-01-08",
            rate_limit=limit,
            **_kw(srv, window_days=1),
        )
    assert summary.days == 8
    workers = {t["worker"] for t in stream.data if "robotmia-download" in t["key"]}
    assert len(workers) == 2  # both workers downloaded, sharing one budget
    # The one log both workers kept: every start, at most 2 in any 1 + margin s.
    starts = sorted(client.get_metadata(["robotmia_frames", limit.name])["starts"])
    assert len(starts) == 8
    assert all(c - a >= 1.5 for a, c in zip(starts, starts[2:], strict=False)), starts
    # The server's view: a query reaches it some time after its start was logged, a
    # time a loaded machine varies by up to a second; the budget still shows (without
    # a shared budget the two workers would send 8 queries in about 1.5 s).
    log = sorted(srv.requests, key=lambda r: r.started)
    assert len(log) == 8
    assert log[-1].started - log[0].started >= 3.0  # 4.5 s by the workers' clocks
    # and never two at once (concurrent=1): an answer is logged as ended before its
    # client sees its end, so the next query cannot reach the server earlier
    assert all(b.started >= a.ended for a, b in itertools.pairwise(log))


def test_retry_after_pauses_every_worker(client: Any, server: ServerFactory) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=5, seed=2))
    srv.add_fault(Fault(status=429, retry_after=1, times=1))
    # one query at a time: the worker that gets the 429 pauses the cluster before it
    # gives its slot back, so whichever worker takes the slot next waits too
    limiter = rfd.ClusterRateLimiter(rf.RateLimit(per_hour=None, per_second=50, concurrent=1))
    ddf = rfd.read_robotmia_export(
        "2024-01-01", "2024-01-04", rate_limit=limiter, **_kw(srv, window_days=1)
    )
    assert len(ddf.compute()) == 20
    log = sorted(srv.requests, key=lambda r: r.started)
    assert [r.status for r in log].count(429) == 1 and log[0].status == 429
    refused = log[0].ended
    # no query, from any worker, starts within the server's Retry-After of 1 s
    # (a lower bound: a loaded machine only makes the gap longer)
    assert min(r.started for r in log[1:]) - refused >= 0.95, [r.started - refused for r in log]


def test_no_client_is_a_clear_error(server: ServerFactory) -> None:
    """In a process that never started a Dask client (this one has the module's)."""
    srv = server()
    code = (
        "import sys, robotmia_frames as rf, robotmia_frames.dask as rfd\n"
        "try:\n"
        "    rfd.read_robotmia_export('2024-01-01', '2024-01-01', api_secret=sys.argv[1],\n"
        "                             project_timezone='UTC', base_url=sys.argv[2])\n"
        "except rf.InvalidArgumentError as exc:\n"
        "    print(type(exc).__name__, isinstance(exc, ValueError), exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, SECRET, srv.url],
        capture_output=True, text=True, check=True, timeout=300,
        cwd=Path(__file__).parent.parent,
    ).stdout  # fmt: skip
    assert out.startswith("InvalidArgumentError True no Dask client: start one first"), out
    assert srv.requests == []  # it stopped before any download


def test_workers_write_straight_to_s3(
    client: Any, server: ServerFactory, request: pytest.FixtureRequest
) -> None:
    """The workers write each day to an S3 API server on loopback (moto)."""
    from tests.test_storage import _options

    endpoint, bucket = (request.getfixturevalue(n) for n in ("s3_endpoint", "bucket"))
    srv = server(_conflicting_events())
    url, opts = f"s3://{bucket}/events", _options(endpoint)
    s = rfd.export_to_parquet(url, "2024-03-01", "2024-03-04", storage_options=opts, **_kw(srv))
    want = rf.export_to_parquet(
        url + "-one", "2024-03-01", "2024-03-04", storage_options=opts, **_kw(srv)
    )
    assert (s.rows, s.files) == (want.rows, want.files)
    pd.testing.assert_frame_equal(
        rf.read_parquet_dataset(url, storage_options=opts),
        rf.read_parquet_dataset(url + "-one", storage_options=opts),
    )
    got = rfd.read_parquet_dataset(url, storage_options=opts).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, rf.read_parquet_dataset(url, storage_options=opts))


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_one_writer_at_a_time_with_the_workers(
    client: Any,
    server: ServerFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    storage: str,
) -> None:
    """A Dask export holds the dataset's writer lock on the client for its whole
    write (the file lock on local disk, the lease object on S3), as one machine
    does: a second writer, Dask or not, waits, then fails clearly before any
    request, and the first one's work is whole."""
    from tests.test_storage import _options

    options: dict[str, Any] = {}
    where: str | Path = tmp_path / "events"
    if storage == "s3":
        endpoint, bucket = (request.getfixturevalue(n) for n in ("s3_endpoint", "bucket"))
        where, options = f"s3://{bucket}/events", {"storage_options": _options(endpoint)}
    gate = threading.Event()
    first = server(_conflicting_events())
    first.add_fault(Fault(hold=gate, times=None))  # every answer waits for the gate
    second = server(_conflicting_events())
    monkeypatch.setenv(sinks.LOCK_TIMEOUT_ENV, "0.5")
    days = ("2024-03-01", "2024-03-04")
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(rfd.export_to_parquet, where, *days, **options, **_kw(first))
        try:
            # the lock is taken before the first request: it is held from here on
            wait_until(lambda: job.done() or first.in_flight, "the Dask export's first request")
            assert not job.done()
            for writer in (rf.export_to_parquet, rfd.export_to_parquet, rf.sync_to_parquet):
                started = time.monotonic()
                with pytest.raises(rf.InvalidArgumentError) as info:
                    writer(where, *days, **options, **_kw(second))
                assert time.monotonic() - started >= 0.5  # it waited for the lock
                message = str(info.value)
                assert "being written by another process" in message, message
                assert "ROBOTMIA_LOCK_TIMEOUT" in message
            assert second.requests == []  # refused before any request
        finally:
            gate.set()
        summary = job.result(timeout=300)
    want = rf.export_to_parquet(tmp_path / "one", *days, **_kw(second))
    assert (summary.rows, summary.days) == (want.rows, want.days) == (6, 4)
    pd.testing.assert_frame_equal(
        rf.read_parquet_dataset(where, **options), rf.read_parquet_dataset(want.path)
    )
    # released: the next writer goes ahead at once
    again = rfd.export_to_parquet(where, *days, **options, **_kw(second))
    assert again.rows == want.rows


# ----------------------------------------------------------------- request windows


def _without_sizes(root: Path) -> None:
    """Forget the body bytes per day in the footers' comparison (they differ between
    one-day and multi-day windows, by design): a copy's footers without them."""
    for f in root.rglob("*.parquet"):
        table = pq.read_table(f)
        meta = json.loads(table.schema.metadata[b"robotmia_frames"])
        meta.pop(sinks.BYTES_KEY, None)
        schema = table.schema.with_metadata({b"robotmia_frames": json.dumps(meta).encode()})
        pq.write_table(table.cast(schema), f)


def test_multi_day_windows_give_what_one_day_windows_give_in_fewer_requests(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """In a DST zone, with rows a second either side of local midnight, empty days
    inside windows and a column that widens on a later day."""
    from tests.test_windows import END, START, TZ, midnight_events

    srv = server(midnight_events(), project_timezone=TZ)
    kw = _kw(srv, project_timezone=TZ)
    want = rf.read_robotmia_export(START, END, window_days=1, **kw)
    sent = {}
    for window_days in (1, 7, "auto"):
        srv.requests.clear()
        ddf = rfd.read_robotmia_export(START, END, window_days=window_days, **kw)
        assert ddf.npartitions == (END - START).days + 1
        pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), want)
        _assert_partitions_match_meta(ddf)
        sent[window_days] = len(srv.windows())
    assert sent == {1: 20, 7: 3, "auto": 2}  # auto: a week, then the rest at once

    one = rfd.export_to_parquet(tmp_path / "one" / "ds", START, END, window_days=1, **kw)
    srv.requests.clear()
    auto = rfd.export_to_parquet(tmp_path / "auto" / "ds", START, END, **kw)
    assert len(srv.windows()) == 2
    assert (auto.rows, auto.days, auto.files, auto.rows_per_day) == (
        one.rows,
        one.days,
        one.files,
        one.rows_per_day,
    )
    # the days record the bytes per day of the bodies they came in
    state = _pipeline.dataset_state(_pipeline.dataset_location(auto.path))
    assert state.bytes_per_day and state.history_bytes_per_day() is not None
    _without_sizes(auto.path)
    _without_sizes(one.path)
    _assert_same_dataset(auto.path, one.path)


def test_a_worker_halves_a_failing_window_down_to_single_days(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=30, seed=4))
    # every request over more than one day is cut short
    srv.add_fault(
        Fault(truncate_at=40, times=None, match=lambda p: p.get("from_date") != p.get("to_date"))
    )
    kw = _kw(srv, max_retries=0)
    got = rfd.export_to_parquet(
        tmp_path / "dask" / "ds", "2024-01-01", "2024-01-04", window_days=4, **kw
    )
    windows = srv.windows()
    assert windows.count((dt.date(2024, 1, 1), dt.date(2024, 1, 4))) == 1
    assert sorted(w for w in windows if w[0] == w[1]) == [
        (dt.date(2024, 1, d), dt.date(2024, 1, d)) for d in range(1, 5)
    ]
    srv.clear_faults()
    want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-01-01", "2024-01-04", **kw)
    assert got.rows == want.rows == 120 and got.rows_per_day == want.rows_per_day
    pd.testing.assert_frame_equal(
        rf.read_parquet_dataset(got.path), rf.read_parquet_dataset(want.path)
    )


def test_a_second_export_sizes_its_windows_from_the_dataset(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate=GeneratorConfig(events_per_day=5, seed=6))
    root = tmp_path / "ds"
    rfd.export_to_parquet(root, "2024-01-01", "2024-01-10", **_kw(srv))
    assert sorted(srv.windows()) == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 7)),  # the start size: nothing known
        (dt.date(2024, 1, 8), dt.date(2024, 1, 10)),
    ]
    plan = rf.Client(api_secret=SECRET, base_url=srv.url).plan_export(
        "2024-01-11", "2024-03-31", dataset=root
    )
    srv.requests.clear()
    summary = rfd.export_to_parquet(root, "2024-01-11", "2024-03-31", **_kw(srv))
    assert summary.days == 81
    assert sorted(srv.windows()) == plan.windows  # 31 days at a time from the first
    assert plan.requests == 3


# ------------------------------------------------------------------ wide projects


def _wide_events() -> list[dict[str, Any]]:
    return wide_events(900, 300)  # 10 event names, 30 keys each (each in ~8% of the rows)


def test_export_wide_keywords_as_one_machine(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """``split_by="event"`` and ``columns=`` write the dataset one machine writes;
    ``sparse_columns="map"`` and ``split_by`` beside another layout are refused
    before anything is sent."""
    srv = server(_wide_events())
    for i, options in enumerate(
        [{"split_by": "event"}, {"columns": ["time", "$insert_id", "properties.k0"]}]
    ):
        kw = _kw(srv, **options)
        got = rfd.export_to_parquet(tmp_path / f"dask{i}" / "ds", "2024-01-01", "2024-01-02", **kw)
        want = rf.export_to_parquet(tmp_path / f"one{i}" / "ds", "2024-01-01", "2024-01-02", **kw)
        assert (got.rows, got.files) == (want.rows, want.files) == (900, want.files)
        _assert_same_dataset(got.path, want.path)
    sent = len(srv.requests)
    with pytest.raises(rf.InvalidArgumentError, match=r"not available for robotmia_frames\.dask"):
        rfd.export_to_parquet(tmp_path / "x", "2024-01-01", "2024-01-02",
                              **_kw(srv, sparse_columns="map"))  # fmt: skip
    with pytest.raises(rf.InvalidArgumentError, match="conflicts with partition_by"):
        rfd.export_to_parquet(tmp_path / "x", "2024-01-01", "2024-01-02",
                              **_kw(srv, split_by="event", partition_by=("event",)))  # fmt: skip
    with pytest.raises(rf.InvalidArgumentError, match=r"unknown column 'properties\.nope'"):
        rfd.export_to_parquet(tmp_path / "y", "2024-01-01", "2024-01-02",
                              **_kw(srv, columns=["properties.nope"]))  # fmt: skip
    assert not list((tmp_path / "y").rglob("*.parquet"))  # refused before any day is written
    assert len(srv.requests) > sent  # (the unknown column is known once the days are scanned)


def test_export_max_memory_checks_each_day_on_its_worker(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """A day over ``max_memory`` raises ``MemoryBudgetError`` from its worker's first
    pass: no day is written; ``max_memory=None`` writes them all."""
    srv = server(_wide_events())
    out = tmp_path / "ds"
    with pytest.raises(rf.MemoryBudgetError, match="writing one day") as err:
        rfd.export_to_parquet(out, "2024-01-01", "2024-01-02", **_kw(srv, max_memory=1))
    assert err.value.max_memory == 1 and err.value.estimate > 1
    assert not list(out.rglob("*.parquet"))
    s = rfd.export_to_parquet(out, "2024-01-01", "2024-01-02", **_kw(srv, max_memory=None))
    assert s.rows == 900


def test_read_export_wide_keywords(client: Any, server: ServerFactory) -> None:
    """``sparse_columns="map"`` computes to what one machine reads (the kept keys
    decided over every day); ``split_by`` is refused with the ways out;
    ``max_memory`` stops a partition over it before any is built."""
    srv = server(_wide_events())
    kw = _kw(srv, sparse_columns="map")
    ddf = rfd.read_robotmia_export("2024-01-01", "2024-01-02", **kw)
    want = rf.read_robotmia_export("2024-01-01", "2024-01-02", **kw)
    assert "properties" in want.columns and len(want.columns) < 100  # the map is in use
    pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), want)
    assert dict(ddf.dtypes) == dict(want.dtypes)
    _assert_partitions_match_meta(ddf)
    with pytest.raises(rf.InvalidArgumentError, match="meta_sample='all'"):
        rfd.read_robotmia_export("2024-01-01", "2024-01-02", meta_sample="first", **kw)
    with pytest.raises(
        rf.InvalidArgumentError, match=r"split_by='event' is not available.*event='Name'"
    ):
        rfd.read_robotmia_export("2024-01-01", "2024-01-02", **_kw(srv, split_by="event"))
    with pytest.raises(rf.MemoryBudgetError, match="building one partition") as err:
        rfd.read_robotmia_export("2024-01-01", "2024-01-02", **_kw(srv, max_memory=1))
    assert "split_by='event' for one narrow table" not in str(err.value)  # a Dask read's ways
    assert "robotmia_frames.dask.export_to_parquet" in str(err.value)


_BUDGET_CHILD = """
import json, sys
import distributed
import robotmia_frames as rf
import robotmia_frames.dask as rfd

url, what, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
kw = dict(api_secret="s", project_timezone="UTC", base_url=url, max_memory=budget)
out = {"error": None}
# One worker in this process (threads): its peak memory is this process's.
with distributed.Client(
    processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
) as client:
    try:
        if what == "read":
            ddf = rfd.read_robotmia_export("2024-01-01", "2024-01-01", client=client, **kw)
            out["rows"] = len(ddf)
        else:
            s = rfd.export_to_parquet(
                sys.argv[4], "2024-01-01", "2024-01-01", client=client,
                partition_by=("date", "event"), **kw,
            )
            out["rows"] = s.rows
    except rf.MemoryBudgetError as exc:
        out = {"error": str(exc), "estimate": exc.estimate}
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(json.dumps({**out, "peak": int(status) * 1024}))
"""


def _wide_day(n: int) -> list[dict[str, Any]]:
    return wide_events(n, 2000, span=86_400)  # one day, 2,000 keys, 30 per event


def test_read_export_budget_fires_on_the_worker_before_it_holds_the_day(
    client: Any, server: ServerFactory
) -> None:
    """A Dask read of a wide day far over ``max_memory`` fails on its worker with
    the estimate of a read on one machine, projected from the first chunks of the
    day: the worker's peak memory stays under the budget (here the worker runs in
    the child process that measures its own peak)."""
    srv = server(_wide_day(60_000), api_secret="s")
    budget = 700_000_000  # the day laid out flat in pandas needs several GB
    got = run_child(_BUDGET_CHILD, srv.url, "read", str(budget))
    assert got["error"] is not None and "building one partition" in got["error"], got
    assert got["estimate"] > budget, got
    assert got["peak"] < budget, f"peak RSS {got['peak'] / 2**20:.0f} MiB"
    # projected from the share of the day's body parsed, as a read on one machine
    scanned, projected = scanned_and_projected(got["error"])
    assert scanned < 60_000 * 0.1, got["error"]
    assert 0.5 * 60_000 < projected < 1.5 * 60_000, got["error"]


def test_export_wide_day_is_not_held_on_the_worker(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """``dask.export_to_parquet`` of a wide day writes it as one machine does (by
    event here, each event's files with only its columns), parsed again chunk by
    chunk on the worker instead of held whole; the worker's peak memory stays
    under what holding the day takes."""
    events = _wide_day(10_000)  # about 95 MB parsed: over DAY_HOLD_BYTES
    srv = server(events, api_secret="s")
    kw = dict(api_secret="s", project_timezone="UTC", base_url=srv.url)
    split = dict(partition_by=("date", "event"))
    got = rfd.export_to_parquet(tmp_path / "dask" / "ds", "2024-01-01", "2024-01-01", **kw, **split)
    want = rf.export_to_parquet(tmp_path / "one" / "ds", "2024-01-01", "2024-01-01", **kw, **split)
    assert got.rows == want.rows == 10_000 and got.files == want.files > 60
    _assert_same_dataset(got.path, want.path)
    srv = server(_wide_day(30_000), api_secret="s")
    report = run_child(_BUDGET_CHILD, srv.url, "export", str(8 << 30), str(tmp_path / "big"))
    assert report["rows"] == 30_000
    # Held whole (30,000 rows over 2,000 keys: about 280 MB parsed), in the first
    # pass and again when written, the day took this process to about 700 MB;
    # parsed again chunk by chunk, to about 320 MB.
    assert report["peak"] < 500 << 20, f"peak RSS {report['peak'] / 2**20:.0f} MiB"


def test_read_parquet_dataset_wide_keywords(
    client: Any, server: ServerFactory, tmp_path: Path
) -> None:
    """On a dataset: ``sparse_columns="map"`` computes to what one machine reads,
    ``split_by`` is refused, ``max_memory`` checks each partition from its footers."""
    srv = server(_wide_events())
    root = tmp_path / "ds"
    rf.export_to_parquet(root, "2024-01-01", "2024-01-02", **_kw(srv))
    for case in [{"sparse_columns": "map"}, {"sparse_columns": "map", "event": ["E1", "E2"]}]:
        ddf = rfd.read_parquet_dataset(root, **case)
        want = rf.read_parquet_dataset(root, **case)
        assert "properties" in want.columns
        pd.testing.assert_frame_equal(ddf.compute().reset_index(drop=True), want, obj=str(case))
        assert dict(ddf.dtypes) == dict(want.dtypes)
    with pytest.raises(rf.InvalidArgumentError, match="split_by='event' is not available"):
        rfd.read_parquet_dataset(root, split_by="event")
    with pytest.raises(rf.MemoryBudgetError, match="building one partition"):
        rfd.read_parquet_dataset(root, max_memory=1)
    assert len(rfd.read_parquet_dataset(root, max_memory=None).compute()) == 900
