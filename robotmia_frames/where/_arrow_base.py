"""The where compiler's value model: static types, compiled values, the context,
boolean logic, and local time over the UTC ``time`` column."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Any, Final, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..timeconv import resolve_timezone, utc_to_local_us
from ._evaluate import Env, to_datetime
from ._raw import Mask
from ._values import (
    MAX_SECONDS,
    UNDEFINED,
    DateTime,
    Value,
    parse_datetime_text,
)

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


@dataclass(frozen=True)
class _Ty:
    kind: str  # num str bool dt undef null list rowlist obj
    item: _Ty | None = None


#: The static types of compiled values.
NUM, STR, BOOL, DT, UNDEF, NULL, ROWLIST, OBJ = map(
    _Ty, ("num", "str", "bool", "dt", "undef", "null", "rowlist", "obj")
)
_SCALARS = (NUM, STR, BOOL)
_CONST_TYPES: dict[type, _Ty] = {float: NUM, str: STR, bool: BOOL, DateTime: DT, list: _Ty("list")}


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
    if value is UNDEFINED:
        return _V(UNDEF, const=value)
    if value is None:
        return _V(NULL, const=value)
    return _V(_CONST_TYPES.get(type(value), OBJ), const=value)


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


@dataclass(eq=False)
class _Cx:
    """Compilation context: expression mode (no table) or array mode (a table)."""

    schema: pa.Schema
    tz: str
    now: float
    table: pa.Table | None = None
    _: KW_ONLY
    parent: _Cx | None = None
    take: pa.Array | None = None
    bindings: dict[str, _V] = field(default_factory=dict)
    expr_mode: bool = field(init=False)
    _cols: dict[str, Datum] = field(init=False, default_factory=dict)
    _local: Datum | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.expr_mode = self.table is None and self.parent is None

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
            self._local = utc_to_local_us(utc, resolve_timezone(self.tz))
        return self._local


def _seconds_of_us(k: int) -> float:
    """Local seconds (float) of local microseconds, exactly as the kernels compute it."""
    return float(k // _US) + (k % _US) / 1e6


def _seconds_datum(us: Datum) -> Datum:
    frac = pc.modulo(us, 1_000_000)
    whole = pc.divide(pc.subtract(us, frac), 1_000_000)
    if isinstance(whole, pc.Expression):
        return pc.add(whole.cast(_F64), pc.divide(frac.cast(_F64), 1e6))
    return pc.add(pc.cast(whole, _F64), pc.divide(pc.cast(frac, _F64), 1e6))


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


def _junction(cx: _Cx, parts: Sequence[_V], absorbing: bool) -> _V:
    """AND (``absorbing=False``) or OR (``absorbing=True``) of never-null boolean
    values: a constant ``absorbing`` decides at once, the other constants drop out."""
    kernel = pc.or_kleene if absorbing else pc.and_kleene
    out: Datum | None = None
    for p in parts:
        if p.is_const:
            if p.const is absorbing:
                return _TRUE if absorbing else _FALSE
            continue
        out = p.d if out is None else kernel(out, p.d)
    if out is None:
        return _FALSE if absorbing else _TRUE
    return _bool_v(cx, out)


def _and(cx: _Cx, parts: Sequence[_V]) -> _V:
    """AND of never-null boolean values."""
    return _junction(cx, parts, absorbing=False)


def _or(cx: _Cx, parts: Sequence[_V]) -> _V:
    """OR of never-null boolean values."""
    return _junction(cx, parts, absorbing=True)


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


_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


_ORDER_FN = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}


def _np_bool(arr: Datum) -> Mask:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


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
