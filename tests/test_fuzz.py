"""Fuzzing the body verifier (transport) and the parser with hypothesis.

Only the pinned errors may escape: the verifier's ``_Truncated`` and
``_NotAnExport`` (which the transport turns into a retry, then
:class:`IncompleteDownloadError` or :class:`APIError`), and from
:func:`robotmia_frames.read_export_file` :class:`ParseError` or
:class:`IncompleteDownloadError`. Never another exception, never a hang (an
alarm for a true hang; no timed deadline). Brief here (CI); longer runs:
``ROBOTMIA_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz.py`` and the coverage-guided
``benchmarks/fuzz_atheris.py``.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import signal
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robotmia_frames import read_export_file
from robotmia_frames.errors import IncompleteDownloadError, ParseError, RobotmiaWarning
from robotmia_frames.transport._verify import BodyVerifier as _BodyVerifier
from robotmia_frames.transport._verify import NotAnExport as _NotAnExport
from robotmia_frames.transport._verify import Truncated as _Truncated
from tests.strategies import events, json_values

FUZZ = settings(
    # ROBOTMIA_FUZZ_EXAMPLES=5000 for a longer run of the same properties.
    max_examples=int(os.environ.get("ROBOTMIA_FUZZ_EXAMPLES", "100")),
    deadline=None,  # no timed assert: no_hang() below guards against a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PINNED = (ParseError, IncompleteDownloadError)


@contextlib.contextmanager
def no_hang(seconds: int = 20) -> Iterator[None]:
    """Fail (instead of hanging the run) if the body takes more than ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"hang: more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def verify(data: bytes, cuts: list[int]) -> _BodyVerifier:
    """Feed ``data`` to a fresh verifier in chunks split at ``cuts``, then finish."""
    v = _BodyVerifier()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        v.feed(data[a:b])
    v.finish()
    return v


def accepted(data: bytes, cuts: list[int]) -> bool:
    with no_hang():
        try:
            verify(data, cuts)
        except (_Truncated, _NotAnExport):  # retried, then a public error
            return False
    return True


