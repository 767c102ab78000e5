"""The ``where`` expression language: parser, evaluator and Arrow filters.

The language is robotmia's export ``where`` (Mixpanel's "segmentation
expressions"), as specified in ``where-expressions.md`` and documented for users
in ``docs/where.md``::

    properties["$os"] == "Linux" and properties["Plan"] in ["pro", "team"]

Three ways to run one expression, which select exactly the same events:

- :func:`matches` evaluates it on one export line (a dict), as the emulator's
  server-side filter does;
- :func:`filter_table` filters an Arrow table with the library's columns
  (``event``, UTC ``time``, ``properties.<key>``);
- :func:`compile_where` compiles it against a schema into a
  :mod:`pyarrow.compute` expression to push down into Parquet scans, plus a
  vectorised residual for what no Arrow kernel expresses.

:func:`parse_where` gives the typed AST (frozen dataclasses);
:func:`validate_where` checks an expression without running it. Errors are
:class:`WhereSyntaxError`, a :class:`ValueError` whose message shows the
expression with a caret under the offending position.

Values: strings, numbers (one type, doubles), booleans, lists, objects,
datetimes (:class:`DateTime`, project-local wall-clock seconds), ``None`` (JSON
null) and :data:`UNDEFINED` (a missing key).

Example:
    >>> event = {"event": "Purchase", "properties": {"time": 1704103200, "$os": "Linux"}}
    >>> matches('properties["$os"] == "Linux"', event)
    True
    >>> matches('not defined(properties["city"])', event)
    True
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
import time as _time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from .errors import InvalidArgumentError
from .timeconv import resolve_timezone

if TYPE_CHECKING:
    import pyarrow as pa

    from ._where_arrow import Compiled

__all__ = [
    "MAX_DEPTH",
    "UNDEFINED",
    "AnyExpr",
    "Arith",
    "BoolOp",
    "Call",
    "Compare",
    "Compiled",
    "DateTime",
    "Expr",
    "Index",
    "ListExpr",
    "Literal",
    "Negate",
    "Not",
    "Now",
    "Property",
    "Variable",
    "WhereSyntaxError",
    "compile_where",
    "evaluate",
    "filter_table",
    "format_where",
    "matches",
    "parse_where",
    "referenced_columns",
    "validate_where",
]

#: Deepest nesting of the AST (and of brackets) accepted; deeper input is a
#: :class:`WhereSyntaxError`, never a ``RecursionError``.
MAX_DEPTH: Final = 100

# =============================================================================== errors


class WhereSyntaxError(InvalidArgumentError):
    """A ``where`` expression that cannot be parsed (or has a literal type error).

    A :class:`ValueError`. ``position`` is the 0-based offset in ``expression``,
    ``line`` and ``column`` are 1-based; the message shows the expression (the
    offending line of it) with a caret under the position.

    Example:
        >>> try:
        ...     parse_where('properties["a"] === 1')
        ... except WhereSyntaxError as exc:
        ...     print(exc)
        invalid where expression: expected a value, found '=' at column 19
          properties["a"] === 1
                            ^
    """

    def __init__(self, reason: str, expression: str, position: int) -> None:
        position = max(0, min(position, len(expression)))
        before = expression[:position]
        line = before.count("\n") + 1
        start = before.rfind("\n") + 1
        column = position - start + 1
        end = expression.find("\n", position)
        text = expression[start : end if end >= 0 else len(expression)]
        where = f"line {line}, column {column}" if "\n" in expression else f"column {column}"
        shown, caret = _window(text, column - 1)
        shown = "".join(" " if c in "\t\r" else c for c in shown)
        super().__init__(
            f"invalid where expression: {reason} at {where}\n  {shown}\n  {' ' * caret}^"
        )
        self.reason = reason
        self.expression = expression
        self.position = position
        self.line = line
        self.column = column


def _window(text: str, index: int, width: int = 72) -> tuple[str, int]:
    """A slice of a long line around ``index`` and the caret offset inside it."""
    if len(text) <= width:
        return text, index
    lo = max(0, min(index - width // 2, len(text) - width))
    hi = lo + width
    shown = text[lo:hi]
    caret = index - lo
    if lo > 0:
        shown = "..." + shown
        caret += 3
    if hi < len(text):
        shown += "..."
    return shown, caret


# ================================================================================ values


class _Undefined:
    """The type of :data:`UNDEFINED`."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


#: The value of a missing key (distinct from ``None``, a JSON null).
UNDEFINED: Final = _Undefined()


@dataclass(frozen=True)
class DateTime:
    """A datetime value: project-local wall-clock seconds since 1970-01-01.

    Datetimes compare to the whole second.

    Example:
        >>> evaluate('datetime("2024-01-01T00:00:30")', {})
        DateTime(seconds=1704067230.0)
    """

    seconds: float


# ================================================================================== AST


@dataclass(frozen=True)
class Expr:
    """Base class of the AST nodes. ``pos`` is the 0-based offset in the text."""

    pos: int = field(default=0, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Expr):
    """A number (always a float), string or boolean literal."""

    value: float | str | bool


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
class Variable(Expr):
    """The name bound by an enclosing ``any``."""

    name: str


