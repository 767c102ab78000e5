"""Datasets on any filesystem (issue 14): an S3 API server on loopback (moto's
``ThreadedMotoServer``, reached over HTTP through s3fs and ``pyarrow.fs.S3FileSystem``)
and ``memory://``. Every reader reads what the library writes there.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import generate_events
from tests.conftest import SECRET, ServerFactory

pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

KEY, SECRET_KEY, REGION = "testing-key", "testing-secret", "us-east-1"


def _options(endpoint: str) -> dict[str, Any]:
    return {
        "key": KEY,
        "secret": SECRET_KEY,
        "endpoint_url": endpoint,
        "client_kwargs": {"region_name": REGION},
    }


def _s3fs(endpoint: str) -> Any:
    return s3fs.S3FileSystem(**_options(endpoint), skip_instance_cache=True)


def _arrow_s3(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=KEY,
        secret_key=SECRET_KEY,
        endpoint_override=endpoint,
        region=REGION,
        allow_bucket_creation=False,
    )


def _kw(srv: Any, **extra: Any) -> dict[str, Any]:
    return dict(api_secret=SECRET, base_url=srv.url, progress=False, **extra)


def _polars_options(endpoint: str) -> dict[str, str]:
    return {
        "aws_access_key_id": KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_endpoint_url": endpoint,
        "aws_region": REGION,
        "aws_allow_http": "true",
    }


def _every_reader_on_s3(endpoint: str, bucket: str, prefix: str, rows: int) -> None:
    url = f"s3://{bucket}/{prefix}"
    opts = _options(endpoint)
    assert len(rf.read_parquet_dataset(url, storage_options=opts)) == rows
    assert (
        len(rf.read_parquet_dataset(f"{bucket}/{prefix}", filesystem=_arrow_s3(endpoint))) == rows
    )
    assert len(pd.read_parquet(url, storage_options=opts)) == rows
    ds = pads.dataset(f"{bucket}/{prefix}", filesystem=_arrow_s3(endpoint), partitioning="hive")
    assert ds.count_rows() == rows
    popts = _polars_options(endpoint)
    assert pl.read_parquet(url + "/", storage_options=popts).height == rows
    assert pl.read_parquet(url + "/**/*.parquet", storage_options=popts).height == rows
    scanned = pl.scan_parquet(url + "/", hive_partitioning=True, storage_options=popts)
    assert scanned.collect().height == rows
    con = duckdb.connect()
    try:
        con.register_filesystem(_s3fs(endpoint))
        got = con.execute(
            f"select count(*) from read_parquet('{url}/**/*.parquet', hive_partitioning=true)"
        ).fetchall()
        assert got == [(rows,)]
    finally:
        con.close()


def _keys(endpoint: str, bucket: str) -> list[str]:
    return sorted(str(k)[len(bucket) + 1 :] for k in _s3fs(endpoint).find(bucket))


def test_export_to_s3_every_reader(
    server: ServerFactory, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    srv = server(generate_events(60, days=3), project_timezone="UTC")
    url = f"s3://{bucket}/events"
    s = rf.export_to_parquet(
        url,
        "2024-01-01",
        "2024-01-03",
        storage_options=_options(s3_endpoint),
        **_kw(srv, project_timezone="UTC"),
    )
    assert (s.rows, s.days, s.files) == (60, 3, 3)
    assert s.path == url
    assert _keys(s3_endpoint, bucket) == [
        f"events/date=2024-01-0{d}/part-0.parquet" for d in (1, 2, 3)
    ]  # one object per day, no staging objects, no state object
    _every_reader_on_s3(s3_endpoint, bucket, "events", 60)
    local = rf.export_to_parquet(
        tmp_path / "local", "2024-01-01", "2024-01-03", **_kw(srv, project_timezone="UTC")
    )
    assert local.rows == 60
    pd.testing.assert_frame_equal(
        rf.read_parquet_dataset(url, storage_options=_options(s3_endpoint)),
        rf.read_parquet_dataset(tmp_path / "local"),
    )


def test_reexport_on_s3_replaces_the_day_and_sync_takes_its_timezone(
    server: ServerFactory, s3_endpoint: str, bucket: str
) -> None:
    tz = "America/Los_Angeles"
    fs = _s3fs(s3_endpoint)
    srv = server(generate_events(40, days=2, seed=1), project_timezone=tz)
    url = f"s3://{bucket}/ds"
    rf.export_to_parquet(
        url, "2024-01-01", "2024-01-02", filesystem=fs, **_kw(srv, project_timezone=tz)
    )
    srv2 = server(generate_events(10, days=1, seed=2), project_timezone=tz)
    s = rf.sync_to_parquet(url, "2024-01-01", "2024-01-03", filesystem=fs, **_kw(srv2))
    assert s.from_date == dt.date(2024, 1, 1)
    back = rf.read_parquet_dataset(url, filesystem=fs)
    assert len(back) == 10  # day 1 replaced (10 events), day 2 came back empty: removed
    assert _keys(s3_endpoint, bucket) == ["ds/date=2024-01-01/part-0.parquet"]
    srv2.clear_requests()
    with pytest.raises(rf.InvalidArgumentError, match="project_timezone='America/Los_Angeles'"):
        rf.sync_to_parquet(
            url, "2024-01-01", filesystem=fs, **_kw(srv2, project_timezone="Europe/Paris")
        )
    assert srv2.requests == []


def test_pyarrow_filesystem_and_aws_environment(
    server: ServerFactory,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    srv = server(generate_events(20, days=2), project_timezone="UTC")
    kw = _kw(srv, project_timezone="UTC")
    s = rf.export_to_parquet(
        f"{bucket}/arrow", "2024-01-01", "2024-01-02", filesystem=_arrow_s3(s3_endpoint), **kw
    )
    assert s.rows == 20
    # credentials and endpoint from the AWS environment alone
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    df = rf.read_robotmia_export(
        "2024-01-01", "2024-01-02", parquet_path=f"s3://{bucket}/env", **kw
    )
    assert len(df) == 20
    _every_reader_on_s3(s3_endpoint, bucket, "env", 20)
    _every_reader_on_s3(s3_endpoint, bucket, "arrow", 20)


def test_memory_filesystem(server: ServerFactory) -> None:
    srv = server(generate_events(30, days=3), project_timezone="UTC")
    url = f"memory://robotmia-tests/{uuid.uuid4().hex}"
    s = rf.export_to_parquet(url, "2024-01-01", "2024-01-03", **_kw(srv, project_timezone="UTC"))
    assert s.rows == 30
    s2 = rf.sync_to_parquet(url, "2024-01-01", "2024-01-04", lookback_days=1, **_kw(srv))
    assert s2.from_date == dt.date(2024, 1, 2)
    assert len(rf.read_parquet_dataset(url)) == 30
    assert len(pd.read_parquet(url)) == 30
    assert len(rf.read_parquet_dataset(url, from_date="2024-01-03")) == 10


@pytest.mark.parametrize(
    ("path", "match"),
    [
        ("s3x://bucket/events", "unknown storage scheme 's3x'"),
        ("dropbox://bucket/events", "pip install"),
        ("oci://bucket@ns/events", "pip install"),
    ],
)
def test_bad_scheme_fails_before_any_request_and_writes_nothing(
    server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    match: str,
) -> None:
    srv = server(generate_events(10, days=1), project_timezone="UTC")
    monkeypatch.chdir(tmp_path)
    kw = _kw(srv, project_timezone="UTC")
    calls = [
        lambda: rf.export_to_parquet(path, "2024-01-01", "2024-01-01", **kw),
        lambda: rf.sync_to_parquet(path, "2024-01-01", "2024-01-01", **kw),
        lambda: rf.read_robotmia_export("2024-01-01", "2024-01-01", parquet_path=path, **kw),
        lambda: rf.read_parquet_dataset(path),
    ]
    for call in calls:
        with pytest.raises(rf.InvalidArgumentError, match=match):
            call()
    assert srv.requests == []
    assert list(tmp_path.iterdir()) == []


def test_bad_storage_arguments(tmp_path: Path) -> None:
    with pytest.raises(rf.InvalidArgumentError, match="storage_options"):
        rf.read_parquet_dataset(tmp_path, storage_options={"key": "x"})
    with pytest.raises(rf.InvalidArgumentError, match="filesystem must be"):
        rf.read_parquet_dataset(tmp_path, filesystem=object())
    with pytest.raises(rf.InvalidArgumentError, match="partition_by"):
        rf.export_to_parquet(
            "memory://x/y",
            "2024-01-01",
            "2024-01-01",
            partition_by=("date", "event"),
            api_secret="s",
            project_timezone="UTC",
        )


def test_file_url_is_the_local_folder(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(10, days=1), project_timezone="UTC")
    out = tmp_path / "ds"
    rf.export_to_parquet(
        out.as_uri(), "2024-01-01", "2024-01-01", **_kw(srv, project_timezone="UTC")
    )
    assert (out / "date=2024-01-01" / "part-0.parquet").is_file()
    assert len(rf.read_parquet_dataset(out.as_uri())) == 10
    assert len(rf.read_parquet_dataset(out, filesystem=pafs.LocalFileSystem())) == 10


# ------------------------------------------------------------------------ Delta Lake

deltalake = pytest.importorskip("deltalake")


def _delta_versions_read(uri: str, options: dict[str, str] | None = None) -> list[int]:
    table = deltalake.DeltaTable(uri, storage_options=options)
    rows = []
    for version in range(table.version() + 1):
        old = deltalake.DeltaTable(uri, version=version, storage_options=options)
        rows.append(pa_table(old).num_rows)
    return rows


def pa_table(table: Any) -> Any:
    import pyarrow as pa

    return pa.table(table.to_pyarrow_dataset().to_table())


def test_delta_table_local_every_reader(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_events(300, days=3), project_timezone="UTC")
    out = tmp_path / "delta"
    kw = _kw(srv, project_timezone="UTC")
    s = rf.export_to_parquet(out, "2024-01-01", "2024-01-03", table_format="delta", **kw)
    assert (s.rows, s.days) == (300, 3)
    assert (out / "_delta_log").is_dir()
    table = deltalake.DeltaTable(str(out))
    assert table.metadata().partition_columns == ["date"]
    # each day one commit; the day whose types widen the table rewrites the others in it
    assert table.version() == 2
    assert _delta_versions_read(str(out)) == [100, 200, 300]  # every version reads
    ref = rf.export_to_parquet(tmp_path / "hive", "2024-01-01", "2024-01-03", **kw)
    want = rf.read_parquet_dataset(ref.path)
    pd.testing.assert_frame_equal(rf.read_parquet_dataset(out), want)
    assert pa_table(table).num_rows == 300
    assert pl.read_delta(str(out)).height == 300
    assert pl.scan_delta(str(out)).select(pl.len()).collect().item() == 300
    con = duckdb.connect()  # DuckDB through deltalake's Arrow dataset (no extension needed)
    try:
        con.register("events", table.to_pyarrow_dataset())
        assert con.execute("select count(*) from events").fetchall() == [(300,)]
    finally:
        con.close()


def test_delta_days_written_through_one_table_match_its_log(tmp_path: Path) -> None:
    """Each day is written through the table as the write before left it (its log
    not read again): what each write reports, and the table it leaves, are what a
    fresh read of the log gives, across a new column, a widened one (which rewrites
    the older days in its commit), a day written again and an empty day."""
    import pyarrow as pa

    from robotmia_frames.sinks import DeltaDataset, locate

    ds = DeltaDataset(locate(str(tmp_path / "t")))
    ts = pa.timestamp("us", tz="UTC")
    days = [dt.date(2024, 1, d) for d in (1, 2, 3, 2, 4)]
    tables = [
        pa.table({"time": pa.array([0, 1], ts), "n": pa.array([1, 2], pa.int64())}),
        pa.table({"time": pa.array([2], ts), "n": [3], "s": ["a"]}),
        pa.table({"time": pa.array([3], ts), "n": [1.5], "s": ["b"]}),  # widens n
        pa.table({"time": pa.array([4, 5], ts), "n": [2.5, 3.5], "s": ["c", None]}),
        pa.table(
            {
                "time": pa.array([], ts),
                "n": pa.array([], pa.float64()),
                "s": pa.array([], pa.string()),
            }
        ),
    ]
    for day, t in zip(days, tables, strict=True):
        result = ds.write_day(day, t.schema, iter(t.to_batches()))
        fresh = DeltaDataset(locate(str(tmp_path / "t")), create=False)
        assert result.rows == t.num_rows
        assert sorted(result.files) == fresh.files(day)
        assert ds.files() == fresh.files() and ds.schemas() == fresh.schemas()
    back = deltalake.DeltaTable(str(tmp_path / "t")).to_pyarrow_table()
    got = pd.Series(back.column("date").to_pylist()).astype(str).value_counts().to_dict()
    assert got == {"2024-01-01": 2, "2024-01-02": 2, "2024-01-03": 1}
    assert back.schema.field("n").type == pa.float64()


def test_delta_reexport_replaces_a_day_in_one_commit(server: ServerFactory, tmp_path: Path) -> None:
    out = tmp_path / "delta"
    srv = server(generate_events(30, days=3, seed=1), project_timezone="UTC")
    kw = _kw(srv, project_timezone="UTC")
    rf.export_to_parquet(out, "2024-01-01", "2024-01-03", table_format="delta", **kw)
    before = deltalake.DeltaTable(str(out)).version()
    srv2 = server(
        generate_events(5, days=1, seed=9, from_date="2024-01-02"), project_timezone="UTC"
    )
    s = rf.export_to_parquet(out, "2024-01-02", "2024-01-02", **_kw(srv2))  # format and tz found
    assert s.rows == 5
    table = deltalake.DeltaTable(str(out))
    assert table.version() == before + 1  # one commit
    back = rf.read_parquet_dataset(out, return_type="arrow")
    days = pd.Series(back.column("time").to_pandas()).dt.date.astype(str).value_counts()
    assert days.to_dict() == {"2024-01-01": 10, "2024-01-02": 5, "2024-01-03": 10}
    with pytest.raises(rf.InvalidArgumentError, match="Delta table"):
        rf.export_to_parquet(out, "2024-01-02", "2024-01-02", table_format="hive", **kw)
    # sync knows the days written and the timezone
    s = rf.sync_to_parquet(out, "2024-01-01", "2024-01-04", lookback_days=1, **_kw(srv))
    assert s.from_date == dt.date(2024, 1, 2)
    assert pl.read_delta(str(out)).height == 30


def test_delta_on_s3(server: ServerFactory, s3_endpoint: str, bucket: str) -> None:
    srv = server(generate_events(60, days=2), project_timezone="UTC")
    url = f"s3://{bucket}/delta"
    opts = _options(s3_endpoint)
    s = rf.export_to_parquet(
        url,
        "2024-01-01",
        "2024-01-02",
        table_format="delta",
        storage_options=opts,
        **_kw(srv, project_timezone="UTC"),
    )
    assert s.rows == 60
    assert len(rf.read_parquet_dataset(url, storage_options=opts)) == 60
    delta_opts = {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
    }
    assert pa_table(deltalake.DeltaTable(url, storage_options=delta_opts)).num_rows == 60
    assert pl.read_delta(url, storage_options=delta_opts).height == 60


def test_cli_writes_delta_and_urls(
    server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from robotmia_frames import cli

    srv = server(generate_events(20, days=2), project_timezone="UTC")
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    out = tmp_path / "delta"
    common = ["--timezone", "UTC", "--base-url", srv.url, "--no-progress"]
    argv = ["export", "2024-01-01", "2024-01-02", "--out", str(out), "--table-format", "delta"]
    assert cli.main([*argv, *common], out=io.StringIO()) == 0
    assert deltalake.DeltaTable(str(out)).version() >= 1
    url = f"memory://robotmia-cli/{uuid.uuid4().hex}"
    argv = ["sync", "--out", url, "--start-date", "2024-01-01", "--end-date", "2024-01-02"]
    assert cli.main([*argv, *common], out=io.StringIO()) == 0
    assert len(rf.read_parquet_dataset(url)) == 20


def test_delta_where_deltalake_cannot_write_fails_before_any_request(
    server: ServerFactory, s3_endpoint: str, bucket: str
) -> None:
    srv = server(generate_events(20, days=2), project_timezone="UTC")
    kw = _kw(srv, project_timezone="UTC", table_format="delta")
    url = f"memory://robotmia-tests/{uuid.uuid4().hex}"
    with pytest.raises(rf.InvalidArgumentError) as info:
        rf.export_to_parquet(url, "2024-01-01", "2024-01-02", **kw)
    assert f"cannot write to {url}" in str(info.value)
    assert "s3://" in str(info.value) and "table_format='hive'" in str(info.value)
    with pytest.raises(rf.InvalidArgumentError) as info:
        rf.sync_to_parquet(
            f"{bucket}/delta", "2024-01-01", "2024-01-02", filesystem=_arrow_s3(s3_endpoint), **kw
        )
    message = str(info.value)
    assert "filesystem=" in message and "storage_options" in message
    assert "'s3://bucket/events'" in message
    assert srv.requests == []
    assert _keys(s3_endpoint, bucket) == []
    import fsspec

    assert not fsspec.filesystem("memory").exists(url)


def test_delta_on_s3_from_the_aws_environment(
    server: ServerFactory, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Credentials and the endpoint (plain HTTP on loopback) from ``AWS_*`` alone."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    srv = server(generate_events(40, days=2), project_timezone="UTC")
    url = f"s3://{bucket}/delta-env"
    kw = _kw(srv, project_timezone="UTC")
    s = rf.export_to_parquet(url, "2024-01-01", "2024-01-02", table_format="delta", **kw)
    assert s.rows == 40
    assert len(rf.read_parquet_dataset(url)) == 40
    s2 = rf.sync_to_parquet(url, "2024-01-01", "2024-01-02", lookback_days=0, **kw)
    assert s2.from_date == dt.date(2024, 1, 2)  # the dataset's days and format, from the log
    opts = {"AWS_ALLOW_HTTP": "true"}
    assert pa_table(deltalake.DeltaTable(url, storage_options=opts)).num_rows == 40
