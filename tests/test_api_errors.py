"""Every error path of ``read_robotmia_export``, end to end against the local server.

Retry backoff: ``read_robotmia_export`` exposes ``max_retries`` but not the transport's
``backoff_base`` (1 s), so a retry sleeps up to about 1 s. Tests that retry use
``max_retries=1`` (one retry, at most ~1 s) and are few; tests of exhausted retries
use ``max_retries=0`` and sleep not at all.
"""

from __future__ import annotations

import gzip
import threading
from typing import Any

import orjson
import pandas as pd
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import Fault
from tests.conftest import local_seconds as lsec

DAY = "2024-02-01"


def ev(name: str, t: Any, **props: Any) -> dict[str, Any]:
    return {"event": name, "properties": {"time": t, **props}}


EVENTS = [ev(f"e{i % 3}", lsec(DAY, 60 * i), i=i, pad="p" * 40) for i in range(200)]


def read(srv: Any, start: Any = DAY, end: Any = DAY, **kwargs: Any) -> Any:
    kwargs.setdefault("api_secret", srv.api_secret)
    kwargs.setdefault("project_timezone", "UTC")
    kwargs.setdefault("base_url", srv.url)
    return rf.read_robotmia_export(start, end, **kwargs)


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), *map(str, exc.args)):
        for s in secrets:
            assert s not in text


def assert_exact_rows(df: pd.DataFrame) -> None:
    assert df["properties.i"].tolist() == list(range(200))


# ------------------------------------------------------------------ final HTTP errors


def test_401_wrong_secret(server, secret):
    srv = server(EVENTS)
    wrong = "wrong-secret-7f3e2d1c"
    with pytest.raises(rf.AuthenticationError) as info:
        read(srv, api_secret=wrong)
    assert isinstance(info.value, rf.RobotmiaError)
    assert "401" in str(info.value)
    assert_no_secret(info.value, wrong, secret)
    assert len(srv.requests) == 1
    assert srv.requests[0].status == 401
    assert not srv.requests[0].authorized


def test_403_is_authentication_error_and_not_retried(server, secret):
    srv = server(EVENTS)
    srv.add_fault(Fault(status=403, message="project locked"))
    with pytest.raises(rf.AuthenticationError) as info:
        read(srv)
    assert info.value.status_code == 403
    assert_no_secret(info.value, secret)
    assert len(srv.requests) == 1


def test_400_carries_server_message(server, secret):
    srv = server(EVENTS)
    message = "invalid where parameter: unexpected token ')' at 12"
    srv.add_fault(Fault(status=400, message=message))
    with pytest.raises(rf.APIError) as info:
        read(srv, where='properties["x"] == 1')
    err = info.value
    assert err.status_code == 400
    assert err.server_message == message
    assert message in str(err)
    assert DAY in str(err)
    assert_no_secret(err, secret)
    assert len(srv.requests) == 1


def test_404_wrong_path_is_final(server):
    srv = server(EVENTS)
    with pytest.raises(rf.APIError) as info:
        read(srv, base_url=srv.url.replace("/api/2.0/export/", "/api/2.0/exports/"))
    assert info.value.status_code == 404
    assert len(srv.requests) == 1


# ------------------------------------------------------------------ retried, then success


def test_500_then_success_gives_exact_rows(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(status=500))
    df = read(srv, max_retries=1)
    assert_exact_rows(df)
    assert [r.status for r in srv.requests] == [500, 200]


def test_truncated_body_then_success(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(truncate_at=200))
    df = read(srv, max_retries=1)
    assert_exact_rows(df)
    assert len(srv.requests) == 2
    assert srv.requests[0].bytes_sent == 200


def test_terminated_early_then_success(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(terminated_early=True))
    df = read(srv, max_retries=1)
    assert_exact_rows(df)
    assert len(srv.requests) == 2


def test_429_retry_after_then_success(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(status=429, retry_after=0.4, message="rate limited"))
    df = read(srv, max_retries=1)
    assert_exact_rows(df)
    first, second = srv.requests
    assert first.status == 429
    assert second.status == 200
    # Retry-After honoured (a lower bound: the 429 is logged before the client sees it)
    assert second.started - first.ended >= 0.35


