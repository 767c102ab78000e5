"""The command line's argument parser: every command, its options and its help."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any, TypeAlias

from .._version import __version__
from ..client import LONG_SYNC_DAYS
from ..parse import scanner_status

EXIT_CODES = """\
exit codes:
  0    success
  1    unexpected error (run again with --debug for the traceback); a long sync not confirmed
  2    bad arguments: dates, timezone, where expression, columns, missing secret or file, an output folder that cannot be written (a file, say), a busy serve port
  3    authentication refused (HTTP 401/403): check the API secret
  4    API error (any other HTTP error after retries)
  5    network failure or incomplete download, after retries
  6    malformed export data (a bad line; see --on-bad-lines), or a value that does not fit --dtype with --on-type-mismatch error
  7    the result would not fit the memory budget (--max-memory): the message names the ways out (--columns, --split-by event, --sparse-columns map)
  130  interrupted (Ctrl-C)
  143  stopped by SIGTERM (timeout, Kubernetes, Airflow)

Ctrl-C and SIGTERM stop cleanly: days already written stay whole, nothing
partial or temporary is left, and running the same command again finishes the job."""


SECRET_HELP = """\
the API secret (Project Settings in robotmia) is read from ROBOTMIA_API_SECRET, or
asked for at a hidden prompt when run on a terminal; there is no flag for it, so
that it never lands in your shell history."""


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _para(text: str) -> str:
    return textwrap.fill(text, width=79)


def _common(json_output: bool = True) -> argparse.ArgumentParser:
    """Options every subcommand shares (they may also come before the subcommand)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    if json_output:
        p.add_argument("--json", action="store_true", help="print one JSON document (scripts)")
        p.add_argument(
            "--no-progress",
            action="store_true",
            help="no progress bar (bars show only on a terminal, for work over a second)",
        )
    return p


def _remote(p: argparse.ArgumentParser) -> None:
    """Options of the commands that talk to robotmia (export, sync)."""
    p.add_argument(
        "--out", required=True, metavar="PATH", help="dataset folder or URL (created if needed)"
    )
    p.add_argument("--event", action="append", metavar="NAME", help="only this event (repeatable)")
    p.add_argument(
        "--where", metavar="EXPR", help='server-side filter, e.g. \'properties["$os"] == "Linux"\''
    )
    p.add_argument(
        "--timezone",
        metavar="TZ",
        help="project timezone, IANA name (default: ROBOTMIA_PROJECT_TIMEZONE)",
    )
    p.add_argument(
        "--region", choices=["us", "eu", "in"], help="data residency region (default: us)"
    )
    p.add_argument("--base-url", metavar="URL", help="export endpoint (overrides --region)")
    p.add_argument("--partition-by-event", action="store_true", help="partition by date and event")
    p.add_argument(
        "--table-format",
        choices=["hive", "delta"],
        help="hive: Parquet folders (default for a new dataset); delta: a Delta Lake table. "
        "An existing dataset keeps its own. --out may be a URL (s3://bucket/events): "
        "credentials come from the filesystem's usual sources (AWS_* variables, ...)",
    )
    p.add_argument("--dedupe", action="store_true", help="drop repeated events ($insert_id)")
    p.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="windows at once (default 4)"
    )
    p.add_argument(
        "--window-days",
        type=_window_days,
        default="auto",
        metavar="N|auto",
        help="days per request: auto (sized to the data, default) or 1 to 31",
    )
    p.add_argument(
        "--window-target-mb",
        type=_mebibytes,
        default=64.0,
        metavar="MB",
        help="compressed body size auto windows aim at, in MiB (default 64)",
    )
    p.add_argument("--timeout", type=float, metavar="S", help="read timeout in seconds")
    p.add_argument(
        "--max-retry-after",
        type=float,
        metavar="S",
        help="longest server Retry-After waited for (default 300); longer fails at once",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        metavar="S",
        help="seconds a body may arrive slower than --min-speed before it is retried (default 60)",
    )
    p.add_argument(
        "--min-speed",
        type=float,
        metavar="B",
        help="bytes a second a started body must keep up (default 1024; 0: off)",
    )
    p.add_argument(
        "--max-window-bytes",
        type=int,
        metavar="B",
        help="largest body one window may send, as received (default 64 GiB)",
    )
    p.add_argument("--ca-bundle", metavar="PEM", help="CA bundle to verify the server with")
    _bad_lines(p)
    _columns(p, dataset=True)
    _typed(p)
    _shaped(p, dataset=True)


