"""A black-box audit of ``design.md`` clause by clause, through the public API and the
emulator only, with inputs the other tests do not use.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.cli import main
from robotmia_frames.emulator import ExportServer, Fault
from tests.conftest import SECRET, ServerFactory, read_day
from tests.test_cli import assert_one_line_error

# ------------------------------------------------------------------ malformed lines


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"event":"a","properties":{"time":1704067200}}\n\n{oops\n'
        '{"event":"b","properties":{"time":1704067201}}\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("command", ["read", "inspect"])
def test_cli_file_commands_take_the_on_bad_lines_their_error_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """design.md §3: malformed lines follow ``on_bad_lines``; the CLI's error for one
    tells the user to pass ``--on-bad-lines``, so the commands reading files take it."""
    path = _bad_file(tmp_path)
    argv = [command, str(path), "--timezone", "UTC", "--json"]
    assert main(argv, out=io.StringIO()) == 6
    line = assert_one_line_error(capsys.readouterr().err)
    assert "line 3" in line and "--on-bad-lines" in line
    out = io.StringIO()
    assert main([*argv, "--on-bad-lines", "skip"], out=out) == 0
    assert json.loads(out.getvalue())["rows"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # as outside pytest: printed, not raised
        assert main([*argv, "--on-bad-lines", "warn"], out=io.StringIO()) == 0
    warned = capsys.readouterr().err
    assert warned.startswith("warning: ") and "line 3: skipped malformed line" in warned


@pytest.mark.parametrize("command", ["read", "inspect"])
def test_cli_on_bad_lines_is_refused_for_a_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    assert main([command, str(folder), "--on-bad-lines", "skip"], out=io.StringIO()) == 2
    assert "--on-bad-lines applies to export files" in assert_one_line_error(
        capsys.readouterr().err
    )


# ------------------------------------------------------------------ bad arguments


def test_region_is_read_in_any_case(server: ServerFactory) -> None:
    """design.md §3 ``rf.Client(region=...)``: ``"EU"`` is the EU endpoint, as ``"eu"``."""
    for name in ("EU", " eu ", "In"):
        client = rf.Client(api_secret="s", project_timezone="UTC", region=name)
        assert client.base_url.startswith(f"https://data-{name.strip().lower()}.robotmia.com/")
    srv = server([])
    for bad in ("mars", "", 3):
        with pytest.raises(rf.InvalidArgumentError, match="region must be one of"):
            read_day(srv.url, region=bad)
    assert srv.requests == []


def test_an_empty_cache_dir_is_a_bad_argument(server: ServerFactory, tmp_path: Path) -> None:
    """design.md §3: bad arguments raise before any request; an empty ``cache_dir`` is
    not the current folder."""
    srv = server([])
    for empty in ("", "  "):
        with pytest.raises(rf.InvalidArgumentError, match="cache_dir must not be empty"):
            rf.Client(api_secret="s", project_timezone="UTC", cache_dir=empty)
        with pytest.raises(rf.InvalidArgumentError, match="cache_dir"):
            read_day(srv.url, cache_dir=empty)
    assert srv.requests == []


# ------------------------------------------------------------------ datasets


def test_dataset_widened_in_steps_keeps_the_stored_spelling(
    server: ServerFactory, tmp_path: Path
) -> None:
    """design.md §4: days with differing types read back as one table, every row and
    value kept. docs/choices.md (Known limits): values a day stored in a wider type
    (ints in a float column, list elements as text) keep that spelling when a later
    day turns the column to text; a read of the whole range is exact."""
    day = 86400
    t0 = 1704067200  # 2024-01-01, project timezone UTC
    lines = [
        {"event": "e", "properties": {"time": t0, "n": 1.5, "l": ["x", 2]}},
        {"event": "e", "properties": {"time": t0 + 1, "l": [1.5, None]}},
        {"event": "e", "properties": {"time": t0 + day, "n": 1, "l": [3]}},
        {"event": "e", "properties": {"time": t0 + 2 * day, "n": "s", "l": "t"}},
    ]
    srv = server(lines)
    kw = {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url}
    rf.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-03", window_days=1, **kw)
    whole = rf.read_robotmia_export("2024-01-01", "2024-01-03", return_type="arrow", **kw)
    stored = rf.read_parquet_dataset(tmp_path / "ds", return_type="arrow")
    assert whole.column("properties.n").to_pylist() == ["1.5", None, "1", "s"]
    assert stored.column("properties.n").to_pylist() == ["1.5", None, "1.0", "s"]
    assert whole.column("properties.l").to_pylist() == ['["x",2]', "[1.5,null]", "[3]", "t"]
    assert stored.column("properties.l").to_pylist() == [
        '["x","2"]',
        '["1.5",null]',
        '["3"]',
        "t",
    ]


def test_days_before_a_failing_day_of_a_halved_window_are_written(
    server: ServerFactory, tmp_path: Path
) -> None:
    """design.md §4, §4b: a window that keeps failing is halved down to single days;
    the dataset is written one day at a time and a failing day leaves the others
    intact. The days before it that arrived whole are written, as with one-day
    windows, instead of being thrown away with the failed day's error."""
    t0 = 1704067200  # 2024-01-01
    lines = [{"event": "e", "properties": {"time": t0 + d * 86400 + 5, "d": d}} for d in range(4)]
    srv = server(lines)
    kw = {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url}
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-03", "2024-01-04", **kw)  # the old days 3 and 4
    srv.add_fault(
        Fault(
            status=500, times=None, match=lambda p: p["from_date"] <= "2024-01-03" <= p["to_date"]
        )
    )
    for window_days in (4, "auto"):
        with pytest.raises(rf.APIError, match="window 2024-01-03") as caught:
            rf.export_to_parquet(
                out, "2024-01-01", "2024-01-04", window_days=window_days, max_retries=0, **kw
            )
        assert caught.value.status_code == 500
        table = rf.read_parquet_dataset(out, return_type="arrow")
        assert sorted(table.column("properties.d").to_pylist()) == [0, 1, 2, 3]
        assert sorted(p.name for p in out.glob("date=*")) == [
            "date=2024-01-01",
            "date=2024-01-02",
            "date=2024-01-03",
            "date=2024-01-04",
        ]


