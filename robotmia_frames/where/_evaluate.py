"""The row evaluator: the value of an expression for one event (section 5 of the spec).

This is the reference semantics. The emulator filters with :func:`matches`, and the
Arrow compiler (:mod:`._arrow`) falls back to :func:`evaluate_node` for whatever
no Arrow kernel expresses.
"""

from __future__ import annotations

import operator
import time as _time
from collections.abc import Callable, Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

from ..timeconv import resolve_timezone
from . import _ast as ast
from ._parser import parse_where
from ._values import (
    ASCII_LOWER,
    UNDEFINED,
    DateTime,
    Value,
    datetime_of_number,
    fmod,
    format_datetime,
    format_number,
    parse_datetime_text,
    parse_number_text,
    round_half_away,
    safe_ceil,
    safe_floor,
    to_value,
)

__all__ = ["Env", "evaluate", "evaluate_node", "matches", "to_datetime", "values_equal"]

#: An event or a profile as read: JSON members by name.
Record = Mapping[str, object]


class Env:
    """What an expression is evaluated against: properties, profile, time zone, ``NOW``
    and the variables bound by ``any``."""

    __slots__ = ("bindings", "now", "props", "tz", "tz_name", "user")

    def __init__(
        self,
        props: Record,
        tz_name: str,
        now: float,
        bindings: dict[str, Value] | None = None,
        user: Record | None = None,
    ) -> None:
        self.props = props
        self.user = user
        self.tz_name = tz_name
        self.tz: ZoneInfo | None = None
        self.now = now
        self.bindings = bindings or {}

    def zone(self) -> ZoneInfo:
        if self.tz is None:
            self.tz = resolve_timezone(self.tz_name)
        return self.tz


def to_datetime(v: Value, env: Env) -> Value:
    if type(v) is DateTime:
        return v
    if type(v) is float:
        return datetime_of_number(v)
    if type(v) is str:
        s = parse_datetime_text(v, env.zone())
        return DateTime(s) if type(s) is float else UNDEFINED
    return UNDEFINED


def _coerce(a: Value, b: Value, env: Env) -> tuple[Value, Value]:
    """The datetime coercion of ``== != < <= > >=``."""
    da, db = type(a) is DateTime, type(b) is DateTime
    if da and not db and (type(b) is float or type(b) is str):
        c = to_datetime(b, env)
        if c is not UNDEFINED:
            return a, c
    elif db and not da and (type(a) is float or type(a) is str):
        c = to_datetime(a, env)
        if c is not UNDEFINED:
            return c, b
    return a, b


def values_equal(a: Value, b: Value, env: Env) -> bool:
    """``a == b`` of the language (always a boolean)."""
    a, b = _coerce(a, b, env)
    if type(a) is not type(b):
        return False
    if type(a) is DateTime and type(b) is DateTime:
        return safe_floor(a.seconds) == safe_floor(b.seconds)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(values_equal(x, y, env) for x, y in zip(a, b, strict=True))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(
            values_equal(to_value(a[k]), to_value(b[k]), env) for k in a
        )
    return a == b


_ORDER: Final = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _order(op: str, a: Value, b: Value, env: Env) -> Value:
    """``a < b`` (and the like): numbers, strings or datetimes of one type, else undefined."""
    a, b = _coerce(a, b, env)
    if type(a) is DateTime and type(b) is DateTime:
        return bool(_ORDER[op](safe_floor(a.seconds), safe_floor(b.seconds)))
    if (type(a) is float and type(b) is float) or (type(a) is str and type(b) is str):
        return bool(_ORDER[op](a, b))
    return UNDEFINED


def _member(a: Value, b: Value, env: Env) -> Value:
    if type(b) is str:
        return (a in b) if type(a) is str else UNDEFINED
    if type(b) is list:
        return any(values_equal(a, e, env) for e in b)
    return UNDEFINED


