"""The pipeline every public operation shares: plan, windows, parse, unify, write.

``client.py`` (and through it ``api.py``, ``dask.py``, ``profiles.py`` and the CLI)
calls these pieces; each goes down one stage and comes back once::

    ExportPlan (checked arguments)
      -> iter_windows: transport.download_window per day window, concurrently
      -> parse_file: parse.read_raw_batches, kinds merged by the type policy
      -> batches: parse.conform + the time stage (+ dedupe)
      -> a table (deliver), or DatasetWriter: one atomic day at a time
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import dataclasses
import datetime as dt
import itertools
import math
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import requests

from . import _options, _progress, parse, sinks, transport
from ._version import __version__
from .errors import (
    APIError,
    IncompleteDownloadError,
    InvalidArgumentError,
    NetworkError,
    ParseError,
    RobotmiaError,
    RobotmiaWarning,
)
from .parse import PROPERTY_PREFIX, Kind, arrow_type, unify_into
from .timeconv import TIME_TYPE, local_seconds_to_utc
from .where import (
    Compiled,
    Mask,
    compile_where,
    filter_table,
    folded_columns,
    referenced_columns,
    row_mask,
)

if TYPE_CHECKING:
    import polars as pl

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
    request whose body grows past ``target_bytes`` is abandoned and halved.

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


class WindowPlanner:
    """Cuts ``start..end`` into request windows, in date order, learning as bodies land.

    Pure bookkeeping (no I/O): :meth:`take` hands out the next window, sized by
    ``sizing`` from the compressed bytes per day of the latest :meth:`learn` (or
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

    def __init__(
        self,
        start: dt.date,
        end: dt.date,
        sizing: WindowSizing,
        bytes_per_day: float | None = None,
    ) -> None:
        self.next_day = start
        self.end = end
        self.sizing = sizing
        self.bytes_per_day = bytes_per_day

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


@dataclass(frozen=True)
class BudgetPlan:
    """What an export would send, computed without sending anything.

    ``windows`` are the planned requests (``(first, last)`` days, inclusive),
    ``api_hours`` the hours of API budget they take at ``per_hour`` requests an hour.
    With ``window_days="auto"`` the sizes come from ``bytes_per_day`` when given,
    else every window is assumed to span the start size (7 days), a conservative
    guess: a real run learns the size from each body and usually needs fewer.

    Example:
        >>> import datetime as dt
        >>> plan = BudgetPlan.of(dt.date(2024, 1, 1), dt.date(2024, 12, 31), WindowSizing(days=1))
        >>> plan.requests, round(plan.api_hours, 1)
        (366, 6.1)
        >>> print(plan)
        2024-01-01..2024-12-31: 366 days in 366 requests (1 day each), 6.1 API-hours at 60 requests an hour
    """

    from_date: dt.date
    to_date: dt.date
    windows: list[tuple[dt.date, dt.date]]
    per_hour: int = DEFAULT_REQUESTS_PER_HOUR

    @classmethod
    def of(
        cls,
        start: dt.date,
        end: dt.date,
        sizing: WindowSizing,
        *,
        bytes_per_day: float | None = None,
        per_hour: int | None = None,
    ) -> BudgetPlan:
        """Plan ``start..end`` with ``sizing``."""
        windows = plan_windows(start, end, sizing, bytes_per_day)
        return cls(start, end, windows, per_hour or DEFAULT_REQUESTS_PER_HOUR)

    @property
    def requests(self) -> int:
        """Requests the export sends (retries not counted)."""
        return len(self.windows)

    @property
    def days(self) -> int:
        return (self.to_date - self.from_date).days + 1

    @property
    def api_hours(self) -> float:
        """Hours of API budget the requests take at ``per_hour`` an hour."""
        return self.requests / self.per_hour

    def __str__(self) -> str:
        sizes = sorted({(b - a).days + 1 for a, b in self.windows})
        each = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
        unit = "day" if sizes == [1] else "days"
        return (
            f"{self.from_date.isoformat()}..{self.to_date.isoformat()}: {self.days} days in "
            f"{self.requests} requests ({each} {unit} each), {self.api_hours:.1f} API-hours "
            f"at {self.per_hour} requests an hour"
        )


@dataclass(frozen=True)
class ExportPlan:
    """One checked export: its days, filters, transport settings and options."""

    start: dt.date
    end: dt.date
    event: tuple[str, ...] | None
    where: str | None
    timezone: str
    config: transport.TransportConfig = field(repr=False)
    on_bad_lines: parse.OnBadLines
    columns: list[str] | None
    concurrency: int
    limiter: transport.RateLimiter = field(repr=False)
    time_in_ms: bool = False
    limit: int | None = None
    cache_dir: Path | None = None
    refresh: bool = False
    dedupe: bool = False
    progress: _progress.Progress | None = field(default=None, repr=False)
    pinned: Pinned = field(default_factory=lambda: Pinned({}))
    sizing: WindowSizing = WindowSizing()

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]

    @property
    def time_unit(self) -> str:
        return "ms" if self.time_in_ms else "s"

    def request(self, day: dt.date, last: dt.date | None = None) -> transport.WindowRequest:
        """The request of the window ``day..last`` (one day without ``last``)."""
        extra: list[tuple[str, str]] = []
        if self.time_in_ms:
            extra.append(("time_in_ms", "true"))
        if self.limit is not None:
            extra.append(("limit", str(self.limit)))
        return transport.WindowRequest(
            from_date=day,
            to_date=day if last is None else last,
            event=self.event,
            where=self.where,
            extra_params=tuple(extra),
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "from_date": self.start.isoformat(),
            "to_date": self.end.isoformat(),
            "event": list(self.event) if self.event is not None else None,
            "where": self.where,
            "project_timezone": self.timezone,
            "time_in_ms": self.time_in_ms,
            "limit": self.limit,
            "library": f"robotmia-frames {__version__}",
            **self.pinned.metadata(),
        }


