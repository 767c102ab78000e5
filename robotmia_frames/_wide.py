"""Wide projects: the shape of a read's result, and the memory budget that guards it.

A project with thousands of property keys, a few dozen per event, gives a flat
table that is mostly nulls, stored densely by Arrow and pandas. A read can ask
for another shape (:class:`Shape`):

- ``split_by="event"``: a dict of one table per event name, each with only the
  columns its events carry;
- ``sparse_columns="map"``: keys filled in at least ``sparse_threshold`` of the
  rows stay columns, the rest go into one ``properties`` column of Arrow type
  ``map<string, string>`` (each value as the type policy writes text).

Whatever the shape, :class:`Collector` receives each parsed batch, keeps it in the
shape's compact form and estimates the memory the result will need; past
``max_memory`` it raises :class:`~robotmia_frames.errors.MemoryBudgetError`, before
the result is built.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import math
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _options, _pipeline, _progress, parse, sinks
from ._memory import budget_of, size_text
from .errors import MemoryBudgetError
from .parse import MAP_TYPE, PROPERTY_PREFIX, Kind
from .parse.typepolicy import BOOL, FLOAT, INT, NULL, STR, TEXT, kind_of_field

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "SPARSE_THRESHOLD",
    "Collector",
    "Shape",
]

#: The default ``sparse_threshold``: a key filled in under 10% of the rows goes to the map
#: (a column costs about 8 bytes in every row, a map entry about 25 in the rows it fills).
SPARSE_THRESHOLD = 0.1
#: The name of the map column of ``sparse_columns="map"``.
MAP_COLUMN = "properties"

Result: TypeAlias = "pd.DataFrame | pa.Table | pl.DataFrame"
Results: TypeAlias = "Result | dict[str | None, Result]"


@dataclass(frozen=True)
class Shape:
    """A read's checked ``split_by``, ``sparse_columns``, ``sparse_threshold``,
    ``max_memory``, ``return_type`` and ``dtype_backend``."""

    split_by: _options.SplitBy | None = None
    sparse: _options.SparseColumns | None = None
    threshold: float = SPARSE_THRESHOLD
    budget: int | None = None
    budget_note: str = ""
    base: int = 0  # the process's memory when the read began
    return_type: _options.ReturnType = "pandas"
    dtype_backend: sinks.DtypeBackend = "numpy_nullable"
    #: the shape of a dataset's days (``export_to_parquet``), not of a read's result
    dataset: bool = False
    #: ... of the event layout (each event's files hold only its columns)
    event_layout: bool = False
    #: the shape of one partition of a Dask DataFrame, built on a worker
    partition: bool = False
    #: the ``max_memory`` argument the budget was reckoned from (:meth:`here`)
    max_memory: int | Literal["auto"] | None = "auto"

    @classmethod
    def checked(
        cls,
        *,
        split_by: Any = None,
        sparse_columns: Any = None,
        sparse_threshold: Any = SPARSE_THRESHOLD,
        max_memory: Any = "auto",
        return_type: Any = "pandas",
        dtype_backend: Any = "numpy_nullable",
    ) -> Shape:
        """Check the shape keywords of a read (before anything is sent)."""
        split = _options.split_by(split_by)
        sparse = _options.sparse_columns(sparse_columns)
        threshold = _options.sparse_threshold(sparse_threshold)
        budget_arg = _options.max_memory(max_memory)
        budget, note, base = budget_of(budget_arg)
        return cls(
            split,
            sparse,
            threshold,
            budget,
            note,
            base,
            _options.return_type(return_type),
            _options.dtype_backend(dtype_backend),
            max_memory=budget_arg,
        )

    def here(self) -> Shape:
        """This shape with its budget reckoned for this process (a Dask worker, say):
        ``max_memory="auto"`` from this process's memory and the memory available to
        it now; a budget in bytes stays as it is."""
        budget, note, base = budget_of(self.max_memory)
        return dataclasses.replace(self, budget=budget, budget_note=note, base=base)

    @classmethod
    def of(cls, given: Mapping[str, Any], **overrides: Any) -> Shape:
        """:meth:`checked` from the arguments of a public function: ``given`` (its
        ``locals()``) holds the shape keywords, and more that are not the shape's;
        ``overrides`` replace some of them."""
        call = {k: v for k, v in given.items() if k in _SHAPE_ARGUMENTS}
        return cls.checked(**(call | overrides))

    @property
    def compact(self) -> bool:
        return self.split_by is not None or self.sparse is not None

    def check(self, peak: float, result: float, what: str) -> None:
        """Raise :class:`MemoryBudgetError` when this process (its memory when the
        read began, plus the ``peak`` bytes building the result needs) would pass
        the budget."""
        if self.budget is None or self.base + peak <= self.budget:
            return
        peak += self.base
        columns = "columns=[...] to read only the columns you need"
        sparse = "sparse_columns='map' to fold rare keys into one 'properties' map column"
        if self.partition:
            doing, done = (
                "building one partition would take its worker process",
                "Nothing was built",
            )
            ways = [columns, *([sparse] if self.sparse is None else [])]
            ways.append(
                "robotmia_frames.dask.export_to_parquet(..., split_by='event') to write each "
                "event's columns to its own files, then read_parquet_dataset(..., event=...)"
            )
        elif self.dataset:
            doing, done = "writing one day would take this process", "That day was not written"
            ways = [
                "columns=[...] to write only the columns you need",
                "event= or where= to export fewer events",
            ]
            if not self.event_layout:
                ways.append("split_by='event' to write each event's columns to its own files")
        else:
            doing, done = "building the result would take this process", "Nothing was built"
            ways = [columns]
            if self.split_by is None:
                ways.append("split_by='event' for one narrow table per event")
            if self.sparse is None:
                ways.append(sparse)
            ways.append("export_to_parquet(...) to write the export to disk one day at a time")
        ways.append("max_memory=None to turn this check off")
        raise MemoryBudgetError(
            f"{doing} to about {size_text(peak)} of memory ({size_text(result)} as a table; {what}), "
            f"over the budget of {size_text(self.budget)} ({self.budget_note}). {done}. Ways out: "
            + "; ".join(ways)
            + ".",
            estimate=int(peak),
            max_memory=self.budget,
        )


#: The keywords of :meth:`Shape.checked`, which :meth:`Shape.of` picks.
_SHAPE_ARGUMENTS = frozenset(inspect.signature(Shape.checked).parameters)

# Bytes per row of a column of each kind: Arrow (values and validity) and pandas
# with nullable dtypes (values and mask; strings become large strings; a column
# of only nulls is an object column of pointers).
_ARROW_WIDTH: dict[Kind, float] = {NULL: 0, BOOL: 0.25, INT: 8.125, FLOAT: 8.125}
_PANDAS_WIDTH: dict[Kind, float] = {NULL: 8, BOOL: 2, INT: 9, FLOAT: 9}
_STRING_ARROW, _STRING_PANDAS = 4.125, 9.0
#: Parsed chunks in flight at once: read ahead, being scanned, being wrapped.
_IN_FLIGHT = 10
#: The share of the input read before the estimate projects to the whole of it.
_MIN_SHARE = 0.01


#: What one Arrow array of a compact piece costs beside its buffers: its C++ and
#: Python objects and the allocator's rounding of its small buffers. A wide chunk
#: (few rows, thousands of keys) is split into pieces of a row or two per event,
#: so at 10,000 keys these outweigh the data until the pieces are joined (30,000
#: events kept piece by piece: 552,000 arrays held 630 MB more than their 7 MB of
#: buffers).
_ARRAY_BYTES = 1200

#: The peak of a compact read over the sum of its parts above: the C heap keeps
#: the scanner's buffers of pieces already joined (measured with sparse scans:
#: peak RSS over base 1.18x the estimate at 100,000 events x 10,000 keys split,
#: 1.18x at 1,000,000 x 2,000 sparse).
_COMPACT_SLACK = 1.25


def _arrays(piece: parse.RawBatch) -> int:
    """The Arrow arrays a compact piece holds: its event, time and row numbers,
    and each column's values, row numbers (shared by the columns of the same rows)
    and text."""
    rows = {id(c.rows) for c in piece.columns.values() if c.rows is not None}
    return 3 + len(rows) + sum(1 + (c.text is not None) for c in piece.columns.values())


def _widths(kind: Kind, pandas: bool) -> float:
    if kind is STR or kind is TEXT:
        return _STRING_PANDAS if pandas else _STRING_ARROW
    if kind.item is not None:
        return 0 if pandas else _STRING_ARROW  # lists stay Arrow in pandas (ArrowDtype)
    return (_PANDAS_WIDTH if pandas else _ARROW_WIDTH)[kind]


def _event_of(piece: parse.RawBatch) -> str | None:
    """The event name of a piece of :func:`parse.split_events` (one event's rows)."""
    name: str | None = piece.event[0].as_py() if piece.num_rows else None
    return name


def _one_group(piece: parse.RawBatch) -> None:
    """Every compact chunk of a source in one group (joined in their order)."""
    return None


@dataclass
class Collector:
    """Receives a read's parsed batches: keeps each in the shape's compact form and
    checks the memory the result will need against the budget as it goes.

    The estimate projects what has been scanned to the whole input: each batch says
    how many bytes of its file (as stored) had been read (``read_to`` of
    ``file_size``), and the rows, the bytes held and the string data grow in
    proportion to the share of the input read (:meth:`share`). The input is the
    files seen so far, or the ``expected`` bytes of every body of an export (see
    :meth:`expect`). So a read whose result would not fit fails after its first
    chunks, while what is held is still a small part of the budget.
    """

    shape: Shape
    rows: int = 0
    held: int = 0
    chunk: int = 0  # the biggest parsed chunk so far: a few are in flight at once
    variable: int = 0  # string data and list values of the flat columns
    arrays: int = 0  # the Arrow arrays of the compact pieces kept (see _ARRAY_BYTES)
    kinds: dict[str, Kind] = field(default_factory=dict)
    #: per file (the batches' source): (stored bytes read so far, its size) ...
    read: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: ... and their sums over the files (a year of one-day bodies is 365 files)
    read_bytes: int = 0
    read_size: int = 0
    expected: int = 0  # the stored bytes of the whole input, when known beyond its files
    #: Download threads check bodies they hold (:meth:`holding`) while the calling
    #: thread adds batches: what the estimate reads is changed under this lock only.
    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )
    #: the kinds and the row widths of the flat result they give (:meth:`_row_widths`)
    _widths_of: tuple[tuple[Kind, ...], float, float] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def compact(self) -> bool:
        """Whether the read keeps compact pieces (``split_by``, ``sparse_columns``; see
        ``BudgetHook``), or its batches as parsed, into one Arrow table or a pandas
        frame.

        Example:
            >>> arrow = Shape(return_type="arrow")
            >>> [Collector(s).compact for s in (arrow, Shape(return_type="pandas"),
            ...                                 dataclasses.replace(arrow, split_by="event"))]
            [False, False, True]
        """
        return self.shape.compact

    def expect(self, total: int) -> None:
        """The stored bytes of every body of the read (those landed and, for the
        days still to come, projected), so far as known."""
        self.expected = total

    def holding(self, nbytes: int, what: str) -> None:
        """Check the estimate so far plus ``nbytes`` of parsed data held whole (a body
        not yet handed on), counted twice as parsed batches take."""
        peak, result = self.estimate()
        self.shape.check(
            peak + 2 * nbytes, result, f"{what} held as parsed ({size_text(2 * nbytes)})"
        )

    def watcher(self) -> _pipeline.BatchHook:
        """A hook for a body parsed whole before it is cut into days: each batch is
        kept as parsed (dense) and checked with :meth:`holding`."""
        held = 0

        def watch(batch: parse.RawBatch) -> list[parse.RawBatch]:
            nonlocal held
            held += batch.nbytes
            self.holding(held, f"a window of several days, in {batch.source}")
            return [batch]

        return watch

    def share(self) -> float:
        """The share of the input read so far (1.0 when unknown).

        Example:
            >>> c = Collector(Shape())
            >>> c.reading("a", 25, 100)
            >>> c.share()
            0.25
            >>> c.expect(500)
            >>> c.share()
            0.05
        """
        with self._lock:
            done, total = self.read_bytes, max(self.expected, self.read_size)
        if done <= 0 or total <= 0:
            return 1.0
        return min(1.0, done / total)

    def reading(self, source: str, read_to: int, size: int) -> None:
        """``source`` (a file of ``size`` stored bytes) is read up to ``read_to``."""
        with self._lock:
            before, before_size = self.read.get(source, (0, 0))
            now = max(before, read_to)
            self.read[source] = (now, size)
            self.read_bytes += now - before
            self.read_size += size - before_size

    def __call__(self, batch: parse.RawBatch) -> list[parse.RawBatch]:
        if self.shape.split_by is not None:
            pieces = [b for _, b in parse.split_events(batch)]
        elif self.shape.sparse is not None:
            pieces = [parse.compact(batch)]
        else:
            pieces = [batch]
        n = batch.num_rows
        size = batch.nbytes
        with self._lock:
            self.rows += n
            if batch.file_size:
                self.reading(batch.source, batch.read_to, batch.file_size)
            self.chunk = max(self.chunk, size)
            if self.shape.compact:
                self.held += sum(b.nbytes for b in pieces)
                self.arrays += sum(_arrays(b) for b in pieces)
            else:
                self.held += size
                for col in batch.columns.values():
                    if col.kind is STR or col.kind is TEXT or col.kind.item is not None:
                        self.variable += max(0, col.nbytes - int(n * _STRING_ARROW))
                parse.merge_kinds(self.kinds, batch)
        self.check(batch.source)
        return pieces

    def holder(self) -> parse.Coalescer:
        """What keeps the pieces of one source: those of an event (``split_by``), or
        every compact chunk (``sparse_columns``), joined as they accumulate, so the
        memory held follows the rows rather than the chunks (a wide chunk gives a row
        or two per event, each piece an Arrow array per column). A flat read keeps
        its batches as parsed."""
        if self.shape.split_by is not None:
            return parse.Coalescer(_event_of, merged=self._merged)
        if self.shape.sparse is not None:
            return parse.Coalescer(_one_group, merged=self._merged)
        return parse.Coalescer()

    def _merged(self, given: Sequence[parse.RawBatch], kept: parse.RawBatch) -> None:
        """Pieces were joined into one: what is held changed."""
        with self._lock:
            self.held += kept.nbytes - sum(b.nbytes for b in given)
            self.arrays += _arrays(kept) - sum(_arrays(b) for b in given)

    def estimate(self) -> tuple[float, float]:
        """(peak bytes to build the result, bytes of the result as a table), for the
        whole input: what was scanned, scaled by the share of the input read."""
        with self._lock:
            return self._estimate()

    def _row_widths(self) -> tuple[float, float]:
        """The bytes of a row of the flat result, in Arrow and in pandas (nullable),
        worked out again only when the kinds changed (it is asked for each batch)."""
        kinds = tuple(self.kinds.values())
        if self._widths_of is None or self._widths_of[0] != kinds:
            arrow = 4.125 + 8.125 + sum(_widths(k, False) for k in kinds)
            pandas = 9 + 8 + sum(_widths(k, True) for k in kinds)
            self._widths_of = (kinds, arrow, pandas)
        return self._widths_of[1], self._widths_of[2]

    def _estimate(self) -> tuple[float, float]:
        pandas = self.shape.return_type == "pandas"
        nullable = pandas and self.shape.dtype_backend == "numpy_nullable"
        share = self.share()
        # From the first 1% of the input on: a first chunk or two may not be typical.
        scale = 1.0 / share if share >= _MIN_SHARE else 1.0
        rows, variable = self.rows * scale, self.variable * scale
        if self.shape.compact:
            # Compact pieces become the result's columns (scattered back over their
            # rows for kept sparse keys; map values as text): at most twice as big.
            result = self.held * scale * (2.0 if self.shape.sparse else 1.0)
            converted = result * 1.2 if nullable else 0.0
        else:
            fixed, fixed_pd = self._row_widths()
            result = rows * fixed + variable
            converted = rows * fixed_pd + variable if nullable else 0.0
        # The parsed batches and the table exist together, then the table and its
        # pandas conversion (the batches are let go first); while parsing, a few
        # chunks are in flight (read ahead and being scanned).
        in_flight = _IN_FLIGHT * self.chunk
        # Parsed batches take about twice what their Arrow buffers add up to (the
        # scanner's buffers and the allocator's slack, measured at 10,000 keys).
        # The pieces of a compact read are joined FANOUT at a time (parse.Coalescer):
        # the arrays held grow with the log of the rows, not with the rows.
        growth = 1 + math.log(scale, parse.FANOUT) if self.shape.compact else scale
        held = 2 * self.held * scale + self.arrays * _ARRAY_BYTES * growth
        peak = max(held + in_flight, held + result, result + converted)
        if self.shape.compact:
            peak *= _COMPACT_SLACK
        # ... and the next chunk lands before the next check.
        return peak + 3 * self.chunk * (1 + converted / max(result, 1)), result

    def check(self, source: str) -> None:
        peak, result = self.estimate()
        share = self.share()
        what = f"{self.rows:,} rows scanned so far"
        if _MIN_SHARE <= share < 1:
            what += f" in {share:.1%} of the input, about {self.rows / share:,.0f} rows in all"
        if not self.shape.compact:
            what += f", {len(self.kinds) + 2:,} columns"
        self.shape.check(peak, result, f"{what}, in {source}")