def _bad_lines(p: argparse.ArgumentParser, *, files: bool = False) -> None:
    """``--on-bad-lines`` (``on_bad_lines=``); with ``files``, of the commands that read
    an export file or a dataset (a dataset has no malformed lines: refused there)."""
    p.add_argument(
        "--on-bad-lines",
        choices=["error", "skip", "warn"],
        default=None if files else "error",
        help="what a malformed line "
        + ("of an export file " if files else "")
        + "does: error (default, exit 6), skip it, or skip it with a warning",
    )


def _typed(p: argparse.ArgumentParser) -> None:
    """``--dtype`` and ``--on-type-mismatch`` (``dtype=``, ``on_type_mismatch=``)."""
    p.add_argument(
        "--dtype",
        action="append",
        metavar="COL=TYPE",
        help="pin a column's type: int64, float64, bool or string (repeatable or "
        "comma-separated), e.g. --dtype properties.Price=float64",
    )
    p.add_argument(
        "--on-type-mismatch",
        choices=["text", "null", "error"],
        default="text",
        help="a value that does not fit its --dtype: keep the column text (default), "
        "null with the original in <column>__raw, or an error (exit 6)",
    )


def _columns(p: argparse.ArgumentParser, *, dataset: bool = False) -> None:
    """``--columns`` (``columns=``): the columns read, or with ``dataset`` written."""
    p.add_argument(
        "--columns",
        action="append",
        metavar="A,B,...",
        help=("write " if dataset else "") + "only these columns (comma-separated, repeatable)",
    )


def _shaped(p: argparse.ArgumentParser, *, dataset: bool = False) -> None:
    """``--split-by``, ``--sparse-columns``, ``--sparse-threshold``, ``--max-memory``
    (``split_by=``, ``sparse_columns=``, ``sparse_threshold=``, ``max_memory=``): the
    shape of a read's result or, with ``dataset``, of the days a command writes."""
    p.add_argument(
        "--split-by",
        choices=["event"],
        help="each event's files hold only the columns its events carry (the layout "
        "of --partition-by-event)"
        if dataset
        else "one table per event name, each with only the columns its events carry",
    )
    p.add_argument(
        "--sparse-columns",
        choices=["map"],
        help="refused here (exit 2): a dataset keeps every key as its own column; "
        "'read --sparse-columns map' folds rare keys into a map column when reading"
        if dataset
        else "keep rare keys (filled in under --sparse-threshold of the rows) in one "
        "'properties' map column instead of a column each",
    )
    p.add_argument(
        "--sparse-threshold",
        type=float,
        default=0.1,
        metavar="F",
        help="with --sparse-columns map: the share of rows a key must fill to stay a "
        "column (default 0.1)",
    )
    what = "writing one day" if dataset else "the result"
    p.add_argument(
        "--max-memory",
        type=_memory,
        default="auto",
        metavar="SIZE|auto|none",
        help=f"fail early (exit 7) when {what} would take this process past SIZE "
        "(bytes, or e.g. 500MB, 8GB); auto (default): half the memory available; "
        "none: no check",
    )


#: The subparsers of :func:`build_parser`.
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _command(
    sub: _Commands, name: str, parent: argparse.ArgumentParser, *, description: str, **kw: Any
) -> argparse.ArgumentParser:
    """Add the command ``name`` (``kw``: ``help``, ``epilog``), its description wrapped."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, parents=[parent], formatter_class=_FORMATTER, description=_para(description), **kw
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="robotmia-frames",
        description=_para(
            "robotmia raw event exports as Parquet datasets, with correct UTC times."
        ),
        epilog=f"""\
start with 'robotmia-frames demo' (no account needed); 'robotmia-frames COMMAND
--help' shows each command's options and examples.

{SECRET_HELP}

{EXIT_CODES}""",
        formatter_class=_FORMATTER,
        parents=[_common(json_output=False)],
    )
    p.set_defaults(debug=False)
    p.add_argument(
        "--version",
        action="version",
        version=f"robotmia-frames {__version__}\nparse engine: {scanner_status()}",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_export, _add_sync, _add_read, _add_inspect, _add_serve, _add_demo):
        add(sub, common)
    return p


def _add_export(sub: _Commands, common: argparse.ArgumentParser) -> None:
    e = _command(
        sub,
        "export",
        common,
        help="export a date range into a Parquet dataset",
        description=(
            "Export FROM..TO (inclusive days of the project's timezone) into a "
            "Hive-partitioned Parquet dataset (date=YYYY-MM-DD/), one atomic day at a time. "
            "Days already in the dataset are replaced whole."
        ),
        epilog=f"""\
