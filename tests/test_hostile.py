"""Hostile servers, bytes and disks: no silent loss, no hang, every error names the day.

Each test drives the public API against the local export server (real sockets,
real files); the server's fault knobs play the proxy, the slow link and the bad
data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, Fault, generate_events
from tests.conftest import SECRET, ServerFactory, wait_until
from tests.strategies import json_values

DAY = dt.date(2024, 1, 1)
MODES = ("error", "skip", "warn")


def _kw(srv: ExportServer, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(
        api_secret=SECRET, project_timezone="UTC", base_url=srv.url, retry_backoff=0.01,
        max_retries=1, progress=False,
    )  # fmt: skip
    out.update(kw)
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------- 1. a 200 that is not an export

NOT_AN_EXPORT = {
    "html": Fault.html_page(times=None),
    "json_error": Fault.error_body("upstream exploded", times=None),
    "html_plain": Fault.html_page(times=None, gzip=False),
    "garbage_text": Fault(body=b"hello\nthis is not json\n", times=None),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(NOT_AN_EXPORT))
def test_a_200_that_is_not_an_export_fails_the_day_and_keeps_the_partition(
    server: ServerFactory, tmp_path: Path, kind: str, mode: str
) -> None:
    srv = server(generate_events(30, days=2))
    rf.export_to_parquet(tmp_path, DAY, DAY, **_kw(srv))
    before = _snapshot(tmp_path)
    assert any(k.startswith("date=2024-01-01/") for k in before)
    srv.add_fault(NOT_AN_EXPORT[kind])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rf.RobotmiaWarning)
        with pytest.raises(rf.RobotmiaError, match="2024-01-01") as info:
            rf.export_to_parquet(tmp_path, DAY, DAY, on_bad_lines=mode, **_kw(srv))
        with pytest.raises(rf.RobotmiaError, match=r"not an export|malformed line"):
            rf.read_robotmia_export(DAY, DAY, on_bad_lines=mode, **_kw(srv))
    if kind == "json_error":
        assert isinstance(info.value, rf.APIError)
        assert info.value.server_message == "upstream exploded"
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k.startswith("date=")} == {
        k: v for k, v in before.items() if k.startswith("date=")
    }


def test_a_body_with_some_good_lines_still_reads_with_skip(server: ServerFactory) -> None:
    good = b'{"event":"a","properties":{"time":1704067200,"n":1}}'
    srv = server([b"<oops>", good])
    df = rf.read_robotmia_export(DAY, DAY, on_bad_lines="skip", **_kw(srv))
    assert df["properties.n"].tolist() == [1]


def test_an_empty_body_is_an_empty_day(server: ServerFactory) -> None:
    srv = server([])
    df = rf.read_robotmia_export(DAY, DAY, on_bad_lines="skip", **_kw(srv))
    assert len(df) == 0


# ------------------------------------------------- 2, 3, 5. hostile bytes, both engines


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the C scanner on (where built) and off."""
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", "1" if request.param == "native" else "0")
    return str(request.param)


OK_LINE = b'{"event":"ok","properties":{"time":1704067200,"o":{"a":1},"x":"s"}}'


def _read_lines(tmp_path: Path, lines: list[bytes], **kw: Any) -> Any:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    kw.setdefault("return_type", "arrow")
    return rf.read_export_file(path, project_timezone="UTC", **kw)


def test_a_float_beyond_double_keeps_its_source_text(tmp_path: Path, engine: str) -> None:
    lines = [
        OK_LINE,
        b'{"event":"e","properties":{"time":1,"o":{"x":1e400,"y":-2.5E+999},"l":[1,1e400],'
        b'"x":1e400,"n":-1E400}}',
    ]
    t = _read_lines(tmp_path, lines)
    assert t.column("properties.o").to_pylist() == ['{"a":1}', '{"x":1e400,"y":-2.5E+999}']
    assert t.column("properties.l").to_pylist() == [None, ["1", "1e400"]]
    assert t.column("properties.x").to_pylist() == ["s", "1e400"]  # a mixed column
    assert t.column("properties.n").to_pylist() == [None, "-1E400"]
    assert str(t.schema.field("properties.n").type) == "string"


