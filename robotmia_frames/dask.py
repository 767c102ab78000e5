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

import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import pandas as pd
import pyarrow as pa

from . import _options, _pipeline, parse, sinks, transport
from ._options import DateLike
from ._pipeline import Connection, ExportSummary
from ._redact import register_secret
from .client import Client as RobotmiaClient
from .errors import InvalidArgumentError, MetaMismatchError
from .parse import Kind, PinReport, unify, unify_into

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


# ------------------------------------------------------------------ rate limit


class ClusterRateLimiter(transport.RateLimiter):
    """A :class:`~robotmia_frames.RateLimit` held across every worker of a cluster.

    On Dask workers (``distributed``): ``concurrent`` is a ``distributed.Semaphore``
    with that many leases, held for each HTTP attempt; ``per_second`` and
    ``per_hour`` are sliding windows over a log of attempt start times kept on the
    scheduler (``Client.set_metadata``), read and updated under a
    ``distributed.Lock``: an attempt starts only when fewer than ``per_second``
    attempts started in the last ``1 + margin`` seconds (and fewer than
    ``per_hour`` in the last ``3600 + margin``). A server's ``Retry-After`` is
    written to the same log and holds every worker back. ``margin`` absorbs
    network jitter and clock differences between machines, so that the server,
    which counts requests when they arrive, sees the budget kept.

    Times are the workers' wall clocks (keep them NTP-synced). A worker that dies
    holding a slot gives it back when its lease times out
    (``distributed.scheduler.locks.lease-timeout``, 30 s by default). Outside a
    Dask worker (or with no limit at all) it acts as a plain, per-process
    :class:`~robotmia_frames.RateLimiter`. Pass one instance to several calls to
    share one budget between them; the state lives on the scheduler under
    ``name``.

    Example:
        >>> from robotmia_frames import RateLimit
        >>> limiter = ClusterRateLimiter(RateLimit(per_second=2, concurrent=2))
        >>> limiter.limit.per_second, limiter.name.startswith("robotmia-rate-")
        (2, True)
    """

    def __init__(
        self,
        limit: transport.RateLimit | None = None,
        *,
        name: str | None = None,
        margin: float = 0.1,
    ) -> None:
        super().__init__(limit)
        self.margin = _options.seconds(margin, "margin", allow_zero=True)
        self.name = name or f"robotmia-rate-{uuid.uuid4().hex}"
        self._init_lock = threading.Lock()
        self._shared: tuple[Any, Any, Any] | None = None
        lim = self.limit
        self._cluster_windows = [
            (length + self.margin, most)
            for length, most in ((1.0, lim.per_second), (3600.0, lim.per_hour))
            if most is not None
        ]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_limiter, (self.limit, self.name, self.margin))

    def __dask_tokenize__(self) -> tuple[str, str]:
        return ("robotmia_frames.dask.ClusterRateLimiter", self.name)

    def __repr__(self) -> str:
        lim = self.limit
        return (
            f"ClusterRateLimiter(per_hour={lim.per_hour!r}, per_second={lim.per_second!r}, "
            f"concurrent={lim.concurrent!r}, name={self.name!r})"
        )

    @property
    def unlimited(self) -> bool:
        """True when no limit is set (nothing to hold across workers)."""
        return not self._cluster_windows and self.limit.concurrent is None

    def _primitives(self) -> tuple[Any, Any, Any] | None:
        """(semaphore, lock, client) when running on a Dask worker, else None."""
        if self.unlimited:
            return None
        with self._init_lock:
            if self._shared is None:
                from distributed import Lock, Semaphore, get_client, get_worker

                try:
                    get_worker()
                except ValueError:
                    return None
                concurrent = self.limit.concurrent
                self._shared = (
                    Semaphore(max_leases=concurrent, name=f"{self.name}-slots")
                    if concurrent is not None
                    else None,
                    Lock(f"{self.name}-lock"),
                    get_client(),
                )
            return self._shared

    def _load(self, client: Any) -> dict[str, Any]:
        """The shared log: ``starts`` (wall-clock times) and ``paused_until``."""
        empty = {"starts": [], "paused_until": 0.0}
        return cast("dict[str, Any]", client.get_metadata(["robotmia_frames", self.name], empty))

    def _save(self, client: Any, starts: list[float], paused_until: float) -> None:
        state = {"starts": starts, "paused_until": paused_until}
        client.set_metadata(["robotmia_frames", self.name], state)

    def _wait(self, state: dict[str, Any], now: float) -> float:
        wait = max(0.0, float(state["paused_until"]) - now)
        for length, most in self._cluster_windows:
            recent = [t for t in state["starts"] if t > now - length]
            if len(recent) >= most:
                wait = max(wait, recent[-most] + length - now)
        return wait

    def _start(self, lock: Any, client: Any) -> None:
        """Wait until the cluster-wide budget allows one more query, and log it."""
        horizon = max((length for length, _ in self._cluster_windows), default=0.0)
        while True:
            with lock:
                state = self._load(client)
                now = time.time()
                wait = self._wait(state, now)
                if wait <= 0:
                    starts = [t for t in state["starts"] if t > now - horizon]
                    self._save(client, [*starts, now], state["paused_until"])
                    return
            time.sleep(min(wait, 1.0))

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for the cluster-wide budget and a free slot; hold the slot for the attempt."""
        shared = self._primitives()
        if shared is None:
            with super().slot():
                yield
            return
        semaphore, lock, client = shared
        begin = time.monotonic()
        if semaphore is not None:
            semaphore.acquire()
        try:
            self._start(lock, client)
            self.queries += 1
            self.waited += time.monotonic() - begin
            yield
        finally:
            if semaphore is not None:
                semaphore.release()

    def pause(self, seconds: float) -> None:
        """Hold every worker back for ``seconds`` (a server's ``Retry-After``)."""
        shared = self._primitives()
        if shared is None:
            super().pause(seconds)
            return
        _, lock, client = shared
        with lock:
            state = self._load(client)
            until = max(float(state["paused_until"]), time.time() + seconds)
            self._save(client, state["starts"], until)


def _limiter(limit: transport.RateLimit, name: str, margin: float) -> ClusterRateLimiter:
    return ClusterRateLimiter(limit, name=name, margin=margin)


# ------------------------------------------------------------------ pinned types


@dataclasses.dataclass(frozen=True)
class _Pins:
    """A call's pinned types (``dtype=``) over a cluster, settled on the client from
    every partition's misfits (the first pass), so that ``meta`` is exact and every
    partition matches it: with ``on_type_mismatch="text"`` a column that has a misfit
    in any partition keeps the type policy's type in all of them (as one machine
    keeps it for the whole result); with ``"null"`` every partition has the
    ``<column>__raw`` column of a column that has a misfit in any of them."""

    pinned: _pipeline.Pinned
    misfit: frozenset[str] = frozenset()

    @classmethod
    def settled(cls, pinned: _pipeline.Pinned, reports: Sequence[PinReport], source: str) -> _Pins:
        """The pins of a call whose partitions' misfits are ``reports``, with the one
        warning one machine gives for the whole ``source``."""
        total = PinReport()
        for one in reports:
            total.add(one)
        pinned.warn(total, source)
        return cls(pinned, frozenset(total.mismatches))

    def apply(self, table: pa.Table, source: str, *, check: bool = False) -> pa.Table:
        """``table`` (one partition, or the empty table of ``meta``) with the pinned
        types. With ``check`` (a partition the first pass did not see), a misfit in a
        column that had none in the sample raises :class:`MetaMismatchError`."""
        pinned = self.pinned
        if not pinned.dtypes:
            return table
        mode = pinned.on_type_mismatch
        dtypes = {c: t for c, t in pinned.dtypes.items() if mode != "text" or c not in self.misfit}
        table, report = parse.pin_types(table, dtypes, mode, source=source)
        unseen = sorted(set(report.mismatches) - self.misfit)
        if check and unseen:
            raise MetaMismatchError(
                f"{source}: {', '.join(unseen)} has values that do not fit the pinned type, "
                "unlike the first day the meta was sampled from; use "
                'meta_sample="all" (the default) for exact types over every day'
            )
        if mode == "null":
            for name in sorted(self.misfit):
                raw = name + parse.RAW_SUFFIX
                if name in table.column_names and raw not in table.column_names:
                    at = table.schema.get_field_index(name) + 1
                    nulls = pa.nulls(table.num_rows, pa.string())
                    table = table.add_column(at, pa.field(raw, pa.string()), nulls)
        return table


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
            request = plan.request(a, b)
            return transport.download_window(
                _pipeline.window_config(plan, a, b),
                request,
                Path(tmp) / f"{request.label}.jsonl.gz",
                limiter=plan.limiter,
                durable=False,
            )

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
def _parsed(body: DayBody, day: dt.date, plan: _pipeline.ExportPlan) -> Iterator[_pipeline.Parsed]:
    """The parse stage over a body held in memory (in a temporary file meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="robotmia-dask-") as tmp:
        path = Path(tmp) / f"{day.isoformat()}.jsonl.gz"
        path.write_bytes(body.body)
        label = f"window {day.isoformat()}"
        yield _pipeline.parse_file(path, label, plan.on_bad_lines, _pipeline.parse_columns(plan))


def _table(
    parsed: _pipeline.Parsed,
    plan: _pipeline.ExportPlan,
    kinds: dict[str, Kind],
    columns: Sequence[str] | None,
) -> pa.Table:
    """One day's rows as a table of ``kinds`` (``flat_table``, as on one machine)."""
    spec = _pipeline.TableSpec(kinds, plan.timezone, columns, plan.dedupe, plan.time_unit)
    return _pipeline.flat_table([parsed], spec)


class _DayScan(NamedTuple):
    """What the first pass learns of one day (:func:`_window_kinds`)."""

    rows: int
    kinds: dict[str, Kind]
    report: PinReport  # the values that do not fit the pinned types
    bytes_per_day: int  # of the body the day came in


def _window_kinds(body: DayBody, day: dt.date, *, plan: _pipeline.ExportPlan) -> _DayScan:
    """Task: the rows and column kinds of one day, the values that do not fit the
    pinned types (first pass; with ``on_type_mismatch="error"`` a misfit raises
    here, before anything is written) and the body bytes per day it came with."""
    with _parsed(body, day, plan) as parsed:
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
        return _DayScan(parsed.rows, parsed.kinds, report, body.bytes_per_day)


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
    pins: _Pins,
    check: bool = False,
) -> pd.DataFrame:
    """Task: one day as a pandas partition with the export-wide types."""
    with _parsed(body, day, plan) as parsed:
        if check:
            _check_fits(parsed, kinds, day)
        table = pins.apply(_table(parsed, plan, kinds, plan.columns), parsed.label, check=check)
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
    with _parsed(body, day, plan) as parsed:
        return _pipeline.write_window(ds, day, parsed, merged, plan, metadata)


