"""The JSON-to-Arrow type policy, as data.

This table is the code twin of the "Types" list in ``docs/type-policy.md``; keep
them in step.

=========================  ==============================================
values seen in a column    column type
=========================  ==============================================
only ints (int64 range)    ``int64``
ints and floats            ``float64``
only bools                 ``bool``
only strings               ``string``
lists                      ``list<unified element type>``
JSON objects               ``string`` (their compact JSON text)
an int outside int64       ``string`` (exact decimal text)
a number beyond float64    ``string`` (its exact source text)
any other mix              ``string``: strings kept, others as JSON text
only nulls / never set     ``null``
=========================  ==============================================

A JSON ``null`` is null in every column type. List elements unify by the same rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "KIND_METADATA_KEY",
    "NULL",
    "STR",
    "TEXT",
    "JsonNumber",
    "Kind",
    "arrow_field",
    "arrow_type",
    "json_text",
    "kind_of",
    "kind_of_arrow_type",
    "kind_of_field",
    "list_of",
    "unify",
    "unify_into",
    "widen_array",
]

# orjson and Python print some floats differently ("1e-7" / "1e-07", and
# "0.00006103515625" / "6.103515625e-05"): any float in the text, or anything
# that looks like one, takes the json.dumps path.
_EXPONENT = re.compile(rb"[0-9][.eE]")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Kind:
    """The inferred kind of a column (or of list elements).

    ``name`` is one of ``null bool int float str text list``; ``text`` means a string
    column whose non-string values are stored as their JSON text. ``item`` is the
    element kind of a ``list``.
    """

    name: str
    item: Kind | None = None
    #: worked out once: kinds are hashed for every column of every batch
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.name, self.item)))

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"list<{self.item!r}>" if self.item is not None else self.name

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Kinds are interned and compared with ``is``: unpickle to the same objects
        # (batches parsed in worker processes come back through pickle).
        if self.item is not None:
            return (list_of, (self.item,))
        return (_scalar_kind, (self.name,))


def _scalar_kind(name: str) -> Kind:
    return _SCALARS[name]


NULL = Kind("null")
BOOL = Kind("bool")
INT = Kind("int")
FLOAT = Kind("float")
STR = Kind("str")
TEXT = Kind("text")
_SCALARS = {k.name: k for k in (NULL, BOOL, INT, FLOAT, STR, TEXT)}

_LISTS: dict[Kind, Kind] = {}


def list_of(item: Kind) -> Kind:
    """The (interned) list kind with element kind ``item``."""
    k = _LISTS.get(item)
    if k is None:
        k = _LISTS[item] = Kind("list", item)
    return k


# Pairs of distinct scalar kinds that do not fall back to TEXT.
_WIDEN: dict[frozenset[Kind], Kind] = {
    frozenset((INT, FLOAT)): FLOAT,
}

_ARROW: dict[Kind, pa.DataType] = {
    NULL: pa.null(),
    BOOL: pa.bool_(),
    INT: pa.int64(),
    FLOAT: pa.float64(),
    STR: pa.string(),
    TEXT: pa.string(),
}

_unify_cache: dict[tuple[Kind, Kind], Kind] = {}


def unify(a: Kind | None, b: Kind) -> Kind:
    """The kind of a column that holds values of kinds ``a`` and ``b``.

    Example:
        >>> unify(INT, FLOAT), unify(INT, STR), unify(list_of(INT), list_of(STR))
        (float, text, list<text>)
    """
    if a is None or a is b:
        return b
    key = (a, b)
    out = _unify_cache.get(key)
    if out is not None:
        return out
    if a is NULL:
        out = b
    elif b is NULL:
        out = a
    elif a.name == "list" and b.name == "list":
        assert a.item is not None and b.item is not None
        out = list_of(unify(a.item, b.item))
    elif {a, b} <= {STR, TEXT}:
        out = TEXT
    else:
        out = _WIDEN.get(frozenset((a, b)), TEXT)
    _unify_cache[key] = out
    return out


_SCALAR_KINDS: dict[type, Kind] = {
    type(None): NULL,
    bool: BOOL,
    float: FLOAT,
    str: STR,
    dict: TEXT,
}


def unify_into(kinds: dict[str, Kind], more: Iterable[tuple[str, Kind]]) -> dict[str, Kind]:
    """Fold ``(name, kind)`` pairs into ``kinds`` by :func:`unify`, in order.

    The one loop that merges column kinds (of batches, day windows, dataset files,
    profile pages): a name seen first goes last, so column order is first
    appearance. Returns ``kinds``.

    Example:
        >>> unify_into({"a": INT}, [("a", FLOAT), ("b", STR)])
        {'a': float, 'b': str}
    """
    for key, kind in more:
        old = kinds.get(key)
        if old is not kind:
            kinds[key] = unify(old, kind)
    return kinds


def kind_of(value: Any) -> Kind:
    """The kind of one parsed JSON value.

    Example:
        >>> kind_of([1, 2.5]), kind_of(2**70), kind_of({"a": 1})
        (list<float>, text, text)
    """
    t = type(value)
    if t is int:
        return INT if INT64_MIN <= value <= INT64_MAX else TEXT
    if t is list:
        item = NULL
        for v in value:
            item = unify(item, kind_of(v))
        return list_of(item)
    k = _SCALAR_KINDS.get(t)
    return TEXT if k is None else k


def arrow_type(kind: Kind) -> pa.DataType:
    """The Arrow type of a column of ``kind``.

    Example:
        >>> arrow_type(list_of(INT))
        ListType(list<item: int64>)
    """
    out = _ARROW.get(kind)
    if out is None:  # a list kind: its type is kept, as the kind is interned
        assert kind.item is not None
        out = _ARROW[kind] = pa.list_(arrow_type(kind.item))
    return out


#: Field metadata key marking a string column (or list-of-strings column) whose
#: strings are folded JSON text (kind ``text``): the Arrow type alone cannot tell
#: ``"3"`` the string from ``3`` stored as its text.
KIND_METADATA_KEY = b"robotmia_frames.kind"
_TEXT_MARK = {KIND_METADATA_KEY: b"text"}


def _has_text(kind: Kind) -> bool:
    while kind.item is not None:
        kind = kind.item
    return kind is TEXT


def arrow_field(name: str, kind: Kind) -> pa.Field:
    """The Arrow field of a column of ``kind``; folded-text columns carry a marker.

    Example:
        >>> arrow_field("x", TEXT).metadata
        {b'robotmia_frames.kind': b'text'}
        >>> kind_of_field(arrow_field("x", list_of(TEXT)))
        list<text>
    """
    return pa.field(name, arrow_type(kind), metadata=_TEXT_MARK if _has_text(kind) else None)


def kind_of_field(f: pa.Field) -> Kind:
    """The kind of a field written by this library, folded-text marker included."""
    kind = kind_of_arrow_type(f.type)
    if f.metadata and f.metadata.get(KIND_METADATA_KEY) == b"text":
        return _texted(kind)
    return kind


def _texted(kind: Kind) -> Kind:
    if kind.item is not None:
        return list_of(_texted(kind.item))
    return TEXT if kind in (STR, TEXT) else kind


def kind_of_arrow_type(t: pa.DataType) -> Kind:
    """The kind of an Arrow column written by this library (for reading datasets back).

    Example:
        >>> import pyarrow as pa
        >>> kind_of_arrow_type(pa.list_(pa.int64()))
        list<int>
    """
    if pa.types.is_null(t):
        return NULL
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_floating(t):
        return FLOAT
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return STR
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return list_of(kind_of_arrow_type(t.value_type))
    return TEXT


class JsonNumber:
    """A JSON number that no float64 can hold (``1e400`` overflows to infinity),
    kept as its exact source text.

    The decoder gives one instead of ``inf``; its kind is ``text`` (like an integer
    outside int64) and :func:`json_text` writes the source text back unchanged.

    Example:
        >>> json_text({"x": JsonNumber("1e400")}), kind_of(JsonNumber("-1E999"))
        ('{"x":1e400}', text)
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JsonNumber({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is JsonNumber and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def json_text(value: Any) -> str:
    """Compact JSON text of a parsed value: keys in source order, non-ASCII kept.

    Floats use Python's shortest round-trip form (``repr``), so ``json.loads`` of the
    text gives the value back; a :class:`JsonNumber` (a number beyond float64)
    keeps its source text. Any depth of nesting is written.

    Example:
        >>> json_text({"a": [1, 2.5, True, None], "é": "x"})
        '{"a":[1,2.5,true,null],"é":"x"}'
    """
    t = type(value)
    if t is str:
        return json.dumps(value, ensure_ascii=False)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float or t is JsonNumber:
        return _scalar_text(value)
    try:  # orjson is ~8x faster, and identical but for floats and huge ints
        out = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # a JsonNumber, or nested over 255 deep
        out = None
    if out is not None and _EXPONENT.search(out) is None:
        return out.decode()
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return _dumps(value)


def _scalar_text(value: Any) -> str:
    t = type(value)
    if t is str:
        return json.dumps(value, ensure_ascii=False)
    if t is JsonNumber:
        return str(value.text)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return json.dumps(value)
    raise TypeError(f"not a parsed JSON value: {type(value).__name__}")


def _dumps(value: Any) -> str:
    """:func:`json_text` without recursion (for JsonNumber values and deep nesting)."""
    parts: list[str] = []
    stack: list[tuple[Any, str]] = []  # (iterator of (key, value), closing bracket)
    item: tuple[str | None, Any] | None = (None, value)
    first = True
    while True:
        if item is not None:
            key, v = item
            if not first:
                parts.append(",")
            if key is not None:
                parts.append(json.dumps(key, ensure_ascii=False) + ":")
            t = type(v)
            if t is dict:
                parts.append("{")
                stack.append((iter(v.items()), "}"))
                first = True
            elif t is list:
                parts.append("[")
                stack.append((((None, x) for x in v), "]"))
                first = True
            else:
                parts.append(_scalar_text(v))
                first = False
        if not stack:
            break
        it, closer = stack[-1]
        item = next(it, None)
        if item is None:
            parts.append(closer)
            stack.pop()
            first = False
            if not stack:
                break
    return "".join(parts)


def _as_policy_values(value: Any, kind: Kind) -> Any:
    """Re-shape a Python value read back from Arrow to fit ``kind`` (text/list)."""
    if value is None:
        return None
    if kind is TEXT or kind is STR:
        return value if type(value) is str else json_text(value)
    if kind.item is not None and type(value) is list:
        return [_as_policy_values(v, kind.item) for v in value]
    return value


def widen_array(array: pa.Array | pa.ChunkedArray, kind: Kind) -> pa.Array | pa.ChunkedArray:
    """Cast an array written under a narrower kind to ``kind``, by the type policy.

    Ints become floats by a plain cast; anything becoming text uses its JSON text
    (``3`` -> ``"3"``, ``true`` -> ``"true"``, floats in Python's shortest form).
    """
    target = arrow_type(kind)
    if array.type == target:
        return array
    src = kind_of_arrow_type(array.type)
    if src is NULL:
        return pa.nulls(len(array), type=target)
    if (src is INT and kind is FLOAT) or (src.item is not None and _numeric_list(src, kind)):
        return array.cast(target, safe=False)  # int64 -> float64 rounds, by the policy
    if src is INT and kind in (STR, TEXT):
        return array.cast(pa.int64()).cast(pa.string())
    if src is FLOAT and kind in (STR, TEXT) and isinstance(array, pa.Array):
        return float_texts(array)
    if src is BOOL and kind in (STR, TEXT):
        return pc.if_else(array, "true", "false")
    return pa.array([_as_policy_values(v, kind) for v in array.to_pylist()], type=target)


def float_texts(array: pa.Array) -> pa.Array:
    """:func:`json_text` of every float in a float64 array, mostly vectorised.

    Arrow's cast gives the same shortest digits as ``repr`` wherever it writes a
    plain decimal; those only lack ``repr``'s ``.0`` on whole numbers. Values
    Arrow writes otherwise (exponents, below 1e-4, not finite) are done one by one.

    Example:
        >>> float_texts(pa.array([1.0, 0.5, 1e-05, None])).to_pylist()
        ['1.0', '0.5', '1e-05', None]
    """
    text = pc.cast(array, pa.string())
    plain = pc.and_(
        pc.invert(pc.match_substring(text, "e")),
        pc.or_(pc.greater_equal(pc.abs(array), 1e-4), pc.equal(array, 0)),
    )
    plain = pc.and_(plain, pc.is_finite(array))
    fixed = pc.if_else(
        pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, ".0", "")
    )
    odd = pc.and_(pc.invert(plain), pc.is_valid(array))
    if not pc.any(odd).as_py():
        return fixed
    out = fixed.to_pylist()
    values = array.to_pylist()
    for i in np.flatnonzero(odd.to_numpy(zero_copy_only=False)).tolist():
        out[i] = json_text(values[i])
    return pa.array(out, type=pa.string())


def _numeric_list(src: Kind, dst: Kind) -> bool:
    while src.item is not None and dst.item is not None:
        src, dst = src.item, dst.item
    return (src is dst) or (src is INT and dst is FLOAT) or src is NULL
