"""The dataset's state: its project timezone and which days are done.

Nothing of it lives in a file of its own, inside the dataset folder (where readers
such as polars, which read every file under a folder, would trip on it) or beside
it. Every data file records in its own Parquet footer (key ``robotmia_frames``):

- ``project_timezone``, the ``day`` it holds and ``written_at`` (UTC);
- what the run asked for (``from_date``, ``to_date``, ``event``, ``where``, ...);
- ``body_bytes_per_day``: the compressed bytes per day of the export body the day
  came in (a multi-day window's bytes divided by its days), from which later
  runs size their windows and plans (:meth:`DatasetState.history_bytes_per_day`);
- ``complete``: the day ranges that whole runs finished, as far as the writer knows
  them. A run that finishes records its range (cut at today, in the project
  timezone) in the footer of the newest day it can, so that days that came back
  empty (which have no file) count as done too.

The schema of the dataset is the files' own schemas. The state travels with a
copied folder, and the table format is the folder itself (``_delta_log`` or not).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ._storage import Location

__all__ = ["DatasetState", "load_state", "merge_ranges"]

LEGACY_DIR = "_robotmia"  # where older versions kept a sync state, inside the dataset
_LEGACY_FILE = "sync.json"

Range = tuple[dt.date, dt.date]

#: The key of a day's compressed body bytes per day in its footer.
BYTES_KEY = "body_bytes_per_day"

#: How many of the latest recorded days :meth:`DatasetState.history_bytes_per_day` reads.
HISTORY_DAYS = 31


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Union of inclusive day ranges, sorted and coalesced (adjacent ranges join).

    Example:
        >>> d = dt.date
        >>> merge_ranges([(d(2024, 1, 3), d(2024, 1, 4)), (d(2024, 1, 1), d(2024, 1, 2))])
        [(datetime.date(2024, 1, 1), datetime.date(2024, 1, 4))]
    """
    out: list[Range] = []
    for a, b in sorted(r for r in ranges if r[0] <= r[1]):
        if out and a <= out[-1][1] + dt.timedelta(days=1):
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def local_today(timezone: str | None, when: dt.datetime | None = None) -> dt.date:
    """The date of ``when`` (default: now) in ``timezone`` (default UTC)."""
    stamp = when or dt.datetime.now(dt.timezone.utc)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    try:
        zone: dt.tzinfo = ZoneInfo(timezone or "UTC")
    except (KeyError, ValueError, OSError):
        zone = dt.timezone.utc
    return stamp.astimezone(zone).date()


@dataclass(frozen=True)
class DatasetState:
    """What a dataset records about itself (read from its files' footers).

    Example:
        >>> s = DatasetState("UTC", complete=[(dt.date(2024, 1, 1), dt.date(2024, 1, 9))])
        >>> s.done_through(dt.date(2024, 1, 1))
        datetime.date(2024, 1, 9)
    """

    project_timezone: str | None = None
    #: day -> when its file was written (UTC, ISO 8601)
    days: dict[dt.date, str] = field(default_factory=dict)
    #: day ranges whole runs finished (never past the day they ran, project-local)
    complete: list[Range] = field(default_factory=list)
    #: what the newest file records of its run (``from_date``, ``where``, ``dtype``, ...)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: day -> compressed export bytes per day of the body it came in
    bytes_per_day: dict[dt.date, float] = field(default_factory=dict)

    def history_bytes_per_day(self, days: int = HISTORY_DAYS) -> float | None:
        """The compressed bytes per day to size the next windows with: the most of the
        latest ``days`` days that recorded it (the busiest recent window, a
        conservative estimate), or None for a dataset without any.

        Example:
            >>> d = dt.date
            >>> s = DatasetState(bytes_per_day={d(2024, 1, 1): 900.0, d(2024, 1, 2): 1000.0,
            ...                                 d(2024, 1, 3): 800.0})
            >>> s.history_bytes_per_day(), s.history_bytes_per_day(days=1)
            (1000.0, 800.0)
            >>> DatasetState().history_bytes_per_day() is None
            True
        """
        recent = sorted(self.bytes_per_day)[-days:]
        return max((self.bytes_per_day[d] for d in recent), default=None)

    def done(self, day: dt.date) -> bool:
        """Whether ``day`` is done: inside a finished run's range, or its file was
        written on or after that day (project-local). A future day never is."""
        if any(a <= day <= b for a, b in self.complete):
            return True
        when = self.days.get(day)
        if when is None:
            return False
        with contextlib.suppress(ValueError):
            return day <= local_today(self.project_timezone, dt.datetime.fromisoformat(when))
        return False

    def done_through(self, start: dt.date) -> dt.date | None:
        """The last day of the unbroken run of done days from ``start``, if any."""
        last: dt.date | None = None
        day = start
        while self.done(day):
            last = day
            day += dt.timedelta(days=1)
        return last

    def with_run(self, start: dt.date, end: dt.date) -> list[Range]:
        """The complete ranges once a run over ``start..end`` finishes (cut at today)."""
        last = min(end, local_today(self.project_timezone))
        return merge_ranges([*self.complete, (start, last)])


def encode_ranges(ranges: Iterable[Range]) -> list[list[str]]:
    """Ranges as JSON (``[["2024-01-01", "2024-01-31"], ...]``)."""
    return [[a.isoformat(), b.isoformat()] for a, b in ranges]


def _decode_ranges(raw: Any) -> list[Range]:
    out: list[Range] = []
    if isinstance(raw, list):
        for item in raw:
            with contextlib.suppress(ValueError, TypeError, IndexError):
                out.append((dt.date.fromisoformat(item[0]), dt.date.fromisoformat(item[1])))
    return out


def load_state(location: Location, footers: Iterable[Mapping[str, Any]]) -> DatasetState:
    """The state of a dataset from what its data files record (``footers``), plus
    the state older versions kept inside the folder (``_robotmia/sync.json``)."""
    days: dict[dt.date, str] = {}
    complete: list[Range] = []
    tz: str | None = None
    newest: dict[str, Any] = {}
    sizes: dict[dt.date, float] = {}
    for meta in footers:
        when = meta.get("written_at")
        if isinstance(when, str) and when >= str(newest.get("written_at", "")):
            newest = dict(meta)
        with contextlib.suppress(ValueError, TypeError):
            day = dt.date.fromisoformat(str(meta.get("day")))
            when = meta.get("written_at")
            if isinstance(when, str) and (day not in days or days[day] <= when):
                days[day] = when
                size = meta.get(BYTES_KEY)  # the newest write of the day tells
                if isinstance(size, (int, float)) and not isinstance(size, bool) and size >= 0:
                    sizes[day] = float(size)
        ftz = meta.get("project_timezone")
        if tz is None and isinstance(ftz, str) and ftz:
            tz = ftz
        complete.extend(_decode_ranges(meta.get("complete")))
    if location.local:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            legacy = json.loads(Path(location.path, LEGACY_DIR, _LEGACY_FILE).read_text())
            meta = legacy.get("metadata") or {}
            newest = newest or dict(meta)
            if tz is None and isinstance(meta.get("project_timezone"), str):
                tz = meta["project_timezone"]
            end = dt.date.fromisoformat(str(legacy["last_day"]))
            first = meta.get("from_date")
            begin = dt.date.fromisoformat(str(first)) if first else end
            complete.append((begin, min(end, local_today(tz))))
    for key in ("day", "written_at", "complete", BYTES_KEY):
        newest.pop(key, None)
    return DatasetState(
        tz, days=days, complete=merge_ranges(complete), metadata=newest, bytes_per_day=sizes
    )
