"""The emulator's budget, virtual clock and hostile-body knobs, over a real loopback socket.

Virtual-clock tests never wait for real: the server's clock jumps instead.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.emulator import (
    HTML_PAGE,
    Budget,
    ExportServer,
    Fault,
    ServerStats,
    VirtualClock,
    hostile_lines,
)
from robotmia_frames.emulator._segments import crc32_combine, crc32_combine_py
from tests.conftest import wait_until

SECRET = "knobs-secret-5c1a"
AUTH = (SECRET, "")
D0 = datetime.date(2024, 3, 10)
T0 = (D0 - datetime.date(1970, 1, 1)).days * 86400
DAY1 = {"from_date": "2024-03-10", "to_date": "2024-03-10"}


def ev(name: str, t: float, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"time": t, "distinct_id": "u1", **props}}


EVENTS = [ev("a", T0 + 60 * i, n=i) for i in range(50)] + [
    ev("b", T0 + 86400 + 60 * i, n=i) for i in range(50)
]


def get(srv: ExportServer, params: dict[str, str] | None = None, **kw: Any) -> requests.Response:
    """One export request, body read (requests undoes the gzip)."""
    kw.setdefault("timeout", 10)
    return requests.get(srv.url, params=params or DAY1, auth=AUTH, **kw)


def raw_exchange(
    srv: ExportServer, params: str = "from_date=2024-03-10&to_date=2024-03-10"
) -> socket.socket:
    """A plain socket that sent one export GET; the caller reads the answer."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    token = base64.b64encode(f"{SECRET}:".encode()).decode()
    sock.sendall(
        f"GET /api/2.0/export/?{params} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {token}\r\n\r\n".encode()
    )
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers, and the body bytes already received after them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the headers"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def wait_logged(srv: ExportServer, n: int) -> None:
    """Block until the server logged ``n`` requests (the log entry ends a handler)."""
    wait_until(lambda: len(srv.requests) >= n, f"the server to log {n} requests")


@pytest.fixture
def vsrv() -> Iterator[ExportServer]:
    with ExportServer(
        EVENTS, api_secret=SECRET, budget=Budget(per_hour=60), clock=VirtualClock()
    ) as server:
        yield server


# --------------------------------------------------------------------------- budget


def test_hourly_budget_429_then_clock_jumps(vsrv: ExportServer) -> None:
    with requests.Session() as s:
        for _ in range(60):
            assert s.get(vsrv.url, params=DAY1, auth=AUTH, timeout=10).status_code == 200
        r = s.get(vsrv.url, params=DAY1, auth=AUTH, timeout=10)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "3600"
        assert "60 export queries an hour" in r.json()["error"]
        assert vsrv.clock.now() == 3600.0  # jumped by the wait it handed out
        again = s.get(vsrv.url, params=DAY1, auth=AUTH, timeout=10)
        assert again.status_code == 200
    last = vsrv.requests[-1]
    assert last.virtual_time == 3600.0 and last.throttled is None
    throttled = vsrv.requests[-2]
    assert (throttled.status, throttled.throttled, throttled.retry_after) == (
        429,
        "per_hour",
        3600.0,
    )
    stats = vsrv.stats()
    assert stats == ServerStats(
        requests=62,
        served=61,
        too_many=1,
        throttled=1,
        cache_hits=0,
        bytes_sent=stats.bytes_sent,
        virtual_elapsed=3600.0,
    )
    assert stats.api_hours == 1.0


def test_a_multi_hour_budget_runs_in_virtual_time(vsrv: ExportServer) -> None:
    """200 requests at 60 an hour, each 429 retried at once: 3 API-hours, no real waits."""
    served = 0
    with requests.Session() as s:
        while served < 200:
            r = s.get(vsrv.url, params=DAY1, auth=AUTH, timeout=10)
            assert r.status_code in (200, 429)
            served += r.status_code == 200
    starts = sorted({r.virtual_time for r in vsrv.requests if r.status == 200})
    assert starts == [0.0, 3600.0, 7200.0, 10800.0]
    stats = vsrv.stats()
    assert (stats.served, stats.throttled, stats.api_hours) == (200, 3, 3.0)
    per_hour = [sum(r.virtual_time == t for r in vsrv.requests if r.status == 200) for t in starts]
    assert per_hour == [60, 60, 60, 20]


