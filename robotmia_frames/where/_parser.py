"""Text to syntax tree and back: the lexer, the parser and the printer.

The grammar, precedence and error messages follow ``where-expressions.md``
(sections 1 to 3 and 8). Every error is a :class:`WhereSyntaxError` that shows
the expression with a caret under the offending position.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from typing import Final

from ..errors import InvalidArgumentError, WhereSyntaxError
from . import _ast as ast
from ._ast import children
from ._values import Scalar

__all__ = ["MAX_DEPTH", "format_where", "parse_where", "validate_where"]

#: Deepest nesting of the AST (and of brackets) accepted; deeper input is a
#: :class:`WhereSyntaxError`, never a ``RecursionError``.
MAX_DEPTH: Final = 100


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
    value: str  # the string's value for STR, else the token's text
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
            toks.append(_Tok("NUM", text[start:i], start, i))
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
    toks.append(_Tok("EOF", "", n, n))
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
    if c == "$":
        m = re.match(r"\$[A-Za-z0-9_]*", text[i:])
        name = m.group(0) if m and len(m.group(0)) > 1 else "$os"
        return f"unexpected '$': a property is written properties[\"{name}\"]"
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
    def parse(self) -> ast.Expr:
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

    def expr(self, min_level: int) -> ast.Expr:
        """An expression whose operators bind at least as tightly as ``min_level``."""
        self.depth += 1
        try:
            if self.depth > 2 * MAX_DEPTH:
                raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)")
            tok = self.peek()
            w = self.word(tok)
            left: ast.Expr
            if w == "not":
                if min_level > _NOT_LEVEL:
                    raise self.error("'not' cannot appear here: put the operand in parentheses")
                self.next()
                left = ast.Not(self.expr(_NOT_LEVEL), pos=tok.pos)
            elif tok.kind == "OP" and tok.value == "-":
                self.next()
                left = ast.Negate(self.expr(_NEG_LEVEL), pos=tok.pos)
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
                    left = ast.BoolOp(op, tuple(operands), pos=left.pos)
                elif level == _LEVELS["cmp"]:
                    if op == "not in":
                        self.next()  # the 'in'
                    right = self.expr(level + 1)
                    if op == "not in":
                        left = ast.Not(
                            ast.Compare("in", left, right, pos=op_tok.pos), pos=op_tok.pos
                        )
                    else:
                        left = ast.Compare(op, left, right, pos=op_tok.pos)
                    if self.binary_level() is not None and self.binary_level()[0] == level:  # type: ignore[index]
                        raise self.error(
                            "comparisons cannot be chained: combine them with 'and' (a < b and b < c)"
                        )
                else:
                    left = ast.Arith(op, left, self.expr(level + 1), pos=op_tok.pos)
        finally:
            self.depth -= 1

    def check_logic_operand(self, op: str, operand: ast.Expr) -> None:
        what = _literal_kind(operand)
        if what is not None:
            raise WhereSyntaxError(
                f"type error: the operands of '{op}' must be booleans, not a {what} literal",
                self.text,
                operand.pos,
            )

    def index(self, expr: ast.Expr) -> ast.Expr:
        while self.peek().kind == "OP" and self.peek().value == "[":
            open_tok = self.next()
            key = self.peek()
            if key.kind != "STR":
                raise self.error(
                    f"an index must be a string literal, found {self.describe(key)}", key
                )
            self.next()
            self.expect_op("]", "to close the index")
            expr = ast.Index(expr, str(key.value), pos=open_tok.pos)
        return expr

    def primary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "NUM":
            self.next()
            return ast.Literal(float(tok.value), pos=tok.pos)
        if tok.kind == "STR":
            self.next()
            return ast.Literal(str(tok.value), pos=tok.pos)
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
            return ast.Literal(w == "true", pos=tok.pos)
        if w == "now":
            self.next()
            return ast.Now(pos=tok.pos)
        if w in _FUNCTIONS:
            return self.call(str(w))
        if w is not None:
            raise self.error(f"expected a value, found the keyword {self.describe(tok)}")
        nxt = self.peek(1)
        if nxt.kind == "OP" and nxt.value == "(":
            raise self.error(f"unknown function {name!r}")
        if name in self.scope:
            self.next()
            return ast.Variable(name, pos=tok.pos)
        shown = name if len(name) <= 30 else name[:27] + "..."
        if name.lower() in _ACCESSORS:
            raise self.error(f"unknown name {name!r}: accessors are lower case ({name.lower()})")
        raise self.error(
            f"unknown name {shown!r}: bare words are not allowed; write "
            f'properties["{shown}"] or a quoted string'
        )

    def accessor(self) -> ast.Expr:
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
        return ast.Property(source, str(key.value), pos=tok.pos)

    def list_display(self) -> ast.Expr:
        self.open_bracket()
        open_tok = self.next()
        items: list[ast.Expr] = []
        if self.peek().kind == "OP" and self.peek().value == "]":
            self.next()
            self.nesting -= 1
            return ast.ListExpr((), pos=open_tok.pos)
        while True:
            items.append(self.expr(1))
            tok = self.peek()
            if tok.kind == "OP" and tok.value == ",":
                self.next()
                continue
            if tok.kind == "OP" and tok.value == "]":
                self.next()
                self.nesting -= 1
                return ast.ListExpr(tuple(items), pos=open_tok.pos)
            raise self.error(f"expected ',' or ']' in a list, found {self.describe(tok)}")

    def call(self, name: str) -> ast.Expr:
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
            return ast.AnyExpr(str(var.value), items, predicate, pos=tok.pos)
        args: list[ast.Expr] = []
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
        return ast.Call(name, tuple(args), pos=tok.pos)


def _literal_kind(node: ast.Expr) -> str | None:
    """What kind of non-boolean literal ``node`` is, if it is one."""
    if isinstance(node, ast.Negate):
        return "number" if _literal_kind(node.operand) == "number" else None
    if isinstance(node, ast.Literal) and not isinstance(node.value, bool):
        return "string" if isinstance(node.value, str) else "number"
    if isinstance(node, ast.ListExpr):
        return "list"
    if isinstance(node, ast.Now):
        return "number"
    return None


def _check_depth(root: ast.Expr, text: str) -> None:
    stack: list[tuple[ast.Expr, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise WhereSyntaxError(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)", text, node.pos
            )
        stack.extend((c, depth + 1) for c in children(node))


@functools.lru_cache(maxsize=512)
def _parse_cached(text: str) -> ast.Expr:
    parser = _Parser(text)
    expr = parser.parse()
    _check_depth(expr, text)
    return expr


def parse_where(text: str) -> ast.Expr:
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
        robotmia_frames.errors.WhereSyntaxError: invalid where expression: unknown name 'Linux': bare words are not allowed; write properties["Linux"] or a quoted string at column 22
          properties["$os"] == Linux
                               ^
    """
    parse_where(text)


