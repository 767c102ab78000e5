"""Transport stage: real HTTP over loopback against the export emulator (no mocks)."""

from __future__ import annotations

import base64
import datetime
import email.utils
import gzip
import http.server
import itertools
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robotmia_frames.emulator import ExportServer, Fault
from robotmia_frames.errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    InvalidArgumentError,
    NetworkError,
    RobotmiaError,
)
from robotmia_frames.transport import (
    DEFAULT_BASE_URL,
    DownloadResult,
    RetryEvent,
    TransportConfig,
    WindowRequest,
    download_window,
    is_loopback_host,
    make_session,
    validate_base_url,
)
from robotmia_frames.transport._verify import BodyVerifier as _BodyVerifier
from robotmia_frames.transport._verify import Truncated as _Truncated

SECRET = "s3cret-transport-test-7f3a"
DAY = datetime.date(2024, 1, 1)
T0 = 1704067200  # 2024-01-01T00:00:00, project-local seconds (UTC project)


# --------------------------------------------------------------------------- helpers


def make_events(n: int = 300) -> list[dict[str, Any]]:
    return [
        {
            "event": "play song" if i % 3 else "log in",
            "properties": {
                "time": T0 + i * 60,
                "distinct_id": f"user-{i % 17}",
                "padding": "x" * (i % 50),
                "n": i,
            },
        }
        for i in range(n)
    ]


EVENTS = make_events()


