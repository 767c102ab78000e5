"""The pipeline every public operation shares: plan, windows, parse, unify, write.

``client.py`` (and through it ``api.py``, ``dask``, ``profiles.py`` and the CLI)
calls these pieces; each goes down one stage and comes back once::

    ExportPlan (checked arguments, from a Connection)
      -> iter_windows: transport.download_window per window (_windows sizes them),
         concurrently; each verified body is parsed and split into days
      -> parse_file: parse.read_raw_batches, kinds merged by the type policy
      -> batches: parse.conform + the time stage (+ dedupe, pinned dtypes)
      -> a table (deliver), or DatasetWriter (_datasets): one atomic day at a time

Modules: ``_core`` (plans, parsing a window, batches, results), ``_fetch`` (the
concurrent downloads, handed on by day), ``_windows`` (window sizes and splitting a
body into days), ``_datasets`` (dataset state, writer, queries).
"""

from ._budget import (
    DEFAULT_WINDOW_TARGET_BYTES,
    BudgetPlan,
    WindowPlanner,
    WindowSizing,
    plan_windows,
)
from ._core import (
    Build,
    Connection,
    ExportPlan,
    Tables,
    TableSpec,
    batches,
    call_with,
    check_columns,
    deliver,
    final_schema,
    flat_table,
    in_utc,
    parse_columns,
    parse_file,
    read_file,
    to_utc,
    unified_kinds,
)
from ._datasets import (
    DAY_HOLD_BYTES,
    DatasetQuery,
    DatasetWriter,
    ExportSummary,
    dataset_for_write,
    dataset_location,
    dataset_query,
    dataset_query_of,
    dataset_state,
    sync_budget,
    write_dataset,
    write_window,
)
from ._fetch import fetch_halving, fetch_windows, iter_windows, window_config, window_download
from ._pins import Pinned, SettledPins
from ._split import split_body
from ._windows import (
    BatchHook,
    Parsed,
    Window,
    batch_hook,
    body_bytes_per_day,
    day_cutter,
    day_numbers,
    split_days,
)

__all__ = [
    "DAY_HOLD_BYTES",
    "DEFAULT_WINDOW_TARGET_BYTES",
    "BatchHook",
    "BudgetPlan",
    "Build",
    "Connection",
    "DatasetQuery",
    "DatasetWriter",
    "ExportPlan",
    "ExportSummary",
    "Parsed",
    "Pinned",
    "SettledPins",
    "TableSpec",
    "Tables",
    "Window",
    "WindowPlanner",
    "WindowSizing",
    "batch_hook",
    "batches",
    "body_bytes_per_day",
    "call_with",
    "check_columns",
    "dataset_for_write",
    "dataset_location",
    "dataset_query",
    "dataset_query_of",
    "dataset_state",
    "day_cutter",
    "day_numbers",
    "deliver",
    "fetch_halving",
    "fetch_windows",
    "final_schema",
    "flat_table",
    "in_utc",
    "iter_windows",
    "parse_columns",
    "parse_file",
    "plan_windows",
    "read_file",
    "split_body",
    "split_days",
    "sync_budget",
    "to_utc",
    "unified_kinds",
    "window_config",
    "window_download",
    "write_dataset",
    "write_window",
]