@dataclass(frozen=True)
class Connection:
    """The settings a :class:`~robotmia_frames.Client` holds, each checked once.

    The secret is read (argument, else ``ROBOTMIA_API_SECRET``) only when a request
    needs it; the rate limiter is one per connection, so every call made through
    one client shares one API budget.
    """

    api_secret: str | None = field(repr=False)
    project_timezone: str | None
    base_url: str
    timeout: float | None
    max_retries: int
    retry_backoff: float
    verify: bool | str
    limiter: transport.RateLimiter = field(repr=False)
    concurrency: int
    cache_dir: Path | None
    region: str | None = None
    max_retry_after: float = 300.0
    stall_timeout: float = 60.0
    min_speed: float = 1024.0
    max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES

    @classmethod
    def checked(
        cls,
        *,
        api_secret: str | None = None,
        project_timezone: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int = 5,
        retry_backoff: float = 1.0,
        verify: bool | str = True,
        rate_limit: transport.RateLimit | transport.RateLimiter | None = None,
        concurrency: int = 4,
        cache_dir: str | os.PathLike[str] | None = None,
        max_retry_after: float = 300.0,
        stall_timeout: float = 60.0,
        min_speed: float = 1024.0,
        max_window_bytes: int | None = transport.DEFAULT_MAX_WINDOW_BYTES,
    ) -> Connection:
        """Check every setting (the secret and the timezone may come later, from the
        environment)."""
        if api_secret is not None:
            api_secret = _options.secret(api_secret)
        if project_timezone is not None:
            project_timezone = _options.timezone(project_timezone)
        url = _options.base_url(base_url, region)
        if not isinstance(verify, (bool, str)):
            raise InvalidArgumentError("verify must be True, False or the path of a CA bundle")
        return cls(
            api_secret=api_secret,
            project_timezone=project_timezone,
            base_url=url,
            timeout=None if timeout is None else _options.seconds(timeout, "timeout"),
            max_retries=_options.non_negative_int(max_retries, "max_retries"),
            retry_backoff=_options.seconds(retry_backoff, "retry_backoff", allow_zero=True),
            verify=verify,
            limiter=_options.limiter(rate_limit, url),
            concurrency=_options.positive_int(concurrency, "concurrency"),
            cache_dir=_options.directory(cache_dir, "cache_dir"),
            region=region,
            max_retry_after=_options.seconds(max_retry_after, "max_retry_after", allow_zero=True),
            stall_timeout=_options.seconds(stall_timeout, "stall_timeout"),
            min_speed=_options.bytes_per_second(min_speed, "min_speed"),
            max_window_bytes=_options.byte_cap(max_window_bytes, "max_window_bytes"),
        )

    def timezone(self, project_timezone: str | None = None) -> str:
        """The project timezone of a call: its own, else the connection's, else the
        environment's."""
        return _options.timezone(
            project_timezone if project_timezone is not None else self.project_timezone
        )

    def transport_config(self, base_url: str | None = None) -> transport.TransportConfig:
        """The transport settings (the secret is required from here on)."""
        extra: dict[str, Any] = {}
        if self.timeout is not None:
            extra["read_timeout"] = self.timeout
        return transport.TransportConfig(
            base_url=base_url or self.base_url,
            api_secret=_options.secret(self.api_secret),
            max_retries=self.max_retries,
            backoff_base=self.retry_backoff,
            verify=self.verify,
            max_retry_after=self.max_retry_after,
            stall_timeout=self.stall_timeout,
            min_speed=self.min_speed,
            max_window_bytes=self.max_window_bytes,
            **extra,
        )

    def plan(
        self,
        from_date: Any,
        to_date: Any,
        *,
        event: Any = None,
        where: Any = None,
        project_timezone: str | None = None,
        on_bad_lines: str = "error",
        columns: Any = None,
        time_in_ms: bool = False,
        limit: int | None = None,
        refresh: bool = False,
        dedupe: bool = False,
        progress: _progress.ProgressArg = None,
        dtype: Any = None,
        on_type_mismatch: str = "text",
        window_days: int | str = "auto",
        window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
    ) -> ExportPlan:
        """Check a call's arguments, before anything is sent."""
        start, end = _options.date_range(from_date, to_date)
        events = _options.events(event)
        where_ = _options.where(where)
        tz = self.timezone(project_timezone)
        sizing = WindowSizing.checked(window_days, window_target_bytes)
        config = self.transport_config()
        return ExportPlan(
            start=start,
            end=end,
            event=events,
            where=where_,
            timezone=tz,
            config=config,
            on_bad_lines=_options.on_bad_lines(on_bad_lines),
            columns=_options.columns(columns),
            concurrency=self.concurrency,
            limiter=self.limiter,
            time_in_ms=bool(time_in_ms),
            limit=None if limit is None else _options.positive_int(limit, "limit"),
            cache_dir=self.cache_dir,
            refresh=bool(refresh),
            dedupe=bool(dedupe),
            progress=_progress.make(progress, total=(end - start).days + 1, limiter=self.limiter),
            pinned=Pinned.checked(dtype, on_type_mismatch),
            sizing=sizing,
        )

    def budget(
        self,
        from_date: Any,
        to_date: Any,
        *,
        window_days: int | str = "auto",
        window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
        bytes_per_day: float | None = None,
    ) -> BudgetPlan:
        """The requests and API-hours an export of ``from_date..to_date`` would take."""
        start, end = _options.date_range(from_date, to_date)
        sizing = WindowSizing.checked(window_days, window_target_bytes)
        if bytes_per_day is not None and (
            isinstance(bytes_per_day, bool)
            or not isinstance(bytes_per_day, (int, float))
            or not math.isfinite(bytes_per_day)
            or bytes_per_day < 0
        ):
            raise InvalidArgumentError(
                f"bytes_per_day must be a number of bytes >= 0, got {bytes_per_day!r}"
            )
        return BudgetPlan.of(
            start,
            end,
            sizing,
            bytes_per_day=bytes_per_day,
            per_hour=self.limiter.limit.per_hour,
        )


# ------------------------------------------------------------------ window pipeline


#: Which rows of a batch belong to a source: all (None), a ``(start, stop)`` run, or
#: the indices of the rows.
Selection: TypeAlias = "tuple[int, int] | pa.Array | None"

_EPOCH = dt.date(1970, 1, 1)


def _selected(batch: parse.RawBatch, sel: Selection) -> int:
    if sel is None:
        n: int = batch.num_rows
    elif isinstance(sel, tuple):
        n = sel[1] - sel[0]
    else:
        n = len(sel)
    return n


def _select(data: Any, sel: Selection) -> Any:
    """The selected rows of an Arrow array or record batch."""
    if sel is None:
        return data
    if isinstance(sel, tuple):
        return data.slice(sel[0], sel[1] - sel[0])
    return data.take(sel)


@dataclass
class Parsed:
    """One parsed source (a body, a day of a body, or a file): its batches and column
    kinds. ``selections`` (one per batch) keep only some rows of a batch: the rows
    of one day of a multi-day body."""

    path: Path
    label: str
    batches: list[parse.RawBatch]
    kinds: dict[str, Kind]
    selections: list[Selection] | None = None

    def items(self) -> Iterator[tuple[parse.RawBatch, Selection]]:
        """Each batch with the rows of it that belong here."""
        if self.selections is None:
            for b in self.batches:
                yield b, None
        else:
            yield from zip(self.batches, self.selections, strict=True)

    @property
    def rows(self) -> int:
        return sum(_selected(b, s) for b, s in self.items())

    def head(self, n: int) -> Parsed:
        """The first ``n`` rows only (``limit``)."""
        batches: list[parse.RawBatch] = []
        selections: list[Selection] = []
        for b, sel in self.items():
            if n <= 0:
                break
            count = _selected(b, sel)
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


#: What a read does with each parsed batch before keeping it (``_wide.Collector``:
#: the result's compact shape, the memory budget): the batches to keep instead.
BatchHook: TypeAlias = Callable[[parse.RawBatch], list[parse.RawBatch]]
_BATCH_HOOK: contextvars.ContextVar[BatchHook | None] = contextvars.ContextVar(
    "robotmia_batch_hook", default=None
)


@contextlib.contextmanager
def batch_hook(hook: BatchHook | None) -> Iterator[None]:
    """Within this block, :func:`parse_file` hands every parsed batch to ``hook``
    (in this thread and context: the windows a read consumes are parsed here)."""
    token = _BATCH_HOOK.set(hook)
    try:
        yield
    finally:
        _BATCH_HOOK.reset(token)


