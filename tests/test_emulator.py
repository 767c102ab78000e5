"""The local export server and the event generator: real HTTP over loopback, no mocks."""

from __future__ import annotations

import base64
import datetime
import gzip
import io
import logging
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import urllib3

from robotmia_frames.emulator import (
    ExportServer,
    Fault,
    GeneratorConfig,
    RequestRecord,
    generate_events,
    iter_generated_events,
    serve_forever,
    write_export_file,
)
from robotmia_frames.emulator import server as server_module
from robotmia_frames.emulator.generator import EVENT_NAMES
from tests.conftest import wait_until

SECRET = "emulator-test-secret-91d2"
AUTH = (SECRET, "")
D0 = datetime.date(2024, 3, 10)
T0 = (D0 - datetime.date(1970, 1, 1)).days * 86400  # 2024-03-10 00:00 project-local
DAY1 = {"from_date": "2024-03-10", "to_date": "2024-03-10"}


def ev(name: str, t: Any, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"time": t, "distinct_id": "u1", **props}}


# Events around the midnights of 2024-03-10 (deliberately shuffled).
EVENTS = [
    ev("b", T0 + 86400, n=4),  # 2024-03-11 00:00:00
    ev("a", T0 - 1, n=-1),  # 2024-03-09 23:59:59
    ev("a", T0 + 86399.5, n=3),  # 2024-03-10 23:59:59.5
    ev("b", T0, n=1),  # 2024-03-10 00:00:00
    ev("a", T0 + 3600, n=2),
    ev("c", T0 - 0.25, n=0),  # 2024-03-09 23:59:59.75
]


@pytest.fixture
def srv() -> Iterator[ExportServer]:
    with ExportServer(EVENTS, api_secret=SECRET, project_timezone="Europe/Paris") as server:
        yield server


