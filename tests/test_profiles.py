"""People profiles (``read_robotmia_profiles``) against the emulator's
``/api/2.0/engage``, over real loopback sockets: paging, session expiry, faults
retried page by page, ``output_properties``, ``where``, the type policy
(property-based, with the oracle of ``test_parse_properties``), date strings,
secrets, Parquet, and the join with events."""

from __future__ import annotations

import datetime as dt
import doctest
import importlib.machinery
import importlib.util
import json
import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import profiles as profiles_mod
from robotmia_frames.emulator import ExportServer, Fault, generate_events, generate_profiles
from tests.conftest import SECRET, ServerFactory
from tests.strategies import events, json_values
from tests.test_parse_properties import arrow_of, merge, recovered, value_kind

ROOT = Path(__file__).resolve().parents[1]
ENGAGE = "/api/2.0/engage"
HAS_WHERE = importlib.util.find_spec("robotmia_frames.where") is not None


def read(srv: ExportServer, **kwargs: Any) -> Any:
    kwargs.setdefault("api_secret", SECRET)
    kwargs.setdefault("project_timezone", "UTC")
    kwargs.setdefault("base_url", srv.engage_url)
    return rf.read_robotmia_profiles(**kwargs)


def engage_requests(srv: ExportServer) -> list[Any]:
    return [r for r in srv.requests if r.path == ENGAGE]


def profile(i: int, **props: Any) -> dict[str, Any]:
    return {"$distinct_id": f"u{i}", "$properties": props}


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry backoff recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(profiles_mod, "_sleep", delays.append)
    return delays


# --------------------------------------------------------------------------- paging


def test_pages_through_every_profile_once(server: ServerFactory) -> None:
    srv = server(generate_profiles=2_345, engage_page_size=400)
    df = read(srv)
    assert df["distinct_id"].tolist() == [f"user-{i:05d}" for i in range(2_345)]
    reqs = engage_requests(srv)
    assert [r.params.get("page") for r in reqs] == [None, "1", "2", "3", "4", "5"]
    assert all(r.method == "POST" and r.status == 200 for r in reqs)
    assert "session_id" not in reqs[0].params
    sids = {r.params["session_id"] for r in reqs[1:]}
    assert len(sids) == 1


def test_client_page_size_and_results_first(server: ServerFactory) -> None:
    srv = server(generate_profiles=250)
    srv.engage.results_first = True  # robotmia's own bodies put results before session_id
    df = read(srv, page_size=100)
    assert df["distinct_id"].is_unique and len(df) == 250
    reqs = engage_requests(srv)
    assert len(reqs) == 3 and all(r.params["page_size"] == "100" for r in reqs)


def test_exact_multiple_of_page_size_stops_on_total(server: ServerFactory) -> None:
    srv = server(generate_profiles=300, engage_page_size=100)
    assert len(read(srv)) == 300
    assert len(engage_requests(srv)) == 3  # total reached: no empty fourth page


def test_empty_result_has_a_typed_distinct_id(server: ServerFactory) -> None:
    srv = server(profiles=[])
    df = read(srv)
    assert list(df.columns) == ["distinct_id"] and len(df) == 0
    assert df["distinct_id"].dtype == "string"
    t = read(srv, return_type="arrow")
    assert t.schema == pa.schema([pa.field("distinct_id", pa.string())])


