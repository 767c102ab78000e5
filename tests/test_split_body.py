"""A multi-day body cut into one body per day (``split_body``, ``split_body_files``,
``DaySplitter`` fed as a body downloads).

Each day's body holds the lines whose row falls on that day (its raw ``time``, as
``day_numbers`` reads it), in body order; a blank or malformed line goes with the
row before it (the first day before any row). Checked against a line-by-line
reference, on small bodies (Hypothesis), on bodies fed in random pieces and cut
into chunks of a few bytes (so that runs, chunks the scanner reads and chunks read
line by line meet at every boundary), and on one longer than a chunk with
malformed lines either side of the chunk boundaries.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import math
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robotmia_frames import parse
from robotmia_frames._pipeline import split_body
from robotmia_frames._pipeline._split import DaySplitter, split_body_files

FIRST = dt.date(1970, 1, 2)
DAYS = 3


def reference(lines: list[bytes], days: int = DAYS) -> list[list[bytes]]:
    """Each line's day, one line at a time (what a one-day request would hold)."""
    out: list[list[bytes]] = [[] for _ in range(days)]
    day = 0
    base = (FIRST - dt.date(1970, 1, 1)).days
    for line in lines:
        try:
            obj = orjson.loads(line) if line.strip() else None
        except orjson.JSONDecodeError:
            obj = None
        props = obj.get("properties", {}) if type(obj) is dict else None
        if type(obj) is dict and (props is None or type(props) is dict):
            t = (props or {}).get("time")
            d = math.floor(t / 86400) - base if isinstance(t, int) else 0
            day = d if 0 <= d < days else 0
        out[day].append(line)
    return out


def row(t: int | None) -> bytes:
    props = {} if t is None else {"time": t}
    return orjson.dumps({"event": "e", "properties": props})


_LINE = st.one_of(
    st.integers(0, 5 * 86400).map(row),  # a day before, in or after the window
    st.just(row(None)),
    st.sampled_from([b"", b"  ", b"{bad", b"[1]", b'{"event":"e","properties":3}']),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINE, max_size=40))
def test_split_body_matches_line_by_line(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "w.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    last = FIRST + dt.timedelta(days=DAYS - 1)
    got = [gzip.decompress(b).splitlines() for b in split_body(path, "w", FIRST, last)]
    assert got == reference(lines)


def split_in_pieces(
    body: bytes, cuts: list[int], given_up: bytes = b"", **options: Any
) -> tuple[DaySplitter, list[bytes]]:
    """``body`` fed to a splitter into memory (``options``: the splitter's) in the
    pieces ``cuts`` make, after an attempt that fed ``given_up`` and was restarted."""
    outs: list[io.BytesIO] = []

    def opener() -> list[io.BytesIO]:
        outs[:] = [io.BytesIO() for _ in range(DAYS)]
        return list(outs)

    splitter = DaySplitter(FIRST, DAYS, "s", opener, "w", **options)  # type: ignore[arg-type]
    splitter.restart()
    if given_up:
        splitter.feed(given_up)
        splitter.restart()
    at = 0
    for cut in [*sorted(cuts), len(body)]:
        if cut > at:
            splitter.feed(body[at:cut])
            at = cut
    splitter.finish()
    return splitter, [o.getvalue() for o in outs]


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_LINE, max_size=60),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    chunk_bytes=st.integers(1, 400),
    compress=st.booleans(),
    end_newline=st.booleans(),
)
def test_splitter_fed_in_pieces_matches_line_by_line(
    lines: list[bytes], cuts: list[int], chunk_bytes: int, compress: bool, end_newline: bool
) -> None:
    body = b"\n".join(lines) + (b"\n" if end_newline and lines else b"")
    given_up = b'{"event":"e","properties":{"time":86400}}\n{bad\n'  # an attempt given up
    _, got = split_in_pieces(body, cuts, given_up, compress=compress, chunk_bytes=chunk_bytes)
    if compress:
        got = [gzip.decompress(b) for b in got]
    read = body.split(b"\n")  # the body's lines, as a reader of it sees them
    if not read[-1]:
        read.pop()
    assert [b.splitlines() for b in got] == reference(read)
    assert all(not b or b.endswith(b"\n") for b in got)  # every day ends with a whole line


