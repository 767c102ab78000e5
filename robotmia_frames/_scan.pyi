# Type stub of the optional C scanner (robotmia_frames/_scan.c).

_Column = tuple[str, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]

def scan(
    lines: list[bytes], wanted: list[str] | None = None, /
) -> tuple[int, bytes, bytes, bytes, bytes, bytes, list[_Column]] | None: ...
