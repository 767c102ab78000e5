"""Reading an export body as chunks of whole lines (gzip or plain, multi-member)."""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._zlib import gzip as _gzip_impl
from ..errors import IncompleteDownloadError, ParseError

_BLOCK = 4 << 20
BIG_BLOCK = 8 << 20
#: Lines per batch: small enough that a batch's transient Python objects stay a few
#: tens of MB, large enough that Arrow conversion dominates per-batch overhead.
BATCH_ROWS = 16_384
#: A chunk lays every key it meets out over all its rows (about 10 bytes a row and
#: key), so a wide export (thousands of keys) is read in fewer rows per chunk, to
#: keep each chunk near this size: see :func:`rows_per_chunk`.
CHUNK_BYTES = 16 << 20
_MIN_ROWS = 256
#: The lines whose keys size the chunks of an export (its first chunk).
PROBE_LINES = 2048

# ------------------------------------------------------------------------- lines


class ReadPosition:
    """How far a reader has come through its file: ``done`` of its ``size`` bytes as
    stored (the compressed bytes of a gzip file) and the ``inflated`` bytes they gave,
    updated as each block is read.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_bytes(b'{"event":"a"}\\n' * 3)
        >>> pos = ReadPosition()
        >>> chunks = list(iter_line_chunks(p, label="x", position=pos))
        >>> (pos.done, pos.inflated, pos.size, pos.stored(14))
        (42, 42, 42, 14)
    """

    def __init__(self) -> None:
        self.size = 0
        self._at = (0, 0)  # (stored, inflated) bytes read, set together
        self._raw: BinaryIO | None = None

    @property
    def done(self) -> int:
        return self._at[0]

    @property
    def inflated(self) -> int:
        return self._at[1]

    def attach(self, raw: BinaryIO) -> None:
        """Follow ``raw``, the file as stored, just opened."""
        self._raw = raw
        self.size = os.fstat(raw.fileno()).st_size
        self._at = (0, 0)

    def update(self, nbytes: int) -> None:
        """Record a block of ``nbytes`` (inflated) just read."""
        if self._raw is not None:
            with contextlib.suppress(OSError, ValueError):
                self._at = (self._raw.tell(), self._at[1] + nbytes)

    def stored(self, consumed: int) -> int:
        """The stored bytes that the first ``consumed`` inflated bytes came from (in
        proportion: the reading may have gone further)."""
        done, inflated = self._at
        if inflated <= 0:
            return done
        return min(done, round(consumed * done / inflated))


@contextlib.contextmanager
def opened(path: str | Path, position: ReadPosition | None = None) -> Iterator[BinaryIO]:
    """The file's bytes, inflated if it is gzip; ``position`` follows the stored bytes."""
    p = Path(path)
    try:
        raw: BinaryIO = open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"export file not found: {p}") from exc
    if position is not None:
        position.attach(raw)
    try:
        head = raw.read(2)
        raw.seek(0)
        if head != b"\x1f\x8b":
            yield raw
            return
        with _gzip_impl.GzipFile(fileobj=raw, mode="rb") as stream:
            yield stream
    finally:
        raw.close()


def read_block(
    stream: BinaryIO,
    size: int,
    *,
    label: str,
    next_line: int,
    position: ReadPosition | None = None,
) -> bytes:
    """Up to ``size`` bytes; a truncated or corrupt gzip stream raises ours."""
    try:
        block = stream.read(size)
        if position is not None:
            position.update(len(block))
        return block
    except EOFError as exc:
        raise IncompleteDownloadError(
            f"{label}: the gzip stream ends early after line {next_line - 1} "
            "(truncated file or download); download it again"
        ) from exc
    except (zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise ParseError(f"corrupt gzip data ({exc})", line_number=next_line, source=label) from exc


def iter_line_chunks(
    path: str | Path,
    *,
    label: str,
    batch_rows: int = BATCH_ROWS,
    position: ReadPosition | None = None,
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(first_line_number, lines)`` chunks of a ``.jsonl``/``.jsonl.gz`` file.

    Lines keep no ``\\n``; line numbers are 1-based physical lines. A truncated gzip
    stream raises :class:`IncompleteDownloadError`, corrupt data :class:`ParseError`.
    ``position`` follows how far into the file (as stored) the reading has come.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_bytes(b'{"event":"a"}\\n\\n{"event":"b"}')
        >>> list(iter_line_chunks(p, label="x"))
        [(1, [b'{"event":"a"}', b'', b'{"event":"b"}'])]
    """
    first = 1
    pending: list[bytes] = []
    carry = b""
    with opened(path, position) as stream:
        while True:
            block = read_block(
                stream, _BLOCK, label=label, next_line=first + len(pending), position=position
            )
            if not block:
                break
            parts = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = parts.pop()
            pending.extend(parts)
            while len(pending) >= batch_rows:
                yield first, pending[:batch_rows]
                first += batch_rows
                pending = pending[batch_rows:]
        if carry:
            pending.append(carry)
        if pending:
            yield first, pending


def split_lines(chunk: bytes | memoryview) -> list[bytes]:
    """The lines of a chunk from :func:`iter_line_blocks` (newlines dropped).

    Example:
        >>> split_lines(b'a\\n\\nb\\n')
        [b'a', b'', b'b']
    """
    lines = bytes(chunk).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def rows_per_chunk(path: str | Path, *, most: int = BATCH_ROWS) -> int:
    """Lines per chunk for this file: ``most``, or fewer when its first lines carry
    so many distinct property keys that a chunk of ``most`` rows (laid out over
    every key it meets) would pass :data:`CHUNK_BYTES`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text("".join(
        ...     '{"event":"e","properties":{"k%d":1}}\\n' % i for i in range(3000)))
        >>> rows_per_chunk(p) < BATCH_ROWS
        True
    """
    head = b""
    with contextlib.suppress(Exception), opened(path) as stream:
        head = stream.read(8 << 20)
    return rows_for_keys(len(line_keys(head.split(b"\n", PROBE_LINES)[:PROBE_LINES])), most=most)


def line_keys(lines: list[bytes]) -> set[str]:
    """The distinct property keys of ``lines`` (those that decode)."""
    import orjson

    keys: set[str] = set()
    for line in lines:
        with contextlib.suppress(Exception):
            props = orjson.loads(line).get("properties")
            if isinstance(props, dict):
                keys.update(props)
    return keys


@dataclass
class ChunkRows:
    """Lines per chunk for the bodies of one export: learnt from the first body's
    first chunks (its first :data:`PROBE_LINES` lines, or all of a shorter body; see
    :func:`rows_for_keys`), then kept, so that later bodies (its other windows) are
    cut in chunks of the right size at once, without learning again (``learnt``).

    Example:
        >>> sizing = ChunkRows()
        >>> sizing.rows is None, sizing.learning
        (True, True)
        >>> sizing.learnt(8388)
        >>> sizing.rows, sizing.learning
        (8388, False)
    """

    rows: int | None = None
    #: False once a body has told the width: later bodies take ``rows`` as it is.
    learning: bool = True

    def learnt(self, rows: int) -> None:
        """A body's first lines (all of them, or :data:`PROBE_LINES`) told ``rows``."""
        self.rows, self.learning = rows, False


def rows_for_keys(keys: int, *, most: int = BATCH_ROWS) -> int:
    """Lines per chunk for an export whose lines carry ``keys`` distinct property
    keys (see :func:`rows_per_chunk`).

    Example:
        >>> rows_for_keys(200), rows_for_keys(5000)
        (8388, 335)
    """
    rows = CHUNK_BYTES // (10 * max(1, keys))
    return max(_MIN_ROWS, min(most, rows))
