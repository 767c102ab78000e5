"""The public functions: thin orchestration over transport -> parse -> time -> sinks."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from . import _cache, _progress, _sync_state, engine, parse, sinks, transport
from ._redact import register_secret
from ._version import __version__
from .errors import InvalidArgumentError
from .timeconv import TIME_TYPE, local_seconds_to_utc, resolve_timezone
from .typepolicy import Kind, arrow_type, unify
from .where import filter_table, referenced_columns, validate_where

__all__ = [
    "ExportSummary",
    "export_to_parquet",
    "read_export_file",
    "read_parquet_dataset",
    "read_robotmia_export",
    "sync_to_parquet",
]

DateLike = str | dt.date
ReturnType = Literal["pandas", "arrow"]
SECRET_ENV = "ROBOTMIA_API_SECRET"
TIMEZONE_ENV = "ROBOTMIA_PROJECT_TIMEZONE"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ----------------------------------------------------------------- argument checks


def _parse_date(value: Any, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidArgumentError(
        f"{name} must be a 'YYYY-MM-DD' string or a datetime.date, got {value!r}"
    )


def _date_range(from_date: Any, to_date: Any) -> tuple[dt.date, dt.date]:
    start = _parse_date(from_date, "from_date")
    end = _parse_date(to_date, "to_date")
    if start > end:
        raise InvalidArgumentError(
            f"from_date {start.isoformat()} is after to_date {end.isoformat()} "
            "(both are inclusive days of the project's timezone)"
        )
    return start, end


def _events(event: Any) -> tuple[str, ...] | None:
    if event is None:
        return None
    if isinstance(event, str):
        names: list[Any] = [event]
    elif isinstance(event, (list, tuple)):
        names = list(event)
    else:
        raise InvalidArgumentError(
            f"event must be None, a string or a list of strings, got {type(event).__name__}"
        )
    if not names:
        raise InvalidArgumentError(
            "event=[] selects nothing; pass event=None to export every event"
        )
    for n in names:
        if not isinstance(n, str) or not n:
            raise InvalidArgumentError(f"event names must be non-empty strings, got {n!r}")
    return tuple(names)


def _where(where: Any) -> str | None:
    if where is None:
        return None
    if not isinstance(where, str):
        raise InvalidArgumentError(f"where must be None or a string, got {type(where).__name__}")
    if not where.strip():
        raise InvalidArgumentError("where is empty; pass where=None for no filter")
    validate_where(where)
    return where


def _secret(api_secret: str | None) -> str:
    secret = api_secret if api_secret is not None else os.environ.get(SECRET_ENV)
    if not isinstance(secret, str) or not secret.strip():
        raise InvalidArgumentError(
            f"no API secret: pass api_secret=... or set the {SECRET_ENV} environment variable "
            "(Project Settings in robotmia)"
        )
    return secret


def _timezone(project_timezone: str | None) -> str:
    tz = project_timezone if project_timezone is not None else os.environ.get(TIMEZONE_ENV)
    if tz is None or (isinstance(tz, str) and not tz.strip()):
        raise InvalidArgumentError(
            "no project timezone: pass project_timezone='Europe/Paris' (the timezone in the "
            f"project's settings) or set {TIMEZONE_ENV}; export times are project-local "
            "and cannot be converted to UTC without it"
        )
    resolve_timezone(tz)
    return tz


def _return_type(value: Any) -> ReturnType:
    if value not in ("pandas", "arrow"):
        raise InvalidArgumentError(f"return_type must be 'pandas' or 'arrow', got {value!r}")
    return value  # type: ignore[no-any-return]


def _dtype_backend(value: Any) -> sinks.DtypeBackend:
    if value not in ("numpy_nullable", "pyarrow"):
        raise InvalidArgumentError(
            f"dtype_backend must be 'numpy_nullable' or 'pyarrow', got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def _columns(columns: Any) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not isinstance(columns, (list, tuple)):
        raise InvalidArgumentError("columns must be a list of column names")
    out: list[str] = []
    for c in columns:
        if not isinstance(c, str) or not (
            c in ("event", "time") or c.startswith(parse.PROPERTY_PREFIX)
        ):
            raise InvalidArgumentError(
                f"unknown column {c!r}: columns are 'event', 'time' and 'properties.<key>'"
            )
        if c not in out:
            out.append(c)
    return out


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class _ExportPlan:
    start: dt.date
    end: dt.date
    event: tuple[str, ...] | None
    where: str | None
    timezone: str
    config: transport.TransportConfig = field(repr=False)
    on_bad_lines: parse.OnBadLines
    columns: list[str] | None
    concurrency: int
    limiter: transport.RateLimiter = field(repr=False)
    time_in_ms: bool = False
    limit: int | None = None
    cache_dir: Path | None = None
    refresh: bool = False
    dedupe: bool = False
    progress: _progress.Progress | None = field(default=None, repr=False)

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]

    @property
    def time_unit(self) -> str:
        return "ms" if self.time_in_ms else "s"

    def request(self, day: dt.date) -> transport.WindowRequest:
        extra: list[tuple[str, str]] = []
        if self.time_in_ms:
            extra.append(("time_in_ms", "true"))
        if self.limit is not None:
            extra.append(("limit", str(self.limit)))
        return transport.WindowRequest(
            from_date=day,
            to_date=day,
            event=self.event,
            where=self.where,
            extra_params=tuple(extra),
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "from_date": self.start.isoformat(),
            "to_date": self.end.isoformat(),
            "event": list(self.event) if self.event is not None else None,
            "where": self.where,
            "project_timezone": self.timezone,
            "time_in_ms": self.time_in_ms,
            "limit": self.limit,
            "library": f"robotmia-frames {__version__}",
        }


def _plan(
    from_date: Any,
    to_date: Any,
    *,
    event: Any = None,
    where: Any = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    region: str | None = None,
    on_bad_lines: str = "error",
    columns: Any = None,
    concurrency: Any = 4,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    time_in_ms: bool = False,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    dedupe: bool = False,
    progress: _progress.ProgressArg = None,
) -> _ExportPlan:
    """Check every argument, before anything is sent."""
    start, end = _date_range(from_date, to_date)
    events = _events(event)
    where_ = _where(where)
    tz = _timezone(project_timezone)
    if region is not None and (not isinstance(region, str) or region not in transport.REGION_URLS):
        raise InvalidArgumentError(
            f"region must be one of {sorted(transport.REGION_URLS)}, got {region!r}"
        )
    secret = _secret(api_secret)
    register_secret(secret)  # before any message could show it (e.g. in a base_url)
    url = base_url or transport.REGION_URLS[region or "us"]
    transport.validate_base_url(url)
    extra: dict[str, Any] = {}
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        extra["read_timeout"] = float(timeout)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(
            f"max_retries must be a non-negative integer, got {max_retries!r}"
        )
    if (
        isinstance(retry_backoff, bool)
        or not isinstance(retry_backoff, (int, float))
        or not 0 <= retry_backoff < float("inf")
    ):
        raise InvalidArgumentError(
            f"retry_backoff must be a number of seconds >= 0, got {retry_backoff!r}"
        )
    extra["backoff_base"] = float(retry_backoff)
    if limit is not None:
        limit = _positive_int(limit, "limit")
    if isinstance(rate_limit, transport.RateLimiter):
        limiter = rate_limit
    elif isinstance(rate_limit, transport.RateLimit):
        limiter = transport.RateLimiter(rate_limit)
    elif rate_limit is None:
        # robotmia's documented budget applies to robotmia; a local server (tests, the
        # emulator) gets no limit unless one is asked for.
        host = urlsplit(url).hostname or ""
        local = transport.is_loopback_host(host)
        limiter = transport.RateLimiter(
            transport.RateLimit(None, None, None) if local else transport.RateLimit()
        )
    else:
        raise InvalidArgumentError(
            f"rate_limit must be a RateLimit, a RateLimiter or None, got {type(rate_limit).__name__}"
        )
    config = transport.TransportConfig(
        base_url=url, api_secret=secret, max_retries=max_retries, verify=verify, **extra
    )
    return _ExportPlan(
        start=start,
        end=end,
        event=events,
        where=where_,
        timezone=tz,
        config=config,
        on_bad_lines=parse.validate_on_bad_lines(on_bad_lines),
        columns=_columns(columns),
        concurrency=_positive_int(concurrency, "concurrency"),
        limiter=limiter,
        time_in_ms=bool(time_in_ms),
        limit=limit,
        cache_dir=Path(os.fspath(cache_dir)) if cache_dir is not None else None,
        refresh=bool(refresh),
        dedupe=bool(dedupe),
        progress=_progress.make(progress, total=(end - start).days + 1, limiter=limiter),
    )


# ------------------------------------------------------------------ window pipeline


@dataclass
class _Parsed:
    """One parsed source (a day window or a file): its batches and column kinds."""

    path: Path
    label: str
    batches: list[engine.RawBatch]
    kinds: dict[str, Kind]

    @property
    def rows(self) -> int:
        return sum(b.num_rows for b in self.batches)


@dataclass
class _Window:
    day: dt.date
    result: transport.DownloadResult
    parsed: _Parsed
    cached: bool = False

    @property
    def label(self) -> str:
        return f"window {self.day.isoformat()}"

    @property
    def kinds(self) -> dict[str, Kind]:
        return self.parsed.kinds


def _parse_file(
    path: Path,
    label: str,
    on_bad_lines: parse.OnBadLines,
    columns: Sequence[str] | None,
    progress: _progress.Progress | None = None,
) -> _Parsed:
    """The parse stage over one local body (the fast engine, all of it in memory)."""
    kinds: dict[str, Kind] = {}
    keys = None
    if columns is not None:
        keys = frozenset(
            c[len(parse.PROPERTY_PREFIX) :] for c in columns if c.startswith(parse.PROPERTY_PREFIX)
        )
    batches = []
    for batch in engine.read_raw_batches(path, source=label, on_bad_lines=on_bad_lines, keys=keys):
        engine.merge_kinds(kinds, batch)
        batches.append(batch)
        if progress is not None:
            progress.rows_done(batch.num_rows)
    return _Parsed(path, label, batches, kinds)


def _iter_windows(plan: _ExportPlan, workdir: Path) -> Iterator[_Window]:
    """Download day windows (``plan.concurrency`` at once) and scan each as it lands.

    Parsing (in this thread) overlaps the downloads (in the pool). Windows are
    yielded in completion order; on the first failure the pending downloads are
    cancelled and the error propagates, naming the day. With ``cache_dir`` a
    verified window is kept and later runs reuse it instead of downloading.
    """
    cache = _cache.WindowCache(plan.cache_dir) if plan.cache_dir is not None else None
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    local = threading.local()

    def fetch(day: dt.date) -> transport.DownloadResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = transport.make_session()
            with lock:
                sessions.append(session)
        request = plan.request(day)
        dest = (
            cache.path_for(plan.config.base_url, request)
            if cache is not None
            else workdir / f"{day.isoformat()}.jsonl.gz"
        )
        result = transport.download_window(
            plan.config, request, dest, session=session, limiter=plan.limiter
        )
        if cache is not None:
            # Vouched for at once, so a download that completes while another day
            # fails (or Ctrl-C) is reused by the next run instead of fetched again.
            cache.record(plan.config.base_url, result)
        return result

    todo: list[dt.date] = []
    ready: list[tuple[dt.date, transport.DownloadResult]] = []
    for day in plan.days:
        hit = None
        if cache is not None and not plan.refresh:
            hit = cache.lookup(plan.config.base_url, plan.request(day))
        if hit is not None:
            ready.append((day, hit))
        else:
            todo.append(day)

    def scanned(day: dt.date, result: transport.DownloadResult, cached: bool) -> _Window:
        label = f"window {day.isoformat()}"
        parsed = _parse_file(result.path, label, plan.on_bad_lines, _parse_columns(plan))
        if plan.progress is not None:
            plan.progress.window_done(result.bytes_received, parsed.rows)
        return _Window(day, result, parsed, cached)

    for day, hit in ready:
        yield scanned(day, hit, True)
    if not todo:
        return
    pool = ThreadPoolExecutor(
        max_workers=min(plan.concurrency, len(todo)), thread_name_prefix="robotmia-dl"
    )
    pending: dict[Future[transport.DownloadResult], dt.date] = {}
    try:
        it = iter(todo)
        for day in it:
            pending[pool.submit(fetch, day)] = day
            if len(pending) >= plan.concurrency * 2:
                break
        # Windows are handed on in day order (so that datasets and column orders do
        # not depend on download timing); later days wait on disk, not in memory.
        landed: dict[dt.date, transport.DownloadResult] = {}
        order = iter(todo)
        expected = next(order, None)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f]):
                day = pending.pop(fut)
                landed[day] = fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(fetch, nxt)] = nxt
            while expected is not None and expected in landed:
                yield scanned(expected, landed.pop(expected), False)
                expected = next(order, None)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for s in sessions:
            s.close()


def _finish(batch: pa.RecordBatch, tz: str, unit: str = "s") -> pa.RecordBatch:
    """The time stage applied to one parsed batch."""
    if "time" not in batch.schema.names:
        return batch
    i = batch.schema.get_field_index("time")
    return batch.set_column(
        i, pa.field("time", TIME_TYPE), local_seconds_to_utc(batch.column(i), tz, unit=unit)
    )


def _final_schema(kinds: dict[str, Kind], columns: Sequence[str] | None) -> pa.Schema:
    schema = parse.export_schema(kinds, columns)
    if "time" in schema.names:
        schema = schema.set(schema.get_field_index("time"), pa.field("time", TIME_TYPE))
    return schema


def _parse_columns(plan: _ExportPlan) -> list[str] | None:
    """The columns to parse: those asked for, plus what dedupe needs."""
    return sinks.with_dedupe_keys(plan.columns, plan.dedupe)


def _batches(
    parsed: _Parsed,
    kinds: dict[str, Kind],
    tz: str,
    columns: Sequence[str] | None,
    *,
    dedupe: bool = False,
    unit: str = "s",
) -> Iterator[pa.RecordBatch]:
    """One source's batches with the final kinds, through the time stage (and dedupe)."""
    parse_columns = sinks.with_dedupe_keys(columns, dedupe)
    schema = parse.export_schema(kinds, parse_columns)
    deduper = sinks.Deduper() if dedupe else None
    for raw in parsed.batches:
        if not raw.num_rows:
            continue
        out = _finish(engine.conform(raw, kinds, schema, path=parsed.path), tz, unit)
        if deduper is not None:
            out = deduper(out)
            if columns is not None and parse_columns != list(columns):
                out = out.select(list(columns))
        yield out