def _dataset_partition(
    day: dt.date | None,
    *,
    query: _pipeline.DatasetQuery,
    kinds: dict[str, Kind],
    order: list[str],
    dtype_backend: sinks.DtypeBackend,
    pins: _Pins,
) -> pd.DataFrame:
    """Task: one day of a dataset, conformed to the types of the whole selection."""
    table = pins.apply(sinks.conform_table(query.read(day), kinds, order), str(day))
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
_PLAN = frozenset(inspect.signature(Connection.plan).parameters) - {"self", "from_date", "to_date"}


def _cluster_plan(given: dict[str, Any]) -> _pipeline.ExportPlan:
    """Check every argument of a public function (``given``: its ``locals()``), as on
    one machine, and share the rate limit over the cluster."""
    settings = _SETTINGS.bind(**{k: v for k, v in given.items() if k in _SETTINGS.parameters})
    settings.apply_defaults()  # the client's defaults for the settings dask does not take
    call = {k: v for k, v in given.items() if k in _PLAN}
    plan = Connection.checked(**settings.arguments).plan(
        given["from_date"], given["to_date"], progress=False, **call
    )
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


def _first_pass(
    client: Client,
    plan: _pipeline.ExportPlan,
    *,
    bytes_per_day: float | None = None,
    sample_first: bool = False,
    pinned_known: bool = False,
) -> _FirstPass:
    """Download the windows (their days stay on the workers) and gather the days'
    kinds and the values that do not fit the pinned types; with ``sample_first``,
    the first window only. Without it (every day scanned), an asked-for column
    (with ``pinned_known``, a pinned one too) that no day holds is an error, as on
    one machine."""
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
    )


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
    meta_sample: MetaSample = "all",
    client: Client | None = None,
    window_days: int | Literal["auto"] = "auto",
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
    ``window_days`` sizes the request windows as on one machine; a worker fetches a
    window and hands back its days, still one partition per day.
    ``dtype``/``on_type_mismatch`` pin column types as on one machine: the first
    pass counts each day's misfits, so ``meta`` has the pinned types (and the
    ``__raw`` columns of ``"null"``), and the warning is given once, on the client.

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> ddf = rfd.read_robotmia_export(  # doctest: +SKIP
        ...     "2024-01-01", "2024-01-07", api_secret="...", project_timezone="Europe/Paris")
        >>> ddf.npartitions, list(ddf.columns[:2])  # doctest: +SKIP
        (7, ['event', 'time'])
    """
    plan = _cluster_plan(dict(locals()))
    backend = _options.dtype_backend(dtype_backend)
    if meta_sample not in ("all", "first"):
        raise InvalidArgumentError(f"meta_sample must be 'all' or 'first', got {meta_sample!r}")
    dask_client = _client(client)
    first = meta_sample == "first"
    scanned = _first_pass(dask_client, plan, sample_first=first, pinned_known=not first)
    kinds = _pipeline.unified_kinds(scanned.kinds)
    pins = _Pins.settled(
        plan.pinned,
        scanned.reports,
        plan.source,
    )
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
    client: Client | None = None,
    window_days: int | Literal["auto"] = "auto",
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
    ``window_days`` sizes the request windows as on one machine (``"auto"``: from
    the dataset's history when it has one); each day is still written on its own.
    ``dtype``/``on_type_mismatch`` pin column types as on one machine (with
    ``"error"``, a misfit found by the first pass stops the export before anything
    is written); the warnings are given on the client, one per day with misfits.

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> s = rfd.export_to_parquet("/shared/events", "2024-01-01", "2024-12-31",  # doctest: +SKIP
        ...                           api_secret="...", project_timezone="Europe/Paris")
        >>> s.days  # doctest: +SKIP
        366
    """
    from distributed import wait

    plan = _cluster_plan(dict(locals()))
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
        days = plan.days
        scanned = _first_pass(dask_client, plan, bytes_per_day=sink.state.history_bytes_per_day())
        bodies, sizes = scanned.bodies, scanned.sizes
        for day, report in zip(days, scanned.reports, strict=True):  # as one machine warns
            plan.pinned.warn(report, f"window {day.isoformat()}")
        merged: list[dict[str, Kind]] = []
        for one in scanned.kinds:  # the kinds each day is written with, as on one machine
            merged.append(sink.merged_kinds(one, merged[-1] if merged else None))
        tag = uuid.uuid4().hex[:8]
        writes = dask_client.map(
            _write_day,
            bodies,
            days,
            merged,
            [
                sink.day_metadata(d, plan.start, plan.end, n)
                for d, n in zip(days, sizes, strict=True)
            ],
            plan=plan,
            root=sink.location,
            partition_by=sink.ds.partition_by,
            key=[f"robotmia-write-{d.isoformat()}-{tag}" for d in days],
        )
        wait(writes)
        done = [i for i, f in enumerate(writes) if f.status == "finished"]
        results = cast("list[sinks.DayWriteResult]", dask_client.gather([writes[i] for i in done]))
        for i, result in zip(done, results, strict=True):
            # Older days holding a column this day widened are rewritten once, by finish(),
            # as on one machine; the dataset's kinds so far (with the pinned columns as
            # written, and their __raw columns) come first.
            kinds = unify_into(dict(sink.kinds), merged[i].items())
            sink.commit_written(days[i], kinds, result, plan)
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

    Example:
        >>> import robotmia_frames.dask as rfd
        >>> ddf = rfd.read_parquet_dataset("/shared/events", from_date="2024-06-01")  # doctest: +SKIP
        >>> ddf.groupby("event").size().compute()  # doctest: +SKIP
    """
    query = _pipeline.dataset_query(
        path,
        from_date=from_date,
        to_date=to_date,
        columns=columns,
        event=event,
        where=where,
        project_timezone=project_timezone,
        dedupe=dedupe,
        storage_options=storage_options,
        filesystem=filesystem,
    )
    backend = _options.dtype_backend(dtype_backend)
    pinned = _pipeline.Pinned.checked(dtype, on_type_mismatch)
    selected = {day: files for day, files in query.select().items() if files}
    schemas = [query.ds.schema_of(f) for files in selected.values() for f in files]
    kinds = sinks.unify_kinds_of_schemas(schemas)
    order = list(query.columns) if query.columns is not None else sinks.column_order(schemas)
    source = f"the dataset at {path}"
    pins = _Pins(pinned)
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
        pins = _Pins.settled(pinned, cast("list[PinReport]", list(reports)), source)
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
        meta=meta,
        label="robotmia-dataset",
    )