def dataset_shape(given: Mapping[str, Any], function: str) -> tuple[Shape, tuple[str, ...]]:
    """The checked shape of the days a public ``function`` writes to a dataset
    (``given``: its ``locals()``), and the ``partition_by`` it writes with:
    ``split_by="event"`` is the event layout, ``sparse_columns="map"`` is refused (a
    dataset keeps every key as its own column) and ``dtype_backend``, where given,
    is checked though a dataset has no pandas dtypes.

    Example:
        >>> shape, layout = dataset_shape({"split_by": "event", "partition_by": ("date",)}, "f")
        >>> shape.split_by, layout
        ('event', ('date', 'event'))
    """
    shape = Shape.of(given, return_type="arrow")
    _options.dataset_sparse(shape.sparse, function)
    return shape, _options.split_partitions(given["partition_by"], shape.split_by)


def day_budget(
    shape: Shape, partition_by: Sequence[str] | None = None
) -> Callable[[_pipeline.Parsed], None] | None:
    """The check of each day an export writes to a dataset against ``max_memory``
    (None: no budget). A day held whole while it is written (its parsed batches,
    then its Arrow table) is estimated as a read of that day alone. A wide day too
    big to hold (``Parsed.again``) keeps no batch and is written chunk by chunk; in
    the date layout (``partition_by=("date",)``) its one file holds every column,
    and the file's footer, held until the file is closed, grows with its row groups
    times its columns (``sinks.footer``): that is checked. The budget is
    this process's (:meth:`Shape.here`): on a cluster, the worker's.

    Example:
        >>> day_budget(Shape.checked(max_memory=None)) is None
        True
    """
    shape = shape.here()
    if shape.budget is None:
        return None
    by_event = partition_by is not None and tuple(partition_by) == ("date", "event")
    flat = dataclasses.replace(
        shape, split_by=None, sparse=None, return_type="arrow", dataset=True, event_layout=by_event
    )

    def check(day: _pipeline.Parsed) -> None:
        if day.again is not None:
            if partition_by is not None and not by_event:
                columns = 2 + len(day.kinds)  # event, time and the properties
                groups, footer = sinks.footer(day.rows, columns)
                what = f"{day.rows:,} rows in {groups:,} row groups of {columns:,} columns"
                flat.check(footer, footer, f"the footer of its file: {what}, {day.label}")
            return
        collect = Collector(flat)
        for batch in day.batches:
            collect(batch)

    return check