def _deliver(
    table: pa.Table, return_type: ReturnType, dtype_backend: sinks.DtypeBackend
) -> pd.DataFrame | pa.Table:
    if return_type == "arrow":
        return table
    return sinks.to_pandas(table, dtype_backend=dtype_backend)


# ----------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_to_parquet` (or :func:`sync_to_parquet`) wrote."""

    path: Path
    rows: int
    days: int
    files: int
    bytes: int
    rows_per_day: dict[str, int] = field(default_factory=dict)
    from_date: dt.date | None = None
    to_date: dt.date | None = None


class _DatasetSink:
    """Writes one day at a time, keeping column types consistent across days."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        partition_by: Sequence[str],
        metadata: dict[str, Any],
    ) -> None:
        self.ds = sinks.ParquetDataset(Path(os.fspath(root)), partition_by=partition_by)
        self.ds.recover()
        self.kinds = self.ds.current_kinds()
        self.metadata = metadata
        self.rows = 0
        self.files = 0
        self.bytes = 0
        self.rows_per_day: dict[str, int] = {}
        # A run killed between writing a wider day and rewriting the older ones leaves
        # days with narrower types: bring them in line first.
        self.widened: set[str] = set(self.kinds)
        self.finish()

    def finish(self) -> None:
        """Rewrite, once each, the days holding a column narrower than the dataset's
        kind for it (a later day widened it), so every file agrees on every type."""
        if not self.widened:
            return
        for day in self.ds.days():
            if any(self._narrower(f, self.widened) for f in self.ds.files(day)):
                self.ds.rewrite_day(day, self.kinds, self.metadata)
        self.widened = set()

    def write(self, window: _Window, plan: _ExportPlan) -> None:
        """Write one downloaded window as its day's partition."""
        merged = self.merged_kinds(window.kinds)
        result = _write_window(self.ds, window.day, window.parsed, merged, plan, self.metadata)
        self.commit(window.day, merged, result)

    def merged_kinds(
        self, window_kinds: dict[str, Kind], base: dict[str, Kind] | None = None
    ) -> dict[str, Kind]:
        """The dataset's column kinds (``base``, else the current ones) plus a window's."""
        merged = dict(self.kinds if base is None else base)
        for k, v in window_kinds.items():
            key = parse.PROPERTY_PREFIX + k
            merged[key] = unify(merged.get(key), v)
        return merged

    def commit(
        self,
        day: dt.date,
        merged: dict[str, Kind],
        result: sinks.DayWriteResult,
        *,
        skip: frozenset[dt.date] = frozenset(),
    ) -> None:
        """Record ``day`` as written with the ``merged`` kinds and count what was
        written. Days it widened a column for are rewritten once, by :meth:`finish`
        (``skip`` is accepted for callers that write days concurrently)."""
        self.widened |= {k for k, v in merged.items() if k in self.kinds and self.kinds[k] is not v}
        self.kinds = merged
        self.rows += result.rows
        self.files += len(result.files)
        self.bytes += result.bytes
        self.rows_per_day[day.isoformat()] = result.rows

    def _narrower(self, path: Path, widened: set[str]) -> bool:
        schema = pq.read_schema(path)
        return any(
            name in widened and schema.field(name).type != arrow_type(self.kinds[name])
            for name in schema.names
        )

    def summary(self, start: dt.date, end: dt.date) -> ExportSummary:
        return ExportSummary(
            self.ds.root,
            self.rows,
            len(self.rows_per_day),
            self.files,
            self.bytes,
            dict(self.rows_per_day),
            start,
            end,
        )


