"""The parse engine: an export body to Arrow batches, chunk by chunk, in line order.

:func:`read_raw_batches` cuts the body into chunks of whole lines
(:data:`~robotmia_frames.parse._lines.BATCH_ROWS` each) and turns each chunk into a
:class:`~robotmia_frames.parse._batch.RawBatch`, typed by the chunk's own values:

1. **The C scanner** (``_scan.c``, through :mod:`~robotmia_frames.parse._native`)
   takes a chunk when it is built and every line in it is plain: one helper thread
   reads and inflates, two scan with the GIL released, and this thread wraps their
   Arrow buffers without copying. ``ROBOTMIA_FRAMES_NATIVE=0`` switches it off.
2. **Python** parses every chunk the scanner declines (a bad line, an escaped or
   duplicate key, an integer beyond int64, an odd float, deep nesting), or all of
   them without the scanner: :func:`build_raw_batch` decodes each line with orjson
   (exactly, with the standard library, where orjson would round), groups rows by
   their shape (the tuple of their keys), and builds one Arrow array per key.
3. When the whole export (or day) is read, :func:`conform` gives every batch the
   export-wide kinds (:func:`merge_kinds` folded them). Widening an array (int to
   float, anything to text) is exact from the Arrow data alone, except for lists
   whose elements were themselves mixed; those rare batches are re-read from the
   source with the reference builder, so the result never depends on where the
   batch boundaries fell.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import orjson
import pyarrow as pa

from . import _decode as parse
from ._batch import BIG_EXPONENT, RawBatch, RawColumn, as_text, values_column
from ._lines import (
    BATCH_ROWS,
    PROBE_LINES,
    ChunkRows,
    ReadPosition,
    iter_line_chunks,
    line_keys,
    rows_for_keys,
    rows_per_chunk,
    split_lines,
)
from ._native import (
    Cutter,
    ScanResult,
    cut_blocks,
    from_scan,
    iter_line_blocks,
    native_enabled,
    prescan,
    probe_width,
    scan_chunk,
    warn_if_scanner_missing,
)
from ._reference import iter_batches
from .typepolicy import (
    NULL,
    TEXT,
    Kind,
    unify_into,
    widen_array,
)

#: The rows of each shape of properties (its keys, in order), and their values.
_Groups: TypeAlias = dict[tuple[str, ...], tuple[list[int], list[tuple[Any, ...]]]]
#: Each key's values with their rows, one piece per shape holding the key.
_Pieces: TypeAlias = dict[str, list[tuple[list[int], Sequence[Any]]]]


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
        scanned = scan_chunk(b"\n".join(lines), keys)
        fast = None if scanned is None else from_scan(scanned, first_line, len(lines), source)
        if fast is not None:
            return fast
    loads = orjson.loads if not exact else None
    groups: _Groups = {}
    events: list[Any] = []
    times: list[Any] = []
    row = 0
    bad_before = len(bad.lines)
    for offset, line in enumerate(lines):
        if not line or line.isspace():
            continue
        try:
            if loads is not None:
                parse.check_nesting(line)
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
    columns = _raw_columns(_pieces(groups, keys), n, exact)
    event = None if columns is None else _event_array(events, exact)
    if columns is None or event is None:  # a value needs the exact decoding
        return build_raw_batch(
            lines, first_line, source=source, bad=_Recheck(bad), keys=keys, exact=True
        )
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


def _pieces(groups: _Groups, keys: frozenset[str] | None) -> _Pieces:
    """The values of each key (of ``keys`` only, when given), by shape."""
    pieces: _Pieces = {}
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
    return pieces


def _raw_columns(pieces: _Pieces, n: int, exact: bool) -> dict[str, RawColumn] | None:
    """One column of ``n`` rows per key, or None when a value needs the exact
    decoding (an integer beyond 64 bits that orjson read as a float)."""
    columns: dict[str, RawColumn] = {}
    for key, parts in pieces.items():
        values: Sequence[Any]
        rows: list[int]
        if len(parts) == 1:
            rows, values = parts[0]
        else:
            rows = list(itertools.chain.from_iterable(p[0] for p in parts))
            values = list(itertools.chain.from_iterable(p[1] for p in parts))
        col = values_column(values, rows, n, check_big=not exact, ordered=len(parts) == 1)
        if col is None:
            return None
        columns[key] = col
    return columns


def _event_array(events: list[Any], exact: bool) -> pa.Array | None:
    """The ``event`` column (a non-string event as its JSON text), or None when a
    non-string event holds an integer beyond 64 bits (alone or inside an object or
    a list), which orjson read as a float: the lines are then decoded exactly."""
    try:
        return pa.array(events, type=pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        texts = as_text(events)
        if not exact and any(
            type(e) is not str and t is not None and BIG_EXPONENT.search(t)
            for e, t in zip(events, texts, strict=True)
        ):
            return None
        return pa.array(texts, type=pa.string())


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
    batch_rows: int | ChunkRows | None = None,
    cutter: Cutter | None = None,
    sparse: bool = False,
) -> Iterator[RawBatch]:
    """Parse a local export file into :class:`RawBatch` es, one per chunk of lines.

    With the C scanner, one helper thread reads and inflates and two scan, while
    this thread wraps their buffers; a chunk the scanner declines is parsed here in
    Python. Batches come in line order either way. ``batch_rows`` lines go into a
    chunk (default: :data:`BATCH_ROWS`, fewer for an export with thousands of keys,
    see :func:`rows_per_chunk`); a :class:`ChunkRows` learns that number from the
    first body read with it and keeps it for the next (the windows of one
    export). With the scanner, ``cutter`` cuts chunks further
    (at byte offsets of line starts it chooses, e.g. where a day ends), so that no
    batch spans a cut. Each batch tells how far into the file its lines
    end (``read_to`` of ``file_size`` stored bytes; for gzip, in proportion to the
    bytes inflated so far).

    ``sparse``: the scanner keeps each key's values at its rows (compact columns,
    :attr:`RawColumn.rows`), so a chunk costs what its values do however many keys
    it meets; chunks then hold :data:`BATCH_ROWS` lines unless ``batch_rows`` says
    otherwise (a ``ChunkRows`` is neither asked nor told), and a chunk the scanner
    declines is parsed in pieces of as many lines as its width allows.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_bytes(b'{"event":"a","properties":{"time":1,"n":2}}\\n')
        >>> b = next(read_raw_batches(p, source="x"))
        >>> b.num_rows, b.columns["n"].kind
        (1, int)
    """
    warn_if_scanner_missing()
    bad = parse.BadLines(source, on_bad_lines)
    sizing = batch_rows if isinstance(batch_rows, ChunkRows) else None
    given = sizing.rows if sizing is not None else batch_rows
    assert not isinstance(given, ChunkRows)
    pos = ReadPosition()
    consumed = 0  # the inflated bytes of the lines handed on

    def placed(batch: RawBatch) -> RawBatch:
        batch.read_to, batch.file_size = pos.stored(consumed), pos.size
        return batch

    if not native_enabled():
        if given is None:  # fewer rows per chunk for wide exports (memory)
            given = rows_per_chunk(path) if keys is None else BATCH_ROWS
        for first, lines in iter_line_chunks(path, label=source, batch_rows=given, position=pos):
            consumed += sum(map(len, lines)) + len(lines)
            for start, part in _by_bytes(lines, first):
                yield placed(build_raw_batch(part, start, source=source, bad=bad, keys=keys))
        return
    learn = None
    if sparse and sizing is not None:
        given = None  # learnt for chunks laid out over every key
    rows = [BATCH_ROWS if given is None else given]
    if (
        not sparse
        and keys is None
        and (batch_rows is None or (sizing is not None and sizing.learning))
    ):
        # The chunks of the first PROBE_LINES lines tell how wide the export is:
        # fewer rows per chunk for thousands of keys (memory), fewer read ahead.
        # The first chunk is small unless an earlier body of the export told;
        # once one has told them all, the next ones take them as they are.
        rows[0] = _FIRST_ROWS if given is None else given
        seen: set[str] = set()
        probed = [False]  # a chunk told the width

        def learn(first: int, got: ScanResult | None, chunk: memoryview) -> int | None:
            if first > PROBE_LINES:
                if sizing is not None:
                    sizing.learnt(rows[0])
                return None
            rows[0] = probe_width(seen, got, chunk)
            probed[0] = True
            if sizing is not None:
                sizing.rows = rows[0]
            return 4 if rows[0] >= BATCH_ROWS else 1

    blocks = iter_line_blocks(path, label=source, batch_rows=rows, position=pos)
    if cutter is not None:
        blocks = cut_blocks(blocks, cutter)
    depth = 4 if rows[0] >= BATCH_ROWS or learn is not None else 1
    for first, chunk, count, got in prescan(blocks, keys, depth, learn, sparse):
        consumed += len(chunk)
        batch = None if got is None else from_scan(got, first, count, source)
        if batch is not None:
            yield placed(batch)
            continue
        for piece in declined(chunk, first, source=source, bad=bad, keys=keys, narrow=sparse):
            yield placed(piece)
    if learn is not None and sizing is not None and sizing.learning and probed[0]:
        sizing.learnt(rows[0])  # a body shorter than PROBE_LINES: all of it told


#: Lines in an export's first chunk, before its width is known (a few thousand
#: keys laid out over them stay tens of MB).
_FIRST_ROWS = 512

#: The most bytes of lines the Python engine builds into one batch. A column's
#: text can be a few times its source (``1e15`` is ``1000000000000000.0``), and an
#: Arrow string array holds at most 2 GiB, so chunks of very long lines are split
#: (the C scanner declines a chunk whose column would not fit).
MAX_CHUNK_BYTES = 256 << 20


def _by_bytes(lines: list[bytes], first: int) -> Iterator[tuple[int, list[bytes]]]:
    """``(first_line_number, lines)`` pieces of a chunk, each at most
    :data:`MAX_CHUNK_BYTES` (or one line)."""
    limit = MAX_CHUNK_BYTES
    if sum(map(len, lines)) + len(lines) <= limit:
        yield first, lines
        return
    start = size = 0
    for i, line in enumerate(lines):
        if size and size + len(line) + 1 > limit:
            yield first + start, lines[start:i]
            start, size = i, 0
        size += len(line) + 1
    yield first + start, lines[start:]


def declined(
    chunk: memoryview,
    first: int,
    *,
    source: str,
    bad: parse.BadLines,
    keys: frozenset[str] | None,
    narrow: bool = False,
) -> Iterator[RawBatch]:
    """A chunk of lines the C scanner declined, parsed in Python (in pieces of at
    most :data:`MAX_CHUNK_BYTES`). ``narrow`` (a chunk of a sparse read, as long
    as an export of few keys allows): also in pieces of as many lines as the keys
    of its first lines allow (:func:`rows_for_keys`), as the Python engine lays
    every key out over every row."""
    lines = split_lines(chunk)
    step = len(lines)
    if narrow and keys is None:
        step = rows_for_keys(len(line_keys(lines[:PROBE_LINES])))
    for start, part in _by_bytes(lines, first):
        for at in range(0, max(1, len(part)), max(1, min(step, len(part)))):
            piece = part[at : at + step]
            yield build_raw_batch(
                piece, start + at, source=source, bad=bad, keys=keys, native=False
            )


def merge_kinds(kinds: dict[str, Kind], batch: RawBatch) -> None:
    """Fold a batch's column kinds into ``kinds`` (first appearance keeps order)."""
    unify_into(kinds, ((key, col.kind) for key, col in batch.columns.items()))


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
        if col is not None and col.rows is not None:
            col = col.dense(batch.num_rows)
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
        iter_batches(
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
    if batch.rows is not None:  # one part of the chunk (one event's rows of it)
        return built[0].take(batch.rows)
    return built[0]