def partition_budget(shape: Shape) -> Collector | None:
    """The check of one day read as a partition of a Dask DataFrame, in the shape's
    form (pandas, a sparse map), against ``max_memory`` (None: no budget): a batch
    hook for the day's parse (``parse_file(hook=...)``), so that, as in a read on
    one machine, the estimate is projected from the share of the day's body parsed
    and a day over the budget fails after its first chunks, before the worker holds
    it. The budget is this process's (:meth:`Shape.here`): the worker's.

    Example:
        >>> partition_budget(Shape.checked(max_memory=None)) is None
        True
        >>> partition_budget(Shape.checked(max_memory=1 << 30)).shape.partition
        True
    """
    shape = shape.here()
    if shape.budget is None:
        return None
    return Collector(dataclasses.replace(shape, split_by=None, partition=True))


# ------------------------------------------------------------------ materialize


def _by_event(
    sources: Sequence[_pipeline.Parsed],
) -> dict[str | None, list[tuple[_pipeline.Parsed, parse.RawBatch]]]:
    out: dict[str | None, list[tuple[_pipeline.Parsed, parse.RawBatch]]] = {}
    for src in sources:
        for b in src.batches:
            if b.num_rows:
                out.setdefault(b.event[0].as_py(), []).append((src, b))
    return out


