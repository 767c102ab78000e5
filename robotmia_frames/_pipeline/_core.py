"""The pipeline every public operation shares: plan, windows, parse, unify, write.

``client.py`` (and through it ``api.py``, ``dask``, ``profiles.py`` and the CLI)
calls these pieces; each goes down one stage and comes back once::

    ExportPlan (checked arguments)
      -> iter_windows (_fetch): transport.download_window per window, concurrently
      -> parse_file: parse.read_raw_batches, kinds merged by the type policy
      -> batches: parse.conform + the time stage (+ dedupe)
      -> a table (deliver), or DatasetWriter: one atomic day at a time
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import _options, _progress, parse, sinks, transport
from .._version import __version__
from ..errors import (
    InvalidArgumentError,
    ParseError,
    RobotmiaError,
)
from ..parse import PROPERTY_PREFIX, Kind
from ..timeconv import TIME_TYPE, local_seconds_to_utc
from ..where import (
    Mask,
    filter_table,
    folded_columns,
    referenced_columns,
    row_mask,
)
from ._budget import DEFAULT_WINDOW_TARGET_BYTES, BudgetPlan, WindowSizing
from ._pins import Pinned
from ._windows import (
    BATCH_HOOK,
    Again,
    BatchHook,
    EventKeys,
    Parsed,
    Selection,
    add_event_keys,
    holder_of,
    property_keys,
    scans_sparse,
    select_rows,
    selected_count,
)

if TYPE_CHECKING:
    import polars as pl

_R = TypeVar("_R")

# ------------------------------------------------------------------ window sizing


@dataclass(frozen=True)
class ExportPlan:
    """One checked export: its days, filters, transport settings and options."""

    start: dt.date
    end: dt.date
    event: tuple[str, ...] | None
    where: str | None
    timezone: str
    config: transport.TransportConfig = field(repr=False)
    on_bad_lines: parse.OnBadLines
    columns: list[str] | None
    concurrency: int
    limiter: transport.RateLimiter = field(repr=False)
    time_in_ms: bool = False
    limit: int | None = None
    cache_dir: Path | None = None
    refresh: bool = False
    dedupe: bool = False
    progress: _progress.Progress | None = field(default=None, repr=False)
    pinned: Pinned = field(default_factory=lambda: Pinned({}))
    sizing: WindowSizing = field(default_factory=WindowSizing)
    #: compressed bytes per day expected (a dataset's history): the first auto
    #: windows are sized from it instead of the start size
    bytes_per_day: float | None = None
    #: the compressed bytes per day the dataset recorded of each day: the plan
    #: (:meth:`budget`) replays the run on them
    day_bytes: Mapping[dt.date, float] = field(default_factory=dict, repr=False)

    @property
    def days(self) -> list[dt.date]:
        n = (self.end - self.start).days + 1
        return [self.start + dt.timedelta(days=i) for i in range(n)]

    @property
    def time_unit(self) -> str:
        return "ms" if self.time_in_ms else "s"

    @property
    def source(self) -> str:
        """How messages name the whole export: ``the export of <start>..<end>``."""
        return f"the export of {self.start.isoformat()}..{self.end.isoformat()}"

    def request(self, day: dt.date, last: dt.date | None = None) -> transport.WindowRequest:
        """The request of the window ``day..last`` (one day without ``last``)."""
        extra: list[tuple[str, str]] = []
        if self.time_in_ms:
            extra.append(("time_in_ms", "true"))
        if self.limit is not None:
            extra.append(("limit", str(self.limit)))
        return transport.WindowRequest(
            from_date=day,
            to_date=day if last is None else last,
            event=self.event,
            where=self.where,
            extra_params=tuple(extra),
        )

    def budget(self) -> BudgetPlan:
        """The requests and API-hours this export takes (as :meth:`Connection.budget`)."""
        return BudgetPlan.of(
            self.start,
            self.end,
            self.sizing,
            bytes_per_day=self.bytes_per_day,
            per_hour=self.limiter.limit.per_hour,
            day_bytes=self.day_bytes,
            pending=2 * self.concurrency,  # as iter_windows sends them ahead
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "from_date": self.start.isoformat(),
            "to_date": self.end.isoformat(),
            "event": list(self.event) if self.event is not None else None,
            "where": self.where,
            "project_timezone": self.timezone,
            "time_in_ms": self.time_in_ms,
            "limit": self.limit,
            "library": f"robotmia-frames {__version__}",
            **self.pinned.metadata(),
        }


@dataclass(frozen=True)
class Connection:
    """The settings a :class:`~robotmia_frames.Client` holds, each checked once.

    The secret is read (argument, else ``ROBOTMIA_API_SECRET``) only when a request
    needs it; the rate limiter is one per connection, so every call made through
    one client shares one API budget.
    """

    api_secret: str | None = field(repr=False)
    project_timezone: str | None
    base_url: str
    timeout: float | None
    max_retries: int
    retry_backoff: float
    verify: bool | str
    limiter: transport.RateLimiter = field(repr=False)
    concurrency: int
    cache_dir: Path | None
    region: str | None
    max_retry_after: float
    stall_timeout: float
    min_speed: float
    max_window_bytes: int | None

    @classmethod
    def checked(
        cls,
        *,
        api_secret: str | None,
        project_timezone: str | None,
        region: str | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int,
        retry_backoff: float,
        verify: bool | str,
        rate_limit: transport.RateLimit | transport.RateLimiter | None,
        concurrency: int,
        cache_dir: str | os.PathLike[str] | None,
        max_retry_after: float,
        stall_timeout: float,
        min_speed: float,
        max_window_bytes: int | None,
    ) -> Connection:
        """Check every setting (the secret and the timezone may come later, from the
        environment). The defaults are those of :class:`~robotmia_frames.Client`,
        the one place they are written."""
        if api_secret is not None:
            api_secret = _options.secret(api_secret)
        if project_timezone is not None:
            project_timezone = _options.timezone(project_timezone)
        region = _options.region_name(region)
        url = _options.base_url(base_url, region)
        if not isinstance(verify, (bool, str)):
            raise InvalidArgumentError("verify must be True, False or the path of a CA bundle")
        return cls(
            api_secret=api_secret,
            project_timezone=project_timezone,
            base_url=url,
            timeout=None if timeout is None else _options.seconds(timeout, "timeout"),
            max_retries=_options.positive_int(max_retries, "max_retries", allow_zero=True),
            retry_backoff=_options.seconds(retry_backoff, "retry_backoff", allow_zero=True),
            verify=verify,
            limiter=_options.limiter(rate_limit, url),
            concurrency=_options.positive_int(concurrency, "concurrency"),
            cache_dir=_options.directory(cache_dir, "cache_dir"),
            region=region,
            max_retry_after=_options.seconds(max_retry_after, "max_retry_after", allow_zero=True),
            stall_timeout=_options.seconds(stall_timeout, "stall_timeout"),
            min_speed=_options.bytes_per_second(min_speed, "min_speed"),
            max_window_bytes=_options.byte_cap(max_window_bytes, "max_window_bytes"),
        )

    def timezone(self, project_timezone: str | None = None) -> str:
        """The project timezone of a call: its own, else the connection's, else the
        environment's."""
        return _options.timezone(
            project_timezone if project_timezone is not None else self.project_timezone
        )

    def transport_config(self, base_url: str | None = None) -> transport.TransportConfig:
        """The transport settings (the secret is required from here on)."""
        return transport.TransportConfig(
            base_url=base_url or self.base_url,
            api_secret=_options.secret(self.api_secret),
            verify=self.verify,
            max_retries=self.max_retries,
            backoff_base=self.retry_backoff,
            max_retry_after=self.max_retry_after,
            read_timeout=transport.DEFAULT_READ_TIMEOUT if self.timeout is None else self.timeout,
            stall_timeout=self.stall_timeout,
            min_speed=self.min_speed,
            max_window_bytes=self.max_window_bytes,
        )

    def plan(
        self,
        from_date: Any,
        to_date: Any,
        *,
        event: Any = None,
        where: Any = None,
        project_timezone: str | None = None,
        on_bad_lines: str = "error",
        columns: Any = None,
        time_in_ms: bool = False,
        limit: int | None = None,
        refresh: bool = False,
        dedupe: bool = False,
        progress: _progress.ProgressArg = None,
        dtype: Any = None,
        on_type_mismatch: str = "text",
        window_days: int | str = "auto",
        window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
        bytes_per_day: float | None = None,
        day_bytes: Mapping[dt.date, float] | None = None,
    ) -> ExportPlan:
        """Check a call's arguments, before anything is sent."""
        start, end = _options.date_range(from_date, to_date)
        events = _options.events(event)
        where_ = _options.where(where)
        tz = self.timezone(project_timezone)
        sizing = WindowSizing.checked(window_days, window_target_bytes)
        config = self.transport_config()
        return ExportPlan(
            start=start,
            end=end,
            event=events,
            where=where_,
            timezone=tz,
            config=config,
            on_bad_lines=_options.on_bad_lines(on_bad_lines),
            columns=_options.columns(columns),
            concurrency=self.concurrency,
            limiter=self.limiter,
            time_in_ms=_options.flag(time_in_ms, "time_in_ms"),
            limit=None if limit is None else _options.positive_int(limit, "limit"),
            cache_dir=self.cache_dir,
            refresh=_options.flag(refresh, "refresh"),
            dedupe=_options.flag(dedupe, "dedupe"),
            progress=_progress.make(progress, total=(end - start).days + 1, limiter=self.limiter),
            pinned=Pinned.checked(dtype, on_type_mismatch),
            sizing=sizing,
            bytes_per_day=_options.bytes_per_day(bytes_per_day),
            day_bytes=dict(day_bytes or {}),
        )

    def plan_of(self, given: Mapping[str, Any], **overrides: Any) -> ExportPlan:
        """:meth:`plan` from the arguments of a public function: ``given`` (its
        ``locals()``) holds ``from_date``, ``to_date`` and any of the plan's keywords,
        and more that are not the plan's; ``overrides`` replace some of them."""
        return call_with(self.plan, given, **overrides)

    def budget(
        self,
        from_date: Any,
        to_date: Any,
        *,
        window_days: int | str = "auto",
        window_target_bytes: int = DEFAULT_WINDOW_TARGET_BYTES,
        bytes_per_day: float | None = None,
        day_bytes: Mapping[dt.date, float] | None = None,
    ) -> BudgetPlan:
        """The requests and API-hours an export of ``from_date..to_date`` would take
        (``day_bytes``: a dataset's record of the days, see :class:`BudgetPlan`)."""
        start, end = _options.date_range(from_date, to_date)
        sizing = WindowSizing.checked(window_days, window_target_bytes)
        return BudgetPlan.of(
            start,
            end,
            sizing,
            bytes_per_day=_options.bytes_per_day(bytes_per_day),
            per_hour=self.limiter.limit.per_hour,
            day_bytes=day_bytes,
            pending=2 * self.concurrency,
        )


