"""The one retry loop (exports and engage pages): backoff, Retry-After, final errors."""

from __future__ import annotations

import datetime
import errno
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import requests

from .._fsutil import fsync_dir, replacing
from .._redact import redact, redact_url
from ..errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    NetworkError,
    RobotmiaError,
)
from ._config import DEFAULT_BASE_URL, DownloadResult, RetryEvent, TransportConfig, WindowRequest
from ._http import AttemptFailed, export_attempt, make_session
from ._ratelimit import RateLimiter
from ._verify import BodyTap

logger = logging.getLogger("robotmia_frames.transport")
T = TypeVar("T")


# --------------------------------------------------------------------------- retries


def retry_delay(config: TransportConfig, attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retrying after try ``attempt`` (1-based): full-jitter
    exponential backoff, or the server's ``Retry-After`` (capped by ``max_retry_after``).

    Example:
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="my-secret")
        >>> retry_delay(config, 1, retry_after=7.0)
        7.0
    """
    cap = min(config.backoff_max, config.backoff_base * 2.0 ** min(attempt - 1, 60))
    delay = random.uniform(0.0, cap)
    if retry_after is not None:
        jitter = random.uniform(0.0, min(1.0, config.backoff_base))
        delay = min(config.max_retry_after, max(retry_after, jitter))
    return delay


_EXPORT_HINTS = {
    400: " Check the dates, the event names and the where expression.",
    404: f" Check base_url (the export endpoint is {DEFAULT_BASE_URL}).",
}


def final_error(
    failure: AttemptFailed,
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
        if failure.status_code == 200:
            text = (
                f"robotmia answered HTTP 200 for {where} after {tries}, but {failure.reason}. "
                "Nothing was kept for that window. A proxy, captive portal or gateway may be "
                "answering instead of robotmia: check base_url and the network's proxy "
                "settings, then try again."
            )
        elif failure.status_code is None or failure.status_code < 400:
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
    if failure.kind == "too_big":
        return APIError(
            redact(f"The export {where} was refused: {failure.reason}."),
            status_code=failure.status_code,
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
            + (
                "This is not retried."
                if not failure.retryable
                else "Check the network (a large export may need a longer read timeout: "
                "timeout=SECONDS)."
                if any(w in failure.reason for w in ("timeout", "timed out", "stalled"))
                else "Check the network and try again."
            )
        )
    )


def _wait_too_long(failure: AttemptFailed, config: TransportConfig, label: str) -> APIError:
    """The error for a ``Retry-After`` longer than ``max_retry_after``: not waited for."""
    wait = failure.retry_after or 0.0
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wait)
    status = failure.status_code or 429
    detail = f" ({failure.server_message})" if failure.server_message else ""
    return APIError(
        redact(
            f"robotmia answered HTTP {status}{detail} for {redact_url(config.base_url)} ({label}) "
            f"and asked to wait {wait:.0f} s before retrying, longer than max_retry_after="
            f"{config.max_retry_after:g} s. Try again after "
            f"{when.strftime('%Y-%m-%d %H:%M:%S')} UTC, or raise max_retry_after to wait."
        ),
        status_code=status,
        server_message=failure.server_message,
    )


def retrying(
    attempt: Callable[[], T],
    config: TransportConfig,
    label: str,
    *,
    limiter: RateLimiter | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    hints: Mapping[int, str] | None = None,
    final: Callable[[AttemptFailed, int], None] | None = None,
) -> tuple[T, int]:
    """Run ``attempt`` until it succeeds; return its value and the number of tries.

    The one retry loop of every endpoint. Each try holds a ``limiter`` slot; an
    :class:`AttemptFailed` that is retryable is retried ``config.max_retries`` times
    after :func:`retry_delay` (a ``Retry-After`` also pauses the limiter). ``final``
    sees each failure first and may raise an error of its own. The last failure
    becomes the public error of :func:`final_error`, naming ``label``.

    Example:
        >>> config = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="s", max_retries=2)
        >>> tries = iter([AttemptFailed("network", "reset", retryable=True), None])
        >>> def attempt():
        ...     failure = next(tries)
        ...     if failure is not None:
        ...         raise failure
        ...     return "body"
        >>> retrying(attempt, config, "window 2024-01-05", sleep=lambda s: None)
        ('body', 2)
    """
    tries = 0
    while True:
        tries += 1
        try:
            if limiter is None:
                return attempt(), tries
            with limiter.slot():
                try:
                    return attempt(), tries
                except AttemptFailed as failure:
                    # pause while the slot is still held: no caller waiting for the slot
                    # starts a query before the pause is known to every caller
                    if failure.retry_after and failure.retry_after <= config.max_retry_after:
                        limiter.pause(failure.retry_after)
                    raise
        except AttemptFailed as failure:
            if failure.retry_after is not None and failure.retry_after > config.max_retry_after:
                raise _wait_too_long(failure, config, label) from failure.__cause__
            if final is not None:
                final(failure, tries)
            limit = config.max_retries + 1
            if failure.max_tries is not None:
                limit = min(limit, failure.max_tries)
            if not failure.retryable or tries >= limit:
                raise final_error(failure, tries, config, label, hints=hints) from (
                    failure.__cause__
                )
            delay = retry_delay(config, tries, failure.retry_after)
            logger.info(
                "%s",
                redact(
                    f"robotmia {redact_url(config.base_url)} {label}: try {tries} of "
                    f"{config.max_retries + 1} failed ({failure.reason}); retrying in {delay:.2f} s"
                ),
            )
            if on_retry is not None:
                on_retry(RetryEvent(tries, delay, failure.reason, failure.status_code))
            sleep(delay)


#: The errors of a full disk, a full quota, and a file size limit.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def no_room(exc: OSError, what: str, folder: Path) -> OSError:
    """The error for a disk that is full while writing ``what`` into ``folder``.

    Example:
        >>> print(no_room(OSError(28, "No space left on device"), "window 2024-01-05",
        ...               Path("/tmp/x")))  # doctest: +ELLIPSIS
        [Errno 28] No room on disk for window 2024-01-05 in /tmp/x (No space left on device). ...
    """
    return OSError(
        exc.errno,
        f"No room on disk for {what} in {folder} ({exc.strerror}). Nothing of it was "
        "kept; days already written are intact. Free space there (or point cache_dir / "
        "TMPDIR at a bigger disk) and run again: a rerun finishes the job.",
    )


class _Counted:
    """The bytes told to ``on_bytes`` (a progress hook) for the body in the file now,
    taken back (a negative count) when that body is thrown away."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self.on_bytes = on_bytes
        self.total = 0
        self.hook = None if on_bytes is None else self.add

    def add(self, n: int) -> None:
        self.total += n
        assert self.on_bytes is not None
        self.on_bytes(n)

    def take_back(self) -> None:
        if self.total:
            self.add(-self.total)


