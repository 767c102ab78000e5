"""Keyword types of the public functions, for their ``@overload`` s on ``return_type``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from . import _progress, sinks, transport
from ._options import DateLike, SparseColumns, TableFormat

__all__: list[str] = []


class ApiReadRobotmiaProfiles(TypedDict, total=False):
    """The keywords of ``read_robotmia_profiles`` other than ``return_type``."""

    where: str | None
    output_properties: Sequence[str] | None
    api_secret: str | None
    project_timezone: str | None
    base_url: str | None
    region: str | None
    parquet_path: str | os.PathLike[str] | None
    dtype_backend: sinks.DtypeBackend
    page_size: int | None
    parse_dates: bool
    max_retries: int
    retry_backoff: float
    max_session_restarts: int
    rate_limit: transport.RateLimit | transport.RateLimiter | None
    timeout: float | None
    verify: bool | str
    dtype: Mapping[str, Any] | None
    on_type_mismatch: Literal["text", "null", "error"]


class ClientExportToParquet(TypedDict, total=False):
    """The keywords of ``export_to_parquet`` other than ``plan`` (all of them are
    ``read_robotmia_export``'s too)."""

    event: str | Sequence[str] | None
    where: str | None
    project_timezone: str | None
    on_bad_lines: Literal["error", "skip", "warn"]
    dtype: Mapping[str, Any] | None
    on_type_mismatch: Literal["text", "null", "error"]
    partition_by: Sequence[str]
    dedupe: bool
    time_in_ms: bool
    limit: int | None
    refresh: bool
    progress: _progress.ProgressArg
    storage_options: dict[str, Any] | None
    filesystem: Any
    table_format: TableFormat | None
    window_days: int | Literal["auto"]
    window_target_bytes: int


class ClientReadRobotmiaExport(ClientExportToParquet, total=False):
    """The keywords of ``read_robotmia_export`` other than ``return_type``."""

    parquet_path: str | os.PathLike[str] | None
    columns: Sequence[str] | None
    dtype_backend: sinks.DtypeBackend
    sparse_columns: SparseColumns | None
    sparse_threshold: float
    max_memory: int | Literal["auto"] | None


class ClientReadExportFile(TypedDict, total=False):
    """The keywords of ``read_export_file`` other than ``return_type``."""

    project_timezone: str | None
    on_bad_lines: Literal["error", "skip", "warn"]
    columns: Sequence[str] | None
    dtype_backend: sinks.DtypeBackend
    dtype: Mapping[str, Any] | None
    on_type_mismatch: Literal["text", "null", "error"]
    dedupe: bool
    time_in_ms: bool
    event: str | Sequence[str] | None
    where: str | None
    progress: _progress.ProgressArg
    sparse_columns: SparseColumns | None
    sparse_threshold: float
    max_memory: int | Literal["auto"] | None


class ClientReadParquetDataset(TypedDict, total=False):
    """The keywords of ``read_parquet_dataset`` other than ``return_type``."""

    from_date: DateLike | None
    to_date: DateLike | None
    columns: Sequence[str] | None
    event: str | Sequence[str] | None
    dtype_backend: sinks.DtypeBackend
    dtype: Mapping[str, Any] | None
    on_type_mismatch: Literal["text", "null", "error"]
    dedupe: bool
    where: str | None
    project_timezone: str | None
    progress: _progress.ProgressArg
    storage_options: dict[str, Any] | None
    filesystem: Any
    sparse_columns: SparseColumns | None
    sparse_threshold: float
    max_memory: int | Literal["auto"] | None


class ClientReadRobotmiaProfiles(TypedDict, total=False):
    """The keywords of ``read_robotmia_profiles`` other than ``return_type``."""

    where: str | None
    output_properties: Sequence[str] | None
    project_timezone: str | None
    profiles_url: str | None
    parquet_path: str | os.PathLike[str] | None
    dtype_backend: sinks.DtypeBackend
    page_size: int | None
    parse_dates: bool
    max_session_restarts: int
    dtype: Mapping[str, Any] | None
    on_type_mismatch: Literal["text", "null", "error"]


class ClientSettings(TypedDict, total=False):
    """The client's settings that the module functions take among their keywords."""

    api_secret: str | None
    base_url: str | None
    region: str | None
    concurrency: int
    rate_limit: transport.RateLimit | transport.RateLimiter | None
    cache_dir: str | os.PathLike[str] | None
    timeout: float | None
    max_retry_after: float
    stall_timeout: float
    min_speed: float
    max_window_bytes: int | None
    max_retries: int
    retry_backoff: float
    verify: bool | str


class ApiReadRobotmiaExport(ClientReadRobotmiaExport, ClientSettings, total=False):
    """The keywords of ``read_robotmia_export``: the method's and the client's settings."""


class ApiExportToParquet(ClientExportToParquet, ClientSettings, total=False):
    """The keywords of ``export_to_parquet`` (less ``plan``): the method's and the
    client's settings."""


#: The module functions take exactly their method's keywords.
ApiReadExportFile = ClientReadExportFile
ApiReadParquetDataset = ClientReadParquetDataset