@dataclass(frozen=True)
class ListExpr(Expr):
    """A list display ``[a, b, ...]``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    """``not x`` (``a not in b`` parses as ``Not(Compare("in", a, b))``)."""

    operand: Expr


@dataclass(frozen=True)
class Negate(Expr):
    """Unary minus."""

    operand: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    """``a and b and ...`` or ``a or b or ...`` (``op`` is ``"and"`` or ``"or"``)."""

    op: str
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Compare(Expr):
    """``== != < <= > >= in`` (``=`` parses as ``==``)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Arith(Expr):
    """``+ - * / %``."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call(Expr):
    """A function call: ``defined boolean number string list datetime floor ceil
    round has_prefix`` (lower-case name)."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyExpr(Expr):
    """``any(X, items, predicate)``."""

    var: str
    items: Expr
    predicate: Expr


# ================================================================================ lexer

_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "now"})
_FUNCTIONS: dict[str, tuple[int, int]] = {  # name -> (min args, max args)
    "defined": (1, 1),
    "boolean": (1, 1),
    "number": (1, 1),
    "string": (1, 2),
    "list": (1, 1),
    "datetime": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "round": (1, 1),
    "has_prefix": (2, 2),
    "any": (3, 3),
}
_ACCESSORS = frozenset({"properties", "user", "event"})
_WS = frozenset(" \t\r\n")
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD_CHARS = _WORD_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_TWO_CHAR_OPS = ("==", "!=", "<=", ">=")
_ONE_CHAR_OPS = frozenset("=<>+-*/%()[],")


@dataclass(frozen=True)
class _Tok:
    kind: str  # NUM STR WORD OP EOF
    value: Any
    pos: int
    end: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in _WS:
            i += 1
            continue
        start = i
        if c == '"':
            value, i = _lex_string(text, i)
            toks.append(_Tok("STR", value, start, i))
        elif c in _DIGITS:
            i = _lex_number(text, i)
            toks.append(_Tok("NUM", float(text[start:i]), start, i))
        elif c in _WORD_START:
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            toks.append(_Tok("WORD", text[start:i], start, i))
        elif text.startswith(_TWO_CHAR_OPS, i):
            toks.append(_Tok("OP", text[i : i + 2], start, i + 2))
            i += 2
        elif c in _ONE_CHAR_OPS:
            toks.append(_Tok("OP", c, start, i + 1))
            i += 1
        else:
            raise WhereSyntaxError(_bad_char_reason(text, i), text, i)
    toks.append(_Tok("EOF", None, n, n))
    return toks


def _bad_char_reason(text: str, i: int) -> str:
    c = text[i]
    if c == "'":
        return "single quotes are not supported: write strings in double quotes"
    if text.startswith("&&", i):
        return "'&&' is not an operator: write 'and'"
    if text.startswith("||", i):
        return "'||' is not an operator: write 'or'"
    if c == "!":
        return "'!' is not an operator: write 'not' (or '!=')"
    if c == "." and ((i > 0 and text[i - 1] in _DIGITS) or text[i + 1 : i + 2] in _DIGITS):
        return "a decimal number needs digits on both sides of '.' (0.5, 2.0)"
    if c == ".":
        return "unexpected '.': write properties[\"name\"], not a dotted name"
    return f"unexpected character {c!r}"


def _lex_number(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _DIGITS:
        i += 1
    if i + 1 < n and text[i] == "." and text[i + 1] in _DIGITS:
        i += 1
        while i < n and text[i] in _DIGITS:
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j] in _DIGITS:
            i = j
            while i < n and text[i] in _DIGITS:
                i += 1
    return i


