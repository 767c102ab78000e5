"""Wide projects (issue 20) on the functions that write datasets: the ``export`` and
``sync`` commands' ``--columns``, ``--split-by``, ``--sparse-columns``,
``--sparse-threshold`` and ``--max-memory``.

Every export is generated (``wide_events``: hundreds of keys, 30 per event name) and
served by the local export server; datasets are real Parquet in tmp folders.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
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
    # in its own process: the message is redacted first, and this process may hold
    # secrets other tests registered (a docs snippet's "..." masks "A,B,...")
    env = {"ROBOTMIA_API_SECRET": os.environ["ROBOTMIA_API_SECRET"]}
    proc = run_cli(*args, "--max-memory", "20MB", env=env)
    assert proc.returncode == 7, proc.stderr
    line = assert_one_line_error(proc.stderr)
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
    # --dry-run refuses what the run would refuse, rather than printing its plan
    for flags in (["--sparse-columns", "map"], ["--split-by", "event", "--sparse-threshold", "2"]):
        proc = run_cli(*base, *flags, "--dry-run", env=env)
        assert proc.returncode == 2, proc.stdout
        assert flags[-2] in assert_one_line_error(proc.stderr) and not proc.stdout
    proc = run_cli(*base, "--split-by", "event", "--dry-run", env=env)
    assert proc.returncode == 0 and "nothing was sent" in proc.stdout, proc.stderr
    proc = run_cli(*base, "--max-memory", "lots", env=env)
    assert proc.returncode == 2 and "--max-memory" in proc.stderr, proc.stderr
    assert not out.exists() or not list(out.rglob("*.parquet"))


def test_cli_sync_wide_flags(wide_server: Any, tmp_path: Path, capsys: Any) -> None:
    """``sync`` takes the flags ``export`` takes: ``--split-by event`` writes (and a
    later sync keeps) the event layout, ``--max-memory`` exits 7 before a day is
    written, ``--sparse-columns map`` is refused (exit 2), ``--columns`` writes only
    those columns."""
    events, remote = wide_server
    out = tmp_path / "ds"
    args = ("sync", "--out", str(out), "--start-date", "2024-01-01", "--end-date", "2024-01-02")
    env = {"ROBOTMIA_API_SECRET": os.environ["ROBOTMIA_API_SECRET"]}  # a fresh process:
    proc = run_cli(*args, *remote, "--max-memory", "20MB", env=env)  # (see above)
    assert proc.returncode == 7, proc.stderr
    assert "Ways out: --columns A,B,..." in assert_one_line_error(proc.stderr)
    assert not list(out.rglob("*.parquet"))
    code, _, err = cli(*args, *remote, "--sparse-columns", "map", capsys=capsys)
    assert code == 2, err
    assert "--sparse-columns map is not available for sync" in assert_one_line_error(err)
    for _ in range(2):  # the second sync re-exports the days, in the same layout
        code, stdout, err = cli(*args, *remote, "--split-by", "event", "--json", capsys=capsys)
        assert code == 0, err
        assert json.loads(stdout)["rows"] == 3000
        assert_event_layout(out, events)
    # the event layout is the dataset's: a sync without it is refused, in flags
    code, _, err = cli(*args, *remote, capsys=capsys)
    assert code == 2, err
    assert "Pass --partition-by-event" in assert_one_line_error(err)
    narrow = tmp_path / "narrow"
    code, _, err = cli(*args[:2], str(narrow), *args[3:], *remote,
                       "--columns", "time,properties.k1", capsys=capsys)  # fmt: skip
    assert code == 0, err
    for f in narrow.rglob("*.parquet"):
        assert set(pq.read_schema(f).names) == {"time", "properties.k1"}


# ------------------------------------------------------------------ sync_to_parquet


@pytest.fixture
def wide(server: ServerFactory, secret: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A wide project of two days, and the keywords that reach it."""
    events = wide_events(3000, 600)
    srv = server(events)
    return events, dict(api_secret=secret, project_timezone="UTC", base_url=srv.url, progress=False)


def test_sync_split_by_event(wide: Any, tmp_path: Path) -> None:
    """``sync_to_parquet(split_by="event")`` writes the event layout as
    ``export_to_parquet`` does; a later sync keeps it, and reads back the same rows."""
    events, kw = wide
    out = tmp_path / "ds"
    first = rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", split_by="event", **kw)
    assert first.rows == 3000
    assert_event_layout(out, events)
    again = rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", split_by="event", **kw)
    assert again.rows == 3000
    assert_event_layout(out, events)
    exported = tmp_path / "exported"
    rf.export_to_parquet(exported, "2024-01-01", "2024-01-02", split_by="event", **kw)
    synced = rf.read_parquet_dataset(out, return_type="arrow").sort_by("properties.$insert_id")
    assert synced.equals(
        rf.read_parquet_dataset(exported, return_type="arrow").sort_by("properties.$insert_id")
    )
    with pytest.raises(rf.InvalidArgumentError, match=r"split_by='event'.*partition_by"):
        rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", split_by="event",
                           partition_by=("event",), **kw)  # fmt: skip


def test_sync_columns(wide: Any, tmp_path: Path) -> None:
    """``sync_to_parquet(columns=...)`` writes only those columns; one the export does
    not hold is an error naming it."""
    _, kw = wide
    out = tmp_path / "ds"
    s = rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", columns=["time", "$insert_id"], **kw)
    assert s.rows == 3000
    files = list(out.rglob("*.parquet"))
    assert files
    for f in files:
        assert set(pq.read_schema(f).names) == {"time", "properties.$insert_id"}
    with pytest.raises(rf.InvalidArgumentError, match=r"unknown column 'properties\.\$nope'"):
        rf.sync_to_parquet(tmp_path / "bad", "2024-01-01", "2024-01-02", columns=["$nope"], **kw)


