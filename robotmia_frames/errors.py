"""The one error tree of robotmia-frames.

::

    RobotmiaError                    base of everything this library raises on purpose
    ├── AuthenticationError          401/403 from the server (the secret is never shown)
    ├── APIError                     any other non-2xx after retries (.status_code, .server_message)
    ├── IncompleteDownloadError      the body ended early (truncated gzip, short read) after retries
    ├── NetworkError                 connection failures and timeouts after retries
    ├── ParseError (ValueError)      a malformed line with on_bad_lines="error" (.line_number, .source)
    ├── TypeMismatchError            a value that does not fit its dtype= with
    │   (ValueError)                 on_type_mismatch="error" (.column)
    ├── InvalidArgumentError         a bad argument, raised before any request is sent
    │   (ValueError)
    │   └── WhereSyntaxError         a where expression that does not parse
    ├── MetaMismatchError            robotmia_frames.dask: a day does not fit the sampled meta
    └── MemoryBudgetError            the result would not fit max_memory; raised before it is built
        (MemoryError)                (.estimate, .max_memory in bytes)

    RobotmiaWarning (UserWarning)    one per bad line with on_bad_lines="warn", and other notices

Bad arguments raise :class:`InvalidArgumentError`, which is both a
:class:`RobotmiaError` and a :class:`ValueError`, so ``except ValueError`` and
``except RobotmiaError`` both catch them, before any request is sent; a ``where``
expression that does not parse raises its subclass :class:`WhereSyntaxError`.

Every message names what failed (the URL without secrets, the status, the day
window, the line number) and what to do next.

Users catch them from the package (``rf.ParseError``), whose ``__all__`` is the one
list of public names; the library's own modules import them from here.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class RobotmiaError(Exception):
    """Base class of every error robotmia-frames raises on purpose.

    Example:
        >>> try:
        ...     raise ParseError("bad line", line_number=3, source="x.jsonl")
        ... except RobotmiaError as exc:
        ...     exc.line_number
        3
    """


class AuthenticationError(RobotmiaError):
    """The server refused the API secret (HTTP 401 or 403). Never retried."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class APIError(RobotmiaError):
    """A non-2xx answer other than 401/403, after any retries.

    ``status_code`` is the HTTP status; ``server_message`` the ``error`` field of the
    server's JSON body (or the start of its text body), if any.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, server_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message


class IncompleteDownloadError(RobotmiaError):
    """The export body ended early (truncated gzip, short read, "terminated early")."""


class NetworkError(RobotmiaError):
    """Connection failures and timeouts, after retries."""


class ParseError(RobotmiaError, ValueError):
    """A malformed line in an export, with ``on_bad_lines="error"``.

    ``line_number`` is 1-based, counting physical lines of the decompressed body
    (blank lines included); ``source`` names the file or the day window.
    """

    def __init__(self, message: str, *, line_number: int, source: str | None = None) -> None:
        where = f"{source}, line {line_number}" if source else f"line {line_number}"
        super().__init__(f"{where}: {message}")
        self.line_number = line_number
        self.source = source
        self.reason = message

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_parse_error, (self.reason, self.line_number, self.source))


def _parse_error(reason: str, line_number: int, source: str | None) -> ParseError:
    return ParseError(reason, line_number=line_number, source=source)


class TypeMismatchError(RobotmiaError, ValueError):
    """A value that does not fit the type pinned with ``dtype=``, with
    ``on_type_mismatch="error"``; the message names the column, the count, examples
    and the source.

    Example:
        >>> err = TypeMismatchError("properties.Price: 1 value does not fit float64",
        ...                         column="properties.Price")
        >>> isinstance(err, ValueError), err.column
        (True, 'properties.Price')
    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # across processes (Dask workers)
        return (_type_mismatch_error, (str(self), self.column))


def _type_mismatch_error(message: str, column: str | None) -> TypeMismatchError:
    return TypeMismatchError(message, column=column)


class InvalidArgumentError(RobotmiaError, ValueError):
    """A bad argument, raised before any request is sent.

    Both a :class:`RobotmiaError` and a :class:`ValueError`.

    Example:
        >>> issubclass(InvalidArgumentError, ValueError), issubclass(InvalidArgumentError, RobotmiaError)
        (True, True)
    """


class MetaMismatchError(RobotmiaError):
    """A day's columns do not fit the ``meta`` sampled with ``meta_sample="first"``
    (``robotmia_frames.dask``)."""


class MemoryBudgetError(RobotmiaError, MemoryError):
    """The result would need more memory than ``max_memory``: raised from what the
    read has scanned, before the result is built (never an out-of-memory kill).

    ``estimate`` is the estimated peak memory of building the result, ``max_memory``
    the budget, both in bytes. The message names the ways out: ``columns=``,
    ``split_by="event"``, ``sparse_columns="map"``, ``export_to_parquet``, or
    ``max_memory=None`` to turn the check off. Both a :class:`RobotmiaError` and a
    :class:`MemoryError`.

    Example:
        >>> issubclass(MemoryBudgetError, MemoryError)
        True
    """

    def __init__(self, message: str, *, estimate: int, max_memory: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.max_memory = max_memory

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_budget_error, (str(self), self.estimate, self.max_memory))


def _budget_error(message: str, estimate: int, max_memory: int) -> MemoryBudgetError:
    return MemoryBudgetError(message, estimate=estimate, max_memory=max_memory)


class WhereSyntaxError(InvalidArgumentError):
    """A ``where`` expression that cannot be parsed (or has a literal type error).

    A :class:`ValueError`. ``position`` is the 0-based offset in ``expression``,
    ``line`` and ``column`` are 1-based; the message shows the expression (the
    offending line of it) with a caret under the position.

    Example:
        >>> from robotmia_frames.where import parse_where
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

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.reason, self.expression, self.position))


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


class RobotmiaWarning(UserWarning):
    """Issued once per skipped bad line with ``on_bad_lines="warn"``."""


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside
    robotmia_frames (the user's call), for ``warnings.warn`` called by the caller.

    Example:
        >>> user_stacklevel() >= 1
        True
    """
    package = os.path.dirname(__file__) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level
