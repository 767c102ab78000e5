"""Parsing a body while it downloads (``parse.BodyParser``), against the file read.

A body fed in pieces of any size (with a thrown-away attempt before it) gives the
batches the file read gives; over HTTP (the export emulator), a body parsed while
it downloads gives the table of the same lines read from a file, and a body cut
off after many of its lines were scanned is thrown away whole and fetched again:
every row once.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import parse
from robotmia_frames.emulator import Fault, iter_generated_events, write_export_file
from tests.conftest import SECRET, ServerFactory

pytestmark = pytest.mark.skipif(
    not parse.native_enabled(), reason="parsing while downloading needs the C scanner"
)

DAY = dt.date(2024, 5, 1)
NO_LIMIT = rf.RateLimit(per_hour=None, per_second=None, concurrent=None)


def summary(batches: list[parse.RawBatch]) -> list[Any]:
    return [
        (
            b.first_line,
            b.line_count,
            b.num_rows,
            b.event.to_pylist(),
            b.time.to_pylist(),
            {k: (c.kind, c.dense(b.num_rows).array.to_pylist()) for k, c in b.columns.items()},
            sorted(b.bad_lines),
        )
        for b in batches
    ]


line = st.one_of(
    st.builds(
        lambda e, t, v: orjson.dumps({"event": e, "properties": {"time": t, "v": v}}),
        st.sampled_from(["a", "b"]),
        st.integers(0, 10**9),
        st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5)),
    ),
    st.just(b""),
    st.just(b"{not json"),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(line, max_size=1200),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
    newline_at_end=st.booleans(),
)
def test_a_body_fed_in_pieces_parses_as_the_file(
    tmp_path: Path, lines: list[bytes], cuts: list[int], newline_at_end: bool
) -> None:
    body = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    path = tmp_path / "body.jsonl"
    path.write_bytes(body)
    want = summary(list(parse.read_raw_batches(path, source="b", on_bad_lines="skip")))
    stream = parse.BodyParser()
    stream.feed(b'{"event":"from an attempt thrown away"}\n' * 3)
    stream.restart()  # a second attempt: the first one's lines are gone
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    for a, b in itertools.pairwise(points):
        stream.feed(body[a:b])
    stream.finish()
    assert summary(list(stream.batches("b", "skip"))) == want


def test_a_bad_line_is_named_as_in_the_file(tmp_path: Path) -> None:
    body = b'{"event":"a","properties":{"time":1}}\n' * 700 + b"{oops\n"
    stream = parse.BodyParser()
    stream.feed(body)
    stream.finish()
    with pytest.raises(rf.ParseError, match="line 701"):
        list(stream.batches("window 2024-05-01", "error"))


def test_a_parsed_body_leaves_no_scan_for_the_garbage_collector() -> None:
    # The scans (the scanner's buffers, shared by the batches' arrays) go with the
    # last reference to them, not at a later run of the cycle collector: a read into
    # pandas frees each Arrow column as it converts it and must get that memory back.
    body = b'{"event":"a","properties":{"time":1,"s":"x"}}\n' * 40_000
    stream = parse.BodyParser()
    stream.feed(body)
    stream.finish()
    scans = [weakref.ref(c.scan) for c in stream._chunks]
    assert len(scans) > 1
    gc.disable()
    try:
        rows = sum(b.num_rows for b in stream.batches("b"))
        del stream
        alive = [ref for ref in scans if ref() is not None]
    finally:
        gc.enable()
    assert rows == 40_000
    assert alive == []


def day_events(n: int) -> list[dict[str, Any]]:
    return list(iter_generated_events(DAY, DAY, events_per_day=n, seed=3, conflict_rate=0.0))


def kw(url: str, **more: Any) -> dict[str, Any]:
    return dict(
        api_secret=SECRET,
        project_timezone="UTC",
        base_url=url,
        progress=False,
        retry_backoff=0,
        rate_limit=NO_LIMIT,
        **more,
    )


def test_a_body_parsed_while_downloading_reads_as_the_file(
    server: ServerFactory, tmp_path: Path
) -> None:
    events = day_events(6000)
    srv = server(events, project_timezone="UTC")
    got = rf.read_robotmia_export(DAY, DAY, return_type="arrow", **kw(srv.url))
    path = tmp_path / "day.jsonl.gz"
    write_export_file(path, events)
    want = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert got.num_rows == len(events)
    assert got.schema == want.schema
    assert got.equals(want)


@pytest.mark.parametrize("how", ["truncate", "reset", "terminated early"])
def test_a_body_cut_off_while_parsing_is_fetched_again_whole(
    server: ServerFactory, how: str
) -> None:
    """The first try stops after 400 kB of gzip, or ends with the server's
    "terminated early" line after half the rows (thousands of lines already fed to
    the scanner): none of them is kept; the second try gives every row once."""
    events = day_events(12_000)
    srv = server(events, project_timezone="UTC")
    if how == "terminated early":
        fault = Fault(terminated_early=True, times=1)
    else:
        fault = Fault(truncate_at=400_000, times=1, reset=how == "reset")
    srv.add_fault(fault)
    table = rf.read_robotmia_export(DAY, DAY, return_type="arrow", max_retries=2, **kw(srv.url))
    tries = [r for r in srv.requests if r.path.startswith("/api/2.0/export")]
    assert len(tries) == 2 and tries[0].fault is not None and tries[1].fault is None
    assert tries[0].bytes_sent < tries[1].bytes_sent
    ids = Counter(table.column("properties.$insert_id").to_pylist())
    assert ids == Counter(e["properties"]["$insert_id"] for e in events)  # once each


def test_a_body_cut_off_on_every_try_gives_nothing(server: ServerFactory, tmp_path: Path) -> None:
    """A day whose every try is cut off fails whole, named; the dataset keeps no
    part of it, and the day before it (written already) stays."""
    events = day_events(3000) + list(
        iter_generated_events(
            DAY + dt.timedelta(days=1),
            DAY + dt.timedelta(days=1),
            events_per_day=12_000,
            seed=4,
            conflict_rate=0.0,
        )
    )
    srv = server(events, project_timezone="UTC")
    second = (DAY + dt.timedelta(days=1)).isoformat()
    srv.add_fault(
        Fault(truncate_at=300_000, times=10, match=lambda p: p.get("from_date") == second)
    )
    with pytest.raises(rf.IncompleteDownloadError, match="2024-05-02"):
        rf.export_to_parquet(
            tmp_path, DAY, DAY + dt.timedelta(days=1), window_days=1, max_retries=1, **kw(srv.url)
        )
    table = rf.read_parquet_dataset(tmp_path, return_type="arrow")
    assert table.num_rows == 3000
    assert {t.date() for t in table.column("time").to_pylist()} == {DAY}


def narrow_body(lines: int, first: int = 0) -> bytes:
    return b"".join(
        b'{"event":"e","properties":{"time":%d,"n":%d}}\n' % (first + i, i) for i in range(lines)
    )


def line_counts(batches: list[parse.RawBatch]) -> list[int]:
    return [b.line_count for b in batches]


def test_an_export_learns_its_chunk_size_from_its_first_body_only(tmp_path: Path) -> None:
    """The first body starts with small chunks and tells the export's width; the
    next bodies (parsed while downloading, or from disk) are cut in chunks of the
    learnt size from their first line, without learning again."""
    sizing = parse.ChunkRows()
    first = parse.BodyParser(batch_rows=sizing)
    first.feed(narrow_body(3000))
    first.finish()
    assert line_counts(list(first.batches("day 1"))) == [512, 2488]
    assert not sizing.learning
    learnt = sizing.rows
    assert learnt is not None and learnt > 3000  # two keys: the biggest chunks
    sizing.learnt(1000)  # as if the first body had been wide
    second = parse.BodyParser(batch_rows=sizing)
    second.feed(narrow_body(2500))
    second.finish()
    assert line_counts(list(second.batches("day 2"))) == [1000, 1000, 500]
    path = tmp_path / "day3.jsonl"
    path.write_bytes(narrow_body(2500))
    from_disk = parse.read_raw_batches(path, source="day 3", batch_rows=sizing)
    assert line_counts(list(from_disk)) == [1000, 1000, 500]
    assert sizing.rows == 1000 and not sizing.learning


def test_a_short_first_body_tells_the_width_with_all_its_lines(tmp_path: Path) -> None:
    """A first body shorter than the probe is learnt whole; one thrown away (a
    failed attempt) or without lines teaches nothing."""
    sizing = parse.ChunkRows()
    stream = parse.BodyParser(batch_rows=sizing)
    stream.feed(narrow_body(600))  # its first 512 lines are scanned and probed
    stream.restart()  # the attempt failed
    stream.finish()  # the next one had no lines
    assert sizing.learning
    stream.restart()
    stream.feed(narrow_body(300))
    stream.finish()
    assert line_counts(list(stream.batches("day 1"))) == [300]
    assert not sizing.learning and sizing.rows is not None
    disk = parse.ChunkRows()
    path = tmp_path / "short.jsonl"
    path.write_bytes(narrow_body(300))
    assert line_counts(list(parse.read_raw_batches(path, source="x", batch_rows=disk))) == [300]
    assert not disk.learning and disk.rows == sizing.rows
