"""Small durable-file helpers shared by the stages (no stage logic here)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable (POSIX); skipped where it can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(target: Path, *, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``target`` that replaces it when the block succeeds.

    The file is hidden (``.<name>.…``, or ``prefix``) on the same filesystem, so the
    ``rename`` is atomic; if the block fails, the file is removed and ``target`` is
    left as it was.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "out.txt")
        >>> with replacing(p) as tmp:
        ...     _ = tmp.write_text("done")
        >>> p.read_text(), [f.name for f in p.parent.iterdir()]
        ('done', ['out.txt'])
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}." if prefix is None else prefix, suffix=suffix, dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json_atomic(target: Path, payload: Any, *, prefix: str = ".tmp-") -> None:
    """Write ``payload`` as JSON to ``target``: temp file, fsync, rename.

    Example:
        >>> import tempfile, pathlib, json
        >>> p = pathlib.Path(tempfile.mkdtemp(), "state.json")
        >>> write_json_atomic(p, {"a": 1})
        >>> json.loads(p.read_text())
        {'a': 1}
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target, prefix=prefix, suffix="") as tmp, tmp.open("w") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