def property_keys(columns: Sequence[str] | None) -> frozenset[str] | None:
    """The property keys the parse stage reads for ``columns`` (None: every key)."""
    if columns is None:
        return None
    return frozenset(c[len(PROPERTY_PREFIX) :] for c in columns if c.startswith(PROPERTY_PREFIX))


def parse_file(
    path: Path,
    label: str,
    on_bad_lines: parse.OnBadLines,
    columns: Sequence[str] | None,
    progress: _progress.Progress | None = None,
    *,
    export_body: bool = True,
    hook: BatchHook | None = None,
) -> Parsed:
    """The parse stage over one local body (the fast engine, all of it in memory).

    An ``export_body`` (a downloaded window) in which no line at all is an export
    line is not an export (a proxy's page, an error text): that raises
    :class:`ParseError` in every ``on_bad_lines`` mode, so the window fails instead
    of becoming an empty day. Each batch goes through ``hook`` (else the one
    :func:`batch_hook` set), which may reshape it or stop the read (the memory
    budget).
    """
    hook = hook if hook is not None else _BATCH_HOOK.get()
    kinds: dict[str, Kind] = {}
    keys = property_keys(columns)
    batches = []
    for batch in parse.read_raw_batches(path, source=label, on_bad_lines=on_bad_lines, keys=keys):
        for piece in [batch] if hook is None else hook(batch):
            parse.merge_kinds(kinds, piece)
            batches.append(piece)
        if progress is not None:
            progress.rows_done(batch.num_rows)
    if export_body and not any(b.num_rows for b in batches):
        bad = sorted(set().union(*(b.bad_lines for b in batches)))
        if bad:
            raise ParseError(
                f"the body is not an export: none of its lines is an export line "
                f"({len(bad)} malformed, the first shown by its number). Nothing was kept "
                "for this window; if a proxy or gateway answers instead of robotmia, check "
                "base_url and the network, then try again",
                line_number=bad[0],
                source=label,
            )
    return Parsed(path, label, batches, kinds)


def check_columns(
    wanted: Sequence[str] | None, kinds: dict[str, Kind], sources: Sequence[Parsed], what: str
) -> None:
    """An asked-for column that none of ``sources`` holds is an error with the nearest
    names (see ``_options.known_columns``). Sources without a row tell nothing: an
    empty file or range gives all-null columns as asked."""
    if wanted is None:
        return
    names = ["event", "time", *(PROPERTY_PREFIX + k for k in kinds)]
    full = [s for s in sources if s.rows]
    if not full or all(c in names for c in wanted):
        return
    for src in full[:3]:  # the parse kept the wanted keys only: read a few for the others
        names += [PROPERTY_PREFIX + k for k in parse_file(src.path, src.label, "skip", None).kinds]
    _options.known_columns(wanted, names, what)


