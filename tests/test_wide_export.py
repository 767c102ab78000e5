"""Wide days on disk (issue 20, item 4): ``export_to_parquet`` of a day with
thousands of keys writes it in bounded memory, with the files a day held whole
gives.

A day whose parsed batches would hold more than ``DAY_HOLD_BYTES`` is parsed a
first time for its column kinds (and each event's keys), then again as it is
written, one chunk at a time. The exports here are generated: ``keys`` distinct
property keys, 30 per event name, every event on one day.
"""

from __future__ import annotations

import gzip
import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import robotmia_frames as rf
from robotmia_frames import _pipeline, parse
from tests.test_wide import run_child, wide_events

DAY = "2024-01-01"


def one_day(n: int, keys: int) -> list[dict[str, Any]]:
    """``n`` events of one day over ``keys // 30`` event names, each with its own
    keys (``wide_events``), and one key of mixed types (a text column)."""
    events = wide_events(n, keys, seed=3, span=86_400)
    for e in events[5::997]:
        e["properties"]["k0"] = "text"
    return events


def by_insert_id(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table, [("properties.$insert_id", "ascending")]))


def day_file(folder: Path) -> pa.Table:
    """The one data file of the day, without its footer's metadata."""
    (path,) = folder.glob(f"date={DAY}/part-0.parquet")
    return pq.read_table(path).replace_schema_metadata(None)


# ----------------------------------------------------------- bounded, in a child

CHILD = textwrap.dedent(
    """
    import json, sys
    import robotmia_frames as rf

    url, out, layout, pins = sys.argv[1:5]
    summary = rf.export_to_parquet(
        out, "2024-01-01", "2024-01-01", api_secret="s", project_timezone="UTC",
        base_url=url, progress=False,
        partition_by=("date", "event") if layout == "event" else ("date",),
        **json.loads(pins),
    )
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
    print(json.dumps({"rows": summary.rows, "files": summary.files, "peak": peak}))
    """
)

#: The most a child exporting the day below may peak at. Held whole while it is
#: written (30,000 rows laid out over 2,000 keys: about 280 MB parsed), the day
#: took the child to about 750 MB; parsed again chunk by chunk, 280-400 MB.
PEAK_BOUND = 500 << 20


def export_in_child(url: str, out: Path, layout: str, **pins: Any) -> dict[str, Any]:
    """``export_to_parquet`` of the day in a fresh process (``pins``: ``dtype`` and
    ``on_type_mismatch``), with the process's peak RSS."""
    return run_child(CHILD, url, str(out), layout, json.dumps(pins))


def test_wide_day_is_written_in_bounded_memory(server, tmp_path: Path) -> None:
    events = one_day(30_000, 2000)
    srv = server(events, api_secret="s")
    report = export_in_child(srv.url, tmp_path / "ds", "date")
    assert report["rows"] == 30_000
    assert report["peak"] < PEAK_BOUND, f"peak RSS {report['peak'] / 2**20:.0f} MiB"
    # the file is the day's flat table: columns, order, types and values
    kw: dict[str, Any] = dict(api_secret="s", project_timezone="UTC", base_url=srv.url)
    flat = rf.read_robotmia_export(DAY, DAY, return_type="arrow", max_memory=None, **kw)
    written = day_file(tmp_path / "ds")
    assert written.schema == flat.schema
    assert by_insert_id(written).equals(by_insert_id(flat))
    assert written.schema.field("properties.k0").type == pa.string()  # mixed: text
    assert pa.types.is_list(written.schema.field("properties.k4").type)
    back = rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow", max_memory=None)
    assert back.equals(written)


#: Pinned types of the generated day: an int column, a float column pinned to int
#: (its fractions do not fit), and the mixed text column pinned to int.
PINS = {"properties.k0": "int64", "properties.k1": "int64", "properties.k30": "float64"}


@pytest.mark.parametrize("mode", ["null", "text"])
def test_pinned_wide_day_is_written_in_bounded_memory(server, tmp_path: Path, mode: str) -> None:
    """``dtype=`` does not make a wide day be held whole: the day is pinned chunk
    by chunk, with the misfits of the whole day settled first, and its file is the
    day's flat table with the pinned types."""
    events = one_day(30_000, 2000)
    srv = server(events, api_secret="s")
    report = export_in_child(srv.url, tmp_path / "ds", "date", dtype=PINS, on_type_mismatch=mode)
    assert report["rows"] == 30_000
    assert report["peak"] < PEAK_BOUND, f"peak RSS {report['peak'] / 2**20:.0f} MiB"
    kw: dict[str, Any] = dict(api_secret="s", project_timezone="UTC", base_url=srv.url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rf.RobotmiaWarning)  # the misfits, counted
        flat = rf.read_robotmia_export(
            DAY, DAY, return_type="arrow", max_memory=None, dtype=PINS,
            on_type_mismatch=mode, **kw,
        )  # fmt: skip
    written = day_file(tmp_path / "ds")
    assert written.schema == flat.schema
    assert by_insert_id(written).equals(by_insert_id(flat))
    if mode == "null":  # the misfits of k0 and k1 are set aside, in every chunk's rows
        assert written.schema.field("properties.k0").type == pa.int64()
        assert written.column("properties.k1__raw").null_count < written.num_rows
    else:  # text: the columns with misfits keep the type policy's type
        assert written.schema.field("properties.k0").type == pa.string()
        assert "properties.k1__raw" not in written.column_names
    assert written.schema.field("properties.k30").type == pa.float64()


