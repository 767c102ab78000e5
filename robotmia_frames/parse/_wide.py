"""Compact shapes of parsed batches, for wide exports (thousands of keys, a few per event).

A parsed chunk (:class:`RawBatch`) lays every key it met out over all its rows,
so a chunk of a project with 2,000 keys holds 2,000 mostly-null columns. These
functions keep only what the events carry:

- :func:`split_events`: one batch per event name, with the columns that event has
  values for (the ``split_by="event"`` result);
- :func:`compact`: the same rows, each sparse column kept as its values and their
  row numbers (the ``sparse_columns="map"`` result before the map is built);
- :func:`map_array`: rare keys folded into one ``map<string, string>`` column, each
  value as the type policy writes text (strings as they are, others JSON text).

Example:
    >>> import pyarrow as pa
    >>> from .typepolicy import INT
    >>> m = map_array(3, [("a", pa.array([0, 2], pa.int32()), pa.array(["1", "x"]))])
    >>> m.to_pylist()
    [[('a', '1')], [], [('a', 'x')]]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._batch import RawBatch, RawColumn
from ._decode import PROPERTY_PREFIX, export_schema
from ._engine import conform, merge_kinds
from .typepolicy import FLOAT, INT, NULL, STR, TEXT, Kind, arrow_type, widen_array

__all__ = [
    "Coalescer",
    "batch_text",
    "coalesce",
    "compact",
    "event_keys",
    "map_array",
    "split_events",
    "text_values",
]

#: The Arrow type of the ``properties`` column of ``sparse_columns="map"``.
MAP_TYPE = pa.map_(pa.string(), pa.string())


def _event_codes(batch: RawBatch) -> tuple[list[str | None], np.ndarray]:
    """The batch's event names and each row's index into them (nulls last)."""
    enc = pc.dictionary_encode(batch.event)
    names: list[str | None] = enc.dictionary.to_pylist()
    indices = enc.indices
    if indices.null_count:
        indices = pc.fill_null(indices, len(names))
        names.append(None)
    return names, indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _bool_mask(array: pa.Array) -> np.ndarray:
    """Which of ``array``'s rows hold a value, as a NumPy bool array."""
    mask: np.ndarray = array.is_valid().to_numpy(zero_copy_only=False)
    return mask