def _write_window(
    ds: sinks.ParquetDataset,
    day: dt.date,
    parsed: _Parsed,
    merged: dict[str, Kind],
    plan: _ExportPlan,
    metadata: dict[str, Any],
) -> sinks.DayWriteResult:
    """Write one parsed window as the partition of ``day``, typed by the dataset's
    ``merged`` kinds (``_DatasetSink.merged_kinds``); the swap-in is atomic."""
    prop_kinds = {
        k[len(parse.PROPERTY_PREFIX) :]: v
        for k, v in merged.items()
        if k.startswith(parse.PROPERTY_PREFIX)
    }
    schema = _final_schema(prop_kinds, None)
    batches = _batches(
        parsed, prop_kinds, plan.timezone, None, dedupe=plan.dedupe, unit=plan.time_unit
    )
    return ds.write_day(day, schema, batches, metadata=metadata)


def _write_dataset(
    plan: _ExportPlan, path: str | os.PathLike[str], partition_by: Sequence[str], workdir: Path
) -> ExportSummary:
    sink = _DatasetSink(path, partition_by, plan.metadata())
    try:
        for w in _iter_windows(plan, workdir):
            try:
                sink.write(w, plan)
            finally:
                if not w.cached and plan.cache_dir is None:
                    with contextlib.suppress(OSError):
                        w.result.path.unlink()
    except BaseException:
        with contextlib.suppress(Exception):  # keep the days written consistent; the
            sink.finish()  # next run repairs them if even this fails
        raise
    finally:
        if plan.progress is not None:
            plan.progress.close()
    sink.finish()
    return sink.summary(plan.start, plan.end)


