"""Differential, coverage-guided fuzzing of the C scanner (``_scan.c``).

Every chunk the scanner accepts must read exactly as the independent reference
(``tests/fuzz/reference.py``: ``json.loads`` and the type policy) says; a chunk
the reference refuses must be declined. The C code is fuzzed with coverage when
the extension is built with ``-fsanitize=fuzzer-no-link`` (``.ci/fuzz.sh`` does
that, with AddressSanitizer and UBSan, and loads it by path). Run::

    .ci/fuzz.sh 60                       # CI: 60 s from the seed corpus
    .ci/fuzz.sh 3600 /tmp/fuzz-corpus    # a long run, new inputs kept there
    python tests/fuzz/fuzz_scan.py --replay tests/fuzz/corpus   # no atheris needed

The first input byte picks a projection (``wanted``) and whether the chunk is
also cut with ``_scan.cut``; the rest is the chunk. Every chunk is scanned twice,
laid out over its rows and sparse (each key over its own values, at its rows):
both must read as the reference does, and the sparse one, laid out again over
the rows, must equal the other exactly (kinds, values, and the JSON text kept
for floats).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))


def _load_scanner() -> Any:
    """The scanner: the build named by ``ROBOTMIA_SCAN_SO`` (an instrumented one), or the package's."""
    path = os.environ.get("ROBOTMIA_SCAN_SO")
    if path:
        for name in ("robotmia_frames.parse._scan",):
            loader = importlib.machinery.ExtensionFileLoader(name, path)
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            assert spec is not None
            try:
                module = importlib.util.module_from_spec(spec)
            except ImportError:
                continue  # the module's own name differs (the package layout)
            loader.exec_module(module)
            sys.modules[name] = module
            return module
        raise ImportError(f"cannot load {path}")
    from robotmia_frames.parse import _scan

    return _scan


_scan = _load_scanner()

# The scanner's one Python reader (it uses the module loaded above).
import reference  # noqa: E402

from robotmia_frames.parse._native import from_scan, scan_chunk  # noqa: E402

_WANTED = [None, ["a"], ["a", "b", "x"], ["", "time", "b"]]


class Mismatch(AssertionError):
    """The scanner's reading differs from the reference's."""


def check(chunk: bytes, wanted: list[str] | None = None) -> bool:
    """Compare the scanner with the reference on one chunk, laid out over its rows
    and sparse; True if it was accepted."""
    keys = None if wanted is None else frozenset(wanted)
    got, sparse = scan_chunk(chunk, keys), scan_chunk(chunk, keys, sparse=True)
    if (got is None) != (sparse is None):
        raise Mismatch(f"declined {'dense' if got is None else 'sparse'} only: {chunk!r}")
    want = reference.expected(chunk, wanted)
    if got is None or sparse is None:
        return False
    batch = from_scan(got, 1, got.rows, "fuzz")
    compact = from_scan(sparse, 1, sparse.rows, "fuzz")
    if (batch is None) != (compact is None):
        raise Mismatch(f"decoded again {'dense' if batch is None else 'sparse'} only: {chunk!r}")
    if batch is None or compact is None:
        return False  # a column needs the exact decoding of the Python engine
    same_layout(batch, compact, chunk)
    if want is reference.MUST_DECLINE:
        raise Mismatch(f"accepted a chunk the reference refuses: {chunk!r}")
    if batch.num_rows != want["rows"]:
        raise Mismatch(f"rows {batch.num_rows} != {want['rows']}: {chunk!r}")
    if not reference.same(batch.event.to_pylist(), want["event"]):
        raise Mismatch(f"event {batch.event.to_pylist()} != {want['event']}: {chunk!r}")
    if not reference.same(batch.time.to_pylist(), want["time"]):
        raise Mismatch(f"time {batch.time.to_pylist()} != {want['time']}: {chunk!r}")
    if list(batch.columns) != list(want["columns"]):
        raise Mismatch(f"keys {list(batch.columns)} != {list(want['columns'])}: {chunk!r}")
    for key, values in want["columns"].items():
        have = batch.columns[key].array.to_pylist()
        if not reference.same(have, values):
            raise Mismatch(f"column {key!r}: {have!r} != {values!r}: {chunk!r}")
    return True


def same_layout(batch: Any, compact: Any, chunk: bytes) -> None:
    """The sparse scan's batch, laid out over its rows, is the other one."""
    n = batch.num_rows
    if compact.num_rows != n or list(compact.columns) != list(batch.columns):
        raise Mismatch(f"sparse rows or keys differ: {chunk!r}")
    if not (compact.event.equals(batch.event) and compact.time.equals(batch.time)):
        raise Mismatch(f"sparse event or time differ: {chunk!r}")
    for key, col in batch.columns.items():
        part = compact.columns[key]
        rows = part.rows.to_pylist()
        if (
            len(rows) != len(part.array)
            or rows != sorted(set(rows))
            or any(not 0 <= r < n for r in rows)
        ):
            raise Mismatch(f"sparse rows of {key!r} {rows}: {chunk!r}")
        whole = part.dense(n)
        texts = (col.text is None, whole.text is None)
        if (
            (whole.kind, whole.exact) != (col.kind, col.exact)
            or not whole.array.equals(col.array)
            or texts[0] != texts[1]
            or (col.text is not None and not col.text.equals(whole.text))
        ):
            raise Mismatch(f"sparse column {key!r} differs: {chunk!r}")


def check_cut(chunk: bytes, start: int, n: int) -> None:
    got = _scan.cut(chunk, start, n)
    if not 0 <= start <= len(chunk) or n <= 0:
        if got != -1:
            raise Mismatch(f"cut({start}, {n}) = {got} out of range")
        return
    pos, seen = start, 0
    while seen < n:
        nl = chunk.find(b"\n", pos)
        if nl < 0:
            break
        pos, seen = nl + 1, seen + 1
    want = pos if seen == n else -1 - seen
    if got != want:
        raise Mismatch(f"cut({chunk!r}, {start}, {n}) = {got}, not {want}")


def one_input(data: bytes) -> None:
    if not data:
        return
    flags, chunk = data[0], data[1:]
    check(chunk, _WANTED[flags & 3])
    if flags & 4:
        check_cut(chunk, (flags >> 3) % (len(chunk) + 2) - 1, 1 + (flags >> 5))


def replay(paths: list[str]) -> int:
    """Run every file under ``paths`` through :func:`one_input`; the number run."""
    count = 0
    for root in paths:
        files = sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]
        for f in files:
            if f.is_file():
                one_input(f.read_bytes())
                count += 1
    return count


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--replay":
        n = replay(sys.argv[2:])
        print(f"replayed {n} inputs through {_scan.__file__}: no mismatch")
        return
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
