"""Profiles: ijson streaming vs ``json.loads`` of whole pages, time and peak RSS.

The emulator (in this process) serves N generated profiles at ``/api/2.0/engage``;
each variant runs in its own fresh subprocess, which reports its wall time and its
peak RSS (``VmHWM``; ``ru_maxrss`` would include the parent's image, inherited at
fork/exec), and, minus the RSS it started from, the peaks of the paging phase
(download and parse: what the parser choice changes) and of the whole export (also
building the typed table); the peak is reset after the imports with
``/proc/self/clear_refs``. The variants differ only in how a page body is parsed:

- ``ijson``: :func:`robotmia_frames.read_robotmia_profiles` as shipped: each body
  streamed through ijson's C backend, profiles flattened as they complete;
- ``json.loads``: the same function with the page fetch swapped for
  ``requests.post`` + ``json.loads(resp.content)`` of the whole page, then the same
  flattening, spill, typing and date conversion.

Both must return the same table (checked). Run::

    python benchmarks/bench_profiles.py                 # 200,000 profiles
    python benchmarks/bench_profiles.py --profiles 20000 --page-sizes 1000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from _harness import peak_rss_mib, proc_status_mib

SECRET = "bench-secret"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _rss_mib() -> float:
    return proc_status_mib("VmRSS")


def _reset_peak() -> bool:
    """Reset the peak RSS (Linux >= 4.0: ``5 > /proc/self/clear_refs``), so that the
    peak measured next belongs to the export, not to the imports."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def child(variant: str, url: str) -> None:
    """One measured run; prints one JSON line."""
    import pyarrow.compute as pc

    import robotmia_frames as rf
    from robotmia_frames import profiles, transport

    if variant == "json.loads":

        def fetch_whole_page(
            session: Any, config: Any, data: dict[str, str], label: str, keys: Any
        ) -> Any:
            resp = transport.open_response(session, config, method="POST", data=data)
            try:
                doc = json.loads(resp.content)  # the whole page as one document
            finally:
                resp.close()
            page = profiles._Page(label, keys)
            for item in doc.get("results", []):
                page.add(item)
            page.meta.update({k: v for k, v in doc.items() if k != "results"})
            page.is_object, page.results = True, True
            page.check()
            return page

        profiles._fetch_page = fetch_whole_page  # type: ignore[assignment]

    # The peak of the paging phase (what the parser choice changes), read when pass
    # two (building the typed table from the spilled pages) begins.
    paging_peak: list[float] = []
    build = profiles._build

    def build_and_note_peak(export: Any, names: Any) -> Any:
        paging_peak.append(peak_rss_mib())
        return build(export, names)

    profiles._build = build_and_note_peak  # type: ignore[assignment]

    import_peak = peak_rss_mib()
    reset = _reset_peak()
    start_rss = _rss_mib()
    t0 = time.perf_counter()
    table = rf.read_robotmia_profiles(
        api_secret=SECRET, project_timezone="Europe/Paris", base_url=url, return_type="arrow"
    )
    seconds = time.perf_counter() - t0
    fingerprint = [
        table.num_rows,
        table.num_columns,
        str(table.schema),
        pc.sum(table.column("properties.lifetime_value")).as_py(),
        pc.count_distinct(table.column("distinct_id")).as_py(),
        str(pc.max(table.column("properties.$last_seen")).as_py()),
    ]
    print(
        json.dumps(
            {
                "variant": variant,
                "seconds": seconds,
                "peak_rss_mib": max(import_peak, peak_rss_mib()),
                "export_peak_mib": peak_rss_mib(),
                "paging_peak_mib": paging_peak[0],
                "start_rss_mib": start_rss,
                "peak_reset": reset,
                "fingerprint": fingerprint,
            }
        )
    )


def run_child(variant: str, url: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--url", url],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    return (a[key] - a["start_rss_mib"]) / max(b[key] - b["start_rss_mib"], 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--page-sizes", default="1000,20000", help="server page sizes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return

    sys.path.insert(0, ROOT)
    from robotmia_frames.emulator import ExportServer

    t0 = time.perf_counter()
    srv = ExportServer(api_secret=SECRET, generate_profiles=args.profiles).start()
    print(
        f"{args.profiles:,} generated profiles served by the emulator "
        f"(built in {time.perf_counter() - t0:.1f} s); Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; each variant in a fresh subprocess"
    )
    try:
        for size in [int(s) for s in args.page_sizes.split(",")]:
            srv.engage.page_size = size
            results = [run_child(v, srv.engage_url) for v in ("ijson", "json.loads")]
            ijson_r, loads_r = results
            assert ijson_r["fingerprint"] == loads_r["fingerprint"], "different tables"
            pages = -(-args.profiles // size)
            print(f"\npage size {size:,} ({pages} pages), {ijson_r['fingerprint'][1]} columns")
            print(
                f"{'variant':<12}{'time s':>8}{'peak RSS MiB':>14}"
                f"{'paging: peak - start':>22}{'export: peak - start':>22}"
            )
            for r in results:
                paging = r["paging_peak_mib"] - r["start_rss_mib"]
                net = r["export_peak_mib"] - r["start_rss_mib"]
                print(
                    f"{r['variant']:<12}{r['seconds']:>8.2f}{r['peak_rss_mib']:>14.1f}"
                    f"{paging:>22.1f}{net:>22.1f}"
                )
            print(
                f"ijson / json.loads: time x{ijson_r['seconds'] / loads_r['seconds']:.2f}, "
                f"peak RSS x{ijson_r['peak_rss_mib'] / loads_r['peak_rss_mib']:.2f}, "
                f"paging peak x{_ratio(ijson_r, loads_r, 'paging_peak_mib'):.2f}, "
                f"export peak x{_ratio(ijson_r, loads_r, 'export_peak_mib'):.2f}"
            )
            if not (ijson_r["peak_reset"] and loads_r["peak_reset"]):
                print(
                    "(peak RSS could not be reset after imports: the '- start' columns are approximate)"
                )
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