def call_with(func: Callable[..., _R], given: Mapping[str, Any], /, **overrides: Any) -> _R:
    """``func`` called with the entries of ``given`` that are its parameters, by name,
    ``overrides`` replacing or adding some: how a public method hands its arguments
    (``given``: its ``locals()``) to a stage without listing them again.

    Example:
        >>> def window(from_date, to_date, *, limit=None):
        ...     return from_date, to_date, limit
        >>> call_with(window, {"from_date": 1, "to_date": 2, "return_type": "arrow"}, limit=5)
        (1, 2, 5)
    """
    names = inspect.signature(func).parameters
    return func(**{k: v for k, v in given.items() if k in names} | overrides)


# ------------------------------------------------------------------ window pipeline


def parse_file(
    path: Path,
    label: str,
    on_bad_lines: parse.OnBadLines,
    columns: Sequence[str] | None,
    progress: _progress.Progress | None = None,
    *,
    export_body: bool = True,
    hook: BatchHook | None = None,
    cutter: parse.Cutter | None = None,
    batch_rows: parse.ChunkRows | None = None,
    stream: parse.BodyParser | None = None,
    hold: int | None = None,
    events: bool = False,
) -> Parsed:
    """The parse stage over one local body (the fast engine, all of it in memory).

    An ``export_body`` (a downloaded window) in which no line at all is an export
    line is not an export (a proxy's page, an error text): that raises
    :class:`ParseError` in every ``on_bad_lines`` mode, so the window fails instead
    of becoming an empty day. Each batch goes through ``hook`` (else the one
    :func:`batch_hook` set), which may reshape it or stop the read (the memory
    budget). ``cutter`` cuts the body's chunks further (at day boundaries:
    :func:`day_cutter`); ``batch_rows`` carries the chunk size learnt from
    the export's first body to the next. With ``stream`` (the body parsed while
    it downloaded, verified since) the batches come from it, not from ``path``.

    With ``hold`` (bytes; a day written to a dataset, without a hook), batches
    that hold more than that, mostly nulls (``parse.mostly_empty``: a wide day,
    thousands of keys laid out over every row), are not kept: the parse goes on
    for the kinds (and ``events``: the keys each event has values for) and the
    :class:`Parsed` parses its batches again when they are taken (``again``), so
    that a wide day is written in the memory of a few chunks.

    The body is scanned sparse, each key's values at its rows
    (``parse.read_raw_batches``), for a day written event by event (``events``, see
    :func:`batches`) and for a hook that keeps compact pieces (:func:`scans_sparse`).
    """
    hook = hook if hook is not None else BATCH_HOOK.get()
    sparse = events or scans_sparse(hook)
    kinds: dict[str, Kind] = {}
    keys = property_keys(columns)
    batches = []  # as parsed; or, through a hook, kept by its holder:
    kept = holder_of(hook)
    rows = 0
    bad: set[int] = set()
    spilled = False
    event_keys: EventKeys | None = {} if events else None
    # a hook reshapes the batches: they are kept as it gave them
    held = parse.Hold(hold if hook is None else None)
    raws = (
        stream.batches(label, on_bad_lines, stored=path.stat().st_size)
        if stream is not None
        else parse.read_raw_batches(
            path,
            source=label,
            on_bad_lines=on_bad_lines,
            keys=keys,
            cutter=cutter,
            batch_rows=batch_rows,
            sparse=sparse,
        )
    )
    for batch in raws:
        for piece in [batch] if hook is None else hook(batch):
            parse.merge_kinds(kinds, piece)
            rows += piece.num_rows
            bad.update(piece.bad_lines)
            if event_keys is not None:
                add_event_keys(event_keys, piece)
            if spilled:
                continue
            if hook is not None:
                kept.add(piece)
                continue
            batches.append(piece)
            if held.limit is not None and held.add(
                piece.nbytes, piece.num_rows * len(piece.columns), piece.filled
            ):  # parsed again when taken
                spilled = True
                batches.clear()
                parse.trim_memory()
        if progress is not None:
            progress.rows_done(batch.num_rows)
    if export_body and not rows and bad:
        raise ParseError(
            f"the body is not an export: none of its lines is an export line "
            f"({len(bad)} malformed, the first shown by its number). Nothing was kept "
            "for this window; if a proxy or gateway answers instead of robotmia, check "
            "base_url and the network, then try again",
            line_number=min(bad),
            source=label,
        )
    if hook is not None:
        batches = kept.batches()
    again = Again(label, keys, batch_rows, rows, sparse) if spilled else None
    return Parsed(path, label, batches, kinds, events=event_keys, again=again)