def test_big_integers_in_event_and_objects_keep_their_digits(tmp_path: Path, engine: str) -> None:
    lines = [
        OK_LINE,
        b'{"event":18446744073709551616,"properties":{"time":1}}',
        b'{"event":-99999999999999999999999,"properties":{"time":1}}',
        b'{"event":{"n":100000000000000000000000000001},"properties":{"time":1,'
        b'"o":{"n":100000000000000000000000000000,"m":[123456789012345678901234567890]}}}',
    ]
    t = _read_lines(tmp_path, lines)
    assert t.column("event").to_pylist() == [
        "ok",
        "18446744073709551616",
        "-99999999999999999999999",
        '{"n":100000000000000000000000000001}',
    ]
    assert t.column("properties.o").to_pylist()[3] == (
        '{"n":100000000000000000000000000000,"m":[123456789012345678901234567890]}'
    )
    # The event alone holds the big integer (no property column to give it away).
    for event in (b"18446744073709551616", b'{"n":100000000000000000000000000001}'):
        t = _read_lines(tmp_path, [OK_LINE, b'{"event":%s,"properties":{"time":1}}' % event])
        assert t.column("event").to_pylist() == ["ok", event.decode()]


def _deep(kind: str, depth: int) -> bytes:
    if kind == "list":
        value = "[" * depth + "1" + "]" * depth
    else:
        value = '{"a":' * depth + "1" + "}" * depth
    return (f'{{"event":"deep","properties":{{"time":1704067200,"v":{value}}}}}').encode()


