"""Every example of ``docs/where.md`` runs, through every implementation.

The page holds one ```` ```json ```` block right after a ``<!-- where-sample
tz=<zone> -->`` comment (a JSON list of export lines, each with a ``$insert_id``) and
```` ```where-example ```` blocks::

    where: <expression>
    selects: <ids, comma-separated; empty for none>
    table-selects: <ids>        (optional: what a table can see, if it differs)

``selects`` is checked against the evaluator and the emulator (through
``read_robotmia_export``), ``table-selects`` (default: ``selects``) against
``filter_table`` on ``read_export_file``'s table and ``read_parquet_dataset``.
``read_export_file(..., where=...)`` gives ``selects`` when the expression reads a
mixed-type column (it then filters the raw lines), else ``table-selects``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer
from robotmia_frames.where import filter_table, folded_columns, matches

PAGE = Path(__file__).resolve().parent.parent / "docs" / "where.md"
TEXT = PAGE.read_text(encoding="utf-8")
SECRET = "where-docs-secret"

_SAMPLE = re.search(r"<!-- where-sample tz=(\S+) -->\n```json\n(.*?)\n```", TEXT, re.S)
assert _SAMPLE is not None, "docs/where.md has no where-sample block"
TZ = _SAMPLE.group(1)
EVENTS: list[dict[str, Any]] = json.loads(_SAMPLE.group(2))


def _examples() -> list[tuple[str, set[str], set[str]]]:
    out = []
    for block in re.findall(r"```where-example\n(.*?)\n```", TEXT, re.S):
        fields = dict(line.split(":", 1) for line in block.splitlines())
        fields = {k.strip(): v.strip() for k, v in fields.items()}

        def ids(value: str) -> set[str]:
            return {i.strip() for i in value.split(",") if i.strip()}

        selects = ids(fields["selects"])
        table = ids(fields["table-selects"]) if "table-selects" in fields else selects
        out.append((fields["where"], selects, table))
    return out


EXAMPLES = _examples()


def _ids(table: pa.Table) -> set[str]:
    if "properties.$insert_id" not in table.column_names:  # an empty export
        return set()
    return set(table.column("properties.$insert_id").to_pylist())


def _days() -> tuple[str, str]:
    days = [dt.date(1970, 1, 1) + dt.timedelta(seconds=e["properties"]["time"]) for e in EVENTS]
    return min(days).isoformat(), max(days).isoformat()


@pytest.fixture(scope="module")
def served() -> Iterator[ExportServer]:
    with ExportServer(EVENTS, api_secret=SECRET, project_timezone=TZ) as srv:
        yield srv


@pytest.fixture(scope="module")
def stored(
    tmp_path_factory: pytest.TempPathFactory, served: ExportServer
) -> tuple[pa.Table, Path, Path]:
    root = tmp_path_factory.mktemp("docs")
    path = root / "sample.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    table = rf.read_export_file(path, project_timezone=TZ, return_type="arrow")
    start, end = _days()
    rf.export_to_parquet(root / "ds", start, end, api_secret=SECRET, project_timezone=TZ,
                         base_url=served.url)  # fmt: skip
    return table, root / "ds", path


def test_the_page_has_enough_examples() -> None:
    assert len(EXAMPLES) >= 15
    assert len({w for w, _, _ in EXAMPLES}) == len(EXAMPLES)


@pytest.mark.parametrize(
    ("where", "selects", "table_selects"), EXAMPLES, ids=[w for w, _, _ in EXAMPLES]
)
def test_example(
    where: str,
    selects: set[str],
    table_selects: set[str],
    served: ExportServer,
    stored: tuple[pa.Table, Path, Path],
) -> None:
    table, dataset, path = stored
    evaluated = {
        e["properties"]["$insert_id"] for e in EVENTS if matches(where, e, project_timezone=TZ)
    }
    assert evaluated == selects
    assert _ids(filter_table(table, where, project_timezone=TZ)) == table_selects
    start, end = _days()
    got = rf.read_robotmia_export(start, end, where=where, api_secret=SECRET, project_timezone=TZ,
                                  base_url=served.url, return_type="arrow")  # fmt: skip
    assert _ids(got) == selects
    mixed = folded_columns(where, table.schema)
    read = rf.read_export_file(path, project_timezone=TZ, where=where, return_type="arrow")
    assert _ids(read) == (selects if mixed else table_selects)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _ids(rf.read_parquet_dataset(dataset, where=where, return_type="arrow")) == (
            table_selects
        )
    for w in caught:  # only a comparison of a mixed-type column warns, and names it
        assert issubclass(w.category, rf.RobotmiaWarning)
        assert any(c in str(w.message) for c in folded_columns(where, table.schema, objects=False))


def test_the_syntax_error_shown_on_the_page_is_the_real_one() -> None:
    with pytest.raises(rf.WhereSyntaxError) as info:
        rf.validate_where('properties["plan"] == pro')
    message = str(info.value)
    first = message.splitlines()[0]
    assert "unknown name 'pro'" in first and "at column 23" in first
    for line in message.splitlines()[1:]:
        assert f"# {line}" in TEXT
