"""Wide projects: result size and peak memory of the three shapes beside DuckDB.

A wide export: ``keys`` distinct property keys, 30 per event name (``keys / 30``
event names), plus ``distinct_id`` and ``$insert_id`` on every event. Each method
reads the same ``.jsonl.gz`` in its own fresh subprocess, which reports the size
of its result in memory and its own peak RSS (``VmHWM``):

- ``flat``: ``read_export_file`` (the default flat table), Arrow and pandas, with
  the default ``max_memory`` (half the memory available): a result that would not
  fit fails early with ``MemoryBudgetError``, which the table shows;
- ``split``: ``split_by="event"``, Arrow and pandas;
- ``sparse``: ``sparse_columns="map"`` (default ``sparse_threshold``), Arrow and pandas;
- ``duckdb``: ``read_ndjson_auto`` (past 200 keys it infers ``MAP(VARCHAR, JSON)``)
  to an Arrow table;
- ``parquet``: ``export_to_parquet`` of the file's day, served as the export body by
  a static HTTP server on loopback (in the parent), partitioned by date
  (``parquet_date``) or by date and event (``parquet_event``); "result" is then the
  dataset's size on disk. The target: peak RSS under 1 GB at 2,000 keys (the
  note says whether it is met).

Run: ``python benchmarks/bench_wide.py`` (every size), or e.g.
``python benchmarks/bench_wide.py --events 100000 --keys 2000``. Files are cached
in ``bench-data/``. The machine's load average is printed before and after each
method (the seconds depend on it; the sizes and memory do not).
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _harness import DATA, peak_rss_mib, run_child, serve_export

METHODS = [
    "flat_arrow",
    "flat_pandas",
    "split_arrow",
    "split_pandas",
    "sparse_arrow",
    "sparse_pandas",
    "duckdb_auto",
    "parquet_date",
    "parquet_event",
]


def wide_file(events: int, keys: int, per_event: int = 30) -> Path:
    """A generated wide export (cached), and its JSON size next to it."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"wide-{events}-{keys}.jsonl.gz"
    if path.exists():
        return path
    import orjson

    rnd = random.Random(7)
    names = max(1, keys // per_event)
    t = time.perf_counter()
    size = 0
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=1) as fh:
        lines = []
        for i in range(events):
            e = rnd.randrange(names)
            props: dict[str, Any] = {
                "time": 1_704_067_200 + i % 86_400,
                "distinct_id": f"user-{rnd.randrange(100_000)}",
                "$insert_id": f"{i:016x}",
            }
            for j in range(per_event):
                k = e * per_event + j
                m = k % 4
                props[f"prop_{k}"] = (
                    rnd.randrange(100_000)
                    if m == 0
                    else round(rnd.random() * 1000, 2)
                    if m == 1
                    else f"value-{rnd.randrange(500)}"
                    if m == 2
                    else bool(rnd.randrange(2))
                )
            lines.append(orjson.dumps({"event": f"Event {e}", "properties": props}) + b"\n")
            if len(lines) == 10_000:
                chunk = b"".join(lines)
                size += len(chunk)
                fh.write(chunk)
                lines = []
        chunk = b"".join(lines)
        size += len(chunk)
        fh.write(chunk)
    tmp.rename(path)
    path.with_suffix(".size").write_text(str(size))
    print(
        f"# generated {path.name}: {size / 1e6:,.0f} MB of JSON in {time.perf_counter() - t:.0f} s"
    )
    return path


# ------------------------------------------------------------------ static server


