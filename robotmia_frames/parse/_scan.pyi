# Type stub of the optional C scanner (robotmia_frames/parse/_scan.c); read through _native.py.
from typing_extensions import Buffer as _BufferLike

class Buffer:
    """Read-only memory of a scan result, owned by this object (buffer protocol)."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

# name, kind code, validity, values, text, item kind code, exact, item validity,
# item values (or text offsets), item text, then the per-value buffers of a
# column left to Python: rows, tags, ints, floats, text ends, raw ends, raw text.
# A sparse scan lays each column over its own values and always hands back rows.
_Column = tuple[
    str, int, Buffer, Buffer, Buffer, int, int, Buffer, Buffer, Buffer,
    Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer,
]  # fmt: skip

def scan(
    chunk: _BufferLike, wanted: list[str] | None = None, sparse: bool = False, /
) -> tuple[int, Buffer, Buffer, Buffer, Buffer, Buffer, list[_Column]] | None: ...
def cut(chunk: _BufferLike, start: int, n: int, /) -> int: ...
def trim() -> None: ...
def longest_probe(keys: list[str], /) -> int: ...
