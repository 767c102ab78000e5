"""``columns=``: one naming rule in Python and on the command line, and an unknown
column is an error with the nearest names (never a silent all-null column)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import _options
from tests.conftest import ServerFactory
from tests.test_cli import assert_one_line_error, run_cli

LINES = [
    {"event": "Purchase", "properties": {"time": 1704067200, "$os": "iOS", "Price": 9.5}},
    {"event": "Signup", "properties": {"time": 1704070800, "$os": "Linux", "plan": "pro"}},
]


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    return write(tmp_path / "export.jsonl", LINES)


@pytest.fixture
def dataset(server: ServerFactory, tmp_path: Path) -> Path:
    srv = server(LINES, project_timezone="UTC")
    out = tmp_path / "events"
    rf.export_to_parquet(
        out, "2024-01-01", "2024-01-01", api_secret=srv.api_secret, project_timezone="UTC",
        base_url=srv.url, progress=False,
    )  # fmt: skip
    return out


def test_dollar_shorthand_in_python(export_file: Path, dataset: Path) -> None:
    t = rf.read_export_file(
        export_file, project_timezone="UTC", columns=["event", "$os"], return_type="arrow"
    )
    assert t.column_names == ["event", "properties.$os"]
    assert t.column("properties.$os").to_pylist() == ["iOS", "Linux"]
    d = rf.read_parquet_dataset(dataset, columns=["$os", "properties.$os"], return_type="arrow")
    assert d.column_names == ["properties.$os"]  # the same column, once
    assert sorted(d.column("properties.$os").to_pylist()) == ["Linux", "iOS"]


@pytest.mark.parametrize(
    ("asked", "suggested"),
    [
        ("properties.price", "properties.Price"),  # case
        ("properties.$OS", "properties.$os"),
        ("properties.plann", "properties.plan"),  # typo
        ("$oss", "properties.$os"),
    ],
)
def test_unknown_column_of_a_file_suggests(export_file: Path, asked: str, suggested: str) -> None:
    with pytest.raises(rf.InvalidArgumentError) as info:
        rf.read_export_file(export_file, project_timezone="UTC", columns=["event", asked])
    msg = str(info.value)
    assert "unknown column" in msg and str(export_file) in msg
    assert f"did you mean {suggested!r}" in msg


def test_unknown_column_without_a_near_name_lists_some(export_file: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError, match="its columns include 'event', 'time'"):
        rf.read_export_file(export_file, project_timezone="UTC", columns=["properties.zzzzzz"])


def test_bare_name_is_refused_before_reading(tmp_path: Path) -> None:
    # the file does not even exist: the name is checked first
    with pytest.raises(rf.InvalidArgumentError, match=r"did you mean 'properties\.Price'"):
        rf.read_export_file(tmp_path / "none.jsonl", project_timezone="UTC", columns=["Price"])


def test_unknown_column_of_a_dataset(dataset: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError) as info:
        rf.read_parquet_dataset(dataset, columns=["event", "properties.nosuch", "properties.prise"])
    msg = str(info.value)
    assert "unknown column 'properties.nosuch'" in msg
    assert "unknown column 'properties.prise'" in msg and "'properties.Price'" in msg
    assert f"the dataset at {dataset}" in msg


def test_empty_file_gives_the_columns_asked_for(tmp_path: Path) -> None:
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    t = rf.read_export_file(p, project_timezone="UTC", columns=["$os"], return_type="arrow")
    assert t.column_names == ["properties.$os"] and t.num_rows == 0


def test_cli_uses_the_same_rule(export_file: Path, dataset: Path) -> None:
    proc = run_cli("read", str(dataset), "--columns", "event,$os", "--json", "--limit", "0")
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)["columns"]) == ["event", "properties.$os"]
    bad = run_cli("read", str(dataset), "--columns", "event,nosuch")
    assert bad.returncode == 2
    line = assert_one_line_error(bad.stderr)
    assert "unknown column 'nosuch'" in line and "columns=" not in line
    typo = run_cli("read", str(export_file), "--timezone", "UTC", "--columns", "properties.Prise")
    assert typo.returncode == 2
    assert "did you mean 'properties.Price'" in assert_one_line_error(typo.stderr)


@given(st.text(min_size=1, max_size=12))
def test_column_name_rule(name: str) -> None:
    """A name is kept, expanded from ``$key``, or refused; never anything else."""
    try:
        out = _options.column_name(name)
    except rf.InvalidArgumentError as e:
        assert not name.startswith(("$", "properties.")) or name in ("$", "properties.")
        assert "unknown column" in str(e)
    else:
        if name.startswith("$"):
            assert out == "properties." + name
        else:
            assert out == name and (name in ("event", "time") or name.startswith("properties."))


@pytest.mark.parametrize(
    ("tz", "meant"),
    [("PST", "America/Los_Angeles"), ("Europe/paris", "Europe/Paris"), ("Asia/Calcuta", None)],
)
def test_timezone_typos_in_python_get_a_did_you_mean(
    export_file: Path, tz: str, meant: str | None
) -> None:
    with pytest.raises(rf.InvalidArgumentError) as info:
        rf.read_export_file(export_file, project_timezone=tz)
    msg = str(info.value)
    assert f"unknown project_timezone {tz!r}" in msg
    if meant is not None:
        assert f"did you mean {meant!r}?" in msg
    else:
        assert "did you mean 'Asia/Calcutta'" in msg or "did you mean 'Asia/Kolkata'" in msg


def test_dollar_key_in_where_points_to_the_property_syntax(export_file: Path) -> None:
    with pytest.raises(rf.WhereSyntaxError, match=r'properties\["\$os"\]'):
        rf.read_export_file(export_file, project_timezone="UTC", where='$os == "iOS"')
