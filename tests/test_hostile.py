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
        with pytest.raises(rf.RobotmiaError, match="not an export|malformed line"):
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
