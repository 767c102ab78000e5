"""Tables of several days made one: their kinds unified, each conformed to them, and
rows repeated across a day window dropped (``dedupe``)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import pyarrow as pa

from ..parse.typepolicy import (
    NULL,
    STR,
    TEXT,
    Kind,
    arrow_field,
    arrow_type,
    kind_of_field,
    unify_into,
    widen_array,
)
from ..timeconv import TIME_TYPE


def unify_kinds_of_schemas(schemas: Iterable[pa.Schema]) -> dict[str, Kind]:
    """Unify the property/event column kinds of several schemas by the type policy.

    ``time`` is left out (it is always a UTC timestamp).
    """
    kinds: dict[str, Kind] = {}
    for schema in schemas:
        unify_into(kinds, ((f.name, kind_of_field(f)) for f in schema if f.name != "time"))
    return kinds


def conform_table(table: pa.Table, kinds: dict[str, Kind], columns: Sequence[str]) -> pa.Table:
    """Give ``table`` exactly ``columns``, typed by ``kinds`` (missing ones null).

    Example:
        >>> import pyarrow as pa
        >>> from robotmia_frames.parse.typepolicy import FLOAT
        >>> conform_table(pa.table({"x": [1]}), {"x": FLOAT, "y": FLOAT}, ["x", "y"]).to_pylist()
        [{'x': 1.0, 'y': None}]
    """
    arrays = []
    fields = []
    for name in columns:
        if name == "time":
            target = TIME_TYPE
            col = table.column(name) if name in table.column_names else None
            arrays.append(col if col is not None else pa.nulls(table.num_rows, type=target))
        else:
            kind = kinds.get(name, NULL)
            if name == "event":
                kind = STR if kind in (STR, NULL) else TEXT
            target = arrow_type(kind)
            if name in table.column_names:
                arrays.append(widen_array(table.column(name), kind))
            else:
                arrays.append(pa.nulls(table.num_rows, type=target))
        fields.append(pa.field(name, target) if name == "time" else arrow_field(name, kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def unified_table(tables: Sequence[pa.Table], columns: Sequence[str] | None = None) -> pa.Table:
    """``tables`` (each with its own columns and types) as one table, their types
    unified by the type policy; columns in the order of ``columns``, else ``event``,
    ``time``, then the others in order of first appearance.

    Example:
        >>> t = unified_table([pa.table({"a": [1]}), pa.table({"a": [1.5], "b": ["x"]})])
        >>> t.column_names, t.column("a").to_pylist()
        (['event', 'time', 'a', 'b'], [1.0, 1.5])
    """
    order = column_order(t.schema for t in tables) if columns is None else list(columns)
    kinds = unify_kinds_of_schemas(t.schema for t in tables)
    if not tables:
        return conform_table(pa.table({}), kinds, order)
    return pa.concat_tables([conform_table(t, kinds, order) for t in tables])


def column_order(schemas: Iterable[pa.Schema]) -> list[str]:
    order = ["event", "time"]
    seen = set(order)
    for schema in schemas:
        for name in schema.names:
            if name not in seen:
                seen.add(name)
                order.append(name)
    return order


# ------------------------------------------------------------------------ dedupe

DEDUPE_KEYS = ("event", "time", "properties.distinct_id", "properties.$insert_id")


def with_dedupe_keys(columns: Sequence[str] | None, dedupe: bool) -> list[str] | None:
    """The columns to read: ``columns``, plus the dedupe keys when ``dedupe`` needs them.

    Example:
        >>> with_dedupe_keys(["event"], True)
        ['event', 'time', 'properties.distinct_id', 'properties.$insert_id']
    """
    if columns is None or not dedupe:
        return None if columns is None else list(columns)
    return [*columns, *(k for k in DEDUPE_KEYS if k not in columns)]


class Deduper:
    """Drops repeats of (event, distinct_id, time, $insert_id), keeping the first.

    Rows without an ``$insert_id`` are never dropped. One instance per day window:
    a repeat always shares its ``time``, hence its day.

    Example:
        >>> import pyarrow as pa
        >>> b = pa.record_batch({"event": ["a", "a"], "properties.$insert_id": ["x", "x"]})
        >>> Deduper()(b).num_rows
        1
    """

    def __init__(self) -> None:
        self.seen: set[tuple[Any, ...]] = set()
        self.dropped = 0

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        names = batch.schema.names
        if DEDUPE_KEYS[3] not in names:
            return batch
        n = batch.num_rows
        cols = [batch.column(k).to_pylist() if k in names else [None] * n for k in DEDUPE_KEYS]
        keep = [True] * n
        seen = self.seen
        for i, key in enumerate(zip(*cols, strict=True)):
            if key[3] is None:
                continue
            try:
                if key in seen:
                    keep[i] = False
                else:
                    seen.add(key)
            except TypeError:  # an unhashable (list) value: never a duplicate
                continue
        if all(keep):
            return batch
        self.dropped += keep.count(False)
        return batch.filter(pa.array(keep))


class SchemaParts:
    """The fields of ``schema`` each part of a table takes (the columns of one event,
    say), in the schema's order, with ``always`` beside them; worked out once per
    part, by name, whatever the width of the schema.

    Example:
        >>> import pyarrow as pa
        >>> parts = SchemaParts(pa.schema([("time", pa.int64()), ("a", pa.int64()),
        ...                                ("b", pa.string())]), always=["time"])
        >>> parts("e1", ["b", "zz"]).names
        ['time', 'b']
    """

    def __init__(self, schema: pa.Schema, always: Iterable[str] = ()) -> None:
        self.schema = schema
        self._always = list(always)
        self._index = {name: i for i, name in enumerate(schema.names)}
        self._parts: dict[Hashable, pa.Schema] = {}

    def __call__(self, part: Hashable, names: Iterable[str]) -> pa.Schema:
        got = self._parts.get(part)
        if got is None:
            index = self._index
            at = sorted({index[n] for n in (*self._always, *names) if n in index})
            fields = [self.schema.field(i) for i in at]
            got = self._parts[part] = pa.schema(fields, metadata=self.schema.metadata)
        return got
