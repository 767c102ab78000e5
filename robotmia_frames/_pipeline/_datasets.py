"""Datasets: where one is, its state, writing a day at a time, and reading it back."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .. import _options, parse, sinks, transport
from ..errors import (
    InvalidArgumentError,
    RobotmiaError,
    RobotmiaWarning,
    user_stacklevel,
)
from ..parse import PROPERTY_PREFIX, Kind, arrow_type, unify_into
from ..timeconv import resolve_timezone
from ..where import (
    Compiled,
    compile_where,
    folded_columns,
)
from ._budget import BudgetPlan
from ._core import Connection, ExportPlan, batches, call_with, final_schema
from ._fetch import iter_windows
from ._pins import SettledPins
from ._windows import Parsed, Window, add_event_keys

#: The most bytes of parsed batches, mostly nulls, a day written to a dataset is
#: held in: a bigger wide day (thousands of keys laid out over every row) is
#: parsed again as it is written, one chunk at a time (see ``parse_file``).
DAY_HOLD_BYTES = 64 << 20


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_to_parquet` (or :func:`sync_to_parquet`) wrote.

    ``path`` is the dataset folder (a local ``Path``, or the URL it was given)."""

    path: Path | str
    rows: int
    days: int
    files: int
    bytes: int
    rows_per_day: dict[str, int] = field(default_factory=dict)
    from_date: dt.date | None = None
    to_date: dt.date | None = None


def dataset_location(
    path: str | os.PathLike[str] | sinks.Location,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
) -> sinks.Location:
    """Where a dataset lives (checked before any request; nothing is written)."""
    if isinstance(path, sinks.Location):
        return path
    return sinks.locate(path, storage_options=storage_options, filesystem=filesystem)


_DELTA_SCHEMES = ("file", "s3", "s3a", "gs", "az", "abfs", "abfss")


def check_delta_location(location: sinks.Location, *, filesystem: Any = None) -> None:
    """Refuse a Delta table where ``deltalake`` cannot write it: through a
    ``filesystem=`` object on object storage, or at a URL of a store it does not have
    (``memory://``, say). The message says what to pass instead."""
    if location.local:
        return
    if filesystem is not None or "://" not in str(location.url):
        raise InvalidArgumentError(
            "table_format='delta' cannot write through filesystem= on object storage: "
            "deltalake writes with its own object stores. Pass path as a URL "
            "('s3://bucket/events') with storage_options (key, secret, endpoint_url, ...) "
            "or the AWS_* environment, or use table_format='hive' with filesystem="
        )
    scheme = str(location.url).split("://", 1)[0].lower()
    if scheme not in _DELTA_SCHEMES:
        raise InvalidArgumentError(
            f"table_format='delta' cannot write to {location.url}: path must be a local "
            f"path or a {', '.join(s + '://' for s in _DELTA_SCHEMES)} URL (deltalake's own "
            "object stores); use one of those, or table_format='hive' for this path"
        )


def open_dataset(
    location: sinks.Location,
    *,
    partition_by: Sequence[str] = ("date",),
    table_format: str | None = None,
    storage_options: dict[str, Any] | None = None,
    create: bool = False,
) -> sinks.ParquetDataset:
    """The dataset at ``location``: a Delta table when it has a ``_delta_log`` (or
    ``table_format="delta"`` asks for one), else a Hive dataset. Asking for the
    other format than an existing dataset's (a Delta table over Hive days, or the
    reverse) is an error."""
    found = "delta" if sinks.is_delta(location) else None
    if table_format is not None:
        _options.table_format(table_format)
    if found is None and table_format == "delta":
        if sinks.ParquetDataset(location, create=False).files():
            raise InvalidArgumentError(
                f"the dataset {location.url} is a Hive dataset: pass table_format='hive' "
                "(or leave it out), or write the Delta table to a new path"
            )
        found = "delta"
    elif found == "delta" and table_format == "hive":
        raise InvalidArgumentError(
            f"the dataset {location.url} is a Delta table: pass table_format='delta' "
            "(or leave it out), or write to a new path"
        )
    if found == "delta":
        check_delta_location(location)
        if tuple(partition_by) != ("date",):
            raise InvalidArgumentError(
                f"a Delta table is partitioned by date only, got partition_by={partition_by!r}"
            )
        return sinks.DeltaDataset(location, storage_options=storage_options, create=create)
    return sinks.ParquetDataset(location, partition_by=partition_by, create=create)