def split_tables(
    sources: Sequence[_pipeline.Parsed], spec: _pipeline.TableSpec
) -> dict[str | None, pa.Table]:
    """One table per event name (in order of first appearance), each with ``event``,
    ``time`` and only the property columns that event has values for, typed by the
    export-wide kinds (the types of the flat table)."""
    kinds, tz, columns, dedupe, unit = spec.kinds, spec.tz, spec.columns, spec.dedupe, spec.unit
    out: dict[str | None, pa.Table] = {}
    for name, parts in _by_event(sources).items():
        have: set[str] = set()
        for _, b in parts:
            have.update(b.columns)
        sub = {k: v for k, v in kinds.items() if k in have}
        cols = None
        if columns is not None:
            cols = [
                c
                for c in columns
                if not c.startswith(PROPERTY_PREFIX) or c[len(PROPERTY_PREFIX) :] in have
            ]
        schema = _pipeline.final_schema(sub, cols)
        batches: list[pa.RecordBatch] = []
        # One pass per source (a day window): its pieces of this event, deduped together.
        for _, group in itertools.groupby(parts, key=lambda part: id(part[0])):
            pieces = list(group)
            src = pieces[0][0]
            one = _pipeline.Parsed(src.path, src.label, [b for _, b in pieces], src.kinds)
            batches.extend(_pipeline.batches(one, sub, tz, cols, dedupe=dedupe, unit=unit))
        out[name] = pa.Table.from_batches(batches, schema=schema)
    return out