@pytest.mark.parametrize("depth", [900, 1000, 1022, 1030, 5000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_deep_nesting_is_a_bad_line_not_a_recursion_error(
    tmp_path: Path, engine: str, kind: str, depth: int
) -> None:
    lines = [OK_LINE, _deep(kind, depth), OK_LINE]
    with pytest.raises(rf.ParseError, match="nested") as info:
        _read_lines(tmp_path, lines)
    assert info.value.line_number == 2
    t = _read_lines(tmp_path, lines, on_bad_lines="skip")
    assert t.column("event").to_pylist() == ["ok", "ok"]
    with pytest.warns(rf.RobotmiaWarning, match="line 2"):
        df = _read_lines(tmp_path, lines, on_bad_lines="warn", return_type="pandas")
    assert len(df) == 2


@pytest.mark.parametrize("kind", ["list", "object"])
def test_nesting_up_to_the_limit_is_read(tmp_path: Path, engine: str, kind: str) -> None:
    from robotmia_frames.parse._decode import MAX_NESTING

    df = _read_lines(tmp_path, [_deep(kind, MAX_NESTING)], return_type="pandas")
    value = df["properties.v"].iloc[0]
    if kind == "object":
        assert value == '{"a":' * MAX_NESTING + "1" + "}" * MAX_NESTING
    else:
        for _ in range(MAX_NESTING - 1):
            assert len(value) == 1
            value = value[0]
        assert list(value) == [1]


def test_deep_nesting_in_an_export_window(server: ServerFactory, engine: str) -> None:
    srv = server([OK_LINE, _deep("list", 1000), OK_LINE])
    with pytest.raises(rf.ParseError, match="window 2024-01-01, line 2"):
        rf.read_robotmia_export(DAY, DAY, **_kw(srv))
    df = rf.read_robotmia_export(DAY, DAY, on_bad_lines="skip", **_kw(srv))
    assert df["event"].tolist() == ["ok", "ok"]


# ------------------------------------------- 7, 8, 9, 11. slow, stubborn and absent servers


def _exports(srv: ExportServer) -> int:
    return sum(1 for r in srv.requests if r.path.startswith("/api/2.0/export"))


def test_a_trickling_body_is_a_stall_and_is_retried(server: ServerFactory) -> None:
    srv = server(generate_events(200, days=1))
    srv.add_fault(Fault(trickle_rate=40, trickle_after=200, times=1))
    df = rf.read_robotmia_export(DAY, DAY, stall_timeout=0.5, min_speed=1000, **_kw(srv))
    assert len(df) == 200


def test_a_body_that_always_trickles_fails_naming_the_setting(server: ServerFactory) -> None:
    srv = server(generate_events(200, days=1))
    srv.add_fault(Fault(trickle_rate=40, trickle_after=200, times=None))
    with pytest.raises(rf.NetworkError, match=r"stalled.*min_speed=1000.*stall_timeout=0\.5") as e:
        rf.read_robotmia_export(DAY, DAY, stall_timeout=0.5, min_speed=1000, **_kw(srv))
    assert "after 2 attempts" in str(e.value)


@pytest.mark.parametrize("bad", [{"stall_timeout": 0}, {"min_speed": -1}, {"max_retry_after": -1}])
def test_stall_and_wait_settings_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(rf.InvalidArgumentError, match=next(iter(bad))):
        rf.Client(**bad)


@pytest.mark.parametrize("retry_after", [100000, "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_a_retry_after_beyond_the_cap_fails_at_once(
    server: ServerFactory, retry_after: Any
) -> None:
    srv = server(generate_events(20, days=1))
    srv.add_fault(Fault(status=429, retry_after=retry_after, times=None))
    with pytest.raises(rf.APIError, match=r"Try again after \d{4}-\d\d-\d\d") as info:
        rf.read_robotmia_export(DAY, DAY, **_kw(srv, max_retries=5))
    assert info.value.status_code == 429
    assert "max_retry_after=300" in str(info.value)
    assert _exports(srv) == 1


def test_a_retry_after_within_the_cap_is_waited_for(server: ServerFactory) -> None:
    srv = server(generate_events(20, days=1))
    srv.add_fault(Fault(status=429, retry_after=100000, times=1))
    with pytest.raises(rf.APIError, match="max_retry_after=50"):
        rf.read_robotmia_export(DAY, DAY, **_kw(srv, max_retry_after=50))
    srv.add_fault(Fault(status=429, retry_after=0.2, times=1))
    df = rf.read_robotmia_export(DAY, DAY, **_kw(srv, max_retry_after=1))
    assert len(df) == 20


def test_an_unresolvable_host_is_final() -> None:
    # A name longer than DNS allows (255) fails in the resolver: no query leaves the machine.
    url = "https://" + ".".join(["x" * 60] * 5) + ".example/api/2.0/export/"
    with pytest.raises(rf.NetworkError, match="could not be resolved") as info:
        rf.read_robotmia_export(DAY, DAY, **{**_kw_url(url), "max_retries": 5, "retry_backoff": 5})
    assert "1 attempt" in str(info.value) and "not retried" in str(info.value)


def _kw_url(url: str) -> dict[str, Any]:
    return dict(api_secret=SECRET, project_timezone="UTC", base_url=url, progress=False)


def test_a_host_name_that_cannot_be_used_is_a_clear_final_error() -> None:
    url = "https://" + "x" * 70 + ".example/api/2.0/export/"
    with pytest.raises(rf.NetworkError, match="1 attempt"):
        rf.read_robotmia_export(DAY, DAY, **{**_kw_url(url), "max_retries": 5})


def test_connection_refused_is_retried_briefly() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/2.0/export/"
    with pytest.raises(rf.NetworkError, match="refused") as info:
        rf.read_robotmia_export(
            DAY, DAY, **{**_kw_url(url), "max_retries": 5, "retry_backoff": 0.01}
        )
    assert "3 attempts" in str(info.value)


def test_tls_verification_failure_is_final(server: ServerFactory) -> None:
    pytest.importorskip("trustme")
    srv = server(generate_events(5, days=1), tls=True)
    with pytest.raises(rf.NetworkError, match="certificate") as info:
        rf.read_robotmia_export(DAY, DAY, **{**_kw(srv), "max_retries": 5, "retry_backoff": 5})
    assert "1 attempt" in str(info.value)
    assert _exports(srv) == 0  # the handshake failed: no request was read


def test_an_endless_body_stops_at_max_window_bytes(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(20, days=1))
    srv.add_fault(Fault(endless=True, times=None))
    with pytest.raises(rf.APIError, match="max_window_bytes=200000") as info:
        rf.export_to_parquet(tmp_path / "ds", DAY, DAY, **_kw(srv, max_window_bytes=200_000))
    assert "2024-01-01" in str(info.value)
    # not retried; the server logs the request once its handler sees the client gone
    wait_until(lambda: not srv.in_flight, "the endless answer's end on the server")
    assert _exports(srv) == 1
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "date=" in str(p)]


# ------------------------------------------------------------------ 10, 11, 12. disks, signals


def _unwritable_folders(tmp_path: Path) -> list[Path]:
    """Folders this process cannot write: a chmod'ed one (not for root), /sys."""
    out = []
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out += [ro, ro / "ds"]
    if Path("/sys/kernel").is_dir() and not os.access("/sys/kernel", os.W_OK | os.X_OK):
        out += [Path("/sys/kernel")]
    elif Path("/sys/kernel").is_dir():
        out += [Path("/sys/robotmia-frames-test-ds")]  # sysfs takes no new folders
    return out


def test_an_unwritable_dataset_fails_before_any_request(
    server: ServerFactory, tmp_path: Path
) -> None:
    folders = _unwritable_folders(tmp_path)
    if not folders:
        pytest.skip("no unwritable folder on this machine")
    srv = server(generate_events(20, days=1))
    for folder in folders:
        with pytest.raises(rf.InvalidArgumentError, match="cannot be written"):
            rf.export_to_parquet(folder, DAY, DAY, **_kw(srv))
        with pytest.raises(rf.InvalidArgumentError, match="cannot be written"):
            rf.sync_to_parquet(folder, DAY, DAY, **_kw(srv))
        with pytest.raises(rf.InvalidArgumentError, match="cannot be written"):
            rf.read_robotmia_export(DAY, DAY, parquet_path=folder, **_kw(srv))
    assert _exports(srv) == 0


_CHILD = """
import os, resource, signal, sys
import robotmia_frames as rf
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
try:
    rf.export_to_parquet(sys.argv[1], "2024-01-01", "2024-01-01", api_secret=sys.argv[3],
                         project_timezone="UTC", base_url=sys.argv[2], progress=False,
                         max_retries=0)
except OSError as exc:
    print(exc.errno, exc)
"""


def test_a_full_disk_names_the_day_the_folder_and_what_to_do(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate={"events_per_day": 2000})
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "tmp").mkdir()
    got = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "ds"), srv.url, SECRET],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    message = got.stdout
    assert message.startswith("27 "), (got.stdout, got.stderr[-2000:])
    assert "window 2024-01-01" in message and str(tmp_path / "tmp") in message
    assert "Free space" in message and "run again" in message
    assert not list((tmp_path / "tmp").rglob("*.part-*"))


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "robotmia_frames.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_an_export_cleanly(
    server: ServerFactory, tmp_path: Path, sig: signal.Signals
) -> None:
    srv = server(generate={"events_per_day": 200})
    # Days 1 and 2 at once; day 3 never answers (the server's stop ends it): the
    # signal comes mid-run, and cuts short a download waiting for its first byte.
    never = threading.Event()
    srv.add_fault(Fault(hold=never, times=None, match=lambda p: p["from_date"] > "2024-01-02"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "ROBOTMIA_API_SECRET": SECRET}
    out = tmp_path / "ds"
    proc = _cli(
        "export", "2024-01-01", "2024-01-09", "--out", str(out), "--base-url", srv.url,
        "--timezone", "UTC", "--concurrency", "1", "--no-progress", "--window-days", "1", env=env,
    )  # fmt: skip
    try:
        # Day 2 on disk: day 1 is surely recorded as written (day 2 may be or not).
        wait_until(
            lambda: proc.poll() is not None or (out / "date=2024-01-02").is_dir(),
            "day 2 on disk",
        )
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), err
    name = "SIGTERM" if sig == signal.SIGTERM else "Ctrl-C"
    assert f"interrupted by {name}" in err and "written completely" in err, err
    assert "Run the same command again to finish the job" in err
    assert not list(tmp.iterdir())  # no temporary folder or partial download left
    assert not [p for p in out.parent.iterdir() if "staging" in p.name and any(p.iterdir())]
    days = sorted(p.name for p in out.glob("date=*"))
    assert days and days == [f"date=2024-01-0{i}" for i in range(1, len(days) + 1)]


