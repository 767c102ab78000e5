"""Transport at scale, end to end through the public API against the export emulator.

Parallel day windows, the rate scheduler (checked against the server's own request
log: every start time the server saw), progress, the window cache (resume after a
crash, refresh), regions, ``time_in_ms``, ``limit``, TLS and the rules that keep the
API secret on the intended host. Timing asserts are lower bounds and budgets read
from the server's log (behaviour), never speed.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

import robotmia_frames as rf
from robotmia_frames._progress import ProgressUpdate
from robotmia_frames.emulator import ExportServer, Fault, RequestRecord
from robotmia_frames.transport import REGION_URLS, RateLimit, RateLimiter
from tests.conftest import SECRET, ServerFactory, local_seconds, release_when

START = dt.date(2024, 1, 1)
EXPORT_PATH = "/api/2.0/export/"


def days(n: int, start: dt.date = START) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def make_events(n_days: int, per_day: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "event": "play" if i % 2 else "open",
            "properties": {
                "time": local_seconds(day, 60 * i + 7),
                "distinct_id": f"u{i % 5}",
                "$insert_id": f"{day.isoformat()}-{i}",
                "i": i,
            },
        }
        for day in days(n_days)
        for i in range(per_day)
    ]


def read(srv: ExportServer, n_days: int, **kw: Any) -> Any:
    kw.setdefault("api_secret", SECRET)
    kw.setdefault("project_timezone", "UTC")
    kw.setdefault("base_url", srv.url)
    kw.setdefault("progress", False)
    kw.setdefault("window_days", 1)  # one request a day: the scheduler's unit here
    last = START + dt.timedelta(days=n_days - 1)
    return rf.read_robotmia_export(START, last, **kw)


def exports(srv: ExportServer) -> list[RequestRecord]:
    """The export requests in the server's log, in order of arrival."""
    return sorted(
        (r for r in srv.requests if r.path.startswith(EXPORT_PATH)), key=lambda r: r.started
    )


def requested_days(srv: ExportServer) -> list[str]:
    return sorted(r.params["from_date"] for r in exports(srv))


def overlapping(records: list[RequestRecord]) -> bool:
    return any(
        a.started < b.ended and b.started < a.ended
        for i, a in enumerate(records)
        for b in records[i + 1 :]
    )


def for_day(day: dt.date) -> Any:
    iso = day.isoformat()
    return lambda params: params.get("from_date") == iso


def insert_ids(df: Any) -> Counter[str]:
    return Counter(df["properties.$insert_id"].tolist())


# ------------------------------------------------------------------ parallel windows


@pytest.mark.parametrize("concurrency", [1, 4])
def test_concurrency_shows_in_the_request_log(server: ServerFactory, concurrency: int) -> None:
    events = make_events(4)
    srv = server(events)
    if concurrency > 1:  # no answer goes out before all four requests are in flight
        gate = threading.Event()
        srv.add_fault(Fault(hold=gate, times=4))
        release_when(lambda: len(srv.in_flight) == 4, gate)
    else:  # every window takes a while
        srv.add_fault(Fault(delay_first_byte=0.3, times=4))
    df = read(srv, 4, concurrency=concurrency)
    assert insert_ids(df) == Counter(e["properties"]["$insert_id"] for e in events)
    log = exports(srv)
    assert len(log) == 4 and all(r.status == 200 for r in log)
    assert overlapping(log) is (concurrency > 1)
    if concurrency == 4:  # all four windows were in flight at once
        assert max(r.started for r in log) < min(r.ended for r in log)


# ------------------------------------------------------------------ rate limits


def test_per_second_budget_holds_in_the_server_log(server: ServerFactory) -> None:
    srv = server(make_events(6, 5))
    t0 = time.monotonic()
    df = read(srv, 6, concurrency=4, rate_limit=RateLimit(per_hour=None, per_second=2))
    elapsed = time.monotonic() - t0
    assert len(df) == 30
    starts = [r.started for r in exports(srv)]
    assert len(starts) == 6
    # Six queries at two a second: the last one cannot start before 2 s.
    assert elapsed >= 1.95
    # The server sees a query some time after the limiter let it go, a time that a
    # loaded machine varies: at most two starts in any 0.75 s (0.25 s allowed for it).
    assert starts[-1] - starts[0] >= 1.5
    assert all(later - first >= 0.75 for first, later in zip(starts, starts[2:], strict=False))