def key_fill(sources: Sequence[_pipeline.Parsed]) -> tuple[int, dict[str, int]]:
    """The rows of ``sources`` and, per property key, how many of them hold a value:
    what decides which keys stay columns (:func:`kept_kinds`).

    Example:
        >>> key_fill([])
        (0, {})
    """
    fill: dict[str, int] = {}
    for src in sources:
        for b in src.batches:
            for key, col in b.columns.items():
                fill[key] = fill.get(key, 0) + col.filled
    return sum(s.rows for s in sources), fill


def kept_kinds(
    spec: _pipeline.TableSpec, rows: int, fill: dict[str, int], threshold: float
) -> dict[str, Kind]:
    """The keys of ``spec`` that stay columns beside the map of ``sparse_columns="map"``:
    those filled in at least ``threshold`` of ``rows`` (``fill``: per key, the rows
    that hold a value), those the spec keeps (``keep_keys``) and, with dedupe, the
    dedupe keys."""
    named = set(spec.keep_keys)
    if spec.dedupe:  # the dedupe keys stay columns
        named |= {k[len(PROPERTY_PREFIX) :] for k in sinks.DEDUPE_KEYS[2:]}
    return {
        k: v
        for k, v in spec.kinds.items()
        if k in named or (rows and fill.get(k, 0) >= threshold * rows)
    }


