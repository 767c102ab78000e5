"""Partitioned Parquet datasets: atomic days, consistent types across days.

Everything here receives finished batches (``event``, UTC ``time``,
``properties.*``) and knows nothing of HTTP or JSON parsing.

Parquet layout (``design.md`` section 4)::

    out/
      date=2024-01-31/part-0.parquet                 partition_by=("date",)
      date=2024-01-31/event=Purchase/part-0.parquet  partition_by=("date", "event")

Nothing else is ever left inside the folder: the dataset's state is in each data
file's footer (``_state``), the writer lock in the temporary directory.

Locally a day is written into a hidden staging folder beside the dataset
(``.<name>.robotmia-staging/``, outside it so that no reader's glob sees a
half-written file; inside it, hidden, when the dataset folder is itself a mount
point, so that the swap stays on one filesystem) and swapped in by one ``rename``:
an atomic exchange of the two directories where Linux offers it, otherwise two
renames guarded by a journal that the next writer rolls back. A crash, a kill or a
failed download leaves the old partition intact.

On object storage (any fsspec filesystem) a day is one object, staged in the local
temporary directory and written by one upload, which replaces it in one step.

Schemas are kept consistent across days: when a new day widens a column (an int
column meets a float, a string, ...), the days already written are rewritten to the
wider type, so plain ``pandas.read_parquet``, ``pyarrow.dataset`` and DuckDB never
meet two types for one column.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .._fsutil import fsync_dir
from ..errors import InvalidArgumentError
from ..parse.typepolicy import (
    Kind,
)
from ._rowgroups import RowGroups
from ._storage import Location, arrow_filesystem, locate, upload_checked
from ._tables import (
    SchemaParts,
    column_order,
    conform_table,
    unify_kinds_of_schemas,
)


class CompiledFilter(Protocol):
    """A ``where`` expression compiled for one file: the columns it reads, the
    expression pushed into the Parquet scan, and the residual row mask."""

    @property
    def columns(self) -> frozenset[str]: ...

    @property
    def expression(self) -> Any: ...

    def residual(self, table: pa.Table) -> Any: ...


#: Compiles a ``where`` expression for one file's schema, in a project timezone.
WhereCompiler = Callable[[pa.Schema, str], CompiledFilter]

__all__ = [
    "DayWriteResult",
    "ParquetDataset",
    "conform_table",
    "day_record",
    "unify_kinds_of_schemas",
]

STATE_DIR = "_robotmia"  # older versions journalled swaps in <dataset>/_robotmia/
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: The longest file or folder name local file systems take (bytes).
_MAX_NAME = 255
METADATA_KEY = b"robotmia_frames"


# ------------------------------------------------------------------ type widening


# ------------------------------------------------------------------- atomic swaps

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None
with contextlib.suppress(OSError, AttributeError, TypeError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _renameat2 = _libc.renameat2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False if unsupported."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this filesystem
        return False
    raise OSError(err, os.strerror(err), str(b))


# ------------------------------------------------------------------------ dataset


def staging_folder(root: Path, *, beside_ok: bool) -> Path:
    """Where the days of the local dataset at ``root`` are staged: a hidden folder
    beside it when its parent is on the same filesystem and writable (``beside_ok``),
    else a hidden folder inside it (a dataset folder that is a mount point, such as a
    Docker volume), so that the ``rename`` that swaps a day in never crosses
    filesystems (``EXDEV``).

    Example:
        >>> from pathlib import PurePosixPath as P
        >>> staging_folder(P("/data/events"), beside_ok=True).as_posix()
        '/data/.events.robotmia-staging'
        >>> staging_folder(P("/data/events"), beside_ok=False).as_posix()
        '/data/events/.robotmia-staging'
    """
    if beside_ok:
        return root.parent / f".{root.name}.robotmia-staging"
    return root / ".robotmia-staging"


@dataclass
class DayWriteResult:
    """What writing one day partition produced (``files``: paths inside the dataset's
    filesystem)."""

    day: dt.date
    rows: int
    files: list[str] = field(default_factory=list)
    bytes: int = 0


def _day_dirname(day: dt.date) -> str:
    return f"date={day.isoformat()}"


def _event_dirname(event: str | None, day: dt.date | None = None) -> str:
    if event is None:
        return "event=" + NULL_PARTITION
    encoded = quote(event, safe="")
    if encoded == NULL_PARTITION:  # an event literally named so: escape its first "_"
        encoded = "%5F" + encoded[1:]
    name = "event=" + encoded
    if len(name) > _MAX_NAME:
        shown = event if len(event) <= 60 else event[:60] + "..."
        of_day = "" if day is None else f" (day {day.isoformat()})"
        raise InvalidArgumentError(
            f"the event {shown!r}{of_day} cannot be a partition folder: its name, URL-quoted, is "
            f"{len(name)} bytes long, over the {_MAX_NAME} a file system allows. "
            "Partition this export by date only (partition_by=('date',))"
        )
    return name


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


class ParquetDataset:
    """A Hive-partitioned Parquet dataset of export days, written atomically.

    ``root`` is a local path, a URL (``s3://...``, ``memory://...``) or a
    :class:`Location`. Locally a day is staged on the dataset's own filesystem and
    swapped in by ``rename``; on object storage a day is one object, written by one
    upload (a single PUT or a completed multipart upload), so it is replaced in one
    atomic step and no reader ever sees a staging object.

    Example:
        >>> import tempfile, datetime as dt, pyarrow as pa
        >>> ds = ParquetDataset(tempfile.mkdtemp())
        >>> t = pa.table({"event": ["a"], "time": pa.array([0], pa.timestamp("us", tz="UTC"))})
        >>> ds.write_day(dt.date(2024, 1, 1), t.schema, iter(t.to_batches())).rows
        1
        >>> ds.days()
        [datetime.date(2024, 1, 1)]
    """

    table_format = "hive"

    def __init__(
        self,
        root: str | os.PathLike[str] | Location,
        *,
        partition_by: Sequence[str] = ("date",),
        create: bool = True,
    ) -> None:
        self.location = root if isinstance(root, Location) else locate(root)
        self.fs = self.location.fs
        self.root = self.location.path
        parts = tuple(partition_by)
        if parts not in (("date",), ("date", "event")):
            raise InvalidArgumentError(
                f"partition_by must be ('date',) or ('date', 'event'), got {partition_by!r}"
            )
        if parts != ("date",) and not self.location.local:
            raise InvalidArgumentError(
                f"partition_by={parts!r} needs a local dataset: on object storage "
                f"({self.location.url}) a day is one object, replaced in one step; "
                "use partition_by=('date',) there"
            )
        self.partition_by = parts
        if create and self.location.local:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._unwritable(Path(self.root), exc) from None
        self._arrow_fs = None if self.location.local else arrow_filesystem(self.fs)
        if not self.location.local:
            # fsspec shares filesystem instances and their listings: forget what may
            # have changed since (another process replaces days, and s3fs refuses to
            # read an object whose ETag changed under a cached listing)
            with contextlib.suppress(Exception):
                self.fs.invalidate_cache()

    def check_layout(self) -> None:
        """Raise :class:`InvalidArgumentError` if the days already written are
        partitioned otherwise than ``partition_by`` (by date only, or by date and
        event): one folder with both layouts reads in no reader.

        Example:
            >>> import tempfile
            >>> ParquetDataset(tempfile.mkdtemp(), partition_by=("date", "event")).check_layout()
        """
        path = next((files[0] for files in map(self.files, self.days()) if files), None)
        if path is not None:  # the first file tells; days are listed one at a time
            parts = posixpath.relpath(path, self.root).replace(os.sep, "/").split("/")
            have = ("date", "event") if parts[1:2] and parts[1].startswith("event=") else ("date",)
            if have != self.partition_by:
                keep = (
                    "partition_by=('date',) without split_by='event'"
                    if have == ("date",)
                    else f"partition_by={have!r}"
                )
                raise InvalidArgumentError(
                    f"the dataset {self.location.url} is partitioned by {have!r}, not "
                    f"{self.partition_by!r}: one dataset has one layout. Pass {keep}, "
                    "or write to a new path"
                )

    def check_writable(self) -> None:
        """Raise :class:`InvalidArgumentError` unless the dataset folder and the
        folder where days are staged take new files, so that a read-only or full
        folder is reported before anything is downloaded (local datasets; object
        storage answers on the first upload).

        Example:
            >>> import tempfile
            >>> ParquetDataset(tempfile.mkdtemp()).check_writable()
        """
        if not self.location.local:
            return
        root = Path(self.root)
        for folder in dict.fromkeys((root, self.staging.parent)):
            try:
                fd, name = tempfile.mkstemp(prefix=".robotmia-probe-", dir=folder)
                os.close(fd)
                os.unlink(name)
            except OSError as exc:
                raise self._unwritable(folder, exc) from None

    def _unwritable(self, folder: Path, exc: OSError) -> InvalidArgumentError:
        blocker = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        if blocker is not None:  # the folder is a file, or inside one
            return InvalidArgumentError(
                f"the dataset {self.root} cannot be written: {blocker} is a file, not a "
                "folder. Nothing was downloaded. Choose another path."
            )
        return InvalidArgumentError(
            f"the dataset {self.root} cannot be written: creating a file in {folder} "
            f"failed ({exc.strerror or exc}). Nothing was downloaded. Check the folder's "
            "permissions and that its disk is not read-only or full, or choose another path."
        )

    # -- staging and recovery (local) -----------------------------------------------

    @property
    def staging(self) -> Path:
        """Where a local day is staged: a hidden folder beside the dataset when that is
        on the same filesystem (no reader of the dataset sees it), else a hidden folder
        inside it (a dataset folder that is a mount point), so that the swap is always
        a ``rename`` within one filesystem."""
        root = Path(self.root)
        try:
            beside = os.stat(root.parent).st_dev == os.stat(root).st_dev and os.access(
                root.parent, os.W_OK
            )
        except OSError:
            beside = True
        return staging_folder(root, beside_ok=beside)

    def recover(self) -> None:
        """Undo what a killed writer left: restore swapped-out days, drop staging.

        Call it only while holding the dataset's writer lock
        (:func:`~robotmia_frames.sinks.writer_lock`): it removes the staging folder.
        """
        if not self.location.local:
            return  # nothing is staged on object storage
        staging = self.staging
        for journal_dir in (staging / "journal", Path(self.root) / STATE_DIR / "journal"):
            if not journal_dir.is_dir():
                continue
            for entry in sorted(journal_dir.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    info = json.loads(entry.read_text())
                    target = Path(self.root) / info["target"]
                    backup = Path(info["backup"])
                    if backup.exists() and not target.exists():
                        os.rename(backup, target)  # the new data never landed: roll back
                with contextlib.suppress(OSError):
                    entry.unlink()
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    # -- listing ----------------------------------------------------------------------

    def days(self) -> list[dt.date]:
        """The export days present in the dataset, sorted."""
        names: list[str] = []
        if self.location.local:
            root = Path(self.root)
            if not root.is_dir():
                return []
            names = [p.name for p in root.iterdir() if p.is_dir()]
        else:
            with contextlib.suppress(Exception):
                self.fs.invalidate_cache()
            try:
                entries = self.fs.ls(self.root, detail=True)
            except (FileNotFoundError, NotADirectoryError):
                return []
            names = [
                posixpath.basename(str(e["name"]).rstrip("/"))
                for e in entries
                if e.get("type") == "directory"
            ]
        out: list[dt.date] = []
        for name in names:
            if name.startswith("date="):
                with contextlib.suppress(ValueError):
                    out.append(dt.date.fromisoformat(name[5:]))
        return sorted(out)

    def files(self, day: dt.date | None = None) -> list[str]:
        """Data files of one day (or of all days), sorted; paths inside the filesystem."""
        days = [day] if day else self.days()
        out: list[str] = []
        for d in days:
            base = self.location.join(_day_dirname(d))
            if self.location.local:
                found = (
                    [str(p) for p in Path(base).rglob("*.parquet")] if Path(base).is_dir() else []
                )
            else:
                try:
                    found = [str(p) for p in self.fs.find(base)]
                except FileNotFoundError:
                    found = []
            out.extend(
                p
                for p in found
                if p.endswith(".parquet") and not _hidden(posixpath.relpath(p, self.root))
            )
        return sorted(out)

    def files_by_day(
        self, keep: Callable[[dt.date], bool] = lambda day: True
    ) -> dict[dt.date, list[str]]:
        """The data files of each day that ``keep`` accepts (every day by default),
        oldest day first."""
        return {day: self.files(day) for day in self.days() if keep(day)}

    def metadata_of(self, path: str) -> pq.FileMetaData:
        """The footer of one data file (rows, row groups, column sizes)."""
        with _readable(path):
            return pq.read_metadata(path, filesystem=self._arrow_fs)

    def open_file(self, path: str) -> pq.ParquetFile:
        """One data file, opened for its footer and columns (on any filesystem)."""
        with _readable(path):
            return pq.ParquetFile(path, filesystem=self._arrow_fs)

    def schema_of(self, path: str) -> pa.Schema:
        """The Arrow schema of one data file (its footer only)."""
        with _readable(path):
            return pq.read_schema(path, filesystem=self._arrow_fs)

    def size_of(self, path: str) -> int:
        """The size in bytes of one data file."""
        return os.path.getsize(path) if self.location.local else int(self.fs.size(path))

    def schemas(self) -> dict[str, pa.Schema]:
        """The schema of every data file (footers only), by path."""
        return {f: self.schema_of(f) for f in self.files()}

    def records(self, schemas: Mapping[str, pa.Schema] | None = None) -> list[dict[str, Any]]:
        """What each data file records of itself (its footer), for the dataset state;
        from ``schemas`` when the caller has read them already (:meth:`schemas`)."""
        if schemas is None:
            schemas = self.schemas()
        return [recorded_metadata(s) for s in schemas.values()]

    def current_kinds(self) -> dict[str, Kind]:
        """Column kinds of the files already written (from their footers only)."""
        return unify_kinds_of_schemas(self.schemas().values())

    # -- writing ------------------------------------------------------------------

    def write_day(
        self,
        day: dt.date,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        *,
        metadata: dict[str, Any] | None = None,
        row_group_rows: int = 128 * 1024,
        event_columns: Mapping[str | None, Collection[str]] | None = None,
    ) -> DayWriteResult:
        """Replace the partition of ``day`` with ``batches``, atomically.

        The batches must all have ``schema``. An empty day removes the partition.
        If anything raises, the old partition is left exactly as it was. Each file
        records ``metadata``, the day and when it was written in its footer. With
        ``partition_by=("date", "event")``, ``event_columns`` names the columns
        each event has values for: its files hold only those (and ``time``), and a
        batch may hold only the fields of ``schema`` that its events' files take
        (the parts of a wide day cut by event before they are typed).
        """
        local = self.location.local
        staging: Path | None = None
        if local:
            staging = self.staging
            stage = staging / uuid.uuid4().hex
        else:
            stage = Path(tempfile.mkdtemp(prefix="robotmia-day-"))
        day_dir = stage / _day_dirname(day)
        _make_dirs(day_dir)
        meta = dict(schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(day_record(day, metadata)).encode()
        by_event = self.partition_by == ("date", "event")
        file_schema = schema.with_metadata(meta)
        if by_event:
            file_schema = file_schema.remove(file_schema.get_field_index("event"))
        writers: dict[str | None, pq.ParquetWriter] = {}
        event_schemas = SchemaParts(file_schema, always=["time"])
        groups = RowGroups(row_group_rows)
        result = DayWriteResult(day, 0)
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                result.rows += batch.num_rows
                if not by_event:
                    groups.add(self._writer(writers, None, day_dir, file_schema), batch)
                    continue
                events = batch.column("event")
                rest = batch.drop_columns(["event"])
                values = pc.unique(events).to_pylist()
                for value in values:
                    part = rest
                    target = day_dir / _event_dirname(value, day)
                    event_schema = file_schema
                    if event_columns is not None:
                        event_schema = event_schemas(value, event_columns.get(value, ()))
                        part = part.select(event_schema.names)  # before filtering: fewer
                    if len(values) > 1:
                        mask = pc.is_null(events) if value is None else pc.equal(events, value)
                        part = part.filter(mask)
                    groups.add(self._writer(writers, value, target, event_schema), part)
            groups.flush()
            for w in writers.values():
                w.close()
            writers.clear()
            staged = sorted(day_dir.rglob("*.parquet"))
            for p in staged:
                result.bytes += p.stat().st_size
                if local:
                    with open(p, "rb") as fh:
                        os.fsync(fh.fileno())
            final = self.location.join(_day_dirname(day))
            result.files = [
                posixpath.join(final, p.relative_to(day_dir).as_posix()) for p in staged
            ]
            if local:
                self._swap_in(day_dir if result.rows else None, Path(final))
            else:
                self._put_day(day_dir if result.rows else None, final)
        finally:
            for w in writers.values():
                with contextlib.suppress(Exception):
                    w.close()
            shutil.rmtree(stage, ignore_errors=True)
            if staging is not None:
                with contextlib.suppress(OSError):
                    staging.rmdir()  # only when empty: another writer may be using it
        return result

    @staticmethod
    def _writer(
        writers: dict[str | None, pq.ParquetWriter],
        key: str | None,
        directory: Path,
        schema: pa.Schema,
    ) -> pq.ParquetWriter:
        w = writers.get(key)
        if w is None:
            directory.mkdir(parents=True, exist_ok=True)
            w = writers[key] = pq.ParquetWriter(
                directory / "part-0.parquet",
                schema,
                compression="zstd",
                use_dictionary=True,
                write_statistics=True,
            )
        return w

    def _put_day(self, new: Path | None, final: str) -> None:
        """Object storage: the day is one object, replaced by one upload (or removed)."""
        target = posixpath.join(final, "part-0.parquet")
        if new is not None:
            source = str(new / "part-0.parquet")
            if isinstance(self._arrow_fs, pafs.FileSystem) and not isinstance(
                self._arrow_fs, pafs.PyFileSystem
            ):  # a pyarrow filesystem: one PUT, or a multipart upload
                upload_checked(source, target, self._arrow_fs)
            else:  # fsspec: one PUT, or a multipart upload that is aborted on failure
                self.fs.put_file(source, target)
            return
        with contextlib.suppress(FileNotFoundError):
            if self.fs.exists(target):
                self.fs.rm_file(target)
        with contextlib.suppress(Exception):  # a pseudo-folder left behind (memory://)
            if not self.fs.find(final):
                self.fs.rmdir(final)

    def _swap_in(self, new: Path | None, final: Path) -> None:
        """Put ``new`` (a complete day folder, or None for "no data") at ``final``."""
        if new is not None:
            fsync_dir(new)
            if not final.exists():
                os.rename(new, final)
                fsync_dir(final.parent)
                return
            if _exchange(new, final):  # new now holds the old day; removed by the caller
                fsync_dir(final.parent)
                return
        if not final.exists():
            return
        # Fallback: move the old day aside under a journal, then move the new one in.
        journal_dir = self.staging / "journal"
        journal_dir.mkdir(parents=True, exist_ok=True)
        backup = self.staging / f"old-{uuid.uuid4().hex}"
        journal = journal_dir / f"{uuid.uuid4().hex}.json"
        journal.write_text(json.dumps({"target": final.name, "backup": str(backup)}))
        os.rename(final, backup)
        if new is not None:
            os.rename(new, final)
        journal.unlink()
        fsync_dir(final.parent)
        shutil.rmtree(backup, ignore_errors=True)

    def rewrite_day(
        self,
        day: dt.date,
        kinds: dict[str, Kind],
        metadata: dict[str, Any],
        *,
        update: dict[str, Any] | None = None,
    ) -> None:
        """Rewrite an existing day so that it has every column of ``kinds``, typed by
        them (wider); its footer keeps what it recorded (else ``metadata``), plus
        ``update``."""
        files = self.files(day)
        if not files:
            return
        tables = [self._read_file(f) for f in files]
        columns = [  # event and time first, unless the files lack them (columns=)
            c
            for c in column_order(t.schema for t in tables)
            if c not in ("event", "time") or any(c in t.column_names for t in tables)
        ]
        columns += [k for k in kinds if k not in columns and k not in ("event", "time")]
        event_columns: dict[str | None, set[str]] | None = None
        if self.partition_by == ("date", "event"):  # each event keeps its own columns
            event_columns = {}
            for f, t in zip(files, tables, strict=True):
                event = _event_of_dirname(posixpath.basename(posixpath.dirname(f)))
                have = event_columns.setdefault(event, set())
                have.update(t.column_names)
        table = pa.concat_tables([conform_table(t, kinds, columns) for t in tables])
        # the day keeps what its files record (when it was downloaded, what was asked)
        own = {**metadata, **self.recorded(files[0]), **(update or {})}
        self.write_day(
            day,
            table.schema,
            iter(table.to_batches()),
            metadata=own,
            event_columns=event_columns,
        )

    def _read_file(
        self, path: str, columns: Sequence[str] | None = None, filters: Any = None
    ) -> pa.Table:
        with _readable(path):
            table = pq.read_table(
                path,
                columns=list(columns) if columns is not None else None,
                filters=filters,
                filesystem=self._arrow_fs,
            )
        if self.partition_by == ("date", "event") and (columns is None or "event" in columns):
            part = posixpath.basename(posixpath.dirname(path))
            event: str | None = None
            if part.startswith("event="):
                event = _event_of_dirname(part)
            table = table.add_column(0, "event", pa.array([event] * table.num_rows, pa.string()))
        return table.replace_schema_metadata(None)

    def _read_where(
        self, path: str, columns: Sequence[str] | None, where: WhereCompiler, timezone: str
    ) -> pa.Table:
        """One file's rows that ``where`` keeps: the compiled expression is pushed into
        the Parquet scan (row groups pruned by their statistics), and the vectorised
        residual runs on the rows it keeps. The expression is compiled against this
        file's own schema, so its types are the ones the values were written with."""
        compiled = where(self.schema_of(path), timezone)
        extra = [] if columns is None else sorted(compiled.columns - set(columns))
        t = self._read_file(
            path, None if columns is None else [*columns, *extra], filters=compiled.expression
        )
        mask = compiled.residual(t)
        if mask is not None:
            t = t.filter(mask)
        return t.drop_columns(extra) if extra else t

    def recorded(self, path: str) -> dict[str, Any]:
        """What a data file records about itself (``metadata`` of :meth:`write_day`)."""
        return recorded_metadata(self.schema_of(path))

    # -- reading ------------------------------------------------------------------

    def select(
        self,
        *,
        from_date: dt.date | None = None,
        to_date: dt.date | None = None,
        event: Sequence[str] | None = None,
    ) -> dict[dt.date, list[str]]:
        """The data files :meth:`read` reads, by day: the days ``from_date..to_date``,
        and only the partitions of ``event`` when the dataset is partitioned by event.

        Example:
            >>> import tempfile, datetime as dt, pyarrow as pa
            >>> ds = ParquetDataset(tempfile.mkdtemp())
            >>> t = pa.table({"event": ["a"], "time": pa.array([0], pa.timestamp("us", tz="UTC"))})
            >>> _ = ds.write_day(dt.date(2024, 1, 2), t.schema, iter(t.to_batches()))
            >>> [(d.isoformat(), [posixpath.basename(f) for f in fs]) for d, fs in ds.select().items()]
            [('2024-01-02', ['part-0.parquet'])]
        """
        out: dict[dt.date, list[str]] = {}
        for day, files in self.files_by_day(
            lambda d: not ((from_date and d < from_date) or (to_date and d > to_date))
        ).items():
            if event is not None and self.partition_by == ("date", "event"):
                files = [
                    f
                    for f in files
                    if _event_of_dirname(posixpath.basename(posixpath.dirname(f))) in event
                ]
            out[day] = files
        return out

    def read_tables(
        self,
        *,
        from_date: dt.date | None = None,
        to_date: dt.date | None = None,
        columns: Sequence[str] | None = None,
        event: Sequence[str] | None = None,
        where: WhereCompiler | None = None,
        project_timezone: str | None = None,
        default_timezone: str = "UTC",
        on_day: Callable[[int, int], None] | None = None,
    ) -> list[pa.Table]:
        """Days ``from_date..to_date``, one table per data file, each with its own
        columns and types (:func:`unified_table` unifies them).

        ``where`` (a compiler of a ``where`` expression for a file's schema and
        timezone) keeps the rows the expression selects, file by file (see
        :meth:`_read_where`); times are read in ``project_timezone``, else the
        timezone the file records, else ``default_timezone``. ``on_day(bytes, rows)``
        is called after each day is read (progress reporting).
        """
        tables = []
        for files in self.select(from_date=from_date, to_date=to_date, event=event).values():
            day_rows = 0
            for f in files:
                schema = self.schema_of(f)
                present = schema.names
                want = None if columns is None else [c for c in columns if c in present]
                if (
                    event is not None
                    and want is not None
                    and "event" not in want
                    and self.partition_by == ("date",)
                ):
                    want = [*want, "event"]
                if where is None:
                    t = self._read_file(f, want)
                else:
                    recorded_tz = recorded_metadata(schema).get("project_timezone")
                    tz = (
                        project_timezone
                        or (recorded_tz if isinstance(recorded_tz, str) and recorded_tz else None)
                        or default_timezone
                    )
                    t = self._read_where(f, want, where, tz)
                if event is not None and self.partition_by == ("date",):
                    t = t.filter(pc.is_in(t.column("event"), pa.array(list(event), pa.string())))
                    if columns is not None and "event" not in columns:
                        t = t.drop_columns(["event"])
                tables.append(t)
                day_rows += t.num_rows
            if on_day is not None:
                on_day(0, day_rows)
        return tables


#: What pyarrow says of a data file whose bytes it cannot decode (``ArrowInvalid``
#: for a file cut short or not Parquet, ``OSError`` for a garbled footer or page).
_CORRUPT = re.compile(
    r"magic bytes|footer|not a parquet file|deserialize thrift|corrupt|invalid data|"
    r"unexpected end",
    re.IGNORECASE,
)


@contextlib.contextmanager
def _readable(path: str) -> Iterator[None]:
    """Name a data file that pyarrow cannot read (cut short by a full disk or an
    interrupted copy, or not Parquet at all): pyarrow's own error names no file.

    Example:
        >>> with _readable("events/date=2024-01-02/part-0.parquet"):
        ...     raise pa.ArrowInvalid("Parquet magic bytes not found in footer")
        Traceback (most recent call last):
        ...
        robotmia_frames.errors.InvalidArgumentError: events/date=2024-01-02/part-0.parquet is not a readable Parquet file (Parquet magic bytes not found in footer): ...
    """
    try:
        yield
    except (pa.ArrowInvalid, OSError) as exc:
        reason = str(exc).strip()
        if not _CORRUPT.search(reason):
            raise  # not the file's bytes (a network or permission failure, a filter)
        raise InvalidArgumentError(
            f"{path} is not a readable Parquet file ({reason}): the dataset cannot be "
            "read or written while it is there. Restore it, or delete it and export its "
            "day again"
        ) from exc


def _make_dirs(path: Path, attempts: int = 10) -> None:
    """``path`` and its parents, made while other writers (Dask workers writing other
    days) may remove the shared staging folder the moment it is empty."""
    for attempt in range(attempts):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, FileNotFoundError):
            if attempt == attempts - 1:
                raise
        else:
            return


def day_record(day: dt.date, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a written day records of itself (a Hive file's footer, a Delta commit):
    ``metadata``, the day, and when it was written (a rewrite keeps the day's own).

    Example:
        >>> day_record(dt.date(2024, 1, 2), {"written_at": "2024-01-03T00:00:00+00:00"})
        {'written_at': '2024-01-03T00:00:00+00:00', 'day': '2024-01-02'}
    """
    record = {**(metadata or {}), "day": day.isoformat()}
    record.setdefault("written_at", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return record


def recorded_metadata(schema: pa.Schema) -> dict[str, Any]:
    """What a data file's footer records (its ``robotmia_frames`` key), or ``{}``."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if not raw:
        return {}
    with contextlib.suppress(ValueError, TypeError):
        value = json.loads(raw)
        if isinstance(value, dict):
            return value
    return {}


def _event_of_dirname(name: str) -> str | None:
    """The event of an ``event=...`` partition folder (None for the null partition)."""
    raw = name[len("event=") :]
    return None if raw == NULL_PARTITION else unquote(raw)