examples:
  export ROBOTMIA_API_SECRET=...  ROBOTMIA_PROJECT_TIMEZONE=Europe/Paris
  robotmia-frames export 2024-01-01 2024-01-31 --out events/
  robotmia-frames export 2024-01-01 2024-01-07 --out events/ --event Purchase --event Signup
  robotmia-frames export 2024-01-01 2024-01-07 --out events/ \\
      --where 'properties["$os"] == "Linux"' --region eu --json
  robotmia-frames export 2021-01-01 2023-12-31 --out events/ --dry-run

{SECRET_HELP}

{EXIT_CODES}""",
    )
    e.add_argument("from_date", metavar="FROM", help="first day, YYYY-MM-DD")
    e.add_argument("to_date", metavar="TO", help="last day, YYYY-MM-DD (inclusive)")
    e.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (windows, requests, API-hours at the rate limit); send nothing",
    )
    _remote(e)


def _add_sync(sub: _Commands, common: argparse.ArgumentParser) -> None:
    s = _command(
        sub,
        "sync",
        common,
        help="bring a dataset up to date, catching late events",
        description=(
            "Re-export from (the last synced day - LOOKBACK) through --end-date "
            "(default: today in the project timezone), replacing those days whole. Mobile "
            "events can arrive up to 5 days late; running sync daily keeps every day "
            "complete, and running it twice changes nothing. The dataset's state (project "
            "timezone, days done) is kept in its data files' own Parquet metadata; "
            "--timezone defaults to the dataset's."
        ),
        epilog=f"""\
examples:
  robotmia-frames sync --out events/ --start-date 2024-01-01
  robotmia-frames sync --out events/ --start-date 2024-01-01 --lookback-days 7 --json

{SECRET_HELP}

{EXIT_CODES}""",
    )
    s.add_argument(
        "--start-date", required=True, metavar="DAY", help="first day ever synced, YYYY-MM-DD"
    )
    s.add_argument("--end-date", metavar="DAY", help="last day (default: today, project time)")
    s.add_argument(
        "--lookback-days",
        type=int,
        default=5,
        metavar="N",
        help="days re-exported before the last synced day (default 5)",
    )
    s.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help=f"start a long sync without asking (a sync over more than {LONG_SYNC_DAYS} days "
        "prints its requests and API-hours first and, on a terminal, asks; without a "
        "terminal it starts without asking)",
    )
    _remote(s)


def _add_read(sub: _Commands, common: argparse.ArgumentParser) -> None:
    r = _command(
        sub,
        "read",
        common,
        help="preview a dataset or an export file as a table",
        description=(
            "Read a local Parquet dataset folder (written by export or sync) or an "
            "export file (.jsonl or .jsonl.gz) and print the first rows as a table."
        ),
        epilog=f"""\
examples:
  robotmia-frames read events/
  robotmia-frames read events/ --from 2024-01-02 --to 2024-01-03 --columns 'event,time,$os'
  robotmia-frames read events/ --where 'properties["plan"] == "pro"' --limit 50
  robotmia-frames read export.jsonl.gz --timezone Europe/Paris --json --limit 0 > rows.json
  robotmia-frames read export.jsonl.gz --timezone UTC --split-by event --limit 3
  robotmia-frames read events/ --sparse-columns map --max-memory 4GB

Column names are 'event', 'time' and 'properties.<key>'; '$os' is short for
'properties.$os' (any other name is refused, with the nearest column). Times are UTC; reading an export file needs the project timezone
(--timezone or ROBOTMIA_PROJECT_TIMEZONE) to convert them.

{EXIT_CODES}""",
    )
    r.add_argument("source", type=Path, metavar="PATH", help="dataset folder or export file")
    r.add_argument("--where", metavar="EXPR", help="keep the rows this expression selects")
    _columns(r)
    r.add_argument("--from", dest="from_date", metavar="DAY", help="first day (datasets)")
    r.add_argument("--to", dest="to_date", metavar="DAY", help="last day (datasets)")
    r.add_argument(
        "--event", action="append", metavar="NAME", help="only this event (repeatable; datasets)"
    )
    r.add_argument(
        "--timezone",
        metavar="TZ",
        help="project timezone (export files; datasets recorded theirs)",
    )
    r.add_argument(
        "--limit",
        type=int,
        default=10,
        metavar="N",
        help="rows to print (default 10; 0: all), per table with --split-by",
    )
    _bad_lines(r, files=True)
    _typed(r)
    _shaped(r)


def _add_inspect(sub: _Commands, common: argparse.ArgumentParser) -> None:
    i = _command(
        sub,
        "inspect",
        common,
        help="summarise a dataset or an export file",
        description=(
            "Summarise a dataset folder or an export file: days and rows per "
            "day, time range, columns with their types and null rates, and type conflicts. "
            "For an export file, a conflict is a column whose values had mixed JSON types "
            "(the type policy folded it to text); for a dataset, a column whose type "
            "differs between days. A dataset is summarised from its Parquet footers."
        ),
        epilog=f"""\