def sparse_table(
    sources: Sequence[_pipeline.Parsed],
    spec: _pipeline.TableSpec,
    *,
    threshold: float = SPARSE_THRESHOLD,
    kept: dict[str, Kind] | None = None,
) -> pa.Table:
    """The flat table with the keys filled in under ``threshold`` of the rows folded
    into one ``properties`` map column. Keys named in the spec's ``columns`` or
    ``keep_keys`` (those a ``where`` reads) stay columns; with ``columns`` there is no
    map column. ``kept``: the keys that stay columns, decided beforehand (over more
    than ``sources``: a partition of a larger read)."""
    if spec.columns is not None:
        return _pipeline.flat_table(sources, spec)
    kinds, tz, dedupe, unit = spec.kinds, spec.tz, spec.dedupe, spec.unit
    if kept is None:
        kept = kept_kinds(spec, *key_fill(sources), threshold)
    rare = [k for k in kinds if k not in kept]
    schema = _pipeline.final_schema(kept, None)
    tables = []
    for src in sources:
        deduper = sinks.Deduper() if dedupe else None
        for b in src.batches:
            if not b.num_rows:
                continue
            one = _pipeline.Parsed(src.path, src.label, [b], src.kinds)
            flat = list(_pipeline.batches(one, kept, tz, None, unit=unit))
            entries = [
                (key, *parse.batch_text(b, key, src.path)) for key in rare if key in b.columns
            ]
            props = parse.map_array(b.num_rows, entries)
            t = pa.Table.from_batches(flat, schema=schema)
            t = t.append_column(pa.field(MAP_COLUMN, MAP_TYPE), props)
            if deduper is not None:
                t = pa.Table.from_batches([deduper(x) for x in t.to_batches()], schema=t.schema)
            tables.append(t)
    out_schema = schema.append(pa.field(MAP_COLUMN, MAP_TYPE))
    return pa.Table.from_batches([b for t in tables for b in t.to_batches()], schema=out_schema)


def builder(shape: Shape) -> _pipeline.Build:
    """The function that builds a result of ``shape`` from parsed sources."""
    if shape.split_by is not None:
        return split_tables
    if shape.sparse is not None:
        return functools.partial(sparse_table, threshold=shape.threshold)
    return _pipeline.flat_table


