"""The parse engine against the usual ways to load an export (issue 4).

Generates 1,000,000-event clean and messy exports with the emulator's generator,
then times, interleaved and repeated, each method in its own subprocess: our engine
(to Arrow, to pandas, with a 4-column projection, and with the C scanner switched
off), pandas ``read_json`` +
``json_normalize``, ``pyarrow.json``, polars, DuckDB (as is, and with the
``json_extract_string`` fix for its JSON-typed columns), and the decompression and
orjson floors. Prints median wall time, events/s, MB/s of JSON, peak RSS and the
ratios against ours (to Arrow).

    python benchmarks/bench_parse.py                      # 1M events, 3 repeats
    python benchmarks/bench_parse.py --events 100000 --repeat 1
    python benchmarks/bench_parse.py --scaling 100000,1000000,3000000
    python benchmarks/bench_parse.py --clean-only --methods ours_arrow,duckdb_fixed \
        --baseline-so /tmp/old/_scan.cpython-311-x86_64-linux-gnu.so

``--baseline-so`` adds ``ours_arrow_baseline``: the same run with another build of
the C scanner (loaded by path), to check a change to ``_scan.c`` keeps its speed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import export_file, json_bytes, machine, median, run_child

FAST = [
    "ours_arrow", "ours_pandas", "ours_projection", "ours_python", "pyarrow_json", "polars_ndjson",
    "duckdb_auto", "duckdb_fixed", "floor_zlib", "floor_isal", "floor_orjson",
]  # fmt: skip
SLOW = ["pandas_json_normalize"]


def bench(
    path: Path, events: int, repeat: int, slow_repeat: int, methods: list[str] | None = None
) -> None:
    mb = json_bytes(path) / 1e6
    results: dict[str, list[dict]] = {}
    fast = [m for m in FAST if methods is None or m in methods]
    slow = [m for m in SLOW if methods is None or m in methods]
    if "ours_arrow" not in fast:
        fast.insert(0, "ours_arrow")  # the reference of every ratio
    if os.environ.get("ROBOTMIA_BENCH_BASELINE_SO"):
        fast.insert(1, "ours_arrow_baseline")
    for r in range(repeat):
        order = fast if r % 2 == 0 else fast[::-1]  # interleave to spread machine drift
        for m in order + (slow if r < slow_repeat else []):
            rep = run_child(m, str(path))
            results.setdefault(m, []).append(rep)
    ours = median([x["wall"] for x in results["ours_arrow"] if "wall" in x])
    ours_rss = median([x["rss_mib"] for x in results["ours_arrow"] if "rss_mib" in x])
    print(f"\n## {path.name}: {events:,} events, {mb:,.0f} MB of JSON")
    print(
        f"{'method':<24}{'wall s':>9}{'events/s':>12}{'MB/s':>8}{'peak MiB':>10}"
        f"{'ours faster by':>16}{'RSS vs ours':>13}  notes"
    )
    for m, reps in results.items():
        ok = [x for x in reps if "wall" in x]
        if not ok:
            print(f"{m:<24}{'failed':>9}  {reps[0].get('error', '')[:90]}")
            continue
        wall = median([x["wall"] for x in ok])
        rss = median([x["rss_mib"] for x in ok])
        rows = ok[0]["rows"] if not m.startswith("floor_zlib") else events
        note = f"{len(ok)} run(s), {ok[0]['cols']} cols" if ok[0]["cols"] else f"{len(ok)} run(s)"
        print(
            f"{m:<24}{wall:>9.2f}{events / wall:>12,.0f}{mb / wall:>8.0f}{rss:>10,.0f}"
            f"{wall / ours:>15.2f}x{rss / ours_rss:>12.2f}x  {note}"
        )
        del rows
    _targets(results, ours, ours_rss)


def _targets(results: dict[str, list[dict]], ours: float, ours_rss: float) -> None:
    """Issue 4's targets, as ratios from this run."""

    def wall(m: str) -> float | None:
        ok = [x["wall"] for x in results.get(m, []) if "wall" in x]
        return median(ok) if ok else None

    def rss(m: str) -> float | None:
        ok = [x["rss_mib"] for x in results.get(m, []) if "rss_mib" in x]
        return median(ok) if ok else None

    print("targets (issue 4):")
    table = [x["table_mib"] for x in results.get("ours_arrow", []) if "table_mib" in x]
    if table:
        print(
            f"  ours to Arrow: peak RSS {ours_rss:,.0f} MiB for a {median(table):,.0f} MiB table: "
            f"{ours_rss / median(table):.2f}x (target < 1.5x)"
        )
    duck = wall("duckdb_fixed")
    if duck is None:
        print("  DuckDB (fixed) failed on this file: no speed ratio")
    else:
        print(f"  speed vs DuckDB (fixed): {duck / ours:.2f}x  (target >= 0.8, goal 2.0)")
    pd_wall, pd_rss = wall("pandas_json_normalize"), rss("pandas_json_normalize")
    if pd_wall is not None and pd_rss is not None:
        print(
            f"  vs pandas: {pd_wall / ours:.1f}x faster (target >= 15), "
            f"{pd_rss / ours_rss:.1f}x less memory (target >= 5)"
        )
    base = wall("ours_arrow_baseline")
    if base is not None:
        print(
            f"  ours / ours with the baseline scanner build: {ours / base:.2f}x  (target <= 1.15)"
        )
    zlib = wall("floor_zlib")
    if zlib is not None:
        print(f"  ours / zlib floor: {ours / zlib:.2f}x  (target <= 4, goal 2)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow-repeat", type=int, default=1, help="repeats of pandas (slow)")
    ap.add_argument("--scaling", help="comma-separated sizes: ours only, time and memory")
    ap.add_argument("--methods", help="comma-separated methods to run (default: all)")
    ap.add_argument("--clean-only", action="store_true", help="only the clean file")
    ap.add_argument("--baseline-so", help="another build of the C scanner to time as well")
    args = ap.parse_args()
    if args.baseline_so:
        os.environ["ROBOTMIA_BENCH_BASELINE_SO"] = str(Path(args.baseline_so).resolve())
    methods = args.methods.split(",") if args.methods else None
    print(f"# {machine()}")
    if args.scaling:
        print(f"{'events':>10}{'wall s':>9}{'peak MiB':>10}{'s per M':>9}{'MiB per M':>11}")
        for n in (int(x) for x in args.scaling.split(",")):
            path = export_file(n, messy=True, days=max(1, n // 100_000))
            rep = run_child("ours_arrow", str(path))
            print(
                f"{n:>10,}{rep['wall']:>9.2f}{rep['rss_mib']:>10,.0f}"
                f"{rep['wall'] / n * 1e6:>9.2f}{rep['rss_mib'] / n * 1e6:>11,.0f}"
            )
        return
    for messy in (False,) if args.clean_only else (False, True):
        path = export_file(args.events, messy=messy)
        bench(path, args.events, args.repeat, args.slow_repeat, methods)


if __name__ == "__main__":
    main()
