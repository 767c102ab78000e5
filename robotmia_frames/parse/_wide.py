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

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._batch import RawBatch, RawColumn
from ._decode import PROPERTY_PREFIX, export_schema
from ._engine import conform
from .typepolicy import NULL, STR, TEXT, widen_array

__all__ = [
    "batch_text",
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


def split_events(batch: RawBatch) -> list[tuple[str | None, RawBatch]]:
    """The batch's rows by event name, each part with only the columns that hold a
    value in one of its rows (in the batch's column order).

    Example:
        >>> import tempfile, pathlib
        >>> from ._engine import read_raw_batches
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"n":1}}\\n'
        ...                  '{"event":"b","properties":{"s":"x"}}\\n')
        >>> [(e, b.num_rows, list(b.columns)) for e, b in split_events(
        ...     next(read_raw_batches(p, source="x")))]
        [('a', 1, ['n']), ('b', 1, ['s'])]
    """
    n = batch.num_rows
    names, codes = _event_codes(batch)
    counts = np.bincount(codes, minlength=len(names))
    order = np.argsort(codes, kind="stable").astype(np.int32)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    whole = len(names) == 1
    idx = [pa.array(order[bounds[e] : bounds[e + 1]]) for e in range(len(names))]
    # Which events each column has a value in: one validity row per column with
    # nulls, against one indicator column per event, in one matrix product.
    cols = [(key, col.dense(n)) for key, col in batch.columns.items()]
    cols = [(key, col) for key, col in cols if col.array.null_count < n]
    events_of = np.zeros((len(cols), len(names)), dtype=bool)
    sparse_at = [i for i, (_, col) in enumerate(cols) if col.array.null_count]
    events_of[[i for i, (_, c) in enumerate(cols) if not c.array.null_count]] = counts > 0
    if sparse_at:
        valid = np.stack(
            [cols[i][1].array.is_valid().to_numpy(zero_copy_only=False) for i in sparse_at]
        )
        onehot = np.zeros((n, len(names)), dtype=np.float32)
        onehot[np.arange(n), codes] = 1
        events_of[sparse_at] = (valid.astype(np.float32) @ onehot) > 0
    # Each event's rows of its columns: one take per event over all of them.
    arrays = [col.array for _, col in cols]
    texts = {
        i: len(arrays) + j
        for j, i in enumerate(i for i, (_, c) in enumerate(cols) if c.text is not None)
    }
    arrays += [cols[i][1].text for i in texts]
    table = pa.RecordBatch.from_arrays(arrays, names=[str(i) for i in range(len(arrays))])
    parts: list[dict[str, RawColumn]] = []
    for e in range(len(names)):
        have = np.flatnonzero(events_of[:, e]).tolist()
        extra = [texts[i] for i in have if i in texts]
        sub = table.select(have + extra)
        if not whole:
            sub = sub.take(idx[e])
        at = {i: j for j, i in enumerate(have + extra)}
        part = {}
        for i in have:
            key, col = cols[i]
            text = sub.column(at[texts[i]]) if i in texts else None
            part[key] = RawColumn(sub.column(at[i]), col.kind, col.exact, text)
        parts.append(part)
    out = []
    for e, name in enumerate(names):
        rows = idx[e] if batch.rows is None else batch.rows.take(idx[e])
        out.append(
            (
                name,
                replace(
                    batch,
                    num_rows=int(counts[e]),
                    event=batch.event if whole else batch.event.take(idx[e]),
                    time=batch.time if whole else batch.time.take(idx[e]),
                    columns=parts[e],
                    rows=None if whole and batch.rows is None else rows,
                ),
            )
        )
    return out


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
            valid = col.array.is_valid().to_numpy(zero_copy_only=False)
            hit = np.bincount(codes[rows[valid]], minlength=len(names)) > 0
        elif nulls == 0:
            hit = counts > 0
        else:
            valid = col.array.is_valid().to_numpy(zero_copy_only=False)
            hit = np.bincount(codes[valid], minlength=len(names)) > 0
        for e in np.flatnonzero(hit).tolist():
            out[names[e]].add(key)
    return out


def compact(batch: RawBatch, max_fill: float = 0.5) -> RawBatch:
    """The batch with every column filled in under ``max_fill`` of its rows kept
    as its values and their row numbers (:attr:`RawColumn.rows`).

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
    columns: dict[str, RawColumn] = {}
    for key, col in batch.columns.items():
        if col.rows is None and n and col.array.null_count > n * (1 - max_fill):
            valid = col.array.is_valid()
            rows = pc.indices_nonzero(valid).cast(pa.int32())
            text = None if col.text is None else col.text.filter(valid)
            col = RawColumn(col.array.filter(valid), col.kind, col.exact, text, rows)
        columns[key] = col
    return replace(batch, columns=columns)


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