def test_hourly_budget_is_a_sliding_window() -> None:
    now = [1000.0]
    limiter = RateLimiter(RateLimit(per_hour=3, per_second=None), clock=lambda: now[0])
    for t in (1000.0, 1010.0, 1020.0):
        now[0] = t
        assert limiter.expected_wait() == 0
        with limiter.slot():
            pass
    now[0] = 1030.0
    # The 4th query waits until the 1st leaves the hour (a token bucket refilling at
    # 3 an hour would allow it after 1200 s, a 4th query within one hour).
    assert limiter.expected_wait() == pytest.approx(3570.0)
    now[0] = 4600.0
    assert limiter.expected_wait() == 0
    limiter.pause(30)
    assert limiter.expected_wait() == pytest.approx(30.0)
    assert limiter.queries == 3 and "per_hour=3" in repr(limiter)


def test_concurrent_one_never_overlaps(server: ServerFactory) -> None:
    srv = server(make_events(4, 5))
    srv.add_fault(Fault(delay_first_byte=0.15, times=4))
    df = read(srv, 4, concurrency=4, rate_limit=RateLimit(None, None, concurrent=1))
    assert len(df) == 20
    log = exports(srv)
    assert len(log) == 4 and not overlapping(log)


def test_retry_after_pauses_every_worker(server: ServerFactory) -> None:
    srv = server(make_events(6, 5))
    d1, d2 = days(2)
    # Day 2 is in flight when day 1's 429 comes back (the 429 waits for it), and its
    # worker is free soon after.
    gate = threading.Event()
    srv.add_fault(Fault(status=429, retry_after=1, hold=gate, match=for_day(d1)))
    srv.add_fault(Fault(delay_first_byte=0.4, match=for_day(d2)))
    release_when(lambda: any(p["from_date"] == d2.isoformat() for p in srv.in_flight), gate)
    df = read(srv, 6, concurrency=2, retry_backoff=0.01)
    assert len(df) == 30
    log = exports(srv)
    limited = next(r for r in log if r.status == 429)
    later = [r for r in log if r.started > limited.ended]
    assert len(later) == 5  # day 1 again, and days 3-6
    # Without the shared pause, day 2's worker would start day 3 at ~0.4 s. (A lower
    # bound: the 429 is logged before its client sees it, then the pause starts.)
    assert min(r.started for r in later) >= limited.ended + 0.95


def test_shared_limiter_keeps_one_budget_across_calls(server: ServerFactory) -> None:
    srv = server(make_events(4, 5))
    limiter = RateLimiter(RateLimit(per_hour=None, per_second=2, concurrent=None))
    t0 = time.monotonic()
    first = rf.read_robotmia_export(
        "2024-01-01", "2024-01-02", api_secret=SECRET, project_timezone="UTC",
        base_url=srv.url, rate_limit=limiter, progress=False, window_days=1,
    )  # fmt: skip
    second = rf.read_robotmia_export(
        "2024-01-03", "2024-01-04", api_secret=SECRET, project_timezone="UTC",
        base_url=srv.url, rate_limit=limiter, progress=False, window_days=1,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert len(first) == len(second) == 10
    assert limiter.queries == 4
    # The second call found the budget of the first spent: its queries waited (two
    # limiters would have let all four go at once).
    assert elapsed >= 0.95
    starts = [r.started for r in exports(srv)]
    # as the server saw it, allowing 0.25 s for a loaded machine's varying delays
    assert starts[2] - starts[0] >= 0.75 and starts[3] - starts[1] >= 0.75


def test_progress_reports_windows_bytes_rows_and_wait(server: ServerFactory) -> None:
    srv = server(make_events(3, 10))
    updates: list[ProgressUpdate] = []
    df = read(srv, 3, progress=updates.append, rate_limit=RateLimit(None, per_second=1))
    # the updates that end a day (the others count bytes and rows as they come)
    done_before = [0, *(u.windows_done for u in updates)]
    ends = [u for u, before in zip(updates, done_before, strict=False) if u.windows_done > before]
    assert [u.windows_done for u in ends] == [1, 2, 3]
    assert {u.windows_total for u in updates} == {3}
    assert [u.rows for u in ends] == [10, 20, 30] and len(df) == 30
    assert updates[-1].bytes == sum(r.bytes_sent for r in exports(srv)) > 0
    assert all(u.expected_wait >= 0 for u in updates)
    # One query a second: right after a window, the next start is still ahead.
    assert max(u.expected_wait for u in updates) > 0


def test_progress_moves_within_a_day(server: ServerFactory) -> None:
    """One day's bytes are counted as they arrive and its rows as each batch is
    parsed, before the day is done; a failed try's bytes are taken back."""
    from robotmia_frames.emulator import GeneratorConfig

    day = GeneratorConfig(events_per_day=20_000, seed=5, from_date=START, to_date=START)
    srv = server(generate=day)
    # the first try breaks off after 200 kB (retried at once): its bytes are thrown away
    srv.add_fault(Fault(truncate_at=200_000, times=1))
    updates: list[ProgressUpdate] = []
    df = read(srv, 1, progress=updates.append, retry_backoff=0.0)
    assert len(df) == 20_000
    failed, kept = exports(srv)
    assert failed.bytes_sent == 200_000 and kept.bytes_sent > 1 << 20  # > one network read
    during = [u for u in updates if u.windows_done == 0]
    assert updates[-1].windows_done == 1 and during == updates[:-1]
    sizes = [u.bytes for u in during]
    # up to the 200 kB of the failed try, then back to 0, then the kept body in pieces
    assert max(sizes[: sizes.index(0)]) == 200_000
    assert any(0 < b < kept.bytes_sent for b in sizes[sizes.index(0) :])
    assert updates[-1].bytes == kept.bytes_sent
    # rows as each parsed batch of the day comes (16,384 rows a batch), before it is done
    assert any(0 < u.rows < 20_000 for u in during)
    assert max(u.rows for u in during) == updates[-1].rows == 20_000


def test_progress_rejects_junk(server: ServerFactory) -> None:
    srv = server([])
    with pytest.raises(ValueError, match="progress"):
        read(srv, 1, progress="yes")
    assert srv.requests == []


# ------------------------------------------------------------------ cache_dir


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name not in ("manifest.json", "salt"))