def test_per_second_limit() -> None:
    with ExportServer(
        EVENTS, api_secret=SECRET, budget=Budget(per_second=3), clock=VirtualClock()
    ) as srv:
        codes = [get(srv).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert srv.requests[-1].throttled == "per_second"
        assert srv.requests[-1].retry_after == 1.0
        assert srv.clock.elapsed == 1.0
        assert get(srv).status_code == 200


def test_retry_after_scale_zero_keeps_the_virtual_wait_in_the_log() -> None:
    clock = VirtualClock(retry_after_scale=0)
    with ExportServer(EVENTS, api_secret=SECRET, budget=Budget(per_hour=1), clock=clock) as srv:
        assert get(srv).status_code == 200
        r = get(srv)
        assert (r.status_code, r.headers["Retry-After"]) == (429, "0")
        assert srv.requests[-1].retry_after == 3600.0
        assert clock.elapsed == 3600.0


def test_client_waits_on_the_shared_clock() -> None:
    """``advance_on_429=False``: the clock moves only when the client sleeps on it."""
    clock = VirtualClock(advance_on_429=False)
    with ExportServer(EVENTS, api_secret=SECRET, budget=Budget(per_hour=2), clock=clock) as srv:
        assert [get(srv).status_code for _ in range(2)] == [200, 200]
        r = get(srv)
        assert r.status_code == 429 and clock.elapsed == 0.0
        assert get(srv).status_code == 429  # waiting nothing does not help
        clock.sleep(float(r.headers["Retry-After"]) - 1)
        assert get(srv).status_code == 429
        clock.sleep(1)
        assert get(srv).status_code == 200
        assert srv.requests[-1].virtual_time == 3600.0


def test_concurrency_limit_does_not_move_the_clock() -> None:
    clock = VirtualClock()
    with ExportServer(EVENTS, api_secret=SECRET, budget=Budget(concurrent=1), clock=clock) as srv:
        srv.add_fault(Fault(endless=True))
        held = raw_exchange(srv)  # an endless answer: in flight until we close it
        try:
            head, _ = read_head(held)
            assert head.startswith(b"HTTP/1.0 200")
            r = get(srv)
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "1"
            assert "concurrent" in r.json()["error"]
            assert srv.requests[-1].throttled == "concurrent"
            assert clock.elapsed == 0.0
        finally:
            held.close()
        wait_logged(srv, 2)
        assert get(srv).status_code == 200


def test_budget_counts_authorized_exports_only() -> None:
    clock = VirtualClock()
    with ExportServer(
        EVENTS,
        api_secret=SECRET,
        budget=Budget(per_hour=1),
        clock=clock,
        generate_profiles=3,
    ) as srv:
        assert requests.get(srv.url, params=DAY1, auth=("wrong", ""), timeout=10).status_code == 401
        assert requests.get(srv.engage_url, auth=AUTH, timeout=10).status_code == 200
        srv.add_fault(Fault(status=503))
        assert get(srv).status_code == 503  # admitted: the fault is used up
        r = get(srv)
        assert r.status_code == 429
        assert srv.faults == []
        srv.add_fault(Fault(status=500))
        assert get(srv).status_code == 500  # the throttled request left the fault queued


def test_library_client_spends_the_budget_in_virtual_time() -> None:
    clock = VirtualClock(retry_after_scale=0)
    with ExportServer(EVENTS, api_secret=SECRET, budget=Budget(per_hour=1), clock=clock) as srv:
        table = rf.read_robotmia_export(
            "2024-03-10",
            "2024-03-11",
            base_url=srv.url,
            api_secret=SECRET,
            project_timezone="UTC",
            return_type="arrow",
            concurrency=1,
            rate_limit=rf.RateLimit(per_hour=None, per_second=None, concurrent=None),
            retry_backoff=0,
        )
        assert table.num_rows == 100
        windows = srv.windows()
        n = len(windows)
        assert {d for w in windows for d in (w[0], w[1])} <= {D0, D0 + datetime.timedelta(1)}
        assert srv.stats().throttled == n - 1
        assert clock.elapsed == 3600.0 * (n - 1)


def test_budget_and_clock_validation() -> None:
    with pytest.raises(ValueError, match="per_hour"):
        Budget(per_hour=0)
    with pytest.raises(ValueError, match="concurrent"):
        Budget(concurrent=True)
    with pytest.raises(ValueError, match="forward"):
        VirtualClock().advance(-1)
    with pytest.raises(ValueError, match="retry_after_scale"):
        VirtualClock(retry_after_scale=-1)


def test_default_clock_follows_real_time_without_jumps() -> None:
    with ExportServer(EVENTS, api_secret=SECRET, budget=Budget(per_hour=1)) as srv:
        assert get(srv).status_code == 200
        r = get(srv)
        assert r.status_code == 429
        # an hour less the real seconds since the first request (a slow machine may
        # take a few): the clock did not jump an hour
        assert 3000 < int(r.headers["Retry-After"]) <= 3600
        assert srv.clock.elapsed < 600


# --------------------------------------------------------------------------- records


def test_records_hold_the_window_and_windows_lists_them() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        params = {
            "from_date": "2024-03-10",
            "to_date": "2024-03-15",
            "event": '["a"]',
            "where": 'properties["n"] >= 10',
        }
        r = get(srv, params)
        assert r.status_code == 200
        rec = srv.requests[-1]
        assert (rec.from_date, rec.to_date, rec.days) == (D0, D0 + datetime.timedelta(5), 6)
        assert rec.event == ("a",) and rec.where == 'properties["n"] >= 10'
        assert rec.lines == 40 == len(r.text.splitlines())
        assert rec.bytes_sent > 0
        get(srv, {"from_date": "2024-03-10", "to_date": "nope"})
        bad = srv.requests[-1]
        assert (bad.status, bad.from_date, bad.to_date, bad.days) == (400, D0, None, None)
        assert srv.windows() == [(D0, D0 + datetime.timedelta(5))]


# --------------------------------------------------------------------------- faults


def test_fault_for_every_request_per_server() -> None:
    fault = Fault(status=503, retry_after=2, times=None)
    with ExportServer(EVENTS, api_secret=SECRET, faults=[fault]) as srv:
        assert [get(srv).status_code for _ in range(3)] == [503, 503, 503]
        assert srv.faults == [fault]
        srv.clear_faults()
        assert get(srv).status_code == 200


def test_permanent_fault_with_match_per_request() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault.html_page(times=None, match=lambda p: p["from_date"] == "2024-03-11"))
        day2 = {"from_date": "2024-03-11", "to_date": "2024-03-11"}
        assert [get(srv, day2).text for _ in range(2)] == [HTML_PAGE.decode()] * 2
        assert len(get(srv).text.splitlines()) == 50  # another day: data


