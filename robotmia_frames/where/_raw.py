"""Evaluating on raw values, where a table has lost the type of a value.

The type policy folds a column that holds values of several types (``5`` and
``"5"``) into text, keeping strings as they are and writing other values as their
JSON text. Both cells then read ``"5"``: no table can tell the string from the
number any more, while the language can (a string is never a number). So:

- :func:`folded_columns` names the columns of a schema that an expression reads
  through such a fold (a bare ``defined(...)`` does not count: a fold keeps nulls);
- :func:`row_mask` evaluates the expression on the raw JSON objects (or lines) of
  a source, one boolean per record in order, exactly as the export's server-side
  filter does.
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Iterable, Mapping
from typing import Final, TypeAlias

import numpy as np
import orjson
import pyarrow as pa

from ..parse import KIND_METADATA_KEY
from ._ast import Call, Expr, Index, Property, walk
from ._evaluate import evaluate
from ._parser import parse_where

__all__ = ["Mask", "folded_columns", "is_text_field", "row_mask"]

#: One boolean per row.
Mask: TypeAlias = "np.ndarray[tuple[int], np.dtype[np.bool_]]"
#: A raw record: a JSON line (bytes or text) or the object it decodes to.
RawRecord: TypeAlias = "bytes | bytearray | memoryview | str | Mapping[str, object]"

_TEXT: Final = b"text"


def is_text_field(f: pa.Field) -> bool:
    """Whether ``f`` is a column the type policy folded to JSON text (mixed types).

    Example:
        >>> is_text_field(pa.field("x", pa.string(), metadata={KIND_METADATA_KEY: b"text"}))
        True
        >>> is_text_field(pa.field("x", pa.string()))
        False
    """
    return bool(f.metadata) and f.metadata.get(KIND_METADATA_KEY) == _TEXT


def folded_columns(where: str | Expr, schema: pa.Schema, *, objects: bool = True) -> list[str]:
    """The columns of ``schema`` folded to text that ``where`` reads a value of.

    Such a column stores ``5`` and ``"5"`` alike, so a filter on the table cannot
    tell them apart; :func:`row_mask` on the raw records can. Objects are stored
    as text too: ``objects=False`` leaves out the columns ``where`` only indexes
    into (``properties["cart"]["currency"]``), which read back as the objects they
    were unless a string spelled an object.

    Example:
        >>> text = pa.field("properties.n", pa.string(), metadata={KIND_METADATA_KEY: b"text"})
        >>> schema = pa.schema([text, pa.field("properties.m", pa.int64())])
        >>> folded_columns('properties["n"] == "5" or properties["m"] > 1', schema)
        ['properties.n']
        >>> folded_columns('defined(properties["n"])', schema)
        []
        >>> folded_columns('properties["n"]["k"] == 1', schema, objects=False)
        []
    """
    node = parse_where(where) if isinstance(where, str) else where
    skip = {
        id(n.args[0])
        for n in walk(node)
        if isinstance(n, Call) and n.name == "defined" and isinstance(n.args[0], Property)
    }
    if not objects:
        skip.update(id(n.target) for n in walk(node) if isinstance(n, Index))
    out: set[str] = set()
    for n in walk(node):
        if not isinstance(n, Property) or id(n) in skip:
            continue
        if n.source == "properties" and n.name != "time":
            name = "properties." + n.name
            if name in schema.names and is_text_field(schema.field(name)):
                out.add(name)
    return sorted(out)


def row_mask(
    where: str | Expr,
    records: Iterable[RawRecord],
    *,
    project_timezone: str = "UTC",
    now: float | None = None,
) -> Mask:
    """Which of ``records`` the export keeps, in order: the server-side filter's answer.

    A record is an export line (bytes or text, decoded as JSON) or the JSON object
    it decodes to. A line that is not a JSON object is not kept.
    ``properties.time`` is project-local seconds, as in the export; ``now`` fixes
    ``NOW`` for every record (default: the current time).

    Example:
        >>> lines = [b'{"event":"a","properties":{"n":5}}', b'{"event":"a","properties":{"n":"5"}}']
        >>> row_mask('properties["n"] == "5"', lines).tolist()
        [False, True]
        >>> row_mask('properties["n"] > 4', lines).tolist()
        [True, False]
    """
    node = parse_where(where) if isinstance(where, str) else where
    fixed = _time.time() if now is None else float(now)
    out: list[bool] = []
    for record in records:
        try:
            obj = record if isinstance(record, Mapping) else _loads(record)
            keep = isinstance(obj, Mapping) and (
                evaluate(node, obj, project_timezone=project_timezone, now=fixed) is True
            )
        except (ValueError, RecursionError):  # not JSON; nested past Python's stack
            keep = False
        out.append(keep)
    return np.array(out, dtype=bool)


def _loads(line: bytes | bytearray | memoryview | str) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # integers past 64 bits, lone surrogates
        return json.loads(line if isinstance(line, (bytes, str)) else bytes(line))
