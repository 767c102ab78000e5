"""Compile ``where`` expressions to :mod:`pyarrow.compute`.

The table contract: ``time`` is a UTC timestamp (``properties["time"]`` and
``event["$time"]`` are read back as project-local seconds), ``properties.<key>``
columns are typed by the type policy, a null cell is an undefined property.

Every node gets a static type from the schema (number, string, boolean, datetime,
list of T, undefined) and compiles in one of three tiers, decided per top-level
``and`` operand (*conjunct*):

1. **expression**: a :class:`pyarrow.compute.Expression`, pushed down into Parquet
   scans (row-group statistics included). Comparisons of ``time`` with constants
   become ranges of the UTC ``time`` column, in every timezone.
2. **array**: vectorised over materialised arrays, only on the rows the pushed
   part kept: list membership and ``any`` (flattened lists, grouped back by
   parent index), ``%`` (C ``fmod``), ``string(number)``, ``datetime(string)``
   (computed once per distinct value), ``properties["time"]`` as a number outside
   UTC. A column folded to text by the type policy (mixed types) is decoded
   vectorised into number / boolean / string groups, and each group is compiled
   with that static type.
3. **rows**: the reference evaluator on event dicts rebuilt from the surviving
   rows (only their referenced columns), for what nothing vectorises: lists or
   objects inside folded-text columns, ``any`` over lists holding nulls, list
   equality, object indexing, ``string(x, d)`` mixing types.

The data cannot tell a JSON null from a missing key (both are null), so a null
cell is undefined; nor a project-local time inside a daylight-saving gap from the
hour after it (the time stage maps both to one instant).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidArgumentError
from ..timeconv import resolve_timezone
from ._ast import (
    AnyExpr,
    Arith,
    BoolOp,
    Call,
    Compare,
    Expr,
    Index,
    ListExpr,
    Literal,
    Negate,
    Not,
    Now,
    Property,
    Variable,
    columns_of,
    walk,
)
from ._evaluate import Env, evaluate, evaluate_node, to_datetime, values_equal
from ._parser import format_where, parse_where
from ._raw import Mask, is_text_field
from ._values import (
    ASCII_LOWER,
    DECIMAL_PATTERN,
    JSON_NUMBER_PATTERN,
    MAX_SECONDS,
    UNDEFINED,
    DateTime,
    Value,
    decode_text,
    format_datetime,
    format_number,
    parse_datetime_text,
)

__all__ = ["Compiled", "compile_where", "filter_table"]

#: What a compiled node computes: an expression to push down (expression mode), or
#: arrays and scalars over the rows that survived it (array mode).
Datum: TypeAlias = "pc.Expression | pa.Array | pa.ChunkedArray | pa.Scalar"
#: The decoded type of each row of a folded-text column (``_T_*``).
Tags: TypeAlias = "np.ndarray[tuple[int], np.dtype[np.int8]]"
#: Floats as numpy holds them.
Floats: TypeAlias = "np.ndarray[tuple[int], np.dtype[np.float64]]"

TIME_TYPE: Final = pa.timestamp("us", tz="UTC")
_US = 1_000_000
_F64 = pa.float64()
_BOOL = pa.bool_()
_STR = pa.string()
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
# Local microseconds whose offset we can ask zoneinfo about (two days of slack).
_K_MIN = (_dt.datetime(1, 1, 3) - _EPOCH) // _dt.timedelta(microseconds=1)
_K_MAX = (_dt.datetime(9999, 12, 29) - _EPOCH) // _dt.timedelta(microseconds=1)
_FAR = 2**62
_MAX_CONST_LIST = 256
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu",
                        "Etc/Zulu", "GMT", "Etc/GMT", "Etc/GMT0", "GMT0", "Etc/Greenwich"})  # fmt: skip


class _Unsupported(Exception):
    """The construct needs the next tier (arrays, then rows)."""


# ================================================================================ types


@dataclass(frozen=True)
class _Ty:
    kind: str  # num str bool dt undef null list rowlist obj
    item: _Ty | None = None


NUM = _Ty("num")
STR = _Ty("str")
BOOL = _Ty("bool")
DT = _Ty("dt")
UNDEF = _Ty("undef")
NULL = _Ty("null")
ROWLIST = _Ty("rowlist")
OBJ = _Ty("obj")
_SCALARS = (NUM, STR, BOOL)
_NOCONST: Final = object()


@dataclass(frozen=True)
class _V:
    """A compiled value: static type, datum (expression, array or scalar), constant."""

    ty: _Ty
    d: Datum | None = None
    const: Any = _NOCONST
    items: tuple[_V, ...] = ()
    tform: str | None = None  # "L": properties["time"]; "D": datetime of it

    @property
    def is_const(self) -> bool:
        return self.const is not _NOCONST


def _const(value: Value) -> _V:
    t = type(value)
    if t is float:
        return _V(NUM, const=value)
    if t is str:
        return _V(STR, const=value)
    if t is bool:
        return _V(BOOL, const=value)
    if t is DateTime:
        return _V(DT, const=value)
    if value is UNDEFINED:
        return _V(UNDEF, const=value)
    if value is None:
        return _V(NULL, const=value)
    if t is list:
        return _V(_Ty("list"), const=value)
    return _V(OBJ, const=value)


_TRUE = _const(True)
_FALSE = _const(False)
_UNDEF_V = _const(UNDEFINED)


def _arrow_ty(t: pa.DataType) -> _Ty | None:
    """The static type of an Arrow type (None: not vectorisable)."""
    if pa.types.is_null(t):
        return UNDEF
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return NUM
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return STR
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _arrow_ty(t.value_type)
        if inner is None:
            return None
        return _Ty("list", NULL if inner is UNDEF else inner)
    return None


# ============================================================================ contexts


class _Cx:
    """Compilation context: expression mode (no table) or array mode (a table)."""

    def __init__(
        self,
        schema: pa.Schema,
        tz: str,
        now: float,
        table: pa.Table | None = None,
        *,
        parent: _Cx | None = None,
        take: pa.Array | None = None,
        bindings: dict[str, _V] | None = None,
    ) -> None:
        self.schema = schema
        self.tz = tz
        self.now = now
        self.table = table
        self.parent = parent
        self.take = take
        self.bindings: dict[str, _V] = bindings or {}
        self.expr_mode = table is None and parent is None
        self._cols: dict[str, Datum] = {}
        self._local: Datum | None = None

    # -- datums -----------------------------------------------------------------------
    def need_arrays(self) -> None:
        if self.expr_mode:
            raise _Unsupported

    def scalar(self, value: Value, typ: pa.DataType) -> Datum:
        s = pa.scalar(value, typ)
        return pc.scalar(s) if self.expr_mode else s

    def null(self, typ: pa.DataType) -> Datum:
        return self.scalar(None, typ)

    def datum(self, v: _V) -> Datum:
        if not v.is_const:
            if v.d is None:
                raise _Unsupported
            return v.d
        c = v.const
        if v.ty is NUM:
            return self.scalar(c, _F64)
        if v.ty is STR:
            return self.scalar(c, _STR)
        if v.ty is BOOL:
            return self.scalar(c, _BOOL)
        if v.ty is DT:
            return self.scalar(c.seconds, _F64)
        if v.ty is UNDEF:
            return self.null(_F64)
        raise _Unsupported

    def cast(self, d: Datum, typ: pa.DataType) -> Datum:
        if isinstance(d, pc.Expression):
            return d.cast(typ, safe=False)
        return pc.cast(d, typ, safe=False)

    @property
    def n(self) -> int:
        if self.take is not None:
            return len(self.take)
        assert self.table is not None
        return int(self.table.num_rows)

    def column(self, name: str) -> Datum:
        if self.expr_mode:
            return pc.field(name)
        got = self._cols.get(name)
        if got is None:
            if self.parent is not None:
                got = self.parent.column(name).take(self.take)
            else:
                assert self.table is not None
                col = self.table.column(name)
                got = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            self._cols[name] = got
        return got

    def child(self, take: pa.Array, bindings: dict[str, _V]) -> _Cx:
        taken = {}
        for k, v in bindings.items():
            if v.ty is ROWLIST and not v.is_const:
                raise _Unsupported
            if isinstance(v.d, (pa.Array, pa.ChunkedArray)):
                taken[k] = replace(v, d=v.d.take(take))
            else:
                taken[k] = v
        return _Cx(self.schema, self.tz, self.now, parent=self, take=take, bindings=taken)

    def bind(self, name: str, v: _V) -> _Cx:
        cx = _Cx(
            self.schema,
            self.tz,
            self.now,
            self.table,
            parent=self.parent,
            take=self.take,
            bindings={**self.bindings, name: v},
        )
        cx._cols = self._cols
        return cx

    # -- time -------------------------------------------------------------------------
    def time_datum(self) -> Datum:
        col = self.column("time")
        t = self.schema.field("time").type
        if t == TIME_TYPE:
            return col
        return self.cast(col, TIME_TYPE)

    def local_us(self) -> Datum:
        """Project-local microseconds (int64) of ``time``."""
        utc = self.cast(self.time_datum(), pa.int64())
        if self.tz in _UTC_NAMES:
            return utc
        self.need_arrays()
        if self._local is None:
            self._local = _utc_to_local_us(utc, resolve_timezone(self.tz))
        return self._local


# =============================================================================== time


def _seconds_of_us(k: int) -> float:
    """Local seconds (float) of local microseconds, exactly as the kernels compute it."""
    return float(k // _US) + (k % _US) / 1e6


def _seconds_datum(us: Datum) -> Datum:
    frac = pc.modulo(us, 1_000_000)
    whole = pc.divide(pc.subtract(us, frac), 1_000_000)
    if isinstance(whole, pc.Expression):
        return pc.add(whole.cast(_F64), pc.divide(frac.cast(_F64), 1e6))
    return pc.add(pc.cast(whole, _F64), pc.divide(pc.cast(frac, _F64), 1e6))


def _instant_offset(tz: ZoneInfo, utc_second: int) -> int:
    s = min(max(utc_second, _K_MIN // _US), _K_MAX // _US)
    off = (_EPOCH_UTC + _dt.timedelta(seconds=s)).astimezone(tz).utcoffset()
    return 0 if off is None else off // _dt.timedelta(seconds=1)


def _fold0_offset(tz: ZoneInfo, local_second: int) -> int:
    s = min(max(local_second, _K_MIN // _US), _K_MAX // _US)
    off = (_EPOCH + _dt.timedelta(seconds=s)).replace(tzinfo=tz, fold=0).utcoffset()
    return 0 if off is None else off // _dt.timedelta(seconds=1)


def _utc_to_local_us(utc: Datum, tz: ZoneInfo) -> pa.Array:
    """Local wall-clock microseconds of UTC microseconds (an int64 array)."""
    arr = utc.combine_chunks() if isinstance(utc, pa.ChunkedArray) else utc
    valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    us = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    secs = np.floor_divide(us, _US)
    days = np.floor_divide(secs, 86400)
    offsets = np.zeros(len(us), dtype=np.int64)
    if len(us):
        udays, inverse = np.unique(days[valid], return_inverse=True)
        vsecs = secs[valid]
        voff = np.zeros(len(vsecs), dtype=np.int64)
        for i, day in enumerate(udays.tolist()):
            sel = inverse == i
            lo, hi = day * 86400, day * 86400 + 86399
            o_lo, o_hi = _instant_offset(tz, lo), _instant_offset(tz, hi)
            if o_lo == o_hi:
                voff[sel] = o_lo
                continue
            points: list[tuple[int, int]] = []
            _changes(tz, lo, hi, o_lo, o_hi, points)
            s = vsecs[sel]
            out = np.full(len(s), o_lo, dtype=np.int64)
            for first, off in sorted(points):
                out[s >= first] = off
            voff[sel] = out
        offsets[valid] = voff
    return pa.array(us + offsets * _US, type=pa.int64(), mask=~valid)


def _changes(
    tz: ZoneInfo, lo: int, hi: int, o_lo: int, o_hi: int, out: list[tuple[int, int]]
) -> None:
    while hi - lo > 1:
        mid = (lo + hi) // 2
        o_mid = _instant_offset(tz, mid)
        if o_mid != o_lo:
            if o_mid != o_hi:
                _changes(tz, mid, hi, o_mid, o_hi, out)
            hi, o_hi = mid, o_mid
        else:
            lo, o_lo = mid, o_mid
    out.append((hi, o_hi))


def _first_true(pred: Callable[[int], bool], guess: int) -> int:
    """The smallest k in [_K_MIN, _K_MAX + 1] with pred(k), pred monotone."""
    if pred(_K_MIN):
        return _K_MIN
    if not pred(_K_MAX):
        return _K_MAX + 1
    guess = min(max(guess, _K_MIN + 1), _K_MAX)
    step = 1
    if pred(guess):
        hi = guess
        lo = max(hi - step, _K_MIN)
        while pred(lo):
            hi = lo
            step *= 2
            lo = max(hi - step, _K_MIN)
    else:
        lo = guess
        hi = min(lo + step, _K_MAX)
        while not pred(hi):
            lo = hi
            step *= 2
            hi = min(lo + step, _K_MAX)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _guess(c: float) -> int:
    if not math.isfinite(c) or abs(c) > 1e15:
        return 0 if not math.isfinite(c) else int(math.copysign(_K_MAX, c))
    return int(c * _US)


def _k_ge(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) >= c, _guess(c))


def _k_gt(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) > c, _guess(c))


def _k2_ge(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) / 1000 >= c, _guess(c * 1000))


class _Thresholds:
    """Local-microsecond thresholds mapped to UTC instants of the ``time`` column."""

    def __init__(self, tz: str) -> None:
        self.tz_name = tz
        self.tz = resolve_timezone(tz)

    def utc(self, k: int) -> int:
        """The smallest UTC microsecond whose (non-gap) local time is >= k."""
        if k <= _K_MIN:
            return -_FAR
        if k > _K_MAX:
            return _FAR
        if self.tz_name in _UTC_NAMES:
            return k
        s = k // _US
        if not self._nongap(s):
            lo, hi = s, s + 1
            step = 1
            while not self._nongap(hi):
                lo = hi
                step *= 2
                hi = s + step
                if step > 4 * 86400:
                    break
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._nongap(mid):
                    hi = mid
                else:
                    lo = mid
            return (hi - _fold0_offset(self.tz, hi)) * _US
        return k - _fold0_offset(self.tz, s) * _US

    def _nongap(self, s: int) -> bool:
        u = s - _fold0_offset(self.tz, s)
        return u + _instant_offset(self.tz, u) == s


# ============================================================================ compile


def _coalesce_false(cx: _Cx, d: Datum) -> Datum:
    return pc.coalesce(d, cx.scalar(False, _BOOL))


def _bool_v(cx: _Cx, d: Datum) -> _V:
    return _V(BOOL, d=d)


def _truth(cx: _Cx, v: _V) -> _V:
    """Kept-ness: boolean ``true`` (never null)."""
    if v.is_const:
        return _TRUE if v.const is True else _FALSE
    if v.ty is BOOL:
        return _bool_v(cx, _coalesce_false(cx, cx.datum(v)))
    return _FALSE


def _and(cx: _Cx, parts: Sequence[_V]) -> _V:
    """AND of never-null boolean values."""
    out: Datum | None = None
    for p in parts:
        if p.is_const:
            if p.const is False:
                return _FALSE
            continue
        out = p.d if out is None else pc.and_kleene(out, p.d)
    return _TRUE if out is None else _bool_v(cx, out)


def _or(cx: _Cx, parts: Sequence[_V]) -> _V:
    out: Datum | None = None
    for p in parts:
        if p.is_const:
            if p.const is True:
                return _TRUE
            continue
        out = p.d if out is None else pc.or_kleene(out, p.d)
    return _FALSE if out is None else _bool_v(cx, out)


def _invert(cx: _Cx, v: _V) -> _V:
    if v.is_const:
        return _const(not v.const)
    return _bool_v(cx, pc.invert(v.d))


def _is_null(cx: _Cx, v: _V) -> _V:
    if v.is_const:
        return _const(v.const is UNDEFINED)
    if v.ty is ROWLIST:
        return _FALSE
    return _bool_v(cx, pc.is_null(cx.datum(v)))


def _data_free(node: Expr, cx: _Cx) -> bool:
    """Whether ``node``'s value is the same for every row of this schema."""
    names = cx.schema.names
    for n in walk(node):
        if isinstance(n, Property):
            if n.source == "properties":
                col = "time" if n.name == "time" else "properties." + n.name
            elif n.source == "event" and n.name == "$time":
                col = "time"
            else:
                continue
            if col in names and not pa.types.is_null(cx.schema.field(col).type):
                return False
        elif isinstance(n, Variable) and n.name in cx.bindings and not cx.bindings[n.name].is_const:
            return False
    return True