# ------------------------------------------------------------- 6. more text than an array holds


def test_chunks_of_long_lines_are_split_by_bytes(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robotmia_frames import parse
    from robotmia_frames.parse import _engine

    lines = [
        b'{"event":"e","properties":{"time":%d,"s":"%s","v":%s}}'
        % (i, b"x" * 300, b"1" if i < 30 else b'"a"')
        for i in range(40)
    ]
    lines[35] = b"{not json"
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    whole = rf.read_export_file(path, project_timezone="UTC", on_bad_lines="skip")
    monkeypatch.setattr(_engine, "MAX_CHUNK_BYTES", 2_000)
    raw = list(parse.read_raw_batches(path, source="x", on_bad_lines="skip"))
    assert len(raw) >= 6 and [b.first_line for b in raw] == sorted(b.first_line for b in raw)
    assert sum(b.line_count for b in raw) == 40
    split = rf.read_export_file(path, project_timezone="UTC", on_bad_lines="skip")
    assert split.equals(whole)
    assert split["properties.v"].tolist()[28:31] == ["1", "1", "a"]
    with pytest.raises(rf.ParseError) as info:
        rf.read_export_file(path, project_timezone="UTC")
    assert info.value.line_number == 36


# ------------------------------------------------------- JSON text: any value, any depth

HUGE = st.builds(
    lambda m, e, neg, upper: f"{'-' if neg else ''}{m}{'E' if upper else 'e'}{e}",
    st.integers(1, 9), st.integers(309, 5000), st.booleans(), st.booleans(),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(value=json_values, huge=st.lists(HUGE, max_size=3), depth=st.integers(0, 400))
def test_json_text_is_exact_against_the_standard_library(
    value: Any, huge: list[str], depth: int
) -> None:
    """json_text agrees with json.dumps (the independent reference) on any parsed
    value, keeps numbers beyond float64 as their text, and writes any depth."""
    import json

    from robotmia_frames.parse import json_text
    from robotmia_frames.parse._decode import slow_loads

    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert json_text(value) == expected
    nested: Any = value
    for _ in range(depth):
        nested = [nested]
    assert json_text(nested) == "[" * depth + expected + "]" * depth
    # Numbers beyond float64 come back from the decoder as their text, wherever they are.
    source = '{"a":[' + ",".join(huge) + '],"b":' + expected + "}"
    parsed = slow_loads(source.encode())
    assert json_text(parsed) == source


def test_sigterm_ends_a_download_in_flight(server: ServerFactory, tmp_path: Path) -> None:
    """A day that trickles would take minutes: SIGTERM ends it at once, cleanly."""
    srv = server(generate={"events_per_day": 300})
    slow = Fault(trickle_rate=100, trickle_after=1000, times=None, match=lambda p: p["from_date"] > "2024-01-01")  # fmt: skip
    day2 = "2024-01-02"
    srv.add_fault(slow)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "ROBOTMIA_API_SECRET": SECRET}
    out = tmp_path / "ds"
    proc = _cli(
        "export", "2024-01-01", "2024-01-03", "--out", str(out), "--base-url", srv.url,
        "--timezone", "UTC", "--concurrency", "1", "--no-progress", "--window-days", "1", "--min-speed", "0",
        env=env,
    )  # fmt: skip
    try:
        # day 1 written and day 2 trickling (its first 1000 bytes were sent at once)
        wait_until(
            lambda: (
                proc.poll() is not None
                or (
                    (out / "date=2024-01-01").is_dir()
                    and any(p["from_date"] == day2 for p in srv.in_flight)
                )
            ),
            "day 1 on disk and day 2's request at the server",
        )
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)  # the trickle alone would take minutes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "interrupted by SIGTERM" in err
    assert not list(tmp.iterdir())
    assert sorted(p.name for p in out.glob("date=*")) == ["date=2024-01-01"]


