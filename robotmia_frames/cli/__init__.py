"""The ``robotmia-frames`` command: a thin layer over the public functions.

Exit codes: 0 success, 1 unexpected error, 2 bad arguments (or a missing file),
3 authentication, 4 API error, 5 network or incomplete download, 6 malformed
export data, 7 a result over the memory budget, 130 interrupted (Ctrl-C), 143
stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import functools
import getpass
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa

from .. import _options, _wide, api, readers, sinks
from .._redact import redact
from ..client import LONG_SYNC_DAYS, Client
from ..errors import (
    APIError,
    AuthenticationError,
    IncompleteDownloadError,
    MemoryBudgetError,
    NetworkError,
    ParseError,
    TypeMismatchError,
)
from ..parse import scanner_status
from ._parser import build_parser

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AUTH, EXIT_API, EXIT_NETWORK, EXIT_PARSE, EXIT_MEMORY = range(
    8
)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it terminated
_PREVIEW_COLUMNS = 8


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, in the plural unless there is one: "1 day", "2,048 days".

    Example:
        >>> plural(1, "day"), plural(3, "file"), plural(1200, "row")
        ('1 day', '3 files', '1,200 rows')
    """
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


# ------------------------------------------------------------------ parsers


# ------------------------------------------------------------------ helpers


def _progress(args: argparse.Namespace) -> bool | None:
    """None: a bar when stderr is a terminal; False with --no-progress."""
    return False if getattr(args, "no_progress", False) else None


def _api_secret() -> str | None:
    """The secret from a hidden prompt, when the environment has none and we may ask."""
    if os.environ.get(_options.SECRET_ENV, "").strip():
        return None  # the functions read it themselves
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("robotmia API secret (input hidden): ").strip() or None
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _print_json(doc: Any, out: TextIO) -> None:
    print(json.dumps(doc, default=_json_default, ensure_ascii=False, indent=2), file=out)


def _summary_doc(summary: api.ExportSummary) -> dict[str, Any]:
    return {
        "path": str(summary.path),
        "rows": summary.rows,
        "days": summary.days,
        "files": summary.files,
        "bytes": summary.bytes,
        "from_date": summary.from_date,
        "to_date": summary.to_date,
        "rows_per_day": summary.rows_per_day,
    }


def _summary_line(summary: api.ExportSummary) -> str:
    return (
        f"wrote {plural(summary.rows, 'row')} for {plural(summary.days, 'day')} "
        f"in {plural(summary.files, 'file')} "
        f"({summary.bytes / 1e6:.1f} MB) to {summary.path}"
    )