def read_bytes(data: bytes, suffix: str, on_bad_lines: str = "error") -> pa.Table | None:
    """``read_export_file`` over ``data``: the table, or None on a pinned error."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, f"fuzz{suffix}")
        path.write_bytes(data)
        with no_hang(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RobotmiaWarning)
            try:
                table = read_export_file(
                    path, project_timezone="UTC", return_type="arrow", on_bad_lines=on_bad_lines
                )
            except PINNED:
                return None
    assert isinstance(table, pa.Table)
    assert table.column_names[:2] == ["event", "time"]
    return table


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in lines)


cuts = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=6)


# ------------------------------------------------------------------ the body verifier


@FUZZ
@given(st.binary(max_size=4096), cuts)
@example(b"\x1f", [])
@example(b"\x1f\x8b", [1])
@example(b'{"event":"a"', [])
@example(b"terminated early", [3])
def test_verifier_arbitrary_bytes(data: bytes, cut_points: list[int]) -> None:
    # raises only _Truncated or _NotAnExport (which `accepted` swallows), and the
    # verdict does not depend on how the body arrived in pieces
    assert accepted(data, cut_points) == accepted(data, [])


@FUZZ
@given(st.binary(max_size=2048), cuts)
def test_verifier_arbitrary_bytes_after_gzip_magic(data: bytes, cut_points: list[int]) -> None:
    # Past the magic, every byte goes through the inflater's error paths; the verdict
    # does not depend on the chunking.
    body = b"\x1f\x8b\x08\x00" + data
    assert accepted(body, cut_points) == accepted(body, [])


@FUZZ
@given(events(), st.data())
def test_verifier_arbitrary_gzip_cut_points(
    lines: list[dict[str, Any]], data: st.DataObject
) -> None:
    payload = jsonl(lines)
    split = data.draw(st.integers(min_value=0, max_value=len(payload)), label="member split")
    members = [gzip.compress(payload[:split]), gzip.compress(payload[split:])]
    body = b"".join(members)
    chunking = data.draw(cuts, label="chunking")
    assert accepted(body, chunking)  # the whole body: complete
    cut = data.draw(st.integers(min_value=1, max_value=len(body) - 1), label="cut")
    if cut == len(members[0]):
        return  # exactly one whole member: a complete gzip body on its own
    assert not accepted(body[:cut], chunking)


@FUZZ
@given(st.binary(min_size=1, max_size=4096), st.integers(min_value=0), cuts)
def test_verifier_flipped_byte(payload: bytes, where: int, cut_points: list[int]) -> None:
    body = bytearray(gzip.compress(payload))
    i = where % len(body)
    body[i] ^= 0xFF
    # CRC32 and ISIZE guard the data: a flipped byte can only pass where gzip
    # ignores it (header fields such as MTIME, XFL, OS).
    if accepted(bytes(body), cut_points) and i >= 10:
        pytest.fail(f"a flipped byte at {i} of {len(body)} went unnoticed")


# ------------------------------------------------------------------ the parser


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".jsonl", ".jsonl.gz"]))
@example(b"\x1f\x8b", ".jsonl.gz")
@example(b"\x1f\x8b\x08\x00" + b"\x00" * 6, ".jsonl.gz")
@example(b'{"event":"a","properties":{"time":1e400}}\n', ".jsonl")
@example(b'{"properties":{"time":-1e300}}\n', ".jsonl")
@example(b"\xff\xfe\n{}\n", ".jsonl")
def test_parser_arbitrary_bytes(data: bytes, suffix: str) -> None:
    strict = read_bytes(data, suffix)  # a table, or one of the pinned errors
    lenient = read_bytes(data, suffix, "skip")
    if strict is not None:  # no bad line: skipping bad lines changes nothing
        assert lenient is not None and lenient.equals(strict)


@FUZZ
@given(st.binary(max_size=2048))
def test_parser_arbitrary_gzip_member(data: bytes) -> None:
    body = gzip.compress(data)
    table = read_bytes(body, ".jsonl.gz", "skip")
    assert table is not None  # a complete gzip stream: skip keeps every good line
    assert table.num_rows <= data.count(b"\n") + 1


@FUZZ
@given(st.binary(max_size=2048), cuts)
def test_verified_gzip_bodies_decompress_in_the_parser(data: bytes, chunking: list[int]) -> None:
    # Whatever the verifier passes, the parser can decompress (no IncompleteDownload
    # or corrupt-gzip error for a body the transport called complete).
    for body in (gzip.compress(data) + b"\x00" * 7, b"\x1f\x8b" + data):
        if not accepted(body, chunking):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "x.jsonl.gz")
            path.write_bytes(body)
            with no_hang():
                try:
                    read_export_file(path, project_timezone="UTC", on_bad_lines="skip")
                except IncompleteDownloadError as exc:
                    pytest.fail(f"verified body is incomplete to the parser: {exc}")


json_ish_line = st.one_of(
    events(max_events=1).map(lambda evs: json.dumps(evs[0]) if evs else "{}"),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"event": json_values, "properties": json_values}).map(json.dumps),
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "{", "}", "[]", "null", '{"properties":{"time":true}}', "terminated early"]
    ),
)


@st.composite
def mangled(draw: st.DrawFn) -> str:
    """A JSON line cut short or with one character replaced."""
    line = draw(json_ish_line)
    if not line:
        return line
    i = draw(st.integers(0, len(line) - 1))
    if draw(st.booleans()):
        return line[:i]
    return line[:i] + draw(st.characters()) + line[i + 1 :]


@FUZZ
@given(st.lists(st.one_of(json_ish_line, mangled()), max_size=8))
def test_parser_json_ish_lines(lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    strict = read_bytes(data, ".jsonl")
    skipped = read_bytes(data, ".jsonl", "skip")
    assert skipped is not None  # skip never fails on a plain file
    # skip == the lines that parse on their own, read together.
    good = [line for line in data.split(b"\n") if read_bytes(line + b"\n", ".jsonl") is not None]
    alone = read_bytes(b"\n".join(good) + b"\n" if good else b"", ".jsonl")
    assert alone is not None
    assert skipped.num_rows == alone.num_rows
    assert skipped.equals(alone)
    if strict is not None:
        assert strict.equals(skipped)
