"""design.md §3 "Errors": ``on_bad_lines="warn"`` issues a ``RobotmiaWarning`` (a
``UserWarning``) per bad line, on all three reading functions; ``ParseError`` names
the 1-based physical line (blank lines counted) and the file or day window. The
warnings point at the caller's line, as pandas' do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import Fault
from tests.conftest import SECRET, ServerFactory, local_seconds, read_day

GOOD = b'{"event":"e","properties":{"time":%d}}' % local_seconds("2024-01-01", 60)
BODY = [GOOD, b"", GOOD, b"{bad", b"   ", b"[1]", GOOD]


def test_contract_parse_error_names_the_physical_line_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(BODY) + b"\n")
    with pytest.raises(rf.ParseError) as caught:
        rf.read_export_file(path, project_timezone="UTC")
    assert caught.value.line_number == 4
    assert str(path) in str(caught.value) and "line 4" in str(caught.value)


def test_contract_warn_per_bad_line_at_the_callers_line(
    server: ServerFactory, tmp_path: Path
) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(BODY) + b"\n")
    srv = server([line for line in BODY if line.strip()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_file = rf.read_export_file(path, project_timezone="UTC", on_bad_lines="warn")
        exported = rf.read_robotmia_export(
            "2024-01-01",
            "2024-01-01",
            on_bad_lines="warn",
            api_secret=SECRET,
            project_timezone="UTC",
            base_url=srv.url,
        )
    ours = [
        w
        for w in caught
        if issubclass(w.category, rf.RobotmiaWarning) and "skipped malformed" in str(w.message)
    ]
    assert issubclass(rf.RobotmiaWarning, UserWarning)
    assert (len(from_file), len(exported)) == (3, 3)
    assert [str(w.message).split(": skipped")[0] for w in ours] == [
        f"{path}, line 4",
        f"{path}, line 6",
        "window 2024-01-01, line 4",
        "window 2024-01-01, line 5",
    ]
    assert {w.filename for w in ours} == {__file__}


@pytest.mark.parametrize(("status", "requests_sent"), [(400, 1), (404, 1), (418, 1), (500, 3)])
def test_contract_final_and_retried_statuses(
    server: ServerFactory, status: int, requests_sent: int
) -> None:
    srv = server([], faults=[Fault(status=status, message=f"said {status}", times=None)])
    with pytest.raises(rf.APIError) as caught:
        read_day(srv.url, max_retries=2, retry_backoff=0)
    assert caught.value.status_code == status
    assert caught.value.server_message == f"said {status}"
    assert f"said {status}" in str(caught.value)
    assert len(srv.requests) == requests_sent


def test_contract_parse_error_never_shows_the_secret(server: ServerFactory) -> None:
    """A proxy's page may echo the request's credentials: the line shown is redacted."""
    srv = server([], faults=[Fault(body=b"{echo " + SECRET.encode() + b"\n", times=None)])
    with pytest.raises(rf.ParseError) as caught:
        read_day(srv.url, max_retries=0)
    assert caught.value.line_number == 1
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert "'{echo ***'" in str(caught.value)