def test_one_failing_day_among_several_is_retried_alone(server):
    events = [ev("d", lsec(f"2024-02-0{d}", i), day=d, i=i) for d in (1, 2, 3) for i in range(5)]
    srv = server(events)
    srv.add_fault(Fault(status=503, match=lambda p: p["from_date"] == "2024-02-02"))
    df = read(srv, "2024-02-01", "2024-02-03", max_retries=1, window_days=1)
    assert df["properties.day"].tolist() == [1] * 5 + [2] * 5 + [3] * 5
    assert df["properties.i"].tolist() == list(range(5)) * 3
    days = sorted(r.params["from_date"] for r in srv.requests)
    assert days == ["2024-02-01", "2024-02-02", "2024-02-02", "2024-02-03"]


# ------------------------------------------------------------------ retries exhausted


def test_5xx_exhausted_is_api_error(server, secret):
    srv = server(EVENTS)
    srv.add_fault(Fault(status=503, message="maintenance", times=3))
    with pytest.raises(rf.APIError) as info:
        read(srv, max_retries=0)
    assert info.value.status_code == 503
    assert info.value.server_message == "maintenance"
    assert_no_secret(info.value, secret)
    assert len(srv.requests) == 1


def test_truncated_exhausted_is_incomplete_download(server, secret):
    srv = server(EVENTS)
    srv.add_fault(Fault(truncate_at=100, times=3))
    with pytest.raises(rf.IncompleteDownloadError) as info:
        read(srv, max_retries=0)
    assert DAY in str(info.value)
    assert_no_secret(info.value, secret)
    assert len(srv.requests) == 1


def test_reset_exhausted_is_robotmia_error(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(reset=True, times=3))
    with pytest.raises((rf.IncompleteDownloadError, rf.NetworkError)):
        read(srv, max_retries=0)
    assert len(srv.requests) == 1


def test_corrupt_gzip_body_is_an_error(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(garbage=b"\x1f\x8bthis is not gzip at all" * 4, times=3))
    with pytest.raises(rf.RobotmiaError):
        read(srv, max_retries=0)


def test_connection_refused_is_network_error(server, secret):
    srv = server(EVENTS)
    url = srv.url
    srv.stop()
    with pytest.raises(rf.NetworkError) as info:
        read(srv, base_url=url, max_retries=0)
    assert DAY in str(info.value)
    assert_no_secret(info.value, secret)


def test_read_timeout_is_network_error(server):
    srv = server(EVENTS)
    srv.add_fault(Fault(hold=threading.Event()))  # no byte until the server stops
    with pytest.raises(rf.NetworkError, match=r"timeout=0\.3"):
        read(srv, timeout=0.3, max_retries=0)


# ------------------------------------------------------------------ parse errors


def test_parse_error_names_day_window_and_line(server):
    good = [orjson.dumps(ev("g", lsec("2024-02-02", i), i=i)) for i in range(3)]
    body = good[0] + b"\n" + good[1] + b"\n\n" + b'{"event": "broken"\n' + good[2] + b"\n"
    srv = server([ev("g", lsec(d, 1)) for d in ("2024-02-01", "2024-02-02", "2024-02-03")])
    srv.add_fault(Fault(raw_body=body, match=lambda p: p["from_date"] == "2024-02-02"))
    with pytest.raises(rf.ParseError) as info:
        read(srv, "2024-02-01", "2024-02-03", window_days=1)
    err = info.value
    assert err.line_number == 4
    assert "2024-02-02" in str(err)
    assert "line 4" in str(err)
    assert isinstance(err, ValueError)


def test_parse_error_in_a_multi_day_window_names_the_window_and_line(server):
    good = [orjson.dumps(ev("g", lsec(f"2024-02-0{d}", 1))) for d in (1, 2, 3)]
    body = good[0] + b"\n" + good[1] + b"\n\n" + b'{"event": "broken"\n' + good[2] + b"\n"
    srv = server([])
    srv.add_fault(Fault(raw_body=body))
    with pytest.raises(rf.ParseError) as info:
        read(srv, "2024-02-01", "2024-02-03")
    assert info.value.line_number == 4
    assert "window 2024-02-01..2024-02-03" in str(info.value) and "line 4" in str(info.value)


def test_parse_error_in_a_gzip_file_counts_blank_lines(tmp_path):
    lines = [b"", orjson.dumps(ev("g", 1)), b"", b"", b"not json", orjson.dumps(ev("g", 2))]
    p = tmp_path / "e.jsonl.gz"
    p.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(rf.ParseError) as info:
        rf.read_export_file(p, project_timezone="UTC")
    assert info.value.line_number == 5
    assert "e.jsonl.gz" in str(info.value)


# ------------------------------------------------------------------ bad arguments