# ------------------------------------------------------------------------- public


def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    parquet_path: str | os.PathLike[str] | None = None,
    return_type: ReturnType = "pandas",
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    partition_by: Sequence[str] = ("date",),
    dedupe: bool = False,
    region: str | None = None,
    time_in_ms: bool = False,
    limit: int | None = None,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
) -> pd.DataFrame | pa.Table:
    """Export every event of ``from_date..to_date`` (inclusive, project-local days).

    Returns a pandas DataFrame (nullable dtypes; ``dtype_backend="pyarrow"`` for
    ``ArrowDtype``) or, with ``return_type="arrow"``, a :class:`pyarrow.Table`, with
    columns ``event``, ``time`` (UTC) and ``properties.<key>``. The range is fetched
    as day windows, ``concurrency`` at a time within ``rate_limit``; every body is
    verified complete before it is parsed. With ``parquet_path`` the same rows are
    also written as a Hive-partitioned dataset (``date=YYYY-MM-DD/``), one atomic day
    at a time. Failed requests are retried ``max_retries`` times with full-jitter
    exponential backoff starting at ``retry_backoff`` seconds (doubling, at most 60 s;
    a server's ``Retry-After`` wins). ``region`` (``"us"``, ``"eu"``, ``"in"``) picks
    the endpoint unless ``base_url`` is given; ``limit`` caps the number of events
    returned (the first ones, in day order; it is also sent as the export's ``limit``
    parameter with every window, so no window downloads more); ``cache_dir``
    keeps verified window bodies so that a re-run downloads only what is missing
    (``refresh=True``: everything). See ``docs/api.md`` for every option.

    Example:
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> with ExportServer(generate_events(50, days=2), api_secret="s") as srv:
        ...     df = read_robotmia_export("2024-01-01", "2024-01-02", api_secret="s",
        ...                               project_timezone="UTC", base_url=srv.url)
        >>> len(df), list(df.columns[:2])
        (50, ['event', 'time'])
    """
    plan = _plan(
        from_date, to_date, event=event, where=where, api_secret=api_secret,
        project_timezone=project_timezone, base_url=base_url, region=region,
        on_bad_lines=on_bad_lines, columns=columns, concurrency=concurrency, timeout=timeout,
        max_retries=max_retries, retry_backoff=retry_backoff, verify=verify,
        rate_limit=rate_limit, time_in_ms=time_in_ms,
        limit=limit, cache_dir=cache_dir, refresh=refresh, dedupe=dedupe, progress=progress,
    )  # fmt: skip
    rtype = _return_type(return_type)
    backend = _dtype_backend(dtype_backend)
    if parquet_path is not None and plan.columns is not None:
        raise InvalidArgumentError(
            "columns= cannot be combined with parquet_path= (the dataset keeps every column)"
        )
    sink = (
        _DatasetSink(parquet_path, partition_by, plan.metadata())
        if parquet_path is not None
        else None
    )
    with tempfile.TemporaryDirectory(prefix="robotmia-export-") as tmp:
        windows: list[_Window] = []
        kinds: dict[str, Kind] = {}
        try:
            windows.extend(_iter_windows(plan, Path(tmp)))
        finally:
            if plan.progress is not None:
                plan.progress.close()
        windows.sort(key=lambda w: w.day)
        for w in windows:  # in day order: columns in order of first appearance
            for k, v in w.kinds.items():
                kinds[k] = unify(kinds.get(k), v)
        if sink is not None:
            for w in windows:
                sink.write(w, plan)
            sink.finish()
        schema = _final_schema(kinds, plan.columns)
        batches = [
            b
            for w in windows
            for b in _batches(
                w.parsed,
                kinds,
                plan.timezone,
                plan.columns,
                dedupe=plan.dedupe,
                unit=plan.time_unit,
            )
        ]
    table = pa.Table.from_batches(batches, schema=schema)
    if plan.limit is not None and table.num_rows > plan.limit:
        table = table.slice(0, plan.limit)
    return _deliver(table, rtype, backend)