def _fold(node: Expr, cx: _Cx) -> _V:
    env = Env({}, cx.tz, cx.now, {k: v.const for k, v in cx.bindings.items() if v.is_const})
    return _const(evaluate_node(node, env))


def comp(node: Expr, cx: _Cx) -> _V:
    if not isinstance(node, Literal) and _data_free(node, cx):
        return _fold(node, cx)
    v = _COMP[type(node)](node, cx)
    if isinstance(v.d, pa.Scalar) and v.ty in (NUM, STR, BOOL, DT):
        value = v.d.as_py()  # an operation on constants only, in array mode
        if value is None:
            return _UNDEF_V
        return _const(DateTime(value) if v.ty is DT else value)
    return v


def _c_literal(node: Literal, cx: _Cx) -> _V:
    return _const(node.value)


def _c_property(node: Property, cx: _Cx) -> _V:
    if node.source == "event":  # only $time reaches here
        return _datetime_of(cx, _time_seconds(cx))
    if node.name == "time":
        return _time_seconds(cx)
    name = "properties." + node.name
    f = cx.schema.field(name)
    if is_text_field(f):
        raise _Unsupported
    ty = _arrow_ty(f.type)
    if ty is None:
        raise _Unsupported
    col = cx.column(name)
    if ty is NUM and not pa.types.is_float64(f.type):
        col = cx.cast(col, _F64)
    return _V(ty, d=col)