BAD_ARGUMENTS = [
    pytest.param({"from_date": "2024-02-03", "to_date": "2024-02-01"}, id="from-after-to"),
    pytest.param({"from_date": "2024-13-01"}, id="month-13"),
    pytest.param({"from_date": "2024-1-1"}, id="unpadded"),
    pytest.param({"to_date": "2024-02-30"}, id="feb-30"),
    pytest.param({"from_date": "01/02/2024"}, id="us-format"),
    pytest.param({"from_date": ""}, id="empty-date"),
    pytest.param({"from_date": 20240201}, id="int-date"),
    pytest.param({"project_timezone": "Mars/Olympus_Mons"}, id="unknown-tz"),
    pytest.param({"project_timezone": None}, id="no-tz"),
    pytest.param({"project_timezone": ""}, id="empty-tz"),
    pytest.param({"base_url": "http://example.com/api/2.0/export/"}, id="http-remote"),
    pytest.param({"base_url": "http://data.robotmia.com/api/2.0/export/"}, id="http-robotmia"),
    pytest.param({"base_url": "http://127.0.0.1.example.com/api/"}, id="http-lookalike"),
    pytest.param({"base_url": "ftp://127.0.0.1/export/"}, id="ftp"),
    pytest.param({"base_url": "not a url"}, id="garbage-url"),
    pytest.param({"api_secret": ""}, id="empty-secret"),
    pytest.param({"api_secret": None}, id="missing-secret"),
    pytest.param({"event": []}, id="event-empty-list"),
    pytest.param({"event": ["ok", 3]}, id="event-non-string"),
    pytest.param({"return_type": "dataframe"}, id="bad-return-type"),
    pytest.param({"on_bad_lines": "ignore"}, id="bad-on-bad-lines"),
    pytest.param({"dtype_backend": "numpy"}, id="bad-dtype-backend"),
    pytest.param({"columns": ["nope"]}, id="bad-column"),
    pytest.param({"max_retries": -1}, id="negative-retries"),
    pytest.param({"concurrency": 0}, id="zero-concurrency"),
]


@pytest.mark.parametrize("overrides", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error_before_any_request(server, overrides):
    srv = server(EVENTS)
    kwargs: dict[str, Any] = {
        "from_date": DAY,
        "to_date": DAY,
        "api_secret": srv.api_secret,
        "project_timezone": "UTC",
        "base_url": srv.url,
    }
    kwargs.update(overrides)
    start, end = kwargs.pop("from_date"), kwargs.pop("to_date")
    with pytest.raises(ValueError):
        rf.read_robotmia_export(start, end, **kwargs)
    assert srv.requests == []


def test_bad_arguments_do_not_show_the_secret(server, secret):
    srv = server(EVENTS)
    with pytest.raises(ValueError) as info:
        read(srv, base_url="http://example.com/api/2.0/export/")
    assert_no_secret(info.value, secret)
    assert "https" in str(info.value)
    assert srv.requests == []


def test_whitespace_secret_counts_as_missing(server, monkeypatch):
    srv = server(EVENTS)
    monkeypatch.setenv("ROBOTMIA_API_SECRET", "")
    with pytest.raises(ValueError):
        read(srv, api_secret=None)
    assert srv.requests == []


def test_positional_options_are_refused(server):
    srv = server(EVENTS)
    with pytest.raises(TypeError):
        rf.read_robotmia_export(DAY, DAY, "e0")  # type: ignore[misc]
    assert srv.requests == []


# ------------------------------------------------------------------ loopback URLs


def test_localhost_url_accepted(server):
    srv = server(EVENTS)
    df = read(srv, base_url=f"http://localhost:{srv.port}/api/2.0/export/")
    assert_exact_rows(df)
    df = read(srv, base_url=f"HTTP://LocalHost:{srv.port}/api/2.0/export/")
    assert len(df) == 200


def test_ipv6_loopback_url_accepted(server):
    try:
        srv = server(EVENTS, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert srv.url.startswith("http://[::1]:")
    assert_exact_rows(read(srv))


@pytest.mark.parametrize("url", ["http://127.0.0.1/api/2.0/export/", "http://127.9.9.9:9/x/"])
def test_loopback_http_is_not_a_value_error(server, url):
    # Accepted as a URL; nothing listens there, so the failure is a network one.
    srv = server(EVENTS)
    with pytest.raises(rf.NetworkError):
        read(srv, base_url=url, max_retries=0)