def test_cache_second_run_downloads_nothing(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(3))
    first = read(srv, 3, cache_dir=tmp_path)
    assert len(requested_days(srv)) == 3
    srv.clear_requests()
    second = read(srv, 3, cache_dir=tmp_path)
    assert srv.requests == []
    assert second.equals(first)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(e["window"] for e in manifest.values()) == [d.isoformat() for d in days(3)]


def test_cache_deleted_window_is_the_only_download(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(3))
    first = read(srv, 3, cache_dir=tmp_path)
    (victim,) = tmp_path.glob("2024-01-02-*.jsonl.gz")
    victim.unlink()
    srv.clear_requests()
    again = read(srv, 3, cache_dir=tmp_path)
    assert requested_days(srv) == ["2024-01-02"]
    assert again.equals(first)


def test_cache_truncated_file_is_not_trusted(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(2))
    first = read(srv, 2, cache_dir=tmp_path)
    (victim,) = tmp_path.glob("2024-01-01-*.jsonl.gz")
    victim.write_bytes(victim.read_bytes()[:-10])
    srv.clear_requests()
    assert read(srv, 2, cache_dir=tmp_path).equals(first)
    assert requested_days(srv) == ["2024-01-01"]


def test_cache_resume_after_a_failed_run(server: ServerFactory, tmp_path: Path) -> None:
    events = make_events(6)
    srv = server(events)
    d3, d4 = days(4)[2:]
    # Day 4 is still downloading when day 3 fails: it completes, and must count.
    # (Day 3's 400 waits until day 4's request has arrived; day 4's answer until the
    # 400 is logged.)
    gate3, gate4 = threading.Event(), threading.Event()
    srv.add_fault(Fault(status=400, message="boom", hold=gate3, match=for_day(d3)))
    srv.add_fault(Fault(hold=gate4, match=for_day(d4)))
    release_when(lambda: any(p["from_date"] == d4.isoformat() for p in srv.in_flight), gate3)
    release_when(lambda: any(r.status == 400 for r in srv.requests), gate4)
    with pytest.raises(rf.APIError, match="2024-01-03"):
        read(srv, 6, cache_dir=tmp_path, concurrency=4, max_retries=0)
    completed = {r.params["from_date"] for r in exports(srv) if r.status == 200 and not r.error}
    assert d4.isoformat() in completed and d3.isoformat() not in completed
    # The failed window is neither in the cache nor in the manifest.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(e["window"] for e in manifest.values()) == sorted(completed)
    assert not list(tmp_path.glob("2024-01-03*")) and not list(tmp_path.glob(".*part*"))
    srv.clear_requests()
    df = read(srv, 6, cache_dir=tmp_path, concurrency=4)
    assert requested_days(srv) == sorted({d.isoformat() for d in days(6)} - completed)
    assert insert_ids(df) == Counter(e["properties"]["$insert_id"] for e in events)