def _remote_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "event": args.event,
        "where": args.where,
        "api_secret": _api_secret(),
        "project_timezone": args.timezone,
        "base_url": args.base_url,
        "region": args.region,
        "partition_by": ("date", "event") if args.partition_by_event else ("date",),
        "table_format": args.table_format,
        "dedupe": args.dedupe,
        "concurrency": args.concurrency,
        "on_bad_lines": args.on_bad_lines,
        "verify": args.ca_bundle or True,
        "progress": _progress(args),
        "columns": _column_names(args.columns),
        **_typed_kwargs(args),
        **_shape_kwargs(args),
        "window_days": args.window_days,
        "window_target_bytes": int(args.window_target_mb * (1 << 20)),
    }
    for name in ("timeout", "max_retry_after", "stall_timeout", "min_speed", "max_window_bytes"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    return kwargs


def _typed_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``dtype=`` and ``on_type_mismatch=`` from ``--dtype COL=TYPE`` (repeatable,
    comma-separated); the names follow the rule of ``--columns``."""
    if not args.dtype:
        return {"on_type_mismatch": args.on_type_mismatch}
    pins: dict[str, str] = {}
    for pair in (p.strip() for v in args.dtype for p in v.split(",") if p.strip()):
        name, sep, kind = pair.partition("=")
        if not sep or not name.strip() or not kind.strip():
            raise UsageError(
                f"--dtype takes COLUMN=TYPE, e.g. --dtype properties.Price=float64, got {pair!r}"
            )
        pins[name.strip()] = kind.strip()
    return {"dtype": pins, "on_type_mismatch": args.on_type_mismatch}


def _shape_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``split_by=``, ``sparse_columns=``, ``sparse_threshold=``, ``max_memory=``."""
    return {
        "split_by": args.split_by,
        "sparse_columns": args.sparse_columns,
        "sparse_threshold": args.sparse_threshold,
        "max_memory": args.max_memory,
    }


def _column_names(values: list[str] | None) -> list[str] | None:
    """The names of ``--columns`` (comma-separated, repeatable), read by the rule of
    ``columns=`` in Python: ``event``, ``time``, ``properties.<key>``, ``$key``."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


# ------------------------------------------------------------------ commands


def _export(args: argparse.Namespace, out: TextIO) -> int:
    if args.dry_run:
        return _plan(args, out)
    summary = api.export_to_parquet(args.out, args.from_date, args.to_date, **_remote_kwargs(args))
    if args.json:
        _print_json(_summary_doc(summary), out)
    else:
        print(_summary_line(summary), file=out)
    return EXIT_OK


def _plan(args: argparse.Namespace, out: TextIO) -> int:
    """``export --dry-run``: the windows, requests and API-hours (auto windows sized
    from the history of the dataset at ``--out``, if any); nothing is sent."""
    kwargs = _remote_kwargs(args)
    _wide.dataset_shape(kwargs, "export_to_parquet")  # the flags the run would refuse
    plan = _planner(kwargs).plan_export(
        args.from_date,
        args.to_date,
        window_days=kwargs["window_days"],
        window_target_bytes=kwargs["window_target_bytes"],
        dataset=args.out,  # its history sizes the auto windows
    )
    if args.json:
        _print_json(
            {
                "from_date": args.from_date,
                "to_date": args.to_date,
                "requests": plan.requests,
                "fewest_requests": plan.requests if plan.fewest is None else plan.fewest,
                "api_hours": plan.api_hours,
                "bytes_per_day": plan.bytes_per_day,
                "windows": [[a.isoformat(), b.isoformat()] for a, b in plan.windows],
            },
            out,
        )
    else:
        print(str(plan), file=out)
        print("nothing was sent (--dry-run)", file=out)
    return EXIT_OK


def _planner(kwargs: dict[str, Any]) -> Client:
    """A client that plans a run (no request is sent: the secret is not needed)."""
    return Client(
        api_secret=kwargs["api_secret"], base_url=kwargs["base_url"], region=kwargs["region"]
    )


def _sync(args: argparse.Namespace, out: TextIO) -> int:
    kwargs = _remote_kwargs(args)
    if not _sync_confirmed(args, kwargs):
        print("sync not started (not confirmed): nothing was sent or written", file=sys.stderr)
        return EXIT_ERROR
    summary = api.sync_to_parquet(
        args.out,
        args.start_date,
        args.end_date,
        lookback_days=args.lookback_days,
        **kwargs,
    )
    if args.json:
        _print_json(_summary_doc(summary), out)
    else:
        span = f"{summary.from_date} .. {summary.to_date}"
        print(f"synced {span}: {_summary_line(summary)}", file=out)
    return EXIT_OK


def _sync_confirmed(args: argparse.Namespace, kwargs: dict[str, Any]) -> bool:
    """A sync over more than ``LONG_SYNC_DAYS`` days (a first sync, say) prints its
    requests and API-hours on stderr before anything is sent; on a terminal it asks
    to go on (``--yes`` skips the question); without one it goes on."""
    plan = _planner(kwargs).plan_sync(
        args.out,
        args.start_date,
        args.end_date,
        lookback_days=args.lookback_days,
        project_timezone=kwargs["project_timezone"],
        table_format=kwargs["table_format"],
        window_days=kwargs["window_days"],
        window_target_bytes=kwargs["window_target_bytes"],
    )
    if plan.days <= LONG_SYNC_DAYS:
        return True
    print(f"this sync covers {plan}", file=sys.stderr)
    if args.yes or sys.stdin is None or not sys.stdin.isatty():
        return True
    sys.stderr.write("start it? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _read(args: argparse.Namespace, out: TextIO) -> int:
    src: Path = args.source.expanduser()
    columns = _column_names(args.columns)
    if args.limit < 0:
        raise ValueError(f"--limit must be 0 (all rows) or more, got {args.limit}")
    result: pa.Table | dict[str | None, pa.Table]
    empty = False  # an empty export file: no events, so no times to convert
    if src.is_dir():
        _no_bad_lines_in_datasets(args)
        result = readers.read_parquet_dataset(
            src,
            from_date=args.from_date,
            to_date=args.to_date,
            columns=columns,
            event=args.event,
            where=args.where,
            project_timezone=args.timezone,
            return_type="arrow",
            **_typed_kwargs(args),
            **_shape_kwargs(args),
            progress=_progress(args),
        )
    elif src.is_file():
        for flag, value in (("--from", args.from_date), ("--to", args.to_date)):
            if value is not None:
                raise ValueError(
                    f"{flag} applies to datasets; filter an export file by time with "
                    '--where \'event["$time"] >= datetime("2024-01-02T00:00:00")\''
                )
        if args.event:
            raise ValueError(
                "--event applies to datasets; an export file holds the events it was exported with"
            )
        empty = src.stat().st_size == 0
        if not (empty or args.timezone or os.environ.get(_options.TIMEZONE_ENV, "").strip()):
            raise ValueError(
                "reading an export file needs the project timezone to convert its "
                f"project-local times to UTC: pass --timezone (e.g. Europe/Paris) or set "
                f"{_options.TIMEZONE_ENV}"
            )
        result = readers.read_export_file(
            src,
            project_timezone=args.timezone or ("UTC" if empty else None),
            columns=columns,
            where=args.where,
            return_type="arrow",
            on_bad_lines=args.on_bad_lines or "error",
            **_typed_kwargs(args),
            **_shape_kwargs(args),
            progress=_progress(args),
        )
    else:
        raise FileNotFoundError(f"no dataset folder or export file at {src}")
    tables = result if isinstance(result, dict) else {None: result}
    if args.json:
        docs = {name: _table_doc(t, args.limit) for name, t in tables.items()}
        if isinstance(result, dict):
            rows = sum(t.num_rows for t in tables.values())
            _print_json({"source": str(src), "rows": rows, "tables": docs}, out)
        else:
            _print_json({"source": str(src), **docs[None]}, out)
        return EXIT_OK
    if isinstance(result, dict):
        for name, table in tables.items():
            print(f"event {name!r}:", file=out)
            _print_preview(table, args.limit, columns, out)
            print(file=out)
        print(
            f"{plural(len(tables), 'table')} (one per event), "
            f"{sum(t.num_rows for t in tables.values()):,} rows in all",
            file=out,
        )
        return EXIT_OK
    notes = [f"{src} is an empty file: an export with no events"] if empty else []
    _print_preview(result, args.limit, columns, out, notes)
    return EXIT_OK


def _table_doc(table: pa.Table, limit: int) -> dict[str, Any]:
    """``{"rows", "columns", "data"}`` of ``read --json``; a map column's rows as objects."""
    shown = table if limit == 0 else table.slice(0, limit)
    data = shown.to_pylist()
    maps = [f.name for f in table.schema if pa.types.is_map(f.type)]
    for row in data:
        for name in maps:
            if row[name] is not None:
                row[name] = dict(row[name])
    return {
        "rows": table.num_rows,
        "columns": {f.name: str(f.type) for f in table.schema},
        "data": data,
    }


def _print_preview(
    table: pa.Table,
    limit: int,
    columns: list[str] | None,
    out: TextIO,
    notes: list[str] | None = None,
) -> None:
    """The first ``limit`` rows (0: all) of a table as text, and its size."""
    notes = list(notes or ())
    shown = table if limit == 0 else table.slice(0, limit)
    if shown.num_rows < table.num_rows:
        notes.append(f"first {plural(shown.num_rows, 'row')} shown")
    if columns is None and table.num_columns > _PREVIEW_COLUMNS:
        shown = shown.select(table.column_names[:_PREVIEW_COLUMNS])
        notes.append(f"first {_PREVIEW_COLUMNS} columns shown; choose them with --columns")
    frame = sinks.to_pandas(shown)
    width = shutil.get_terminal_size((120, 24)).columns
    text = frame.to_string(line_width=width, max_colwidth=40) if len(frame) else "(no rows)"
    print(text, file=out)
    tail = f" ({'; '.join(notes)})" if notes else ""
    size = f"{plural(table.num_rows, 'row')} x {plural(table.num_columns, 'column')}"
    print(f"\n{size}{tail}", file=out)


def _no_bad_lines_in_datasets(args: argparse.Namespace) -> None:
    if args.on_bad_lines is not None:
        raise ValueError(
            "--on-bad-lines applies to export files; a dataset holds no malformed lines"
        )


def _inspect_cmd(args: argparse.Namespace, out: TextIO) -> int:
    from ._inspect import inspect_path

    source = Path(args.source).expanduser()
    if "://" in args.source or source.is_dir():
        _no_bad_lines_in_datasets(args)
    found = inspect_path(
        args.source,
        project_timezone=args.timezone,
        progress=_progress(args),
        on_bad_lines=args.on_bad_lines or "error",
    )
    if args.json:
        _print_json({**found.to_dict(), "parse_engine": scanner_status()}, out)
    else:
        print(found.render(), file=out)
        print(f"parse engine: {scanner_status()}", file=out)
    return EXIT_OK


def _serve(args: argparse.Namespace, out: TextIO) -> int:
    from ..emulator import ExportServer, serve_forever

    secret_from_env = bool(os.environ.get(_options.SECRET_ENV))
    secret = os.environ.get(_options.SECRET_ENV) or "test-secret"
    if args.print_env:
        return _serve_in_background(args, out, secret_from_env)
    port = 8765 if args.port is None else args.port

    def ready(srv: ExportServer) -> None:
        if args.ready_file is not None:  # for --print-env: the URL, once listening
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"url": srv.url}))
            tmp.replace(args.ready_file)
            return
        shown = "(your ROBOTMIA_API_SECRET)" if secret_from_env else secret
        print(f"secret it expects: {shown}; point commands and Python at it with:", file=out)
        print("  " + " ".join(_env_lines(srv.url, secret, secret_from_env, args)), file=out)

    # Stop cleanly on Ctrl-C and on SIGTERM, even when started with SIGINT ignored
    # (a background job of a non-interactive shell inherits SIG_IGN).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        serve_forever(
            port=port,
            api_secret=secret,
            project_timezone=args.timezone,
            events_per_day=args.events_per_day,
            days=args.days,
            seed=args.seed,
            from_date=args.from_date,
            tls=args.tls,
            out=out,
            on_ready=ready,
        )
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            why = "is in use" if exc.errno == errno.EADDRINUSE else "is not allowed"
            raise UsageError(
                f"port {port} {why} (another serve running?): choose another with "
                "--port N, or --port 0 for any free port"
            ) from None
        raise
    return EXIT_OK


