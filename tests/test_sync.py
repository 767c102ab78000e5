"""Incremental sync, deduplication and crash safety of the Parquet datasets (issue 3)."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, iter_generated_events
from tests.conftest import SECRET, ServerFactory, local_seconds


def _ids(df: pd.DataFrame) -> list[str]:
    return sorted(df["properties.$insert_id"].tolist())


def _day_events(day: str, n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "event": "e",
            "properties": {
                "time": int(local_seconds(day, 60 * i + 1)),
                "distinct_id": f"u{i}",
                "$insert_id": f"{tag}-{day}-{i}",
            },
        }
        for i in range(n)
    ]


def test_sync_catches_late_events_without_duplicates(server: ServerFactory, tmp_path: Path) -> None:
    events = _day_events("2024-01-01", 3, "a") + _day_events("2024-01-02", 3, "a")
    srv = server(events, project_timezone="UTC")
    out = tmp_path / "ds"
    kw: dict[str, Any] = dict(api_secret=SECRET, project_timezone="UTC", base_url=srv.url)
    s1 = rf.sync_to_parquet(out, from_date="2024-01-01", to_date="2024-01-03", **kw)
    assert s1.rows == 6 and s1.from_date == dt.date(2024, 1, 1)
    first = rf.read_parquet_dataset(out)
    # A late event for Jan 1 arrives on the server, with a time *before* the cursor.
    late = _day_events("2024-01-01", 4, "a")[3]
    srv2 = server([*events, late, *_day_events("2024-01-04", 2, "b")], project_timezone="UTC")
    kw["base_url"] = srv2.url
    s2 = rf.sync_to_parquet(
        out, from_date="2024-01-01", to_date="2024-01-04", lookback_days=5, **kw
    )
    assert s2.from_date == dt.date(2024, 1, 1)  # last synced day 01-03 minus 5, floored at start
    second = rf.read_parquet_dataset(out)
    assert len(second) == len(first) + 3
    assert "a-2024-01-01-3" in set(second["properties.$insert_id"])
    assert len(set(_ids(second))) == len(second)  # nothing doubled
    # Running again gives identical data.
    rf.sync_to_parquet(out, from_date="2024-01-01", to_date="2024-01-04", **kw)
    third = rf.read_parquet_dataset(out)
    pd.testing.assert_frame_equal(second, third)
    # The request log shows whole days re-exported (no time cursor), in one request.
    assert {(r.params["from_date"], r.params["to_date"]) for r in srv2.requests} == {
        ("2024-01-01", "2024-01-04")
    }


def test_sync_lookback_window_starts_from_last_synced_day(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(_day_events("2024-01-10", 2, "a"), project_timezone="UTC")
    kw: dict[str, Any] = dict(api_secret=SECRET, project_timezone="UTC", base_url=srv.url)
    rf.sync_to_parquet(tmp_path / "ds", from_date="2024-01-01", to_date="2024-01-20", **kw)
    srv.clear_requests()
    s = rf.sync_to_parquet(
        tmp_path / "ds", from_date="2024-01-01", to_date="2024-01-21", lookback_days=2, **kw
    )
    assert s.from_date == dt.date(2024, 1, 18)
    assert srv.windows() == [(dt.date(2024, 1, 18), dt.date(2024, 1, 21))]  # one request


def test_dedupe_drops_repeats_within_a_day(server: ServerFactory, tmp_path: Path) -> None:
    events = _day_events("2024-02-01", 3, "x")
    dup = dict(events[1])
    no_insert = {
        "event": "e",
        "properties": {"time": events[0]["properties"]["time"], "distinct_id": "u0"},
    }
    srv = server([*events, dup, no_insert, dict(no_insert)], project_timezone="UTC")
    kw: dict[str, Any] = dict(api_secret=SECRET, project_timezone="UTC", base_url=srv.url)
    raw = rf.read_robotmia_export("2024-02-01", "2024-02-01", **kw)
    deduped = rf.read_robotmia_export("2024-02-01", "2024-02-01", dedupe=True, **kw)
    assert len(raw) == 6
    assert len(deduped) == 5  # the repeated $insert_id is dropped; rows without one are kept
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-02-01", "2024-02-01", **kw)
    assert len(rf.read_parquet_dataset(out)) == 6
    assert len(rf.read_parquet_dataset(out, dedupe=True)) == 5
    rf.export_to_parquet(tmp_path / "ds2", "2024-02-01", "2024-02-01", dedupe=True, **kw)
    assert len(pd.read_parquet(tmp_path / "ds2")) == 5


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import robotmia_frames as rf
    url, out = sys.argv[1], sys.argv[2]
    rf.export_to_parquet(out, "2024-01-01", "2024-01-06", api_secret="kill-secret",
                         project_timezone="UTC", base_url=url, concurrency=2)
    """
)


def _per_day(path: Path, *, plain: bool = False) -> dict[str, list[str]]:
    """$insert_ids per partition day, read with our reader (or plain pandas)."""
    out: dict[str, list[str]] = {}
    for part in sorted(path.glob("date=*")):
        day = part.name[len("date=") :]
        if plain:
            ids = pd.read_parquet(path, filters=[("date", "=", day)])["properties.$insert_id"]
        else:
            ids = rf.read_parquet_dataset(path, from_date=day, to_date=day)["properties.$insert_id"]
        out[day] = sorted(ids)
    return out


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_each_day_old_or_new(tmp_path: Path) -> None:
    days = [f"2024-01-0{i}" for i in range(1, 7)]
    gen_old = {"events_per_day": 300, "seed": 1}
    gen_new = {"events_per_day": 400, "seed": 2}
    out = tmp_path / "ds"
    old_ids: dict[str, list[str]] = {}
    new_ids: dict[str, list[str]] = {}
    for ids, gen in ((old_ids, gen_old), (new_ids, gen_new)):
        for e in iter_generated_events(days[0], days[-1], **gen):
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(e["properties"]["time"] // 86400))
            ids.setdefault(day.isoformat(), []).append(e["properties"]["$insert_id"])
        for v in ids.values():
            v.sort()
    with ExportServer(api_secret="kill-secret", generate=gen_old) as srv:
        rf.export_to_parquet(
            out,
            days[0],
            days[-1],
            api_secret="kill-secret",
            project_timezone="UTC",
            base_url=srv.url,
        )
    assert _per_day(out) == old_ids
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with ExportServer(api_secret="kill-secret", generate=gen_new) as srv:
        for _ in range(6):
            proc = subprocess.Popen(
                [sys.executable, "-c", _KILL_SCRIPT, srv.url, str(out)], env=env
            )
            time.sleep(rng.uniform(0.3, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            state = _per_day(out)
            for day in days:
                assert state.get(day) in (old_ids[day], new_ids[day]), day
            visible = [
                p
                for p in out.rglob("*")
                if not any(s.startswith((".", "_")) for s in p.relative_to(out).parts)
            ]
            assert all(p.suffix == ".parquet" or p.is_dir() for p in visible)
        # A run that is not killed completes the change.
        rf.export_to_parquet(
            out,
            days[0],
            days[-1],
            api_secret="kill-secret",
            project_timezone="UTC",
            base_url=srv.url,
        )
    assert _per_day(out) == new_ids
    assert _per_day(out, plain=True) == new_ids  # consistent types again for plain readers
    assert not (tmp_path / ".ds.robotmia-staging").exists() or not any(
        (tmp_path / ".ds.robotmia-staging").iterdir()
    )
