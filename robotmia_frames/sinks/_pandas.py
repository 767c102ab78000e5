"""Arrow tables to pandas: nullable dtypes by default, ``ArrowDtype`` on request."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, cast

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidArgumentError
from ..parse import trim_memory

DtypeBackend = Literal["numpy_nullable", "pyarrow"]

#: Columns converted between two returns of freed memory to the system.
_TRIM_EVERY = 4


def _nullable_mapper(t: pa.DataType) -> Any:
    if pa.types.is_integer(t):
        return pd.Int64Dtype()
    if pa.types.is_floating(t):
        return pd.Float64Dtype()
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        return pd.ArrowDtype(t)
    return None  # timestamps keep datetime64[us, UTC]; null columns are object


def _give_back() -> None:
    """Return freed memory to the system: the C heap's (the scanner's buffers) and
    Arrow's default pool's (mimalloc or jemalloc keep freed pages for reuse; the
    table's columns are freed there as they are converted)."""
    trim_memory()
    pa.default_memory_pool().release_unused()


def to_pandas(
    table: pa.Table | list[pa.Table], *, dtype_backend: DtypeBackend = "numpy_nullable"
) -> pd.DataFrame:
    """Convert a result table to pandas with nullable dtypes (or ``ArrowDtype``).

    Integers become ``Int64``, floats ``Float64``, bools ``boolean``, strings
    ``string``, lists ``ArrowDtype(list<...>)`` (maps ``ArrowDtype(map<...>)``), ``time`` ``datetime64[us, UTC]``.

    Columns are converted one by one, on two threads; string columns keep their
    Arrow data (pandas' ``string[pyarrow]`` shares it), only their offsets are
    widened, in memory returned to the system when the frame is dropped. A table
    given in a one-item list is given away: the list is emptied and each Arrow
    column is freed once converted, so that the peak stays near one copy of the
    data, not two. The frame is assembled from the converted columns without
    another copy.

    Example:
        >>> import pyarrow as pa
        >>> to_pandas(pa.table({"x": [1, None]})).dtypes["x"]
        Int64Dtype()
    """
    if dtype_backend not in ("numpy_nullable", "pyarrow"):
        raise InvalidArgumentError(
            f"dtype_backend must be 'numpy_nullable' or 'pyarrow', got {dtype_backend!r}"
        )
    owned_columns = isinstance(table, list)
    owned = table.pop() if isinstance(table, list) else table
    del table
    names = owned.column_names
    rows = owned.num_rows
    columns: list[pa.ChunkedArray | None] = list(owned.columns)
    del owned
    mapper = pd.ArrowDtype if dtype_backend == "pyarrow" else _nullable_mapper

    def convert(i: int) -> pd.Series:
        column = cast(pa.ChunkedArray, columns[i])
        columns[i] = None
        if dtype_backend == "numpy_nullable" and pa.types.is_string(column.type):
            # pandas keeps large strings; Arrow's cast shares the string data and
            # releases the GIL, so it runs here, in parallel, not in pandas.
            column = pc.cast(column, pa.large_string(), memory_pool=pa.system_memory_pool())
        series: pd.Series = column.to_pandas(types_mapper=mapper)
        series.name = names[i]
        return series

    workers = min(2, os.cpu_count() or 1, max(1, len(names)))
    converted: list[pd.Series] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, series in enumerate(pool.map(convert, range(len(names))), 1):
            converted.append(series)
            if owned_columns and i % _TRIM_EVERY == 0:
                _give_back()  # the freed Arrow columns, back for the next columns
    if owned_columns:
        _give_back()
    frame: pd.DataFrame = pd.DataFrame(
        dict(zip(names, converted, strict=True)), index=pd.RangeIndex(rows), copy=False
    )
    return frame
