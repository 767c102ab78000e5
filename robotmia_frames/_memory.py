"""The memory a read may take: what this process holds and what the system (or
its container) still has, and the budget ``max_memory`` gives from them.

Example:
    >>> budget, note, base = budget_of(1 << 30)
    >>> budget, note
    (1073741824, 'max_memory=1,073,741,824 bytes')
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import Any, Literal

__all__ = ["MEMORY_SHARE", "available_memory", "budget_of", "current_memory", "size_text"]

#: The share of the available memory a read may use by default (``max_memory="auto"``).
MEMORY_SHARE = 0.5


def _read_int(path: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        text = Path(path).read_text().split()[0]
        return None if text == "max" else int(text)
    return None


def available_memory() -> int | None:
    """Bytes of memory this process can still use: the system's available memory
    (``psutil`` if installed, else ``MemAvailable`` of ``/proc/meminfo``), capped by
    the room left under a cgroup limit (containers); None when unknown.

    Example:
        >>> m = available_memory()
        >>> m is None or m > 0
        True
    """
    found: list[int] = []
    try:
        psutil: Any = importlib.import_module("psutil")
        found.append(int(psutil.virtual_memory().available))
    except ImportError:
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:
            found.append(max(0, limit - usage))
            break
    return min(found) if found else None


def current_memory() -> int:
    """The resident memory of this process now, in bytes (0 when unknown).

    Example:
        >>> current_memory() >= 0
        True
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    try:
        psutil: Any = importlib.import_module("psutil")
        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return 0


def size_text(n: float) -> str:
    """``n`` bytes as a message shows them.

    Example:
        >>> size_text(1_500_000)
        '1.5 MB'
    """
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover


def budget_of(max_memory: int | Literal["auto"] | None) -> tuple[int | None, str, int]:
    """The budget of this process for a checked ``max_memory``, what the messages
    call it, and this process's memory now (which the budget counts from)."""
    base = current_memory()
    if max_memory != "auto":
        return max_memory, "" if max_memory is None else f"max_memory={max_memory:,} bytes", base
    avail = available_memory()
    if avail is None:
        return None, "", base
    note = (
        f"max_memory='auto': this process's {size_text(base)} and "
        f"{MEMORY_SHARE:.0%} of the {size_text(avail)} available"
    )
    return base + int(avail * MEMORY_SHARE), note, base
