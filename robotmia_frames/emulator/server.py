"""A local, threaded robotmia export server for tests, demos and benchmarks.

It serves ``/api/2.0/export/`` on loopback only: HTTP Basic auth with the API
secret as user name, ``from_date``/``to_date``/``event``/``where``/``limit``
parameters (GET query or form-encoded POST), gzip JSONL sorted by time, and the
project-local ``time`` day arithmetic of the real service. Faults are queued per
request with :meth:`ExportServer.add_fault`, so each one is reproducible::

    with ExportServer(events, api_secret="s") as srv:
        srv.add_fault(Fault(status=429, retry_after=2))
        srv.add_fault(Fault(truncate_at=100))
        ...  # first request: 429; second: a cut-off gzip body; then normal
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import contextlib
import dataclasses
import datetime as _dt
import hmac
import ipaddress
import itertools
import json
import logging
import math
import re
import shutil
import socket
import socketserver
import ssl
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson

from robotmia_frames._redact import redact, register_secret
from robotmia_frames.where import matches

from ._segments import Segment, gzip_of
from .budget import Budget, VirtualClock
from .engage import ENGAGE_PATH, EngageEndpoint, EngageError
from .generator import DateLike, _to_date, iter_generated_events

__all__ = [
    "HTML_PAGE",
    "ExportServer",
    "Fault",
    "GeneratorConfig",
    "RequestRecord",
    "ServerStats",
    "WhereFilter",
    "serve_forever",
    "where_filter",
]

logger = logging.getLogger("robotmia_frames.emulator")

EXPORT_PATH = "/api/2.0/export/"
_EPOCH = _dt.date(1970, 1, 1)
_DAY = 86400
_CHUNK_EVENTS = 1024
_MAX_FORM_BYTES = 1 << 20
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FILLER_EVENTS = 1000
_FILLER_SEED = 7
_TRICKLE_TICK = 0.05  # seconds between trickled pieces, at most
_STOP_WAIT = 5.0  # seconds stop() waits for running answers to end

WhereFilter = Callable[[str, dict[str, Any]], bool]
"""``where_filter(expression, event) -> bool``: keep the event if true.

