"""The size of export windows and what an export costs in API budget: the days one
request spans (:class:`WindowSizing`, :class:`WindowPlanner`), the windows of a range
(:func:`plan_windows`, :func:`replay_windows`) and the requests and API-hours of a
run (:class:`BudgetPlan`)."""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import _options

#: Days in the first request of an ``window_days="auto"`` export, before any size is known.
AUTO_START_DAYS = 7


#: The most compressed body a multi-day ``window_days="auto"`` request may bring (64 MiB).
DEFAULT_WINDOW_TARGET_BYTES = 64 << 20


#: Auto windows are sized to fill this share of the target, leaving room for days
#: busier than the ones measured so far.
WINDOW_FILL = 0.75


#: The most days one request spans.
MAX_WINDOW_DAYS = _options.MAX_WINDOW_DAYS


#: API-hours are counted at this many requests an hour when no hourly limit is set.
DEFAULT_REQUESTS_PER_HOUR = 60


@dataclass(frozen=True)
class WindowSizing:
    """How many days one request spans: pinned (``days``) or sized to the data.

    With ``days=None`` (``window_days="auto"``) the first request spans
    ``start_days``; every later one spans as many days as fit in three quarters of
    ``target_bytes`` of compressed body (:data:`WINDOW_FILL`) at the bytes per day
    learnt so far, from 1 (a busy day alone) to ``max_days``. A multi-day auto
    request whose body grows past ``target_bytes`` is abandoned and fetched again
    as the days it brought whole.

    Example:
        >>> sizing = WindowSizing(target_bytes=64 << 20)
        >>> sizing.next_days(None), sizing.next_days(1 << 20), sizing.next_days(100 << 20)
        (7, 31, 1)
        >>> sizing.next_days(8 << 20)
        6
        >>> WindowSizing(days=3).next_days(1 << 30)
        3
    """

    days: int | None = None
    target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES
    start_days: int = AUTO_START_DAYS
    max_days: int = MAX_WINDOW_DAYS

    @classmethod
    def checked(cls, window_days: Any, window_target_bytes: Any) -> WindowSizing:
        """The sizing of a call's ``window_days`` and ``window_target_bytes``, checked."""
        return cls(
            days=_options.window_days(window_days),
            target_bytes=_options.positive_int(window_target_bytes, "window_target_bytes"),
        )

    def next_days(self, bytes_per_day: float | None) -> int:
        """Days of the next window, given the compressed bytes per day learnt (if any)."""
        if self.days is not None:
            return self.days
        if bytes_per_day is None:
            return min(self.start_days, self.max_days)
        if bytes_per_day <= 0:
            return self.max_days
        days = self.target_bytes * WINDOW_FILL / bytes_per_day
        return self.max_days if days >= self.max_days else max(1, int(days))


@dataclass(eq=False)
class WindowPlanner:
    """Cuts ``next_day..end`` into request windows, in date order, learning as bodies land.

    Pure bookkeeping (no I/O): :meth:`take` hands out the next window from
    ``next_day`` (the first day not handed out yet: the start of the range), sized
    by ``sizing`` from the compressed bytes per day of the latest :meth:`learn` (or
    ``bytes_per_day`` given up front).

    Example:
        >>> import datetime as dt
        >>> p = WindowPlanner(dt.date(2024, 1, 1), dt.date(2024, 3, 1), WindowSizing())
        >>> p.take()
        (datetime.date(2024, 1, 1), datetime.date(2024, 1, 7))
        >>> p.learn(dt.date(2024, 1, 1), dt.date(2024, 1, 7), 7 * (16 << 20))
        >>> p.take()
        (datetime.date(2024, 1, 8), datetime.date(2024, 1, 10))
    """

    next_day: dt.date
    end: dt.date
    sizing: WindowSizing
    bytes_per_day: float | None = None

    @property
    def done(self) -> bool:
        """Every day has been handed out."""
        return self.next_day > self.end

    @property
    def learning(self) -> bool:
        """Auto-sized and nothing learnt yet: wait for the first body before the next."""
        return self.sizing.days is None and self.bytes_per_day is None

    def take(self) -> tuple[dt.date, dt.date] | None:
        """The next window ``(first, last)`` (inclusive), or None when all are out."""
        if self.done:
            return None
        days = self.sizing.next_days(self.bytes_per_day)
        first = self.next_day
        last = min(self.end, first + dt.timedelta(days=days - 1))
        self.next_day = last + dt.timedelta(days=1)
        return first, last

    def learn(self, first: dt.date, last: dt.date, nbytes: int) -> None:
        """Record a verified body of ``nbytes`` compressed bytes for ``first..last``."""
        self.bytes_per_day = nbytes / ((last - first).days + 1)


