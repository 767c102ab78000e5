"""``dtype=`` and ``on_type_mismatch``: the analyst's types for chosen columns, and the
values that do not fit them set aside (never lost)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.parse import pin_types
from tests.conftest import ServerFactory

DAY = 1704067200  # 2024-01-01T00:00:00 in UTC


def lines(n: int = 50) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        price: Any = round(1.25 * i, 2) if i % 10 else i  # ints and floats
        if i == 7:
            price = "n/a"
        ok: Any = "yes" if i == 9 else i % 2 == 0
        out.append(
            {
                "event": "Purchase",
                "properties": {"time": DAY + i * 60, "Price": price, "Success": ok, "n": i},
            }
        )
    return out


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    p = tmp_path / "export.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in lines()))
    return p


PINS = {"properties.Price": "float64", "properties.Success": "boolean"}


def test_text_is_the_policy_and_warns(export_file: Path) -> None:
    with pytest.warns(rf.RobotmiaWarning, match=r"properties\.Price: 1 value does not fit float64"):
        df = rf.read_export_file(export_file, project_timezone="UTC", dtype=PINS)
    assert df.dtypes["properties.Price"] == "string"  # as without dtype=
    assert df.dtypes["properties.Success"] == "string"
    assert "properties.Price__raw" not in df.columns


def test_null_sets_the_misfits_aside(export_file: Path) -> None:
    with pytest.warns(rf.RobotmiaWarning) as got:
        df = rf.read_export_file(
            export_file, project_timezone="UTC", dtype=PINS, on_type_mismatch="null"
        )
    (w,) = got
    assert "properties.Price: 1 value does not fit float64 (e.g. 'n/a')" in str(w.message)
    assert "properties.Success: 1 value does not fit bool (e.g. 'yes')" in str(w.message)
    assert df.dtypes["properties.Price"] == pd.Float64Dtype()
    assert df.dtypes["properties.Success"] == pd.BooleanDtype()
    cols = list(df.columns)
    assert cols[cols.index("properties.Price") + 1] == "properties.Price__raw"
    assert pd.isna(df["properties.Price"][7]) and df["properties.Price__raw"][7] == "n/a"
    assert df["properties.Price__raw"].notna().sum() == 1
    assert df["properties.Price"][3] == 3.75 and df["properties.Price"][10] == 10.0
    assert df["properties.Success"][9] is pd.NA and df["properties.Success__raw"][9] == "yes"
    assert df["properties.Success"][2] == True  # noqa: E712


def test_error_names_the_column_and_the_file(export_file: Path) -> None:
    with pytest.raises(rf.TypeMismatchError) as info:
        rf.read_export_file(
            export_file, project_timezone="UTC", dtype=PINS, on_type_mismatch="error"
        )
    assert "properties.Price: 1 value does not fit float64 (e.g. 'n/a')" in str(info.value)
    assert str(export_file) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_values_that_all_fit_take_the_type_silently(export_file: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = rf.read_export_file(
            export_file,
            project_timezone="UTC",
            dtype={"properties.n": pa.float64(), "properties.Price": str},
            return_type="arrow",
        )
    assert t.schema.field("properties.n").type == pa.float64()
    assert t.column("properties.n").to_pylist()[:3] == [0.0, 1.0, 2.0]
    assert t.schema.field("properties.Price").type == pa.string()


def test_unknown_dtype_column_suggests(export_file: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError, match=r"did you mean 'properties\.Price'"):
        rf.read_export_file(export_file, project_timezone="UTC", dtype={"properties.price": float})


@pytest.mark.parametrize(
    ("dtype", "match"),
    [
        (["properties.Price"], "mapping"),
        ({"Price": "float64"}, r"did you mean 'properties\.Price'"),
        ({"properties.Price": "decimal"}, "int64, float64, bool or string"),
        ({"time": "string"}, "cannot change the type of 'time'"),
    ],
)
def test_bad_dtype_arguments(export_file: Path, dtype: Any, match: str) -> None:
    with pytest.raises(rf.InvalidArgumentError, match=match):
        rf.read_export_file(export_file, project_timezone="UTC", dtype=dtype)


def test_bad_on_type_mismatch(export_file: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError, match="'text', 'null' or 'error'"):
        rf.read_export_file(export_file, project_timezone="UTC", on_type_mismatch="drop")


def test_export_and_dataset_reads(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(lines(), project_timezone="UTC")
    client = rf.Client(api_secret=srv.api_secret, project_timezone="UTC", base_url=srv.url)
    with pytest.warns(rf.RobotmiaWarning, match="the export of 2024-01-01..2024-01-01"):
        df = client.read_robotmia_export(
            "2024-01-01", "2024-01-01", dtype=PINS, on_type_mismatch="null"
        )
    assert df.dtypes["properties.Price"] == pd.Float64Dtype()
    assert df["properties.Price__raw"].dropna().tolist() == ["n/a"]
    client.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-01")
    with pytest.warns(rf.RobotmiaWarning, match="the dataset at"):
        back = rf.read_parquet_dataset(
            tmp_path / "ds", dtype=PINS, on_type_mismatch="null", return_type="polars"
        )
    assert str(back.schema["properties.Price"]) == "Float64"
    assert back["properties.Price__raw"].drop_nulls().to_list() == ["n/a"]


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["1", "2.5", "-0", "1e3", "true", "n/a", ""]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(JSON_VALUES, min_size=1, max_size=30), st.sampled_from(["int64", "float64", "bool"])
)
def test_null_mode_loses_nothing(values: list[Any], target: str) -> None:
    """Every non-null value is either converted or kept, as text, in ``__raw``."""
    from robotmia_frames import _options

    arr = pa.array([None if v is None else json.dumps(v) if not isinstance(v, str) else v
                    for v in values], pa.string())  # fmt: skip
    typed = _options.dtype({"properties.x": target})
    out, report = pin_types(pa.table({"properties.x": arr}), typed, "null")
    got = out.column("properties.x").to_pylist()
    raw = (
        out.column("properties.x__raw").to_pylist()
        if "properties.x__raw" in out.column_names
        else [None] * len(got)
    )
    for original, value, aside in zip(arr.to_pylist(), got, raw, strict=True):
        if original is None:
            assert value is None and aside is None
        else:
            assert (value is None) != (aside is None), (original, value, aside)
            if aside is not None:
                assert aside == original
    assert report.mismatches.get("properties.x", 0) == sum(r is not None for r in raw)


def three_days() -> list[dict[str, Any]]:
    out = []
    for d in range(3):
        for i in range(5):
            price: Any = "n/a" if (d, i) == (1, 2) else 1.5 * i
            out.append({"event": "P", "properties": {"time": DAY + d * 86400 + i, "Price": price}})
    return out


def price_types(root: Path) -> list[str]:
    import pyarrow.parquet as pq

    files = sorted(root.glob("date=*/*.parquet"))
    return [str(pq.read_schema(f).field("properties.Price").type) for f in files]


@pytest.mark.parametrize(("mode", "written"), [("null", "double"), ("text", "string")])
def test_export_to_parquet_pins_every_day(
    server: ServerFactory, tmp_path: Path, mode: str, written: str
) -> None:
    srv = server(three_days(), project_timezone="UTC")
    client = rf.Client(api_secret=srv.api_secret, project_timezone="UTC", base_url=srv.url)
    with pytest.warns(rf.RobotmiaWarning, match="window 2024-01-02: properties.Price: 1 value"):
        client.export_to_parquet(
            tmp_path / "ds", "2024-01-01", "2024-01-03",
            dtype={"properties.Price": "float64"}, on_type_mismatch=mode,
        )  # fmt: skip
    # "text": one misfit on day 2 makes the column text on every day (as the policy does)
    assert price_types(tmp_path / "ds") == [written] * 3
    back = rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow")
    if mode == "null":
        assert back.column("properties.Price__raw").drop_null().to_pylist() == ["n/a"]
        assert back.column("properties.Price").null_count == 1


def test_export_with_error_mode_names_the_day(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(three_days(), project_timezone="UTC")
    client = rf.Client(api_secret=srv.api_secret, project_timezone="UTC", base_url=srv.url)
    with pytest.raises(rf.TypeMismatchError, match="in window 2024-01-02"):
        client.export_to_parquet(
            tmp_path / "ds", "2024-01-01", "2024-01-03",
            dtype={"properties.Price": "float64"}, on_type_mismatch="error",
        )  # fmt: skip
    assert price_types(tmp_path / "ds") == ["double"]  # the day before stays, whole


def test_sync_keeps_the_recorded_dtypes(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(three_days(), project_timezone="UTC")
    client = rf.Client(api_secret=srv.api_secret, project_timezone="UTC", base_url=srv.url)
    root = tmp_path / "ds"
    client.sync_to_parquet(
        root, "2024-01-01", "2024-01-01",
        dtype={"$price": "Int64", "properties.Price": "float64"}, on_type_mismatch="null",
    )  # fmt: skip
    footer = pq.read_schema(root / "date=2024-01-01" / "part-0.parquet").metadata
    state = json.loads(footer[b"robotmia_frames"])  # the state is in the files' footers
    assert state["dtype"] == {"properties.$price": "int64", "properties.Price": "float64"}
    assert state["on_type_mismatch"] == "null"
    with pytest.warns(rf.RobotmiaWarning, match="they are null"):
        client.sync_to_parquet(root, "2024-01-01", "2024-01-03")  # no dtype= here
    assert price_types(root) == ["double"] * 3
    df = rf.read_parquet_dataset(root)
    assert df.dtypes["properties.Price"] == pd.Float64Dtype()
    assert df["properties.Price__raw"].dropna().tolist() == ["n/a"]
    # a later sync rewrites the recent days (the lookback), the one holding the
    # __raw column included: the same values come back, set aside again
    with pytest.warns(rf.RobotmiaWarning, match="window 2024-01-02.*they are null"):
        client.sync_to_parquet(root, "2024-01-01", "2024-01-03", lookback_days=2)
    assert price_types(root) == ["double"] * 3
    pd.testing.assert_frame_equal(rf.read_parquet_dataset(root), df)


def test_inspect_suggests_dtypes_for_text_columns(
    export_file: Path, server: ServerFactory, tmp_path: Path
) -> None:
    from tests.test_cli import run_cli

    doc = json.loads(run_cli("inspect", str(export_file), "--json").stdout)
    got = {g["column"]: g for g in doc["suggested_dtypes"]}
    assert got["properties.Price"] == {
        "column": "properties.Price", "dtype": "float64", "fit_rate": 0.98,
        "misfits": 1, "examples": ["n/a"],
    }  # fmt: skip
    assert got["properties.Success"]["dtype"] == "bool"
    assert "properties.n" not in got  # already int64: nothing to suggest
    text = run_cli("inspect", str(export_file)).stdout
    assert 'properties.Price: 98.00% float64; 1 value does not fit, e.g. "n/a"' in text
    assert "dtype={'properties.Price': 'float64', 'properties.Success': 'bool'}" in text
    # the same from a dataset's files
    srv = server(lines(), project_timezone="UTC")
    rf.export_to_parquet(
        tmp_path / "ds", "2024-01-01", "2024-01-01", api_secret=srv.api_secret,
        project_timezone="UTC", base_url=srv.url,
    )  # fmt: skip
    doc = json.loads(run_cli("inspect", str(tmp_path / "ds"), "--json").stdout)
    assert {g["column"]: g["dtype"] for g in doc["suggested_dtypes"]} == {
        "properties.Price": "float64",
        "properties.Success": "bool",
    }
    assert "T" in doc["time_min"]  # ISO 8601, as read --json writes times


def test_profiles_take_dtype_too(server: ServerFactory) -> None:
    srv = server(generate_profiles=60)
    kw: dict[str, Any] = {
        "api_secret": srv.api_secret, "project_timezone": "UTC", "base_url": srv.engage_url,
        "return_type": "arrow",
    }  # fmt: skip
    policy = rf.read_robotmia_profiles(**kw)
    assert policy.schema.field("properties.team_size").type == pa.string()  # mixed values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rf.RobotmiaWarning)
        pinned = rf.read_robotmia_profiles(
            dtype={"properties.team_size": "Int64", "properties.sessions": float},
            on_type_mismatch="null",
            **kw,
        )
    assert pinned.schema.field("properties.team_size").type == pa.int64()
    assert pinned.schema.field("properties.sessions").type == pa.float64()
    raw = (
        pinned.column("properties.team_size__raw").to_pylist()
        if ("properties.team_size__raw" in pinned.column_names)
        else [None] * pinned.num_rows
    )
    for text, value, aside in zip(
        policy.column("properties.team_size").to_pylist(),
        pinned.column("properties.team_size").to_pylist(),
        raw,
        strict=True,
    ):
        assert (text is None) or (value is not None) != (aside is not None)
        if value is not None:
            assert float(text) == value


def test_cli_dtype_flags(export_file: Path) -> None:
    from tests.test_cli import run_cli

    base = ["read", str(export_file), "--timezone", "UTC", "--json", "--limit", "0"]
    proc = run_cli(*base, "--dtype", "properties.Price=float64,properties.n=float64",
                   "--on-type-mismatch", "null")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["columns"]["properties.Price"] == "double"
    assert doc["columns"]["properties.Price__raw"] == "string"
    assert doc["columns"]["properties.n"] == "double"
    (warning,) = proc.stderr.strip().splitlines()
    assert warning.startswith("warning: ") and "1 value does not fit float64" in warning
    bad = run_cli(*base, "--dtype", "properties.Price=float64", "--on-type-mismatch", "error")
    assert bad.returncode == 6  # data that does not fit, as a malformed line
    assert "--on-type-mismatch null" in bad.stderr and "on_type_mismatch" not in bad.stderr
    usage = run_cli(*base, "--dtype", "properties.Price")
    assert usage.returncode == 2 and "--dtype takes COLUMN=TYPE" in usage.stderr