Before streaming, the server calls it once with the probe event
``{"event": "", "properties": {}}``; a :class:`ValueError` there (or on any event
before the first byte is sent) becomes a 400 ``{"error": ...}`` answer."""

where_filter: WhereFilter | None = None
"""Module-level default ``where`` evaluator, used by servers whose own
``where_filter`` is ``None``. With neither set, the server filters with
:func:`robotmia_frames.where.matches` in its project timezone (a syntax error is
a 400)."""


# --------------------------------------------------------------------------- public types


@dataclasses.dataclass(frozen=True)
class Fault:
    """One reproducible misbehaviour, applied to the next matching export request(s).

    Queue one for the next request(s) with :meth:`ExportServer.add_fault`, or give
    ``times=None`` (or pass it as ``ExportServer(faults=[...])``) to apply it to
    every matching request, for the whole life of the server.

    Fields (all optional; they combine):

    - ``status``: answer this status with ``{"error": message}`` JSON instead of data.
    - ``message``: the error text for ``status`` (default: the status' phrase).
    - ``retry_after``: add a ``Retry-After`` header (seconds, any size, or an HTTP
      date), e.g. ``Fault(status=429, retry_after=100000)``.
    - ``delay_first_byte``: wait this many seconds before sending anything.
    - ``hold``: a :class:`threading.Event`; send nothing until it is set (or the
      server stops). With :attr:`ExportServer.in_flight` a test orders events
      without sleeping: hold an answer until the request it races has arrived.
    - ``truncate_at``: send only the first N bytes of the (encoded) body, then close.
    - ``reset``: close with a TCP RST after ``truncate_at`` bytes (default: half the
      body, at most 512 KiB).
    - ``terminated_early``: a valid body whose last line is ``terminated early``,
      after ``terminate_after`` events (default: half of the matching events).
    - ``gzip``: override the server's compression for this response.
    - ``content_encoding``: send this ``Content-Encoding`` whatever the body is
      (``""`` omits the header).
    - ``body``: a status-200 answer whose decoded body is these bytes, compressed
      like data (gzip unless ``gzip=False``); e.g. verbatim export lines, an HTML
      page (:meth:`html_page`) or a JSON error object (:meth:`error_body`).
    - ``content_type``: the ``Content-Type`` header (default: the export's
      ``text/plain; charset=utf-8``).
    - ``garbage``: send these bytes as the body (status 200) with the usual headers,
      e.g. ``Content-Encoding: gzip`` over bytes that are not gzip: a corrupt body.
    - ``raw_body``: send exactly these bytes on the wire; no compression, and a
      ``Content-Encoding`` only if ``content_encoding`` is given.
    - ``trickle_rate``: after the first ``trickle_after`` bytes of the (encoded)
      body, send the rest at this many bytes a second (a stalling download).
    - ``endless``: after the answer's lines, send valid filler lines (events of
      the requested ``from_date``, repeated) forever, never ending the gzip
      stream, until the client disconnects, ``truncate_at`` bytes are sent or the
      server stops.
    - ``redirect``: answer ``302`` (or ``status``, if it is a 3xx) with this
      ``Location``; the request's query string is appended unless it has one.
    - ``content_length``: send a ``Content-Length`` header with the full length of
      the (encoded) body, even when ``truncate_at``/``reset`` cut it short.
    - ``match``: apply only to requests whose params make it return true.
    - ``times``: how many requests it applies to before it is used up; ``None``:
      every matching request, until :meth:`ExportServer.clear_faults`.

    Example:
        >>> f = Fault(status=503, retry_after=1, times=2)
        >>> f.status, f.times
        (503, 2)
        >>> Fault.html_page().content_type
        'text/html; charset=utf-8'
    """

    status: int | None = None
    message: str | None = None
    retry_after: float | str | None = None
    truncate_at: int | None = None
    reset: bool = False
    delay_first_byte: float = 0.0
    terminated_early: bool = False
    terminate_after: int | None = None
    gzip: bool | None = None
    content_encoding: str | None = None
    garbage: bytes | None = None
    raw_body: bytes | None = None
    redirect: str | None = None
    content_length: bool = False
    match: Callable[[dict[str, str]], bool] | None = None
    times: int | None = 1
    body: bytes | None = None
    content_type: str | None = None
    trickle_rate: float | None = None
    trickle_after: int = 0
    endless: bool = False
    hold: threading.Event | None = None

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError(f"Fault.times must be >= 1 or None, got {self.times}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status, got {self.status}")
        if self.truncate_at is not None and self.truncate_at < 0:
            raise ValueError(f"Fault.truncate_at must be >= 0, got {self.truncate_at}")
        if self.terminate_after is not None and self.terminate_after < 0:
            raise ValueError(f"Fault.terminate_after must be >= 0, got {self.terminate_after}")
        if self.delay_first_byte < 0:
            raise ValueError("Fault.delay_first_byte must be >= 0")
        if self.hold is not None and not isinstance(self.hold, threading.Event):
            raise ValueError(
                f"Fault.hold must be a threading.Event, got {type(self.hold).__name__}"
            )
        if isinstance(self.retry_after, (int, float)) and not (
            math.isfinite(self.retry_after) and self.retry_after >= 0
        ):
            raise ValueError(f"Fault.retry_after must be >= 0 seconds, got {self.retry_after}")
        if self.trickle_rate is not None and not (
            math.isfinite(self.trickle_rate) and self.trickle_rate > 0
        ):
            raise ValueError(f"Fault.trickle_rate must be > 0 bytes/s, got {self.trickle_rate}")
        if self.trickle_after < 0:
            raise ValueError(f"Fault.trickle_after must be >= 0, got {self.trickle_after}")
        if self.endless and self.content_length:
            raise ValueError("Fault.endless has no length: it cannot send content_length")
        sources = [n for n in ("body", "garbage", "raw_body") if getattr(self, n) is not None]
        if len(sources) > 1:
            raise ValueError(f"Fault: give one of body, garbage, raw_body, not {sources}")
        if self.endless and (self.garbage is not None or self.raw_body is not None):
            raise ValueError("Fault.endless sends export lines: not with garbage or raw_body")

    @classmethod
    def html_page(cls, **fields: Any) -> Fault:
        """A 200 answer whose body is an HTML page (a captive portal or proxy page).

        Compressed like data unless ``gzip=False``; other fields as for :class:`Fault`.

        Example:
            >>> Fault.html_page(gzip=False, times=None).body.startswith(b"<!DOCTYPE html>")
            True
        """
        fields.setdefault("content_type", "text/html; charset=utf-8")
        return cls(body=HTML_PAGE, **fields)

    @classmethod
    def error_body(cls, message: str = "Internal server error", **fields: Any) -> Fault:
        """A 200 answer whose body is a JSON error object, ``{"error": message}``.

        Example:
            >>> Fault.error_body("quota").body
            b'{"error":"quota"}'
        """
        fields.setdefault("content_type", "application/json")
        return cls(body=orjson.dumps({"error": message}), **fields)


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\n"
    b"<body><h1>Welcome</h1><p>Accept the terms of use to continue.</p>\n"
    b'<form method="post" action="/login"><button>Accept</button></form></body></html>\n'
)
"""The page :meth:`Fault.html_page` serves (a captive portal's sign-in page)."""


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. Never holds the secret or auth header.

    ``time`` and ``started`` are ``time.monotonic()`` when the request arrived,
    ``ended`` when the answer was finished; ``bytes_sent`` counts body bytes on
    the wire (compressed); ``fault`` is the fault applied, if any.

    Export requests also carry their parsed window (``from_date``, ``to_date``,
    ``event`` as a tuple of names, ``where``; ``None`` where absent or invalid),
    ``lines`` (the events the answer held; endless filler not counted),
    ``virtual_time``/``virtual_ended`` (the server's :class:`VirtualClock` at
    arrival and at the end), ``throttled`` (the :class:`Budget` limit behind a
    429: ``"per_hour"``, ``"per_second"`` or ``"concurrent"``), ``retry_after``
    (the unscaled wait handed out with it) and ``cached`` (served from the body
    cache).

    Example:
        >>> r = RequestRecord("GET", "/api/2.0/export/", {}, True, 200, 1.0, 1.0, 1.5, 10)
        >>> r.duration, r.days
        (0.5, None)
    """

    method: str
    path: str
    params: dict[str, str]
    authorized: bool
    status: int
    time: float
    started: float
    ended: float
    bytes_sent: int
    fault: Fault | None = None
    error: str | None = None
    from_date: _dt.date | None = None
    to_date: _dt.date | None = None
    event: tuple[str, ...] | None = None
    where: str | None = None
    lines: int = 0
    virtual_time: float = 0.0
    virtual_ended: float = 0.0
    throttled: str | None = None
    retry_after: float | None = None
    cached: bool = False

    @property
    def duration(self) -> float:
        """Seconds between arrival and the end of the answer."""
        return self.ended - self.started

    @property
    def days(self) -> int | None:
        """How many days the requested window spans (``None`` if it had no valid dates)."""
        if self.from_date is None or self.to_date is None:
            return None
        return (self.to_date - self.from_date).days + 1


@dataclasses.dataclass(frozen=True)
class ServerStats:
    """Counters over the request log (see :meth:`ExportServer.stats`).

    Example:
        >>> ServerStats(3, 2, 1, 1, 0, 100, 7200.0).api_hours
        2.0
    """

    requests: int
    """Every request logged (any path, any status)."""
    served: int
    """Answers with status 200."""
    too_many: int
    """Answers with status 429 (the budget's and faults')."""
    throttled: int
    """429 answers sent by the :class:`Budget`."""
    cache_hits: int
    """Bodies served from the body cache."""
    bytes_sent: int
    """Body bytes on the wire, all requests."""
    virtual_elapsed: float
    """The server clock's ``elapsed`` seconds."""

    @property
    def api_hours(self) -> float:
        """``virtual_elapsed`` in hours."""
        return self.virtual_elapsed / 3600


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Serve generated events, each requested day generated lazily and streamed.

    Days outside ``[from_date, to_date]`` (when given) have no events.

    Example:
        >>> GeneratorConfig(events_per_day=10, seed=3, from_date="2024-01-01").seed
        3
    """

    events_per_day: int = 1000
    seed: int = 0
    from_date: DateLike | None = None
    to_date: DateLike | None = None
    start_id: int = 0


# --------------------------------------------------------------------------- helpers


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ClientGone(Exception):
    pass


def _event_time(event: Any) -> float | None:
    """``properties.time`` as a finite number, else None (bools do not count)."""
    if not isinstance(event, dict):
        return None
    props = event.get("properties")
    if not isinstance(props, dict):
        return None
    t = props.get("time")
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    if isinstance(t, float) and not math.isfinite(t):
        return None
    return t


def _event_name(event: dict[str, Any]) -> str | None:
    """``event`` if it is a string (a list or a number never matches an ``event`` filter)."""
    name = event.get("event")
    return name if isinstance(name, str) else None


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _parse_date(params: Mapping[str, str], name: str) -> _dt.date:
    value = params.get(name)
    if value is None or value == "":
        raise _BadRequest(400, f"missing required parameter {name} (format YYYY-MM-DD)")
    if not _DATE_RE.fullmatch(value):
        raise _BadRequest(400, f"invalid {name} {value!r}: expected YYYY-MM-DD")
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise _BadRequest(400, f"invalid {name} {value!r}: not a calendar date") from None


@dataclasses.dataclass(frozen=True)
class _Query:
    from_date: _dt.date
    to_date: _dt.date
    events: frozenset[str] | None
    where: str | None
    limit: int | None
    time_in_ms: bool = False


def _parse_query(params: Mapping[str, str]) -> _Query:
    start = _parse_date(params, "from_date")
    end = _parse_date(params, "to_date")
    if start > end:
        raise _BadRequest(400, f"from_date {start} is after to_date {end}")
    names: frozenset[str] | None = None
    raw_event = params.get("event")
    if raw_event is not None:
        try:
            parsed = orjson.loads(raw_event)
        except orjson.JSONDecodeError:
            raise _BadRequest(
                400, f"invalid event parameter {raw_event!r}: expected a JSON array of strings"
            ) from None
        if (
            not isinstance(parsed, list)
            or not parsed
            or not all(isinstance(x, str) for x in parsed)
        ):
            raise _BadRequest(
                400,
                f"invalid event parameter {raw_event!r}: expected a non-empty JSON array of strings",
            )
        names = frozenset(parsed)
    limit: int | None = None
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            raise _BadRequest(400, f"invalid limit {raw_limit!r}: expected a positive integer")
        limit = int(raw_limit)
    where = params.get("where") or None
    time_in_ms = params.get("time_in_ms", "").lower() in ("true", "1")
    return _Query(start, end, names, where, limit, time_in_ms)


def _window_of(
    params: Mapping[str, str],
) -> tuple[_dt.date | None, _dt.date | None, tuple[str, ...] | None, str | None]:
    """The (from_date, to_date, event names, where) of a request, ``None`` where invalid."""
    dates: list[_dt.date | None] = []
    for name in ("from_date", "to_date"):
        try:
            dates.append(_parse_date(params, name))
        except _BadRequest:
            dates.append(None)
    names: tuple[str, ...] | None = None
    raw_event = params.get("event")
    if raw_event is not None:
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(raw_event)
            if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
                names = tuple(parsed)
    return dates[0], dates[1], names, params.get("where") or None


def _in_ms(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``properties.time`` in milliseconds (``time_in_ms=true``)."""
    t = _event_time(event)
    if t is None or type(event) is _RawLine:
        return event
    props = dict(event["properties"])
    ms = t * 1000
    props["time"] = round(ms) if isinstance(t, int) or float(ms).is_integer() else ms
    return {**event, "properties": props}


class _RawLine(dict[str, Any]):
    """A given line served verbatim; the dict is its parsed content, for filtering."""

    __slots__ = ("line",)

    def __init__(self, line: bytes, parsed: dict[str, Any]) -> None:
        super().__init__(parsed)
        self.line = line


def _raw_line(line: bytes | bytearray | memoryview) -> _RawLine:
    """Wrap one given raw line; its ``event`` and ``properties.time`` are read if it parses.

    orjson first (fast, deep nesting), then :mod:`json` (``1e400``, big integers);
    a line neither reads (or that is not an object) has no time and no event.
    """
    data = bytes(line).removesuffix(b"\n")
    parsed: Any = None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
    return _RawLine(data, parsed if isinstance(parsed, dict) else {})


def _jsonl_chunks(
    events: Iterable[dict[str, Any]],
    count: Callable[[int], None] | None = None,
    *,
    raw: bool = False,
) -> Iterator[bytes]:
    """JSONL bytes, about ``_CHUNK_EVENTS`` events a chunk; ``raw``: some are :class:`_RawLine`.

    ``count`` is told how many events each chunk holds.
    """
    dumps = orjson.dumps
    it = iter(events)
    while True:
        batch = list(itertools.islice(it, _CHUNK_EVENTS))
        if not batch:
            return
        if count is not None:
            count(len(batch))
        if raw:
            lines = [e.line if type(e) is _RawLine else dumps(e) for e in batch]
            yield b"\n".join(lines) + b"\n"
        else:
            yield b"\n".join(map(dumps, batch)) + b"\n"


def _gzip_chunks(chunks: Iterable[bytes], level: int, *, finish: bool = True) -> Iterator[bytes]:
    """A gzip stream (header, deflate data, CRC32/size trailer) of ``chunks``.

    ``finish=False`` ends with a full flush instead of the trailer: the stream stays
    open, byte-aligned, and raw deflate blocks (:func:`_deflate_block`) may follow.
    """
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = comp.compress(chunk)
        if out:
            yield out
    yield comp.flush(zlib.Z_FINISH if finish else zlib.Z_FULL_FLUSH)


def _deflate_block(data: bytes, level: int) -> bytes:
    """``data`` as self-contained, non-final deflate blocks: repeatable any number of times."""
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    return comp.compress(data) + comp.flush(zlib.Z_FULL_FLUSH)


def _filler(day: _dt.date, project_timezone: str) -> bytes:
    """JSONL of generated events of ``day`` (about 1 MB): an endless body's repeated lines."""
    events = iter_generated_events(day, day, events_per_day=_FILLER_EVENTS, seed=_FILLER_SEED,
                                   project_timezone=project_timezone)  # fmt: skip
    return b"\n".join(map(orjson.dumps, events)) + b"\n"


def _seconds_header(value: float | str) -> str:
    """A ``Retry-After`` value: strings as they are, whole seconds without exponent."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0")


# --------------------------------------------------------------------------- server


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: ExportServer
    ssl_context: ssl.SSLContext | None = None

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a (possibly remote) DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            tls_sock = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(tls_sock, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls_sock.shutdown(socket.SHUT_WR)
            tls_sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        logger.debug("error while handling a request from %s: %r", client_address, exc)


class _V6Server(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "robotmia-emulator/1"
    protocol_version = "HTTP/1.0"
    timeout = 120

    # set per request
    _bytes_sent = 0
    _status = 0
    _lines = 0
    _cached = False

    @property
    def _owner(self) -> ExportServer:
        return cast(_HTTPServer, self.server).owner

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), redact(format % args))

    # ------------------------------------------------------------------ methods
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _not_allowed(self) -> None:
        self._handle(self.command)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    # ------------------------------------------------------------------ plumbing
    def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _ClientGone(str(exc)) from exc
        except ssl.SSLError as exc:
            raise _ClientGone(str(exc)) from exc
        self._bytes_sent += len(data)

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._status = status
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError) as exc:
            raise _ClientGone(str(exc)) from exc

    def _send_json_error(
        self, status: int, message: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        # Close-delimited like every answer here: the request log entry is written
        # before the client can see the end of the body.
        body = orjson.dumps({"error": message})
        self._start(status, [("Content-Type", "application/json"), *(extra or [])])
        if self.command != "HEAD":
            self._write(body)

    def _read_params(self, method: str) -> dict[str, str]:
        split = urlsplit(self.path)
        pairs = parse_qs(split.query, keep_blank_values=True, errors="replace")
        params = {k: v[0] for k, v in pairs.items()}
        if method == "POST":
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise _BadRequest(411, "chunked POST bodies are not supported: send Content-Length")
            length_text = self.headers.get("Content-Length", "0") or "0"
            try:
                length = int(length_text)
            except ValueError:
                raise _BadRequest(400, f"invalid Content-Length {length_text!r}") from None
            if length < 0 or length > _MAX_FORM_BYTES:
                raise _BadRequest(413, "request body too large")
            body = self.rfile.read(length) if length else b""
            ctype = self.headers.get_content_type()
            if body and ctype not in ("application/x-www-form-urlencoded", "text/plain"):
                raise _BadRequest(
                    415,
                    f"unsupported Content-Type {ctype!r}: send application/x-www-form-urlencoded",
                )
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            params.update({k: v[0] for k, v in form.items()})
        return params

    def _check_auth(self) -> bool | None:
        """True: right secret; False: wrong secret; None: no Basic credentials."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user = decoded.partition(":")[0]
        secret = self._owner.api_secret
        return hmac.compare_digest(user.encode(), secret.encode())

    # ------------------------------------------------------------------ main
    def _handle(self, method: str) -> None:
        owner = self._owner
        started = time.monotonic()
        vstarted = owner.clock.now()
        self._bytes_sent = 0
        self._status = 0
        self._lines = 0
        self._cached = False
        path = urlsplit(self.path).path
        params: dict[str, str] = {}
        shown: dict[str, str] = {}  # params with the secret redacted: logged and listed
        authorized = False
        fault: Fault | None = None
        error: str | None = None
        reset_done = False
        admitted = False
        throttle: tuple[str, float] | None = None
        owner._enter(self.connection)
        try:
            try:
                params = self._read_params(method)
                shown = owner._redact_params(params)
            except _BadRequest as exc:
                self._send_json_error(exc.status, exc.message)
                return
            auth = self._check_auth()
            authorized = auth is True
            if owner.require_https and not isinstance(self.connection, ssl.SSLSocket):
                self._send_json_error(
                    400,
                    "HTTPS is required: plain HTTP would send the API secret in clear text",
                )
                return
            if path.rstrip("/") not in (EXPORT_PATH.rstrip("/"), ENGAGE_PATH):
                self._send_json_error(404, f"not found: {path} (the export is at {EXPORT_PATH})")
                return
            if method not in ("GET", "POST"):
                self._send_json_error(405, f"method {method} not allowed: use GET or POST",
                                      [("Allow", "GET, POST")])  # fmt: skip
                return
            if not authorized:
                message = (
                    "Invalid API secret"
                    if auth is False
                    else "Missing API secret: use HTTP Basic auth, the API secret as user name"
                )
                self._send_json_error(
                    401, message, [("WWW-Authenticate", 'Basic realm="robotmia"')]
                )
                return
            if path.rstrip("/") == EXPORT_PATH.rstrip("/"):
                owner._arrived(self.connection, shown)
                throttle = owner._admit()
                if throttle is not None:
                    self._throttled(*throttle)
                    return
                admitted = True
            fault = owner._take_fault(params)
            reset_done = self._answer(params, fault)
        except _ClientGone as exc:
            error = f"client disconnected: {exc}"
            logger.debug("client %s went away: %s", self.address_string(), exc)
        except Exception as exc:  # never let a handler thread print a traceback
            error = f"internal error: {exc!r}"
            logger.debug("internal emulator error", exc_info=True)
            if self._status == 0:
                with contextlib.suppress(_ClientGone):
                    self._send_json_error(500, f"internal emulator error: {exc!r}")
        finally:
            self.close_connection = True
            if admitted:
                owner._release()
            window = _window_of(params) if path.rstrip("/") == EXPORT_PATH.rstrip("/") else None
            owner._record(
                RequestRecord(
                    method=method,
                    path=path,
                    params=shown,
                    authorized=authorized,
                    status=self._status,
                    time=started,
                    started=started,
                    ended=time.monotonic(),
                    bytes_sent=self._bytes_sent,
                    fault=fault,
                    error=error,
                    from_date=window[0] if window else None,
                    to_date=window[1] if window else None,
                    event=window[2] if window else None,
                    where=window[3] if window else None,
                    lines=self._lines,
                    virtual_time=vstarted,
                    virtual_ended=owner.clock.now(),
                    throttled=throttle[0] if throttle else None,
                    retry_after=throttle[1] if throttle else None,
                    cached=self._cached,
                ),
                self.connection,
            )
            if reset_done:
                self._rst_close()
            owner._leave(self.connection)

    def _throttled(self, limit: str, wait: float) -> None:
        """The budget's 429: ``Retry-After`` in whole (scaled) seconds, a JSON error."""
        owner = self._owner
        header = math.ceil(wait * owner.clock.retry_after_scale)
        budget = owner.budget
        assert budget is not None
        most = getattr(budget, limit)
        what = {
            "per_hour": f"at most {most} export queries an hour",
            "per_second": f"at most {most} export queries a second",
            "concurrent": f"at most {most} concurrent export queries",
        }[limit]
        self._send_json_error(
            429,
            f"Query rate limit exceeded ({what}); retry after {header} seconds",
            [("Retry-After", str(header))],
        )

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or raise :class:`_ClientGone` at once if the server stops."""
        if self._owner._stopping.wait(seconds):
            raise _ClientGone("the server is stopping")

    def _rst_close(self) -> None:
        sock = self.connection
        with contextlib.suppress(OSError):
            self.wfile.flush()
        time.sleep(0.05)  # let the bytes already written leave before the RST
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()

    def _answer(self, params: dict[str, str], fault: Fault | None) -> bool:
        """Send the export answer; returns True if the connection must be reset."""
        owner = self._owner
        if fault is not None and fault.delay_first_byte > 0:
            self._pause(fault.delay_first_byte)
        if fault is not None and fault.hold is not None:
            while not fault.hold.wait(_TRICKLE_TICK):
                self._pause(0)  # raises once the server stops
        extra: list[tuple[str, str]] = []
        if fault is not None and fault.retry_after is not None:
            extra.append(("Retry-After", _seconds_header(fault.retry_after)))
        if fault is not None and fault.redirect is not None:
            status = fault.status if fault.status and 300 <= fault.status < 400 else 302
            location = fault.redirect
            query_string = urlsplit(self.path).query
            if query_string and "?" not in location:
                location = f"{location}?{query_string}"
            self._send_json_error(status, "moved", [*extra, ("Location", location)])
            return False
        if fault is not None and fault.status is not None:
            phrase = _phrase(fault.status)
            self._send_json_error(fault.status, fault.message or phrase, extra)
            return False
        engage_body: bytes | None = None
        query: _Query | None = None
        try:
            if urlsplit(self.path).path.rstrip("/") == ENGAGE_PATH:
                engage_body = owner.engage.answer(params)
            else:
                query = _parse_query(params)
                owner._check_where(query.where)
        except (_BadRequest, EngageError) as exc:
            self._send_json_error(exc.status, exc.message, extra)
            return False

        use_gzip = owner.gzip if fault is None or fault.gzip is None else fault.gzip
        content_encoding: str | None = "gzip" if use_gzip else None
        ctype = "text/plain; charset=utf-8" if engage_body is None else "application/json"
        cache_key: tuple[Any, ...] | None = None
        body: Iterator[bytes]
        joined: Iterator[bytes] | None = None
        if fault is not None and fault.raw_body is not None:
            body = iter([fault.raw_body])
            content_encoding = None
        elif fault is not None and fault.garbage is not None:
            body = iter([fault.garbage])
        else:
            payload: Iterator[bytes]
            if fault is not None and fault.body is not None:
                payload = iter([fault.body])
            elif engage_body is not None:
                payload = iter([engage_body])
            else:
                assert query is not None
                if owner.cache_bodies and (
                    fault is None or not (fault.terminated_early or fault.endless)
                ):
                    cache_key = (query, use_gzip, owner.compresslevel)
                payload = self._data(query, fault)
                if cache_key is not None and use_gzip and owner._by_day(query):
                    # joined from each day's compressed text, cached: no whole-body copy
                    segments, self._cached = owner._day_segments(query.from_date, query.to_date)
                    self._lines = sum(seg.lines for seg in segments)
                    joined = gzip_of(segments)
                    cache_key = None
            endless = fault is not None and fault.endless
            if joined is not None:
                body = joined
            elif use_gzip:
                body = _gzip_chunks(payload, owner.compresslevel, finish=not endless)
            else:
                body = payload
            if endless:
                assert fault is not None
                day = query.from_date if query is not None else _EPOCH
                filler = _filler(day, owner.project_timezone)
                block = _deflate_block(filler, owner.compresslevel) if use_gzip else filler
                body = itertools.chain(body, itertools.repeat(block))
            if cache_key is not None:
                hit = owner._cache_get(cache_key)
                if hit is not None:
                    body = iter([hit[0]])
                    self._lines = hit[1]
                    self._cached = True
                    cache_key = None
        if fault is not None and fault.content_encoding is not None:
            content_encoding = fault.content_encoding or None
        if fault is not None and fault.content_type is not None:
            ctype = fault.content_type

        # Produce the first bytes before the status line: a bad ``where`` is a 400.
        try:
            first = next(body, b"")
        except ValueError as exc:
            self._send_json_error(400, f"invalid where parameter: {exc}", extra)
            return False

        cut: int | None = None
        reset = fault is not None and fault.reset
        if fault is not None and fault.truncate_at is not None:
            cut = fault.truncate_at
        elif reset:
            buffered = [first]
            size = len(first)
            exhausted = False
            while size < 1 << 20:
                nxt = next(body, None)
                if nxt is None:
                    exhausted = True
                    break
                buffered.append(nxt)
                size += len(nxt)
            first = b"".join(buffered)
            cut = max(1, len(first) // 2) if exhausted else 512 * 1024

        headers = [("Content-Type", ctype)]
        if content_encoding:
            headers.append(("Content-Encoding", content_encoding))
        if fault is not None and fault.content_length:
            first = b"".join([first, *body])  # the whole body, to know its length
            body = iter(())
            headers.append(("Content-Length", str(len(first))))
        self._start(200, headers + extra)
        sent = self._send_body(itertools.chain([first], body), cut, fault, cache_key is not None)
        if sent is not None and cache_key is not None:
            owner._cache_put(cache_key, sent, self._lines)
        if cut is not None and self._bytes_sent >= cut:
            logger.debug("fault: body cut after %d bytes (reset=%s)", self._bytes_sent, reset)
        return reset

    def _data(self, query: _Query, fault: Fault | None) -> Iterator[bytes]:
        """The JSONL of the events answering ``query`` (``terminated_early`` applied)."""
        owner = self._owner
        events: Iterable[dict[str, Any]] = owner._select(query)

        def count(n: int) -> None:
            self._lines += n

        if fault is not None and fault.terminated_early:
            if fault.terminate_after is None:
                materialized = list(events)
                events = materialized[: len(materialized) // 2]
            else:
                events = itertools.islice(events, fault.terminate_after)
            lines = _jsonl_chunks(events, count, raw=owner._has_raw)
            return itertools.chain(lines, [b"terminated early\n"])
        return _jsonl_chunks(events, count, raw=owner._has_raw)

    def _send_body(
        self, chunks: Iterator[bytes], cut: int | None, fault: Fault | None, keep: bool
    ) -> bytes | None:
        """Write ``chunks`` (at most ``cut`` bytes, trickled as ``fault`` says).

        Every loop ends: the body ends, the cut is reached, the client goes or the
        server stops. With ``keep``, returns the whole body once it was all sent.
        """
        stopping = self._owner._stopping
        rate = fault.trickle_rate if fault is not None else None
        fast = fault.trickle_after if fault is not None and rate is not None else 0
        kept: list[bytes] | None = [] if keep else None
        for chunk in chunks:
            if stopping.is_set():
                raise _ClientGone("the server is stopping")
            if cut is not None:
                room = cut - self._bytes_sent
                if room <= 0:
                    return None
                if len(chunk) >= room:
                    self._write_paced(chunk[:room], rate, fast)
                    return None
            self._write_paced(chunk, rate, fast)
            if kept is not None:
                kept.append(chunk)
        return b"".join(kept) if kept is not None else None

    def _write_paced(self, data: bytes, rate: float | None, fast: int) -> None:
        """Write ``data``; past the first ``fast`` body bytes, at ``rate`` bytes a second."""
        if rate is None:
            self._write(data)
            return
        view = memoryview(data)
        head = max(0, min(len(view), fast - self._bytes_sent))
        if head:
            self._write(bytes(view[:head]))
        piece = max(1, int(rate * _TRICKLE_TICK))
        for i in range(head, len(view), piece):
            self._pause(min(piece, len(view) - i) / rate)
            self._write(bytes(view[i : i + piece]))


#: A cached answer: a whole body and its lines, or one day's compressed text.
_CacheEntry = tuple[bytes, int] | Segment


def _entry_bytes(entry: _CacheEntry) -> int:
    return len(entry.deflate) if isinstance(entry, Segment) else len(entry[0])


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


class ExportServer:
    """A robotmia export endpoint on loopback, in a background thread.

    Serve in-memory ``events`` (sorted by ``properties.time``; events without a
    numeric time are served for every date range, after the others), or with
    ``generate`` (a :class:`GeneratorConfig` or a dict of its fields) generate
    each requested day lazily and stream it. Neither: every export is empty.
    An item of ``events`` may be ``bytes``: one raw line, served verbatim (deep
    nesting, ``1e400``, an integer ``event`` beyond int64, invalid JSON...); it is
    filtered on its ``event`` and ``properties.time`` when they can be read
    (orjson, else :mod:`json`), else served for every range like an untimed event.

    ``budget`` (a :class:`Budget`) makes the server answer 429 beyond an hourly,
    per-second or concurrency limit, on ``clock`` (a :class:`VirtualClock`; by
    default one that follows real time and never jumps). ``faults`` are queued as
    by :meth:`add_fault` (with ``times=None``, for every request). With
    ``cache_bodies`` each finished export body is kept (encoded, in memory, up to
    ``cache_max_bytes``, least recently used first out) and served again as it is
    for the same query, so the server costs almost no CPU; :meth:`warm_cache`
    fills it ahead. :meth:`stats` counts, :meth:`windows` lists the windows served.

    ``gzip`` (default True) compresses bodies; ``require_https`` answers 400 to
    plain-HTTP requests, as the real service; ``tls=True`` serves HTTPS with a
    throwaway CA whose PEM file is ``ca_bundle``. ``where_filter`` evaluates
    the ``where`` parameter (else the module-level ``where_filter``; else
    :func:`robotmia_frames.where.matches` in ``project_timezone``). ``profiles`` (or ``generate_profiles=N``) are served paged at
    ``engage_url``, pages of at most ``engage_page_size`` (see :mod:`.engage`).

    Example:
        >>> import requests
        >>> from robotmia_frames.emulator import generate_events
        >>> with ExportServer(generate_events(10, days=1), api_secret="s") as srv:
        ...     r = requests.get(srv.url, auth=("s", ""),
        ...                      params={"from_date": "2024-01-01", "to_date": "2024-01-01"})
        ...     r.status_code, len(r.text.splitlines())
        (200, 10)
    """

    def __init__(
        self,
        events: Iterable[dict[str, Any] | bytes] | None = None,
        *,
        api_secret: str = "test-secret",
        project_timezone: str = "UTC",
        generate: GeneratorConfig | Mapping[str, Any] | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        require_https: bool = False,
        gzip: bool = True,
        compresslevel: int = 6,
        where_filter: WhereFilter | None = None,
        profiles: Iterable[dict[str, Any]] | None = None,
        generate_profiles: int | None = None,
        engage_page_size: int = 1000,
        budget: Budget | None = None,
        clock: VirtualClock | None = None,
        faults: Iterable[Fault] = (),
        cache_bodies: bool = False,
        cache_max_bytes: int = 1 << 30,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(
                f"ExportServer binds loopback only (127.0.0.0/8, ::1, localhost), got host {host!r}"
            )
        if not api_secret:
            raise ValueError("api_secret must be a non-empty string")
        if events is not None and generate is not None:
            raise ValueError("pass either events or generate, not both")
        self.api_secret = api_secret
        register_secret(api_secret)
        self.project_timezone = project_timezone
        self.tls = tls
        self.host = host
        self.require_https = require_https
        self.gzip = gzip
        self.compresslevel = compresslevel
        self.where_filter: WhereFilter | None = where_filter
        self._requested_port = port
        self._bound_port: int | None = None

        self._generate: GeneratorConfig | None
        if generate is None or isinstance(generate, GeneratorConfig):
            self._generate = generate
        else:
            self._generate = GeneratorConfig(**dict(generate))
        self.engage = EngageEndpoint(
            profiles,
            generate=generate_profiles,
            seed=self._generate.seed if self._generate is not None else 0,
            page_size=engage_page_size,
            project_timezone=project_timezone,
        )
        """The ``/api/2.0/engage`` profiles and their knobs (see :mod:`.engage`)."""
        self._gen_from: _dt.date | None = None
        self._gen_to: _dt.date | None = None
        if self._generate is not None:
            if self._generate.from_date is not None:
                self._gen_from = _to_date(self._generate.from_date, "generate.from_date")
            if self._generate.to_date is not None:
                self._gen_to = _to_date(self._generate.to_date, "generate.to_date")
            # validate the timezone and the config once, up front
            next(iter_generated_events("2024-01-01", "2024-01-01", events_per_day=0,
                                       project_timezone=project_timezone), None)  # fmt: skip

        timed: list[tuple[float, dict[str, Any]]] = []
        self._untimed: list[dict[str, Any]] = []
        self._has_raw = False
        for item in events or ():
            event: dict[str, Any]
            if isinstance(item, (bytes, bytearray, memoryview)):
                event = _raw_line(item)
                self._has_raw = True
            elif isinstance(item, dict):
                event = item
                orjson.dumps(event)  # fail now, not mid-stream, on unserializable values
            else:
                raise TypeError(f"events must be dicts or bytes lines, got {type(item).__name__}")
            t = _event_time(event)
            if t is None:
                self._untimed.append(event)
            else:
                timed.append((t, event))
        timed.sort(key=lambda item: item[0])  # stable: ties keep their order
        self._times = [t for t, _ in timed]
        self._events = [e for _, e in timed]

        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        """The request log, oldest first (appended under a lock; ``.clear()`` works)."""
        self._faults: list[list[Any]] = []  # [fault, remaining uses or None]
        for fault in faults:
            self.add_fault(fault)
        self.budget = budget
        """The :class:`Budget` enforced on export requests (``None``: no limit)."""
        self.clock = (
            clock
            if clock is not None
            else VirtualClock(follow_real_time=True, advance_on_429=False)
        )
        """The :class:`VirtualClock` the budget and ``RequestRecord.virtual_time`` use."""
        self._starts: dict[str, collections.deque[float]] = {}  # budget: query starts
        self._running = 0  # admitted export requests not yet answered
        if cache_max_bytes < 0:
            raise ValueError(f"cache_max_bytes must be >= 0, got {cache_max_bytes}")
        self.cache_bodies = cache_bodies
        self.cache_max_bytes = cache_max_bytes
        self._cache: collections.OrderedDict[tuple[Any, ...], _CacheEntry] = (
            collections.OrderedDict()
        )
        self._cache_size = 0
        self._stopping = threading.Event()
        self._connections: set[Any] = set()
        self._in_flight: dict[Any, dict[str, str]] = {}  # connection: redacted params
        self._idle = threading.Condition(self._lock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._ca: Any = None
        self.ca_bundle: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ExportServer:
        """Bind and serve in a background thread (no-op if already running).

        A stopped server can start again; it rebinds to the same port.

        Example:
            >>> srv = ExportServer().start()
            >>> srv.port > 0
            True
            >>> srv.stop()
        """
        if self._httpd is not None:
            return self
        self._stopping.clear()
        bind_host = "127.0.0.1" if self.host.lower() == "localhost" else self.host.strip("[]")
        cls = _V6Server if ":" in bind_host else _HTTPServer
        port = self._bound_port if self._bound_port is not None else self._requested_port
        httpd = cls((bind_host, port), _Handler, bind_and_activate=False)
        try:
            httpd.allow_reuse_address = True
            httpd.server_bind()
            httpd.server_activate()
            httpd.owner = self
            if self.tls:
                httpd.ssl_context = self._make_ssl_context()
        except BaseException:
            httpd.server_close()
            self._cleanup_tmpdir()
            raise
        self._bound_port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"robotmia-emulator-{self._bound_port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("export emulator serving at %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; idempotent.

        Example:
            >>> srv = ExportServer().start()
            >>> srv.stop(); srv.stop()
        """
        httpd, thread = self._httpd, self._thread
        self._httpd = None
        self._thread = None
        self._stopping.set()  # running answers (slow, trickling, endless) end now
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._idle:
            for conn in self._connections:  # unblock writes to clients that stopped reading
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._idle.wait_for(lambda: not self._connections, timeout=_STOP_WAIT)
        self._cleanup_tmpdir()

    def __enter__(self) -> ExportServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self._httpd is not None else "stopped"
        return f"<ExportServer {state}>"

    def _make_ssl_context(self) -> ssl.SSLContext:
        try:
            import trustme
        except ImportError as exc:  # pragma: no cover - trustme is a test extra
            raise RuntimeError(
                "tls=True needs the 'trustme' package (pip install trustme)"
            ) from exc
        if self._ca is None:
            self._ca = trustme.CA()
            self._cert = self._ca.issue_cert("127.0.0.1", "localhost", "::1")
        self._tmpdir = tempfile.mkdtemp(prefix="robotmia-emulator-")
        bundle = Path(self._tmpdir) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(bundle))
        self.ca_bundle = str(bundle)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    def _cleanup_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.ca_bundle = None

    # ------------------------------------------------------------------ addresses
    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._bound_port is None:
            raise RuntimeError("the server is not started: call start() or use it in a with block")
        return self._bound_port

    @property
    def url(self) -> str:
        """The export endpoint, e.g. ``http://127.0.0.1:PORT/api/2.0/export/``."""
        scheme = "https" if self.tls else "http"
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{EXPORT_PATH}"

    @property
    def engage_url(self) -> str:
        """The profiles endpoint, e.g. ``http://127.0.0.1:PORT/api/2.0/engage``."""
        return self.url[: -len(EXPORT_PATH)] + ENGAGE_PATH

    # ------------------------------------------------------------------ requests log
    def clear_requests(self) -> None:
        """Forget the request log (same as ``srv.requests.clear()``)."""
        with self._lock:
            self.requests.clear()

    def _record(self, record: RequestRecord, connection: Any = None) -> None:
        with self._lock:
            self.requests.append(record)
            self._in_flight.pop(connection, None)

    def _redact_params(self, params: dict[str, str]) -> dict[str, str]:
        secret = self.api_secret
        return {k: (v.replace(secret, "***") if secret in v else v) for k, v in params.items()}

    # ------------------------------------------------------------------ faults
    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault`` (FIFO) for the next matching authorized export request(s).

        Each authorized request to the export path (after the auth check, before
        parameter validation) takes the first queued fault whose ``match`` accepts
        its params, using up one of its ``times``.

        Example:
            >>> srv = ExportServer()
            >>> srv.add_fault(Fault(status=500, times=3))
            >>> srv.faults[0].times
            3
        """
        if not isinstance(fault, Fault):
            raise TypeError(f"add_fault takes a Fault, got {type(fault).__name__}")
        with self._lock:
            self._faults.append([fault, fault.times])

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The queued faults, ``times`` showing the uses left."""
        with self._lock:
            return [dataclasses.replace(f, times=n) for f, n in self._faults]

    def _take_fault(self, params: dict[str, str]) -> Fault | None:
        with self._lock:
            for i, entry in enumerate(self._faults):
                fault: Fault = entry[0]
                if fault.match is not None:
                    try:
                        if not fault.match(dict(params)):
                            continue
                    except Exception:
                        logger.debug("Fault.match raised; fault skipped", exc_info=True)
                        continue
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self._faults[i]
                return fault
        return None

    # ------------------------------------------------------------------ budget
    def _admit(self) -> tuple[str, float] | None:
        """Count an export request against the budget, or say which limit and how long.

        Returns ``None`` (admitted: call :meth:`_release` when answered) or
        ``(limit, wait)``; the clock jumps by ``wait`` if it advances on 429s.
        """
        budget = self.budget
        if budget is None:
            return None
        with self._lock:
            now = self.clock.now()
            wait = 0.0
            limit = ""
            for name, length in (("per_hour", 3600.0), ("per_second", 1.0)):
                most = getattr(budget, name)
                if most is None:
                    continue
                starts = self._starts.setdefault(name, collections.deque())
                while starts and starts[0] <= now - length:
                    starts.popleft()
                if len(starts) >= most:
                    # the start that frees a place is the one `most` places from the end
                    need = starts[-most] + length - now
                    if need > wait:
                        wait, limit = need, name
            if limit:
                if self.clock.advance_on_429:
                    self.clock.advance(wait)
                return limit, wait
            if budget.concurrent is not None and self._running >= budget.concurrent:
                return "concurrent", 1.0
            for name in ("per_hour", "per_second"):
                if getattr(budget, name) is not None:
                    self._starts[name].append(now)
            self._running += 1
            return None

    def _release(self) -> None:
        with self._lock:
            self._running -= 1

    def _enter(self, connection: Any) -> None:
        with self._lock:
            self._connections.add(connection)

    def _arrived(self, connection: Any, shown: dict[str, str]) -> None:
        """An export request has arrived: ``shown`` are its params, redacted."""
        with self._lock:
            self._in_flight[connection] = shown

    @property
    def in_flight(self) -> list[dict[str, str]]:
        """The params of the authorized export requests being answered now, oldest first.

        A request is in flight from its arrival until its entry in :attr:`requests`
        is written (before the client can see the end of the answer). With
        ``Fault(hold=event)`` a test waits until a request has arrived, acts, then
        lets the answer go.

        Example:
            >>> ExportServer().in_flight
            []
        """
        with self._lock:
            return [dict(p) for p in self._in_flight.values()]

    def _leave(self, connection: Any) -> None:
        with self._idle:
            self._connections.discard(connection)
            self._idle.notify_all()

    def stats(self) -> ServerStats:
        """Counters over the request log, and the clock's elapsed (virtual) time.

        Example:
            >>> srv = ExportServer(budget=Budget(per_hour=60), clock=VirtualClock())
            >>> srv.stats().requests, srv.stats().api_hours
            (0, 0.0)
        """
        with self._lock:
            log = list(self.requests)
        return ServerStats(
            requests=len(log),
            served=sum(r.status == 200 for r in log),
            too_many=sum(r.status == 429 for r in log),
            throttled=sum(r.throttled is not None for r in log),
            cache_hits=sum(r.cached for r in log),
            bytes_sent=sum(r.bytes_sent for r in log),
            virtual_elapsed=self.clock.elapsed,
        )

    def windows(self) -> list[tuple[_dt.date, _dt.date]]:
        """The ``(from_date, to_date)`` of each export request answered 200, in order.

        Example:
            >>> ExportServer().windows()
            []
        """
        with self._lock:
            log = list(self.requests)
        return [
            (r.from_date, r.to_date)
            for r in log
            if r.status == 200
            and r.path.rstrip("/") == EXPORT_PATH.rstrip("/")
            and r.from_date is not None
            and r.to_date is not None
        ]

    # ------------------------------------------------------------------ body cache
    def _cache_get(self, key: tuple[Any, ...]) -> tuple[bytes, int] | None:
        hit = self._cached(key)
        assert hit is None or isinstance(hit, tuple)
        return hit

    def _cached(self, key: tuple[Any, ...]) -> _CacheEntry | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: tuple[Any, ...], body: bytes, lines: int) -> None:
        self._cache_entry(key, (body, lines))

    def _cache_entry(self, key: tuple[Any, ...], entry: _CacheEntry) -> None:
        size = _entry_bytes(entry)
        with self._lock:
            if key in self._cache or size > self.cache_max_bytes:
                return
            self._cache[key] = entry
            self._cache_size += size
            while self._cache_size > self.cache_max_bytes:
                _, old = self._cache.popitem(last=False)
                self._cache_size -= _entry_bytes(old)

    def _by_day(self, query: _Query) -> bool:
        """Whether ``query``'s answer is its days' one-day answers one after another
        (a plain date range, and no untimed event served with every range)."""
        plain = _Query(query.from_date, query.to_date, None, None, None)
        return query == plain and (self._generate is not None or not self._untimed)

    def _day_segments(self, start: _dt.date, end: _dt.date) -> tuple[list[Segment], bool]:
        """The compressed text of each day of ``start..end`` (each made once and cached),
        and whether all of them were cached already."""
        out: list[Segment] = []
        all_cached = True
        day = start
        while day <= end:
            key = ("day", day, self.compresslevel)
            seg = self._cached(key)
            if not isinstance(seg, Segment):
                all_cached = False
                lines = 0

                def count(n: int) -> None:
                    nonlocal lines
                    lines += n

                query = _Query(day, day, None, None, None)
                chunks = list(_jsonl_chunks(self._select(query), count, raw=self._has_raw))
                seg = Segment.of(chunks, lines, self.compresslevel)
                self._cache_entry(key, seg)
            out.append(seg)
            day += _dt.timedelta(days=1)
        return out, all_cached

    def warm_cache(self, from_date: DateLike, to_date: DateLike) -> int:
        """Encode the days ``from_date``..``to_date`` now, and cache them.

        Turns ``cache_bodies`` on. A request of warmed days (no ``event``, ``where``
        or ``limit``) is then served from memory: with gzip on, its body is joined
        from each day's compressed text, whatever range it asks for. Returns the
        bytes cached.

        Example:
            >>> srv = ExportServer(generate={"events_per_day": 5})
            >>> srv.warm_cache("2024-01-01", "2024-01-02") > 0
            True
        """
        start = _to_date(from_date, "from_date")
        end = _to_date(to_date, "to_date")
        if start > end:
            raise ValueError(f"from_date {start} is after to_date {end}")
        self.cache_bodies = True
        total = 0
        day = start
        while day <= end:
            query = _Query(day, day, None, None, None)
            if self.gzip and self._by_day(query):
                total += len(self._day_segments(day, day)[0][0].deflate)
                day += _dt.timedelta(days=1)
                continue
            lines = 0

            def count(n: int) -> None:
                nonlocal lines
                lines += n

            payload = _jsonl_chunks(self._select(query), count, raw=self._has_raw)
            chunks = _gzip_chunks(payload, self.compresslevel) if self.gzip else payload
            body = b"".join(chunks)
            self._cache_put((query, self.gzip, self.compresslevel), body, lines)
            total += len(body)
            day += _dt.timedelta(days=1)
        return total

    # ------------------------------------------------------------------ data
    def _where(self) -> WhereFilter | None:
        if self.where_filter is not None:
            return self.where_filter
        return where_filter if where_filter is not None else self._default_where

    def _default_where(self, expr: str, event: dict[str, Any]) -> bool:
        return matches(expr, event, project_timezone=self.project_timezone)

    def _check_where(self, expr: str | None) -> None:
        """Probe the filter once with an empty event: a ValueError means a 400."""
        evaluator = self._where()
        if expr is None or evaluator is None:
            return
        try:
            evaluator(expr, {"event": "", "properties": {}})
        except ValueError as exc:
            raise _BadRequest(400, f"invalid where parameter: {exc}") from None

    def _select(self, query: _Query) -> Iterator[dict[str, Any]]:
        """The events answering ``query``, in time order, filtered and limited."""
        events = self._candidates(query.from_date, query.to_date)
        if query.events is not None:
            names = query.events
            events = (e for e in events if _event_name(e) in names)
        evaluator = self._where()
        if query.where is not None and evaluator is not None:
            expr = query.where
            events = (e for e in events if evaluator(expr, e))
        if query.limit is not None:
            events = itertools.islice(events, query.limit)
        if query.time_in_ms:
            events = (_in_ms(e) for e in events)
        return events

    def _candidates(self, start: _dt.date, end: _dt.date) -> Iterator[dict[str, Any]]:
        if self._generate is not None:
            return self._generated(start, end)
        lo = (start - _EPOCH).days * _DAY
        hi = ((end - _EPOCH).days + 1) * _DAY
        i = bisect.bisect_left(self._times, lo)
        j = bisect.bisect_left(self._times, hi)
        return itertools.chain(itertools.islice(self._events, i, j), self._untimed)

    def _generated(self, start: _dt.date, end: _dt.date) -> Iterator[dict[str, Any]]:
        cfg = self._generate
        assert cfg is not None
        if self._gen_from is not None:
            start = max(start, self._gen_from)
        if self._gen_to is not None:
            end = min(end, self._gen_to)
        if start > end:
            return iter(())
        return iter_generated_events(
            start,
            end,
            events_per_day=cfg.events_per_day,
            seed=cfg.seed,
            project_timezone=self.project_timezone,
            start_id=cfg.start_id,
        )