# ------------------------------------------- a differential fuzz against json.loads


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _reference_rows(lines: list[bytes]) -> tuple[list[Any], list[Any], list[int]]:
    """``event`` and ``properties.o`` text per good row, and the bad line numbers,
    by the standard library alone (the independent reference)."""

    def depth(v: Any) -> int:
        todo, best = [(v, 1)], 0
        while todo:
            cur, d = todo.pop()
            if isinstance(cur, (list, dict)):
                best = max(best, d)
                todo.extend((c, d + 1) for c in (cur.values() if isinstance(cur, dict) else cur))
        return best

    def text(v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    events, objects, bad = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_not_json)
        except (ValueError, RecursionError):
            bad.append(number)
            continue
        props = obj.get("properties") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(props, (dict, type(None))):
            bad.append(number)
            continue
        if depth(obj) > 258:
            bad.append(number)
            continue
        events.append(text(obj.get("event")))
        objects.append(text((props or {}).get("o")))
    return events, objects, bad


_DEEP = st.integers(200, 1100).map(
    lambda d: b'{"event":"d","properties":{"o":%s}}' % (b"[" * d + b"]" * d)
)
_OBJECTS = st.dictionaries(st.text(max_size=4), json_values, max_size=3)
_GOOD = st.builds(
    lambda event, o: json.dumps({"event": event, "properties": {"time": 1, "o": o}}).encode(),
    st.one_of(st.text(max_size=6), json_values),
    _OBJECTS,
)
_BAD = st.sampled_from([b"<html>", b"{", b"[]", b'{"properties":3}', b"not json", b'{"a":NaN}'])