#: The packages whose errors say that a dataset's storage cannot be reached or read
#: (fsspec and the filesystems behind it, the AWS, Google and Azure clients).
_STORAGE_PACKAGES = ("fsspec", "s3fs", "gcsfs", "adlfs", "botocore", "aiohttp", "google", "azure")


@contextlib.contextmanager
def _reading_storage(location: sinks.Location, doing: str = "read") -> Iterator[None]:
    """A dataset's storage that cannot be read or written (``doing``: unreachable,
    refused, not Parquet) is an error naming the dataset, whichever filesystem
    package raised it; a missing dataset stays :class:`FileNotFoundError`."""
    try:
        yield
    except (RobotmiaError, FileNotFoundError):
        raise
    except Exception as exc:
        package = type(exc).__module__.split(".")[0]
        if not isinstance(exc, (OSError, pa.ArrowException)) and package not in _STORAGE_PACKAGES:
            raise
        raise InvalidArgumentError(
            f"cannot {doing} the dataset at {location.url}: {type(exc).__name__}: {exc}"
        ) from None


def dataset_state(
    location: sinks.Location, storage_options: dict[str, Any] | None = None
) -> sinks.DatasetState:
    """What the dataset at ``location`` records (empty for a new dataset)."""
    ds = open_dataset(location, storage_options=storage_options)
    with _reading_storage(location):
        records = ds.records()
    return sinks.load_state(location, records)


def check_timezone(state: sinks.DatasetState, timezone: str, location: sinks.Location) -> None:
    """Refuse to write days of another project timezone into a dataset."""
    if state.project_timezone is None or state.project_timezone == timezone:
        return
    raise InvalidArgumentError(
        f"the dataset {location.url} holds days of project timezone "
        f"{state.project_timezone!r}, not {timezone!r}: one dataset is one timezone. "
        f"Pass project_timezone={state.project_timezone!r} (or leave it out: the "
        "dataset's own is used), or write to a new path"
    )


def dataset_timezone(
    conn: Connection, state: sinks.DatasetState, project_timezone: str | None
) -> str:
    """The timezone of a write: the call's, the client's, the dataset's, else the
    environment's."""
    given = project_timezone or conn.project_timezone or state.project_timezone
    return conn.timezone(given)


def dataset_for_write(
    conn: Connection,
    path: str | os.PathLike[str],
    *,
    project_timezone: str | None,
    storage_options: dict[str, Any] | None,
    filesystem: Any,
    table_format: str | None,
) -> tuple[sinks.Location, sinks.DatasetState, str]:
    """Where an export or a sync writes, what the dataset records, and the timezone
    of the write (the dataset's when none is given; another one is refused), all
    checked before any request."""
    location = dataset_location(path, storage_options, filesystem)
    if table_format is not None:
        _options.table_format(table_format)
    if table_format == "delta":
        check_delta_location(location, filesystem=filesystem)
    state = dataset_state(location, storage_options)
    tz = dataset_timezone(conn, state, project_timezone)
    check_timezone(state, tz, location)
    return location, state, tz


