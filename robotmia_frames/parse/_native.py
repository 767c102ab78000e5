"""The bridge to the C scanner (``_scan``): a typed result, the type codes, threads.

The scanner lays each property key's values out as Arrow buffers over a chunk's
rows. Its result is read here into :class:`ScanResult` / :class:`ScannedColumn`
(named fields, in the order ``_scan.c`` builds them) and wrapped into a
:class:`~robotmia_frames.parse._batch.RawBatch` without copying.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import orjson
import pyarrow as pa

from ..errors import RobotmiaWarning, user_stacklevel
from . import typepolicy as tp
from ._batch import RawBatch, RawColumn, values_column
from ._lines import (
    BATCH_ROWS,
    BIG_BLOCK,
    PROBE_LINES,
    ReadPosition,
    line_keys,
    opened,
    read_block,
    rows_for_keys,
    split_lines,
)
from .typepolicy import Kind, arrow_type, list_of

# ------------------------------------------------------------------ C scanner

#: Why the C scanner could not be imported (None: it is built).
_SCAN_MISSING: str | None = None
try:
    from . import _scan
except ImportError as _exc:  # pragma: no cover - built without a C compiler
    _scan = None  # type: ignore[assignment]
    _SCAN_MISSING = str(_exc) or type(_exc).__name__
_scan_warned = False

#: The scanner's result buffers (``_scan.Buffer``, read-only memory it owns).
_Mem: TypeAlias = "bytes | _scan.Buffer"

_T_NULL, _T_FALSE, _T_TRUE, _T_INT, _T_FLOAT, _T_STR, _T_RAW, _T_LIST = range(1, 9)
# The scanner's kind codes (K_* in _scan.c); _K_PY leaves the column to Python.
_K_PY, _K_NULL, _K_LIST = -1, 0, 6
_KINDS: dict[int, Kind] = {0: tp.NULL, 1: tp.INT, 2: tp.FLOAT, 3: tp.BOOL, 4: tp.STR, 5: tp.TEXT}
#: A scalar kind code's kind, Arrow type and whether it has string data.
_LAYOUTS: dict[int, tuple[Kind, pa.DataType, bool]] = {
    code: (kind, arrow_type(kind), kind is tp.STR or kind is tp.TEXT)
    for code, kind in _KINDS.items()
}


class ScannedColumn(NamedTuple):
    """One property key of a scanned chunk, as ``_scan.scan`` lays it out.

    ``code`` is the column's kind code (:data:`KIND_CODES`, or ``K_PY`` / ``K_LIST``);
    ``valid`` holds one byte per row; ``values``/``text`` are the Arrow value and
    string-data buffers. List columns fill the ``item_*`` fields for their elements
    (``values`` is then the list offsets). ``K_PY`` columns (objects, mixed lists)
    come as per-value ``tags`` (``T_*``) at ``rows`` with their ``ints``, ``floats``,
    strings (``text_ends`` over ``text``) and raw JSON (``raw_ends`` over ``raw``).
    """

    key: str
    code: int
    valid: _Mem
    values: _Mem
    text: _Mem
    item_code: int
    item_exact: int
    item_valid: _Mem
    item_values: _Mem
    item_text: _Mem
    rows: _Mem
    tags: _Mem
    ints: _Mem
    floats: _Mem
    text_ends: _Mem
    raw_ends: _Mem
    raw: _Mem


class ScanResult(NamedTuple):
    """One chunk scanned by the C scanner: the ``event`` and ``time`` columns and
    a :class:`ScannedColumn` per property key."""

    rows: int
    event_offsets: _Mem
    event_data: _Mem
    event_valid: _Mem
    times: _Mem
    time_valid: _Mem
    columns: list[ScannedColumn]
    #: Each column holds only its own values, at ``rows`` (see :func:`scan_chunk`).
    sparse: bool = False


def scan_chunk(
    chunk: bytes | memoryview, keys: frozenset[str] | None, sparse: bool = False
) -> ScanResult | None:
    """Scan one chunk of whole lines; None when the scanner declines it.

    ``sparse``: each column holds only its own values, at its rows (what a
    chunk of thousands of keys, a few per line, calls for); :func:`from_scan`
    makes them compact columns (:attr:`RawColumn.rows`).

    Example:
        >>> got = scan_chunk(b'{"event":"a","properties":{"time":1,"n":2}}', None)
        >>> got is None or [c.key for c in got.columns] == ["n"]
        True
    """
    got = _scan.scan(chunk, _wanted(keys), sparse)
    if got is None:
        return None
    rows, ev_offsets, ev_data, ev_ok, times, time_ok, columns = got
    cols = [ScannedColumn(*c) for c in columns]
    return ScanResult(rows, ev_offsets, ev_data, ev_ok, times, time_ok, cols, sparse)


def scan_times(chunk: bytes | memoryview) -> np.ndarray | None:
    """The raw ``time`` of each row (each non-blank line) of a chunk of whole lines,
    NaN where a row has none, read by the C scanner with every property skipped;
    None without the scanner or when it declines the chunk (a line only the Python
    engine reads: malformed, a duplicate key, ...).

    Example:
        >>> t = scan_times(b'{"event":"a","properties":{"time":5,"n":2}}\\n{"event":"b"}\\n')
        >>> t is None or [x if x == x else None for x in t.tolist()] == [5.0, None]
        True
    """
    if not native_enabled():
        return None
    got = _scan.scan(chunk, [])
    if got is None:
        return None
    rows, times, valid = got[0], got[4], got[5]
    if not rows:
        return np.empty(0, dtype=np.float64)
    t = np.frombuffer(memoryview(times), dtype=np.float64, count=rows)
    ok = np.frombuffer(memoryview(valid), dtype=np.uint8, count=rows).astype(bool)
    return np.where(ok, t, np.nan)


def scan_bytes(got: ScanResult) -> int:
    """The bytes of a scan result's buffers (what a scanned chunk holds).

    Example:
        >>> got = scan_chunk(b'{"event":"a","properties":{"time":1,"n":2}}', None)
        >>> got is None or scan_bytes(got) > 0
        True
    """
    bufs: list[_Mem] = [
        got.event_offsets,
        got.event_data,
        got.event_valid,
        got.times,
        got.time_valid,
    ]
    for c in got.columns:
        bufs += [c.valid, c.values, c.text, c.item_valid, c.item_values, c.item_text]
        bufs += [c.rows, c.tags, c.ints, c.floats, c.text_ends, c.raw_ends, c.raw]
    return sum(memoryview(b).nbytes for b in bufs)


def scan_fill(got: ScanResult) -> tuple[int, int]:
    """The cells (rows x property columns) of a scan result, and how many hold a
    value (see :func:`~robotmia_frames.parse.mostly_empty`).

    Example:
        >>> got = scan_chunk(b'{"event":"a","properties":{"n":2}}\\n{"event":"b"}', None)
        >>> got is None or scan_fill(got) == (2, 1)
        True
    """
    n = got.rows
    filled = 0
    for c in got.columns:
        # a sparse scan lays each column over its own values only
        m = len(memoryview(c.rows)) // 4 if got.sparse else n
        if c.code == _K_PY:  # the values are at these rows
            filled += len(memoryview(c.rows)) // 4
        elif c.code == _K_NULL:
            continue
        elif not c.valid:  # no validity bitmap: every row holds a value
            filled += m
        else:
            bits = np.frombuffer(memoryview(c.valid), dtype=np.uint8)
            filled += int(np.unpackbits(bits, count=m, bitorder="little").sum())
    return n * len(got.columns), filled


def iter_line_blocks(
    path: str | Path,
    *,
    label: str,
    batch_rows: int | list[int] = BATCH_ROWS,
    position: ReadPosition | None = None,
) -> Iterator[tuple[int, memoryview, int]]:
    """Yield ``(first_line_number, chunk, line_count)`` for the C scanner.

    Like :func:`iter_line_chunks`, but a chunk is the file's own bytes for
    ``batch_rows`` lines (newlines included), not a list of lines: the scanner
    finds the lines itself, and nothing is split unless a chunk needs the Python
    engine (:func:`split_lines`). Needs the C scanner. A one-item list as
    ``batch_rows`` is read at each chunk: the lines of the next chunks may change
    between two chunks (once the first tells how wide the export is).
    ``position`` follows how far into the file (as stored) the reading has come.
    """
    rows = batch_rows if isinstance(batch_rows, list) else [batch_rows]
    chunker = LineChunker(rows)
    with opened(path, position) as stream:
        while True:
            block = read_block(
                stream, BIG_BLOCK, label=label, next_line=chunker.next_line, position=position
            )
            if not block:
                break
            yield from chunker.feed(block)
        yield from chunker.finish()


class LineChunker:
    """Bytes fed in pieces (blocks read, or a body as it downloads) cut into chunks
    of ``rows[0]`` whole lines, as ``(first_line_number, chunk, line_count)``; the
    one-item list ``rows`` is read at each chunk (the lines of the next chunks may
    change between two chunks). A chunk inside one piece is a view of it; one
    spanning pieces is joined. Needs the C scanner.

    Example:
        >>> c = LineChunker([2])
        >>> native_enabled() is False or [
        ...     (first, bytes(chunk), n) for data in (b"a\\nb", b"\\nc\\n", b"d")
        ...     for first, chunk, n in c.feed(data)] + [
        ...     (first, bytes(chunk), n) for first, chunk, n in c.finish()] == [
        ...     (1, b"a\\nb\\n", 2), (3, b"c\\nd", 2)]
        True
    """

    def __init__(self, rows: list[int]) -> None:
        self.rows = rows
        self.first = 1  # the first line of the next chunk
        self._pieces: list[memoryview] = []  # the lines so far of the next chunk
        self._pending = 0  # whole lines in them

    @property
    def next_line(self) -> int:
        """The number of the line being read."""
        return self.first + self._pending

    def feed(self, data: bytes) -> Iterator[tuple[int, memoryview, int]]:
        """The chunks completed by the next bytes ``data``."""
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            rows = self.rows[0]
            end = _scan.cut(data, pos, max(1, rows - self._pending))
            if end < 0:  # the rest is not a whole chunk yet
                self._pieces.append(view[pos:])
                self._pending += -1 - end
                return
            chunk = (
                memoryview(b"".join([*self._pieces, view[pos:end]]))
                if self._pieces
                else view[pos:end]
            )
            count = max(rows, self._pending + 1)
            first = self.first
            self.first += count
            self._pieces, self._pending, pos = [], 0, end
            yield first, chunk, count

    def finish(self) -> Iterator[tuple[int, memoryview, int]]:
        """The last lines, once every byte has been fed (a line may lack its newline)."""
        tail = b"".join(self._pieces)
        count = self._pending + (0 if tail.endswith(b"\n") else 1)
        self._pieces, self._pending = [], 0
        if tail:
            first = self.first
            self.first += count
            yield first, memoryview(tail), count


def probe_width(seen: set[str], got: ScanResult | None, chunk: memoryview) -> int:
    """Fold the property keys of one of an export's first chunks into ``seen`` (from
    its scan, or from its lines when the scanner declined it): the lines per chunk
    the keys seen so far call for (:func:`~robotmia_frames.parse._lines.rows_for_keys`).

    Example:
        >>> seen: set[str] = set()
        >>> probe_width(seen, None, memoryview(b'{"properties":{"a":1}}\\n')), seen
        (16384, {'a'})
    """
    if got is not None:
        seen.update(c.key for c in got.columns)
    else:
        seen.update(line_keys(split_lines(chunk)[:PROBE_LINES]))
    return rows_for_keys(len(seen))


def cut_lines(chunk: bytes | memoryview, start: int, n: int) -> int:
    """The offset just past the ``n``-th newline at or after ``start``; with only
    ``k < n`` newlines, ``-1 - k``. Needs the C scanner.

    Example:
        >>> native_enabled() is False or cut_lines(b'a\\nb\\nc', 0, 5) == -3
        True
    """
    return int(_scan.cut(chunk, start, n))


def line_after(chunk: bytes | memoryview, pos: int) -> int:
    """The start of the line after the one holding byte ``pos`` (``len(chunk)`` at
    the last line). Needs the C scanner.

    Example:
        >>> native_enabled() is False or line_after(b'ab\\ncd\\n', 0) == 3
        True
    """
    end = cut_lines(chunk, pos, 1)
    return len(chunk) if end < 0 else end


#: Byte offsets at which a chunk of whole lines is cut into pieces parsed apart
#: (each a line start, ascending); see :func:`cut_blocks`.
Cutter: TypeAlias = "Callable[[memoryview], list[int]]"


def cut_blocks(
    blocks: Iterator[tuple[int, memoryview, int]], cutter: Cutter
) -> Iterator[tuple[int, memoryview, int]]:
    """The chunks of :func:`iter_line_blocks`, each cut where ``cutter`` says
    (views of the chunk, no copy), with their first line numbers and line counts."""
    for first, chunk, count in blocks:
        offsets = cutter(chunk) if count > 1 else []
        start, left = 0, count
        for off in offsets:
            piece = chunk[start:off]
            lines = -1 - cut_lines(piece, 0, sys.maxsize)  # its newlines
            yield first, piece, lines
            first, left, start = first + lines, left - lines, off
        yield first, chunk[start:] if start else chunk, left


def trim_memory() -> None:
    """Give the C heap's free memory back to the system (glibc's ``malloc_trim``;
    nothing without the scanner or elsewhere). The scanner's buffers are freed
    into its threads' heaps, which the rest of the process does not reuse.

    Example:
        >>> trim_memory()
    """
    if _scan is not None:
        _scan.trim()


def native_enabled() -> bool:
    """Whether the C scanner is built and not switched off.

    ``ROBOTMIA_FRAMES_NATIVE=0`` switches it off (the pure-Python engine gives
    the same tables, more slowly).

    Example:
        >>> isinstance(native_enabled(), bool)
        True
    """
    return _scan is not None and os.environ.get("ROBOTMIA_FRAMES_NATIVE", "1") != "0"


def scanner_status() -> str:
    """Which parse engine runs, in words (``robotmia-frames --version`` prints it).

    Example:
        >>> scanner_status().startswith(("C scanner", "pure Python"))
        True
    """
    if _SCAN_MISSING is not None:
        return f"pure Python (the C scanner is not built: {_SCAN_MISSING})"
    if not native_enabled():
        return "pure Python (the C scanner is switched off by ROBOTMIA_FRAMES_NATIVE=0)"
    return "C scanner"


def warn_if_scanner_missing() -> None:
    """One RobotmiaWarning per process when parsing without a C scanner not switched off."""
    global _scan_warned
    if _SCAN_MISSING is None or _scan_warned or os.environ.get("ROBOTMIA_FRAMES_NATIVE") == "0":
        return
    _scan_warned = True
    warnings.warn(
        f"The C scanner of robotmia-frames is not built ({_SCAN_MISSING}), so parsing runs in "
        "pure Python, about 9 to 10 times slower. Fix: install the binary wheel "
        "(pip install --force-reinstall --only-binary=robotmia-frames robotmia-frames), or "
        "install a C compiler and Python headers and reinstall from source. "
        "ROBOTMIA_FRAMES_NATIVE=0 chooses pure Python without this warning.",
        RobotmiaWarning,
        stacklevel=user_stacklevel(),
    )


def _bitmap(flags: _Mem, n: int) -> pa.Buffer | None:
    ok = np.frombuffer(memoryview(flags), dtype=np.bool_)
    if n == 0 or ok.all():
        return None
    return pa.py_buffer(np.packbits(ok, bitorder="little").tobytes())


def _offsets(ends: _Mem) -> pa.Buffer:
    return pa.py_buffer(b"\0\0\0\0" + ends)


def _wanted(keys: frozenset[str] | None) -> list[str] | None:
    return None if keys is None else sorted(keys)


def from_scan(got: ScanResult, first_line: int, line_count: int, source: str) -> RawBatch | None:
    """One result of ``_scan.scan`` as a :class:`RawBatch` (of compact columns for
    a sparse scan).

    None when a column needs the batch decoded again exactly (see
    :func:`_values_column`): the caller parses the chunk in Python.
    """
    n = got.rows
    event = pa.Array.from_buffers(
        pa.string(),
        n,
        [
            _bitmap(got.event_valid, n),
            pa.py_buffer(got.event_offsets),
            pa.py_buffer(got.event_data),
        ],
    )
    time = pa.Array.from_buffers(
        pa.float64(), n, [_bitmap(got.time_valid, n), pa.py_buffer(got.times)]
    )
    columns: dict[str, RawColumn] = {}
    for c in got.columns:
        col: RawColumn | None
        at = None
        if got.sparse:  # the column's own values, at these rows
            n = len(c.rows) // 4
            at = pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(c.rows)])
        if c.code == _K_PY:
            col = _mixed_column(
                np.arange(n, dtype=np.int32)
                if at is not None
                else np.frombuffer(memoryview(c.rows), dtype=np.int32),
                np.frombuffer(memoryview(c.tags), dtype=np.uint8),
                c.ints,
                c.floats,
                c.text_ends,
                c.text,
                c.raw_ends,
                c.raw,
                n,
            )
            if col is None:
                return None
        elif c.code == _K_NULL:
            col = RawColumn(pa.nulls(n), tp.NULL)
        elif c.code == _K_LIST:
            item = _KINDS[c.item_code]
            m = int(np.frombuffer(memoryview(c.values), dtype=np.int32)[-1]) if n else 0
            child = _placed(item, m, c.item_valid, c.item_values, c.item_text)
            kind = list_of(item)
            array = pa.Array.from_buffers(
                arrow_type(kind), n, [_buffer(c.valid), pa.py_buffer(c.values)], children=[child]
            )
            col = RawColumn(array, kind, bool(c.item_exact))
        else:  # the most of a wide batch's columns: wrapped with the least work each
            kind, typ, strings = _LAYOUTS[c.code]
            valid = pa.py_buffer(c.valid) if c.valid else None
            values = pa.py_buffer(c.values)
            bufs = [valid, values, pa.py_buffer(c.text)] if strings else [valid, values]
            col = RawColumn(pa.Array.from_buffers(typ, n, bufs), kind, bool(c.item_exact))
            if kind is tp.FLOAT and c.item_values:  # c.ints and c.floats: their JSON c.text too
                col.text = pa.Array.from_buffers(
                    pa.string(), n, [valid, pa.py_buffer(c.item_values), pa.py_buffer(c.text)]
                )
        col.rows = at
        columns[c.key] = col
    return RawBatch(source, first_line, line_count, got.rows, event, time, columns)


def _buffer(data: _Mem) -> pa.Buffer | None:
    return pa.py_buffer(data) if data else None


def _placed(kind: Kind, n: int, valid: _Mem, values: _Mem, text: _Mem) -> pa.Array:
    """An array from the scanner's buffers, already laid out over its ``n`` rows."""
    if kind is tp.NULL:
        return pa.nulls(n)
    buffers = [_buffer(valid), pa.py_buffer(values)]
    if kind is tp.STR or kind is tp.TEXT:
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
    return values_column(values, rows, n, check_big=bool(counts_raw), ordered=True)


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


