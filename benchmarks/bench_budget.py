"""What an export costs in API budget: one-day windows, fixed 30-day windows, auto.

For three project shapes (3 years at 1k events a day; 1 year at 100k a day; 30 days
at 3M a day) a client in its own subprocess runs ``read_robotmia_export`` over the
range against an :class:`ExportServer` that enforces robotmia's budget (60 requests
an hour) on a virtual clock, so hours of budget pass in seconds. Printed per run:
the requests answered, the API-hours the virtual clock shows (the budget's 429s
jumped it forward), the requests divided by 60, the largest body the client kept
against the auto target (an auto request abandoned past the target counts as a
request, not as a body), and the client's peak RSS.

Generating millions of events a day is beyond a benchmark run, so each shape is
scaled down by ``--scale`` (events a day divided by it) and ``window_target_bytes``
with it: the bytes per day against the target, hence the windows and requests,
are those of the full shape. Peak RSS is that of the scaled run.

    python benchmarks/bench_budget.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys

from robotmia_frames._pipeline import DEFAULT_WINDOW_TARGET_BYTES
from robotmia_frames.emulator import Budget, ExportServer, GeneratorConfig, VirtualClock

SECRET = "bench-secret"

CLIENT = r"""
import json, resource, sys
import robotmia_frames as rf
url, secret, start, end, window_days, target = sys.argv[1:7]
window = window_days if window_days == "auto" else int(window_days)
seen = [0, 0]  # bytes so far, largest body kept

def progress(update):  # a window's bytes come with its first day
    seen[1] = max(seen[1], update.bytes - seen[0])
    seen[0] = update.bytes

table = rf.read_robotmia_export(
    start, end, api_secret=secret, project_timezone="UTC", base_url=url,
    return_type="arrow", window_days=window, window_target_bytes=int(target),
    retry_backoff=0, max_retries=100_000, progress=progress,
    rate_limit=rf.RateLimit(per_hour=None, per_second=None, concurrent=None),
)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rows": table.num_rows, "rss": rss, "max_body": seen[1]}))
"""

# (name, days, events a day in the full shape, default scale-down)
SHAPES = [
    ("3 years at 1k/day", 1095, 1_000, 20),
    ("1 year at 100k/day", 365, 100_000, 1_000),
    ("30 days at 3M/day", 30, 3_000_000, 10_000),
]
STRATEGIES = [("per-day", "1"), ("fixed 30-day", "30"), ("auto", "auto")]


def run(days: int, per_day: int, window_days: str, target: int, start: dt.date) -> dict[str, float]:
    end = start + dt.timedelta(days=days - 1)
    generate = GeneratorConfig(events_per_day=per_day, seed=7)
    clock = VirtualClock(retry_after_scale=0)
    with ExportServer(
        generate=generate, api_secret=SECRET, budget=Budget(per_hour=60), clock=clock
    ) as srv:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CLIENT,
                srv.url,
                SECRET,
                start.isoformat(),
                end.isoformat(),
                window_days,
                str(target),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        client = json.loads(out.stdout)
        stats = srv.stats()
    return {
        "requests": stats.served,
        "api_hours": stats.api_hours,
        "max_body": client["max_body"],
        "rows": client["rows"],
        "rss": client["rss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="extra scale-down on every shape")
    args = ap.parse_args()
    start = dt.date(2022, 1, 1)
    print(f"# budget 60 requests an hour; auto target {DEFAULT_WINDOW_TARGET_BYTES >> 20} MiB")
    header = (
        f"{'shape':<20} {'windows':<13} {'requests':>8} {'API-h (clock)':>13} "
        f"{'req/60':>7} {'max body/target':>15} {'peak RSS MB':>11}"
    )
    print(header)
    for name, days, per_day, scale in SHAPES:
        factor = scale * args.scale
        scaled = max(1, round(per_day / factor))
        target = max(1, round(DEFAULT_WINDOW_TARGET_BYTES * scaled / per_day))
        results = {}
        for label, window_days in STRATEGIES:
            r = run(days, scaled, window_days, target, start)
            results[label] = r
            print(
                f"{name:<20} {label:<13} {r['requests']:>8,} {r['api_hours']:>13.1f} "
                f"{r['requests'] / 60:>7.1f} {r['max_body'] / target:>15.2f} "
                f"{r['rss'] / 1e6:>11.0f}",
                flush=True,
            )
        ratio = results["auto"]["requests"] / results["per-day"]["requests"]
        print(
            f"{'':<20} (scaled: {scaled:,} events a day, target {target:,} bytes; "
            f"auto sends {ratio:.3f} of the per-day requests)"
        )


if __name__ == "__main__":
    main()