def check_columns(
    wanted: Sequence[str] | None, kinds: dict[str, Kind], sources: Sequence[Parsed], what: str
) -> None:
    """An asked-for column that none of ``sources`` holds is an error with the nearest
    names (see ``_options.known_columns``). Sources without a row tell nothing: an
    empty file or range gives all-null columns as asked."""
    if wanted is None:
        return
    names = ["event", "time", *(PROPERTY_PREFIX + k for k in kinds)]
    full = [s for s in sources if s.rows]
    if not full or all(c in names for c in wanted):
        return
    for src in full[:3]:  # the parse kept the wanted keys only: read a few for the others
        names += [PROPERTY_PREFIX + k for k in parse_file(src.path, src.label, "skip", None).kinds]
    _options.known_columns(wanted, names, what)


def unified_kinds(day_kinds: Iterable[Mapping[str, Kind]]) -> dict[str, Kind]:
    """The kinds of days unified in their order: columns in order of first appearance.

    Example:
        >>> from robotmia_frames.parse.typepolicy import FLOAT, INT, STR
        >>> unified_kinds([{"a": INT}, {"b": STR, "a": FLOAT}])
        {'a': float, 'b': str}
    """
    kinds: dict[str, Kind] = {}
    for one in day_kinds:
        parse.unify_into(kinds, one.items())
    return kinds