def day_numbers(time: pa.Array, first: dt.date, days: int, unit: str = "s") -> np.ndarray:
    """Each row's day within ``first .. first + days - 1`` (0-based), by its raw time.

    The raw ``time`` is project-local wall clock written as seconds since
    1970-01-01 (``unit="ms"``: milliseconds), so its project-local day is simply
    ``floor(time / 86400)`` days after 1970-01-01: the day the server filters it
    by. A row without a time, or with one outside the window, counts as the
    window's first day.

    Example:
        >>> import datetime as dt, pyarrow as pa
        >>> day_numbers(pa.array([1704067199, 1704067200, None, 1.5e9]),
        ...             dt.date(2023, 12, 31), 2).tolist()
        [0, 1, 0, 0]
    """
    scale = 86400.0 if unit == "s" else 86_400_000.0
    t = np.asarray(time.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        day = np.floor(t / scale) - float((first - _EPOCH).days)
        inside = np.isfinite(day) & (day >= 0) & (day < days)
    return np.where(inside, day, 0).astype(np.int64)


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
        runs.append((int(line_day[lo]), run, None))
    return runs


def _selection_rows(sel: Selection) -> np.ndarray:
    if isinstance(sel, tuple):
        return np.arange(sel[0], sel[1])
    assert sel is not None
    return np.asarray(sel.to_numpy(zero_copy_only=False), dtype=np.int64)


def _as_parsed(batch: parse.RawBatch) -> list[parse.RawBatch]:
    return [batch]


def _hooked(parsed: Parsed, hook: BatchHook) -> Parsed:
    """A day's batches through a read's batch hook (selected rows taken out first)."""
    out: list[parse.RawBatch] = []
    kinds: dict[str, Kind] = {}
    for batch, sel in parsed.items():
        for piece in hook(batch if sel is None else _take_rows(batch, sel)):
            parse.merge_kinds(kinds, piece)
            out.append(piece)
    return Parsed(parsed.path, parsed.label, out, kinds)


def _take_rows(batch: parse.RawBatch, sel: Selection) -> parse.RawBatch:
    """The selected rows of a batch as a batch of their own (its line range kept)."""
    columns = {
        key: dataclasses.replace(
            col,
            array=_select(col.array, sel),
            text=None if col.text is None else _select(col.text, sel),
        )
        for key, col in batch.columns.items()
    }
    return dataclasses.replace(
        batch,
        num_rows=_selected(batch, sel),
        event=_select(batch.event, sel),
        time=_select(batch.time, sel),
        columns=columns,
    )


#: Failures worth halving a multi-day window for (timeouts, resets, truncated bodies;
#: a 5xx after every retry too, as a server that times out on a large window gives).
_HALVE_ON = (NetworkError, IncompleteDownloadError)
#: ... and the statuses of an APIError worth it: 5xx, and 200 for a body refused as
#: larger than an auto window may be.
_HALVE_STATUS = frozenset({200, *range(500, 600)})


def iter_windows(plan: ExportPlan, workdir: Path) -> Iterator[Window]:
    """Download the request windows (``plan.concurrency`` at once) and hand on their days.

    Windows are cut by ``plan.sizing`` (:class:`WindowPlanner`): with
    ``window_days="auto"`` the first body is awaited alone and the next windows are
    sized from the compressed bytes per day learnt. Each verified body is parsed
    (in this thread, while later ones download), cut into its days
    (:func:`split_days`) and handed on one :class:`Window` per day, in day order
    (so that datasets and column orders do not depend on download timing; later
    bodies wait on disk, not in memory). A window whose download keeps failing
    (network errors, truncated bodies, after the transport's retries) is fetched
    again as two halves, down to single days; a single day's failure is final and
    names the day. On the first final failure the pending downloads are cancelled
    and the error propagates. ``plan.limit`` caps the rows handed on in total.
    With ``cache_dir`` a verified body is kept and later runs reuse it.
    """
    cache = transport.WindowCache(plan.cache_dir) if plan.cache_dir is not None else None
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    local = threading.local()

    def download(first: dt.date, last: dt.date) -> transport.DownloadResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = transport.make_session()
            with lock:
                sessions.append(session)
        request = plan.request(first, last)
        config = plan.config
        if plan.sizing.days is None and first != last:
            # an auto window bigger than the target is abandoned as it streams in
            cap = plan.sizing.target_bytes
            if config.max_window_bytes is not None:
                cap = min(cap, config.max_window_bytes)
            config = dataclasses.replace(config, max_window_bytes=cap)
        dest = (
            cache.path_for(plan.config.base_url, request)
            if cache is not None
            else workdir / f"{request.label}.jsonl.gz"
        )
        result = transport.download_window(
            config,
            request,
            dest,
            session=session,
            limiter=plan.limiter,
            durable=cache is not None,  # a scratch body is parsed and deleted at once
        )
        if cache is not None:
            # Vouched for at once, so a download that completes while another day
            # fails (or Ctrl-C) is reused by the next run instead of fetched again.
            cache.record(plan.config.base_url, result)
        planner.learn(first, last, result.bytes_received)
        return result

    def fetch_sized(first: dt.date, last: dt.date) -> list[transport.DownloadResult]:
        """``first..last`` in windows sized from what the halves before them taught."""
        out: list[transport.DownloadResult] = []
        day = first
        while day <= last:
            span = (last - day).days + 1
            if plan.sizing.days is None and planner.bytes_per_day is not None:
                span = min(span, plan.sizing.next_days(planner.bytes_per_day))
            end = day + dt.timedelta(days=span - 1)
            out += fetch(day, end)
            day = end + dt.timedelta(days=1)
        return out

    def fetch(first: dt.date, last: dt.date) -> list[transport.DownloadResult]:
        try:
            return [download(first, last)]
        except (*_HALVE_ON, APIError) as exc:
            # a 5xx after every retry, or a 200 body refused as too big (the cap above)
            server_error = isinstance(exc, APIError) and (exc.status_code or 0) in _HALVE_STATUS
            if first == last or not (isinstance(exc, _HALVE_ON) or server_error):
                raise
        middle = first + dt.timedelta(days=(last - first).days // 2)
        left = fetch(first, middle)
        return left + fetch_sized(middle + dt.timedelta(days=1), last)

    keys = property_keys(parse_columns(plan))

    def scanned(result: transport.DownloadResult, cached: bool) -> Iterator[Window]:
        req = result.request
        hook = _BATCH_HOOK.get()
        multi = req.from_date != req.to_date
        # A multi-day body is cut into days as parsed (batches aligned with their
        # lines); a read's batch hook then sees each day's batches.
        parsed = parse_file(
            result.path,
            f"window {req.label}",
            plan.on_bad_lines,
            parse_columns(plan),
            hook=_as_parsed if multi else None,
        )
        days = split_days(parsed, req.from_date, req.to_date, plan.time_unit, keys)
        if multi and hook is not None:
            days = [(day, _hooked(part, hook)) for day, part in days]
        for i, (day, part) in enumerate(days):
            if plan.progress is not None:
                plan.progress.window_done(result.bytes_received if i == 0 else 0, part.rows)
            yield Window(day, result, part, cached, last=i == len(days) - 1)

    planner = WindowPlanner(plan.start, plan.end, plan.sizing)
    order: collections.deque[tuple[dt.date, dt.date]] = collections.deque()
    landed: dict[dt.date, list[tuple[transport.DownloadResult, bool]]] = {}
    pending: dict[Future[list[transport.DownloadResult]], tuple[dt.date, dt.date]] = {}
    remaining = plan.limit
    pool: ThreadPoolExecutor | None = None
    try:
        while True:
            # Plan and send more windows: the first one alone while the size is unknown.
            while not planner.done and len(pending) < (
                1 if planner.learning else plan.concurrency * 2
            ):
                window = planner.take()
                assert window is not None
                first, last = window
                order.append(window)
                hit = None
                if cache is not None and not plan.refresh:
                    hit = cache.lookup(plan.config.base_url, plan.request(first, last))
                if hit is not None:
                    landed[first] = [(hit, True)]
                    planner.learn(first, last, hit.bytes_received)
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(
                        max_workers=plan.concurrency, thread_name_prefix="robotmia-dl"
                    )
                pending[pool.submit(fetch, first, last)] = window
            # Hand on the landed windows, in date order.
            while order and order[0][0] in landed:
                for result, cached in landed.pop(order.popleft()[0]):
                    for w in scanned(result, cached):
                        if remaining is not None:
                            if w.parsed.rows >= remaining:
                                w.parsed = w.parsed.head(remaining)
                                w.last = True
                                yield w
                                return
                            remaining -= w.parsed.rows
                        yield w
            if not pending:
                if planner.done:
                    return
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f]):
                first, _last = pending.pop(fut)
                results = fut.result()
                landed[first] = [(r, False) for r in results]
                for r in results:
                    planner.learn(r.request.from_date, r.request.to_date, r.bytes_received)
    finally:
        for fut in pending:
            fut.cancel()
        if pending and cache is None:
            # Stopped early (an error, Ctrl-C): end the downloads in flight, whose
            # bodies would be thrown away (with a cache they finish, for the next run).
            for s in sessions:
                transport.cancel(s)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for s in sessions:
            s.close()


def to_utc(batch: pa.RecordBatch, tz: str, unit: str = "s") -> pa.RecordBatch:
    """The time stage applied to one parsed batch."""
    if "time" not in batch.schema.names:
        return batch
    i = batch.schema.get_field_index("time")
    return batch.set_column(
        i, pa.field("time", TIME_TYPE), local_seconds_to_utc(batch.column(i), tz, unit=unit)
    )


def final_schema(kinds: dict[str, Kind], columns: Sequence[str] | None) -> pa.Schema:
    schema = parse.export_schema(kinds, columns)
    if "time" in schema.names:
        schema = schema.set(schema.get_field_index("time"), pa.field("time", TIME_TYPE))
    return schema


def parse_columns(plan: ExportPlan) -> list[str] | None:
    """The columns to parse: those asked for, plus what dedupe needs."""
    return sinks.with_dedupe_keys(plan.columns, plan.dedupe)


def batches(
    parsed: Parsed,
    kinds: dict[str, Kind],
    tz: str,
    columns: Sequence[str] | None,
    *,
    dedupe: bool = False,
    unit: str = "s",
    keep: Sequence[Mask] | None = None,
) -> Iterator[pa.RecordBatch]:
    """One source's batches with the final kinds, through the time stage (and dedupe).

    ``keep`` holds one row mask per raw batch (a ``where`` evaluated on raw lines),
    applied before dedupe, as the export filters before the client dedupes.
    """
    parse_columns = sinks.with_dedupe_keys(columns, dedupe)
    schema = parse.export_schema(kinds, parse_columns)
    deduper = sinks.Deduper() if dedupe else None
    for i, (raw, sel) in enumerate(parsed.items()):
        if not _selected(raw, sel):
            continue
        rows = _select(parse.conform(raw, kinds, schema, path=parsed.path), sel)
        if keep is not None:
            rows = rows.filter(_select(pa.array(keep[i], type=pa.bool_()), sel))
        out = to_utc(rows, tz, unit)
        if deduper is not None:
            out = deduper(out)
            if columns is not None and parse_columns != list(columns):
                out = out.select(list(columns))
        yield out


def _caller() -> int:
    """The ``stacklevel`` of the first frame outside this package (the user's call)."""
    package = os.path.dirname(__file__)
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level


