"""A multi-day body cut into one gzip body per day (:func:`split_body`,
:func:`split_body_files`), streaming, so that a dataset write takes the memory of
one day whatever the window's days."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .. import parse
from .._zlib import zlib as _zlib
from ._windows import day_numbers

__all__ = ["split_body", "split_body_files"]


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
    outs = [io.BytesIO() for _ in range((last - first).days + 1)]
    _split_lines(path, label, first, unit, outs)
    return [o.getvalue() for o in outs]


def split_body_files(
    path: Path, label: str, first: dt.date, last: dt.date, directory: Path, unit: str = "s"
) -> list[Path]:
    """:func:`split_body` into files: ``directory/<day>.jsonl.gz``, one per day, in order.

    The body is read once as a stream and never held in memory: each day can then
    be parsed on its own, as a one-day window, so that writing a multi-day window
    takes the memory of one day.
    """
    directory.mkdir(parents=True, exist_ok=True)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    paths = [directory / f"{d.isoformat()}.jsonl.gz" for d in days]
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(p.open("wb")) for p in paths]
        _split_lines(path, label, first, unit, outs)
    return paths


#: Lines read at a time when a body is cut into day files: the cut holds this many
#: lines and one compressor, far less than the day it leaves for the parse.
_SPLIT_ROWS = 1024


def _split_lines(
    path: Path, label: str, first: dt.date, unit: str, outs: Sequence[BinaryIO]
) -> None:
    """Write the lines of the body at ``path`` to ``outs`` (one per day from ``first``),
    gzip-compressed (fastest level): see :func:`split_body`. One pass over the body, a
    few lines at a time, parsed for their rows' times only, with one day's compressor
    open at a time (a body lists its days in order), each run of consecutive lines
    of one day compressed in one call. A line of a day already left behind (an
    event without a time at the end of the body, a body out of order) starts
    another gzip member of that day's output: several members are one gzip stream
    to a reader. A day without lines gets an empty gzip member."""
    ndays = len(outs)
    written = [False] * ndays
    deflater: Any = None
    current = -1

    def write(day: int, lines: list[bytes]) -> None:
        nonlocal deflater, current
        if day != current:
            if deflater is not None:
                outs[current].write(deflater.flush())
            deflater = _zlib.compressobj(1, zlib.DEFLATED, 31)
            current = day
            written[day] = True
        outs[day].write(deflater.compress(b"\n".join(lines) + b"\n"))

    day = 0
    for first_no, chunk in parse.iter_line_chunks(path, label=label, batch_rows=_SPLIT_ROWS):
        batch = parse.build_raw_batch(
            chunk, first_no, source=label, bad=parse.BadLines(label, "skip"), keys=frozenset()
        )
        days = day_numbers(batch.time, first, ndays, unit)
        row = 0
        start = 0  # the first line of the run of lines of ``day``
        for k, line in enumerate(chunk):
            if line.strip() and first_no + k not in batch.bad_lines and row < len(days):
                now = int(days[row])
                row += 1
                if now != day:
                    if k > start:
                        write(day, chunk[start:k])
                    day, start = now, k
        if len(chunk) > start:
            write(day, chunk[start:])
    if deflater is not None:
        outs[current].write(deflater.flush())
    for out, done in zip(outs, written, strict=True):
        if not done:
            out.write(_zlib.compressobj(1, zlib.DEFLATED, 31).flush())
