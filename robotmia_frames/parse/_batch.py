"""One parsed chunk: :class:`RawBatch` of :class:`RawColumn` s, typed per chunk."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import _decode as parse
from . import typepolicy as tp
from .typepolicy import Kind, arrow_type, json_text, kind_of, list_of, unify

_BIG = float(2**63)
BIG_EXPONENT = re.compile(r"e\+(?:1[89]|[2-9]\d|\d{3})")
_NONE = type(None)
_PURE = frozenset((tp.NULL, tp.BOOL, tp.INT, tp.FLOAT, tp.STR))
_SCALAR_TYPES: dict[frozenset[type], Kind] = {
    frozenset((int,)): tp.INT,
    frozenset((float,)): tp.FLOAT,
    frozenset((int, float)): tp.FLOAT,
    frozenset((bool,)): tp.BOOL,
    frozenset((str,)): tp.STR,
    frozenset((dict,)): tp.TEXT,
}


# ---------------------------------------------------------------------- batches

#: Parsed chunks lay every key they meet out over all their rows; when fewer than
#: this share of those cells (rows x property columns) hold a value, the chunks
#: hold mostly nulls (a wide export: thousands of keys, a few dozen per event).
SPARSE_FILL = 0.125


def mostly_empty(cells: int, filled: int) -> bool:
    """Whether ``filled`` of ``cells`` (rows x property columns) is under
    :data:`SPARSE_FILL`.

    Example:
        >>> mostly_empty(2000 * 100, 32 * 100), mostly_empty(200 * 100, 32 * 100)
        (True, False)
    """
    return filled < SPARSE_FILL * cells


@dataclass
class Hold:
    """What a parse holds of a body, against ``limit`` bytes: past it, when the
    cells held are :func:`mostly_empty` (a wide export), the parse lets go of them
    and parses the body again when it is taken (:attr:`over`). No ``limit``: only
    counted.

    Example:
        >>> h = Hold(100)
        >>> h.add(80, cells=1000, filled=10), h.add(80, cells=1000, filled=10)
        (False, True)
    """

    limit: int | None
    nbytes: int = 0
    cells: int = 0  # rows x property columns held ...
    filled: int = 0  # ... and those with a value

    def add(self, nbytes: int, cells: int = 0, filled: int = 0) -> bool:
        """Count one more chunk held: whether the hold is now :attr:`over`."""
        self.nbytes += nbytes
        self.cells += cells
        self.filled += filled
        return self.over

    @property
    def over(self) -> bool:
        """Past ``limit`` bytes, and mostly nulls."""
        return (
            self.limit is not None
            and self.nbytes > self.limit
            and mostly_empty(self.cells, self.filled)
        )


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
    #: When set, the column is *compact*: ``array`` (and ``text``) hold only the
    #: values at these batch rows (int32, ascending); every other row is null.
    rows: pa.Array | None = None

    @property
    def filled(self) -> int:
        """How many rows of its batch the column holds a value in."""
        return int(len(self.array) - self.array.null_count)

    @property
    def nbytes(self) -> int:
        """The memory the column holds (the parts of its Arrow buffers it spans: the
        slices of one array, the parts of a batch split by event, add up to it)."""
        size = self.array.nbytes
        return int(size if self.text is None else size + self.text.nbytes)

    def dense(self, n: int) -> RawColumn:
        """The column laid out over all ``n`` rows of its batch."""
        if self.rows is None:
            return self
        if len(self.rows) == n:  # a value at every row (rows are ascending, distinct)
            return RawColumn(self.array, self.kind, self.exact, self.text)
        rows = self.rows.to_numpy()
        text = None if self.text is None else _scatter(self.text, rows, n)
        return RawColumn(_scatter(self.array, rows, n), self.kind, self.exact, text)


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
    #: When set, the batch holds only these rows (int32, ascending) of the rows
    #: parsed from its lines (a part of a chunk: one event's rows of it).
    rows: pa.Array | None = None
    #: The bytes of its file, as stored (compressed for gzip), read by the time this
    #: batch was handed on, and the file's size (0 and 0: not from a file): how
    #: much of the input a read has seen (the memory budget projects from it).
    read_to: int = 0
    file_size: int = 0

    @property
    def filled(self) -> int:
        """How many cells (rows x property columns) hold a value."""
        return sum(c.filled for c in self.columns.values())

    @property
    def nbytes(self) -> int:
        """The memory the batch holds (the parts of its Arrow buffers it spans)."""
        size = self.event.nbytes + self.time.nbytes
        return int(size) + sum(col.nbytes for col in self.columns.values())


def _classify(values: Sequence[Any]) -> tuple[Kind, bool]:
    """Kind of a column's values (and whether list widening stays exact)."""
    types = set(map(type, values))
    types.discard(_NONE)
    if not types:
        return tp.NULL, True
    kind = _SCALAR_TYPES.get(frozenset(types))
    if kind is not None:
        # Ints read as floats cannot be spelled back as ints if the column later
        # becomes text ("0", not "0.0"): such a batch is rebuilt in that case.
        return kind, not (kind is tp.FLOAT and int in types)
    if types == {list}:
        elems = set(map(type, itertools.chain.from_iterable(v for v in values if v is not None)))
        elems.discard(_NONE)
        if not elems:
            return list_of(tp.NULL), True
        item = _SCALAR_TYPES.get(frozenset(elems))
        if item is not None and item is not tp.TEXT:
            return list_of(item), len(elems) == 1
        k: Kind = tp.NULL
        for v in values:
            if v is not None:
                k = unify(k, kind_of(v))
        return k, False
    return tp.TEXT, True


