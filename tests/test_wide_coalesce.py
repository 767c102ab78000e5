"""Compact reads join their pieces as they accumulate (``parse.Coalescer``): the
result is the same as from the pieces kept one by one, whatever kinds a key takes
from chunk to chunk, and the memory the budget counts is what is held.

Every export here is generated and read from a local file in small chunks, so that
each key's kind changes between the chunks that are joined.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames import _pipeline, _wide, parse

DAY0 = 1_704_067_200

#: Values whose kinds unify to every kind of the type policy: ints then floats
#: then strings for one key, lists of ints then floats, objects, bools, nulls.
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([1.5, 2.0, -0.25, 1e20, 3]),
    st.text(max_size=3),
    st.lists(st.integers(-3, 3), max_size=3),
    st.lists(st.sampled_from([0.5, 2.0, 1]), max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
)

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.dictionaries(st.sampled_from([f"k{i}" for i in range(6)]), VALUES, max_size=4),
        st.integers(0, 5),  # a few repeated insert ids: dedupe across joined pieces
    ),
    min_size=1,
    max_size=60,
)


def write_events(path: Path, events: list[tuple[str | None, dict[str, Any], int]]) -> Path:
    lines = []
    for i, (name, props, dup) in enumerate(events):
        p = {"time": DAY0 + i, "distinct_id": "u", "$insert_id": f"i{dup}", **props}
        lines.append(json.dumps({"event": name, "properties": p}))
    path.write_text("\n".join(lines) + "\n")
    return path


def kept_by(
    path: Path, shape: _wide.Shape, holder: parse.Coalescer, sparse: bool = False
) -> _pipeline.Parsed:
    """``path`` parsed in chunks of 3 rows (``sparse``: scanned sparse) through a
    read's collector, its pieces kept by ``holder``."""
    collect = _wide.Collector(shape)
    kinds: dict[str, parse.Kind] = {}
    for batch in parse.read_raw_batches(path, source=str(path), batch_rows=3, sparse=sparse):
        for piece in collect(batch):
            parse.merge_kinds(kinds, piece)
            holder.add(piece)
    return _pipeline.Parsed(path, str(path), holder.batches(), kinds)


def both_ways(path: Path, shape: _wide.Shape, **spec: Any) -> tuple[Any, Any]:
    """The result of ``shape`` from pieces joined two at a time, and kept one by one."""
    group = _wide._event_of if shape.split_by else _wide._one_group
    joined = kept_by(path, shape, parse.Coalescer(group, fanout=2))
    apart = kept_by(path, shape, parse.Coalescer())
    assert len(joined.batches) <= len(apart.batches)
    build = _wide.builder(shape)
    out = []
    for parsed in (joined, apart):
        table_spec = _pipeline.TableSpec(parsed.kinds, "UTC", None, **spec)
        out.append(build([parsed], table_spec))
    return out[0], out[1]


def scanned_both_ways(path: Path, shape: _wide.Shape) -> tuple[Any, Any]:
    """The result of ``shape`` from a sparse scan and from a scan laid out over the
    rows, pieces joined two at a time either way."""
    group = _wide._event_of if shape.split_by else _wide._one_group
    build = _wide.builder(shape)
    out = []
    for sparse in (True, False):
        parsed = kept_by(path, shape, parse.Coalescer(group, fanout=2), sparse=sparse)
        out.append(build([parsed], _pipeline.TableSpec(parsed.kinds, "UTC", None)))
    return out[0], out[1]


def assert_same_tables(got: dict[Any, pa.Table], want: dict[Any, pa.Table]) -> None:
    assert list(got) == list(want)
    for name, table in want.items():
        assert got[name].schema == table.schema, name
        assert got[name].equals(table), (name, got[name].to_pylist(), table.to_pylist())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, dedupe=st.booleans())
def test_split_pieces_joined_give_the_same_tables(
    tmp_path_factory: Any, events: list[Any], dedupe: bool
) -> None:
    path = write_events(tmp_path_factory.mktemp("split") / "x.jsonl", events)
    joined, apart = both_ways(path, _wide.Shape(split_by="event"), dedupe=dedupe)
    assert_same_tables(joined, apart)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, dedupe=st.booleans(), threshold=st.sampled_from([0.0, 0.3, 1.0]))
def test_sparse_pieces_joined_give_the_same_table(
    tmp_path_factory: Any, events: list[Any], dedupe: bool, threshold: float
) -> None:
    path = write_events(tmp_path_factory.mktemp("sparse") / "x.jsonl", events)
    shape = _wide.Shape(sparse="map", threshold=threshold)
    joined, apart = both_ways(path, shape, dedupe=dedupe)
    assert joined.schema == apart.schema
    assert joined.equals(apart), (joined.to_pylist(), apart.to_pylist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=EVENTS, threshold=st.sampled_from([0.0, 0.3, 1.0]))
