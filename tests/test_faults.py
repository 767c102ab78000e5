"""Fault injection through the public API: every fault ends in exactly the right rows
or in the pinned error after retries, and a failed window writes nothing anywhere.

"Exactly the right rows" is the multiset of ``$insert_id`` the server holds for the
range: nothing lost, nothing doubled. Retries are made fast with ``retry_backoff``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

import robotmia_frames as rf
from robotmia_frames import _pipeline, sinks
from robotmia_frames.emulator import ExportServer, Fault, RequestRecord
from tests.conftest import SECRET, ServerFactory, local_seconds, release_when, wait_until

START = dt.date(2024, 1, 1)
N_DAYS = 3
EXPORT_PATH = "/api/2.0/export/"


def days(n: int = N_DAYS) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def make_events(seed: int = 0, per_day: int = 150) -> list[dict[str, Any]]:
    return [
        {
            "event": ("open", "play", "stop")[i % 3],
            "properties": {
                "time": local_seconds(day, 97 * i + 3),
                "distinct_id": f"u{i % 11}",
                "$insert_id": f"{day.isoformat()}-{seed}-{i}",
                # not very compressible, so that bodies span many TCP segments
                "token": hashlib.sha256(f"{seed}-{day}-{i}".encode()).hexdigest() * 2,
                "i": i,
            },
        }
        for day in days()
        for i in range(per_day)
    ]


EVENTS = make_events()
ALL_IDS = Counter(e["properties"]["$insert_id"] for e in EVENTS)


def ids_of_day(day: dt.date, events: list[dict[str, Any]] = EVENTS) -> Counter[str]:
    prefix = day.isoformat()
    return Counter(
        e["properties"]["$insert_id"]
        for e in events
        if e["properties"]["$insert_id"].startswith(prefix)
    )


def read(srv: ExportServer, n_days: int = N_DAYS, **kw: Any) -> Any:
    kw.setdefault("api_secret", SECRET)
    kw.setdefault("project_timezone", "UTC")
    kw.setdefault("base_url", srv.url)
    kw.setdefault("retry_backoff", 0.01)
    kw.setdefault("max_retries", 3)
    kw.setdefault("progress", False)
    kw.setdefault("window_days", 1)  # faults here aim at one day's request
    last = START + dt.timedelta(days=n_days - 1)
    return rf.read_robotmia_export(START, last, **kw)


def exports(srv: ExportServer) -> list[RequestRecord]:
    return sorted(
        (r for r in srv.requests if r.path.startswith(EXPORT_PATH)), key=lambda r: r.started
    )


def ids(df: Any) -> Counter[str]:
    return Counter(df["properties.$insert_id"].tolist())


def for_day(day: dt.date) -> Any:
    iso = day.isoformat()
    return lambda params: params.get("from_date") == iso


def body_size(srv: ExportServer, **fault: Any) -> int:
    """The length on the wire of one clean day-1 answer (with ``fault``'s encoding)."""
    if fault:
        srv.add_fault(Fault(**fault))
    read(srv, 1)
    (record,) = exports(srv)
    srv.clear_requests()
    return record.bytes_sent


@pytest.fixture
def srv(server: ServerFactory) -> ExportServer:
    return server(EVENTS)


# ------------------------------------------------------------------ resets


@pytest.mark.parametrize("content_length", [False, True])
def test_reset_mid_body_then_success(srv: ExportServer, content_length: bool) -> None:
    full = body_size(srv, content_length=content_length)
    srv.add_fault(Fault(reset=True, content_length=content_length, times=2))
    df = read(srv, concurrency=1)
    assert ids(df) == ALL_IDS
    log = exports(srv)
    assert len(log) == N_DAYS + 2
    cut = [r for r in log if r.fault is not None]
    assert len(cut) == 2 and all(0 < r.bytes_sent < full for r in cut)  # truly mid-body


def test_reset_every_time_is_a_network_error(srv: ExportServer) -> None:
    srv.add_fault(Fault(reset=True, times=3))
    with pytest.raises(rf.NetworkError, match="2024-01-01") as info:
        read(srv, 1, max_retries=2)
    assert "3 attempts" in str(info.value)
    assert len(exports(srv)) == 3


# ------------------------------------------------------------------ cut bodies


@pytest.mark.parametrize("seed", range(6))
def test_gzip_body_cut_at_a_random_byte(srv: ExportServer, seed: int) -> None:
    full = body_size(srv)
    cut = random.Random(seed).randrange(1, full)
    srv.add_fault(Fault(truncate_at=cut, match=for_day(START)))
    assert ids(read(srv)) == ALL_IDS
    assert [r.bytes_sent for r in exports(srv) if r.fault] == [cut]


@pytest.mark.parametrize("seed", range(4))
def test_plain_body_with_content_length_cut_at_a_random_byte(srv: ExportServer, seed: int) -> None:
    full = body_size(srv, gzip=False, content_length=True)
    cut = random.Random(seed).randrange(1, full)
    srv.add_fault(Fault(truncate_at=cut, gzip=False, content_length=True, match=for_day(START)))
    assert ids(read(srv)) == ALL_IDS


@pytest.mark.parametrize("seed", range(4))
def test_plain_body_without_length_cut_inside_a_line(srv: ExportServer, seed: int) -> None:
    # Without gzip or Content-Length, only a partial last line shows the cut (a cut
    # exactly at a line end cannot be seen by anyone: that is what gzip is for).
    srv.add_fault(Fault(gzip=False))
    params = {"from_date": "2024-01-01", "to_date": "2024-01-01"}
    body = requests.get(srv.url, auth=(SECRET, ""), params=params, timeout=10).content
    srv.clear_requests()
    rng = random.Random(seed)
    cut = rng.randrange(1, len(body))
    while body[cut - 1 : cut] == b"\n":
        cut = rng.randrange(1, len(body))
    srv.add_fault(Fault(truncate_at=cut, gzip=False, match=for_day(START)))
    assert ids(read(srv)) == ALL_IDS


def test_cut_every_time_is_an_incomplete_download(srv: ExportServer) -> None:
    srv.add_fault(Fault(truncate_at=100, times=4))
    with pytest.raises(rf.IncompleteDownloadError, match="2024-01-01") as info:
        read(srv, 1)
    assert "4 attempts" in str(info.value)


# ------------------------------------------------------------------ terminated early


@pytest.mark.parametrize("gzip", [True, False])
def test_terminated_early_line_then_success(srv: ExportServer, gzip: bool) -> None:
    srv.add_fault(Fault(terminated_early=True, gzip=gzip, match=for_day(days()[1])))
    assert ids(read(srv)) == ALL_IDS
    assert len(exports(srv)) == N_DAYS + 1


def test_terminated_early_every_time(srv: ExportServer) -> None:
    srv.add_fault(Fault(terminated_early=True, times=2))
    with pytest.raises(rf.IncompleteDownloadError, match="terminated early"):
        read(srv, 1, max_retries=1)


# ------------------------------------------------------------------ slow first byte


def test_slow_first_byte_beyond_timeout_then_success(srv: ExportServer) -> None:
    # Day 1's first answer sends nothing until the test lets it go (after the read):
    # the client's read timeout, not a race with a delay, ends that attempt. The
    # timeout is generous for the other answers on a loaded machine.
    gate = threading.Event()
    srv.add_fault(Fault(hold=gate, match=for_day(START)))
    assert ids(read(srv, timeout=2)) == ALL_IDS
    gate.set()  # the held answer now finds its client gone, and is logged
    wait_until(lambda: len(exports(srv)) == N_DAYS + 1, "the held answer's log entry")
    day1 = [r for r in exports(srv) if r.params["from_date"] == "2024-01-01"]
    assert len(day1) == 2 and day1[0].fault is not None and day1[1].fault is None


def test_slow_first_byte_every_time_is_a_network_error(srv: ExportServer) -> None:
    srv.add_fault(Fault(hold=threading.Event(), times=2))  # never a byte
    with pytest.raises(rf.NetworkError, match="timeout=") as info:
        read(srv, 1, timeout=0.2, max_retries=1)
    assert "2 attempts" in str(info.value)


# ------------------------------------------------------------------ 5xx and 429


def test_5xx_burst_then_success(srv: ExportServer) -> None:
    for status in (500, 502, 503):
        srv.add_fault(Fault(status=status, match=for_day(START)))
    assert ids(read(srv)) == ALL_IDS
    assert [r.status for r in exports(srv) if r.params["from_date"] == "2024-01-01"] == [
        500,
        502,
        503,
        200,
    ]


def test_5xx_beyond_retries_is_an_api_error(srv: ExportServer) -> None:
    srv.add_fault(Fault(status=503, message="overloaded", times=4))
    with pytest.raises(rf.APIError) as info:
        read(srv, 1)
    assert info.value.status_code == 503 and info.value.server_message == "overloaded"
    assert "4 attempts" in str(info.value) and len(exports(srv)) == 4


def test_429_storm_across_workers(srv: ExportServer) -> None:
    srv.add_fault(Fault(status=429, retry_after=0.05, times=6))
    assert ids(read(srv, concurrency=3, max_retries=5)) == ALL_IDS
    statuses = Counter(r.status for r in exports(srv))
    assert statuses == {429: 6, 200: N_DAYS}


def test_429_storm_beyond_retries(srv: ExportServer) -> None:
    srv.add_fault(Fault(status=429, retry_after=0, times=10))
    with pytest.raises(rf.APIError) as info:
        read(srv, 1, max_retries=2)
    assert info.value.status_code == 429


# ------------------------------------------------------------------ Content-Encoding


@pytest.mark.parametrize(
    "fault",
    [
        Fault(content_encoding=""),  # gzip body, no header
        Fault(content_encoding="br"),  # gzip body, wrong header
        Fault(content_encoding="identity"),
        Fault(gzip=False, content_encoding="gzip"),  # plain body that claims gzip
        Fault(gzip=False),  # plain body, no header
    ],
    ids=["gzip-missing", "gzip-as-br", "gzip-as-identity", "plain-as-gzip", "plain"],
)
def test_wrong_or_missing_content_encoding(srv: ExportServer, fault: Fault) -> None:
    srv.add_fault(fault)
    assert ids(read(srv, 1, concurrency=1)) == ids_of_day(START)
    assert len(exports(srv)) == 1  # the body was right: nothing to retry


# ------------------------------------------------------------------ garbage


def test_garbage_with_gzip_magic_is_retried(srv: ExportServer) -> None:
    junk = b"\x1f\x8b\x08\x00" + random.Random(1).randbytes(5000)
    srv.add_fault(Fault(garbage=junk, match=for_day(START)))
    assert ids(read(srv)) == ALL_IDS


def test_garbage_every_time_is_an_incomplete_download(srv: ExportServer) -> None:
    junk = b"\x1f\x8b\x08\x00" + random.Random(2).randbytes(500)
    srv.add_fault(Fault(garbage=junk, times=2))
    with pytest.raises(rf.IncompleteDownloadError, match="corrupt gzip"):
        read(srv, 1, max_retries=1)


@pytest.mark.parametrize("seed", range(3))
def test_plain_garbage_is_a_parse_error(srv: ExportServer, seed: int) -> None:
    junk = random.Random(seed).randbytes(3000).replace(b"\x1f", b"x") + b"\n"
    srv.add_fault(Fault(garbage=junk, content_encoding=""))
    with pytest.raises(rf.ParseError, match="2024-01-01") as info:
        read(srv, 1)
    assert info.value.line_number >= 1


# ------------------------------------------------------------------ a 50 MB line


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def test_a_50_mb_single_line(server: ServerFactory) -> None:
    blob = "".join(chr(ord("a") + i % 26) for i in range(1000)) * 50_000  # 50 MB
    day = START
    events = [
        {"event": "small", "properties": {"time": local_seconds(day, 1), "$insert_id": "a"}},
        {
            "event": "huge",
            "properties": {"time": local_seconds(day, 2), "$insert_id": "b", "blob": blob},
        },
        {"event": "small", "properties": {"time": local_seconds(day, 3), "$insert_id": "c"}},
    ]
    srv = server(events)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (Linux)
        measured = True
    except OSError:
        measured = False
    start = _status_mib("VmRSS")
    table = read(srv, 1, return_type="arrow")
    peak = _status_mib("VmHWM") - start
    assert table["properties.$insert_id"].to_pylist() == ["a", "b", "c"]
    assert table["properties.blob"].to_pylist()[1] == blob
    if measured:
        # Server (serialize + gzip) and client (verify, parse, Arrow) together hold a
        # handful of copies of the line, never dozens.
        assert peak < 10 * 50
    del table, events, blob


# ------------------------------------------------------------------ failed windows write nothing


PERSISTENT_FAULTS = {
    "reset": Fault(reset=True, times=99),
    "cut": Fault(truncate_at=300, times=99),
    "terminated": Fault(terminated_early=True, times=99),
    "garbage": Fault(garbage=b"\x1f\x8b\x08\x00garbage", times=99),
    "slow": Fault(hold=threading.Event(), times=99),  # never a byte: the timeout ends it
    "503": Fault(status=503, times=99),
    "400": Fault(status=400, times=99),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("kind", sorted(PERSISTENT_FAULTS))
def test_failed_window_writes_nothing(server: ServerFactory, tmp_path: Path, kind: str) -> None:
    target, cache = tmp_path / "ds", tmp_path / "cache"
    kw: dict[str, Any] = dict(
        api_secret=SECRET, project_timezone="UTC", retry_backoff=0.01, max_retries=1,
        timeout=2, progress=False, window_days=1,
    )  # fmt: skip
    old = server(make_events(seed=1, per_day=40))
    rf.export_to_parquet(target, START, days()[-1], base_url=old.url, cache_dir=cache, **kw)
    before, cache_before = _snapshot(target), _snapshot(cache)
    day2 = days()[1]
    new_events = make_events(seed=2, per_day=60)
    new = server(new_events)
    fault = PERSISTENT_FAULTS[kind]
    new.add_fault(Fault(**{**fault.__dict__, "match": for_day(day2)}))
    with pytest.raises(rf.RobotmiaError, match=day2.isoformat()):
        rf.export_to_parquet(
            target, START, days()[-1], base_url=new.url, cache_dir=cache, refresh=True,
            concurrency=1, **kw,
        )  # fmt: skip
    after = _snapshot(target)
    # Day 2 (failed) and day 3 (after it) are byte for byte what they were.
    for day in days()[1:]:
        prefix = f"date={day.isoformat()}/"
        old_files = {k: v for k, v in before.items() if k.startswith(prefix)}
        assert old_files and {k: v for k, v in after.items() if k.startswith(prefix)} == old_files
    # No staging or temporary file is left anywhere.
    assert not [k for k in after if any(p.startswith(".") for p in Path(k).parts)]
    assert not list(tmp_path.glob(".*staging*")) or not any(tmp_path.glob(".*staging*/*"))
    # The cache still holds the old day 2 body, and the manifest vouches for it alone.
    cache_after = _snapshot(cache)
    assert not [k for k in cache_after if ".part" in k]
    manifest = json.loads(cache_after.pop("manifest.json"))
    cache_before.pop("manifest.json")
    day2_files = [k for k in cache_after if k.startswith(day2.isoformat())]
    assert [cache_after[k] for k in day2_files] == [cache_before[k] for k in day2_files]
    assert len(day2_files) == 1
    assert [e["bytes"] for e in manifest.values() if e["window"] == day2.isoformat()] == [
        len(cache_after[day2_files[0]])
    ]
    # The dataset still reads: day 1 is old or new, whole; days 2 and 3 are old.
    back = rf.read_parquet_dataset(target, return_type="arrow")
    got = Counter(back["properties.$insert_id"].to_pylist())
    old_ids = Counter(e["properties"]["$insert_id"] for e in make_events(seed=1, per_day=40))
    day1_new = ids_of_day(START, new_events)
    expect_old = old_ids
    expect_new = (old_ids - ids_of_day(START, make_events(seed=1, per_day=40))) + day1_new
    assert got in (expect_old, expect_new)


def test_failed_sync_keeps_its_state(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(EVENTS)
    kw: dict[str, Any] = dict(
        api_secret=SECRET, project_timezone="UTC", base_url=srv.url, retry_backoff=0.01,
        max_retries=1, progress=False, window_days=1,
    )  # fmt: skip
    rf.sync_to_parquet(tmp_path, from_date=START, to_date=days()[1], **kw)
    state = _pipeline.dataset_state(sinks.locate(tmp_path))
    assert state.done_through(START) == days()[1]
    srv.add_fault(Fault(status=500, times=99, match=for_day(days()[2])))
    with pytest.raises(rf.APIError, match="2024-01-03"):
        rf.sync_to_parquet(tmp_path, from_date=START, to_date=days()[2], **kw)
    after = _pipeline.dataset_state(sinks.locate(tmp_path))
    # the days re-written before the failure are newer; what counts as done is not
    assert after.complete == state.complete
    assert after.done_through(START) == days()[1]


def test_a_retry_after_wait_within_the_cap_shows_in_progress(server: ServerFactory) -> None:
    """A server's ``Retry-After`` (within ``max_retry_after``) pauses every download, and
    the progress updates (the bar's ``wait`` too) say how long is left."""
    srv = server(make_events())
    d1, d2 = days(2)
    # Day 1's answer goes out once the client's limiter is paused by day 2's 429: every
    # update of day 1 then comes during the wait, however slow the machine.
    gate = threading.Event()
    limiter = rf.RateLimiter(rf.RateLimit(per_hour=None, per_second=None, concurrent=None))
    srv.add_fault(Fault(hold=gate, match=for_day(d1)))
    srv.add_fault(Fault(status=429, retry_after=5, times=1, match=for_day(d2)))
    release_when(lambda: limiter.expected_wait() > 0, gate)
    updates: list[rf.ProgressUpdate] = []
    df = read(srv, 2, concurrency=2, retry_backoff=0.0, rate_limit=limiter, progress=updates.append)
    assert len(df) == 2 * 150
    waits = [u.expected_wait for u in updates]
    assert 0 < waits[0] <= 5, waits  # day 1 came in while day 2 waited out its Retry-After
    assert waits[-1] < waits[0]