def test_split_body_files_across_chunks(tmp_path: Path) -> None:
    n = 1024
    base = (FIRST - dt.date(1970, 1, 1)).days * 86400
    lines = [row(base + (i * 3 * 86400) // (2 * n + 50)) for i in range(2 * n + 50)]
    size = sum(len(line) + 1 for line in lines[:n])  # the first chunk: n lines
    for at in (n - 2, n - 1, n, n + 1, 2 * n):  # malformed and blank lines at the boundaries
        lines[at] = b"{bad" if at % 2 else b""
    path = tmp_path / "w.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))  # no newline at the end
    last = FIRST + dt.timedelta(days=DAYS - 1)
    want = reference(lines)
    assert all(want)  # every day has lines
    paths = split_body_files(path, "w", FIRST, last, tmp_path / "days")
    assert [p.name for p in paths] == [
        f"{(FIRST + dt.timedelta(days=i)).isoformat()}.jsonl" for i in range(DAYS)
    ]
    assert [p.read_bytes().splitlines() for p in paths] == want
    splitter = DaySplitter.to_files(FIRST, last, tmp_path / "small", "s", "w")
    splitter.chunk_bytes = size
    splitter.read(path)
    assert [p.read_bytes().splitlines() for p in splitter.paths] == want
    splitter.discard()
    assert not any(p.exists() for p in splitter.paths)


def test_day_files_of_a_body_out_of_order_read_whole(tmp_path: Path) -> None:
    """A day met again after a later one (untimed events at the end, a body out of
    order) is appended to its file; the library's reader (and
    ``export_to_parquet``'s day parse) reads it in body order."""
    base = (FIRST - dt.date(1970, 1, 1)).days * 86400
    times = [base + 5, base + 86400, base + 10, base + 2 * 86400, base + 86401, None, None]
    lines = [row(t) for t in times]
    path = tmp_path / "w.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    last = FIRST + dt.timedelta(days=DAYS - 1)
    paths = split_body_files(path, "w", FIRST, last, tmp_path / "days")
    read = [
        [line for _, chunk in parse.iter_line_chunks(p, label=p.name) for line in chunk]
        for p in paths
    ]
    assert read == reference(lines)
    assert read[0] == [lines[0], lines[2], lines[5], lines[6]]
    rows = [sum(b.num_rows for b in parse.read_raw_batches(p, source=p.name)) for p in paths]
    assert rows == [4, 2, 1]  # the scanner's read (C where built) too


def accepted(splitter: DaySplitter, outs: list[bytes], tmp_path: Path) -> bool:
    """Whether a cut by bisection stands: no day met twice, and each day's output,
    parsed, holds only that day's rows (``holds_only``), as the dataset write checks."""
    if not splitter.exact and not splitter.ordered:
        return False
    for i, data in enumerate(outs):
        p = tmp_path / f"day{i}.jsonl"
        p.write_bytes(data)
        batches = list(parse.read_raw_batches(p, source=p.name, on_bad_lines="skip"))
        if not splitter.holds_only(i, batches):
            return False
    return True


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_LINE, max_size=60),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
)
# a line whose properties are not an object goes with the row before it, in a
# later day than the first, where bisection reads it as the first day's
@example(lines=[row(172800), b'{"event":"e","properties":3}'], cuts=[])
@example(lines=[row(90000), row(172800), b"{bad", b'{"event":"e","properties":3}'], cuts=[50])
def test_a_cut_by_bisection_that_stands_is_the_exact_cut(
    tmp_path: Path, lines: list[bytes], cuts: list[int]
) -> None:
    """Any body, in or out of order, with blank and malformed lines: when the
    bisection's cut passes the checks, every day holds exactly its lines."""
    body = b"".join(line + b"\n" for line in lines)
    splitter, outs = split_in_pieces(body, cuts, exact=False)
    if accepted(splitter, outs, tmp_path):
        assert [o.splitlines() for o in outs] == reference(lines)


_SORTED = st.lists(st.integers(0, 3 * 86400 - 1), max_size=300).map(sorted)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(times=_SORTED, cuts=st.lists(st.integers(0, 30000), max_size=8), bad=st.data())
def test_a_body_in_day_order_is_cut_by_bisection(
    tmp_path: Path, times: list[int], cuts: list[int], bad: st.DataObject
) -> None:
    """A body in day order (malformed lines inside a day's run too) is cut by
    bisection, and its cut stands: no row's time is read to cut it."""
    base = (FIRST - dt.date(1970, 1, 1)).days * 86400
    lines = [row(base + t) for t in times]
    for at in bad.draw(st.lists(st.integers(1, max(1, len(lines) - 1)), max_size=3)):
        if (
            0 < at < len(lines)
            and lines[at - 1] != b"{bad"
            and times[at - 1] // 86400 == times[at] // 86400
        ):
            lines[at] = b"{bad"  # in the middle of a day: it goes with the row before
    body = b"".join(line + b"\n" for line in lines)
    splitter, outs = split_in_pieces(body, cuts, exact=False)
    if parse.native_enabled():
        assert accepted(splitter, outs, tmp_path)
    assert [o.splitlines() for o in outs] == reference(lines)


def test_a_row_out_of_order_inside_a_day_is_caught(tmp_path: Path) -> None:
    """A row of the first day amid the third day's rows: the bisection, which takes
    the body to be in order, misplaces rows without meeting a day twice, and the
    check of the days' rows refuses its cut (the write then cuts the body exactly)."""
    base = (FIRST - dt.date(1970, 1, 1)).days * 86400
    times = [base + 1, base + 86401, *(base + 2 * 86400 + i for i in range(40))]
    times.insert(4, base + 2)  # the second line of the third day's run
    lines = [row(t) for t in times]
    body = b"".join(line + b"\n" for line in lines)
    splitter, outs = split_in_pieces(body, [], exact=False)
    if not parse.native_enabled():
        return
    assert splitter.ordered
    assert [o.splitlines() for o in outs] != reference(lines)
    assert not accepted(splitter, outs, tmp_path)
    exact, exact_outs = split_in_pieces(body, [], exact=True)
    assert [o.splitlines() for o in exact_outs] == reference(lines)
    assert accepted(exact, exact_outs, tmp_path)
