"""export_to_parquet at 1M and 5M events: peak memory must stay flat (issue 3).

The emulator generates each requested day lazily (50,000 events a day by default),
so the server never holds the export; the client runs in its own subprocess, which
reports its wall time and peak RSS. Prints rows/s written and the 5M/1M RSS ratio.

    python benchmarks/bench_parquet.py
    python benchmarks/bench_parquet.py --sizes 200000,1000000 --per-day 20000
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine, run_child

from robotmia_frames.emulator import ExportServer, GeneratorConfig

SECRET = "bench-secret"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,5000000")
    ap.add_argument("--per-day", type=int, default=50_000)
    args = ap.parse_args()
    print(f"# {machine()}; {args.per_day:,} events per day, generated lazily by the emulator")
    print(f"{'events':>10}{'days':>6}{'wall s':>9}{'rows/s':>10}{'peak RSS MiB':>14}{'files':>7}")
    peaks = []
    for n in (int(x) for x in args.sizes.split(",")):
        days = -(-n // args.per_day)
        start = dt.date(2024, 1, 1)
        end = start + dt.timedelta(days=days - 1)
        gen = GeneratorConfig(events_per_day=args.per_day, seed=42, from_date=start, to_date=end)
        out = Path(tempfile.mkdtemp(prefix="robotmia-bench-")) / "ds"
        with ExportServer(api_secret=SECRET, generate=gen, compresslevel=1) as srv:
            rep = run_child(
                "parquet_export", srv.url, start.isoformat(), end.isoformat(), SECRET, str(out)
            )
        shutil.rmtree(out.parent, ignore_errors=True)
        if "wall" not in rep:
            print(f"{n:>10,} failed: {rep.get('error')}")
            continue
        peaks.append(rep["rss_mib"])
        print(
            f"{rep['rows']:>10,}{days:>6}{rep['wall']:>9.1f}{rep['rows'] / rep['wall']:>10,.0f}"
            f"{rep['rss_mib']:>14,.0f}{rep['cols']:>7}"
        )
    if len(peaks) >= 2:
        print(f"peak RSS ratio, largest / smallest: {peaks[-1] / peaks[0]:.2f}x")


if __name__ == "__main__":
    main()
