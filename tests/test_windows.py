"""Request windows of several days (``window_days``), against the export emulator.

The windows are planned by a pure planner (checked here without HTTP); a multi-day
body is cut into days by the project-local day of each row's raw ``time``, and each
day goes the way a one-day window goes. Checked end to end: the same DataFrames and
datasets with one-day, seven-day and automatic windows, in a zone with a DST change
and rows a second either side of local midnight; a truncated window retried whole;
a window that keeps failing halved down to single days; the sync lookback in one
request; the plan of an export without sending anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import parse
from robotmia_frames._pipeline import (
    BudgetPlan,
    Parsed,
    WindowPlanner,
    WindowSizing,
    day_cutter,
    day_numbers,
    plan_windows,
    split_days,
)
from robotmia_frames._pipeline._split import DaySplitter
from robotmia_frames._pipeline._windows import day_runs
from robotmia_frames.emulator import ExportServer, Fault, generate_events
from tests.conftest import SECRET, ServerFactory, local_seconds

TZ = "America/New_York"
START = dt.date(2024, 3, 1)  # the clocks go forward on 2024-03-10 in New York
END = dt.date(2024, 3, 20)
EXPORT_PATH = "/api/2.0/export/"
NO_LIMIT = rf.RateLimit(per_hour=None, per_second=None, concurrent=None)


def day_range(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def midnight_events(start: dt.date = START, end: dt.date = END) -> list[dict[str, Any]]:
    """Rows a second either side of local midnight, at noon, in the skipped DST hour;
    a property that only some days have, with a type that widens on a later day."""
    out: list[dict[str, Any]] = []
    for n, day in enumerate(day_range(start, end)):
        if n % 5 == 3:
            continue  # an empty day inside a window
        for i, second in enumerate((0, 1, 2.5 * 3600, 12 * 3600, 86399, 86399.5)):
            props: dict[str, Any] = {
                "time": local_seconds(day, second),
                "distinct_id": f"u{i}",
                "$insert_id": f"{day.isoformat()}-{i}",
            }
            if n % 3 == 0:
                props["only_some_days"] = n if n < 10 else n + 0.5
            if n == 12:
                props["late_key"] = "x"
            out.append({"event": "open" if i % 2 else "play", "properties": props})
    return out


def exports(srv: ExportServer) -> list[Any]:
    return sorted(
        (r for r in srv.requests if r.path.startswith(EXPORT_PATH)), key=lambda r: r.started
    )


def kw(srv: ExportServer, **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(
        api_secret=SECRET,
        project_timezone=TZ,
        base_url=srv.url,
        progress=False,
        retry_backoff=0,
        rate_limit=NO_LIMIT,
    )
    out.update(more)
    return out


def ids(table: pa.Table) -> Counter[str]:
    return Counter(table.column("properties.$insert_id").to_pylist())


# ------------------------------------------------------------------ the pure planner


def test_sizing_starts_with_a_week_then_fits_the_target() -> None:
    sizing = WindowSizing(target_bytes=1000)
    assert sizing.next_days(None) == 7
    assert sizing.next_days(0) == 31  # empty days: the longest window
    assert sizing.next_days(10) == 31  # capped
    assert sizing.next_days(100) == 7  # three quarters of the target
    assert sizing.next_days(300) == 2
    assert sizing.next_days(5000) == 1  # a busy day alone
    assert WindowSizing(days=3).next_days(None) == WindowSizing(days=3).next_days(1e12) == 3


def test_planner_learns_from_each_body() -> None:
    p = WindowPlanner(dt.date(2024, 1, 1), dt.date(2024, 12, 31), WindowSizing(target_bytes=700))
    assert p.learning
    assert p.take() == (dt.date(2024, 1, 1), dt.date(2024, 1, 7))
    p.learn(dt.date(2024, 1, 1), dt.date(2024, 1, 7), 7 * 100)  # 100 bytes a day
    assert not p.learning
    assert p.take() == (dt.date(2024, 1, 8), dt.date(2024, 1, 12))  # 5 x 100 <= 0.75 x 700
    p.learn(dt.date(2024, 1, 8), dt.date(2024, 1, 14), 7 * 7000)  # busy days
    assert p.take() == (dt.date(2024, 1, 13), dt.date(2024, 1, 13))


@settings(deadline=None)  # up to 800 days a case: no time limit on a loaded machine
@given(
    start=st.dates(dt.date(2000, 1, 1), dt.date(2030, 1, 1)),
    length=st.integers(0, 800),
    days=st.one_of(st.none(), st.integers(1, 31)),
    bytes_per_day=st.one_of(st.none(), st.floats(0, 1e9)),
    target=st.integers(1, 1 << 30),
)
def test_windows_cover_every_day_once_in_order(
    start: dt.date, length: int, days: int | None, bytes_per_day: float | None, target: int
) -> None:
    end = start + dt.timedelta(days=length)
    windows = plan_windows(start, end, WindowSizing(days, target), bytes_per_day)
    covered = [d for a, b in windows for d in day_range(a, b)]
    assert covered == day_range(start, end)
    assert all(1 <= (b - a).days + 1 <= 31 for a, b in windows)
    if days is not None:
        assert all((b - a).days + 1 == days for a, b in windows[:-1])


@given(
    day=st.integers(-5, 40),
    second=st.floats(0, 86399.999, allow_nan=False),
    ms=st.booleans(),
)
def test_the_day_of_a_row_is_its_local_wall_clock_day(day: int, second: float, ms: bool) -> None:
    first = dt.date(2024, 3, 1)
    t = local_seconds(first + dt.timedelta(days=day), second)
    value = t * 1000 if ms else t
    (got,) = day_numbers(pa.array([value]), first, 31, "ms" if ms else "s").tolist()
    assert got == (day if 0 <= day < 31 else 0)  # outside the window: its first day


def test_rows_without_time_go_to_the_first_day() -> None:
    got = day_numbers(pa.array([None, float("inf"), 1e300, -1e300], pa.float64()), START, 3)
    assert got.tolist() == [0, 0, 0, 0]


@settings(  # files written and parsed per case: no time limit on a loaded machine
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    runs=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 6), st.booleans()), min_size=1, max_size=10
    ),
    batch_rows=st.integers(1, 9),
)
def test_a_body_is_cut_where_its_day_changes(
    tmp_path: Path, runs: list[tuple[int, int, bool]], batch_rows: int
) -> None:
    """Runs of lines of one day (some followed by a blank line, days in any order):
    every line is parsed once, each day gets its own rows in body order, and when
    the days come in order without blank lines no batch straddles midnight."""
    lines: list[bytes] = []
    want: dict[int, list[str]] = {d: [] for d in range(4)}
    for day, n, blank in runs:
        for i in range(n):
            ident = f"{len(lines)}"
            want[day].append(ident)
            props = {"time": day * 86400 + 3600 * i, "id": ident}
            lines.append(orjson.dumps({"event": "e", "properties": props}))
        if blank:
            lines.append(b"")
    path = tmp_path / "body.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    first = dt.date(1970, 1, 1)
    batches = list(
        parse.read_raw_batches(
            path, source="body", batch_rows=batch_rows, cutter=day_cutter(first, 4)
        )
    )
    line = 1
    for b in batches:  # contiguous, every line once
        assert b.first_line == line
        line += b.line_count
    assert line == len(lines) + 1
    days = [d for d, _n, _b in runs]
    if parse.native_enabled() and days == sorted(days) and not any(b for *_x, b in runs):
        for b in batches:
            assert len(set(day_numbers(b.time, first, 4).tolist())) == 1
    kinds: dict[str, Any] = {}
    for b in batches:
        parse.merge_kinds(kinds, b)
    for i, (_day, part) in enumerate(
        split_days(Parsed(path, "body", batches, kinds), first, first + dt.timedelta(days=3))
    ):
        got = [
            v
            for raw, sel in part.items()
            for v in (
                raw.columns["id"].array
                if sel is None
                else raw.columns["id"].array.take(
                    pa.array(range(sel[0], sel[1])) if isinstance(sel, tuple) else sel
                )
            ).to_pylist()
        ]
        assert got == want[i]


def test_a_chunk_of_one_day_is_read_at_its_two_ends() -> None:
    """A chunk whose first and last lines are of one day is one run of that day:
    two lines are read, not the ones between (here malformed, which a probe would
    give up on); a chunk whose last line is of another day is bisected."""
    if not parse.native_enabled():
        pytest.skip("the bisection reads lines with the C scanner's line cutter")
    first = dt.date(1970, 1, 1)
    row = b'{"event":"e","properties":{"time":%d}}'
    body = b"\n".join([row % 5, *([b"{bad"] * 50), row % 6]) + b"\n"
    assert day_runs(memoryview(body), first, 2) == ([(0, 0)], True)
    later = b"\n".join([row % 5, row % 7, row % 86400, row % 86401]) + b"\n"
    runs, whole = day_runs(memoryview(later), first, 2)
    assert whole and [day for _, day in runs] == [0, 1]
    assert later[: runs[1][0]].count(b"\n") == 2


def test_plan_counts_requests_and_api_hours_without_sending(server: ServerFactory) -> None:
    srv = server([])
    client = rf.Client(api_secret=SECRET, base_url=srv.url, rate_limit=rf.RateLimit())
    per_day = client.plan_export("2021-01-01", "2023-12-31", window_days=1)
    assert (per_day.requests, per_day.api_hours) == (1095, 1095 / 60)
    fixed = client.plan_export("2021-01-01", "2023-12-31", window_days=30)
    assert fixed.requests == 37 and fixed.windows[0] == (dt.date(2021, 1, 1), dt.date(2021, 1, 30))
    auto = client.plan_export("2021-01-01", "2023-12-31")
    # nothing known: the most a run sends (a busy project: a day a request, after the
    # 7-day start window given up) and the fewest (a quiet one)
    assert (auto.requests, auto.dropped, auto.fewest) == (1096, 1, 37)
    assert "37 to 1096 requests, up to 18.3 API-hours" in str(auto)
    small = client.plan_export("2021-01-01", "2023-12-31", bytes_per_day=80_000)
    assert small.requests == 36 and max((b - a).days + 1 for a, b in small.windows) == 31
    busy = client.plan_export("2024-01-01", "2024-01-30", bytes_per_day=300 << 20)
    assert busy.requests == 30
    assert "1095 days in 1095 requests (1 day each), 18.2 API-hours at 60" in str(per_day)
    assert isinstance(auto, BudgetPlan)
    assert srv.requests == []
    hourly = rf.Client(api_secret=SECRET, rate_limit=rf.RateLimit(per_hour=30))
    assert hourly.plan_export("2024-01-01", "2024-01-30", window_days=1).api_hours == 1.0


def test_export_plan_true_checks_everything_and_sends_nothing(
    server: ServerFactory, tmp_path: Path
) -> None:
    srv = server(generate_events(10, days=2))
    out = tmp_path / "events"
    args = (out, "2021-01-01", "2023-12-31")
    plan = rf.export_to_parquet(*args, window_days=30, plan=True, **kw(srv))
    assert isinstance(plan, BudgetPlan)
    assert plan.requests == 37 and plan.windows[0] == (dt.date(2021, 1, 1), dt.date(2021, 1, 30))
    assert plan == rf.Client(api_secret=SECRET).plan_export(*args[1:], window_days=30)
    assert srv.requests == [] and not out.exists()  # nothing sent, nothing written
    client = rf.Client(api_secret=SECRET, project_timezone=TZ, base_url=srv.url)
    assert client.export_to_parquet(*args, plan=True).requests == 1096  # a busy project's
    # the arguments are checked as by the run itself, before anything
    with pytest.raises(ValueError, match="from_date"):
        rf.export_to_parquet(out, "2024-02-01", "2024-01-01", plan=True, **kw(srv))
    with pytest.raises(ValueError, match="timezone"):
        client.export_to_parquet(*args, project_timezone="Europe/paris", plan=True)
    with pytest.raises(ValueError, match="on_type_mismatch"):
        client.export_to_parquet(*args, on_type_mismatch="drop", plan=True)
    with pytest.raises(ValueError, match="plan"):
        client.export_to_parquet(*args, plan="yes")  # type: ignore[call-overload]
    assert srv.requests == [] and not out.exists()
    summary = client.export_to_parquet(out, "2024-01-01", "2024-01-02", progress=False)
    assert summary.rows == 10  # plan=False (the default): the run


@pytest.mark.parametrize("bad", [0, 32, -1, 1.5, True, "7", "Auto", None])
def test_bad_window_days_is_refused_before_any_request(server: ServerFactory, bad: Any) -> None:
    srv = server([])
    with pytest.raises(ValueError, match="window_days"):
        rf.read_robotmia_export(START, END, window_days=bad, **kw(srv))
    with pytest.raises(ValueError, match="window_days"):
        rf.export_to_parquet("unused", START, END, window_days=bad, **kw(srv))
    assert srv.requests == []


@pytest.mark.parametrize("bad", [0, -5, 1.5, True])
def test_bad_target_is_refused(server: ServerFactory, bad: Any) -> None:
    srv = server([])
    with pytest.raises(ValueError, match="window_target_bytes"):
        rf.read_robotmia_export(START, END, window_target_bytes=bad, **kw(srv))
    assert srv.requests == []


# ------------------------------------------------------------------ same data, fewer requests


@pytest.mark.parametrize("time_in_ms", [False, True])
def test_same_dataframe_with_any_window(server: ServerFactory, time_in_ms: bool) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    got = {}
    requests = {}
    for window_days in (1, 7, "auto"):
        srv.requests.clear()
        got[window_days] = rf.read_robotmia_export(
            START,
            END,
            window_days=window_days,
            time_in_ms=time_in_ms,
            return_type="arrow",
            **kw(srv),
        )
        requests[window_days] = sorted(srv.windows())
    one = got[1]
    assert one.num_rows == len(events)
    assert ids(one) == Counter(e["properties"]["$insert_id"] for e in events)
    for other in (7, "auto"):
        assert got[other].schema == one.schema
        assert got[other].equals(one), other
    assert len(requests[1]) == 20
    assert requests[7] == [
        (dt.date(2024, 3, 1), dt.date(2024, 3, 7)),
        (dt.date(2024, 3, 8), dt.date(2024, 3, 14)),
        (dt.date(2024, 3, 15), dt.date(2024, 3, 20)),
    ]
    # auto: a week first, then the rest of the range in one request
    assert requests["auto"] == [
        (dt.date(2024, 3, 1), dt.date(2024, 3, 7)),
        (dt.date(2024, 3, 8), dt.date(2024, 3, 20)),
    ]
    # pandas too
    srv.requests.clear()
    df1 = rf.read_robotmia_export(START, END, window_days=1, **kw(srv))
    dfa = rf.read_robotmia_export(START, END, **kw(srv))
    assert df1.equals(dfa)


def test_same_dataset_with_any_window(server: ServerFactory, tmp_path: Path) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    summaries = {}
    tables = {}
    for window_days in (1, 7, "auto"):
        out = tmp_path / f"w{window_days}"
        summaries[window_days] = rf.export_to_parquet(
            out, START, END, window_days=window_days, **kw(srv)
        )
        tables[window_days] = rf.read_parquet_dataset(out, return_type="arrow")
        assert sorted(p.name for p in out.glob("date=*")) == sorted(
            f"date={d}" for d, n in summaries[window_days].rows_per_day.items() if n
        )
    one = summaries[1]
    assert one.rows == len(events) and one.days == 20
    # every event in the partition of its project-local day, a second from midnight too
    expected = Counter(e["properties"]["$insert_id"][:10] for e in events)
    assert {d: n for d, n in one.rows_per_day.items() if n} == dict(expected)
    assert one.rows_per_day["2024-03-04"] == 0  # an empty day
    for other in (7, "auto"):
        assert summaries[other].rows_per_day == one.rows_per_day
        assert tables[other].equals(tables[1]), other
        assert file_schemas(tmp_path / f"w{other}") == file_schemas(tmp_path / "w1")


def file_schemas(root: Path) -> dict[str, pa.Schema]:
    return {
        str(p.relative_to(root)): pq.read_schema(p).remove_metadata()
        for p in sorted(root.rglob("*.parquet"))
    }


@pytest.mark.parametrize(("partition_by", "ndays"), [(("date",), 12), (("date", "event"), 3)])
def test_generated_events_give_the_same_files(
    server: ServerFactory, tmp_path: Path, partition_by: tuple[str, ...], ndays: int
) -> None:
    """Varied properties (nulls, lists, types that differ by day), a DST change."""
    first = dt.date(2024, 3, 9)
    events = generate_events(100 * ndays, days=ndays, from_date=first, project_timezone=TZ)
    srv = server(events, project_timezone=TZ)
    a, b = tmp_path / "one", tmp_path / "auto"
    last = first + dt.timedelta(days=ndays - 1)
    one = rf.export_to_parquet(a, first, last, window_days=1, partition_by=partition_by, **kw(srv))
    srv.requests.clear()
    auto = rf.export_to_parquet(b, first, last, partition_by=partition_by, **kw(srv))
    assert one.rows == auto.rows == len(events) and one.rows_per_day == auto.rows_per_day
    assert len(srv.windows()) == (1 if ndays <= 7 else 2)
    assert file_schemas(a) == file_schemas(b)
    for f in a.rglob("*.parquet"):
        assert pq.read_table(f).equals(pq.read_table(b / f.relative_to(a))), f


def test_an_empty_day_inside_a_window_replaces_its_old_partition(
    server: ServerFactory, tmp_path: Path
) -> None:
    events = midnight_events()
    first = server(events, project_timezone=TZ)
    rf.export_to_parquet(tmp_path, START, END, window_days=1, **kw(first))
    assert (tmp_path / "date=2024-03-05").is_dir()
    fewer = [e for e in events if not e["properties"]["$insert_id"].startswith("2024-03-05")]
    second = server(fewer, project_timezone=TZ)
    summary = rf.export_to_parquet(tmp_path, START, END, **kw(second))
    assert summary.rows_per_day["2024-03-05"] == 0
    assert not (tmp_path / "date=2024-03-05").exists()
    assert ids(rf.read_parquet_dataset(tmp_path, return_type="arrow")) == ids(
        rf.read_robotmia_export(START, END, return_type="arrow", window_days=1, **kw(second))
    )


@pytest.mark.parametrize("table_format", ["hive", "delta"])
def test_a_body_out_of_order_is_written_day_by_day_exactly(
    server: ServerFactory, tmp_path: Path, table_format: str
) -> None:
    """A multi-day body is cut into days by bisection, taking it to be in day order;
    a row out of order (here a row of the first day amid the third day's) is found
    as the day it landed in is parsed, and the body is then cut again exactly and
    its days written again, each replacing itself: every row in its own day, none
    twice, and the summary counts each day once. Run twice: downloading (the cut
    made as the body arrives), then from the cache (the body read in one piece:
    the first two days are written before the third shows the row out of order)."""
    if table_format == "delta":
        pytest.importorskip("deltalake")
    first = dt.date(2024, 3, 1)
    base = int(local_seconds(first))
    times = [base + i for i in range(10)] + [base + 86400 + i for i in range(10)]
    times += [base + 2 * 86400 + i for i in range(60)]
    times.insert(25, base + 100)  # a row of the first day, out of order
    lines = [
        orjson.dumps({"event": "e", "properties": {"time": t, "$insert_id": f"r{i}"}})
        for i, t in enumerate(times)
    ]
    body = b"".join(line + b"\n" for line in lines)
    want = {"2024-03-01": 11, "2024-03-02": 10, "2024-03-03": 60}
    outs = [io.BytesIO() for _ in range(3)]
    splitter = DaySplitter(first, 3, "s", lambda: list(outs), "w", exact=False)
    splitter.restart()
    splitter.feed(body)
    splitter.finish()
    # the cut of the body read in one piece: the first two days right (written before
    # the third is parsed), the row out of order in the third
    assert not parse.native_enabled() or (
        splitter.ordered and [o.getvalue().count(b"\n") for o in outs] == [10, 10, 61]
    )
    srv = server([], project_timezone="UTC", faults=[Fault(body=body, times=None)])
    cache = tmp_path / "cache"
    for run in ("download", "cache"):
        out = tmp_path / run
        summary = rf.export_to_parquet(
            out,
            first,
            first + dt.timedelta(days=2),
            window_days=3,
            cache_dir=cache,
            table_format=table_format,
            **kw(srv, project_timezone="UTC"),
        )
        assert summary.rows == len(lines) and summary.rows_per_day == want, run
        table = rf.read_parquet_dataset(out, return_type="arrow")
        assert table.num_rows == len(lines)
        assert sorted(table.column("properties.$insert_id").to_pylist()) == sorted(
            f"r{i}" for i in range(len(lines))
        )
        days = Counter(t.date().isoformat() for t in table.column("time").to_pylist())
        assert days == want, run
    assert len(exports(srv)) == 1  # the second run read the cached body


def test_limit_caps_the_total_with_windows(server: ServerFactory, tmp_path: Path) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    summary = rf.export_to_parquet(tmp_path, START, END, limit=9, window_days=7, **kw(srv))
    assert summary.rows == 9
    assert all(r.params["limit"] == "9" for r in exports(srv))
    assert dict(summary.rows_per_day) == {"2024-03-01": 6, "2024-03-02": 3}
    table = rf.read_robotmia_export(START, END, limit=9, return_type="arrow", **kw(srv))
    assert table.column("properties.$insert_id").to_pylist() == [
        f"2024-03-0{d}-{i}" for d, i in [(1, i) for i in range(6)] + [(2, i) for i in range(3)]
    ]


def test_cached_windows_are_reused(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(midnight_events(), project_timezone=TZ)
    cache = tmp_path / "cache"
    first = rf.read_robotmia_export(START, END, cache_dir=cache, return_type="arrow", **kw(srv))
    sent = len(exports(srv))
    again = rf.read_robotmia_export(START, END, cache_dir=cache, return_type="arrow", **kw(srv))
    assert len(exports(srv)) == sent
    assert again.equals(first)


# ------------------------------------------------------------------ failures


def test_a_truncated_window_is_retried_whole(server: ServerFactory, tmp_path: Path) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    srv.add_fault(Fault(truncate_at=300, times=1))  # the first body, a 7-day window
    summary = rf.export_to_parquet(tmp_path, START, END, max_retries=2, **kw(srv))
    log = exports(srv)
    assert [(r.from_date, r.to_date) for r in log[:2]] == [(START, dt.date(2024, 3, 7))] * 2
    assert log[0].fault is not None and log[1].fault is None
    table = rf.read_parquet_dataset(tmp_path, return_type="arrow")
    assert summary.rows == len(events)
    assert ids(table) == Counter(e["properties"]["$insert_id"] for e in events)  # once each


def test_a_failing_window_is_halved_down_to_single_days(
    server: ServerFactory, tmp_path: Path
) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    # every request over more than one day is cut short
    srv.add_fault(
        Fault(truncate_at=40, times=None, match=lambda p: p.get("from_date") != p.get("to_date"))
    )
    summary = rf.export_to_parquet(
        tmp_path, START, END, window_days=7, max_retries=1, concurrency=1, **kw(srv)
    )
    assert summary.rows == len(events)
    assert ids(rf.read_parquet_dataset(tmp_path, return_type="arrow")) == Counter(
        e["properties"]["$insert_id"] for e in events
    )
    log = exports(srv)
    first_window = [(r.from_date, r.to_date) for r in log if r.to_date <= dt.date(2024, 3, 7)]
    d = dt.date
    assert first_window == [
        (d(2024, 3, 1), d(2024, 3, 7)),
        (d(2024, 3, 1), d(2024, 3, 7)),  # the retry
        (d(2024, 3, 1), d(2024, 3, 4)),
        (d(2024, 3, 1), d(2024, 3, 4)),
        (d(2024, 3, 1), d(2024, 3, 2)),
        (d(2024, 3, 1), d(2024, 3, 2)),
        (d(2024, 3, 1), d(2024, 3, 1)),
        (d(2024, 3, 2), d(2024, 3, 2)),
        (d(2024, 3, 3), d(2024, 3, 4)),
        (d(2024, 3, 3), d(2024, 3, 4)),
        (d(2024, 3, 3), d(2024, 3, 3)),
        (d(2024, 3, 4), d(2024, 3, 4)),
        (d(2024, 3, 5), d(2024, 3, 7)),
        (d(2024, 3, 5), d(2024, 3, 7)),
        (d(2024, 3, 5), d(2024, 3, 6)),
        (d(2024, 3, 5), d(2024, 3, 6)),
        (d(2024, 3, 5), d(2024, 3, 5)),
        (d(2024, 3, 6), d(2024, 3, 6)),
        (d(2024, 3, 7), d(2024, 3, 7)),
    ]
    assert all(r.status == 200 for r in log if r.from_date == r.to_date)


def test_an_auto_window_over_the_target_is_abandoned_and_cut_to_its_whole_days(
    server: ServerFactory,
) -> None:
    events = midnight_events()
    for e in events:  # bodies that do not compress away
        e["properties"]["token"] = hashlib.sha256(
            e["properties"]["$insert_id"].encode()
        ).hexdigest()
    srv = server(events, project_timezone=TZ)
    one = rf.read_robotmia_export(START, END, window_days=1, return_type="arrow", **kw(srv))
    day_bytes = max(r.bytes_sent for r in exports(srv))
    srv.requests.clear()
    target = int(3.2 * day_bytes)  # a week does not fit, nor do four days of events
    got = rf.read_robotmia_export(
        START, END, window_target_bytes=target, concurrency=1, return_type="arrow", **kw(srv)
    )
    assert got.equals(one)
    sent = exports(srv)
    log = [(r.from_date, r.to_date) for r in sent]
    d = dt.date
    # the week is given up at the target and fetched again as the days that had
    # arrived whole (03-04 has no events: three days of events and two parts of one)
    assert log[:3] == [
        (START, d(2024, 3, 7)),
        (START, d(2024, 3, 5)),
        (d(2024, 3, 6), d(2024, 3, 7)),
    ]
    assert all(r.bytes_sent <= target for r in sent[1:])  # one request given up, no more
    assert all((b - a).days + 1 <= 5 for a, b in log[3:])  # sized from what was learnt
    # a pinned window is never cut short
    srv.requests.clear()
    pinned = rf.read_robotmia_export(
        START, END, window_days=7, window_target_bytes=target, return_type="arrow", **kw(srv)
    )
    assert pinned.equals(one) and len(srv.windows()) == 3


def test_a_day_that_keeps_failing_is_named_and_earlier_days_stay(
    server: ServerFactory, tmp_path: Path
) -> None:
    events = midnight_events()
    srv = server(events, project_timezone=TZ)
    rf.export_to_parquet(tmp_path, START, END, **kw(srv))
    before = rf.read_parquet_dataset(tmp_path, return_type="arrow")
    srv.add_fault(
        Fault(
            truncate_at=100,
            times=None,
            match=lambda p: p.get("from_date", "") <= "2024-03-06" <= p.get("to_date", ""),
        )
    )
    with pytest.raises(rf.IncompleteDownloadError, match="2024-03-06") as err:
        rf.export_to_parquet(tmp_path, START, END, max_retries=0, **kw(srv))
    assert "2024-03-06.." not in str(err.value) and "..2024-03-06" not in str(err.value)
    failed = [r for r in exports(srv) if r.fault is not None]
    assert (failed[-1].from_date, failed[-1].to_date) == (dt.date(2024, 3, 6),) * 2
    after = rf.read_parquet_dataset(tmp_path, return_type="arrow")
    assert ids(after) == ids(before)  # nothing lost, nothing doubled


# ------------------------------------------------------------------ sync


def test_the_sync_lookback_is_one_request(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate={"events_per_day": 5}, project_timezone=TZ)
    rf.sync_to_parquet(tmp_path, "2024-02-20", "2024-03-01", **kw(srv))
    srv.requests.clear()
    summary = rf.sync_to_parquet(tmp_path, "2024-02-20", "2024-03-02", **kw(srv))
    assert srv.windows() == [(dt.date(2024, 2, 25), dt.date(2024, 3, 2))]
    assert summary.days == 7 and summary.rows == 35


def test_a_first_sync_over_years_takes_few_requests(server: ServerFactory, tmp_path: Path) -> None:
    # events on the last days only: every day is still a partition to replace
    generate = {"events_per_day": 3, "from_date": "2023-12-20"}
    srv = server(generate=generate, project_timezone=TZ)
    summary = rf.sync_to_parquet(tmp_path, "2021-01-01", "2023-12-31", **kw(srv))
    assert summary.rows == 3 * 12 and summary.days == 1095
    windows = srv.windows()
    assert len(windows) <= 37  # a week, then 31 days at a time
    assert max((b - a).days + 1 for a, b in windows) == 31


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize(("flag", "expected"), [("1", 20), ("7", 3), ("auto", 2)])
def test_cli_window_days(
    server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    expected: int,
) -> None:
    from robotmia_frames.cli import main

    srv = server(midnight_events(), project_timezone=TZ)
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    argv = ["export", str(START), str(END), "--out", str(tmp_path), "--timezone", TZ]
    argv += ["--base-url", srv.url, "--no-progress", "--window-days", flag]
    assert main(argv, out=io.StringIO()) == 0
    assert len(srv.windows()) == expected
    assert len(rf.read_parquet_dataset(tmp_path)) == len(midnight_events())


@pytest.mark.parametrize("argv", [["--window-days", "week"], ["--window-target-mb", "0"]])
def test_cli_bad_window_flags(tmp_path: Path, argv: list[str]) -> None:
    from robotmia_frames.cli import main

    base = ["export", str(START), str(END), "--out", str(tmp_path), "--timezone", TZ]
    with pytest.raises(SystemExit) as exit_:
        main([*base, *argv], out=io.StringIO())
    assert exit_.value.code == 2


def test_cli_window_days_out_of_range_is_a_usage_error(
    server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from robotmia_frames.cli import main

    srv = server([])
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    base = ["export", str(START), str(END), "--out", str(tmp_path), "--timezone", TZ]
    assert main([*base, "--base-url", srv.url, "--window-days", "40"], out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "--window-days must be" in err and " window_days" not in err  # the flag's name
    assert srv.requests == []


@pytest.mark.parametrize(
    "options", [{"split_by": "event"}, {"sparse_columns": "map"}, {"dedupe": True}]
)
def test_wide_shapes_are_the_same_with_any_window(
    server: ServerFactory, options: dict[str, Any]
) -> None:
    events = generate_events(600, days=6, from_date="2024-03-08", project_timezone=TZ)
    srv = server(events, project_timezone=TZ)
    first, last = "2024-03-08", "2024-03-13"
    one = rf.read_robotmia_export(
        first, last, window_days=1, return_type="arrow", **options, **kw(srv)
    )
    srv.requests.clear()
    auto = rf.read_robotmia_export(first, last, return_type="arrow", **options, **kw(srv))
    assert len(srv.windows()) == 1
    if isinstance(one, dict):
        assert one.keys() == auto.keys()
        assert all(one[k].equals(auto[k]) for k in one)
    else:
        assert one.equals(auto)


@pytest.mark.parametrize("table_format", ["parquet", "read"])
def test_a_day_failing_before_an_earlier_one_lands_keeps_the_earlier_one(
    server: ServerFactory, tmp_path: Path, table_format: str
) -> None:
    """Day 2 fails for good while day 1 is still downloading (its answer held until
    day 2's last try is answered): day 1 is awaited and handed on (written, for a
    dataset) before the error, whatever order the downloads end in; day 3, after
    the failing day, is not written."""
    first = dt.date(2024, 3, 1)
    events = generate_events(600, days=3, from_date=first, seed=5, project_timezone=TZ)
    srv = server(events, project_timezone=TZ)
    second = (first + dt.timedelta(days=1)).isoformat()
    release = threading.Event()
    srv.add_fault(
        Fault(hold=release, times=1, match=lambda p: p.get("from_date") == first.isoformat())
    )
    srv.add_fault(Fault(status=503, times=10, match=lambda p: p.get("from_date") == second))

    def release_after_day_two_failed() -> None:
        for _ in range(2000):  # at most about 20 s, then let it go anyway
            if any(r.status == 503 for r in srv.requests):
                break
            threading.Event().wait(0.01)
        release.set()

    watcher = threading.Thread(target=release_after_day_two_failed, daemon=True)
    watcher.start()
    args = (first, first + dt.timedelta(days=2))
    options = kw(srv, window_days=1, concurrency=3, max_retries=0)
    with pytest.raises(rf.RobotmiaError, match=second):
        if table_format == "read":
            rf.read_robotmia_export(*args, **options)
        else:
            rf.export_to_parquet(tmp_path, *args, **options)
    watcher.join()
    if table_format == "parquet":
        table = rf.read_parquet_dataset(tmp_path, return_type="arrow")
        assert table.num_rows == 200
        assert sorted(p.name for p in tmp_path.glob("date=*")) == [f"date={first.isoformat()}"]