def _truthy(v: Value) -> bool:
    """``boolean(x)``."""
    if v is UNDEFINED or v is None:
        return False
    if type(v) is bool:
        return v
    if type(v) is str:
        return v not in ("false", "")
    if type(v) is float:
        return v != 0
    return True


def evaluate_node(node: ast.Expr, env: Env) -> Value:
    return _EVAL[type(node)](node, env)


def _ev_literal(node: ast.Literal, env: Env) -> Value:
    return node.value


def _ev_now(node: ast.Now, env: Env) -> Value:
    return env.now


def _ev_property(node: ast.Property, env: Env) -> Value:
    if node.source == "properties":
        return to_value(env.props.get(node.name, UNDEFINED))
    if node.source == "event" and node.name == "$time":
        t = to_value(env.props.get("time", UNDEFINED))
        return datetime_of_number(t) if type(t) is float else to_datetime(t, env)
    if node.source == "user" and env.user is not None:
        return to_value(env.user.get(node.name, UNDEFINED))
    return UNDEFINED  # user[...] in an export; any other event[...] field


def _ev_index(node: ast.Index, env: Env) -> Value:
    target = evaluate_node(node.target, env)
    if type(target) is dict:
        return to_value(target.get(node.key, UNDEFINED))
    return UNDEFINED


def _ev_variable(node: ast.Variable, env: Env) -> Value:
    return env.bindings[node.name]


def _ev_list(node: ast.ListExpr, env: Env) -> Value:
    return [evaluate_node(i, env) for i in node.items]


def _ev_not(node: ast.Not, env: Env) -> Value:
    v = evaluate_node(node.operand, env)
    if type(v) is bool:
        return not v
    if v is UNDEFINED or v is None:
        return True
    return UNDEFINED


def _ev_negate(node: ast.Negate, env: Env) -> Value:
    v = evaluate_node(node.operand, env)
    return -v if type(v) is float else UNDEFINED


def _ev_boolop(node: ast.BoolOp, env: Env) -> Value:
    values = [evaluate_node(o, env) for o in node.operands]
    for v in values:
        if type(v) is not bool and v is not UNDEFINED and v is not None:
            return UNDEFINED  # a type error: undefined for this record
    if node.op == "and":
        return all(v is True for v in values)
    return any(v is True for v in values)


def _ev_compare(node: ast.Compare, env: Env) -> Value:
    a = evaluate_node(node.left, env)
    b = evaluate_node(node.right, env)
    op = node.op
    if op == "==":
        return values_equal(a, b, env)
    if op == "!=":
        return not values_equal(a, b, env)
    if op == "in":
        return _member(a, b, env)
    return _order(op, a, b, env)


def _ev_arith(node: ast.Arith, env: Env) -> Value:
    a = evaluate_node(node.left, env)
    b = evaluate_node(node.right, env)
    op = node.op
    if type(a) is float and type(b) is float:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return UNDEFINED if b == 0 else a / b
        return fmod(a, b)
    if op == "+" and type(a) is str and type(b) is str:
        return a + b
    return UNDEFINED


def _string(v: Value) -> Value:
    if type(v) is str or v is None or v is UNDEFINED:
        return v
    if type(v) is float:
        return format_number(v)
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is DateTime:
        return format_datetime(v.seconds)
    return UNDEFINED


def _ev_call(node: ast.Call, env: Env) -> Value:
    name = node.name
    args = node.args
    x = evaluate_node(args[0], env)
    if name == "defined":
        return x is not UNDEFINED
    if name == "boolean":
        return _truthy(x)
    if name == "number":
        if type(x) is float:
            return x
        if type(x) is str:
            return parse_number_text(x)
        if type(x) is bool:
            return 1.0 if x else 0.0
        if type(x) is DateTime:
            return x.seconds
        return UNDEFINED
    if name == "string":
        s = _string(x)
        if len(args) == 2 and (s is UNDEFINED or s is None):
            return evaluate_node(args[1], env)
        return s
    if name in ("floor", "ceil", "round"):
        if type(x) is not float:
            return UNDEFINED
        if name == "floor":
            return safe_floor(x)
        if name == "ceil":
            return safe_ceil(x)
        return round_half_away(x)
    if name == "datetime":
        return to_datetime(x, env)
    if name == "list":
        return x if type(x) is list else UNDEFINED
    if name == "has_prefix":
        p = evaluate_node(args[1], env)
        if type(x) is str and type(p) is str:
            return x.translate(ASCII_LOWER).startswith(p.translate(ASCII_LOWER))
        return UNDEFINED
    raise AssertionError(f"unknown function {name}")  # pragma: no cover - parser checks