def _env_lines(url: str, secret: str, secret_from_env: bool, args: argparse.Namespace) -> list[str]:
    """``export`` lines pointing the commands (and the library) at a local server."""
    lines = [f"export {_options.BASE_URL_ENV}={shlex.quote(url)}"]
    if not secret_from_env:  # a secret of the environment is never printed
        lines.append(f"{_options.SECRET_ENV}={shlex.quote(secret)}")
    lines.append(f"{_options.TIMEZONE_ENV}={shlex.quote(args.timezone)}")
    return lines


def _serve_in_background(args: argparse.Namespace, out: TextIO, secret_from_env: bool) -> int:
    """``serve --print-env``: the server in a background process of its own, and the
    shell lines for ``eval`` (its URL, secret, timezone and process id)."""
    folder = Path(tempfile.mkdtemp(prefix="robotmia-serve-"))
    ready = folder / "ready.json"
    cmd = [sys.executable, "-m", "robotmia_frames.cli", "serve", "--ready-file", str(ready)]
    cmd += ["--port", str(0 if args.port is None else args.port), "--days", str(args.days)]
    cmd += ["--events-per-day", str(args.events_per_day), "--from-date", args.from_date]
    cmd += ["--seed", str(args.seed), "--timezone", args.timezone] + ["--tls"] * args.tls
    with open(folder / "serve.log", "w") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and the shell's Ctrl-C
        )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                proc.kill()
            said = (folder / "serve.log").read_text().strip().splitlines()
            last = said[-1] if said else "no output"
            raise UsageError(f"the local export server did not start: {last}")
        time.sleep(0.05)
    url = json.loads(ready.read_text())["url"]
    secret = os.environ.get(_options.SECRET_ENV) or "test-secret"
    print(" ".join(_env_lines(url, secret, secret_from_env, args)), file=out)
    print(f"export ROBOTMIA_SERVE_PID={proc.pid}", file=out)
    print(f"# local export server at {url}; stop it with: kill $ROBOTMIA_SERVE_PID", file=out)
    return EXIT_OK


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.out is not None:
        return _demo_in(args.out, args, out, keep=True)
    scratch = Path(tempfile.mkdtemp(prefix="robotmia-demo-"))
    try:
        return _demo_in(scratch / "events", args, out, keep=args.keep)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _demo_in(target: Path, args: argparse.Namespace, out: TextIO, *, keep: bool) -> int:
    from ..emulator import ExportServer, GeneratorConfig

    start = dt.date(2024, 3, 1)
    end = start + dt.timedelta(days=13)
    secret = "demo-secret"
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
            progress=_progress(args),
        )
        requests_made = len(srv.requests)
    df = readers.read_parquet_dataset(target, columns=["event", "time"], return_type="pandas")
    print(
        f"exported {plural(summary.rows, 'event')} over {plural(summary.days, 'day')} "
        f"({plural(requests_made, 'HTTP request')}, {plural(summary.files, 'Parquet file')}, "
        f"{summary.bytes / 1e6:.1f} MB)",
        file=out,
    )
    print(f"UTC time range: {df['time'].min()} .. {df['time'].max()}", file=out)
    local = df["time"].dt.tz_convert(args.timezone)
    offsets = list(dict.fromkeys(ts.strftime("%z") for ts in (local.min(), local.max())))
    if len(offsets) > 1:
        print(
            f"project-local offsets: {' -> '.join(offsets)} (a daylight-saving change "
            "inside the range, converted per event)",
            file=out,
        )
    print("top events:", file=out)
    for name, count in df["event"].value_counts().head(5).items():
        print(f"  {count:>7,}  {name}", file=out)
    if not keep:
        print(
            "the dataset was in a temporary folder, now removed: keep it with --keep, "
            "or choose the folder with --out",
            file=out,
        )
        return EXIT_OK
    print(f"dataset: {summary.path}", file=out)
    print(
        "read it back: robotmia_frames.read_parquet_dataset(" + repr(str(summary.path)) + ")",
        file=out,
    )
    print(
        f"next: robotmia-frames inspect {summary.path}\n"
        f"      robotmia-frames read {summary.path} --columns 'event,time,$os' --limit 5",
        file=out,
    )
    return EXIT_OK