@dataclass(frozen=True)
class Pinned:
    """``dtype=`` and ``on_type_mismatch=`` of a call, checked (see ``parse.pin_types``)."""

    dtypes: dict[str, pa.DataType]
    on_type_mismatch: parse.OnTypeMismatch = "text"

    @classmethod
    def checked(cls, dtype: Any, on_type_mismatch: Any) -> Pinned:
        return cls(_options.dtype(dtype), _options.on_type_mismatch(on_type_mismatch))

    def metadata(self) -> dict[str, Any]:
        """What a dataset records of the pins (so that ``sync`` keeps them)."""
        if not self.dtypes:
            return {}
        names = {k: parse.type_name(v) for k, v in self.dtypes.items()}
        return {"dtype": names, "on_type_mismatch": self.on_type_mismatch}

    def kinds(
        self, merged: dict[str, Kind], before: dict[str, Kind], written: pa.Schema
    ) -> set[str]:
        """Give ``merged`` (a dataset's kinds after a day) the kinds of the pinned
        columns as written; returns the columns whose earlier days are now narrower."""
        narrower = set()
        for f in written:
            if f.name in self.dtypes or f.name.removesuffix(parse.RAW_SUFFIX) in self.dtypes:
                merged[f.name] = parse.unify(before.get(f.name), parse.kind_of_field(f))
                if arrow_type(merged[f.name]) != f.type:
                    narrower.add(f.name)
        return narrower

    def apply(
        self,
        table: pa.Table,
        source: str,
        columns: Sequence[str] | None = None,
        *,
        whole: bool = True,
    ) -> pa.Table:
        """The pinned types given to ``table`` (read from ``source``), with a
        ``RobotmiaWarning`` counting the values that did not fit, per column. A
        pinned column the ``whole`` result lacks is an error (a day of a dataset may
        lack it)."""
        if not self.dtypes:
            return table
        if whole and columns is None and table.num_rows:
            absent = [c for c in self.dtypes if c not in table.column_names]
            _options.known_columns(absent, table.column_names, source)
        table, report = parse.pin_types(table, self.dtypes, self.on_type_mismatch, source=source)
        if report.mismatches:
            counts = "; ".join(report.describe(c, self.dtypes[c]) for c in report.mismatches)
            if self.on_type_mismatch == "null":
                then = "they are null, their original text is in <column>__raw"
            else:
                then = (
                    "the column stays text (on_type_mismatch='text'); "
                    "on_type_mismatch='null' sets them aside in <column>__raw"
                )
            warnings.warn(f"{source}: {counts}: {then}", RobotmiaWarning, stacklevel=_caller())
        return table


def raw_where_masks(parsed: Parsed, where: str, tz: str) -> list[Mask]:
    """``where`` on the raw lines of a parsed source: one row mask per raw batch.

    The rows of a batch are its lines that are neither blank nor bad, in order.
    """
    bad = frozenset().union(*(b.bad_lines for b in parsed.batches))
    rows = (
        line
        for first, lines in parse.iter_line_chunks(parsed.path, label=parsed.label)
        for number, line in enumerate(lines, first)
        if line and not line.isspace() and number not in bad
    )
    now = time.time()
    masks = []
    for batch in parsed.batches:
        mask = row_mask(where, itertools.islice(rows, batch.num_rows), project_timezone=tz, now=now)
        if len(mask) != batch.num_rows:  # pragma: no cover - the file changed under us
            raise RobotmiaError(
                f"{parsed.label}: the file changed while it was read; read it again"
            )
        masks.append(mask)
    return masks


def flat_table(
    sources: Sequence[Parsed],
    kinds: dict[str, Kind],
    tz: str,
    columns: Sequence[str] | None,
    *,
    dedupe: bool = False,
    unit: str = "s",
    keep_keys: frozenset[str] = frozenset(),
) -> pa.Table:
    """The sources' batches (in order) as one table of the export-wide ``kinds``."""
    out = [b for s in sources for b in batches(s, kinds, tz, columns, dedupe=dedupe, unit=unit)]
    return pa.Table.from_batches(out, schema=final_schema(kinds, columns))


Tables: TypeAlias = "pa.Table | dict[str | None, pa.Table]"


class Build(Protocol):
    """Builds a read's result from its parsed sources (:func:`flat_table` or a
    ``_wide`` shape); ``keep_keys`` names keys that must stay columns."""

    def __call__(
        self,
        sources: Sequence[Parsed],
        kinds: dict[str, Kind],
        tz: str,
        columns: Sequence[str] | None,
        *,
        dedupe: bool = ...,
        unit: str = ...,
        keep_keys: frozenset[str] = ...,
    ) -> Tables: ...


def deliver(
    table: pa.Table, return_type: _options.ReturnType, dtype_backend: sinks.DtypeBackend
) -> pd.DataFrame | pa.Table | pl.DataFrame:
    """The result table as the caller asked: Arrow as is, polars without a copy
    (``polars.from_arrow`` keeps the Arrow buffers), else pandas."""
    if return_type == "arrow":
        return table
    if return_type == "polars":
        import polars

        return polars.from_arrow(table, rechunk=False)
    return sinks.to_pandas(table, dtype_backend=dtype_backend)


def read_file(
    path: str | os.PathLike[str],
    tz: str,
    *,
    on_bad_lines: str = "error",
    columns: Sequence[str] | None = None,
    dedupe: bool = False,
    time_in_ms: bool = False,
    event: Any = None,
    where: Any = None,
    progress: _progress.ProgressArg = None,
    hook: BatchHook | None = None,
    build: Build = flat_table,
    keep_keys: frozenset[str] = frozenset(),
) -> Tables:
    """One local export file as a table: the same columns and types as an export of
    the same lines, then filtered by ``event`` and ``where``. ``hook`` and
    ``build`` shape the result (``_wide``): one table, or a dict of them;
    ``keep_keys`` names keys that stay columns whatever the shape."""
    wanted = _options.columns(columns)
    events = _options.events(event)
    where_ = _options.where(where)
    mode = _options.on_bad_lines(on_bad_lines)
    cols = wanted
    need: set[str] = set()
    if where_ is not None:
        need |= referenced_columns(where_)
    if cols is not None:  # read the columns the filters need
        if events is not None:
            need.add("event")
        cols = [*cols, *sorted(need - set(cols))]
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"export file not found: {p}")
    bar = _progress.make(progress, total=1, desc="robotmia read", unit="row")
    try:
        parsed = parse_file(
            p, str(p), mode, sinks.with_dedupe_keys(cols, dedupe), bar, export_body=False, hook=hook
        )
    finally:
        if bar is not None:
            bar.close()
    check_columns(wanted, parsed.kinds, [parsed], str(p))
    unit = "ms" if time_in_ms else "s"
    schema = final_schema(parsed.kinds, cols)
    masks = None
    if where_ is not None and build is flat_table and folded_columns(where_, schema):
        # A column folded to text no longer tells 5 from "5": filter on the raw lines.
        masks = raw_where_masks(parsed, where_, tz)
    built: Tables
    if masks is not None:
        out = batches(parsed, parsed.kinds, tz, cols, dedupe=dedupe, unit=unit, keep=masks)
        built = pa.Table.from_batches(list(out), schema=schema)
    else:
        keep_keys |= frozenset(
            c[len(PROPERTY_PREFIX) :] for c in need if c.startswith(PROPERTY_PREFIX)
        )
        built = build(
            [parsed], parsed.kinds, tz, cols, dedupe=dedupe, unit=unit, keep_keys=keep_keys
        )
    del parsed

    def finish(table: pa.Table) -> pa.Table:
        if events is not None:
            table = table.filter(pc.is_in(table.column("event"), pa.array(events, pa.string())))
        if where_ is not None and masks is None:
            table = filter_table(table, where_, project_timezone=tz)
        if wanted is not None and wanted != cols:
            table = table.select(
                [c for c in table.column_names if c in wanted or c not in (cols or ())]
            )
        return table

    if isinstance(built, dict):
        return {name: finish(t) for name, t in built.items() if events is None or name in events}
    return finish(built)


