# Type stub of the optional C scanner (robotmia_frames/_scan.c).
from typing_extensions import Buffer

_Column = tuple[str, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, int]

def scan(
    chunk: Buffer, wanted: list[str] | None = None, /
) -> tuple[int, bytes, bytes, bytes, bytes, bytes, list[_Column]] | None: ...
def cut(chunk: Buffer, start: int, n: int, /) -> int: ...
