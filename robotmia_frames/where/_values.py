"""The values of the ``where`` language and the conversions between them.

A :data:`Value` is one of: a string, a number (always a ``float``), a boolean, a
list of values, an object (a JSON object as read), a :class:`DateTime`
(project-local wall-clock seconds), ``None`` (JSON null) or :data:`UNDEFINED`
(a missing key). :func:`to_value` turns a parsed JSON value into one.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass
from typing import Final, TypeAlias, cast
from zoneinfo import ZoneInfo

__all__ = [
    "ASCII_LOWER",
    "DECIMAL_PATTERN",
    "JSON_NUMBER_PATTERN",
    "MAX_SECONDS",
    "UNDEFINED",
    "DateTime",
    "Json",
    "Scalar",
    "Undefined",
    "Value",
    "datetime_of_number",
    "decode_text",
    "fmod",
    "format_datetime",
    "format_number",
    "parse_datetime_text",
    "parse_number_text",
    "round_half_away",
    "safe_ceil",
    "safe_floor",
    "to_value",
]


class Undefined:
    """The type of :data:`UNDEFINED`."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNDEFINED"


#: The value of a missing key (distinct from ``None``, a JSON null).
UNDEFINED: Final = Undefined()


@dataclass(frozen=True)
class DateTime:
    """A datetime value: project-local wall-clock seconds since 1970-01-01.

    Datetimes compare to the whole second.

    Example:
        >>> from robotmia_frames.where import evaluate
        >>> evaluate('datetime("2024-01-01T00:00:30")', {})
        DateTime(seconds=1704067230.0)
    """

    seconds: float


#: A parsed JSON value, as :func:`json.loads` gives it.
Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"
#: A literal of the language: a number (always a float), a string or a boolean.
Scalar: TypeAlias = "float | str | bool"
#: A value of the language (see the module docstring). Objects keep their JSON
#: members as read; :func:`to_value` converts a member when it is indexed.
Value: TypeAlias = (
    "str | float | bool | DateTime | Undefined | list[Value] | dict[str, Json] | None"
)

#: ``datetime(n)``: seconds up to this, milliseconds above.
MAX_SECONDS: Final = 4294967295
_EPOCH = _dt.datetime(1970, 1, 1)
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_SECOND = _dt.timedelta(seconds=1)
DECIMAL_PATTERN: Final = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
"""What ``number("...")`` accepts (anchored at both ends)."""
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)
JSON_NUMBER_PATTERN: Final = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
"""The JSON text of a number (anchored): how folded text columns store numbers."""
_JSON_NUMBER_RE = re.compile(JSON_NUMBER_PATTERN)
_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def to_value(value: object) -> Value:
    """A JSON value made a language value: ints become floats, lists recursively.

    Anything that is not a JSON type is undefined.

    Example:
        >>> to_value(3), to_value([1, "a"]), to_value({1, 2})
        (3.0, [1.0, 'a'], UNDEFINED)
    """
    t = type(value)
    if t is str or t is bool or t is float or value is None:
        return cast("str | bool | float | None", value)
    if t is dict:
        return cast("dict[str, Json]", value)
    if t is int:
        try:
            return float(cast(int, value))
        except OverflowError:
            return math.copysign(math.inf, cast(int, value))
    if t is list:
        return [to_value(v) for v in cast("list[object]", value)]
    if isinstance(value, (DateTime, Undefined)):
        return value
    return UNDEFINED


def safe_floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def safe_ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def round_half_away(x: float) -> float:
    """``round()`` of the language: halves away from zero."""
    if not math.isfinite(x):
        return x
    a = abs(x)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return math.copysign(float(r), x)


def fmod(a: float, b: float) -> float | Undefined:
    """``%``: C ``fmod`` (the sign of the dividend); by zero: undefined."""
    if b == 0:
        return UNDEFINED
    if math.isnan(a) or math.isnan(b) or math.isinf(a):
        return math.nan
    return math.fmod(a, b)


def format_number(x: float) -> str:
    """``string(number)``: integral numbers without ``.0``, others shortest form."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer():
        return str(int(x))
    return repr(x)


def format_datetime(seconds: float) -> str | Undefined:
    """``string(datetime)``: ``YYYY-MM-DDTHH:MM:SS`` (undefined out of range)."""
    if not math.isfinite(seconds):
        return UNDEFINED
    try:
        d = _EPOCH + _dt.timedelta(seconds=math.floor(seconds))
    except OverflowError:
        return UNDEFINED
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def parse_number_text(s: str) -> float | Undefined:
    """``number(string)``: a decimal (``[+-]digits[.digits][e[+-]digits]``) or undefined."""
    if _DECIMAL_RE.fullmatch(s):
        return float(s)
    return UNDEFINED


def parse_datetime_text(s: str, tz: ZoneInfo) -> float | Undefined:
    """``datetime(string)`` as project-local seconds, or undefined.

    ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS`` (1-digit month/day accepted), with an
    optional fraction and ``Z``/``+HH:MM`` offset. Without an offset the text is
    a wall-clock reading in the project timezone (= the local seconds directly);
    with one, the instant is converted to the project's wall clock.
    """
    m = _DATETIME_RE.fullmatch(s)
    if m is None:
        return UNDEFINED
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    try:
        naive = _dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return UNDEFINED
    whole = (naive - _EPOCH) // _SECOND
    if zone is not None:
        if zone == "Z":
            offset = 0
        else:
            digits = zone[1:].replace(":", "")
            oh, om = int(digits[:2]), int(digits[2:] or 0)
            if oh > 23 or om > 59:
                return UNDEFINED
            offset = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
        try:
            instant = _EPOCH_UTC + _dt.timedelta(seconds=whole - offset)
            wall = instant.astimezone(tz).replace(tzinfo=None)
        except (OverflowError, ValueError):
            return UNDEFINED
        whole = (wall - _EPOCH) // _SECOND
    return whole + (float("0" + frac) if frac else 0.0)


def datetime_of_number(n: float) -> DateTime | Undefined:
    """``datetime(number)``: seconds if ``0 < n <= 4294967295``, milliseconds above,
    undefined if ``n <= 0``."""
    if n <= 0:
        return UNDEFINED
    if n > MAX_SECONDS:
        return DateTime(n / 1000)
    return DateTime(n)


def decode_text(cell: str) -> Value:
    """A cell of a folded (mixed-type) string column read back as a value.

    The type policy stores strings as they are and other values as their JSON text,
    so a cell that is exactly the JSON text of a number, boolean, list or object
    reads as that value; any other cell is a string.

    Example:
        >>> decode_text("3"), decode_text("true"), decode_text("[1,2]"), decode_text("n/a")
        (3.0, True, [1.0, 2.0], 'n/a')
    """
    if cell == "true":
        return True
    if cell == "false":
        return False
    if cell in ("Infinity", "-Infinity", "NaN"):
        return float(cell)
    if _JSON_NUMBER_RE.fullmatch(cell):
        return float(cell)
    if cell[:1] in ("[", "{"):
        try:
            value = json.loads(cell)
        except ValueError:
            return cell
        if isinstance(value, (list, dict)):
            return to_value(value)
    return cell