@settings(max_examples=int(os.environ.get("ROBOTMIA_FUZZ_EXAMPLES", "60")), deadline=None)
@given(lines=st.lists(st.one_of(_GOOD, _GOOD, _BAD, _DEEP), min_size=1, max_size=12))
def test_parser_agrees_with_json_loads(lines: list[bytes]) -> None:
    """Both engines, every on_bad_lines mode, against the standard library: the rows
    kept, the bad lines, the event text and object text, exactly."""
    import tempfile

    events, objects, bad = _reference_rows(lines)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        for native in ("1", "0"):
            os.environ["ROBOTMIA_FRAMES_NATIVE"] = native
            try:
                if bad:
                    with pytest.raises(rf.ParseError) as info:
                        rf.read_export_file(path, project_timezone="UTC")
                    assert info.value.line_number == bad[0]
                t = rf.read_export_file(
                    path, project_timezone="UTC", on_bad_lines="skip", return_type="arrow"
                )
            finally:
                os.environ.pop("ROBOTMIA_FRAMES_NATIVE", None)
            assert t.column("event").to_pylist() == events
            if "properties.o" in t.column_names and all(
                o is None or o.startswith("{") for o in objects
            ):
                assert t.column("properties.o").to_pylist() == objects


def test_the_command_line_names_its_own_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from robotmia_frames import cli

    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    url = "https://" + ".".join(["x" * 60] * 5) + ".example/api/2.0/export/"
    code = cli.main(
        ["export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "ds"),
         "--base-url", url, "--timezone", "UTC", "--no-progress"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 5
    assert "check --base-url / region" in err and "not retried" in err
    assert "base_url" not in err
    assert cli.cli_words("min_speed=1024 bytes/s over stall_timeout=60 s") == (
        "--min-speed=1024 bytes/s over --stall-timeout=60 s"
    )