# ------------------------------------------------------------------ entry point


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> import io
        >>> main(["export", "2024-01-02", "2024-01-01", "--out", "x"], out=io.StringIO())
        2
    """
    stream = out or sys.stdout
    args = build_parser().parse_args(argv)
    handlers = {
        "export": _export,
        "sync": _sync,
        "read": _read,
        "inspect": _inspect_cmd,
        "serve": _serve,
        "demo": _demo,
    }
    stopped_by: list[str] = []
    restore = _stop_on_sigterm(stopped_by) if args.command in ("export", "sync") else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return handlers[args.command](args, stream)
    except KeyboardInterrupt as exc:
        how = stopped_by[0] if stopped_by else "Ctrl-C"
        writes = args.command in ("export", "sync")
        print(_interrupted(how, exc) if writes else "interrupted", file=sys.stderr)
        return EXIT_TERMINATED if stopped_by else EXIT_INTERRUPTED
    except BrokenPipeError:  # `robotmia-frames read ... | head`: the reader left
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        message = cli_words(_one_line(redact(exc)), args.command)
        code = _exit_code(exc)
        print(f"error: {message}", file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout gets a document too
            error = {"type": type(exc).__name__, "message": message, "exit_code": code}
            _print_json({"error": error}, stream)
        return code
    finally:
        if restore is not None:
            restore()


def _warning_printer(command: str) -> Any:
    """Warnings as one ``warning: ...`` line in the command line's words (no source
    file and line, which mean nothing to a command's user)."""

    def show(message: Any, category: Any, filename: str, lineno: int, *_: Any) -> None:
        text = cli_words(_one_line(redact(str(message))), command)
        print(f"warning: {text}", file=sys.stderr)

    return show


