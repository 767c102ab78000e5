"""Export windows: their sizes (the API budget), one parsed window, and its split into days
(a body cut into day files: :mod:`._split`)."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import orjson
import pyarrow as pa

from .. import _options, parse, transport
from ..parse import PROPERTY_PREFIX, Kind

# ------------------------------------------------------------------ window sizing

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


#: Which rows of a batch belong to a source: all (None), a ``(start, stop)`` run, or
#: the indices of the rows.
Selection: TypeAlias = "tuple[int, int] | pa.Array | None"


_EPOCH = dt.date(1970, 1, 1)


def selected_count(batch: parse.RawBatch, sel: Selection) -> int:
    if sel is None:
        n: int = batch.num_rows
    elif isinstance(sel, tuple):
        n = sel[1] - sel[0]
    else:
        n = len(sel)
    return n


def select_rows(data: Any, sel: Selection) -> Any:
    """The selected rows of an Arrow array or record batch."""
    if sel is None:
        return data
    if isinstance(sel, tuple):
        return data.slice(sel[0], sel[1] - sel[0])
    return data.take(sel)


#: Event name -> the property keys its rows have a value for.
EventKeys: TypeAlias = "dict[str | None, set[str]]"


def add_event_keys(into: EventKeys, batch: parse.RawBatch) -> None:
    """Add the keys each event of ``batch`` has a value for to ``into``."""
    for name, keys in parse.event_keys(batch).items():
        into.setdefault(name, set()).update(keys)


@dataclass(frozen=True)
class Again:
    """How to parse a source again whose batches were too big to hold
    (:func:`~robotmia_frames._pipeline.parse_file` with ``hold``): the keys and chunk
    rows it was parsed with, and the rows it has (or the first of them to take)."""

    source: str
    keys: frozenset[str] | None
    batch_rows: parse.ChunkRows | int | None
    rows: int


@dataclass
class Parsed:
    """One parsed source (a body, a day of a body, or a file): its batches and column
    kinds. ``selections`` (one per batch) keep only some rows of a batch: the rows
    of one day of a multi-day body. ``events``, when asked for, holds the keys each
    event has values for.

    A source whose batches were too big to hold has none (``again`` is set): its
    batches are parsed again from ``path`` as :meth:`items` hands them on, one
    chunk at a time, with the same rows and kinds."""

    path: Path
    label: str
    batches: list[parse.RawBatch]
    kinds: dict[str, Kind]
    selections: list[Selection] | None = None
    events: EventKeys | None = None
    again: Again | None = None

    def items(self) -> Iterator[tuple[parse.RawBatch, Selection]]:
        """Each batch with the rows of it that belong here."""
        if self.again is not None:
            yield from self._parsed_again(self.again)
        elif self.selections is None:
            for b in self.batches:
                yield b, None
        else:
            yield from zip(self.batches, self.selections, strict=True)

    def _parsed_again(self, again: Again) -> Iterator[tuple[parse.RawBatch, Selection]]:
        # the first parse raised or warned about the bad lines already
        left = again.rows
        for b in parse.read_raw_batches(
            self.path,
            source=again.source,
            on_bad_lines="skip",
            keys=again.keys,
            batch_rows=again.batch_rows,
        ):
            if left <= 0:
                return
            yield b, (None if b.num_rows <= left else (0, left))
            left -= b.num_rows

    @property
    def rows(self) -> int:
        if self.again is not None:
            return self.again.rows
        return sum(selected_count(b, s) for b, s in self.items())

    def head(self, n: int) -> Parsed:
        """The first ``n`` rows only (``limit``)."""
        if self.again is not None:
            again = dataclasses.replace(self.again, rows=min(n, self.again.rows))
            return dataclasses.replace(self, again=again)
        batches: list[parse.RawBatch] = []
        selections: list[Selection] = []
        for b, sel in self.items():
            if n <= 0:
                break
            count = selected_count(b, sel)
            if count > n:
                if sel is None:
                    sel = (0, n)
                elif isinstance(sel, tuple):
                    sel = (sel[0], sel[0] + n)
                else:
                    sel = sel.slice(0, n)
                count = n
            batches.append(b)
            selections.append(sel)
            n -= count
        return Parsed(self.path, self.label, batches, self.kinds, selections)


@dataclass
class Window:
    """One day of a downloaded body, ready to parse further or write.

    ``last`` is True for the last day handed on from its body (``result``): the body
    file may be discarded once that day is done."""

    day: dt.date
    result: transport.DownloadResult
    parsed: Parsed
    cached: bool = False
    last: bool = True

    @property
    def label(self) -> str:
        return f"window {self.day.isoformat()}"

    @property
    def kinds(self) -> dict[str, Kind]:
        return self.parsed.kinds

    @property
    def bytes_per_day(self) -> int:
        """The compressed bytes per day of the body this day came in."""
        return body_bytes_per_day(self.result)


def body_bytes_per_day(result: transport.DownloadResult) -> int:
    """A verified body's compressed bytes divided by the days of its window (what a
    dataset records of each day, to size later windows from)."""
    req = result.request
    return round(result.bytes_received / ((req.to_date - req.from_date).days + 1))


#: What a read does with each parsed batch before keeping it (``_wide.Collector``:
#: the result's compact shape, the memory budget): the batches to keep instead.
BatchHook: TypeAlias = Callable[[parse.RawBatch], list[parse.RawBatch]]


@runtime_checkable
class BudgetHook(Protocol):
    """A batch hook that guards the memory budget (``_wide.Collector``): an export
    tells it the stored bytes of all its bodies as far as known (:meth:`expect`), and
    parses a body of several days through its :meth:`watcher`, which checks the
    parsed batches held whole until the body is cut into days; a body parsed while
    it downloads is checked with :meth:`holding` as its chunks are scanned.
    ``parse_ahead``: every body may be parsed as it arrives, as the read keeps
    every batch as parsed (a body parsed ahead of its turn holds no more than it
    will once handed on)."""

    @property
    def parse_ahead(self) -> bool: ...

    def __call__(self, batch: parse.RawBatch) -> list[parse.RawBatch]: ...

    def expect(self, total: int) -> None: ...

    def watcher(self) -> BatchHook: ...

    def holding(self, nbytes: int, what: str) -> None: ...

    def holder(self) -> parse.Coalescer: ...


def holder_of(hook: BatchHook | None) -> parse.Coalescer:
    """What keeps the batches a ``hook`` gives of one source: a read's budget hook
    joins its compact pieces as they accumulate (:meth:`BudgetHook.holder`); else
    they are kept as given."""
    return hook.holder() if isinstance(hook, BudgetHook) else parse.Coalescer()


BATCH_HOOK: contextvars.ContextVar[BatchHook | None] = contextvars.ContextVar(
    "robotmia_batch_hook", default=None
)


@contextlib.contextmanager
def batch_hook(hook: BatchHook | None) -> Iterator[None]:
    """Within this block, :func:`parse_file` hands every parsed batch to ``hook``
    (in this thread and context: the windows a read consumes are parsed here)."""
    token = BATCH_HOOK.set(hook)
    try:
        yield
    finally:
        BATCH_HOOK.reset(token)


def property_keys(columns: Sequence[str] | None) -> frozenset[str] | None:
    """The property keys the parse stage reads for ``columns`` (None: every key)."""
    if columns is None:
        return None
    return frozenset(c[len(PROPERTY_PREFIX) :] for c in columns if c.startswith(PROPERTY_PREFIX))


def day_numbers(
    time: pa.Array | np.ndarray, first: dt.date, days: int, unit: str = "s"
) -> np.ndarray:
    """Each row's day within ``first .. first + days - 1`` (0-based), by its raw time.

    The raw ``time`` is project-local wall clock written as seconds since
    1970-01-01 (``unit="ms"``: milliseconds), so its project-local day is simply
    ``floor(time / 86400)`` days after 1970-01-01: the day the server filters it
    by. A row without a time (null; NaN in a float64 NumPy array), or with one
    outside the window, counts as the window's first day.

    Example:
        >>> import datetime as dt, pyarrow as pa
        >>> day_numbers(pa.array([1704067199, 1704067200, None, 1.5e9]),
        ...             dt.date(2023, 12, 31), 2).tolist()
        [0, 1, 0, 0]
    """
    scale = 86400.0 if unit == "s" else 86_400_000.0
    if isinstance(time, np.ndarray):
        t = time
    else:
        t = np.asarray(time.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        day = np.floor(t / scale) - float((first - _EPOCH).days)
        inside = np.isfinite(day) & (day >= 0) & (day < days)
    return np.where(inside, day, 0).astype(np.int64)


def line_day(line: bytes | memoryview, first: dt.date, days: int, unit: str = "s") -> int | None:
    """The day of one export line within ``first .. first + days - 1`` (0-based), as
    :func:`day_numbers` counts it; None for a line that is not a JSON object.

    Example:
        >>> import datetime as dt
        >>> line_day(b'{"event":"e","properties":{"time":86401}}', dt.date(1970, 1, 1), 3)
        1
        >>> line_day(b'{"event":"e"}', dt.date(1970, 1, 1), 3), line_day(b'{"ev', dt.date(1970, 1, 1), 3)
        (0, None)
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    props = obj.get("properties")
    t = props.get("time") if type(props) is dict else None
    if type(t) is not int and type(t) is not float:
        return 0  # no time: the window's first day
    return int(day_numbers(np.array([t], dtype=np.float64), first, days, unit)[0])