def _time_seconds(cx: _Cx) -> _V:
    try:
        d = _seconds_datum(cx.local_us())
    except _Unsupported:
        d = None  # comparisons with constants still compile (as UTC ranges)
    return _V(NUM, d=d, tform="L")


def _c_index(node: Index, cx: _Cx) -> _V:
    target = comp(node.target, cx)
    if target.ty is OBJ:
        raise _Unsupported
    return _UNDEF_V


def _c_variable(node: Variable, cx: _Cx) -> _V:
    return cx.bindings[node.name]


def _c_list(node: ListExpr, cx: _Cx) -> _V:
    return _V(ROWLIST, items=tuple(comp(i, cx) for i in node.items))


def _c_not(node: Not, cx: _Cx) -> _V:
    v = comp(node.operand, cx)
    if v.ty is BOOL:
        return _bool_v(cx, pc.invert(_coalesce_false(cx, cx.datum(v))))
    if v.ty in (UNDEF, NULL):
        return _TRUE
    if v.ty is ROWLIST:
        return _UNDEF_V
    return _bool_v(cx, pc.if_else(pc.is_null(cx.datum(v)), cx.scalar(True, _BOOL), cx.null(_BOOL)))


def _c_negate(node: Negate, cx: _Cx) -> _V:
    v = comp(node.operand, cx)
    if v.ty is NUM:
        return _V(NUM, d=pc.negate(cx.datum(v)))
    return _UNDEF_V


