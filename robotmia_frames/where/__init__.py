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

:func:`row_mask` evaluates it on the raw lines (or objects) of a source, one
boolean per record: what a saved export's reader uses when the expression reads a
column that the type policy folded to text because its values mix types
(:func:`folded_columns`), where a table no longer tells ``5`` from ``"5"``.

:func:`parse_where` gives the typed AST (frozen dataclasses);
:func:`validate_where` checks an expression without running it. Errors are
:class:`WhereSyntaxError`, a :class:`ValueError` whose message shows the
expression with a caret under the offending position.

Values (:data:`Value`): strings, numbers (one type, doubles), booleans, lists,
objects, datetimes (:class:`DateTime`, project-local wall-clock seconds), ``None``
(JSON null) and :data:`UNDEFINED` (a missing key).

Example:
    >>> event = {"event": "Purchase", "properties": {"time": 1704103200, "$os": "Linux"}}
    >>> matches('properties["$os"] == "Linux"', event)
    True
    >>> matches('not defined(properties["city"])', event)
    True
"""

from ..errors import WhereSyntaxError
from ._arrow import Compiled, compile_where, filter_table
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
)
from ._evaluate import evaluate, matches
from ._parser import MAX_DEPTH, format_where, parse_where, validate_where
from ._raw import Mask, folded_columns, row_mask
from ._values import UNDEFINED, DateTime, Json, Value

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
    "Json",
    "ListExpr",
    "Literal",
    "Mask",
    "Negate",
    "Not",
    "Now",
    "Property",
    "Value",
    "Variable",
    "WhereSyntaxError",
    "compile_where",
    "evaluate",
    "filter_table",
    "folded_columns",
    "format_where",
    "matches",
    "parse_where",
    "referenced_columns",
    "row_mask",
    "validate_where",
]


def referenced_columns(expr: Expr | str) -> set[str]:
    """The table columns an expression reads (``time``, ``properties.<key>``).

    Example:
        >>> sorted(referenced_columns('event["$time"] > 0 or properties["a"] == 1'))
        ['properties.a', 'time']
    """
    return columns_of(parse_where(expr) if isinstance(expr, str) else expr)
