"""A multi-day body cut into one body per day (:class:`DaySplitter`), streaming, so
that a dataset write takes the memory of one day whatever the window's days.

The splitter is a ``transport.BodyTap``: fed the inflated body while it downloads
(nothing is inflated twice), or fed from the file once landed
(:func:`split_body_files`, :func:`split_body`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import parse
from .._zlib import zlib as _zlib
from ._windows import day_numbers, day_runs

__all__ = ["DaySplitter", "day_paths", "split_body", "split_body_files"]


def split_body(
    path: Path, label: str, first: dt.date, last: dt.date, unit: str = "s"
) -> list[bytes]:
    """A verified body of ``first..last`` as one gzip JSONL body per day, in order.

    Each day's body holds the lines of that day (:func:`day_numbers`), in body
    order, as a one-day request of the day would bring them; a blank or malformed
    line goes with the row before it (the first day before any row). For a worker
    that fetched a multi-day window and hands back its days (``robotmia_frames.dask``).

    Example:
        >>> import datetime as dt, gzip, pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp(), "w.jsonl")
        >>> lines = [b'{"event":"a","properties":{"time":86399}}',
        ...          b'{"event":"b","properties":{"time":86400}}', b'', b'{bad']
        >>> _ = p.write_bytes(b"\\n".join(lines) + b"\\n")
        >>> [gzip.decompress(b).splitlines() for b in
        ...  split_body(p, "w", dt.date(1970, 1, 1), dt.date(1970, 1, 3))]
        ... # doctest: +NORMALIZE_WHITESPACE
        [[b'{"event":"a","properties":{"time":86399}}'],
         [b'{"event":"b","properties":{"time":86400}}', b'', b'{bad'], []]
    """
    outs: list[io.BytesIO] = []

    def opener() -> list[BinaryIO]:
        outs[:] = [io.BytesIO() for _ in range((last - first).days + 1)]
        return list(outs)

    splitter = DaySplitter(first, (last - first).days + 1, unit, opener, label, compress=True)
    splitter.read(path)
    return [o.getvalue() for o in outs]


def day_paths(first: dt.date, last: dt.date, directory: Path) -> list[Path]:
    """The day files of ``first..last`` in ``directory``: ``<day>.jsonl``, in order."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    return [directory / f"{d.isoformat()}.jsonl" for d in days]


def split_body_files(
    path: Path, label: str, first: dt.date, last: dt.date, directory: Path, unit: str = "s"
) -> list[Path]:
    """:func:`split_body` into plain JSONL files (:func:`day_paths`), one per day, in order.

    The body is read once as a stream and never held in memory: each day can then
    be parsed on its own, as a one-day window, so that writing a multi-day window
    takes the memory of one day.
    """
    splitter = DaySplitter.to_files(first, last, directory, unit, label)
    splitter.read(path)
    return splitter.paths


#: Bytes a splitter reads at a time from a stored body (a body fed as it downloads
#: comes in the verifier's pieces): it holds about this much.
SPLIT_BYTES = 4 << 20


