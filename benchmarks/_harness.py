"""Shared pieces of the benchmark scripts: data files, child processes, tables.

Every measured method runs in its own fresh subprocess (``_methods.py``), which
reports its wall time and its peak RSS (``VmHWM`` from ``/proc/self/status``: the
child's own high-water mark, unlike ``ru_maxrss`` of children, which folds in the
parent). Only loopback is used.
"""

from __future__ import annotations

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ROBOTMIA_BENCH_DATA", ROOT / "bench-data"))


def export_file(events: int, *, messy: bool = True, days: int = 10) -> Path:
    """A generated ``.jsonl.gz`` export (cached in ``bench-data/``)."""
    from robotmia_frames.emulator import iter_generated_events, write_export_file

    DATA.mkdir(parents=True, exist_ok=True)
    kind = "messy" if messy else "clean"
    path = DATA / f"{kind}-{events}.jsonl.gz"
    if not path.exists():
        per_day = -(-events // days)
        gen = iter_generated_events(
            "2024-01-01",
            f"2024-01-{days:02d}" if days < 32 else "2024-12-31",
            events_per_day=per_day,
            seed=42,
            conflict_rate=0.01 if messy else 0.0,
        )
        t = time.perf_counter()
        n = write_export_file(
            path, (e for _, e in zip(range(events), gen, strict=False)), compresslevel=1
        )
        print(
            f"# generated {path.name}: {n:,} events in {time.perf_counter() - t:.1f} s", flush=True
        )
    return path


def json_bytes(path: Path) -> int:
    """Size of the decompressed JSON text (cached next to the file)."""
    meta = path.with_suffix(".size")
    if meta.exists():
        return int(meta.read_text())
    import gzip

    n = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += len(chunk)
    meta.write_text(str(n))
    return n


def run_child(method: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """Run ``_methods.py METHOD ARGS`` in a fresh interpreter; return its report."""
    cmd = [sys.executable, str(Path(__file__).with_name("_methods.py")), method, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"method": method, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def proc_status_mib(field: str) -> float:
    """``VmHWM`` (peak RSS) or ``VmRSS`` of this process in MiB, from
    ``/proc/self/status`` (NaN where there is none: Linux only)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    return float("nan")


def peak_rss_mib() -> float:
    """This process's own peak RSS in MiB (``VmHWM``)."""
    return proc_status_mib("VmHWM")


#: A static export answer: the request's query -> the body's length and its blocks.
Answer = Callable[[dict[str, list[str]]], tuple[int, Iterable[bytes]]]


def serve_export(answer: Answer) -> tuple[http.server.ThreadingHTTPServer, str]:
    """An export endpoint on loopback answering any request with ``answer(query)``;
    returns the server (``shutdown()`` it) and its export URL."""
    from urllib.parse import parse_qs, urlsplit

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            size, blocks = answer(parse_qs(urlsplit(self.path).query))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for block in blocks:
                self.wfile.write(block)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/api/2.0/export/"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    import platform

    return f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
