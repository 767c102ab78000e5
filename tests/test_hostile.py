"""Hostile servers, bytes and disks: no silent loss, no hang, every error names the day.

Each test drives the public API against the local export server (real sockets,
real files); the server's fault knobs play the proxy, the slow link and the bad
data.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, Fault, generate_events
from tests.conftest import SECRET, ServerFactory

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