@pytest.mark.parametrize("compress", [True, False])
def test_html_page_with_status_200(compress: bool) -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault.html_page(gzip=compress))
        with requests.get(srv.url, params=DAY1, auth=AUTH, stream=True, timeout=10) as r:
            raw = r.raw.read(decode_content=False)
            assert r.status_code == 200
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert r.headers.get("Content-Encoding") == ("gzip" if compress else None)
        assert (gzip.decompress(raw) if compress else raw) == HTML_PAGE


def test_json_error_body_with_status_200() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault.error_body("your plan allows no exports"))
        r = get(srv)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "application/json"
        assert r.json() == {"error": "your plan allows no exports"}
        assert get(srv).status_code == 200 and len(get(srv).text.splitlines()) == 50


def test_body_serves_given_lines_verbatim() -> None:
    lines = [b'{"event":"x","properties":{"time":1e400}}', b"not json at all", b"[1,2]"]
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault(body=b"\n".join(lines) + b"\n"))
        with requests.get(srv.url, params=DAY1, auth=AUTH, timeout=10) as r:
            assert r.content.splitlines() == lines


@pytest.mark.parametrize(
    ("value", "header"),
    [(100000, "100000"), (1e6, "1000000"), (1.5, "1.5"), ("Wed, 21 Oct 2099 07:28:00 GMT", None)],
)
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_any_value(value: float | str, header: str | None, status: int) -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault(status=status, retry_after=value))
        r = get(srv)
        assert r.status_code == status
        assert r.headers["Retry-After"] == (header if header is not None else value)
        assert "error" in r.json()