def read_export(
    plan: _pipeline.ExportPlan,
    shape: Shape,
    writer: _pipeline.DatasetWriter | None = None,
) -> _pipeline.Tables:
    """An export read in ``shape``, within its memory budget, each day written to
    ``writer`` too when given (which it closes): one table (its first ``limit``
    rows), one per event (``split_by``), or the rare keys in a map column."""
    with (
        contextlib.ExitStack() as held,
        tempfile.TemporaryDirectory(prefix="robotmia-export-") as tmp,
    ):
        if writer is not None:
            held.enter_context(writer)
        windows, kinds = _pipeline.fetch_windows(plan, Path(tmp), Collector(shape))
        if writer is not None:
            for w in windows:
                writer.write(w, plan)
            writer.complete(plan.start, plan.end)
        spec = _pipeline.TableSpec(
            kinds,
            plan.timezone,
            plan.columns,
            dedupe=plan.dedupe,
            unit=plan.time_unit,
            keep_keys=plan.pinned.keys(),
        )
        tables = builder(shape)([w.parsed for w in windows], spec)
        del windows  # the parsed batches go before the conversion to pandas
    if not isinstance(tables, dict) and plan.limit is not None and tables.num_rows > plan.limit:
        tables = tables.slice(0, plan.limit)
    return tables


def deliver(tables: _pipeline.Tables | list[_pipeline.Tables], shape: Shape) -> Results:
    """The result as the caller asked: Arrow or pandas, one table or a dict. Tables
    given in a one-item list (or a dict) are given away: each is freed as it is
    converted."""
    if isinstance(tables, list):
        tables = tables.pop()
    if isinstance(tables, dict):
        out: dict[str | None, Result] = {}
        for name in list(tables):
            out[name] = _pipeline.deliver(
                [tables.pop(name)], shape.return_type, shape.dtype_backend
            )
        return out
    held = [tables]
    del tables
    return _pipeline.deliver(held, shape.return_type, shape.dtype_backend)


# ------------------------------------------------------------------ datasets


def _file_estimate(
    ds: sinks.ParquetDataset, path: str, columns: Sequence[str] | None
) -> tuple[int, dict[str, float]]:
    """A data file's rows and, per column, the bytes it takes in memory (from its
    footer: the uncompressed size, at least the fixed width of its kind per row)."""
    md = ds.metadata_of(path)
    schema = md.schema.to_arrow_schema()
    rows = md.num_rows
    sizes: dict[str, float] = {}
    for i in range(md.num_columns):
        name = md.schema.column(i).path.split(".list.")[0]
        if name.startswith(PROPERTY_PREFIX) and name not in schema.names:
            name = next((n for n in schema.names if md.schema.column(i).path.startswith(n)), name)
        if columns is not None and name not in columns:
            continue
        size = sum(
            md.row_group(g).column(i).total_uncompressed_size for g in range(md.num_row_groups)
        )
        sizes[name] = sizes.get(name, 0) + size
    for f in schema:
        if f.name in sizes:
            sizes[f.name] = max(sizes[f.name], rows * _widths(kind_of_field(f), False))
    return rows, sizes


def dataset_check(
    query: _pipeline.DatasetQuery, shape: Shape, files: Sequence[str] | None = None
) -> None:
    """Check the memory a dataset read will need against the budget, from the
    footers of the files it selects (or of ``files``: one partition's), before any
    data is read."""
    if shape.budget is None:
        return
    if files is None:
        files = [f for fs in query.select().values() for f in fs]
    per_file = [_file_estimate(query.ds, f, query.columns) for f in files]
    union: set[str] = set()
    for _, sizes in per_file:
        union.update(sizes)
    own = sum(sum(sizes.values()) for _, sizes in per_file)
    if shape.compact:
        result = own
    else:  # every file's rows get every column (nulls where the file has none)
        result = own + sum(rows * 8.125 * len(union - set(sizes)) for rows, sizes in per_file)
    nullable = shape.return_type == "pandas" and shape.dtype_backend == "numpy_nullable"
    peak = own + result + (result * 1.2 if nullable else 0)
    shape.check(peak, result, f"{len(files):,} files, {len(union):,} columns, from their footers")


def table_fill(tables: Iterable[pa.Table]) -> tuple[int, dict[str, int]]:
    """The rows of ``tables`` (days of a dataset) and, per column, how many of them
    hold a value: what decides which columns stay beside the map (:func:`kept_columns`)."""
    rows = 0
    fill: dict[str, int] = {}
    for t in tables:
        rows += t.num_rows
        for n in t.column_names:
            fill[n] = fill.get(n, 0) + t.num_rows - t.column(n).null_count
    return rows, fill