def _lex_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    n = len(text)
    while True:
        j = i
        while j < n and text[j] != '"' and text[j] != "\\":
            j += 1
        out.append(text[i:j])
        if j >= n:
            raise WhereSyntaxError("unterminated string", text, start)
        if text[j] == '"':
            return "".join(out), j + 1
        # a backslash escape
        if j + 1 >= n:
            raise WhereSyntaxError("unterminated string", text, start)
        e = text[j + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i = j + 2
            continue
        if e != "u":
            raise WhereSyntaxError(f"invalid escape '\\{e}' in string", text, j)
        code, i = _lex_u(text, j)
        if 0xD800 <= code <= 0xDBFF and text.startswith("\\u", i):
            low, k = _lex_u(text, i)
            if 0xDC00 <= low <= 0xDFFF:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                i = k
        if 0xD800 <= code <= 0xDFFF:
            raise WhereSyntaxError("lone surrogate in \\u escape", text, j)
        out.append(chr(code))


def _lex_u(text: str, j: int) -> tuple[int, int]:
    digits = text[j + 2 : j + 6]
    if len(digits) != 4 or not all(c in _HEX for c in digits):
        raise WhereSyntaxError("invalid \\u escape: expected 4 hex digits", text, j)
    return int(digits, 16), j + 6


# =============================================================================== parser

_COMPARE_OPS = frozenset({"==", "=", "!=", "<", "<=", ">", ">="})
_LEVELS = {"or": 1, "and": 2, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_NOT_LEVEL = 3
_NEG_LEVEL = 7


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0  # expr() recursion
        self.nesting = 0  # open brackets: ( [ and calls
        self.scope: list[str] = []

    # -- token helpers ----------------------------------------------------------
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def open_bracket(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)")

    def error(self, reason: str, tok: _Tok | None = None) -> WhereSyntaxError:
        return WhereSyntaxError(reason, self.text, (tok or self.peek()).pos)

    def describe(self, tok: _Tok) -> str:
        if tok.kind == "EOF":
            return "end of expression"
        return repr(self.text[tok.pos : tok.end])

    def expect_op(self, op: str, context: str) -> _Tok:
        tok = self.peek()
        if tok.kind == "OP" and tok.value == op:
            return self.next()
        raise self.error(f"expected '{op}' {context}, found {self.describe(tok)}")

    def word(self, tok: _Tok) -> str | None:
        """The keyword or function a WORD token spells (lower case), if any."""
        if tok.kind != "WORD":
            return None
        low = str(tok.value).lower()
        if low in _KEYWORDS or low in _FUNCTIONS:
            return low
        return None

    def binary_level(self) -> tuple[int, str] | None:
        tok = self.peek()
        if tok.kind == "OP":
            if tok.value in _COMPARE_OPS:
                return _LEVELS["cmp"], "==" if tok.value == "=" else str(tok.value)
            if tok.value in _LEVELS:
                return _LEVELS[str(tok.value)], str(tok.value)
            return None
        w = self.word(tok)
        if w in ("and", "or"):
            return _LEVELS[w], w
        if w == "in":
            return _LEVELS["cmp"], "in"
        if w == "not" and self.word(self.peek(1)) == "in":
            return _LEVELS["cmp"], "not in"
        return None

    # -- grammar ------------------------------------------------------------------
    def parse(self) -> Expr:
        if self.peek().kind == "EOF":
            raise self.error("empty expression")
        try:
            expr = self.expr(1)
        except RecursionError:  # a backstop: the depth counter normally stops first
            raise self.error(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)"
            ) from None
        tok = self.peek()
        if tok.kind != "EOF":
            if tok.kind == "OP" and tok.value in ")]":
                raise self.error(f"unbalanced '{tok.value}'")
            if self.word(tok) == "not":
                raise self.error("unexpected 'not' (did you mean 'not in'?)")
            raise self.error(f"unexpected {self.describe(tok)}")
        return expr

    def expr(self, min_level: int) -> Expr:
        """An expression whose operators bind at least as tightly as ``min_level``."""
        self.depth += 1
        try:
            if self.depth > 2 * MAX_DEPTH:
                raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
            tok = self.peek()
            w = self.word(tok)
            left: Expr
            if w == "not":
                if min_level > _NOT_LEVEL:
                    raise self.error("'not' cannot appear here: put the operand in parentheses")
                self.next()
                left = Not(self.expr(_NOT_LEVEL), pos=tok.pos)
            elif tok.kind == "OP" and tok.value == "-":
                self.next()
                left = Negate(self.expr(_NEG_LEVEL), pos=tok.pos)
            else:
                left = self.index(self.primary())
            while True:
                found = self.binary_level()
                if found is None:
                    return left
                level, op = found
                if level < min_level:
                    return left
                op_tok = self.next()
                if op in ("and", "or"):
                    operands = [left, self.expr(level + 1)]
                    while self.word(self.peek()) == op:
                        self.next()
                        operands.append(self.expr(level + 1))
                    for operand in operands:
                        self.check_logic_operand(op, operand)
                    left = BoolOp(op, tuple(operands), pos=left.pos)
                elif level == _LEVELS["cmp"]:
                    if op == "not in":
                        self.next()  # the 'in'
                    right = self.expr(level + 1)
                    if op == "not in":
                        left = Not(Compare("in", left, right, pos=op_tok.pos), pos=op_tok.pos)
                    else:
                        left = Compare(op, left, right, pos=op_tok.pos)
                    if self.binary_level() is not None and self.binary_level()[0] == level:  # type: ignore[index]
                        raise self.error(
                            "comparisons cannot be chained: combine them with 'and' (a < b and b < c)"
                        )
                else:
                    left = Arith(op, left, self.expr(level + 1), pos=op_tok.pos)
        finally:
            self.depth -= 1

    def check_logic_operand(self, op: str, operand: Expr) -> None:
        what = _literal_kind(operand)
        if what is not None:
            raise WhereSyntaxError(
                f"type error: the operands of '{op}' must be booleans, not a {what} literal",
                self.text,
                operand.pos,
            )

    def index(self, expr: Expr) -> Expr:
        while self.peek().kind == "OP" and self.peek().value == "[":
            open_tok = self.next()
            key = self.peek()
            if key.kind != "STR":
                raise self.error(
                    f"an index must be a string literal, found {self.describe(key)}", key
                )
            self.next()
            self.expect_op("]", "to close the index")
            expr = Index(expr, str(key.value), pos=open_tok.pos)
        return expr

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "NUM":
            self.next()
            return Literal(float(tok.value), pos=tok.pos)
        if tok.kind == "STR":
            self.next()
            return Literal(str(tok.value), pos=tok.pos)
        if tok.kind == "OP":
            if tok.value == "(":
                self.open_bracket()
                self.next()
                inner = self.expr(1)
                self.expect_op(")", "to close '('")
                self.nesting -= 1
                return inner
            if tok.value == "[":
                return self.list_display()
            raise self.error(f"expected a value, found {self.describe(tok)}")
        if tok.kind == "EOF":
            raise self.error("unexpected end of expression: expected a value")
        # WORD
        name = str(tok.value)
        if name in _ACCESSORS:
            return self.accessor()
        w = self.word(tok)
        if w in ("true", "false"):
            self.next()
            return Literal(w == "true", pos=tok.pos)
        if w == "now":
            self.next()
            return Now(pos=tok.pos)
        if w in _FUNCTIONS:
            return self.call(str(w))
        if w is not None:
            raise self.error(f"expected a value, found the keyword {self.describe(tok)}")
        nxt = self.peek(1)
        if nxt.kind == "OP" and nxt.value == "(":
            raise self.error(f"unknown function {name!r}")
        if name in self.scope:
            self.next()
            return Variable(name, pos=tok.pos)
        shown = name if len(name) <= 30 else name[:27] + "..."
        if name.lower() in _ACCESSORS:
            raise self.error(f"unknown name {name!r}: accessors are lower case ({name.lower()})")
        raise self.error(
            f"unknown name {shown!r}: bare words are not allowed; write "
            f'properties["{shown}"] or a quoted string'
        )

    def accessor(self) -> Expr:
        tok = self.next()
        source = str(tok.value)
        nxt = self.peek()
        if not (nxt.kind == "OP" and nxt.value == "["):
            raise self.error(f"expected '[' after {source}: write {source}[\"name\"]", nxt)
        self.next()
        key = self.peek()
        if key.kind != "STR":
            raise self.error(
                f"the name in {source}[...] must be a string literal, found {self.describe(key)}",
                key,
            )
        self.next()
        self.expect_op("]", f"to close {source}[...]")
        return Property(source, str(key.value), pos=tok.pos)

    def list_display(self) -> Expr:
        self.open_bracket()
        open_tok = self.next()
        items: list[Expr] = []
        if self.peek().kind == "OP" and self.peek().value == "]":
            self.next()
            self.nesting -= 1
            return ListExpr((), pos=open_tok.pos)
        while True:
            items.append(self.expr(1))
            tok = self.peek()
            if tok.kind == "OP" and tok.value == ",":
                self.next()
                continue
            if tok.kind == "OP" and tok.value == "]":
                self.next()
                self.nesting -= 1
                return ListExpr(tuple(items), pos=open_tok.pos)
            raise self.error(f"expected ',' or ']' in a list, found {self.describe(tok)}")

    def call(self, name: str) -> Expr:
        tok = self.next()
        self.expect_op("(", f"after {name}")
        self.open_bracket()
        lo, hi = _FUNCTIONS[name]
        if name == "any":
            var = self.peek()
            if var.kind != "WORD" or self.word(var) is not None or var.value in _ACCESSORS:
                raise self.error(
                    "any(...) takes a variable name first, as in any(X, list, X == 1)", var
                )
            self.next()
            self.expect_op(",", "after the variable of any(...)")
            items = self.expr(1)
            self.expect_op(",", "after the list of any(...)")
            self.scope.append(str(var.value))
            try:
                predicate = self.expr(1)
            finally:
                self.scope.pop()
            self.expect_op(")", "to close any(...)")
            self.nesting -= 1
            return AnyExpr(str(var.value), items, predicate, pos=tok.pos)
        args: list[Expr] = []
        if not (self.peek().kind == "OP" and self.peek().value == ")"):
            while True:
                args.append(self.expr(1))
                if self.peek().kind == "OP" and self.peek().value == ",":
                    self.next()
                    continue
                break
        if not (self.peek().kind == "OP" and self.peek().value == ")"):
            raise self.error(
                f"expected ',' or ')' in {name}(...), found {self.describe(self.peek())}"
            )
        close = self.next()
        self.nesting -= 1
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} or {hi}"
            raise WhereSyntaxError(
                f"{name}() takes {want} argument{'s' if hi > 1 else ''}, got {len(args)}",
                self.text,
                close.pos,
            )
        return Call(name, tuple(args), pos=tok.pos)


