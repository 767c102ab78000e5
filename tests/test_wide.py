"""Wide projects (issue 20): ``split_by="event"``, ``sparse_columns="map"``, narrow
event partitions, and the memory budget (``max_memory``, ``MemoryBudgetError``).

Every export here is generated: a project of ``keys`` distinct property keys, 30
per event name, over the local export server or a local file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.parse import json_text

DAY0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc).timestamp()
ROOT = Path(__file__).resolve().parents[1]


def wide_events(
    n: int, keys: int, per_event: int = 30, seed: int = 1, span: int = 172_800
) -> list[dict[str, Any]]:
    """``n`` events over ``keys // per_event`` event names, each with its own keys
    (ints, floats, strings, bools and lists in turn), plus two keys every event has,
    over ``span`` seconds from 2024-01-01 (two days)."""
    rnd = random.Random(seed)
    names = max(1, keys // per_event)
    out = []
    for i in range(n):
        e = rnd.randrange(names)
        props: dict[str, Any] = {
            "time": int(DAY0) + (i * 7) % span,
            "distinct_id": f"u{rnd.randrange(50)}",
            "$insert_id": f"i{i}",
        }
        for j in range(per_event):
            k = e * per_event + j
            if rnd.random() < 0.2:
                continue  # keys an event sometimes leaves out
            m = k % 5
            props[f"k{k}"] = (
                rnd.randrange(-5, 1000)
                if m == 0
                else round(rnd.random() * 100, 3)
                if m == 1
                else f"v{rnd.randrange(40)}"
                if m == 2
                else bool(rnd.randrange(2))
                if m == 3
                else [rnd.randrange(9) for _ in range(rnd.randrange(3))]
            )
        out.append({"event": f"E{e}", "properties": props})
    return out


def dumps(event: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(event)
    except TypeError:  # an int beyond 64 bits
        return json.dumps(event).encode()


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(dumps(e) + b"\n" for e in events))
    return path


def policy_text(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


# ------------------------------------------------------------------ split_by


def assert_split_matches_flat(split: dict[Any, pa.Table], flat: pa.Table) -> None:
    """Each event's table is the flat table's rows of that event, with exactly the
    columns that hold a value in one of them, of the flat table's types."""
    assert set(split) == set(flat.column("event").to_pylist())
    for name, table in split.items():
        rows = flat.filter(pc.equal(flat.column("event"), name))
        carried = [
            c
            for c in rows.column_names
            if c in ("event", "time") or rows.column(c).null_count < rows.num_rows
        ]
        assert table.column_names == carried, name
        assert table.equals(rows.select(carried)), name


def test_split_by_event_file_matches_flat(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(3000, 600))
    flat = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    split = rf.read_export_file(path, project_timezone="UTC", return_type="arrow", split_by="event")
    assert len(split) == 20
    assert_split_matches_flat(split, flat)
    assert max(t.num_columns for t in split.values()) <= 2 + 2 + 30
    assert sum(t.nbytes for t in split.values()) * 5 < flat.nbytes