def _c_boolop(node: BoolOp, cx: _Cx) -> _V:
    parts: list[_V] = []
    errors: list[_V] = []
    for operand in node.operands:
        v = comp(operand, cx)
        if v.ty is BOOL:
            parts.append(_truth(cx, v))
        elif v.ty in (UNDEF, NULL):
            parts.append(_FALSE)
        elif v.ty is ROWLIST or v.is_const:
            return _UNDEF_V  # always a type error
        else:
            parts.append(_FALSE)
            errors.append(_invert(cx, _is_null(cx, v)))
    result = _and(cx, parts) if node.op == "and" else _or(cx, parts)
    if not errors:
        return result
    err = _or(cx, errors)
    if err.is_const:
        return _UNDEF_V if err.const else result
    return _bool_v(cx, pc.if_else(err.d, cx.null(_BOOL), cx.datum(result)))


# -- comparisons ---------------------------------------------------------------------

_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ORDER_FN = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}


def _c_compare(node: Compare, cx: _Cx) -> _V:
    a = comp(node.left, cx)
    b = comp(node.right, cx)
    if node.op == "in":
        return _member(cx, a, b)
    timed = _time_compare(cx, node.op, a, b)
    if timed is not None:
        return timed
    a2, b2 = _coerce(cx, a, b)
    if node.op in ("==", "!="):
        eq = _eq(cx, a2, b2, a, b)
        return eq if node.op == "==" else _invert(cx, eq)
    return _ordering(cx, node.op, a2, b2)


def _coerce(cx: _Cx, a: _V, b: _V) -> tuple[_V, _V]:
    if a.ty is DT and b.ty in (NUM, STR):
        return a, _datetime_of(cx, b)
    if b.ty is DT and a.ty in (NUM, STR):
        return _datetime_of(cx, a), b
    return a, b


def _floor(cx: _Cx, v: _V) -> Datum:
    return pc.floor(cx.datum(v))


def _eq(cx: _Cx, a: _V, b: _V, a0: _V, b0: _V) -> _V:
    """``==`` (never null) of coerced ``a``, ``b``; ``a0``, ``b0`` before coercion."""
    if a.is_const and b.is_const:
        return _const(values_equal(a.const, b.const, Env({}, cx.tz, cx.now)))
    both_undefined = _and(cx, [_is_null(cx, a0), _is_null(cx, b0)])
    core: Datum | None = None
    if a.ty is b.ty and a.ty in _SCALARS:
        core = pc.equal(cx.datum(a), cx.datum(b))
    elif a.ty is DT and b.ty is DT:
        core = pc.equal(_floor(cx, a), _floor(cx, b))
    elif a.ty.kind in ("list", "rowlist", "obj", "null") or b.ty.kind in (
        "list",
        "rowlist",
        "obj",
        "null",
    ):
        if a.ty is not UNDEF and b.ty is not UNDEF and a.ty.kind == b.ty.kind:
            raise _Unsupported
        if {a.ty.kind, b.ty.kind} == {"list", "rowlist"}:
            raise _Unsupported
        if NULL in (a.ty, b.ty) and UNDEF not in (a.ty, b.ty):
            raise _Unsupported
    if core is None:
        return both_undefined
    if both_undefined.is_const:
        if both_undefined.const is False:
            return _bool_v(cx, _coalesce_false(cx, core))
        return _TRUE
    return _bool_v(cx, pc.coalesce(core, both_undefined.d))


def _ordering(cx: _Cx, op: str, a: _V, b: _V) -> _V:
    fn = _ORDER_FN[op]
    if a.ty is b.ty and a.ty in (NUM, STR):
        return _V(BOOL, d=fn(cx.datum(a), cx.datum(b)))
    if a.ty is DT and b.ty is DT:
        return _V(BOOL, d=fn(_floor(cx, a), _floor(cx, b)))
    return _UNDEF_V


def _member(cx: _Cx, a: _V, b: _V) -> _V:
    if b.ty is STR:
        if a.ty is not STR:
            return _UNDEF_V
        if a.is_const:
            return _V(BOOL, d=pc.match_substring(cx.datum(b), pattern=a.const))
        cx.need_arrays()
        return _V(BOOL, d=_per_row(cx, [a, b], lambda x, y: x in y, _BOOL))
    if b.ty.kind == "list" and b.is_const:
        return _in_const_list(cx, a, list(b.const))
    if b.ty is ROWLIST:
        return _or(cx, [_eq(cx, *_coerce(cx, a, item), a, item) for item in b.items])
    if b.ty.kind == "list":
        return _in_list_column(cx, a, b)
    return _UNDEF_V


def _in_const_list(cx: _Cx, a: _V, elems: list[Value]) -> _V:
    if a.ty in _SCALARS:
        same: list[Value] = []
        others: list[_V] = []
        for e in elems:
            ev = _const(e)
            if ev.ty is a.ty:
                if not (type(e) is float and math.isnan(e)):
                    same.append(e)
            elif ev.ty is UNDEF or (ev.ty is DT):
                others.append(ev)
        parts: list[_V] = []
        if same:
            if a.ty is NUM and 0.0 in same:
                same += [0.0, -0.0]
            typ = {"num": _F64, "str": _STR, "bool": _BOOL}[a.ty.kind]
            found = pc.is_in(cx.datum(a), value_set=pa.array(same, typ))
            parts.append(_bool_v(cx, _coalesce_false(cx, found)))
        parts += [_eq(cx, *_coerce(cx, a, o), a, o) for o in others]
        return _or(cx, parts)
    if len(elems) > _MAX_CONST_LIST:
        raise _Unsupported
    return _or(cx, [_eq(cx, *_coerce(cx, a, _const(e)), a, _const(e)) for e in elems])


