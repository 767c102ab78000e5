"""read_robotmia_export end to end over HTTP against pandas on the same bytes (issue 2).

The emulator serves a generated 1,000,000-event export (held in memory, served as
gzip JSONL on loopback). ``read_robotmia_export`` loads the whole range through
the real HTTP path (day windows, verification, parse, time, pandas); the baseline
is ``pandas.read_json(lines=True)`` + ``json_normalize`` on the same bytes, already
downloaded. Each runs in its own subprocess, which reports its wall time and peak RSS.

    python benchmarks/bench_read.py                 # 1,000,000 events
    python benchmarks/bench_read.py --events 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DATA, machine, run_child

from robotmia_frames.emulator import ExportServer, iter_generated_events

SECRET = "bench-secret"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=10)
    args = ap.parse_args()
    per_day = -(-args.events // args.days)
    start, end = "2024-01-01", f"2024-01-{args.days:02d}"
    t = time.perf_counter()
    events = list(iter_generated_events(start, end, events_per_day=per_day, seed=42))
    print(f"# {machine()}; {len(events):,} events generated in {time.perf_counter() - t:.1f} s")
    DATA.mkdir(parents=True, exist_ok=True)
    body = DATA / f"http-{args.events}.jsonl.gz"
    with ExportServer(events, api_secret=SECRET, compresslevel=1) as srv:
        with (
            requests.get(
                srv.url,
                params={"from_date": start, "to_date": end},
                auth=(SECRET, ""),
                stream=True,
                timeout=600,
            ) as r,
            open(body, "wb") as fh,
        ):
            r.raise_for_status()
            for chunk in r.raw.stream(1 << 20, decode_content=False):
                fh.write(chunk)
        print(f"# the same bytes saved for the baseline: {body.stat().st_size / 1e6:.0f} MB gzip")
        ours = run_child("http_ours", srv.url, start, end, SECRET)
    base = run_child("pandas_json_normalize", str(body))
    print(f"{'method':<48}{'wall s':>9}{'peak RSS MiB':>14}{'rows':>11}{'cols':>6}")
    rows = [
        ("read_robotmia_export over HTTP (pandas result)", ours),
        ("pandas.read_json(lines=True) + json_normalize", base),
    ]
    for name, rep in rows:
        if "wall" not in rep:
            print(f"{name:<48} failed: {rep.get('error')}")
            continue
        print(
            f"{name:<48}{rep['wall']:>9.1f}{rep['rss_mib']:>14,.0f}{rep['rows']:>11,}{rep['cols']:>6}"
        )
    if "wall" in ours and "wall" in base:
        print(
            f"ratio: ours is {base['wall'] / ours['wall']:.1f}x faster and uses "
            f"{base['rss_mib'] / ours['rss_mib']:.1f}x less peak memory (ours includes the download)"
        )


if __name__ == "__main__":
    main()
