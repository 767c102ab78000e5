"""The parse stage: export lines (JSONL, gzip or plain) to typed Arrow columns.

The face of the stage. :func:`read_raw_batches` reads a local body chunk by chunk
(the C scanner where it is built, else Python) into :class:`RawBatch` es typed per
chunk; :func:`merge_kinds` folds their column kinds into the export's, by the type
policy (:mod:`robotmia_frames.parse.typepolicy`); :func:`conform` gives every batch
those final kinds. The reference row-by-row builder (:func:`scan_lines`,
:func:`iter_batches`) is what the engine falls back to and is tested against.

Modules: ``_lines`` (chunks of whole lines), ``_batch`` (a chunk's columns),
``_native`` (the C scanner bridge), ``_engine`` (the pipeline over them),
``_reference`` (row-by-row), ``_wide`` (compact shapes for wide exports),
``typepolicy`` (the JSON to Arrow type rules).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
    >>> _ = p.write_bytes(b'{"event":"a","properties":{"time":1,"n":2}}\\n')
    >>> kinds = {}
    >>> for batch in read_raw_batches(p, source="x"):
    ...     merge_kinds(kinds, batch)
    >>> kinds
    {'n': int}
"""

from ._batch import SPARSE_FILL, Hold, RawBatch, RawColumn, mostly_empty
from ._decode import (
    PROPERTY_PREFIX,
    BadLines,
    OnBadLines,
    column_array,
    export_schema,
    time_value,
    validate_on_bad_lines,
)
from ._engine import build_raw_batch, conform, merge_kinds, read_raw_batches
from ._lines import BATCH_ROWS, ChunkRows, iter_line_chunks, opened, read_block
from ._native import (
    Cutter,
    cut_lines,
    line_after,
    native_enabled,
    scan_times,
    scanner_status,
    trim_memory,
)
from ._pinned import PINNABLE, RAW_SUFFIX, OnTypeMismatch, PinReport, pin_types, type_name
from ._reference import ScanResult, iter_batches, scan_lines
from ._stream import BodyParser
from ._wide import (
    FANOUT,
    MAP_TYPE,
    Coalescer,
    batch_text,
    coalesce,
    compact,
    event_keys,
    map_array,
    split_events,
    text_values,
)
from .typepolicy import (
    KIND_METADATA_KEY,
    Kind,
    arrow_type,
    json_text,
    kind_of_field,
    unify,
    unify_into,
)

__all__ = [
    "BATCH_ROWS",
    "FANOUT",
    "KIND_METADATA_KEY",
    "MAP_TYPE",
    "PINNABLE",
    "PROPERTY_PREFIX",
    "RAW_SUFFIX",
    "SPARSE_FILL",
    "BadLines",
    "BodyParser",
    "ChunkRows",
    "Coalescer",
    "Cutter",
    "Hold",
    "Kind",
    "OnBadLines",
    "OnTypeMismatch",
    "PinReport",
    "RawBatch",
    "RawColumn",
    "ScanResult",
    "arrow_type",
    "batch_text",
    "build_raw_batch",
    "coalesce",
    "column_array",
    "compact",
    "conform",
    "cut_lines",
    "event_keys",
    "export_schema",
    "iter_batches",
    "iter_line_chunks",
    "json_text",
    "kind_of_field",
    "line_after",
    "map_array",
    "merge_kinds",
    "mostly_empty",
    "native_enabled",
    "opened",
    "pin_types",
    "read_block",
    "read_raw_batches",
    "scan_lines",
    "scan_times",
    "scanner_status",
    "split_events",
    "text_values",
    "time_value",
    "trim_memory",
    "type_name",
    "unify",
    "unify_into",
    "validate_on_bad_lines",
]