def test_split_by_event_export_matches_flat_pandas_too(server, secret) -> None:
    srv = server(wide_events(2000, 300))
    kw: dict[str, Any] = dict(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    flat = rf.read_robotmia_export("2024-01-01", "2024-01-02", return_type="arrow", **kw)
    split = rf.read_robotmia_export(
        "2024-01-01", "2024-01-02", return_type="arrow", split_by="event", **kw
    )
    assert_split_matches_flat(split, flat)
    frames = rf.read_robotmia_export("2024-01-01", "2024-01-02", split_by="event", **kw)
    assert {k: len(v) for k, v in frames.items()} == {k: v.num_rows for k, v in split.items()}
    assert str(frames["E0"]["properties.k0"].dtype) == "Int64"


def test_split_by_event_with_columns_and_where(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(1500, 90))
    got = rf.read_export_file(
        path,
        project_timezone="UTC",
        return_type="arrow",
        split_by="event",
        columns=["event", "properties.k0", "properties.k30"],
        where='properties["distinct_id"] == "u1"',
    )
    assert set(got) <= {"E0", "E1", "E2"}
    assert got["E0"].column_names == ["event", "properties.k0"]
    assert got["E1"].column_names == ["event", "properties.k30"]
    flat = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    ones = flat.filter(pc.equal(flat.column("properties.distinct_id"), "u1"))
    assert sum(t.num_rows for t in got.values()) == ones.num_rows


def test_split_by_and_limit_refused(server, secret) -> None:
    srv = server(wide_events(10, 60))
    with pytest.raises(rf.InvalidArgumentError, match="limit= cannot be combined with split_by"):
        rf.read_robotmia_export(
            "2024-01-01",
            "2024-01-01",
            api_secret=secret,
            project_timezone="UTC",
            base_url=srv.url,
            split_by="event",
            limit=5,
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split_by": "day"}, "split_by must be None or 'event'"),
        ({"sparse_columns": "json"}, "sparse_columns must be None or 'map'"),
        ({"sparse_threshold": 1.5}, "sparse_threshold must be a share"),
        ({"max_memory": 0}, "max_memory must be 'auto'"),
        ({"max_memory": "1GB"}, "max_memory must be 'auto'"),
    ],
)
def test_bad_shape_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", wide_events(3, 30))
    with pytest.raises(rf.InvalidArgumentError, match=match):
        rf.read_export_file(path, project_timezone="UTC", **kwargs)


# ------------------------------------------------------------------ sparse map


def assert_map_holds_the_rest(
    table: pa.Table, events: list[dict[str, Any]], threshold: float
) -> None:
    """Kept columns are those filled in at least ``threshold`` of the rows; every
    other value is in the ``properties`` map, as the type policy writes text."""
    fill: dict[str, int] = {}
    for e in events:
        for k, v in e["properties"].items():
            if k != "time":
                fill[k] = fill.get(k, 0) + (v is not None)
    kept = {k for k, n in fill.items() if n >= threshold * len(events)}
    assert set(table.column_names) == {"event", "time", "properties"} | {
        "properties." + k for k in kept
    }
    assert table.schema.field("properties").type == pa.map_(pa.string(), pa.string())
    maps = table.column("properties").to_pylist()
    for e, entries in zip(events, maps, strict=True):
        want = {
            k: policy_text(v)
            for k, v in e["properties"].items()
            if k != "time" and k not in kept and v is not None
        }
        assert dict(entries) == want
        assert len(entries) == len(want)


def test_sparse_map_file_loses_nothing(tmp_path: Path) -> None:
    events = wide_events(3000, 600)
    path = write_jsonl(tmp_path / "wide.jsonl", events)
    flat = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    got = rf.read_export_file(
        path, project_timezone="UTC", return_type="arrow", sparse_columns="map"
    )
    assert_map_holds_the_rest(got, events, 0.1)
    for name in got.column_names:
        if name != "properties":
            assert got.column(name).equals(flat.column(name)), name
    assert got.nbytes * 5 < flat.nbytes


@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "d"]),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-(2**70), 2**70),
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=4),
                st.lists(st.integers(0, 9), max_size=2),
                st.dictionaries(st.text(max_size=2), st.integers(0, 3), max_size=2),
            ),
            max_size=4,
        ),
        min_size=1,
        max_size=30,
    ),
    threshold=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
)
def test_sparse_map_values_are_policy_text(
    tmp_path_factory: pytest.TempPathFactory, values: list[dict[str, Any]], threshold: float
) -> None:
    events = [{"event": "e", "properties": {"time": int(DAY0), **v}} for v in values]
    path = write_jsonl(tmp_path_factory.mktemp("sparse") / "x.jsonl", events)
    got = rf.read_export_file(
        path,
        project_timezone="UTC",
        return_type="arrow",
        sparse_columns="map",
        sparse_threshold=threshold,
    )
    assert_map_holds_the_rest(got, events, threshold)


