"""A dataset's own history sizes the windows of its next runs, and their plans.

Every day a run writes records, in its footer, the compressed bytes per day of the
body it came in. ``export_to_parquet`` and ``sync_to_parquet`` size their first
auto windows from the latest days' figure, and ``Client.plan_sync``,
``Client.plan_export(dataset=...)``, ``export --dry-run`` and the plan a long sync
logs before it starts use the same figure: checked against the windows
the export emulator then really receives.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest

import robotmia_frames as rf
from robotmia_frames import sinks
from robotmia_frames._pipeline import dataset_location, dataset_state
from robotmia_frames.emulator import iter_generated_events
from tests.conftest import SECRET, ServerFactory
from tests.test_windows import kw as windows_kw

TZ = "Europe/Berlin"
NO_LIMIT = rf.RateLimit(per_hour=None, per_second=None, concurrent=None)
EXPORT_PATH = "/api/2.0/export/"


def kw(srv: Any, **more: Any) -> dict[str, Any]:
    return windows_kw(srv, project_timezone=TZ, **more)


def client(srv: Any) -> rf.Client:
    return rf.Client(api_secret=SECRET, project_timezone=TZ, base_url=srv.url, rate_limit=NO_LIMIT)


def history(path: Path) -> sinks.DatasetState:
    return dataset_state(dataset_location(path))


def test_each_day_records_the_bytes_per_day_of_its_body(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate={"events_per_day": 40, "seed": 3}, project_timezone=TZ)
    rf.export_to_parquet(tmp_path, "2024-01-01", "2024-01-10", window_days=4, **kw(srv))
    sent = {
        (r.from_date, r.to_date): r.bytes_sent
        for r in srv.requests
        if r.path.startswith(EXPORT_PATH)
    }
    assert sorted(sent) == sorted(srv.windows()) and len(sent) == 3
    state = history(tmp_path)
    expected = {}
    for (first, last), nbytes in sent.items():
        days = (last - first).days + 1
        for i in range(days):
            expected[first + dt.timedelta(days=i)] = round(nbytes / days)
    assert state.bytes_per_day == expected
    assert state.history_bytes_per_day() == max(expected.values())
    # the figure is the dataset's own, not what the run asked for
    assert sinks.BYTES_KEY not in state.metadata


def test_a_second_sync_plans_and_sends_windows_sized_from_the_history(
    server: ServerFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server(generate={"events_per_day": 5, "seed": 1}, project_timezone=TZ)
    first = client(srv).plan_export("2024-01-01", "2024-01-20", dataset=tmp_path)
    assert first.bytes_per_day is None  # a new dataset has no history: a range
    rf.sync_to_parquet(tmp_path, "2024-01-01", "2024-01-20", **kw(srv))
    # the run starts at 7 days, then learns that the rest fits in one window: the
    # fewest requests the plan gave
    assert sorted(srv.windows()) == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 7)),
        (dt.date(2024, 1, 8), dt.date(2024, 1, 20)),
    ]
    assert first.fewest == 2 and first.requests == 21
    assert history(tmp_path).history_bytes_per_day() is not None

    # The next sync re-exports from the last day done less the lookback (5 days).
    begin, end = dt.date(2024, 1, 15), dt.date(2024, 6, 30)
    guess = client(srv).plan_export(begin, end)  # without the history
    plan = client(srv).plan_sync(tmp_path, "2024-01-01", end)
    assert (plan.from_date, plan.to_date) == (begin, end)
    assert plan == client(srv).plan_export(begin, end, dataset=tmp_path)
    assert plan.bytes_per_day == history(tmp_path).history_bytes_per_day()
    assert plan.requests < guess.requests
    assert {(b - a).days + 1 for a, b in plan.windows[:-1]} == {31}
    assert "sized from" in str(plan) and "no size known" in str(guess)
    srv.requests.clear()
    with caplog.at_level(logging.INFO, logger="robotmia_frames.sync"):
        summary = rf.sync_to_parquet(tmp_path, "2024-01-01", end, **kw(srv))
    assert summary.from_date == begin
    assert sorted(srv.windows()) == plan.windows  # the plan is what the run did
    # and the sync announced that plan before it started
    assert [str(plan) in r.getMessage() for r in caplog.records] == [True]


def test_windows_below_the_cap_follow_the_history_too(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate={"events_per_day": 60, "seed": 5}, project_timezone=TZ)
    rf.export_to_parquet(tmp_path, "2024-02-01", "2024-02-07", window_days=1, **kw(srv))
    busiest = history(tmp_path).history_bytes_per_day()
    assert busiest is not None
    # a target that fits three and a half of the busiest days (at the 3/4 fill)
    target = math.ceil(3.5 * busiest / 0.75)
    begin, end = dt.date(2024, 2, 8), dt.date(2024, 3, 8)
    plan = client(srv).plan_export(begin, end, window_target_bytes=target, dataset=tmp_path)
    assert {(b - a).days + 1 for a, b in plan.windows[:-1]} == {3}
    # plan=True: the plan of the call as written, from the same history
    as_called = rf.export_to_parquet(
        tmp_path, begin, end, window_target_bytes=target, plan=True, **kw(srv)
    )
    assert as_called == plan
    srv.requests.clear()
    # one at a time, so that each window is sized from the body before it
    rf.export_to_parquet(tmp_path, begin, end, window_target_bytes=target, **kw(srv, concurrency=1))
    sent = srv.windows()
    assert sent[0] == plan.windows[0]  # the first window is the history's
    # later ones follow each body; the plan, from the busiest day, never asks too few
    assert len(sent) <= plan.requests
    assert {(b - a).days + 1 for a, b in sent[:-1]} <= {3, 4}
    # pinned sizes ignore the history
    pinned = client(srv).plan_export(begin, end, window_days=2, dataset=tmp_path)
    assert pinned.requests == 15 and pinned.bytes_per_day is None
    assert "sized from" not in str(pinned)


def test_an_explicit_bytes_per_day_wins_over_the_history(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate={"events_per_day": 5}, project_timezone=TZ)
    rf.export_to_parquet(tmp_path, "2024-01-01", "2024-01-03", **kw(srv))
    plan = client(srv).plan_export(
        "2024-01-01", "2024-01-30", bytes_per_day=300 << 20, dataset=tmp_path
    )
    assert plan.requests == 30 and plan.bytes_per_day == 300 << 20
    with pytest.raises(ValueError, match="bytes_per_day"):
        client(srv).plan_export("2024-01-01", "2024-01-30", bytes_per_day=-1)


def test_dry_run_plans_from_the_dataset_at_out(
    server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robotmia_frames.cli import main

    srv = server(generate={"events_per_day": 5, "seed": 2}, project_timezone=TZ)
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    base = ["export", "2024-01-01", "2024-12-31", "--timezone", TZ, "--base-url", srv.url]
    new = io.StringIO()
    assert main([*base, "--out", str(tmp_path / "new"), "--dry-run", "--json"], out=new) == 0
    got = json.loads(new.getvalue())  # no history: a busy project's count, and a quiet one's
    assert (got["requests"], got["fewest_requests"]) == (367, 13)

    rf.export_to_parquet(tmp_path / "ds", "2023-12-01", "2023-12-31", **kw(srv))
    srv.requests.clear()
    text = io.StringIO()
    assert main([*base, "--out", str(tmp_path / "ds"), "--dry-run"], out=text) == 0
    assert "366 days in 12 requests" in text.getvalue()
    assert "sized from" in text.getvalue()
    doc = io.StringIO()
    assert main([*base, "--out", str(tmp_path / "ds"), "--dry-run", "--json"], out=doc) == 0
    got = json.loads(doc.getvalue())
    assert got["requests"] == got["fewest_requests"] == 12 and got["bytes_per_day"] > 0
    assert srv.requests == []  # nothing sent


def test_the_plan_of_quiet_and_busy_days_replays_the_run_on_their_history(
    server: ServerFactory, tmp_path: Path
) -> None:
    """Busy days (2,000 events, each over the target) in the first month only, quiet
    days (20 events) after: the latest days' figure alone would plan 31-day windows;
    the plan replays the run on each day's record and asks no fewer than it sends,
    the requests given up past the target included."""
    d0 = dt.date(2024, 1, 1)
    events = []
    for i in range(90):
        day = d0 + dt.timedelta(days=i)
        n = 2000 if i < 30 and i % 10 == 5 else 20
        events += list(iter_generated_events(day, day, events_per_day=n, seed=i))
    srv = server(events)
    end = d0 + dt.timedelta(days=89)
    call = windows_kw(srv, project_timezone="UTC", window_target_bytes=200_000)
    rf.export_to_parquet(tmp_path, d0, end, **call)  # the history: every day recorded
    latest_only = client(srv).plan_export(
        d0,
        end,
        window_target_bytes=200_000,
        bytes_per_day=history(tmp_path).history_bytes_per_day(),
    )
    plan = rf.export_to_parquet(tmp_path, d0, end, plan=True, **call)
    srv.clear_requests()
    rf.export_to_parquet(tmp_path, d0, end, **call)
    sent = [r for r in srv.requests if r.path.startswith(EXPORT_PATH)]
    assert latest_only.requests < len(sent)  # the busy month is older than the latest days
    assert plan.requests >= len(sent) > 3
    assert plan.dropped > 0 and plan.requests == len(plan.windows) + plan.dropped


def test_without_history_the_plan_never_asks_fewer_than_a_run_sends(
    server: ServerFactory, tmp_path: Path
) -> None:
    """No history: the plan counts the most a run may send (a busy project's, a
    request a day after the start window given up past the target) and the fewest
    (a quiet one's). Runs of a busy, a medium and a quiet project against the
    local server send within that range; with the history the first run recorded,
    the plan of the next run is close to what it sends."""
    d0, end = dt.date(2024, 3, 1), dt.date(2024, 4, 9)  # 40 days, a DST change inside
    srv = server(generate={"events_per_day": 120, "seed": 11}, project_timezone=TZ)
    rf.export_to_parquet(tmp_path / "days", d0, end, window_days=1, **kw(srv))
    sizes = history(tmp_path / "days").bytes_per_day
    assert len(sizes) == 40
    one = rf.Client(
        api_secret=SECRET, project_timezone=TZ, base_url=srv.url, rate_limit=NO_LIMIT, concurrency=1
    )
    for name, target in [
        ("busy", int(min(sizes.values()) * 0.9)),  # every day over the target
        ("medium", int(max(sizes.values()) * 2.5)),
        ("quiet", 64 << 20),
    ]:
        out = tmp_path / name
        call = kw(srv, window_target_bytes=target, concurrency=1)
        guess = one.plan_export(d0, end, window_target_bytes=target, dataset=out)
        assert guess.bytes_per_day is None and guess.fewest is not None
        assert rf.export_to_parquet(out, d0, end, plan=True, **call) == guess
        srv.clear_requests()
        rf.export_to_parquet(out, d0, end, **call)
        sent = [r for r in srv.requests if r.path.startswith(EXPORT_PATH)]
        assert guess.fewest <= len(sent) <= guess.requests, name
        if name == "busy":
            assert len(sent) == guess.requests == 40 + guess.dropped
        if name == "quiet":
            assert len(sent) == guess.fewest == 3  # 7 days, then 31, then the last 2
        # the next run, planned from the history this one recorded
        plan = one.plan_export(d0, end, window_target_bytes=target, dataset=out)
        assert plan.fewest is None and plan.bytes_per_day is not None
        srv.clear_requests()
        rf.export_to_parquet(out, d0, end, **call)
        again = [r for r in srv.requests if r.path.startswith(EXPORT_PATH)]
        # days sized at a boundary (a window of 1 or 2 days) may go either way
        assert abs(len(again) - plan.requests) <= max(2, plan.requests // 10), name
    assert "no size known yet: 3 if the days are small, 41 if each is busy" in str(guess)
