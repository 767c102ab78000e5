"""The public functions: thin orchestration over transport -> parse -> time -> sinks."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from . import parse, sinks, transport
from ._version import __version__
from .errors import InvalidArgumentError, RobotmiaError
from .timeconv import TIME_TYPE, local_seconds_to_utc, resolve_timezone
from .typepolicy import Kind, arrow_type, unify

__all__ = [
    "ExportSummary",
    "export_to_parquet",
    "read_export_file",
    "read_parquet_dataset",
    "read_robotmia_export",
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

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]

    def metadata(self) -> dict[str, Any]:
        return {
            "from_date": self.start.isoformat(),
            "to_date": self.end.isoformat(),
            "event": list(self.event) if self.event is not None else None,
            "where": self.where,
            "project_timezone": self.timezone,
            "library": f"robotmia-frames {__version__}",
        }


def _plan(
    from_date: Any,
    to_date: Any,
    *,
    event: Any,
    where: Any,
    api_secret: str | None,
    project_timezone: str | None,
    base_url: str | None,
    on_bad_lines: str,
    columns: Any,
    concurrency: Any,
    timeout: float | None,
    max_retries: int,
    verify: bool | str,
) -> _ExportPlan:
    start, end = _date_range(from_date, to_date)
    events = _events(event)
    where_ = _where(where)
    tz = _timezone(project_timezone)
    url = transport.validate_base_url(base_url or transport.DEFAULT_BASE_URL)
    secret = _secret(api_secret)
    extra: dict[str, Any] = {}
    if timeout is not None:
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        extra["read_timeout"] = float(timeout)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError(
            f"max_retries must be a non-negative integer, got {max_retries!r}"
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
    )


# ------------------------------------------------------------------ window pipeline


@dataclass
class _Window:
    day: dt.date
    result: transport.DownloadResult
    scan: parse.ScanResult
    kinds: dict[str, Kind]

    @property
    def label(self) -> str:
        return f"window {self.day.isoformat()}"


def _scan_file(
    path: Path, label: str, on_bad_lines: parse.OnBadLines, columns: list[str] | None
) -> tuple[parse.ScanResult, dict[str, Kind]]:
    kinds: dict[str, Kind] = {}
    keys = None
    if columns is not None:
        keys = frozenset(
            c[len(parse.PROPERTY_PREFIX) :] for c in columns if c.startswith(parse.PROPERTY_PREFIX)
        )
    with parse.open_lines(path, label=label) as lines:
        scan = parse.scan_lines(lines, kinds, source=label, on_bad_lines=on_bad_lines, keys=keys)
    return scan, kinds


def _iter_windows(plan: _ExportPlan, workdir: Path) -> Iterator[_Window]:
    """Download day windows (``plan.concurrency`` at once) and scan each as it lands.

    Yields windows in completion order. On the first failure the pending downloads
    are cancelled and the error propagates, naming the day.
    """
    local = threading.local()

    def fetch(day: dt.date) -> transport.DownloadResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = transport.make_session()
        request = transport.WindowRequest(
            from_date=day, to_date=day, event=plan.event, where=plan.where
        )
        return transport.download_window(
            plan.config, request, workdir / f"{day.isoformat()}.jsonl.gz", session=session
        )

    days = plan.days
    pool = ThreadPoolExecutor(
        max_workers=min(plan.concurrency, len(days)), thread_name_prefix="robotmia-dl"
    )
    pending: dict[Future[transport.DownloadResult], dt.date] = {}
    try:
        it = iter(days)
        for day in it:
            pending[pool.submit(fetch, day)] = day
            if len(pending) >= plan.concurrency * 2:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f]):
                day = pending.pop(fut)
                result = fut.result()
                label = f"window {day.isoformat()}"
                scan, kinds = _scan_file(result.path, label, plan.on_bad_lines, plan.columns)
                yield _Window(day, result, scan, kinds)
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(fetch, nxt)] = nxt
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for s in _sessions_of(local):
            s.close()


def _sessions_of(local: threading.local) -> list[requests.Session]:
    s = getattr(local, "session", None)
    return [s] if s is not None else []


def _finish(batch: pa.RecordBatch, tz: str) -> pa.RecordBatch:
    """The time stage applied to one parsed batch."""
    if "time" not in batch.schema.names:
        return batch
    i = batch.schema.get_field_index("time")
    return batch.set_column(
        i, pa.field("time", TIME_TYPE), local_seconds_to_utc(batch.column(i), tz)
    )


def _final_schema(kinds: dict[str, Kind], columns: Sequence[str] | None) -> pa.Schema:
    schema = parse.export_schema(kinds, columns)
    if "time" in schema.names:
        schema = schema.set(schema.get_field_index("time"), pa.field("time", TIME_TYPE))
    return schema


def _file_batches(
    path: Path,
    label: str,
    kinds: dict[str, Kind],
    scan: parse.ScanResult,
    tz: str,
    columns: Sequence[str] | None,
) -> Iterator[pa.RecordBatch]:
    with parse.open_lines(path, label=label) as lines:
        for batch in parse.iter_batches(
            lines, kinds, source=label, skip_lines=scan.bad_lines, columns=columns
        ):
            yield _finish(batch, tz)


def _deliver(
    table: pa.Table, return_type: ReturnType, dtype_backend: sinks.DtypeBackend
) -> pd.DataFrame | pa.Table:
    if return_type == "arrow":
        return table
    return sinks.to_pandas(table, dtype_backend=dtype_backend)


# ----------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_to_parquet` wrote."""

    path: Path
    rows: int
    days: int
    files: int
    bytes: int
    rows_per_day: dict[str, int] = field(default_factory=dict)


