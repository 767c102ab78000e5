"""The time stage: project-local export seconds to tz-aware UTC.

robotmia's ``properties.time`` is a wall-clock reading in the project's timezone,
written as if it were UTC. The UTC instant of a value ``t`` is, by contract,
exactly what Python gives for::

    (datetime(1970, 1, 1) + timedelta(seconds=t)).replace(tzinfo=ZoneInfo(tz), fold=0)
        .astimezone(timezone.utc)

``fold=0`` takes the UTC offset in force *before* a transition: the earlier instant
in the repeated hour at the end of daylight saving time, and the pre-transition
offset for the skipped hour at its start.

The conversion is vectorised: the offset is asked of ``zoneinfo`` once per distinct
local day, and bisected to the second only on the rare days where the offset changes.
Nothing loops over rows in Python.
"""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InvalidArgumentError

__all__ = [
    "TIME_TYPE",
    "fold0_offset",
    "instant_offset",
    "local_seconds_to_utc",
    "resolve_timezone",
    "utc_to_local_us",
]

#: The Arrow type of the ``time`` column.
TIME_TYPE = pa.timestamp("us", tz="UTC")

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Python's datetime range, in microseconds since 1970-01-01 (naive).
_MIN_US = (datetime(1, 1, 1) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999999) - _EPOCH) // timedelta(microseconds=1)
# Local seconds whose offset we may ask zoneinfo about (a day of slack at each end).
_MIN_S = _MIN_US // _US + 86400
_MAX_S = _MAX_US // _US - 86400

I64 = npt.NDArray[np.int64]


#: Names ``ZoneInfo`` may load from the system's zoneinfo folder that are not IANA
#: zones: ``localtime`` is this machine's zone, not the project's.
_NOT_ZONES = frozenset({"localtime", "posixrules"})


@functools.lru_cache(maxsize=64)
def resolve_timezone(name: str) -> ZoneInfo:
    """Return the :class:`~zoneinfo.ZoneInfo` for an IANA name, or raise ``ValueError``.

    Example:
        >>> resolve_timezone("Europe/Paris").key
        'Europe/Paris'
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError(
            f"project_timezone must be an IANA timezone name such as 'Europe/Paris', got {name!r}"
        )
    try:
        if name in _NOT_ZONES or name.startswith(("posix/", "right/")):
            # files of the zoneinfo folder that are no IANA zone of their own: the
            # machine's zone, a rules template, copies under other semantics
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        near = timezone_suggestions(name)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise InvalidArgumentError(
            f"unknown project_timezone {name!r}: use an IANA name such as "
            "'America/Los_Angeles' or 'UTC' (the timezone set in the project's settings)"
            f"{hint}"
        ) from exc


#: Abbreviations people type for a timezone, to the IANA zone they usually mean
#: (an abbreviation names an offset, not a zone with its daylight-saving rules).
_ABBREVIATIONS = {
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "PT": "America/Los_Angeles",
    "MDT": "America/Denver",
    "MT": "America/Denver",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "CT": "America/Chicago",
    "EDT": "America/New_York",
    "ET": "America/New_York",
    "BST": "Europe/London",
    "CEST": "Europe/Paris",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
}


@functools.lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA zone name, by its case-folded form."""
    return {z.casefold(): z for z in zoneinfo.available_timezones()}


def timezone_suggestions(name: str) -> list[str]:
    """The IANA zones a mistyped name probably means (at most three).

    Same name in another case first, then a known abbreviation, then close matches
    (``difflib``), ignoring case and ``_`` versus space.

    Example:
        >>> timezone_suggestions("PST"), timezone_suggestions("Europe/paris")
        (['America/Los_Angeles'], ['Europe/Paris'])
        >>> timezone_suggestions("America/LosAngeles")
        ['America/Los_Angeles']
    """
    zones = _zones()
    key = name.strip().casefold()
    out: list[str] = []
    if key in zones:
        out.append(zones[key])
    if name.strip().upper() in _ABBREVIATIONS:
        out.append(_ABBREVIATIONS[name.strip().upper()])
    if not out:
        squashed = {k.replace("_", "").replace(" ", ""): v for k, v in zones.items()}
        probe = key.replace("_", "").replace(" ", "")
        if probe in squashed:
            out.append(squashed[probe])
        else:
            close = difflib.get_close_matches(probe, list(squashed), n=3, cutoff=0.75)
            out += [squashed[c] for c in close]
    return list(dict.fromkeys(out))[:3]


def fold0_offset(tz: ZoneInfo, local_second: int) -> int:
    """UTC offset, in whole seconds, that ``fold=0`` gives a local wall-clock second.

    Example:
        >>> fold0_offset(ZoneInfo("Europe/Paris"), 1704067200)  # 2024-01-01 00:00 local
        3600
    """
    local_second = min(max(local_second, _MIN_S), _MAX_S)
    wall = (_EPOCH + timedelta(seconds=local_second)).replace(tzinfo=tz, fold=0)
    offset = wall.utcoffset()
    return 0 if offset is None else offset // timedelta(seconds=1)


def instant_offset(tz: ZoneInfo, utc_second: int) -> int:
    """UTC offset, in whole seconds, of ``tz`` at a UTC instant (seconds since 1970).

    Example:
        >>> instant_offset(ZoneInfo("Europe/Paris"), 1719792000)  # 2024-07-01 00:00 UTC
        7200
    """
    utc_second = min(max(utc_second, _MIN_S), _MAX_S)
    offset = (_EPOCH_UTC + timedelta(seconds=utc_second)).astimezone(tz).utcoffset()
    return 0 if offset is None else offset // timedelta(seconds=1)