def _stop_on_sigterm(stopped_by: list[str]) -> Any:
    """Make SIGTERM stop an export like Ctrl-C (clean up, report); returns the undo."""

    def handler(signum: int, frame: Any) -> None:
        if not stopped_by:
            stopped_by.append("SIGTERM")
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main thread
        return None
    return lambda: signal.signal(signal.SIGTERM, previous)


def _interrupted(how: str, exc: BaseException) -> str:
    days = getattr(exc, "days", None)
    if days is None:
        written = "no day was written by this run"
    elif not days:
        written = "no day had been written yet"
    else:
        shown = days[0] if len(days) == 1 else f"{days[0]} .. {days[-1]}"
        written = f"{plural(len(days), 'day')} written completely ({shown})"
    return (
        f"interrupted by {how}: {written}; nothing partial or temporary was left. "
        "Run the same command again to finish the job."
    )


def _flag_value(found: re.Match[str]) -> str:
    return f"--{found[1].replace('_', '-')} {found[2]}"


_OPTION_NAMES = re.compile(
    r"(?<![\w-])(timeout|max_retry_after|stall_timeout|min_speed|max_window_bytes|"
    r"on_bad_lines)="
)
_CLI_ALIASES = {"verify=": "--ca-bundle=", "base_url": "--base-url"}
#: Whole phrases of the library's messages that speak Python, in the CLI's words.
_CLI_PHRASES = {
    "pass api_secret=... or set the ROBOTMIA_API_SECRET environment variable": (
        "set the ROBOTMIA_API_SECRET environment variable (or run on a terminal to be asked for it)"
    ),
    "pass project_timezone='Europe/Paris'": "pass --timezone Europe/Paris",
    "must be a 'YYYY-MM-DD' string or a datetime.date": "must be a day, YYYY-MM-DD",
    "where is empty; pass where=None for no filter": "--where is empty; leave it out for no filter",
    "Check ROBOTMIA_API_SECRET / api_secret.": "Check ROBOTMIA_API_SECRET.",
    "pass api_secret or set ROBOTMIA_API_SECRET": "set ROBOTMIA_API_SECRET",
    "Pass partition_by=('date', 'event')": "Pass --partition-by-event",
    "Pass partition_by=('date',) without split_by='event'": (
        "Leave out --partition-by-event and --split-by"
    ),
    "(partition_by=('date',))": "(without --partition-by-event)",
    "event= or where=": "--event or --where",
    "Leave sparse_columns=None, and fold rare keys into a map column when reading: "
    "read_parquet_dataset(path, sparse_columns='map')": (
        "Leave out --sparse-columns, and fold rare keys into a map column when reading: "
        "robotmia-frames read PATH --sparse-columns map"
    ),
}
_CLI_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"on_type_mismatch='(\w+)'"), r"--on-type-mismatch \1"),
    (re.compile(r"\bdtype for "), "--dtype for "),
    # the ways out of a MemoryBudgetError
    (re.compile(r"\bcolumns=\[\.\.\.\]"), "--columns A,B,..."),
    (re.compile(r"\b(split_by|sparse_columns|max_memory)='(\w+)'"), _flag_value),
    (re.compile(r"\bmax_memory=None\b"), "--max-memory none"),
    (re.compile(r"\bmax_memory=([\d,]+) bytes"), r"--max-memory \1 bytes"),
    (re.compile(r"\bexport_to_parquet\(\.\.\.\)"), "the export command"),
    (re.compile(r"\bnot available for (export|sync)_to_parquet\b"), r"not available for \1"),
]
#: Parameter names, as the flags (or arguments) of each command that sets them.
_CLI_NAMES: dict[str | None, dict[str, str]] = {
    None: {
        "project_timezone": "--timezone",
        "lookback_days": "--lookback-days",
        "concurrency": "--concurrency",
        "limit": "--limit",
        "where": "--where",
    },
    "export": {"from_date": "FROM", "to_date": "TO"},
    "sync": {"from_date": "--start-date", "to_date": "--end-date"},
    "read": {"from_date": "--from", "to_date": "--to"},
}