def test_a_corrupt_data_file_is_named(server: ServerFactory, tmp_path: Path) -> None:
    """Bad input gives a clear error naming the file, never a bare pyarrow one: a
    dataset file cut short (a disk full, a copy interrupted) is named by the reader
    and by a writer, which refuses before any request."""
    t0 = 1704067200
    srv = server([{"event": "e", "properties": {"time": t0 + d * 86400}} for d in range(3)])
    kw = {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url}
    out = tmp_path / "ds"
    rf.export_to_parquet(out, "2024-01-01", "2024-01-03", **kw)
    bad = out / "date=2024-01-02" / "part-0.parquet"
    bad.write_bytes(bad.read_bytes()[:100])
    assert len(rf.read_parquet_dataset(out, from_date="2024-01-03")) == 1  # not read
    for options in ({}, {"max_memory": None}, {"where": 'properties["x"] == 1'}):
        with pytest.raises(rf.InvalidArgumentError, match="not a readable Parquet file") as c:
            rf.read_parquet_dataset(out, **options)  # type: ignore[arg-type]
        assert str(bad) in str(c.value)
    sent = len(srv.requests)
    with pytest.raises(rf.InvalidArgumentError, match="not a readable Parquet file") as c:
        rf.export_to_parquet(out, "2024-01-02", "2024-01-02", **kw)
    assert str(bad) in str(c.value)
    assert len(srv.requests) == sent


def test_read_export_file_of_a_folder_says_so(tmp_path: Path) -> None:
    """Bad input names what is wrong: a folder is no export file (it exists)."""
    with pytest.raises(IsADirectoryError, match="is a folder, not an export file"):
        rf.read_export_file(tmp_path, project_timezone="UTC")
    with pytest.raises(FileNotFoundError, match="export file not found"):
        rf.read_export_file(tmp_path / "missing.jsonl", project_timezone="UTC")