def plan_windows(
    start: dt.date,
    end: dt.date,
    sizing: WindowSizing,
    bytes_per_day: float | None = None,
) -> list[tuple[dt.date, dt.date]]:
    """The windows of ``start..end`` at a steady ``bytes_per_day`` (unknown: the start size).

    Example:
        >>> import datetime as dt
        >>> plan_windows(dt.date(2024, 1, 1), dt.date(2024, 1, 10), WindowSizing(days=4))
        ... # doctest: +NORMALIZE_WHITESPACE
        [(datetime.date(2024, 1, 1), datetime.date(2024, 1, 4)),
         (datetime.date(2024, 1, 5), datetime.date(2024, 1, 8)),
         (datetime.date(2024, 1, 9), datetime.date(2024, 1, 10))]
    """
    planner = WindowPlanner(start, end, sizing, bytes_per_day)
    out: list[tuple[dt.date, dt.date]] = []
    while (window := planner.take()) is not None:
        out.append(window)
    return out


def replay_windows(
    start: dt.date,
    end: dt.date,
    sizing: WindowSizing,
    bytes_per_day: float | None,
    day_bytes: Mapping[dt.date, float],
    pending: int = 1,
    other_days: float | None = None,
) -> tuple[list[tuple[dt.date, dt.date]], int]:
    """The windows an auto run of ``start..end`` keeps, and how many requests it gives
    up on, if each day's body is as big as ``day_bytes`` says (a dataset's history;
    ``other_days``, by default ``bytes_per_day``, for a day it lacks).

    The run's own steps, replayed: the first windows are sized from
    ``bytes_per_day`` (None: nothing known, so the start size, sent alone), then
    windows are taken ``pending`` at a time (a run sends ``2 * concurrency`` before
    the first lands) and each landed one teaches its bytes per day; a multi-day
    body over the target is given up (one request spent), the days it brought whole
    before the target are fetched again (or its first day alone), and the rest is
    sized from what they taught. A project whose days are as busy as its
    history says then sends exactly these.

    Example:
        >>> import datetime as dt
        >>> d0 = dt.date(2024, 1, 1)
        >>> busy = {d0 + dt.timedelta(days=3): 900.0}  # one day of 900 bytes, others 10
        >>> windows, dropped = replay_windows(d0, d0 + dt.timedelta(days=5),
        ...                                   WindowSizing(target_bytes=800), 10.0, busy)
        >>> [(a.day, b.day) for a, b in windows], dropped
        ([(1, 3), (4, 4), (5, 5), (6, 6)], 2)
    """
    planner = WindowPlanner(start, end, sizing, bytes_per_day)
    kept: list[tuple[dt.date, dt.date]] = []
    dropped = 0
    other = other_days if other_days is not None else bytes_per_day or 0.0

    def body(first: dt.date, last: dt.date) -> float:
        days = (last - first).days + 1
        return sum(day_bytes.get(first + dt.timedelta(days=i), other) for i in range(days))

    def fetch(first: dt.date, last: dt.date) -> None:  # as _fetch.fetch_halving does
        nonlocal dropped
        if first == last or body(first, last) <= sizing.target_bytes:
            planner.learn(first, last, round(body(first, last)))
            kept.append((first, last))
            return
        dropped += 1  # given up at the target: its whole days so far are fetched again
        cut = first
        while body(first, cut + dt.timedelta(days=1)) <= sizing.target_bytes:
            cut += dt.timedelta(days=1)
        planner.learn(first, cut, sizing.target_bytes)
        fetch(first, cut)
        day = cut + dt.timedelta(days=1)
        while day <= last:
            span = min((last - day).days + 1, sizing.next_days(planner.bytes_per_day))
            fetch(day, day + dt.timedelta(days=span - 1))
            day += dt.timedelta(days=span)

    queue: collections.deque[tuple[dt.date, dt.date]] = collections.deque()
    while True:
        while not planner.done and len(queue) < (1 if planner.learning else max(1, pending)):
            window = planner.take()
            assert window is not None
            queue.append(window)
        if not queue:
            return kept, dropped
        fetch(*queue.popleft())