def to_utc(batch: pa.RecordBatch, tz: str, unit: str = "s") -> pa.RecordBatch:
    """The time stage applied to one parsed batch."""
    if "time" not in batch.schema.names:
        return batch
    i = batch.schema.get_field_index("time")
    return batch.set_column(
        i, pa.field("time", TIME_TYPE), local_seconds_to_utc(batch.column(i), tz, unit=unit)
    )


#: Rows whose times :func:`in_utc` converts in one go: a year of small days' batches
#: costs about what the same rows cost in a few large ones.
UTC_ROWS = 1 << 16


def in_utc(
    batches: Iterable[pa.RecordBatch], tz: str, unit: str = "s", *, rows: int = UTC_ROWS
) -> Iterator[pa.RecordBatch]:
    """:func:`to_utc` over batches of one schema, the times of consecutive batches
    converted together, ``rows`` at a time, and handed back cut as they came.

    Example:
        >>> bs = [pa.record_batch({"time": pa.array([t], pa.float64())}) for t in (0, 60)]
        >>> [b.column(0)[0].as_py().isoformat() for b in in_utc(bs, "Europe/Paris")]
        ['1969-12-31T23:00:00+00:00', '1969-12-31T23:01:00+00:00']
    """
    group: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        group.append(batch)
        held += batch.num_rows
        if held >= rows:
            yield from _group_in_utc(group, tz, unit)
            group, held = [], 0
    yield from _group_in_utc(group, tz, unit)