class _DatasetSink:
    """Writes one day at a time, keeping column types consistent across days."""

    def __init__(
        self, root: str | os.PathLike[str], partition_by: Sequence[str], metadata: dict[str, Any]
    ) -> None:
        self.ds = sinks.ParquetDataset(Path(os.fspath(root)), partition_by=partition_by)
        self.ds.recover()
        self.kinds = self.ds.current_kinds()
        self.metadata = metadata
        self.rows = 0
        self.files = 0
        self.bytes = 0
        self.rows_per_day: dict[str, int] = {}

    def write(self, window: _Window, tz: str) -> None:
        """Write one downloaded window as its day's partition."""
        day = window.day
        merged = dict(self.kinds)
        for k, v in window.kinds.items():
            key = parse.PROPERTY_PREFIX + k
            merged[key] = unify(merged.get(key), v)
        widened = {k for k, v in merged.items() if k in self.kinds and self.kinds[k] is not v}
        prop_kinds = {
            k[len(parse.PROPERTY_PREFIX) :]: v
            for k, v in merged.items()
            if k.startswith(parse.PROPERTY_PREFIX)
        }
        schema = _final_schema(prop_kinds, None)
        batches = _file_batches(window.result.path, window.label, prop_kinds, window.scan, tz, None)
        result = self.ds.write_day(day, schema, batches, metadata=self.metadata)
        self.kinds = merged
        if widened:
            for other in self.ds.days():
                if other != day and any(self._narrower(f, widened) for f in self.ds.files(other)):
                    self.ds.rewrite_day(other, self.kinds, self.metadata)
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

    def summary(self) -> ExportSummary:
        return ExportSummary(
            self.ds.root,
            self.rows,
            len(self.rows_per_day),
            self.files,
            self.bytes,
            dict(self.rows_per_day),
        )


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
    concurrency: int = 4,
    timeout: float | None = None,
    max_retries: int = 5,
    verify: bool | str = True,
) -> pd.DataFrame | pa.Table:
    """Export every event of ``from_date..to_date`` (inclusive, project-local days).

    Returns a pandas DataFrame (nullable dtypes; ``dtype_backend="pyarrow"`` for
    ``ArrowDtype``) or, with ``return_type="arrow"``, a :class:`pyarrow.Table`, with
    columns ``event``, ``time`` (UTC) and ``properties.<key>``. The range is fetched
    as day windows, ``concurrency`` at a time; every body is verified complete before
    it is parsed. With ``parquet_path`` the same rows are also written as a
    Hive-partitioned dataset (``date=YYYY-MM-DD/``), one atomic day at a time.

    Example:
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> with ExportServer(generate_events(50, days=2), api_secret="s") as srv:
        ...     df = read_robotmia_export("2024-01-01", "2024-01-02", api_secret="s",
        ...                               project_timezone="UTC", base_url=srv.url)
        >>> len(df), list(df.columns[:2])
        (50, ['event', 'time'])
    """
    plan = _plan(
        from_date,
        to_date,
        event=event,
        where=where,
        api_secret=api_secret,
        project_timezone=project_timezone,
        base_url=base_url,
        on_bad_lines=on_bad_lines,
        columns=columns,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        verify=verify,
    )
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
        for w in _iter_windows(plan, Path(tmp)):
            windows.append(w)
            for k, v in w.kinds.items():
                kinds[k] = unify(kinds.get(k), v)
        windows.sort(key=lambda w: w.day)
        if sink is not None:
            for w in windows:
                sink.write(w, plan.timezone)
        schema = _final_schema(kinds, plan.columns)
        batches = [
            b
            for w in windows
            for b in _file_batches(
                w.result.path, w.label, kinds, w.scan, plan.timezone, plan.columns
            )
        ]
    table = pa.Table.from_batches(batches, schema=schema)
    return _deliver(table, rtype, backend)


