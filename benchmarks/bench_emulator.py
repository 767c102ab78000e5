"""What the local export server costs: generated bodies against cached ones.

A client in its own subprocess downloads every day of a range, one request a day,
keeping the compressed bytes without decoding them, from three servers in this
process: one that generates and gzips every request (``compresslevel`` 1 and 6),
and one that serves the same bodies from its cache (``warm_cache`` before timing).
It prints the wall time of each download run and its ratio to the cached one.

    python benchmarks/bench_emulator.py --days 10 --per-day 30000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from robotmia_frames.emulator import ExportServer, GeneratorConfig

SECRET = "bench-secret"

CLIENT = r"""
import datetime as dt, json, sys, time, requests
url, secret, start, days = sys.argv[1], sys.argv[2], dt.date.fromisoformat(sys.argv[3]), int(sys.argv[4])
total = 0
t = time.perf_counter()
with requests.Session() as s:
    for i in range(days):
        d = (start + dt.timedelta(days=i)).isoformat()
        with s.get(url, params={"from_date": d, "to_date": d}, auth=(secret, ""), stream=True) as r:
            r.raise_for_status()
            for chunk in r.raw.stream(1 << 20, decode_content=False):
                total += len(chunk)
print(json.dumps({"wall": time.perf_counter() - t, "bytes": total}))
"""


def download(srv: ExportServer, start: str, days: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, srv.url, SECRET, start, str(days)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=30_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    start = "2024-01-01"
    config = GeneratorConfig(events_per_day=args.per_day, seed=42)
    print(f"# {args.days} days x {args.per_day:,} events, one request a day, best of {args.repeat}")
    rows: list[tuple[str, float, float]] = []
    for name, level, cached in (
        ("generated, gzip level 6", 6, False),
        ("generated, gzip level 1", 1, False),
        ("cached (level 6)", 6, True),
    ):
        with ExportServer(api_secret=SECRET, generate=config, compresslevel=level) as srv:
            if cached:
                t = time.perf_counter()
                size = srv.warm_cache(start, f"2024-01-{args.days:02d}")
                print(f"# warm_cache: {size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")
            runs = [download(srv, start, args.days) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall"])
        rows.append((name, best["wall"], best["bytes"]))
    base = rows[-1][1]
    print(f"{'server':<26} {'wall s':>8} {'MB':>8} {'MB/s':>8} {'x cached':>9}")
    for name, wall, size in rows:
        print(
            f"{name:<26} {wall:8.2f} {size / 1e6:8.1f} {size / 1e6 / wall:8.1f} {wall / base:9.1f}"
        )


if __name__ == "__main__":
    main()