def test_a_sparse_scan_gives_the_same_results(
    tmp_path_factory: Any, events: list[Any], threshold: float
) -> None:
    """Compact columns straight from the scanner (each key's values at its rows),
    split by event or folded into the map, give what columns laid out over every
    row give: keys shared by events, explicit nulls, kinds that change between
    chunks, and chunks the scanner declines (read in Python) among them."""
    path = write_events(tmp_path_factory.mktemp("scan") / "x.jsonl", events)
    sparse, dense = scanned_both_ways(path, _wide.Shape(split_by="event"))
    assert_same_tables(sparse, dense)
    one, other = scanned_both_ways(path, _wide.Shape(sparse="map", threshold=threshold))
    assert one.schema == other.schema
    assert one.equals(other), (one.to_pylist(), other.to_pylist())


def test_a_sparse_scan_splits_keys_shared_by_events(tmp_path: Path) -> None:
    """A key in every event (cut by event with one take per event), a key of one
    event only (its values kept as scanned), and a key in some of an event's rows
    (compact within the event's part) split as from a dense scan."""
    events: list[tuple[str | None, dict[str, Any], int]] = []
    for i in range(200):
        name = ["a", "b", "c", None][i % 4]
        props: dict[str, Any] = {"shared": i, "also": f"s{i}"}
        props[f"only_{name}"] = i * 0.5
        if i % 3 == 0:
            props["some"] = None if i % 2 else [i]
        events.append((name, props, i))
    path = write_events(tmp_path / "x.jsonl", events)
    batch = next(parse.read_raw_batches(path, source="x", sparse=True))
    assert all(col.rows is not None for col in batch.columns.values())
    parts = dict(parse.split_events(batch))
    dense = dict(parse.split_events(next(parse.read_raw_batches(path, source="x"))))
    assert list(parts) == list(dense) == ["a", "b", "c", None]
    for name, part in parts.items():
        want = dense[name]
        assert list(part.columns) == list(want.columns), name
        assert part.event.equals(want.event) and part.time.equals(want.time)
        for key, col in part.columns.items():
            assert col.dense(part.num_rows).array.equals(want.columns[key].array), (name, key)
    assert parts["a"].columns["only_a"].rows is None  # every row of its event: plain
    assert parts["a"].columns["some"].rows is not None  # some rows of its event: compact
    sparse, dense_tables = scanned_both_ways(path, _wide.Shape(split_by="event"))
    assert_same_tables(sparse, dense_tables)


def kinds_changing(n: int, mixed: bool = True) -> list[tuple[str | None, dict[str, Any], int]]:
    """``n`` events of two names whose keys change kind from chunk to chunk: an int,
    then a float, then a string; a list of ints, then of floats (without ``mixed``:
    of strings); a bool, then an object; and a key that mixes ints and floats within
    one list (read again from its lines when it widens: pieces that hold it are
    kept as they are)."""
    out: list[tuple[str | None, dict[str, Any], int]] = []
    for i in range(n):
        phase = (i // 7) % 4
        props: dict[str, Any] = {
            "n": [i, i + 0.5, f"s{i}", None][phase],
            "l": [[i], [i + 0.5], [1, 2], None][phase] if mixed else [f"s{i}"] * (i % 3),
            "b": [True, False, {"o": i}, None][phase],
        }
        if mixed and i % 11 == 0:
            props["mixed"] = [1, 2.5] if i % 22 else [3]
        if i % 3 == 0:
            props["rare"] = i
        out.append(("even" if i % 2 else "odd", props, i % 40))
    return out


def test_kinds_that_change_between_chunks_split_and_sparse(tmp_path: Path) -> None:
    path = write_events(tmp_path / "x.jsonl", kinds_changing(300))
    joined, apart = both_ways(path, _wide.Shape(split_by="event"), dedupe=True)
    assert_same_tables(joined, apart)
    assert joined["even"].schema.field("properties.n").type == pa.string()
    sparse, sparse_apart = both_ways(path, _wide.Shape(sparse="map", threshold=0.5))
    assert sparse.equals(sparse_apart)
    assert "properties" in sparse.column_names


def test_public_reads_match_the_flat_table(tmp_path: Path) -> None:
    """Through the public reader (pieces joined 16 at a time): each event's table is
    the flat table's rows of that event, with the columns it has values in."""
    path = write_events(tmp_path / "x.jsonl", kinds_changing(2000))
    flat = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    split = rf.read_export_file(path, project_timezone="UTC", return_type="arrow", split_by="event")
    for name, table in split.items():
        rows = flat.filter(pa.compute.equal(flat.column("event"), name))
        assert table.equals(rows.select(table.column_names)), name
        dropped = set(rows.column_names) - set(table.column_names)
        assert all(rows.column(c).null_count == rows.num_rows for c in dropped)


def test_held_bytes_and_arrays_follow_the_joins(tmp_path: Path) -> None:
    """The budget counts what is held after each join: the bytes and Arrow arrays of
    the pieces kept, not of every piece received."""
    path = write_events(tmp_path / "x.jsonl", kinds_changing(500, mixed=False))
    for shape in (_wide.Shape(split_by="event"), _wide.Shape(sparse="map")):
        collect = _wide.Collector(shape)
        holder = collect.holder()
        received = 0
        for batch in parse.read_raw_batches(path, source=str(path), batch_rows=2):
            for piece in collect(batch):
                received += 1
                holder.add(piece)
        kept = holder.batches()
        assert len(kept) < received / 4
        assert collect.held == sum(b.nbytes for b in kept)
        assert collect.arrays == sum(_wide._arrays(b) for b in kept)