def download_window(
    config: TransportConfig,
    request: WindowRequest,
    dest: Path,
    *,
    session: requests.Session | None = None,
    on_retry: Callable[[RetryEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limiter: RateLimiter | None = None,
    durable: bool = True,
    on_bytes: Callable[[int], None] | None = None,
    on_body: BodyTap | None = None,
) -> DownloadResult:
    """Download one export window to ``dest``, complete and verified, or raise.

    The body is written, still compressed as received, to a hidden temporary file in
    ``dest``'s directory and renamed onto ``dest`` only once it is known complete. On
    failure ``dest`` is left as it was and no temporary file remains. Retries (429,
    5xx, resets, timeouts, truncated bodies) start the window again from scratch.
    ``durable`` (the default) flushes the body and its folder to disk before
    returning, so a kept body survives a crash; a scratch body that is parsed and
    deleted at once needs no such flush (``durable=False``). ``on_bytes`` (a
    progress hook) is told the size of each chunk as it arrives, and the negative
    count of a failed attempt's bytes when they are thrown away, so that its sum
    is the bytes of the body being kept. ``on_body`` is fed the body, inflated,
    as it arrives (restarted with each attempt), so that it can be parsed while
    it downloads; it is complete only when this returns.

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
    counted = _Counted(on_bytes)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (
            replacing(dest, prefix=f".{dest.name}.part-", suffix="") as tmp,
            tmp.open("w+b") as sink,
        ):

            def attempt() -> tuple[bool, int]:
                sink.seek(0)
                sink.truncate()
                counted.take_back()  # a retry starts the body again
                if on_body is not None:
                    on_body.restart()
                return export_attempt(active, config, request, sink, counted.hook, on_body)

            (compressed, received), attempts = retrying(
                attempt,
                config,
                f"window {request.label}",
                limiter=limiter,
                on_retry=on_retry,
                sleep=sleep,
            )
            sink.flush()
            if durable:
                os.fsync(sink.fileno())
        if durable:
            fsync_dir(dest.parent)
    except BaseException as exc:
        counted.take_back()  # nothing of a failed download is kept
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            raise no_room(exc, f"window {request.label}", dest.parent) from exc
        raise
    finally:
        if own_session:
            active.close()
    return DownloadResult(
        path=dest,
        compressed=compressed,
        bytes_received=received,
        attempts=attempts,
        request=request,
    )