# ----------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_to_parquet` (or :func:`sync_to_parquet`) wrote.

    ``path`` is the dataset folder (a local ``Path``, or the URL it was given)."""

    path: Path | str
    rows: int
    days: int
    files: int
    bytes: int
    rows_per_day: dict[str, int] = field(default_factory=dict)
    from_date: dt.date | None = None
    to_date: dt.date | None = None


def dataset_location(
    path: str | os.PathLike[str] | sinks.Location,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
) -> sinks.Location:
    """Where a dataset lives (checked before any request; nothing is written)."""
    if isinstance(path, sinks.Location):
        return path
    return sinks.locate(path, storage_options=storage_options, filesystem=filesystem)


_DELTA_SCHEMES = ("file", "s3", "s3a", "gs", "az", "abfs", "abfss")


def open_dataset(
    location: sinks.Location,
    *,
    partition_by: Sequence[str] = ("date",),
    table_format: str | None = None,
    storage_options: dict[str, Any] | None = None,
    create: bool = False,
) -> sinks.ParquetDataset:
    """The dataset at ``location``: a Delta table when it has a ``_delta_log`` (or
    ``table_format="delta"`` asks for one), else a Hive dataset. Asking for the
    other format than an existing dataset's is an error."""
    found = "delta" if sinks.is_delta(location) else None
    if table_format is not None:
        _options.table_format(table_format)
    if found is None and table_format == "delta":
        found = "delta"
    elif found == "delta" and table_format == "hive":
        raise InvalidArgumentError(
            f"the dataset {location.url} is a Delta table: pass table_format='delta' "
            "(or leave it out), or write to a new path"
        )
    if found == "delta":
        if not location.local and str(location.url).split("://")[0] not in _DELTA_SCHEMES:
            raise InvalidArgumentError(
                f"table_format='delta' writes to a local path or to {', '.join(_DELTA_SCHEMES)} "
                f"URLs (deltalake's own stores), not {location.url}"
            )
        if tuple(partition_by) != ("date",):
            raise InvalidArgumentError(
                f"a Delta table is partitioned by date only, got partition_by={partition_by!r}"
            )
        return sinks.DeltaDataset(location, storage_options=storage_options, create=create)
    return sinks.ParquetDataset(location, partition_by=partition_by, create=create)


def dataset_state(
    location: sinks.Location, storage_options: dict[str, Any] | None = None
) -> sinks.DatasetState:
    """What the dataset at ``location`` records (empty for a new dataset)."""
    ds = open_dataset(location, storage_options=storage_options)
    try:
        records = ds.records()
    except (OSError, pa.ArrowException) as exc:
        raise InvalidArgumentError(
            f"cannot read the dataset at {location.url}: {type(exc).__name__}: {exc}"
        ) from None
    return sinks.load_state(location, records)


def check_timezone(state: sinks.DatasetState, timezone: str, location: sinks.Location) -> None:
    """Refuse to write days of another project timezone into a dataset."""
    if state.project_timezone is None or state.project_timezone == timezone:
        return
    raise InvalidArgumentError(
        f"the dataset {location.url} holds days of project timezone "
        f"{state.project_timezone!r}, not {timezone!r}: one dataset is one timezone. "
        f"Pass project_timezone={state.project_timezone!r} (or leave it out: the "
        "dataset's own is used), or write to a new path"
    )


def dataset_timezone(
    conn: Connection, state: sinks.DatasetState, project_timezone: str | None
) -> str:
    """The timezone of a write: the call's, the client's, the dataset's, else the
    environment's."""
    given = project_timezone or conn.project_timezone or state.project_timezone
    return conn.timezone(given)


def dataset_for_write(
    conn: Connection,
    path: str | os.PathLike[str],
    *,
    project_timezone: str | None,
    storage_options: dict[str, Any] | None,
    filesystem: Any,
    table_format: str | None,
) -> tuple[sinks.Location, sinks.DatasetState, str]:
    """Where an export or a sync writes, what the dataset records, and the timezone
    of the write (the dataset's when none is given; another one is refused), all
    checked before any request."""
    location = dataset_location(path, storage_options, filesystem)
    if table_format is not None:
        _options.table_format(table_format)
    state = dataset_state(location, storage_options)
    tz = dataset_timezone(conn, state, project_timezone)
    check_timezone(state, tz, location)
    return location, state, tz