def _in_list_column(cx: _Cx, a: _V, b: _V) -> _V:
    item = b.ty.item
    assert item is not None
    if a.ty.kind in ("list", "rowlist", "obj", "null", "dt") or item.kind == "list":
        raise _Unsupported
    cx.need_arrays()
    lst = cx.datum(b)
    n = len(lst)
    res = np.zeros(n, dtype=bool)
    if a.ty is item:
        flat = pc.list_flatten(lst)
        if len(flat):
            parents = np.asarray(pc.list_parent_indices(lst).to_numpy(), dtype=np.int64)
            if a.ty is NUM and not pa.types.is_float64(flat.type):
                flat = pc.cast(flat, _F64, safe=False)
            x = cx.datum(a)
            if isinstance(x, (pa.Array, pa.ChunkedArray)):
                x = x.take(pa.array(parents))
            hit = _np_bool(pc.coalesce(pc.equal(flat, x), pa.scalar(False)))
            res[parents[hit]] = True
    return _V(BOOL, d=pa.array(res, mask=_np_bool(pc.is_null(lst))))


def _np_bool(arr: Datum) -> Mask:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


# -- time ranges ---------------------------------------------------------------------


def _time_compare(cx: _Cx, op: str, a: _V, b: _V) -> _V | None:
    if op == "in":
        return None
    if a.tform is not None and b.is_const:
        t, c = a, b.const
    elif b.tform is not None and a.is_const:
        t, c, op = b, a.const, _MIRROR[op]
    else:
        return None
    if t.tform == "L" and type(c) is float:
        if not math.isfinite(c):
            return None
        return _time_number(cx, op, c)
    if type(c) is DateTime or (t.tform == "D" and type(c) in (float, str)):
        cv = _datetime_of(cx, _const(c))
        if cv.const is UNDEFINED or not math.isfinite(cv.const.seconds):
            return None
        return _time_datetime(cx, op, math.floor(cv.const.seconds))
    return None


def _range(cx: _Cx, th: _Thresholds, lo: int | None, hi: int | None) -> Datum:
    """``time`` in local microseconds ``[lo, hi)`` (None: unbounded), null if null."""
    t = cx.time_datum()
    parts = []
    if lo is not None:
        parts.append(pc.greater_equal(t, cx.scalar(th.utc(lo), TIME_TYPE)))
    if hi is not None:
        parts.append(pc.less(t, cx.scalar(th.utc(hi), TIME_TYPE)))
    if not parts:
        return pc.if_else(pc.is_null(t), cx.null(_BOOL), cx.scalar(True, _BOOL))
    return parts[0] if len(parts) == 1 else pc.and_kleene(parts[0], parts[1])


def _time_number(cx: _Cx, op: str, c: float) -> _V:
    th = _Thresholds(cx.tz)
    if op == ">=":
        return _V(BOOL, d=_range(cx, th, _k_ge(c), None))
    if op == ">":
        return _V(BOOL, d=_range(cx, th, _k_gt(c), None))
    if op == "<":
        return _V(BOOL, d=_range(cx, th, None, _k_ge(c)))
    if op == "<=":
        return _V(BOOL, d=_range(cx, th, None, _k_gt(c)))
    eq = _bool_v(cx, _coalesce_false(cx, _range(cx, th, _k_ge(c), _k_gt(c))))
    return eq if op == "==" else _invert(cx, eq)


def _time_datetime(cx: _Cx, op: str, n: int) -> _V:
    """``floor(datetime(local seconds)) op n`` as UTC ranges of ``time``."""
    th = _Thresholds(cx.tz)
    lo_d: int | None
    hi_d: int | None
    lo_d, hi_d = {
        ">=": (n, None),
        ">": (n + 1, None),
        "<": (None, n),
        "<=": (None, n + 1),
        "==": (n, n + 1),
        "!=": (n, n + 1),
    }[op]
    r1_lo, r1_hi = _k_gt(0.0), _k_gt(float(MAX_SECONDS))  # seconds: 0 < L <= M
    pieces = []
    for lo, hi, first in ((r1_lo, r1_hi, _k_ge), (r1_hi, None, _k2_ge)):
        a = lo if lo_d is None else max(lo, first(float(lo_d)))
        b = (
            hi
            if hi_d is None
            else (first(float(hi_d)) if hi is None else min(hi, first(float(hi_d))))
        )
        if b is not None and a >= b:
            continue
        pieces.append(_range(cx, th, a, b))
    inset: Datum | None = None
    for p in pieces:
        inset = p if inset is None else pc.or_kleene(inset, p)
    if op in ("==", "!="):
        eq = _bool_v(cx, _coalesce_false(cx, inset)) if inset is not None else _FALSE
        return eq if op == "==" else _invert(cx, eq)
    defined = _range(cx, th, r1_lo, None)
    value = _coalesce_false(cx, inset) if inset is not None else cx.scalar(False, _BOOL)
    return _V(BOOL, d=pc.if_else(defined, value, cx.null(_BOOL)))


# -- arithmetic ----------------------------------------------------------------------


def _c_arith(node: Arith, cx: _Cx) -> _V:
    a = comp(node.left, cx)
    b = comp(node.right, cx)
    op = node.op
    if a.ty is NUM and b.ty is NUM:
        x, y = cx.datum(a), cx.datum(b)
        if op == "+":
            return _V(NUM, d=pc.add(x, y))
        if op == "-":
            return _V(NUM, d=pc.subtract(x, y))
        if op == "*":
            return _V(NUM, d=pc.multiply(x, y))
        if op == "/":
            zero = pc.equal(y, cx.scalar(0.0, _F64))
            return _V(NUM, d=pc.if_else(zero, cx.null(_F64), pc.divide(x, y)))
        cx.need_arrays()
        return _V(NUM, d=_fmod(cx, x, y))
    if op == "+" and a.ty is STR and b.ty is STR:
        return _V(STR, d=pc.binary_join_element_wise(cx.datum(a), cx.datum(b), ""))
    return _UNDEF_V


def _np_f64(cx: _Cx, d: Datum) -> tuple[Floats, Mask]:
    if isinstance(d, pa.Scalar):
        value = d.as_py()
        valid = np.full(cx.n, value is not None)
        return np.full(cx.n, 0.0 if value is None else value, dtype=np.float64), valid
    if isinstance(d, pa.ChunkedArray):
        d = d.combine_chunks()
    valid = _np_bool(pc.is_valid(d))
    return np.asarray(d.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64), valid