def test_sparse_map_where_and_pandas(tmp_path: Path) -> None:
    events = wide_events(2000, 600)
    path = write_jsonl(tmp_path / "wide.jsonl", events)
    got = rf.read_export_file(
        path,
        project_timezone="UTC",
        sparse_columns="map",
        where='properties["k31"] > 500',  # a rare key: kept a column for the filter
    )
    want = [e for e in events if isinstance(e["properties"].get("k31"), int)]
    want = [e for e in want if e["properties"]["k31"] > 500]
    assert len(got) == len(want)
    assert "properties.k31" in got.columns
    assert str(got["properties"].dtype).startswith("map<string, string>")


# ------------------------------------------------------------------ datasets


def test_event_partitions_hold_only_their_columns(server, secret, tmp_path: Path) -> None:
    events = wide_events(2000, 300)
    srv = server(events)
    out = tmp_path / "ds"
    kw: dict[str, Any] = dict(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", partition_by=("date", "event"), **kw)
    for f in out.rglob("*.parquet"):
        name = f.parent.name[len("event=") :]
        carried = {k for e in events if e["event"] == name for k in e["properties"]} - {"time"}
        assert set(pq.read_schema(f).names) == {"time"} | {"properties." + k for k in carried}
    narrow = rf.read_parquet_dataset(out, event="E3", return_type="arrow")
    assert narrow.num_columns <= 2 + 2 + 30
    flat = rf.read_robotmia_export("2024-01-01", "2024-01-02", return_type="arrow", **kw)
    back = rf.read_parquet_dataset(out, return_type="arrow")
    assert back.num_rows == flat.num_rows
    assert set(back.column_names) == set(flat.column_names)
    split = rf.read_parquet_dataset(out, return_type="arrow", split_by="event")
    assert {k: v.num_rows for k, v in split.items()} == {
        k: flat.filter(pc.equal(flat.column("event"), k)).num_rows for k in split
    }
    e3 = flat.filter(pc.equal(flat.column("event"), "E3"))
    assert set(split["E3"].column_names) == set(narrow.column_names)
    assert split["E3"].num_rows == e3.num_rows


def test_dataset_sparse_map(server, secret, tmp_path: Path) -> None:
    events = wide_events(1500, 300)
    srv = server(events)
    out = tmp_path / "ds"
    kw: dict[str, Any] = dict(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", **kw)
    got = rf.read_parquet_dataset(out, return_type="arrow", sparse_columns="map")
    flat = rf.read_parquet_dataset(out, return_type="arrow")
    assert got.num_rows == flat.num_rows
    order = pc.sort_indices(flat, [("properties.$insert_id", "ascending")])
    by_id = {e["properties"]["$insert_id"]: e for e in events}
    ids = got.column("properties.$insert_id").to_pylist()
    assert_map_holds_the_rest(got, [by_id[i] for i in ids], 0.1)
    assert order is not None


# ------------------------------------------------------------------ the budget


def rss() -> int:
    """This process's resident memory now (the budget counts it)."""
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_budget_error_names_the_ways_out(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(20_000, 2000))
    budget = rss() + 100_000_000
    with pytest.raises(rf.MemoryBudgetError) as info:
        rf.read_export_file(path, project_timezone="UTC", max_memory=budget)
    err = info.value
    assert isinstance(err, MemoryError)
    assert err.estimate > err.max_memory == budget
    for way in ("columns=", "split_by='event'", "sparse_columns='map'", "export_to_parquet"):
        assert way in str(err)
    # the ways out fit
    budget = rss() + 300_000_000
    split = rf.read_export_file(path, project_timezone="UTC", split_by="event", max_memory=budget)
    assert sum(len(v) for v in split.values()) == 20_000
    del split
    budget = rss() + 300_000_000
    sparse = rf.read_export_file(
        path, project_timezone="UTC", sparse_columns="map", max_memory=budget
    )
    assert len(sparse) == 20_000


def test_budget_on_export_and_dataset(server, secret, tmp_path: Path) -> None:
    srv = server(wide_events(3000, 600))
    kw: dict[str, Any] = dict(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    with pytest.raises(rf.MemoryBudgetError, match="window 2024-01-0"):
        rf.read_robotmia_export("2024-01-01", "2024-01-02", max_memory=rss() + 5_000_000, **kw)
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-02", **kw)  # no budget: day by day
    with pytest.raises(rf.MemoryBudgetError, match="from their footers"):
        rf.read_parquet_dataset(out, max_memory=rss() + 5_000_000)
    assert rf.read_parquet_dataset(out, max_memory=None).shape[0] == 3000


def test_budget_error_pickles() -> None:
    import pickle

    err = rf.MemoryBudgetError("too big", estimate=10, max_memory=5)
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.estimate, back.max_memory) == ("too big", 10, 5)


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import robotmia_frames as rf
    path, budget = sys.argv[1], int(sys.argv[2])
    try:
        rf.read_export_file(path, project_timezone="UTC", max_memory=budget)
        outcome = {"error": None}
    except rf.MemoryBudgetError as exc:
        outcome = {"error": str(exc), "estimate": exc.estimate}
    # This process's own high-water mark (VmHWM): ru_maxrss would also count the
    # pages of the forked parent (pytest) that this process began with.
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    peak = int(status) * 1024
    rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({**outcome, "peak": peak, "ru_maxrss": rusage}))
    """
)


def run_child(script: str, *args: str) -> dict[str, Any]:
    """``script`` run with ``args`` in a fresh Python process (which imports the
    package from this checkout): the JSON object of its last line of output, where
    it reports its own peak RSS (``VmHWM``)."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_budget_error_fires_before_memory_runs_out(tmp_path: Path) -> None:
    """A flat read of a wide export that would need several times the budget fails
    with the error in a process whose peak memory stayed under the budget."""
    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(60_000, 2000))
    budget = 450_000_000
    got = run_child(CHILD, str(path), str(budget))
    assert got["error"] is not None and "split_by='event'" in got["error"], got
    assert got["estimate"] > budget
    assert got["peak"] < budget, got
    # Without the budget the same read needs far more (measured in the benchmark:
    # benchmarks/bench_wide.py). The estimate projects from the share of the file
    # read: it fires after a small part of the rows, and counts the rest.
    scanned, projected = scanned_and_projected(got["error"])
    assert scanned < 60_000 * 0.1, got["error"]
    assert 0.8 * 60_000 < projected < 1.2 * 60_000, got["error"]