class DaySplitter:
    """A body of ``days`` days from ``first`` written, as its inflated bytes are fed,
    to one output per day (``opener`` opens them, again at each :meth:`restart`).

    Each day's output holds the lines of that day (:func:`day_numbers`), in body
    order; a blank or malformed line goes with the row before it (the first day
    before any row). Each row's day is read from its raw time by the C scanner
    reading nothing else (``parse.scan_times``), the whole lines of each piece fed at
    once (only a line across two pieces is joined), and each run of lines of one
    day is written in one call, as a view of the piece; a stretch the scanner
    declines (or without it) is read line by line in Python. With ``compress``, each
    output is gzip (fastest level): a run of a day met again after another day (an
    event without a time at the end of the body, a body out of order) starts
    another gzip member, and a day without lines gets an empty member. Plain outputs
    take that run as it comes.

    Without ``exact``, each piece is cut where its day changes by bisection
    (``day_runs``: a few dozen lines read, not every row's time), which is right
    for a body in day order; the scanner's read of every row's time is then left
    to the parse of each day, which checks it (:meth:`holds_only`). A day met
    after a later one or met again (:attr:`ordered` False: a line the bisection
    read as the first day's, e.g. one whose properties are not an object, after
    later days' rows) or a piece the bisection cannot
    read is cut exactly as above.

    A ``transport.BodyTap``: fed while the body downloads, nothing is trusted until
    :meth:`finish` (after the body verified); :meth:`discard` removes the outputs.

    Example:
        >>> import datetime as dt, io
        >>> outs = [io.BytesIO(), io.BytesIO()]
        >>> s = DaySplitter(dt.date(1970, 1, 1), 2, "s", lambda: list(outs), "w")
        >>> s.restart()
        >>> s.feed(b'{"event":"a","properties":{"time":5}}\\n{"event":"b","prop')
        >>> s.feed(b'erties":{"time":86405}}\\n')
        >>> s.finish()
        >>> [o.getvalue().count(b"\\n") for o in outs]
        [1, 1]
    """

    def __init__(
        self,
        first: dt.date,
        days: int,
        unit: str,
        opener: Callable[[], list[BinaryIO]],
        label: str,
        *,
        compress: bool = False,
        chunk_bytes: int = SPLIT_BYTES,
        paths: Sequence[Path] = (),
        exact: bool = True,
    ) -> None:
        self.first, self.days, self.unit, self.label = first, days, unit, label
        self.opener = opener
        self.compress = compress
        self.exact = exact
        self.chunk_bytes = chunk_bytes
        self.paths = list(paths)  # the outputs' files, if files (removed by discard)
        self.outs: list[BinaryIO] = []
        self._reset()

    @classmethod
    def to_files(
        cls,
        first: dt.date,
        last: dt.date,
        directory: Path,
        unit: str,
        label: str,
        *,
        exact: bool = True,
    ) -> DaySplitter:
        """A splitter into plain JSONL day files in ``directory`` (:func:`day_paths`)."""
        paths = day_paths(first, last, directory)

        def opener() -> list[BinaryIO]:
            directory.mkdir(parents=True, exist_ok=True)
            outs: list[BinaryIO] = []
            try:
                for p in paths:
                    outs.append(p.open("wb"))
            except BaseException:
                for o in outs:
                    o.close()
                raise
            return outs

        return cls(first, len(paths), unit, opener, label, paths=paths, exact=exact)

    def restart(self) -> None:
        """Start again from the body's first byte (before each attempt at the download)."""
        self._close()
        self.outs = self.opener()
        self._reset()

    def _reset(self) -> None:
        self.ordered = True  # every day after the days before it, each met once
        self._written = [False] * self.days
        self._deflater: Any = None
        self._current = -1  # the day being written
        self._day = 0  # the day of the last row read (a blank or bad line follows it)
        self._line = 1  # the number of the next line
        self._pending: list[bytes] = []  # the start of a line begun, not finished

    def feed(self, data: bytes) -> None:
        """The next inflated bytes of the body: its whole lines are written at once
        (a view of ``data``; only the line across two pieces is joined)."""
        last = data.rfind(b"\n")
        if last < 0:
            if data:
                self._pending.append(data)
            return
        start = 0
        if self._pending:  # the line begun in earlier pieces, finished here
            start = data.find(b"\n") + 1
            self._split(b"".join([*self._pending, data[:start]]))
            self._pending = []
        if last + 1 > start:
            self._split(memoryview(data)[start : last + 1])
        if last + 1 < len(data):
            self._pending.append(data[last + 1 :])

    def finish(self) -> None:
        """The body is complete (and verified): its last lines are written and every
        output is closed."""
        if self._pending:
            self._split(b"".join([*self._pending, b"\n"]))
            self._pending = []
        if self._deflater is not None:
            self.outs[self._current].write(self._deflater.flush())
            self._deflater = None
        if self.compress:
            for out, done in zip(self.outs, self._written, strict=True):
                if not done:
                    out.write(_zlib.compressobj(1, zlib.DEFLATED, 31).flush())
        self._close()

    def read(self, path: Path) -> None:
        """Feed the whole body stored at ``path`` (gzip or plain), then :meth:`finish`;
        on failure the outputs are discarded (:meth:`discard`)."""
        try:
            self.restart()
            with parse.opened(path) as stream:
                while block := parse.read_block(
                    stream, self.chunk_bytes, label=self.label, next_line=self._line
                ):
                    self.feed(block)
            self.finish()
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close the outputs and remove their files (the body failed, or was not used)."""
        self._close()
        for p in self.paths:
            with contextlib.suppress(OSError):
                p.unlink()

    def _close(self) -> None:
        """Close the outputs if they are files (in memory, they are read after)."""
        if self.paths:
            for out in self.outs:
                out.close()

    def _write(self, day: int, data: bytes | memoryview) -> None:
        """A run of whole lines of ``day``."""
        if day < self._current or (day != self._current and self._written[day]):
            self.ordered = False  # a day after a later one, or met again
        if self.compress and day != self._current:
            if self._deflater is not None:
                self.outs[self._current].write(self._deflater.flush())
            self._deflater = _zlib.compressobj(1, zlib.DEFLATED, 31)
        self._current = day
        self._written[day] = True
        self.outs[day].write(self._deflater.compress(data) if self.compress else data)

    def _split(self, chunk: bytes | memoryview) -> None:
        """Write ``chunk``, whole lines each ending in a newline, to their days."""
        if not self.exact and self._bisected(memoryview(chunk)):
            return
        times = parse.scan_times(chunk)
        count = -1 - parse.cut_lines(chunk, 0, sys.maxsize) if times is not None else -1
        if times is not None and len(times) == count:  # a row on every line
            self._runs(memoryview(chunk), day_numbers(times, self.first, self.days, self.unit))
        else:
            lines = bytes(chunk).split(b"\n")[:-1]
            self._line_by_line(lines)
            count = len(lines)
        self._line += count

    def _bisected(self, chunk: memoryview) -> bool:
        """Write ``chunk`` as the runs of one day that bisection finds (False: it
        could not read them all, nothing written)."""
        runs, whole = day_runs(chunk, self.first, self.days, self.unit)
        if not whole:
            return False
        ends = [start for start, _ in runs[1:]] + [len(chunk)]
        for (start, day), end in zip(runs, ends, strict=True):
            assert day is not None  # a whole read knows every run's day
            self._write(day, chunk[start:end])
            self._day = day
        self._line += -1 - parse.cut_lines(chunk, 0, sys.maxsize)
        return True

    def holds_only(self, index: int, batches: Sequence[parse.RawBatch]) -> bool:
        """Whether the day ``index``'s output, parsed into ``batches`` (in order),
        is that day's exactly as an exact cut (``exact``) writes it: each row of that
        day, and (for a later day than the first) its first line a row, not a line
        that goes with the row before it. True for an exact cut."""
        if self.exact:
            return True
        for k, b in enumerate(batches):
            if k == 0 and index and b.first_line == 1 and 1 in b.bad_lines:
                return False
            if b.num_rows and bool(
                np.any(day_numbers(b.time, self.first, self.days, self.unit) != index)
            ):
                return False
        return True

    def _runs(self, chunk: memoryview, days: np.ndarray) -> None:
        """A chunk of rows, one a line, each of day ``days[i]``: each run of one day
        written whole."""
        if not len(days):
            return
        start = row = 0
        day = int(days[0])
        for k in (np.flatnonzero(days[1:] != days[:-1]) + 1).tolist():
            end = parse.cut_lines(chunk, start, k - row)
            self._write(day, chunk[start:end])
            start, row, day = end, k, int(days[k])
        self._write(day, chunk[start:])
        self._day = day

    def _line_by_line(self, lines: list[bytes]) -> None:
        """Lines read one at a time (the Python engine reads their times): a blank
        or malformed line goes with the row before it."""
        batch = parse.build_raw_batch(
            lines,
            self._line,
            source=self.label,
            bad=parse.BadLines(self.label, "skip"),
            keys=frozenset(),
        )
        days = day_numbers(batch.time, self.first, self.days, self.unit)
        day, row, start = self._day, 0, 0  # the first line of the run of lines of ``day``
        for k, line in enumerate(lines):
            if line.strip() and self._line + k not in batch.bad_lines and row < len(days):
                now = int(days[row])
                row += 1
                if now != day:
                    if k > start:
                        self._write(day, b"\n".join(lines[start:k]) + b"\n")
                    day, start = now, k
        if len(lines) > start:
            self._write(day, b"\n".join(lines[start:]) + b"\n")
        self._day = day
