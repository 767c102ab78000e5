"""design.md §2: nothing of a window is cached until its body is verified, and a
cached body is only ever the answer to the same request. ``cache_dir=`` keys a body
by the endpoint, the window's parameters and the project (an HMAC of the secret
under a salt kept in the folder; never the secret itself).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import robotmia_frames as rf
from tests.conftest import ServerFactory, local_seconds

SECRET_A = "project-a-secret-5c1d"
SECRET_B = "project-b-secret-9e2f"


def _events(name: str) -> list[dict[str, object]]:
    return [
        {"event": name, "properties": {"time": local_seconds("2024-01-01", 60 * i)}}
        for i in range(3)
    ]


def _read(url: str, secret: str, cache: Path) -> list[str]:
    table = rf.read_robotmia_export(
        "2024-01-01",
        "2024-01-01",
        api_secret=secret,
        project_timezone="UTC",
        base_url=url,
        cache_dir=cache,
        return_type="arrow",
    )
    return [str(e) for e in table.column("event").to_pylist()]


def test_contract_cache_never_serves_another_projects_body(
    server: ServerFactory, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    srv = server(_events("e"), api_secret=SECRET_A)
    assert _read(srv.url, SECRET_A, cache) == ["e"] * 3
    assert _read(srv.url, SECRET_A, cache) == ["e"] * 3
    assert len(srv.requests) == 1  # the second read came from the cache

    srv.api_secret = SECRET_B  # another project behind the same endpoint
    assert _read(srv.url, SECRET_B, cache) == ["e"] * 3
    assert [r.authorized for r in srv.requests] == [True, True]  # asked, not cached
    for path in cache.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET_A.encode() not in data and SECRET_B.encode() not in data


def test_contract_cache_dir_that_is_a_file_is_a_bad_argument(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_events("e"), api_secret=SECRET_A)
    a_file = tmp_path / "cache"
    a_file.write_text("not a folder")
    with pytest.raises(rf.InvalidArgumentError, match=r"cache_dir .* it is a file"):
        _read(srv.url, SECRET_A, a_file)
    assert srv.requests == []
    assert a_file.read_text() == "not a folder"
