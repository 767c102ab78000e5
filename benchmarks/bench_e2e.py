"""End to end: HTTP to Arrow, pandas and Parquet against reading the same export file.

    python benchmarks/bench_e2e.py [--events 1000000] [--days 31] [--small-days 365]
                                   [--small-per-day 3000] [--repeat 1] [--no-delta]
                                   [--only PATH [PATH ...]]

A generated export (cached under ``bench-data/``, one gzip body per day) is served
by a minimal static server on 127.0.0.1 that answers a ``from_date..to_date``
request with the day bodies concatenated (a multi-member gzip, as robotmia sends),
so that almost all the CPU goes to the client. Each path runs in its own fresh
interpreter, one after another in the same run, and reports its wall time, its
peak RSS (``VmHWM``) and, for Arrow results, the table's size. The script prints
every path's ratio to the file read (of wall time, and of the process's CPU time,
which a loaded machine disturbs less), and the targets of the end-to-end issue:

- HTTP -> Arrow against the file read (target <= 1.15x);
- HTTP -> pandas against HTTP -> Arrow (<= 1.3x);
- pandas peak RSS against the Arrow table (<= 1.6x);
- HTTP -> Parquet against the file read (<= 2.0x, stretch 1.5x), as a Hive dataset and
  as a Delta Lake table (``table_format="delta"``; skipped when ``deltalake`` is not
  installed, or with ``--no-delta``);
- 365 small windows (one request a day) against one file of the same events (<= 1.3x).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
from _harness import DATA, ROOT, machine, median, peak_rss_mib, serve_days

SECRET = "bench-secret"
START = dt.date(2024, 1, 1)


# ------------------------------------------------------------------------- data


def day_bodies(events: int, days: int, tag: str) -> Path:
    """One gzip body per day (cached), ``events`` in all over ``days`` days."""
    per_day = -(-events // days)
    counts = [max(0, min(per_day, events - i * per_day)) for i in range(days)]
    return _harness.day_bodies(
        DATA / f"e2e-{tag}-{events}-{days}", START, counts, conflict_rate=0.0
    )


def whole_file(folder: Path) -> Path:
    """The day bodies concatenated: one multi-member gzip export file."""
    out = folder / "all.jsonl.gz"
    if not out.exists():
        with out.open("wb") as dst:
            for p in sorted(folder.glob("20*.jsonl.gz")):
                dst.write(p.read_bytes())
    return out


# ------------------------------------------------------------------ static server


# ------------------------------------------------------------------------- child


def child(method: str, args: list[str]) -> None:
    """One measured path in this fresh interpreter; prints one JSON line."""
    import robotmia_frames as rf

    # No memory budget: on a shared machine, the memory other processes take would
    # make a read refuse to start (max_memory="auto" counts what is available).
    local: dict[str, Any] = {"project_timezone": "UTC", "max_memory": None}
    remote: dict[str, Any] = {"api_secret": SECRET, "progress": False, **local}
    out: dict[str, Any] = {"method": method}
    t, cpu = time.perf_counter(), time.process_time()
    if method == "file_arrow":
        table = rf.read_export_file(args[0], return_type="arrow", **local)
        out["rows"], out["table_mib"] = table.num_rows, table.nbytes / 2**20
    elif method == "http_arrow":
        url, start, end = args
        table = rf.read_robotmia_export(start, end, base_url=url, return_type="arrow", **remote)
        out["rows"], out["table_mib"] = table.num_rows, table.nbytes / 2**20
    elif method == "http_pandas":
        url, start, end = args
        df = rf.read_robotmia_export(start, end, base_url=url, **remote)
        out["rows"] = len(df)
    elif method in ("http_parquet", "http_delta"):
        url, start, end, path = args
        extra = {"table_format": "delta"} if method == "http_delta" else {}
        summary = rf.export_to_parquet(path, start, end, base_url=url, **remote, **extra)
        out["rows"] = summary.rows
    elif method == "http_small_windows":
        url, start, end = args
        try:
            table = rf.read_robotmia_export(
                start, end, base_url=url, return_type="arrow", window_days=1, **remote
            )
        except TypeError:  # a version without window_days: one request a day already
            table = rf.read_robotmia_export(start, end, base_url=url, return_type="arrow", **remote)
        out["rows"] = table.num_rows
    else:
        raise SystemExit(f"unknown method {method}")
    out["wall"] = time.perf_counter() - t
    out["cpu"] = time.process_time() - cpu
    out["rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


def run(method: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, __file__, "--child", method, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        return {"method": method, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# -------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--small-days", type=int, default=365)
    ap.add_argument("--small-per-day", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path (median kept)")
    ap.add_argument("--no-delta", action="store_true", help="skip HTTP -> Delta Lake")
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="PATH",
        help="run only these paths (file_arrow, http_arrow, http_pandas, http_parquet,"
        " http_delta, small_one_file, http_small_windows)",
    )
    opts = ap.parse_args()

    big = day_bodies(opts.events, opts.days, "clean")
    small = day_bodies(opts.small_days * opts.small_per_day, opts.small_days, "small")
    big_file, small_file = whole_file(big), whole_file(small)
    json_mib = sum(len(gzip.decompress(p.read_bytes())) for p in [big_file]) / 2**20
    print(f"# {machine()}; load {os.getloadavg()[0]:.1f}")
    print(
        f"# {opts.events:,} events over {opts.days} days: {json_mib:,.0f} MiB of JSON, "
        f"{big_file.stat().st_size / 2**20:,.0f} MiB gzip"
    )
    srv, url = serve_days(big)
    small_srv, small_url = serve_days(small)
    end = (START + dt.timedelta(days=opts.days - 1)).isoformat()
    small_end = (START + dt.timedelta(days=opts.small_days - 1)).isoformat()
    tmp = Path(tempfile.mkdtemp(prefix="robotmia-bench-e2e-"))
    paths: list[tuple[str, tuple[str, ...]]] = [
        ("file_arrow", (str(big_file),)),
        ("http_arrow", (url, START.isoformat(), end)),
        ("http_pandas", (url, START.isoformat(), end)),
        ("http_parquet", (url, START.isoformat(), end, str(tmp / "hive"))),
        ("small_one_file", (str(small_file),)),
        ("http_small_windows", (small_url, START.isoformat(), small_end)),
    ]
    delta = not opts.no_delta and importlib.util.find_spec("deltalake") is not None
    if delta:
        paths.insert(4, ("http_delta", (url, START.isoformat(), end, str(tmp / "delta"))))
    if opts.only:
        paths = [p for p in paths if p[0] in opts.only]
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, args in paths:
            runs = []
            for _ in range(opts.repeat):
                shutil.rmtree(tmp / "hive", ignore_errors=True)
                shutil.rmtree(tmp / "delta", ignore_errors=True)
                method = "file_arrow" if name == "small_one_file" else name
                runs.append(run(method, *args))
            ok = [r for r in runs if "error" not in r]
            if not ok:
                results[name] = runs[0]
                print(f"{name:20s} failed: {runs[0]['error']}", flush=True)
                continue
            best = dict(ok[0])
            best["wall"] = median([r["wall"] for r in ok])
            best["rss_mib"] = median([r["rss_mib"] for r in ok])
            best["cpu"] = median([r["cpu"] for r in ok])
            results[name] = best
            print(
                f"{name:20s} {best['wall']:8.2f} s  cpu {best['cpu']:7.2f} s  "
                f"peak {best['rss_mib']:8,.0f} MiB  "
                f"rows {best.get('rows', 0):,}",
                flush=True,
            )
    finally:
        srv.shutdown()
        small_srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(a: str, b: str, key: str = "wall") -> str:
        if "error" in results.get(a, {"error": 1}) or "error" in results.get(b, {"error": 1}):
            return "n/a"
        return f"{results[a][key] / results[b][key]:.2f}x"

    table = results.get("http_arrow", {}).get("table_mib")
    pandas_vs_table = (
        f"{results['http_pandas']['rss_mib'] / table:.2f}x"
        if table and "rss_mib" in results.get("http_pandas", {})
        else "n/a"
    )
    print()
    print("| path | wall ratio | CPU ratio | target |")
    print("|---|---|---|---|")
    rows = [
        ("HTTP -> Arrow / file read", "http_arrow", "file_arrow", "<= 1.15x"),
        ("HTTP -> pandas / HTTP -> Arrow", "http_pandas", "http_arrow", "<= 1.3x"),
        ("HTTP -> Parquet / file read", "http_parquet", "file_arrow", "<= 2.0x"),
    ]
    if delta:
        rows.append(("HTTP -> Delta / file read", "http_delta", "file_arrow", "<= 2.0x"))
    rows.append(
        (
            f"{opts.small_days} small windows / one file",
            "http_small_windows",
            "small_one_file",
            "<= 1.3x",
        )
    )
    for label, a, b, target in rows:
        print(f"| {label} | {ratio(a, b)} | {ratio(a, b, 'cpu')} | {target} |")
    print(
        f"| pandas peak RSS / Arrow table ({table or 0:,.0f} MiB) | {pandas_vs_table} | - | <= 1.6x |"
    )
    print(
        "# CPU: the process's CPU time (all its threads); on a loaded machine it varies"
        " less than wall time"
    )


if __name__ == "__main__":
    main()
