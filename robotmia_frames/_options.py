"""Every argument of the public functions, checked once, with one message each.

The client, the pipeline, the CLI, Dask and the profiles reader all check their
arguments through these functions, so that a keyword means the same thing and
fails with the same words everywhere, before any request is sent.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import pyarrow as pa

from . import transport
from ._redact import register_secret
from .errors import InvalidArgumentError
from .parse import PINNABLE, PROPERTY_PREFIX, OnBadLines, OnTypeMismatch, validate_on_bad_lines
from .sinks import DtypeBackend
from .timeconv import resolve_timezone
from .where import validate_where

__all__ = [
    "BASE_URL_ENV",
    "SECRET_ENV",
    "TIMEZONE_ENV",
    "DateLike",
    "ReturnType",
    "TableFormat",
    "base_url",
    "column_name",
    "columns",
    "date",
    "date_range",
    "dtype",
    "dtype_backend",
    "events",
    "flag",
    "known_columns",
    "limiter",
    "max_memory",
    "on_bad_lines",
    "on_type_mismatch",
    "positive_int",
    "return_type",
    "secret",
    "sparse_columns",
    "sparse_threshold",
    "split_by",
    "table_format",
    "timezone",
    "where",
]

#: A day: ``'YYYY-MM-DD'`` or a :class:`datetime.date`.
DateLike: TypeAlias = str | dt.date
ReturnType = Literal["pandas", "arrow", "polars"]
TableFormat = Literal["hive", "delta"]
RETURN_TYPES: tuple[str, ...] = ("pandas", "arrow", "polars")
SECRET_ENV = "ROBOTMIA_API_SECRET"
TIMEZONE_ENV = "ROBOTMIA_PROJECT_TIMEZONE"
BASE_URL_ENV = "ROBOTMIA_BASE_URL"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def date(value: Any, name: str) -> dt.date:
    """A ``'YYYY-MM-DD'`` string or a date (a datetime gives its date).

    Example:
        >>> date("2024-01-31", "from_date")
        datetime.date(2024, 1, 31)
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidArgumentError(
        f"{name} must be a 'YYYY-MM-DD' string or a datetime.date, got {value!r}"
    )


def date_range(from_date: Any, to_date: Any) -> tuple[dt.date, dt.date]:
    """Both days checked, in order.

    Example:
        >>> date_range("2024-01-01", "2024-01-02")
        (datetime.date(2024, 1, 1), datetime.date(2024, 1, 2))
    """
    start = date(from_date, "from_date")
    end = date(to_date, "to_date")
    if start > end:
        raise InvalidArgumentError(
            f"from_date {start.isoformat()} is after to_date {end.isoformat()} "
            "(both are inclusive days of the project's timezone)"
        )
    return start, end


def events(event: Any) -> tuple[str, ...] | None:
    """``event=``: None, a name, or a non-empty list of names.

    Example:
        >>> events("Purchase"), events(None)
        (('Purchase',), None)
    """
    if event is None:
        return None
    if isinstance(event, str):
        names: list[Any] = [event]
    elif isinstance(event, (list, tuple)):
        names = list(event)
    else:
        raise InvalidArgumentError(
            f"event must be None, a string or a list of strings, got {type(event).__name__}"
        )
    if not names:
        raise InvalidArgumentError(
            "event=[] selects nothing; pass event=None to export every event"
        )
    for n in names:
        if not isinstance(n, str) or not n:
            raise InvalidArgumentError(f"event names must be non-empty strings, got {n!r}")
    return tuple(names)


