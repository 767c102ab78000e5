"""design.md §3 "Columns": exactly ``event``, ``time`` and ``properties.<key>``, each
property named as-is; options may add more, and never a second column of a name
the data already has.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import robotmia_frames as rf


def _write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_contract_properties_named_as_is(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text(
        '{"event":"e","properties":{"time":1,"a":1,"a":2,"":3,"properties.x":4,"x":5,'
        '"event":6,"time ":7,"\\u00e9":8}}\n',
        encoding="utf-8",
    )
    table = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert table.column_names == [
        "event",
        "time",
        "properties.a",
        "properties.",
        "properties.properties.x",
        "properties.x",
        "properties.event",
        "properties.time ",
        "properties.é",
    ]
    assert table.to_pylist()[0]["properties.a"] == 2  # a repeated key: the last one


def test_contract_raw_column_of_a_pinned_type_never_duplicates_a_property(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path / "prices.jsonl",
        [
            {"event": "e", "properties": {"time": 1, "Price": "n/a", "Price__raw": "mine"}},
            {"event": "e", "properties": {"time": 2, "Price": 3, "Price__raw": "also mine"}},
        ],
    )
    with pytest.raises(rf.TypeMismatchError, match=r"properties\.Price__raw") as caught:
        rf.read_export_file(
            path,
            project_timezone="UTC",
            dtype={"properties.Price": "float64"},
            on_type_mismatch="null",
        )
    assert caught.value.column == "properties.Price"
    with pytest.warns(rf.RobotmiaWarning, match="stays text"):
        kept = rf.read_export_file(
            path,
            project_timezone="UTC",
            dtype={"properties.Price": "float64"},
            on_type_mismatch="text",
            return_type="arrow",
        )
    assert kept.column_names == ["event", "time", "properties.Price", "properties.Price__raw"]
    assert kept.column("properties.Price__raw").to_pylist() == ["mine", "also mine"]
