"""Wide projects (issue 20) on the functions that write datasets: the ``export`` and
``sync`` commands' ``--columns``, ``--split-by``, ``--sparse-columns``,
``--sparse-threshold`` and ``--max-memory``.

Every export is generated (``wide_events``: hundreds of keys, 30 per event name) and
served by the local export server; datasets are real Parquet in tmp folders.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames.cli import main
from tests.conftest import ServerFactory
from tests.test_cli import assert_one_line_error, run_cli
from tests.test_wide import wide_events


def carried_columns(events: list[dict[str, Any]], name: str) -> set[str]:
    """The columns an event's files hold: ``time`` and the keys its events carry."""
    keys = {k for e in events if e["event"] == name for k in e["properties"]} - {"time"}
    return {"time"} | {"properties." + k for k in keys}


def assert_event_layout(out: Path, events: list[dict[str, Any]]) -> None:
    """Each event's files (``date=.../event=NAME/``) hold only that event's columns."""
    files = sorted(out.rglob("*.parquet"))
    assert files and all(f.parent.name.startswith("event=") for f in files)
    for f in files:
        name = f.parent.name[len("event=") :]
        assert set(pq.read_schema(f).names) == carried_columns(events, name), f


# ------------------------------------------------------------------ command line


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``robotmia-frames ARGS`` in this process: (exit code, stdout, stderr)."""
    out = io.StringIO()
    code = main([*args, "--no-progress"], out=out)
    return code, out.getvalue(), capsys.readouterr().err


@pytest.fixture
def wide_server(
    server: ServerFactory, secret: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[str]]:
    """A wide project of two days, and the command line's arguments that reach it."""
    events = wide_events(3000, 600)
    srv = server(events)
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    return events, ["--timezone", "UTC", "--base-url", srv.url]


def test_cli_export_split_by_event(wide_server: Any, tmp_path: Path, capsys: Any) -> None:
    """``export --split-by event``: the event layout, each event's files narrow; as
    ``split_by="event"`` in Python."""
    events, remote = wide_server
    out = tmp_path / "ds"
    args = ("export", "2024-01-01", "2024-01-02", "--out", str(out), *remote)
    code, stdout, err = cli(*args, "--split-by", "event", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(stdout)["rows"] == 3000
    assert_event_layout(out, events)
    narrow = rf.read_parquet_dataset(out, event="E3", return_type="arrow")
    assert set(narrow.column_names) == {"event"} | carried_columns(events, "E3")
    # with --partition-by-event too: the same layout, no conflict
    both = tmp_path / "both"
    code, _, err = cli(*args[:4], str(both), *remote, "--split-by", "event",
                       "--partition-by-event", capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert_event_layout(both, events)


def test_cli_export_columns(wide_server: Any, tmp_path: Path, capsys: Any) -> None:
    """``export --columns``: only those columns are written; an unknown one is a usage
    error naming the column."""
    _, remote = wide_server
    out = tmp_path / "ds"
    code, _, err = cli("export", "2024-01-01", "2024-01-02", "--out", str(out), *remote,
                       "--columns", "time,$insert_id", "--columns", "properties.k0", capsys=capsys)  # fmt: skip
    assert code == 0, err
    for f in out.rglob("*.parquet"):
        assert set(pq.read_schema(f).names) == {"time", "properties.$insert_id", "properties.k0"}
    code, _, err = cli("export", "2024-01-01", "2024-01-02", "--out", str(tmp_path / "bad"),
                       *remote, "--columns", "event,nope", capsys=capsys)  # fmt: skip
    assert code == 2
    assert "'nope'" in err


def test_cli_export_max_memory(wide_server: Any, tmp_path: Path, capsys: Any) -> None:
    """``export --max-memory``: a day over the budget stops the export with exit 7
    before it is written, and the one-line message names the ways out as flags;
    ``none`` turns the check off."""
    _, remote = wide_server
    out = tmp_path / "ds"
    args = ("export", "2024-01-01", "2024-01-02", "--out", str(out), *remote)
    code, stdout, err = cli(*args, "--max-memory", "20MB", capsys=capsys)
    assert code == 7, err
    line = assert_one_line_error(err)
    assert "writing one day" in line and "That day was not written" in line
    ways = line.split("Ways out:")[1]
    for flag in ("--columns A,B,...", "--event or --where", "--max-memory none"):
        assert flag in ways, line
    assert "=" not in ways, line  # flags, not Python keywords
    assert not list(out.rglob("*.parquet"))
    code, stdout, _ = cli(*args, "--max-memory", "20MB", "--json", capsys=capsys)
    assert code == 7 and json.loads(stdout)["error"]["type"] == "MemoryBudgetError"
    code, stdout, err = cli(*args, "--max-memory", "none", "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(stdout)["rows"] == 3000


def test_cli_export_sparse_columns_refused(wide_server: Any, tmp_path: Path) -> None:
    """``export --sparse-columns map`` is refused (exit 2) in the command line's words,
    pointing at ``read --sparse-columns map``; a bad ``--sparse-threshold`` too; a bad
    ``--max-memory`` is refused by the parser. Nothing is written."""
    _, remote = wide_server
    out = tmp_path / "ds"
    env = {"ROBOTMIA_API_SECRET": "unused"}  # refused before any request
    base = ("export", "2024-01-01", "2024-01-02", "--out", str(out), *remote)
    proc = run_cli(*base, "--sparse-columns", "map", env=env)
    assert proc.returncode == 2, proc.stderr
    line = assert_one_line_error(proc.stderr)
    assert "--sparse-columns map is not available for export" in line, line
    assert "Leave out --sparse-columns" in line and "robotmia-frames read PATH" in line, line
    assert "sparse_columns" not in line, line
    proc = run_cli(*base, "--sparse-threshold", "2", env=env)
    assert proc.returncode == 2 and "--sparse-threshold" in proc.stderr, proc.stderr
    proc = run_cli(*base, "--max-memory", "lots", env=env)
    assert proc.returncode == 2 and "--max-memory" in proc.stderr, proc.stderr
    assert not out.exists() or not list(out.rglob("*.parquet"))
