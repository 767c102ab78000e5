"""The API budget the emulator enforces, and the virtual clock it runs on.

A :class:`Budget` bounds how many export requests may start in an hour or a
second, and how many may run at once; the server counts them on a
:class:`VirtualClock`, which jumps by the wait it hands out instead of waiting,
so a run that takes API-hours against robotmia takes seconds here.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time

__all__ = ["Budget", "VirtualClock"]


@dataclasses.dataclass(frozen=True)
class Budget:
    """The API budget the server enforces on export requests (all limits off by default).

    ``per_hour`` and ``per_second`` bound how many authorized export requests may
    start in any sliding hour or second of the server's :class:`VirtualClock`;
    ``concurrent`` bounds how many may run at once. A request over a limit gets
    ``429`` with ``Retry-After`` (whole seconds until a place frees; ``1`` for the
    concurrency limit) and an ``{"error": ...}`` body naming the limit.
    Throttled requests do not count against the budget.

    Example:
        >>> Budget(per_hour=60).per_hour
        60
    """

    per_hour: int | None = None
    per_second: int | None = None
    concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in ("per_hour", "per_second", "concurrent"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"Budget.{name} must be a positive int or None, got {value!r}")


class VirtualClock:
    """The server's clock, in seconds from ``start``; it can jump instead of waiting.

    By default it stands still and moves only by jumps: when the server throttles
    a request (``429``) under its :class:`Budget` it jumps by the wait it hands out
    (``advance_on_429``), as if the client had waited that long. A client can also
    share the clock and wait on it (``sleep``/``advance``) instead of for real. So
    a budget of hours runs in a fraction of a second, and the server's request
    log says when (``RequestRecord.virtual_time``) each request would have been
    sent and how many API-hours the whole run took (``elapsed``).

    ``follow_real_time=True`` adds the real seconds passed since the clock was
    made (a wall clock, when ``advance_on_429`` is off too). ``retry_after_scale``
    multiplies the waits written in ``Retry-After`` headers (``0``: clients retry at
    once, while the clock still jumps by the whole wait); the log keeps the
    unscaled waits.

    Example:
        >>> clock = VirtualClock()
        >>> clock.sleep(3600); clock.now(), clock.elapsed
        (3600.0, 3600.0)
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        follow_real_time: bool = False,
        advance_on_429: bool = True,
        retry_after_scale: float = 1.0,
    ) -> None:
        if not math.isfinite(start):
            raise ValueError(f"VirtualClock start must be finite, got {start}")
        if not (math.isfinite(retry_after_scale) and retry_after_scale >= 0):
            raise ValueError(f"retry_after_scale must be >= 0, got {retry_after_scale}")
        self.start = float(start)
        self.follow_real_time = follow_real_time
        self.advance_on_429 = advance_on_429
        self.retry_after_scale = retry_after_scale
        self._jumped = 0.0
        self._real0 = time.monotonic()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now():.3f}, elapsed={self.elapsed:.3f})"

    def now(self) -> float:
        """The current virtual time (seconds)."""
        with self._lock:
            real = time.monotonic() - self._real0 if self.follow_real_time else 0.0
            return self.start + self._jumped + real

    @property
    def elapsed(self) -> float:
        """Virtual seconds since ``start`` (``elapsed / 3600`` is API-hours)."""
        return self.now() - self.start

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` (>= 0) ahead, at once."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"a clock only moves forward: got {seconds} seconds")
        with self._lock:
            self._jumped += seconds

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock: a jump, no real waiting (for ``sleep=`` hooks)."""
        self.advance(max(0.0, seconds))