#: Lines a day cutter reads to find one boundary before it gives up on a chunk.
_CUT_PROBES = 200


def day_runs(
    chunk: memoryview, first: dt.date, days: int, unit: str = "s"
) -> tuple[list[tuple[int, int | None]], bool]:
    """The runs of lines of one day in a chunk of whole lines of a body of
    ``first..first + days - 1``, found by bisection (an export body lists its days
    one after another): each run's first byte and its day (a line's day as in
    :func:`line_day`; None for a line that is not a JSON object), and whether the
    runs reach the end of the chunk. A run whose day is that of the chunk's last
    line runs to the end (two lines read for a chunk of one day). Reading a few
    dozen lines, it gives up (the
    runs found so far, False) on a probed line that is not a JSON object, or after
    :data:`_CUT_PROBES` lines. Lines out of order within a run are not seen: each
    run holds the lines from its first to the next run's first, whatever their days.

    Example:
        >>> import datetime as dt
        >>> body = b''.join(b'{"event":"e","properties":{"time":%d}}\\n' % t
        ...                 for t in (0, 10, 86400, 86401, 90000))
        >>> runs, whole = day_runs(memoryview(body), dt.date(1970, 1, 1), 2)
        >>> not parse.native_enabled() or (
        ...     [day for _, day in runs], whole, body[:runs[1][0]].count(b"\\n")
        ... ) == ([0, 1], True, 2)
        True
    """

    def day_at(start: int) -> int | None:
        return line_day(chunk[start : parse.line_after(chunk, start)], first, days, unit)

    size = len(chunk)
    if not size:
        return [], True
    lo = 0
    low = day_at(0)
    runs: list[tuple[int, int | None]] = [(0, low)]
    probes = 0
    last = _last_line(chunk)
    while low is not None:
        hi = size  # a line start of another day than lo's (or the end)
        if last is not None and last > lo:  # the last line first: most chunks hold one day
            probes += 1
            got = day_at(last)
            if got == low:
                return runs, True
            if got is not None:
                hi = last
        while probes < _CUT_PROBES:
            probes += 1
            c = parse.line_after(chunk, (lo + hi) // 2)
            if c >= hi:
                c = parse.line_after(chunk, lo)
                if c >= hi:
                    break
            got = day_at(c)
            if got is None:
                return runs, False
            if got == low:
                lo = c
            else:
                hi = c
        else:
            return runs, False
        if hi >= size:
            return runs, True
        lo, low = hi, day_at(hi)
        runs.append((hi, low))
    return runs, False


#: How far back from a chunk's end :func:`day_runs` looks for its last line.
_LAST_LINE_REACH = 1 << 16


def _last_line(chunk: memoryview) -> int | None:
    """Where the last line of a chunk of lines starts (None: further back than
    :data:`_LAST_LINE_REACH`)."""
    end = len(chunk) - 1 if chunk[-1] == ord("\n") else len(chunk)
    start = max(0, end - _LAST_LINE_REACH)
    k = bytes(chunk[start:end]).rfind(b"\n")
    if k >= 0:
        return start + k + 1
    return 0 if start == 0 else None


def day_cutter(first: dt.date, days: int, unit: str = "s") -> parse.Cutter:
    """Where the chunks of a body of ``first..first + days - 1`` change day.

    An export body lists its days one after another, so a chunk's day boundaries
    are found by bisection, reading a few dozen of its lines (:func:`day_runs`). Cut
    there, no batch straddles midnight and :func:`split_days` has nothing to parse
    again. A chunk whose days are not in order (or whose probed line is blank or
    not an object) is cut where known so far; :func:`split_days` handles what
    remains.

    Example:
        >>> import datetime as dt
        >>> body = b''.join(b'{"event":"e","properties":{"time":%d}}\\n' % t
        ...                 for t in (0, 10, 86400, 86401, 90000))
        >>> cuts = day_cutter(dt.date(1970, 1, 1), 2)(memoryview(body))
        >>> not parse.native_enabled() or body[:cuts[0]].count(b"\\n") == 2
        True
    """

    def cutter(chunk: memoryview) -> list[int]:
        return [start for start, _ in day_runs(chunk, first, days, unit)[0][1:]]

    return cutter


def split_days(
    parsed: Parsed,
    first: dt.date,
    last: dt.date,
    unit: str = "s",
    keys: frozenset[str] | None = None,
) -> list[tuple[dt.date, Parsed]]:
    """A verified body of ``first..last`` cut into its days (see :func:`day_numbers`).

    Every day of the window is listed, in order; a day without rows has an empty
    :class:`Parsed`. A batch whose rows all fall on one day goes to that day whole;
    a batch that straddles midnight is parsed again from its lines, one batch per
    run of lines of one day (``keys``: the properties parsed), so that each day has
    exactly the batches, column kinds and column order a one-day window would
    give. A one-day window is handed on as it is.
    """
    ndays = (last - first).days + 1
    if ndays == 1:
        return [(first, parsed)]
    parts: list[list[parse.RawBatch]] = [[] for _ in range(ndays)]
    picks: list[list[Selection]] = [[] for _ in range(ndays)]
    straddling: list[tuple[parse.RawBatch, np.ndarray]] = []
    for batch in parsed.batches:
        if not batch.num_rows:
            continue
        day = day_numbers(batch.time, first, ndays, unit)
        if bool(np.all(day == day[0])):
            parts[int(day[0])].append(batch)
            picks[int(day[0])].append(None)
        else:
            straddling.append((batch, day))
    if straddling:
        lines = _lines_of(parsed.path, parsed.label, [b for b, _ in straddling])
        # Each batch goes to its days in body order: rebuild the parts in order.
        rebuilt = {
            id(batch): _day_runs(batch, day, batch_lines, keys)
            for (batch, day), batch_lines in zip(straddling, lines, strict=True)
        }
        parts = [[] for _ in range(ndays)]
        picks = [[] for _ in range(ndays)]
        for batch in parsed.batches:
            if not batch.num_rows:
                continue
            runs = rebuilt.get(id(batch))
            if runs is None:
                i = int(day_numbers(batch.time, first, ndays, unit)[0])
                parts[i].append(batch)
                picks[i].append(None)
                continue
            for i, run, sel in runs:
                parts[i].append(run)
                picks[i].append(sel)
    out: list[tuple[dt.date, Parsed]] = []
    for i in range(ndays):
        kinds: dict[str, Kind] = {}
        for batch in parts[i]:
            parse.merge_kinds(kinds, batch)
        selections = None if all(p is None for p in picks[i]) else picks[i]
        date = first + dt.timedelta(days=i)
        # named as a one-day window would be, so that messages do not depend on the
        # window size (the batches keep the body's name for line numbers)
        label = f"window {date.isoformat()}"
        out.append((date, Parsed(parsed.path, label, parts[i], kinds, selections)))
    return out


def _lines_of(path: Path, label: str, batches: list[parse.RawBatch]) -> list[list[bytes]]:
    """The lines of each batch (in line order, not overlapping), in one pass over the body."""
    out: list[list[bytes]] = [[] for _ in batches]
    j = 0
    for first_no, chunk in parse.iter_line_chunks(path, label=label, batch_rows=1 << 16):
        end_no = first_no + len(chunk)
        while j < len(batches):
            lo = batches[j].first_line
            hi = lo + batches[j].line_count
            if lo >= end_no:
                break
            out[j].extend(chunk[max(0, lo - first_no) : max(0, min(len(chunk), hi - first_no))])
            if hi > end_no:
                break
            j += 1
        if j == len(batches):
            break
    return out


def _day_runs(
    batch: parse.RawBatch,
    day: np.ndarray,
    lines: list[bytes],
    keys: frozenset[str] | None,
) -> list[tuple[int, parse.RawBatch, Selection]]:
    """A batch that straddles midnight as ``(day, batch, rows)``: one batch parsed
    again per run of lines of one day (blank and malformed lines go with the row
    before them). If its lines cannot be matched to its rows, the batch is kept
    whole with the rows of each day selected."""
    is_row = np.fromiter(
        (
            bool(line.strip()) and (batch.first_line + k) not in batch.bad_lines
            for k, line in enumerate(lines)
        ),
        dtype=bool,
        count=len(lines),
    )
    if len(lines) != batch.line_count or int(is_row.sum()) != batch.num_rows:
        rows = np.arange(batch.num_rows)
        return [
            (i, _take_rows(batch, pa.array(rows[day == i], type=pa.int64())), None)
            for i in np.unique(day).tolist()
        ]
    line_day = np.full(len(lines), -1, dtype=np.int64)
    line_day[is_row] = day
    for k in range(len(lines)):  # lines that are not rows go with the row before them
        if line_day[k] < 0:
            line_day[k] = line_day[k - 1] if k else int(day[0])
    starts = [0, *(np.flatnonzero(np.diff(line_day)) + 1).tolist(), len(lines)]
    runs: list[tuple[int, parse.RawBatch, Selection]] = []
    for lo, hi in itertools.pairwise(starts):
        run = parse.build_raw_batch(
            lines[lo:hi],
            batch.first_line + lo,
            source=batch.source,
            bad=parse.BadLines(batch.source, "skip"),
            keys=keys,
        )
        run.read_to, run.file_size = batch.read_to, batch.file_size
        runs.append((int(line_day[lo]), run, None))
    return runs


def _selection_rows(sel: Selection) -> np.ndarray:
    if isinstance(sel, tuple):
        return np.arange(sel[0], sel[1])
    assert sel is not None
    return np.asarray(sel.to_numpy(zero_copy_only=False), dtype=np.int64)


def as_batches(batch: parse.RawBatch) -> list[parse.RawBatch]:
    return [batch]


def hooked(parsed: Parsed, hook: BatchHook) -> Parsed:
    """A day's batches through a read's batch hook (selected rows taken out first)."""
    out = holder_of(hook)
    kinds: dict[str, Kind] = {}
    for batch, sel in parsed.items():
        for piece in hook(batch if sel is None else _take_rows(batch, sel)):
            parse.merge_kinds(kinds, piece)
            out.add(piece)
    return Parsed(parsed.path, parsed.label, out.batches(), kinds)


def _take_rows(batch: parse.RawBatch, sel: Selection) -> parse.RawBatch:
    """The selected rows of a batch as a batch of their own (its line range kept)."""
    columns = {
        key: dataclasses.replace(
            col,
            array=select_rows(col.array, sel),
            text=None if col.text is None else select_rows(col.text, sel),
        )
        for key, col in batch.columns.items()
    }
    return dataclasses.replace(
        batch,
        num_rows=selected_count(batch, sel),
        event=select_rows(batch.event, sel),
        time=select_rows(batch.time, sel),
        columns=columns,
    )