def _group_in_utc(group: list[pa.RecordBatch], tz: str, unit: str) -> Iterator[pa.RecordBatch]:
    if len(group) < 2 or "time" not in group[0].schema.names:
        yield from (to_utc(b, tz, unit) for b in group)
        return
    i = group[0].schema.get_field_index("time")
    times = local_seconds_to_utc(pa.chunked_array([b.column(i) for b in group]), tz, unit=unit)
    field = pa.field("time", TIME_TYPE)
    at = 0
    for b in group:
        yield b.set_column(i, field, times.slice(at, b.num_rows))
        at += b.num_rows


def final_schema(kinds: dict[str, Kind], columns: Sequence[str] | None) -> pa.Schema:
    schema = parse.export_schema(kinds, columns)
    if "time" in schema.names:
        schema = schema.set(schema.get_field_index("time"), pa.field("time", TIME_TYPE))
    return schema


def parse_columns(plan: ExportPlan) -> list[str] | None:
    """The columns to parse: those asked for, plus what dedupe needs."""
    return sinks.with_dedupe_keys(plan.columns, plan.dedupe)


def batches(
    parsed: Parsed,
    kinds: dict[str, Kind],
    tz: str,
    columns: Sequence[str] | None,
    *,
    dedupe: bool = False,
    unit: str = "s",
    keep: Sequence[Mask] | None = None,
    schema: pa.Schema | None = None,
    utc: bool = True,
    events: Mapping[str | None, Collection[str]] | None = None,
) -> Iterator[pa.RecordBatch]:
    """One source's batches with the final kinds, through the time stage (and dedupe).

    ``keep`` holds one row mask per raw batch (a ``where`` evaluated on raw lines),
    applied before dedupe, as the export filters before the client dedupes.
    ``schema`` is :func:`parse_schema` of the same arguments, when the caller
    worked it out once for many sources (a year of days). Without ``utc`` (and
    without dedupe, which compares UTC times) the times are left as parsed: the
    caller converts them over many sources at once (:func:`in_utc`).

    With ``events`` (event name -> the columns its rows have values for: a day
    written per event), each raw batch is cut by event and each part holds only
    ``event``, ``time``, its event's columns and the dedupe keys, so that a wide
    day is never laid out over every key. The parts come in the order of their
    batches; within a part, rows keep their order (dedupe compares the event too,
    so parts dedupe as the whole batch would).
    """
    parse_columns = sinks.with_dedupe_keys(columns, dedupe)
    if schema is None:
        schema = parse_schema(kinds, columns, dedupe)
    deduper = sinks.Deduper() if dedupe else None
    by_event = None
    if events is not None:  # each event's fields, picked once
        parts = sinks.SchemaParts(schema, always=["event", "time", *sinks.DEDUPE_KEYS])
        by_event = (parts, events)
    for i, (raw, sel) in enumerate(parsed.items()):
        if not selected_count(raw, sel):
            continue
        mask = None if keep is None else pa.array(keep[i], type=pa.bool_())
        cut = _cut_by_event(raw, sel, mask, schema, by_event)
        for part, part_sel, part_keep, part_schema in cut:
            rows = select_rows(parse.conform(part, kinds, part_schema, path=parsed.path), part_sel)
            if part_keep is not None:
                rows = rows.filter(select_rows(part_keep, part_sel))
            out = to_utc(rows, tz, unit) if utc or deduper is not None else rows
            if deduper is not None:
                out = deduper(out)
                if columns is not None and parse_columns != list(columns):
                    names = set(out.schema.names)  # a part holds its event's only
                    out = out.select([c for c in columns if c in names])
            yield out