def where(value: Any) -> str | None:
    """``where=``: None or a valid expression (checked by the ``where`` parser).

    Example:
        >>> where('properties["$os"] == "iOS"')
        'properties["$os"] == "iOS"'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(f"where must be None or a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgumentError("where is empty; pass where=None for no filter")
    validate_where(value)
    return value


def _given_or_env(value: Any, env: str, missing: str) -> Any:
    """The argument, else the environment variable ``env``, without surrounding
    whitespace (a value read from a file keeps its newline). Neither given, or
    blank: :class:`InvalidArgumentError` with the message ``missing``."""
    if value is None:
        value = os.environ.get(env)
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        raise InvalidArgumentError(missing)
    return value


def secret(api_secret: Any) -> str:
    """The API secret: the argument, else ``ROBOTMIA_API_SECRET``; empty is missing.

    Example:
        >>> secret("s3cr3t")
        's3cr3t'
    """
    value = _given_or_env(
        api_secret,
        SECRET_ENV,
        missing=f"no API secret: pass api_secret=... or set the {SECRET_ENV} environment "
        "variable (Project Settings in robotmia)",
    )
    if not isinstance(value, str):
        raise InvalidArgumentError(f"api_secret must be a string, got {type(value).__name__}")
    register_secret(value)  # before any message could show it (e.g. in a base_url)
    return value


def timezone(project_timezone: Any) -> str:
    """The project timezone: the argument, else ``ROBOTMIA_PROJECT_TIMEZONE``.

    Example:
        >>> timezone("Europe/Paris"), timezone(" UTC ")
        ('Europe/Paris', 'UTC')
    """
    tz = _given_or_env(
        project_timezone,
        TIMEZONE_ENV,
        missing="no project timezone: pass project_timezone='Europe/Paris' (the timezone "
        f"in the project's settings) or set {TIMEZONE_ENV}; export times are project-local "
        "and cannot be converted to UTC without it",
    )
    resolve_timezone(tz)
    return str(tz)


def region_name(value: Any) -> str | None:
    """``region=``: None or a region's name, in any case (``"EU"`` is ``"eu"``).

    Example:
        >>> region_name("EU"), region_name(None)
        ('eu', None)
    """
    if value is None:
        return None
    name = value.strip().lower() if isinstance(value, str) else None
    if name not in transport.REGION_URLS:
        raise InvalidArgumentError(
            f"region must be one of {sorted(transport.REGION_URLS)}, got {value!r}"
        )
    return name


def base_url(url: Any, region: Any) -> str:
    """The export endpoint: ``base_url``, else ``region``'s when one is given, else
    ``ROBOTMIA_BASE_URL``, else the US endpoint (an explicit ``region`` is not
    overridden by the environment).

    Example:
        >>> base_url(None, "eu")
        'https://data-eu.robotmia.com/api/2.0/export/'
    """
    region = region_name(region)
    if url is None and region is None:
        url = os.environ.get(BASE_URL_ENV, "").strip() or None
    if url is not None and not isinstance(url, str):
        raise InvalidArgumentError(f"base_url must be a string, got {type(url).__name__}")
    chosen = url or transport.REGION_URLS[region or "us"]
    transport.validate_base_url(chosen)
    return chosen


def return_type(value: Any) -> ReturnType:
    """``return_type=``: ``"pandas"``, ``"arrow"`` or ``"polars"`` (the ``[polars]`` extra).

    Example:
        >>> return_type("arrow")
        'arrow'
    """
    if value not in RETURN_TYPES:
        raise InvalidArgumentError(
            f"return_type must be 'pandas', 'arrow' or 'polars', got {value!r}"
        )
    if value == "polars":
        _needs("polars", "return_type='polars'", extra="polars")
    return value  # type: ignore[no-any-return]


def _needs(module: str, argument: str, *, extra: str) -> None:
    """Raise :class:`InvalidArgumentError` unless ``module`` imports: ``argument``
    needs it, and the message says how to install it (or the package's ``extra``)."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise InvalidArgumentError(
            f"{argument} needs {module}, which is not installed: pip install {module} "
            f"(or pip install 'robotmia-frames[{extra}]')"
        ) from None


