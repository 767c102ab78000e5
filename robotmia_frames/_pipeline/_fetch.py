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
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import requests

from .. import parse, transport
from ..errors import APIError, IncompleteDownloadError, NetworkError
from ..parse import Kind
from ._core import ExportPlan, check_columns, parse_columns, parse_file, unified_kinds
from ._windows import (
    BATCH_HOOK,
    BatchHook,
    BudgetHook,
    Window,
    WindowPlanner,
    as_batches,
    batch_hook,
    day_cutter,
    hooked,
    property_keys,
    split_body_files,
    split_days,
)

__all__ = ["STREAMED_AHEAD", "fetch_halving", "fetch_windows", "iter_windows", "window_config"]

#: Failures worth halving a multi-day window for (timeouts, resets, truncated bodies;
#: a 5xx after every retry too, as a server that times out on a large window gives).
_HALVE_ON = (NetworkError, IncompleteDownloadError)
#: ... and the statuses of an APIError worth it: 5xx, and 200 for a body refused as
#: larger than an auto window may be.
_HALVE_STATUS = frozenset({200, *range(500, 600)})


#: Bodies parsed while they download that may wait, parsed, to be handed on (the
#: next one needed and one more); the other downloads go to disk first ...
STREAMED_AHEAD = 2
#: ... unless they are small (expected at most SMALL_BODY compressed bytes) and
#: the bodies waiting parsed hold less than AHEAD_BYTES: a year of small days
#: is all parsed as it arrives, while large windows keep memory to two bodies.
SMALL_BODY = 4 << 20
AHEAD_BYTES = 32 << 20


class _StreamBudget:
    """Which downloads are parsed as they arrive (see :data:`STREAMED_AHEAD`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0  # bodies streaming or parsed, not yet handed on
        self.bytes = 0  # compressed bytes of those that landed

    def take(self, expected: float | None) -> bool:
        with self.lock:
            small = expected is not None and expected <= SMALL_BODY and self.bytes < AHEAD_BYTES
            if self.count < STREAMED_AHEAD or small:
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
    bigger than the target is abandoned as it streams in (and then halved)."""
    config = plan.config
    if plan.sizing.days is None and first != last:
        cap = plan.sizing.target_bytes
        if config.max_window_bytes is not None:
            cap = min(cap, config.max_window_bytes)
        config = dataclasses.replace(config, max_window_bytes=cap)
    return config