def test_pinned_wide_day_misfits_warn_once_and_error_before_writing(server, tmp_path: Path) -> None:
    """A day pinned chunk by chunk warns once, counting the misfits of the whole
    day, and with ``on_type_mismatch="error"`` raises before its file is written."""
    events = one_day(10_000, 2000)  # over DAY_HOLD_BYTES: parsed again as written
    srv = server(events, api_secret="s")
    kw: dict[str, Any] = dict(
        api_secret="s", project_timezone="UTC", base_url=srv.url, progress=False
    )
    texts = sum(1 for e in events if e["properties"].get("k0") == "text")
    with pytest.warns(rf.RobotmiaWarning) as seen:
        rf.export_to_parquet(tmp_path / "ds", DAY, DAY, dtype={"properties.k0": "int64"}, **kw)
    assert len(seen) == 1
    assert f"properties.k0: {texts:,} values do not fit int64" in str(seen[0].message)
    with pytest.raises(rf.TypeMismatchError, match=f"{texts:,} values do not fit"):
        rf.export_to_parquet(
            tmp_path / "err", DAY, DAY, dtype={"properties.k0": "int64"},
            on_type_mismatch="error", **kw,
        )  # fmt: skip
    assert not list((tmp_path / "err").rglob("*.parquet"))


def test_wide_day_by_event_holds_each_events_columns(server, tmp_path: Path) -> None:
    events = one_day(10_000, 2000)  # about 95 MB parsed: over DAY_HOLD_BYTES
    srv = server(events, api_secret="s")
    kw: dict[str, Any] = dict(api_secret="s", project_timezone="UTC", base_url=srv.url)
    summary = rf.export_to_parquet(
        tmp_path / "ds", DAY, DAY, partition_by=("date", "event"), progress=False, **kw
    )
    names = {e["event"] for e in events}
    assert summary.files == len(names)
    flat = rf.read_robotmia_export(DAY, DAY, return_type="arrow", max_memory=None, **kw)
    for name in sorted(names)[:12]:
        (path,) = (tmp_path / "ds").glob(f"date={DAY}/event={name}/part-0.parquet")
        got = pq.read_table(path).replace_schema_metadata(None)
        carried = {k for e in events if e["event"] == name for k in e["properties"]} - {"time"}
        want_names = ["time", *(c for c in flat.column_names if c[11:] in carried)]
        assert got.column_names == want_names
        want = flat.filter(pc.equal(flat.column("event"), name)).select(want_names)
        assert by_insert_id(got).equals(by_insert_id(want))


# ------------------------------------------------------- a day parsed again


def write_gz(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def conformed(parsed: _pipeline.Parsed) -> pa.Table:
    out = _pipeline.batches(parsed, parsed.kinds, "UTC", None)
    return pa.Table.from_batches(list(out), schema=_pipeline.final_schema(parsed.kinds, None))


@pytest.mark.parametrize("mode", ["skip", "warn"])
def test_a_day_too_big_to_hold_is_parsed_again(tmp_path: Path, mode: str) -> None:
    lines = [orjson.dumps(e) for e in one_day(3000, 300)]
    lines[10] = b"{not json"
    lines[2500] = b""
    path = write_gz(tmp_path / "day.jsonl.gz", lines)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        held = _pipeline.parse_file(path, "day", mode, None, events=True)  # type: ignore[arg-type]
        again = _pipeline.parse_file(path, "day", mode, None, hold=1, events=True)  # type: ignore[arg-type]
        assert held.again is None and held.batches
        assert again.again is not None and again.batches == []
        assert again.rows == held.rows == 2998
        assert again.kinds == held.kinds
        assert again.events == held.events
        table = conformed(again)  # parsed again here: no second warning
    assert len(seen) == (2 if mode == "warn" else 0)
    assert table.equals(conformed(held))
    assert conformed(again.head(1234)).equals(table.slice(0, 1234))
    assert again.head(5000).rows == 2998


def test_held_day_keeps_its_batches(tmp_path: Path) -> None:
    lines = [orjson.dumps(e) for e in one_day(200, 60)]
    path = write_gz(tmp_path / "day.jsonl.gz", lines)
    parsed = _pipeline.parse_file(path, "day", "error", None, hold=1 << 30)
    assert parsed.again is None and parsed.events is None
    assert sum(b.num_rows for b in parsed.batches) == parsed.rows == 200


def test_body_parser_drops_what_it_cannot_hold() -> None:
    if not parse.native_enabled():
        pytest.skip("the C scanner is not built")
    body = b"".join(orjson.dumps(e) + b"\n" for e in one_day(4000, 300))
    p = parse.BodyParser(hold=100_000)
    p.restart()
    for i in range(0, len(body), 1 << 16):
        p.feed(body[i : i + (1 << 16)])
    p.finish()
    assert p.dropped
    assert list(p.batches("x")) == []
    p.restart()  # a new attempt starts afresh
    assert not p.dropped
    kept = parse.BodyParser(hold=1 << 30)
    kept.feed(body)
    kept.finish()
    assert not kept.dropped
    assert sum(b.num_rows for b in kept.batches("x")) == 4000