def read_export_file(
    path: str | os.PathLike[str],
    *,
    project_timezone: str | None = None,
    return_type: ReturnType = "pandas",
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dedupe: bool = False,
    time_in_ms: bool = False,
    where: str | None = None,
    progress: _progress.ProgressArg = None,
) -> pd.DataFrame | pa.Table:
    """Read a saved export (``.jsonl`` or ``.jsonl.gz``, multi-member gzip included).

    Gives exactly what :func:`read_robotmia_export` gives for the same lines. With
    ``where`` (a ``where`` expression, see ``docs/where.md``) only the rows it
    selects are returned, as the export's server-side filter would select them.
    ``progress`` as in :func:`read_robotmia_export`: a bar counting parsed rows on a
    terminal when the read lasts over a second, or a callback.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "export.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"time":1704067200,"n":1}}\\n')
        >>> df = read_export_file(p, project_timezone="Europe/Paris")
        >>> str(df["time"][0])
        '2023-12-31 23:00:00+00:00'
    """
    tz = _timezone(project_timezone)
    rtype = _return_type(return_type)
    backend = _dtype_backend(dtype_backend)
    cols = _columns(columns)
    where_ = _where(where)
    wanted = cols
    if where_ is not None and cols is not None:  # read the columns the filter needs
        cols = [*cols, *sorted(referenced_columns(where_) - set(cols))]
    mode = parse.validate_on_bad_lines(on_bad_lines)
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"export file not found: {p}")
    parse_cols = sinks.with_dedupe_keys(cols, dedupe)
    bar = _progress.make(progress, total=1, desc="robotmia read", unit="row")
    try:
        parsed = _parse_file(p, str(p), mode, parse_cols, bar)
    finally:
        if bar is not None:
            bar.close()
    kinds = parsed.kinds
    schema = _final_schema(kinds, cols)
    batches = _batches(parsed, kinds, tz, cols, dedupe=dedupe, unit="ms" if time_in_ms else "s")
    table = pa.Table.from_batches(list(batches), schema=schema)
    if where_ is not None:
        table = filter_table(table, where_, project_timezone=tz)
        if wanted is not None and wanted != cols:
            table = table.select(wanted)
    return _deliver(table, rtype, backend)


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
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    partition_by: Sequence[str] = ("date",),
    dedupe: bool = False,
    region: str | None = None,
    time_in_ms: bool = False,
    limit: int | None = None,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
) -> ExportSummary:
    """Export ``from_date..to_date`` into a Hive-partitioned Parquet dataset at ``path``.

    Memory stays bounded whatever the size: each day window is downloaded, verified,
    parsed in record batches and written as it goes, then swapped in atomically. A
    day that fails leaves its old partition (and every day already written) intact;
    the error names the day. Retries as in :func:`read_robotmia_export`
    (``max_retries``, ``retry_backoff``).

    Example:
        >>> import tempfile
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
        ...     s = export_to_parquet(out, "2024-01-01", "2024-01-03", api_secret="s",
        ...                           project_timezone="UTC", base_url=srv.url)
        >>> s.rows, s.days
        (30, 3)
    """
    plan = _plan(
        from_date, to_date, event=event, where=where, api_secret=api_secret,
        project_timezone=project_timezone, base_url=base_url, region=region,
        on_bad_lines=on_bad_lines, concurrency=concurrency, timeout=timeout,
        max_retries=max_retries, retry_backoff=retry_backoff, verify=verify,
        rate_limit=rate_limit, time_in_ms=time_in_ms,
        limit=limit, cache_dir=cache_dir, refresh=refresh, dedupe=dedupe, progress=progress,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="robotmia-export-") as tmp:
        return _write_dataset(plan, path, partition_by, Path(tmp))