SPLIT_CHILD = CHILD.replace("max_memory=budget)", "max_memory=budget, split_by='event')")


def test_budget_counts_the_pieces_of_a_split_read(tmp_path: Path) -> None:
    """At 10,000 keys, 30 an event, a split read is scanned sparse (each key's
    values at its rows) and keeps a piece per event and chunk, joined as they
    accumulate: it completes within a budget of a few hundred MB over what the
    process held when it began, peaking under it. Under a budget smaller than the
    chunks in flight it fails early, after its first chunk, with the ways out
    (``split_by`` is not one: the read already uses it)."""
    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(30_000, 10_000))
    fits = run_child(RELATIVE_CHILD, str(path), str(300_000_000))
    assert fits["error"] is None, fits
    assert fits["peak"] < fits["base"] + 300_000_000, fits
    got = run_child(RELATIVE_CHILD, str(path), str(20_000_000))
    assert got["error"] is not None and "split_by" not in got["error"].split("Ways out")[1]
    assert got["estimate"] > got["base"] + 20_000_000, got
    scanned, projected = scanned_and_projected(got["error"])
    assert scanned < 30_000 and 0.8 * 30_000 < projected < 1.2 * 30_000, got["error"]


#: :data:`SPLIT_CHILD` with a budget of the given bytes over the memory the child
#: holds when the read begins (``base``, reported too).
RELATIVE_CHILD = SPLIT_CHILD.replace(
    "path, budget = sys.argv[1], int(sys.argv[2])",
    "path, extra = sys.argv[1], int(sys.argv[2])\n"
    "base = int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) * 1024\n"
    "budget = base + extra",
).replace("print(json.dumps({**outcome,", "print(json.dumps({**outcome, 'base': base,")
assert RELATIVE_CHILD.count("base + extra") == 1 and "'base': base" in RELATIVE_CHILD