def _valid_groups(arrays: Sequence[pa.Array], n: int) -> tuple[list[int], list[np.ndarray | None]]:
    """Arrays of ``n`` rows grouped by where they hold values: each array's group,
    and each group's rows with a value (a bool mask; None: every row). A wide
    chunk's columns fall in few groups (the keys of one event share their rows),
    so per-row work is done once per group, not once per column.

    Example:
        >>> import pyarrow as pa
        >>> at, masks = _valid_groups([pa.array([1, None]), pa.array(["a", None]),
        ...                            pa.array([1, 2])], 2)
        >>> at, [None if m is None else m.tolist() for m in masks]
        ([1, 1, 0], [None, [True, False]])
    """
    index: dict[bytes | None, int] = {None: 0}
    masks: list[np.ndarray | None] = [None]
    at = []
    for array in arrays:
        key: bytes | None = None
        if array.null_count:
            bitmap = array.buffers()[0]
            if bitmap is not None and array.offset % 8 == 0:
                lo = array.offset // 8
                key = bitmap[lo : lo + (n + 7) // 8].to_pybytes()
            else:  # all nulls without a bitmap (the null type), or an unaligned slice
                valid = _bool_mask(array)
                key = np.packbits(valid, bitorder="little").tobytes()  # a bitmap's layout
        group = index.get(key)
        if group is None:
            assert key is not None
            mask = np.unpackbits(np.frombuffer(key, np.uint8), count=n, bitorder="little")
            mask = mask.astype(bool)
            group = index[key] = len(masks)
            masks.append(mask)
        at.append(group)
    return at, masks


def _select_take(arrays: Sequence[pa.Array], rows: pa.Array | None) -> list[pa.Array]:
    """``arrays`` (of the same length) at ``rows`` (None: as they are), in one take."""
    if rows is None or not arrays:
        return list(arrays)
    names = [str(i) for i in range(len(arrays))]
    taken: list[pa.Array] = pa.RecordBatch.from_arrays(list(arrays), names=names).take(rows).columns
    return taken


def split_events(batch: RawBatch) -> list[tuple[str | None, RawBatch]]:
    """The batch's rows by event name, each part with only the columns that hold a
    value in one of its rows (in the batch's column order). A compact column
    (:attr:`RawColumn.rows`, as a sparse scan gives) stays compact in each part,
    or becomes a plain column of the part where it has a value in every row.

    Example (a sparse scan's batch):
        >>> import pathlib, tempfile
        >>> from ._engine import read_raw_batches
        >>> lines = b'{"event":"a","properties":{"n":1}}\\n{"event":"b","properties":{"s":"x"}}'
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "two.jsonl"
        >>> path.write_bytes(lines) > 0
        True
        >>> parts = split_events(next(read_raw_batches(path, source="x", sparse=True)))
        >>> [(name, part.num_rows, list(part.columns)) for name, part in parts]
        [('a', 1, ['n']), ('b', 1, ['s'])]
    """
    n = batch.num_rows
    names, codes = _event_codes(batch)
    counts = np.bincount(codes, minlength=len(names))
    ordered = np.argsort(codes, kind="stable").astype(np.int32)
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    whole = len(names) == 1
    order = pa.array(ordered)
    # (a slice of an Arrow array: pa.array of a small NumPy view is slow)
    idx = [order.slice(bounds[e], bounds[e + 1] - bounds[e]) for e in range(len(names))]
    event, time = _select_take([batch.event, batch.time], None if whole else order)
    # each part's columns: (the column's place in the batch, key, column)
    parts: list[list[tuple[int, str, RawColumn]]] = [[] for _ in names]
    dense = [
        (i, key, col)
        for i, (key, col) in enumerate(batch.columns.items())
        if col.rows is None and col.array.null_count < n
    ]
    for e, mine in enumerate(_dense_members(dense, codes, counts, n)):
        arrays = [col.array for _, _, col in mine]
        arrays += [col.text for _, _, col in mine if col.text is not None]
        taken = _select_take(arrays, None if whole else idx[e])
        texts = iter(taken[len(mine) :])
        parts[e] += [
            (
                i,
                key,
                RawColumn(taken[j], col.kind, col.exact, None if col.text is None else next(texts)),
            )
            for j, (i, key, col) in enumerate(mine)
        ]
    compacts = [
        (i, key, col) for i, (key, col) in enumerate(batch.columns.items()) if col.rows is not None
    ]
    if compacts:
        # each row's place among the rows of its event
        rank = np.empty(n, np.int32)
        rank[ordered] = np.arange(n, dtype=np.int32) - np.repeat(
            np.asarray(bounds[:-1], np.int32), counts
        )
        for e, i, key, col in _compact_parts(compacts, codes, rank, counts):
            parts[e].append((i, key, col))
    out = []
    for e, name in enumerate(names):
        parts[e].sort(key=lambda part: part[0])  # the batch's column order
        rows = idx[e] if batch.rows is None else batch.rows.take(idx[e])
        lo, size = bounds[e], int(counts[e])
        out.append(
            (
                name,
                replace(
                    batch,
                    num_rows=size,
                    event=event.slice(lo, size),
                    time=time.slice(lo, size),
                    columns={key: col for _, key, col in parts[e]},
                    rows=None if whole and batch.rows is None else rows,
                ),
            )
        )
    return out


def _dense_members(
    cols: list[tuple[int, str, RawColumn]], codes: np.ndarray, counts: np.ndarray, n: int
) -> list[list[tuple[int, str, RawColumn]]]:
    """The columns (laid out over all ``n`` rows) that hold a value in a row of each
    event: worked out once per group of columns that hold values in the same rows."""
    have: list[list[tuple[int, str, RawColumn]]] = [[] for _ in counts]
    if not cols:
        return have
    at, masks = _valid_groups([col.array for _, _, col in cols], n)
    members: list[list[int]] = [[] for _ in masks]
    for i, group in enumerate(at):
        members[group].append(i)
    events: list[list[int]] = [[] for _ in counts]
    for group, mask in enumerate(masks):
        if not members[group]:
            continue
        hit = counts > 0 if mask is None else np.bincount(codes[mask], minlength=len(counts)) > 0
        for e in np.flatnonzero(hit).tolist():
            events[e].extend(members[group])
    for e, mine in enumerate(events):
        have[e] = [cols[i] for i in sorted(mine)]
    return have


def _compact_parts(
    cols: list[tuple[int, str, RawColumn]],
    codes: np.ndarray,
    rank: np.ndarray,
    counts: np.ndarray,
) -> Iterator[tuple[int, int, str, RawColumn]]:
    """``(event, place, key, column)``: each compact column's values in the rows of
    each event it has one in, at their rows among that event's (``rank``), plain
    where they fill the event's rows. A column whose values span several events is
    cut with one take per event for all the columns of the same rows."""
    spread: dict[bytes, list[tuple[int, str, RawColumn, np.ndarray]]] = {}
    for i, key, col in cols:
        assert col.rows is not None
        rows = col.rows.to_numpy(zero_copy_only=False)
        if not len(rows):
            continue
        if col.array.null_count:
            if col.array.null_count == len(col.array):
                continue
            keep = _bool_mask(col.array)
            mask = pa.array(keep)
            text = None if col.text is None else col.text.filter(mask)
            col = RawColumn(col.array.filter(mask), col.kind, col.exact, text)
            rows = rows[keep]
        ev = codes[rows]
        e = int(ev[0])
        if e == ev[-1] and (ev == e).all():
            yield e, i, key, _placed_in(col, rank, rows, int(counts[e]))
            continue
        spread.setdefault(rows.tobytes(), []).append((i, key, col, rows))
    for group in spread.values():
        rows = group[0][3]
        ev = codes[rows]
        by_event = np.argsort(ev, kind="stable").astype(np.int32)
        cuts = np.flatnonzero(np.diff(ev[by_event])) + 1
        arrays = [col.array for _, _, col, _ in group]
        arrays += [col.text for _, _, col, _ in group if col.text is not None]
        taken = _select_take(arrays, pa.array(by_event))
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(rows)], strict=True):
            e = int(ev[by_event[lo]])
            at = rows[by_event[lo:hi]]
            texts = iter(taken[len(group) :])
            for j, (i, key, col, _) in enumerate(group):
                text = None if col.text is None else next(texts).slice(lo, hi - lo)
                part = RawColumn(taken[j].slice(lo, hi - lo), col.kind, col.exact, text)
                yield e, i, key, _placed_in(part, rank, at, int(counts[e]))