# ============================================================================= printer

_PREC_ATOM = 9


def _prec(node: ast.Expr) -> int:
    if isinstance(node, ast.BoolOp):
        return _LEVELS[node.op]
    if isinstance(node, ast.Not):
        return _NOT_LEVEL
    if isinstance(node, ast.Compare):
        return _LEVELS["cmp"]
    if isinstance(node, ast.Arith):
        return _LEVELS[node.op]
    if isinstance(node, ast.Negate):
        return _NEG_LEVEL
    if isinstance(node, ast.Literal) and isinstance(node.value, float) and _is_negative(node.value):
        return _NEG_LEVEL
    return _PREC_ATOM


def _is_negative(x: float) -> bool:
    return x < 0 or (x == 0 and math.copysign(1.0, x) < 0)


def _fmt_literal(value: Scalar) -> str:
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


def format_where(expr: ast.Expr) -> str:
    """Print an AST back to expression text (parentheses only where needed).

    ``parse_where(format_where(e))`` equals ``e`` for any parsed ``e``.

    Example:
        >>> format_where(parse_where('(properties["a"]+1)*2 = 4 OR NOT (true)'))
        '(properties["a"] + 1) * 2 == 4 or not true'
    """
    return _fmt(expr, 1)


def _paren(text: str, node: ast.Expr, min_prec: int) -> str:
    return f"({text})" if _prec(node) < min_prec else text


def _fmt(node: ast.Expr, min_prec: int) -> str:
    out: str
    if isinstance(node, ast.Literal):
        out = _fmt_literal(node.value)
    elif isinstance(node, ast.Now):
        out = "NOW"
    elif isinstance(node, ast.Property):
        out = f"{node.source}[{_fmt_literal(node.name)}]"
    elif isinstance(node, ast.Index):
        out = f"{_fmt(node.target, _PREC_ATOM)}[{_fmt_literal(node.key)}]"
    elif isinstance(node, ast.Variable):
        out = node.name
    elif isinstance(node, ast.ListExpr):
        out = "[" + ", ".join(_fmt(i, 1) for i in node.items) + "]"
    elif isinstance(node, ast.Not):
        out = "not " + _fmt(node.operand, _NOT_LEVEL)
    elif isinstance(node, ast.Negate):
        out = "-" + _fmt(node.operand, _NEG_LEVEL)
    elif isinstance(node, ast.BoolOp):
        level = _LEVELS[node.op]
        out = f" {node.op} ".join(_fmt(o, level + 1) for o in node.operands)
    elif isinstance(node, ast.Compare):
        level = _LEVELS["cmp"]
        out = f"{_fmt(node.left, level + 1)} {node.op} {_fmt(node.right, level + 1)}"
    elif isinstance(node, ast.Arith):
        level = _LEVELS[node.op]
        out = f"{_fmt(node.left, level)} {node.op} {_fmt(node.right, level + 1)}"
    elif isinstance(node, ast.Call):
        out = f"{node.name}(" + ", ".join(_fmt(a, 1) for a in node.args) + ")"
    elif isinstance(node, ast.AnyExpr):
        out = f"any({node.var}, {_fmt(node.items, 1)}, {_fmt(node.predicate, 1)})"
    else:  # pragma: no cover - exhaustive
        raise TypeError(f"not an expression node: {node!r}")
    return _paren(out, node, min_prec)
