"""Body verification while it streams: gzip trailers, the "terminated early" marker."""

from __future__ import annotations

import json
import zlib
from typing import Any, Protocol

from .._zlib import zlib as _zlib

#: Size of one raw read from the socket and of one bounded decompression step.
CHUNK_SIZE = 1 << 20
#: Decompressed bytes kept to inspect the last line (a longer line is data, not a marker).
_TAIL_LIMIT = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_TERMINATED_EARLY = b"terminated early"

# --------------------------------------------------------------------------- body verification


class Truncated(Exception):
    """The body is incomplete or corrupt; retryable."""


class NotAnExport(Exception):
    """A complete body that is not an export: an HTML page or a JSON error object.

    ``server_message`` is the ``error`` of a JSON error object, if any.
    """

    def __init__(self, reason: str, server_message: str | None = None) -> None:
        super().__init__(reason)
        self.server_message = server_message


class BodyTap(Protocol):
    """Told a body's bytes, inflated, as they arrive (to parse while downloading).

    ``restart`` comes before each attempt: what an earlier attempt fed is thrown
    away. Nothing fed is complete until the download returns: the body may still
    fail verification (and be retried or given up)."""

    def restart(self) -> None: ...

    def feed(self, data: bytes) -> None: ...


class BodyVerifier:
    """Checks a body chunk by chunk: gzip members to their trailers, then the last line.

    Decompressed output is handed to ``tap`` (if any), else thrown away, except a
    tail used to look at the last line.
    """

    def __init__(self, tap: BodyTap | None = None) -> None:
        self._tap = tap
        self.compressed: bool | None = None
        self._head = b""
        self._inflater: Any = None
        self._state = "member"  # gzip: "member" | "between" | "padding"
        self._tail = b""
        self._tail_seen = 0  # total bytes passed through the tail
        self._first = b""  # the start of the decompressed body, to tell what it is

    def feed(self, data: bytes) -> None:
        if self.compressed is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self.compressed = data.startswith(_GZIP_MAGIC)
            if self.compressed:
                self._inflater = _zlib.decompressobj(wbits=31)
        if self.compressed:
            self._inflate(data)
        else:
            self._keep(data)

    def _inflate(self, data: bytes) -> None:
        while data:
            if self._state == "padding":
                if data.strip(b"\x00"):
                    raise Truncated("non-zero bytes after the gzip padding")
                return
            if self._state == "between":
                if data[0] == 0:
                    self._state = "padding"
                    continue
                if data[0] != _GZIP_MAGIC[0]:
                    raise Truncated("corrupt gzip data (bytes after a member are not a member)")
                self._inflater = _zlib.decompressobj(wbits=31)
                self._state = "member"
            inflater = self._inflater
            assert inflater is not None
            try:
                while True:
                    out = inflater.decompress(data, CHUNK_SIZE)
                    self._keep(out)
                    data = inflater.unconsumed_tail
                    if inflater.eof or (not data and len(out) < CHUNK_SIZE):
                        break
            except (zlib.error, _zlib.error) as exc:
                raise Truncated(f"corrupt gzip data ({exc})") from exc
            if not inflater.eof:
                return
            self._state = "between"
            data = inflater.unused_data

    def _keep(self, out: bytes) -> None:
        if out and self._tap is not None:
            self._tap.feed(out)
        if out and len(self._first) < _TAIL_LIMIT:
            self._first += out[: _TAIL_LIMIT - len(self._first)]
        if out:
            if len(out) >= _TAIL_LIMIT:  # the tail is all in out: copy only that
                self._tail = out[-_TAIL_LIMIT:]
            else:
                self._tail = (self._tail + out)[-_TAIL_LIMIT:]
            self._tail_seen += len(out)

    def finish(self) -> None:
        """Raise :class:`Truncated` unless the body is complete."""
        if self.compressed is None:
            if self._head == _GZIP_MAGIC[:1]:
                raise Truncated("the gzip body ended after one byte")
            self.compressed = False
            self._keep(self._head)
            self._head = b""
        if self.compressed:
            inflater = self._inflater
            assert inflater is not None
            if self._state == "member":
                try:
                    self._keep(inflater.flush())
                except (zlib.error, _zlib.error) as exc:  # pragma: no cover - rarely
                    raise Truncated(f"corrupt gzip data ({exc})") from exc
                if not inflater.eof:
                    raise Truncated("the gzip stream ended before its trailer")
        self._check_first_line()
        line = self._last_line()
        if line is None or _is_json_object(line):
            return
        shown = line[:200].decode("utf-8", "replace")
        if _TERMINATED_EARLY in line.lower():
            raise Truncated(f"the server terminated the export early ({shown!r})")
        if line.startswith(b"{") and not self._tail.endswith(b"\n"):
            # Every line of an export ends with a newline: a body that stops inside
            # what starts as an export line but is not a whole JSON object was cut off
            # (a plain body without Content-Length has no other sign of it).
            raise Truncated(f"the body ends in the middle of a line ({shown[-80:]!r})")

    def _check_first_line(self) -> None:
        """Raise :class:`NotAnExport` if the body is an HTML page or a JSON error
        object (what proxies, captive portals and failing gateways answer with 200)."""
        head = self._first.lstrip(b"\xef\xbb\xbf \t\r\n")
        if head[:1] == b"<":
            shown = " ".join(head[:200].decode("utf-8", "replace").split())
            raise NotAnExport(f"the body is an HTML page, not an export ({shown[:80]!r})")
        line = head.split(b"\n", 1)[0].strip()
        if not line.startswith(b"{") or b'"error"' not in line:
            return
        try:
            obj = json.loads(line)
        except ValueError:
            return
        if (
            isinstance(obj, dict)
            and "error" in obj
            and "event" not in obj
            and "properties" not in obj
        ):
            message = obj["error"] if isinstance(obj["error"], str) else json.dumps(obj["error"])
            raise NotAnExport(
                f"the body is a JSON error object, not an export ({line[:200].decode('utf-8', 'replace')!r})",
                server_message=message,
            )

    def _last_line(self) -> bytes | None:
        text = self._tail.rstrip()
        if not text:
            return None
        cut = text.rfind(b"\n")
        if cut < 0 and self._tail_seen > len(self._tail):
            return None  # a line longer than the tail: data, not a marker
        return text[cut + 1 :].strip()


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