def scanned_and_projected(message: str) -> tuple[int, int]:
    """The rows scanned and the rows projected in all, from a budget error's message."""
    found = re.search(
        r"([\d,]+) rows scanned so far in [\d.]+% of the input, about ([\d,]+)", message
    )
    assert found is not None, message
    return int(found[1].replace(",", "")), int(found[2].replace(",", ""))


def test_budget_projects_a_gzip_file_from_its_compressed_bytes(tmp_path: Path) -> None:
    """In a gzip file the share read is that of its compressed bytes: the projection
    of the rows in all is still about right, long before the end of the file."""
    events = wide_events(40_000, 2000)
    path = tmp_path / "wide.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b"".join(dumps(e) + b"\n" for e in events))
    with pytest.raises(rf.MemoryBudgetError) as info:
        rf.read_export_file(path, project_timezone="UTC", max_memory=rss() + 50_000_000)
    scanned, projected = scanned_and_projected(str(info.value))
    assert scanned < 40_000 * 0.25
    assert 0.7 * 40_000 < projected < 1.3 * 40_000, str(info.value)


def spread(events: list[dict[str, Any]], days: int) -> list[dict[str, Any]]:
    """``events`` spread evenly over ``days`` days from 2024-01-01 (UTC)."""
    for i, e in enumerate(events):
        e["properties"]["time"] = int(DAY0) + (i * days * 86_400) // len(events)
    return events


def cached_days(srv: Any, secret: str, tmp_path: Path, window_days: int) -> dict[str, Any]:
    """Read keywords for ``srv``, bodies kept in a ``cache_dir`` (parsed from disk)."""
    return dict(
        api_secret=secret,
        project_timezone="UTC",
        base_url=srv.url,
        window_days=window_days,
        cache_dir=tmp_path / "cache",
    )


def test_budget_projects_an_export_from_its_first_day(server, secret, tmp_path: Path) -> None:
    """An export of four like days fails while its first day is parsed when the whole
    would pass the budget, though that day alone fits: the bodies to come count.
    (The bodies come from ``cache_dir``, parsed from disk as they are read.)"""
    kw = cached_days(server(spread(wide_events(40_000, 600), 4)), secret, tmp_path, 1)
    assert len(rf.read_robotmia_export("2024-01-01", "2024-01-04", max_memory=None, **kw)) == 40_000

    def estimate(last: str) -> int:
        """The estimate (beyond this process's memory now) at the first check."""
        base = rss()
        with pytest.raises(rf.MemoryBudgetError) as info:
            rf.read_robotmia_export("2024-01-01", last, max_memory=base + 1, **kw)
        return info.value.estimate - base

    one_day, four_days = estimate("2024-01-01"), estimate("2024-01-04")
    assert four_days > 1.5 * one_day
    budget = rss() + (one_day + four_days) // 2
    assert (
        len(rf.read_robotmia_export("2024-01-01", "2024-01-01", max_memory=budget, **kw)) == 10_000
    )
    with pytest.raises(rf.MemoryBudgetError, match=r"of the input.*window 2024-01-01") as info:
        rf.read_robotmia_export("2024-01-01", "2024-01-04", max_memory=budget, **kw)
    _, projected = scanned_and_projected(str(info.value))
    assert 0.7 * 40_000 < projected < 1.3 * 40_000


def test_split_by_event_dedupes_across_chunks(tmp_path: Path) -> None:
    """A repeat far from its first copy (another parse chunk) is dropped too."""
    events = wide_events(6000, 2000)
    events += [json.loads(json.dumps(e)) for e in events[:50]]  # repeats, 6,000 rows later
    path = write_jsonl(tmp_path / "wide.jsonl", events)
    flat = rf.read_export_file(path, project_timezone="UTC", return_type="arrow", dedupe=True)
    assert flat.num_rows == 6000
    split = rf.read_export_file(
        path, project_timezone="UTC", return_type="arrow", dedupe=True, split_by="event"
    )
    assert_split_matches_flat(split, flat)


