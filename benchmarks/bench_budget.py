"""What an export costs in API budget: one-day windows, fixed 30-day windows, auto.

For three project shapes (3 years at 1k events a day; 1 year at 100k a day; 30 days
at 3M a day) a client in its own subprocess runs ``export_to_parquet`` (``--sink
parquet``, the default: a dataset written a day at a time, where memory stays
bounded) or ``read_robotmia_export`` (``--sink arrow``: the whole result in memory)
over the range against an :class:`ExportServer` that enforces robotmia's budget
(60 requests an hour) on a virtual clock, so hours of budget pass in seconds.
Printed per run: the requests answered, the API-hours the virtual clock shows (the
budget's 429s jumped it forward), the requests divided by 60, the largest body the
server answered whole against the auto target (an auto request abandoned past the
target counts as a request, not as a body), the client's peak RSS (``VmHWM`` of its
own process) and its ratio to the per-day run's, and the client's wall time.
With ``--repeat N`` the strategies run N times each, interleaved (per-day, fixed,
auto, per-day, ...) so that a change of the machine's load falls on all of them,
and peak RSS and wall time are the median of the N runs (the range of the peak
in a last column); requests and bodies are the last run's.

The server of a shape generates and compresses each day once (``warm_cache``) and
joins every window's body from the days' compressed text, so that the three runs
of a shape cost the server almost no CPU beside the client's.

Generating millions of events a day is beyond a benchmark run, so a shape may be
scaled down (events a day divided by ``--scales``, one factor per shape; 1 is the
full shape) with ``window_target_bytes`` scaled alike: the bytes per day against
the target, hence the windows and requests, are those of the full shape. Peak RSS
and time are those of the scaled run.

    python benchmarks/bench_budget.py --scales 1,100,100
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from typing import Any

from _harness import run_child

from robotmia_frames._pipeline import DEFAULT_WINDOW_TARGET_BYTES
from robotmia_frames.emulator import Budget, ExportServer, GeneratorConfig, VirtualClock

SECRET = "bench-secret"


# (name, days, events a day in the full shape)
SHAPES = [
    ("3 years at 1k/day", 1095, 1_000),
    ("1 year at 100k/day", 365, 100_000),
    ("30 days at 3M/day", 30, 3_000_000),
]
DEFAULT_SCALES = (20, 1_000, 10_000)
STRATEGIES = [("per-day", "1"), ("fixed 30-day", "30"), ("auto", "auto")]


def _kept_bodies(log: list[Any]) -> list[int]:
    """The sizes of the bodies the client kept: answered whole, and not fetched again
    in parts (an auto window abandoned past the target is fetched again as halves;
    a small one may reach the client whole before it gives up on it)."""
    done = [r for r in log if r.status == 200 and r.error is None and r.from_date is not None]
    kept = []
    for r in done:
        parts = [
            o
            for o in done
            if o.started > r.started
            and r.from_date <= o.from_date <= o.to_date <= r.to_date
            and (o.from_date, o.to_date) != (r.from_date, r.to_date)
        ]
        if not parts:
            kept.append(r.bytes_sent)
    return kept


def run(
    srv: ExportServer, days: int, window_days: str, target: int, start: dt.date, sink: str
) -> dict[str, float]:
    """One strategy's run, its client in its own process, against ``srv`` (whose
    budget is rested an hour first: the run starts with a full hour of requests)."""
    end = start + dt.timedelta(days=days - 1)
    srv.clear_requests()
    srv.clock.advance(3600)
    began = srv.clock.elapsed
    args = [srv.url, start.isoformat(), end.isoformat(), SECRET, window_days, str(target), sink]
    client = run_child("budget_export", *args, timeout=6 * 3600)
    if "error" in client:
        raise SystemExit(f"budget_export {window_days}: {client['error']}")
    log = list(srv.requests)
    bodies = _kept_bodies(log)
    return {
        "requests": sum(r.status == 200 for r in log),
        "api_hours": (srv.clock.elapsed - began) / 3600,
        "max_body": max(bodies, default=0),
        "rows": client["rows"],
        "rss": client["rss_mib"],
        "wall": client["wall"],
    }


def serve(per_day: int) -> ExportServer:
    """The budgeted server of one shape: each day generated and compressed once
    (``warm_cache``), every window joined from the days' compressed text."""
    generate = GeneratorConfig(events_per_day=per_day, seed=7)
    clock = VirtualClock(retry_after_scale=0)
    return ExportServer(
        generate=generate,
        api_secret=SECRET,
        budget=Budget(per_hour=60),
        clock=clock,
        cache_bodies=True,
        cache_max_bytes=1 << 40,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--scales",
        default=",".join(str(n) for n in DEFAULT_SCALES),
        help="events a day divided by these, one per shape (1: the full shape)",
    )
    ap.add_argument("--sink", choices=("parquet", "arrow"), default="parquet")
    ap.add_argument("--shapes", default="1,2,3", help="which shapes to run (1-based)")
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs of each strategy, interleaved (median)"
    )
    args = ap.parse_args()
    scales = [float(x) for x in args.scales.split(",")]
    start = dt.date(2022, 1, 1)
    print(
        f"# budget 60 requests an hour; auto target {DEFAULT_WINDOW_TARGET_BYTES >> 20} MiB; "
        f"sink {args.sink}"
    )
    header = (
        f"{'shape':<20} {'windows':<13} {'requests':>8} {'API-h (clock)':>13} "
        f"{'req/60':>7} {'max body/target':>15} {'peak RSS MiB':>12} {'RSS/per-day':>11} "
        f"{'wall s':>7}" + ("  peak range" if args.repeat > 1 else "")
    )
    print(header)
    for n in (int(x) for x in args.shapes.split(",")):
        name, days, per_day = SHAPES[n - 1]
        factor = scales[n - 1]
        scaled = max(1, round(per_day / factor))
        target = max(1, round(DEFAULT_WINDOW_TARGET_BYTES * scaled / per_day))
        results = {}
        end = start + dt.timedelta(days=days - 1)
        with serve(scaled) as srv:
            t = time.perf_counter()
            size = srv.warm_cache(start, end)
            print(
                f"# {name}: {days * scaled:,} events generated and compressed once, "
                f"{size / 1e6:,.0f} MB in {time.perf_counter() - t:,.0f} s",
                flush=True,
            )
            runs: dict[str, list[dict[str, float]]] = {label: [] for label, _ in STRATEGIES}
            for _ in range(max(1, args.repeat)):
                for label, window_days in STRATEGIES:
                    runs[label].append(run(srv, days, window_days, target, start, args.sink))
            for label, _ in STRATEGIES:
                r = dict(runs[label][-1])
                peaks = [x["rss"] for x in runs[label]]
                r["rss"] = statistics.median(peaks)
                r["wall"] = statistics.median(x["wall"] for x in runs[label])
                results[label] = r
                spread = f"  {min(peaks):,.0f}-{max(peaks):,.0f}" if len(peaks) > 1 else ""
                print(
                    f"{name:<20} {label:<13} {r['requests']:>8,} {r['api_hours']:>13.1f} "
                    f"{r['requests'] / 60:>7.1f} {r['max_body'] / target:>15.2f} "
                    f"{r['rss']:>12.0f} {r['rss'] / results['per-day']['rss']:>11.2f} "
                    f"{r['wall']:>7.0f}{spread}",
                    flush=True,
                )
        ratio = results["auto"]["requests"] / results["per-day"]["requests"]
        print(
            f"{'':<20} (scale 1/{factor:g}: {scaled:,} events a day, target {target:,} bytes; "
            f"auto sends {ratio:.3f} of the per-day requests)",
            flush=True,
        )


if __name__ == "__main__":
    main()
