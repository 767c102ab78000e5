"""The tasks the workers run: download a window, scan a day, build a partition, write a day.

Each task gets what it needs as arguments (the checked :class:`ExportPlan`, the
export-wide kinds, the pinned types), so that any worker can run it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import pandas as pd
import pyarrow as pa

from .. import _pipeline, _wide, parse, sinks, transport
from .._redact import register_secret
from ..errors import MetaMismatchError
from ..parse import Kind, PinReport, unify

# ------------------------------------------------------------------ worker tasks


_download_slots: dict[int, threading.BoundedSemaphore] = {}
_download_slots_lock = threading.Lock()


@contextlib.contextmanager
def _waiting_on_the_network(concurrency: int) -> Iterator[None]:
    """Leave the worker's thread pool while downloading (``distributed.secede``), so
    that the worker parses other days meanwhile, as one machine overlaps its
    downloads with parsing; at most ``concurrency`` downloads at once per worker
    process (the cluster-wide cap is the rate limit's ``concurrent``)."""
    from distributed import get_worker, rejoin, secede

    try:
        get_worker()
    except ValueError:  # not on a distributed worker
        yield
        return
    with _download_slots_lock:
        slots = _download_slots.setdefault(concurrency, threading.BoundedSemaphore(concurrency))
    secede()
    try:
        with slots:
            yield
    finally:
        rejoin()


class DayBody(NamedTuple):
    """One day of a downloaded window: its body (as a one-day request brings it) and
    the compressed bytes per day of the window it came in (a dataset records it)."""

    body: bytes
    bytes_per_day: int


def _download(
    first: dt.date,
    last: dt.date,
    *,
    plan: _pipeline.ExportPlan,
    bytes_per_day: float | None = None,
) -> list[DayBody]:
    """Task: download and verify the window ``first..last`` and hand back its days.

    As on one machine, a window that keeps failing is fetched again in halves,
    down to single days (``bytes_per_day``: the size the window was planned with,
    which cuts the second halves); a multi-day body is cut into one body per day
    (``split_body``), so that each day goes on as a one-day request would."""
    register_secret(plan.config.api_secret)  # error messages on this worker never show it
    planner = _pipeline.WindowPlanner(first, last, plan.sizing, bytes_per_day)
    with tempfile.TemporaryDirectory(prefix="robotmia-dask-") as tmp:

        def download(a: dt.date, b: dt.date) -> transport.DownloadResult:
            dest = Path(tmp) / f"{plan.request(a, b).label}.jsonl.gz"
            return _pipeline.window_download(plan, a, b, dest)

        with _waiting_on_the_network(plan.concurrency):
            results = _pipeline.fetch_halving(download, first, last, planner)
        out: list[DayBody] = []
        for result in results:
            req = result.request
            size = _pipeline.body_bytes_per_day(result)
            if req.from_date == req.to_date:
                out.append(DayBody(result.path.read_bytes(), size))
                continue
            label = f"window {req.label}"
            days = _pipeline.split_body(
                result.path, label, req.from_date, req.to_date, plan.time_unit
            )
            out += [DayBody(body, size) for body in days]
            result.path.unlink()
        return out


def _day(bodies: list[DayBody], i: int) -> DayBody:
    """Task: day ``i`` of a downloaded window."""
    return bodies[i]


def _sizes(bodies: list[DayBody]) -> list[int]:
    """Task: the compressed bytes per day of each day of a downloaded window."""
    return [b.bytes_per_day for b in bodies]


@contextlib.contextmanager
def _parsed(
    body: DayBody,
    day: dt.date,
    plan: _pipeline.ExportPlan,
    *,
    hook: _pipeline.BatchHook | None = None,
    writes: tuple[str, ...] | None = None,
) -> Iterator[_pipeline.Parsed]:
    """The parse stage over a body held in memory (in a temporary file meanwhile),
    as on one machine: ``hook`` sees each batch as it is parsed (the memory budget
    of a partition); a day written to a dataset partitioned by ``writes`` is held
    only up to ``DAY_HOLD_BYTES`` (a bigger wide day is parsed again as it is
    written, from the temporary file, which lasts as long as the parsed day)."""
    with tempfile.TemporaryDirectory(prefix="robotmia-dask-") as tmp:
        path = Path(tmp) / f"{day.isoformat()}.jsonl.gz"
        path.write_bytes(body.body)
        label = f"window {day.isoformat()}"
        yield _pipeline.parse_file(
            path,
            label,
            plan.on_bad_lines,
            _pipeline.parse_columns(plan),
            hook=hook,
            hold=None if writes is None else _pipeline.DAY_HOLD_BYTES,
            events=writes == ("date", "event"),
        )


def _table(
    parsed: _pipeline.Parsed,
    plan: _pipeline.ExportPlan,
    kinds: dict[str, Kind],
    columns: Sequence[str] | None,
    kept: dict[str, Kind] | None = None,
) -> pa.Table:
    """One day's rows as a table of ``kinds`` (``flat_table``, as on one machine);
    with ``kept`` (``sparse_columns="map"``), those keys as columns and the others in
    the map column."""
    spec = _pipeline.TableSpec(kinds, plan.timezone, columns, plan.dedupe, plan.time_unit)
    if kept is not None:
        return _wide.sparse_table([parsed], spec, kept=kept)
    return _pipeline.flat_table([parsed], spec)


class _DayScan(NamedTuple):
    """What the first pass learns of one day (:func:`_window_kinds`)."""

    rows: int
    kinds: dict[str, Kind]
    report: PinReport  # the values that do not fit the pinned types
    bytes_per_day: int  # of the body the day came in
    fill: dict[str, int]  # per key, the rows holding a value (sparse_columns="map")


def _window_kinds(
    body: DayBody,
    day: dt.date,
    *,
    plan: _pipeline.ExportPlan,
    shape: _wide.Shape | None = None,
    writes: bool = False,
) -> _DayScan:
    """Task: the rows and column kinds of one day, the values that do not fit the
    pinned types (first pass; with ``on_type_mismatch="error"`` a misfit raises
    here, before anything is written) and the body bytes per day it came with.
    With ``shape``, the day is checked against its ``max_memory`` (here, on the
    worker), as on one machine: as one partition, while it is parsed; with
    ``writes``, as the day written (a wide day too big to hold is not held, here or
    when written: nothing to check), and with a sparse map its keys' fill is
    counted."""
    hook = None if shape is None or writes else _wide.partition_budget(shape)
    layout = ("date",) if writes else None  # the kinds only: no event's keys needed
    with _parsed(body, day, plan, hook=hook, writes=layout) as parsed:
        check = None if shape is None or not writes else _wide.day_budget(shape)
        if check is not None:
            check(parsed)
        fill = {} if shape is None or shape.sparse is None else _wide.key_fill([parsed])[1]
        report = PinReport()
        pinned = [
            c
            for c in plan.pinned.dtypes
            if c.removeprefix(parse.PROPERTY_PREFIX) in parsed.kinds
            and (plan.columns is None or c in plan.columns)
        ]
        if pinned:
            table = _table(parsed, plan, parsed.kinds, pinned)
            _, report = parse.pin_types(
                table, plan.pinned.dtypes, plan.pinned.on_type_mismatch, source=parsed.label
            )
        return _DayScan(parsed.rows, parsed.kinds, report, body.bytes_per_day, fill)


def _check_fits(parsed: _pipeline.Parsed, kinds: dict[str, Kind], day: dt.date) -> None:
    for key, kind in parsed.kinds.items():
        if unify(kinds.get(key), kind) is not kinds.get(key):
            raise MetaMismatchError(
                f"window {day.isoformat()}: column properties.{key} ({kind!r}) does not fit "
                f"the meta sampled from the first day ({kinds.get(key)!r}); use "
                'meta_sample="all" (the default) for exact types over every day'
            )


def _partition(
    body: DayBody,
    day: dt.date,
    *,
    plan: _pipeline.ExportPlan,
    kinds: dict[str, Kind],
    dtype_backend: sinks.DtypeBackend,
    pins: _pipeline.SettledPins,
    check: bool = False,
    kept: dict[str, Kind] | None = None,
    shape: _wide.Shape | None = None,
) -> pd.DataFrame:
    """Task: one day as a pandas partition with the export-wide types (``kept``: the
    keys that stay columns beside a sparse map, decided over every day). With
    ``shape``, the day is checked against its ``max_memory`` as it is parsed (a
    partition the first pass did not see, with ``meta_sample="first"``, or a worker
    with less memory now)."""
    hook = None if shape is None else _wide.partition_budget(shape)
    with _parsed(body, day, plan, hook=hook) as parsed:
        if check:
            _check_fits(parsed, kinds, day)
        table = _table(parsed, plan, kinds, plan.columns, kept)
        table = pins.apply(table, parsed.label, check=check)
    return cast("pd.DataFrame", _pipeline.deliver(table, "pandas", dtype_backend))


def _write_day(
    body: DayBody,
    day: dt.date,
    merged: dict[str, Kind],
    metadata: dict[str, Any],
    *,
    plan: _pipeline.ExportPlan,
    root: sinks.Location,
    partition_by: tuple[str, ...],
) -> sinks.DayWriteResult:
    """Task: write one day's partition of the dataset (atomically, as on one machine).
    The client gives the warnings of the pinned types, from the first pass."""
    ds = sinks.ParquetDataset(root, partition_by=partition_by, create=False)
    plan = dataclasses.replace(plan, pinned=dataclasses.replace(plan.pinned, warns=False))
    with _parsed(body, day, plan, writes=partition_by) as parsed:
        return _pipeline.write_window(ds, day, parsed, merged, plan, metadata)


def _dataset_partition(
    day: dt.date | None,
    *,
    query: _pipeline.DatasetQuery,
    kinds: dict[str, Kind],
    order: list[str],
    dtype_backend: sinks.DtypeBackend,
    pins: _pipeline.SettledPins,
    sparse: bool = False,
) -> pd.DataFrame:
    """Task: one day of a dataset, conformed to the types of the whole selection;
    with ``sparse``, the columns not in ``order`` in the map column."""
    read = query.read(day)
    table = (
        _wide.with_map(read, kinds, order) if sparse else sinks.conform_table(read, kinds, order)
    )
    table = pins.apply(table, str(day))
    return cast("pd.DataFrame", _pipeline.deliver(table, "pandas", dtype_backend))


def _dataset_misfits(
    day: dt.date,
    *,
    query: _pipeline.DatasetQuery,
    kinds: dict[str, Kind],
    order: list[str],
    pinned: _pipeline.Pinned,
    source: str,
) -> PinReport:
    """Task: the values of one day of a dataset that do not fit the pinned types
    (first pass; with ``on_type_mismatch="error"`` a misfit raises here)."""
    table = sinks.conform_table(query.read(day), kinds, order)
    _, report = parse.pin_types(table, pinned.dtypes, pinned.on_type_mismatch, source=source)
    return report


def _dataset_fill(day: dt.date, *, query: _pipeline.DatasetQuery) -> tuple[int, dict[str, int]]:
    """Task: the rows of one day of a dataset and, per column, how many hold a value
    (first pass of ``sparse_columns="map"``)."""
    return _wide.table_fill([query.read(day)])
