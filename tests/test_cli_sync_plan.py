"""A long sync says what it will send before it starts; the command asks on a terminal.

The real ``robotmia-frames`` executable runs in a subprocess against the export
server; its stdin is a pseudo-terminal (``pty``) where a user would answer, or
``/dev/null`` as under cron.
"""

from __future__ import annotations

import logging
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import generate_events
from tests.conftest import ServerFactory
from tests.test_cli import CLI

FROM, TO = "2024-01-01", "2024-03-31"  # 91 days: a long first sync
QUESTION = "start it? [y/N]"


def _sync(
    out: Path, url: str, secret: str, *extra: str, answer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``robotmia-frames sync``; with ``answer`` its stdin is a terminal on which
    ``answer`` was typed (ahead, as a user may), else ``/dev/null``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBOTMIA_")}
    env["ROBOTMIA_API_SECRET"] = secret
    args = [*CLI, "sync", "--out", str(out), "--start-date", FROM, "--end-date", TO]
    args += ["--timezone", "UTC", "--base-url", url, "--no-progress", *extra]
    if answer is None:
        return subprocess.run(
            args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
        )
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode())
        return subprocess.run(
            args, env=env, stdin=slave, capture_output=True, text=True, timeout=300
        )
    finally:
        os.close(slave)
        os.close(master)


@pytest.fixture
def srv(server: ServerFactory) -> Any:
    return server(generate_events(182, days=91))


def test_on_a_terminal_no_sends_nothing(srv: Any, secret: str, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = _sync(out, srv.url, secret, answer="n\n")
    assert proc.returncode == 1, proc.stderr
    assert "this sync covers 2024-01-01..2024-03-31: 91 days in 4 to 92 requests" in proc.stderr
    assert "up to 1.5 API-hours at 60 requests an hour" in proc.stderr
    assert QUESTION in proc.stderr
    assert "sync not started" in proc.stderr
    assert srv.requests == []  # nothing was sent
    assert not out.exists() or not any(out.iterdir())


def test_on_a_terminal_yes_starts(srv: Any, secret: str, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = _sync(out, srv.url, secret, answer="y\n")
    assert proc.returncode == 0, proc.stderr
    assert QUESTION in proc.stderr
    assert proc.stderr.index("this sync covers") < proc.stderr.index(QUESTION)
    assert "synced 2024-01-01 .. 2024-03-31" in proc.stdout
    assert len(rf.read_parquet_dataset(out)) == 182


def test_yes_flag_skips_the_question(srv: Any, secret: str, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = _sync(out, srv.url, secret, "--yes", answer="n\n")  # the typed "n" is never read
    assert proc.returncode == 0, proc.stderr
    assert "this sync covers 2024-01-01..2024-03-31" in proc.stderr
    assert QUESTION not in proc.stderr
    assert len(rf.read_parquet_dataset(out)) == 182


def test_without_a_terminal_it_says_the_plan_and_starts(
    srv: Any, secret: str, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    proc = _sync(out, srv.url, secret)
    assert proc.returncode == 0, proc.stderr
    assert "this sync covers 2024-01-01..2024-03-31: 91 days in 4 to 92 requests" in proc.stderr
    assert QUESTION not in proc.stderr
    assert len(rf.read_parquet_dataset(out)) == 182
    # the next sync re-exports only the lookback: short, so no plan and no question
    again = _sync(out, srv.url, secret, answer="n\n")
    assert again.returncode == 0, again.stderr
    assert "this sync covers" not in again.stderr
    assert QUESTION not in again.stderr


def test_the_library_logs_the_plan_of_a_long_sync(
    srv: Any, secret: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = rf.Client(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    out = tmp_path / "ds"
    plan = client.plan_sync(out, FROM, TO)
    assert (plan.days, plan.fewest, plan.requests) == (91, 4, 92)
    assert srv.requests == [] and not out.exists()  # planning sends and writes nothing
    with caplog.at_level(logging.INFO, logger="robotmia_frames.sync"):
        client.sync_to_parquet(out, FROM, TO, progress=False)
    logged = [r.getMessage() for r in caplog.records if r.name == "robotmia_frames.sync"]
    assert logged == [f"sync of {out}: {plan}"]
    assert secret not in " ".join(logged)
    # a later sync covers the lookback only
    later = client.plan_sync(out, FROM, TO, lookback_days=5)
    assert (later.from_date.isoformat(), later.days) == ("2024-03-26", 6)
