"""One measured method per child process: ``python _methods.py METHOD ARGS...``.

Prints one JSON line: wall seconds, peak RSS in MiB, rows (and columns).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from _harness import peak_rss_mib

#: Extra figures a method reports (merged into its JSON line).
EXTRA: dict[str, Any] = {}


def ours_arrow(path: str) -> tuple[int, int]:
    import robotmia_frames as rf

    t = rf.read_export_file(path, project_timezone="UTC", return_type="arrow")
    EXTRA["table_mib"] = t.nbytes / 2**20
    return t.num_rows, t.num_columns


def ours_python(path: str) -> tuple[int, int]:
    """Ours to Arrow with the C scanner off: the pure-Python engine."""
    import os

    os.environ["ROBOTMIA_FRAMES_NATIVE"] = "0"
    return ours_arrow(path)


def ours_arrow_baseline(path: str) -> tuple[int, int]:
    """``ours_arrow`` with the C scanner loaded from ``ROBOTMIA_BENCH_BASELINE_SO``
    (another build of ``_scan.c``, e.g. the previous release's), to compare builds."""
    import importlib.machinery
    import importlib.util
    import os

    so = os.environ["ROBOTMIA_BENCH_BASELINE_SO"]
    for name in ("robotmia_frames.parse._scan", "robotmia_frames._scan"):
        loader = importlib.machinery.ExtensionFileLoader(name, so)
        spec = importlib.util.spec_from_file_location(name, so, loader=loader)
        try:
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        except ImportError:
            continue
        loader.exec_module(module)
        sys.modules[name] = module
        break
    return ours_arrow(path)


def ours_pandas(path: str) -> tuple[int, int]:
    import robotmia_frames as rf

    df = rf.read_export_file(path, project_timezone="UTC")
    return len(df), len(df.columns)


def ours_projection(path: str) -> tuple[int, int]:
    import robotmia_frames as rf

    t = rf.read_export_file(
        path, project_timezone="UTC", return_type="arrow",
        columns=["event", "time", "properties.distinct_id", "properties.$os"],
    )  # fmt: skip
    return t.num_rows, t.num_columns


def pandas_json_normalize(path: str) -> tuple[int, int]:
    import pandas as pd

    raw = pd.read_json(path, lines=True, compression="gzip", dtype=False)
    df = pd.json_normalize(raw.to_dict("records"))
    return len(df), len(df.columns)


def pyarrow_json(path: str) -> tuple[int, int]:
    import pyarrow.json as pj

    t = pj.read_json(path).flatten()
    return t.num_rows, t.num_columns


def polars_ndjson(path: str) -> tuple[int, int]:
    import io

    import polars as pl

    with gzip.open(path, "rb") as fh:
        data = fh.read()
    df = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None).unnest("properties")
    return df.height, df.width


def duckdb_auto(path: str) -> tuple[int, int]:
    import duckdb

    t = duckdb.sql(
        f"SELECT event, properties.* FROM read_ndjson_auto('{path}')"
    ).fetch_arrow_table()
    return t.num_rows, t.num_columns


def duckdb_fixed(path: str) -> tuple[int, int]:
    """DuckDB plus json_extract_string on its JSON-typed (conflicting) columns."""
    return _duckdb_fixed(path, "")


def duckdb_fixed_full(path: str) -> tuple[int, int]:
    """duckdb_fixed with type inference over the whole file (sample_size=-1).

    What it takes for DuckDB to read an export whose types change after its
    default 20,480-row sample.
    """
    return _duckdb_fixed(path, ", sample_size=-1")


def _duckdb_fixed(path: str, options: str) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect()
    rel = con.sql(f"SELECT event, properties.* FROM read_ndjson_auto('{path}'{options})")
    cols = []
    for name, typ in zip(rel.columns, rel.types, strict=True):
        q = '"' + name.replace('"', '""') + '"'
        cols.append(f"json_extract_string({q}, '$') AS {q}" if str(typ) == "JSON" else q)
    t = con.sql(f"SELECT {', '.join(cols)} FROM rel").fetch_arrow_table()
    return t.num_rows, t.num_columns