def kept_columns(
    order: Iterable[str],
    rows: int,
    fill: dict[str, int],
    threshold: float,
    keep: frozenset[str],
    query: _pipeline.DatasetQuery,
) -> list[str]:
    """The columns of a dataset read (``order``) that stay beside the map: ``event``,
    ``time``, those filled in at least ``threshold`` of ``rows``, those in ``keep``
    (pinned) and, with dedupe, the dedupe keys."""
    named = {"event", "time", *keep, *(sinks.DEDUPE_KEYS if query.dedupe else ())}
    return [n for n in order if n in named or (rows and fill.get(n, 0) >= threshold * rows)]


def with_map(table: pa.Table, kinds: dict[str, Kind], kept: list[str]) -> pa.Table:
    """A dataset's table with its ``kept`` columns (conformed to ``kinds``) and every
    other value in the map column, as text."""
    entries = []
    for f in table.schema:
        if f.name in kept:
            continue
        array = table.column(f.name).combine_chunks()
        valid = array.is_valid()
        col = parse.RawColumn(array.filter(valid), kind_of_field(f))
        rows_at = pc.indices_nonzero(valid).cast(pa.int32())
        entries.append((f.name[len(PROPERTY_PREFIX) :], rows_at, parse.text_values(col)))
    part = sinks.conform_table(table, kinds, kept)
    props = parse.map_array(table.num_rows, entries)
    return part.append_column(pa.field(MAP_COLUMN, MAP_TYPE), props)


def map_schema(kinds: dict[str, Kind], kept: list[str]) -> pa.Schema:
    """The schema of :func:`with_map`'s tables."""
    empty = sinks.conform_table(pa.table({}), kinds, kept)
    return empty.schema.append(pa.field(MAP_COLUMN, MAP_TYPE))


def _split_table(table: pa.Table) -> Iterable[tuple[str | None, pa.Table]]:
    """A table's rows by event, each part without the columns it has no value in."""
    events = table.column("event")
    for value in pc.unique(events).to_pylist():
        mask = pc.is_null(events) if value is None else pc.equal(events, value)
        part = table.filter(mask)
        keep = [
            n
            for n in part.column_names
            if n in ("event", "time") or part.column(n).null_count < part.num_rows
        ]
        yield value, part.select(keep)


def _dedupe(table: pa.Table) -> pa.Table:
    deduper = sinks.Deduper()
    return pa.Table.from_batches([deduper(b) for b in table.to_batches()], schema=table.schema)


def read_dataset(
    query: _pipeline.DatasetQuery,
    shape: Shape,
    *,
    progress: _progress.ProgressArg = None,
    keep_keys: frozenset[str] = frozenset(),
) -> _pipeline.Tables:
    """A dataset read in ``shape``, with a bar of the days read (``progress``)."""
    bar = _progress.make(progress, total=len(query.select()), desc="robotmia read", unit="day")
    try:
        return _read_dataset(query, shape, None if bar is None else bar.window_done, keep_keys)
    finally:
        if bar is not None:
            bar.close()


def _read_dataset(
    query: _pipeline.DatasetQuery,
    shape: Shape,
    on_day: Any,
    keep_keys: frozenset[str],
) -> _pipeline.Tables:
    """A dataset read in ``shape``: checked against the budget first, then one
    table, one per event (``split_by``), or the rare keys in a map column."""
    dataset_check(query, shape)
    if not shape.compact:
        return query.read(on_day=on_day)
    tables = query.tables(on_day=on_day)
    kinds = sinks.unify_kinds_of_schemas(t.schema for t in tables)
    cols = query.columns
    if shape.split_by is not None:
        groups: dict[str | None, list[pa.Table]] = {}
        for t in tables:
            if "event" not in t.column_names:
                continue
            for name, part in _split_table(t):
                groups.setdefault(name, []).append(part)
        tables.clear()
        out: dict[str | None, pa.Table] = {}
        for name, parts in groups.items():
            order = sinks.column_order(p.schema for p in parts)
            if cols is not None:
                order = [c for c in cols if c in order]
            one = pa.concat_tables([sinks.conform_table(p, kinds, order) for p in parts])
            out[name] = _dedupe(one) if query.dedupe else one
        return out
    if cols is not None:  # the named columns, no map
        return query.read(on_day=on_day)
    rows, fill = table_fill(tables)
    kept = kept_columns(
        sinks.column_order(t.schema for t in tables), rows, fill, shape.threshold, keep_keys, query
    )
    parts = [with_map(t, kinds, kept) for t in tables]
    tables.clear()
    schema = map_schema(kinds, kept)
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    return _dedupe(table) if query.dedupe else table
