"""The API budget: a thread-safe sliding-window scheduler."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import (
    InvalidArgumentError,
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