def test_settings_lose_surrounding_whitespace(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """design.md §3: ``ROBOTMIA_API_SECRET``, ``ROBOTMIA_PROJECT_TIMEZONE`` and
    ``ROBOTMIA_BASE_URL`` set the defaults. A value read from a file (``$(cat
    secret.txt)``, a mounted secret) keeps its newline: it is the same setting."""
    srv = server([{"event": "e", "properties": {"time": 1704067200}}])
    monkeypatch.setenv("ROBOTMIA_API_SECRET", f" {SECRET}\n")
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", "Europe/Paris\n")
    monkeypatch.setenv("ROBOTMIA_BASE_URL", f"{srv.url}\n")
    table = rf.read_robotmia_export("2024-01-01", "2024-01-01", return_type="arrow")
    assert table.column("time").to_pylist()[0].isoformat() == "2023-12-31T23:00:00+00:00"
    assert rf.Client().base_url == srv.url
    given = rf.read_robotmia_export(
        "2024-01-01",
        "2024-01-01",
        api_secret=SECRET + "\r\n",
        project_timezone=" UTC ",
        base_url=srv.url,
        return_type="arrow",
    )
    assert given.column("time").to_pylist()[0].isoformat() == "2024-01-01T00:00:00+00:00"


def test_unreachable_storage_is_named(server: ServerFactory) -> None:
    """design.md §3: a dataset that cannot be written is a ``ValueError`` before any
    request; an object store that refuses the connection is named, by the writer and
    by the reader, not left to the storage client's own exception."""
    pytest.importorskip("s3fs")
    srv = server([])
    options = {
        "key": "k",
        "secret": "s3-secret-value",
        "endpoint_url": "http://127.0.0.1:9",  # the discard port: refused
        "client_kwargs": {"region_name": "us-east-1"},
        "config_kwargs": {"retries": {"max_attempts": 1}},
    }
    url = "s3://bucket/events"
    with pytest.raises(rf.InvalidArgumentError, match=f"cannot write the dataset at {url}") as c:
        read_day(srv.url, parquet_path=url, storage_options=options)
    assert "s3-secret-value" not in str(c.value)
    with pytest.raises(rf.InvalidArgumentError, match=f"cannot read the dataset at {url}") as c:
        rf.export_to_parquet(
            url, "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC",
            base_url=srv.url, storage_options=options,
        )  # fmt: skip
    assert "s3-secret-value" not in str(c.value)
    assert srv.requests == []
    with pytest.raises(rf.InvalidArgumentError, match=f"cannot read the dataset at {url}"):
        rf.read_parquet_dataset(url, storage_options=options)


# Values whose type, widened day by day, never changes their spelling (no floats, no
# lists: see the Known limits of docs/choices.md and the test above).
_DAY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**70),
    st.text(max_size=4),
    st.dictionaries(st.sampled_from(["a", "é"]), st.integers(0, 3), max_size=2),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    days=st.lists(
        st.lists(
            st.dictionaries(st.sampled_from(["k", "$os", "a.b", "é"]), _DAY_VALUES, max_size=3),
            max_size=3,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_dataset_written_day_by_day_reads_back_as_the_whole_export(
    tmp_path_factory: pytest.TempPathFactory, days: list[list[dict[str, object]]]
) -> None:
    """design.md §4: days with different column sets or types read back through
    ``read_parquet_dataset`` as one table, with the contract and type policy of a
    read of the whole range; plain readers read every row."""
    import pyarrow.dataset as pads

    t0 = 1704067200  # 2024-01-01
    lines = [
        json.dumps(
            {"event": "e", "properties": {**props, "time": t0 + d * 86400 + i, "id": f"{d}-{i}"}}
        ).encode()
        for d, day in enumerate(days)
        for i, props in enumerate(day)
    ]
    last = f"2024-01-0{len(days)}"
    out = tmp_path_factory.mktemp("ds") / "events"
    with ExportServer(lines, api_secret=SECRET) as srv:
        kw = {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url}
        rf.export_to_parquet(out, "2024-01-01", last, window_days=1, **kw)
        whole = rf.read_robotmia_export("2024-01-01", last, return_type="arrow", **kw)
    if not lines:
        assert whole.num_rows == 0
        return
    stored = rf.read_parquet_dataset(out, return_type="arrow")
    assert sorted(stored.column_names) == sorted(whole.column_names)
    stored = stored.select(whole.column_names).sort_by("properties.id")
    whole = whole.sort_by("properties.id")
    for name in whole.column_names:
        assert stored.schema.field(name).type == whole.schema.field(name).type, name
        assert stored.column(name).to_pylist() == whole.column(name).to_pylist(), name
    assert pads.dataset(out, partitioning="hive").count_rows() == len(lines)


@pytest.mark.parametrize(
    ("keyword", "value", "named"),
    [
        ("dedupe", "yes", "dedupe must be True or False"),
        ("time_in_ms", 1, "time_in_ms must be True or False"),
        ("refresh", [True], "refresh must be True or False"),
        ("partition_by", "date", "partition_by must be"),
        ("partition_by", object(), "partition_by must be"),
        ("parquet_path", 3, "parquet_path must be a str or os.PathLike"),
        ("parquet_path", " ", "parquet_path must not be empty"),
        ("storage_options", "key=x", "storage_options must be a dict or None"),
        ("table_format", "iceberg", "table_format must be"),
    ],
)
def test_every_bad_keyword_is_named_before_any_request(
    server: ServerFactory, tmp_path: Path, keyword: str, value: object, named: str
) -> None:
    """design.md §3: bad arguments raise ``InvalidArgumentError`` (a ``ValueError``)
    naming the parameter before any request, also those that matter only with
    another option (``partition_by`` without ``parquet_path``) and flags given a
    value that is merely truthy."""
    srv = server([])
    with pytest.raises(rf.InvalidArgumentError, match=named):
        read_day(srv.url, **{keyword: value})
    if keyword not in ("parquet_path", "refresh"):
        path = tmp_path / "ds"
        with pytest.raises(rf.InvalidArgumentError, match=named.split(" must")[0]):
            rf.export_to_parquet(
                path, "2024-01-01", "2024-01-01", api_secret=SECRET, project_timezone="UTC",
                base_url=srv.url, **{keyword: value},
            )  # fmt: skip
        assert not path.exists()
    assert srv.requests == []


def test_a_path_in_the_home_folder(
    server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """design.md §3: paths follow pandas' convention, where ``~/events`` is in the
    home folder: not a folder named ``~`` in the working directory."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    srv = server([{"event": "e", "properties": {"time": 1704067200}}])
    kw = {"api_secret": SECRET, "project_timezone": "UTC", "base_url": srv.url}
    rf.export_to_parquet("~/events", "2024-01-01", "2024-01-01", cache_dir="~/cache", **kw)
    assert (home / "events" / "date=2024-01-01").is_dir()
    assert (home / "cache").is_dir()
    assert list(work.iterdir()) == []
    assert len(rf.read_parquet_dataset("~/events")) == 1
    (home / "export.jsonl").write_text('{"event":"e","properties":{"time":1}}\n')
    assert len(rf.read_export_file("~/export.jsonl", project_timezone="UTC")) == 1