def test_ctrl_c_ends_a_download_still_waiting_for_its_first_byte(server: ServerFactory) -> None:
    """The export service may think for minutes before its first byte: Ctrl-C then
    ends the read at once, not when the read timeout (here 10 minutes) runs out."""
    srv = server(make_events(2))
    srv.add_fault(Fault(hold=threading.Event(), match=for_day(days(2)[1])))  # never answers
    outcome: list[BaseException] = []

    def interrupt(update: ProgressUpdate) -> None:
        if update.windows_done:  # day 1 is done, day 2 waits for its first byte
            raise KeyboardInterrupt

    def run() -> None:
        try:
            read(srv, 2, concurrency=2, timeout=600, max_retries=0, progress=interrupt)
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=run)
    reader.start()
    reader.join(120)  # a hang guard: cancelled, it ends in well under a second
    assert not reader.is_alive(), "Ctrl-C waited for the download's read timeout"
    assert [type(e) for e in outcome] == [KeyboardInterrupt]


def test_a_connection_opened_after_cancel_is_shut_down_too(server: ServerFactory) -> None:
    """``transport.cancel`` shuts down the sockets of a session's connections; one
    still connecting at that moment (no socket yet to shut) is shut down as soon as
    it is open, so that its request does not wait out the read timeout."""
    from robotmia_frames import transport

    srv = server(make_events(1))
    srv.add_fault(Fault(hold=threading.Event()))  # never answers
    outcome: list[BaseException] = []
    with transport.make_session() as session:
        transport.cancel(session)  # before the connection exists
        params = {"from_date": "2024-01-01", "to_date": "2024-01-01"}

        def run() -> None:
            try:
                session.get(srv.url, params=params, auth=(SECRET, ""), timeout=600)
            except BaseException as exc:
                outcome.append(exc)

        asker = threading.Thread(target=run)
        asker.start()
        asker.join(120)  # a hang guard: shut down, it ends at once
        assert not asker.is_alive(), "a connection opened after cancel waited for its answer"
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError)


def test_cache_resume_after_ctrl_c(server: ServerFactory, tmp_path: Path) -> None:
    events = make_events(5)
    srv = server(events)
    gate = threading.Event()
    for day in days(5)[2:]:  # later days are still in flight or queued at Ctrl-C
        srv.add_fault(Fault(hold=gate, match=for_day(day)))

    def interrupt(update: ProgressUpdate) -> None:
        # Ctrl-C right after the first window is parsed; Python delivers it to the
        # main thread (the download threads report their bytes here too)
        if update.windows_done and threading.current_thread() is threading.main_thread():
            gate.set()  # the later days' answers go out only now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read(srv, 5, cache_dir=tmp_path, concurrency=2, progress=interrupt)
    completed = {r.params["from_date"] for r in exports(srv) if r.status == 200 and not r.error}
    assert 1 <= len(completed) < 5
    srv.clear_requests()
    df = read(srv, 5, cache_dir=tmp_path, concurrency=2)
    assert requested_days(srv) == sorted({d.isoformat() for d in days(5)} - completed)
    assert insert_ids(df) == Counter(e["properties"]["$insert_id"] for e in events)


def test_cache_refresh_downloads_everything(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(3))
    read(srv, 3, cache_dir=tmp_path)
    srv.clear_requests()
    read(srv, 3, cache_dir=tmp_path, refresh=True)
    assert requested_days(srv) == [d.isoformat() for d in days(3)]
    assert len(_cache_files(tmp_path)) == 3  # replaced, not added