def floor_zlib(path: str) -> tuple[int, int]:
    n = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += len(chunk)
    return n, 0


def floor_isal(path: str) -> tuple[int, int]:
    from isal import igzip

    n = 0
    with igzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += len(chunk)
    return n, 0


def floor_orjson(path: str) -> tuple[int, int]:
    import orjson

    n = 0
    with gzip.open(path, "rb") as fh:
        for line in fh:
            orjson.loads(line)
            n += 1
    return n, 0


def http_ours(url: str, start: str, end: str, secret: str) -> tuple[int, int]:
    import robotmia_frames as rf

    t = rf.read_robotmia_export(
        start, end, api_secret=secret, project_timezone="UTC", base_url=url, return_type="pandas"
    )
    return len(t), len(t.columns)


def parquet_export(url: str, start: str, end: str, secret: str, out: str) -> tuple[int, int]:
    import robotmia_frames as rf

    s = rf.export_to_parquet(
        out, start, end, api_secret=secret, project_timezone="UTC", base_url=url, progress=False
    )
    return s.rows, s.files


def storage_export(
    url: str,
    start: str,
    end: str,
    secret: str,
    out: str,
    table_format: str,
    options: str,
    window_days: str = "auto",
) -> tuple[int, int]:
    """export_to_parquet to any dataset location (``options``: storage_options JSON)."""
    import robotmia_frames as rf

    s = rf.export_to_parquet(
        out, start, end, api_secret=secret, project_timezone="UTC", base_url=url,
        progress=False, table_format=table_format, storage_options=json.loads(options) or None,
        window_days="auto" if window_days == "auto" else int(window_days),
    )  # fmt: skip
    return s.rows, s.files


def budget_export(
    url: str, start: str, end: str, secret: str, window_days: str, target: str, sink: str
) -> tuple[int, int]:
    """The whole range with ``window_days`` against a server enforcing the API budget
    (retries at once, no own rate limit: the server's virtual clock counts the hours):
    ``export_to_parquet`` into a temporary folder (``sink="parquet"``), or
    ``read_robotmia_export`` into one Arrow table (``sink="arrow"``)."""
    import tempfile

    import robotmia_frames as rf

    kw: dict[str, Any] = dict(
        api_secret=secret, project_timezone="UTC", base_url=url,
        window_days="auto" if window_days == "auto" else int(window_days),
        window_target_bytes=int(target), retry_backoff=0, max_retries=100_000, progress=False,
        rate_limit=rf.RateLimit(per_hour=None, per_second=None, concurrent=None),
    )  # fmt: skip
    if sink == "arrow":
        t = rf.read_robotmia_export(start, end, return_type="arrow", **kw)
        return t.num_rows, t.num_columns
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        s = rf.export_to_parquet(tmp, start, end, **kw)
    return s.rows, s.files


METHODS: dict[str, Callable[..., tuple[int, int]]] = {
    f.__name__: f
    for f in (
        ours_arrow, ours_arrow_baseline, ours_python, ours_pandas, ours_projection, pandas_json_normalize, pyarrow_json,
        polars_ndjson, duckdb_auto, duckdb_fixed, duckdb_fixed_full, floor_zlib, floor_isal, floor_orjson,
        http_ours, parquet_export, storage_export, budget_export,
    )
}  # fmt: skip


def main() -> None:
    method, *args = sys.argv[1:]
    t = time.perf_counter()
    rows, cols = METHODS[method](*args)
    wall = time.perf_counter() - t
    report: dict[str, Any] = {
        "method": method, "wall": wall, "rss_mib": peak_rss_mib(), "rows": rows, "cols": cols,
        **EXTRA,
    }  # fmt: skip
    print(json.dumps(report))


if __name__ == "__main__":
    main()