def test_emulator_engage_body_get_and_post(server: ServerFactory) -> None:
    srv = server(profiles=[profile(1, a=1, b="x"), profile(2, a=2)], engage_page_size=1)
    auth = (SECRET, "")
    first = requests.get(srv.engage_url, auth=auth, params={"output_properties": '["b"]'})
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Content-Encoding"] == "gzip"
    body = first.json()
    assert list(body) == ["page", "page_size", "session_id", "status", "total", "results"]
    assert body | {"session_id": "S"} == {
        "page": 0, "page_size": 1, "session_id": "S", "status": "ok", "total": 2,
        "results": [{"$distinct_id": "u1", "$properties": {"b": "x"}}],
    }  # fmt: skip
    second = requests.post(
        srv.engage_url, auth=auth, data={"session_id": body["session_id"], "page": "1"}
    ).json()
    assert second["page"] == 1 and second["results"] == [{"$distinct_id": "u2", "$properties": {}}]
    assert requests.post(srv.engage_url, data={}).status_code == 401
    for data, message in [
        ({"session_id": "nope", "page": "1"}, "unknown or has expired"),
        ({"output_properties": "b"}, "JSON array of strings"),
        ({"page_size": "-3"}, "invalid page_size"),
    ]:
        r = requests.post(srv.engage_url, auth=auth, data=data)
        assert r.status_code == 400 and message in r.json()["error"]
    srv.engage.expire_sessions()
    r = requests.post(srv.engage_url, auth=auth, data={"session_id": body["session_id"]})
    assert r.status_code == 400


# --------------------------------------------------------------------------- faults


def test_session_expiry_restarts_from_page_zero(server: ServerFactory) -> None:
    srv = server(generate_profiles=1_000, engage_page_size=200)
    srv.engage.expire_after(2)  # the first session dies when page 2 is asked
    df = read(srv)
    assert df["distinct_id"].tolist() == [f"user-{i:05d}" for i in range(1_000)]
    reqs = engage_requests(srv)
    assert [(r.params.get("page"), r.status) for r in reqs] == [
        (None, 200), ("1", 200), ("2", 400),
        (None, 200), ("1", 200), ("2", 200), ("3", 200), ("4", 200),
    ]  # fmt: skip
    assert reqs[1].params["session_id"] != reqs[4].params["session_id"]


def test_expiring_sessions_restart_a_bounded_number_of_times(server: ServerFactory) -> None:
    srv = server(generate_profiles=30, engage_page_size=10)
    srv.engage.session_pages = 1  # every session dies after its first page
    with pytest.raises(rf.APIError) as info:
        read(srv, max_session_restarts=2)
    assert info.value.status_code == 400
    assert "3 times" in str(info.value) and "max_session_restarts" in str(info.value)
    assert len(engage_requests(srv)) == 6


def test_a_failed_page_is_retried_alone(server: ServerFactory, no_sleep: list[float]) -> None:
    srv = server(generate_profiles=1_000, engage_page_size=200)

    def page(n: str) -> Any:
        return lambda p: p.get("page") == n

    srv.add_fault(Fault(status=503, match=page("1")))
    srv.add_fault(Fault(truncate_at=300, match=page("2")))  # gzip body cut mid-stream
    srv.add_fault(Fault(reset=True, match=page("3")))
    srv.add_fault(Fault(status=429, retry_after=2, match=page("4")))
    df = read(srv)
    assert df["distinct_id"].tolist() == [f"user-{i:05d}" for i in range(1_000)]
    reqs = engage_requests(srv)
    assert [r.params.get("page") for r in reqs] == [None, "1", "1", "2", "2", "3", "3", "4", "4"]
    assert len({r.params.get("session_id") for r in reqs[1:]}) == 1  # same session throughout
    assert [r.fault is not None for r in reqs] == [False] + [True, False] * 4
    assert len(no_sleep) == 4 and no_sleep[-1] == 2.0  # Retry-After honoured


def test_retries_run_out(server: ServerFactory, no_sleep: list[float]) -> None:
    srv = server(generate_profiles=10)
    srv.add_fault(Fault(status=500, message="boom", times=3))
    with pytest.raises(rf.APIError) as info:
        read(srv, max_retries=2)
    assert info.value.status_code == 500 and info.value.server_message == "boom"
    assert "profiles page 0" in str(info.value) and "3 attempts" in str(info.value)
    srv.clear_faults()
    srv.add_fault(Fault(truncate_at=50, times=2))
    with pytest.raises(rf.IncompleteDownloadError, match="profiles page 0"):
        read(srv, max_retries=1)
    srv.add_fault(Fault(garbage=b"<html>not json</html>", gzip=False, content_encoding=""))
    assert len(read(srv)) == 10  # a garbled page is asked again