def test_cache_keeps_old_window_when_refresh_fails(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(1))
    read(srv, 1, cache_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    srv.add_fault(Fault(truncate_at=40, times=2))
    with pytest.raises(rf.IncompleteDownloadError):
        read(srv, 1, cache_dir=tmp_path, refresh=True, max_retries=1, retry_backoff=0.01)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cache_dir_via_export_to_parquet(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(2))
    kw: dict[str, Any] = dict(api_secret=SECRET, project_timezone="UTC", base_url=srv.url)
    s1 = rf.export_to_parquet(tmp_path / "a", START, days(2)[1], cache_dir=tmp_path / "c", **kw)
    srv.clear_requests()
    s2 = rf.export_to_parquet(tmp_path / "b", START, days(2)[1], cache_dir=tmp_path / "c", **kw)
    assert srv.requests == [] and s1.rows == s2.rows == 40
    assert len(_cache_files(tmp_path / "c")) == 1  # the sink does not delete cached bodies


# ------------------------------------------------------------------ regions


def plan(**kw: Any) -> Any:
    kw.setdefault("api_secret", "plan-secret")
    kw.setdefault("project_timezone", "UTC")
    return _plan("2024-01-01", "2024-01-02", **kw)


@pytest.mark.parametrize(
    "region, host",
    [
        (None, "data.robotmia.com"),
        ("us", "data.robotmia.com"),
        ("eu", "data-eu.robotmia.com"),
        ("in", "data-in.robotmia.com"),
    ],
)
def test_region_selects_the_documented_host(region: str | None, host: str) -> None:
    assert plan(region=region).config.base_url == f"https://{host}/api/2.0/export/"


def test_region_urls_are_https() -> None:
    assert set(REGION_URLS) == {"us", "eu", "in"}
    assert all(
        u.startswith("https://") and u.endswith("/api/2.0/export/") for u in REGION_URLS.values()
    )


def test_base_url_overrides_region(server: ServerFactory) -> None:
    url = "https://export.example.test/api/2.0/export/"
    assert plan(region="eu", base_url=url).config.base_url == url
    srv = server(make_events(1))
    assert len(read(srv, 1, region="in")) == 20  # sent to base_url, not to India
    assert len(exports(srv)) == 1


@pytest.mark.parametrize("region", ["EU-west", "de", "", 1])
def test_bad_region_is_a_value_error_before_any_request(server: ServerFactory, region: Any) -> None:
    with pytest.raises(ValueError, match="region"):
        plan(region=region)
    srv = server(make_events(1))
    with pytest.raises(ValueError, match="region"):
        read(srv, 1, region=region)
    assert srv.requests == []


def test_remote_defaults_follow_the_documented_limits() -> None:
    limiter = plan(region="eu").limiter
    assert limiter.limit == RateLimit(per_hour=60, per_second=3, concurrent=5)


# ------------------------------------------------------------------ time_in_ms, limit


def _expected_utc(local_ms: int, tz: str) -> dt.datetime:
    wall = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=local_ms)
    return wall.replace(tzinfo=ZoneInfo(tz), fold=0).astimezone(dt.timezone.utc)


def test_time_in_ms_converts_exactly(server: ServerFactory) -> None:
    tz = "Europe/Paris"
    spring, autumn = dt.date(2024, 3, 31), dt.date(2024, 10, 27)
    offsets = [0.001, 7199.999, 9000.5, 9000.123, 3600 * 2.5 + 0.007, 86399.999]
    events = [
        {"event": "e", "properties": {"time": local_seconds(day, s), "$insert_id": f"{day}-{k}"}}
        for day in (spring, autumn)
        for k, s in enumerate(offsets)
    ]
    srv = server(events, project_timezone=tz)
    # What the server sends for time_in_ms=true: the reference values.
    raw: dict[str, int | float] = {}
    for day in (spring, autumn):
        resp = requests.get(
            srv.url,
            auth=(SECRET, ""),
            params={"from_date": str(day), "to_date": str(day), "time_in_ms": "true"},
            timeout=10,
        )
        for line in resp.text.splitlines():
            ev = json.loads(line)
            raw[ev["properties"]["$insert_id"]] = ev["properties"]["time"]
    srv.clear_requests()
    kw: dict[str, Any] = dict(
        api_secret=SECRET, project_timezone=tz, base_url=srv.url, progress=False
    )
    for day in (spring, autumn):
        df = rf.read_robotmia_export(day, day, time_in_ms=True, return_type="arrow", **kw)
        got = dict(
            zip(df["properties.$insert_id"].to_pylist(), df["time"].to_pylist(), strict=True)
        )
        assert len(got) == len(offsets)
        for key, t in got.items():
            assert t == _expected_utc(round(raw[key]), tz), key
    assert all(r.params.get("time_in_ms") == "true" for r in exports(srv))
    # Whole seconds read the same either way.
    srv.clear_requests()
    secs = rf.read_robotmia_export(spring, spring, return_type="arrow", **kw)
    assert "time_in_ms" not in exports(srv)[0].params
    whole = [t.replace(microsecond=0) for t in secs["time"].to_pylist()]
    assert whole == [_expected_utc(int(local_seconds(spring, s)) * 1000, tz) for s in offsets]