def _cut_by_event(
    raw: parse.RawBatch,
    sel: Selection,
    keep: pa.Array | None,
    schema: pa.Schema,
    events: tuple[sinks.SchemaParts, Mapping[str | None, Collection[str]]] | None,
) -> Iterator[tuple[parse.RawBatch, Selection, pa.Array | None, pa.Schema]]:
    """``raw`` (with its selection, ``where`` mask and schema) as it is conformed: whole,
    or with ``events`` (the schema's parts, and each event's columns) cut into one
    part per event, each with the fields of ``schema`` its event has (:func:`batches`)."""
    if events is None:
        yield raw, sel, keep, schema
        return
    schemas, columns = events
    for name, part in parse.split_events(raw):
        at = None if part.rows is None else part.rows.to_numpy(zero_copy_only=False)
        part_sel: Selection = sel
        if sel is not None and at is not None:
            if isinstance(sel, tuple):  # rows lo..hi of the batch: a range of the part's
                lo, hi = np.searchsorted(at, sel, side="left").tolist()
                part_sel = (lo, hi)
            else:  # the batch's rows at these indices (ascending): the part's among them
                chosen = sel.to_numpy(zero_copy_only=False)
                part_sel = pa.array(np.flatnonzero(np.isin(at, chosen)).astype(np.int64))
        part_keep = keep if keep is None or part.rows is None else keep.take(part.rows)
        yield part, part_sel, part_keep, schemas(name, columns.get(name, ()))


def raw_where_masks(parsed: Parsed, where: str, tz: str) -> list[Mask]:
    """``where`` on the raw lines of a parsed source: one row mask per raw batch.

    The rows of a batch are its lines that are neither blank nor bad, in order.
    """
    bad = frozenset().union(*(b.bad_lines for b in parsed.batches))
    rows = (
        line
        for first, lines in parse.iter_line_chunks(parsed.path, label=parsed.label)
        for number, line in enumerate(lines, first)
        if line and not line.isspace() and number not in bad
    )
    now = time.time()
    masks = []
    for batch in parsed.batches:
        mask = row_mask(where, itertools.islice(rows, batch.num_rows), project_timezone=tz, now=now)
        if len(mask) != batch.num_rows:  # pragma: no cover - the file changed under us
            raise RobotmiaError(
                f"{parsed.label}: the file changed while it was read; read it again"
            )
        masks.append(mask)
    return masks


@dataclass(frozen=True)
class TableSpec:
    """What a read's result is built with: the export-wide ``kinds``, the project
    timezone, the asked-for ``columns``, ``dedupe``, the unit of raw times, and the
    property keys that must stay columns whatever the shape (``keep_keys``)."""

    kinds: dict[str, Kind]
    tz: str
    columns: Sequence[str] | None
    dedupe: bool = False
    unit: str = "s"
    keep_keys: frozenset[str] = frozenset()


def parse_schema(
    kinds: dict[str, Kind], columns: Sequence[str] | None, dedupe: bool = False
) -> pa.Schema:
    """The schema of the batches :func:`batches` conforms (before the time stage):
    the ``columns`` parsed, with what dedupe needs.

    Example:
        >>> from robotmia_frames.parse.typepolicy import INT
        >>> parse_schema({"n": INT}, ["properties.n"]).names
        ['properties.n']
    """
    return parse.export_schema(kinds, sinks.with_dedupe_keys(columns, dedupe))


def flat_table(sources: Sequence[Parsed], spec: TableSpec) -> pa.Table:
    """The sources' batches (in order) as one table of the export-wide kinds."""
    kinds, tz, columns = spec.kinds, spec.tz, spec.columns
    schema = parse_schema(kinds, columns, spec.dedupe)  # once, not once per day
    dedupe, unit = spec.dedupe, spec.unit
    out = [
        b
        for s in sources
        for b in batches(s, kinds, tz, columns, dedupe=dedupe, unit=unit, schema=schema, utc=dedupe)
    ]
    if not dedupe:  # the times of many small days converted together
        out = list(in_utc(out, tz, unit))
    return pa.Table.from_batches(out, schema=final_schema(kinds, columns))