def fetch(
    url: str,
    params: dict[str, str] | None = None,
    *,
    auth: Any = AUTH,
    method: str = "GET",
    **kw: Any,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and the raw (still encoded) body bytes; always closes."""
    if method == "GET":
        kw["params"] = params
    else:
        kw["data"] = params
    kw.setdefault("timeout", 10)
    with requests.request(method, url, auth=auth, stream=True, **kw) as r:
        raw = r.raw.read(decode_content=False)
        return r.status_code, dict(r.headers), raw


def rows(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(raw).splitlines()]


def ns(raw: bytes) -> list[int]:
    return [r["properties"]["n"] for r in rows(raw)]


# --------------------------------------------------------------------------- basics


def test_url_and_lifecycle() -> None:
    srv = ExportServer(api_secret=SECRET)
    with pytest.raises(RuntimeError):
        _ = srv.port
    srv.start()
    try:
        assert srv.url == f"http://127.0.0.1:{srv.port}/api/2.0/export/"
        assert srv.host == "127.0.0.1" and "127.0.0.1" in repr(srv)
        status, _, raw = fetch(srv.url, DAY1)
        assert status == 200 and gzip.decompress(raw) == b""  # nothing to serve
        port = srv.port
        srv.stop()
        srv.stop()  # idempotent
        with pytest.raises(requests.ConnectionError):
            fetch(srv.url, DAY1)
        srv.start()  # restarts on the same port
        assert srv.port == port and fetch(srv.url, DAY1)[0] == 200
    finally:
        srv.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "::", ""])
def test_only_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ExportServer(host=host)


def test_localhost_host() -> None:
    with ExportServer(EVENTS, api_secret=SECRET, host="localhost") as srv:
        assert srv.url.startswith("http://localhost:")
        assert fetch(srv.url, DAY1)[0] == 200


def test_ipv6_loopback() -> None:
    srv = ExportServer(EVENTS, api_secret=SECRET, host="::1")
    try:
        srv.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with srv:
        assert srv.url.startswith("http://[::1]:")
        assert ns(fetch(srv.url, DAY1)[2]) == [1, 2, 3]


def test_gzip_jsonl_sorted_and_headers(srv: ExportServer) -> None:
    status, headers, raw = fetch(srv.url, DAY1)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Encoding"] == "gzip" and "Content-Length" not in headers
    assert raw[:2] == b"\x1f\x8b"
    text = gzip.decompress(raw)
    assert text.endswith(b"\n") and b" " not in text  # compact orjson lines
    assert ns(raw) == [1, 2, 3]  # sorted by time
    # requests' own decoding agrees
    with requests.get(srv.url, params=DAY1, auth=AUTH, timeout=10) as r:
        assert r.content == text


def test_date_filter_uses_local_days(srv: ExportServer) -> None:
    assert ns(fetch(srv.url, {"from_date": "2024-03-09", "to_date": "2024-03-09"})[2]) == [-1, 0]
    assert ns(fetch(srv.url, {"from_date": "2024-03-11", "to_date": "2024-03-12"})[2]) == [4]
    assert ns(fetch(srv.url, {"from_date": "2024-03-09", "to_date": "2024-03-11"})[2]) == [
        -1,
        0,
        1,
        2,
        3,
        4,
    ]
    assert rows(fetch(srv.url, {"from_date": "2023-01-01", "to_date": "2023-01-01"})[2]) == []


def test_untimed_events_served_for_every_range() -> None:
    odd = [
        ev("x", "1710028800", n=10),
        ev("x", True, n=11),
        {"event": "y", "properties": {"n": 12}},
    ]
    with ExportServer([*odd, *EVENTS], api_secret=SECRET) as srv:
        assert ns(fetch(srv.url, DAY1)[2]) == [1, 2, 3, 10, 11, 12]
        assert ns(fetch(srv.url, {"from_date": "2000-01-01", "to_date": "2000-01-01"})[2]) == [
            10,
            11,
            12,
        ]


def test_event_filter_and_limit(srv: ExportServer) -> None:
    wide = {"from_date": "2024-03-09", "to_date": "2024-03-11"}
    assert ns(fetch(srv.url, {**wide, "event": '["a"]'})[2]) == [-1, 2, 3]
    assert ns(fetch(srv.url, {**wide, "event": '["a", "c"]'})[2]) == [-1, 0, 2, 3]
    assert ns(fetch(srv.url, {**wide, "event": '["nope"]'})[2]) == []
    assert ns(fetch(srv.url, {**wide, "limit": "2"})[2]) == [-1, 0]
    assert ns(fetch(srv.url, {**wide, "unknown": "x"})[2]) == [-1, 0, 1, 2, 3, 4]


def test_post_form_and_trailing_slash(srv: ExportServer) -> None:
    status, _, raw = fetch(srv.url, {**DAY1, "event": '["b"]'}, method="POST")
    assert status == 200 and ns(raw) == [1]
    assert ns(fetch(srv.url.rstrip("/"), DAY1)[2]) == [1, 2, 3]
    assert srv.requests[0].method == "POST" and srv.requests[0].params["event"] == '["b"]'


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("auth", [None, ("wrong", ""), ("", SECRET), "garbage"])
def test_401(srv: ExportServer, auth: Any) -> None:
    headers = {"Authorization": "Basic !!!notbase64"} if auth == "garbage" else {}
    status, hdrs, raw = fetch(
        srv.url, DAY1, auth=None if auth == "garbage" else auth, headers=headers
    )
    assert status == 401
    assert hdrs["WWW-Authenticate"] == 'Basic realm="robotmia"'
    assert hdrs["Content-Type"] == "application/json"
    assert "API secret" in orjson.loads(raw)["error"]
    assert srv.requests[-1].authorized is False and srv.requests[-1].status == 401


def test_any_password_accepted(srv: ExportServer) -> None:
    assert fetch(srv.url, DAY1, auth=(SECRET, "whatever"))[0] == 200


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-03-10"}, "to_date"),
        ({"from_date": "2024-3-10", "to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-03-10", "to_date": "2024-02-30"}, "to_date"),
        ({"from_date": "20240310", "to_date": "2024-03-10"}, "from_date"),
        ({"from_date": "2024-03-11", "to_date": "2024-03-10"}, "after to_date"),
        ({**DAY1, "event": "Viewed report"}, "event"),
        ({**DAY1, "event": '["a", 1]'}, "event"),
        ({**DAY1, "event": '{"a": 1}'}, "event"),
        ({**DAY1, "event": "[]"}, "event"),
        ({**DAY1, "limit": "0"}, "limit"),
        ({**DAY1, "limit": "ten"}, "limit"),
    ],
)
def test_400_names_the_parameter(srv: ExportServer, params: dict[str, str], name: str) -> None:
    status, headers, raw = fetch(srv.url, params)
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert name in orjson.loads(raw)["error"]


def test_404_and_405(srv: ExportServer) -> None:
    base = srv.url.replace("/api/2.0/export/", "")
    status, headers, raw = fetch(base + "/api/2.0/segmentation/", DAY1)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert "error" in orjson.loads(raw)
    status, _, raw = fetch(srv.url, DAY1, method="PUT")
    assert status == 405 and "error" in orjson.loads(raw)


def test_require_https() -> None:
    with ExportServer(EVENTS, api_secret=SECRET, require_https=True) as srv:
        status, _, raw = fetch(srv.url, DAY1)
        assert status == 400 and "HTTPS" in orjson.loads(raw)["error"]


# --------------------------------------------------------------------------- request log


def test_request_log_never_holds_the_secret(srv: ExportServer) -> None:
    before = time.monotonic()
    fetch(srv.url, {**DAY1, "api_secret": SECRET})
    fetch(srv.url, DAY1, auth=("bad", "pw"))
    first, second = srv.requests
    assert isinstance(first, RequestRecord)
    assert (first.method, first.path, first.status, first.authorized) == (
        "GET",
        "/api/2.0/export/",
        200,
        True,
    )
    assert first.params == {**DAY1, "api_secret": "***"}
    assert before <= first.time == first.started <= first.ended and first.bytes_sent > 20
    assert second.status == 401 and not second.authorized
    token = base64.b64encode(f"{SECRET}:".encode()).decode()
    text = repr(srv.requests)
    assert SECRET not in text and token not in text
    srv.clear_requests()
    assert srv.requests == []


def test_quiet_on_client_disconnect(capfd: pytest.CaptureFixture[str]) -> None:
    cfg = GeneratorConfig(events_per_day=3000, from_date="2024-01-01", to_date="2024-01-31")
    with ExportServer(api_secret=SECRET, generate=cfg) as srv:
        auth = base64.b64encode(f"{SECRET}:".encode()).decode()
        request = (
            "GET /api/2.0/export/?from_date=2024-01-01&to_date=2024-01-31 HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Basic {auth}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(request.encode())
            assert sock.recv(100).startswith(b"HTTP/1.0 200")
        wait_until(lambda: srv.requests, "the server to log the abandoned answer")
        (rec,) = srv.requests
        assert rec.status == 200 and rec.error and "disconnected" in rec.error
    assert capfd.readouterr().err == ""


def test_concurrent_requests() -> None:
    events = generate_events(4000, days=4, seed=5)
    with ExportServer(events, api_secret=SECRET) as srv:
        days = [f"2024-01-0{d}" for d in (1, 2, 3, 4)] * 2

        def one(day: str) -> int:
            return len(rows(fetch(srv.url, {"from_date": day, "to_date": day})[2]))

        with ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(one, days))
        assert counts == [1000] * 8
        assert len(srv.requests) == 8


# --------------------------------------------------------------------------- faults


def test_fault_status_retry_after_and_times(srv: ExportServer) -> None:
    srv.add_fault(Fault(status=429, retry_after=2, message="slow down", times=2))
    srv.add_fault(Fault(status=503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"))
    assert [f.times for f in srv.faults] == [2, 1]
    for _ in range(2):
        status, headers, raw = fetch(srv.url, DAY1)
        assert (status, headers["Retry-After"]) == (429, "2")
        assert orjson.loads(raw) == {"error": "slow down"}
    status, headers, raw = fetch(srv.url, DAY1)
    assert status == 503 and headers["Retry-After"].startswith("Wed")
    assert orjson.loads(raw) == {"error": "Service Unavailable"}
    assert fetch(srv.url, DAY1)[0] == 200 and srv.faults == []
    assert [r.fault.status if r.fault else None for r in srv.requests] == [429, 429, 503, None]


def test_fault_after_auth_and_match(srv: ExportServer) -> None:
    srv.add_fault(Fault(status=500, match=lambda p: p.get("event") == '["a"]'))
    assert fetch(srv.url, DAY1, auth=None)[0] == 401  # unauthorized: fault untouched
    assert fetch(srv.url, DAY1)[0] == 200  # does not match
    assert fetch(srv.url, {**DAY1, "event": '["a"]'})[0] == 500
    assert fetch(srv.url, {**DAY1, "event": '["a"]'})[0] == 200


def test_fault_truncate_at(srv: ExportServer) -> None:
    full = fetch(srv.url, DAY1)[2]
    srv.add_fault(Fault(truncate_at=len(full) - 5))
    status, _, raw = fetch(srv.url, DAY1)
    assert status == 200 and raw == full[:-5]
    with pytest.raises(EOFError):  # gzip trailer missing
        gzip.decompress(raw)
    d = zlib.decompressobj(wbits=31)
    d.decompress(raw)
    assert not d.eof
    assert srv.requests[-1].bytes_sent == len(full) - 5


def test_fault_reset() -> None:
    events = generate_events(3000, days=1)
    with ExportServer(events, api_secret=SECRET) as srv:
        srv.add_fault(Fault(reset=True))
        with pytest.raises((requests.RequestException, urllib3.exceptions.ProtocolError)) as info:
            fetch(srv.url, {"from_date": "2024-01-01", "to_date": "2024-01-01"})
        assert "reset" in str(info.value).lower()
        assert srv.requests[-1].bytes_sent > 0
        assert fetch(srv.url, {"from_date": "2024-01-01", "to_date": "2024-01-01"})[0] == 200


def test_fault_terminated_early(srv: ExportServer) -> None:
    srv.add_fault(Fault(terminated_early=True))
    lines = gzip.decompress(fetch(srv.url, DAY1)[2]).splitlines()
    assert lines[-1] == b"terminated early"
    assert [orjson.loads(x)["properties"]["n"] for x in lines[:-1]] == [1]  # half of 3
    srv.add_fault(Fault(terminated_early=True, terminate_after=2, gzip=False))
    lines = fetch(srv.url, DAY1)[2].splitlines()
    assert len(lines) == 3 and lines[-1] == b"terminated early"


def test_fault_delay_first_byte(srv: ExportServer) -> None:
    srv.add_fault(Fault(delay_first_byte=0.4))
    t = time.monotonic()
    status, _, _ = fetch(srv.url, DAY1)
    assert status == 200 and time.monotonic() - t >= 0.4
    with pytest.raises(requests.Timeout):
        srv.add_fault(Fault(delay_first_byte=600))  # the server's stop ends the wait
        fetch(srv.url, DAY1, timeout=0.1)


def test_gzip_off_per_fault_and_per_server(srv: ExportServer) -> None:
    srv.add_fault(Fault(gzip=False))
    _, headers, raw = fetch(srv.url, DAY1)
    assert "Content-Encoding" not in headers
    assert [orjson.loads(x)["properties"]["n"] for x in raw.splitlines()] == [1, 2, 3]
    with ExportServer(EVENTS, api_secret=SECRET, gzip=False) as plain:
        _, headers, raw = fetch(plain.url, DAY1)
        assert "Content-Encoding" not in headers and raw.count(b"\n") == 3
        plain.add_fault(Fault(gzip=True))
        assert ns(fetch(plain.url, DAY1)[2]) == [1, 2, 3]


def test_fault_content_encoding_lies(srv: ExportServer) -> None:
    srv.add_fault(Fault(content_encoding="identity"))
    _, headers, raw = fetch(srv.url, DAY1)
    assert headers["Content-Encoding"] == "identity" and raw[:2] == b"\x1f\x8b"
    srv.add_fault(Fault(content_encoding=""))
    _, headers, raw = fetch(srv.url, DAY1)
    assert "Content-Encoding" not in headers and ns(raw) == [1, 2, 3]
    srv.add_fault(Fault(gzip=False, content_encoding="gzip"))
    _, headers, raw = fetch(srv.url, DAY1)
    assert headers["Content-Encoding"] == "gzip" and raw.startswith(b'{"event"')


def test_fault_garbage_and_raw_body(srv: ExportServer) -> None:
    srv.add_fault(Fault(garbage=b"\x1f\x8b\x08\x00not-deflate"))
    status, headers, raw = fetch(srv.url, DAY1)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert raw == b"\x1f\x8b\x08\x00not-deflate"
    srv.add_fault(Fault(raw_body=b"anything\n{bad json"))
    status, headers, raw = fetch(srv.url, DAY1)
    assert status == 200 and "Content-Encoding" not in headers and raw == b"anything\n{bad json"
    srv.add_fault(Fault(raw_body=gzip.compress(b"x\n"), content_encoding="gzip"))
    _, headers, raw = fetch(srv.url, DAY1)
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(raw) == b"x\n"


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault(times=0)
    with pytest.raises(ValueError):
        Fault(status=42)


def test_where_filter_hook(srv: ExportServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = {"from_date": "2024-03-09", "to_date": "2024-03-11", "where": "n>1"}
    # no hook: the built-in evaluator (robotmia_frames.where), for which n>1 is a typo
    status, _, raw = fetch(srv.url, wide)
    assert status == 400 and "unknown name 'n'" in orjson.loads(raw)["error"]
    assert ns(fetch(srv.url, {**wide, "where": 'properties["n"] > 1'})[2]) == [2, 3, 4]

    def where(expr: str, event: dict[str, Any]) -> bool:
        if expr == "bad":
            raise ValueError("syntax error at 1")
        return bool(event["properties"].get("n", 0) > 1)

    monkeypatch.setattr(server_module, "where_filter", where)
    assert ns(fetch(srv.url, wide)[2]) == [2, 3, 4]
    status, _, raw = fetch(srv.url, {**DAY1, "where": "bad"})
    assert status == 400 and "where" in orjson.loads(raw)["error"]
    srv.where_filter = lambda expr, event: event["event"] == "b"
    assert ns(fetch(srv.url, wide)[2]) == [1, 4]


# --------------------------------------------------------------------------- TLS


def test_tls_with_ca_bundle() -> None:
    with ExportServer(EVENTS, api_secret=SECRET, tls=True) as srv:
        assert srv.url.startswith("https://127.0.0.1:") and srv.ca_bundle
        bundle = srv.ca_bundle
        assert Path(bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")
        status, _, raw = fetch(srv.url, DAY1, verify=bundle)
        assert status == 200 and ns(raw) == [1, 2, 3]
        with pytest.raises(requests.exceptions.SSLError):
            fetch(srv.url, DAY1)  # the system trust store does not know the CA
        assert fetch(srv.url.replace("127.0.0.1", "localhost"), DAY1, verify=bundle)[0] == 200
    assert not Path(bundle).exists()


# --------------------------------------------------------------------------- lazy generation


def test_generate_mode_streams_generated_days() -> None:
    cfg = {"events_per_day": 50, "seed": 3, "from_date": "2024-01-02", "to_date": "2024-01-04"}
    with ExportServer(api_secret=SECRET, generate=cfg, project_timezone="America/New_York") as srv:
        got = rows(fetch(srv.url, {"from_date": "2024-01-01", "to_date": "2024-01-03"})[2])
        expected = list(
            iter_generated_events(
                "2024-01-02",
                "2024-01-03",
                events_per_day=50,
                seed=3,
                project_timezone="America/New_York",
            )
        )
        assert got == orjson.loads(orjson.dumps(expected))
        got = rows(fetch(srv.url, {"from_date": "2024-01-04", "to_date": "2024-01-09"})[2])
        assert len(got) == 50
        assert not rows(fetch(srv.url, {"from_date": "2024-02-01", "to_date": "2024-02-01"})[2])
        raw = fetch(
            srv.url, {"from_date": "2024-01-02", "to_date": "2024-01-04", "event": '["Purchase"]'}
        )[2]
        assert {r["event"] for r in rows(raw)} == {"Purchase"}


def test_serve_forever_prints_url() -> None:
    stop = threading.Event()
    out = io.StringIO()
    thread = threading.Thread(
        target=serve_forever,
        kwargs={
            "port": 0,
            "api_secret": SECRET,
            "events_per_day": 5,
            "days": 2,
            "stop": stop,
            "out": out,
        },
    )
    thread.start()
    try:
        wait_until(lambda: "http://" in out.getvalue(), "serve_forever to print its URL")
        url = out.getvalue().split("serving at ")[1].split()[0]
        assert len(rows(fetch(url, {"from_date": "2024-01-01", "to_date": "2024-01-05"})[2])) == 10
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive()  # the stop event ended it
    assert SECRET not in out.getvalue()


# --------------------------------------------------------------------------- generator


def test_generator_deterministic_per_day() -> None:
    rng = list(iter_generated_events("2024-02-27", "2024-03-02", events_per_day=200, seed=7))
    alone = list(iter_generated_events("2024-02-29", "2024-02-29", events_per_day=200, seed=7))
    day = datetime.date(2024, 2, 29)
    lo = (day - datetime.date(1970, 1, 1)).days * 86400
    within = [e for e in rng if lo <= e["properties"]["time"] < lo + 86400]
    assert alone == within and len(alone) == 200
    assert rng == list(
        iter_generated_events(datetime.date(2024, 2, 27), "2024-03-02", events_per_day=200, seed=7)
    )
    other = list(iter_generated_events("2024-02-29", "2024-02-29", events_per_day=200, seed=8))
    assert other != alone
    times = [e["properties"]["time"] for e in rng]
    assert times == sorted(times) and len(rng) == 1000
    ids = [e["properties"]["$insert_id"] for e in rng]
    assert len(set(ids)) == len(ids)
    shifted = list(iter_generated_events(day, day, events_per_day=200, seed=7, start_id=10**6))
    assert not {e["properties"]["$insert_id"] for e in shifted} & set(ids)


def test_generator_mix(capsys: pytest.CaptureFixture[str]) -> None:
    events = generate_events(20_000, days=10, seed=1)
    assert len(events) == 20_000
    names = Counter(e["event"] for e in events)
    assert 38 <= len(names) <= 42 and set(names) <= set(EVENT_NAMES)
    top = names.most_common()
    assert top[0][1] > 10 * top[-1][1]  # skewed
    sizes = [len(orjson.dumps(e)) for e in events]
    mean = sum(sizes) / len(sizes)
    with capsys.disabled():
        print(f"\n[generator] mean serialized line: {mean:.0f} bytes")
    assert 800 <= mean <= 1000

    per_name_types: dict[tuple[str, str], Counter[str]] = {}
    kinds: Counter[str] = Counter()
    fractional = 0
    for e in events:
        p = e["properties"]
        assert p["distinct_id"].startswith("user-") and "$os" in p and "$insert_id" in p
        t = p["time"]
        assert isinstance(t, (int, float)) and not isinstance(t, bool)
        fractional += isinstance(t, float)
        for k, v in p.items():
            per_name_types.setdefault((e["event"], k), Counter())[type(v).__name__] += 1
            if isinstance(v, dict):
                kinds["dict"] += 1
            elif isinstance(v, list) and v:
                kinds["list[" + type(v[0]).__name__ + "]"] += 1
            elif v is None:
                kinds["null"] += 1
    assert 0 < fractional < 60
    assert kinds["dict"] > 0 and kinds["list[str]"] > 0 and kinds["list[int]"] > 0
    assert kinds["null"] > 0
    conflicts = sum(
        min(c["str"], sum(n for t, n in c.items() if t in ("int", "float", "bool")))
        for c in per_name_types.values()
    )
    assert 50 <= conflicts <= 600  # about 1% of 20k rows
    custom = {k for (_, k) in per_name_types if not k.startswith(("$", "mp_"))} - {
        "distinct_id",
        "time",
    }
    assert len(custom) > 40


def test_generator_days_and_local_time() -> None:
    evs = list(iter_generated_events("2024-03-30", "2024-03-31", events_per_day=500, seed=2,
                                     project_timezone="Europe/Paris"))  # fmt: skip
    days = Counter(int(e["properties"]["time"] // 86400) for e in evs)
    base = (datetime.date(2024, 3, 30) - datetime.date(1970, 1, 1)).days
    assert days == {base: 500, base + 1: 500}
    hours = Counter(int(e["properties"]["time"] % 86400 // 3600) for e in evs)
    assert hours[19] > hours[4]  # a daily curve
    with pytest.raises(ValueError):
        list(iter_generated_events("2024-01-02", "2024-01-01"))
    with pytest.raises(ValueError):
        list(iter_generated_events("2024-1-1", "2024-01-01"))
    with pytest.raises(ValueError):
        list(iter_generated_events("2024-01-01", "2024-01-01", project_timezone="Mars/Base"))


def test_generate_events_exact_count() -> None:
    assert generate_events(0) == []
    evs = generate_events(101, days=4, from_date=datetime.date(2024, 5, 1))
    assert len(evs) == 101
    assert evs[:26] == list(iter_generated_events("2024-05-01", "2024-05-01", events_per_day=26))
    with pytest.raises(ValueError):
        generate_events(-1)


@pytest.mark.parametrize("compress", [True, False])
def test_write_export_file(tmp_path: Path, compress: bool) -> None:
    events = generate_events(300, days=3, seed=4)
    path = tmp_path / ("out.jsonl.gz" if compress else "out.jsonl")
    assert write_export_file(path, events, gzip=compress) == 300
    data = path.read_bytes()
    if compress:
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
    assert [orjson.loads(line) for line in data.splitlines()] == orjson.loads(orjson.dumps(events))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left
    first = path.read_bytes()
    assert write_export_file(path, iter(events), gzip=compress) == 300
    assert path.read_bytes() == first  # deterministic bytes


def test_write_export_file_failure_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.gz"
    path.write_bytes(b"old")

    def broken() -> Iterator[dict[str, Any]]:
        yield from generate_events(5)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_export_file(path, broken())
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_emulator_logger_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="robotmia_frames.emulator")
    with ExportServer(EVENTS, api_secret=SECRET) as srv:
        fetch(srv.url, DAY1)
    assert any(r.name == "robotmia_frames.emulator" for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
