"""The download stage of an export: windows fetched concurrently, handed on by day.

:func:`iter_windows` sends the request windows (sized by ``_windows``), parses each
verified body (``_core.parse_file``) and hands on one :class:`Window` per day, in
day order; :func:`fetch_windows` collects them for a read, with the column kinds
unified in day order.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import requests

from .. import parse, transport
from ..errors import APIError, IncompleteDownloadError, NetworkError
from ..parse import Kind
from ._budget import WindowPlanner
from ._core import ExportPlan, check_columns, parse_columns, parse_file, unified_kinds
from ._split import DaySplitter
from ._windows import (
    BATCH_HOOK,
    BatchHook,
    BudgetHook,
    Parsed,
    Window,
    as_batches,
    batch_hook,
    day_cutter,
    hooked,
    line_day,
    property_keys,
    split_days,
)

__all__ = [
    "STREAMED_AHEAD",
    "OverTarget",
    "fetch_halving",
    "fetch_windows",
    "iter_windows",
    "window_config",
    "window_download",
]

#: Failures worth halving a multi-day window for (timeouts, resets, truncated bodies;
#: a 5xx after every retry too, as a server that times out on a large window gives).
_HALVE_ON = (NetworkError, IncompleteDownloadError)
#: ... and the statuses of an APIError worth it: 5xx, and 200 for a body refused as
#: larger than an auto window may be.
_HALVE_STATUS = frozenset({200, *range(500, 600)})


def _day_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a download's final failure, which halving would have tried
    (a network error, a truncated body, a 5xx): the days before it still come."""
    if isinstance(exc, _HALVE_ON):
        return True
    return isinstance(exc, APIError) and (exc.status_code or 0) in _HALVE_STATUS


#: Bodies parsed while they download that may wait, parsed, to be handed on (the
#: next one needed and one more); the other downloads go to disk first (and are
#: inflated again from there) ...
STREAMED_AHEAD = 2
#: ... unless they are small (expected at most SMALL_BODY compressed bytes) and
#: the bodies waiting parsed hold less than AHEAD_BYTES: a year of small days
#: is all parsed as it arrives, while large windows keep memory to two bodies.
SMALL_BODY = 4 << 20
AHEAD_BYTES = 32 << 20
#: A dataset write parses one body ahead, not :data:`STREAMED_AHEAD`: the day being
#: written is in memory too, and each body parsed ahead in a download thread holds a
#: day there (3M events in one-day windows of 50k: 568 MiB peak on Hive and 821 on
#: Delta, against 689 and 973 with two; ``bench_storage.py --window-days 1``).
STREAMED_AHEAD_WRITING = 1
#: A dataset write cuts a multi-day body into plain day files as it downloads (no
#: second inflate), this many bodies at a time not yet handed on (the default
#: concurrency: the windows sent together once the first has landed); the others
#: land compressed and are cut when their turn comes, so that the scratch folder
#: holds the inflated text of five windows at most (the one being written too).
SPLIT_AHEAD = 4
#: A flat read (one Arrow table or pandas frame: ``BudgetHook.compact`` False)
#: parses every download as it arrives: a body parsed ahead holds what it will
#: hold once handed on, none is inflated a second time, and the conversion to
#: pandas at the end peaks no higher for it (1M events: 1.29 to 1.31 GiB, against
#: 1.32 to 1.36 with two ahead).
STREAMED_AHEAD_DENSE = None


class _StreamBudget:
    """Which downloads are parsed as they arrive: ``most`` at a time (see
    :data:`STREAMED_AHEAD`; None: all), or more small ones."""

    def __init__(self, most: int | None = STREAMED_AHEAD) -> None:
        self.most = most
        self.lock = threading.Lock()
        self.count = 0  # bodies streaming or parsed, not yet handed on
        self.bytes = 0  # compressed bytes of those that landed

    def take(self, expected: float | None) -> bool:
        with self.lock:
            small = expected is not None and expected <= SMALL_BODY and self.bytes < AHEAD_BYTES
            if self.most is None or self.count < self.most or small:
                self.count += 1
                return True
            return False

    def landed(self, nbytes: int) -> None:
        with self.lock:
            self.bytes += nbytes

    def give_back(self, nbytes: int = 0) -> None:
        with self.lock:
            self.count -= 1
            self.bytes -= nbytes