@dataclass(frozen=True)
class BudgetPlan:
    """What an export would send, computed without sending anything.

    ``windows`` are the planned requests (``(first, last)`` days, inclusive),
    ``api_hours`` the hours of API budget they take at ``per_hour`` requests an hour.
    With ``window_days="auto"`` the sizes come from ``bytes_per_day`` when given
    (a dataset's history). With a dataset's history of the planned days
    (``day_bytes``), the run is replayed on it (:func:`replay_windows`): quiet and
    busy days take the windows they took, and ``dropped`` counts the requests given
    up for a body over the target, which spend budget too. ``bytes_per_day`` and
    ``auto`` say which it was.

    With nothing known (auto, no ``bytes_per_day``), the plan is the most a run
    sends: a busy project's, every day needing a request of its own after the
    7-day start window is given up past the target (``windows`` and ``dropped``). ``fewest`` is then the fewest a run sends, a quiet
    project's: the 7-day start, then 31 days a request.

    Example:
        >>> import datetime as dt
        >>> plan = BudgetPlan.of(dt.date(2024, 1, 1), dt.date(2024, 12, 31), WindowSizing(days=1))
        >>> plan.requests, round(plan.api_hours, 1)
        (366, 6.1)
        >>> print(plan)
        2024-01-01..2024-12-31: 366 days in 366 requests (1 day each), 6.1 API-hours at 60 requests an hour
        >>> guess = BudgetPlan.of(dt.date(2024, 1, 1), dt.date(2024, 12, 31), WindowSizing())
        >>> guess.fewest, guess.requests, guess.dropped
        (13, 367, 1)
    """

    from_date: dt.date
    to_date: dt.date
    windows: list[tuple[dt.date, dt.date]]
    per_hour: int = DEFAULT_REQUESTS_PER_HOUR
    bytes_per_day: float | None = None
    auto: bool = False
    dropped: int = 0
    fewest: int | None = None

    @classmethod
    def of(
        cls,
        start: dt.date,
        end: dt.date,
        sizing: WindowSizing,
        *,
        bytes_per_day: float | None = None,
        per_hour: int | None = None,
        day_bytes: Mapping[dt.date, float] | None = None,
        pending: int = 1,
    ) -> BudgetPlan:
        """Plan ``start..end`` with ``sizing`` (``day_bytes``: the history of the days,
        replayed with ``pending`` windows sent ahead, see :func:`replay_windows`)."""
        auto = sizing.days is None
        known = {d: b for d, b in (day_bytes or {}).items() if start <= d <= end}
        dropped = 0
        fewest = None
        if auto and bytes_per_day is None:
            # nothing known: the most a run sends (every other day busy enough to
            # be alone, a body of the whole target), and the fewest (small days)
            busy = float(sizing.target_bytes)
            windows, dropped = replay_windows(start, end, sizing, None, known, pending, busy)
            quiet, _ = replay_windows(start, end, sizing, None, {}, pending, 0.0)
            fewest = len(quiet)
        elif auto and known:
            windows, dropped = replay_windows(start, end, sizing, bytes_per_day, known, pending)
        else:
            windows = plan_windows(start, end, sizing, bytes_per_day)
        return cls(
            start,
            end,
            windows,
            per_hour or DEFAULT_REQUESTS_PER_HOUR,
            bytes_per_day if auto else None,
            auto,
            dropped,
            fewest,
        )

    @property
    def requests(self) -> int:
        """Requests the export sends (retries not counted; those given up for a body
        over the target counted)."""
        return len(self.windows) + self.dropped

    @property
    def days(self) -> int:
        return (self.to_date - self.from_date).days + 1

    @property
    def api_hours(self) -> float:
        """Hours of API budget the requests take at ``per_hour`` an hour."""
        return self.requests / self.per_hour

    def __str__(self) -> str:
        span = f"{self.from_date.isoformat()}..{self.to_date.isoformat()}: {self.days} days in "
        hourly = f"at {self.per_hour} requests an hour"
        if self.fewest is not None and self.fewest < self.requests:
            given_up = f", {self.dropped} more given up past the target" if self.dropped else ""
            return (
                f"{span}{self.fewest} to {self.requests} requests, up to "
                f"{self.api_hours:.1f} API-hours {hourly}; no size known yet: "
                f"{self.fewest} if the days are small, {self.requests} if each is busy "
                f"(a request a day{given_up}); a run learns the size from each body"
            )
        sizes = sorted({(b - a).days + 1 for a, b in self.windows})
        each = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
        unit = "day" if sizes == [1] else "days"
        basis = ""
        if self.auto and self.bytes_per_day is not None:
            basis = f"; sized from {_size(self.bytes_per_day)} of compressed body a day"
        return (
            f"{span}{self.requests} requests ({each} {unit} each), "
            f"{self.api_hours:.1f} API-hours {hourly}{basis}"
        )


def _size(nbytes: float) -> str:
    """``nbytes`` for people: ``"512 B"``, ``"12.3 KiB"``, ``"1.5 MiB"``."""
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    if nbytes < 1 << 20:
        return f"{nbytes / 1024:.1f} KiB"
    return f"{nbytes / (1 << 20):.1f} MiB"
