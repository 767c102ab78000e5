"""Exports and datasets beyond one machine, on a Dask cluster.

``pip install "robotmia-frames[dask]"``. The base package never imports Dask; this
module imports it only inside its functions.

Three functions mirror the single-machine ones, with one Dask partition per export
day: :func:`read_robotmia_export` (a lazy ``dask.dataframe.DataFrame``),
:func:`export_to_parquet` (the same atomic, Hive-partitioned dataset, written by the
workers) and :func:`read_parquet_dataset`. Every request window is downloaded,
verified and parsed on a worker with the same transport, parse engine and time
stage as on one machine; the output is the same.

Windows are sized as on one machine (``window_days``, ``"auto"`` by default): a
worker fetches a window of several days (halving it, down to single days, if it
keeps failing) and hands back its days, one body per day, cut by the
project-local day of each event (``split_body``); each day is one partition.
With ``"auto"`` the first window is downloaded alone and the others are sized
from its body (``export_to_parquet``: from the dataset's history, when it has
one) and then downloaded at once, within the cluster's rate limit.

How the column types are known up front. The type policy unifies a column over
*every* day (an int column that meets a string on day 30 is a string column on day
1 too), so the dtypes of the first partition depend on the last. An export is
therefore read in two passes over the cluster:

1. each window is downloaded once, on a worker, and each of its days scanned for
   its column kinds; the days' bodies stay in the cluster's memory (compressed, and
   spilled to disk by Dask when memory runs short), and only the kinds travel back
   to the client, which unifies them in day order;
2. each partition parses its body again and conforms it to the unified kinds, so
   ``meta`` (names and dtypes) is exact and every partition matches it.

The second parse costs CPU, which a cluster has; a second download would cost API
budget (60 queries an hour), which it has not. ``meta_sample="first"`` skips the
first pass for the other windows (only the first window is fetched up front): a
lazy graph, in which each later window is downloaded once for all its days, for
schemas known to be stable; a partition whose columns do not fit the
sample raises :class:`MetaMismatchError` instead of returning data that disagrees
with ``meta``.

The rate limit across workers is :class:`ClusterRateLimiter`: a
``distributed.Semaphore`` holds the ``concurrent`` slots, and a log of query start
times, kept on the scheduler (``Client.set_metadata``) and read and written
under a ``distributed.Lock``, holds the per-second and per-hour budgets (sliding
windows) and any server ``Retry-After`` pause, for every worker at once.

Example:
    >>> import robotmia_frames.dask as rfd
    >>> import distributed  # doctest: +SKIP
    >>> client = distributed.Client(distributed.LocalCluster(n_workers=2))  # doctest: +SKIP
    >>> ddf = rfd.read_robotmia_export("2024-01-01", "2024-01-31",  # doctest: +SKIP
    ...                                project_timezone="Europe/Paris")
    >>> ddf.npartitions  # doctest: +SKIP
    31
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import pyarrow as pa

from .. import _options, _pipeline, _wide, parse, sinks, transport
from .._options import DateLike
from .._pipeline import Connection, ExportSummary
from ..client import Client as RobotmiaClient
from ..errors import InvalidArgumentError, MetaMismatchError
from ..parse import Kind, PinReport, unify_into
from ._ratelimit import ClusterRateLimiter
from ._tasks import DayBody as DayBody  # what a download task hands back, one per day
from ._tasks import (
    _dataset_fill,
    _dataset_misfits,
    _dataset_partition,
    _day,
    _DayScan,
    _download,
    _partition,
    _sizes,
    _window_kinds,
    _write_day,
)

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

__all__ = [
    "ClusterRateLimiter",
    "MetaMismatchError",
    "export_to_parquet",
    "read_parquet_dataset",
    "read_robotmia_export",
]

MetaSample = Literal["all", "first"]


# ------------------------------------------------------------------ client side


def _client(client: Client | None) -> Client:
    from distributed import get_client

    if client is not None:
        return client
    try:
        return get_client()
    except ValueError:
        raise InvalidArgumentError(
            "no Dask client: start one first, e.g. distributed.Client(distributed.LocalCluster()) "
            "or distributed.Client('tcp://scheduler:8786'), or pass client=..."
        ) from None


_SETTINGS = inspect.signature(RobotmiaClient)


def _cluster_plan(given: dict[str, Any]) -> _pipeline.ExportPlan:
    """Check every argument of a public function (``given``: its ``locals()``), as on
    one machine, and share the rate limit over the cluster."""
    settings = _SETTINGS.bind(**{k: v for k, v in given.items() if k in _SETTINGS.parameters})
    settings.apply_defaults()  # the client's defaults for the settings dask does not take
    plan = Connection.checked(**settings.arguments).plan_of(given, progress=False)
    limiter = plan.limiter
    if not isinstance(limiter, ClusterRateLimiter):
        limiter = ClusterRateLimiter(limiter.limit)
    return dataclasses.replace(plan, limiter=limiter)


def _key(what: str, first: dt.date, last: dt.date, tag: str) -> str:
    span = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
    return f"robotmia-{what}-{span}-{tag}"


def _days_of(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _windows(
    client: Client, plan: _pipeline.ExportPlan, bytes_per_day: float | None, tag: str
) -> tuple[list[tuple[dt.date, dt.date]], list[Future], float | None]:
    """The request windows of the export, sized as on one machine (``window_days``;
    with ``"auto"`` from ``bytes_per_day``, a dataset's history, when known), and
    the futures of those already sent: with ``"auto"`` and no size known, the first
    window is downloaded alone (on a worker) and the rest sized from its body."""
    planner = _pipeline.WindowPlanner(plan.start, plan.end, plan.sizing, bytes_per_day)
    windows: list[tuple[dt.date, dt.date]] = []
    sent: list[Future] = []
    if planner.learning:
        first = planner.take()
        assert first is not None
        fut = client.submit(_download, *first, plan=plan, key=_key("download", *first, tag))
        sizes = client.submit(_sizes, fut, key=_key("sizes", *first, tag))
        try:
            learnt = cast("list[int]", sizes.result())
        except BaseException:
            client.cancel([fut, sizes])
            raise
        planner.bytes_per_day = float(learnt[-1])  # its last body's, as one machine learns
        windows.append(first)
        sent.append(fut)
    while (window := planner.take()) is not None:
        windows.append(window)
    return windows, sent, planner.bytes_per_day


def _send(
    client: Client,
    plan: _pipeline.ExportPlan,
    windows: Sequence[tuple[dt.date, dt.date]],
    bytes_per_day: float | None,
    tag: str,
) -> list[Future]:
    """Download ``windows`` on the workers (each a list of :class:`DayBody`)."""
    return [
        client.submit(
            _download, a, b, plan=plan, bytes_per_day=bytes_per_day, key=_key("download", a, b, tag)
        )
        for a, b in windows
    ]


def _day_futures(
    client: Client, windows: Sequence[tuple[dt.date, dt.date]], sent: Sequence[Future], tag: str
) -> list[Future]:
    """One future per day (a :class:`DayBody`), taken from its window's on the worker."""
    return [
        client.submit(_day, fut, i, key=_key("day", d, d, tag))
        for (a, b), fut in zip(windows, sent, strict=True)
        for i, d in enumerate(_days_of(a, b))
    ]


class _FirstPass(NamedTuple):
    bodies: list[Future]  # one per day (of the first window only, when sampled)
    kinds: list[dict[str, Kind]]  # the days' kinds
    reports: list[PinReport]  # the days' values that do not fit the pinned types
    sizes: list[int]  # the days' body bytes per day
    windows: list[tuple[dt.date, dt.date]]  # every window of the export
    bytes_per_day: float | None  # what the windows were sized with
    rows: int  # the rows of the days scanned
    fill: dict[str, int]  # per key, the rows holding a value (sparse_columns="map")


def _first_pass(
    client: Client,
    plan: _pipeline.ExportPlan,
    *,
    bytes_per_day: float | None = None,
    sample_first: bool = False,
    pinned_known: bool = False,
    shape: _wide.Shape | None = None,
    writes: bool = False,
) -> _FirstPass:
    """Download the windows (their days stay on the workers) and gather the days'
    kinds and the values that do not fit the pinned types; with ``sample_first``,
    the first window only. Without it (every day scanned), an asked-for column
    (with ``pinned_known``, a pinned one too) that no day holds is an error, as on
    one machine. With ``shape``, each day is checked against its ``max_memory`` on
    its worker (as written, with ``writes``; else as a partition) and its keys'
    fill counted for a sparse map."""
    tag = uuid.uuid4().hex[:8]
    windows, sent, size = _windows(client, plan, bytes_per_day, tag)
    wanted = windows[:1] if sample_first else windows
    sent = [*sent, *_send(client, plan, wanted[len(sent) :], size, tag)]
    bodies = _day_futures(client, wanted, sent, tag)
    days = [d for a, b in wanted for d in _days_of(a, b)]
    kinds = client.map(
        _window_kinds,
        bodies,
        days,
        plan=plan,
        shape=shape,
        writes=writes,
        key=[_key("kinds", d, d, tag) for d in days],
    )
    try:
        got = cast("list[_DayScan]", client.gather(kinds))
    except BaseException:
        client.cancel([*sent, *bodies, *kinds])
        raise
    del sent  # the windows' days are held by the day futures alone
    if not sample_first and any(g.rows for g in got):
        # The days were parsed for the asked-for keys: one none of them holds is unknown.
        known = ["event", "time", *(parse.PROPERTY_PREFIX + k for g in got for k in g.kinds)]
        _options.known_columns(plan.columns, known, plan.source)
        if pinned_known and plan.columns is None:
            plan.pinned.check_known(known, plan.source)
    return _FirstPass(
        bodies,
        [g.kinds for g in got],
        [g.report for g in got],
        [g.bytes_per_day for g in got],
        windows,
        size,
        sum(g.rows for g in got),
        _sum_counts(g.fill for g in got),
    )


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Per key, the sum of ``counts`` (the days' fill)."""
    total: dict[str, int] = {}
    for one in counts:
        for key, n in one.items():
            total[key] = total.get(key, 0) + n
    return total


def _lazy_partitions(
    windows: Sequence[tuple[dt.date, dt.date]],
    sampled: Sequence[Future],
    *,
    plan: _pipeline.ExportPlan,
    bytes_per_day: float | None,
    **partition: Any,
) -> list[Any]:
    """``dask.delayed`` partitions, one per day: the sampled days' from their
    futures, every later window downloaded once when computed, its days shared by
    its partitions."""
    import dask

    tag = uuid.uuid4().hex[:8]
    part = functools.partial(_partition, plan=plan, **partition)
    fetch = functools.partial(_download, plan=plan, bytes_per_day=bytes_per_day)
    nodes: list[Any] = list(sampled)
    for a, b in windows[1:]:
        window = dask.delayed(fetch, pure=True)(a, b, dask_key_name=_key("download", a, b, tag))
        nodes += [
            dask.delayed(_day, pure=True)(window, i, dask_key_name=_key("day", d, d, tag))
            for i, d in enumerate(_days_of(a, b))
        ]
    days = [d for a, b in windows for d in _days_of(a, b)]
    return [
        dask.delayed(part, pure=True)(node, day, dask_key_name=_key("part", day, day, tag))
        for node, day in zip(nodes, days, strict=True)
    ]


def _write_days(
    client: Client, sink: _pipeline.DatasetWriter, plan: _pipeline.ExportPlan, scanned: _FirstPass
) -> list[Future]:
    """Write the days of ``scanned`` on the workers, each with the kinds one machine
    would write it with, and commit those written; the writes' futures (a failed
    day's raises its error)."""
    from distributed import wait

    days = plan.days
    bodies, sizes = scanned.bodies, scanned.sizes
    for day, report in zip(days, scanned.reports, strict=True):  # as one machine warns
        plan.pinned.warn(report, f"window {day.isoformat()}")
    merged: list[dict[str, Kind]] = []
    for one in scanned.kinds:  # the kinds each day is written with, as on one machine
        merged.append(sink.merged_kinds(one, merged[-1] if merged else None))
    tag = uuid.uuid4().hex[:8]
    writes: list[Future] = client.map(
        _write_day,
        bodies,
        days,
        merged,
        [sink.day_metadata(d, plan.start, plan.end, n) for d, n in zip(days, sizes, strict=True)],
        plan=plan,
        root=sink.location,
        partition_by=sink.ds.partition_by,
        key=[f"robotmia-write-{d.isoformat()}-{tag}" for d in days],
    )
    wait(writes)
    done = [i for i, f in enumerate(writes) if f.status == "finished"]
    results = cast("list[sinks.DayWriteResult]", client.gather([writes[i] for i in done]))
    for i, result in zip(done, results, strict=True):
        # Older days holding a column this day widened are rewritten once, by finish(),
        # as on one machine; the dataset's kinds so far (with the pinned columns as
        # written, and their __raw columns) come first.
        kinds = sink.written(unify_into(dict(sink.kinds), merged[i].items()), plan)
        sink.commit_written(days[i], kinds, result, plan)
    return writes


def _from_map(func: Any, *iterables: Any, **kwargs: Any) -> dd.DataFrame:
    """``dask.dataframe.from_map`` keeping the partitions' dtypes as they are.

    The partitions already have the library's dtypes (``string`` columns included);
    Dask's ``dataframe.convert-string`` would turn the ``object`` dtype of all-null
    columns into ``string`` and so differ from the single-machine result.
    """
    import dask
    import dask.dataframe as dd

    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(func, *iterables, enforce_metadata=False, **kwargs)


def _from_delayed(parts: list[Any], meta: Any) -> dd.DataFrame:
    """``dask.dataframe.from_delayed`` keeping the partitions' dtypes (see :func:`_from_map`)."""
    import dask
    import dask.dataframe as dd

    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(parts, meta=meta, verify_meta=False)


def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    region: str | None = None,
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: parse.OnTypeMismatch = "text",
    dedupe: bool = False,
    time_in_ms: bool = False,
    limit: int | None = None,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
    meta_sample: MetaSample = "all",
    client: Client | None = None,
    window_days: int | Literal["auto"] = "auto",
    window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
) -> dd.DataFrame:
    """Export ``from_date..to_date`` as a Dask DataFrame, one partition per day.

    The keywords mean what they mean in :func:`robotmia_frames.read_robotmia_export`;
    computed, the frame equals its result (same columns, dtypes and rows, in the same
    order; each partition keeps its own ``RangeIndex``). Each request window is
    downloaded and verified on a worker, within ``rate_limit`` across the whole
    cluster (see :class:`ClusterRateLimiter`); a worker runs at most
    ``concurrency`` downloads at once, off its thread pool, and parses meanwhile.
    With ``meta_sample="all"`` (the default) every window is downloaded now and
    scanned for its column types, so that ``meta`` is exact; the bodies wait in
    the cluster's memory for the partitions. ``meta_sample="first"`` fetches only
    the first window now (see the module docs). Needs a ``distributed`` client (``client=``, else the current one).
    With ``on_bad_lines="warn"`` the warnings are issued on the workers.
    ``window_days`` (and ``window_target_bytes``, the most compressed body an auto
    window may bring) sizes the request windows as on one machine; a worker fetches
    a window and hands back its days, still one partition per day.
    ``dtype``/``on_type_mismatch`` pin column types as on one machine: the first
    pass counts each day's misfits, so ``meta`` has the pinned types (and the
    ``__raw`` columns of ``"null"``), and the warning is given once, on the client.
    ``sparse_columns="map"`` (with ``meta_sample="all"``) keeps the keys filled in
    at least ``sparse_threshold`` of the rows of the whole export as columns, the
    rest in the ``properties`` map column, as on one machine: the first pass counts
    each day's keys. ``max_memory`` bounds each partition on its worker, with the
    estimate of a read on one machine (``"auto"``: half the memory available to
    the worker): the first pass checks each day as the partition it becomes while
    it parses it, so a day over the budget raises ``MemoryBudgetError`` after its
    first chunks, before the worker holds it and before any partition is built;
    each partition is checked again as it is parsed (with ``meta_sample="first"``,
    the days the first pass did not see). ``split_by="event"`` is refused: a Dask DataFrame is
    one frame (take one event with ``event=``, or write the event layout with
    :func:`export_to_parquet`).

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> ddf = rfd.read_robotmia_export(  # doctest: +SKIP
        ...     "2024-01-01", "2024-01-07", api_secret="...", project_timezone="Europe/Paris")
        >>> ddf.npartitions, list(ddf.columns[:2])  # doctest: +SKIP
        (7, ['event', 'time'])
    """
    given = dict(locals())
    plan = _cluster_plan(given)
    shape = _wide.Shape.of(given)
    backend = shape.dtype_backend
    _options.frame_split(shape.split_by, "robotmia_frames.dask.read_robotmia_export")
    if meta_sample not in ("all", "first"):
        raise InvalidArgumentError(f"meta_sample must be 'all' or 'first', got {meta_sample!r}")
    first = meta_sample == "first"
    sparse = shape.sparse is not None and plan.columns is None  # with columns=, no map
    if sparse and first:
        raise InvalidArgumentError(
            "sparse_columns='map' needs meta_sample='all': which keys stay columns is "
            "decided over every day, as on one machine"
        )
    dask_client = _client(client)
    scanned = _first_pass(
        dask_client, plan, sample_first=first, pinned_known=not first, shape=shape
    )
    kinds = _pipeline.unified_kinds(scanned.kinds)
    pins = _pipeline.SettledPins.settled(
        plan.pinned,
        scanned.reports,
        plan.source,
    )
    kept: dict[str, Kind] | None = None
    if sparse:
        spec = _pipeline.TableSpec(
            kinds, plan.timezone, None, plan.dedupe, plan.time_unit,
            keep_keys=plan.pinned.keys(),
        )  # fmt: skip
        kept = _wide.kept_kinds(spec, scanned.rows, scanned.fill, shape.threshold)
        empty = _pipeline.final_schema(kept, None).empty_table()
        empty = empty.append_column(
            pa.field(_wide.MAP_COLUMN, parse.MAP_TYPE), pa.array([], parse.MAP_TYPE)
        )
    else:
        empty = _pipeline.final_schema(kinds, plan.columns).empty_table()
    meta = _pipeline.deliver(pins.apply(empty, "meta"), "pandas", backend)
    if first:
        parts = _lazy_partitions(
            scanned.windows,
            scanned.bodies,
            plan=plan,
            bytes_per_day=scanned.bytes_per_day,
            kinds=kinds,
            dtype_backend=backend,
            pins=pins,
            check=True,
            shape=shape,
        )
        return _from_delayed(parts, meta)
    return _from_map(
        _partition,
        scanned.bodies,
        plan.days,
        plan=plan,
        kinds=kinds,
        dtype_backend=backend,
        pins=pins,
        kept=kept,
        shape=shape,
        meta=meta,
        label="robotmia-export",
    )


def export_to_parquet(
    path: str | os.PathLike[str],
    from_date: DateLike,
    to_date: DateLike,
    *,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    region: str | None = None,
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    partition_by: Sequence[str] = ("date",),
    columns: Sequence[str] | None = None,
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: parse.OnTypeMismatch = "text",
    dedupe: bool = False,
    time_in_ms: bool = False,
    limit: int | None = None,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
    client: Client | None = None,
    window_days: int | Literal["auto"] = "auto",
    window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
) -> ExportSummary:
    """Export ``from_date..to_date`` into a Parquet dataset at ``path``, on the workers.

    The dataset is the one :func:`robotmia_frames.export_to_parquet` writes for the
    same range: the same Hive partitions, files, schemas (per file) and rows. Each
    worker writes whole days with the same atomic swap; the types are planned on
    the client from a first pass over the windows, exactly as the single-machine
    writer unifies them day after day (older days holding a column that a later
    day widened are rewritten, on the client). ``path`` must be one shared
    filesystem path that the client and every worker see (the swap is a
    ``rename``), or a URL of shared storage (``s3://...``, with ``storage_options``
    or ``filesystem`` as in :func:`robotmia_frames.export_to_parquet`), where the
    workers write each day as one object. If any window fails in the first pass nothing is written; a day
    that fails to write leaves its old partition, the other days are written, and
    the error names the day. A killed worker's task is run again elsewhere.
    ``window_days`` and ``window_target_bytes`` size the request windows as on one
    machine (``"auto"``: from the dataset's history when it has one); each day is
    still written on its own.
    ``dtype``/``on_type_mismatch`` pin column types as on one machine (with
    ``"error"``, a misfit found by the first pass stops the export before anything
    is written); the warnings are given on the client, one per day with misfits.
    ``columns``, ``split_by``, ``sparse_columns``, ``sparse_threshold`` and
    ``max_memory`` as in :func:`robotmia_frames.export_to_parquet`: only those
    columns are written (one no day holds is an error before anything is
    written), ``split_by="event"`` is the event layout, ``sparse_columns="map"`` is
    refused; the first pass checks each day against ``max_memory`` on its worker
    (``"auto"``: half the memory available to the worker), so a day over it raises
    ``MemoryBudgetError`` before any day is written. A wide day too big to hold
    (see ``docs/wide.md``) is not held, in the first pass or when written: it is
    parsed again from its body as it is written, chunk by chunk, as on one machine.

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> s = rfd.export_to_parquet("/shared/events", "2024-01-01", "2024-12-31",  # doctest: +SKIP
        ...                           api_secret="...", project_timezone="Europe/Paris")
        >>> s.days  # doctest: +SKIP
        366
    """
    given = dict(locals())
    plan = _cluster_plan(given)
    shape, partition_by = _wide.dataset_shape(given, "robotmia_frames.dask.export_to_parquet")
    dask_client = _client(client)
    sink = _pipeline.DatasetWriter(
        path,
        partition_by,
        plan.metadata(),
        storage_options=storage_options,
        filesystem=filesystem,
    )
    try:
        if sink.ds.table_format != "hive":
            raise InvalidArgumentError(
                f"robotmia_frames.dask writes Hive datasets; {sink.location.url} is a "
                "Delta table: write it with robotmia_frames.export_to_parquet"
            )
        scanned = _first_pass(
            dask_client,
            plan,
            bytes_per_day=sink.state.history_bytes_per_day(),
            shape=shape,
            writes=True,
        )
        writes = _write_days(dask_client, sink, plan, scanned)
        sink.finish()
        sink.ds.recover()  # drop what a killed worker left in the staging folder
        for f in writes:
            if f.status != "finished":
                f.result()  # raises that day's error
        sink.complete(plan.start, plan.end)
        return sink.summary(plan.start, plan.end)
    finally:
        sink.close()


def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    from_date: DateLike | None = None,
    to_date: DateLike | None = None,
    columns: Sequence[str] | None = None,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    project_timezone: str | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: parse.OnTypeMismatch = "text",
    dedupe: bool = False,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
) -> dd.DataFrame:
    """Read a dataset written by this library as a Dask DataFrame, one partition per day.

    Same contract as :func:`robotmia_frames.read_parquet_dataset`: computed, it
    equals that result. Days with different column sets or types are unified by
    the type policy; ``meta`` comes from the selected files' footers (read on the
    client), and each partition is conformed to it. Only the selected days,
    events and columns are read; ``where`` is pushed down into each file's scan.
    Works with any Dask scheduler (the workers must see ``path``). With ``dtype``
    (pinned types, as on one machine) the selected days are read once more first,
    on the workers, to count the values that do not fit, so that ``meta`` is exact.
    ``sparse_columns="map"`` keeps the columns filled in at least
    ``sparse_threshold`` of the selected rows, the rest in the ``properties`` map
    column: the selected days are read once more first, on the workers, to count
    each column's values. ``max_memory`` bounds each partition: each day is checked
    from its files' footers, on the client, before any data is read (``"auto"``:
    half the memory available to this process, as the workers' is not known
    here). ``split_by="event"`` is refused (a Dask DataFrame is one frame): read one
    event with ``event=``; in a dataset partitioned by event its table is narrow.

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> ddf = rfd.read_parquet_dataset("/shared/events", from_date="2024-06-01")  # doctest: +SKIP
        >>> ddf.groupby("event").size().compute()  # doctest: +SKIP
    """
    query = _pipeline.dataset_query_of(locals())
    shape = _wide.Shape.of(dict(locals()))
    backend = shape.dtype_backend
    _options.frame_split(shape.split_by, "robotmia_frames.dask.read_parquet_dataset")
    pinned = _pipeline.Pinned.checked(dtype, on_type_mismatch)
    selected = {day: files for day, files in query.select().items() if files}
    partition = dataclasses.replace(shape, partition=True)
    for files in selected.values():  # each partition, from its footers
        _wide.dataset_check(query, partition, files)
    schemas = [query.ds.schema_of(f) for files in selected.values() for f in files]
    kinds = sinks.unify_kinds_of_schemas(schemas)
    order = list(query.columns) if query.columns is not None else sinks.column_order(schemas)
    source = f"the dataset at {path}"
    sparse = shape.sparse is not None and query.columns is None  # with columns=, no map
    if sparse and selected:
        import dask

        counts = dask.compute(*(dask.delayed(_dataset_fill)(d, query=query) for d in selected))
        rows = sum(n for n, _ in counts)
        fill = _sum_counts(f for _, f in counts)
        order = _wide.kept_columns(
            order, rows, fill, shape.threshold, frozenset(pinned.dtypes), query
        )
    pins = _pipeline.SettledPins(pinned)
    if pinned.dtypes and selected:
        if query.columns is None:
            pinned.check_known(order, source)
        import dask

        task = dask.delayed(_dataset_misfits, pure=False)
        reports = dask.compute(
            *(
                task(d, query=query, kinds=kinds, order=order, pinned=pinned, source=source)
                for d in selected
            )
        )
        pins = _pipeline.SettledPins.settled(pinned, cast("list[PinReport]", list(reports)), source)
    if sparse:
        empty = _wide.map_schema(kinds, order).empty_table()
    else:
        empty = sinks.conform_table(pa.table({}), kinds, order)
    meta = _pipeline.deliver(pins.apply(empty, "meta"), "pandas", backend)
    days: list[dt.date | None] = [*selected] or [None]
    return _from_map(
        _dataset_partition,
        days,
        query=query,
        kinds=kinds,
        order=order,
        dtype_backend=backend,
        pins=pins,
        sparse=sparse,
        meta=meta,
        label="robotmia-dataset",
    )
