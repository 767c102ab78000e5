"""The ``robotmia-frames`` command: a thin layer over the public functions.

Exit codes: 0 success, 1 unexpected error, 2 bad arguments, 3 authentication,
4 API error, 5 network or incomplete download, 6 malformed export data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from . import api
from ._redact import redact
from ._version import __version__
from .errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    NetworkError,
    ParseError,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_API, EXIT_NETWORK, EXIT_PARSE = range(7)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robotmia-frames",
        description="Export robotmia raw events to Parquet with correct UTC times.",
        epilog="The API secret is read from ROBOTMIA_API_SECRET (never from a flag), the "
        "project timezone from --timezone or ROBOTMIA_PROJECT_TIMEZONE.",
    )
    p.add_argument("--version", action="version", version=f"robotmia-frames {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser(
        "export",
        help="export a date range to a Parquet dataset",
        description="Export FROM..TO (inclusive project-local days) into a Hive-partitioned "
        "Parquet dataset at --out, one atomic day partition at a time.",
    )
    e.add_argument("from_date", metavar="FROM", help="first day, YYYY-MM-DD")
    e.add_argument("to_date", metavar="TO", help="last day, YYYY-MM-DD (inclusive)")
    e.add_argument("--out", required=True, type=Path, help="dataset folder")
    e.add_argument("--event", action="append", help="only this event (repeatable)")
    e.add_argument("--where", help='filter expression, e.g. properties["$os"]=="Linux"')
    e.add_argument("--timezone", help="project timezone (IANA name, e.g. Europe/Paris)")
    e.add_argument("--base-url", help="export endpoint (default: robotmia's US endpoint)")
    e.add_argument("--partition-by-event", action="store_true", help="partition by date and event")
    e.add_argument("--concurrency", type=int, default=4, help="day windows at once")
    e.add_argument("--ca-bundle", help="CA bundle to verify the server's certificate")

    s = sub.add_parser("serve", help="run the local export server (no account needed)")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--events-per-day", type=int, default=1000)
    s.add_argument("--from-date", default="2024-01-01")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--timezone", default="America/Los_Angeles")
    s.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")

    d = sub.add_parser(
        "demo", help="export two weeks from the built-in local server and summarise them"
    )
    d.add_argument("--out", type=Path, help="dataset folder (default: a temporary folder)")
    d.add_argument("--events-per-day", type=int, default=2000)
    d.add_argument("--timezone", default="America/Los_Angeles")
    return p


def _export(args: argparse.Namespace, out: TextIO) -> int:
    summary = api.export_to_parquet(
        args.out,
        args.from_date,
        args.to_date,
        event=args.event,
        where=args.where,
        project_timezone=args.timezone,
        base_url=args.base_url,
        partition_by=("date", "event") if args.partition_by_event else ("date",),
        concurrency=args.concurrency,
        verify=args.ca_bundle or True,
    )
    print(
        f"wrote {summary.rows:,} rows for {summary.days} days in {summary.files} files "
        f"({summary.bytes / 1e6:.1f} MB) to {summary.path}",
        file=out,
    )
    return EXIT_OK


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from .emulator import serve_forever

    secret = os.environ.get(api.SECRET_ENV) or "test-secret"
    serve_forever(
        port=args.port,
        api_secret=secret,
        project_timezone=args.timezone,
        events_per_day=args.events_per_day,
        days=args.days,
        seed=args.seed,
        from_date=args.from_date,
        tls=args.tls,
        out=out,
    )
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from .emulator import ExportServer, GeneratorConfig

    start = dt.date(2024, 3, 1)
    end = start + dt.timedelta(days=13)
    secret = "demo-secret"
    target = args.out or Path(tempfile.mkdtemp(prefix="robotmia-demo-")) / "events"
    gen = GeneratorConfig(events_per_day=args.events_per_day, seed=7, from_date=start, to_date=end)
    with ExportServer(api_secret=secret, project_timezone=args.timezone, generate=gen) as srv:
        print(f"local export server: {srv.url} (project timezone {args.timezone})", file=out)
        summary = api.export_to_parquet(
            target,
            start,
            end,
            api_secret=secret,
            project_timezone=args.timezone,
            base_url=srv.url,
        )
        requests_made = len(srv.requests)
    df = api.read_parquet_dataset(target, columns=["event", "time"], return_type="pandas")
    print(
        f"exported {summary.rows:,} events over {summary.days} days "
        f"({requests_made} HTTP requests, {summary.files} Parquet files, "
        f"{summary.bytes / 1e6:.1f} MB)",
        file=out,
    )
    print(f"UTC time range: {df['time'].min()} .. {df['time'].max()}", file=out)
    print("top events:", file=out)
    for name, count in df["event"].value_counts().head(5).items():
        print(f"  {count:>7,}  {name}", file=out)
    print(f"dataset: {summary.path}", file=out)
    print(
        "read it back: robotmia_frames.read_parquet_dataset(" + repr(str(summary.path)) + ")",
        file=out,
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> import io
        >>> main(["export", "2024-01-02", "2024-01-01", "--out", "x"], out=io.StringIO())
        2
    """
    stream = out or sys.stdout
    args = _parser().parse_args(argv)
    handlers = {"export": _export, "serve": _serve, "demo": _demo}
    try:
        return handlers[args.command](args, stream)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {redact(exc)}", file=sys.stderr)
        return _exit_code(exc)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    if isinstance(exc, APIError):
        return EXIT_API
    if isinstance(exc, (NetworkError, IncompleteDownloadError)):
        return EXIT_NETWORK
    if isinstance(exc, ParseError):
        return EXIT_PARSE
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return EXIT_USAGE
    return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
