"""The sink stage: finished Arrow batches to pandas and partitioned Parquet datasets.

Everything here receives finished batches (``event``, UTC ``time``,
``properties.*``) and knows nothing of HTTP or JSON parsing.

Modules: ``_pandas`` (Arrow to pandas with nullable dtypes), ``_dataset`` (the
Hive-partitioned dataset: atomic days, types kept consistent across days, dedupe),
``_state`` (the sync state).

Example:
    >>> import pyarrow as pa
    >>> to_pandas(pa.table({"x": [1, None]})).dtypes["x"]
    Int64Dtype()
"""

from ._dataset import (
    DEDUPE_KEYS,
    METADATA_KEY,
    NULL_PARTITION,
    CompiledFilter,
    DayWriteResult,
    Deduper,
    ParquetDataset,
    WhereCompiler,
    column_order,
    conform_table,
    unify_kinds_of_schemas,
    with_dedupe_keys,
)
from ._pandas import DtypeBackend, to_pandas
from ._state import SyncState, load_state, save_state

__all__ = [
    "DEDUPE_KEYS",
    "METADATA_KEY",
    "NULL_PARTITION",
    "CompiledFilter",
    "DayWriteResult",
    "Deduper",
    "DtypeBackend",
    "ParquetDataset",
    "SyncState",
    "WhereCompiler",
    "column_order",
    "conform_table",
    "load_state",
    "save_state",
    "to_pandas",
    "unify_kinds_of_schemas",
    "with_dedupe_keys",
]