def _placed_in(col: RawColumn, rank: np.ndarray, rows: np.ndarray, size: int) -> RawColumn:
    """``col``'s values (at batch ``rows``, all of one event) as a column of that
    event's part of ``size`` rows: plain when they fill it, else compact."""
    if len(rows) == size:
        return replace(col, rows=None)
    return replace(col, rows=pa.array(rank[rows]))


def event_keys(batch: RawBatch) -> dict[str | None, set[str]]:
    """The keys each event of the batch has a value for.

    Example:
        >>> import tempfile, pathlib
        >>> from ._engine import read_raw_batches
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"n":1}}\\n{"event":"b"}\\n')
        >>> event_keys(next(read_raw_batches(p, source="x")))
        {'a': {'n'}, 'b': set()}
    """
    names, codes = _event_codes(batch)
    counts = np.bincount(codes, minlength=len(names))
    out: dict[str | None, set[str]] = {name: set() for name in names}
    for key, col in batch.columns.items():
        nulls = col.array.null_count
        if nulls == len(col.array):
            continue
        if col.rows is not None:
            rows = col.rows.to_numpy(zero_copy_only=False)
            valid = _bool_mask(col.array)
            hit = np.bincount(codes[rows[valid]], minlength=len(names)) > 0
        elif nulls == 0:
            hit = counts > 0
        else:
            valid = _bool_mask(col.array)
            hit = np.bincount(codes[valid], minlength=len(names)) > 0
        for e in np.flatnonzero(hit).tolist():
            out[names[e]].add(key)
    return out


def compact(batch: RawBatch, max_fill: float = 0.5) -> RawBatch:
    """The batch with every column filled in under ``max_fill`` of its rows kept
    as its values and their row numbers (:attr:`RawColumn.rows`; columns with
    values in the same rows share one array of them), and every other one laid
    out over the rows (a compact column of a sparse scan too).

    Example:
        >>> import tempfile, pathlib
        >>> from ._engine import read_raw_batches
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"n":1}}\\n{"event":"a"}\\n' * 2)
        >>> c = compact(next(read_raw_batches(p, source="x")), max_fill=0.6)
        >>> c.columns["n"].rows.to_pylist(), c.columns["n"].array.to_pylist()
        ([0, 2], [1, 1])
    """
    n = batch.num_rows
    sparse = [
        key
        for key, col in batch.columns.items()
        if col.rows is None and n and col.array.null_count > n * (1 - max_fill)
    ]
    at, masks = _valid_groups([batch.columns[key].array for key in sparse], n)
    members: dict[int, list[str]] = {}
    for key, group in zip(sparse, at, strict=True):
        members.setdefault(group, []).append(key)
    columns = dict(batch.columns)
    for key, col in batch.columns.items():  # compact already (a sparse scan), but filled in
        if col.rows is not None and col.filled >= n * max_fill:
            columns[key] = col.dense(n)
    for group, keys in members.items():
        mask = masks[group]
        assert mask is not None  # the columns are not all filled in
        rows = pa.array(np.flatnonzero(mask).astype(np.int32))
        cols = [batch.columns[key] for key in keys]
        arrays = [c.array for c in cols] + [c.text for c in cols if c.text is not None]
        names = [str(i) for i in range(len(arrays))]
        kept = pa.RecordBatch.from_arrays(arrays, names=names).take(rows).columns
        texts = iter(kept[len(cols) :])
        for key, col, values in zip(keys, cols, kept, strict=False):
            text = None if col.text is None else next(texts)
            columns[key] = RawColumn(values, col.kind, col.exact, text, rows)
    return replace(batch, columns=columns)


