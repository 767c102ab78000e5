"""Decoding export lines: JSON with exact big integers, ``on_bad_lines``, the batch
schema, and typed value arrays. Shared by the engine and the reference builder."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from .._redact import redact
from ..errors import InvalidArgumentError, ParseError, RobotmiaWarning, user_stacklevel
from .typepolicy import (
    NULL,
    TEXT,
    JsonNumber,
    Kind,
    arrow_field,
    arrow_type,
    json_text,
)

PROPERTY_PREFIX = "properties."
OnBadLines = Literal["error", "skip", "warn"]
_ON_BAD_LINES = ("error", "skip", "warn")


# orjson reads integers beyond 64 bits as floats; lines with 19+ digit runs take the
# exact (standard library) path instead. Matches inside strings only cost speed.
# (translate + find is ~9x faster than re.search(rb"\d{19}") on export lines.)
_DIGIT_MAP = bytes(48 if 48 <= i <= 57 else 46 for i in range(256))
_LONG_RUN = b"0" * 19
_GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE = re.compile("[\ud800-\udfff]")
BLANK = frozenset((b"", b"\n", b"\r\n"))

#: The deepest nesting of a value inside ``properties`` (or of ``event``) that is
#: read; a line nested deeper is malformed (``on_bad_lines`` decides). Lists that
#: deep would become Arrow types hundreds of levels deep, which nothing downstream
#: (pandas, Parquet) handles.
MAX_NESTING = 256
_LINE_NESTING = MAX_NESTING + 2  # the line's own object and ``properties``
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def validate_on_bad_lines(value: str) -> OnBadLines:
    """Check an ``on_bad_lines`` argument (``"error"``, ``"skip"`` or ``"warn"``)."""
    if value not in _ON_BAD_LINES:
        raise InvalidArgumentError(
            f"on_bad_lines must be one of 'error', 'skip', 'warn', got {value!r}"
        )
    return value  # type: ignore[return-value]


# ------------------------------------------------------------------------ decoding


class BadLineError(Exception):
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


def _float(text: str) -> float | JsonNumber:
    """A JSON float, or its exact text when it overflows a double (``1e400``)."""
    value = float(text)
    if value in (_INF, -_INF):
        return JsonNumber(text)
    return value


_INF = float("inf")


def slow_loads(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
        return _clean_surrogates(json.loads(text, parse_constant=_no_constants, parse_float=_float))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadLineError(str(exc)) from None


def check_nesting(line: bytes) -> None:
    """Raise :class:`BadLineError` if ``line`` nests deeper than :data:`MAX_NESTING`.

    Cheap for ordinary lines (two counts); only a line with many brackets is walked.

    Example:
        >>> check_nesting(b'{"properties":{"v":[[1]]}}')
        >>> check_nesting(b'{"properties":{"v":' + b"[" * 300 + b"]" * 300 + b"}}")
        Traceback (most recent call last):
        ...
        robotmia_frames.parse._decode.BadLineError: nested 302 levels deep (values nested more than 256 levels are not read)
    """
    if line.count(b"[") + line.count(b"{") <= _LINE_NESTING:
        return
    depth = nesting_depth(line)
    if depth > _LINE_NESTING:
        raise BadLineError(
            f"nested {depth} levels deep (values nested more than {MAX_NESTING} levels "
            "are not read)"
        )


def nesting_depth(line: bytes) -> int:
    """How many ``[``/``{`` are open at once, at most, outside strings.

    Example:
        >>> nesting_depth(b'{"a":[{"b":"[[["}]}')
        3
    """
    codes = np.frombuffer(_STRING.sub(b'""', line), dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)
    steps[(codes == 0x5B) | (codes == 0x7B)] = 1
    steps[(codes == 0x5D) | (codes == 0x7D)] = -1
    return int(np.cumsum(steps).max(initial=0))


def loads_exact(line: bytes) -> tuple[Any, bool]:
    """Decode one line; the flag says the exact (slow) path was taken."""
    check_nesting(line)
    if _LONG_RUN not in line.translate(_DIGIT_MAP):
        try:
            return orjson.loads(line), False
        except orjson.JSONDecodeError:
            pass  # lone surrogates, huge exponents: let the exact path decide
    return slow_loads(line), True


def split_event(obj: Any) -> tuple[Any, dict[str, Any]]:
    """Return (event, properties) of a decoded line, or raise BadLineError."""
    if type(obj) is not dict:
        raise BadLineError(f"expected a JSON object, got {type(obj).__name__}")
    props = obj.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        raise BadLineError(f'"properties" must be a JSON object, got {type(props).__name__}')
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
                f"malformed line ({reason}): {preview(line)}; pass on_bad_lines='skip' "
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
                warnings.warn(message, RobotmiaWarning, stacklevel=user_stacklevel())


def preview(line: bytes, limit: int = 80) -> str:
    """The start of a line for a message, without any registered secret (a proxy's
    page can echo the request's credentials)."""
    text = redact(line.rstrip(b"\r\n").decode("utf-8", "replace"))
    return repr(text if len(text) <= limit else text[:limit] + "...")


def export_schema(kinds: dict[str, Kind], columns: Sequence[str] | None = None) -> pa.Schema:
    """The schema of the batches :func:`iter_batches` builds for ``kinds``.

    ``time`` here is still float64 local seconds; ``columns`` (full column names)
    selects and orders the output.

    Example:
        >>> from robotmia_frames.parse.typepolicy import INT
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
    if t is list:
        return [_floats(v) for v in value]
    return float(value) if t is int else value


def values_array(kind: Kind, values: list[Any]) -> pa.Array:
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


def scatter(values: pa.Array, rows: list[int], n: int) -> pa.Array:
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
        >>> from robotmia_frames.parse.typepolicy import TEXT
        >>> column_array(TEXT, [0, 2], [3, "x"], 3).to_pylist()
        ['3', None, 'x']
    """
    return scatter(values_array(kind, values), rows, n)


def time_value(value: Any) -> float | None:
    t = type(value)
    if t is int:
        return float(value) if -(2**53) <= value <= 2**53 else None
    if t is float:
        return value  # type: ignore[no-any-return]
    return None
