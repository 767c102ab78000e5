"""The transport stage: one export window from the server to a verified local file.

This module speaks HTTP and nothing else. It sends the documented request (HTTP
Basic auth with the API secret, ``Accept-Encoding: gzip``), retries what is worth
retrying (429, 5xx, resets, timeouts, truncated bodies) with exponential backoff and
full jitter, and streams the body, still compressed as received, to a hidden
temporary file next to the destination. The body is verified while it streams (the
gzip trailer of every member, the Content-Length, the server's "terminated early"
marker); only a complete body is fsync'd and atomically renamed onto the
destination. Parsing is the next stage's business.

Example:
    >>> import datetime, pathlib
    >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
    >>> request = WindowRequest(datetime.date(2024, 1, 5), datetime.date(2024, 1, 5))
    >>> request.params()
    {'from_date': '2024-01-05', 'to_date': '2024-01-05'}
    >>> # result = download_window(config, request, pathlib.Path("2024-01-05.jsonl.gz"))
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import email.utils
import http.client
import ipaddress
import json
import logging
import math
import os
import random
import ssl
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from robotmia_frames._fsutil import fsync_dir
from robotmia_frames._redact import redact, redact_url, register_secret
from robotmia_frames._version import __version__
from robotmia_frames.errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    InvalidArgumentError,
    NetworkError,
    RobotmiaError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "REGION_URLS",
    "AttemptFailed",
    "DownloadResult",
    "RateLimit",
    "RateLimiter",
    "RetryEvent",
    "TransportConfig",
    "WindowRequest",
    "body_failure",
    "download_window",
    "final_error",
    "is_loopback_host",
    "make_session",
    "open_response",
    "retry_delay",
    "validate_base_url",
]

logger = logging.getLogger("robotmia_frames.transport")

DEFAULT_BASE_URL = "https://data.robotmia.com/api/2.0/export/"
#: Export endpoints by data-residency region (``region=``); ``base_url`` overrides.
REGION_URLS = {
    "us": DEFAULT_BASE_URL,
    "eu": "https://data-eu.robotmia.com/api/2.0/export/",
    "in": "https://data-in.robotmia.com/api/2.0/export/",
}
DEFAULT_USER_AGENT = f"robotmia-frames/{__version__}"

#: Size of one raw read from the socket and of one bounded decompression step.
CHUNK_SIZE = 1 << 20
#: Redirects followed per attempt (same scheme, host and port only).
MAX_REDIRECTS = 5
#: How much of an error body is read to find the server's message.
_ERROR_BODY_LIMIT = 64 * 1024
#: How much of a text error body ends up in ``APIError.server_message``.
_SERVER_MESSAGE_LIMIT = 500
#: Decompressed bytes kept to inspect the last line (a longer line is data, not a marker).
_TAIL_LIMIT = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_TERMINATED_EARLY = b"terminated early"
_CORE_PARAMS = frozenset({"from_date", "to_date", "event", "where"})


# --------------------------------------------------------------------------- URLs


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` names this machine: ``localhost``, ``127.x.y.z`` or ``::1``.

    Only the text is looked at (no DNS); case and IPv6 brackets do not matter.

    Example:
        >>> [is_loopback_host(h) for h in ("LOCALHOST", "127.1.2.3", "[::1]", "10.0.0.1")]
        [True, True, True, False]
    """
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def validate_base_url(url: str) -> str:
    """Check an export URL before any request: http(s) with a host, https unless loopback.

    Plain ``http://`` would send the API secret in clear text, so it is only accepted
    for loopback hosts (local servers and tests). Returns ``url`` unchanged.

    Example:
        >>> validate_base_url("http://127.0.0.1:8080/api/2.0/export/")
        'http://127.0.0.1:8080/api/2.0/export/'
        >>> validate_base_url("http://data.robotmia.com/api/2.0/export/")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robotmia_frames.errors.InvalidArgumentError: Refusing http://data.robotmia.com/api/2.0/export/: ...
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgumentError("base_url must be a non-empty http(s) URL")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidArgumentError(f"base_url {shown!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidArgumentError(
            f"base_url {shown!r} must start with https:// (got scheme {scheme or 'none'!r})"
        )
    if not host:
        raise InvalidArgumentError(f"base_url {shown!r} has no host")
    if scheme == "http" and not is_loopback_host(host):
        raise InvalidArgumentError(
            f"Refusing {shown}: over http:// the API secret would travel in clear text. "
            "Use https:// (plain http is only allowed for loopback hosts such as "
            "localhost, 127.0.0.1 and ::1)."
        )
    return url


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, repr=False)
class TransportConfig:
    """How to reach the export endpoint, and how patiently.

    ``max_retries`` counts retries after the first try. ``verify`` is ``True``, ``False``
    or the path of a CA bundle. The secret is never shown by ``repr``.

    Example:
        >>> TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret", max_retries=2)
        ... # doctest: +ELLIPSIS
        TransportConfig(base_url='https://data.robotmia.com/api/2.0/export/', api_secret='***', ...)
    """

    base_url: str
    api_secret: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    verify: bool | str = True
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        if not isinstance(self.api_secret, str) or not self.api_secret:
            raise InvalidArgumentError(
                "No API secret: pass api_secret or set ROBOTMIA_API_SECRET "
                "(Project Settings in robotmia)."
            )
        register_secret(self.api_secret)
        validate_base_url(self.base_url)
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive number of seconds")
        for name in ("backoff_base", "backoff_max", "max_retry_after"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise InvalidArgumentError(f"{name} must be a number of seconds >= 0")
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise InvalidArgumentError("max_retries must be an integer >= 0")
        if isinstance(self.verify, str):
            if not os.path.exists(self.verify):
                raise InvalidArgumentError(
                    f"verify={self.verify!r}: no such CA bundle file or directory"
                )
        elif not isinstance(self.verify, bool):
            raise InvalidArgumentError("verify must be True, False or the path of a CA bundle")

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            if f.name == "api_secret":
                shown.append("api_secret='***'")
            elif f.name == "base_url":
                shown.append(f"base_url={redact_url(self.base_url)!r}")
            else:
                shown.append(f"{f.name}={getattr(self, f.name)!r}")
        return redact(f"TransportConfig({', '.join(shown)})")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class WindowRequest:
    """One export request: a range of project-timezone days, optional events and ``where``.

    Example:
        >>> import datetime
        >>> r = WindowRequest(datetime.date(2024, 1, 1), datetime.date(2024, 1, 7),
        ...                   event=("play song", "log in"))
        >>> r.label
        '2024-01-01..2024-01-07'
        >>> r.params()["event"]
        '["play song","log in"]'
    """

    from_date: datetime.date
    to_date: datetime.date
    event: tuple[str, ...] | None = None
    where: str | None = None
    extra_params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("from_date", "to_date"):
            value = getattr(self, name)
            if isinstance(value, datetime.datetime):
                object.__setattr__(self, name, value.date())
            elif not isinstance(value, datetime.date):
                raise InvalidArgumentError(f"{name} must be a datetime.date, got {value!r}")
        if self.from_date > self.to_date:
            raise InvalidArgumentError(
                f"from_date {self.from_date.isoformat()} is after to_date "
                f"{self.to_date.isoformat()}"
            )
        event: object = self.event
        if event is not None:
            # A lone string is one event name, not a sequence of characters.
            events: tuple[object, ...]
            if isinstance(event, str):
                events = (event,)
            elif isinstance(event, (list, tuple)):
                events = tuple(event)
            else:
                raise InvalidArgumentError("event must be a tuple or list of event names")
            if not events:
                raise InvalidArgumentError(
                    "event must name at least one event (use event=None for all events)"
                )
            if not all(isinstance(e, str) for e in events):
                raise InvalidArgumentError("event names must be strings")
            object.__setattr__(self, "event", events)
        if self.where is not None and not isinstance(self.where, str):
            raise InvalidArgumentError("where must be a string or None")
        extra = tuple((str(k), str(v)) for k, v in self.extra_params)
        clash = sorted({k for k, _ in extra} & _CORE_PARAMS)
        if clash:
            raise InvalidArgumentError(f"extra_params may not set {', '.join(clash)}")
        object.__setattr__(self, "extra_params", extra)

    @property
    def label(self) -> str:
        """The window as shown in messages: ``2024-01-05`` or ``2024-01-01..2024-01-07``."""
        start, end = self.from_date.isoformat(), self.to_date.isoformat()
        return start if start == end else f"{start}..{end}"

    def params(self) -> dict[str, str]:
        """The query parameters, exactly as sent.

        Example:
            >>> import datetime
            >>> WindowRequest(datetime.date(2024, 1, 5), datetime.date(2024, 1, 5),
            ...               where='properties["$os"]=="Linux"').params()["where"]
            'properties["$os"]=="Linux"'
        """
        out = {"from_date": self.from_date.isoformat(), "to_date": self.to_date.isoformat()}
        if self.event is not None:
            out["event"] = json.dumps(list(self.event), ensure_ascii=False, separators=(",", ":"))
        if self.where is not None:
            out["where"] = self.where
        out.update(self.extra_params)
        return out


@dataclass(frozen=True)
class DownloadResult:
    """A verified body on disk, still compressed as received (``compressed``: gzip or not)."""

    path: Path
    compressed: bool
    bytes_received: int
    attempts: int
    request: WindowRequest


@dataclass(frozen=True)
class RetryEvent:
    """Reported to ``on_retry`` before sleeping: try number ``attempt`` failed for ``reason``."""

    attempt: int
    delay: float
    reason: str
    status_code: int | None = None


# --------------------------------------------------------------------------- sessions


def make_session(
    *, user_agent: str = DEFAULT_USER_AGENT, pool_maxsize: int = 10
) -> requests.Session:
    """A ``requests.Session`` for the export endpoint (our User-Agent, a connection pool).

    Environment proxies and CA settings are honoured as usual. Close it when done.

    Example:
        >>> with make_session() as session:
        ...     session.headers["User-Agent"].startswith("robotmia-frames/")
        True
    """
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --------------------------------------------------------------------------- failures


class _AttemptFailed(Exception):
    """One try failed. ``kind`` picks the public exception if it is the last one."""

    def __init__(
        self,
        kind: str,
        reason: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        server_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(redact(reason))
        self.kind = kind  # "auth" | "status" | "network" | "incomplete"
        self.reason = redact(reason)
        self.retryable = retryable
        self.status_code = status_code
        self.server_message = server_message
        self.retry_after = retry_after


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and exceptions carried in ``args``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        todo.extend(a for a in cur.args if isinstance(a, BaseException))
        for nxt in (cur.__cause__, cur.__context__):
            if nxt is not None:
                todo.append(nxt)


def _is_cert_failure(exc: BaseException) -> bool:
    for cur in _chain(exc):
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(cur):
            return True
    return False


def _is_truncation(exc: BaseException) -> bool:
    for cur in _chain(exc):
        if isinstance(cur, http.client.IncompleteRead):
            return True
        if "ended prematurely" in str(cur):
            return True
    return False


def _describe(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- body verification


class _Truncated(Exception):
    """The body is incomplete or corrupt; retryable."""


class _BodyVerifier:
    """Checks a body chunk by chunk: gzip members to their trailers, then the last line.

    Decompressed output is thrown away except a tail used to look at the last line.
    """

    def __init__(self) -> None:
        self.compressed: bool | None = None
        self._head = b""
        self._inflater: zlib._Decompress | None = None
        self._state = "member"  # gzip: "member" | "between" | "padding"
        self._tail = b""
        self._tail_seen = 0  # total bytes passed through the tail

    def feed(self, data: bytes) -> None:
        if self.compressed is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self.compressed = data.startswith(_GZIP_MAGIC)
            if self.compressed:
                self._inflater = zlib.decompressobj(wbits=31)
        if self.compressed:
            self._inflate(data)
        else:
            self._keep(data)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._state == "padding":
                if data.strip(b"\x00"):
                    raise _Truncated("non-zero bytes after the gzip padding")
                return
            if self._state == "between":
                if data[0] == 0:
                    self._state = "padding"
                    continue
                self._inflater = zlib.decompressobj(wbits=31)
                self._state = "member"
            inflater = self._inflater
            assert inflater is not None
            try:
                while True:
                    out = inflater.decompress(data, CHUNK_SIZE)
                    self._keep(out)
                    data = inflater.unconsumed_tail
                    if inflater.eof or (not data and len(out) < CHUNK_SIZE):
                        break
            except zlib.error as exc:
                raise _Truncated(f"corrupt gzip data ({exc})") from exc
            if not inflater.eof:
                return
            self._state = "between"
            data = inflater.unused_data

    def _keep(self, out: bytes) -> None:
        if out:
            self._tail = (self._tail + out)[-_TAIL_LIMIT:]
            self._tail_seen += len(out)

    def finish(self) -> None:
        """Raise :class:`_Truncated` unless the body is complete."""
        if self.compressed is None:
            if self._head == _GZIP_MAGIC[:1]:
                raise _Truncated("the gzip body ended after one byte")
            self.compressed = False
            self._keep(self._head)
            self._head = b""
        if self.compressed:
            inflater = self._inflater
            assert inflater is not None
            if self._state == "member":
                try:
                    self._keep(inflater.flush())
                except zlib.error as exc:  # pragma: no cover - flush rarely raises
                    raise _Truncated(f"corrupt gzip data ({exc})") from exc
                if not inflater.eof:
                    raise _Truncated("the gzip stream ended before its trailer")
        line = self._last_line()
        if line is None or _is_json_object(line):
            return
        shown = line[:200].decode("utf-8", "replace")
        if _TERMINATED_EARLY in line.lower():
            raise _Truncated(f"the server terminated the export early ({shown!r})")
        if line.startswith(b"{") and not self._tail.endswith(b"\n"):
            # Every line of an export ends with a newline: a body that stops inside
            # what starts as an export line but is not a whole JSON object was cut off
            # (a plain body without Content-Length has no other sign of it).
            raise _Truncated(f"the body ends in the middle of a line ({shown[-80:]!r})")

    def _last_line(self) -> bytes | None:
        text = self._tail.rstrip()
        if not text:
            return None
        cut = text.rfind(b"\n")
        if cut < 0 and self._tail_seen > len(self._tail):
            return None  # a line longer than the tail: data, not a marker
        return text[cut + 1 :].strip()


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


# --------------------------------------------------------------------------- one attempt


def _send(
    session: requests.Session,
    config: TransportConfig,
    url: str,
    params: dict[str, str] | None,
    *,
    method: str = "GET",
    data: dict[str, str] | None = None,
) -> requests.Response:
    try:
        return session.request(
            method,
            url,
            params=params,
            data=data,
            auth=HTTPBasicAuth(config.api_secret.encode("utf-8"), b""),
            headers={"Accept-Encoding": "gzip", "User-Agent": config.user_agent},
            stream=True,
            timeout=(config.connect_timeout, config.read_timeout),
            allow_redirects=False,
            verify=config.verify,
        )
    except requests.exceptions.SSLError as exc:
        if _is_cert_failure(exc):
            raise _AttemptFailed(
                "network",
                f"TLS certificate verification failed ({_describe(exc)}); pass verify= with "
                "the path of the right CA bundle",
                retryable=False,
            ) from exc
        raise _AttemptFailed("network", f"TLS error ({_describe(exc)})", retryable=True) from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise _AttemptFailed(
            "network",
            f"connecting timed out after {config.connect_timeout:g} s ({_describe(exc)})",
            retryable=True,
        ) from exc
    except requests.exceptions.Timeout as exc:
        raise _AttemptFailed(
            "network",
            f"no answer within read_timeout={config.read_timeout:g} s ({_describe(exc)})",
            retryable=True,
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        raise _AttemptFailed(
            "network", f"connection failed ({_describe(exc)})", retryable=True
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise _AttemptFailed(
            "network", f"request failed ({_describe(exc)})", retryable=False
        ) from exc


def _attempt(
    session: requests.Session,
    config: TransportConfig,
    request: WindowRequest,
    sink: IO[bytes],
) -> tuple[bool, int]:
    """One try, redirects included. Returns ``(compressed, bytes_received)``."""
    url = config.base_url
    params: dict[str, str] | None = request.params()
    origin = _origin(url)
    for _hop in range(MAX_REDIRECTS + 1):
        resp = _send(session, config, url, params)
        try:
            status = resp.status_code
            if status == 200:
                return _receive(resp, config, sink)
            if 300 <= status < 400 and resp.headers.get("Location"):
                target = urljoin(resp.url or url, resp.headers["Location"])
                if _origin(target) != origin:
                    raise _AttemptFailed(
                        "status",
                        f"the server redirected (HTTP {status}) to another host or scheme "
                        f"({redact_url(target)}); the request was not followed so that the "
                        "API secret is not sent there",
                        retryable=False,
                        status_code=status,
                    )
                url, params = target, None  # the Location carries its own query
                continue
            _fail_on_status(resp, config)
        finally:
            resp.close()
    raise _AttemptFailed(
        "status", f"more than {MAX_REDIRECTS} redirects", retryable=False, status_code=status
    )


def _server_message(resp: requests.Response) -> str | None:
    try:
        raw = resp.raw.read(_ERROR_BODY_LIMIT, decode_content=True) if resp.raw else b""
    except Exception:  # a broken error body must not hide the status
        return None
    if not raw:
        return None
    text = raw.decode(resp.encoding or "utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return redact(body["error"])
    return redact(text.strip()[:_SERVER_MESSAGE_LIMIT]) or None


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _fail_on_status(resp: requests.Response, config: TransportConfig) -> NoReturn:
    status = resp.status_code
    message = _server_message(resp)
    if status in (401, 403):
        raise _AttemptFailed(
            "auth", f"HTTP {status}", retryable=False, status_code=status, server_message=message
        )
    retryable = status == 429 or status >= 500
    raise _AttemptFailed(
        "status",
        f"HTTP {status}" + (f": {message}" if message else ""),
        retryable=retryable,
        status_code=status,
        server_message=message,
        retry_after=_parse_retry_after(resp.headers.get("Retry-After")) if retryable else None,
    )


def _body_failure(exc: BaseException, received: int, config: TransportConfig) -> _AttemptFailed:
    """Classify an error raised while reading a body (all of them are retryable)."""
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return _AttemptFailed(
            "network",
            f"the body stalled for more than read_timeout={config.read_timeout:g} s "
            f"after {received} bytes",
            retryable=True,
        )
    if _is_truncation(exc):
        return _AttemptFailed(
            "incomplete",
            f"the body was cut off after {received} bytes ({_describe(exc)})",
            retryable=True,
        )
    return _AttemptFailed(
        "network",
        f"the connection broke after {received} bytes ({_describe(exc)})",
        retryable=True,
    )


def _receive(resp: requests.Response, config: TransportConfig, sink: IO[bytes]) -> tuple[bool, int]:
    """Stream the raw (still encoded) body into ``sink``, verifying it on the way."""
    expected: int | None = None
    if "chunked" not in resp.headers.get("Transfer-Encoding", "").lower():
        with suppress(ValueError):
            expected = int(resp.headers.get("Content-Length", ""))
    verifier = _BodyVerifier()
    received = 0
    chunks = resp.raw.stream(CHUNK_SIZE, decode_content=False)
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise _body_failure(exc, received, config) from exc
        if not chunk:
            continue
        sink.write(chunk)
        received += len(chunk)
        try:
            verifier.feed(chunk)
        except _Truncated as exc:
            raise _AttemptFailed("incomplete", str(exc), retryable=True) from exc.__cause__
    if expected is not None and received < expected:
        raise _AttemptFailed(
            "incomplete",
            f"the body ended after {received} of {expected} bytes (Content-Length)",
            retryable=True,
        )
    try:
        verifier.finish()
    except _Truncated as exc:
        raise _AttemptFailed(
            "incomplete", f"{exc} after {received} bytes", retryable=True
        ) from exc.__cause__
    return bool(verifier.compressed), received


# --------------------------------------------------------------------------- retries


def _retry_delay(config: TransportConfig, attempt: int, retry_after: float | None) -> float:
    """Full-jitter backoff for the retry after try ``attempt`` (1-based)."""
    cap = min(config.backoff_max, config.backoff_base * 2.0 ** min(attempt - 1, 60))
    delay = random.uniform(0.0, cap)
    if retry_after is not None:
        jitter = random.uniform(0.0, min(1.0, config.backoff_base))
        delay = min(config.max_retry_after, max(retry_after, jitter))
    return delay


def _final_error(
    failure: _AttemptFailed, attempts: int, config: TransportConfig, request: WindowRequest
) -> RobotmiaError:
    return final_error(failure, attempts, config, f"window {request.label}")


_EXPORT_HINTS = {
    400: " Check the dates, the event names and the where expression.",
    404: f" Check base_url (the export endpoint is {DEFAULT_BASE_URL}).",
}


def final_error(
    failure: _AttemptFailed,
    attempts: int,
    config: TransportConfig,
    label: str,
    *,
    hints: Mapping[int, str] | None = None,
) -> RobotmiaError:
    """The public error for the last failed try of a request (``label`` names it).

    ``hints`` maps HTTP statuses to advice appended to the message (default: the
    export endpoint's). Used by every endpoint, so messages read the same.

    Example:
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
        >>> failure = AttemptFailed("status", "HTTP 503", retryable=True, status_code=503)
        >>> str(final_error(failure, 6, config, "window 2024-01-05"))  # doctest: +ELLIPSIS
        'robotmia answered HTTP 503 for https://data.robotmia.com/... after 6 attempts: ...'
    """
    url = redact_url(config.base_url)
    where = f"{url} ({label})"
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    if failure.kind == "auth":
        detail = failure.server_message or "no message"
        return AuthenticationError(
            redact(
                f"robotmia rejected the API secret (HTTP {failure.status_code}) for {where}: "
                f"{detail}. Check ROBOTMIA_API_SECRET / api_secret."
            ),
            status_code=failure.status_code,
        )
    if failure.kind == "status":
        if failure.status_code is None or failure.status_code < 400:
            text = f"Could not download {where}: {failure.reason}."
        else:
            hint = (_EXPORT_HINTS if hints is None else hints).get(failure.status_code, "")
            if failure.retryable:
                hint = " The server kept failing; try again later or raise max_retries."
            detail = failure.server_message or "no message"
            after = f" after {tries}" if attempts > 1 else ""
            text = (
                f"robotmia answered HTTP {failure.status_code} for {where}{after}: {detail}.{hint}"
            )
        return APIError(
            redact(text), status_code=failure.status_code, server_message=failure.server_message
        )
    if failure.kind == "incomplete":
        return IncompleteDownloadError(
            redact(
                f"The export {where} arrived incomplete after {tries}: {failure.reason}. "
                "Nothing was kept; try again later."
            )
        )
    return NetworkError(
        redact(
            f"Could not download {where} after {tries}: {failure.reason}. "
            "Check the network (large exports may need a longer read_timeout)."
        )
    )


# ------------------------------------------------------------------ rate limiting


@dataclass(frozen=True)
class RateLimit:
    """Query budget of the export API: per hour, per second, and at once.

    The defaults follow robotmia's documented limits (60 queries an hour, 3 a
    second); ``None`` switches a limit off.

    Example:
        >>> RateLimit().per_hour
        60
    """

    per_hour: int | None = 60
    per_second: int | None = 3
    concurrent: int | None = 5

    def __post_init__(self) -> None:
        for name in ("per_hour", "per_second", "concurrent"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidArgumentError(
                    f"RateLimit.{name} must be a positive int or None, got {value!r}"
                )


class RateLimiter:
    """A thread-safe scheduler enforcing a :class:`RateLimit` as sliding windows.

    Every HTTP attempt (retries included) counts as one query when it starts, and
    holds one of the ``concurrent`` slots while it runs. At most ``per_second``
    queries start in any interval of one second, and at most ``per_hour`` in any
    interval of an hour (a sliding window, not a token bucket: a bucket would let a
    burst at the end of one second or hour follow a full one, and break the
    server's limit). A ``Retry-After`` from the server pauses every caller until
    it has passed. Share one limiter between calls (``rate_limit=limiter``) to keep
    one budget across them.

    Example:
        >>> limiter = RateLimiter(RateLimit(per_hour=None, per_second=None))
        >>> with limiter.slot():
        ...     pass
        >>> limiter.queries
        1
    """

    def __init__(
        self, limit: RateLimit | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit or RateLimit()
        self._clock = clock
        self._cond = threading.Condition()
        # (window length in seconds, most queries starting in it, their start times)
        self._windows: list[tuple[float, int, collections.deque[float]]] = []
        if self.limit.per_hour is not None:
            self._windows.append((3600.0, self.limit.per_hour, collections.deque()))
        if self.limit.per_second is not None:
            self._windows.append((1.0, self.limit.per_second, collections.deque()))
        self._running = 0
        self._paused_until = 0.0
        self.queries = 0
        self.waited = 0.0

    def __repr__(self) -> str:
        limit = self.limit
        return (
            f"RateLimiter(per_hour={limit.per_hour!r}, per_second={limit.per_second!r}, "
            f"concurrent={limit.concurrent!r}, queries={self.queries})"
        )

    def expected_wait(self) -> float:
        """Seconds until the next query may start (0 when the budget allows it now)."""
        with self._cond:
            return self._wait_locked(self._clock())

    def _wait_locked(self, now: float) -> float:
        wait = max(0.0, self._paused_until - now)
        for length, most, starts in self._windows:
            while starts and starts[0] <= now - length:
                starts.popleft()
            if len(starts) >= most:
                # the query that frees a place is the one `most` places from the end
                wait = max(wait, starts[-most] + length - now)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (a server's ``Retry-After``)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for the budget and a free slot; hold the slot for the attempt."""
        start = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                wait = self._wait_locked(now)
                busy = self.limit.concurrent is not None and self._running >= self.limit.concurrent
                if wait <= 0 and not busy:
                    break
                self._cond.wait(timeout=min(wait, 1.0) if wait > 0 else 1.0)
            for _, _, starts in self._windows:
                starts.append(now)
            self._running += 1
            self.queries += 1
            self.waited += now - start
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


def download_window(
    config: TransportConfig,
    request: WindowRequest,
    dest: Path,
    *,
    session: requests.Session | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
) -> DownloadResult:
    """Download one export window to ``dest``, complete and verified, or raise.

    The body is written, still compressed as received, to a hidden temporary file in
    ``dest``'s directory and renamed onto ``dest`` only once it is known complete. On
    failure ``dest`` is left as it was and no temporary file remains. Retries (429,
    5xx, resets, timeouts, truncated bodies) start the window again from scratch.

    Raises:
        AuthenticationError: 401/403 (never retried).
        APIError: other non-2xx answers (400/404 at once, 429/5xx after retries),
            or a redirect to another host.
        IncompleteDownloadError: the body ended early on every try.
        NetworkError: connection failures and timeouts on every try.

    Example:
        >>> import datetime, pathlib
        >>> config = TransportConfig(base_url="https://data.robotmia.com/api/2.0/export/",
        ...                          api_secret="my-secret")
        >>> day = WindowRequest(datetime.date(2024, 1, 5), datetime.date(2024, 1, 5))
        >>> result = download_window(config, day, pathlib.Path("2024-01-05.jsonl.gz"))  # doctest: +SKIP
        >>> result.compressed, result.attempts  # doctest: +SKIP
        (True, 1)
    """
    dest = Path(dest)
    own_session = session is None
    active = session if session is not None else make_session(user_agent=config.user_agent)
    tmp: Path | None = None
    done = False
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.part-", dir=dest.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "w+b") as sink:
            attempt = 0
            while True:
                attempt += 1
                sink.seek(0)
                sink.truncate()
                try:
                    if limiter is not None:
                        with limiter.slot():
                            compressed, received = _attempt(active, config, request, sink)
                    else:
                        compressed, received = _attempt(active, config, request, sink)
                except _AttemptFailed as failure:
                    if limiter is not None and failure.retry_after:
                        limiter.pause(min(failure.retry_after, config.max_retry_after))
                    if not failure.retryable or attempt > config.max_retries:
                        cause = failure.__cause__
                        raise _final_error(failure, attempt, config, request) from cause
                    delay = _retry_delay(config, attempt, failure.retry_after)
                    logger.info(
                        "%s",
                        redact(
                            f"robotmia export {redact_url(config.base_url)} window "
                            f"{request.label}: try {attempt} of {config.max_retries + 1} "
                            f"failed ({failure.reason}); retrying in {delay:.2f} s"
                        ),
                    )
                    if on_retry is not None:
                        on_retry(RetryEvent(attempt, delay, failure.reason, failure.status_code))
                    sleep(delay)
                    continue
                sink.flush()
                os.fsync(sink.fileno())
                break
        os.replace(tmp, dest)
        done = True
        fsync_dir(dest.parent)
    finally:
        if tmp is not None and not done:
            with suppress(OSError):
                tmp.unlink()
        if own_session:
            active.close()
    return DownloadResult(
        path=dest,
        compressed=compressed,
        bytes_received=received,
        attempts=attempt,
        request=request,
    )


# --------------------------------------------------------------------------- other endpoints
# Public handles on this module's machinery for the other endpoints (the profiles of
# ``/api/2.0/engage``), so that auth, failure classification, backoff and error
# messages stay the same everywhere.

AttemptFailed = _AttemptFailed
"""One failed try: ``kind`` (``auth``, ``status``, ``network``, ``incomplete``),
``retryable``, ``status_code``, ``server_message``, ``retry_after``. Turn the last one
into the public error with :func:`final_error`."""


def open_response(
    session: requests.Session,
    config: TransportConfig,
    *,
    url: str | None = None,
    method: str = "GET",
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
) -> requests.Response:
    """One try: send a request and return the 200 response, its body not read yet.

    The request carries ``config``'s Basic auth, timeouts, TLS settings and
    ``Accept-Encoding: gzip``; redirects are not followed. Connection failures and
    every other status raise :class:`AttemptFailed`, classified as for exports (401
    and 403 final; 429 and 5xx retryable, with their ``Retry-After``). Close the
    response when done.

    Example:
        >>> config = TransportConfig(base_url="https://robotmia.com/api/2.0/engage",
        ...                          api_secret="my-secret")
        >>> with make_session() as s:  # doctest: +SKIP
        ...     resp = open_response(s, config, method="POST", data={"page_size": "10"})
    """
    resp = _send(session, config, url or config.base_url, params, method=method, data=data)
    if resp.status_code == 200:
        return resp
    with closing(resp):
        _fail_on_status(resp, config)


def body_failure(exc: BaseException, received: int, config: TransportConfig) -> AttemptFailed:
    """The (retryable) :class:`AttemptFailed` for an error raised while reading a body.

    Example:
        >>> import http.client
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
        >>> body_failure(http.client.IncompleteRead(b"x"), 1, config).kind
        'incomplete'
    """
    return _body_failure(exc, received, config)


def retry_delay(config: TransportConfig, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retrying after try ``attempt`` (1-based): full-jitter
    exponential backoff, or the server's ``Retry-After`` (capped by ``max_retry_after``).

    Example:
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
        >>> retry_delay(config, 1, retry_after=7.0)
        7.0
    """
    return _retry_delay(config, attempt, retry_after)