def test_budget_watches_a_window_of_several_days_as_parsed(server, secret, tmp_path: Path) -> None:
    """A body of several days is held whole, as parsed, until it is cut into days:
    the budget checks it batch by batch, before the cut (here a body from
    ``cache_dir``, parsed from disk)."""
    kw = cached_days(server(spread(wide_events(6000, 600), 3)), secret, tmp_path, 3)
    assert len(rf.read_robotmia_export("2024-01-01", "2024-01-03", max_memory=None, **kw)) == 6000
    with pytest.raises(rf.MemoryBudgetError, match="window of several days, in window"):
        rf.read_robotmia_export("2024-01-01", "2024-01-03", max_memory=rss() + 1, **kw)


@pytest.mark.skipif(not rf.parse.native_enabled(), reason="bodies stream through the C scanner")
def test_budget_stops_a_body_scanned_while_it_downloads(server, secret) -> None:
    """A body parsed while it downloads is held until it is verified: the budget
    counts its scans as they are done and stops the download past the budget."""
    srv = server(spread(wide_events(30_000, 600), 1))
    kw: dict[str, Any] = dict(api_secret=secret, project_timezone="UTC", base_url=srv.url)
    with pytest.raises(
        rf.MemoryBudgetError, match=r"window 2024-01-01 \(downloading\) held as parsed"
    ):
        rf.read_robotmia_export("2024-01-01", "2024-01-01", max_memory=rss() + 20_000_000, **kw)
    assert len(rf.read_robotmia_export("2024-01-01", "2024-01-01", max_memory=None, **kw)) == 30_000


def test_budget_checked_from_download_threads_while_batches_arrive(tmp_path: Path) -> None:
    """Download threads check the bodies they hold (``holding``) while the calling
    thread hands on batches of new bodies: the estimate never sees the collector
    half-changed (it once failed with "dictionary changed size during iteration"
    over a year of one-day windows)."""
    from robotmia_frames import _wide

    path = write_jsonl(tmp_path / "a.jsonl", wide_events(50, 60))
    batch = next(rf.parse.read_raw_batches(path, source="a"))
    collect = _wide.Collector(_wide.Shape.checked(max_memory=None))
    failures: list[BaseException] = []
    stop = threading.Event()

    def download_thread() -> None:
        try:
            while not stop.is_set():
                collect.holding(1, "a body")
        except BaseException as exc:  # reported by the assert below
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    thread = threading.Thread(target=download_thread)
    thread.start()
    try:
        for day in range(1000):
            batch.source, batch.read_to, batch.file_size = f"window {day}", 1, 2
            collect(batch)
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(collect.read) == 1000


# ------------------------------------------------------------------ command line