def window_config(plan: ExportPlan, first: dt.date, last: dt.date) -> transport.TransportConfig:
    """The transport settings of the window ``first..last``: a multi-day auto window
    bigger than the target is abandoned as it streams in (and then fetched again as
    the days it brought whole, see :func:`fetch_halving`)."""
    config = plan.config
    if plan.sizing.days is None and first != last:
        cap = plan.sizing.target_bytes
        if config.max_window_bytes is not None:
            cap = min(cap, config.max_window_bytes)
        config = dataclasses.replace(config, max_window_bytes=cap)
    return config


class OverTarget(Exception):
    """A multi-day auto body given up past the target (``nbytes``, see
    :func:`window_config`) after its first ``whole_days`` days had arrived whole:
    :func:`fetch_halving` fetches those again and sizes the rest from them."""

    def __init__(self, whole_days: int, nbytes: int) -> None:
        super().__init__(f"given up past {nbytes} bytes, {whole_days} days whole")
        self.whole_days = whole_days
        self.nbytes = nbytes


#: Inflated bytes :class:`_Reach` keeps of a body: room for its last whole line.
_REACH_TAIL = 1 << 16


class _Reach:
    """A body tap that passes the bytes on to ``inner`` (if any) and keeps their
    tail: where the body of a window had got to when it was given up."""

    def __init__(self, inner: transport.BodyTap | None) -> None:
        self.inner = inner
        self.tail = b""
        self.seen = 0

    def restart(self) -> None:
        self.tail, self.seen = b"", 0
        if self.inner is not None:
            self.inner.restart()

    def feed(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.feed(data)
        self.seen += len(data)
        if len(data) >= _REACH_TAIL:
            self.tail = data[-_REACH_TAIL:]
        else:
            self.tail = (self.tail + data)[-_REACH_TAIL:]

    def whole_days(self, first: dt.date, days: int, unit: str) -> int | None:
        """The days of ``first..first + days - 1`` that arrived whole: those before
        the day of the last whole line (an export lists its days in order); None
        without a whole line to read it from."""
        end = self.tail.rfind(b"\n")
        start = self.tail.rfind(b"\n", 0, max(end, 0)) + 1
        if end < 0 or (start == 0 and self.seen > len(self.tail)):
            return None
        return line_day(self.tail[start:end], first, days, unit)


def window_download(
    plan: ExportPlan,
    first: dt.date,
    last: dt.date,
    dest: Path,
    *,
    session: requests.Session | None = None,
    durable: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    on_body: transport.BodyTap | None = None,
) -> transport.DownloadResult:
    """One verified body of the window ``first..last`` of ``plan`` at ``dest``
    (``transport.download_window`` with :func:`window_config`); a multi-day auto
    body given up past the target raises :class:`OverTarget`, saying how many of
    its days had arrived whole. Shared with the Dask workers."""
    config = window_config(plan, first, last)
    # a body that may be given up past the target: how far it got, when it is
    capped = config.max_window_bytes != plan.config.max_window_bytes
    reach = _Reach(on_body) if capped else None
    try:
        return transport.download_window(
            config,
            plan.request(first, last),
            dest,
            session=session,
            limiter=plan.limiter,
            durable=durable,
            on_bytes=on_bytes,
            on_body=on_body if reach is None else reach,
        )
    except APIError as exc:
        if reach is None or exc.status_code != 200 or config.max_window_bytes is None:
            raise
        whole = reach.whole_days(first, (last - first).days + 1, plan.time_unit)
        if whole is None:
            raise
        raise OverTarget(whole, config.max_window_bytes) from exc


def fetch_halving(
    download: Callable[[dt.date, dt.date], transport.DownloadResult],
    first: dt.date,
    last: dt.date,
    planner: WindowPlanner,
    got: list[transport.DownloadResult] | None = None,
) -> list[transport.DownloadResult]:
    """The verified bodies of ``first..last``: one ``download``, else (network errors,
    truncated bodies, 5xx after the transport's retries) two halves, each fetched
    the same way, down to single days, whose failure is final. An auto body given
    up past the target (:class:`OverTarget`) is fetched again as the days it
    brought whole (or its first day alone, whose bytes are then known to be past
    the target). Each body teaches ``planner`` its bytes per day; the rest of the
    window is cut to the windows that size says (auto windows). Shared with the
    Dask workers (``robotmia_frames.dask``).

    The bodies are appended to ``got`` (returned) as they verify, in day order: when
    a day fails, ``got`` holds the bodies of the days before it."""
    out = [] if got is None else got
    try:
        result = download(first, last)
    except OverTarget as exc:
        cut = first + dt.timedelta(days=max(1, exc.whole_days) - 1)
        planner.learn(first, cut, exc.nbytes)  # its days are at least this busy
    except (*_HALVE_ON, APIError) as exc:
        # a 5xx after every retry, or a 200 body refused as too big (window_config)
        if first == last or not _day_failed(exc):
            raise
        cut = first + dt.timedelta(days=(last - first).days // 2)
    else:
        planner.learn(first, last, result.bytes_received)
        out.append(result)
        return out
    fetch_halving(download, first, cut, planner, out)
    day = cut + dt.timedelta(days=1)
    while day <= last:  # the rest in windows sized from what the halves taught
        span = (last - day).days + 1
        if planner.sizing.days is None and planner.bytes_per_day is not None:
            span = min(span, planner.sizing.next_days(planner.bytes_per_day))
        end = day + dt.timedelta(days=span - 1)
        fetch_halving(download, day, end, planner, out)
        day = end + dt.timedelta(days=1)
    return out


class _Misplaced(Exception):
    """A day file of a body cut by bisection holds a row of another day (the body
    is out of order): the body is cut again, exactly."""

    def __init__(self, day: dt.date) -> None:
        super().__init__(f"day {day.isoformat()} holds rows of another day")
        self.day = day


class _Downloads:
    """The state an export's download threads share with the thread handing its
    days on (:func:`iter_windows`): the HTTP sessions, the cache, the window planner,
    the bodies parsed while they downloaded, and what has landed so far."""

    def __init__(
        self,
        plan: ExportPlan,
        workdir: Path,
        day_at_a_time: bool,
        hold: int | None = None,
        events: bool = False,
    ) -> None:
        self.plan = plan
        self.workdir = workdir
        self.day_at_a_time = day_at_a_time
        self.hold = hold  # see parse_file: a day past it is parsed again when written
        self.events = events
        self.cache = (
            transport.WindowCache(plan.cache_dir, api_secret=plan.config.api_secret)
            if plan.cache_dir is not None
            else None
        )
        self.planner = WindowPlanner(plan.start, plan.end, plan.sizing, plan.bytes_per_day)
        self.sessions: list[requests.Session] = []
        self.lock = threading.Lock()
        self.local = threading.local()
        self.columns = parse_columns(plan)
        self.keys = property_keys(self.columns)
        self.chunk_rows = parse.ChunkRows()  # learnt from the first body, kept for the others
        # Bodies parsed while they download (the C scanner): see STREAMED_AHEAD.
        self.streaming = parse.native_enabled()
        # Multi-day bodies of a dataset write cut into day files as they download:
        # by bisection (each day's rows checked as it is parsed), unless a body
        # has needed the exact cut (then the later ones take it at once) or the
        # days handed on are counted against ``limit``.
        self.splitting = _StreamBudget(SPLIT_AHEAD)
        self.splits: dict[Path, DaySplitter] = {}
        self.exact_split = not parse.native_enabled() or plan.limit is not None
        # A read's memory budget, also checked in the download threads as bodies are scanned.
        read_hook = BATCH_HOOK.get()
        self.budget = read_hook if isinstance(read_hook, BudgetHook) else None
        most: int | None = STREAMED_AHEAD_WRITING if day_at_a_time else STREAMED_AHEAD
        if not day_at_a_time and self.budget is not None and not self.budget.compact:
            most = STREAMED_AHEAD_DENSE
        self.ahead = _StreamBudget(most)
        self.streams: dict[Path, parse.BodyParser] = {}
        # Of a window that failed on a day, the verified bodies of the days before it.
        self.fetched_before: dict[tuple[dt.date, dt.date], list[transport.DownloadResult]] = {}
        # The stored bytes and days of the bodies landed: the memory budget of a read
        # projects from them to every body (the days to come at the same rate).
        self.known_bytes = self.known_days = 0

    def lookup(self, first: dt.date, last: dt.date) -> transport.DownloadResult | None:
        """The cached body of ``first..last``, if any (and not ``refresh``)."""
        if self.cache is None or self.plan.refresh:
            return None
        return self.cache.lookup(self.plan.config.base_url, self.plan.request(first, last))

    def download(self, first: dt.date, last: dt.date) -> transport.DownloadResult:
        """One verified body of ``first..last`` (in a download thread), parsed as it
        arrives when :class:`_StreamBudget` allows."""
        plan, cache, ahead = self.plan, self.cache, self.ahead
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = transport.make_session()
            with self.lock:
                self.sessions.append(session)
        request = plan.request(first, last)
        dest = (
            cache.path_for(plan.config.base_url, request)
            if cache is not None
            else self.workdir / f"{request.label}.jsonl.gz"
        )
        # What is fed the body as it downloads: a day splitter or a parser (or nothing),
        # and the slots it takes until its days are handed on.
        tap: DaySplitter | parse.BodyParser | None = None
        slots = ahead
        days = (last - first).days + 1
        per_day = self.planner.bytes_per_day
        by_days = self.day_at_a_time and days > 1  # parsed day by day after, from files
        expected = None if per_day is None else per_day * days
        if by_days and self.splitting.take(None):
            tap, slots = self.day_splitter(request.label, first, last), self.splitting
        elif self.streaming and not by_days and ahead.take(expected):
            label = f"the body of window {request.label} (downloading)"
            budget = self.budget
            tap = parse.BodyParser(
                keys=self.keys,
                batch_rows=self.chunk_rows,
                cutter=day_cutter(first, days, plan.time_unit) if days > 1 else None,
                watch=None if budget is None else functools.partial(budget.holding, what=label),
                hold=self.hold,
                sparse=self.events,  # as parse_file scans a day written per event
            )
        try:
            result = window_download(
                plan,
                first,
                last,
                dest,
                session=session,
                durable=cache is not None,  # a scratch body is parsed and deleted at once
                on_bytes=None if plan.progress is None else plan.progress.bytes_received,
                on_body=tap,
            )
            if tap is not None:
                # verified: its day files or batches may be taken (a parser over the
                # memory budget raises here)
                tap.finish()
        except BaseException:
            if tap is not None:  # a failed body: nothing of it is kept
                tap.discard()
                slots.give_back()
            raise
        if tap is not None:
            slots.landed(result.bytes_received)
            with self.lock:
                if isinstance(tap, DaySplitter):
                    self.splits[result.path] = tap
                else:
                    self.streams[result.path] = tap
        if cache is not None:
            # Vouched for at once, so a download that completes while another day
            # fails (or Ctrl-C) is reused by the next run instead of fetched again.
            cache.record(plan.config.base_url, result)
        return result

    def fetch(self, first: dt.date, last: dt.date) -> list[transport.DownloadResult]:
        """The verified bodies of ``first..last`` (halved on failure, see :func:`fetch_halving`).
        When a day fails, the bodies of the days before it are kept in
        :attr:`fetched_before` for :func:`iter_windows` to hand on."""
        got: list[transport.DownloadResult] = []
        try:
            return fetch_halving(self.download, first, last, self.planner, got)
        except Exception:
            if got:
                with self.lock:
                    self.fetched_before[(first, last)] = got
            raise

    def landing(self, results: list[tuple[transport.DownloadResult, bool]]) -> None:
        """Bodies landed (fetched or cached): the planner learns their sizes and a
        read's memory budget the input it projects to."""
        for r, _ in results:
            req = r.request
            self.planner.learn(req.from_date, req.to_date, r.bytes_received)
            self.known_bytes += r.bytes_received
            self.known_days += (req.to_date - req.from_date).days + 1
        if self.budget is not None and self.known_days:
            all_days = (self.plan.end - self.plan.start).days + 1
            rest = max(0, all_days - self.known_days) * self.known_bytes / self.known_days
            self.budget.expect(int(self.known_bytes + rest))

    def days_of(self, result: transport.DownloadResult, cached: bool) -> Iterator[Window]:
        """A verified body parsed and handed on one :class:`Window` per day."""
        plan = self.plan
        req = result.request
        if self.day_at_a_time and req.from_date != req.to_date:
            yield from self._by_day(result, cached)
            return
        hook = BATCH_HOOK.get()
        multi = req.from_date != req.to_date
        with self.lock:
            stream = self.streams.pop(result.path, None) if not cached else None
        if stream is not None and stream.dropped:  # too big to hold: parsed from disk
            self.ahead.give_back(result.bytes_received)
            stream = None
            self.streaming = False  # so are the next days, likely: not scanned for nothing
        # A multi-day body is cut into days as parsed (batches aligned with their
        # lines); a read's batch hook then sees each day's batches. Until then the
        # body is held whole, as parsed: the budget's watcher checks that.
        budget = self.budget  # the read's hook, when it guards a budget
        whole = budget.watcher() if budget is not None and hook is budget else as_batches
        try:
            parsed = parse_file(
                result.path,
                f"window {req.label}",
                plan.on_bad_lines,
                self.columns,
                plan.progress,  # rows as each batch is parsed
                hook=whole if multi else None,
                cutter=day_cutter(
                    req.from_date, (req.to_date - req.from_date).days + 1, plan.time_unit
                )
                if multi
                else None,
                batch_rows=self.chunk_rows,
                stream=stream,
                hold=None if multi else self.hold,
                events=self.events,
            )
        finally:
            if stream is not None:
                self.ahead.give_back(result.bytes_received)
        days = split_days(parsed, req.from_date, req.to_date, plan.time_unit, self.keys)
        if multi and hook is not None:
            days = [(day, hooked(part, hook)) for day, part in days]
        yield from self._hand_on(result, cached, days, len(days))

    def day_splitter(
        self, label: str, first: dt.date, last: dt.date, *, exact: bool | None = None
    ) -> DaySplitter:
        """The splitter of a multi-day body into day files (in the scratch folder);
        an exact one in a folder of its own."""
        exact = self.exact_split if exact is None else exact
        directory = self.workdir / (f"days-{label}" + ("-exact" if exact else ""))
        return DaySplitter.to_files(
            first, last, directory, self.plan.time_unit, f"window {label}", exact=exact
        )

    def _by_day(self, result: transport.DownloadResult, cached: bool) -> Iterator[Window]:
        """A multi-day body cut into one file per day (as it downloaded, else now),
        each parsed when its turn comes.

        A body cut by bisection has each day's rows checked as the day is parsed
        (``DaySplitter.holds_only``): a body out of order is cut again exactly and
        every one of its days handed on again, each replacing the one handed on
        before it (a dataset writes a day in one atomic step)."""
        req = result.request
        with self.lock:
            splitter = self.splits.pop(result.path, None) if not cached else None
        if splitter is not None:
            self.splitting.give_back(result.bytes_received)
        else:
            splitter = self.day_splitter(req.label, req.from_date, req.to_date)
            splitter.read(result.path)  # its day files removed if it fails
        if not splitter.ordered and not splitter.exact:  # days out of order: cut exactly
            splitter.discard()
            splitter = self._exact_split(result)
        handed = 0
        try:
            for w in self._hand_on(result, cached, self._days(splitter), splitter.days):
                handed += 1
                yield w
        except _Misplaced:
            splitter.discard()
            splitter = self._exact_split(result)
            yield from self._hand_on(result, cached, self._days(splitter), splitter.days, handed)

    def _exact_split(self, result: transport.DownloadResult) -> DaySplitter:
        """The body of ``result`` cut exactly (every row's time read), now; so are
        the next bodies."""
        req = result.request
        self.exact_split = True
        splitter = self.day_splitter(req.label, req.from_date, req.to_date, exact=True)
        splitter.read(result.path)  # its day files removed if it fails
        return splitter

    def _days(self, splitter: DaySplitter) -> Iterator[tuple[dt.date, Parsed]]:
        """Each day file of ``splitter`` parsed, in order, checked to hold that day's
        rows exactly (:class:`_Misplaced` if not)."""
        for i, path in enumerate(splitter.paths):
            day = splitter.first + dt.timedelta(days=i)
            parsed = self._parse_day(path, day)
            if not splitter.exact and (
                parsed.again is not None or not splitter.holds_only(i, parsed.batches)
            ):
                raise _Misplaced(day)
            yield day, parsed

    def _parse_day(self, path: Path, day: dt.date) -> Parsed:
        """One day's file of a multi-day body, parsed as a one-day window is."""
        plan = self.plan
        return parse_file(
            path,
            f"window {day.isoformat()}",
            plan.on_bad_lines,
            self.columns,
            plan.progress,
            batch_rows=self.chunk_rows,
            hold=self.hold,
            events=self.events,
        )

    def _hand_on(
        self,
        result: transport.DownloadResult,
        cached: bool,
        days: Iterable[tuple[dt.date, Parsed]],
        count: int,
        counted: int = 0,
    ) -> Iterator[Window]:
        """The days of one body as :class:`Window` s, in order, each counted done
        (but the first ``counted``, handed on before)."""
        progress = self.plan.progress
        for i, (day, part) in enumerate(days):
            if progress is not None and i >= counted:
                # the bytes were counted as they arrived, unless the body was cached
                progress.window_done(result.bytes_received if cached and i == 0 else 0)
            yield Window(day, result, part, cached, last=i == count - 1)

    def cancel(self) -> None:
        """End the downloads in flight (their bodies would be thrown away)."""
        for s in self.sessions:
            transport.cancel(s)

    def close(self) -> None:
        """Close the sessions and drop the parsed bodies never handed on."""
        for s in self.sessions:
            s.close()
        for stream in self.streams.values():
            stream.discard()
        for splitter in self.splits.values():
            splitter.discard()


def iter_windows(
    plan: ExportPlan,
    workdir: Path,
    *,
    day_at_a_time: bool = False,
    hold: int | None = None,
    events: bool = False,
) -> Iterator[Window]:
    """Download the request windows (``plan.concurrency`` at once) and hand on their days.

    Windows are cut by ``plan.sizing`` (:class:`WindowPlanner`): with
    ``window_days="auto"`` the first body is awaited alone and the next windows are
    sized from the compressed bytes per day learnt. A body is parsed while it
    downloads (the verifier's inflated bytes are scanned as they arrive, see
    ``parse.BodyParser``; :data:`STREAMED_AHEAD` bodies at most, or more small
    ones, or all of a flat read's, later ones wait on disk and are parsed from there); its batches are built, in this thread, only
    once it has verified, and a body that fails is dropped whole and fetched
    again. Each is cut into its days (:func:`split_days`) and handed on one
    :class:`Window` per day, in day order (so that datasets and column orders do
    not depend on download timing). A window whose download keeps failing
    (network errors, truncated bodies, after the transport's retries) is fetched
    again as two halves, down to single days; a single day's failure is final and
    names the day. On such a failure no window is sent any more and those after
    the failing one are cancelled, but the windows before it are awaited and
    handed on, then the days of the failing window before its failing day (its
    halves that verified), and then the error propagates: every day before the
    failing day is handed on, whatever the order the downloads ended in. Any other
    error (a refused secret, the memory budget) propagates at once.
    ``plan.limit`` caps the rows handed on in total.
    With ``cache_dir`` a verified body is kept and later runs reuse it.

    With ``day_at_a_time`` (a dataset, written a day at a time) a multi-day body is
    not parsed whole: it is cut into one plain file per day (``DaySplitter``: as it
    downloads, :data:`SPLIT_AHEAD` bodies at a time, else from disk when its turn
    comes) and each day is parsed when its turn comes, as a one-day window
    is, so that a multi-day window takes no more memory than its days one by one.
    ``hold`` and ``events`` go to :func:`parse_file` for each day (and ``hold`` to
    the bodies parsed while they download, which drop what they parsed past it):
    a day too big to hold is parsed again as it is written.
    """
    downloads = _Downloads(plan, workdir, day_at_a_time, hold, events)
    planner = downloads.planner
    order: collections.deque[tuple[dt.date, dt.date]] = collections.deque()
    landed: dict[dt.date, list[tuple[transport.DownloadResult, bool]]] = {}
    pending: dict[Future[list[transport.DownloadResult]], tuple[dt.date, dt.date]] = {}
    remaining = plan.limit
    pool: ThreadPoolExecutor | None = None
    # A day that cannot be downloaded: its window, and the error raised once every
    # day before it is handed on.
    failure: tuple[tuple[dt.date, dt.date], Exception] | None = None
    try:
        while True:
            # Plan and send more windows: the first one alone while the size is unknown.
            while (
                failure is None
                and not planner.done
                and len(pending) < (1 if planner.learning else plan.concurrency * 2)
            ):
                window = planner.take()
                assert window is not None
                first, last = window
                order.append(window)
                hit = downloads.lookup(first, last)
                if hit is not None:
                    landed[first] = [(hit, True)]
                    downloads.landing(landed[first])
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(
                        max_workers=plan.concurrency, thread_name_prefix="robotmia-dl"
                    )
                pending[pool.submit(downloads.fetch, first, last)] = window
            # Hand on the landed windows, in date order.
            while order and order[0][0] in landed:
                for result, cached in landed.pop(order.popleft()[0]):
                    for w in downloads.days_of(result, cached):
                        if remaining is not None:
                            if w.parsed.rows >= remaining:
                                w.parsed = w.parsed.head(remaining)
                                w.last = True
                                yield w
                                return
                            remaining -= w.parsed.rows
                        yield w
            if failure is not None and not order:  # every day before the failing one
                raise failure[1]
            awaited = [f for f in pending if failure is None or pending[f] < failure[0]]
            if not awaited:
                if failure is not None:
                    raise failure[1]
                if planner.done:
                    return
                continue
            done, _ = wait(awaited, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: pending[f]):
                window = pending.pop(fut)
                if failure is not None and window > failure[0]:
                    continue  # after the failing day: not handed on
                try:
                    results = fut.result()
                except Exception as exc:
                    if not _day_failed(exc):
                        raise
                    # Hand on the days before it (of earlier windows, and of this one
                    # before its failing day), then fail; the later windows are not.
                    results = downloads.fetched_before.pop(window, [])
                    failure = (window, exc)
                    order = collections.deque(w for w in order if w <= window)
                    for later in [f for f in pending if pending[f] > window]:
                        later.cancel()
                landed[window[0]] = [(r, False) for r in results]
                downloads.landing(landed[window[0]])
    finally:
        for fut in pending:
            fut.cancel()
        if pending and downloads.cache is None:
            # Stopped early (an error, Ctrl-C): end the downloads in flight, whose
            # bodies would be thrown away (with a cache they finish, for the next run).
            downloads.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        downloads.close()


def fetch_windows(
    plan: ExportPlan, workdir: Path, hook: BatchHook | None = None
) -> tuple[list[Window], dict[str, Kind]]:
    """Every day of ``plan`` (see :func:`iter_windows`) in day order, with the column
    kinds unified in that order; ``hook`` is handed every parsed batch. An
    asked-for column that no day holds is an error."""
    windows: list[Window] = []
    try:
        with batch_hook(hook):
            windows.extend(iter_windows(plan, workdir))
    finally:
        if plan.progress is not None:
            plan.progress.close()
    windows.sort(key=lambda w: w.day)
    kinds = unified_kinds(w.kinds for w in windows)
    check_columns(plan.columns, kinds, [w.parsed for w in windows], plan.source)
    return windows, kinds
