"""Keyword types of the public functions, for their ``@overload`` s on ``return_type``.

Each TypedDict is built from the groups of keywords the functions share, so that a
keyword's type is written once; ``tests/test_public_api.py`` checks that every
TypedDict names exactly its function's keywords.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from . import _progress, sinks, transport
from ._options import DateLike, SparseColumns, TableFormat
from .parse import OnBadLines, OnTypeMismatch

__all__: list[str] = []


class _Pinned(TypedDict, total=False):
    """Pinned column types (``dtype=``) and what a value that does not fit becomes."""

    dtype: Mapping[str, Any] | None
    on_type_mismatch: OnTypeMismatch


class _Types(_Pinned, total=False):
    """How values become columns: every reader's."""

    dtype_backend: sinks.DtypeBackend


class _Query(TypedDict, total=False):
    """Which events a call reads, and how."""

    event: str | Sequence[str] | None
    where: str | None
    project_timezone: str | None
    dedupe: bool
    progress: _progress.ProgressArg


class _Shape(TypedDict, total=False):
    """Which columns a result (or a dataset) has, and the memory building it may take."""

    columns: Sequence[str] | None
    sparse_columns: SparseColumns | None
    sparse_threshold: float
    max_memory: int | Literal["auto"] | None


class _Read(_Query, _Types, _Shape, total=False):
    """The keywords every event reader takes."""


class _Lines(TypedDict, total=False):
    """How export lines are read."""

    on_bad_lines: OnBadLines
    time_in_ms: bool


class _Storage(TypedDict, total=False):
    """Where a dataset lives."""

    storage_options: dict[str, Any] | None
    filesystem: Any


class _Export(_Query, _Types, _Shape, _Lines, _Storage, total=False):
    """The keywords of every export run (and of the dataset it may write)."""

    partition_by: Sequence[str]
    limit: int | None
    refresh: bool
    table_format: TableFormat | None
    window_days: int | Literal["auto"]
    window_target_bytes: int


class _Endpoint(TypedDict, total=False):
    """The connection settings that every request takes, profiles' included."""

    api_secret: str | None
    project_timezone: str | None
    base_url: str | None
    region: str | None
    max_retries: int
    retry_backoff: float
    rate_limit: transport.RateLimit | transport.RateLimiter | None
    timeout: float | None
    verify: bool | str


class ClientSettings(_Endpoint, total=False):
    """The keywords of :class:`~robotmia_frames.Client`."""

    concurrency: int
    cache_dir: str | os.PathLike[str] | None
    max_retry_after: float
    stall_timeout: float
    min_speed: float
    max_window_bytes: int | None


class ClientExportToParquet(_Export, total=False):
    """The keywords of ``export_to_parquet`` other than ``plan`` and ``split_by``
    (``read_robotmia_export``'s, less ``parquet_path`` and ``return_type``)."""


class ClientReadRobotmiaExport(_Export, _Read, total=False):
    """The keywords of ``read_robotmia_export`` other than ``return_type``."""

    parquet_path: str | os.PathLike[str] | None


class ClientReadExportFile(_Read, _Lines, total=False):
    """The keywords of ``read_export_file`` other than ``return_type``."""


class ClientReadParquetDataset(_Read, _Storage, total=False):
    """The keywords of ``read_parquet_dataset`` other than ``return_type``."""

    from_date: DateLike | None
    to_date: DateLike | None


class _Profiles(_Types, total=False):
    """The keywords of a profiles query."""

    where: str | None
    output_properties: Sequence[str] | None
    project_timezone: str | None
    parquet_path: str | os.PathLike[str] | None
    page_size: int | None
    parse_dates: bool
    max_session_restarts: int


class ClientReadRobotmiaProfiles(_Profiles, total=False):
    """The keywords of ``read_robotmia_profiles`` other than ``return_type``."""

    profiles_url: str | None


class ApiReadRobotmiaExport(ClientReadRobotmiaExport, ClientSettings, total=False):
    """The keywords of ``read_robotmia_export``: the method's and the client's settings."""


class ApiExportToParquet(ClientExportToParquet, ClientSettings, total=False):
    """The keywords of ``export_to_parquet`` (less ``plan``): the method's and the
    client's settings."""


class ApiReadRobotmiaProfiles(_Profiles, _Endpoint, total=False):
    """The keywords of ``read_robotmia_profiles`` other than ``return_type``."""
