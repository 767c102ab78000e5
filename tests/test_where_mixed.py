"""``where`` on columns of mixed types (``5`` and ``"5"`` in one column).

The type policy folds such a column to text, where ``5`` and ``"5"`` read the same.
The language tells them apart (a string is never a number), and so does the
emulator's server-side filter (:func:`robotmia_frames.where.matches`). A saved
export still has the raw lines, so ``read_export_file(..., where=...)`` evaluates
on them and selects what the server selects. A Parquet dataset has only the
folded text: ``read_parquet_dataset(..., where=...)`` warns.
"""

from __future__ import annotations

import gzip
import json
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer
from robotmia_frames.where import Compare, Literal, folded_columns, format_where, matches, row_mask

from .where_strategies import (
    TIMEZONES,
    P,
    expressions,
    insert_ids,
    mixed_events,
    write_export,
)

SECRET = "where-mixed-secret"
T0 = 1704103200  # 2024-01-01T10:00:00 (project-local seconds)

MIXED = [
    {"event": "e", "properties": {"time": T0, "$insert_id": "num", "n": 5}},
    {"event": "e", "properties": {"time": T0 + 1, "$insert_id": "str", "n": "5"}},
    {"event": "e", "properties": {"time": T0 + 2, "$insert_id": "word", "n": "five"}},
    {"event": "e", "properties": {"time": T0 + 3, "$insert_id": "true", "n": "true"}},
    {"event": "e", "properties": {"time": T0 + 4, "$insert_id": "bool", "n": True}},
    {"event": "e", "properties": {"time": T0 + 5, "$insert_id": "none"}},
]


def _expected(text: str, events: list[dict[str, Any]], tz: str = "UTC") -> list[str]:
    """What the emulator's filter keeps, in order."""
    return [e["properties"]["$insert_id"] for e in events if matches(text, e, project_timezone=tz)]


# ------------------------------------------------------------- export files: exact


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('properties["n"] == "5"', ["str"]),
        ('properties["n"] > 4', ["num"]),
        ('properties["n"] == 5', ["num"]),
        ('properties["n"] != "5"', ["num", "word", "true", "bool", "none"]),
        ('properties["n"] in ["5", "five"]', ["str", "word"]),
        ('properties["n"] == true', ["bool"]),
        ('properties["n"] == "true"', ["true"]),
        ('number(properties["n"]) == 5', ["num", "str"]),
        ('string(properties["n"]) == "5"', ["num", "str"]),
        ('"5" in properties["n"]', ["str"]),
        ('defined(properties["n"]) and properties["n"] >= "a"', ["word", "true"]),
    ],
)
def test_read_export_file_tells_a_string_from_a_number(
    tmp_path: Path, text: str, kept: list[str]
) -> None:
    path = write_export(MIXED, tmp_path / "mixed.jsonl")
    got = rf.read_export_file(path, project_timezone="UTC", return_type="arrow", where=text)
    assert got.schema.field("properties.n").metadata  # the column is folded to text
    assert insert_ids(got) == kept == _expected(text, MIXED)


def test_a_string_is_never_a_number_in_pandas_and_with_columns(tmp_path: Path) -> None:
    path = write_export(MIXED, tmp_path / "mixed.jsonl")
    df = rf.read_export_file(
        path, project_timezone="UTC", where='properties["n"] == "5"', columns=["event", "time"]
    )
    assert list(df.columns) == ["event", "time"] and len(df) == 1
    assert str(df["time"][0]) == "2024-01-01 10:00:01+00:00"


def test_raw_lines_stay_aligned_with_rows(tmp_path: Path) -> None:
    """Blank lines, skipped bad lines, gzip and several batches: each row keeps its own
    verdict (strings at known places among 40,000 lines)."""
    events = []
    for i in range(40_000):
        n: Any = str(i) if i % 997 == 0 else i
        events.append({"event": "e", "properties": {"time": T0 + i, "$insert_id": str(i), "n": n}})
    lines = [json.dumps(e) for e in events]
    lines[10] = "not json"
    lines[20_000] = "[1, 2]"
    body = "\n".join(x if i % 5000 else x + "\n\n   " for i, x in enumerate(lines)) + "\n"
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(body.encode()))
    kept_events = [e for i, e in enumerate(events) if i not in (10, 20_000)]
    for text in ['properties["n"] == "997"', 'properties["n"] > 39000', 'properties["n"] < "2"']:
        got = rf.read_export_file(
            path, project_timezone="UTC", where=text, on_bad_lines="skip", return_type="arrow"
        )
        assert insert_ids(got) == _expected(text, kept_events), text
    assert len(_expected('properties["n"] == "997"', kept_events)) == 1


def test_dedupe_and_where_on_raw_lines(tmp_path: Path) -> None:
    dup = {
        "event": "e",
        "properties": {"time": T0, "distinct_id": "u", "$insert_id": "d", "n": "5"},
    }
    events = [dup, dup, {"event": "e", "properties": {"time": T0, "$insert_id": "x", "n": 5}}]
    path = write_export(events, tmp_path / "dups.jsonl")
    got = rf.read_export_file(path, project_timezone="UTC", where='properties["n"] == "5"',
                              dedupe=True, return_type="arrow")  # fmt: skip
    assert insert_ids(got) == ["d"]


def test_a_column_of_one_type_still_uses_the_arrow_filter(tmp_path: Path) -> None:
    path = write_export([{"event": "e", "properties": {"time": T0, "n": i}} for i in range(5)],
                  tmp_path / "ints.jsonl")  # fmt: skip
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert folded_columns('properties["n"] > 2', table.schema) == []
    got = rf.read_export_file(path, project_timezone="UTC", where='properties["n"] > 2')
    assert got.shape[0] == 2