def test_error_status_in_a_200_body(server: ServerFactory) -> None:
    srv = server(generate_profiles=3)
    srv.add_fault(Fault(raw_body=b'{"status": "error", "error": "query too heavy"}'))
    with pytest.raises(rf.APIError, match="query too heavy"):
        read(srv)


def test_malformed_profile_is_a_parse_error(server: ServerFactory) -> None:
    srv = server(generate_profiles=3)
    srv.add_fault(
        Fault(raw_body=b'{"status":"ok","results":[{"$properties":{}},{"$properties":[1]}]}')
    )
    with pytest.raises(rf.ParseError) as info:
        read(srv)
    assert info.value.line_number == 2 and info.value.source == "profiles page 0"


def test_secret_never_in_messages_or_logs(
    server: ServerFactory, no_sleep: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    srv = server(generate_profiles=5)
    caplog.set_level(logging.DEBUG, logger="robotmia_frames")
    wrong = "wrong-secret-1234567"
    with pytest.raises(rf.AuthenticationError) as auth:
        read(srv, api_secret=wrong)
    srv.add_fault(Fault(status=502, times=3))
    with pytest.raises(rf.APIError) as api_error:
        read(srv, max_retries=2)
    messages = [str(auth.value), str(api_error.value), caplog.text]
    assert "401" in messages[0]
    for text in messages:
        assert SECRET not in text and wrong not in text


# --------------------------------------------------------------------------- parameters


def test_output_properties_are_the_columns(server: ServerFactory) -> None:
    srv = server(generate_profiles=50)
    t = read(srv, output_properties=["plan", "$email", "never set"], return_type="arrow")
    assert t.column_names == [
        "distinct_id", "properties.plan", "properties.$email", "properties.never set",
    ]  # fmt: skip
    assert t.schema.field("properties.never set").type == pa.null()
    assert json.loads(engage_requests(srv)[0].params["output_properties"]) == [
        "plan", "$email", "never set",
    ]  # fmt: skip
    assert t.column("properties.plan").to_pylist() == [
        p["$properties"]["plan"] for p in generate_profiles(50)
    ]


def test_where_is_sent_verbatim(server: ServerFactory) -> None:
    srv = server(profiles=[profile(1, plan="pro"), profile(2, plan="free"), profile(3)])
    expr = 'properties["plan"] == "pro"'
    if HAS_WHERE:
        df = read(srv, where=expr)
        assert df["distinct_id"].tolist() == ["u1"]
    else:
        with pytest.raises(rf.APIError) as info:
            read(srv, where=expr)
        assert info.value.status_code == 400
        assert "where is not supported" in str(info.value.server_message)
    assert engage_requests(srv)[0].params["where"] == expr


def test_emulator_where_uses_the_evaluator_contract(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``robotmia_frames.where.matches(text, {"properties": ...}, project_timezone=...)``,
    stood in for by a fake module: a ValueError is a 400."""
    seen: list[Any] = []

    def matches(text: str, event: dict[str, Any], *, project_timezone: str) -> bool:
        seen.append(project_timezone)
        if text != 'properties["plan"] == "pro"':
            raise ValueError("syntax error at column 1")
        return bool(event["properties"].get("plan") == "pro")

    fake = types.ModuleType("robotmia_frames.where")
    fake.__spec__ = importlib.machinery.ModuleSpec("robotmia_frames.where", None)
    fake.matches = matches  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "robotmia_frames.where", fake)
    srv = server(
        profiles=[profile(1, plan="pro"), profile(2, plan="free"), profile(3, plan="pro")],
        project_timezone="Asia/Tokyo",
        engage_page_size=1,
    )
    df = read(srv, where='properties["plan"] == "pro"')
    assert df["distinct_id"].tolist() == ["u1", "u3"]
    assert set(seen) == {"Asia/Tokyo"}
    # (The client checks where locally; ask the emulator directly.)
    r = requests.post(srv.engage_url, auth=(SECRET, ""), data={"where": "bad("})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid where parameter: syntax error at column 1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"output_properties": []}, "selects no property"),
        ({"output_properties": "plan"}, "list of property names"),
        ({"where": "  "}, "where is empty"),
        ({"page_size": 0}, "page_size"),
        ({"max_session_restarts": -1}, "max_session_restarts"),
        ({"base_url": "http://robotmia.com/api/2.0/engage"}, "clear text"),
        ({"api_secret": ""}, "no API secret"),
        ({"project_timezone": "Mars/Olympus"}, "unknown project_timezone"),
        ({"return_type": "dataframe"}, "return_type"),
        ({"parse_dates": "yes"}, "parse_dates"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    server: ServerFactory, kwargs: dict[str, Any], match: str
) -> None:
    srv = server(generate_profiles=1)
    with pytest.raises(ValueError, match=match):
        read(srv, **kwargs)
    assert srv.requests == []


def test_settings_from_the_environment(
    server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server(profiles=[profile(1, seen="2024-07-01T12:00:00")])
    monkeypatch.setenv("ROBOTMIA_API_SECRET", SECRET)
    monkeypatch.setenv("ROBOTMIA_PROJECT_TIMEZONE", "Asia/Tokyo")
    df = rf.read_robotmia_profiles(base_url=srv.engage_url)
    assert df["properties.seen"][0] == pd.Timestamp("2024-07-01T03:00:00Z")


# --------------------------------------------------------------------------- types


@st.composite
def profile_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    lines = draw(events(max_events=12))
    ids = st.one_of(st.text(max_size=6), st.none(), json_values)
    mixed_ids = draw(st.booleans())
    return [
        {
            "$distinct_id": draw(ids) if mixed_ids else f"id-{i}",
            "$properties": line["properties"],  # "time" is an ordinary profile property
        }
        for i, line in enumerate(lines)
    ]


UNLIMITED = rf.RateLimit(per_hour=None, per_second=None, concurrent=None)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ExportServer]:
    with ExportServer(api_secret=SECRET) as srv:
        yield srv


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=profile_lists(), page_size=st.integers(min_value=1, max_value=5))
def test_every_value_recoverable_across_pages(
    shared_server: ExportServer, items: list[dict[str, Any]], page_size: int
) -> None:
    engage = shared_server.engage
    engage.profiles, engage.page_size = items, page_size  # conflicts may span pages
    # no client-side rate limit: its pauses between pages were nine tenths of the time
    table = read(shared_server, return_type="arrow", rate_limit=UNLIMITED)
    assert table.num_rows == len(items)
    keys: dict[str, Any] = {}
    for p in items:
        for k, v in p["$properties"].items():
            keys[k] = merge(keys.get(k, "null"), value_kind(v))
    assert table.column_names == ["distinct_id"] + ["properties." + k for k in keys]
    rows = table.to_pylist()
    for key, kind in keys.items():
        name = "properties." + key
        assert table.schema.field(name).type == arrow_of(kind), key
        for row, p in zip(rows, items, strict=True):
            assert recovered(row[name], p["$properties"].get(key), kind), (key, row[name])
    ids = [p["$distinct_id"] for p in items]
    id_kind = "str" if all(i is None or isinstance(i, str) for i in ids) else "text"
    for row, original in zip(rows, ids, strict=True):
        assert recovered(row["distinct_id"], original, id_kind), (original, row["distinct_id"])


def test_policy_examples(server: ServerFactory) -> None:
    srv = server(
        profiles=[
            profile(1, n=1, x=1, big=2**70, obj={"b": 1, "a": [1.5]}, lst=[1, 2]),
            profile(2, n=2.5, x="x", big=None, obj=None, lst=[3.5, None]),
        ],
        engage_page_size=1,  # every conflict meets its column on another page
    )
    t = read(srv, return_type="arrow")
    assert t.to_pylist() == [
        {"distinct_id": "u1", "properties.n": 1.0, "properties.x": "1",
         "properties.big": str(2**70), "properties.obj": '{"b":1,"a":[1.5]}',
         "properties.lst": [1.0, 2.0]},
        {"distinct_id": "u2", "properties.n": 2.5, "properties.x": "x", "properties.big": None,
         "properties.obj": None, "properties.lst": [3.5, None]},
    ]  # fmt: skip
    df = read(srv, dtype_backend="pyarrow")
    assert isinstance(df["properties.n"].dtype, pd.ArrowDtype)


# --------------------------------------------------------------------------- dates


def test_date_strings_become_utc(server: ServerFactory) -> None:
    stamps = ["2024-11-03T01:30:00", "2024-03-10T02:30:00", "2024-07-01T00:00:00", None]
    srv = server(
        profiles=[
            profile(i, **{"$created": s, "renewal": s, "typo": s, "plain": "2024-07-01"})
            for i, s in enumerate(stamps)
        ]
        + [profile(9, typo="2024-02-30T00:00:00")],  # parses only by rolling over to March
        project_timezone="America/New_York",
    )
    df = read(srv, project_timezone="America/New_York")
    for col in ("properties.$created", "properties.renewal"):
        assert str(df[col].dtype) == "datetime64[us, UTC]"
    tz = ZoneInfo("America/New_York")
    for s, got in zip(stamps, df["properties.$created"], strict=False):
        if s is None:
            assert got is pd.NaT
            continue
        local = dt.datetime.fromisoformat(s).replace(tzinfo=tz, fold=0)
        assert got == pd.Timestamp(local.astimezone(dt.timezone.utc))  # the events' contract
    assert df["properties.typo"].dtype == "string"  # one bad value: the column stays text
    assert df["properties.typo"].tolist()[-1] == "2024-02-30T00:00:00"
    assert df["properties.plain"].dtype == "string"  # a date alone is not a timestamp
    raw = read(srv, project_timezone="America/New_York", parse_dates=False)
    assert raw["properties.$created"].tolist()[:3] == stamps[:3]


# --------------------------------------------------------------------------- sinks, joins


def test_parquet_file_written_atomically(server: ServerFactory, tmp_path: Path) -> None:
    srv = server(generate_profiles=120, engage_page_size=50)
    out = tmp_path / "sub" / "profiles.parquet"
    t = read(srv, parquet_path=out, return_type="arrow")
    assert pq.read_table(out).equals(t)
    assert sorted(p.name for p in out.parent.iterdir()) == ["profiles.parquet"]
    with pytest.raises(ValueError, match="is a directory"):
        read(srv, parquet_path=tmp_path)


def test_events_join_profiles_on_distinct_id(server: ServerFactory) -> None:
    srv = server(generate_events(600, days=3), generate_profiles=3_000)
    events_df = rf.read_robotmia_export(
        "2024-01-01", "2024-01-03", api_secret=SECRET, project_timezone="UTC", base_url=srv.url
    )
    profiles_df = read(srv, output_properties=["$city", "$os", "plan"])
    joined = events_df.merge(
        profiles_df, how="inner", left_on="properties.distinct_id", right_on="distinct_id",
        suffixes=("", ".profile"),
    )  # fmt: skip
    known = events_df["properties.distinct_id"].isin(set(profiles_df["distinct_id"]))
    assert len(joined) == int(known.sum()) > 100
    # The generator gives each user the same city and OS in events and in the profile.
    assert (joined["properties.$city"] == joined["properties.$city.profile"]).all()
    assert (joined["properties.$os"] == joined["properties.$os.profile"]).all()


def test_docs_page_runs() -> None:
    result = doctest.testfile(
        str(ROOT / "docs" / "profiles.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 5 and result.failed == 0