def _fmod(cx: _Cx, x: Datum, y: Datum) -> pa.Array:
    a, va = _np_f64(cx, x)
    b, vb = _np_f64(cx, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.fmod(a, b)
    return pa.array(r, type=_F64, mask=~(va & vb & (b != 0)))


# -- functions -----------------------------------------------------------------------


def _map_unique(cx: _Cx, d: Datum, fn: Callable[[Any], Value], typ: pa.DataType) -> pa.Array:
    """``fn`` applied once per distinct value (UNDEFINED -> null)."""
    cx.need_arrays()
    if isinstance(d, pa.Scalar):
        d = pa.repeat(d, cx.n)
    if isinstance(d, pa.ChunkedArray):
        d = d.combine_chunks()
    enc = pc.dictionary_encode(d)
    out = [None if v is None else fn(v) for v in enc.dictionary.to_pylist()]
    mapped = pa.array([None if v is UNDEFINED else v for v in out], type=typ)
    return mapped.take(enc.indices)


def _per_row(cx: _Cx, args: Sequence[_V], fn: Callable[..., Any], typ: pa.DataType) -> pa.Array:
    """``fn`` over aligned values of the surviving rows (null if any is null)."""
    cols = []
    for v in args:
        d = cx.datum(v)
        if isinstance(d, pa.Scalar):
            cols.append([d.as_py()] * cx.n)
        else:
            cols.append(d.to_pylist())
    return pa.array(
        [None if any(x is None for x in row) else fn(*row) for row in zip(*cols, strict=True)],
        type=typ,
    )


def _datetime_of(cx: _Cx, v: _V) -> _V:
    if v.is_const:
        if v.ty in (NUM, STR, DT):
            return _const(to_datetime(v.const, Env({}, cx.tz, cx.now)))
        return _UNDEF_V
    if v.ty is DT:
        return v
    if v.ty is NUM:
        tform = "D" if v.tform == "L" else None
        if v.d is None:
            return _V(DT, d=None, tform=tform)
        x = v.d
        big = pc.if_else(
            pc.greater(x, cx.scalar(float(MAX_SECONDS), _F64)), pc.divide(x, 1000.0), x
        )
        d = pc.if_else(pc.less_equal(x, cx.scalar(0.0, _F64)), cx.null(_F64), big)
        return _V(DT, d=d, tform=tform)
    if v.ty is STR:
        tz = resolve_timezone(cx.tz)
        return _V(DT, d=_map_unique(cx, cx.datum(v), lambda s: parse_datetime_text(s, tz), _F64))
    return _UNDEF_V


def _string_of(cx: _Cx, v: _V) -> _V:
    if v.ty is STR:
        return v
    if v.ty is BOOL:
        d = pc.if_else(cx.datum(v), cx.scalar("true", _STR), cx.scalar("false", _STR))
        return _V(STR, d=d)
    if v.ty is NUM:
        return _V(STR, d=_map_unique(cx, cx.datum(v), format_number, _STR))
    if v.ty is DT:
        return _V(STR, d=_map_unique(cx, cx.datum(v), format_datetime, _STR))
    if v.ty is NULL:
        raise _Unsupported
    return _UNDEF_V


def _c_call(node: Call, cx: _Cx) -> _V:
    name = node.name
    arg = node.args[0]
    if name == "defined" and isinstance(arg, Property) and arg.source == "properties":
        col = "properties." + arg.name
        if arg.name != "time" and col in cx.schema.names:
            return _V(BOOL, d=pc.is_valid(cx.column(col)))
    x = comp(arg, cx)
    if name == "defined":
        if x.ty is UNDEF:
            return _FALSE
        if x.ty in (NULL, ROWLIST):
            return _TRUE
        return _V(BOOL, d=pc.is_valid(cx.datum(x)))
    if name == "boolean":
        if x.ty is BOOL:
            return _truth(cx, x)
        if x.ty in (UNDEF, NULL):
            return _FALSE
        if x.ty is ROWLIST:
            return _TRUE
        d = cx.datum(x)
        if x.ty is NUM:
            return _V(BOOL, d=_coalesce_false(cx, pc.not_equal(d, cx.scalar(0.0, _F64))))
        if x.ty is STR:
            ok = pc.and_kleene(
                pc.not_equal(d, cx.scalar("false", _STR)), pc.not_equal(d, cx.scalar("", _STR))
            )
            return _V(BOOL, d=_coalesce_false(cx, ok))
        return _V(BOOL, d=pc.is_valid(d))
    if name == "number":
        if x.ty is NUM:
            return x
        if x.ty is DT:
            return _V(NUM, d=cx.datum(x))
        if x.ty is BOOL:
            d = cx.datum(x)
            return _V(NUM, d=pc.if_else(d, cx.scalar(1.0, _F64), cx.scalar(0.0, _F64)))
        if x.ty is STR:
            d = cx.datum(x)
            ok = pc.match_substring_regex(d, pattern=f"^(?:{DECIMAL_PATTERN})$")
            return _V(NUM, d=cx.cast(pc.if_else(ok, d, cx.null(_STR)), _F64))
        return _UNDEF_V
    if name == "string":
        s = _string_of(cx, x)
        if len(node.args) == 1:
            return s
        dflt = comp(node.args[1], cx)
        if s.is_const:  # undefined
            return dflt
        if dflt.ty is UNDEF:
            return s
        if dflt.ty is STR:
            return _V(STR, d=pc.coalesce(cx.datum(s), cx.datum(dflt)))
        raise _Unsupported
    if name in ("floor", "ceil", "round"):
        if x.ty is not NUM:
            return _UNDEF_V
        d = cx.datum(x)
        if name == "floor":
            return _V(NUM, d=pc.floor(d))
        if name == "ceil":
            return _V(NUM, d=pc.ceil(d))
        return _V(NUM, d=pc.round(d, round_mode="half_towards_infinity"))
    if name == "datetime":
        return _datetime_of(cx, x)
    if name == "list":
        return x if x.ty.kind in ("list", "rowlist") else _UNDEF_V
    if name == "has_prefix":
        p = comp(node.args[1], cx)
        if x.ty is not STR or p.ty is not STR:
            return _UNDEF_V
        if p.is_const:
            prefix = str(p.const).translate(ASCII_LOWER)
            return _V(BOOL, d=pc.starts_with(pc.ascii_lower(cx.datum(x)), pattern=prefix))
        cx.need_arrays()
        return _V(
            BOOL,
            d=_per_row(
                cx,
                [x, p],
                lambda s, q: s.translate(ASCII_LOWER).startswith(q.translate(ASCII_LOWER)),
                _BOOL,
            ),
        )
    raise AssertionError(name)  # pragma: no cover


def _c_any(node: AnyExpr, cx: _Cx) -> _V:
    items = comp(node.items, cx)
    if items.ty.kind == "list" and items.is_const:
        elems = list(items.const)
        if len(elems) > _MAX_CONST_LIST:
            raise _Unsupported
        return _or(
            cx, [_truth(cx, comp(node.predicate, cx.bind(node.var, _const(e)))) for e in elems]
        )
    if items.ty is ROWLIST:
        return _or(
            cx, [_truth(cx, comp(node.predicate, cx.bind(node.var, it))) for it in items.items]
        )
    if items.ty.kind != "list":
        return _UNDEF_V
    cx.need_arrays()
    item = items.ty.item
    assert item is not None
    lst = cx.datum(items)
    n = len(lst)
    res = np.zeros(n, dtype=bool)
    flat = pc.list_flatten(lst)
    if len(flat):
        if flat.null_count or item is NULL:
            raise _Unsupported  # JSON nulls inside the list: the row evaluator decides
        parents = pa.array(np.asarray(pc.list_parent_indices(lst).to_numpy(), dtype=np.int64))
        if item is NUM and not pa.types.is_float64(flat.type):
            flat = pc.cast(flat, _F64, safe=False)
        sub = cx.child(parents, cx.bindings)
        sub.bindings[node.var] = _V(item, d=flat)
        hit = _np_bool(cx_truth_datum(sub, comp(node.predicate, sub)))
        res[np.asarray(parents.to_numpy())[hit]] = True
    return _V(BOOL, d=pa.array(res, mask=_np_bool(pc.is_null(lst))))


def cx_truth_datum(cx: _Cx, v: _V) -> Datum:
    t = _truth(cx, v)
    if t.is_const:
        return pa.repeat(pa.scalar(bool(t.const)), cx.n)
    return t.d


def _c_now(node: Now, cx: _Cx) -> _V:  # pragma: no cover - always folded
    return _const(cx.now)


_COMP: dict[type[Expr], Callable[[Any, _Cx], _V]] = {
    Literal: _c_literal,
    Now: _c_now,
    Property: _c_property,
    Index: _c_index,
    Variable: _c_variable,
    ListExpr: _c_list,
    Not: _c_not,
    Negate: _c_negate,
    BoolOp: _c_boolop,
    Compare: _c_compare,
    Arith: _c_arith,
    Call: _c_call,
    AnyExpr: _c_any,
}


# ============================================================================ residual


_NUM_RE = f"^(?:{JSON_NUMBER_PATTERN}|Infinity|-Infinity|NaN)$"
_T_NULL, _T_NUM, _T_STR, _T_BOOL, _T_COMPLEX = 0, 1, 2, 3, 4


def _decode_column(col: pa.Array) -> tuple[Tags, dict[int, pa.Array]]:
    """Vectorised :func:`decode_text` of a folded-text column: per-row tags and the
    typed arrays of the number, string and boolean rows."""
    n = len(col)
    tags = np.full(n, _T_STR, dtype=np.int8)
    tags[_np_bool(pc.is_null(col))] = _T_NULL
    is_num = _np_bool(pc.match_substring_regex(col, pattern=_NUM_RE))
    is_bool = _np_bool(pc.is_in(col, value_set=pa.array(["true", "false"])))
    tags[is_num] = _T_NUM
    tags[is_bool] = _T_BOOL
    maybe = np.flatnonzero(_np_bool(pc.match_substring_regex(col, pattern=r"^[\[{]")))
    if len(maybe):
        for i, cell in zip(maybe.tolist(), col.take(pa.array(maybe)).to_pylist(), strict=True):
            if isinstance(decode_text(cell), (list, dict)):
                tags[i] = _T_COMPLEX
    nums = pc.cast(pc.if_else(pa.array(is_num), col, pa.scalar(None, _STR)), _F64)
    bools = pc.equal(pc.if_else(pa.array(is_bool), col, pa.scalar(None, _STR)), "true")
    strs = pc.if_else(pa.array(tags == _T_STR), col, pa.scalar(None, _STR))
    return tags, {_T_NUM: nums, _T_BOOL: bools, _T_STR: strs}


@dataclass(frozen=True)
class Compiled:
    """A ``where`` expression compiled against one schema.

    - ``expression``: a :class:`pyarrow.compute.Expression` of the conjuncts that
      Arrow kernels express (for ``Table.filter``, ``pyarrow.dataset`` scans and
      ``pyarrow.parquet.read_table(filters=...)``), or None.
    - :meth:`residual`: a boolean mask over a table of the rows that
      ``expression`` kept, for the other conjuncts (None if there are none).
    - :meth:`apply`: both, in order.

    Example:
        >>> import pyarrow as pa
        >>> t = pa.table({"properties.n": [1, 5, None], "properties.tags": [["a"], ["b"], None]})
        >>> c = compile_where('properties["n"] > 2 or "a" in properties["tags"]', t.schema)
        >>> c.expression is None, c.apply(t).column(0).to_pylist()
        (True, [1, 5])
    """

    where: str
    expression: pc.Expression | None
    project_timezone: str
    columns: frozenset[str]
    pushed: tuple[Expr, ...] = field(repr=False)
    residual_conjuncts: tuple[Expr, ...] = field(repr=False)
    now: float = field(repr=False)

    @property
    def has_residual(self) -> bool:
        """Whether a second pass is needed after ``expression``."""
        return bool(self.residual_conjuncts)

    def residual(self, table: pa.Table) -> pa.BooleanArray | None:
        """Mask of the rows of ``table`` (already filtered by ``expression``) kept by
        the conjuncts not pushed down; None when there are none."""
        if not self.residual_conjuncts:
            return None
        needed = [c for c in table.column_names if c in self.columns]
        if needed:  # the residual reads only the columns it references
            table = table.select(needed)
        n = table.num_rows
        mask = np.ones(n, dtype=bool)
        for conj in self.residual_conjuncts:
            idx = np.flatnonzero(mask)
            if len(idx) == 0:
                break
            sub = table if len(idx) == n else table.take(pa.array(idx))
            keep = self._conjunct(conj, sub)
            mask[idx[~keep]] = False
        return pa.array(mask, type=_BOOL)

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` the expression keeps, in order."""
        if self.expression is not None:
            table = table.filter(self.expression)
        mask = self.residual(table)
        return table if mask is None else table.filter(mask)

    # -- tiers ------------------------------------------------------------------------
    def _conjunct(self, conj: Expr, table: pa.Table) -> Mask:
        texts = [
            c
            for c in sorted(columns_of(conj))
            if c in table.column_names
            and is_text_field(table.schema.field(c))
            and (pa.types.is_string(table.schema.field(c).type))
        ]
        if not texts:
            return self._arrays_or_rows(conj, table)
        decoded = [_decode_column(_combined(table.column(c))) for c in texts]
        key = np.zeros(table.num_rows, dtype=np.int64)
        for tags, _ in decoded:
            key = key * 5 + tags
        out = np.zeros(table.num_rows, dtype=bool)
        for k in np.unique(key).tolist():
            idx = np.flatnonzero(key == k)
            take = pa.array(idx)
            sub = table.take(take)
            tags_here = [int(tags[idx[0]]) for tags, _ in decoded]
            if _T_COMPLEX in tags_here:
                out[idx] = self._rows(conj, sub)
                continue
            for c, (_tags, typed), tag in zip(texts, decoded, tags_here, strict=True):
                i = sub.schema.get_field_index(c)
                arr = pa.nulls(len(idx)) if tag == _T_NULL else typed[tag].take(take)
                sub = sub.set_column(i, pa.field(c, arr.type), arr)
            out[idx] = self._arrays_or_rows(conj, sub)
        return out

    def _arrays_or_rows(self, conj: Expr, table: pa.Table) -> Mask:
        try:
            cx = _Cx(table.schema, self.project_timezone, self.now, table)
            v = _truth(cx, comp(conj, cx))
        except _Unsupported:
            return self._rows(conj, table)
        if v.is_const:
            return np.full(table.num_rows, bool(v.const))
        return _np_bool(v.d)

    def _rows(self, conj: Expr, table: pa.Table) -> Mask:
        """The reference evaluator on event dicts rebuilt from ``table``'s rows."""
        n = table.num_rows
        columns: dict[str, list[object]] = {}
        for c in sorted(columns_of(conj)):
            if c not in table.column_names:
                continue
            col = table.column(c)
            if c == "time":
                columns["time"] = _local_seconds_list(col, self.project_timezone)
                continue
            values = col.to_pylist()
            if is_text_field(table.schema.field(c)):
                values = [_decode_deep(v) for v in values]
            columns[c[len("properties.") :]] = values
        keys = list(columns.items())
        out = np.zeros(n, dtype=bool)
        for i in range(n):
            props = {k: vals[i] for k, vals in keys if vals[i] is not None}
            out[i] = (
                evaluate(
                    conj,
                    {"properties": props},
                    project_timezone=self.project_timezone,
                    now=self.now,
                )
                is True
            )
        return out


def _combined(col: Datum) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _decode_deep(v: object) -> object:
    if isinstance(v, str):
        return decode_text(v)
    if isinstance(v, list):
        return [_decode_deep(x) for x in v]
    return v


def _local_seconds_list(col: Datum, tz: str) -> list[object]:
    cx = _Cx(pa.schema([pa.field("time", col.type)]), tz, 0.0, pa.table({"time": col}))
    return list(_seconds_datum(cx.local_us()).to_pylist())


# ============================================================================= public


def compile_where(
    where: str | Expr, schema: pa.Schema, *, project_timezone: str = "UTC"
) -> Compiled:
    """Compile an expression against a table schema for :mod:`pyarrow` filtering.

    Returns a :class:`Compiled` with ``.expression`` (a :class:`pyarrow.compute.Expression`
    to push down into a scan, or None) and ``.residual(table)`` (a vectorised
    second pass over the rows that survive it, or None). See :func:`filter_table`.

    Example:
        >>> import pyarrow as pa
        >>> c = compile_where('properties["x"] == 1', pa.schema([("properties.x", pa.int64())]))
        >>> c.has_residual
        False
    """
    text = where if isinstance(where, str) else None
    expr = parse_where(where) if isinstance(where, str) else where
    resolve_timezone(project_timezone)
    if "time" in schema.names and not pa.types.is_timestamp(schema.field("time").type):
        raise InvalidArgumentError(
            f"the time column must be a timestamp (UTC), got {schema.field('time').type}"
        )
    now = _dt.datetime.now(_dt.timezone.utc).timestamp()
    conjuncts = expr.operands if isinstance(expr, BoolOp) and expr.op == "and" else (expr,)
    pushed: list[Expr] = []
    residual: list[Expr] = []
    exprs: list[Datum] = []
    for conj in conjuncts:
        cx = _Cx(schema, project_timezone, now)
        try:
            v = _truth(cx, comp(conj, cx))
        except _Unsupported:
            residual.append(conj)
            continue
        pushed.append(conj)
        if v.is_const:
            if v.const is False:
                exprs = [pc.scalar(False)]
                residual = []
                break
            continue
        exprs.append(v.d)
    expression: pc.Expression | None = None
    for e in exprs:
        expression = e if expression is None else pc.and_kleene(expression, e)
    return Compiled(
        where=text if text is not None else format_where(expr),
        expression=expression,
        project_timezone=project_timezone,
        columns=frozenset(c for c in columns_of(expr) if c in schema.names),
        pushed=tuple(pushed),
        residual_conjuncts=tuple(residual),
        now=now,
    )


def filter_table(table: pa.Table, where: str | Expr, *, project_timezone: str = "UTC") -> pa.Table:
    """The rows of ``table`` that ``where`` keeps, in order.

    ``table`` has the library's columns (``event``, UTC ``time``,
    ``properties.<key>``), as :func:`robotmia_frames.read_export_file` returns
    them with ``return_type="arrow"``; ``project_timezone`` is the project's
    (``properties["time"]`` and ``event["$time"]`` are project-local).

    Example:
        >>> import pyarrow as pa
        >>> filter_table(pa.table({"properties.n": [1, 3]}), 'properties["n"] % 2 == 1').num_rows
        2
    """
    return compile_where(where, table.schema, project_timezone=project_timezone).apply(table)