def test_row_mask_on_objects_and_lines() -> None:
    lines: list[Any] = [json.dumps(e) for e in MIXED]
    lines += [b"[1]", "not json", MIXED[1]]
    got = row_mask('properties["n"] == "5"', lines).tolist()
    assert got == [False, True, False, False, False, False, False, False, True]
    huge = b'{"properties": {"n": 1180591620717411303424}}'  # 2**70: past 64 bits
    assert row_mask('properties["n"] > 1e21', [huge]).tolist() == [True]


def test_folded_columns_ignores_defined_and_other_columns() -> None:
    mark = {b"robotmia_frames.kind": b"text"}
    schema = pa.schema(
        [
            pa.field("properties.n", pa.string(), metadata=mark),
            pa.field("properties.s", pa.string()),
        ]
    )
    assert folded_columns('defined(properties["n"]) and properties["s"] == "5"', schema) == []
    assert folded_columns('defined(properties["n"]) and properties["n"] == "5"', schema) == [
        "properties.n"
    ]


# ------------------------------------------------------- datasets: documented, warned


@pytest.fixture(scope="module")
def mixed_dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("mixed") / "dataset"
    with ExportServer(MIXED, api_secret=SECRET) as srv:
        rf.export_to_parquet(root, "2024-01-01", "2024-01-01", api_secret=SECRET,
                             project_timezone="UTC", base_url=srv.url)  # fmt: skip
    yield root


def test_dataset_where_on_a_mixed_column_warns(mixed_dataset: Path) -> None:
    with pytest.warns(rf.RobotmiaWarning, match=r"properties\.n, stored as text") as caught:
        got = rf.read_parquet_dataset(
            mixed_dataset, where='properties["n"] > 4', return_type="arrow"
        )
    assert len(caught) == 1
    assert caught[0].filename == __file__  # it points at the caller's line
    # the documented loss: the stored "5" reads as the number 5
    assert insert_ids(got) == ["num", "str"]


def test_dataset_where_on_other_columns_does_not_warn(mixed_dataset: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = rf.read_parquet_dataset(
            mixed_dataset,
            where='defined(properties["n"]) and properties["$insert_id"] != "num"',
            return_type="arrow",
        )
    assert insert_ids(got) == ["str", "word", "true", "bool"]


# ------------------------------------------------- property: files == server filter


#: Comparisons of the mixed column with the values its strings spell.
_about_m = st.builds(
    lambda op, value, flip: (
        Compare(op, Literal(value), P("m")) if flip else Compare(op, P("m"), Literal(value))
    ),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in"]),
    st.sampled_from([3.0, "3", -1.0, "-1", 2.5, "2.5", True, "true", "a", "[1]"]),
    st.booleans(),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), tz=st.sampled_from(TIMEZONES))
def test_read_export_file_selects_what_the_server_filter_selects(
    data: st.DataObject, tz: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = data.draw(mixed_events(tz), label="events")
    expr = data.draw(expressions("bool", depth=3) | _about_m, label="expr")
    text = format_where(expr)
    path = write_export(events, tmp_path_factory.mktemp("mx") / "export.jsonl")
    schema = rf.read_export_file(path, project_timezone=tz, return_type="arrow").schema
    if not folded_columns(text, schema):
        return  # the Arrow filter runs: covered by test_where_equivalence
    got = rf.read_export_file(path, project_timezone=tz, where=text, return_type="arrow")
    assert insert_ids(got) == _expected(text, events, tz), text


CORPUS_TZ = "America/New_York"


def _corpus() -> list[dict[str, Any]]:
    """Events of 2024-11-02..04 (New York) whose ``m`` mixes numbers, booleans and the
    strings that fold onto them (``"3"``, ``"true"``, ``"[1]"``)."""
    rng = random.Random(15)
    values: list[Any] = [3, -1, 2.5, True, False, "3", "-1", "2.5", "true", "false", "[1]", "a", ""]
    out = []
    for i in range(200):
        props: dict[str, Any] = {
            "$insert_id": f"m-{i}",
            "time": 1730505600 + rng.randint(0, 3 * 86400 - 1),  # 2024-11-02..04 local
        }
        if rng.random() < 0.8:
            props["m"] = rng.choice(values)
        if rng.random() < 0.5:
            props["n"] = rng.randint(-3, 3)
        out.append({"event": "e", "properties": props})
    return out


CORPUS = _corpus()


@pytest.fixture(scope="module")
def corpus_server() -> Iterator[ExportServer]:
    with ExportServer(CORPUS, api_secret=SECRET, project_timezone=CORPUS_TZ) as srv:
        yield srv


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expr=expressions("bool", depth=3))
def test_file_and_emulator_select_the_same_events(
    expr: Any, corpus_server: ExportServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    text = format_where(expr)
    path = write_export(CORPUS, tmp_path_factory.mktemp("corpus") / "corpus.jsonl")
    local = rf.read_export_file(path, project_timezone=CORPUS_TZ, where=text, return_type="arrow")
    served = rf.read_robotmia_export(
        "2024-11-02",
        "2024-11-04",
        where=text,
        api_secret=SECRET,
        project_timezone=CORPUS_TZ,
        base_url=corpus_server.url,
        return_type="arrow",
    )
    assert sorted(insert_ids(local)) == sorted(insert_ids(served)), text
