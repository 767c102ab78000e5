"""The time stage against Python's own zoneinfo, row by row (design.md, "Time conversion")."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames._pipeline import in_utc, to_utc
from robotmia_frames.timeconv import TIME_TYPE, local_seconds_to_utc

ZONES = [
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Paris",
    "Europe/Dublin",  # negative DST in the tz database
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # +05:45
    "Asia/Kolkata",  # +05:30
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 with DST
    "Africa/Casablanca",  # DST suspended during Ramadan
    "Pacific/Apia",  # skipped a whole day in 2011
    "America/Sao_Paulo",
]


def expected(t: float, tz: str) -> datetime | None:
    try:
        wall = datetime(1970, 1, 1) + timedelta(seconds=t)
        return wall.replace(tzinfo=ZoneInfo(tz), fold=0).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


@settings(max_examples=300, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    values=st.lists(
        st.one_of(
            st.integers(min_value=-2_208_988_800, max_value=4_102_444_800),  # 1900..2100
            st.floats(min_value=-2.2e9, max_value=4.1e9, allow_nan=False),
            # dense around DST changes of 2024
            st.integers(min_value=1_709_000_000, max_value=1_731_000_000),
        ),
        max_size=30,
    ),
)
def test_matches_zoneinfo_fold0_row_by_row(tz: str, values: list[float]) -> None:
    typ = pa.int64() if all(isinstance(v, int) for v in values) else pa.float64()
    out = local_seconds_to_utc(pa.array(values, type=typ), tz)
    assert out.type == TIME_TYPE
    assert out.to_pylist() == [expected(v, tz) for v in values]


@pytest.mark.parametrize(
    ("tz", "local", "utc"),
    [
        # New York spring forward: 02:30 does not exist; fold=0 uses EST (-5).
        ("America/New_York", "2024-03-10T02:30:00", "2024-03-10T07:30:00"),
        # New York fall back: 01:30 happens twice; fold=0 is the first (EDT, -4).
        ("America/New_York", "2024-11-03T01:30:00", "2024-11-03T05:30:00"),
        ("Europe/Paris", "2024-10-27T02:30:00", "2024-10-27T00:30:00"),
        ("Europe/Paris", "2024-03-31T02:30:00", "2024-03-31T01:30:00"),
        ("Australia/Lord_Howe", "2024-10-06T02:15:00", "2024-10-05T15:45:00"),
        ("Asia/Kathmandu", "2024-01-01T00:00:00", "2023-12-31T18:15:00"),
        ("UTC", "2024-01-01T00:00:00", "2024-01-01T00:00:00"),
    ],
)
def test_dst_edges(tz: str, local: str, utc: str) -> None:
    t = int((datetime.fromisoformat(local) - datetime(1970, 1, 1)).total_seconds())
    got = local_seconds_to_utc(pa.array([t]), tz)[0].as_py()
    assert got == datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)


def test_fraction_kept_to_the_microsecond() -> None:
    out = local_seconds_to_utc(pa.array([1704067200.123456, 1704067200.5, -0.25]), "UTC")
    assert [v.isoformat() for v in out.to_pylist()] == [
        "2024-01-01T00:00:00.123456+00:00",
        "2024-01-01T00:00:00.500000+00:00",
        "1969-12-31T23:59:59.750000+00:00",
    ]


def test_non_numeric_times_give_null_and_keep_the_row(tmp_path: Path) -> None:
    times = [1710036000, True, "1710036000", None, {"a": 1}, [1], 1e300, 2**70]
    lines = [{"event": f"e{i}", "properties": {"time": t}} for i, t in enumerate(times)]
    lines.append({"event": "no-time", "properties": {}})
    lines.append({"event": "no-properties"})
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in lines))
    df = rf.read_export_file(p, project_timezone="America/New_York")
    assert len(df) == len(lines)
    assert str(df["time"].dtype) == "datetime64[us, UTC]"
    assert df["time"].iloc[0].isoformat() == "2024-03-10T07:00:00+00:00"
    assert df["time"].iloc[1:].isna().all()
    assert "properties.time" not in df.columns


def test_time_zone_name_is_exactly_utc(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"event":"a","properties":{"time":0}}\n')
    t = rf.read_export_file(p, project_timezone="Asia/Tokyo", return_type="arrow")
    assert t.schema.field("time").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../../etc/passwd", "utc+1"])
def test_unknown_timezone_is_a_value_error(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("")
    with pytest.raises(ValueError, match="timezone"):
        rf.read_export_file(p, project_timezone=bad)


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    unit=st.sampled_from(["s", "ms"]),
    days=st.lists(
        st.lists(
            st.one_of(
                st.none(),
                st.floats(-4e11, 4e11, allow_nan=False),
                st.floats(allow_nan=True, allow_infinity=True),
            ),
            max_size=20,
        ),
        max_size=12,
    ),
    rows=st.integers(1, 40),
)
def test_times_of_many_batches_converted_together_are_those_of_each(
    tz: str, unit: str, days: list[list[float | None]], rows: int
) -> None:
    # A year of small days: the batches' times are converted a group at a time
    # (in_utc), which must give each batch what converting it alone gives.
    batches = [
        pa.record_batch({"event": pa.array(["e"] * len(d)), "time": pa.array(d, pa.float64())})
        for d in days
    ]
    together = list(in_utc(batches, tz, unit, rows=rows))
    alone = [to_utc(b, tz, unit) for b in batches]
    assert [b.num_rows for b in together] == [b.num_rows for b in alone]
    assert all(a.equals(b) for a, b in zip(together, alone, strict=True))