def _offsets_by_day(seconds: I64, offset_of: Callable[[int], int]) -> I64:
    """``offset_of`` of every second, asked once per distinct day (the one offset
    search: a day whose first and last seconds differ is bisected)."""
    out = np.zeros(len(seconds), dtype=np.int64)
    if len(seconds) == 0:
        return out
    days = np.floor_divide(seconds, 86400)
    udays, inverse = np.unique(days, return_inverse=True)
    for i, day in enumerate(udays.tolist()):
        start = day * 86400
        end = start + 86399
        o_start = offset_of(start)
        o_end = offset_of(end)
        sel = inverse == i
        if o_start == o_end:
            out[sel] = o_start
            continue
        # A transition within this day: bisect the change points of the offset.
        bounds: list[tuple[int, int]] = []  # (first second of a segment, its offset)
        _bisect(offset_of, start, end, o_start, o_end, bounds)
        bounds.sort()
        secs = seconds[sel]
        offs = np.full(len(secs), o_start, dtype=np.int64)
        for first, off in bounds:
            offs[secs >= first] = off
        out[sel] = offs
    return out


def _bisect(
    offset_of: Callable[[int], int],
    lo: int,
    hi: int,
    o_lo: int,
    o_hi: int,
    bounds: list[tuple[int, int]],
) -> None:
    """Find where the offset changes between seconds lo and hi."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        o_mid = offset_of(mid)
        if o_mid != o_lo:
            if o_mid != o_hi:  # more than one change: split the right half too
                _bisect(offset_of, mid, hi, o_mid, o_hi, bounds)
            hi, o_hi = mid, o_mid
        else:
            lo, o_lo = mid, o_mid
    bounds.append((hi, o_hi))


def utc_to_local_us(utc: pa.Array | pa.ChunkedArray, tz: ZoneInfo) -> pa.Array:
    """Local wall-clock microseconds (int64) of UTC microseconds, in ``tz``.

    Example:
        >>> import pyarrow as pa
        >>> utc_to_local_us(pa.array([0], pa.int64()), ZoneInfo("Asia/Tokyo"))[0].as_py()
        32400000000
    """
    arr = utc.combine_chunks() if isinstance(utc, pa.ChunkedArray) else utc
    valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    us = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    offsets = np.zeros(len(us), dtype=np.int64)
    offsets[valid] = _offsets_by_day(
        np.floor_divide(us[valid], _US), functools.partial(instant_offset, tz)
    )
    return pa.array(us + offsets * _US, type=pa.int64(), mask=~valid)


def local_seconds_to_utc(
    values: pa.Array | pa.ChunkedArray, project_timezone: str, *, unit: str = "s"
) -> pa.Array:
    """Convert project-local export seconds to a ``timestamp[us, tz=UTC]`` array.

    ``values`` is an int64 or float64 Arrow array (nulls allowed), in seconds, or in
    milliseconds with ``unit="ms"`` (exports asked with ``time_in_ms``). Values whose
    instant Python's ``datetime`` cannot represent become null. Fractions keep
    their microseconds, rounded exactly as ``timedelta(seconds=t)`` rounds them.

    Example:
        >>> import pyarrow as pa
        >>> out = local_seconds_to_utc(pa.array([1710036000]), "America/New_York")
        >>> out[0].as_py().isoformat()
        '2024-03-10T07:00:00+00:00'
    """
    tz = resolve_timezone(project_timezone)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.float64())
    n = len(values)
    if n == 0:
        return pa.array([], type=TIME_TYPE)
    if pa.types.is_null(values.type):
        return pa.nulls(n, type=TIME_TYPE)
    if unit not in ("s", "ms"):
        raise InvalidArgumentError(f"unit must be 's' or 'ms', got {unit!r}")
    scale = _US if unit == "s" else 1000
    valid = np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(values.type):
        whole = np.asarray(values.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
        in_range = (whole >= _MIN_US // scale) & (whole <= _MAX_US // scale)
        valid &= in_range
        whole = np.where(valid, whole, 0)
        local_us = whole * scale
    else:
        f = np.asarray(values.cast(pa.float64()).fill_null(0.0).to_numpy(), dtype=np.float64)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(f)
            in_range = finite & (f >= _MIN_US / scale - 1) & (f <= _MAX_US / scale + 1)
        valid &= in_range
        f = np.where(valid, f, 0.0)
        # timedelta(seconds=f): integral part exactly, fraction rounded half-even.
        frac, whole_f = np.modf(f)
        local_us = whole_f.astype(np.int64) * scale + np.rint(frac * scale).astype(np.int64)
    valid &= (local_us >= _MIN_US) & (local_us <= _MAX_US)
    local_us = np.where(valid, local_us, 0)
    local_s = np.floor_divide(local_us, _US)
    if tz.key == "UTC":
        offsets = np.zeros(n, dtype=np.int64)
    else:
        offsets = np.zeros(n, dtype=np.int64)
        offsets[valid] = _offsets_by_day(local_s[valid], functools.partial(fold0_offset, tz))
    utc_us = local_us - offsets * _US
    valid &= (utc_us >= _MIN_US) & (utc_us <= _MAX_US)
    return pa.array(np.where(valid, utc_us, 0), type=pa.int64(), mask=~valid).cast(TIME_TYPE)
