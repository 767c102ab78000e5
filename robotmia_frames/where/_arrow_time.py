"""Comparisons of ``time`` with constants, as ranges of the UTC column, in any timezone."""

from __future__ import annotations

import math

import pyarrow.compute as pc

from ..timeconv import fold0_offset, instant_offset, resolve_timezone
from ._arrow_base import (
    _BOOL,
    _FALSE,
    _FAR,
    _K_MAX,
    _K_MIN,
    _MIRROR,
    _US,
    _UTC_NAMES,
    _V,
    BOOL,
    TIME_TYPE,
    Datum,
    _bool_v,
    _coalesce_false,
    _const,
    _Cx,
    _datetime_of,
    _first_true,
    _invert,
    _seconds_of_us,
)
from ._values import (
    MAX_SECONDS,
    UNDEFINED,
    DateTime,
)


def _guess(c: float) -> int:
    if not math.isfinite(c) or abs(c) > 1e15:
        return 0 if not math.isfinite(c) else int(math.copysign(_K_MAX, c))
    return int(c * _US)


def _k_ge(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) >= c, _guess(c))


def _k_gt(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) > c, _guess(c))


def _k2_ge(c: float) -> int:
    return _first_true(lambda k: _seconds_of_us(k) / 1000 >= c, _guess(c * 1000))


class _Thresholds:
    """Local-microsecond thresholds mapped to UTC instants of the ``time`` column."""

    def __init__(self, tz: str) -> None:
        self.tz_name = tz
        self.tz = resolve_timezone(tz)

    def utc(self, k: int) -> int:
        """The smallest UTC microsecond whose (non-gap) local time is >= k."""
        if k <= _K_MIN:
            return -_FAR
        if k > _K_MAX:
            return _FAR
        if self.tz_name in _UTC_NAMES:
            return k
        s = k // _US
        if not self._nongap(s):
            lo, hi = s, s + 1
            step = 1
            while not self._nongap(hi):
                lo = hi
                step *= 2
                hi = s + step
                if step > 4 * 86400:
                    break
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._nongap(mid):
                    hi = mid
                else:
                    lo = mid
            return (hi - fold0_offset(self.tz, hi)) * _US
        return k - fold0_offset(self.tz, s) * _US

    def _nongap(self, s: int) -> bool:
        u = s - fold0_offset(self.tz, s)
        return u + instant_offset(self.tz, u) == s


def _time_compare(cx: _Cx, op: str, a: _V, b: _V) -> _V | None:
    if op == "in":
        return None
    if a.tform is not None and b.is_const:
        t, c = a, b.const
    elif b.tform is not None and a.is_const:
        t, c, op = b, a.const, _MIRROR[op]
    else:
        return None
    if t.tform == "L" and type(c) is float:
        if not math.isfinite(c):
            return None
        return _time_number(cx, op, c)
    if type(c) is DateTime or (t.tform == "D" and type(c) in (float, str)):
        cv = _datetime_of(cx, _const(c))
        if cv.const is UNDEFINED or not math.isfinite(cv.const.seconds):
            return None
        return _time_datetime(cx, op, math.floor(cv.const.seconds))
    return None


def _range(cx: _Cx, th: _Thresholds, lo: int | None, hi: int | None) -> Datum:
    """``time`` in local microseconds ``[lo, hi)`` (None: unbounded), null if null."""
    t = cx.time_datum()
    parts = []
    if lo is not None:
        parts.append(pc.greater_equal(t, cx.scalar(th.utc(lo), TIME_TYPE)))
    if hi is not None:
        parts.append(pc.less(t, cx.scalar(th.utc(hi), TIME_TYPE)))
    if not parts:
        return pc.if_else(pc.is_null(t), cx.null(_BOOL), cx.scalar(True, _BOOL))
    return parts[0] if len(parts) == 1 else pc.and_kleene(parts[0], parts[1])


def _time_number(cx: _Cx, op: str, c: float) -> _V:
    th = _Thresholds(cx.tz)
    if op == ">=":
        return _V(BOOL, d=_range(cx, th, _k_ge(c), None))
    if op == ">":
        return _V(BOOL, d=_range(cx, th, _k_gt(c), None))
    if op == "<":
        return _V(BOOL, d=_range(cx, th, None, _k_ge(c)))
    if op == "<=":
        return _V(BOOL, d=_range(cx, th, None, _k_gt(c)))
    eq = _bool_v(cx, _coalesce_false(cx, _range(cx, th, _k_ge(c), _k_gt(c))))
    return eq if op == "==" else _invert(cx, eq)


def _time_datetime(cx: _Cx, op: str, n: int) -> _V:
    """``floor(datetime(local seconds)) op n`` as UTC ranges of ``time``."""
    th = _Thresholds(cx.tz)
    lo_d: int | None
    hi_d: int | None
    lo_d, hi_d = {
        ">=": (n, None),
        ">": (n + 1, None),
        "<": (None, n),
        "<=": (None, n + 1),
        "==": (n, n + 1),
        "!=": (n, n + 1),
    }[op]
    r1_lo, r1_hi = _k_gt(0.0), _k_gt(float(MAX_SECONDS))  # seconds: 0 < L <= M
    pieces = []
    for lo, hi, first in ((r1_lo, r1_hi, _k_ge), (r1_hi, None, _k2_ge)):
        a = lo if lo_d is None else max(lo, first(float(lo_d)))
        b = (
            hi
            if hi_d is None
            else (first(float(hi_d)) if hi is None else min(hi, first(float(hi_d))))
        )
        if b is not None and a >= b:
            continue
        pieces.append(_range(cx, th, a, b))
    inset: Datum | None = None
    for p in pieces:
        inset = p if inset is None else pc.or_kleene(inset, p)
    if op in ("==", "!="):
        eq = _bool_v(cx, _coalesce_false(cx, inset)) if inset is not None else _FALSE
        return eq if op == "==" else _invert(cx, eq)
    defined = _range(cx, th, r1_lo, None)
    value = _coalesce_false(cx, inset) if inset is not None else cx.scalar(False, _BOOL)
    return _V(BOOL, d=pc.if_else(defined, value, cx.null(_BOOL)))
