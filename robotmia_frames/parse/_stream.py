"""Parsing a body while it downloads: inflated bytes in, chunks scanned as they come.

The transport's verifier inflates every body anyway (to check it); a
:class:`BodyParser` takes those bytes as they arrive, cuts them into chunks of
whole lines and hands each to the scanning threads at once, so that a window's
scan overlaps its download and the body is not inflated a second time. Nothing is
a batch until :meth:`BodyParser.batches` is called, which the pipeline does only
once the body has verified; a new attempt (:meth:`BodyParser.restart`) throws
away everything fed before.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from . import _decode as parse
from ._batch import Hold, RawBatch
from ._engine import _FIRST_ROWS, declined
from ._lines import BATCH_ROWS, PROBE_LINES, ChunkRows
from ._native import (
    Cutter,
    LineChunker,
    ScanResult,
    _scanners,
    cut_blocks,
    from_scan,
    probe_width,
    scan_bytes,
    scan_chunk,
    scan_fill,
    trim_memory,
)

#: Chunks of one body at most waiting to be scanned: the download waits beyond
#: that, so that a fast network does not pile up inflated text in memory.
_IN_FLIGHT = 4
_TRIM_EVERY = 8


class _Chunk:
    """One chunk of lines: its bytes (dropped once scanned, unless the scanner
    declined it) and its scan."""

    __slots__ = ("count", "counted", "first", "held", "scan", "size")

    def __init__(self, first: int, data: memoryview, count: int, scan: Future[Any]) -> None:
        self.first, self.count, self.scan = first, count, scan
        self.size = len(data)  # its bytes, kept once they are dropped
        self.counted = False  # its scan's bytes told to the parser's watch
        # The bytes, in a list the scan's callback empties: the callback holds the
        # list, not the chunk, so that no cycle (chunk -> future -> callback ->
        # chunk) keeps a scan's buffers alive after the batches built on them are
        # freed, until the garbage collector happens to run.
        self.held: list[memoryview | None] = [data]
        scan.add_done_callback(functools.partial(_drop_scanned, self.held))

    @property
    def data(self) -> memoryview:
        """The chunk's bytes (None once scanned)."""
        return self.held[0]  # type: ignore[return-value]


def _drop_scanned(held: list[memoryview | None], fut: Future[Any]) -> None:
    """A chunk's bytes let go once the scanner has read them (kept if it declined)."""
    if not fut.cancelled() and fut.exception() is None and fut.result() is not None:
        held[0] = None


