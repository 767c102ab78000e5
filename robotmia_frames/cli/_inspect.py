"""Summaries of a Parquet dataset or an export file, for ``robotmia-frames inspect``.

A dataset is summarised from its Parquet footers (row counts, schemas, null counts
from the column statistics), reading column data only where the statistics cannot
say (list columns). An export file is read once with the library's own reader.

Type conflicts mean different things for the two:

- an export file: a column whose values had mixed JSON types (``3`` and ``"n/a"``),
  which the type policy folded to text;
- a dataset: a column whose Parquet type differs between days (the writer rewrites
  older days to the wider type, so this only happens to datasets written by other
  tools or by runs killed mid-rewrite; the library's reader unifies them anyway).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import _options, parse, readers, sinks
from .._progress import ProgressArg
from ..parse import KIND_METADATA_KEY, OnBadLines, arrow_type
from . import plural

__all__ = ["ColumnSummary", "Conflict", "DtypeSuggestion", "Inspection", "inspect_path"]

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class ColumnSummary:
    """One column: its (unified) type and how many of its values are null."""

    name: str
    type: str
    nulls: int
    rows: int

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class Conflict:
    """A type conflict: ``kind`` is ``"mixed_values"`` (a file) or ``"differs_between_days"``.

    ``types`` maps what was seen to a type: JSON value types to counts for mixed
    values (``{"integer": 990, "string": 10}``), days to Parquet types otherwise.
    """

    column: str
    kind: Literal["mixed_values", "differs_between_days"]
    types: dict[str, Any]
    resolved: str

    def describe(self) -> str:
        if self.kind == "mixed_values":
            seen = ", ".join(f"{t} ({n:,})" for t, n in self.types.items())
            return f"{self.column}: values of mixed types {seen}; read as {self.resolved}"
        by_type: dict[str, list[str]] = defaultdict(list)
        for day, t in self.types.items():
            by_type[t].append(day)
        parts = "; ".join(f"{t} on {_days_text(days)}" for t, days in by_type.items())
        return f"{self.column}: {parts}; read back as {self.resolved}"


@dataclass(frozen=True)
class DtypeSuggestion:
    """A column widened to text whose values mostly fit a type: pin it with ``dtype=``."""

    column: str
    dtype: str
    values: int
    misfits: int
    examples: list[str]

    @property
    def fit_rate(self) -> float:
        return (self.values - self.misfits) / self.values if self.values else 0.0

    def describe(self) -> str:
        if not self.misfits:
            return f"{self.column}: every value fits {self.dtype} (some were sent as strings)"
        eg = ", ".join(_quoted(e) for e in self.examples)
        other = "value does" if self.misfits == 1 else "values do"
        return (
            f"{self.column}: {100 * self.fit_rate:.2f}% {self.dtype}; "
            f"{self.misfits:,} {other} not fit, e.g. {eg}"
        )


def _quoted(text: str) -> str:
    return orjson.dumps(text).decode()


#: The types ``inspect`` tries, narrowest first; the best fit wins, ties to the first.
_CANDIDATES = (pa.int64(), pa.bool_(), pa.float64())
#: The share of values that must fit before a type is suggested.
SUGGEST_AT = 0.9


def suggest_dtypes(table: pa.Table, names: list[str]) -> list[DtypeSuggestion]:
    """For each text column of ``names``, the type most of its values fit (if any).

    Example:
        >>> t = pa.table({"properties.p": ["1.5", "2"] * 10 + ["n/a"]})
        >>> suggest_dtypes(t, ["properties.p"])[0].describe()
        'properties.p: 95.24% float64; 1 value does not fit, e.g. "n/a"'
    """
    out = []
    for name in names:
        col = table.column(name)
        values = len(col) - col.null_count
        if not values:
            continue
        best: tuple[float, pa.DataType, parse.PinReport] | None = None
        for target in _CANDIDATES:
            _, report = parse.pin_types(pa.table({name: col}), {name: target}, "null")
            fit = (values - report.mismatches.get(name, 0)) / values
            if best is None or fit > best[0]:
                best = (fit, target, report)
        assert best is not None
        fit, target, report = best
        if fit >= SUGGEST_AT:
            out.append(
                DtypeSuggestion(
                    name,
                    parse.type_name(target),
                    values,
                    report.mismatches.get(name, 0),
                    report.examples.get(name, []),
                )
            )
    return out


def _days_text(days: list[str]) -> str:
    if len(days) <= 3:
        return ", ".join(days)
    return f"{plural(len(days), 'day')} ({days[0]} .. {days[-1]})"


@dataclass
class Inspection:
    """What ``inspect`` found in a dataset or an export file."""

    source: Path | str
    kind: Literal["dataset", "file"]
    rows: int
    rows_per_day: dict[str, int]
    columns: list[ColumnSummary]
    conflicts: list[Conflict]
    files: int = 0
    bytes: int = 0
    time_min: str | None = None
    time_max: str | None = None
    time_note: str = ""
    notes: list[str] = field(default_factory=list)
    suggestions: list[DtypeSuggestion] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        return {
            "source": str(self.source),
            "kind": self.kind,
            "rows": self.rows,
            "days": len(self.rows_per_day),
            "rows_per_day": self.rows_per_day,
            "files": self.files,
            "bytes": self.bytes,
            "time_min": self.time_min,
            "time_max": self.time_max,
            "time_note": self.time_note,
            "columns": [
                {
                    "name": c.name,
                    "type": c.type,
                    "nulls": c.nulls,
                    "null_rate": round(c.null_rate, 6),
                }
                for c in self.columns
            ],
            "conflicts": [
                {"column": c.column, "kind": c.kind, "types": c.types, "resolved": c.resolved}
                for c in self.conflicts
            ],
            "suggested_dtypes": [
                {
                    "column": g.column,
                    "dtype": g.dtype,
                    "fit_rate": round(g.fit_rate, 6),
                    "misfits": g.misfits,
                    "examples": g.examples,
                }
                for g in self.suggestions
            ],
            "notes": self.notes,
        }

    def render(self, *, max_days: int = 10) -> str:
        """The human-readable summary (the default output)."""
        days = list(self.rows_per_day)
        lines = []
        size = (
            f", {plural(self.files, 'file')}, {self.bytes / 1e6:.1f} MB"
            if self.kind == "dataset"
            else ""
        )
        span = f", {days[0]} .. {days[-1]}" if days else ""
        lines.append(f"{self.kind}: {self.source}")
        lines.append(f"rows: {self.rows:,} over {plural(len(days), 'day')}{span}{size}")
        if self.time_min is not None:
            lines.append(f"time: {self.time_min} .. {self.time_max} {self.time_note}".rstrip())
        if days:
            lines.append("rows per day:")
            shown = days if len(days) <= max_days else days[: max_days - 1]
            for d in shown:
                lines.append(f"  {d}  {self.rows_per_day[d]:>12,}")
            if len(shown) < len(days):
                more = plural(len(days) - len(shown), "more day")
                lines.append(f"  ... {more}, last {days[-1]}")
        width = max([len(c.name) for c in self.columns] + [6])
        twidth = max([len(c.type) for c in self.columns] + [4])
        lines.append(f"columns ({len(self.columns)}):")
        lines.append(f"  {'name':<{width}}  {'type':<{twidth}}  {'null %':>7}")
        for c in self.columns:
            lines.append(f"  {c.name:<{width}}  {c.type:<{twidth}}  {100 * c.null_rate:>6.1f}%")
        if self.conflicts:
            what = (
                "mixed value types, folded to text by the type policy"
                if self.kind == "file"
                else "types that differ between days"
            )
            lines.append(f"type conflicts ({len(self.conflicts)}, {what}):")
            lines.extend(f"  {c.describe()}" for c in self.conflicts)
        else:
            lines.append("type conflicts: none")
        if self.suggestions:
            lines.append("suggested dtypes (columns widened to text whose values mostly fit):")
            lines.extend(f"  {g.describe()}" for g in self.suggestions)
            pins = ", ".join(f"{g.column!r}: {g.dtype!r}" for g in self.suggestions)
            lines.append(
                f"  read them typed with dtype={{{pins}}}, on_type_mismatch='null' "
                "(the values that do not fit go to <column>__raw)"
            )
        lines.extend(self.notes)
        return "\n".join(lines)


def inspect_path(
    path: str | os.PathLike[str],
    *,
    project_timezone: str | None = None,
    progress: ProgressArg = False,
    on_bad_lines: OnBadLines = "error",
) -> Inspection:
    """Summarise the dataset folder or export file at ``path`` (``on_bad_lines``: what a
    malformed line of an export file does, as in :func:`robotmia_frames.read_export_file`).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp(), "x.jsonl")
        >>> _ = p.write_text('{"event":"a","properties":{"time":0,"n":1}}\\n'
        ...                  '{"event":"a","properties":{"time":1,"n":"n/a"}}\\n')
        >>> i = inspect_path(p)
        >>> i.rows, i.conflicts[0].describe()
        (2, 'properties.n: values of mixed types integer (1), string (1); read as string')
    """
    raw = os.fspath(path)
    if "://" in raw:  # a dataset on object storage (or file://, memory://)
        return _inspect_dataset(sinks.locate(raw))
    p = Path(raw).expanduser()
    if p.is_dir():
        return _inspect_dataset(sinks.locate(p))
    if p.is_file():
        return _inspect_file(p, project_timezone, progress, on_bad_lines)
    raise FileNotFoundError(f"no dataset folder or export file at {p}")


# ------------------------------------------------------------------------- files


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _inspect_file(
    path: Path, project_timezone: str | None, progress: ProgressArg, on_bad_lines: OnBadLines
) -> Inspection:
    # Read with "UTC" so that `time` is the project-local wall clock the export
    # speaks of: the days of the file need no project timezone.
    table: pa.Table = readers.read_export_file(
        path,
        project_timezone="UTC",
        return_type="arrow",
        progress=progress,
        on_bad_lines=on_bad_lines,
    )
    rows = table.num_rows
    rows_per_day: dict[str, int] = {}
    time_min = time_max = None
    if rows and "time" in table.column_names:
        days = pc.strftime(table.column("time"), format="%Y-%m-%d")
        counts = pc.value_counts(days.combine_chunks())
        rows_per_day = {
            str(v["values"]): int(v["counts"])
            for v in sorted(counts.to_pylist(), key=lambda d: str(d["values"]))
            if v["values"] is not None
        }
        lo, hi = pc.min_max(table.column("time")).values()
        if lo.is_valid:
            time_min, time_max = _local_text(lo.as_py()), _local_text(hi.as_py())
    columns = [
        ColumnSummary(
            f.name,
            "timestamp[us, UTC]" if f.name == "time" else str(f.type),
            table.column(f.name).null_count,
            rows,
        )
        for f in table.schema
    ]
    folded = [
        f.name
        for f in table.schema
        if f.name.startswith("properties.")
        and f.metadata
        and f.metadata.get(KIND_METADATA_KEY) == b"text"
    ]
    conflicts = _mixed_values(path, folded, {f.name: str(f.type) for f in table.schema})
    suggestions = suggest_dtypes(table, [c.column for c in conflicts if c.resolved == "string"])
    tz = project_timezone or os.environ.get(_options.TIMEZONE_ENV)
    note = "(project-local wall clock, as in the export)"
    notes = []
    if tz:
        note = f"(project-local wall clock; project timezone {tz})"
    else:
        notes.append(
            "note: days and times are the export's project-local ones; reading the "
            "file converts them to UTC with --timezone or ROBOTMIA_PROJECT_TIMEZONE"
        )
    return Inspection(
        source=path,
        kind="file",
        rows=rows,
        rows_per_day=rows_per_day,
        columns=columns,
        conflicts=conflicts,
        files=1,
        bytes=path.stat().st_size,
        time_min=time_min,
        time_max=time_max,
        time_note=note,
        notes=notes,
        suggestions=suggestions,
    )


def _local_text(value: Any) -> str:
    text: str = value.replace(tzinfo=None).isoformat()
    return text


def _mixed_values(path: Path, folded: list[str], types: dict[str, str]) -> list[Conflict]:
    """Count the JSON types of the values of the folded-to-text columns (one more pass)."""
    if not folded:
        return []
    keys = {name[len("properties.") :]: name for name in folded}
    seen: dict[str, Counter[str]] = {k: Counter() for k in keys}
    for _, lines in parse.iter_line_chunks(path, label=str(path)):
        for line in lines:
            try:
                props = orjson.loads(line).get("properties")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if not isinstance(props, dict):
                continue
            for key, counter in seen.items():
                value = props.get(key)
                if value is None:
                    continue
                if isinstance(value, list):
                    for item in value:
                        if item is not None:
                            counter[f"list of {_json_type(item)}"] += 1
                else:
                    counter[_json_type(value)] += 1
    out = []
    for key, name in keys.items():
        counter = seen[key]
        if len(counter) > 1:  # one type alone (objects, huge ints) is no conflict
            out.append(Conflict(name, "mixed_values", dict(counter.most_common()), types[name]))
    return out


# ---------------------------------------------------------------------- datasets


def _file_nulls(pf: pq.ParquetFile) -> dict[str, int]:
    """Null counts per column of one file: statistics where they can say, else data."""
    md = pf.metadata
    schema = pf.schema_arrow
    nulls: dict[str, int] = {}
    unknown: list[str] = []
    leaf = {md.schema.column(i).path: i for i in range(md.num_columns)}
    for f in schema:
        i = leaf.get(f.name)
        nested = pa.types.is_nested(f.type)
        if i is None or nested:
            unknown.append(f.name)
            continue
        total = 0
        for g in range(md.num_row_groups):
            stats = md.row_group(g).column(i).statistics
            if stats is None or not stats.has_null_count:
                total = -1
                break
            total += stats.null_count
        if total < 0:
            unknown.append(f.name)
        else:
            nulls[f.name] = total
    if unknown:
        table = pf.read(columns=unknown)
        for name in unknown:
            nulls[name] = table.column(name).null_count
    return nulls


def _event_partition_nulls(path: str, rows: int) -> int:
    return rows if Path(path).parent.name == "event=" + sinks.NULL_PARTITION else 0


def _open_dataset(location: sinks.Location) -> sinks.ParquetDataset:
    """The dataset at ``location``: a Delta table (by its ``_delta_log``) or a Hive
    dataset, partitioned by date or, locally, by date and event."""
    if sinks.is_delta(location):
        return sinks.DeltaDataset(location, create=False)
    root = location.local_root
    by_event = location.local and any(
        p.is_dir() and p.name.startswith("event=")
        for d in root.glob("date=*")
        if d.is_dir()
        for p in d.iterdir()
    )
    if not location.local and not location.fs.isdir(location.path):
        raise FileNotFoundError(f"no dataset at {location.url}")
    return sinks.ParquetDataset(
        location, partition_by=("date", "event") if by_event else ("date",), create=False
    )


def _inspect_dataset(location: sinks.Location) -> Inspection:
    ds = _open_dataset(location)
    by_event = ds.partition_by == ("date", "event")
    rows_per_day: dict[str, int] = {}
    day_types: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    nulls: Counter[str] = Counter()
    present_rows: Counter[str] = Counter()
    schemas: list[pa.Schema] = []
    order: list[str] = ["event", "time"]
    files = 0
    size = 0
    tmin: Any = None
    tmax: Any = None
    total = 0
    texts: dict[str, list[pa.Array]] = {}  # the values of the columns folded to text
    for day, paths in ds.files_by_day().items():  # one listing (one read of a Delta log)
        key = day.isoformat()
        rows_per_day[key] = 0
        for f in paths:
            pf = ds.open_file(f)
            n = pf.metadata.num_rows
            files += 1
            size += ds.size_of(f)
            total += n
            rows_per_day[key] += n
            schema = pf.schema_arrow
            if by_event:
                schema = schema.insert(0, pa.field("event", pa.string()))
                nulls["event"] += _event_partition_nulls(f, n)
                present_rows["event"] += n
            schemas.append(schema)
            for name in schema.names:
                if name not in order:
                    order.append(name)
            for name, count in _file_nulls(pf).items():
                nulls[name] += count
                present_rows[name] += n
            folded = []
            for fld in schema:
                day_types[fld.name][key].add(str(fld.type))
                if fld.metadata and fld.metadata.get(KIND_METADATA_KEY) == b"text":
                    folded.append(fld.name)
            if folded:  # read while the file is open, for the suggested dtypes
                values = pf.read(columns=folded)
                for name in folded:
                    texts.setdefault(name, []).extend(values.column(name).chunks)
            lo, hi = _time_range(pf)
            if lo is not None:
                tmin = lo if tmin is None or lo < tmin else tmin
                tmax = hi if tmax is None or hi > tmax else tmax
        if not rows_per_day[key]:
            del rows_per_day[key]
    kinds = sinks.unify_kinds_of_schemas(schemas)
    columns = []
    for name in order:
        if name not in present_rows and name not in kinds:
            continue
        missing = total - present_rows[name]  # days without the column read back as null
        type_text = "timestamp[us, UTC]" if name == "time" else str(arrow_type(kinds[name]))
        columns.append(ColumnSummary(name, type_text, nulls[name] + missing, total))
    conflicts = []
    for name in order:
        per_day = day_types.get(name, {})
        distinct = {t for ts in per_day.values() for t in ts}
        if len(distinct) > 1:
            conflicts.append(
                Conflict(
                    name,
                    "differs_between_days",
                    {d: " | ".join(sorted(ts)) for d, ts in sorted(per_day.items())},
                    next(c.type for c in columns if c.name == name),
                )
            )
    suggestions = []
    for name, chunks in texts.items():
        if pa.types.is_string(arrow_type(kinds[name])):
            values = pa.chunked_array(chunks, pa.string())
            suggestions += suggest_dtypes(pa.table({name: values}), [name])
    return Inspection(
        source=ds.location.local_root if ds.location.local else ds.location.url,
        kind="dataset",
        rows=total,
        rows_per_day=rows_per_day,
        columns=columns,
        conflicts=conflicts,
        files=files,
        bytes=size,
        time_min=tmin.isoformat() if tmin is not None else None,  # ISO 8601, as read --json
        time_max=tmax.isoformat() if tmax is not None else None,
        time_note="(UTC)",
        suggestions=suggestions,
        notes=[f"table format: {ds.table_format}"] if ds.table_format != "hive" else [],
    )


def _time_range(pf: pq.ParquetFile) -> tuple[Any, Any]:
    md = pf.metadata
    idx = next((i for i in range(md.num_columns) if md.schema.column(i).path == "time"), None)
    if idx is None:
        return None, None
    lo = hi = None
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(idx).statistics
        if stats is None or not stats.has_min_max:
            continue
        lo = stats.min if lo is None or stats.min < lo else lo
        hi = stats.max if hi is None or stats.max > hi else hi
    return lo, hi