@functools.cache
def _snake_flags() -> dict[str, str]:
    """Every ``--two-words`` flag of every command, by its Python spelling
    (``window_days`` -> ``--window-days``): the keyword of the same name."""
    flags: dict[str, str] = {}
    parsers = [build_parser()]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            for flag in action.option_strings:
                name = flag.removeprefix("--").replace("-", "_")
                if flag.startswith("--") and "_" in name:
                    flags[name] = flag
    return flags


def cli_words(message: str, command: str | None = None) -> str:
    """A library message in the command line's words: flags, never Python parameters
    (``timeout=`` -> ``--timeout=``, ``project_timezone`` -> ``--timezone``, and the
    dates as the ``command`` names them). The one place the CLI translates.

    Example:
        >>> cli_words("raise timeout= or min_speed=0; check base_url")
        'raise --timeout= or --min-speed=0; check --base-url'
        >>> cli_words("from_date must be a 'YYYY-MM-DD' string or a datetime.date", "read")
        '--from must be a day, YYYY-MM-DD'
        >>> cli_words('window_days must be "auto" or an integer from 1 to 31, got 99')
        '--window-days must be "auto" or an integer from 1 to 31, got 99'
    """
    for phrase, words in _CLI_PHRASES.items():
        message = message.replace(phrase, words)
    for pattern, replacement in _CLI_PATTERNS:
        message = pattern.sub(replacement, message)
    for name, flag in _CLI_ALIASES.items():
        message = re.sub(rf"(?<![\w-]){re.escape(name)}", flag, message)
    # the command's own names first, then any snake_case keyword that is a flag too
    names = {**_snake_flags(), **_CLI_NAMES[None], **_CLI_NAMES.get(command, {})}
    for name, flag in names.items():
        # a parameter name, alone or as "name=" (a bare "where" is English: only "where=")
        tail = "=" if name == "where" else r"(?![\w])"
        message = re.sub(rf"(?<![\w\-\[\"']){re.escape(name)}{tail}", flag, message)
    return _OPTION_NAMES.sub(lambda m: "--" + m.group(1).replace("_", "-") + "=", message)


def _one_line(message: str) -> str:
    """A message on one line (a where expression's caret display is dropped)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    lines = [ln for ln in lines if set(ln) != {"^"}]
    return "; ".join(lines) if lines else message


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class UsageError(ValueError):
    """A problem with how the command was called (exit code 2)."""


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    if isinstance(exc, APIError):
        return EXIT_API
    if isinstance(exc, (NetworkError, IncompleteDownloadError)):
        return EXIT_NETWORK
    if isinstance(exc, (ParseError, TypeMismatchError)):
        return EXIT_PARSE
    if isinstance(exc, MemoryBudgetError):
        return EXIT_MEMORY
    if isinstance(exc, (ValueError, FileNotFoundError, NotADirectoryError)):
        return EXIT_USAGE
    return EXIT_ERROR