class DatasetWriter:
    """Writes one day at a time, keeping column types consistent across days.

    It holds the dataset's writer lock from creation to :meth:`close` (a second
    writer waits, then fails clearly) and refuses a dataset of another project
    timezone. A column that a later day adds or widens is added to (widened in) the
    older days once, at the end (:meth:`finish`), from their own values: widening in
    steps would be lossy (int 1 -> float 1.0 -> string "1.0" instead of "1").
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | sinks.Location,
        partition_by: Sequence[str],
        metadata: dict[str, Any],
        *,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        table_format: str | None = None,
    ) -> None:
        self.location = dataset_location(root, storage_options, filesystem)
        if table_format == "delta" and filesystem is not None:
            raise InvalidArgumentError(
                "table_format='delta' takes a path or URL (with storage_options), not filesystem="
            )
        self._held = contextlib.ExitStack()
        self._held.enter_context(sinks.writer_lock(self.location))
        try:
            self.ds = open_dataset(
                self.location,
                partition_by=partition_by,
                table_format=table_format,
                storage_options=storage_options,
                create=True,
            )
            self.ds.check_writable()  # before any request: a read-only folder fails at once
            self.ds.recover()
            self.kinds = sinks.unify_kinds_of_schemas(self.ds.schemas().values())
            self.state = sinks.load_state(self.location, self.ds.records())
            tz = metadata.get("project_timezone")
            if isinstance(tz, str):
                check_timezone(self.state, tz, self.location)
            self.metadata = metadata
            self.rows = 0
            self.files = 0
            self.bytes = 0
            self.rows_per_day: dict[str, int] = {}
            self._recorded_complete = False
            # A run killed while widening older days leaves some of them narrower:
            # bring them in line first.
            self.widened: set[str] = set(self.kinds)
            self.finish()
        except BaseException:
            self._held.close()
            raise

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the writer lock."""
        self._held.close()

    def complete(self, start: dt.date, end: dt.date) -> None:
        """Finish a run over ``start..end``: widen what a later day widened, then record
        the run's range (cut at today) in the footer of the newest day up to ``end``,
        unless the day ``end`` itself was written with it (:meth:`write`)."""
        self.finish()
        if not self._recorded_complete:
            ranges = self._ranges(start, end)
            days = [d for d in self.ds.days() if d <= end and self.ds.files(d)]
            if days:
                self.ds.rewrite_day(
                    days[-1],
                    self.kinds,
                    self.metadata,
                    update={"complete": sinks.encode_ranges(ranges)},
                )
        if self.location.local:  # the state older versions kept inside the folder
            shutil.rmtree(Path(self.location.path, sinks.LEGACY_DIR), ignore_errors=True)

    def _ranges(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        tz = self.metadata.get("project_timezone")
        state = sinks.DatasetState(
            tz if isinstance(tz, str) else self.state.project_timezone,
            complete=self.state.complete,
        )
        return state.with_run(start, end)

    def finish(self) -> None:
        """Rewrite, once each and oldest first, the days lacking a column or holding one
        narrower than the dataset's kind for it, so every file has every column, typed
        alike."""
        if not self.widened or self.ds.table_format == "delta":
            self.widened = set()  # a Delta table widens in the commit that widens it
            return
        for day in self.ds.days():
            if any(self._narrower(f, self.widened) for f in self.ds.files(day)):
                self.ds.rewrite_day(day, self.kinds, self.metadata)
        self.widened = set()

    def write(self, window: Window, plan: ExportPlan) -> None:
        """Write one downloaded window as its day's partition (older days are brought
        to its columns and types once, by :meth:`finish`, from their own values)."""
        merged = self.merged_kinds(window.kinds)
        meta = self.day_metadata(window.day, plan.start, plan.end)
        result = write_window(self.ds, window.day, window.parsed, merged, plan, meta)
        narrower: set[str] = set()
        if plan.pinned.dtypes and result.files:  # the pinned types as written
            narrower = plan.pinned.kinds(merged, self.kinds, self.ds.schema_of(result.files[0]))
        self.commit(window.day, merged, result, end=plan.end)
        self.widened |= narrower

    def day_metadata(self, day: dt.date, start: dt.date, end: dt.date) -> dict[str, Any]:
        """What the files of ``day`` record: the run's metadata and the day ranges known
        complete (a replaced file forgets none of them); the last day ``end`` adds the
        run's own range, which is complete once that day lands."""
        ranges = self._ranges(start, end) if day == end else self.state.complete
        if not ranges:
            return dict(self.metadata)
        return {**self.metadata, "complete": sinks.encode_ranges(ranges)}

    def merged_kinds(
        self, window_kinds: dict[str, Kind], base: dict[str, Kind] | None = None
    ) -> dict[str, Kind]:
        """The dataset's column kinds (``base``, else the current ones) plus a window's."""
        merged = dict(self.kinds if base is None else base)
        return unify_into(merged, ((PROPERTY_PREFIX + k, v) for k, v in window_kinds.items()))

    def commit(
        self,
        day: dt.date,
        merged: dict[str, Kind],
        result: sinks.DayWriteResult,
        *,
        end: dt.date | None = None,
    ) -> None:
        """Record ``day`` as written with the ``merged`` kinds and count what was
        written. Days it widened a column for are rewritten once, by :meth:`finish`.
        The last day of the run (``end``), written with :meth:`day_metadata`, holds
        the run's complete range when it has a file (a Delta commit always does)."""
        if day == end and (result.rows or self.ds.table_format == "delta"):
            self._recorded_complete = True
        self.widened |= self._changed(merged)
        self.kinds = merged
        self.rows += result.rows
        self.files += len(result.files)
        self.bytes += result.bytes
        self.rows_per_day[day.isoformat()] = result.rows

    def _changed(self, merged: dict[str, Kind]) -> set[str]:
        """The columns ``merged`` adds to the dataset's or widens."""
        return {k for k, v in merged.items() if self.kinds.get(k) is not v}

    def _narrower(self, path: str, widened: set[str]) -> bool:
        """Whether a file lacks a column of ``widened`` or holds it narrower. In a
        dataset partitioned by date only, every file has every column, so that readers
        taking one file's schema (polars) read them all; partitioned by event, each
        event's files keep only its own columns (``docs/wide.md``)."""
        schema = self.ds.schema_of(path)
        names = set(schema.names)
        every_column = self.ds.partition_by == ("date",)
        for name in widened:
            if name == "time" or name not in self.kinds:
                continue
            if name in names:
                if schema.field(name).type != arrow_type(self.kinds[name]):
                    return True
            elif every_column and name.startswith(PROPERTY_PREFIX):
                return True
        return False

    def summary(self, start: dt.date, end: dt.date) -> ExportSummary:
        return ExportSummary(
            Path(self.ds.root) if self.location.local else self.location.url,
            self.rows,
            len(self.rows_per_day),
            self.files,
            self.bytes,
            dict(self.rows_per_day),
            start,
            end,
        )


def write_window(
    ds: sinks.ParquetDataset,
    day: dt.date,
    parsed: Parsed,
    merged: dict[str, Kind],
    plan: ExportPlan,
    metadata: dict[str, Any],
) -> sinks.DayWriteResult:
    """Write one parsed window as the partition of ``day``, typed by the dataset's
    ``merged`` kinds (``DatasetWriter.merged_kinds``); the swap-in is atomic."""
    prop_kinds = {
        k[len(PROPERTY_PREFIX) :]: v for k, v in merged.items() if k.startswith(PROPERTY_PREFIX)
    }
    schema = final_schema(prop_kinds, None)
    out = batches(parsed, prop_kinds, plan.timezone, None, dedupe=plan.dedupe, unit=plan.time_unit)
    event_columns: dict[str | None, set[str]] | None = None
    if ds.partition_by == ("date", "event"):  # each event's files: only its columns
        event_columns = {}
        for b in parsed.batches:
            for name, keys in parse.event_keys(b).items():
                event_columns.setdefault(name, set()).update(PROPERTY_PREFIX + k for k in keys)
    if plan.pinned.dtypes:  # the day is in memory already: pinned as one table
        table = plan.pinned.apply(
            pa.Table.from_batches(list(out), schema=schema), parsed.label, whole=False
        )
        schema, out = table.schema, iter(table.to_batches())
        if event_columns is not None:  # a pinned column's misfits go with it
            for have in event_columns.values():
                have.update(
                    n
                    for n in schema.names
                    if n.endswith(parse.RAW_SUFFIX) and n.removesuffix(parse.RAW_SUFFIX) in have
                )
    return ds.write_day(day, schema, out, metadata=metadata, event_columns=event_columns)


@contextlib.contextmanager
def _closing(windows: Iterator[Window]) -> Iterator[Iterator[Window]]:
    """``windows``, closed on the way out (a generator runs its ``finally`` then)."""
    try:
        yield windows
    finally:
        close = getattr(windows, "close", None)
        if close is not None:
            close()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or, in the command line, SIGTERM) while a dataset was written.

    ``days`` lists the days written, each whole; nothing partial is kept, so a rerun
    of the same call finishes the job.
    """

    def __init__(self, days: list[str]) -> None:
        super().__init__(f"interrupted after writing {len(days)} days")
        self.days = days


def write_dataset(
    plan: ExportPlan,
    location: sinks.Location,
    partition_by: Sequence[str],
    workdir: Path,
    *,
    table_format: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> ExportSummary:
    """Download ``plan``'s windows into the dataset at ``location``, one atomic day at a
    time, under the dataset's writer lock."""
    with DatasetWriter(
        location,
        partition_by,
        plan.metadata(),
        table_format=table_format,
        storage_options=storage_options,
    ) as sink:
        try:
            # closing(): on an error or Ctrl-C the downloads still running end here,
            # before the caller removes their temporary folder.
            with _closing(iter_windows(plan, workdir)) as windows:
                for w in windows:
                    try:
                        sink.write(w, plan)
                    except OSError as exc:
                        if exc.errno in transport.NO_ROOM:
                            day = f"day {w.day.isoformat()}"
                            raise transport.no_room(exc, day, Path(sink.ds.root)) from exc
                        raise
                    finally:
                        if w.last and not w.cached and plan.cache_dir is None:
                            with contextlib.suppress(OSError):
                                w.result.path.unlink()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # keep the days written consistent; the
                sink.finish()  # next run repairs them if even this fails
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
                raise Interrupted(sorted(sink.rows_per_day)) from exc
            raise
        finally:
            if plan.progress is not None:
                plan.progress.close()
        sink.complete(plan.start, plan.end)
        return sink.summary(plan.start, plan.end)


