"""Type checkers tell the results apart: mypy, over code that calls the public
functions and the Client's methods, infers a DataFrame, a polars DataFrame or a dict
of them from ``return_type`` and ``split_by`` (``pyarrow`` ships no types, so a
``pa.Table`` is not told apart here), and refuses a keyword no function takes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]

CODE = textwrap.dedent(
    """
    from typing_extensions import assert_type

    import pandas as pd
    import polars as pl

    import robotmia_frames as rf

    client = rf.Client()
    assert_type(rf.read_export_file("x.jsonl"), pd.DataFrame)
    assert_type(rf.read_export_file("x.jsonl", return_type="polars"), pl.DataFrame)
    assert_type(
        rf.read_export_file("x.jsonl", split_by="event", dedupe=True),
        dict[str | None, pd.DataFrame],
    )
    assert_type(rf.read_parquet_dataset("ds", from_date="2024-01-01"), pd.DataFrame)
    assert_type(
        rf.read_parquet_dataset("ds", return_type="polars", split_by="event"),
        dict[str | None, pl.DataFrame],
    )
    assert_type(client.read_export_file("x.jsonl", return_type="polars"), pl.DataFrame)
    assert_type(rf.read_robotmia_export("2024-01-01", "2024-01-02", api_secret="s"), pd.DataFrame)
    assert_type(
        client.read_robotmia_export("2024-01-01", "2024-01-02", return_type="polars"),
        pl.DataFrame,
    )
    assert_type(rf.read_robotmia_profiles(return_type="polars"), pl.DataFrame)
    assert_type(rf.export_to_parquet("ds", "2024-01-01", "2024-01-02"), rf.ExportSummary)
    rf.read_export_file("x.jsonl", no_such_keyword=1)  # the only line with errors
    """
)


def test_mypy_tells_the_results_apart(tmp_path: Path) -> None:
    module = tmp_path / "uses.py"
    module.write_text(CODE)
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",  # the package's entries, as `python -m mypy` left them
            str(ROOT / ".mypy_cache"),
            str(module),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    last = f"uses.py:{CODE.count(chr(10))}:"
    assert errors and all(last in line for line in errors), out + err
    assert any('"no_such_keyword"' in line for line in errors), out
    assert status == 1