def test_trickle_sends_the_head_then_stalls() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        # one byte every 1000 s after the first 100: nothing more comes while the test runs
        srv.add_fault(Fault(trickle_rate=0.001, trickle_after=100, gzip=False))
        sock = raw_exchange(srv)
        try:
            _, body = read_head(sock)
            while len(body) < 100:
                chunk = sock.recv(65536)
                assert chunk
                body += chunk
            assert len(body) == 100  # exactly the fast part, then the trickle
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(65536)
            srv.stop()  # ends the trickling answer at once
        finally:
            sock.close()
        assert len(srv.requests) == 1
        assert srv.requests[0].error is not None  # it never finished the body


def test_trickled_body_arrives_whole() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        expected = get(srv).content
        srv.add_fault(Fault(trickle_rate=200_000, trickle_after=10))
        r = get(srv)
        assert r.content == expected
        assert srv.requests[-1].fault is not None and srv.requests[-1].error is None


def _read_endless(sock: socket.socket, want: int, compressed: bool) -> bytes:
    _, first = read_head(sock)
    inflate = zlib.decompressobj(31) if compressed else None
    out = b""
    data = first
    while len(out) < want:
        out += inflate.decompress(data) if inflate is not None else data
        assert inflate is None or not inflate.eof  # the gzip stream never ends
        data = sock.recv(1 << 16)
        assert data, "an endless body ended"
    return out


@pytest.mark.parametrize("compressed", [True, False])
def test_endless_body_sends_valid_lines_until_the_client_goes(compressed: bool) -> None:
    with ExportServer(EVENTS, api_secret=SECRET, gzip=compressed) as srv:
        srv.add_fault(Fault(endless=True))
        sock = raw_exchange(srv)
        try:
            text = _read_endless(sock, 5 << 20, compressed)
        finally:
            sock.close()
        lines = text.split(b"\n")[:-1]  # the last one may be cut
        assert len(lines) > 3000
        rows = [orjson.loads(line) for line in lines]
        assert [r["properties"]["n"] for r in rows[:50]] == list(range(50))  # the data first
        assert all(T0 <= r["properties"]["time"] < T0 + 86400 for r in rows)  # filler: that day
        wait_logged(srv, 1)
        rec = srv.requests[0]
        assert rec.error is not None and "disconnected" in rec.error
        assert rec.lines == 50 and rec.bytes_sent > 0


def test_endless_body_bounded_by_truncate_at() -> None:
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault(endless=True, truncate_at=300_000))
        with requests.get(srv.url, params=DAY1, auth=AUTH, stream=True, timeout=10) as r:
            raw = r.raw.read(decode_content=False)
        assert len(raw) == 300_000
        assert srv.requests[0].bytes_sent == 300_000


