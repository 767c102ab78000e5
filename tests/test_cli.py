"""The ``robotmia-frames`` command, end to end: subprocesses and ``main([...])`` in-process."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames.cli import main
from robotmia_frames.emulator import Fault, generate_events
from tests.conftest import local_seconds as lsec


def _cli() -> list[str]:
    """The installed ``robotmia-frames`` executable of this interpreter (as a user runs
    it), else the module (a checkout that was never installed)."""
    exe = Path(sys.executable).with_name("robotmia-frames")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "robotmia_frames.cli"]


CLI = _cli()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOTMIA_")}
    full_env.update(env or {})
    return subprocess.run(
        [*CLI, *args],
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # never a terminal: no secret prompt
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(stderr: str, *secrets: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    for s in secrets:
        assert s not in stderr
    return lines[0]


# ------------------------------------------------------------------ demo


def test_demo_summary(tmp_path):
    out = tmp_path / "demo-events"
    proc = run_cli("demo", "--events-per-day", "40", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "Traceback" not in proc.stderr

    m = re.search(r"exported ([\d,]+) events over (\d+) days", text)
    assert m, text
    assert int(m.group(1).replace(",", "")) == 14 * 40
    assert int(m.group(2)) == 14

    back = rf.read_parquet_dataset(out)
    assert len(back) == 14 * 40
    m = re.search(r"UTC time range: (.+?) \.\. (.+)", text)
    assert m, text
    lo, hi = pd.Timestamp(m.group(1)), pd.Timestamp(m.group(2))
    assert str(lo.tz) == "UTC"
    assert lo == back["time"].min()
    assert hi == back["time"].max()
    # Demo days are 2024-03-01..2024-03-14 in Los Angeles (PST, then PDT from 03-10).
    assert lo >= pd.Timestamp("2024-03-01 08:00", tz="UTC")
    assert hi < pd.Timestamp("2024-03-15 07:00", tz="UTC")

    top = text.split("top events:", 1)[1].splitlines()[1:6]
    counts = back["event"].value_counts()
    shown = []
    for line in top:
        count, name = line.strip().split(None, 1)
        shown.append((name, int(count.replace(",", ""))))
    assert [c for _, c in shown] == counts.head(5).tolist()
    for name, count in shown:
        assert counts[name] == count

    assert f"dataset: {out}" in text
    days = sorted(p.name for p in out.iterdir() if p.name.startswith("date="))
    assert days == [f"date=2024-03-{d:02d}" for d in range(1, 15)]
    for d in days:
        assert (out / d / "part-0.parquet").is_file()


def test_demo_without_out_cleans_its_temporary_folder(tmp_path):
    proc = run_cli("demo", "--events-per-day", "5", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "exported 70 events over 14 days" in proc.stdout
    assert "now removed: keep it with --keep" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # no robotmia-demo-* folder left behind


def test_demo_keep_keeps_the_temporary_folder(tmp_path):
    proc = run_cli("demo", "--events-per-day", "5", "--keep", env={"TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"^dataset: (.+)$", proc.stdout, re.M)
    assert m, proc.stdout
    path = Path(m.group(1))
    assert path.is_dir()
    assert tmp_path in path.parents
    assert len(rf.read_parquet_dataset(path)) == 14 * 5


def test_demo_in_process(tmp_path):
    out = io.StringIO()
    code = main(["demo", "--events-per-day", "10", "--out", str(tmp_path / "d")], out=out)
    assert code == 0
    assert "exported 140 events over 14 days" in out.getvalue()


# ------------------------------------------------------------------ export


def test_export_subprocess(server, tmp_path, secret):
    tz = "America/Los_Angeles"
    srv = server(generate_events(90, days=3, seed=4, project_timezone=tz), project_timezone=tz)
    out = tmp_path / "ds"
    proc = run_cli(
        "export",
        "2024-01-01",
        "2024-01-03",
        "--out",
        str(out),
        "--timezone",
        tz,
        "--base-url",
        srv.url,
        env={"ROBOTMIA_API_SECRET": secret},
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote 90 rows for 3 days in 3 files" in proc.stdout
    assert str(out) in proc.stdout
    assert secret not in proc.stdout + proc.stderr
    assert len(srv.requests) == 1  # three days in one window
    assert all(r.authorized for r in srv.requests)
    back = rf.read_parquet_dataset(out)
    assert len(back) == 90
    expected = rf.read_robotmia_export(
        "2024-01-01", "2024-01-03", api_secret=secret, project_timezone=tz, base_url=srv.url
    )
    assert sorted(back["properties.$insert_id"]) == sorted(expected["properties.$insert_id"])
    for f in out.rglob("*.parquet"):
        meta = pq.read_metadata(f).metadata or {}
        assert all(secret.encode() not in v for v in meta.values())


def test_export_timezone_from_environment_and_event_filter(server, tmp_path, secret):
    events = [
        {"event": name, "properties": {"time": lsec("2024-01-01", i), "i": i}}
        for i, name in enumerate(["a", "b", "a", "c"])
    ]
    srv = server(events)
    out = tmp_path / "ds"
    proc = run_cli(
        "export",
        "2024-01-01",
        "2024-01-01",
        "--out",
        str(out),
        "--base-url",
        srv.url,
        "--event",
        "a",
        "--event",
        "c",
        "--partition-by-event",
        env={"ROBOTMIA_API_SECRET": secret, "ROBOTMIA_PROJECT_TIMEZONE": "UTC"},
    )
    assert proc.returncode == 0, proc.stderr
    assert srv.requests[0].params["event"] == '["a","c"]'
    assert (out / "date=2024-01-01" / "event=a" / "part-0.parquet").is_file()
    assert (out / "date=2024-01-01" / "event=c" / "part-0.parquet").is_file()
    back = rf.read_parquet_dataset(out)
    assert sorted(back["properties.i"].tolist()) == [0, 2, 3]


def test_export_in_process(server, tmp_path, secret, monkeypatch):
    srv = server(generate_events(20, days=2))
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    out = io.StringIO()
    code = main(
        [
            "export",
            "2024-01-01",
            "2024-01-02",
            "--out",
            str(tmp_path / "ds"),
            "--timezone",
            "UTC",
            "--base-url",
            srv.url,
        ],
        out=out,
    )
    assert code == 0
    assert out.getvalue().startswith("wrote 20 rows for 2 days in 2 files")


# ------------------------------------------------------------------ exit codes and messages


def test_wrong_secret_exits_3_without_secret_or_traceback(server, tmp_path, secret):
    srv = server(generate_events(10, days=1))
    wrong = "definitely-wrong-secret-55aa"
    proc = run_cli(
        "export",
        "2024-01-01",
        "2024-01-01",
        "--out",
        str(tmp_path / "ds"),
        "--timezone",
        "UTC",
        "--base-url",
        srv.url,
        env={"ROBOTMIA_API_SECRET": wrong},
    )
    assert proc.returncode == 3
    line = assert_one_line_error(proc.stderr, wrong, secret)
    assert "401" in line
    assert wrong not in proc.stdout
    assert len(srv.requests) == 1


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["2024-01-02", "2024-01-01"], {}, id="from-after-to"),
        pytest.param(["2024-13-01", "2024-12-01"], {}, id="bad-month"),
        pytest.param(["2024-1-1", "2024-01-02"], {}, id="unpadded-date"),
        pytest.param(["2024-01-01", "2024-01-01", "--timezone", "Nowhere/City"], {}, id="bad-tz"),
        pytest.param(["2024-01-01", "2024-01-01"], {"ROBOTMIA_PROJECT_TIMEZONE": ""}, id="no-tz"),
        pytest.param(
            ["2024-01-01", "2024-01-01", "--base-url", "http://example.com/api/2.0/export/"],
            {},
            id="http-remote",
        ),
        pytest.param(["2024-01-01", "2024-01-01"], {"ROBOTMIA_API_SECRET": ""}, id="no-secret"),
    ],
)
def test_bad_arguments_exit_2(server, tmp_path, secret, args, env):
    srv = server(generate_events(10, days=1))
    full = ["export", *args, "--out", str(tmp_path / "ds")]
    if "--base-url" not in args:
        full += ["--base-url", srv.url]
    if "--timezone" not in args and "ROBOTMIA_PROJECT_TIMEZONE" not in env:
        full += ["--timezone", "UTC"]
    proc = run_cli(*full, env={"ROBOTMIA_API_SECRET": secret, **env})
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, secret)
    assert srv.requests == []
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").rglob("*.parquet"))


def test_argparse_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "2024-01-01", "--out", str(tmp_path)])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_api_error_exits_4(server, tmp_path, secret, capsys, monkeypatch):
    srv = server(generate_events(10, days=1))
    srv.add_fault(Fault(status=400, message="bad where expression"))
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    argv = ["export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "ds")]
    code = main([*argv, "--timezone", "UTC", "--base-url", srv.url], out=io.StringIO())
    assert code == 4
    line = assert_one_line_error(capsys.readouterr().err, secret)
    assert "bad where expression" in line
    assert "400" in line


def test_parse_error_exits_6(server, tmp_path, secret, capsys, monkeypatch):
    srv = server([])
    srv.add_fault(Fault(raw_body=b'{"event":"a","properties":{"time":1}}\n{oops\n'))
    monkeypatch.setenv("ROBOTMIA_API_SECRET", secret)
    argv = ["export", "2024-01-01", "2024-01-01", "--out", str(tmp_path / "ds")]
    code = main([*argv, "--timezone", "UTC", "--base-url", srv.url], out=io.StringIO())
    assert code == 6
    line = assert_one_line_error(capsys.readouterr().err, secret)
    assert "line 2" in line
    assert "2024-01-01" in line


def test_debug_flag_shows_traceback(tmp_path, capsys):
    code = main(["--debug", "export", "2024-01-02", "2024-01-01", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "Traceback" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert rf.__version__ in capsys.readouterr().out


def test_export_dry_run_sends_nothing(tmp_path: Path) -> None:
    """``export --dry-run``: the plan (windows, requests, API-hours), no request, no files."""
    from robotmia_frames.emulator import ExportServer

    out = tmp_path / "events"
    with ExportServer([], api_secret="s3cr3t") as srv:
        args = ["export", "2021-01-01", "2023-12-31", "--out", str(out), "--timezone", "UTC"]
        args += ["--base-url", srv.url, "--window-days", "30", "--dry-run"]
        text = run_cli(*args)
        doc = run_cli(*args, "--json")
        assert srv.requests == []
    assert text.returncode == 0, text.stderr
    assert "1,095 days in 37 requests" in text.stdout or "1095 days in 37 requests" in text.stdout
    assert "nothing was sent" in text.stdout
    assert doc.returncode == 0, doc.stderr
    plan = json.loads(doc.stdout)
    assert plan["requests"] == len(plan["windows"]) == 37
    assert plan["windows"][0] == ["2021-01-01", "2021-01-30"]
    assert plan["windows"][-1][1] == "2023-12-31"
    assert not out.exists()