def test_sync_max_memory(wide: Any, tmp_path: Path) -> None:
    """``sync_to_parquet(max_memory=...)`` checks each day before it is written, as
    ``export_to_parquet`` does; None turns the check off; a bad value is refused."""
    _, kw = wide
    out = tmp_path / "ds"
    with pytest.raises(rf.MemoryBudgetError, match="writing one day") as err:
        rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", max_memory=1, **kw)
    assert err.value.max_memory == 1 and err.value.estimate > 1
    assert "max_memory=None" in str(err.value)
    assert not list(out.rglob("*.parquet"))
    assert rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", max_memory=None, **kw).rows == 3000
    with pytest.raises(rf.InvalidArgumentError, match="max_memory"):
        rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", max_memory=-1, **kw)


def test_sync_sparse_columns_refused(wide: Any, tmp_path: Path) -> None:
    """A dataset keeps every key as its own column: ``sparse_columns="map"`` is
    refused before anything is sent, naming ``sync_to_parquet`` and the way to the
    map when reading; ``sparse_threshold`` is checked."""
    _, kw = wide
    out = tmp_path / "ds"
    with pytest.raises(
        rf.InvalidArgumentError,
        match=r"sparse_columns='map' is not available for sync_to_parquet.*"
        r"read_parquet_dataset\(path, sparse_columns='map'\)",
    ):
        rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", sparse_columns="map", **kw)
    with pytest.raises(rf.InvalidArgumentError, match="sparse_threshold"):
        rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", sparse_threshold=-0.5, **kw)
    assert not list(out.rglob("*.parquet"))
    rf.sync_to_parquet(out, "2024-01-01", "2024-01-02", sparse_threshold=0.5, **kw)  # valid


# ------------------------------------------------------------------ export_to_parquet


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"dedupe": True},
        {"limit": 1234},
        {"columns": ["event", "time", "properties.k0", "properties.k31", "properties.k62"]},
        {"dtype": {"properties.k0": "float64", "properties.k32": "string"}},
    ],
    ids=["plain", "dedupe", "limit", "columns", "dtype"],
)
def test_a_day_written_per_event_holds_the_reads_rows(
    server: ServerFactory, secret: str, tmp_path: Path, options: dict[str, Any]
) -> None:
    """A day of the event layout is scanned sparse and cut by event before it is
    typed (never laid out over every key): each event's files hold that event's
    rows of the same export read whole, with its columns only, under dedupe (a
    repeat of another event's insert id is no repeat), ``limit``, ``columns`` and
    pinned types."""
    events = wide_events(3000, 600)
    for i in range(0, 3000, 97):  # repeats: of the same event, and of another event
        twin = json.loads(json.dumps(events[i]))
        if i % 2:
            twin["event"] = events[(i + 1) % 3000]["event"]
        events.append(twin)
    srv = server(events)
    kw: dict[str, Any] = dict(
        api_secret=secret, project_timezone="UTC", base_url=srv.url, progress=False, **options
    )
    out = tmp_path / "ds"
    summary = rf.export_to_parquet(out, "2024-01-01", "2024-01-02", split_by="event", **kw)
    read = rf.read_robotmia_export("2024-01-01", "2024-01-02", return_type="arrow", **kw)
    assert summary.rows == read.num_rows
    if "limit" in options:
        assert read.num_rows == 1234
    for f in out.rglob("*.parquet"):
        name = f.parent.name[len("event=") :]
        day = f.parent.parent.name[len("date=") :]
        got = pq.read_table(f)
        want = read.filter(
            pc.and_(
                pc.equal(read.column("event"), name),
                pc.equal(pc.strftime(read.column("time"), "%Y-%m-%d"), day),
            )
        )
        held = [
            c for c in want.column_names if c != "event" and want.column(c).null_count < len(want)
        ]
        assert set(got.column_names) >= set(held) and "event" not in got.column_names, f
        assert got.select(held).equals(want.select(held)), f
    assert sum(pq.read_metadata(f).num_rows for f in out.rglob("*.parquet")) == read.num_rows


def test_a_wide_day_in_the_date_layout_is_checked_for_its_footer(
    server: ServerFactory, secret: str, tmp_path: Path
) -> None:
    """A wide day written chunk by chunk into one file of every column holds that
    file's footer until it is closed: its row groups times its columns (here 3 x
    6,004, about 37 MB). Under a budget it would pass, the day fails before it is
    written, with the event layout among the ways out; with room for it, it is
    written."""
    events = wide_events(6000, 6000, span=3_600)  # one day of 6,000 keys, too wide to hold
    srv = server(events)
    kw: dict[str, Any] = dict(
        api_secret=secret, project_timezone="UTC", base_url=srv.url, progress=False
    )
    tight = rf_memory_now() + 10_000_000
    with pytest.raises(rf.MemoryBudgetError, match="footer") as caught:
        rf.export_to_parquet(tmp_path / "flat", "2024-01-01", "2024-01-01", max_memory=tight, **kw)
    assert "split_by='event'" in str(caught.value)
    assert "6,000 rows in 3 row groups of 6,004 columns" in str(caught.value)
    assert not list((tmp_path / "flat").rglob("*.parquet"))
    roomy = rf_memory_now() + 2_000_000_000
    summary = rf.export_to_parquet(
        tmp_path / "flat", "2024-01-01", "2024-01-01", max_memory=roomy, **kw
    )
    assert summary.rows == 6000


def rf_memory_now() -> int:
    """This process's resident memory now, in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024