def _as_kind(col: RawColumn, kind: Kind) -> pa.Array:
    """A column's values (of its own rows) under ``kind``, as :func:`conform` widens them."""
    if col.kind is kind:
        return col.array
    if col.text is not None and kind is TEXT:
        return col.text
    return widen_array(col.array, kind)


def _ints_as_floats(src: Kind, dst: Kind) -> bool:
    """Whether widening ``src`` to ``dst`` turns ints into floats in a list."""
    if src.item is not None and dst.item is not None:
        return (src.item is INT and dst.item is FLOAT) or _ints_as_floats(src.item, dst.item)
    return False


def _mergeable(cols: Sequence[RawColumn], kind: Kind) -> bool:
    """Whether parts of a key can be joined under ``kind`` (their kinds unified) and
    still give what each part would give later, under any wider kind: no part
    needs its lines read again (``exact``), and no list of ints becomes a list of
    floats (it would not spell its ints back as text; a scalar column keeps them
    as :attr:`RawColumn.text`)."""
    return all(c.exact and not _ints_as_floats(c.kind, kind) for c in cols)


def coalesce(pieces: Sequence[RawBatch], max_fill: float = 0.5) -> RawBatch | None:
    """``pieces`` (parts of one source's chunks, in order) as one batch: their rows one
    after another, each key's column under the kinds of its parts unified (as
    :func:`merge_kinds` and :func:`conform` would). A float column that holds ints
    keeps their JSON text (:attr:`RawColumn.text`), so that the batch gives the same
    values as its pieces under any final kind. A column filled in under
    ``max_fill`` of the rows is kept compact (its values and their row numbers).

    None when a key cannot be joined exactly (:func:`_mergeable`): a part whose lines
    would be read again, or lists of several kinds.

    Example:
        >>> import tempfile, pathlib
        >>> from ._engine import read_raw_batches
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"n":1}}\\n'
        ...                  '{"event":"a","properties":{"n":2.5}}\\n')
        >>> one, two = read_raw_batches(p, source="x", batch_rows=1)
        >>> both = coalesce([one, two])
        >>> col = both.columns["n"]
        >>> col.kind, col.array.to_pylist(), col.text.to_pylist()
        (float, [1.0, 2.5], ['1', '2.5'])
    """
    if len(pieces) == 1:
        return pieces[0]
    sizes = [p.num_rows for p in pieces]
    n = sum(sizes)
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    kinds: dict[str, Kind] = {}
    parts_of: dict[str, list[tuple[int, RawColumn]]] = {}
    for i, p in enumerate(pieces):
        merge_kinds(kinds, p)
        for key, col in p.columns.items():
            parts_of.setdefault(key, []).append((i, col))
    columns: dict[str, RawColumn] = {}
    for key, kind in kinds.items():
        parts = parts_of[key]
        if not _mergeable([c for _, c in parts], kind):
            return None
        if kind is NULL:
            columns[key] = RawColumn(pa.nulls(n), NULL)
            continue
        typ = arrow_type(kind)
        texted = kind is FLOAT and any(c.text is not None or c.kind is INT for _, c in parts)
        filled = sum(c.filled for _, c in parts)
        values: list[pa.Array] = []
        texts: list[pa.Array] = []
        if filled < max_fill * n:  # compact: the values and their rows
            rows: list[np.ndarray] = []
            for i, c in parts:
                if c.kind is NULL or not c.filled:
                    continue
                if c.rows is not None:
                    at = c.rows.to_numpy(zero_copy_only=False)
                    one = c
                elif c.array.null_count:
                    valid = _bool_mask(c.array)
                    at = np.flatnonzero(valid)
                    keep = pa.array(valid)
                    one = RawColumn(
                        c.array.filter(keep),
                        c.kind,
                        c.exact,
                        None if c.text is None else c.text.filter(keep),
                    )
                else:
                    at, one = np.arange(sizes[i]), c
                rows.append(np.asarray(at, dtype=np.int64) + starts[i])
                values.append(_as_kind(one, kind))
                if texted:
                    texts.append(_as_kind(one, TEXT))
            at_rows = pa.array(np.concatenate(rows).astype(np.int32))
            text = pa.concat_arrays(texts) if texted else None
            columns[key] = RawColumn(pa.concat_arrays(values), kind, True, text, at_rows)
            continue
        have = dict(parts)
        for i, size in enumerate(sizes):
            part = have.get(i)
            if part is None or part.kind is NULL:
                values.append(pa.nulls(size, typ))
                if texted:
                    texts.append(pa.nulls(size, pa.string()))
                continue
            part = part.dense(size)
            values.append(_as_kind(part, kind))
            if texted:
                texts.append(_as_kind(part, TEXT))
        text = pa.concat_arrays(texts) if texted else None
        columns[key] = RawColumn(pa.concat_arrays(values), kind, True, text)
    last = pieces[-1]
    first = min(p.first_line for p in pieces)
    return RawBatch(
        source=pieces[0].source,
        first_line=first,
        line_count=max(p.first_line + p.line_count for p in pieces) - first,
        num_rows=n,
        event=pa.concat_arrays([p.event for p in pieces]),
        time=pa.concat_arrays([p.time for p in pieces]),
        columns=columns,
        bad_lines=frozenset().union(*(p.bad_lines for p in pieces)),
        read_to=last.read_to,
        file_size=last.file_size,
    )