def sync_to_parquet(
    path: str | os.PathLike[str],
    *,
    start_date: DateLike,
    lookback_days: int = 5,
    end_date: DateLike | None = None,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    partition_by: Sequence[str] = ("date",),
    dedupe: bool = False,
    region: str | None = None,
    time_in_ms: bool = False,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    timeout: float | None = None,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
) -> ExportSummary:
    """Bring a dataset up to date, catching events that arrive up to 5 days late.

    Each run re-exports from (the last synced day - ``lookback_days``) through
    ``end_date`` (default: today in the project timezone) and replaces those days
    whole. Late events are never filtered out by a time cursor: a re-exported day
    holds exactly what the server holds for it, so running twice gives identical
    data and nothing is doubled. The state lives in ``<path>/_robotmia/sync.json``.
    Retries as in :func:`read_robotmia_export` (``max_retries``, ``retry_backoff``).

    Example:
        >>> import tempfile
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(40, days=4), api_secret="s") as srv:
        ...     s = sync_to_parquet(out, start_date="2024-01-01", end_date="2024-01-04",
        ...                         api_secret="s", project_timezone="UTC", base_url=srv.url)
        >>> s.rows, s.from_date.isoformat()
        (40, '2024-01-01')
    """
    tz = _timezone(project_timezone)
    start = _parse_date(start_date, "start_date")
    if isinstance(lookback_days, bool) or not isinstance(lookback_days, int) or lookback_days < 0:
        raise InvalidArgumentError(
            f"lookback_days must be a non-negative integer, got {lookback_days!r}"
        )
    end = (
        _parse_date(end_date, "end_date")
        if end_date is not None
        else dt.datetime.now(resolve_timezone(tz)).date()
    )
    root = Path(os.fspath(path))
    state = _sync_state.load(root)
    begin = start
    if state is not None and state.last_day is not None:
        begin = max(start, state.last_day - dt.timedelta(days=lookback_days))
    if begin > end:
        raise InvalidArgumentError(
            f"nothing to sync: the range starts {begin.isoformat()}, after end_date {end.isoformat()}"
        )
    plan = _plan(
        begin, end, event=event, where=where, api_secret=api_secret,
        project_timezone=tz, base_url=base_url, region=region, on_bad_lines=on_bad_lines,
        concurrency=concurrency, timeout=timeout, max_retries=max_retries,
        retry_backoff=retry_backoff, verify=verify,
        rate_limit=rate_limit, time_in_ms=time_in_ms, dedupe=dedupe, progress=progress,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="robotmia-sync-") as tmp:
        summary = _write_dataset(plan, root, partition_by, Path(tmp))
    _sync_state.save(root, _sync_state.SyncState(last_day=end, metadata=plan.metadata()))
    return summary