Tables: TypeAlias = "pa.Table | dict[str | None, pa.Table]"
#: Builds a read's result from its parsed sources: :func:`flat_table` or a ``_wide`` shape.
Build: TypeAlias = "Callable[[Sequence[Parsed], TableSpec], Tables]"


def deliver(
    table: pa.Table | list[pa.Table],
    return_type: _options.ReturnType,
    dtype_backend: sinks.DtypeBackend,
) -> pd.DataFrame | pa.Table | pl.DataFrame:
    """The result table as the caller asked: Arrow as is, polars without a copy
    (``polars.from_arrow`` keeps the Arrow buffers), else pandas. A table given in
    a one-item list is given away (emptied from it), so that pandas frees the
    Arrow columns as it converts them."""
    if return_type == "pandas":
        return sinks.to_pandas(table, dtype_backend=dtype_backend)
    owned = table.pop() if isinstance(table, list) else table
    if return_type == "arrow":
        return owned
    import polars

    return polars.from_arrow(owned, rechunk=False)


def read_file(
    path: str | os.PathLike[str],
    tz: str,
    *,
    on_bad_lines: str = "error",
    columns: Sequence[str] | None = None,
    dedupe: bool = False,
    time_in_ms: bool = False,
    event: Any = None,
    where: Any = None,
    progress: _progress.ProgressArg = None,
    hook: BatchHook | None = None,
    build: Build = flat_table,
    keep_keys: frozenset[str] = frozenset(),
) -> Tables:
    """One local export file as a table: the same columns and types as an export of
    the same lines, then filtered by ``event`` and ``where``. ``hook`` and
    ``build`` shape the result (``_wide``): one table, or a dict of them;
    ``keep_keys`` names keys that stay columns whatever the shape."""
    wanted = _options.columns(columns)
    events = _options.events(event)
    where_ = _options.where(where)
    mode = _options.on_bad_lines(on_bad_lines)
    dedupe = _options.flag(dedupe, "dedupe")
    time_in_ms = _options.flag(time_in_ms, "time_in_ms")
    cols = wanted
    need: set[str] = set()
    if where_ is not None:
        need |= referenced_columns(where_)
    if cols is not None:  # read the columns the filters need
        if events is not None:
            need.add("event")
        cols = [*cols, *sorted(need - set(cols))]
    p = Path(os.fspath(path)).expanduser()  # "~/export.jsonl", as in pandas
    if p.is_dir():
        raise IsADirectoryError(
            f"{p} is a folder, not an export file (.jsonl or .jsonl.gz); read a dataset "
            "folder with read_parquet_dataset"
        )
    if not p.is_file():
        raise FileNotFoundError(f"export file not found: {p}")
    bar = _progress.make(progress, total=1, desc="robotmia read", unit="row")
    try:
        parsed = parse_file(
            p, str(p), mode, sinks.with_dedupe_keys(cols, dedupe), bar, export_body=False, hook=hook
        )
    finally:
        if bar is not None:
            bar.close()
    check_columns(wanted, parsed.kinds, [parsed], str(p))
    unit = "ms" if time_in_ms else "s"
    schema = final_schema(parsed.kinds, cols)
    masks = None
    if where_ is not None and build is flat_table and folded_columns(where_, schema):
        # A column folded to text no longer tells 5 from "5": filter on the raw lines.
        masks = raw_where_masks(parsed, where_, tz)
    built: Tables
    if masks is not None:
        out = batches(parsed, parsed.kinds, tz, cols, dedupe=dedupe, unit=unit, keep=masks)
        built = pa.Table.from_batches(list(out), schema=schema)
    else:
        keep_keys |= frozenset(
            c[len(PROPERTY_PREFIX) :] for c in need if c.startswith(PROPERTY_PREFIX)
        )
        built = build(
            [parsed],
            TableSpec(parsed.kinds, tz, cols, dedupe=dedupe, unit=unit, keep_keys=keep_keys),
        )
    del parsed

    def finish(table: pa.Table) -> pa.Table:
        if events is not None:
            table = table.filter(pc.is_in(table.column("event"), pa.array(events, pa.string())))
        if where_ is not None and masks is None:
            table = filter_table(table, where_, project_timezone=tz)
        if wanted is not None and wanted != cols:
            table = table.select(
                [c for c in table.column_names if c in wanted or c not in (cols or ())]
            )
        return table

    if isinstance(built, dict):
        return {name: finish(t) for name, t in built.items() if events is None or name in events}
    return finish(built)


# ----------------------------------------------------------------------- datasets
