"""``robotmia-frames`` sync, read, inspect, --json, the secret prompt and progress bars.

Run against the emulator, in subprocesses (as a user runs the command) and through
``main([...])`` in-process where a monkeypatch is needed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames import cli
from robotmia_frames.cli import main
from robotmia_frames.emulator import ExportServer, Fault, generate_events, write_export_file
from tests.test_cli import assert_one_line_error, run_cli

TZ = "America/Los_Angeles"


@pytest.fixture
def dataset(server: Any, secret: str, tmp_path: Path) -> tuple[Path, ExportServer]:
    """Four days exported by the library (2024-03-09..12, across the DST change)."""
    events = generate_events(400, from_date="2024-03-09", days=4, seed=5, project_timezone=TZ)
    srv = server(events, project_timezone=TZ)
    out = tmp_path / "events"
    rf.export_to_parquet(
        out, "2024-03-09", "2024-03-12", api_secret=secret, project_timezone=TZ,
        base_url=srv.url, progress=False,
    )  # fmt: skip
    return out, srv


@pytest.fixture
def export_file(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    events = generate_events(3000, from_date="2024-03-09", days=3, seed=9, project_timezone=TZ)
    path = tmp_path / "export.jsonl.gz"
    write_export_file(path, events)
    return path, events


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ------------------------------------------------------------------ export and sync


def test_export_json(server: Any, secret: str, tmp_path: Path) -> None:
    srv = server(generate_events(60, days=3, seed=1))
    out = tmp_path / "ds"
    doc = _json(
        run_cli(
            "export",
            "2024-01-01",
            "2024-01-03",
            "--out",
            str(out),
            "--timezone",
            "UTC",
            "--base-url",
            srv.url,
            "--json",
            env={"ROBOTMIA_API_SECRET": secret},
        )
    )
    assert doc["rows"] == 60 and doc["days"] == 3 and doc["files"] == 3
    assert doc["path"] == str(out)
    assert doc["from_date"] == "2024-01-01" and doc["to_date"] == "2024-01-03"
    assert doc["rows_per_day"] == {"2024-01-01": 20, "2024-01-02": 20, "2024-01-03": 20}
    assert doc["bytes"] > 0


def test_sync_twice_catches_late_events(server: Any, secret: str, tmp_path: Path) -> None:
    events = generate_events(100, days=10, seed=2)
    srv = server(events)
    out = tmp_path / "ds"
    argv = [
        "sync", "--out", str(out), "--start-date", "2024-01-01", "--end-date", "2024-01-10",
        "--timezone", "UTC", "--base-url", srv.url, "--lookback-days", "2",
    ]  # fmt: skip
    env = {"ROBOTMIA_API_SECRET": secret}
    first = run_cli(*argv, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("synced 2024-01-01 .. 2024-01-10: wrote 100 rows for 10 days")
    # the state is in the data files' footers: the run's range is recorded as complete
    footer = pq.read_schema(out / "date=2024-01-10" / "part-0.parquet").metadata
    assert json.loads(footer[b"robotmia_frames"])["complete"] == [["2024-01-01", "2024-01-10"]]
    assert not (out / "_robotmia").exists()
    srv.requests.clear()
    second = _json(run_cli(*argv, "--json", env=env))
    assert second["from_date"] == "2024-01-08" and second["days"] == 3  # 2 days of lookback
    # the lookback in one request
    assert [(r.params["from_date"], r.params["to_date"]) for r in srv.requests] == [
        ("2024-01-08", "2024-01-10")
    ]
    assert len(rf.read_parquet_dataset(out)) == 100  # nothing doubled


# ------------------------------------------------------------------ read


def test_read_dataset_preview(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    proc = run_cli("read", str(out), "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:2] == ["event", "time"]
    assert "400 rows x" in proc.stdout and "first 3 rows shown" in proc.stdout
    assert "first 8 columns shown" in proc.stdout


def test_read_dataset_filters_and_json(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    where = 'properties["$os"] == "iOS"'
    doc = _json(
        run_cli(
            "read",
            str(out),
            "--from",
            "2024-03-10",
            "--to",
            "2024-03-11",
            "--columns",
            "event,time",
            "--columns",
            "$os",
            "--where",
            where,
            "--limit",
            "0",
            "--json",
        )
    )
    expected = rf.read_parquet_dataset(
        out, from_date="2024-03-10", to_date="2024-03-11",
        columns=["event", "time", "properties.$os"], where=where,
    )  # fmt: skip
    assert doc["rows"] == len(expected) > 0
    assert list(doc["columns"]) == ["event", "time", "properties.$os"]
    assert doc["columns"]["time"] == "timestamp[us, tz=UTC]"
    assert {r["properties.$os"] for r in doc["data"]} == {"iOS"}
    times = [pd.Timestamp(r["time"]) for r in doc["data"]]
    assert times == expected["time"].tolist()
    assert all(t.tz is not None and t.utcoffset() == dt.timedelta(0) for t in times)


def test_read_dataset_event_filter(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    doc = _json(run_cli("read", str(out), "--event", "Played song", "--json", "--limit", "0"))
    assert doc["rows"] == len(rf.read_parquet_dataset(out, event="Played song")) > 0
    assert {r["event"] for r in doc["data"]} == {"Played song"}


def test_read_export_file(export_file: tuple[Path, list[dict[str, Any]]]) -> None:
    path, events = export_file
    doc = _json(run_cli("read", str(path), "--timezone", TZ, "--json", "--limit", "5"))
    assert doc["rows"] == len(events)
    assert len(doc["data"]) == 5
    expected = rf.read_export_file(path, project_timezone=TZ, return_type="arrow")
    assert doc["data"][0]["event"] == expected.column("event")[0].as_py()
    assert pd.Timestamp(doc["data"][0]["time"]) == expected.column("time")[0].as_py()


def test_read_export_file_needs_a_timezone(
    export_file: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, _ = export_file
    proc = run_cli("read", str(path))
    assert proc.returncode == 2
    assert "--timezone" in assert_one_line_error(proc.stderr)
    ok = run_cli("read", str(path), "--limit", "1", env={"ROBOTMIA_PROJECT_TIMEZONE": TZ})
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--from", "2024-03-10"], "--from applies to datasets"),
        (["--event", "Purchase"], "--event applies to datasets"),
        (["--where", 'properties["x"] =='], "invalid where expression"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_read_bad_arguments_exit_2(
    export_file: tuple[Path, list[dict[str, Any]]], extra: list[str], needle: str
) -> None:
    path, _ = export_file
    proc = run_cli("read", str(path), "--timezone", TZ, *extra)
    assert proc.returncode == 2, proc.stderr
    assert needle in assert_one_line_error(proc.stderr)


def test_read_missing_path_exits_2(tmp_path: Path) -> None:
    proc = run_cli("read", str(tmp_path / "nothing-here"))
    assert proc.returncode == 2
    assert "no dataset folder or export file" in assert_one_line_error(proc.stderr)


def test_read_into_a_closed_pipe_is_quiet(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    with subprocess.Popen(
        [sys.executable, "-m", "robotmia_frames.cli", "read", str(out), "--limit", "0",
         "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip() == b"{"
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read()
        code = proc.wait(timeout=120)
    assert code == 0
    assert b"Traceback" not in err and b"error" not in err


# ------------------------------------------------------------------ inspect


def test_inspect_dataset(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    doc = _json(run_cli("inspect", str(out), "--json"))
    df = rf.read_parquet_dataset(out)
    assert doc["kind"] == "dataset"
    assert doc["rows"] == len(df) == 400
    assert doc["rows_per_day"] == {f"2024-03-{d:02d}": 100 for d in (9, 10, 11, 12)}
    assert doc["files"] == 4
    assert [c["name"] for c in doc["columns"]] == list(df.columns)
    for col in doc["columns"]:
        assert col["nulls"] == int(df[col["name"]].isna().sum()), col["name"]
        assert col["null_rate"] == pytest.approx(col["nulls"] / 400, abs=1e-6)
    table = rf.read_parquet_dataset(out, return_type="arrow")
    types = {c["name"]: c["type"] for c in doc["columns"]}
    assert types["time"] == "timestamp[us, UTC]"
    for f in table.schema:
        if f.name != "time":
            assert types[f.name] == str(f.type), f.name
    assert doc["conflicts"] == []  # the writer keeps every day's types in step
    assert doc["time_min"] == df["time"].min().isoformat()  # ISO with "T", as read --json
    assert doc["time_max"] == df["time"].max().isoformat()

    text = run_cli("inspect", str(out))
    assert text.returncode == 0, text.stderr
    assert "rows: 400 over 4 days, 2024-03-09 .. 2024-03-12, 4 files" in text.stdout
    assert "type conflicts: none" in text.stdout


def test_inspect_dataset_with_types_that_differ_between_days(tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    utc = pa.timestamp("us", tz="UTC")
    for day, values in (("2024-01-01", [1, 2]), ("2024-01-02", ["a", None]), ("2024-01-03", [3])):
        folder = out / f"date={day}"
        folder.mkdir(parents=True)
        n = len(values)
        pq.write_table(
            pa.table(
                {
                    "event": ["e"] * n,
                    "time": pa.array([0] * n, utc),
                    "properties.x": pa.array(values),
                }
            ),
            folder / "part-0.parquet",
        )
    doc = _json(run_cli("inspect", str(out), "--json"))
    assert doc["conflicts"] == [
        {
            "column": "properties.x",
            "kind": "differs_between_days",
            "types": {"2024-01-01": "int64", "2024-01-02": "string", "2024-01-03": "int64"},
            "resolved": "string",
        }
    ]
    x = next(c for c in doc["columns"] if c["name"] == "properties.x")
    assert x["nulls"] == 1 and x["type"] == "string"
    text = run_cli("inspect", str(out)).stdout
    assert "properties.x: int64 on 2024-01-01, 2024-01-03; string on 2024-01-02" in text


def test_inspect_export_file(export_file: tuple[Path, list[dict[str, Any]]]) -> None:
    path, events = export_file
    doc = _json(run_cli("inspect", str(path), "--json"))
    assert doc["kind"] == "file" and doc["rows"] == len(events)
    # Days are the export's own (project-local) days: no timezone needed.
    assert doc["rows_per_day"] == {"2024-03-09": 1000, "2024-03-10": 1000, "2024-03-11": 1000}
    names = {c["name"] for c in doc["columns"]}
    assert {"event", "time", "properties.distinct_id"} <= names

    def json_type(v: Any) -> str:
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
            type(v), "other"
        )

    conflicts = {c["column"]: c for c in doc["conflicts"]}
    assert conflicts, "the generator mixes types in about 1% of events"
    for name, conflict in conflicts.items():
        key = name[len("properties.") :]
        seen: dict[str, int] = {}
        for e in events:
            v = e["properties"].get(key)
            if v is not None and not isinstance(v, (list, dict)):
                seen[json_type(v)] = seen.get(json_type(v), 0) + 1
        assert conflict["kind"] == "mixed_values"
        assert conflict["types"] == seen, name
        assert conflict["resolved"] == "string"
    # ... and every column of mixed scalar types is reported.
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    for f in table.schema:
        key = f.name[len("properties.") :]
        kinds = {
            json_type(e["properties"][key])
            for e in events
            if f.name.startswith("properties.")
            and e["properties"].get(key) is not None
            and not isinstance(e["properties"][key], (list, dict))
        }
        if len(kinds) > 1 and kinds != {"integer", "number"}:
            assert f.name in conflicts, f.name

    text = run_cli("inspect", str(path)).stdout
    assert "mixed value types, folded to text by the type policy" in text
    assert "rows: 3,000 over 3 days, 2024-03-09 .. 2024-03-11" in text


# ------------------------------------------------------------------ the secret


def _export_argv(srv: ExportServer, out: Path) -> list[str]:
    return [
        "export", "2024-01-01", "2024-01-01", "--out", str(out), "--timezone", "UTC",
        "--base-url", srv.url,
    ]  # fmt: skip


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_secret_prompt_on_a_terminal(
    server: Any, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server(generate_events(10, days=1))
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return secret

    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(cli.getpass, "getpass", fake_getpass)
    out = io.StringIO()
    assert main(_export_argv(srv, tmp_path / "ds"), out=out) == 0
    assert prompts == ["robotmia API secret (input hidden): "]
    assert secret not in out.getvalue()
    assert all(r.authorized for r in srv.requests)


def test_no_prompt_when_the_environment_has_the_secret(
    server: Any, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server(generate_events(10, days=1))
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(cli.getpass, "getpass", lambda *a: pytest.fail("prompted"))
    assert main(_export_argv(srv, tmp_path / "ds"), out=io.StringIO()) == 0


def test_no_prompt_without_a_terminal(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    srv = server(generate_events(10, days=1))
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    monkeypatch.setattr(cli.getpass, "getpass", lambda *a: pytest.fail("prompted"))
    assert main(_export_argv(srv, tmp_path / "ds"), out=io.StringIO()) == 2
    assert "ROBOTMIA_API_SECRET" in assert_one_line_error(capsys.readouterr().err)
    assert srv.requests == []


def test_there_is_no_secret_flag() -> None:
    for argv in (["export", "--help"], ["sync", "--help"]):
        proc = run_cli(*argv)
        assert proc.returncode == 0
        assert "--api-secret" not in proc.stdout
        assert "shell history" in proc.stdout


# ------------------------------------------------------------------ progress


def test_progress_flag_reaches_the_api(
    server: Any, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the export draws its bar (after a second: short work stays
    quiet); ``--no-progress`` draws none."""
    srv = server(generate_events(10, days=1))
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    monkeypatch.delenv("CI", raising=False)  # CI=true also means no bar
    shown = []
    for i, extra in enumerate(([], ["--no-progress"])):
        srv.add_fault(Fault(delay_first_byte=1.5))  # the export lasts past the bar's delay
        monkeypatch.setattr(sys, "stderr", _Terminal())
        argv = _export_argv(srv, tmp_path / f"ds{i}")
        assert main([*argv, *extra], out=io.StringIO()) == 0
        shown.append(sys.stderr.getvalue())
    bar, none = shown
    assert "robotmia export:" in bar and "/1 [" in bar, bar  # drawn (then cleared)
    assert none == ""