def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    from_date: DateLike | None = None,
    to_date: DateLike | None = None,
    columns: Sequence[str] | None = None,
    event: str | Sequence[str] | None = None,
    return_type: ReturnType = "pandas",
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dedupe: bool = False,
    where: str | None = None,
    project_timezone: str | None = None,
    progress: _progress.ProgressArg = None,
) -> pd.DataFrame | pa.Table:
    """Read a dataset written by this library back as one table.

    Days with different column sets or types are unified by the same type policy;
    only the requested days (partition pruning), events and columns are read.
    ``where`` keeps the rows a ``where`` expression selects (see ``docs/where.md``),
    pushed down into each file's scan; its times are read in ``project_timezone``,
    else the timezone the dataset recorded when it was written.
    ``progress`` as in :func:`read_robotmia_export`, counting days read.

    Example:
        >>> import tempfile
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
        ...     _ = export_to_parquet(out, "2024-01-01", "2024-01-03", api_secret="s",
        ...                           project_timezone="UTC", base_url=srv.url)
        >>> len(read_parquet_dataset(out, from_date="2024-01-02"))
        20
    """
    query = _dataset_query(
        path, from_date=from_date, to_date=to_date, columns=columns, event=event,
        where=where, project_timezone=project_timezone, dedupe=dedupe,
    )  # fmt: skip
    rtype = _return_type(return_type)
    backend = _dtype_backend(dtype_backend)
    bar = _progress.make(progress, total=len(query.select()), desc="robotmia read", unit="day")
    try:
        table = query.read(on_day=None if bar is None else bar.window_done)
    finally:
        if bar is not None:
            bar.close()
    return _deliver(table, rtype, backend)