_TRIM_EVERY = 8
_END = object()

_POOL: tuple[int, ThreadPoolExecutor] | None = None
_POOL_LOCK = threading.Lock()


def _scanners() -> ThreadPoolExecutor:
    """The two scanning threads, started once per process and shared by every read
    (a window of a few thousand lines does not pay for starting threads)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():  # a forked child starts its own
            pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="robotmia-frames-scan")
            _POOL = (os.getpid(), pool)
        return _POOL[1]


#: Told a chunk's first line, scan result (None if declined) and bytes, until it
#: returns None; returns how many chunks may be in flight from then on.
Learn: TypeAlias = "Callable[[int, ScanResult | None, memoryview], int | None]"


def prescan(
    chunks: Iterator[tuple[int, memoryview, int]],
    keys: frozenset[str] | None,
    depth: int = 4,
    learn: Learn | None = None,
    sparse: bool = False,
) -> Iterator[tuple[int, memoryview, int, Any]]:
    """Read and inflate chunks in one helper thread and C-scan them in others.

    Yields ``(first_line, chunk, line_count, scan result or None if declined)``.

    Inflating and scanning release the GIL, so on two cores they overlap the
    Arrow building of earlier chunks here; at most a few chunks are in flight.
    Errors (a truncated or corrupt file) are raised here, after every chunk
    before them; closing this generator stops the reading thread. ``depth``
    chunks at most wait to be taken. ``learn`` is told each chunk's scan before
    the next chunk is read, until it returns None; it may lower ``depth`` (and
    change the lines of the next chunks, see :func:`iter_line_blocks`). ``sparse``
    scans are asked for (see :func:`scan_chunk`).
    """
    ready: queue.Queue[Any] = queue.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()
    scanner = _scanners()

    def take_slot() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=0.1):
                return True
        return False

    def produce() -> None:
        told, allowed = learn, depth
        try:
            for first, chunk, count in chunks:
                if not take_slot():
                    return
                scanning = scanner.submit(scan_chunk, chunk, keys, sparse)
                ready.put((first, chunk, count, scanning))
                if told is not None:
                    try:
                        got = scanning.result()
                    except Exception:  # raised to the consumer with its chunk
                        got = None
                    wanted = told(first, got, chunk)
                    if wanted is None:
                        told = None
                        continue
                    for _ in range(allowed - max(1, min(allowed, wanted))):
                        if not take_slot():  # fewer chunks in flight from now on
                            return
                        allowed -= 1
            ready.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)
        finally:
            if isinstance(chunks, types.GeneratorType):
                chunks.close()

    thread = threading.Thread(target=produce, name="robotmia-frames-read", daemon=True)
    thread.start()
    taken = 0
    try:
        while True:
            item = ready.get()
            slots.release()
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
        while not ready.empty():  # stopped early: the chunks not taken are not scanned
            item = ready.get_nowait()
            if isinstance(item, tuple):
                item[3].cancel()


#: Files smaller than this (on disk, compressed or not) are parsed in-process.
