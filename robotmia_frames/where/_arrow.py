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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidArgumentError
from ..timeconv import resolve_timezone
from . import _ast as ast
from ._arrow_base import (
    _BOOL,
    _F64,
    _FALSE,
    _MAX_CONST_LIST,
    _ORDER_FN,
    _SCALARS,
    _STR,
    _TRUE,
    _UNDEF_V,
    _V,
    BOOL,
    DT,
    NULL,
    NUM,
    OBJ,
    ROWLIST,
    STR,
    UNDEF,
    Datum,
    Tags,
    _and,
    _arrow_ty,
    _bool_v,
    _coalesce_false,
    _const,
    _Cx,
    _datetime_of,
    _fmod,
    _invert,
    _is_null,
    _map_unique,
    _np_bool,
    _or,
    _per_row,
    _seconds_datum,
    _truth,
    _Unsupported,
)
from ._arrow_time import (
    _time_compare,
)
from ._ast import columns_of, walk
from ._evaluate import Env, evaluate, evaluate_node, values_equal
from ._parser import format_where, parse_where
from ._raw import Mask, is_text_field
from ._values import (
    ASCII_LOWER,
    DECIMAL_PATTERN,
    JSON_NUMBER_PATTERN,
    DateTime,
    Value,
    decode_text,
    format_datetime,
    format_number,
)

__all__ = ["Compiled", "compile_where", "filter_table"]


# ============================================================================ compile


def _data_free(node: ast.Expr, cx: _Cx) -> bool:
    """Whether ``node``'s value is the same for every row of this schema."""
    names = cx.schema.names
    for n in walk(node):
        if isinstance(n, ast.Property):
            if n.source == "properties":
                col = "time" if n.name == "time" else "properties." + n.name
            elif n.source == "event" and n.name == "$time":
                col = "time"
            else:
                continue
            if col in names and not pa.types.is_null(cx.schema.field(col).type):
                return False
        elif (
            isinstance(n, ast.Variable)
            and n.name in cx.bindings
            and not cx.bindings[n.name].is_const
        ):
            return False
    return True


def _fold(node: ast.Expr, cx: _Cx) -> _V:
    env = Env({}, cx.tz, cx.now, {k: v.const for k, v in cx.bindings.items() if v.is_const})
    return _const(evaluate_node(node, env))


def comp(node: ast.Expr, cx: _Cx) -> _V:
    if not isinstance(node, ast.Literal) and _data_free(node, cx):
        return _fold(node, cx)
    v = _COMP[type(node)](node, cx)
    if isinstance(v.d, pa.Scalar) and v.ty in (NUM, STR, BOOL, DT):
        value = v.d.as_py()  # an operation on constants only, in array mode
        if value is None:
            return _UNDEF_V
        return _const(DateTime(value) if v.ty is DT else value)
    return v


def _c_literal(node: ast.Literal, cx: _Cx) -> _V:
    return _const(node.value)


def _c_property(node: ast.Property, cx: _Cx) -> _V:
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


def _c_index(node: ast.Index, cx: _Cx) -> _V:
    target = comp(node.target, cx)
    if target.ty is OBJ:
        raise _Unsupported
    return _UNDEF_V


def _c_variable(node: ast.Variable, cx: _Cx) -> _V:
    return cx.bindings[node.name]


def _c_list(node: ast.ListExpr, cx: _Cx) -> _V:
    return _V(ROWLIST, items=tuple(comp(i, cx) for i in node.items))


def _c_not(node: ast.Not, cx: _Cx) -> _V:
    v = comp(node.operand, cx)
    if v.ty is BOOL:
        return _bool_v(cx, pc.invert(_coalesce_false(cx, cx.datum(v))))
    if v.ty in (UNDEF, NULL):
        return _TRUE
    if v.ty is ROWLIST:
        return _UNDEF_V
    return _bool_v(cx, pc.if_else(pc.is_null(cx.datum(v)), cx.scalar(True, _BOOL), cx.null(_BOOL)))


def _c_negate(node: ast.Negate, cx: _Cx) -> _V:
    v = comp(node.operand, cx)
    if v.ty is NUM:
        return _V(NUM, d=pc.negate(cx.datum(v)))
    return _UNDEF_V


def _c_boolop(node: ast.BoolOp, cx: _Cx) -> _V:
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


def _c_compare(node: ast.Compare, cx: _Cx) -> _V:
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


# -- time ranges ---------------------------------------------------------------------


# -- arithmetic ----------------------------------------------------------------------


def _c_arith(node: ast.Arith, cx: _Cx) -> _V:
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


# -- functions -----------------------------------------------------------------------


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


def _c_call(node: ast.Call, cx: _Cx) -> _V:
    name = node.name
    arg = node.args[0]
    if name == "defined" and isinstance(arg, ast.Property) and arg.source == "properties":
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


def _c_any(node: ast.AnyExpr, cx: _Cx) -> _V:
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


def _c_now(node: ast.Now, cx: _Cx) -> _V:  # pragma: no cover - always folded
    return _const(cx.now)


_COMP: dict[type[ast.Expr], Callable[[Any, _Cx], _V]] = {
    ast.Literal: _c_literal,
    ast.Now: _c_now,
    ast.Property: _c_property,
    ast.Index: _c_index,
    ast.Variable: _c_variable,
    ast.ListExpr: _c_list,
    ast.Not: _c_not,
    ast.Negate: _c_negate,
    ast.BoolOp: _c_boolop,
    ast.Compare: _c_compare,
    ast.Arith: _c_arith,
    ast.Call: _c_call,
    ast.AnyExpr: _c_any,
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
    pushed: tuple[ast.Expr, ...] = field(repr=False)
    residual_conjuncts: tuple[ast.Expr, ...] = field(repr=False)
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
    def _conjunct(self, conj: ast.Expr, table: pa.Table) -> Mask:
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

    def _arrays_or_rows(self, conj: ast.Expr, table: pa.Table) -> Mask:
        try:
            cx = _Cx(table.schema, self.project_timezone, self.now, table)
            v = _truth(cx, comp(conj, cx))
        except _Unsupported:
            return self._rows(conj, table)
        if v.is_const:
            return np.full(table.num_rows, bool(v.const))
        return _np_bool(v.d)

    def _rows(self, conj: ast.Expr, table: pa.Table) -> Mask:
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
    where: str | ast.Expr, schema: pa.Schema, *, project_timezone: str = "UTC"
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
    conjuncts = expr.operands if isinstance(expr, ast.BoolOp) and expr.op == "and" else (expr,)
    pushed: list[ast.Expr] = []
    residual: list[ast.Expr] = []
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


def filter_table(
    table: pa.Table, where: str | ast.Expr, *, project_timezone: str = "UTC"
) -> pa.Table:
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