def dtype_backend(value: Any) -> DtypeBackend:
    """``dtype_backend=``: ``"numpy_nullable"`` or ``"pyarrow"``.

    Example:
        >>> dtype_backend("pyarrow")
        'pyarrow'
    """
    if value not in ("numpy_nullable", "pyarrow"):
        raise InvalidArgumentError(
            f"dtype_backend must be 'numpy_nullable' or 'pyarrow', got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def column_name(name: Any) -> str:
    """One column name: ``event``, ``time``, ``properties.<key>``, or ``$key``, short for
    ``properties.$key`` (robotmia's own properties: ``$os``, ``$city``, ...).

    The CLI's ``--columns`` follows the same rule. Any other bare name is refused
    with the property column it probably means, so that ``columns=["plan"]`` never
    silently reads an all-null column.

    Example:
        >>> column_name("$os"), column_name("properties.plan"), column_name("time")
        ('properties.$os', 'properties.plan', 'time')
    """
    if isinstance(name, str) and name.startswith("$") and len(name) > 1:
        return PROPERTY_PREFIX + name
    if isinstance(name, str) and (
        name in ("event", "time") or (name.startswith(PROPERTY_PREFIX) and name != PROPERTY_PREFIX)
    ):
        return name
    hint = f"; did you mean {PROPERTY_PREFIX + name!r}?" if isinstance(name, str) and name else ""
    raise InvalidArgumentError(
        f"unknown column {name!r}: columns are 'event', 'time' and 'properties.<key>' "
        f"('$key' is short for 'properties.$key'){hint}"
    )


def columns(value: Any) -> list[str] | None:
    """``columns=``: a list of column names (:func:`column_name`), duplicates dropped.

    Example:
        >>> columns(["event", "$os", "properties.$os"])
        ['event', 'properties.$os']
    """
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidArgumentError("columns must be a list of column names")
    out: list[str] = []
    for c in value:
        name = column_name(c)
        if name not in out:
            out.append(name)
    return out


def known_columns(wanted: Sequence[str] | None, known: Iterable[str], source: str) -> None:
    """Every column of ``wanted`` is one of ``known`` (the columns ``source`` holds),
    else an error suggesting the nearest names (same name in another case, then
    ``difflib``'s close matches).

    Example:
        >>> try:
        ...     known_columns(["properties.Price"], ["event", "properties.price"], "x.jsonl")
        ... except InvalidArgumentError as e:
        ...     print(e)
        unknown column 'properties.Price': x.jsonl has no such column; did you mean 'properties.price'?
    """
    have = list(dict.fromkeys(known))
    if wanted is None:
        return
    missing = [c for c in wanted if c not in have and c not in ("event", "time")]
    if not missing:
        return
    problems = []
    for name in missing:
        folded = {c.casefold(): c for c in have}
        near = [folded[name.casefold()]] if name.casefold() in folded else []
        # compared without the shared "properties." prefix, which would make all alike
        keys = {c.removeprefix(PROPERTY_PREFIX): c for c in have}
        close = difflib.get_close_matches(name.removeprefix(PROPERTY_PREFIX), keys, n=3)
        near += [keys[k] for k in close if keys[k] not in near]
        hint = (
            f"did you mean {' or '.join(repr(c) for c in near[:3])}?"
            if near
            else f"its columns include {', '.join(repr(c) for c in have[:8])}"
            + (f" and {len(have) - 8} more" if len(have) > 8 else "")
        )
        problems.append(f"unknown column {name!r}: {source} has no such column; {hint}")
    raise InvalidArgumentError("; ".join(problems))


_DTYPE_NAMES: dict[str, pa.DataType] = {
    **dict.fromkeys(["int64", "Int64", "int", "int64[pyarrow]"], pa.int64()),
    **dict.fromkeys(["float64", "Float64", "float", "double", "double[pyarrow]"], pa.float64()),
    **dict.fromkeys(["bool", "boolean", "bool[pyarrow]"], pa.bool_()),
    **dict.fromkeys(["string", "str", "string[pyarrow]", "large_string"], pa.string()),
}


def _one_dtype(column: str, value: Any) -> pa.DataType:
    if isinstance(value, pa.DataType):
        target = pa.string() if pa.types.is_large_string(value) else value
    elif isinstance(value, type) and value in (int, float, bool, str):
        target = _DTYPE_NAMES[value.__name__]
    elif hasattr(value, "pyarrow_dtype"):  # pandas.ArrowDtype
        target = value.pyarrow_dtype
    else:
        target = _DTYPE_NAMES.get(str(value), pa.null())
    if target not in PINNABLE:
        raise InvalidArgumentError(
            f"dtype for {column!r} must be one of int64, float64, bool or string "
            f"(pandas' names, Python's types or Arrow's), got {value!r}"
        )
    return target


def dtype(value: Any) -> dict[str, pa.DataType]:
    """``dtype=``: a mapping of column name (:func:`column_name`) to a dtype, as in
    pandas' readers: ``"int64"``/``"Int64"``/``int``, ``"float64"``/``"Float64"``/
    ``float``, ``"bool"``/``"boolean"``/``bool``, ``"string"``/``str``, or the Arrow
    type (``pa.float64()``).

    Example:
        >>> dtype({"$price": "Float64", "properties.n": int})
        {'properties.$price': DataType(double), 'properties.n': DataType(int64)}
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            "dtype must be a mapping of column name to dtype, e.g. {'properties.Price': 'float64'}"
        )
    out: dict[str, pa.DataType] = {}
    for key, target in value.items():
        name = column_name(key)
        if name in ("event", "time"):
            raise InvalidArgumentError(f"dtype cannot change the type of {name!r}")
        out[name] = _one_dtype(name, target)
    return out


def table_format(value: Any) -> TableFormat:
    """``table_format=``: ``"hive"`` (Hive-partitioned Parquet) or ``"delta"`` (Delta Lake).

    Example:
        >>> table_format("delta")
        'delta'
    """
    if value not in ("hive", "delta"):
        raise InvalidArgumentError(f"table_format must be 'hive' or 'delta', got {value!r}")
    if value == "delta":
        _needs("deltalake", "table_format='delta'", extra="delta")
    return value  # type: ignore[no-any-return]


def on_type_mismatch(value: Any) -> OnTypeMismatch:
    """``on_type_mismatch=``: ``"text"``, ``"null"`` or ``"error"``.

    Example:
        >>> on_type_mismatch("null")
        'null'
    """
    if value not in ("text", "null", "error"):
        raise InvalidArgumentError(
            f"on_type_mismatch must be 'text', 'null' or 'error', got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """A positive integer (or ``>= 0`` with ``allow_zero``), not a bool.

    Example:
        >>> positive_int(4, "concurrency"), positive_int(0, "max_retries", allow_zero=True)
        (4, 0)
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        what = "a non-negative" if allow_zero else "a positive"
        raise InvalidArgumentError(f"{name} must be {what} integer, got {value!r}")
    return value


#: The most days one request may span (``window_days`` pins at most this many too).
MAX_WINDOW_DAYS = 31


def window_days(value: Any) -> int | None:
    """``"auto"`` (``None``: windows sized to the data) or a pinned number of days.

    Example:
        >>> window_days("auto"), window_days(7)
        (None, 7)
    """
    if value == "auto" and isinstance(value, str):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW_DAYS:
        raise InvalidArgumentError(
            f'window_days must be "auto" or an integer from 1 to {MAX_WINDOW_DAYS}, got {value!r}'
        )
    return value


def flag(value: Any, name: str) -> bool:
    """``True`` or ``False`` (not another value that happens to be truthy).

    Example:
        >>> flag(True, "plan")
        True
    """
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def seconds(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A finite number of seconds, positive (or ``>= 0`` with ``allow_zero``).

    Example:
        >>> seconds(30, "timeout")
        30.0
    """
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and value < float("inf")
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgumentError(f"{name} must be a number of seconds {bound}, got {value!r}")
    return float(value)


def bytes_per_second(value: Any, name: str) -> float:
    """A download speed in bytes a second, ``>= 0`` (``min_speed=``; 0 switches it off).

    Example:
        >>> bytes_per_second(1024, "min_speed")
        1024.0
    """
    return _finite_non_negative(value, f"{name} must be a number of bytes a second >= 0")


def _finite_non_negative(value: Any, rule: str) -> float:
    """``value`` as a float, if it is a finite number ``>= 0`` (else ``rule``, as an error)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < float("inf")
    ):
        raise InvalidArgumentError(f"{rule}, got {value!r}")
    return float(value)


def bytes_per_day(value: Any) -> float | None:
    """Compressed export bytes a day expected (``bytes_per_day=``): None, or ``>= 0``.

    Example:
        >>> bytes_per_day(2048), bytes_per_day(None)
        (2048.0, None)
    """
    if value is None:
        return None
    return _finite_non_negative(value, "bytes_per_day must be a number of bytes >= 0")


def byte_cap(value: Any, name: str) -> int | None:
    """A size cap in bytes (``max_window_bytes=``): a positive integer, or None for none.

    Example:
        >>> byte_cap(1 << 30, "max_window_bytes"), byte_cap(None, "max_window_bytes")
        (1073741824, None)
    """
    return None if value is None else positive_int(value, name)


def on_bad_lines(value: Any) -> OnBadLines:
    """``on_bad_lines=``: ``"error"``, ``"skip"`` or ``"warn"``.

    Example:
        >>> on_bad_lines("skip")
        'skip'
    """
    return validate_on_bad_lines(value)


def limiter(
    rate_limit: transport.RateLimit | transport.RateLimiter | None, url: str
) -> transport.RateLimiter:
    """The rate limiter for ``rate_limit=``: robotmia's documented budget by default,
    none for a local server (tests, the emulator) unless one is asked for.

    Example:
        >>> limiter(None, "http://127.0.0.1:8000/").limit.per_hour is None
        True
    """
    if isinstance(rate_limit, transport.RateLimiter):
        return rate_limit
    if isinstance(rate_limit, transport.RateLimit):
        return transport.RateLimiter(rate_limit)
    if rate_limit is None:
        local = transport.is_loopback_host(urlsplit(url).hostname or "")
        return transport.RateLimiter(
            transport.RateLimit(None, None, None) if local else transport.RateLimit()
        )
    raise InvalidArgumentError(
        f"rate_limit must be a RateLimit, a RateLimiter or None, got {type(rate_limit).__name__}"
    )


def directory(value: Any, name: str) -> Path | None:
    """An optional local folder (``cache_dir=``).

    Example:
        >>> directory(None, "cache_dir") is None
        True
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentError(f"{name} must be a path, got {type(value).__name__}")
    if not os.fspath(value).strip():
        raise InvalidArgumentError(f"{name} must not be empty; pass None for no {name}")
    return Path(os.fspath(value)).expanduser()  # "~/cache": the home folder, as in pandas


SplitBy = Literal["event"]
SparseColumns = Literal["map"]


def split_by(value: Any) -> SplitBy | None:
    """``split_by=``: None (one table) or ``"event"`` (a dict of one table per event).

    Example:
        >>> split_by("event"), split_by(None)
        ('event', None)
    """
    if value is None or value == "event":
        return value  # type: ignore[no-any-return]
    raise InvalidArgumentError(
        f"split_by must be None or 'event' (one table per event name), got {value!r}"
    )


def sparse_columns(value: Any) -> SparseColumns | None:
    """``sparse_columns=``: None (every key a column) or ``"map"`` (rare keys in one
    ``properties`` map column).

    Example:
        >>> sparse_columns("map")
        'map'
    """
    if value is None or value == "map":
        return value  # type: ignore[no-any-return]
    raise InvalidArgumentError(
        f"sparse_columns must be None or 'map' (rare keys folded into one 'properties' "
        f"map column), got {value!r}"
    )


def sparse_threshold(value: Any) -> float:
    """``sparse_threshold=``: the share of rows (0 to 1) a key must fill to stay a column.

    Example:
        >>> sparse_threshold(0.05)
        0.05
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= 1
    if not ok:
        raise InvalidArgumentError(
            f"sparse_threshold must be a share of rows between 0 and 1, got {value!r}"
        )
    return float(value)


def max_memory(value: Any) -> int | Literal["auto"] | None:
    """``max_memory=``: ``"auto"`` (a share of the memory available), a number of
    bytes, or None (no check).

    Example:
        >>> max_memory(2**30), max_memory(None), max_memory("auto")
        (1073741824, None, 'auto')
    """
    if value is None or value == "auto":
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"max_memory must be 'auto', a positive number of bytes or None, got {value!r}"
        )
    return value


