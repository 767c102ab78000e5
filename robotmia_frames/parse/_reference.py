"""The parse stage: decoding, bad lines, and the reference row-by-row builder.

The fast path is ``_engine.py`` (one pass, columns per key shape). This module holds
what it builds on (line decoding, ``on_bad_lines`` handling, the schema of a batch)
and the reference builder, which the engine falls back to for the rare batches it
cannot widen exactly and which the property tests compare it against. The
reference builder takes two passes, so that a column's type is decided over the
whole input before any row is built:

1. :func:`scan_lines` reads every line and records, per property key, the
   :class:`~robotmia_frames.parse.typepolicy.Kind` of its values (and which lines are
   malformed). Scans of several day windows merge into one ``kinds`` mapping.
2. :func:`iter_batches` reads the lines again and builds record batches whose schema
   is fixed by the merged kinds, so a conflict first seen in the last batch still
   widens the column for every row, and nothing is ever dropped or failed.

The batches carry ``event`` (string), ``time`` (float64, still project-local seconds;
the time stage converts it) and one ``properties.<key>`` column per key. This module
knows nothing of time zones, pandas or Parquet.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import ParseError
from . import typepolicy as tp
from ._decode import (
    BLANK,
    PROPERTY_PREFIX,
    BadLineError,
    BadLines,
    OnBadLines,
    export_schema,
    loads_exact,
    scatter,
    split_event,
    time_value,
    values_array,
)
from ._lines import BATCH_ROWS
from .typepolicy import Kind, json_text, kind_of, unify

# ---------------------------------------------------------------------- pass one


@dataclass
class ScanResult:
    """What :func:`scan_lines` learnt of one source."""

    source: str
    rows: int
    bad_lines: frozenset[int]
    event_kind: Kind = tp.NULL


def scan_lines(
    lines: Iterable[bytes],
    kinds: dict[str, Kind],
    *,
    source: str,
    on_bad_lines: OnBadLines = "error",
    keys: frozenset[str] | None = None,
) -> ScanResult:
    """Pass one: merge the kind of every property value into ``kinds``.

    ``kinds`` maps property keys (without the ``properties.`` prefix) to kinds and is
    updated in place, in order of first appearance, so several sources can share it.
    ``keys`` limits the scan to those property keys (column projection).

    Example:
        >>> kinds = {}
        >>> r = scan_lines([b'{"event":"a","properties":{"x":1}}', b'{"properties":{"x":"b"}}'],
        ...                kinds, source="demo")
        >>> r.rows, kinds
        (2, {'x': text})
    """
    bad = BadLines(source, on_bad_lines)
    rows = 0
    event_kind = tp.NULL
    kinds_get = kinds.get
    for number, line in enumerate(lines, 1):
        if line in BLANK or not line.strip():
            continue
        try:
            obj, _ = loads_exact(line)
            event, props = split_event(obj)
        except BadLineError as exc:
            bad.report(number, str(exc), line)
            continue
        rows += 1
        if type(event) is not str and event is not None:
            event_kind = tp.TEXT
        elif event is not None and event_kind is tp.NULL:
            event_kind = tp.STR
        for key, value in props.items():
            if key == "time" or (keys is not None and key not in keys):
                continue
            k = tp.STR if type(value) is str else kind_of(value)
            old = kinds_get(key)
            if old is not k:
                kinds[key] = unify(old, k)
    return ScanResult(source, rows, frozenset(bad.lines), event_kind)


def iter_batches(
    lines: Iterable[bytes],
    kinds: dict[str, Kind],
    *,
    source: str,
    skip_lines: frozenset[int] = frozenset(),
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Pass two: build record batches with the schema :func:`export_schema` gives.

    ``skip_lines`` are the malformed lines found by :func:`scan_lines` (already
    reported there). A line that fails here but not in pass one cannot happen for
    the same bytes; it raises :class:`ParseError` all the same.

    Example:
        >>> kinds = {}
        >>> lines = [b'{"event":"a","properties":{"time":1,"x":1}}']
        >>> _ = scan_lines(lines, kinds, source="demo")
        >>> next(iter_batches(lines, kinds, source="demo")).to_pylist()
        [{'event': 'a', 'time': 1.0, 'properties.x': 1}]
    """
    schema = export_schema(kinds, columns)
    wanted = {f.name for f in schema}
    want_event = "event" in wanted
    want_time = "time" in wanted
    prop_kinds = {
        name[len(PROPERTY_PREFIX) :]: kinds.get(name[len(PROPERTY_PREFIX) :], tp.NULL)
        for name in wanted
        if name.startswith(PROPERTY_PREFIX)
    }
    projected = columns is not None
    events: list[Any] = []
    times: list[float | None] = []
    cols: dict[str, tuple[list[int], list[Any]]] = {}
    row = 0

    def flush() -> pa.RecordBatch:
        nonlocal events, times, cols, row
        arrays: list[pa.Array] = []
        for f in schema:
            name = f.name
            if name == "event":
                arrays.append(
                    pa.array(
                        [e if e is None or type(e) is str else json_text(e) for e in events],
                        type=pa.string(),
                    )
                )
            elif name == "time":
                arrays.append(pa.array(times, type=pa.float64()))
            else:
                key = name[len(PROPERTY_PREFIX) :]
                got = cols.get(key)
                if got is None:
                    arrays.append(pa.nulls(row, type=f.type))
                else:
                    kind = prop_kinds[key]
                    arrays.append(scatter(values_array(kind, got[1]), got[0], row))
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        events, times, cols, row = [], [], {}, 0
        return batch

    for number, line in enumerate(lines, 1):
        if line in BLANK or number in skip_lines or not line.strip():
            continue
        try:
            obj, _ = loads_exact(line)
            event, props = split_event(obj)
        except BadLineError as exc:
            raise ParseError(f"malformed line ({exc})", line_number=number, source=source) from None
        if want_event:
            events.append(event)
        if want_time:
            times.append(time_value(props.get("time")))
        for key, value in props.items():
            if key == "time" or (projected and key not in prop_kinds):
                continue
            got = cols.get(key)
            if got is None:
                got = cols[key] = ([], [])
            got[0].append(row)
            got[1].append(value)
        row += 1
        if row >= batch_rows:
            yield flush()
    if row:
        yield flush()
