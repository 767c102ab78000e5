"""The syntax tree of a ``where`` expression: frozen dataclasses, one per construct.

:func:`walk` visits a tree; :func:`columns_of` names the table columns it reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ._values import Scalar

__all__ = [
    "AnyExpr",
    "Arith",
    "Binary",
    "BoolOp",
    "Call",
    "Compare",
    "Expr",
    "Index",
    "ListExpr",
    "Literal",
    "Negate",
    "Not",
    "Now",
    "Property",
    "Unary",
    "Variable",
    "children",
    "columns_of",
    "walk",
]


@dataclass(frozen=True)
class Expr:
    """Base class of the AST nodes. ``pos`` is the 0-based offset in the text."""

    pos: int = field(default=0, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Expr):
    """A number (always a float), string or boolean literal."""

    value: Scalar


@dataclass(frozen=True)
class Now(Expr):
    """``NOW``: the current time in Unix seconds (a number)."""


@dataclass(frozen=True)
class Property(Expr):
    """``properties["name"]``, ``user["name"]`` or ``event["name"]``."""

    source: str
    name: str


@dataclass(frozen=True)
class Index(Expr):
    """``target["key"]``: a key of an object value."""

    target: Expr
    key: str


@dataclass(frozen=True)
class ListExpr(Expr):
    """A list display ``[a, b, ...]``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Call(Expr):
    """A function call: ``defined boolean number string list datetime floor ceil
    round has_prefix`` (lower-case name)."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Unary(Expr):
    """An operator applied to one operand: :class:`Not` or :class:`Negate`."""

    operand: Expr


class Not(Unary):
    """``not x`` (``a not in b`` parses as ``Not(Compare("in", a, b))``)."""


class Negate(Unary):
    """Unary minus."""


@dataclass(frozen=True)
class BoolOp(Expr):
    """``a and b and ...`` or ``a or b or ...`` (``op`` is ``"and"`` or ``"or"``)."""

    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Binary(Expr):
    """An operator between two operands: :class:`Compare` or :class:`Arith`."""

    op: str
    left: Expr
    right: Expr


class Compare(Binary):
    """``== != < <= > >= in`` (``=`` parses as ``==``)."""


class Arith(Binary):
    """``+ - * / %``."""


@dataclass(frozen=True)
class AnyExpr(Expr):
    """``any(X, items, predicate)``."""

    var: str
    items: Expr
    predicate: Expr


@dataclass(frozen=True)
class Variable(Expr):
    """The name bound by an enclosing ``any``."""

    name: str


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``node``, left to right."""
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, ListExpr):
        return node.items
    if isinstance(node, Index):
        return (node.target,)
    if isinstance(node, AnyExpr):
        return (node.items, node.predicate)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """``node`` and every node below it, depth first, left to right."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


def columns_of(node: Expr) -> set[str]:
    """The table columns ``node`` reads (``time``, ``properties.<key>``).

    Example:
        >>> sorted(columns_of(Compare(">", Property("event", "$time"), Literal(0.0))))
        ['time']
    """
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, Property):
            if n.source == "properties":
                out.add("time" if n.name == "time" else "properties." + n.name)
            elif n.source == "event" and n.name == "$time":
                out.add("time")
    return out
