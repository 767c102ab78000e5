"""Export windows: one parsed window, and its split into days (a body cut into day
files: :mod:`._split`); their sizes and the API budget are :mod:`._budget`'s."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import numpy as np
import orjson
import pyarrow as pa

from .. import parse, transport
from ..parse import PROPERTY_PREFIX, Kind

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
    sparse: bool = False  # scanned sparse (see parse.read_raw_batches)


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
            sparse=again.sparse,
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
    ``compact``: the read keeps compact pieces (split by event, or a sparse tail),
    so its bodies are scanned sparse; otherwise it keeps every batch as parsed, and
    every body may be parsed as it arrives (:data:`_fetch.STREAMED_AHEAD_DENSE`)."""

    @property
    def compact(self) -> bool: ...

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


def scans_sparse(hook: BatchHook | None) -> bool:
    """Whether the batches a ``hook`` is given are best scanned sparse (each key's
    values at its rows, see ``parse.read_raw_batches``): those of a read that keeps
    compact pieces (:attr:`BudgetHook.compact`), which a sparse scan gives at the
    cost of its values rather than of its keys times its rows."""
    return isinstance(hook, BudgetHook) and hook.compact


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
