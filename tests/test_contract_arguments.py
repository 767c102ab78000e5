"""design.md §3: bad arguments raise ``ValueError`` (``InvalidArgumentError``, also a
``RobotmiaError``) before any request is sent: a wrong CA bundle too, which would
otherwise fail every attempt the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import robotmia_frames as rf
from tests.conftest import ServerFactory, read_day


def test_contract_verify_must_be_a_ca_bundle(server: ServerFactory, tmp_path: Path) -> None:
    srv = server([], tls=True)
    not_pem = tmp_path / "bundle.pem"
    not_pem.write_text("this is no certificate\n")
    for verify in (str(not_pem), str(tmp_path / "missing.pem")):
        with pytest.raises(rf.InvalidArgumentError, match="verify=") as caught:
            read_day(srv.url, verify=verify)
        assert isinstance(caught.value, ValueError)
    assert srv.requests == []
    table = read_day(srv.url, verify=srv.ca_bundle, return_type="arrow")
    assert table.column_names == ["event", "time"]


@pytest.mark.parametrize("name", ["localtime", "posixrules", "right/UTC", "posix/Europe/Paris"])
def test_contract_project_timezone_is_an_iana_zone(tmp_path: Path, name: str) -> None:
    """Files of the system's zoneinfo folder that are no IANA zone (``localtime`` is
    the machine's own zone, not the project's) are unknown timezones."""
    path = tmp_path / "export.jsonl"
    path.write_text('{"event":"e","properties":{"time":1704067200}}\n')
    with pytest.raises(rf.InvalidArgumentError, match="unknown project_timezone"):
        rf.read_export_file(path, project_timezone=name)
    assert len(rf.read_export_file(path, project_timezone="Europe/Paris")) == 1


def test_contract_base_url_from_the_environment(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server([])
    monkeypatch.setenv("ROBOTMIA_BASE_URL", srv.url)
    assert rf.Client(api_secret="s", project_timezone="UTC").base_url == srv.url
    eu = rf.Client(api_secret="s", project_timezone="UTC", region="eu").base_url
    assert eu == "https://data-eu.robotmia.com/api/2.0/export/"
    monkeypatch.setenv("ROBOTMIA_BASE_URL", "http://example.com/api/2.0/export/")
    with pytest.raises(rf.InvalidArgumentError, match="clear text"):
        rf.Client(api_secret="s", project_timezone="UTC")