examples:
  robotmia-frames inspect events/
  robotmia-frames inspect s3://my-bucket/events
  robotmia-frames inspect export.jsonl.gz
  robotmia-frames inspect events/ --json | jq '.columns[] | select(.null_rate > 0.5)'

{EXIT_CODES}""",
    )
    i.add_argument(
        "source",
        metavar="PATH",
        help="dataset folder or URL (s3://bucket/events: credentials from the AWS_* "
        "environment), a Delta table, or an export file",
    )
    i.add_argument(
        "--timezone",
        metavar="TZ",
        help="project timezone, noted in the summary (a file's days are project-local)",
    )
    _bad_lines(i, files=True)


def _add_serve(sub: _Commands, common: argparse.ArgumentParser) -> None:
    sv = _command(
        sub,
        "serve",
        _common(json_output=False),
        help="run the local export server (no account needed)",
        description=(
            "Serve generated events at http://127.0.0.1:PORT/api/2.0/export/ "
            "(and profiles at /api/2.0/engage), as robotmia does: Basic auth with the "
            "secret as user name, gzip JSONL, date/event/where filtering. Loopback only."
        ),
        epilog="""\
examples:
  robotmia-frames serve --port 8765 --timezone Europe/Paris
  # it prints the lines that point every command (and Python) at it, e.g.
  export ROBOTMIA_BASE_URL=http://127.0.0.1:8765/api/2.0/export/ \\
      ROBOTMIA_API_SECRET=test-secret ROBOTMIA_PROJECT_TIMEZONE=Europe/Paris

  # or in the background, this shell set up at once (stop: kill $ROBOTMIA_SERVE_PID);
  # then any command of the README runs as written against it:
  eval "$(robotmia-frames serve --print-env)"
""",
    )
    sv.add_argument(
        "--port", type=int, help="port (default 8765, with --print-env any free one; 0: any free)"
    )
    sv.add_argument(
        "--print-env",
        action="store_true",
        help="start in the background and print shell lines that point commands at it",
    )
    sv.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    sv.add_argument("--days", type=int, default=30, help="days of data (default 30)")
    sv.add_argument("--events-per-day", type=int, default=1000, help="default 1000")
    sv.add_argument("--from-date", default="2024-01-01", help="first day of data")
    sv.add_argument("--seed", type=int, default=0, help="generator seed")
    sv.add_argument("--timezone", default="America/Los_Angeles", help="project timezone")
    sv.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")


def _add_demo(sub: _Commands, common: argparse.ArgumentParser) -> None:
    d = _command(
        sub,
        "demo",
        _common(json_output=False),
        help="export two weeks from the built-in local server and summarise them",
        description=(
            "Start the local export server, export two weeks (2024-03-01..14, "
            "across the US daylight-saving change) into a Parquet dataset, and summarise it."
        ),
        epilog="""\
examples:
  robotmia-frames demo
  robotmia-frames demo --out demo-events/ && robotmia-frames inspect demo-events/""",
    )
    d.add_argument(
        "--out", type=Path, help="dataset folder (default: a temporary folder, removed after)"
    )
    d.add_argument("--keep", action="store_true", help="keep the temporary folder")
    d.add_argument("--events-per-day", type=int, default=2000, help="default 2000")
    d.add_argument("--timezone", default="America/Los_Angeles", help="project timezone")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")


def _window_days(text: str) -> int | str:
    """``--window-days``: ``auto`` or a whole number (the library checks its range)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a number of days, got {text!r}"
        ) from None


def _mebibytes(text: str) -> float:
    """``--window-target-mb``: a size in MiB, at least one byte."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value * (1 << 20) >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive size in MiB, got {text!r}")
    return value


_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
    "TIB": 1 << 40,
}


def _memory(text: str) -> int | str | None:
    """``--max-memory``: ``auto``, ``none``, or a size in bytes with an optional unit.

    Example:
        >>> _memory("auto"), _memory("none"), _memory("1500000"), _memory("1.5 GB")
        ('auto', None, 1500000, 1500000000)
    """
    word = text.strip().upper()
    if word == "AUTO":
        return "auto"
    if word in ("NONE", "OFF"):
        return None
    number = word.rstrip("KMGTIB ").strip()
    unit = word[len(number) :].strip()
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        value = float("nan")
    if not value >= 1 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected auto, none, or a size such as 8GB, 500MB or 1000000 (bytes), got {text!r}"
        )
    return int(value)