def fetch_halving(
    download: Callable[[dt.date, dt.date], transport.DownloadResult],
    first: dt.date,
    last: dt.date,
    planner: WindowPlanner,
) -> list[transport.DownloadResult]:
    """The verified bodies of ``first..last``: one ``download``, else (network errors,
    truncated bodies, 5xx after the transport's retries, an auto body over the
    target) two halves, each fetched the same way, down to single days, whose
    failure is final. Each body teaches ``planner`` its bytes per day; a second
    half is cut to the windows that size says (auto windows). Shared with the Dask
    workers (``robotmia_frames.dask``)."""
    try:
        result = download(first, last)
    except (*_HALVE_ON, APIError) as exc:
        # a 5xx after every retry, or a 200 body refused as too big (window_config)
        server_error = isinstance(exc, APIError) and (exc.status_code or 0) in _HALVE_STATUS
        if first == last or not (isinstance(exc, _HALVE_ON) or server_error):
            raise
    else:
        planner.learn(first, last, result.bytes_received)
        return [result]
    middle = first + dt.timedelta(days=(last - first).days // 2)
    out = fetch_halving(download, first, middle, planner)
    day = middle + dt.timedelta(days=1)
    while day <= last:  # the rest in windows sized from what the halves taught
        span = (last - day).days + 1
        if planner.sizing.days is None and planner.bytes_per_day is not None:
            span = min(span, planner.sizing.next_days(planner.bytes_per_day))
        end = day + dt.timedelta(days=span - 1)
        out += fetch_halving(download, day, end, planner)
        day = end + dt.timedelta(days=1)
    return out


def iter_windows(
    plan: ExportPlan, workdir: Path, *, day_at_a_time: bool = False
) -> Iterator[Window]:
    """Download the request windows (``plan.concurrency`` at once) and hand on their days.

    Windows are cut by ``plan.sizing`` (:class:`WindowPlanner`): with
    ``window_days="auto"`` the first body is awaited alone and the next windows are
    sized from the compressed bytes per day learnt. A body is parsed while it
    downloads (the verifier's inflated bytes are scanned as they arrive, see
    ``parse.BodyParser``; :data:`STREAMED_AHEAD` bodies at most, or more small
    ones, later ones wait on disk and are parsed from there); its batches are built, in this thread, only
    once it has verified, and a body that fails is dropped whole and fetched
    again. Each is cut into its days (:func:`split_days`) and handed on one
    :class:`Window` per day, in day order (so that datasets and column orders do
    not depend on download timing). A window whose download keeps failing
    (network errors, truncated bodies, after the transport's retries) is fetched
    again as two halves, down to single days; a single day's failure is final and
    names the day. On the first final failure the pending downloads are cancelled
    and the error propagates. ``plan.limit`` caps the rows handed on in total.
    With ``cache_dir`` a verified body is kept and later runs reuse it.

    With ``day_at_a_time`` (a dataset, written a day at a time) a multi-day body is
    not parsed whole: it is cut into one file per day (:func:`split_body_files`,
    streaming) and each day is parsed when its turn comes, as a one-day window
    is, so that a multi-day window takes no more memory than its days one by one.
    """
    cache = (
        transport.WindowCache(plan.cache_dir, api_secret=plan.config.api_secret)
        if plan.cache_dir is not None
        else None
    )
    sessions: list[requests.Session] = []
    lock = threading.Lock()
    local = threading.local()
    keys = property_keys(parse_columns(plan))
    chunk_rows = parse.ChunkRows()  # learnt from the first body, kept for the others
    # Bodies parsed while they download (the C scanner): see STREAMED_AHEAD.
    streaming = parse.native_enabled()
    ahead = _StreamBudget()
    streams: dict[Path, parse.BodyParser] = {}
    # A read's memory budget, also checked in the download threads as bodies are scanned.
    read_hook = BATCH_HOOK.get()
    budget = read_hook if isinstance(read_hook, BudgetHook) else None

    def download(first: dt.date, last: dt.date) -> transport.DownloadResult:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = transport.make_session()
            with lock:
                sessions.append(session)
        request = plan.request(first, last)
        config = window_config(plan, first, last)
        dest = (
            cache.path_for(plan.config.base_url, request)
            if cache is not None
            else workdir / f"{request.label}.jsonl.gz"
        )
        stream = None
        days = (last - first).days + 1
        per_day = planner.bytes_per_day
        by_days = day_at_a_time and days > 1  # parsed day by day after, from disk
        if streaming and not by_days and ahead.take(None if per_day is None else per_day * days):
            label = f"the body of window {request.label} (downloading)"
            stream = parse.BodyParser(
                keys=keys,
                batch_rows=chunk_rows,
                cutter=day_cutter(first, days, plan.time_unit) if days > 1 else None,
                watch=None if budget is None else functools.partial(budget.holding, what=label),
            )
        try:
            result = transport.download_window(
                config,
                request,
                dest,
                session=session,
                limiter=plan.limiter,
                durable=cache is not None,  # a scratch body is parsed and deleted at once
                on_bytes=None if plan.progress is None else plan.progress.bytes_received,
                on_body=stream,
            )
        except BaseException:
            if stream is not None:  # a failed body: nothing of it is kept
                stream.discard()
                ahead.give_back()
            raise
        if stream is not None:
            try:
                stream.finish()  # verified: its batches may be taken
            except BaseException:  # over the memory budget: nothing of it is kept
                stream.discard()
                ahead.give_back()
                raise
            ahead.landed(result.bytes_received)
            with lock:
                streams[result.path] = stream
        if cache is not None:
            # Vouched for at once, so a download that completes while another day
            # fails (or Ctrl-C) is reused by the next run instead of fetched again.
            cache.record(plan.config.base_url, result)
        return result

    def fetch(first: dt.date, last: dt.date) -> list[transport.DownloadResult]:
        return fetch_halving(download, first, last, planner)

    def by_day(result: transport.DownloadResult, cached: bool) -> Iterator[Window]:
        """A multi-day body cut into one file per day, each parsed when its turn comes."""
        req = result.request
        paths = split_body_files(
            result.path,
            f"window {req.label}",
            req.from_date,
            req.to_date,
            workdir / f"days-{req.label}",
            plan.time_unit,
        )
        for i, path in enumerate(paths):
            day = req.from_date + dt.timedelta(days=i)
            label = f"window {day.isoformat()}"
            part = parse_file(
                path,
                label,
                plan.on_bad_lines,
                parse_columns(plan),
                plan.progress,
                batch_rows=chunk_rows,
            )
            if plan.progress is not None:
                plan.progress.window_done(result.bytes_received if cached and i == 0 else 0)
            yield Window(day, result, part, cached, last=i == len(paths) - 1)

    def scanned(result: transport.DownloadResult, cached: bool) -> Iterator[Window]:
        req = result.request
        if day_at_a_time and req.from_date != req.to_date:
            yield from by_day(result, cached)
            return
        hook = BATCH_HOOK.get()
        multi = req.from_date != req.to_date
        with lock:
            stream = streams.pop(result.path, None) if not cached else None
        # A multi-day body is cut into days as parsed (batches aligned with their
        # lines); a read's batch hook then sees each day's batches. Until then the
        # body is held whole, as parsed: the budget's watcher checks that.
        whole = hook.watcher() if isinstance(hook, BudgetHook) else as_batches
        try:
            parsed = parse_file(
                result.path,
                f"window {req.label}",
                plan.on_bad_lines,
                parse_columns(plan),
                plan.progress,  # rows as each batch is parsed
                hook=whole if multi else None,
                cutter=day_cutter(
                    req.from_date, (req.to_date - req.from_date).days + 1, plan.time_unit
                )
                if multi
                else None,
                batch_rows=chunk_rows,
                stream=stream,
            )
        finally:
            if stream is not None:
                ahead.give_back(result.bytes_received)
        days = split_days(parsed, req.from_date, req.to_date, plan.time_unit, keys)
        if multi and hook is not None:
            days = [(day, hooked(part, hook)) for day, part in days]
        for i, (day, part) in enumerate(days):
            if plan.progress is not None:
                # the bytes were counted as they arrived, unless the body was cached
                plan.progress.window_done(result.bytes_received if cached and i == 0 else 0)
            yield Window(day, result, part, cached, last=i == len(days) - 1)

    # The stored bytes and days of the bodies landed: the memory budget of a read
    # projects from them to every body (the days to come at the same rate).
    known_bytes = known_days = 0
    all_days = (plan.end - plan.start).days + 1

    def landing(results: list[tuple[transport.DownloadResult, bool]]) -> None:
        nonlocal known_bytes, known_days
        for r, _ in results:
            req = r.request
            planner.learn(req.from_date, req.to_date, r.bytes_received)
            known_bytes += r.bytes_received
            known_days += (req.to_date - req.from_date).days + 1
        if budget is not None and known_days:
            rest = max(0, all_days - known_days) * known_bytes / known_days
            budget.expect(int(known_bytes + rest))

    planner = WindowPlanner(plan.start, plan.end, plan.sizing, plan.bytes_per_day)
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
                    landing(landed[first])
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
                landing(landed[first])
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
        for stream in streams.values():  # parsed bodies never handed on
            stream.discard()


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
