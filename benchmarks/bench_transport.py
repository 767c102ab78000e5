"""Transport at scale: a month of day windows at concurrency 1 and at concurrency 4.

The emulator (in this process) generates ``--days`` days of ``--events-per-day``
events lazily, day by day, as they are requested, and streams them gzip'd over
loopback HTTP. Each run is :func:`robotmia_frames.export_to_parquet` in its own
fresh subprocess, with a ``RateLimit`` that switches every limit off (loopback is
unthrottled by default anyway), so the only difference between the runs is
``concurrency=``. Both must write the same number of rows (checked).

Printed per run: the wall time measured in the child, the CPU seconds of the
child (download + parse + Parquet) and of this process (the emulator: generate,
serialize, gzip) during the run, and the peak number of requests the server saw
in flight at once (from its request log). On a machine with few cores the work
is CPU-bound on both sides, so the ratio says more about the cores than about
the network; the CPU columns show where the time went. Run::

    python benchmarks/bench_transport.py                       # 30 days x 30,000 events
    python benchmarks/bench_transport.py --days 5 --events-per-day 5000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

SECRET = "bench-transport-secret"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FROM = dt.date(2024, 1, 1)


def child(url: str, days: int, concurrency: int, out: str) -> None:
    """One measured export; prints one JSON line."""
    import robotmia_frames as rf
    from robotmia_frames.transport import RateLimit

    to = FROM + dt.timedelta(days=days - 1)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    summary = rf.export_to_parquet(
        out,
        FROM,
        to,
        api_secret=SECRET,
        project_timezone="UTC",
        base_url=url,
        concurrency=concurrency,
        rate_limit=RateLimit(per_hour=None, per_second=None, concurrent=None),
        progress=False,
    )
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "concurrency": concurrency,
                "seconds": seconds,
                "cpu_seconds": time.process_time() - cpu0,
                "rows": summary.rows,
                "days": summary.days,
                "files": summary.files,
                "parquet_bytes": summary.bytes,
            }
        )
    )


def _peak_in_flight(records: list[Any]) -> int:
    edges = sorted([(r.started, 1) for r in records] + [(r.ended, -1) for r in records])
    peak = cur = 0
    for _, step in edges:
        cur += step
        peak = max(peak, cur)
    return peak


def run_child(srv: Any, days: int, concurrency: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    srv.clear_requests()
    server_cpu0 = time.process_time()  # this process: the emulator's threads
    with tempfile.TemporaryDirectory(prefix="bench-transport-") as out:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--url",
                srv.url,
                "--days",
                str(days),
                "--concurrency",
                str(concurrency),
                "--out",
                out,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    records = [r for r in srv.requests if r.path.startswith("/api/2.0/export")]
    result["server_cpu_seconds"] = time.process_time() - server_cpu0
    result["requests"] = len(records)
    result["wire_mb"] = sum(r.bytes_sent for r in records) / 1e6
    result["peak_in_flight"] = _peak_in_flight(records)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-day", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=4, help="the parallel run's")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.days, args.concurrency, args.out)
        return

    sys.path.insert(0, ROOT)
    from robotmia_frames.emulator import ExportServer, GeneratorConfig

    config = GeneratorConfig(
        events_per_day=args.events_per_day,
        seed=7,
        from_date=FROM,
        to_date=FROM + dt.timedelta(days=args.days - 1),
    )
    print(
        f"{args.days} days x {args.events_per_day:,} events, generated lazily by the emulator "
        f"in this process; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        "each run export_to_parquet in a fresh subprocess, rate limit off"
    )
    print(
        f"{'concurrency':>11}{'wall s':>9}{'client CPU s':>14}{'server CPU s':>14}"
        f"{'peak in flight':>16}{'requests':>10}{'wire MB':>9}{'rows':>11}"
    )
    results = []
    with ExportServer(api_secret=SECRET, project_timezone="UTC", generate=config) as srv:
        for concurrency in (1, args.concurrency):
            load0 = os.getloadavg()[0]
            r = run_child(srv, args.days, concurrency)
            r["load"] = (load0, os.getloadavg()[0])
            results.append(r)
            print(
                f"{concurrency:>11}{r['seconds']:>9.2f}{r['cpu_seconds']:>14.1f}"
                f"{r['server_cpu_seconds']:>14.1f}{r['peak_in_flight']:>16}{r['requests']:>10}"
                f"{r['wire_mb']:>9.1f}{r['rows']:>11,}",
                flush=True,
            )
    serial, parallel = results
    expected = args.days * args.events_per_day
    assert serial["rows"] == parallel["rows"] == expected, (serial["rows"], parallel["rows"])
    ratio = serial["seconds"] / parallel["seconds"]
    print(
        f"wall time concurrency 1 / concurrency {args.concurrency}: {ratio:.2f}x "
        f"({serial['seconds']:.1f} s -> {parallel['seconds']:.1f} s)"
    )
    busy = (parallel["cpu_seconds"] + parallel["server_cpu_seconds"]) / parallel["seconds"]
    print(
        f"at concurrency {args.concurrency}: client + server CPU = {busy:.2f} cores busy on "
        f"average out of {os.cpu_count()}"
    )
    loads = ", ".join(f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}" for r in results)
    print(f"1-min load average before -> after each run (other work on the machine): {loads}")


if __name__ == "__main__":
    main()
