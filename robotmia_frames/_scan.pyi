# Type stub of the optional C scanner (robotmia_frames/_scan.c).
from typing_extensions import Buffer

# name, kind code, validity, values, text, item kind code, exact, item validity,
# item values (or text offsets), item text, then the per-value buffers of a
# column left to Python: rows, tags, ints, floats, text ends, raw ends, raw text.
_Column = tuple[
    str, int, bytes, bytes, bytes, int, int, bytes, bytes, bytes,
    bytes, bytes, bytes, bytes, bytes, bytes, bytes,
]  # fmt: skip

def scan(
    chunk: Buffer, wanted: list[str] | None = None, /
) -> tuple[int, bytes, bytes, bytes, bytes, bytes, list[_Column]] | None: ...
def cut(chunk: Buffer, start: int, n: int, /) -> int: ...