def test_cli_read_split_by_event(tmp_path: Path) -> None:
    """``read --split-by event --json``: one table per event, each with its own columns,
    as ``split_by="event"`` gives in Python."""
    from tests.test_cli import run_cli

    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(600, 300))
    proc = run_cli("read", str(path), "--timezone", "UTC", "--split-by", "event", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    split = rf.read_export_file(path, project_timezone="UTC", split_by="event", return_type="arrow")
    assert doc["rows"] == 600
    assert set(doc["tables"]) == set(split)
    for name, table in split.items():
        got = doc["tables"][name]
        assert got["rows"] == table.num_rows
        assert list(got["columns"]) == table.column_names
        assert len(got["data"]) == min(10, table.num_rows)
        assert {r["event"] for r in got["data"]} == {name}
    text = run_cli("read", str(path), "--timezone", "UTC", "--split-by", "event", "--limit", "2")
    assert text.returncode == 0, text.stderr
    assert f"{len(split)} tables (one per event), 600 rows in all" in text.stdout


def test_cli_read_sparse_map(tmp_path: Path) -> None:
    """``read --sparse-columns map --json``: the rare keys in one ``properties`` object
    per row, the common ones as columns; ``--sparse-threshold`` moves the line."""
    from tests.test_cli import run_cli

    events = wide_events(600, 900)  # 30 event names: each key in about 3% of the rows
    path = write_jsonl(tmp_path / "wide.jsonl", events)
    args = ("read", str(path), "--timezone", "UTC", "--sparse-columns", "map", "--json")
    doc = json.loads(run_cli(*args, "--limit", "0").stdout)
    assert doc["rows"] == 600
    assert doc["columns"]["properties"].startswith("map<")
    assert "properties.distinct_id" in doc["columns"]
    assert not any(c.startswith("properties.k") for c in doc["columns"])
    for row, event in zip(doc["data"], events, strict=True):
        rare = {k: v for k, v in event["properties"].items() if k.startswith("k")}
        assert row["properties"] == {k: policy_text(v) for k, v in rare.items()}
    # every key filled in at least 1% of the rows stays a column
    low = json.loads(run_cli(*args, "--sparse-threshold", "0.01", "--limit", "1").stdout)
    assert any(c.startswith("properties.k") for c in low["columns"])


def test_cli_read_max_memory(tmp_path: Path) -> None:
    """``read --max-memory``: over the budget, exit 7 with one line naming the ways
    out as flags; ``none`` turns the check off; a bad size is a usage error."""
    from tests.test_cli import assert_one_line_error, run_cli

    path = write_jsonl(tmp_path / "wide.jsonl", wide_events(3000, 600))
    base = ("read", str(path), "--timezone", "UTC", "--limit", "1")
    proc = run_cli(*base, "--max-memory", "50MB")
    assert proc.returncode == 7, proc.stderr
    line = assert_one_line_error(proc.stderr)
    for flag in ("--columns", "--split-by event", "--sparse-columns map", "--max-memory none"):
        assert flag in line, line
    ways = line.split("Ways out:")[1]
    assert "split_by" not in ways and "max_memory" not in ways and "columns=" not in ways
    as_json = run_cli(*base, "--max-memory", "50MB", "--json")
    assert json.loads(as_json.stdout)["error"]["type"] == "MemoryBudgetError"
    assert run_cli(*base, "--max-memory", "none").returncode == 0
    bad = run_cli(*base, "--max-memory", "lots")
    assert bad.returncode == 2
    assert "--max-memory" in bad.stderr


@pytest.mark.parametrize("mode", [{"split_by": "event"}, {"sparse_columns": "map"}])
def test_a_declined_chunk_of_a_sparse_read_is_read_in_pieces(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: dict[str, Any]
) -> None:
    """A compact read scans sparse; a chunk the scanner leaves to Python (here: a
    malformed line and an integer beyond 64 bits among 2,000 keys) is parsed in
    pieces as narrow as its width calls for. The result, the skipped line's number
    and the warning are those of the pure-Python engine."""
    events = wide_events(1_500, 2_000)
    events[600]["properties"]["big"] = 2**70
    lines = [dumps(e) for e in events]
    lines.insert(1_000, b'{"event": "broken", "properties": {')
    path = tmp_path / "wide.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    results = []
    for native in ("1", "0"):
        monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", native)
        with pytest.warns(rf.RobotmiaWarning, match="1001") as warned:
            got = rf.read_export_file(
                path, project_timezone="UTC", return_type="arrow", on_bad_lines="warn", **mode
            )
        results.append((got, [str(w.message) for w in warned]))
    (native_got, native_warned), (pure_got, pure_warned) = results
    assert native_warned == pure_warned
    if isinstance(native_got, dict):
        assert list(native_got) == list(pure_got)
        assert all(native_got[k].equals(pure_got[k]) for k in native_got)
        assert sum(t.num_rows for t in native_got.values()) == 1_500
    else:
        assert native_got.equals(pure_got) and native_got.num_rows == 1_500
