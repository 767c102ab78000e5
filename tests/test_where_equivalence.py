"""Equivalence of the three ``where`` implementations (issue 6).

For generated expressions and events, these select exactly the same events:

1. the evaluator, :func:`robotmia_frames.where.matches`, on the export lines;
2. :func:`robotmia_frames.where.filter_table` (pushed-down expression + residual) on
   the table :func:`robotmia_frames.read_export_file` gives for those lines;
3. the emulator's server-side filter, reached through
   :func:`robotmia_frames.read_robotmia_export` (and, on the same server, the Parquet
   dataset path ``read_parquet_dataset(where=...)``).

Events are compared by their ``$insert_id``. The generated events are the ones the
table represents without loss (see ``tests/where_strategies.py``); the documented
losses have their own test at the end.
"""

from __future__ import annotations

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
from robotmia_frames.where import (
    compile_where,
    filter_table,
    folded_columns,
    format_where,
    matches,
    parse_where,
)

from .where_strategies import (
    ANCHORS,
    TIMEZONES,
    expressions,
    insert_ids,
    lossless_events,
    roundtrips,
    write_export,
)

SECRET = "where-equivalence-secret"


def _evaluator_ids(text: str, events: list[dict[str, Any]], tz: str) -> list[str]:
    return [e["properties"]["$insert_id"] for e in events if matches(text, e, project_timezone=tz)]


# ------------------------------------------------------------- evaluator vs table


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), tz=st.sampled_from(TIMEZONES))
def test_evaluator_and_filter_table_select_the_same_events(
    data: st.DataObject, tz: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = data.draw(lossless_events(tz), label="events")
    expr = data.draw(expressions("bool", depth=3) | expressions("any", depth=2), label="expr")
    text = format_where(expr)
    assert parse_where(text) == expr  # the printer round-trips
    path = write_export(events, tmp_path_factory.mktemp("eq") / "export.jsonl")
    table = rf.read_export_file(path, project_timezone=tz, return_type="arrow")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    expected = _evaluator_ids(text, events, tz)
    assert insert_ids(filter_table(table, text, project_timezone=tz)) == expected, text
    # the two halves of the compiled form, applied by hand, agree too
    compiled = compile_where(text, table.schema, project_timezone=tz)
    kept = table.filter(compiled.expression) if compiled.expression is not None else table
    mask = compiled.residual(kept)
    assert insert_ids(kept.filter(mask) if mask is not None else kept) == expected, text


# ------------------------------------------------ all three, one server, one corpus

CORPUS_TZ = "America/New_York"
FALL_BACK = int(ANCHORS[1])  # 2024-11-03T01:30 local: the repeated hour


def _text(rng: random.Random) -> str:
    return "".join(rng.choice("abxyz é-") for _ in range(rng.randint(0, 4)))


# The families of ``where_strategies.FAMILIES``, drawn with a seeded ``random``.
SAMPLERS: dict[str, Any] = {
    "n": lambda r: r.choice([r.randint(-5, 5), r.randint(-(2**63), 2**63 - 1)]),
    "f": lambda r: r.choice([r.uniform(-1e6, 1e6), 0.5, -0.0, 2.5, 1e20, 0.1, r.randint(-3, 3)]),
    "s": lambda r: r.choice(["", "a", "b", "ab", "abc", "A", "x", "é", "3", "true", "Linux"]),
    "d": lambda r: r.choice(
        ["2024-11-03", "2024-11-3", "2024-11-03T01:30:00", "2024-11-03T06:30:00Z",
         "2024-11-02T23:00:00-05:00", "2024-11-04T10:00:00.25", "2024-13-01", "nope"]
    ),
    "b": lambda r: r.random() < 0.5,
    "l": lambda r: [r.choice(["a", "b", "", "ab", None]) for _ in range(r.randint(0, 3))],
    "ln": lambda r: [r.choice([r.randint(-3, 3), 0.5, 2.5, None]) for _ in range(r.randint(0, 3))],
    "ll": lambda r: [[r.randint(0, 2) for _ in range(r.randint(0, 2))] for _ in range(r.randint(0, 2))],
    "m": lambda r: r.choice([r.randint(-3, 3), 0.5, 2.5, _text(r), r.random() < 0.5]),
    "o": lambda r: r.choice([{"k": r.randint(0, 2)}, {"k": 1, "s": _text(r)}, _text(r)]),
    "ml": lambda r: [r.choice([r.randint(0, 2), _text(r), True]) for _ in range(r.randint(0, 3))],
}  # fmt: skip


def _corpus() -> list[dict[str, Any]]:
    """A fixed, varied set of lossless events over 2024-11-02..2024-11-04 (New York)."""
    rng = random.Random(6)
    events = []
    for i in range(240):
        props: dict[str, Any] = {"$insert_id": f"c-{i}"}
        for name in sorted(SAMPLERS):
            if rng.random() < 0.6:
                props[name] = SAMPLERS[name](rng)
        if rng.random() < 0.95:
            t: float = FALL_BACK + rng.randint(-86400 + 5400, 86400 + 9000)
            if rng.random() < 0.1:
                t += 0.5
            assert roundtrips(t, CORPUS_TZ)
            props["time"] = t
        events.append({"event": rng.choice(["a", "b"]), "properties": props})
    return events


CORPUS = _corpus()


@pytest.fixture(scope="module")
def corpus_server() -> Iterator[ExportServer]:
    with ExportServer(CORPUS, api_secret=SECRET, project_timezone=CORPUS_TZ) as srv:
        yield srv


@pytest.fixture(scope="module")
def corpus_files(
    corpus_server: ExportServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pa.Table, Path]:
    root = tmp_path_factory.mktemp("corpus")
    path = write_export(CORPUS, root / "corpus.jsonl")
    table = rf.read_export_file(path, project_timezone=CORPUS_TZ, return_type="arrow")
    dataset = root / "dataset"
    rf.export_to_parquet(
        dataset,
        "2024-11-02",
        "2024-11-04",
        api_secret=SECRET,
        project_timezone=CORPUS_TZ,
        base_url=corpus_server.url,
    )
    return table, dataset


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expr=expressions("bool", depth=3))
def test_evaluator_table_server_and_dataset_select_the_same_events(
    expr: Any, corpus_server: ExportServer, corpus_files: tuple[pa.Table, Path]
) -> None:
    table, dataset = corpus_files
    text = format_where(expr)
    expected = set(_evaluator_ids(text, CORPUS, CORPUS_TZ))
    assert set(insert_ids(filter_table(table, text, project_timezone=CORPUS_TZ))) == expected, text
    served = rf.read_robotmia_export(
        "2024-11-02",
        "2024-11-04",
        where=text,
        api_secret=SECRET,
        project_timezone=CORPUS_TZ,
        base_url=corpus_server.url,
        return_type="arrow",
    )
    assert set(insert_ids(served)) == expected, text
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = rf.read_parquet_dataset(dataset, where=text, return_type="arrow")
    assert set(insert_ids(stored)) == expected, text
    mixed = folded_columns(text, table.schema, objects=False)
    for w in caught:  # a comparison of a mixed-type column warns, naming it
        assert issubclass(w.category, rf.RobotmiaWarning), w
        assert any(c in str(w.message) for c in mixed), w


