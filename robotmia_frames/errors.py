"""The one error tree of robotmia-frames.

::

    RobotmiaError                    base of everything this library raises on purpose
    ├── AuthenticationError          401/403 from the server (the secret is never shown)
    ├── APIError                     any other non-2xx after retries (.status_code, .server_message)
    ├── IncompleteDownloadError      the body ended early (truncated gzip, short read) after retries
    ├── NetworkError                 connection failures and timeouts after retries
    └── ParseError                   a malformed line with on_bad_lines="error" (.line_number, .source)

    RobotmiaWarning (UserWarning)    one per bad line with on_bad_lines="warn"

Bad arguments raise :class:`ValueError` (``InvalidArgumentError`` is the subclass we
use, so ``except ValueError`` works) before any request is sent.

Every message names what failed (the URL without secrets, the status, the day
window, the line number) and what to do next.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "IncompleteDownloadError",
    "InvalidArgumentError",
    "NetworkError",
    "ParseError",
    "RobotmiaError",
    "RobotmiaWarning",
]


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


class InvalidArgumentError(ValueError):
    """A bad argument, raised before any request is sent. A :class:`ValueError`."""


class RobotmiaWarning(UserWarning):
    """Issued once per skipped bad line with ``on_bad_lines="warn"``."""