class Sleeps:
    """A ``sleep`` that records delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def srv() -> Iterator[Any]:
    with ExportServer(EVENTS, api_secret=SECRET, project_timezone="UTC") as server:
        yield server


def cfg(base_url: str, **kw: Any) -> TransportConfig:
    kw.setdefault("api_secret", SECRET)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    kw.setdefault("max_retries", 3)
    kw.setdefault("connect_timeout", 5.0)
    kw.setdefault("read_timeout", 10.0)
    return TransportConfig(base_url=base_url, **kw)


def day_request(**kw: Any) -> WindowRequest:
    return WindowRequest(DAY, DAY, **kw)


def run(
    config: TransportConfig, dest: Path, request: WindowRequest | None = None, **kw: Any
) -> tuple[DownloadResult, Sleeps, list[RetryEvent]]:
    sleeps = Sleeps()
    events: list[RetryEvent] = []
    result = download_window(
        config, request or day_request(), dest, sleep=sleeps, on_retry=events.append, **kw
    )
    return result, sleeps, events


def body_text(result: DownloadResult) -> bytes:
    raw = result.path.read_bytes()
    return gzip.decompress(raw) if result.compressed else raw


def lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".part-" in p.name)


def assert_no_secret(*texts: object) -> None:
    token = base64.b64encode(f"{SECRET}:".encode()).decode()
    for text in texts:
        assert SECRET not in str(text)
        assert token not in str(text)


def exc_texts(exc: BaseException) -> list[str]:
    out: list[str] = []
    cur: BaseException | None = exc
    while cur is not None:
        out += [str(cur), repr(cur)]
        cur = cur.__cause__ or cur.__context__
    return out


@pytest.fixture
def baseline(srv: Any, tmp_path: Path) -> bytes:
    """The decompressed body of a clean download (what every retry must reproduce)."""
    result, _, _ = run(cfg(srv.url), tmp_path / "baseline.jsonl.gz")
    srv.requests.clear()
    return body_text(result)


# --------------------------------------------------------------------------- URL rules


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "127.255.255.254", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["example.com", "128.0.0.1", "127.0.0", "127.0.0.1.example.com", "localhost.evil.com",
     "0.0.0.0", "::2", "10.0.0.1", "", "127.000.0.1"],
)  # fmt: skip
def test_not_loopback_hosts(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api/2.0/export/",
        "http://127.1.2.3/api/2.0/export/",
        "http://localhost:1/x",
        "http://LOCALHOST/x",
        "http://[::1]:9000/api/2.0/export/",
        DEFAULT_BASE_URL,
        "https://example.com/api/",
    ],
)
def test_url_rule_accepts(url: str) -> None:
    assert validate_base_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/api/2.0/export/",
        "http://data.robotmia.com/api/2.0/export/",
        "http://127.0.0.1.nip.io/x",
        f"http://user:{SECRET}@example.com/x",
        "ftp://127.0.0.1/x",
        "https:///nohost",
        "127.0.0.1:8080/x",
        "",
    ],
)
def test_url_rule_refuses(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validate_base_url(url)
    assert isinstance(info.value, ValueError)
    assert_no_secret(info.value)


def test_http_refusal_explains_before_any_request() -> None:
    # The config itself refuses, so download_window can never be reached.
    with pytest.raises(InvalidArgumentError, match="clear text") as info:
        cfg("http://example.com/api/2.0/export/")
    assert "https://" in str(info.value)


# --------------------------------------------------------------------------- value objects


def test_window_request_params() -> None:
    r = WindowRequest(
        datetime.date(2024, 1, 1),
        datetime.date(2024, 1, 7),
        event=("play song", "log in", "été"),
        where='properties["$os"]=="Linux"',
    )
    assert r.params() == {
        "from_date": "2024-01-01",
        "to_date": "2024-01-07",
        "event": '["play song","log in","été"]',
        "where": 'properties["$os"]=="Linux"',
    }
    assert r.label == "2024-01-01..2024-01-07"
    assert day_request().params() == {"from_date": "2024-01-01", "to_date": "2024-01-01"}
    assert day_request().label == "2024-01-01"


@pytest.mark.parametrize(
    "kw",
    [
        {"from_date": datetime.date(2024, 1, 2), "to_date": datetime.date(2024, 1, 1)},
        {"from_date": DAY, "to_date": DAY, "event": ()},
        {"from_date": DAY, "to_date": DAY, "extra_params": (("where", "x"),)},
        {"from_date": "2024-01-01", "to_date": DAY},
    ],
)
def test_window_request_rejects(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WindowRequest(**kw)


def test_config_repr_and_defaults_hide_secret() -> None:
    c = TransportConfig(base_url=DEFAULT_BASE_URL, api_secret=SECRET)
    assert "api_secret='***'" in repr(c)
    assert_no_secret(repr(c), str(c))
    assert c.read_timeout >= 300
    assert c.user_agent.startswith("robotmia-frames/")
    with pytest.raises(InvalidArgumentError):
        TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="")
    with pytest.raises(InvalidArgumentError):
        TransportConfig(base_url=DEFAULT_BASE_URL, api_secret=SECRET, max_retries=-1)


def test_make_session_user_agent() -> None:
    with make_session() as session:
        assert str(session.headers["User-Agent"]).startswith("robotmia-frames/")


# --------------------------------------------------------------------------- success paths


def test_success_gzip_body_matches(srv: Any, tmp_path: Path) -> None:
    dest = tmp_path / "day.jsonl.gz"
    result, sleeps, events = run(cfg(srv.url), dest)
    assert result.path == dest and result.compressed and result.attempts == 1
    raw = dest.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and result.bytes_received == len(raw)
    rows = lines(gzip.decompress(raw))
    assert len(rows) == len(EVENTS)
    assert [r["properties"]["n"] for r in rows] == [e["properties"]["n"] for e in EVENTS]
    assert sleeps.delays == [] and events == []
    assert leftovers(tmp_path) == []
    (rec,) = srv.requests
    assert rec.authorized and rec.params["from_date"] == "2024-01-01"


def test_event_and_where_are_sent(srv: Any, tmp_path: Path) -> None:
    request = day_request(event=("log in",), where='properties["n"] < 30')
    result, _, _ = run(cfg(srv.url), tmp_path / "d.gz", request)
    rows = lines(body_text(result))
    assert rows and all(r["event"] == "log in" for r in rows)
    assert srv.requests[0].params["event"] == '["log in"]'
    assert srv.requests[0].params["where"] == 'properties["n"] < 30'


def test_plain_body_accepted(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(gzip=False))
    result, _, _ = run(cfg(srv.url), tmp_path / "d.jsonl")
    assert not result.compressed
    assert result.path.read_bytes() == baseline


def test_missing_content_encoding_still_verified(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(content_encoding=""))
    result, _, _ = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.compressed and body_text(result) == baseline


def test_lying_content_encoding_on_plain_body(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(gzip=False, content_encoding="gzip"))
    result, _, _ = run(cfg(srv.url), tmp_path / "d.jsonl")
    assert not result.compressed and result.path.read_bytes() == baseline


def test_truncated_without_content_encoding_detected(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(truncate_at=200, content_encoding="", times=10))
    with pytest.raises(IncompleteDownloadError):
        run(cfg(srv.url, max_retries=1), tmp_path / "d.gz")


def test_multi_member_gzip_with_padding(srv: Any, tmp_path: Path) -> None:
    body = b'{"event":"a","properties":{"time":1}}\n'
    raw = gzip.compress(body) + gzip.compress(body * 2) + b"\x00" * 64
    srv.add_fault(Fault(raw_body=raw))
    result, _, _ = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.compressed and result.path.read_bytes() == raw


def test_replaces_existing_dest(srv: Any, tmp_path: Path) -> None:
    dest = tmp_path / "d.gz"
    dest.write_bytes(b"old")
    result, _, _ = run(cfg(srv.url), dest)
    assert dest.read_bytes()[:2] == b"\x1f\x8b" and result.attempts == 1


def test_tls_with_ca_bundle(tmp_path: Path) -> None:
    with ExportServer(EVENTS, api_secret=SECRET, project_timezone="UTC", tls=True) as server:
        assert server.url.startswith("https://")
        result, _, _ = run(cfg(server.url, verify=server.ca_bundle), tmp_path / "d.gz")
        assert len(lines(body_text(result))) == len(EVENTS)
        sleeps = Sleeps()
        with pytest.raises(NetworkError, match="certificate") as info:
            download_window(cfg(server.url), day_request(), tmp_path / "e.gz", sleep=sleeps)
        assert sleeps.delays == []  # a certificate failure is not retried
        assert_no_secret(*exc_texts(info.value))
    assert leftovers(tmp_path) == []


def test_ipv6_loopback_over_http(tmp_path: Path) -> None:
    try:
        server = ExportServer(EVENTS, api_secret=SECRET, host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.url.startswith("http://[::1]:")
        result, _, _ = run(cfg(server.url), tmp_path / "d.gz")
        assert len(lines(body_text(result))) == len(EVENTS)
    finally:
        server.stop()


def test_shared_session_is_left_open(srv: Any, tmp_path: Path) -> None:
    with make_session() as session:
        for i in range(2):
            run(cfg(srv.url), tmp_path / f"d{i}.gz", session=session)
    assert len(srv.requests) == 2


# --------------------------------------------------------------------------- final errors


def test_401_not_retried(srv: Any, tmp_path: Path) -> None:
    bad = "wrong-secret-value"
    with pytest.raises(AuthenticationError) as info:
        run(cfg(srv.url, api_secret=bad), tmp_path / "d.gz")
    assert len(srv.requests) == 1 and not srv.requests[0].authorized
    msg = str(info.value)
    assert "401" in msg and "ROBOTMIA_API_SECRET" in msg and srv.url in msg
    assert bad not in msg and info.value.status_code == 401
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [400, 403, 404])
def test_final_statuses_not_retried(srv: Any, tmp_path: Path, status: int) -> None:
    srv.add_fault(Fault(status=status, times=5))
    expected = AuthenticationError if status == 403 else APIError
    with pytest.raises(expected) as info:
        run(cfg(srv.url), tmp_path / "d.gz")
    assert len(srv.requests) == 1
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert str(status) in str(info.value)


def test_400_carries_server_message(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(status=400, message="invalid where parameter: unexpected '==='"))
    with pytest.raises(APIError) as info:
        run(cfg(srv.url), tmp_path / "d.gz", day_request(where="properties[ ==="))
    exc = info.value
    assert exc.status_code == 400
    assert exc.server_message == "invalid where parameter: unexpected '==='"
    msg = str(exc)
    assert "400" in msg and exc.server_message in msg and "2024-01-01" in msg and srv.url in msg
    assert len(srv.requests) == 1


def test_retries_exhausted_api_error(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(status=503, times=10))
    with pytest.raises(APIError) as info:
        run(cfg(srv.url, max_retries=2), tmp_path / "d.gz")
    assert info.value.status_code == 503 and "3 attempts" in str(info.value)
    assert len(srv.requests) == 3


# --------------------------------------------------------------------------- retries


def test_500_then_success(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(status=500))
    result, sleeps, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.attempts == 2 and len(srv.requests) == 2
    assert body_text(result) == baseline
    assert [e.status_code for e in events] == [500] and len(sleeps.delays) == 1
    assert 0 <= sleeps.delays[0] <= 0.01


def test_429_retry_after_honoured(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(status=429, retry_after=2))
    result, sleeps, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert body_text(result) == baseline
    assert sleeps.delays and sleeps.delays[0] >= 2
    assert events[0].status_code == 429 and events[0].delay == sleeps.delays[0]


def test_retry_after_http_date(srv: Any, tmp_path: Path) -> None:
    start = time.time()
    when = int(start) + 60  # an HTTP date has whole seconds
    srv.add_fault(Fault(status=503, retry_after=email.utils.formatdate(when, usegmt=True)))
    _, sleeps, _ = run(cfg(srv.url), tmp_path / "d.gz")
    end = time.time()
    # the wait is that date less the client's clock when the 503 came (between start
    # and end, however slow the machine), give or take a second of rounding
    assert when - end - 1 <= sleeps.delays[0] <= when - start + 1


def test_retry_after_beyond_the_cap_fails_at_once(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(status=429, retry_after=3600))
    sleeps = Sleeps()
    with pytest.raises(APIError, match=r"max_retry_after=5 s\. Try again after") as info:
        download_window(cfg(srv.url, max_retry_after=5), day_request(), tmp_path / "d.gz",
                        sleep=sleeps)  # fmt: skip
    assert info.value.status_code == 429 and sleeps.delays == []
    assert leftovers(tmp_path) == []


def test_retry_after_within_the_cap_is_slept(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(status=429, retry_after=5))
    _, sleeps, _ = run(cfg(srv.url, max_retry_after=5), tmp_path / "d.gz")
    assert sleeps.delays == [5]


def test_backoff_is_bounded_exponential(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(status=502, times=4))
    _, sleeps, events = run(cfg(srv.url, max_retries=4, backoff_max=0.03), tmp_path / "d.gz")
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    for attempt, delay in enumerate(sleeps.delays, start=1):
        assert 0 <= delay <= min(0.03, 0.01 * 2 ** (attempt - 1))


def test_truncated_then_success(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(truncate_at=300))
    result, _, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.attempts == 2 and body_text(result) == baseline
    assert len(events) == 1


def test_truncated_every_time(srv: Any, tmp_path: Path) -> None:
    dest = tmp_path / "d.gz"
    dest.write_bytes(b"previous good data")
    srv.add_fault(Fault(truncate_at=300, times=10))
    with pytest.raises(IncompleteDownloadError) as info:
        run(cfg(srv.url, max_retries=2), dest)
    assert info.value.__cause__ is not None or "bytes" in str(info.value)
    assert "2024-01-01" in str(info.value)
    assert dest.read_bytes() == b"previous good data"
    assert leftovers(tmp_path) == []
    assert len(srv.requests) == 3


def test_reset_is_retried(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(reset=True))
    result, _, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.attempts == 2 and body_text(result) == baseline and len(events) == 1


def test_reset_every_time_network_error(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(reset=True, times=10))
    with pytest.raises(NetworkError) as info:
        run(cfg(srv.url, max_retries=1), tmp_path / "d.gz")
    assert info.value.__cause__ is not None
    assert_no_secret(*exc_texts(info.value))


def test_slow_first_byte_network_error(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(hold=threading.Event(), times=3))  # no byte until the server stops
    with pytest.raises(NetworkError, match=r"timeout=0\.3 s") as info:
        run(cfg(srv.url, max_retries=2, read_timeout=0.3), tmp_path / "d.gz")
    assert info.value.__cause__ is not None
    assert leftovers(tmp_path) == []


def test_slow_first_byte_then_success(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(hold=threading.Event()))  # the first answer never starts
    # generous for the second answer on a loaded machine; the first always times out
    result, _, _ = run(cfg(srv.url, read_timeout=2.0), tmp_path / "d.gz")
    assert result.attempts == 2 and body_text(result) == baseline


def test_terminated_early_is_retried(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(terminated_early=True))
    result, _, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.attempts == 2 and body_text(result) == baseline
    assert "terminated early" in events[0].reason


def test_terminated_early_every_time(srv: Any, tmp_path: Path) -> None:
    srv.add_fault(Fault(terminated_early=True, times=10))
    with pytest.raises(IncompleteDownloadError, match="terminated early"):
        run(cfg(srv.url, max_retries=1), tmp_path / "d.gz")
    assert leftovers(tmp_path) == []


def test_garbage_is_retried(srv: Any, tmp_path: Path, baseline: bytes) -> None:
    srv.add_fault(Fault(garbage=b"\x1f\x8b\x08\x00garbage-not-deflate"))
    result, _, events = run(cfg(srv.url), tmp_path / "d.gz")
    assert result.attempts == 2 and body_text(result) == baseline and len(events) == 1


def test_connection_refused_network_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError) as info:
        run(cfg(f"http://127.0.0.1:{port}/api/2.0/export/", max_retries=1), tmp_path / "d.gz")
    assert "2 attempts" in str(info.value) and info.value.__cause__ is not None
    assert leftovers(tmp_path) == []


def test_no_secret_in_messages_or_logs(
    srv: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    srv.add_fault(Fault(status=500, times=2))
    with pytest.raises(RobotmiaError) as info:
        run(cfg(srv.url, max_retries=1), tmp_path / "d.gz")
    texts += exc_texts(info.value)
    srv.add_fault(Fault(reset=True, times=2))
    with pytest.raises(RobotmiaError) as info:
        run(cfg(srv.url, max_retries=1), tmp_path / "d.gz")
    texts += exc_texts(info.value)
    with pytest.raises(AuthenticationError) as auth:
        run(cfg(srv.url, api_secret=SECRET + "-other"), tmp_path / "d.gz")
    texts += exc_texts(auth.value)
    texts += [r.getMessage() for r in caplog.records]
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert_no_secret(*texts)
    assert all("-other" not in t for t in texts)


# --------------------------------------------------------------------------- redirects (own tiny server)


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    body = gzip.compress(b'{"event":"a","properties":{"time":1704067200}}\n')
    seen: list[tuple[str, str | None]]
    release: threading.Event

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        port = self.server.server_port  # type: ignore[attr-defined]
        query = self.path.partition("?")[2]
        if self.path.startswith("/old/"):
            self._redirect(f"/api/2.0/export/?{query}")
        elif self.path.startswith("/away/"):
            self._redirect(f"http://localhost:{port}/api/2.0/export/?{query}")
        elif self.path.startswith("/loop/"):
            self._redirect(f"/loop/?{query}")
        elif self.path.startswith("/short/"):  # plain body, Content-Length promises more
            plain = gzip.decompress(self.body)
            self.send_response(200)
            self.send_header("Content-Length", str(len(plain) + 100))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(plain)
            self.close_connection = True
        elif self.path.startswith("/stall/"):  # headers and half a body, then silence
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            self.release.wait(60)  # silent until the test ends (the client's timeout is 0.3 s)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def redirect_server() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    release = threading.Event()
    handler = type("H", (_RedirectHandler,), {"seen": seen, "release": release})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def test_same_origin_redirect_followed(redirect_server: Any, tmp_path: Path) -> None:
    base, seen = redirect_server
    result, _, _ = run(cfg(f"{base}/old/"), tmp_path / "d.gz")
    assert gzip.decompress(result.path.read_bytes()).startswith(b'{"event":"a"')
    assert [p.split("?")[0] for p, _ in seen] == ["/old/", "/api/2.0/export/"]
    assert "from_date=2024-01-01" in seen[1][0] and seen[1][1] is not None


def test_redirect_to_other_host_refused(redirect_server: Any, tmp_path: Path) -> None:
    base, seen = redirect_server
    with pytest.raises(APIError, match="another host") as info:
        run(cfg(f"{base}/away/"), tmp_path / "d.gz")
    assert len(seen) == 1 and info.value.status_code == 302
    assert leftovers(tmp_path) == []


def test_stalled_body_network_error(redirect_server: Any, tmp_path: Path) -> None:
    base, seen = redirect_server
    with pytest.raises(NetworkError, match="stalled") as info:
        run(cfg(f"{base}/stall/", max_retries=1, read_timeout=0.3), tmp_path / "d.gz")
    assert len(seen) == 2 and info.value.__cause__ is not None
    assert leftovers(tmp_path) == []


def test_short_plain_body_is_truncation(redirect_server: Any, tmp_path: Path) -> None:
    base, seen = redirect_server
    with pytest.raises(IncompleteDownloadError) as info:
        run(cfg(f"{base}/short/", max_retries=1), tmp_path / "d.jsonl")
    assert len(seen) == 2 and "2 attempts" in str(info.value)
    assert leftovers(tmp_path) == []


def test_redirect_loop_stops(redirect_server: Any, tmp_path: Path) -> None:
    base, seen = redirect_server
    with pytest.raises(APIError, match="redirects"):
        run(cfg(f"{base}/loop/"), tmp_path / "d.gz")
    assert len(seen) == 6


# --------------------------------------------------------------------------- verifier properties

_PAYLOAD = b"".join(
    json.dumps({"event": "e", "properties": {"time": T0 + i, "i": i}}).encode() + b"\n"
    for i in range(400)
)
_GZ = gzip.compress(_PAYLOAD[:9000]) + gzip.compress(_PAYLOAD[9000:])


def _feed(data: bytes, cuts: list[int]) -> _BodyVerifier:
    v = _BodyVerifier()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(points):
        v.feed(data[a:b])
    v.finish()
    return v


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=8))
def test_verifier_accepts_any_chunking(cuts: list[int]) -> None:
    assert _feed(_GZ, cuts).compressed
    assert not _feed(_PAYLOAD, cuts).compressed


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=len(_GZ) - 1), st.lists(st.integers(0), max_size=4))
def test_verifier_rejects_any_gzip_prefix(cut: int, cuts: list[int]) -> None:
    if cut == len(gzip.compress(_PAYLOAD[:9000])):
        return  # exactly the first member: a complete body
    with pytest.raises(_Truncated):
        _feed(_GZ[:cut], cuts)


@pytest.mark.parametrize(
    "tail, bad",
    [
        (b"Export terminated early: timeout\n\n", True),
        (b'{"event":"terminated early","properties":{}}\n', False),
        (b"", False),
    ],
)
def test_verifier_terminated_early(tail: bytes, bad: bool) -> None:
    for body in (_PAYLOAD + tail, gzip.compress(_PAYLOAD + tail)):
        if bad:
            with pytest.raises(_Truncated, match="terminated early"):
                _feed(body, [])
        else:
            _feed(body, [])


def test_verifier_corrupt_and_trailing_garbage() -> None:
    with pytest.raises(_Truncated, match="corrupt"):
        _feed(_GZ + b"garbage", [])
    with pytest.raises(_Truncated):
        _feed(_GZ + b"\x00\x00xyz", [])
    _feed(_GZ + b"\x00" * 1000, [7, 99])
    with pytest.raises(_Truncated):
        _feed(b"\x1f", [])
    # Only the gzip magic makes a body compressed; anything else is plain bytes to us.
    assert not _feed(zlib.compress(_PAYLOAD), []).compressed


def test_a_ca_bundle_is_checked_again_once_its_file_changes(tmp_path: Path) -> None:
    import certifi

    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes())
    TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="s", verify=str(bundle))
    TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="s", verify=str(bundle))
    bundle.write_text("not a certificate\n")
    with pytest.raises(InvalidArgumentError, match="not a CA bundle"):
        TransportConfig(base_url=DEFAULT_BASE_URL, api_secret="s", verify=str(bundle))


def test_a_session_honours_the_environment_proxies_and_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The environment's proxy and CA settings, read once per server for a
    session's many requests, are those requests itself gives each request."""
    import requests

    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    plain = requests.Session()
    with make_session() as session:
        for url in ("https://127.0.0.1/api/2.0/export", "https://127.0.0.2/api/2.0/export"):
            for _ in range(2):  # the second time from what the session kept
                got = session.merge_environment_settings(url, {}, True, True, None)
                assert got == plain.merge_environment_settings(url, {}, True, True, None)
                got["proxies"].clear()  # a caller's changes stay its own
        first = session.merge_environment_settings("https://127.0.0.1/x", {}, True, True, None)
        assert first["proxies"]["https"] == "http://127.0.0.1:9"
        assert first["verify"] == str(bundle)
        bypassed = session.merge_environment_settings("https://127.0.0.2/x", {}, True, True, None)
        assert "https" not in bypassed["proxies"]