# --------------------------------------------------------------------------- CLI helper


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    api_secret: str = "test-secret",
    project_timezone: str = "UTC",
    events_per_day: int = 1000,
    days: int = 30,
    seed: int = 0,
    from_date: DateLike = "2024-01-01",
    tls: bool = False,
    stop: threading.Event | None = None,
    out: IO[str] | None = None,
    on_ready: Callable[[ExportServer], None] | None = None,
) -> None:
    """Serve generated events until Ctrl-C (or until ``stop`` is set).

    Prints the endpoint URL (and the CA bundle with ``tls=True``) to ``out``
    (default stdout), then calls ``on_ready`` with the running server. Used by
    ``robotmia-frames serve``.

    Example:
        >>> import io, threading
        >>> done, out = threading.Event(), io.StringIO()
        >>> done.set()  # stop at once; without ``stop`` it runs until Ctrl-C
        >>> serve_forever(port=0, api_secret="s", stop=done, out=out)
        >>> out.getvalue().startswith("robotmia export emulator serving at http://127.0.0.1:")
        True
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    start = _to_date(from_date, "from_date")
    config = GeneratorConfig(
        events_per_day=events_per_day,
        seed=seed,
        from_date=start,
        to_date=start + _dt.timedelta(days=days - 1),
    )
    stream = out if out is not None else sys.stdout
    waiter = stop if stop is not None else threading.Event()
    with ExportServer(
        api_secret=api_secret,
        project_timezone=project_timezone,
        generate=config,
        tls=tls,
        host=host,
        port=port,
    ) as srv:
        print(f"robotmia export emulator serving at {srv.url}", file=stream)
        print(
            f"data: {config.from_date} to {config.to_date}, {events_per_day} events a day, "
            f"project timezone {project_timezone}; auth: HTTP Basic, the api secret as user",
            file=stream,
        )
        if srv.ca_bundle:
            print(f"CA bundle: {srv.ca_bundle}", file=stream)
        if on_ready is not None:
            on_ready(srv)
        print("Press Ctrl-C to stop.", file=stream, flush=True)
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("stopping", file=stream, flush=True)
