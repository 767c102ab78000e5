"""Delta Lake tables of export days (``table_format="delta"``), written with ``deltalake``.

The table is partitioned by ``date`` (the export day, a ``date`` column). Each day
is one commit: ``mode="overwrite"`` with the predicate ``date = 'YYYY-MM-DD'``, so a
re-exported day replaces exactly that day and a day that comes back empty removes
its rows. A day that widens a column's type (Delta has one schema per table) is
written together with every older day, conformed to the wider type, in one commit,
so every version of the table reads. Each commit records what the data files of a
Hive dataset record in their footers (key ``robotmia_frames`` of the commit's
metadata): the dataset state is read from the table's history.

Reading goes through :class:`ParquetDataset`'s reader on the files of the current
version (the Delta log says which), so ``read_parquet_dataset`` gives the same
table for a Delta table as for a Hive dataset of the same days.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from ..parse.typepolicy import Kind, kind_of_field
from ._dataset import METADATA_KEY, DayWriteResult, ParquetDataset, day_record
from ._storage import Location
from ._tables import conform_table

__all__ = ["DELTA_LOG", "DeltaDataset", "delta_storage_options", "is_delta"]

DELTA_LOG = "_delta_log"
_KEY = METADATA_KEY.decode()


def is_delta(location: Location) -> bool:
    """Whether the folder at ``location`` is a Delta table (it has a ``_delta_log``)."""
    try:
        return bool(location.fs.isdir(location.join(DELTA_LOG)))
    except Exception:
        return False


def delta_storage_options(options: dict[str, Any] | None) -> dict[str, str]:
    """fsspec (s3fs) ``storage_options`` as the object-store options of ``deltalake``.

    Example:
        >>> delta_storage_options({"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9"})
        ... # doctest: +NORMALIZE_WHITESPACE
        {'AWS_ACCESS_KEY_ID': 'k', 'AWS_SECRET_ACCESS_KEY': 's',
         'AWS_ENDPOINT_URL': 'http://127.0.0.1:9', 'AWS_ALLOW_HTTP': 'true'}
    """
    out: dict[str, str] = {}
    names = {
        "key": "AWS_ACCESS_KEY_ID",
        "secret": "AWS_SECRET_ACCESS_KEY",
        "token": "AWS_SESSION_TOKEN",
        "endpoint_url": "AWS_ENDPOINT_URL",
        "region": "AWS_REGION",
    }
    for key, value in (options or {}).items():
        if key in names and value is not None:
            out[names[key]] = str(value)
        elif key == "client_kwargs" and isinstance(value, dict):
            if value.get("region_name"):
                out["AWS_REGION"] = str(value["region_name"])
            if value.get("endpoint_url"):
                out["AWS_ENDPOINT_URL"] = str(value["endpoint_url"])
        elif key.isupper():  # already an object-store option
            out[key] = str(value)
    endpoint = out.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint.startswith("http://") and "AWS_ALLOW_HTTP" not in os.environ:
        # a plain-HTTP endpoint (a local S3 server) was asked for: deltalake refuses
        # one unless allowed, where s3fs and pyarrow take it as given
        out.setdefault("AWS_ALLOW_HTTP", "true")
    return out


class DeltaDataset(ParquetDataset):
    """A Delta Lake table of export days, partitioned by ``date``.

    Example:
        >>> import tempfile, datetime as dt, pyarrow as pa
        >>> from robotmia_frames.sinks import locate
        >>> ds = DeltaDataset(locate(tempfile.mkdtemp()))
        >>> t = pa.table({"event": ["a"], "time": pa.array([0], pa.timestamp("us", tz="UTC"))})
        >>> days = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
        >>> [ds.write_day(day, t.schema, iter(t.to_batches())).rows for day in days]
        [1, 1]
        >>> ds.days() == days, ds.table_format
        (True, 'delta')
    """

    table_format = "delta"

    def __init__(
        self,
        root: Location,
        *,
        storage_options: dict[str, Any] | None = None,
        create: bool = True,
    ) -> None:
        super().__init__(root, partition_by=("date",), create=create)
        self.uri = self.root if root.local else root.url
        self.delta_options = delta_storage_options(storage_options) or None
        # The table as this object's last write left it (a write updates it in
        # place): the next day is written through it, its log not read again.
        self._written: Any = None

    # -- the table ----------------------------------------------------------------

    def _table(self) -> Any:
        from deltalake import DeltaTable

        if not is_delta(self.location):
            return None
        return DeltaTable(self.uri, storage_options=self.delta_options)

    def _actions(self, table: Any = None) -> pa.Table | None:
        """The add actions of ``table`` (else of the table as its log says now)."""
        table = self._table() if table is None else table
        if table is None:
            return None
        return pa.table(table.get_add_actions(flatten=True))

    def files_by_day(
        self, keep: Callable[[dt.date], bool] = lambda day: True
    ) -> dict[dt.date, list[str]]:
        """The data files of each day that ``keep`` accepts, from one read of the log."""
        actions = self._actions()
        if actions is None:
            return {}
        out: dict[dt.date, list[str]] = {}
        for path, d in zip(
            actions.column("path").to_pylist(),
            actions.column("partition.date").to_pylist(),
            strict=True,
        ):
            if keep(d):
                out.setdefault(d, []).append(self.location.join(unquote(path)))
        return {d: sorted(out[d]) for d in sorted(out)}

    def days(self) -> list[dt.date]:
        return list(self.files_by_day())

    def files(self, day: dt.date | None = None) -> list[str]:
        by_day = self.files_by_day(lambda d: day is None or d == day)
        return sorted(f for files in by_day.values() for f in files)

    def schemas(self, table: Any = None) -> dict[str, pa.Schema]:
        """The table's schema (less ``date``), once: it stands for every file (of
        ``table``, else of the table as its log says now)."""
        table = self._table() if table is None else table
        if table is None:
            return {}
        schema = pa.schema(table.schema().to_arrow())
        return {self.uri: schema.remove(schema.get_field_index("date"))}

    def records(self, schemas: Mapping[str, pa.Schema] | None = None) -> list[dict[str, Any]]:
        """What each commit of the table records (oldest first; from its history, not
        from ``schemas``)."""
        table = self._table()
        if table is None:
            return []
        out = []
        for commit in reversed(table.history()):
            raw = commit.get(_KEY)
            if isinstance(raw, str):
                try:
                    value = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    out.append(value)
        return out

    def recover(self) -> None:
        """Nothing to undo: a commit either lands in the log or never happened."""

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
        """Replace the rows of ``day`` in one commit (with every older day, conformed,
        when ``schema`` widens a column the table holds narrower)."""
        from deltalake import CommitProperties, write_deltalake

        record = day_record(day, metadata)
        out_schema = schema.remove_metadata().append(pa.field("date", pa.date32()))
        result = DayWriteResult(day, 0)
        date_value = pa.scalar(day, pa.date32())

        def dated() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                result.rows += batch.num_rows
                yield _dated(batch, date_value, out_schema)

        # Written through the table as the last write left it (the writer's lock
        # keeps others out), not through its log read again for each day.
        table = self._written if self._written is not None else self._table()
        self._written = None  # until this write has landed
        widen = self._narrower_in_table(schema, table)
        target = self.uri if table is None else table
        common: dict[str, Any] = dict(
            partition_by=["date"],
            storage_options=self.delta_options,
            commit_properties=CommitProperties(custom_metadata={_KEY: json.dumps(record)}),
        )
        if widen:
            # the log is read now: the batches are pulled from inside deltalake's runtime
            older = self.files_by_day(lambda d: d != day)
            reader = pa.RecordBatchReader.from_batches(
                out_schema, itertools.chain(self._older_days(older, schema, out_schema), dated())
            )
            write_deltalake(target, reader, mode="overwrite", schema_mode="overwrite", **common)
        else:
            reader = pa.RecordBatchReader.from_batches(out_schema, dated())
            write_deltalake(
                target,
                reader,
                mode="overwrite",
                predicate=f"date = '{day.isoformat()}'",
                schema_mode="merge",
                **common,
            )
        if table is None:  # the table's first commit
            table = self._table()
        self._written = table
        actions = self._actions(table)
        if actions is not None:
            for path, size, d in zip(
                actions.column("path").to_pylist(),
                actions.column("size_bytes").to_pylist(),
                actions.column("partition.date").to_pylist(),
                strict=True,
            ):
                if d == day:
                    result.files.append(self.location.join(unquote(path)))
                    result.bytes += int(size)
        return result

    def _narrower_in_table(self, schema: pa.Schema, table: Any) -> bool:
        """Whether ``table`` holds a column of ``schema`` with another (narrower) type."""
        current = self.schemas(table) if table is not None else {}
        if not current:
            return False
        (table_schema,) = current.values()
        return any(
            f.name in table_schema.names and table_schema.field(f.name).type != f.type
            for f in schema
        )

    def _older_days(
        self,
        older: dict[dt.date, list[str]],
        schema: pa.Schema,
        out_schema: pa.Schema,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of the ``older`` days' files, conformed to ``schema`` (wider kinds)."""
        kinds: dict[str, Kind] = {f.name: kind_of_field(f) for f in schema if f.name != "time"}
        columns = schema.names
        for other, files in older.items():
            value = pa.scalar(other, pa.date32())
            for f in files:
                table = conform_table(self._read_file(f), kinds, columns)
                for batch in table.to_batches():
                    yield _dated(batch, value, out_schema)

    def rewrite_day(
        self,
        day: dt.date,
        kinds: dict[str, Kind],
        metadata: dict[str, Any],
        *,
        update: dict[str, Any] | None = None,
    ) -> None:
        """Nothing to rewrite: a Delta table has one schema (widened in the commit
        that widens it) and reads missing columns as nulls."""


def _dated(batch: pa.RecordBatch, day: pa.Scalar, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with the ``date`` column (``day`` on every row) appended."""
    return pa.RecordBatch.from_arrays(
        [*batch.columns, pa.repeat(day, batch.num_rows)], schema=schema
    )
