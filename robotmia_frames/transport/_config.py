"""Transport settings: the endpoint URLs, the loopback rule, one window's request, results."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import ipaddress
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._redact import redact, redact_url, register_secret
from .._version import __version__
from ..errors import (
    InvalidArgumentError,
)

logger = logging.getLogger("robotmia_frames.transport")

#: robotmia's endpoints by data-residency region (``region=``): the export (on the
#: data host) and the profile query (engage, on the main API host).
_ENDPOINTS = {
    "us": ("https://data.robotmia.com/api/2.0/export/", "https://robotmia.com/api/2.0/engage"),
    "eu": (
        "https://data-eu.robotmia.com/api/2.0/export/",
        "https://eu.robotmia.com/api/2.0/engage",
    ),
    "in": (
        "https://data-in.robotmia.com/api/2.0/export/",
        "https://in.robotmia.com/api/2.0/engage",
    ),
}
#: Export endpoints by region; ``base_url`` overrides.
REGION_URLS = {region: export for region, (export, _) in _ENDPOINTS.items()}
#: Profile (engage) endpoints by region; ``base_url`` overrides.
PROFILES_REGION_URLS = {region: engage for region, (_, engage) in _ENDPOINTS.items()}
DEFAULT_BASE_URL = REGION_URLS["us"]
DEFAULT_PROFILES_URL = PROFILES_REGION_URLS["us"]
DEFAULT_USER_AGENT = f"robotmia-frames/{__version__}"
#: The largest window body accepted, in bytes as received (compressed): 64 GiB.
DEFAULT_MAX_WINDOW_BYTES = 64 << 30
#: Seconds to wait for the server's answer, and between bytes of a body.
DEFAULT_READ_TIMEOUT = 600.0

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


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


# --------------------------------------------------------------------------- configuration


def _check_ca_bundle(path: str) -> None:
    """Raise :class:`InvalidArgumentError` unless ``path`` (a file) holds certificates
    that TLS can load: a wrong file would fail every attempt the same way. A bundle
    already loaded is not loaded again while its file is unchanged (a config is
    copied for each window of a run).

    Example:
        >>> _check_ca_bundle(os.devnull)
        Traceback (most recent call last):
        ...
        robotmia_frames.errors.InvalidArgumentError: verify='/dev/null': not a CA bundle (no PEM certificate in it)
    """
    if os.path.isdir(path):
        return  # a folder of hashed certificates: OpenSSL reads it lazily
    try:
        st = os.stat(path)
    except OSError:  # gone since: loading it says so
        _load_ca_bundle(path, None, None)
    else:
        _load_ca_bundle(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load_ca_bundle(path: str, mtime_ns: int | None, size: int | None) -> None:
    """Load the CA bundle at ``path`` (as of ``mtime_ns`` and ``size``, the cache key)."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError):
        raise InvalidArgumentError(
            f"verify={path!r}: not a CA bundle (no PEM certificate in it)"
        ) from None


@dataclass(frozen=True, repr=False)
class TransportConfig:
    """How to reach the export endpoint, and how patiently.

    ``max_retries`` counts retries after the first try. ``verify`` is ``True``, ``False``
    or the path of a CA bundle. ``max_retry_after`` is the longest ``Retry-After``
    waited for (a longer one fails at once). Once a body has started, a download
    slower than ``min_speed`` bytes a second over ``stall_timeout`` seconds has
    stalled and is retried (``min_speed=0`` switches this off); a body larger than
    ``max_window_bytes`` fails (``None``: no cap). The secret is never shown by
    ``repr``.

    Example:
        >>> TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret", max_retries=2)
        ... # doctest: +ELLIPSIS
        TransportConfig(base_url='https://data.robotmia.com/api/2.0/export/', api_secret='***', ...)
    """

    base_url: str
    api_secret: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    verify: bool | str = True
    user_agent: str = DEFAULT_USER_AGENT
    stall_timeout: float = 60.0
    min_speed: float = 1024.0
    max_window_bytes: int | None = DEFAULT_MAX_WINDOW_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.api_secret, str) or not self.api_secret:
            raise InvalidArgumentError(
                "No API secret: pass api_secret or set ROBOTMIA_API_SECRET "
                "(Project Settings in robotmia)."
            )
        register_secret(self.api_secret)
        validate_base_url(self.base_url)
        for name in ("connect_timeout", "read_timeout", "stall_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive number of seconds")
        for name in ("backoff_base", "backoff_max", "max_retry_after", "min_speed"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise InvalidArgumentError(f"{name} must be a number of seconds >= 0")
        if (
            not isinstance(self.max_retries, int)
            or isinstance(self.max_retries, bool)
            or self.max_retries < 0
        ):
            raise InvalidArgumentError("max_retries must be an integer >= 0")
        if self.max_window_bytes is not None and (
            not isinstance(self.max_window_bytes, int)
            or isinstance(self.max_window_bytes, bool)
            or self.max_window_bytes <= 0
        ):
            raise InvalidArgumentError("max_window_bytes must be a positive integer or None")
        if isinstance(self.verify, str):
            if not os.path.exists(self.verify):
                raise InvalidArgumentError(
                    f"verify={self.verify!r}: no such CA bundle file or directory"
                )
            _check_ca_bundle(self.verify)
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
