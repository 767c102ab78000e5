"""One HTTP attempt: sessions, sending, classifying failures, receiving a verified body."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import logging
import math
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from typing import IO, TYPE_CHECKING, Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from .._redact import redact, redact_url
from ._config import DEFAULT_USER_AGENT, TransportConfig, WindowRequest, origin
from ._verify import CHUNK_SIZE, BodyTap, BodyVerifier, NotAnExport, Truncated

if TYPE_CHECKING:
    from requests.sessions import _Settings

logger = logging.getLogger("robotmia_frames.transport")


#: Redirects followed per attempt (same scheme, host and port only).
MAX_REDIRECTS = 5
#: How much of an error body is read to find the server's message.
_ERROR_BODY_LIMIT = 64 * 1024
#: How much of a text error body ends up in ``APIError.server_message``.
_SERVER_MESSAGE_LIMIT = 500

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
    session = _Session()
    session.headers["User-Agent"] = user_agent
    adapter = _TrackingAdapter(pool_connections=4, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _Session(requests.Session):
    """A session that reads the environment's proxy and CA settings once per
    server, not once per request (requests walks every environment variable for
    each: a year of one-day windows is 365 requests). A session lives for one
    export."""

    def __init__(self) -> None:
        super().__init__()
        self._env: dict[tuple[Any, ...], _Settings] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (origin(url), stream, verify, cert)
        got = self._env.get(key)
        if got is None:
            got = self._env[key] = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
        out = got.copy()
        out["proxies"] = dict(got["proxies"])
        return out


class _TrackingAdapter(HTTPAdapter):
    """An adapter that keeps its open connections, so that :func:`cancel` can shut
    down every request on them: one streaming its body, and one still waiting for
    the first byte of its answer (a response object exists only once the headers
    came)."""

    def __init__(self, **kwargs: Any) -> None:
        self.connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.shut = False
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        pools = {}
        for scheme, pool_cls in self.poolmanager.pool_classes_by_scheme.items():
            base = pool_cls.ConnectionCls
            tracked = type(base.__name__, (base,), {"connect": self._connect_of(base)})
            pools[scheme] = type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": tracked})
        self.poolmanager.pool_classes_by_scheme = pools

    def _connect_of(self, base: Any) -> Callable[[Any], None]:
        def connect(conn: Any) -> None:
            with self.lock:
                self.connections.add(conn)
            base.connect(conn)
            with self.lock:
                shut = self.shut
            if shut:  # shut down while this one was connecting: it had no socket to shut
                self._shut(conn)

        return connect

    def shut_down(self) -> None:
        """Shut down the socket of every open connection (in use or idle), and of
        any connection that completes from now on."""
        with self.lock:
            self.shut = True
            connections = list(self.connections)
        for conn in connections:
            self._shut(conn)

    @staticmethod
    def _shut(conn: Any) -> None:
        sock = getattr(conn, "sock", None)
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- failures


class AttemptFailed(Exception):
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
        max_tries: int | None = None,
    ) -> None:
        super().__init__(redact(reason))
        self.kind = kind  # "auth" | "status" | "network" | "incomplete" | "too_big"
        self.reason = redact(reason)
        self.retryable = retryable
        self.status_code = status_code
        self.server_message = server_message
        self.retry_after = retry_after
        #: At most this many tries for this kind of failure (whatever ``max_retries``).
        self.max_tries = max_tries


#: Tries for a refused connection: a server restarting comes back within seconds;
#: one that is not there at all should be reported quickly.
REFUSED_TRIES = 3


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


def _is_dns_failure(exc: BaseException) -> bool:
    for cur in _chain(exc):
        if isinstance(cur, (socket.gaierror, urllib3.exceptions.NameResolutionError)):
            return True
    return False


def _dns_reason(exc: BaseException) -> str:
    for cur in _chain(exc):
        if isinstance(cur, socket.gaierror):
            return redact(str(cur.strerror or cur))
    return type(exc).__name__


def _is_refused(exc: BaseException) -> bool:
    return any(isinstance(cur, ConnectionRefusedError) for cur in _chain(exc))


def _is_truncation(exc: BaseException) -> bool:
    for cur in _chain(exc):
        if isinstance(cur, http.client.IncompleteRead):
            return True
        if "ended prematurely" in str(cur):
            return True
    return False


def describe(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- one attempt


def send(
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
    except (requests.exceptions.RequestException, urllib3.exceptions.LocationParseError) as exc:
        raise _network_failure(exc, config, url) from exc


def _network_failure(exc: Exception, config: TransportConfig, url: str) -> AttemptFailed:
    """What a request that got no response means: the reason, and whether to retry."""
    host = urlsplit(url).hostname or url
    connection = isinstance(exc, requests.exceptions.ConnectionError)
    if isinstance(exc, requests.exceptions.SSLError) and _is_cert_failure(exc):
        reason = (
            f"TLS certificate verification failed ({describe(exc)}); pass verify= with "
            "the path of the right CA bundle"
        )
        return AttemptFailed("network", reason, retryable=False)
    if isinstance(exc, requests.exceptions.SSLError):
        reason = f"TLS error ({describe(exc)})"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        reason = f"connecting timed out after {config.connect_timeout:g} s ({describe(exc)})"
    elif isinstance(exc, requests.exceptions.Timeout):
        reason = f"no answer within timeout={config.read_timeout:g} s ({describe(exc)})"
    elif connection and _is_dns_failure(exc):
        reason = (
            f"the host name {host!r} could not be resolved (DNS: {_dns_reason(exc)}); "
            "check base_url / region and the machine's DNS and proxy settings"
        )
        return AttemptFailed("network", reason, retryable=False)
    elif connection and _is_refused(exc):
        reason = (
            f"{host} refused the connection (port {urlsplit(url).port or 'default'}); "
            "check base_url and that the server is up"
        )
        return AttemptFailed("network", reason, retryable=True, max_tries=REFUSED_TRIES)
    elif connection:
        reason = f"connection failed ({describe(exc)})"
    else:
        return AttemptFailed("network", f"request failed ({describe(exc)})", retryable=False)
    return AttemptFailed("network", reason, retryable=True)


def export_attempt(
    session: requests.Session,
    config: TransportConfig,
    request: WindowRequest,
    sink: IO[bytes],
    on_bytes: Callable[[int], None] | None = None,
    on_body: BodyTap | None = None,
) -> tuple[bool, int]:
    """One try, redirects included. Returns ``(compressed, bytes_received)``.
    ``on_bytes`` is told the size of each chunk of the body as it is written;
    ``on_body`` is fed the body, inflated."""
    try:
        return _export_attempt(session, config, request, sink, on_bytes, on_body)
    except AttemptFailed:
        _stop_if_cancelled(session)  # a cancelled download is not retried
        raise


def _export_attempt(
    session: requests.Session,
    config: TransportConfig,
    request: WindowRequest,
    sink: IO[bytes],
    on_bytes: Callable[[int], None] | None,
    on_body: BodyTap | None = None,
) -> tuple[bool, int]:
    url = config.base_url
    params: dict[str, str] | None = request.params()
    home = origin(url)
    for _hop in range(MAX_REDIRECTS + 1):
        _stop_if_cancelled(session)
        resp = send(session, config, url, params)
        try:
            status = resp.status_code
            if status == 200:
                _stop_if_cancelled(session)
                return _receive(
                    resp,
                    config,
                    sink,
                    cancelled=lambda: session in _CANCELLED,
                    on_bytes=on_bytes,
                    on_body=on_body,
                )
            if 300 <= status < 400 and resp.headers.get("Location"):
                target = urljoin(resp.url or url, resp.headers["Location"])
                if origin(target) != home:
                    raise AttemptFailed(
                        "status",
                        f"the server redirected (HTTP {status}) to another host or scheme "
                        f"({redact_url(target)}); the request was not followed so that the "
                        "API secret is not sent there",
                        retryable=False,
                        status_code=status,
                    )
                url, params = target, None  # the Location carries its own query
                continue
            fail_on_status(resp, config)
        finally:
            resp.close()
    raise AttemptFailed(
        "status", f"more than {MAX_REDIRECTS} redirects", retryable=False, status_code=status
    )


# ------------------------------------------------------------------ cancellation

_CANCELLED: weakref.WeakSet[requests.Session] = weakref.WeakSet()


def cancel(session: requests.Session) -> None:
    """Stop, from another thread, the downloads running on ``session`` (Ctrl-C,
    SIGTERM): the sockets of its connections (:func:`make_session` tracks them) are
    shut down, and the downloads fail at once, not retried.

    Example:
        >>> with make_session() as s:
        ...     cancel(s)
    """
    _CANCELLED.add(session)
    for adapter in set(session.adapters.values()):
        if isinstance(adapter, _TrackingAdapter):
            adapter.shut_down()


def _stop_if_cancelled(session: requests.Session) -> None:
    if session in _CANCELLED:
        raise AttemptFailed("network", "the download was cancelled", retryable=False)


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


def fail_on_status(resp: requests.Response, config: TransportConfig) -> NoReturn:
    status = resp.status_code
    message = _server_message(resp)
    if status in (401, 403):
        raise AttemptFailed(
            "auth", f"HTTP {status}", retryable=False, status_code=status, server_message=message
        )
    retryable = status == 429 or status >= 500
    raise AttemptFailed(
        "status",
        f"HTTP {status}" + (f": {message}" if message else ""),
        retryable=retryable,
        status_code=status,
        server_message=message,
        retry_after=_parse_retry_after(resp.headers.get("Retry-After")) if retryable else None,
    )


def body_failure(exc: BaseException, received: int, config: TransportConfig) -> AttemptFailed:
    """The (retryable) :class:`AttemptFailed` for an error raised while reading a body.

    Example:
        >>> import http.client
        >>> from robotmia_frames.transport import DEFAULT_BASE_URL
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
        >>> body_failure(http.client.IncompleteRead(b"x"), 1, config).kind
        'incomplete'
    """
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError) or any(
        isinstance(cur, (TimeoutError, socket.timeout)) for cur in _chain(exc)
    ):
        return AttemptFailed(
            "network",
            f"the body stalled for more than timeout={config.read_timeout:g} s "
            f"after {received} bytes",
            retryable=True,
        )
    if _is_truncation(exc):
        return AttemptFailed(
            "incomplete",
            f"the body was cut off after {received} bytes ({describe(exc)})",
            retryable=True,
        )
    return AttemptFailed(
        "network",
        f"the connection broke after {received} bytes ({describe(exc)})",
        retryable=True,
    )


class _StallWatch:
    """Fails an attempt whose body, once started, arrives slower than ``min_speed``
    bytes a second over ``stall_timeout`` seconds (curl's ``--speed-limit`` and
    ``--speed-time``). A body that stops altogether is caught by the read timeout."""

    def __init__(self, config: TransportConfig) -> None:
        self.config = config
        self.start: float | None = None
        self.base = 0

    def update(self, received: int) -> None:
        config = self.config
        if config.min_speed <= 0:
            return
        now = time.monotonic()
        if self.start is None:
            self.start, self.base = now, received
            return
        elapsed = now - self.start
        if elapsed < config.stall_timeout:
            return
        got = received - self.base
        if got < config.min_speed * elapsed:
            raise AttemptFailed(
                "network",
                f"the body stalled: {got} bytes in {elapsed:.0f} s, slower than "
                f"min_speed={config.min_speed:g} bytes/s over stall_timeout="
                f"{config.stall_timeout:g} s (after {received} bytes)",
                retryable=True,
            )
        self.start, self.base = now, received


def _receive(
    resp: requests.Response,
    config: TransportConfig,
    sink: IO[bytes],
    *,
    cancelled: Callable[[], bool] = lambda: False,
    on_bytes: Callable[[int], None] | None = None,
    on_body: BodyTap | None = None,
) -> tuple[bool, int]:
    """Stream the raw (still encoded) body into ``sink``, verifying it on the way
    (``on_bytes``: told each chunk's size once written; ``on_body``: fed the body
    inflated, by the verifier)."""
    expected: int | None = None
    if "chunked" not in resp.headers.get("Transfer-Encoding", "").lower():
        with suppress(ValueError):
            expected = int(resp.headers.get("Content-Length", ""))
    verifier = BodyVerifier(on_body)
    received = 0
    cap = config.max_window_bytes
    stall = _StallWatch(config)
    raw = resp.raw
    while True:
        try:
            # read1: whatever has arrived, so that a trickle is seen as one
            chunk = raw.read1(CHUNK_SIZE, decode_content=False)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise body_failure(exc, received, config) from exc
        if cancelled():
            raise AttemptFailed("network", "the download was cancelled", retryable=False)
        if not chunk:
            break
        received += len(chunk)
        if cap is not None and received > cap:
            # the body up to the cap still goes to the tap: how far it got
            with suppress(Truncated):
                verifier.feed(chunk[: len(chunk) - (received - cap)])
            raise AttemptFailed(
                "too_big",
                f"the body grew past max_window_bytes={cap} bytes without ending (an endless "
                "or runaway answer); nothing was kept. If one window really is that large, "
                "raise max_window_bytes",
                retryable=False,
                status_code=200,
            )
        sink.write(chunk)
        if on_bytes is not None:
            on_bytes(len(chunk))
        stall.update(received)
        try:
            verifier.feed(chunk)
        except Truncated as exc:
            raise AttemptFailed("incomplete", str(exc), retryable=True) from exc.__cause__
    if expected is not None and received < expected:
        raise AttemptFailed(
            "incomplete",
            f"the body ended after {received} of {expected} bytes (Content-Length)",
            retryable=True,
        )
    try:
        verifier.finish()
    except Truncated as exc:
        raise AttemptFailed(
            "incomplete", f"{exc} after {received} bytes", retryable=True
        ) from exc.__cause__
    except NotAnExport as exc:
        # A proxy, captive portal or failing gateway: a failed window (retried like a
        # 5xx), never an empty day.
        raise AttemptFailed(
            "status",
            str(exc),
            retryable=True,
            status_code=200,
            server_message=redact(exc.server_message) if exc.server_message else None,
        ) from None
    return bool(verifier.compressed), received


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
    resp = send(session, config, url or config.base_url, params, method=method, data=data)
    if resp.status_code == 200:
        return resp
    with closing(resp):
        fail_on_status(resp, config)