class BodyParser:
    """An export body parsed as its inflated bytes are fed (a ``transport.BodyTap``).

    ``keys``, ``batch_rows``, ``cutter`` and ``sparse`` are those of
    :func:`~robotmia_frames.parse.read_raw_batches`. Needs the C scanner. ``watch``
    is told the bytes of the scans held so far as each chunk is fed (the memory
    budget of a read raises there, and the download stops). Past ``hold`` bytes of
    scans held that are mostly nulls (:func:`~robotmia_frames.parse.mostly_empty`:
    a wide export), the parser drops them and takes no more (:attr:`dropped`): the
    body is then parsed from disk, one chunk at a time, once it has landed.

    Example:
        >>> p = BodyParser()
        >>> p.restart()
        >>> p.feed(b'{"event":"a","properties":{"time":1,"n":2}}\\n')
        >>> p.finish()
        >>> [b.num_rows for b in p.batches("x")]
        [1]
    """

    def __init__(
        self,
        *,
        keys: frozenset[str] | None = None,
        batch_rows: ChunkRows | None = None,
        cutter: Cutter | None = None,
        watch: Callable[[int], None] | None = None,
        hold: int | None = None,
        sparse: bool = False,
    ) -> None:
        self.keys, self.sparse = keys, sparse  # what is scanned, and how
        self.watch, self.hold = watch, hold  # the bytes of scans held, and their bound
        self.sizing, self.cutter = batch_rows, cutter  # lines per chunk, and cuts
        self._lock = threading.Lock()
        self._chunks: collections.deque[_Chunk] = collections.deque()
        self.restart()

    def restart(self) -> None:
        """Throw away what was fed (a new attempt at the body starts)."""
        self.discard()
        self.dropped = False  # past ``hold``: nothing is kept of this attempt
        self._seen: set[str] = set()
        self._held = Hold(self.hold)  # the scans held (their bytes told to watch)
        # Lines in the next chunk: learnt from the first ones (unless an earlier body
        # of the export told them: see ChunkRows) when the width matters; a sparse
        # scan's chunks cost what their values do, whatever the width.
        learns = self.keys is None and not self.sparse
        known = self.sizing.rows if learns and self.sizing is not None else None
        self._rows = [known if known is not None else _FIRST_ROWS if learns else BATCH_ROWS]
        self._learning = learns and (self.sizing is None or self.sizing.learning)
        self._probed = False  # a chunk of this attempt told the width
        self._chunker = LineChunker(self._rows)

    def discard(self) -> None:
        """Drop every chunk (their scans not started are cancelled)."""
        with self._lock:
            for c in self._chunks:
                c.scan.cancel()
            self._chunks.clear()

    def feed(self, data: bytes) -> None:
        """The next inflated bytes of the body."""
        if self.dropped:
            return
        for first, chunk, count in self._chunker.feed(data):
            if not self._emit(first, chunk, count):  # dropped: let go of what it holds
                self._chunker = LineChunker(self._rows)
                return

    def finish(self) -> None:
        """The body is complete: its last lines become a chunk too."""
        if self.dropped:
            return
        for first, chunk, count in self._chunker.finish():
            self._emit(first, chunk, count)
        if self._learning and self._probed:  # a body shorter than PROBE_LINES: all of it
            self._learnt()

    def _emit(self, first: int, chunk: memoryview, count: int) -> bool:
        """Scan a chunk (False: dropped instead, past ``hold``)."""
        pieces = [(first, chunk, count)]
        if self.cutter is not None:
            pieces = list(cut_blocks(iter(pieces), self.cutter))
        pool = _scanners()
        for first, piece, n in pieces:
            with self._lock:
                waiting = [c for c in self._chunks if not c.scan.done()]
            if len(waiting) >= _IN_FLIGHT:
                waiting[0].scan.exception()  # the download waits for the scanner
            if self.watch is not None or self.hold is not None:
                self._watch()
                if self.dropped:
                    return False
            entry = _Chunk(first, piece, n, pool.submit(scan_chunk, piece, self.keys, self.sparse))
            with self._lock:
                self._chunks.append(entry)
            if self._learning:
                self._learn(first, entry.scan, piece)
        return True

    def _watch(self) -> None:
        """Tell ``watch`` the bytes of the scans held, counting those done since;
        past ``hold``, drop them all."""
        with self._lock:
            done = [c for c in self._chunks if not c.counted and c.scan.done()]
        for c in done:
            c.counted = True
            if not c.scan.cancelled() and c.scan.exception() is None:
                got = c.scan.result()
                fill = scan_fill(got) if got is not None and self.hold is not None else (0, 0)
                self._held.add(c.size if got is None else scan_bytes(got), *fill)
        if self._held.over:
            self.discard()
            self.dropped = True
            trim_memory()
            return
        if self.watch is not None:
            self.watch(self._held.nbytes)

    def _learn(self, first: int, scan: Future[Any], chunk: memoryview) -> None:
        """The export's width from its first chunks: the rows of the next chunks."""
        if first > PROBE_LINES:
            self._learnt()
            return
        try:
            got: ScanResult | None = scan.result()
        except Exception:  # raised again when the batches are taken
            got = None
        self._rows[0] = probe_width(self._seen, got, chunk)
        self._probed = True
        if self.sizing is not None:
            self.sizing.rows = self._rows[0]

    def _learnt(self) -> None:
        """The width is known: the export's later bodies take it without learning."""
        self._learning = False
        if self.sizing is not None:
            self.sizing.learnt(self._rows[0])

    def batches(
        self, source: str, on_bad_lines: parse.OnBadLines = "error", stored: int = 0
    ) -> Iterator[RawBatch]:
        """The body's batches, in line order (call once the body is verified and
        :meth:`finish` ed). A chunk the scanner declined is parsed in Python here.
        With the body's ``stored`` size (bytes on disk), each batch tells how far
        into it its lines end, in proportion (``read_to`` of ``file_size``)."""
        bad = parse.BadLines(source, on_bad_lines)
        taken = 0
        with self._lock:
            total = sum(c.size for c in self._chunks)
        consumed = 0

        def placed(batch: RawBatch) -> RawBatch:
            if stored and total:
                batch.read_to, batch.file_size = round(stored * consumed / total), stored
            return batch

        while True:
            with self._lock:
                if not self._chunks:
                    break
                c = self._chunks.popleft()
            consumed += c.size
            got = c.scan.result()
            taken += 1
            if taken % _TRIM_EVERY == 0:
                trim_memory()
            batch = None if got is None else from_scan(got, c.first, c.count, source)
            if batch is not None:
                yield placed(batch)
                continue
            for part in declined(
                c.data, c.first, source=source, bad=bad, keys=self.keys, narrow=self.sparse
            ):
                yield placed(part)