def test_no_bar_when_not_on_a_terminal(dataset: tuple[Path, ExportServer], secret: str) -> None:
    out, srv = dataset
    proc = run_cli(
        "export", "2024-03-09", "2024-03-12", "--out", str(out), "--timezone", TZ,
        "--base-url", srv.url, env={"ROBOTMIA_API_SECRET": secret},
    )  # fmt: skip
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_reads_report_progress(
    dataset: tuple[Path, ExportServer], export_file: tuple[Path, list[dict[str, Any]]]
) -> None:
    out, _ = dataset
    updates: list[Any] = []
    rf.read_parquet_dataset(out, from_date="2024-03-10", progress=updates.append)
    assert [u.windows_done for u in updates] == [1, 2, 3]
    assert {u.windows_total for u in updates} == {3}
    assert updates[-1].rows == 300

    path, events = export_file
    updates.clear()
    rf.read_export_file(path, project_timezone=TZ, progress=updates.append)
    assert updates and updates[-1].rows == len(events)
    assert [u.rows for u in updates] == sorted(u.rows for u in updates)


def test_read_bars_draw_on_stderr(
    dataset: tuple[Path, ExportServer], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = dataset
    rf.read_parquet_dataset(out, progress=True)
    # progress=True asks for the bar: it is drawn at once, on stderr, never stdout.
    got = capsys.readouterr()
    assert "robotmia read" in got.err and "robotmia read" not in got.out


# ------------------------------------------------------------------ help


@pytest.mark.parametrize("command", ["export", "sync", "read", "inspect", "serve", "demo"])
def test_help_has_examples(command: str) -> None:
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    assert f"robotmia-frames {command}" in proc.stdout.split("examples:", 1)[1]
    if command in ("export", "sync", "read", "inspect"):
        assert "exit codes:" in proc.stdout and "--json" in proc.stdout


def test_top_level_help_lists_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for code in ("0", "1", "2", "3", "4", "5", "6", "130"):
        assert f"\n  {code} " in proc.stdout
    for command in ("export", "sync", "read", "inspect", "serve", "demo"):
        assert command in proc.stdout


def test_debug_after_the_subcommand(tmp_path: Path, capsys: Any) -> None:
    code = main(["read", str(tmp_path / "missing"), "--debug"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_where_syntax_error_is_one_line(dataset: tuple[Path, ExportServer]) -> None:
    out, _ = dataset
    proc = run_cli("read", str(out), "--where", 'properties["$os"] = = "iOS"')
    assert proc.returncode == 2
    line = assert_one_line_error(proc.stderr)
    assert "invalid where expression" in line and "column" in line


# ------------------------------------------------------------------ serve


def test_serve_then_export_against_it(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "robotmia_frames.cli", "serve", "--port", "0", "--days", "3",
         "--events-per-day", "50", "--timezone", "Europe/Paris"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ROBOTMIA_")},
    ) as server:  # fmt: skip
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("robotmia export emulator serving at http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        out = tmp_path / "ds"
        doc = _json(
            run_cli(
                "export",
                "2024-01-01",
                "2024-01-03",
                "--out",
                str(out),
                "--json",
                "--timezone",
                "Europe/Paris",
                "--base-url",
                url,
                env={"ROBOTMIA_API_SECRET": "test-secret"},
            )
        )
        try:
            assert doc["rows"] == 150 and doc["days"] == 3
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:  # never leave the server (and this test) hanging
                server.kill()