def test_stop_ends_answers_to_clients_that_stopped_reading() -> None:
    srv = ExportServer(EVENTS, api_secret=SECRET).start()
    srv.add_fault(Fault(endless=True))
    srv.add_fault(Fault(trickle_rate=1))
    stalled = [raw_exchange(srv), raw_exchange(srv)]  # neither reads: the writes block
    try:
        read_head(stalled[1])
        wait_until(lambda: len(srv.in_flight) == 2, "both answers to be under way")
        srv.stop()
        assert len(srv.requests) == 2  # both answers ended and were logged
        assert all(r.error is not None for r in srv.requests)
    finally:
        for sock in stalled:
            sock.close()
    srv.start()  # and it serves again
    try:
        assert get(srv).status_code == 200
    finally:
        srv.stop()


def test_a_held_answer_goes_out_when_its_event_is_set() -> None:
    gate = threading.Event()
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        srv.add_fault(Fault(hold=gate))
        answers: list[requests.Response] = []
        client = threading.Thread(target=lambda: answers.append(get(srv, timeout=60)))
        client.start()
        wait_until(lambda: srv.in_flight, "the request to arrive")
        assert srv.in_flight == [DAY1] and srv.requests == []  # arrived, held, not logged
        assert answers == []
        gate.set()
        client.join(60)
        assert [r.status_code for r in answers] == [200]
        assert len(answers[0].text.splitlines()) == 50
        assert srv.in_flight == [] and len(srv.requests) == 1


def test_stop_ends_a_held_answer() -> None:
    srv = ExportServer(EVENTS, api_secret=SECRET).start()
    srv.add_fault(Fault(hold=threading.Event()))  # never set
    sock = raw_exchange(srv, "from_date=2024-03-10&to_date=2024-03-10&api_secret=" + SECRET)
    try:
        wait_until(lambda: srv.in_flight, "the request to arrive")
        assert SECRET not in repr(srv.in_flight)
        srv.stop()
    finally:
        sock.close()
    (rec,) = srv.requests
    assert rec.error is not None and "stopping" in rec.error and rec.bytes_sent == 0
    assert srv.in_flight == []


def test_fault_validation_of_new_fields() -> None:
    for bad in (
        {"times": 0},
        {"trickle_rate": 0},
        {"trickle_after": -1},
        {"endless": True, "content_length": True},
        {"body": b"x", "raw_body": b"y"},
        {"endless": True, "garbage": b"x"},
        {"retry_after": -1},
        {"hold": True},
    ):
        with pytest.raises(ValueError, match="Fault"):
            Fault(**bad)
    with pytest.raises(TypeError, match="Fault"):
        ExportServer().add_fault("503")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- raw lines


def test_hostile_lines_are_valid_json_that_orjson_cannot_write() -> None:
    lines = hostile_lines("2024-03-10")
    assert len(lines) == 14
    for name, line in lines.items():
        if name.startswith("deep"):
            value = orjson.loads(line)  # 1000 deep: json.loads would hit the recursion limit
            assert value["properties"]["$insert_id"] == f"hostile-{name}"
            continue
        value = json.loads(line)
        assert value["properties"]["time"] == T0 + 12 * 3600
    assert json.loads(lines["big_int_event"])["event"] == 2**64
    assert json.loads(lines["inf_in_object"])["properties"]["o"]["x"] == float("inf")
    assert json.loads(lines["null_event"])["event"] is None
    assert b"[" * 1000 in lines["deep_list"] and b"[" * 1001 not in lines["deep_list"]


def test_raw_lines_served_verbatim_and_filtered() -> None:
    hostile = hostile_lines("2024-03-10")
    other_day = hostile_lines("2024-03-12")["inf_top"]
    events: list[dict[str, Any] | bytes] = [*EVENTS, *hostile.values(), other_day, b"not json"]
    with ExportServer(events, api_secret=SECRET) as srv:
        lines = get(srv).content.splitlines()
        assert set(hostile.values()) <= set(lines)  # every byte as given
        assert other_day not in lines  # read its time (1e400 via json), filtered by date
        assert lines[-1] == b"not json"  # no time: served for every range, last
        assert len(lines) == 50 + len(hostile) + 1
        names = get(srv, {**DAY1, "event": '["hostile"]'}).content.splitlines()
        assert hostile["big_int_event"] not in names and hostile["int_event"] not in names
        assert hostile["deep_list"] in names and hostile["inf_in_list"] in names
        assert srv.requests[-1].lines == 7


