"""The parse engine: JSONL to columnar Arrow batches in one pass over the bytes.

This is the fast half of the parse stage (``parse.py`` holds line reading, bad-line
handling and the reference row-by-row builder). It works batch by batch:

1. Decode each line with orjson and group rows by their *shape*, the tuple of
   their property keys. Events of one name share a shape, so a batch has a few
   hundred shapes, not one per row.
2. Transpose each shape group in C (``zip(*rows)``), so each key's values come as
   one sequence; classify them by the set of their Python types (again in C) into
   a batch-local :class:`~robotmia_frames.typepolicy.Kind`, and build one Arrow
   array per key, scattered back to row order with a single ``take``.
3. When the whole export (or day) is read, :func:`conform` gives every batch the
   export-wide kinds. Widening an array (int to float, anything to text) is exact
   from the Arrow data alone, except for lists whose elements were themselves
   mixed; those rare batches are re-read from the source with the reference
   builder, so the result never depends on where the batch boundaries fell.

Integers beyond 64 bits, which orjson reads as floats, are caught after the fact
(a float of magnitude 2**63 or more anywhere in a batch) and that batch is decoded
again with the exact standard-library parser.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import gzip
import itertools
import multiprocessing
import os
import queue
import re
import threading
import types
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from . import parse
from .errors import IncompleteDownloadError, ParseError, RobotmiaWarning
from .typepolicy import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    STR,
    TEXT,
    Kind,
    arrow_type,
    json_text,
    kind_of,
    list_of,
    unify,
    widen_array,
)

_gzip_impl: types.ModuleType
try:  # ISA-L inflates gzip about 1.6x faster than zlib; optional.
    from isal import igzip as _gzip_impl
except ImportError:  # pragma: no cover - platforms without wheels
    _gzip_impl = gzip

__all__ = [
    "RawBatch",
    "RawColumn",
    "conform",
    "iter_line_chunks",
    "merge_kinds",
    "read_raw_batches",
]

_BLOCK = 4 << 20
_BIG_BLOCK = 8 << 20
#: Lines per batch: small enough that a batch's transient Python objects stay a few
#: tens of MB, large enough that Arrow conversion dominates per-batch overhead.
BATCH_ROWS = 16_384
_BIG = float(2**63)
_BIG_EXPONENT = re.compile(r"e\+(?:1[89]|[2-9]\d|\d{3})")
_NONE = type(None)
_PURE = frozenset((NULL, BOOL, INT, FLOAT, STR))
_SCALAR_TYPES: dict[frozenset[type], Kind] = {
    frozenset((int,)): INT,
    frozenset((float,)): FLOAT,
    frozenset((int, float)): FLOAT,
    frozenset((bool,)): BOOL,
    frozenset((str,)): STR,
    frozenset((dict,)): TEXT,
}


# ------------------------------------------------------------------------- lines


@contextlib.contextmanager
def _opened(path: str | Path) -> Iterator[BinaryIO]:
    """The file's bytes, inflated if it is gzip."""
    p = Path(path)
    try:
        raw: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"export file not found: {p}") from exc
    try:
        head = raw.read(2)
        raw.seek(0)
        if head != b"\x1f\x8b":
            yield raw
            return
        with _gzip_impl.GzipFile(fileobj=raw, mode="rb") as stream:
            yield stream
    finally:
        raw.close()