def partitions(value: Any) -> tuple[str, ...]:
    """``partition_by=``: ``("date",)`` or ``("date", "event")`` (a list too).

    Example:
        >>> partitions(["date", "event"])
        ('date', 'event')
    """
    parts = tuple(value) if isinstance(value, (list, tuple)) else None
    if parts not in (("date",), ("date", "event")):
        raise InvalidArgumentError(
            f"partition_by must be ('date',) or ('date', 'event'), got {value!r}"
        )
    return parts


def storage(path: Any, name: str, storage_options: Any, fmt: Any) -> None:
    """The dataset keywords of a call that may write one (``parquet_path=``): checked
    whether or not a dataset is asked for, so that a typo is not ignored.

    Example:
        >>> storage(None, "parquet_path", None, None)
    """
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(
                f"{name} must be a str or os.PathLike, got {type(path).__name__}"
            )
        if not os.fspath(path).strip():
            raise InvalidArgumentError(f"{name} must not be empty")
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise InvalidArgumentError(
            f"storage_options must be a dict or None, got {type(storage_options).__name__}"
        )
    if fmt is not None:
        table_format(fmt)


def split_partitions(partition_by: Any, split: SplitBy | None) -> Any:
    """A dataset's ``partition_by`` given ``split_by=`` (checked by :func:`split_by`):
    ``split_by="event"`` is the layout of ``partition_by=("date", "event")``, where
    each event's files hold only its columns. Another ``partition_by`` beside it is
    an error naming both (``("date",)``, the default, gives way).

    Example:
        >>> split_partitions(("date",), "event"), split_partitions(("date",), None)
        (('date', 'event'), ('date',))
    """
    if split is None:
        return partitions(partition_by)
    given = tuple(partition_by) if isinstance(partition_by, (list, tuple)) else partition_by
    if given not in (("date",), ("date", "event")):
        raise InvalidArgumentError(
            f"split_by='event' writes partition_by=('date', 'event'), which conflicts with "
            f"partition_by={partition_by!r}: give one of them"
        )
    return ("date", "event")