@dataclass(frozen=True)
class DatasetQuery:
    """A checked :func:`read_parquet_dataset` request (shared with ``robotmia_frames.dask``)."""

    ds: sinks.ParquetDataset
    start: dt.date | None
    end: dt.date | None
    columns: list[str] | None
    events: tuple[str, ...] | None
    where: str | None
    project_timezone: str | None
    default_timezone: str
    dedupe: bool

    def select(self) -> dict[dt.date, list[str]]:
        """The data files the query reads, by day."""
        return self.ds.select(from_date=self.start, to_date=self.end, event=self.events)

    def tables(self, *, on_day: Callable[[int, int], None] | None = None) -> list[pa.Table]:
        """The selected rows, one table per data file with its own columns and types
        (``dedupe`` is left to the caller)."""
        folded: set[str] = set()
        tables = self.ds.read_tables(
            from_date=self.start,
            to_date=self.end,
            columns=sinks.with_dedupe_keys(self.columns, self.dedupe),
            event=self.events,
            where=None if self.where is None else _where_compiler(self.where, folded),
            project_timezone=self.project_timezone,
            default_timezone=self.default_timezone,
            on_day=on_day,
        )
        if folded:
            _warn_folded(sorted(folded), self.where)
        return tables

    def read(
        self,
        day: dt.date | None = None,
        *,
        on_day: Callable[[int, int], None] | None = None,
    ) -> pa.Table:
        """The selected rows (of one ``day`` only, if given) as one unified table."""
        cols = self.columns
        read_cols = sinks.with_dedupe_keys(cols, self.dedupe)
        folded: set[str] = set()
        table = self.ds.read(
            from_date=day or self.start,
            to_date=day or self.end,
            columns=read_cols,
            event=self.events,
            where=None if self.where is None else _where_compiler(self.where, folded),
            project_timezone=self.project_timezone,
            default_timezone=self.default_timezone,
            on_day=on_day,
        )
        if folded:
            _warn_folded(sorted(folded), self.where)
        if self.dedupe:
            table = pa.Table.from_batches(
                [sinks.Deduper()(b) for b in table.to_batches()], schema=table.schema
            )
            if cols is not None and read_cols != cols:
                table = table.select(cols)
        return table


def _where_compiler(expression: str, folded: set[str]) -> sinks.WhereCompiler:
    """The ``where`` expression compiled for each file's schema and timezone; the
    mixed-type columns (folded to text) it compares are added to ``folded``."""

    def compile_for(schema: pa.Schema, tz: str) -> Compiled:
        folded.update(folded_columns(expression, schema, objects=False))
        return compile_where(expression, schema, project_timezone=tz)

    return compile_for


def _warn_folded(columns: list[str], where: str | None) -> None:
    """Say that ``where`` compares columns whose mixed types the dataset has merged."""
    names = ", ".join(columns)
    warnings.warn(
        f"where={where!r} reads {names}, stored as text in this dataset because the "
        'column held values of several types: there the string "5" and the number 5 '
        'are both stored as "5" and both read as the number 5, while the server\'s '
        "filter tells them apart. For exact results pass where= to the export "
        "(export_to_parquet, read_robotmia_export) or to read_export_file on the saved "
        "export; see 'Mixed-type columns' in docs/where.md.",
        RobotmiaWarning,
        stacklevel=_caller(),
    )


def dataset_query(
    path: str | os.PathLike[str] | sinks.Location,
    *,
    from_date: _options.DateLike | None,
    to_date: _options.DateLike | None,
    columns: Sequence[str] | None,
    event: str | Sequence[str] | None,
    where: str | None,
    project_timezone: str | None,
    dedupe: bool,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
) -> DatasetQuery:
    """Check :func:`read_parquet_dataset`'s arguments and find the dataset's layout."""
    location = dataset_location(path, storage_options, filesystem)
    probe = open_dataset(location, storage_options=storage_options)
    days = probe.days()
    if location.local and not Path(location.path).is_dir():
        raise FileNotFoundError(f"no dataset at {location.path}")
    if not location.local and not days and not _exists(location):
        raise FileNotFoundError(f"no dataset at {location.url}")
    start: dt.date | None = None
    end: dt.date | None = None
    if from_date is not None and to_date is not None:
        start, end = _options.date_range(from_date, to_date)
    elif from_date is not None:
        start = _options.date(from_date, "from_date")
    elif to_date is not None:
        end = _options.date(to_date, "to_date")
    cols = _options.columns(columns)
    events = _options.events(event)
    where_ = _options.where(where)
    if project_timezone is not None:
        _options.timezone(project_timezone)
    by_event = (
        location.local
        and probe.table_format == "hive"
        and any(
            p.is_dir() and p.name.startswith("event=")
            for d in days
            for p in Path(location.join(f"date={d.isoformat()}")).iterdir()
        )
    )
    layout = ("date", "event") if by_event else ("date",)
    ds = (
        probe if not by_event else sinks.ParquetDataset(location, partition_by=layout, create=False)
    )
    if cols is not None and any(c.startswith(PROPERTY_PREFIX) for c in cols) and ds.files():
        known = ["event", "time", *ds.current_kinds()]
        _options.known_columns(cols, known, f"the dataset at {location.url}")
    return DatasetQuery(
        ds=ds,
        start=start,
        end=end,
        columns=cols,
        events=events,
        where=where_,
        project_timezone=project_timezone,
        default_timezone=os.environ.get(_options.TIMEZONE_ENV) or "UTC",
        dedupe=bool(dedupe),
    )


def _exists(location: sinks.Location) -> bool:
    try:
        return bool(location.fs.isdir(location.path))
    except Exception:
        return False