class DatasetWriter:
    """Writes one day at a time, keeping column types consistent across days.

    It holds the dataset's writer lock from creation to :meth:`close` (a second
    writer waits, then fails clearly) and refuses a dataset of another project
    timezone. A column that a later day adds or widens is added to (widened in) the
    older days once, at the end (:meth:`finish`), from their own values: widening in
    steps would be lossy (int 1 -> float 1.0 -> string "1.0" instead of "1").
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | sinks.Location,
        partition_by: Sequence[str],
        metadata: dict[str, Any],
        *,
        storage_options: dict[str, Any] | None = None,
        filesystem: Any = None,
        table_format: str | None = None,
    ) -> None:
        self.location = dataset_location(root, storage_options, filesystem)
        if table_format == "delta":
            check_delta_location(self.location, filesystem=filesystem)
        self._held = contextlib.ExitStack()
        with _reading_storage(self.location, "write"):
            self._held.enter_context(sinks.writer_lock(self.location))
        try:
            self.ds = open_dataset(
                self.location,
                partition_by=partition_by,
                table_format=table_format,
                storage_options=storage_options,
                create=True,
            )
            self.ds.check_writable()  # before any request: a read-only folder fails at once
            self.ds.check_layout()
            self.ds.recover()
            schemas = self.ds.schemas()  # every footer, read once for kinds and state
            self.kinds = sinks.unify_kinds_of_schemas(schemas.values())
            self.state = sinks.load_state(self.location, self.ds.records(schemas))
            tz = metadata.get("project_timezone")
            if isinstance(tz, str):
                check_timezone(self.state, tz, self.location)
            self.metadata = metadata
            self.rows = 0
            self.files = 0
            self.bytes = 0
            self.rows_per_day: dict[str, int] = {}
            self._days_written: dict[dt.date, sinks.DayWriteResult] = {}
            self._recorded_complete = False
            # A run killed while widening older days leaves some of them narrower:
            # bring them in line first.
            self.widened: set[str] = set(self.kinds)
            self.finish()
        except BaseException:
            self._held.close()
            raise

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the writer lock."""
        self._held.close()

    def complete(self, start: dt.date, end: dt.date) -> None:
        """Finish a run over ``start..end``: widen what a later day widened, then record
        the run's range (cut at today) in the footer of the newest day up to ``end``,
        unless the day ``end`` itself was written with it (:meth:`write`)."""
        self.finish()
        if not self._recorded_complete:
            ranges = self._ranges(start, end)
            days = [d for d in self.ds.days() if d <= end and self.ds.files(d)]
            if days:
                self.ds.rewrite_day(
                    days[-1],
                    self.kinds,
                    self.metadata,
                    update={"complete": sinks.encode_ranges(ranges)},
                )
        if self.location.local:  # the state older versions kept inside the folder
            shutil.rmtree(Path(self.location.path, sinks.LEGACY_DIR), ignore_errors=True)

    def _ranges(self, start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
        tz = self.metadata.get("project_timezone")
        state = sinks.DatasetState(
            tz if isinstance(tz, str) else self.state.project_timezone,
            complete=self.state.complete,
        )
        return state.with_run(start, end)

    def finish(self) -> None:
        """Rewrite, once each and oldest first, the days lacking a column or holding one
        narrower than the dataset's kind for it, so every file has every column, typed
        alike."""
        if not self.widened or self.ds.table_format == "delta":
            self.widened = set()  # a Delta table widens in the commit that widens it
            return
        for day in self.ds.days():
            if any(self._narrower(f, self.widened) for f in self.ds.files(day)):
                self.ds.rewrite_day(day, self.kinds, self.metadata)
        self.widened = set()

    def write(self, window: Window, plan: ExportPlan) -> None:
        """Write one downloaded window as its day's partition (older days are brought
        to its columns and types once, by :meth:`finish`, from their own values)."""
        merged = self.merged_kinds(window.kinds)
        meta = self.day_metadata(window.day, plan.start, plan.end, window.bytes_per_day)
        result = write_window(self.ds, window.day, window.parsed, merged, plan, meta)
        self.commit_written(window.day, self.written(merged, plan), result, plan)

    def written(self, merged: dict[str, Kind], plan: ExportPlan) -> dict[str, Kind]:
        """The kinds the dataset has once a day is written with ``merged``: with
        ``plan.columns``, only of the columns written (the dedupe keys were parsed
        too, not written)."""
        if plan.columns is None:
            return merged
        return {k: v for k, v in merged.items() if k in self.kinds or k in plan.columns}

    def commit_written(
        self,
        day: dt.date,
        merged: dict[str, Kind],
        result: sinks.DayWriteResult,
        plan: ExportPlan,
    ) -> None:
        """:meth:`commit` a day that :func:`write_window` wrote with the ``merged``
        kinds, taking the pinned columns (``dtype=``) at the types they were written
        with (earlier days narrower than those are rewritten by :meth:`finish`)."""
        narrower: set[str] = set()
        if plan.pinned.dtypes and result.files:  # the pinned types as written
            narrower = plan.pinned.kinds(merged, self.kinds, self.ds.schema_of(result.files[0]))
        self.commit(day, merged, result, end=plan.end)
        self.widened |= narrower

    def day_metadata(
        self, day: dt.date, start: dt.date, end: dt.date, bytes_per_day: int | None = None
    ) -> dict[str, Any]:
        """What the files of ``day`` record: the run's metadata, the compressed bytes
        per day of the body it came in (``bytes_per_day``, which later runs size their
        windows from) and the day ranges known complete (a replaced file forgets none
        of them); the last day ``end`` adds the run's own range, which is complete once
        that day lands."""
        meta = dict(self.metadata)
        if bytes_per_day is not None:
            meta[sinks.BYTES_KEY] = bytes_per_day
        ranges = self._ranges(start, end) if day == end else self.state.complete
        if ranges:
            meta["complete"] = sinks.encode_ranges(ranges)
        return meta

    def merged_kinds(
        self, window_kinds: dict[str, Kind], base: dict[str, Kind] | None = None
    ) -> dict[str, Kind]:
        """The dataset's column kinds (``base``, else the current ones) plus a window's."""
        merged = dict(self.kinds if base is None else base)
        return unify_into(merged, ((PROPERTY_PREFIX + k, v) for k, v in window_kinds.items()))

    def commit(
        self,
        day: dt.date,
        merged: dict[str, Kind],
        result: sinks.DayWriteResult,
        *,
        end: dt.date | None = None,
    ) -> None:
        """Record ``day`` as written with the ``merged`` kinds and count what was
        written (a day written again in the same run counts once: it replaced itself). Days it widened a column for are rewritten once, by :meth:`finish`.
        The last day of the run (``end``), written with :meth:`day_metadata`, holds
        the run's complete range when it has a file (a Delta commit always does)."""
        if day == end and (result.rows or self.ds.table_format == "delta"):
            self._recorded_complete = True
        self.widened |= self._changed(merged)
        self.kinds = merged
        before = self._days_written.get(day)  # a day written again replaced itself
        if before is not None:
            self.rows -= before.rows
            self.files -= len(before.files)
            self.bytes -= before.bytes
        self._days_written[day] = result
        self.rows += result.rows
        self.files += len(result.files)
        self.bytes += result.bytes
        self.rows_per_day[day.isoformat()] = result.rows

    def _changed(self, merged: dict[str, Kind]) -> set[str]:
        """The columns ``merged`` adds to the dataset's or widens."""
        return {k for k, v in merged.items() if self.kinds.get(k) is not v}

    def _narrower(self, path: str, widened: set[str]) -> bool:
        """Whether a file lacks a column of ``widened`` or holds it narrower. In a
        dataset partitioned by date only, every file has every column, so that readers
        taking one file's schema (polars) read them all; partitioned by event, each
        event's files keep only its own columns (``docs/wide.md``)."""
        schema = self.ds.schema_of(path)
        names = set(schema.names)
        every_column = self.ds.partition_by == ("date",)
        for name in widened:
            if name == "time" or name not in self.kinds:
                continue
            if name in names:
                if schema.field(name).type != arrow_type(self.kinds[name]):
                    return True
            elif every_column and name.startswith(PROPERTY_PREFIX):
                return True
        return False

    def summary(self, start: dt.date, end: dt.date) -> ExportSummary:
        return ExportSummary(
            Path(self.ds.root) if self.location.local else self.location.url,
            self.rows,
            len(self.rows_per_day),
            self.files,
            self.bytes,
            dict(self.rows_per_day),
            start,
            end,
        )


def sync_budget(
    conn: Connection,
    path: str | os.PathLike[str],
    from_date: Any,
    to_date: Any,
    *,
    lookback_days: int,
    project_timezone: str | None,
    storage_options: dict[str, Any] | None,
    filesystem: Any,
    table_format: str | None,
    window_days: int | str,
    window_target_bytes: int,
) -> tuple[sinks.Location, sinks.DatasetState, str, BudgetPlan]:
    """Where a sync writes, what the dataset records, the timezone, and the plan of
    the days it re-exports: from the last day done less ``lookback_days``
    (``from_date`` on a first sync) through ``to_date`` (today in the project
    timezone), its auto windows sized from the dataset's history. The one step of
    ``Client.sync_to_parquet`` and ``Client.plan_sync``, the dataset's state read once."""
    location, state, tz = dataset_for_write(
        conn,
        path,
        project_timezone=project_timezone,
        storage_options=storage_options,
        filesystem=filesystem,
        table_format=table_format,
    )
    start = _options.date(from_date, "from_date")
    lookback = _options.positive_int(lookback_days, "lookback_days", allow_zero=True)
    end = (
        _options.date(to_date, "to_date")
        if to_date is not None
        else dt.datetime.now(resolve_timezone(tz)).date()
    )
    begin = start
    done = state.done_through(start)  # export's days count; future days never do
    if done is not None:
        begin = max(start, done - dt.timedelta(days=lookback))
    if begin > end:
        raise InvalidArgumentError(
            f"nothing to sync: the range starts {begin.isoformat()}, "
            f"after to_date {end.isoformat()}"
        )
    budget = conn.budget(
        begin,
        end,
        window_days=window_days,
        window_target_bytes=window_target_bytes,
        bytes_per_day=state.history_bytes_per_day(),
        day_bytes=state.bytes_per_day,
    )
    return location, state, tz, budget


def write_window(
    ds: sinks.ParquetDataset,
    day: dt.date,
    parsed: Parsed,
    merged: dict[str, Kind],
    plan: ExportPlan,
    metadata: dict[str, Any],
) -> sinks.DayWriteResult:
    """Write one parsed window as the partition of ``day``, typed by the dataset's
    ``merged`` kinds (``DatasetWriter.merged_kinds``); the swap-in is atomic."""
    prop_kinds = {
        k[len(PROPERTY_PREFIX) :]: v for k, v in merged.items() if k.startswith(PROPERTY_PREFIX)
    }
    columns = plan.columns
    if columns is not None and "event" not in columns and ds.partition_by == ("date", "event"):
        columns = ["event", *columns]  # the partition key: in the folder names, not the files
    schema = final_schema(prop_kinds, columns)
    event_columns: dict[str | None, set[str]] | None = None
    if ds.partition_by == ("date", "event"):  # each event's files: only its columns
        keys = parsed.events
        if keys is None:
            keys = {}
            for b in parsed.batches:
                add_event_keys(keys, b)
        event_columns = {name: {PROPERTY_PREFIX + k for k in have} for name, have in keys.items()}
    # Written per event, each raw batch is cut by event before it is typed: a wide
    # day is never laid out over every key.
    out = batches(
        parsed,
        prop_kinds,
        plan.timezone,
        columns,
        dedupe=plan.dedupe,
        unit=plan.time_unit,
        events=event_columns,
    )
    if plan.pinned.dtypes:
        pins = _day_pins(parsed, prop_kinds, plan, schema)
        schema = pins.apply(schema.empty_table(), parsed.label).schema
        out = (
            b
            for raw in out
            for b in pins.apply(pa.Table.from_batches([raw]), parsed.label).to_batches()
        )
        if event_columns is not None:  # a pinned column's misfits go with it
            for have in event_columns.values():
                have.update(
                    n
                    for n in schema.names
                    if n.endswith(parse.RAW_SUFFIX) and n.removesuffix(parse.RAW_SUFFIX) in have
                )
    return ds.write_day(day, schema, out, metadata=metadata, event_columns=event_columns)


def _day_pins(
    parsed: Parsed, prop_kinds: dict[str, Kind], plan: ExportPlan, schema: pa.Schema
) -> SettledPins:
    """The pins of one day written to a dataset, settled over the whole day: its
    pinned columns (and their ``__raw`` columns) are taken first, as one narrow
    table, and pinned as the day's table would be (the same misfits, the same
    error with ``on_type_mismatch="error"``, one warning), so that the day is then
    pinned chunk by chunk as it is written, never held whole (a wide day)."""
    names = set(schema.names)
    pinned = [c for c in plan.pinned.dtypes if c in names]
    pinned += [c + parse.RAW_SUFFIX for c in pinned if c + parse.RAW_SUFFIX in names]
    report = parse.PinReport()
    if pinned:
        narrow = batches(
            parsed, prop_kinds, plan.timezone, pinned, dedupe=plan.dedupe, unit=plan.time_unit
        )
        table = pa.Table.from_batches(list(narrow), schema=final_schema(prop_kinds, pinned))
        _, report = parse.pin_types(
            table, plan.pinned.dtypes, plan.pinned.on_type_mismatch, source=parsed.label
        )
    return SettledPins.settled(plan.pinned, [report], parsed.label)


@contextlib.contextmanager
def _closing(windows: Iterator[Window]) -> Iterator[Iterator[Window]]:
    """``windows``, closed on the way out (a generator runs its ``finally`` then)."""
    try:
        yield windows
    finally:
        close = getattr(windows, "close", None)
        if close is not None:
            close()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or, in the command line, SIGTERM) while a dataset was written.

    ``days`` lists the days written, each whole; nothing partial is kept, so a rerun
    of the same call finishes the job.
    """

    def __init__(self, days: list[str]) -> None:
        super().__init__(f"interrupted after writing {len(days)} days")
        self.days = days


def write_dataset(
    plan: ExportPlan,
    location: sinks.Location,
    partition_by: Sequence[str],
    *,
    table_format: str | None = None,
    storage_options: dict[str, Any] | None = None,
    check_day: Callable[[Parsed], None] | None = None,
) -> ExportSummary:
    """Download ``plan``'s windows into the dataset at ``location``, one atomic day at a
    time, under the dataset's writer lock.

    The bodies land in a temporary folder of the run's own, removed at the end. A
    day is encoded and written in a helper thread while the next day parses here
    (at most one day written and one parsed at a time: memory stays flat); with
    pinned types the days are written here, so that their warnings point at the
    caller. ``check_day`` sees each day before it is written (the memory budget).
    With ``plan.columns``, only those columns are written; one that no day holds is
    an error once every day is written (the run is then not recorded complete)."""
    with (
        tempfile.TemporaryDirectory(prefix="robotmia-write-") as workdir,
        DatasetWriter(
            location,
            partition_by,
            plan.metadata(),
            table_format=table_format,
            storage_options=storage_options,
        ) as sink,
    ):
        # Freed C heap goes back to the system (the scanner's, download and writer
        # threads each keep a heap of their own) once the days before are written and
        # freed (the caller holds only the day parsing): before the first day of
        # each body, and before every day of a Delta table, whose writer takes much
        # more of it (1M events, bench_storage.py: 842 MiB peak on Delta without,
        # 718 once a body, 541 once a day; Hive 458, 421 and 379). Each trim costs
        # the pages again (about 1 s of CPU for 31 trims of a 1M-event export).
        trim = False
        every_day = table_format == "delta"

        def write(w: Window) -> None:
            nonlocal trim
            if trim:
                parse.trim_memory()
            trim = every_day or w.last
            try:
                sink.write(w, plan)
            except OSError as exc:
                if exc.errno in transport.NO_ROOM:
                    day = f"day {w.day.isoformat()}"
                    raise transport.no_room(exc, day, Path(sink.ds.root)) from exc
                raise
            finally:
                if w.parsed.path != w.result.path:  # a day cut from a longer body
                    with contextlib.suppress(OSError):
                        w.parsed.path.unlink()
                if w.last and not w.cached and plan.cache_dir is None:
                    with contextlib.suppress(OSError):
                        w.result.path.unlink()

        writing = _DayWriter(inline=bool(plan.pinned.dtypes))
        try:
            # closing(): on an error or Ctrl-C the downloads still running end here,
            # before their temporary folder is removed.
            days = iter_windows(
                plan,
                Path(workdir),
                day_at_a_time=True,
                hold=DAY_HOLD_BYTES,
                events=tuple(partition_by) == ("date", "event"),
            )
            with _closing(days) as windows:
                for w in windows:
                    if check_day is not None:
                        check_day(w.parsed)
                    writing.submit(write, w)
                    del w  # the writer holds it now: freed once written
                writing.wait()
        except BaseException as exc:
            writing.settle()  # the day being written lands whole (or not at all)
            with contextlib.suppress(Exception):  # keep the days written consistent; the
                sink.finish()  # next run repairs them if even this fails
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, Interrupted):
                raise Interrupted(sorted(sink.rows_per_day)) from exc
            raise
        finally:
            writing.close()
            if plan.progress is not None:
                plan.progress.close()
        if sink.rows:
            _options.known_columns(plan.columns, ["event", "time", *sink.kinds], plan.source)
        sink.complete(plan.start, plan.end)
        return sink.summary(plan.start, plan.end)


class _DayWriter:
    """Writes days one at a time in one helper thread (``inline``: in this thread).

    :meth:`submit` first waits for the day before (raising its error), so one day
    at most is being written while the caller parses the next."""

    def __init__(self, *, inline: bool = False) -> None:
        self.pool = None if inline else ThreadPoolExecutor(1, thread_name_prefix="robotmia-write")
        self.running: Future[None] | None = None

    def submit(self, write: Callable[[Window], None], window: Window) -> None:
        self.wait()
        if self.pool is None:
            write(window)
        else:
            self.running = self.pool.submit(write, window)

    def wait(self) -> None:
        """The day being written, written (its error raised here)."""
        running, self.running = self.running, None
        if running is not None:
            running.result()

    def settle(self) -> None:
        """Let the day being written finish, whatever happened here; its own error
        is dropped (the one being raised wins)."""
        with contextlib.suppress(BaseException):
            self.wait()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


@dataclass(frozen=True)
class DatasetQuery:
    """A checked :func:`read_parquet_dataset` request (shared with ``robotmia_frames.dask``)."""

    ds: sinks.ParquetDataset
    start: dt.date | None
    end: dt.date | None
    columns: list[str] | None
    events: tuple[str, ...] | None
    where: str | None
    project_timezone: str | None
    default_timezone: str
    dedupe: bool

    def select(self) -> dict[dt.date, list[str]]:
        """The data files the query reads, by day."""
        return self.ds.select(from_date=self.start, to_date=self.end, event=self.events)

    def tables(
        self,
        day: dt.date | None = None,
        *,
        on_day: Callable[[int, int], None] | None = None,
    ) -> list[pa.Table]:
        """The selected rows (of one ``day`` only, if given), one table per data file
        with its own columns and types (``dedupe`` is left to the caller)."""
        folded: set[str] = set()
        tables = self.ds.read_tables(
            from_date=day or self.start,
            to_date=day or self.end,
            columns=sinks.with_dedupe_keys(self.columns, self.dedupe),
            event=self.events,
            where=None if self.where is None else _where_compiler(self.where, folded),
            project_timezone=self.project_timezone,
            default_timezone=self.default_timezone,
            on_day=on_day,
        )
        if folded:
            _warn_folded(sorted(folded), self.where)
        return tables

    def read(
        self,
        day: dt.date | None = None,
        *,
        on_day: Callable[[int, int], None] | None = None,
    ) -> pa.Table:
        """The selected rows (of one ``day`` only, if given) as one unified table."""
        cols = self.columns
        read_cols = sinks.with_dedupe_keys(cols, self.dedupe)
        table = sinks.unified_table(self.tables(day, on_day=on_day), read_cols)
        if self.dedupe:
            table = pa.Table.from_batches(
                [sinks.Deduper()(b) for b in table.to_batches()], schema=table.schema
            )
            if cols is not None and read_cols != cols:
                table = table.select(cols)
        return table


def _where_compiler(expression: str, folded: set[str]) -> sinks.WhereCompiler:
    """The ``where`` expression compiled for each file's schema and timezone; the
    mixed-type columns (folded to text) it compares are added to ``folded``."""

    def compile_for(schema: pa.Schema, tz: str) -> Compiled:
        folded.update(folded_columns(expression, schema, objects=False))
        return compile_where(expression, schema, project_timezone=tz)

    return compile_for


def _warn_folded(columns: list[str], where: str | None) -> None:
    """Say that ``where`` compares columns whose mixed types the dataset has merged."""
    names = ", ".join(columns)
    warnings.warn(
        f"where={where!r} reads {names}, stored as text in this dataset because the "
        'column held values of several types: there the string "5" and the number 5 '
        'are both stored as "5" and both read as the number 5, while the server\'s '
        "filter tells them apart. For exact results pass where= to the export "
        "(export_to_parquet, read_robotmia_export) or to read_export_file on the saved "
        "export; see 'Mixed-type columns' in docs/where.md.",
        RobotmiaWarning,
        stacklevel=user_stacklevel(),
    )


def dataset_query(
    path: str | os.PathLike[str] | sinks.Location,
    *,
    from_date: _options.DateLike | None,
    to_date: _options.DateLike | None,
    columns: Sequence[str] | None,
    event: str | Sequence[str] | None,
    where: str | None,
    project_timezone: str | None,
    dedupe: bool,
    storage_options: dict[str, Any] | None = None,
    filesystem: Any = None,
) -> DatasetQuery:
    """Check :func:`read_parquet_dataset`'s arguments and find the dataset's layout."""
    location = dataset_location(path, storage_options, filesystem)
    probe = open_dataset(location, storage_options=storage_options)
    with _reading_storage(location):
        days = probe.days()
    if location.local and not Path(location.path).is_dir():
        raise FileNotFoundError(f"no dataset at {location.path}")
    if not location.local and not days and not _exists(location):
        raise FileNotFoundError(f"no dataset at {location.url}")
    start: dt.date | None = None
    end: dt.date | None = None
    if from_date is not None and to_date is not None:
        start, end = _options.date_range(from_date, to_date)
    elif from_date is not None:
        start = _options.date(from_date, "from_date")
    elif to_date is not None:
        end = _options.date(to_date, "to_date")
    cols = _options.columns(columns)
    events = _options.events(event)
    where_ = _options.where(where)
    if project_timezone is not None:
        _options.timezone(project_timezone)
    by_event = (
        location.local
        and probe.table_format == "hive"
        and any(
            p.is_dir() and p.name.startswith("event=")
            for d in days
            for p in Path(location.join(f"date={d.isoformat()}")).iterdir()
        )
    )
    layout = ("date", "event") if by_event else ("date",)
    ds = (
        probe if not by_event else sinks.ParquetDataset(location, partition_by=layout, create=False)
    )
    if cols is not None and any(c.startswith(PROPERTY_PREFIX) for c in cols) and ds.files():
        known = ["event", "time", *ds.current_kinds()]
        _options.known_columns(cols, known, f"the dataset at {location.url}")
    return DatasetQuery(
        ds=ds,
        start=start,
        end=end,
        columns=cols,
        events=events,
        where=where_,
        project_timezone=project_timezone,
        default_timezone=os.environ.get(_options.TIMEZONE_ENV) or "UTC",
        dedupe=_options.flag(dedupe, "dedupe"),
    )


def dataset_query_of(given: Mapping[str, Any], **overrides: Any) -> DatasetQuery:
    """:func:`dataset_query` from the arguments of a public function: ``given`` (its
    ``locals()``) holds ``path`` and the query's keywords, and more that are not the
    query's; ``overrides`` replace some of them."""
    return call_with(dataset_query, given, **overrides)


def _exists(location: sinks.Location) -> bool:
    try:
        return bool(location.fs.isdir(location.path))
    except Exception:
        return False