def dataset_sparse(value: SparseColumns | None, function: str) -> None:
    """``sparse_columns=`` (checked by :func:`sparse_columns`) of ``function``, which
    writes a dataset: a dataset keeps every key as its own column, so ``"map"`` is
    refused, with the way to the map column when reading.

    Example:
        >>> dataset_sparse(None, "export_to_parquet")
        >>> dataset_sparse("map", "sync_to_parquet")
        Traceback (most recent call last):
        ...
        robotmia_frames.errors.InvalidArgumentError: sparse_columns='map' is not available for sync_to_parquet: ...
    """
    if value is None:
        return
    raise InvalidArgumentError(
        f"sparse_columns='map' is not available for {function}: a dataset keeps every key "
        "as its own column (rare keys are all-null elsewhere and cost little in Parquet). "
        "Leave sparse_columns=None, and fold rare keys into a map column when reading: "
        "read_parquet_dataset(path, sparse_columns='map')"
    )


def frame_split(value: SplitBy | None, function: str) -> None:
    """``split_by=`` (checked by :func:`split_by`) of ``function``, which gives one
    Dask DataFrame: a dict of frames is not one, so ``"event"`` is refused with the
    ways to one event's rows and to narrow tables per event.

    Example:
        >>> frame_split(None, "robotmia_frames.dask.read_robotmia_export")
    """
    if value is None:
        return
    raise InvalidArgumentError(
        f"split_by='event' is not available for {function}: it gives one Dask DataFrame "
        "with one set of columns, not a dict of frames. Leave split_by=None, and take "
        "one event with event='Name' (or ddf[ddf.event == 'Name']), or write the event "
        "layout with robotmia_frames.dask.export_to_parquet(path, ..., split_by='event') "
        "and read one event's narrow table with read_parquet_dataset(path, event='Name')"
    )