def test_corpus_is_varied(corpus_files: tuple[pa.Table, Path]) -> None:
    """The corpus exercises every tier: folded text, objects, lists, times."""
    table, _ = corpus_files
    schema = table.schema
    assert schema.field("properties.m").metadata  # folded to text
    assert pa.types.is_list(schema.field("properties.l").type)
    assert table.column("time").null_count > 0
    assert any(e["properties"].get("time", 0) % 1 for e in CORPUS)


# ------------------------------------------------------------ the documented losses


def test_lossy_values_read_as_the_table_sees_them(tmp_path: Path) -> None:
    """A JSON null reads as missing, and a string that is the JSON text of a number
    in a mixed column reads as that number: the filter sees the table's values."""
    events = [
        {"event": "e", "properties": {"$insert_id": "a", "x": None, "m": "3"}},
        {"event": "e", "properties": {"$insert_id": "b", "m": 3}},
        {"event": "e", "properties": {"$insert_id": "c", "m": "three"}},
    ]
    table = rf.read_export_file(write_export(events, tmp_path / "e.jsonl"), project_timezone="UTC",
                                return_type="arrow")  # fmt: skip
    assert matches('defined(properties["x"])', events[0]) is True
    assert insert_ids(filter_table(table, 'defined(properties["x"])')) == []
    assert [
        e["properties"]["$insert_id"] for e in events if matches('properties["m"] == 3', e)
    ] == ["b"]
    assert insert_ids(filter_table(table, 'properties["m"] == 3')) == ["a", "b"]
    assert insert_ids(filter_table(table, 'properties["m"] == "three"')) == ["c"]