def as_text(values: Sequence[Any]) -> list[Any]:
    return [v if v is None or type(v) is str else json_text(v) for v in values]


def _array(values: Sequence[Any], kind: Kind) -> tuple[pa.Array, Kind]:
    """The Arrow array of ``values`` for ``kind`` (which may turn out to be TEXT)."""
    if kind is tp.NULL:
        return pa.nulls(len(values)), tp.NULL
    if kind is tp.TEXT:
        return pa.array(as_text(values), type=pa.string()), tp.TEXT
    if kind is tp.INT:
        try:
            return pa.array(values, type=pa.int64()), tp.INT
        except (OverflowError, pa.ArrowInvalid):  # an int beyond int64: exact text
            return pa.array(as_text(values), type=pa.string()), tp.TEXT
    if kind.item is not None and kind.item not in _PURE:
        return parse.values_array(kind, list(values)), kind
    try:
        return pa.array(values, type=arrow_type(kind)), kind
    except (OverflowError, pa.ArrowInvalid):
        # Ints beyond int64 (text) or beyond 2**53 (floats Arrow will not convert):
        # type the values one by one, as the reference builder does.
        k: Kind = tp.NULL
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
    if kind is tp.FLOAT:
        biggest = pc.max(pc.abs(array)).as_py()
        return biggest is not None and biggest >= _BIG
    if kind is tp.TEXT:
        return bool(pc.any(pc.match_substring_regex(array, BIG_EXPONENT.pattern)).as_py())
    return False


def _scatter(array: pa.Array, rows: Sequence[int] | np.ndarray, n: int) -> pa.Array:
    """Place ``array[i]`` at row ``rows[i]`` of an ``n``-row array (nulls elsewhere)."""
    idx = np.full(n, -1, dtype=np.int64)
    idx[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows), dtype=np.int64)
    return array.take(pa.array(idx, mask=idx < 0))


def values_column(
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
    if kind is tp.FLOAT and not is_exact:  # ints and floats: keep the ints' spelling
        text, is_exact = pa.array(as_text(values), type=pa.string()), True
    if not ordered or len(rows) != n:
        array = _scatter(array, rows, n)
        text = None if text is None else _scatter(text, rows, n)
    return RawColumn(array, kind, is_exact, text)
