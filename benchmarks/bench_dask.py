"""robotmia_frames.dask.export_to_parquet: 2 local workers against 1, in the same run.

A 20-day export (30,000 generated events a day by default) from the emulator on
loopback into a Parquet dataset, on a LocalCluster of 1 worker process and of 2
(one thread each), each run ``--repeat`` times (the median is shown); the
single-machine ``export_to_parquet`` runs too, for reference. Cluster start-up is
not timed.

The emulator runs in this process, on the same CPUs as the workers. By default each
day's body is generated and gzipped once, before timing, and the emulator serves
those bytes as they are (its ``raw_body`` knob, matched per day), so that what is
measured is the client side: download, verify, parse twice, write. With
``--generate`` the emulator generates every request instead (its own CPU cost then
competes with the workers').

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --days 10 --per-day 10000 --generate
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer, Fault, GeneratorConfig, iter_generated_events

SECRET = "bench-secret"


def _body(day: dt.date, per_day: int) -> bytes:
    """One day's export body: gzip (level 1) JSONL, as the emulator would send it."""
    lines = b"".join(
        orjson.dumps(e) + b"\n"
        for e in iter_generated_events(day, day, events_per_day=per_day, seed=42)
    )
    return gzip.compress(lines, compresslevel=1, mtime=0)


def _serves(day: str) -> Callable[[dict[str, str]], bool]:
    return lambda params: params.get("from_date") == day


def main() -> None:
    import distributed

    import robotmia_frames.dask as rfd

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--per-day", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--generate", action="store_true", help="generate every request")
    args = ap.parse_args()
    start = dt.date(2024, 1, 1)
    days = [start + dt.timedelta(days=i) for i in range(args.days)]
    end = days[-1]
    print(f"# {machine()}; dask {distributed.__version__}")
    print(f"# {args.days} days x {args.per_day:,} events; emulator on loopback, ", end="")
    if args.generate:
        print("generating every request (gzip level 1)")
        srv = ExportServer(
            api_secret=SECRET,
            generate=GeneratorConfig(events_per_day=args.per_day, seed=42),
            compresslevel=1,
        )
    else:
        t = time.perf_counter()
        bodies = {d.isoformat(): _body(d, args.per_day) for d in days}
        size = sum(map(len, bodies.values())) / 2**20
        print(f"serving bodies built once ({size:,.0f} MiB gzip, {time.perf_counter() - t:.0f} s)")
        srv = ExportServer(api_secret=SECRET)
        for day, body in bodies.items():
            srv.add_fault(
                Fault(
                    raw_body=body,
                    content_encoding="gzip",
                    match=_serves(day),
                    times=1000,
                )
            )
    walls: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    work = Path(tempfile.mkdtemp(prefix="robotmia-bench-dask-"))
    kw: dict[str, Any] = {"api_secret": SECRET, "project_timezone": "UTC"}
    try:
        with srv:
            kw["base_url"] = srv.url
            for workers in (1, 2):
                label = f"dask, {workers} worker{'s' if workers > 1 else ''}"
                with (
                    distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                    ) as cluster,
                    distributed.Client(cluster) as client,
                ):
                    client.wait_for_workers(workers)
                    for i in range(args.repeat):
                        t = time.perf_counter()
                        summary = rfd.export_to_parquet(
                            work / f"w{workers}-{i}", start, end, client=client, **kw
                        )
                        walls.setdefault(label, []).append(time.perf_counter() - t)
                        rows[label] = summary.rows
            label = "single machine (reference)"
            t = time.perf_counter()
            summary = rf.export_to_parquet(work / "single", start, end, **kw)
            walls[label], rows[label] = [time.perf_counter() - t], summary.rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'run':<30}{'wall s':>9}{'runs':>18}{'rows':>11}{'rows/s':>10}")
    for label, runs in walls.items():
        wall = statistics.median(runs)
        shown = ", ".join(f"{w:.1f}" for w in runs)
        print(f"{label:<30}{wall:>9.1f}{shown:>18}{rows[label]:>11,}{rows[label] / wall:>10,.0f}")
    one = statistics.median(walls["dask, 1 worker"])
    two = statistics.median(walls["dask, 2 workers"])
    print(f"speed-up, 2 workers vs 1: {one / two:.2f}x (on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
