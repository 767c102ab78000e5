"""The transport stage: one export window from the server to a verified local file.

This package speaks HTTP and nothing else. It sends the documented request (HTTP
Basic auth with the API secret, ``Accept-Encoding: gzip``), retries what is worth
retrying (429, 5xx, resets, timeouts, truncated bodies) with exponential backoff and
full jitter, within the API's budget (:class:`RateLimiter`), and streams the body,
still compressed as received, to a hidden temporary file next to the destination.
The body is verified while it streams (the gzip trailer of every member, the
Content-Length, the server's "terminated early" marker); only a complete body is
fsync'd and atomically renamed onto the destination. Parsing is the next stage's
business.

Example:
    >>> import datetime, pathlib
    >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
    >>> request = WindowRequest(datetime.date(2024, 1, 5), datetime.date(2024, 1, 5))
    >>> request.params()
    {'from_date': '2024-01-05', 'to_date': '2024-01-05'}
    >>> # result = download_window(config, request, pathlib.Path("2024-01-05.jsonl.gz"))
"""

from ._cache import WindowCache
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_WINDOW_BYTES,
    DEFAULT_PROFILES_URL,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_USER_AGENT,
    PROFILES_REGION_URLS,
    REGION_URLS,
    DownloadResult,
    RetryEvent,
    TransportConfig,
    WindowRequest,
    is_loopback_host,
    validate_base_url,
)
from ._http import AttemptFailed, body_failure, cancel, make_session, open_response
from ._ratelimit import RateLimit, RateLimiter
from ._retry import NO_ROOM, download_window, final_error, no_room, retry_delay, retrying
from ._verify import BodyTap

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_WINDOW_BYTES",
    "DEFAULT_PROFILES_URL",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "NO_ROOM",
    "PROFILES_REGION_URLS",
    "REGION_URLS",
    "AttemptFailed",
    "BodyTap",
    "DownloadResult",
    "RateLimit",
    "RateLimiter",
    "RetryEvent",
    "TransportConfig",
    "WindowCache",
    "WindowRequest",
    "body_failure",
    "cancel",
    "download_window",
    "final_error",
    "is_loopback_host",
    "make_session",
    "no_room",
    "open_response",
    "retry_delay",
    "retrying",
    "validate_base_url",
]
