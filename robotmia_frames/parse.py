"""The parse stage: decoding, bad lines, and the reference row-by-row builder.

The fast path is ``engine.py`` (one pass, columns per key shape). This module holds
what it builds on (line decoding, ``on_bad_lines`` handling, the schema of a batch)
and the reference builder, which the engine falls back to for the rare batches it
cannot widen exactly and which the property tests compare it against. The
reference builder takes two passes, so that a column's type is decided over the
whole input before any row is built:

1. :func:`scan_lines` reads every line and records, per property key, the
   :class:`~robotmia_frames.typepolicy.Kind` of its values (and which lines are
   malformed). Scans of several day windows merge into one ``kinds`` mapping.
2. :func:`iter_batches` reads the lines again and builds record batches whose schema
   is fixed by the merged kinds, so a conflict first seen in the last batch still
   widens the column for every row, and nothing is ever dropped or failed.

The batches carry ``event`` (string), ``time`` (float64, still project-local seconds;
the time stage converts it) and one ``properties.<key>`` column per key. This module
knows nothing of time zones, pandas or Parquet.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from .errors import InvalidArgumentError, ParseError, RobotmiaWarning
from .typepolicy import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    STR,
    TEXT,
    Kind,
    arrow_field,
    arrow_type,
    json_text,
    kind_of,
    unify,
)

__all__ = [
    "PROPERTY_PREFIX",
    "BadLines",
    "ScanResult",
    "column_array",
    "export_schema",
    "iter_batches",
    "scan_lines",
    "validate_on_bad_lines",
]

PROPERTY_PREFIX = "properties."
OnBadLines = Literal["error", "skip", "warn"]
_ON_BAD_LINES = ("error", "skip", "warn")
DEFAULT_BATCH_ROWS = 65_536

# orjson reads integers beyond 64 bits as floats; lines with 19+ digit runs take the
# exact (standard library) path instead. Matches inside strings only cost speed.
# (translate + find is ~9x faster than re.search(rb"\d{19}") on export lines.)
_DIGIT_MAP = bytes(48 if 48 <= i <= 57 else 46 for i in range(256))
_LONG_RUN = b"0" * 19
_GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE = re.compile("[\ud800-\udfff]")
_BLANK = frozenset((b"", b"\n", b"\r\n"))


def validate_on_bad_lines(value: str) -> OnBadLines:
    """Check an ``on_bad_lines`` argument (``"error"``, ``"skip"`` or ``"warn"``)."""
    if value not in _ON_BAD_LINES:
        raise InvalidArgumentError(
            f"on_bad_lines must be one of 'error', 'skip', 'warn', got {value!r}"
        )
    return value  # type: ignore[return-value]


# ------------------------------------------------------------------------ decoding


class _BadLine(Exception):
    pass


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _clean_surrogates(value: Any) -> Any:
    """Replace lone UTF-16 surrogates (legal escapes, not encodable) with U+FFFD."""
    t = type(value)
    if t is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
        return value
    if t is list:
        return [_clean_surrogates(v) for v in value]
    if t is dict:
        return {_clean_surrogates(k): _clean_surrogates(v) for k, v in value.items()}
    return value


def _slow_loads(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
        return _clean_surrogates(json.loads(text, parse_constant=_no_constants))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _BadLine(str(exc)) from None


def _loads(line: bytes) -> tuple[Any, bool]:
    """Decode one line; the flag says the exact (slow) path was taken."""
    if _LONG_RUN not in line.translate(_DIGIT_MAP):
        try:
            return orjson.loads(line), False
        except orjson.JSONDecodeError:
            pass  # lone surrogates, huge exponents: let the exact path decide
    return _slow_loads(line), True


def _split_event(obj: Any) -> tuple[Any, dict[str, Any]]:
    """Return (event, properties) of a decoded line, or raise _BadLine."""
    if type(obj) is not dict:
        raise _BadLine(f"expected a JSON object, got {type(obj).__name__}")
    props = obj.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        raise _BadLine(f'"properties" must be a JSON object, got {type(props).__name__}')
    return obj.get("event"), props


@dataclass
class BadLines:
    """Malformed lines of one source, handled per ``on_bad_lines``."""

    source: str
    on_bad_lines: OnBadLines
    lines: set[int] = field(default_factory=set)
    #: With ``defer_warnings`` (parsing in a worker process), "warn" records the
    #: warnings here for the parent to issue, in line order.
    defer_warnings: bool = False
    deferred: list[str] = field(default_factory=list)

    def report(self, line_number: int, reason: str, line: bytes) -> None:
        if self.on_bad_lines == "error":
            raise ParseError(
                f"malformed line ({reason}): {_preview(line)}; pass on_bad_lines='skip' "
                "or 'warn' to read the other lines",
                line_number=line_number,
                source=self.source,
            )
        self.lines.add(line_number)
        if self.on_bad_lines == "warn":
            message = f"{self.source}, line {line_number}: skipped malformed line ({reason})"
            if self.defer_warnings:
                self.deferred.append(message)
            else:
                warnings.warn(message, RobotmiaWarning, stacklevel=6)


def _preview(line: bytes, limit: int = 80) -> str:
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---------------------------------------------------------------------- pass one


@dataclass
class ScanResult:
    """What :func:`scan_lines` learnt of one source."""

    source: str
    rows: int
    bad_lines: frozenset[int]
    event_kind: Kind = NULL


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
    event_kind = NULL
    kinds_get = kinds.get
    for number, line in enumerate(lines, 1):
        if line in _BLANK or not line.strip():
            continue
        try:
            obj, slow = _loads(line)
            event, props = _split_event(obj)
        except _BadLine as exc:
            bad.report(number, str(exc), line)
            continue
        rows += 1
        if type(event) is not str and event is not None:
            event_kind = TEXT
        elif event is not None and event_kind is NULL:
            event_kind = STR
        for key, value in props.items():
            if key == "time" or (keys is not None and key not in keys):
                continue
            t = type(value)
            if t is str:
                k = STR
            elif t is int and not slow:
                k = INT  # the fast path only yields int64-range ints
            elif t is float:
                k = FLOAT
            elif t is bool:
                k = BOOL
            elif value is None:
                k = NULL
            else:
                k = kind_of(value)
            old = kinds_get(key)
            if old is not k:
                kinds[key] = unify(old, k)
    return ScanResult(source, rows, frozenset(bad.lines), event_kind)


def export_schema(kinds: dict[str, Kind], columns: Sequence[str] | None = None) -> pa.Schema:
    """The schema of the batches :func:`iter_batches` builds for ``kinds``.

    ``time`` here is still float64 local seconds; ``columns`` (full column names)
    selects and orders the output.

    Example:
        >>> from robotmia_frames.typepolicy import INT
        >>> export_schema({"x": INT}).names
        ['event', 'time', 'properties.x']
    """
    fields = [pa.field("event", pa.string()), pa.field("time", pa.float64())]
    fields += [arrow_field(PROPERTY_PREFIX + k, v) for k, v in kinds.items()]
    schema = pa.schema(fields)
    if columns is None:
        return schema
    by_name = {f.name: f for f in schema}
    return pa.schema(
        [by_name.get(c) or pa.field(c, pa.null()) for c in columns]  # unseen key: all null
    )


# ---------------------------------------------------------------------- pass two


def _convert(value: Any, kind: Kind) -> Any:
    """A parsed value made to fit a column of ``kind`` (which covers its kind)."""
    if value is None:
        return None
    if kind is TEXT:
        return value if type(value) is str else json_text(value)
    if kind.item is not None:
        item = kind.item
        if item is TEXT or item.item is not None:
            return [_convert(v, item) for v in value]
    return value


def _floats(value: Any) -> Any:
    """Ints (even beyond 2**53) made floats, inside lists too."""
    t = type(value)
    if t is int:
        return float(value)
    if t is list:
        return [_floats(v) for v in value]
    return value


def _values_array(kind: Kind, values: list[Any]) -> pa.Array:
    if kind is NULL:
        return pa.nulls(len(values))
    if kind is TEXT or (kind.item is not None and (kind.item is TEXT or kind.item.item)):
        values = [_convert(v, kind) for v in values]
    try:
        return pa.array(values, type=arrow_type(kind))
    except pa.ArrowInvalid:
        # Arrow refuses ints that a double cannot hold exactly; the policy says
        # float64 all the same (ints and floats -> float64).
        return pa.array([_floats(v) for v in values], type=arrow_type(kind))


def _scatter(values: pa.Array, rows: list[int], n: int) -> pa.Array:
    """Place ``values`` (one per entry of ``rows``) into an n-row array of nulls."""
    if len(rows) == n:
        return values
    idx = np.full(n, -1, dtype=np.int64)
    idx[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows), dtype=np.int64)
    return values.take(pa.array(idx, mask=idx < 0))


def column_array(kind: Kind, rows: list[int], values: list[Any], n: int) -> pa.Array:
    """An ``n``-row column of ``kind`` holding ``values[i]`` at row ``rows[i]`` (nulls
    elsewhere), converted by the type policy exactly as :func:`iter_batches` does.

    Example:
        >>> from robotmia_frames.typepolicy import TEXT
        >>> column_array(TEXT, [0, 2], [3, "x"], 3).to_pylist()
        ['3', None, 'x']
    """
    return _scatter(_values_array(kind, values), rows, n)


def _time_value(value: Any) -> float | None:
    t = type(value)
    if t is int:
        return float(value) if -(2**53) <= value <= 2**53 else None
    if t is float:
        return value  # type: ignore[no-any-return]
    return None


def iter_batches(
    lines: Iterable[bytes],
    kinds: dict[str, Kind],
    *,
    source: str,
    skip_lines: frozenset[int] = frozenset(),
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
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
        name[len(PROPERTY_PREFIX) :]: kinds.get(name[len(PROPERTY_PREFIX) :], NULL)
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
                    arrays.append(_scatter(_values_array(kind, got[1]), got[0], row))
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        events, times, cols, row = [], [], {}, 0
        return batch

    for number, line in enumerate(lines, 1):
        if line in _BLANK or number in skip_lines or not line.strip():
            continue
        try:
            obj, _ = _loads(line)
            event, props = _split_event(obj)
        except _BadLine as exc:
            raise ParseError(f"malformed line ({exc})", line_number=number, source=source) from None
        if want_event:
            events.append(event)
        if want_time:
            times.append(_time_value(props.get("time")))
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


# Names the parse engine (``engine.py``) builds on.
BadLineError = _BadLine
slow_loads = _slow_loads
loads_exact = _loads
values_array = _values_array
time_value = _time_value
