"""Coverage-guided fuzzing of the body verifier and the parser with atheris (libFuzzer).

The long run of ``tests/test_fuzz.py`` (which runs briefly in CI). Only the pinned
errors may escape: the verifier's ``_Truncated``; from ``read_export_file``
``ParseError`` and ``IncompleteDownloadError``. Anything else is a crash: atheris
stops, prints the traceback and writes the input to ``crash-*``. A hang is caught
by libFuzzer's ``-timeout`` (seconds per input). Run::

    pip install atheris
    python benchmarks/fuzz_atheris.py verifier -runs=200000
    python benchmarks/fuzz_atheris.py parser -max_total_time=600 -timeout=20
    python benchmarks/fuzz_atheris.py gzip-parser -max_total_time=600 corpus_dir/

Targets:

- ``verifier``: the first input byte picks the chunk size; the rest is fed to
  ``_BodyVerifier`` (with or without a gzip header in front).
- ``parser``: the bytes as a ``.jsonl`` file, read with ``on_bad_lines`` error and skip.
- ``gzip-parser``: the bytes gzip-compressed (and cut at a point the first bytes
  pick), verified by the transport, then parsed: a body the verifier passes must
  never be incomplete to the parser.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

with atheris.instrument_imports(include=["robotmia_frames"]):
    from robotmia_frames import read_export_file
    from robotmia_frames.errors import IncompleteDownloadError, ParseError, RobotmiaWarning
    from robotmia_frames.transport._verify import BodyVerifier as _BodyVerifier
    from robotmia_frames.transport._verify import Truncated as _Truncated

warnings.simplefilter("ignore", RobotmiaWarning)
_TMP = Path(tempfile.mkdtemp(prefix="robotmia-fuzz-"))


def _verify(data: bytes, chunk: int) -> bool:
    v = _BodyVerifier()
    try:
        for i in range(0, len(data), chunk):
            v.feed(data[i : i + chunk])
        v.finish()
    except _Truncated:
        return False
    return True


def fuzz_verifier(data: bytes) -> None:
    if not data:
        return
    chunk = 1 + data[0] % 64
    body = data[1:]
    if data[0] & 0x80:
        body = b"\x1f\x8b\x08\x00" + body
    _verify(body, chunk)


def _parse(body: bytes, suffix: str, mode: str) -> None:
    path = _TMP / f"input{suffix}"
    path.write_bytes(body)
    with contextlib.suppress(ParseError, IncompleteDownloadError):
        read_export_file(path, project_timezone="UTC", return_type="arrow", on_bad_lines=mode)


def fuzz_parser(data: bytes) -> None:
    _parse(data, ".jsonl", "error")
    _parse(data, ".jsonl", "skip")


def fuzz_gzip_parser(data: bytes) -> None:
    if len(data) < 2:
        return
    body = gzip.compress(data[2:], compresslevel=1)
    cut = int.from_bytes(data[:2], "little") % (len(body) + 1)
    body = body[:cut] if data[0] & 1 else body
    if not _verify(body, 1 + data[1] % 512):
        return
    path = _TMP / "input.jsonl.gz"
    path.write_bytes(body)
    try:
        read_export_file(path, project_timezone="UTC", return_type="arrow", on_bad_lines="skip")
    except IncompleteDownloadError as exc:
        raise AssertionError(
            f"the verifier passed a body the parser finds incomplete: {exc}"
        ) from exc


TARGETS = {"verifier": fuzz_verifier, "parser": fuzz_parser, "gzip-parser": fuzz_gzip_parser}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
