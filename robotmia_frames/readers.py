"""The pinned module functions that read local data: a saved export, a dataset.

``read_export_file`` and ``read_parquet_dataset`` keep the signatures of
``design.md``. They take no connection settings: each calls the method of the same
name of a :class:`Client` built with none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import pandas as pd
import pyarrow as pa

from . import _options, _progress, _wide, sinks
from ._options import DateLike, ReturnType
from .client import Client
from .parse import OnBadLines, OnTypeMismatch

if TYPE_CHECKING:
    import polars as pl
    from typing_extensions import Unpack

    from . import _typing

__all__ = ["read_export_file", "read_parquet_dataset"]


@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["pandas"] = ...,
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadExportFile],
) -> pd.DataFrame: ...
@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["arrow"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadExportFile],
) -> pa.Table: ...
@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["polars"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadExportFile],
) -> pl.DataFrame: ...
@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["pandas"] = ...,
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadExportFile],
) -> dict[str | None, pd.DataFrame]: ...
@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["arrow"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadExportFile],
) -> dict[str | None, pa.Table]: ...
@overload
def read_export_file(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["polars"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadExportFile],
) -> dict[str | None, pl.DataFrame]: ...
def read_export_file(
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
    """Read a saved export (``.jsonl`` or ``.jsonl.gz``, multi-member gzip included).

    Gives exactly what :func:`~robotmia_frames.read_robotmia_export` gives for the
    same lines. ``event`` keeps the rows of those events; with ``where`` (a ``where``
    expression, see ``docs/where.md``) only the rows it selects are returned, as the
    export's server-side filter would select them. ``progress`` as in
    :func:`~robotmia_frames.read_robotmia_export`: a bar counting parsed rows on a
    terminal when the read lasts over a second, or a callback. ``split_by``,
    ``sparse_columns``, ``sparse_threshold`` and ``max_memory`` as in
    :func:`~robotmia_frames.read_robotmia_export`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "export.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"time":1704067200,"n":1}}\\n')
        >>> df = read_export_file(p, project_timezone="Europe/Paris")
        >>> str(df["time"][0])
        '2023-12-31 23:00:00+00:00'
    """
    given = dict(locals())
    return Client().read_export_file(given.pop("path"), **given)


@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["pandas"] = ...,
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> pd.DataFrame: ...
@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["arrow"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> pa.Table: ...
@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["polars"],
    split_by: None = ...,
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> pl.DataFrame: ...
@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["pandas"] = ...,
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> dict[str | None, pd.DataFrame]: ...
@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["arrow"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> dict[str | None, pa.Table]: ...
@overload
def read_parquet_dataset(
    path: str | os.PathLike[str],
    *,
    return_type: Literal["polars"],
    split_by: Literal["event"],
    **options: Unpack[_typing.ApiReadParquetDataset],
) -> dict[str | None, pl.DataFrame]: ...
def read_parquet_dataset(
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

    Days with different column sets or types are unified by the same type policy;
    only the requested days (partition pruning), events and columns are read.
    ``where`` keeps the rows a ``where`` expression selects (see ``docs/where.md``),
    pushed down into each file's scan; its times are read in ``project_timezone``,
    else the timezone the dataset recorded when it was written.
    ``progress`` as in :func:`~robotmia_frames.read_robotmia_export`, counting days
    read. ``split_by``, ``sparse_columns``, ``sparse_threshold`` and ``max_memory`` as
    in :func:`~robotmia_frames.read_robotmia_export` (the memory is estimated from
    the files' footers).

    Example:
        >>> import tempfile
        >>> import robotmia_frames as rf
        >>> from robotmia_frames.emulator import ExportServer, generate_events
        >>> out = tempfile.mkdtemp()
        >>> with ExportServer(generate_events(30, days=3), api_secret="s") as srv:
        ...     _ = rf.export_to_parquet(out, "2024-01-01", "2024-01-03", api_secret="s",
        ...                              project_timezone="UTC", base_url=srv.url)
        >>> len(read_parquet_dataset(out, from_date="2024-01-02"))
        20
    """
    given = dict(locals())
    return Client().read_parquet_dataset(given.pop("path"), **given)