def _read(stream: BinaryIO, size: int, *, label: str, next_line: int) -> bytes:
    """Up to ``size`` bytes; a truncated or corrupt gzip stream raises ours."""
    try:
        return stream.read(size)
    except EOFError as exc:
        raise IncompleteDownloadError(
            f"{label}: the gzip stream ends early after line {next_line - 1} "
            "(truncated file or download); download it again"
        ) from exc
    except (zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise ParseError(f"corrupt gzip data ({exc})", line_number=next_line, source=label) from exc


def iter_line_chunks(
    path: str | Path, *, label: str, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(first_line_number, lines)`` chunks of a ``.jsonl``/``.jsonl.gz`` file.

    Lines keep no ``\\n``; line numbers are 1-based physical lines. A truncated gzip
    stream raises :class:`IncompleteDownloadError`, corrupt data :class:`ParseError`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_bytes(b'{"event":"a"}\\n\\n{"event":"b"}')
        >>> list(iter_line_chunks(p, label="x"))
        [(1, [b'{"event":"a"}', b'', b'{"event":"b"}'])]
    """
    first = 1
    pending: list[bytes] = []
    carry = b""
    with _opened(path) as stream:
        while True:
            block = _read(stream, _BLOCK, label=label, next_line=first + len(pending))
            if not block:
                break
            parts = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = parts.pop()
            pending.extend(parts)
            while len(pending) >= batch_rows:
                yield first, pending[:batch_rows]
                first += batch_rows
                pending = pending[batch_rows:]
        if carry:
            pending.append(carry)
        if pending:
            yield first, pending


def iter_line_blocks(
    path: str | Path, *, label: str, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[int, memoryview, int]]:
    """Yield ``(first_line_number, chunk, line_count)`` for the C scanner.

    Like :func:`iter_line_chunks`, but a chunk is the file's own bytes for
    ``batch_rows`` lines (newlines included), not a list of lines: the scanner
    finds the lines itself, and nothing is split unless a chunk needs the Python
    engine (:func:`split_lines`). Needs the C scanner.
    """
    first = 1
    pieces: list[memoryview] = []  # the lines read so far of the next chunk
    pending = 0  # complete lines in pieces
    with _opened(path) as stream:
        while True:
            block = _read(stream, _BIG_BLOCK, label=label, next_line=first + pending)
            if not block:
                break
            view = memoryview(block)
            pos = 0
            while pos < len(block):
                end = _scan.cut(block, pos, batch_rows - pending)
                if end < 0:  # the rest of the block is not a whole chunk yet
                    pieces.append(view[pos:])
                    pending += -1 - end
                    break
                # A chunk inside one block is a view of it; one spanning blocks is joined.
                chunk = memoryview(b"".join([*pieces, view[pos:end]])) if pieces else view[pos:end]
                yield first, chunk, batch_rows
                first += batch_rows
                pieces, pending, pos = [], 0, end
        tail = b"".join(pieces)
        if tail:
            count = pending + (0 if tail.endswith(b"\n") else 1)
            yield first, memoryview(tail), count


def split_lines(chunk: bytes | memoryview) -> list[bytes]:
    """The lines of a chunk from :func:`iter_line_blocks` (newlines dropped).

    Example:
        >>> split_lines(b'a\\n\\nb\\n')
        [b'a', b'', b'b']
    """
    lines = bytes(chunk).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


# ---------------------------------------------------------------------- batches


@dataclass
class RawColumn:
    """One property column of a batch, typed by the batch's own values.

    ``exact`` is False when the batch's list values had mixed element kinds: then
    widening the column further cannot be done from the Arrow data alone.
    ``text`` is the column as JSON text, kept for a float column that also held
    ints: if the column becomes text export-wide, its ints keep their spelling
    (``3``, not ``3.0``).
    """

    array: pa.Array
    kind: Kind
    exact: bool = True
    text: pa.Array | None = None


@dataclass
class RawBatch:
    """A parsed batch before the export-wide types are known."""

    source: str
    first_line: int
    line_count: int
    num_rows: int
    event: pa.Array
    time: pa.Array
    columns: dict[str, RawColumn] = field(default_factory=dict)
    bad_lines: frozenset[int] = frozenset()


def _classify(values: Sequence[Any]) -> tuple[Kind, bool]:
    """Kind of a column's values (and whether list widening stays exact)."""
    types = set(map(type, values))
    types.discard(_NONE)
    if not types:
        return NULL, True
    kind = _SCALAR_TYPES.get(frozenset(types))
    if kind is not None:
        # Ints read as floats cannot be spelled back as ints if the column later
        # becomes text ("0", not "0.0"): such a batch is rebuilt in that case.
        return kind, not (kind is FLOAT and int in types)
    if types == {list}:
        elems = set(map(type, itertools.chain.from_iterable(v for v in values if v is not None)))
        elems.discard(_NONE)
        if not elems:
            return list_of(NULL), True
        item = _SCALAR_TYPES.get(frozenset(elems))
        if item is not None and item is not TEXT:
            return list_of(item), len(elems) == 1
        k: Kind = NULL
        for v in values:
            if v is not None:
                k = unify(k, kind_of(v))
        return k, False
    return TEXT, True


def _as_text(values: Sequence[Any]) -> list[Any]:
    return [v if v is None or type(v) is str else json_text(v) for v in values]


def _array(values: Sequence[Any], kind: Kind) -> tuple[pa.Array, Kind]:
    """The Arrow array of ``values`` for ``kind`` (which may turn out to be TEXT)."""
    if kind is NULL:
        return pa.nulls(len(values)), NULL
    if kind is TEXT:
        return pa.array(_as_text(values), type=pa.string()), TEXT
    if kind is INT:
        try:
            return pa.array(values, type=pa.int64()), INT
        except (OverflowError, pa.ArrowInvalid):  # an int beyond int64: exact text
            return pa.array(_as_text(values), type=pa.string()), TEXT
    if kind.item is not None and kind.item not in _PURE:
        return parse.values_array(kind, list(values)), kind
    try:
        return pa.array(values, type=arrow_type(kind)), kind
    except (OverflowError, pa.ArrowInvalid):
        # Ints beyond int64 (text) or beyond 2**53 (floats Arrow will not convert):
        # type the values one by one, as the reference builder does.
        k: Kind = NULL
        for v in values:
            if v is not None:
                k = unify(k, kind_of(v))
        return parse.values_array(k, list(values)), k


def _suspicious(array: pa.Array, kind: Kind) -> bool:
    """Could this column hold a >64-bit integer that orjson read as a float?"""
    while kind.item is not None:
        array, kind = array.flatten(), kind.item
    if len(array) == 0 or array.null_count == len(array):
        return False
    if kind is FLOAT:
        biggest = pc.max(pc.abs(array)).as_py()
        return biggest is not None and biggest >= _BIG
    if kind is TEXT:
        return bool(pc.any(pc.match_substring_regex(array, _BIG_EXPONENT.pattern)).as_py())
    return False


def _scatter(array: pa.Array, rows: Sequence[int] | np.ndarray, n: int) -> pa.Array:
    """Place ``array[i]`` at row ``rows[i]`` of an ``n``-row array (nulls elsewhere)."""
    idx = np.full(n, -1, dtype=np.int64)
    idx[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows), dtype=np.int64)
    return array.take(pa.array(idx, mask=idx < 0))


def _values_column(
    values: Sequence[Any],
    rows: Sequence[int] | np.ndarray,
    n: int,
    *,
    check_big: bool,
    ordered: bool,
) -> RawColumn | None:
    """A key's column from its decoded values at ``rows`` (ascending if ``ordered``).

    None when ``check_big`` finds a float that may be an integer beyond 64 bits
    that orjson rounded: the caller decodes the batch again, exactly.
    """
    guess, is_exact = _classify(values)
    array, kind = _array(values, guess)
    if kind is not guess and kind.item is not None:
        is_exact = False  # list elements re-typed (ints beyond int64): not exact
    if check_big and _suspicious(array, kind):
        return None
    text = None
    if kind is FLOAT and not is_exact:  # ints and floats: keep the ints' spelling
        text, is_exact = pa.array(_as_text(values), type=pa.string()), True
    if not ordered or len(rows) != n:
        array = _scatter(array, rows, n)
        text = None if text is None else _scatter(text, rows, n)
    return RawColumn(array, kind, is_exact, text)


# ------------------------------------------------------------------ C scanner

try:
    from . import _scan
except ImportError:  # pragma: no cover - built without a C compiler
    _scan = None  # type: ignore[assignment]

#: The scanner's result buffers (``_scan.Buffer``, read-only memory it owns).
_Mem: TypeAlias = "bytes | _scan.Buffer"

_T_NULL, _T_FALSE, _T_TRUE, _T_INT, _T_FLOAT, _T_STR, _T_RAW, _T_LIST = range(1, 9)
# The scanner's kind codes (K_* in _scan.c); _K_PY leaves the column to Python.
_K_PY, _K_NULL, _K_LIST = -1, 0, 6
_KINDS: dict[int, Kind] = {0: NULL, 1: INT, 2: FLOAT, 3: BOOL, 4: STR, 5: TEXT}


def native_enabled() -> bool:
    """Whether the C scanner is built and not switched off.

    ``ROBOTMIA_FRAMES_NATIVE=0`` switches it off (the pure-Python engine gives
    the same tables, more slowly).

    Example:
        >>> isinstance(native_enabled(), bool)
        True
    """
    return _scan is not None and os.environ.get("ROBOTMIA_FRAMES_NATIVE", "1") != "0"


def _bitmap(flags: _Mem, n: int) -> pa.Buffer | None:
    ok = np.frombuffer(memoryview(flags), dtype=np.bool_)
    if n == 0 or ok.all():
        return None
    return pa.py_buffer(np.packbits(ok, bitorder="little").tobytes())


def _offsets(ends: _Mem) -> pa.Buffer:
    return pa.py_buffer(b"\0\0\0\0" + ends)


def _wanted(keys: frozenset[str] | None) -> list[str] | None:
    return None if keys is None else sorted(keys)


def _from_scan(got: Any, first_line: int, line_count: int, source: str) -> RawBatch | None:
    """One result of ``_scan.scan`` as a :class:`RawBatch`.

    None when a column needs the batch decoded again exactly (see
    :func:`_values_column`): the caller parses the chunk in Python.
    """
    n, ev_offsets, ev_data, ev_ok, times, time_ok, scanned = got
    event = pa.Array.from_buffers(
        pa.string(),
        n,
        [_bitmap(ev_ok, n), pa.py_buffer(ev_offsets), pa.py_buffer(ev_data)],
    )
    time = pa.Array.from_buffers(pa.float64(), n, [_bitmap(time_ok, n), pa.py_buffer(times)])
    columns: dict[str, RawColumn] = {}
    for (
        key, code, valid, values, text, item_code, item_exact, item_valid, item_values,
        item_text, rows, tags, ints, floats, text_ends, raw_ends, raw,
    ) in scanned:  # fmt: skip
        col: RawColumn | None
        if code == _K_PY:
            col = _mixed_column(
                np.frombuffer(rows, dtype=np.int32),
                np.frombuffer(tags, dtype=np.uint8),
                ints, floats, text_ends, text, raw_ends, raw, n,
            )  # fmt: skip
            if col is None:
                return None
        elif code == _K_NULL:
            col = RawColumn(pa.nulls(n), NULL)
        elif code == _K_LIST:
            item = _KINDS[item_code]
            m = int(np.frombuffer(values, dtype=np.int32)[-1]) if n else 0
            child = _placed(item, m, item_valid, item_values, item_text)
            kind = list_of(item)
            array = pa.Array.from_buffers(
                arrow_type(kind), n, [_buffer(valid), pa.py_buffer(values)], children=[child]
            )
            col = RawColumn(array, kind, bool(item_exact))
        else:
            kind = _KINDS[code]
            col = RawColumn(_placed(kind, n, valid, values, text), kind, bool(item_exact))
            if kind is FLOAT and item_values:  # ints and floats: their JSON text too
                col.text = pa.Array.from_buffers(
                    pa.string(), n, [_buffer(valid), pa.py_buffer(item_values), pa.py_buffer(text)]
                )
        columns[key] = col
    return RawBatch(
        source=source,
        first_line=first_line,
        line_count=line_count,
        num_rows=n,
        event=event,
        time=time,
        columns=columns,
    )


def _buffer(data: _Mem) -> pa.Buffer | None:
    return pa.py_buffer(data) if data else None


def _placed(kind: Kind, n: int, valid: _Mem, values: _Mem, text: _Mem) -> pa.Array:
    """An array from the scanner's buffers, already laid out over its ``n`` rows."""
    if kind is NULL:
        return pa.nulls(n)
    buffers = [_buffer(valid), pa.py_buffer(values)]
    if kind is STR or kind is TEXT:
        buffers.append(pa.py_buffer(text))
    return pa.Array.from_buffers(arrow_type(kind), n, buffers)


def _mixed_column(
    rows: np.ndarray,
    tags: np.ndarray,
    ints: _Mem,
    flts: _Mem,
    t_ends: _Mem,
    t_data: _Mem,
    r_ends: _Mem,
    r_data: _Mem,
    n: int,
) -> RawColumn | None:
    """A key whose values hold lists or objects (or odd floats): typed in Python."""
    values: list[Any] = [None] * len(tags)
    counts_raw = len(r_ends)
    for tag, decoded in (
        (_T_INT, lambda: np.frombuffer(memoryview(ints), dtype=np.int64).tolist()),
        (_T_FLOAT, lambda: np.frombuffer(memoryview(flts), dtype=np.float64).tolist()),
        (_T_TRUE, None),
        (_T_FALSE, None),
        (_T_STR, lambda: _strings(t_ends, t_data, tags)),
        (_T_RAW, lambda: _raw_values(r_ends, r_data)),
    ):
        where = np.flatnonzero(_is_nested(tags) if tag == _T_RAW else tags == tag).tolist()
        if not where:
            continue
        if decoded is None:
            flag = tag == _T_TRUE
            for i in where:
                values[i] = flag
            continue
        try:
            for i, v in zip(where, decoded(), strict=True):
                values[i] = v
        except orjson.JSONDecodeError:
            return None  # e.g. a float beyond double range inside a list
    return _values_column(values, rows, n, check_big=bool(counts_raw), ordered=True)


def _is_nested(tags: np.ndarray) -> np.ndarray:
    nested: np.ndarray = (tags == _T_RAW) | (tags == _T_LIST)
    return nested


def _strings(ends: _Mem, data: _Mem, tags: np.ndarray) -> list[Any]:
    texts = pa.Array.from_buffers(
        pa.string(), len(tags), [None, _offsets(ends), pa.py_buffer(data)]
    )
    return list(texts.filter(pa.array(tags == _T_STR)).to_pylist())


def _raw_values(ends: _Mem, data: _Mem) -> list[Any]:
    view = memoryview(data)
    out = []
    start = 0
    loads = orjson.loads
    for end in np.frombuffer(memoryview(ends), dtype=np.int32).tolist():
        out.append(loads(view[start:end]))
        start = end
    return out


def build_raw_batch(
    lines: Sequence[bytes],
    first_line: int,
    *,
    source: str,
    bad: parse.BadLines,
    keys: frozenset[str] | None = None,
    exact: bool = False,
    native: bool = True,
) -> RawBatch:
    """Parse one chunk of lines into a :class:`RawBatch` (see the module docs).

    The C scanner takes the chunk when it is built and every line is plain; any
    chunk it declines (a bad line, an odd value) is parsed here in Python.
    ``native=False`` skips the scanner (it has already declined the chunk).
    """
    if native and not exact and native_enabled():
        scanned = _scan.scan(b"\n".join(lines), _wanted(keys))
        fast = None if scanned is None else _from_scan(scanned, first_line, len(lines), source)
        if fast is not None:
            return fast
    loads = orjson.loads if not exact else None
    groups: dict[tuple[str, ...], tuple[list[int], list[tuple[Any, ...]]]] = {}
    events: list[Any] = []
    times: list[Any] = []
    row = 0
    bad_before = len(bad.lines)
    for offset, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            if loads is not None:
                try:
                    obj = loads(line)
                except orjson.JSONDecodeError:
                    obj = parse.slow_loads(line)
            else:
                obj, _ = parse.loads_exact(line)
            if type(obj) is not dict:
                raise parse.BadLineError(f"expected a JSON object, got {type(obj).__name__}")
            props = obj.get("properties")
            if props is None:
                props = {}
            elif type(props) is not dict:
                raise parse.BadLineError(
                    f'"properties" must be a JSON object, got {type(props).__name__}'
                )
        except parse.BadLineError as exc:
            bad.report(first_line + offset, str(exc), line)
            continue
        events.append(obj.get("event"))
        times.append(props.pop("time", None))
        shape = tuple(props)
        group = groups.get(shape)
        if group is None:
            group = groups[shape] = ([], [])
        group[0].append(row)
        group[1].append(tuple(props.values()))
        row += 1

    n = row
    pieces: dict[str, list[tuple[list[int], Sequence[Any]]]] = {}
    for shape, (shape_rows, shape_values) in groups.items():
        if not shape:
            continue
        for key, column in zip(shape, zip(*shape_values, strict=True), strict=True):
            if keys is not None and key not in keys:
                continue
            got = pieces.get(key)
            if got is None:
                pieces[key] = [(shape_rows, column)]
            else:
                got.append((shape_rows, column))

    columns: dict[str, RawColumn] = {}
    for key, parts in pieces.items():
        values: Sequence[Any]
        rows: list[int]
        if len(parts) == 1:
            rows, values = parts[0]
        else:
            rows = list(itertools.chain.from_iterable(p[0] for p in parts))
            values = list(itertools.chain.from_iterable(p[1] for p in parts))
        col = _values_column(values, rows, n, check_big=not exact, ordered=len(parts) == 1)
        if col is None:
            return build_raw_batch(
                lines, first_line, source=source, bad=_Recheck(bad), keys=keys, exact=True
            )
        columns[key] = col

    try:
        event = pa.array(events, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        event = pa.array(_as_text(events), type=pa.string())
    return RawBatch(
        source=source,
        first_line=first_line,
        line_count=len(lines),
        num_rows=n,
        event=event,
        time=_times(times),
        columns=columns,
        # A re-decode (_Recheck) shares the set of lines already reported, so it
        # must look them up by range even though it reported nothing new.
        bad_lines=frozenset(x for x in bad.lines if first_line <= x < first_line + len(lines))
        if len(bad.lines) != bad_before or isinstance(bad, _Recheck)
        else frozenset(),
    )


class _Recheck(parse.BadLines):
    """Bad-line bookkeeping for a second decoding of lines already reported."""

    def __init__(self, inner: parse.BadLines) -> None:
        super().__init__(inner.source, "skip", inner.lines)


def _times(values: list[Any]) -> pa.Array:
    clean = [v if type(v) is int or type(v) is float else None for v in values]
    try:
        return pa.array(clean, type=pa.float64())
    except (OverflowError, pa.ArrowInvalid):
        return pa.array([parse.time_value(v) for v in clean], type=pa.float64())


def read_raw_batches(
    path: str | Path,
    *,
    source: str,
    on_bad_lines: parse.OnBadLines = "error",
    keys: frozenset[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
) -> Iterator[RawBatch]:
    """Parse a local export file into :class:`RawBatch` es, one per chunk of lines.

    With ``workers`` of 2 or more (default: the ``ROBOTMIA_FRAMES_PARSE_WORKERS``
    environment variable, else 0), files of :data:`PARALLEL_MIN_BYTES` or more are
    parsed by that many processes while this process reads and decompresses;
    batches still come back in line order, and bad lines are reported as if parsed
    here.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_bytes(b'{"event":"a","properties":{"time":1,"n":2}}\\n')
        >>> b = next(read_raw_batches(p, source="x"))
        >>> b.num_rows, b.columns["n"].kind
        (1, int)
    """
    n = _worker_count() if workers is None else workers
    if n < 2 or Path(path).stat().st_size < PARALLEL_MIN_BYTES:
        bad = parse.BadLines(source, on_bad_lines)
        if not native_enabled():
            for first, lines in iter_line_chunks(path, label=source, batch_rows=batch_rows):
                yield build_raw_batch(lines, first, source=source, bad=bad, keys=keys)
            return
        blocks = iter_line_blocks(path, label=source, batch_rows=batch_rows)
        for first, chunk, count, got in _prescan(blocks, keys):
            batch = None if got is None else _from_scan(got, first, count, source)
            if batch is None:
                lines = split_lines(chunk)
                batch = build_raw_batch(
                    lines, first, source=source, bad=bad, keys=keys, native=False
                )
            yield batch
        return
    chunks = iter_line_chunks(path, label=source, batch_rows=batch_rows)
    pool = _pool(n)
    inflight: collections.deque[Future[tuple[RawBatch, list[str]]]] = collections.deque()
    try:
        for first, lines in chunks:
            inflight.append(pool.submit(_parse_chunk, lines, first, source, on_bad_lines, keys))
            while len(inflight) > 2 * n:
                yield _collect(inflight.popleft())
        while inflight:
            yield _collect(inflight.popleft())
    finally:
        for fut in inflight:
            fut.cancel()


#: Chunks between two returns of the C heap's free memory to the system: without
#: them, freed chunks and scan buffers of the helper threads stay resident and
#: the peak grows by a third of the result.
_TRIM_EVERY = 8
_END = object()


def _prescan(
    chunks: Iterator[tuple[int, memoryview, int]], keys: frozenset[str] | None
) -> Iterator[tuple[int, memoryview, int, Any]]:
    """Read and inflate chunks in one helper thread and C-scan them in others.

    Yields ``(first_line, chunk, line_count, scan result or None if declined)``.

    Inflating and scanning release the GIL, so on two cores they overlap the
    Arrow building of earlier chunks here; at most a few chunks are in flight.
    Errors (a truncated or corrupt file) are raised here, after every chunk
    before them; closing this generator stops both threads.
    """
    wanted = _wanted(keys)
    ready: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()
    scanner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="robotmia-frames-scan")

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for first, chunk, count in chunks:
                if not put((first, chunk, count, scanner.submit(_scan.scan, chunk, wanted))):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            if isinstance(chunks, types.GeneratorType):
                chunks.close()

    thread = threading.Thread(target=produce, name="robotmia-frames-scan", daemon=True)
    thread.start()
    taken = 0
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            first, chunk, count, scanning = item
            got = scanning.result()
            taken += 1
            if taken % _TRIM_EVERY == 0:
                _scan.trim()
            yield first, chunk, count, got
    finally:
        stop.set()
        thread.join()
        scanner.shutdown(wait=True, cancel_futures=True)


#: Files smaller than this (on disk, compressed or not) are parsed in-process.
PARALLEL_MIN_BYTES = 8 << 20
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _worker_count() -> int:
    # Opt-in: on a busy 2-core machine the pickling round trip ate the gain (see
    # docs/performance.md), so parsing stays in-process unless asked for.
    env = os.environ.get("ROBOTMIA_FRAMES_PARSE_WORKERS")
    if env is not None and env.strip().isdigit():
        return int(env)
    return 0


def _pool(n: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or n != _POOL_SIZE:
            if _POOL is not None:
                _POOL.shutdown(wait=False, cancel_futures=True)
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            _POOL, _POOL_SIZE = ProcessPoolExecutor(max_workers=n, mp_context=ctx), n
        return _POOL


@atexit.register
def _shutdown_pool() -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True, cancel_futures=True)
            _POOL = None


def _parse_chunk(
    lines: list[bytes],
    first: int,
    source: str,
    on_bad_lines: parse.OnBadLines,
    keys: frozenset[str] | None,
) -> tuple[RawBatch, list[str]]:
    """Worker side: one chunk to a batch, with the warnings to issue in the parent."""
    bad = parse.BadLines(source, on_bad_lines, defer_warnings=True)
    return build_raw_batch(lines, first, source=source, bad=bad, keys=keys), bad.deferred


def _collect(fut: Future[tuple[RawBatch, list[str]]]) -> RawBatch:
    batch, deferred = fut.result()
    for message in deferred:
        warnings.warn(message, RobotmiaWarning, stacklevel=4)
    return batch


def merge_kinds(kinds: dict[str, Kind], batch: RawBatch) -> None:
    """Fold a batch's column kinds into ``kinds`` (first appearance keeps order)."""
    for key, col in batch.columns.items():
        old = kinds.get(key)
        if old is not col.kind:
            kinds[key] = unify(old, col.kind)


def _needs_rebuild(col: RawColumn, target: Kind) -> bool:
    return not col.exact and col.kind is not target


def conform(
    batch: RawBatch,
    kinds: dict[str, Kind],
    schema: pa.Schema,
    *,
    path: str | Path,
) -> pa.RecordBatch:
    """Give a batch the export-wide kinds, as a record batch of ``schema``.

    ``schema`` is :func:`parse.export_schema` of ``kinds`` (possibly projected);
    ``path`` is the batch's source file, re-read only in the rare inexact case.
    """
    arrays: list[pa.Array] = []
    for f in schema:
        name = f.name
        if name == "event":
            arrays.append(batch.event)
            continue
        if name == "time":
            arrays.append(batch.time)
            continue
        key = name[len(parse.PROPERTY_PREFIX) :]
        col = batch.columns.get(key)
        target = kinds.get(key, NULL)
        if col is None:
            arrays.append(pa.nulls(batch.num_rows, type=f.type))
        elif col.kind is target:
            arrays.append(col.array)
        elif col.text is not None and target is TEXT:
            arrays.append(col.text)
        elif _needs_rebuild(col, target):
            return _rebuild(batch, kinds, schema, path)
        else:
            arrays.append(widen_array(col.array, target))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _rebuild(
    batch: RawBatch, kinds: dict[str, Kind], schema: pa.Schema, path: str | Path
) -> pa.RecordBatch:
    """Re-read a batch's lines and build it with the reference (row-by-row) builder."""
    lines: list[bytes] = []
    for first, chunk in iter_line_chunks(path, label=batch.source, batch_rows=1 << 16):
        end = first + len(chunk)
        if end <= batch.first_line:
            continue
        lo = max(0, batch.first_line - first)
        hi = min(len(chunk), batch.first_line + batch.line_count - first)
        lines.extend(chunk[lo:hi])
        if end >= batch.first_line + batch.line_count:
            break
    skip = frozenset(x - batch.first_line + 1 for x in batch.bad_lines)
    built = list(
        parse.iter_batches(
            lines,
            kinds,
            source=batch.source,
            skip_lines=skip,
            columns=schema.names,
            batch_rows=max(1, len(lines)),
        )
    )
    if not built:
        return pa.RecordBatch.from_arrays([pa.nulls(0, type=f.type) for f in schema], schema=schema)
    return built[0]