#: Pieces of a group a :class:`Coalescer` joins into one at a time.
FANOUT = 16
#: Rows per piece, on average, from which a :class:`Coalescer` stops joining: the
#: Arrow objects of such a piece weigh little beside its values, and joining it
#: again would only copy it.
JOINED_ROWS = 8192


def _big(pieces: Sequence[RawBatch]) -> bool:
    """Whether ``pieces`` hold :data:`JOINED_ROWS` rows each, on average."""
    return sum(p.num_rows for p in pieces) >= JOINED_ROWS * len(pieces)


@dataclass
class Coalescer:
    """The pieces a read keeps of one source (:func:`split_events` of each chunk, or
    :func:`compact`), joined as they accumulate: the pieces of a ``group`` (an event
    name, say) are joined by :func:`coalesce` each time ``fanout`` of them are
    waiting at one level, so each row is copied about log(pieces) / log(fanout)
    times and a group holds at most ``fanout - 1`` pieces per level. Pieces of
    :data:`JOINED_ROWS` rows on average are kept as they are. ``merged`` is told
    of each join (the pieces given up, and the one kept). :meth:`batches` joins
    each group's remaining small pieces into one, in their order.

    Without a ``group``, pieces are kept as they come.

    Example:
        >>> import tempfile, pathlib
        >>> from ._engine import read_raw_batches
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"n":1}}\\n' * 5)
        >>> held = Coalescer(lambda b: b.event[0].as_py(), fanout=2)
        >>> for b in read_raw_batches(p, source="x", batch_rows=1):
        ...     held.add(b)
        >>> held.pieces, [b.num_rows for b in held.batches()]
        (2, [5])
    """

    group: Callable[[RawBatch], Hashable] | None = None
    fanout: int = FANOUT
    merged: Callable[[Sequence[RawBatch], RawBatch], None] | None = None
    #: per group: pieces that could not be joined (kept as they are), then levels
    #: of pieces, each level's pieces older than the level below's
    _done: dict[Hashable, list[RawBatch]] = field(default_factory=dict, repr=False)
    _levels: dict[Hashable, list[list[RawBatch]]] = field(default_factory=dict, repr=False)
    #: the pieces held now
    pieces: int = 0

    def add(self, piece: RawBatch) -> None:
        """Keep ``piece`` (the latest of its group)."""
        key = None if self.group is None else self.group(piece)
        levels = self._levels.setdefault(key, [[]])
        self._done.setdefault(key, [])
        levels[0].append(piece)
        self.pieces += 1
        if self.group is None:
            return
        level = 0
        while len(levels[level]) >= self.fanout:
            if _big(levels[level]) or not self._join(key, levels[level]):
                # kept as they are, older first; joining starts again after them
                self._done[key].extend(b for lv in reversed(levels) for b in lv)
                self._levels[key] = [[]]
                return
            if level + 1 == len(levels):
                levels.append([])
            levels[level + 1].append(levels[level].pop())
            level += 1

    def _join(self, key: Hashable, level: list[RawBatch]) -> bool:
        """Join the pieces of ``level`` into one, left as its only piece."""
        one = coalesce(level)
        if one is None:
            return False
        if self.merged is not None:
            self.merged(level, one)
        self.pieces -= len(level) - 1
        level[:] = [one]
        return True

    def batches(self) -> list[RawBatch]:
        """The pieces held, each group's joined into one where it can be, groups in
        order of first appearance."""
        out: list[RawBatch] = []
        for key, levels in self._levels.items():
            out.extend(self._done[key])
            rest = [b for lv in reversed(levels) for b in lv]
            if self.group is not None and len(rest) > 1 and not _big(rest):
                self._join(key, rest)
            out.extend(rest)
        return out


