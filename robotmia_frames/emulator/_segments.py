"""Gzip bodies joined from compressed pieces: each day compressed once, served in any range.

A :class:`Segment` is one day's JSONL as raw deflate blocks that end byte-aligned
(a full flush), with the CRC-32 and length of its text. Segments of consecutive
days, put one after another between a gzip header and a trailer whose CRC is
combined from theirs (:func:`crc32_combine`), are one valid gzip stream of the
days' text: a multi-day answer costs no compression at all.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .._zlib import zlib as _fast_zlib

#: ISA-L's crc32_combine (C), where installed.
_native_combine = getattr(_fast_zlib, "crc32_combine", None)

#: A gzip member header: deflate, no name, no mtime, unknown OS.
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

#: A final, empty deflate block (fixed Huffman codes): ends a stream of segments.
_FINAL = b"\x03\x00"


@dataclass(frozen=True)
class Segment:
    """One piece of text compressed on its own: ``deflate`` (non-final, full-flushed
    raw deflate blocks), the ``crc`` and ``size`` of the text, its ``lines``."""

    deflate: bytes
    crc: int
    size: int
    lines: int

    @classmethod
    def of(cls, chunks: Iterable[bytes], lines: int, level: int) -> Segment:
        """Compress ``chunks`` (text holding ``lines`` lines) at ``level``.

        Example:
            >>> import gzip
            >>> a = Segment.of([b"a\\n"], 1, 6)
            >>> gzip.decompress(b"".join(gzip_of([a, a])))
            b'a\\na\\n'
        """
        comp = zlib.compressobj(level, zlib.DEFLATED, -15)
        crc = size = 0
        out: list[bytes] = []
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            out.append(comp.compress(chunk))
        out.append(comp.flush(zlib.Z_FULL_FLUSH))
        return cls(b"".join(out), crc, size, lines)


def gzip_of(segments: Sequence[Segment]) -> Iterator[bytes]:
    """One gzip stream of the segments' texts, in order."""
    yield _HEADER
    crc = size = 0
    for seg in segments:
        yield seg.deflate
        crc = crc32_combine(crc, seg.crc, seg.size)
        size += seg.size
    yield _FINAL + struct.pack("<II", crc, size & 0xFFFFFFFF)


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


@functools.cache
def _zeros_operator(power: int) -> tuple[int, ...]:
    """The CRC-32 operator that appends ``2**power`` zero bytes (as zlib computes it)."""
    if power == 0:
        one_bit = [0xEDB88320, *(1 << n for n in range(31))]
        op: Sequence[int] = one_bit
        for _ in range(3):  # 1 bit -> 2 -> 4 -> 8 bits: one zero byte
            op = [_gf2_times(op, op[n]) for n in range(32)]
        return tuple(op)
    half = _zeros_operator(power - 1)
    return tuple(_gf2_times(half, half[n]) for n in range(32))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc1 = crc32(a)``, ``crc2 = crc32(b)`` and ``len(b)``:
    ISA-L's where installed, else :func:`crc32_combine_py`.

    Example:
        >>> crc32_combine(zlib.crc32(b"ab"), zlib.crc32(b"cde"), 3) == zlib.crc32(b"abcde")
        True
    """
    if _native_combine is not None:
        return int(_native_combine(crc1, crc2, len2))
    return crc32_combine_py(crc1, crc2, len2)


def crc32_combine_py(crc1: int, crc2: int, len2: int) -> int:
    """:func:`crc32_combine` in Python (zlib's method: the operator that appends
    ``len2`` zero bytes, by squaring), for platforms without ISA-L.

    Example:
        >>> crc32_combine_py(zlib.crc32(b"ab"), zlib.crc32(b"cde"), 3) == zlib.crc32(b"abcde")
        True
    """
    power = 0
    while len2:
        if len2 & 1:
            crc1 = _gf2_times(_zeros_operator(power), crc1)
        len2 >>= 1
        power += 1
    return crc1 ^ crc2
