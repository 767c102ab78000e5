"""Pinned column types (``dtype=``): the caller's type for a column, and what happens
to the values that do not fit it (``on_type_mismatch``).

The type policy (``typepolicy``) decides a column's type from its values; a pinned
type overrides it. A value fits when it converts exactly: ``3``, ``"3"`` and
``3.0`` fit ``int64``, ``9.5`` and ``"n/a"`` do not; any number fits ``float64``;
``true``/``false`` fit ``bool``; everything fits ``string``. Then:

- ``"text"``: if any value does not fit, the column keeps the policy's type (text),
  as without ``dtype=``;
- ``"null"``: a value that does not fit becomes null, and its original text goes
  to a ``<column>__raw`` string column next to it, so nothing is lost;
- ``"error"``: a value that does not fit is an error naming the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TypeMismatchError
from .typepolicy import BOOL, FLOAT, INT, STR, Kind, json_text

__all__ = [
    "PINNABLE",
    "RAW_SUFFIX",
    "OnTypeMismatch",
    "PinReport",
    "pin_types",
]

OnTypeMismatch = Literal["text", "null", "error"]
RAW_SUFFIX = "__raw"

#: The types a column can be pinned to, with their kinds in the type policy.
PINNABLE: dict[pa.DataType, Kind] = {
    pa.int64(): INT,
    pa.float64(): FLOAT,
    pa.bool_(): BOOL,
    pa.string(): STR,
}


def type_name(target: pa.DataType) -> str:
    """The name of a pinnable type as users write it (``float64``, not ``double``)."""
    return {pa.float64(): "float64", pa.bool_(): "bool"}.get(target, str(target))


_INT_TEXT = r"^-?(?:0|[1-9][0-9]*)(?:\.0*)?$"
_NUMBER_TEXT = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_EXAMPLES = 3


@dataclass
class PinReport:
    """What pinning did: per column, the values that did not fit and a few of them."""

    mismatches: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept_text: list[str] = field(default_factory=list)

    def add(self, other: PinReport) -> None:
        """Count ``other``'s misfits too (a later part of the same data): counts add up,
        the first examples are kept."""
        for name, n in other.mismatches.items():
            self.mismatches[name] = self.mismatches.get(name, 0) + n
            seen = self.examples.setdefault(name, [])
            seen.extend(e for e in other.examples.get(name, []) if e not in seen)
            del seen[_EXAMPLES:]
        self.kept_text.extend(n for n in other.kept_text if n not in self.kept_text)

    def describe(self, column: str, target: pa.DataType) -> str:
        n = self.mismatches[column]
        eg = ", ".join(repr(e) for e in self.examples.get(column, []))
        verb = "value does" if n == 1 else "values do"
        return f"{column}: {n:,} {verb} not fit {type_name(target)} (e.g. {eg})"


def _fits(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """Per value: does it convert exactly? (None: every value does.)"""
    src = col.type
    if pa.types.is_null(src) or src == target or pa.types.is_string(target):
        return None
    if pa.types.is_string(src) or pa.types.is_large_string(src):
        if target == pa.int64():
            return pc.match_substring_regex(col, _INT_TEXT)
        if target == pa.float64():
            return pc.match_substring_regex(col, _NUMBER_TEXT)
        if target == pa.bool_():
            return pc.is_in(col, pa.array(["true", "false"]))
    if pa.types.is_floating(src) and target == pa.int64():
        whole = pc.equal(col, pc.floor(col))
        return pc.and_(whole, pc.less(pc.abs(col), 2.0**63))
    if pa.types.is_integer(src) and target == pa.float64():
        return None
    if pa.types.is_nested(src) or pa.types.is_boolean(src) != pa.types.is_boolean(target):
        return pc.is_null(col)  # a bool is not a number, a number not a bool
    return None


def _convert(
    col: pa.ChunkedArray, fits: pa.ChunkedArray | None, target: pa.DataType
) -> tuple[pa.ChunkedArray | pa.Array, pa.ChunkedArray | pa.Array | None]:
    """The values that fit, converted (the others null), and the final ``fits``."""
    kept = col if fits is None else pc.if_else(fits, col, pa.scalar(None, col.type))
    try:
        if target == pa.bool_() and pa.types.is_string(kept.type):
            return pc.equal(kept, "true"), fits
        if target == pa.int64() and pa.types.is_string(kept.type):
            kept = pc.replace_substring_regex(kept, r"\.0*$", "")
        return pc.cast(kept, target, safe=True), fits
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # an int beyond int64, a list: value by value
    out: list[object] = []
    ok: list[bool] = []
    for v in kept.to_pylist():
        try:
            out.append(None if v is None else pa.scalar(v).cast(target).as_py())
            ok.append(True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
            out.append(None)
            ok.append(False)
    fitted = pa.array(ok, pa.bool_())
    return pa.array(out, target), fitted if fits is None else pc.and_(fits, fitted)


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """The values as text: strings as they are, the others as their JSON text."""
    if pa.types.is_string(col.type):
        return col
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else json_text(v) for v in col.to_pylist()], pa.string())


def pin_types(
    table: pa.Table,
    dtypes: Mapping[str, pa.DataType],
    on_type_mismatch: OnTypeMismatch = "text",
    *,
    source: str = "the data",
) -> tuple[pa.Table, PinReport]:
    """Give the columns of ``dtypes`` their pinned types (see the module docs).

    Columns the table lacks are left out; ``event`` and ``time`` are never pinned.

    Example:
        >>> t = pa.table({"properties.p": ["1.5", "n/a", None]})
        >>> out, report = pin_types(t, {"properties.p": pa.float64()}, "null")
        >>> out.to_pydict()
        {'properties.p': [1.5, None, None], 'properties.p__raw': [None, 'n/a', None]}
        >>> report.mismatches
        {'properties.p': 1}
    """
    report = PinReport()
    for name, target in dtypes.items():
        if name not in table.column_names:
            continue
        i = table.schema.get_field_index(name)
        col = table.column(i)
        converted, fits = _convert(col, _fits(col, target), target)
        bad = (
            None if fits is None else pc.and_(col.is_valid(), pc.invert(pc.fill_null(fits, False)))
        )
        count = 0 if bad is None else pc.sum(bad).as_py() or 0
        if count:
            assert bad is not None
            raw = _text(col)
            report.mismatches[name] = count
            report.examples[name] = [
                str(v) for v in pc.unique(raw.filter(bad)).slice(0, _EXAMPLES).to_pylist()
            ]
            if on_type_mismatch == "error":
                raise TypeMismatchError(
                    f"{report.describe(name, target)} in {source}; pass "
                    "on_type_mismatch='null' to keep them aside, or 'text' for the "
                    "column's text",
                    column=name,
                )
            if on_type_mismatch == "text":
                report.kept_text.append(name)
                continue
            raw_values = pc.if_else(bad, raw, pa.scalar(None, pa.string()))
            at = table.schema.get_field_index(name + RAW_SUFFIX)
            if at >= 0:  # the column is there already (a dataset's, or a property)
                raw_values = _into_raw(table.column(at), raw_values)
                if raw_values is None:
                    raise TypeMismatchError(
                        f"{report.describe(name, target)} in {source}, and the column for "
                        f"their original text, {name + RAW_SUFFIX}, is already a property "
                        "of the data; pass "
                        "on_type_mismatch='text' (the column's text) or 'error' for this "
                        "column",
                        column=name,
                    )
        table = table.set_column(i, pa.field(name, target), converted)
        if count:
            field = pa.field(name + RAW_SUFFIX, pa.string())
            at = table.schema.get_field_index(field.name)
            if at >= 0:
                table = table.set_column(at, field, raw_values)
            else:
                table = table.add_column(i + 1, field, raw_values)
    return table, report


def _into_raw(
    existing: pa.ChunkedArray, raw: pa.ChunkedArray | pa.Array
) -> pa.ChunkedArray | pa.Array | None:
    """``raw`` (the misfits' text) as the ``<column>__raw`` column the table has
    already: a dataset's own, all null in a day parsed afresh (a sync rewriting a
    day). None if that column holds any value: a property of that name, which
    would be mixed with the misfits."""
    return raw if existing.null_count == len(existing) else None