def text_values(col: RawColumn) -> pa.Array:
    """The column's values as the type policy writes text: strings as they are,
    every other value as its JSON text (ints keep their spelling).

    Example:
        >>> import pyarrow as pa
        >>> from .typepolicy import BOOL
        >>> text_values(RawColumn(pa.array([True, None]), BOOL)).to_pylist()
        ['true', None]
    """
    if col.text is not None:
        return col.text
    if col.kind is STR or col.kind is TEXT:
        return col.array
    if col.kind is NULL:
        return pa.nulls(len(col.array), type=pa.string())
    return widen_array(col.array, TEXT)


def batch_text(batch: RawBatch, key: str, path: str | Path) -> tuple[pa.Array, pa.Array]:
    """``(rows, texts)`` of one key of a batch, as :func:`text_values` gives them, for
    any column: one whose values cannot be spelled from Arrow alone (``exact`` is
    False: ints read as floats beside floats, mixed lists) is typed as text again
    from the batch's lines in ``path`` (by :func:`conform`, as the flat table would)."""
    col = batch.columns[key]
    if col.exact or col.kind is TEXT or col.text is not None:
        if col.rows is None:
            valid = col.array.is_valid()
            rows = pc.indices_nonzero(valid).cast(pa.int32())
            col = RawColumn(
                col.array.filter(valid),
                col.kind,
                col.exact,
                None if col.text is None else col.text.filter(valid),
                rows,
            )
        assert col.rows is not None
        return col.rows, text_values(col)
    name = PROPERTY_PREFIX + key
    one = replace(batch, columns={key: col})
    dense = conform(one, {key: TEXT}, export_schema({key: TEXT}, [name]), path=path).column(0)
    valid = dense.is_valid()
    return pc.indices_nonzero(valid).cast(pa.int32()), dense.filter(valid)


def map_array(n: int, entries: Sequence[tuple[str, pa.Array, pa.Array]]) -> pa.MapArray:
    """An ``n``-row ``map<string, string>`` array from ``(key, rows, texts)`` entries:
    ``texts[i]`` (a string array) is the value of ``key`` in row ``rows[i]`` (int32).
    Null texts are left out; a row without any entry holds an empty map. Keys of a
    row keep the order of ``entries``.
    """
    rows_parts: list[np.ndarray] = []
    texts: list[pa.Array] = []
    ids: list[np.ndarray] = []
    for i, (_, rows, text) in enumerate(entries):
        if text.null_count:
            valid = text.is_valid()
            text = text.filter(valid)
            rows = rows.filter(valid)
        r = np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)
        rows_parts.append(r)
        texts.append(text.cast(pa.string()))
        ids.append(np.full(len(r), i, dtype=np.int32))
    offsets = np.zeros(n + 1, dtype=np.int32)
    if not rows_parts or not sum(len(r) for r in rows_parts):
        empty = pa.array([], pa.string())
        return pa.MapArray.from_arrays(pa.array(offsets), empty, empty)
    all_rows = np.concatenate(rows_parts)
    perm = pa.array(np.argsort(all_rows, kind="stable"))
    np.cumsum(np.bincount(all_rows, minlength=n), out=offsets[1:])
    keys = pa.array([k for k, _, _ in entries], pa.string()).take(
        pa.array(np.concatenate(ids)).take(perm)
    )
    items = pa.concat_arrays(texts).take(perm)
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)