def test_limit_is_sent_with_each_window_and_caps_the_total(server: ServerFactory) -> None:
    srv = server(make_events(3, 20))
    df = read(srv, 3, limit=5)
    log = exports(srv)
    # Every window sent carries the limit; the windows still pending when the first
    # day fills it are cancelled, so how many were sent depends on timing.
    assert log and all(r.params.get("limit") == "5" for r in log)
    # The first 5 events in day order: no window downloads more than 5 either.
    assert list(df["properties.$insert_id"]) == [f"{days(3)[0].isoformat()}-{i}" for i in range(5)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "5"])
def test_bad_limit_is_a_value_error(server: ServerFactory, bad: Any) -> None:
    srv = server([])
    with pytest.raises(ValueError, match="limit"):
        read(srv, 1, limit=bad)
    assert srv.requests == []


# ------------------------------------------------------------------ TLS


def test_tls_end_to_end_with_ca_bundle(server: ServerFactory) -> None:
    events = make_events(2)
    srv = server(events, tls=True, require_https=True)
    assert srv.url.startswith("https://") and srv.ca_bundle
    df = read(srv, 2, verify=srv.ca_bundle, concurrency=2)
    assert insert_ids(df) == Counter(e["properties"]["$insert_id"] for e in events)
    assert len(exports(srv)) == 2


def test_tls_without_the_ca_fails_clearly_and_at_once(server: ServerFactory) -> None:
    srv = server(make_events(1), tls=True)
    with pytest.raises(rf.NetworkError) as info:
        read(srv, 1, max_retries=3, retry_backoff=5.0)
    message = str(info.value)
    assert "certificate verification failed" in message and "verify=" in message
    assert "after 1 attempt" in message  # not retried: it would fail the same way
    assert srv.requests == []  # no request got past the handshake


def test_tls_with_a_wrong_bundle_fails(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(make_events(1), tls=True)
    other = server(make_events(1), tls=True)  # another throwaway CA
    with pytest.raises(rf.NetworkError, match="certificate"):
        read(srv, 1, verify=other.ca_bundle)
    assert srv.requests == []


# ------------------------------------------------------------------ where the secret goes


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every DNS lookup and socket connect."""
    calls: list[object] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise OSError("network use in a test that must not touch the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return calls


@pytest.mark.parametrize(
    "url",
    [
        "http://data.robotmia.com/api/2.0/export/",
        "http://10.0.0.1:8080/api/2.0/export/",
        "http://127.0.0.1.evil.example/api/2.0/export/",
        "http://[::2]/api/2.0/export/",
    ],
)
def test_no_auth_over_plain_http_to_a_remote_host(no_network: list[object], url: str) -> None:
    with pytest.raises(ValueError, match="clear text"):
        rf.read_robotmia_export(
            "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC", base_url=url
        )
    with pytest.raises(ValueError, match="clear text"):
        rf.export_to_parquet(
            "unused", "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC",
            base_url=url,
        )  # fmt: skip
    assert no_network == []


def test_redirect_to_another_host_is_not_followed(server: ServerFactory) -> None:
    srv = server(make_events(1))
    # Same server, other host name: a different origin as far as the client knows.
    srv.add_fault(Fault(redirect=f"http://localhost:{srv.port}{EXPORT_PATH}", times=5))
    with pytest.raises(rf.APIError, match="another host") as info:
        read(srv, 1)
    assert info.value.status_code == 302
    assert len(exports(srv)) == 1  # the Location was never requested, auth never re-sent


def test_redirect_from_https_to_http_is_not_followed(server: ServerFactory) -> None:
    srv = server(make_events(1), tls=True)
    plain = server(make_events(1))
    srv.add_fault(Fault(redirect=f"http://127.0.0.1:{plain.port}{EXPORT_PATH}", status=307))
    with pytest.raises(rf.APIError, match="another host or scheme"):
        read(srv, 1, verify=srv.ca_bundle)
    assert len(exports(srv)) == 1 and plain.requests == []


def test_same_origin_redirect_is_followed(server: ServerFactory) -> None:
    srv = server(make_events(1))
    srv.add_fault(Fault(redirect=EXPORT_PATH))
    assert len(read(srv, 1)) == 20
    first, second = exports(srv)
    assert first.status == 302 and second.status == 200 and second.authorized
    assert second.params["from_date"] == "2024-01-01"


def _plan(from_date: str, to_date: str, **kw: Any) -> Any:
    """The checked plan of an export, as the client builds it."""
    settings = inspect.signature(rf.Client).parameters
    client = rf.Client(**{k: v for k, v in kw.items() if k in settings})
    call = {k: v for k, v in kw.items() if k not in settings}
    return client._conn.plan(from_date, to_date, **call)