def _ev_any(node: ast.AnyExpr, env: Env) -> Value:
    items = evaluate_node(node.items, env)
    if type(items) is not list:
        return UNDEFINED
    saved = env.bindings
    try:
        for item in items:
            env.bindings = {**saved, node.var: item}
            if evaluate_node(node.predicate, env) is True:
                return True
        return False
    finally:
        env.bindings = saved


_EVAL: dict[type[ast.Expr], Callable[[Any, Env], Value]] = {
    ast.Literal: _ev_literal,
    ast.Now: _ev_now,
    ast.Property: _ev_property,
    ast.Index: _ev_index,
    ast.Variable: _ev_variable,
    ast.ListExpr: _ev_list,
    ast.Not: _ev_not,
    ast.Negate: _ev_negate,
    ast.BoolOp: _ev_boolop,
    ast.Compare: _ev_compare,
    ast.Arith: _ev_arith,
    ast.Call: _ev_call,
    ast.AnyExpr: _ev_any,
}


def evaluate(
    expr: ast.Expr | str,
    event: Record,
    *,
    project_timezone: str = "UTC",
    now: float | None = None,
    bindings: Mapping[str, Value] | None = None,
    user: Record | None = None,
) -> Value:
    """The value of ``expr`` for one export line (``{"event": ..., "properties": {...}}``).

    Returns a string, float, bool, list, dict, :class:`DateTime`, ``None`` (JSON
    null) or :data:`UNDEFINED`. ``properties.time`` is project-local seconds, as in
    the export; ``project_timezone`` (default UTC) reads datetime strings that
    carry an offset. ``now`` fixes ``NOW`` (default: the current time). ``user``
    holds the profile properties ``user["..."]`` reads (an Engage query passes the
    profile as both); without it ``user[...]`` is undefined, as in an export.

    Example:
        >>> e = {"properties": {"amount": 42.5, "quantity": 3, "nothing": None}}
        >>> evaluate('properties["amount"] * properties["quantity"]', e)
        127.5
        >>> evaluate('properties["city"]', e), evaluate('properties["nothing"]', e)
        (UNDEFINED, None)
    """
    node = parse_where(expr) if isinstance(expr, str) else expr
    props = event.get("properties") if isinstance(event, Mapping) else None
    env = Env(
        props if isinstance(props, Mapping) else {},
        project_timezone,
        _time.time() if now is None else float(now),
        dict(bindings) if bindings else None,
        user,
    )
    return evaluate_node(node, env)


def matches(
    expr: ast.Expr | str,
    event: Record,
    *,
    project_timezone: str = "UTC",
    now: float | None = None,
    user: Record | None = None,
) -> bool:
    """Whether the export keeps ``event``: the expression's value is boolean ``true``.

    Undefined, null, false and non-boolean values drop the event. For an Engage
    profile, pass its properties as ``{"properties": profile}`` and ``user=profile``.

    Example:
        >>> e = {"properties": {"time": 1704103200, "tags": ["a", "b"], "zip": "02139"}}
        >>> matches('"a" in properties["tags"]', e)
        True
        >>> matches('properties["zip"] > 2000', e), matches('number(properties["zip"]) > 2000', e)
        (False, True)
        >>> matches('event["$time"] >= datetime("2024-01-01T00:00:00")', e)
        True
    """
    return evaluate(expr, event, project_timezone=project_timezone, now=now, user=user) is True
