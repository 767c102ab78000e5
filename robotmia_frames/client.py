"""``Client``: the connection settings, held once; the public operations as methods."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import pandas as pd
import pyarrow as pa

from . import _options, _pipeline, _progress, _wide, sinks, transport
from ._options import DateLike, ReturnType, TableFormat
from ._pipeline import Connection, ExportSummary
from ._redact import redact_url
from .errors import InvalidArgumentError
from .parse import OnBadLines, OnTypeMismatch

if TYPE_CHECKING:
    import polars as pl
    from typing_extensions import Self, Unpack

    from . import _typing

__all__ = ["LONG_SYNC_DAYS", "Client", "on_a_new_client"]

logger = logging.getLogger("robotmia_frames.sync")

#: A sync over more days than this says what it will send before it starts (the
#: command line asks on a terminal).
LONG_SYNC_DAYS = 31


class Client:
    """The settings of one robotmia project, held once, as ``httpx.Client`` holds its own.

    ``api_secret`` defaults to ``ROBOTMIA_API_SECRET``, ``project_timezone`` to
    ``ROBOTMIA_PROJECT_TIMEZONE`` and ``base_url`` to ``ROBOTMIA_BASE_URL``, else the
    endpoint of ``region`` (``"us"``, ``"eu"``, ``"in"``). ``timeout`` is the read
    timeout in seconds (default 600), ``max_retries`` and ``retry_backoff`` shape the
    retries, ``verify`` is ``True``, ``False`` or a CA bundle path, ``rate_limit`` a
    :class:`RateLimit` or a shared :class:`RateLimiter` (robotmia's budget by
    default; none for a loopback server), ``concurrency`` the windows downloaded at
    once and ``cache_dir`` a folder that keeps verified window bodies (keyed by the
    endpoint, the window and the project, so projects may share one). Every call
    made through one client shares its rate limiter. ``max_retry_after`` (300 s) is
    the longest server ``Retry-After`` waited for: a longer one fails at once with
    :class:`APIError` saying when to retry. A body that, once started, arrives
    slower than ``min_speed`` bytes a second (1024) over ``stall_timeout`` seconds
    (60) has stalled and is retried (``min_speed=0``: never). A window body larger
    than ``max_window_bytes`` (64 GiB as received; ``None``: no cap) fails.

    Every setting is checked here, once; the secret is required when a method
    sends a request. The module-level functions (``rf.read_robotmia_export`` and
    the others) build a client and call its method of the same name.

    Example:
        >>> import robotmia_frames as rf
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> with ExportServer(generate_events(20, days=2), api_secret="s") as srv:
        ...     client = rf.Client(api_secret="s", project_timezone="UTC", base_url=srv.url)
        ...     df = client.read_robotmia_export("2024-01-01", "2024-01-02")
        >>> len(df)
        20
    """

    def __init__(
        self,
        *,
        api_secret: str | None = None,
        project_timezone: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 5,
        retry_backoff: float = 1.0,
        verify: bool | str = True,
        rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
        concurrency: int = 4,
        cache_dir: str | os.PathLike[str] | None = None,
        max_retry_after: float = 300.0,
        stall_timeout: float = 60.0,
        min_speed: float = 1024.0,
        max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES,
    ) -> None:
        settings = dict(locals())
        del settings["self"]
        self._conn = Connection.checked(**settings)

    def __repr__(self) -> str:
        c = self._conn
        return (
            f"Client(base_url={redact_url(c.base_url)!r}, "
            f"project_timezone={c.project_timezone!r}, api_secret="
            f"{'***' if c.api_secret or os.environ.get(_options.SECRET_ENV) else None!r})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the client holds (nothing stays open between calls today).

        Example:
            >>> Client(api_secret="s").close()
        """

    @property
    def base_url(self) -> str:
        """The export endpoint this client talks to."""
        return self._conn.base_url

    @property
    def rate_limiter(self) -> transport.RateLimiter:
        """The rate limiter every call of this client shares."""
        return self._conn.limiter

    # ------------------------------------------------------------------ exports

    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["pandas"] = ...,
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> pd.DataFrame: ...
    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["arrow"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> pa.Table: ...
    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["polars"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> pl.DataFrame: ...
    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["pandas"] = ...,
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> dict[str | None, pd.DataFrame]: ...
    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["arrow"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> dict[str | None, pa.Table]: ...
    @overload
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        return_type: Literal["polars"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadRobotmiaExport],
    ) -> dict[str | None, pl.DataFrame]: ...
    def read_robotmia_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        project_timezone: str | None = None,
        parquet_path: str | os.PathLike[str] | None = None,
        return_type: ReturnType = "pandas",
        on_bad_lines: OnBadLines = "error",
        columns: Sequence[str] | None = None,
        dtype_backend: sinks.DtypeBackend = "numpy_nullable",
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
        partition_by: Sequence[str] = ("date",),
        dedupe: bool = False,
        time_in_ms: bool = False,
        limit: int | None = None,
        refresh: bool = False,
        progress: _progress.ProgressArg = None,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        split_by: _options.SplitBy | None = None,
        sparse_columns: _options.SparseColumns | None = None,
        sparse_threshold: float = _wide.SPARSE_THRESHOLD,
        max_memory: int | Literal["auto"] | None = "auto",
        table_format: TableFormat | None = None,
        window_days: int | Literal["auto"] = "auto",
        window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
    ) -> _wide.Results:
        """Export every event of ``from_date..to_date`` (inclusive, project-local days).

        See :func:`robotmia_frames.read_robotmia_export` for every option.

        Example:
            >>> from robotmia_frames.emulator import ExportServer, generate_events
            >>> with ExportServer(generate_events(10, days=1), api_secret="s") as srv:
            ...     t = Client(api_secret="s", project_timezone="UTC", base_url=srv.url
            ...                ).read_robotmia_export("2024-01-01", "2024-01-01",
            ...                                       return_type="arrow")
            >>> t.num_rows
            10
        """
        given = dict(locals())
        plan = self._conn.plan_of(given)
        shape = _wide.Shape.of(given)
        _options.partitions(partition_by)
        _options.storage(parquet_path, "parquet_path", storage_options, table_format)
        if shape.split_by is not None and plan.limit is not None:
            raise InvalidArgumentError(
                "limit= cannot be combined with split_by= (the first rows of the export "
                "are not those of each event); read with limit= and no split_by"
            )
        if parquet_path is not None and plan.columns is not None:
            raise InvalidArgumentError(
                "columns= cannot be combined with parquet_path= (the dataset keeps every column)"
            )
        writer: _pipeline.DatasetWriter | None = None
        if parquet_path is not None:
            writer = _pipeline.DatasetWriter(
                parquet_path,
                partition_by,
                plan.metadata(),
                storage_options=storage_options,
                filesystem=filesystem,
                table_format=table_format,
            )
        tables = _wide.read_export(plan, shape, writer)
        result = [plan.pinned.apply_each(tables, plan.source, plan.columns)]
        del tables  # given away: pandas frees each Arrow column once converted
        return _wide.deliver(result, shape)

    @overload
    def export_to_parquet(
        self,
        path: str | os.PathLike[str],
        from_date: DateLike,
        to_date: DateLike,
        *,
        split_by: _options.SplitBy | None = ...,
        plan: Literal[False] = ...,
        **options: Unpack[_typing.ClientExportToParquet],
    ) -> ExportSummary: ...
    @overload
    def export_to_parquet(
        self,
        path: str | os.PathLike[str],
        from_date: DateLike,
        to_date: DateLike,
        *,
        split_by: _options.SplitBy | None = ...,
        plan: Literal[True],
        **options: Unpack[_typing.ClientExportToParquet],
    ) -> _pipeline.BudgetPlan: ...
    def export_to_parquet(
        self,
        path: str | os.PathLike[str],
        from_date: DateLike,
        to_date: DateLike,
        *,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        project_timezone: str | None = None,
        on_bad_lines: OnBadLines = "error",
        columns: Sequence[str] | None = None,
        dtype_backend: sinks.DtypeBackend = "numpy_nullable",
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
        partition_by: Sequence[str] = ("date",),
        dedupe: bool = False,
        time_in_ms: bool = False,
        limit: int | None = None,
        refresh: bool = False,
        progress: _progress.ProgressArg = None,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        split_by: _options.SplitBy | None = None,
        sparse_columns: _options.SparseColumns | None = None,
        sparse_threshold: float = _wide.SPARSE_THRESHOLD,
        max_memory: int | Literal["auto"] | None = "auto",
        table_format: TableFormat | None = None,
        window_days: int | Literal["auto"] = "auto",
        window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
        plan: bool = False,
    ) -> ExportSummary | _pipeline.BudgetPlan:
        """Export ``from_date..to_date`` into a Hive-partitioned Parquet dataset at ``path``.

        See :func:`robotmia_frames.export_to_parquet`. With ``plan=True`` nothing is
        sent or written: every argument is checked and the plan of the run (its
        windows, requests and API-hours, :meth:`plan_export`, auto windows sized
        from the dataset's history as the run's would be) is returned.

        Example:
            >>> import tempfile
            >>> from robotmia_frames.emulator import ExportServer, generate_events
            >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
            ...     client = Client(api_secret="s", project_timezone="UTC", base_url=srv.url)
            ...     s = client.export_to_parquet(tempfile.mkdtemp(), "2024-01-01", "2024-01-03")
            >>> s.rows, s.days
            (30, 3)
        """
        given = dict(locals())
        shape, partition_by = _wide.dataset_shape(given, "export_to_parquet")
        location, state, tz = _pipeline.call_with(
            _pipeline.dataset_for_write, given, conn=self._conn
        )
        plan = _options.flag(plan, "plan")
        run = self._conn.plan_of(
            given,
            project_timezone=tz,
            progress=False if plan else progress,
            bytes_per_day=state.history_bytes_per_day(),
            day_bytes=state.bytes_per_day,  # the plan replays the run on them
        )
        if plan:  # the arguments are checked: say what the run would send
            return run.budget()  # auto windows sized from the dataset's history, as the run's
        return _pipeline.write_dataset(
            run,
            location,
            partition_by,
            table_format=table_format,
            storage_options=storage_options,
            check_day=_wide.day_budget(shape, partition_by),
        )

    def sync_to_parquet(
        self,
        path: str | os.PathLike[str],
        from_date: DateLike,
        to_date: DateLike | None = None,
        *,
        lookback_days: int = 5,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        project_timezone: str | None = None,
        on_bad_lines: OnBadLines = "error",
        columns: Sequence[str] | None = None,
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
        partition_by: Sequence[str] = ("date",),
        dedupe: bool = False,
        time_in_ms: bool = False,
        progress: _progress.ProgressArg = None,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        split_by: _options.SplitBy | None = None,
        sparse_columns: _options.SparseColumns | None = None,
        sparse_threshold: float = _wide.SPARSE_THRESHOLD,
        max_memory: int | Literal["auto"] | None = "auto",
        table_format: TableFormat | None = None,
        window_days: int | Literal["auto"] = "auto",
        window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
    ) -> ExportSummary:
        """Bring a dataset up to date, catching events that arrive up to 5 days late.

        See :func:`robotmia_frames.sync_to_parquet`. Without ``dtype``, the types the
        dataset's last sync pinned (with its ``on_type_mismatch``) are kept.

        Example:
            >>> import tempfile
            >>> from robotmia_frames.emulator import ExportServer, generate_events
            >>> with ExportServer(generate_events(40, days=4), api_secret="s") as srv:
            ...     client = Client(api_secret="s", project_timezone="UTC", base_url=srv.url)
            ...     s = client.sync_to_parquet(tempfile.mkdtemp(), "2024-01-01", "2024-01-04")
            >>> s.rows
            40
        """
        given = dict(locals())
        shape, partition_by = _wide.dataset_shape(given, "sync_to_parquet")
        location, state, tz, budget = _pipeline.call_with(
            _pipeline.sync_budget, given, conn=self._conn
        )
        if budget.days > LONG_SYNC_DAYS:
            logger.info("sync of %s: %s", redact_url(location.url), budget)
        if dtype is None and state.metadata.get("dtype"):
            # the types pinned when the dataset was written, kept by every sync
            dtype = state.metadata["dtype"]
            on_type_mismatch = state.metadata.get("on_type_mismatch", on_type_mismatch)
        plan = self._conn.plan_of(
            given,
            from_date=budget.from_date,
            to_date=budget.to_date,
            project_timezone=tz,
            dtype=dtype,
            on_type_mismatch=on_type_mismatch,
            bytes_per_day=state.history_bytes_per_day(),  # sizes the first auto windows
        )
        return _pipeline.write_dataset(
            plan,
            location,
            partition_by,
            table_format=table_format,
            storage_options=storage_options,
            check_day=_wide.day_budget(shape, partition_by),
        )

    def plan_sync(
        self,
        path: str | os.PathLike[str],
        from_date: DateLike,
        to_date: DateLike | None = None,
        *,
        lookback_days: int = 5,
        project_timezone: str | None = None,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        table_format: TableFormat | None = None,
        window_days: int | Literal["auto"] = "auto",
        window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
    ) -> _pipeline.BudgetPlan:
        """The requests and API-hours :meth:`sync_to_parquet` would take with these
        arguments, from what the dataset at ``path`` records; nothing is sent or
        written.

        A first sync covers ``from_date`` through ``to_date``; a later one only the
        days from the last synced day less ``lookback_days``, its auto windows sized
        from the dataset's history (the compressed bytes per day its latest days
        came with), as the sync itself sizes its first windows. ``sync_to_parquet``
        logs this plan (logger ``robotmia_frames.sync``, level INFO) before a sync of
        more than :data:`LONG_SYNC_DAYS` days starts; the command line prints it and,
        on a terminal, asks before it starts.

        Example:
            >>> import tempfile
            >>> client = Client(api_secret="s", project_timezone="UTC")
            >>> plan = client.plan_sync(tempfile.mkdtemp(), "2023-01-01", "2023-12-31")
            >>> plan.days, plan.fewest, plan.requests  # nothing known: a quiet and a busy project
            (365, 13, 366)
        """
        given = dict(locals())  # every argument of plan_sync is one of sync_budget's
        del given["self"]
        *_, budget = _pipeline.sync_budget(self._conn, **given)
        return budget

    def plan_export(
        self,
        from_date: DateLike,
        to_date: DateLike,
        *,
        window_days: int | Literal["auto"] = "auto",
        window_target_bytes: int = _pipeline.DEFAULT_WINDOW_TARGET_BYTES,
        bytes_per_day: float | None = None,
        dataset: str | os.PathLike[str] | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> _pipeline.BudgetPlan:
        """The requests and API-hours an export of ``from_date..to_date`` would take.

        Nothing is sent. The API-hours count this client's hourly rate limit (60
        requests an hour when it has none). With ``window_days="auto"`` the windows
        are sized from ``bytes_per_day`` (compressed body bytes per day) when
        given, else from the history of ``dataset`` (the dataset the export would
        write: the compressed bytes per day its latest days came with, as
        :meth:`export_to_parquet` and :meth:`sync_to_parquet` size their first
        windows; where it holds the planned days, the run is replayed on their
        record, quiet and busy days alike). With neither, nothing is known of the
        project's size: ``requests`` counts the most a run sends (a busy
        project's, a request a day) and ``fewest`` the fewest (a quiet one's, 31
        days a request after the 7-day start); a run learns the size from each body.

        Example:
            >>> plan = Client(api_secret="s").plan_export("2024-01-01", "2024-12-31",
            ...                                           window_days=30)
            >>> plan.requests, plan.windows[0]
            (13, (datetime.date(2024, 1, 1), datetime.date(2024, 1, 30)))
            >>> print(plan)
            2024-01-01..2024-12-31: 366 days in 13 requests (6 to 30 days each), 0.2 API-hours at 60 requests an hour
        """
        day_bytes = None
        if bytes_per_day is None and dataset is not None:
            location = _pipeline.dataset_location(dataset, storage_options)
            state = _pipeline.dataset_state(location, storage_options)
            bytes_per_day = state.history_bytes_per_day()
            day_bytes = state.bytes_per_day  # its days' record: the run replayed on them
        return self._conn.budget(
            from_date,
            to_date,
            window_days=window_days,
            window_target_bytes=window_target_bytes,
            bytes_per_day=bytes_per_day,
            day_bytes=day_bytes,
        )

    # ------------------------------------------------------------------- local reads

    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["pandas"] = ...,
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> pd.DataFrame: ...
    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["arrow"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> pa.Table: ...
    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["polars"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> pl.DataFrame: ...
    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["pandas"] = ...,
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> dict[str | None, pd.DataFrame]: ...
    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["arrow"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> dict[str | None, pa.Table]: ...
    @overload
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["polars"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadExportFile],
    ) -> dict[str | None, pl.DataFrame]: ...
    def read_export_file(
        self,
        path: str | os.PathLike[str],
        *,
        project_timezone: str | None = None,
        return_type: ReturnType = "pandas",
        on_bad_lines: OnBadLines = "error",
        columns: Sequence[str] | None = None,
        dtype_backend: sinks.DtypeBackend = "numpy_nullable",
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
        dedupe: bool = False,
        time_in_ms: bool = False,
        event: str | Sequence[str] | None = None,
        where: str | None = None,
        progress: _progress.ProgressArg = None,
        split_by: _options.SplitBy | None = None,
        sparse_columns: _options.SparseColumns | None = None,
        sparse_threshold: float = _wide.SPARSE_THRESHOLD,
        max_memory: int | Literal["auto"] | None = "auto",
    ) -> _wide.Results:
        """Read a saved export (``.jsonl`` or ``.jsonl.gz``).

        See :func:`robotmia_frames.read_export_file`.

        Example:
            >>> import tempfile, pathlib
            >>> p = pathlib.Path(tempfile.mkdtemp(), "export.jsonl")
            >>> _ = p.write_text('{"event":"a","properties":{"time":1704067200}}\\n')
            >>> len(Client(project_timezone="UTC").read_export_file(p))
            1
        """
        tz = self._conn.timezone(project_timezone)
        pinned = _pipeline.Pinned.checked(dtype, on_type_mismatch)
        shape = _wide.Shape.of(locals())
        tables = _pipeline.call_with(
            _pipeline.read_file,
            locals(),
            tz=tz,
            hook=_wide.Collector(shape),
            build=_wide.builder(shape),
            keep_keys=pinned.keys(),
        )
        held = [pinned.apply_each(tables, str(path), _options.columns(columns))]
        del tables  # given away: pandas frees each Arrow column once converted
        return _wide.deliver(held, shape)

    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["pandas"] = ...,
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> pd.DataFrame: ...
    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["arrow"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> pa.Table: ...
    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["polars"],
        split_by: None = ...,
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> pl.DataFrame: ...
    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["pandas"] = ...,
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> dict[str | None, pd.DataFrame]: ...
    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["arrow"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> dict[str | None, pa.Table]: ...
    @overload
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        return_type: Literal["polars"],
        split_by: Literal["event"],
        **options: Unpack[_typing.ClientReadParquetDataset],
    ) -> dict[str | None, pl.DataFrame]: ...
    def read_parquet_dataset(
        self,
        path: str | os.PathLike[str],
        *,
        from_date: DateLike | None = None,
        to_date: DateLike | None = None,
        columns: Sequence[str] | None = None,
        event: str | Sequence[str] | None = None,
        return_type: ReturnType = "pandas",
        dtype_backend: sinks.DtypeBackend = "numpy_nullable",
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
        dedupe: bool = False,
        where: str | None = None,
        project_timezone: str | None = None,
        progress: _progress.ProgressArg = None,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        split_by: _options.SplitBy | None = None,
        sparse_columns: _options.SparseColumns | None = None,
        sparse_threshold: float = _wide.SPARSE_THRESHOLD,
        max_memory: int | Literal["auto"] | None = "auto",
    ) -> _wide.Results:
        """Read a dataset written by this library back as one table.

        See :func:`robotmia_frames.read_parquet_dataset`.

        Example:
            >>> import tempfile
            >>> from robotmia_frames.emulator import ExportServer, generate_events
            >>> out = tempfile.mkdtemp()
            >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
            ...     client = Client(api_secret="s", project_timezone="UTC", base_url=srv.url)
            ...     _ = client.export_to_parquet(out, "2024-01-01", "2024-01-03")
            >>> len(client.read_parquet_dataset(out, from_date="2024-01-02"))
            20
        """
        query = _pipeline.dataset_query_of(
            locals(), project_timezone=project_timezone or self._conn.project_timezone
        )
        pinned = _pipeline.Pinned.checked(dtype, on_type_mismatch)
        shape = _wide.Shape.of(locals())
        tables = _wide.read_dataset(
            query, shape, progress=progress, keep_keys=frozenset(pinned.dtypes)
        )
        held = [pinned.apply_each(tables, f"the dataset at {path}", query.columns)]
        del tables  # given away: pandas frees each Arrow column once converted
        return _wide.deliver(held, shape)

    # ------------------------------------------------------------------- profiles

    @overload
    def read_robotmia_profiles(
        self,
        *,
        return_type: Literal["pandas"] = ...,
        **options: Unpack[_typing.ClientReadRobotmiaProfiles],
    ) -> pd.DataFrame: ...
    @overload
    def read_robotmia_profiles(
        self,
        *,
        return_type: Literal["arrow"],
        **options: Unpack[_typing.ClientReadRobotmiaProfiles],
    ) -> pa.Table: ...
    @overload
    def read_robotmia_profiles(
        self,
        *,
        return_type: Literal["polars"],
        **options: Unpack[_typing.ClientReadRobotmiaProfiles],
    ) -> pl.DataFrame: ...
    def read_robotmia_profiles(
        self,
        *,
        where: str | None = None,
        output_properties: Sequence[str] | None = None,
        project_timezone: str | None = None,
        profiles_url: str | None = None,
        return_type: ReturnType = "pandas",
        parquet_path: str | os.PathLike[str] | None = None,
        dtype_backend: sinks.DtypeBackend = "numpy_nullable",
        page_size: int | None = None,
        parse_dates: bool = True,
        max_session_restarts: int = 3,
        dtype: Mapping[str, Any] | None = None,
        on_type_mismatch: OnTypeMismatch = "text",
    ) -> pd.DataFrame | pa.Table | pl.DataFrame:
        """Export people profiles (``/api/2.0/engage``) as one table.

        ``profiles_url`` is the engage endpoint (default robotmia's). See
        :func:`robotmia_frames.read_robotmia_profiles`.

        Example:
            >>> from robotmia_frames.emulator import ExportServer
            >>> with ExportServer(generate_profiles=5, api_secret="s") as srv:
            ...     t = Client(api_secret="s", project_timezone="UTC").read_robotmia_profiles(
            ...         profiles_url=srv.engage_url, return_type="arrow")
            >>> t.num_rows
            5
        """
        given = dict(locals())  # every argument is one of read_profiles'
        del given["self"]
        from .profiles import read_profiles

        return read_profiles(self._conn, **given)


_M = TypeVar("_M", bound="Callable[..., object]")


def on_a_new_client(method: Callable[[Client], _M], module: str, doc: str) -> _M:
    """The method that ``method`` picks (``lambda client: client.read_export_file``)
    as a module function of ``module``, with ``doc`` as its docstring: each call
    builds a :class:`Client` with no settings and calls that method on it.

    The function takes exactly the method's arguments: type checkers see the
    method's overloads, ``inspect.signature`` its signature (less ``self``).

    Example:
        >>> plan_export = on_a_new_client(lambda c: c.plan_export, __name__, "The plan.")
        >>> plan_export("2024-01-01", "2024-01-31", window_days=31).requests
        1
        >>> str(inspect.signature(plan_export)).startswith("(from_date: 'DateLike'")
        True
    """
    # A client never built (its settings are not read): it only names the method.
    picked = method(object.__new__(Client))

    def function(*args: object, **kwargs: object) -> object:
        return method(Client())(*args, **kwargs)

    function.__signature__ = inspect.signature(picked)  # type: ignore[attr-defined]
    function.__annotations__ = dict(picked.__annotations__)
    function.__name__ = function.__qualname__ = picked.__name__
    function.__module__ = module
    function.__doc__ = doc
    return cast("_M", function)