@dataclass(frozen=True)
class _DatasetQuery:
    """A checked :func:`read_parquet_dataset` request (shared with ``robotmia_frames.dask``)."""

    ds: sinks.ParquetDataset
    start: dt.date | None
    end: dt.date | None
    columns: list[str] | None
    events: tuple[str, ...] | None
    where: str | None
    project_timezone: str | None
    default_timezone: str
    dedupe: bool

    def select(self) -> dict[dt.date, list[Path]]:
        """The data files the query reads, by day."""
        return self.ds.select(from_date=self.start, to_date=self.end, event=self.events)

    def read(
        self,
        day: dt.date | None = None,
        *,
        on_day: Callable[[int, int], None] | None = None,
    ) -> pa.Table:
        """The selected rows (of one ``day`` only, if given) as one unified table."""
        cols = self.columns
        read_cols = sinks.with_dedupe_keys(cols, self.dedupe)
        table = self.ds.read(
            from_date=day or self.start,
            to_date=day or self.end,
            columns=read_cols,
            event=self.events,
            where=self.where,
            project_timezone=self.project_timezone,
            default_timezone=self.default_timezone,
            on_day=on_day,
        )
        if self.dedupe:
            table = pa.Table.from_batches(
                [sinks.Deduper()(b) for b in table.to_batches()], schema=table.schema
            )
            if cols is not None and read_cols != cols:
                table = table.select(cols)
        return table


def _dataset_query(
    path: str | os.PathLike[str],
    *,
    from_date: DateLike | None,
    to_date: DateLike | None,
    columns: Sequence[str] | None,
    event: str | Sequence[str] | None,
    where: str | None,
    project_timezone: str | None,
    dedupe: bool,
) -> _DatasetQuery:
    """Check :func:`read_parquet_dataset`'s arguments and find the dataset's layout."""
    root = Path(os.fspath(path))
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset at {root}")
    start = _parse_date(from_date, "from_date") if from_date is not None else None
    end = _parse_date(to_date, "to_date") if to_date is not None else None
    if start and end and start > end:
        raise InvalidArgumentError(f"from_date {start} is after to_date {end}")
    cols = _columns(columns)
    events = _events(event)
    where_ = _where(where)
    if project_timezone is not None:
        resolve_timezone(project_timezone)
    layout = (
        ("date", "event")
        if any(
            p.is_dir() and p.name.startswith("event=")
            for d in root.glob("date=*")
            for p in d.iterdir()
        )
        else ("date",)
    )
    return _DatasetQuery(
        ds=sinks.ParquetDataset(root, partition_by=layout, create=False),
        start=start,
        end=end,
        columns=cols,
        events=events,
        where=where_,
        project_timezone=project_timezone,
        default_timezone=os.environ.get(TIMEZONE_ENV) or "UTC",
        dedupe=bool(dedupe),
    )