def _literal_kind(node: Expr) -> str | None:
    """What kind of non-boolean literal ``node`` is, if it is one."""
    if isinstance(node, Negate):
        return "number" if _literal_kind(node.operand) == "number" else None
    if isinstance(node, Literal) and not isinstance(node.value, bool):
        return "string" if isinstance(node.value, str) else "number"
    if isinstance(node, ListExpr):
        return "list"
    if isinstance(node, Now):
        return "number"
    return None


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, (Not, Negate)):
        return (node.operand,)
    if isinstance(node, BoolOp):
        return node.operands
    if isinstance(node, (Compare, Arith)):
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


def _walk(node: Expr) -> Iterator[Expr]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(_children(n)))


def _check_depth(root: Expr, text: str) -> None:
    stack: list[tuple[Expr, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise WhereSyntaxError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)", text, node.pos
            )
        stack.extend((c, depth + 1) for c in _children(node))


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> Expr:
    parser = _Parser(text)
    expr = parser.parse()
    _check_depth(expr, text)
    return expr


def parse_where(text: str) -> Expr:
    """Parse a ``where`` expression into its AST.

    Raises :class:`WhereSyntaxError` (a :class:`ValueError`) with the position.

    Example:
        >>> parse_where('properties["n"] > 2 and not defined(user["x"])')  # doctest: +ELLIPSIS
        BoolOp(op='and', operands=(Compare(op='>', left=Property(...), right=Literal(value=2.0)), ...
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(f"where must be a string, got {type(text).__name__}")
    return _parse_cached(text)


def validate_where(text: str) -> None:
    """Check that ``text`` is a valid ``where`` expression, without running it.

    Raises :class:`WhereSyntaxError` (a :class:`ValueError`) naming the column,
    with a caret under the offending position.

    Example:
        >>> validate_where('properties["$os"] == "Linux"')
        >>> validate_where('properties["$os"] == Linux')
        Traceback (most recent call last):
          ...
        robotmia_frames.where.WhereSyntaxError: invalid where expression: unknown name 'Linux': bare words are not allowed; write properties["Linux"] or a quoted string at column 22
          properties["$os"] == Linux
                               ^
    """
    parse_where(text)


def referenced_columns(expr: Expr | str) -> set[str]:
    """The table columns an expression reads (``time``, ``properties.<key>``).

    Example:
        >>> sorted(referenced_columns('event["$time"] > 0 or properties["a"] == 1'))
        ['properties.a', 'time']
    """
    node = parse_where(expr) if isinstance(expr, str) else expr
    out: set[str] = set()
    for n in _walk(node):
        if isinstance(n, Property):
            if n.source == "properties":
                out.add("time" if n.name == "time" else "properties." + n.name)
            elif n.source == "event" and n.name == "$time":
                out.add("time")
    return out


# ============================================================================= printer

_PREC_ATOM = 9


def _prec(node: Expr) -> int:
    if isinstance(node, BoolOp):
        return _LEVELS[node.op]
    if isinstance(node, Not):
        return _NOT_LEVEL
    if isinstance(node, Compare):
        return _LEVELS["cmp"]
    if isinstance(node, Arith):
        return _LEVELS[node.op]
    if isinstance(node, Negate):
        return _NEG_LEVEL
    if isinstance(node, Literal) and isinstance(node.value, float) and _is_negative(node.value):
        return _NEG_LEVEL
    return _PREC_ATOM


def _is_negative(x: float) -> bool:
    return x < 0 or (x == 0 and math.copysign(1.0, x) < 0)


def _fmt_literal(value: float | str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if math.isnan(value):
        raise ValueError("NaN has no literal form")
    if math.isinf(value):
        text = "1e999"
    elif value.is_integer() and abs(value) < 1e16:
        text = str(int(abs(value)))
    else:
        text = repr(abs(value))
    return "-" + text if _is_negative(value) else text


def format_where(expr: Expr) -> str:
    """Print an AST back to expression text (parentheses only where needed).

    ``parse_where(format_where(e))`` equals ``e`` for any parsed ``e``.

    Example:
        >>> format_where(parse_where('(properties["a"]+1)*2 = 4 OR NOT (true)'))
        '(properties["a"] + 1) * 2 == 4 or not true'
    """
    return _fmt(expr, 1)


def _paren(text: str, node: Expr, min_prec: int) -> str:
    return f"({text})" if _prec(node) < min_prec else text


def _fmt(node: Expr, min_prec: int) -> str:
    out: str
    if isinstance(node, Literal):
        out = _fmt_literal(node.value)
    elif isinstance(node, Now):
        out = "NOW"
    elif isinstance(node, Property):
        out = f"{node.source}[{_fmt_literal(node.name)}]"
    elif isinstance(node, Index):
        out = f"{_fmt(node.target, _PREC_ATOM)}[{_fmt_literal(node.key)}]"
    elif isinstance(node, Variable):
        out = node.name
    elif isinstance(node, ListExpr):
        out = "[" + ", ".join(_fmt(i, 1) for i in node.items) + "]"
    elif isinstance(node, Not):
        out = "not " + _fmt(node.operand, _NOT_LEVEL)
    elif isinstance(node, Negate):
        out = "-" + _fmt(node.operand, _NEG_LEVEL)
    elif isinstance(node, BoolOp):
        level = _LEVELS[node.op]
        out = f" {node.op} ".join(_fmt(o, level + 1) for o in node.operands)
    elif isinstance(node, Compare):
        level = _LEVELS["cmp"]
        out = f"{_fmt(node.left, level + 1)} {node.op} {_fmt(node.right, level + 1)}"
    elif isinstance(node, Arith):
        level = _LEVELS[node.op]
        out = f"{_fmt(node.left, level)} {node.op} {_fmt(node.right, level + 1)}"
    elif isinstance(node, Call):
        out = f"{node.name}(" + ", ".join(_fmt(a, 1) for a in node.args) + ")"
    elif isinstance(node, AnyExpr):
        out = f"any({node.var}, {_fmt(node.items, 1)}, {_fmt(node.predicate, 1)})"
    else:  # pragma: no cover - exhaustive
        raise TypeError(f"not an expression node: {node!r}")
    return _paren(out, node, min_prec)


# =========================================================================== semantics

#: ``datetime(n)``: seconds up to this, milliseconds above.
MAX_SECONDS: Final = 4294967295
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_SECOND = _dt.timedelta(seconds=1)
DECIMAL_PATTERN: Final = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""What ``number("...")`` accepts (anchored at both ends)."""
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)
JSON_NUMBER_PATTERN: Final = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
"""The JSON text of a number (anchored): how folded text columns store numbers."""
_JSON_NUMBER_RE = re.compile(JSON_NUMBER_PATTERN)
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def to_number(value: Any) -> Any:
    """A JSON value made a runtime value: ints become floats, lists recursively.

    Anything that is not a JSON type is undefined.
    """
    t = type(value)
    if t is str or t is bool or t is float or value is None or t is dict:
        return value
    if t is int:
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    if t is list:
        return [to_number(v) for v in value]
    if isinstance(value, (DateTime, _Undefined)):
        return value
    return UNDEFINED


