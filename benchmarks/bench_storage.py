"""export_to_parquet to a local Hive dataset, Hive on an S3 API server, and Delta on both.

The days are generated once by the emulator's generator (one gzip body per day,
cached in ``bench-data/``) and served by a minimal static server on 127.0.0.1 that
answers a window with its days' bodies, so that almost all the CPU goes to the
client; the S3 API server is moto's ``ThreadedMotoServer`` on 127.0.0.1 (both in
this process, so their memory is not the client's). Each export runs in its own subprocess, which reports its wall time and
peak RSS. Prints rows/s and peak RSS per target and size, and the RSS ratio of the
largest size to the smallest per target (flat memory: close to 1).

    python benchmarks/bench_storage.py
    python benchmarks/bench_storage.py --sizes 1000000,3000000 --targets local-hive,s3-hive
    python benchmarks/bench_storage.py --sizes 1000000,3000000 --targets local-hive --window-days 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DATA, day_bodies, machine, run_child, serve_days

SECRET = "bench-secret"
TARGETS = ("local-hive", "s3-hive", "local-delta", "s3-delta")


def _s3() -> tuple[object, dict[str, object]]:
    import s3fs
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3fs.S3FileSystem(key="bench", secret="bench", endpoint_url=endpoint).mkdir("bench")
    options = {"key": "bench", "secret": "bench", "endpoint_url": endpoint}
    return server, options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,3000000")
    ap.add_argument("--per-day", type=int, default=50_000)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument(
        "--window-days", default="auto", help="window_days of the exports (default auto)"
    )
    ap.add_argument("--workers", type=int, default=1, help="processes generating the days")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    sizes = [int(x) for x in args.sizes.split(",")]
    start = dt.date(2024, 1, 1)
    days = -(-max(sizes) // args.per_day)
    folder = day_bodies(
        DATA / f"storage-{args.per_day}", start, [args.per_day] * days, workers=args.workers
    )
    server, options = _s3() if any(t.startswith("s3") for t in targets) else (None, {})
    httpd, url = serve_days(folder)
    print(
        f"# {machine()}; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{args.per_day:,} events per day; window_days={args.window_days}"
    )
    print(f"{'target':<13}{'events':>10}{'days':>6}{'wall s':>9}{'rows/s':>10}{'peak RSS MiB':>14}")
    peaks: dict[str, list[float]] = {}
    try:
        for n in sizes:
            days = -(-n // args.per_day)
            end = start + dt.timedelta(days=days - 1)
            for target in targets:
                where, fmt = target.split("-")
                tmp = Path(tempfile.mkdtemp(prefix="robotmia-bench-"))
                out = str(tmp / "ds") if where == "local" else f"s3://bench/{uuid.uuid4().hex}"
                opts = json.dumps(options if where == "s3" else {})
                rep = run_child(
                    "storage_export", url, start.isoformat(), end.isoformat(), SECRET,
                    out, fmt, opts, args.window_days,
                )  # fmt: skip
                shutil.rmtree(tmp, ignore_errors=True)
                if "wall" not in rep:
                    print(f"{target:<13}{n:>10,} failed: {rep.get('error')}")
                    continue
                peaks.setdefault(target, []).append(rep["rss_mib"])
                print(
                    f"{target:<13}{rep['rows']:>10,}{days:>6}{rep['wall']:>9.1f}"
                    f"{rep['rows'] / rep['wall']:>10,.0f}{rep['rss_mib']:>14,.0f}",
                    flush=True,
                )
    finally:
        httpd.shutdown()
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
    for target, values in peaks.items():
        if len(values) >= 2:
            print(f"{target}: peak RSS, largest / smallest size: {values[-1] / values[0]:.2f}x")


if __name__ == "__main__":
    main()