def serve(path: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``path`` (one day's gzip body) as the answer to any export request."""

    def blocks() -> Iterator[bytes]:
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                yield block

    return serve_export(lambda _query: (path.stat().st_size, blocks()))


# ------------------------------------------------------------------ child side


def _peak() -> int:
    """This process's peak RSS in bytes."""
    return round(peak_rss_mib() * 1024) * 1024


def _size(result: Any) -> int:
    import pandas as pd

    if isinstance(result, dict):
        return sum(_size(v) for v in result.values())
    if isinstance(result, pd.DataFrame):
        return int(result.memory_usage(deep=True).sum())
    return int(result.nbytes)


def child(method: str, path: str) -> None:
    import robotmia_frames as rf

    t = time.perf_counter()
    out: dict[str, Any] = {"method": method}
    try:
        if method.startswith("parquet_"):
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                summary = rf.export_to_parquet(
                    tmp,
                    "2024-01-01",
                    "2024-01-01",
                    api_secret="bench",
                    project_timezone="UTC",
                    base_url=path,
                    progress=False,
                    partition_by=("date", "event") if method == "parquet_event" else ("date",),
                )
                out["bytes"] = summary.bytes
                out["files"] = summary.files
            out["seconds"] = time.perf_counter() - t
            out["peak"] = _peak()
            print(json.dumps(out))
            return
        if method == "duckdb_auto":
            import duckdb

            result: Any = duckdb.sql(
                f"SELECT * FROM read_ndjson_auto('{path}')"
            ).fetch_arrow_table()
        else:
            shape, kind = method.split("_")
            options: dict[str, Any] = {"split": {"split_by": "event"}, "sparse": {}}.get(shape, {})
            if shape == "sparse":
                options = {"sparse_columns": "map"}
            result = rf.read_export_file(
                path,
                project_timezone="UTC",
                return_type="arrow" if kind == "arrow" else "pandas",
                **options,
            )
        out["bytes"] = _size(result)
        out["tables"] = len(result) if isinstance(result, dict) else 1
    except rf.MemoryBudgetError as exc:
        out["error"] = f"MemoryBudgetError (estimate {exc.estimate / 1e9:.1f} GB)"
    out["seconds"] = time.perf_counter() - t
    out["peak"] = _peak()
    print(json.dumps(out))


# ----------------------------------------------------------------- parent side


def run(method: str, path: Path) -> dict[str, Any]:
    """One method in its own fresh process (``bench_wide.py METHOD PATH``)."""
    srv = None
    target = str(path)
    if method.startswith("parquet_"):
        srv, target = serve(path)
    try:
        report = run_child(method, target, script=Path(__file__))
    finally:
        if srv is not None:
            srv.shutdown()
            srv.server_close()
    if "error" in report and "seconds" not in report:  # the child failed
        report["error"] = f"failed: {str(report['error'])[:60]}"
    return report


#: The peak RSS that ``export_to_parquet`` of a wide day stays under (issue 20).
PARQUET_TARGET = 1 << 30


def load() -> str:
    """The 1-minute load average (the machine is shared)."""
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--keys", type=int, nargs="*", default=[200, 2_000, 10_000])
    parser.add_argument("--methods", nargs="*", default=METHODS)
    if len(sys.argv) == 3 and sys.argv[1] in METHODS:  # a child: METHOD PATH
        child(*sys.argv[1:])
        return
    args = parser.parse_args()
    from robotmia_frames._memory import available_memory

    avail = available_memory() or 0
    print(
        f"# {os.cpu_count()} cores, {avail / 1e9:.1f} GB available "
        f"(default max_memory: half of it); peak RSS = the child's VmHWM"
    )
    print(
        f"{'events':>9} {'keys':>6} {'method':<14} {'result':>10} {'x JSON':>7} "
        f"{'peak RSS':>9} {'seconds':>8} {'load':>11}  note"
    )
    for events in args.events:
        for keys in args.keys:
            path = wide_file(events, keys)
            json_size = int(path.with_suffix(".size").read_text())
            for method in args.methods:
                before = load()
                r = run(method, path)
                result = r.get("bytes")
                note = r.get("error", "")
                if r.get("tables", 1) > 1:
                    note = f"{r['tables']} tables"
                if "files" in r:
                    met = "under" if r.get("peak", 0) < PARQUET_TARGET else "OVER"
                    note = f"{r['files']} files on disk; peak {met} 1 GiB"
                print(
                    f"{events:>9,} {keys:>6,} {method:<14} "
                    f"{'-' if result is None else f'{result / 1e6:,.0f} MB':>10} "
                    f"{'-' if result is None else f'{result / json_size:.1f}x':>7} "
                    f"{r.get('peak', 0) / 1e9:>7.2f} GB {r.get('seconds', float('nan')):>8.1f} "
                    f"{before + '-' + load():>11}  {note}",
                    flush=True,
                )
            print(f"# JSON: {json_size / 1e6:,.0f} MB ({events:,} events, {keys:,} keys)")


if __name__ == "__main__":
    main()