def read_export_file(
    path: str | os.PathLike[str],
    *,
    project_timezone: str | None = None,
    return_type: ReturnType = "pandas",
    on_bad_lines: Literal["error", "skip", "warn"] = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
) -> pd.DataFrame | pa.Table:
    """Read a saved export (``.jsonl`` or ``.jsonl.gz``, multi-member gzip included).

    Gives exactly what :func:`read_robotmia_export` gives for the same lines.

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
    mode = parse.validate_on_bad_lines(on_bad_lines)
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"export file not found: {p}")
    scan, kinds = _scan_file(p, str(p), mode, cols)
    schema = _final_schema(kinds, cols)
    table = pa.Table.from_batches(
        list(_file_batches(p, str(p), kinds, scan, tz, cols)), schema=schema
    )
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
    concurrency: int = 4,
    timeout: float | None = None,
    max_retries: int = 5,
    verify: bool | str = True,
) -> ExportSummary:
    """Export ``from_date..to_date`` into a Hive-partitioned Parquet dataset at ``path``.

    Memory stays bounded whatever the size: each day window is downloaded, verified,
    parsed in record batches and written as it goes, then swapped in atomically. A
    day that fails leaves its old partition (and every day already written) intact;
    the error names the day.

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
        from_date,
        to_date,
        event=event,
        where=where,
        api_secret=api_secret,
        project_timezone=project_timezone,
        base_url=base_url,
        on_bad_lines=on_bad_lines,
        columns=None,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        verify=verify,
    )
    sink = _DatasetSink(path, partition_by, plan.metadata())
    with tempfile.TemporaryDirectory(prefix="robotmia-export-") as tmp:
        for w in _iter_windows(plan, Path(tmp)):
            try:
                sink.write(w, plan.timezone)
            except RobotmiaError:
                raise
            finally:
                with contextlib.suppress(OSError):
                    w.result.path.unlink()
    return sink.summary()


def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    from_date: DateLike | None = None,
    to_date: DateLike | None = None,
    columns: Sequence[str] | None = None,
    event: str | Sequence[str] | None = None,
    return_type: ReturnType = "pandas",
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
) -> pd.DataFrame | pa.Table:
    """Read a dataset written by this library back as one table.

    Days with different column sets or types are unified by the same type policy;
    only the requested days (partition pruning), events and columns are read.

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
    root = Path(os.fspath(path))
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset at {root}")
    start = _parse_date(from_date, "from_date") if from_date is not None else None
    end = _parse_date(to_date, "to_date") if to_date is not None else None
    if start and end and start > end:
        raise InvalidArgumentError(f"from_date {start} is after to_date {end}")
    rtype = _return_type(return_type)
    backend = _dtype_backend(dtype_backend)
    cols = _columns(columns)
    events = _events(event)
    layout = (
        ("date", "event")
        if any(
            p.is_dir() and p.name.startswith("event=")
            for d in root.glob("date=*")
            for p in d.iterdir()
        )
        else ("date",)
    )
    ds = sinks.ParquetDataset(root, partition_by=layout, create=False)
    table = ds.read(from_date=start, to_date=end, columns=cols, event=events)
    return _deliver(table, rtype, backend)
