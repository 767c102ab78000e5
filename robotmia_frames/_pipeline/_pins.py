"""The pins of a call: ``dtype=`` and ``on_type_mismatch=`` checked once
(:class:`Pinned`), and settled over a whole read or day (:class:`SettledPins`), so
that every part of it is pinned alike."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .. import _options, parse
from ..errors import MetaMismatchError, RobotmiaWarning, user_stacklevel
from ..parse import PROPERTY_PREFIX, Kind, arrow_type


@dataclass(frozen=True)
class Pinned:
    """``dtype=`` and ``on_type_mismatch=`` of a call, checked (see ``parse.pin_types``)."""

    dtypes: dict[str, pa.DataType]
    on_type_mismatch: parse.OnTypeMismatch = "text"
    #: False where the caller warns instead (a Dask worker's warnings reach no one)
    warns: bool = True

    @classmethod
    def checked(cls, dtype: Any, on_type_mismatch: Any) -> Pinned:
        return cls(_options.dtype(dtype), _options.on_type_mismatch(on_type_mismatch))

    def metadata(self) -> dict[str, Any]:
        """What a dataset records of the pins (so that ``sync`` keeps them)."""
        if not self.dtypes:
            return {}
        names = {k: parse.type_name(v) for k, v in self.dtypes.items()}
        return {"dtype": names, "on_type_mismatch": self.on_type_mismatch}

    def kinds(
        self, merged: dict[str, Kind], before: dict[str, Kind], written: pa.Schema
    ) -> set[str]:
        """Give ``merged`` (a dataset's kinds after a day) the kinds of the pinned
        columns as written; returns the columns whose earlier days are now narrower."""
        narrower = set()
        for f in written:
            if f.name in self.dtypes or f.name.removesuffix(parse.RAW_SUFFIX) in self.dtypes:
                merged[f.name] = parse.unify(before.get(f.name), parse.kind_of_field(f))
                if arrow_type(merged[f.name]) != f.type:
                    narrower.add(f.name)
        return narrower

    def apply(
        self,
        table: pa.Table,
        source: str,
        columns: Sequence[str] | None = None,
        *,
        whole: bool = True,
    ) -> pa.Table:
        """The pinned types given to ``table`` (read from ``source``), with a
        ``RobotmiaWarning`` counting the values that did not fit, per column. A
        pinned column the ``whole`` result lacks is an error (a day of a dataset may
        lack it)."""
        if not self.dtypes:
            return table
        if whole and columns is None and table.num_rows:
            self.check_known(table.column_names, source)
        table, report = parse.pin_types(table, self.dtypes, self.on_type_mismatch, source=source)
        self.warn(report, source)
        return table

    def apply_each(
        self,
        tables: pa.Table | dict[str | None, pa.Table],
        source: str,
        columns: Sequence[str] | None,
    ) -> pa.Table | dict[str | None, pa.Table]:
        """The pinned types given to one table, or to each event's table (``split_by``:
        an event may lack a pinned column)."""
        if not isinstance(tables, dict):
            return self.apply(tables, source, columns)
        return {
            name: self.apply(t, f"{source}, event {name!r}", columns, whole=False)
            for name, t in tables.items()
        }

    def keys(self) -> frozenset[str]:
        """The property keys of the pinned columns: they stay columns (beside a sparse map).

        Example:
            >>> import pyarrow as pa
            >>> Pinned({"properties.n": pa.int64(), "time": pa.int64()}).keys()
            frozenset({'n'})
        """
        return frozenset(
            c[len(PROPERTY_PREFIX) :].removesuffix(parse.RAW_SUFFIX)
            for c in self.dtypes
            if c.startswith(PROPERTY_PREFIX)
        )

    def check_known(self, names: Sequence[str], source: str) -> None:
        """A pinned column that is none of ``names`` (every column of ``source``) is
        an error with the nearest names."""
        absent = [c for c in self.dtypes if c not in names]
        _options.known_columns(absent, names, source)

    def warn(self, report: parse.PinReport, source: str) -> None:
        """The ``RobotmiaWarning`` counting, per column, the values of ``source`` that
        did not fit (none if every value fit)."""
        if not report.mismatches or not self.warns:
            return
        counts = "; ".join(
            report.describe(c, t) for c, t in self.dtypes.items() if c in report.mismatches
        )
        if self.on_type_mismatch == "null":
            then = "they are null, their original text is in <column>__raw"
        else:
            then = (
                "the column stays text (on_type_mismatch='text'); "
                "on_type_mismatch='null' sets them aside in <column>__raw"
            )
        warnings.warn(f"{source}: {counts}: {then}", RobotmiaWarning, stacklevel=user_stacklevel())


@dataclass(frozen=True)
class SettledPins:
    """A call's pinned types (``dtype=``) settled from the misfits of every part of
    its data (``misfit``: the pinned columns with a value that does not fit in any
    part), so that each part, pinned on its own, has the types of the whole: with
    ``on_type_mismatch="text"`` a column with a misfit in any part keeps the type
    policy's type in all of them (as one table pinned whole keeps it); with
    ``"null"`` every part has the ``<column>__raw`` column of a column with a misfit
    in any of them. The parts are a wide day's chunks as it is written
    (:func:`write_window`), or the partitions of a Dask DataFrame.

    Example:
        >>> pins = SettledPins(Pinned({"properties.p": pa.float64()}, "null"),
        ...                    frozenset({"properties.p"}))
        >>> pins.apply(pa.table({"properties.p": ["1.5"]}), "part").column_names
        ['properties.p', 'properties.p__raw']
    """

    pinned: Pinned
    misfit: frozenset[str] = frozenset()

    @classmethod
    def settled(
        cls, pinned: Pinned, reports: Sequence[parse.PinReport], source: str
    ) -> SettledPins:
        """The pins of a call whose parts' misfits are ``reports``, with the one
        warning one table gives for the whole ``source``."""
        total = parse.PinReport()
        for one in reports:
            total.add(one)
        pinned.warn(total, source)
        return cls(pinned, frozenset(total.mismatches))

    def apply(self, table: pa.Table, source: str, *, check: bool = False) -> pa.Table:
        """``table`` (one part, or an empty table of the whole's schema) with the
        pinned types. With ``check`` (a part the misfits were not counted over: a
        Dask partition beyond the sampled days), a misfit in a column that had none
        raises :class:`MetaMismatchError`."""
        pinned = self.pinned
        if not pinned.dtypes:
            return table
        mode = pinned.on_type_mismatch
        dtypes = {c: t for c, t in pinned.dtypes.items() if mode != "text" or c not in self.misfit}
        table, report = parse.pin_types(table, dtypes, mode, source=source)
        unseen = sorted(set(report.mismatches) - self.misfit)
        if check and unseen:
            raise MetaMismatchError(
                f"{source}: {', '.join(unseen)} has values that do not fit the pinned type, "
                "unlike the first day the meta was sampled from; use "
                'meta_sample="all" (the default) for exact types over every day'
            )
        if mode == "null":
            for name in sorted(self.misfit):
                raw = name + parse.RAW_SUFFIX
                if name in table.column_names and raw not in table.column_names:
                    at = table.schema.get_field_index(name) + 1
                    nulls = pa.nulls(table.num_rows, pa.string())
                    table = table.add_column(at, pa.field(raw, pa.string()), nulls)
        return table