# --------------------------------------------------------------------------- body cache


def test_cache_serves_the_same_bytes_again() -> None:
    with ExportServer(
        generate={"events_per_day": 200}, api_secret=SECRET, cache_bodies=True
    ) as srv:
        params = {"from_date": "2024-01-01", "to_date": "2024-01-02"}
        first = get(srv, params).content
        second = get(srv, params).content
        assert first == second and len(first.splitlines()) == 400
        assert [r.cached for r in srv.requests] == [False, True]
        assert srv.requests[1].lines == 400
        get(srv, {**params, "event": '["Played song"]'})  # another query: not a hit
        assert srv.requests[-1].cached is False
        srv.add_fault(Fault(terminated_early=True))  # alters the content: never cached
        assert get(srv, params).text.endswith("terminated early\n")
        assert srv.requests[-1].cached is False
        assert get(srv, params).content == first
        assert srv.stats().cache_hits == 2


def test_warm_cache_then_faults_still_cut_the_cached_body() -> None:
    with ExportServer(generate={"events_per_day": 300}, api_secret=SECRET) as srv:
        size = srv.warm_cache("2024-01-01", "2024-01-03")
        assert size > 0 and srv.cache_bodies
        day = {"from_date": "2024-01-02", "to_date": "2024-01-02"}
        full = get(srv, day)
        assert srv.requests[-1].cached and len(full.text.splitlines()) == 300
        srv.add_fault(Fault(truncate_at=100))
        with requests.get(srv.url, params=day, auth=AUTH, stream=True, timeout=10) as r:
            assert len(r.raw.read(decode_content=False)) == 100
        assert srv.requests[-1].cached


def test_warmed_days_serve_any_range_as_one_gzip_stream() -> None:
    """A range of warmed days is joined from each day's compressed text: the same lines
    as a server that generates the range, one gzip member, and a trailer that checks."""
    params = {"from_date": "2024-01-30", "to_date": "2024-02-02"}
    with ExportServer(generate={"events_per_day": 150, "seed": 3}, api_secret=SECRET) as plain:
        expected = get(plain, params).content
    with ExportServer(generate={"events_per_day": 150, "seed": 3}, api_secret=SECRET) as srv:
        srv.warm_cache("2024-01-29", "2024-02-05")
        with requests.get(srv.url, params=params, auth=AUTH, stream=True, timeout=10) as r:
            raw = r.raw.read(decode_content=False)
        one_day = get(srv, {"from_date": "2024-02-05", "to_date": "2024-02-05"}).content
    assert gzip.decompress(raw) == expected and len(expected.splitlines()) == 600
    d = zlib.decompressobj(31)  # a single member: nothing follows its trailer
    assert d.decompress(raw) == expected and d.eof and d.unused_data == b""
    assert len(one_day.splitlines()) == 150
    assert [r.cached for r in srv.requests] == [True, True]
    assert [r.lines for r in srv.requests] == [600, 150]


@given(st.binary(max_size=3000), st.binary(max_size=70_000))
def test_crc32_combine_is_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    for combine in (crc32_combine, crc32_combine_py):  # ISA-L's (where installed), ours
        assert combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_cache_is_bounded() -> None:
    with ExportServer(
        generate={"events_per_day": 100}, api_secret=SECRET, cache_max_bytes=20_000
    ) as srv:
        srv.warm_cache("2024-01-01", "2024-01-10")
        assert 0 < srv._cache_size <= 20_000
        assert len(srv._cache) < 10
