"""The sink stage: finished Arrow batches to pandas and partitioned Parquet datasets.

Everything here receives finished batches (``event``, UTC ``time``,
``properties.*``) and knows nothing of HTTP or JSON parsing.

Modules: ``_pandas`` (Arrow to pandas with nullable dtypes), ``_dataset`` (the
Hive-partitioned dataset: atomic days, types kept consistent across days, dedupe),
``_state`` (the dataset's state, read from its files' footers), ``_delta`` (Delta
Lake tables of days, one commit a day), ``_storage``
(where a dataset lives: local, ``file://`` or any fsspec/pyarrow URL; the writer lock).

Example:
    >>> import pyarrow as pa
    >>> to_pandas(pa.table({"x": [1, None]})).dtypes["x"]
    Int64Dtype()
"""

from ._dataset import (
    METADATA_KEY,
    NULL_PARTITION,
    CompiledFilter,
    DayWriteResult,
    ParquetDataset,
    WhereCompiler,
    recorded_metadata,
)
from ._delta import DELTA_LOG, DeltaDataset, delta_storage_options, is_delta
from ._lease import LEASE_SECONDS_ENV, Lease, lease_path
from ._pandas import DtypeBackend, to_pandas
from ._rowgroups import footer
from ._state import BYTES_KEY, LEGACY_DIR, DatasetState, encode_ranges, load_state
from ._storage import LOCK_TIMEOUT_ENV, Location, locate, lock_path, writer_lock
from ._tables import (
    DEDUPE_KEYS,
    Deduper,
    SchemaParts,
    column_order,
    conform_table,
    unified_table,
    unify_kinds_of_schemas,
    with_dedupe_keys,
)

__all__ = [
    "BYTES_KEY",
    "DEDUPE_KEYS",
    "DELTA_LOG",
    "LEASE_SECONDS_ENV",
    "LEGACY_DIR",
    "LOCK_TIMEOUT_ENV",
    "METADATA_KEY",
    "NULL_PARTITION",
    "CompiledFilter",
    "DatasetState",
    "DayWriteResult",
    "Deduper",
    "DeltaDataset",
    "DtypeBackend",
    "Lease",
    "Location",
    "ParquetDataset",
    "SchemaParts",
    "WhereCompiler",
    "column_order",
    "conform_table",
    "delta_storage_options",
    "encode_ranges",
    "footer",
    "is_delta",
    "lease_path",
    "load_state",
    "locate",
    "lock_path",
    "recorded_metadata",
    "to_pandas",
    "unified_table",
    "unify_kinds_of_schemas",
    "with_dedupe_keys",
    "writer_lock",
]
