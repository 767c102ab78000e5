"""The pinned module-level functions: each builds a :class:`Client` and calls its method.

``read_robotmia_export``, ``export_to_parquet``, ``sync_to_parquet`` and
``read_robotmia_profiles`` keep the signatures of ``design.md``; the connection
settings among their keywords (the keywords of :class:`Client`) go to the client,
the rest to its method of the same name. The readers of local data,
``read_export_file`` and ``read_parquet_dataset``, are in
:mod:`robotmia_frames.readers`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import pandas as pd
import pyarrow as pa

from . import _options, _progress, _wide, sinks, transport
from ._options import DateLike, ReturnType, TableFormat
from ._pipeline import DEFAULT_WINDOW_TARGET_BYTES, BudgetPlan, ExportSummary
from .client import Client
from .parse import OnBadLines, OnTypeMismatch

if TYPE_CHECKING:
    import polars as pl
    from typing_extensions import Unpack

    from . import _typing

__all__ = [
    "ExportSummary",
    "export_to_parquet",
    "read_robotmia_export",
    "read_robotmia_profiles",
    "sync_to_parquet",
]

_SETTINGS = frozenset(inspect.signature(Client).parameters)


def _call(method: str, args: tuple[Any, ...], given: dict[str, Any]) -> Any:
    """Build a client from the settings among ``given`` and call its ``method``."""
    settings = {k: v for k, v in given.items() if k in _SETTINGS}
    options = {k: v for k, v in given.items() if k not in _SETTINGS}
    return getattr(Client(**settings), method)(*args, **options)


@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["pandas"] = ...,
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> pd.DataFrame: ...
@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["arrow"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> pa.Table: ...
@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["polars"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> pl.DataFrame: ...
@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["pandas"] = ...,
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> dict[str | None, pd.DataFrame]: ...
@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["arrow"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> dict[str | None, pa.Table]: ...
@overload
def read_robotmia_export(
    from_date: DateLike,
    to_date: DateLike,
    *,
    return_type: Literal["polars"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadRobotmiaExport],
) -> dict[str | None, pl.DataFrame]: ...
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
    on_bad_lines: OnBadLines = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: OnTypeMismatch = "text",
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
    max_retry_after: float = 300.0,
    stall_timeout: float = 60.0,
    min_speed: float = 1024.0,
    max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
    table_format: TableFormat | None = None,
    window_days: int | Literal["auto"] = "auto",
    window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
) -> _wide.Results:
    """Export every event of ``from_date..to_date`` (inclusive, project-local days).

    Returns a pandas DataFrame (nullable dtypes; ``dtype_backend="pyarrow"`` for
    ``ArrowDtype``) or, with ``return_type="arrow"``, a :class:`pyarrow.Table`
    (``return_type="polars"``: a ``polars.DataFrame`` over the same Arrow memory, with
    the ``[polars]`` extra), with columns ``event``, ``time`` (UTC) and
    ``properties.<key>``. The range is fetched as windows of days, ``concurrency`` at
    a time within ``rate_limit``; every body is verified complete before it is
    parsed. ``window_days="auto"`` sizes each request to about
    ``window_target_bytes`` of compressed body (64 MiB; from 1 to 31 days, the first
    spanning 7), an int pins the days per request; a window that keeps failing is
    fetched again in halves, down to single days (``docs/windows.md``). With
    ``parquet_path`` the same rows are
    also written as a Hive-partitioned dataset (``date=YYYY-MM-DD/``), one atomic day
    at a time. Failed requests are retried ``max_retries`` times with full-jitter
    exponential backoff starting at ``retry_backoff`` seconds (doubling, at most 60 s;
    a server's ``Retry-After`` wins). ``region`` (``"us"``, ``"eu"``, ``"in"``) picks
    the endpoint unless ``base_url`` is given; ``limit`` caps the number of events
    returned (the first ones, in day order; it is also sent as the export's ``limit``
    parameter with every window, so no window downloads more); ``cache_dir``
    keeps verified window bodies so that a re-run downloads only what is missing
    (``refresh=True``: everything). ``split_by="event"`` returns a dict of one table per
    event name, ``sparse_columns="map"`` folds keys filled in under ``sparse_threshold``
    of the rows into one ``properties`` map column, and a result that would not fit
    ``max_memory`` raises :class:`MemoryBudgetError` before it is built (see
    ``docs/wide.md``). ``max_retry_after`` (a longer server wait fails
    at once), ``stall_timeout`` and ``min_speed`` (a body slower than that is retried)
    and ``max_window_bytes`` (the largest body accepted) are described at
    :class:`Client`. ``dtype`` pins column types as in pandas' readers
    (``{"properties.Price": "float64"}``); ``on_type_mismatch`` (``"text"``, ``"null"``,
    ``"error"``) says what happens to values that do not fit (see
    ``docs/type-policy.md``). See ``docs/api.md`` for every option.

    Example:
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> with ExportServer(generate_events(50, days=2), api_secret="s") as srv:
        ...     df = read_robotmia_export("2024-01-01", "2024-01-02", api_secret="s",
        ...                               project_timezone="UTC", base_url=srv.url)
        >>> len(df), list(df.columns[:2])
        (50, ['event', 'time'])
    """
    given = dict(locals())
    return _call("read_robotmia_export", (given.pop("from_date"), given.pop("to_date")), given)


@overload
def export_to_parquet(
    path: str | os.PathLike[str],
    from_date: DateLike,
    to_date: DateLike,
    *,
    split_by: _options.SplitBy | None = ...,
    plan: Literal[False] = ...,
    **options: Unpack[_typing.ApiExportToParquet],
) -> ExportSummary: ...
@overload
def export_to_parquet(
    path: str | os.PathLike[str],
    from_date: DateLike,
    to_date: DateLike,
    *,
    split_by: _options.SplitBy | None = ...,
    plan: Literal[True],
    **options: Unpack[_typing.ApiExportToParquet],
) -> BudgetPlan: ...
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
    on_bad_lines: OnBadLines = "error",
    columns: Sequence[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: OnTypeMismatch = "text",
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
    max_retry_after: float = 300.0,
    stall_timeout: float = 60.0,
    min_speed: float = 1024.0,
    max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
    table_format: TableFormat | None = None,
    window_days: int | Literal["auto"] = "auto",
    window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
    plan: bool = False,
) -> ExportSummary | BudgetPlan:
    """Export ``from_date..to_date`` into a Hive-partitioned Parquet dataset at ``path``.

    Memory stays bounded whatever the size: each window is downloaded, verified,
    parsed, cut into its days and written a day at a time, each day swapped in
    atomically. A day that fails leaves its old partition (and every day already
    written) intact; the error names the day. Retries and windows
    (``window_days``, ``window_target_bytes``) as in :func:`read_robotmia_export`;
    ``limit`` caps the rows written in total. ``columns`` (``"$os"`` is short for
    ``"properties.$os"``) writes only those columns; one the export does not hold
    is an error, raised once the days are written (the run is then not recorded
    complete). ``split_by="event"`` writes the layout of
    ``partition_by=("date", "event")``: each event's files hold only its columns.
    ``max_memory`` (``"auto"``, bytes, or None for no check) bounds the memory one
    day takes while it is written: a day over it raises ``MemoryBudgetError``
    before it is written. ``dtype_backend`` is checked as in
    :func:`read_robotmia_export` but changes nothing here: it only shapes pandas
    results, and Parquet files hold Arrow types. ``sparse_columns="map"`` is
    refused with an ``InvalidArgumentError`` (a dataset keeps every key as its
    own column); ``sparse_threshold`` is checked. ``plan=True`` checks every argument
    and returns the plan of the run instead (a ``BudgetPlan``: its request
    windows, ``requests`` and ``api_hours`` at the rate limit); nothing is sent or
    written, as the command line's ``export --dry-run``.

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
    given = dict(locals())
    args = (given.pop("path"), given.pop("from_date"), given.pop("to_date"))
    return cast("ExportSummary | BudgetPlan", _call("export_to_parquet", args, given))


def sync_to_parquet(
    path: str | os.PathLike[str],
    from_date: DateLike,
    to_date: DateLike | None = None,
    *,
    lookback_days: int = 5,
    event: str | Sequence[str] | None = None,
    where: str | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    on_bad_lines: OnBadLines = "error",
    columns: Sequence[str] | None = None,
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: OnTypeMismatch = "text",
    partition_by: Sequence[str] = ("date",),
    dedupe: bool = False,
    region: str | None = None,
    time_in_ms: bool = False,
    concurrency: int = 4,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    timeout: float | None = None,
    max_retry_after: float = 300.0,
    stall_timeout: float = 60.0,
    min_speed: float = 1024.0,
    max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    verify: bool | str = True,
    progress: _progress.ProgressArg = None,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
    split_by: _options.SplitBy | None = None,
    sparse_columns: _options.SparseColumns | None = None,
    sparse_threshold: float = _wide.SPARSE_THRESHOLD,
    max_memory: int | Literal["auto"] | None = "auto",
    table_format: TableFormat | None = None,
    window_days: int | Literal["auto"] = "auto",
    window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
) -> ExportSummary:
    """Bring a dataset up to date, catching events that arrive up to 5 days late.

    Each run re-exports from (the last synced day - ``lookback_days``) through
    ``to_date`` (default: today in the project timezone) and replaces those days
    whole. Late events are never filtered out by a time cursor: a re-exported day
    holds exactly what the server holds for it, so running twice gives identical
    data and nothing is doubled. The state (project timezone, days done, the types
    pinned by ``dtype``, see ``docs/type-policy.md``) lives in the data files' own
    Parquet metadata: ``project_timezone`` defaults to the dataset's (another one is
    refused before any request), a later sync without ``dtype`` keeps the pinned
    types, and days after today are never counted as done.
    Retries and windows as in :func:`read_robotmia_export`: with the default
    ``window_days="auto"`` the lookback of a daily run is one request.
    ``columns``, ``split_by``, ``sparse_columns``, ``sparse_threshold`` and
    ``max_memory`` as in :func:`export_to_parquet`: only those columns are written,
    ``split_by="event"`` is the event layout (a dataset keeps its layout: every sync
    of it passes the same), each day is checked against ``max_memory`` before it is
    written, and ``sparse_columns="map"`` is refused.

    Example:
        >>> import tempfile
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(40, days=4), api_secret="s") as srv:
        ...     s = sync_to_parquet(out, "2024-01-01", "2024-01-04",
        ...                         api_secret="s", project_timezone="UTC", base_url=srv.url)
        >>> s.rows, s.from_date.isoformat()
        (40, '2024-01-01')
    """
    given = dict(locals())
    args = (given.pop("path"), given.pop("from_date"), given.pop("to_date"))
    return cast(ExportSummary, _call("sync_to_parquet", args, given))


@overload
def read_robotmia_profiles(
    *, return_type: Literal["pandas"] = ..., **options: Unpack[_typing.ApiReadRobotmiaProfiles]
) -> pd.DataFrame: ...
@overload
def read_robotmia_profiles(
    *, return_type: Literal["arrow"], **options: Unpack[_typing.ApiReadRobotmiaProfiles]
) -> pa.Table: ...
@overload
def read_robotmia_profiles(
    *, return_type: Literal["polars"], **options: Unpack[_typing.ApiReadRobotmiaProfiles]
) -> pl.DataFrame: ...
def read_robotmia_profiles(
    *,
    where: str | None = None,
    output_properties: Sequence[str] | None = None,
    api_secret: str | None = None,
    project_timezone: str | None = None,
    base_url: str | None = None,
    region: str | None = None,
    return_type: ReturnType = "pandas",
    parquet_path: str | os.PathLike[str] | None = None,
    dtype_backend: sinks.DtypeBackend = "numpy_nullable",
    page_size: int | None = None,
    parse_dates: bool = True,
    max_retries: int = 5,
    retry_backoff: float = 1.0,
    max_session_restarts: int = 3,
    rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
    timeout: float | None = None,
    verify: bool | str = True,
    dtype: Mapping[str, Any] | None = None,
    on_type_mismatch: OnTypeMismatch = "text",
) -> pd.DataFrame | pa.Table | pl.DataFrame:
    """Export people profiles (``/api/2.0/engage``) as one table.

    Columns: ``distinct_id`` (string, from ``$distinct_id``), then one
    ``properties.<key>`` column per profile property, typed by the same policy as
    events over all profiles. String columns whose every value is a project-local
    ``YYYY-MM-DDTHH:MM:SS`` (``$created``, ``$last_seen``, ...) become UTC
    timestamps (``parse_dates=False`` keeps them). ``where`` is sent verbatim;
    ``output_properties`` asks for those properties only, in this order;
    ``page_size`` asks for smaller pages; ``parquet_path`` also writes the table to
    that single Parquet file, atomically. ``base_url`` is the engage endpoint
    (default: ``region``'s). Errors, retries and the rate limit are those of exports.

    Example:
        >>> from robotmia_frames.emulator import ExportServer
        >>> with ExportServer(generate_profiles=5, api_secret="s") as srv:
        ...     t = read_robotmia_profiles(output_properties=["plan", "$city"], api_secret="s",
        ...                                project_timezone="UTC", base_url=srv.engage_url,
        ...                                return_type="arrow")
        >>> t.column_names, t.num_rows
        (['distinct_id', 'properties.plan', 'properties.$city'], 5)
    """
    given = dict(locals())
    given["profiles_url"] = given.pop("base_url")
    return _call("read_robotmia_profiles", (), given)