def _is_num(v: Any) -> bool:
    return type(v) is float


def _safe_floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _safe_ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def round_half_away(x: float) -> float:
    """``round()`` of the language: halves away from zero."""
    if not math.isfinite(x):
        return x
    a = abs(x)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return math.copysign(float(r), x)


def fmod(a: float, b: float) -> Any:
    """``%``: C ``fmod`` (the sign of the dividend); by zero: undefined."""
    if b == 0:
        return UNDEFINED
    if math.isnan(a) or math.isnan(b) or math.isinf(a):
        return math.nan
    return math.fmod(a, b)


def format_number(x: float) -> str:
    """``string(number)``: integral numbers without ``.0``, others shortest form."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer():
        return str(int(x))
    return repr(x)


def format_datetime(seconds: float) -> Any:
    """``string(datetime)``: ``YYYY-MM-DDTHH:MM:SS`` (undefined out of range)."""
    if not math.isfinite(seconds):
        return UNDEFINED
    try:
        d = _EPOCH + _dt.timedelta(seconds=math.floor(seconds))
    except OverflowError:
        return UNDEFINED
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def parse_number_text(s: str) -> Any:
    """``number(string)``: a decimal (``[+-]digits[.digits][e[+-]digits]``) or undefined."""
    if _DECIMAL_RE.fullmatch(s):
        return float(s)
    return UNDEFINED


def parse_datetime_text(s: str, tz: ZoneInfo) -> Any:
    """``datetime(string)`` as project-local seconds, or undefined.

    ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS`` (1-digit month/day accepted), with an
    optional fraction and ``Z``/``+HH:MM`` offset. Without an offset the text is
    a wall-clock reading in the project timezone (= the local seconds directly);
    with one, the instant is converted to the project's wall clock.
    """
    m = _DATETIME_RE.fullmatch(s)
    if m is None:
        return UNDEFINED
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    try:
        naive = _dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return UNDEFINED
    whole = (naive - _EPOCH) // _SECOND
    if zone is not None:
        if zone == "Z":
            offset = 0
        else:
            digits = zone[1:].replace(":", "")
            oh, om = int(digits[:2]), int(digits[2:] or 0)
            if oh > 23 or om > 59:
                return UNDEFINED
            offset = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
        try:
            instant = _EPOCH_UTC + _dt.timedelta(seconds=whole - offset)
            wall = instant.astimezone(tz).replace(tzinfo=None)
        except (OverflowError, ValueError):
            return UNDEFINED
        whole = (wall - _EPOCH) // _SECOND
    return whole + (float("0" + frac) if frac else 0.0)


def datetime_of_number(n: float) -> Any:
    """``datetime(number)``: seconds if ``0 < n <= 4294967295``, milliseconds above,
    undefined if ``n <= 0``."""
    if n <= 0:
        return UNDEFINED
    if n > MAX_SECONDS:
        return DateTime(n / 1000)
    return DateTime(n)


def decode_text(cell: str) -> Any:
    """A cell of a folded (mixed-type) string column read back as a value.

    The type policy stores strings as they are and other values as their JSON text,
    so a cell that is exactly the JSON text of a number, boolean, list or object
    reads as that value; any other cell is a string.

    Example:
        >>> decode_text("3"), decode_text("true"), decode_text("[1,2]"), decode_text("n/a")
        (3.0, True, [1.0, 2.0], 'n/a')
    """
    if cell == "true":
        return True
    if cell == "false":
        return False
    if cell in ("Infinity", "-Infinity", "NaN"):
        return float(cell)
    if _JSON_NUMBER_RE.fullmatch(cell):
        return float(cell)
    if cell[:1] in ("[", "{"):
        try:
            value = json.loads(cell)
        except ValueError:
            return cell
        if isinstance(value, (list, dict)):
            return to_number(value)
    return cell


class _Env:
    __slots__ = ("bindings", "now", "props", "tz", "tz_name", "user")

    def __init__(
        self,
        props: Mapping[str, Any],
        tz_name: str,
        now: float,
        bindings: dict[str, Any] | None = None,
        user: Mapping[str, Any] | None = None,
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


def _to_datetime(v: Any, env: _Env) -> Any:
    if type(v) is DateTime:
        return v
    if _is_num(v):
        return datetime_of_number(v)
    if type(v) is str:
        s = parse_datetime_text(v, env.zone())
        return UNDEFINED if s is UNDEFINED else DateTime(s)
    return UNDEFINED


def _coerce(a: Any, b: Any, env: _Env) -> tuple[Any, Any]:
    """The datetime coercion of ``== != < <= > >=``."""
    da, db = type(a) is DateTime, type(b) is DateTime
    if da and not db and (_is_num(b) or type(b) is str):
        c = _to_datetime(b, env)
        if c is not UNDEFINED:
            return a, c
    elif db and not da and (_is_num(a) or type(a) is str):
        c = _to_datetime(a, env)
        if c is not UNDEFINED:
            return c, b
    return a, b


def _tag(v: Any) -> Any:
    t = type(v)
    return t if t is not int else float


def values_equal(a: Any, b: Any, env: _Env) -> bool:
    """``a == b`` of the language (always a boolean)."""
    a, b = _coerce(a, b, env)
    ta, tb = type(a), type(b)
    if ta is not tb:
        return False
    if ta is DateTime:
        return bool(_safe_floor(a.seconds) == _safe_floor(b.seconds))
    if ta is list:
        return len(a) == len(b) and all(values_equal(x, y, env) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(
            values_equal(to_number(a[k]), to_number(b[k]), env) for k in a
        )
    return bool(a == b)


def _order(op: str, a: Any, b: Any, env: _Env) -> Any:
    a, b = _coerce(a, b, env)
    ta = type(a)
    if ta is not type(b):
        return UNDEFINED
    if ta is DateTime:
        x, y = _safe_floor(a.seconds), _safe_floor(b.seconds)
    elif ta is float or ta is str:
        x, y = a, b
    else:
        return UNDEFINED
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _member(a: Any, b: Any, env: _Env) -> Any:
    if type(b) is str:
        return (a in b) if type(a) is str else UNDEFINED
    if type(b) is list:
        return any(values_equal(a, e, env) for e in b)
    return UNDEFINED


def _truthy(v: Any) -> bool:
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


def _eval(node: Expr, env: _Env) -> Any:
    return _EVAL[type(node)](node, env)


def _ev_literal(node: Literal, env: _Env) -> Any:
    return node.value


def _ev_now(node: Now, env: _Env) -> Any:
    return env.now


def _ev_property(node: Property, env: _Env) -> Any:
    if node.source == "properties":
        return to_number(env.props.get(node.name, UNDEFINED))
    if node.source == "event" and node.name == "$time":
        t = to_number(env.props.get("time", UNDEFINED))
        return datetime_of_number(t) if _is_num(t) else _to_datetime(t, env)
    if node.source == "user" and env.user is not None:
        return to_number(env.user.get(node.name, UNDEFINED))
    return UNDEFINED  # user[...] in an export; any other event[...] field


def _ev_index(node: Index, env: _Env) -> Any:
    target = _eval(node.target, env)
    if type(target) is dict:
        return to_number(target.get(node.key, UNDEFINED))
    return UNDEFINED


def _ev_variable(node: Variable, env: _Env) -> Any:
    return env.bindings[node.name]


def _ev_list(node: ListExpr, env: _Env) -> Any:
    return [_eval(i, env) for i in node.items]


def _ev_not(node: Not, env: _Env) -> Any:
    v = _eval(node.operand, env)
    if type(v) is bool:
        return not v
    if v is UNDEFINED or v is None:
        return True
    return UNDEFINED


def _ev_negate(node: Negate, env: _Env) -> Any:
    v = _eval(node.operand, env)
    return -v if _is_num(v) else UNDEFINED


def _ev_boolop(node: BoolOp, env: _Env) -> Any:
    values = [_eval(o, env) for o in node.operands]
    for v in values:
        if type(v) is not bool and v is not UNDEFINED and v is not None:
            return UNDEFINED  # a type error: undefined for this record
    if node.op == "and":
        return all(v is True for v in values)
    return any(v is True for v in values)


def _ev_compare(node: Compare, env: _Env) -> Any:
    a = _eval(node.left, env)
    b = _eval(node.right, env)
    op = node.op
    if op == "==":
        return values_equal(a, b, env)
    if op == "!=":
        return not values_equal(a, b, env)
    if op == "in":
        return _member(a, b, env)
    return _order(op, a, b, env)


def _ev_arith(node: Arith, env: _Env) -> Any:
    a = _eval(node.left, env)
    b = _eval(node.right, env)
    op = node.op
    if _is_num(a) and _is_num(b):
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


def _string(v: Any) -> Any:
    t = type(v)
    if t is str or v is None or v is UNDEFINED:
        return v
    if t is float:
        return format_number(v)
    if t is bool:
        return "true" if v else "false"
    if t is DateTime:
        return format_datetime(v.seconds)
    return UNDEFINED


def _ev_call(node: Call, env: _Env) -> Any:
    name = node.name
    args = node.args
    x = _eval(args[0], env)
    if name == "defined":
        return x is not UNDEFINED
    if name == "boolean":
        return _truthy(x)
    if name == "number":
        if _is_num(x):
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
            return _eval(args[1], env)
        return s
    if name in ("floor", "ceil", "round"):
        if not _is_num(x):
            return UNDEFINED
        if name == "floor":
            return _safe_floor(x)
        if name == "ceil":
            return _safe_ceil(x)
        return round_half_away(x)
    if name == "datetime":
        return _to_datetime(x, env)
    if name == "list":
        return x if type(x) is list else UNDEFINED
    if name == "has_prefix":
        p = _eval(args[1], env)
        if type(x) is str and type(p) is str:
            return x.translate(_ASCII_LOWER).startswith(p.translate(_ASCII_LOWER))
        return UNDEFINED
    raise AssertionError(f"unknown function {name}")  # pragma: no cover - parser checks


def _ev_any(node: AnyExpr, env: _Env) -> Any:
    items = _eval(node.items, env)
    if type(items) is not list:
        return UNDEFINED
    saved = env.bindings
    try:
        for item in items:
            env.bindings = {**saved, node.var: item}
            if _eval(node.predicate, env) is True:
                return True
        return False
    finally:
        env.bindings = saved


_EVAL: dict[type, Callable[[Any, _Env], Any]] = {
    Literal: _ev_literal,
    Now: _ev_now,
    Property: _ev_property,
    Index: _ev_index,
    Variable: _ev_variable,
    ListExpr: _ev_list,
    Not: _ev_not,
    Negate: _ev_negate,
    BoolOp: _ev_boolop,
    Compare: _ev_compare,
    Arith: _ev_arith,
    Call: _ev_call,
    AnyExpr: _ev_any,
}


def evaluate(
    expr: Expr | str,
    event: Mapping[str, Any],
    *,
    project_timezone: str = "UTC",
    now: float | None = None,
    bindings: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
) -> Any:
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
    env = _Env(
        props if isinstance(props, Mapping) else {},
        project_timezone,
        _time.time() if now is None else float(now),
        dict(bindings) if bindings else None,
        user,
    )
    return _eval(node, env)


def matches(
    expr: Expr | str,
    event: Mapping[str, Any],
    *,
    project_timezone: str = "UTC",
    now: float | None = None,
    user: Mapping[str, Any] | None = None,
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


# ======================================================================= Arrow (lazy)


def compile_where(
    where: str | Expr, schema: pa.Schema, *, project_timezone: str = "UTC"
) -> Compiled:
    """Compile an expression against a table schema for :mod:`pyarrow` filtering.

    Returns a :class:`Compiled` with ``.expression`` (a :class:`pyarrow.compute.Expression`
    to push down into a scan, or None) and ``.residual(table)`` (a vectorised
    second pass over the rows that survive it, or None). See :func:`filter_table`.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("time", pa.timestamp("us", tz="UTC")),
        ...                     ("properties.tags", pa.list_(pa.string())),
        ...                     ("properties.n", pa.int64())])
        >>> c = compile_where('properties["n"] > 2 and "a" in properties["tags"]', schema)
        >>> c.expression is not None, c.has_residual
        (True, True)
    """
    from ._where_arrow import compile_where as _compile

    return _compile(where, schema, project_timezone=project_timezone)


def filter_table(table: pa.Table, where: str | Expr, *, project_timezone: str = "UTC") -> pa.Table:
    """The rows of ``table`` that ``where`` keeps, in order.

    ``table`` has the library's columns (``event``, UTC ``time``,
    ``properties.<key>``), as :func:`robotmia_frames.read_export_file` returns
    them with ``return_type="arrow"``; ``project_timezone`` is the project's
    (``properties["time"]`` and ``event["$time"]`` are project-local).

    Example:
        >>> import pyarrow as pa
        >>> t = pa.table({"properties.$os": ["Linux", "iOS", None]})
        >>> filter_table(t, 'properties["$os"] != "iOS"').column(0).to_pylist()
        ['Linux', None]
    """
    from ._where_arrow import filter_table as _filter

    return _filter(table, where, project_timezone=project_timezone)


def __getattr__(name: str) -> Any:
    if name == "Compiled":
        from ._where_arrow import Compiled

        return Compiled
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
