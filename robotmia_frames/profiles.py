"""People profiles: the paged ``/api/2.0/engage`` query as pandas, Arrow or Parquet.

The stages are those of events, for a different body::

    POST engage (where, output_properties[, page_size])  -> page 0, a session_id
    POST engage (..., session_id, page=1, 2, ...)        -> the next pages
      each body streamed through ijson (C backend): a profile is built, flattened
      into the page's column buffers and dropped; no page is ever one JSON document
      -> a complete page is committed (appended, compactly, to a local spill file)
      -> pass two: columns typed by the kinds of *all* profiles (the type policy)
      -> date strings (``$created``, ``$last_seen``, ...) to UTC timestamps

A page that fails mid-stream (cut off, reset, 5xx, 429) is asked again on its own,
with the same ``session_id`` and ``page``; its partial rows are dropped, so no
profile is lost or duplicated. A ``400`` for a follow-up page means the session
expired: everything collected is discarded and the export restarts from page 0
(at most ``max_session_restarts`` times).

Example:
    >>> import robotmia_frames as rf
    >>> from robotmia_frames.emulator import ExportServer
    >>> with ExportServer(generate_profiles=30, api_secret="s") as srv:
    ...     df = rf.read_robotmia_profiles(api_secret="s", project_timezone="UTC",
    ...                                    base_url=srv.engage_url)
    >>> len(df), df.columns[0], str(df["properties.$created"].dtype)
    (30, 'distinct_id', 'datetime64[us, UTC]')
"""

from __future__ import annotations

import http.client
import json
import logging
import marshal
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import ijson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import requests
import urllib3.exceptions

from . import _options, parse, transport
from ._fsutil import replacing
from ._pipeline import Connection, Pinned, deliver
from ._redact import redact, redact_url
from .errors import APIError, InvalidArgumentError, ParseError
from .parse import typepolicy as tp
from .parse.typepolicy import Kind, arrow_type, json_text, kind_of, unify, unify_into
from .timeconv import TIME_TYPE, local_seconds_to_utc

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DEFAULT_PROFILES_URL", "read_profiles"]

logger = logging.getLogger("robotmia_frames.profiles")

#: The profile query endpoint (the main API host, not ``data.robotmia.com``).
DEFAULT_PROFILES_URL = transport.DEFAULT_PROFILES_URL
#: The column of each profile's ``$distinct_id``.
DISTINCT_ID = "distinct_id"

_CHUNK = 64 * 1024
_META_KEYS = frozenset({"page", "page_size", "session_id", "status", "total", "error"})
_SCALAR_EVENTS = frozenset({"string", "number", "boolean", "null"})
_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_HINTS = {
    400: " Check the where expression and output_properties.",
    404: f" Check base_url (the profiles endpoint is {DEFAULT_PROFILES_URL}).",
}

try:  # yajl2's C backend: several times faster than the pure-Python one
    _IJSON: Any = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - wheels ship it; a source build may not
    _IJSON = ijson

_sleep: Callable[[float], None] = time.sleep  # replaced by tests that count retries


# --------------------------------------------------------------------------- one page


class _Target:
    """What ijson's push parsers send to: any object with a ``send`` method."""

    __slots__ = ("send",)

    def __init__(self, send: Callable[[Any], None]) -> None:
        self.send = send


def _plain(value: Any) -> Any:
    """ijson's ``Decimal`` (any number with a fraction or exponent) as a float, deeply."""
    t = type(value)
    if t is Decimal:
        return float(value)
    if t is list:
        return [_plain(v) for v in value]
    if t is dict:
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Page:
    """The rows of one page while it streams in: flattened into column buffers.

    Nothing here is visible to the export until :meth:`_Export._commit` takes it,
    so a page that fails half-way is simply dropped.
    """

    def __init__(self, label: str, keys: frozenset[str] | None) -> None:
        self.label = label
        self.keys = keys
        self.n = 0
        self.ids: list[Any] = []
        self.id_kind: Kind = tp.NULL
        self.cols: dict[str, tuple[list[int], list[Any]]] = {}
        self.kinds: dict[str, Kind] = {}
        self.meta: dict[str, Any] = {}
        self.is_object: bool | None = None
        self.results: bool | None = None  # None: no "results" key seen

    # -- the push parser -----------------------------------------------------------

    def parser(self) -> Any:
        """An ijson push pipeline: ``send(bytes)`` the body, then ``close()``."""
        items = _IJSON.items_basecoro(_Target(self.add), "results.item")
        to_items = items.send
        meta = self.meta

        def on_event(event: tuple[str, str, Any]) -> None:
            prefix = event[0]
            if prefix.startswith("results"):
                if prefix == "results" and self.results is None:
                    self.results = event[1] == "start_array"
                to_items(event)
            elif prefix in _META_KEYS:
                if event[1] in _SCALAR_EVENTS:
                    meta[prefix] = event[2]
            elif self.is_object is None:
                self.is_object = event[1] == "start_map"

        return _IJSON.basic_parse_basecoro(_IJSON.parse_basecoro(_Target(on_event)))

    def add(self, item: Any) -> None:
        """Flatten one profile (``{"$distinct_id": ..., "$properties": {...}}``)."""
        row = self.n
        if type(item) is not dict:
            self._bad(f"expected a profile object, got {type(item).__name__}")
        props = item.get("$properties")
        if props is None:
            props = {}
        elif type(props) is not dict:
            self._bad(f'"$properties" must be a JSON object, got {type(props).__name__}')
        ident = item.get("$distinct_id")
        if ident is not None and type(ident) is not str:
            ident = _plain(ident)
            self.id_kind = tp.TEXT
        elif ident is not None and self.id_kind is tp.NULL:
            self.id_kind = tp.STR
        self.ids.append(ident)
        keys = self.keys
        kinds = self.kinds
        cols = self.cols
        for key, value in props.items():
            if keys is not None and key not in keys:
                continue
            t = type(value)
            if t is str:  # the common case, without a call
                k = tp.STR
            elif t is Decimal:
                value = float(value)
                k = tp.FLOAT
            else:
                if t is list or t is dict:
                    value = _plain(value)
                k = kind_of(value)
            old = kinds.get(key)
            if old is not k:
                kinds[key] = unify(old, k)
            if k is tp.NULL:
                continue  # a null cell needs no value
            got = cols.get(key)
            if got is None:
                got = cols[key] = ([], [])
            got[0].append(row)
            got[1].append(value)
        self.n = row + 1

    def _bad(self, reason: str) -> NoReturn:
        raise ParseError(f"malformed profile ({reason})", line_number=self.n + 1, source=self.label)

    # -- after the body -----------------------------------------------------------

    def check(self) -> None:
        """Raise unless the body was a successful page (``status`` ok, a list of results)."""
        status = self.meta.get("status")
        error = self.meta.get("error")
        if not self.is_object:
            raise transport.AttemptFailed(
                "status", "the answer is not a JSON object", retryable=False, status_code=200
            )
        if (status is not None and status != "ok") or error is not None:
            message = str(error if error is not None else f"status {status!r}")
            raise transport.AttemptFailed(
                "status",
                f"HTTP 200 with an error: {message}",
                retryable=False,
                status_code=200,
                server_message=redact(message),
            )
        if self.results is False:
            raise transport.AttemptFailed(
                "status", '"results" is not a list', retryable=False, status_code=200
            )

    def int_meta(self, name: str) -> int | None:
        value = self.meta.get(name)
        return value if type(value) is int else None


def _fetch_page(
    session: requests.Session,
    config: transport.TransportConfig,
    data: dict[str, str],
    label: str,
    keys: frozenset[str] | None,
) -> _Page:
    """One try at one page: stream, parse and flatten it, or raise AttemptFailed."""
    resp = transport.open_response(session, config, method="POST", data=data)
    page = _Page(label, keys)
    received = 0
    try:
        feed = page.parser()
        chunks = resp.raw.stream(_CHUNK, decode_content=True)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise transport.body_failure(exc, received, config) from exc
            if chunk:
                received += len(chunk)
                feed.send(chunk)
        feed.close()
    except ijson.JSONError as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "invalid JSON"
        raise transport.AttemptFailed(
            "incomplete",
            f"the page's JSON ended early or is invalid after {received} bytes ({reason})",
            retryable=True,
        ) from exc
    finally:
        resp.close()
    page.check()
    return page


# --------------------------------------------------------------------------- the export


class _SessionExpired(Exception):
    def __init__(self, message: str | None) -> None:
        super().__init__(message or "session expired")
        self.server_message = message


class _Spill:
    """Committed pages, marshalled one after the other into a temporary file."""

    def __init__(self, directory: str) -> None:
        self._file: IO[bytes] = open(Path(directory, "pages.bin"), "w+b")  # noqa: SIM115
        self.pages = 0

    def append(self, page: _Page) -> None:
        marshal.dump((page.n, page.ids, page.cols), self._file)
        self.pages += 1

    def clear(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self.pages = 0

    def __iter__(self) -> Iterator[tuple[int, list[Any], dict[str, tuple[list[int], list[Any]]]]]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.pages):
            yield marshal.load(self._file)

    def close(self) -> None:
        self._file.close()


@dataclass
class _Query:
    config: transport.TransportConfig
    params: dict[str, str]
    keys: frozenset[str] | None
    max_restarts: int
    limiter: transport.RateLimiter | None = None


class _Export:
    """One run of the paged query; :meth:`run` restarts it when the session expires."""

    def __init__(self, query: _Query, session: requests.Session, spill: _Spill) -> None:
        self.query = query
        self.session = session
        self.spill = spill
        self.kinds: dict[str, Kind] = {}
        self.id_kind: Kind = tp.NULL
        self.rows = 0
        self.restarts = 0

    def run(self) -> None:
        while True:
            try:
                self._pages()
                return
            except _SessionExpired as exc:
                self.restarts += 1
                if self.restarts > self.query.max_restarts:
                    raise APIError(
                        redact(
                            f"robotmia expired the profile query session "
                            f"{self.restarts} times at {redact_url(self.query.config.base_url)} "
                            f"(last answer: HTTP 400: {exc.server_message or 'no message'}). "
                            "Nothing was kept; try again, or raise max_session_restarts."
                        ),
                        status_code=400,
                        server_message=exc.server_message,
                    ) from None
                logger.info(
                    "%s",
                    redact(
                        f"profile query session expired ({exc.server_message or 'HTTP 400'}); "
                        f"restarting from page 0 (restart {self.restarts} of "
                        f"{self.query.max_restarts})"
                    ),
                )
                self.spill.clear()
                self.kinds = {}
                self.id_kind = tp.NULL
                self.rows = 0

    def _pages(self) -> None:
        number = 0
        session_id: str | None = None
        total: int | None = None
        while True:
            data = dict(self.query.params)
            if number > 0:
                data["page"] = str(number)
                if session_id is not None:
                    data["session_id"] = session_id
            page = self._page(data, number)
            self._commit(page)
            if number == 0:
                sid = page.meta.get("session_id")
                session_id = sid if isinstance(sid, str) and sid else None
                total = page.int_meta("total")
            size = page.int_meta("page_size") or int(self.query.params.get("page_size", "1000"))
            if page.n == 0 or page.n < size or (total is not None and self.rows >= total):
                return
            number += 1

    def _page(self, data: dict[str, str], number: int) -> _Page:
        """Fetch one page, retrying it on its own; a follow-up's 400 is an expiry."""
        config = self.query.config
        label = f"profiles page {number}"
        if self.restarts:
            label += f", after {self.restarts} session restart(s)"
        keys = self.query.keys

        def expired(failure: transport.AttemptFailed, tries: int) -> None:
            if number > 0 and failure.status_code == 400 and failure.kind == "status":
                raise _SessionExpired(failure.server_message) from None

        page, _tries = transport.retrying(
            lambda: _fetch_page(self.session, config, data, label, keys),
            config,
            label,
            limiter=self.query.limiter,
            sleep=_sleep,
            hints=_HINTS,
            final=expired,
        )
        return page

    def _commit(self, page: _Page) -> None:
        self.spill.append(page)
        unify_into(self.kinds, page.kinds.items())
        self.id_kind = unify(self.id_kind, page.id_kind)
        self.rows += page.n


# --------------------------------------------------------------------------- pass two


def _schema(kinds: dict[str, Kind], names: Sequence[str]) -> pa.Schema:
    fields = [pa.field(DISTINCT_ID, pa.string())]
    fields += [
        pa.field(parse.PROPERTY_PREFIX + k, arrow_type(kinds.get(k, tp.NULL))) for k in names
    ]
    return pa.schema(fields)


def _build(export: _Export, names: Sequence[str]) -> pa.Table:
    """Pass two: the committed pages as one table typed by the kinds of all profiles."""
    schema = _schema(export.kinds, names)
    text_ids = export.id_kind is tp.TEXT
    batches = []
    for n, ids, cols in export.spill:
        if text_ids:
            ids = [v if v is None or type(v) is str else json_text(v) for v in ids]
        arrays = [pa.array(ids, type=pa.string())]
        for key, f in zip(names, schema.types[1:], strict=True):
            got = cols.get(key)
            if got is None:
                arrays.append(pa.nulls(n, type=f))
            else:
                arrays.append(parse.column_array(export.kinds[key], got[0], got[1], n))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def _parse_dates(table: pa.Table, kinds: dict[str, Kind], project_timezone: str) -> pa.Table:
    """String columns whose every value is ``YYYY-MM-DDTHH:MM:SS`` (project-local, and a
    real instant) become ``timestamp[us, tz=UTC]``; any other value keeps the column
    as it is. Vectorised: Arrow parses, :mod:`robotmia_frames.timeconv` converts."""
    for i, name in enumerate(table.column_names):
        key = name[len(parse.PROPERTY_PREFIX) :]
        if i == 0 or kinds.get(key) is not tp.STR:
            continue
        col = table.column(i)
        if col.null_count == len(col):
            continue
        if not pc.all(pc.match_substring_regex(col, _DATE_PATTERN)).as_py():
            continue
        parsed = pc.strptime(col, format=_DATE_FORMAT, unit="s", error_is_null=True)
        if parsed.null_count != col.null_count:
            continue
        # strptime rolls 2024-02-30 over to March: only exact round trips count.
        if not pc.all(pc.equal(pc.strftime(parsed, format=_DATE_FORMAT), col)).as_py():
            continue
        utc = local_seconds_to_utc(parsed.cast(pa.int64()), project_timezone)
        if utc.null_count != col.null_count:
            continue  # an instant outside Python's datetime range
        table = table.set_column(i, pa.field(name, TIME_TYPE), utc)
    return table


def _write_parquet(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write one Parquet file atomically: a hidden temporary file, then a rename."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise InvalidArgumentError(
            f"parquet_path {str(target)!r} is a directory: profiles are written as one "
            "Parquet file, e.g. parquet_path='profiles.parquet'"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with replacing(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


# --------------------------------------------------------------------------- public


def _output_properties(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(
            "output_properties must be a list of property names, e.g. ['$email', 'plan']"
        )
    names: list[str] = []
    for v in value:
        if not isinstance(v, str):
            raise InvalidArgumentError(f"output_properties must hold strings, got {v!r}")
        if v not in names:
            names.append(v)
    if not names:
        raise InvalidArgumentError(
            "output_properties=[] selects no property; pass None for every property"
        )
    return names


def read_profiles(
    conn: Connection,
    *,
    profiles_url: str | None,
    where: str | None,
    output_properties: Sequence[str] | None,
    project_timezone: str | None,
    return_type: str,
    parquet_path: str | os.PathLike[str] | None,
    dtype_backend: str,
    page_size: int | None,
    parse_dates: bool,
    max_session_restarts: int,
    dtype: Any = None,
    on_type_mismatch: str = "text",
) -> pd.DataFrame | pa.Table | pl.DataFrame:
    """Export people profiles (``/api/2.0/engage``) as one table.

    Columns: ``distinct_id`` (string, from ``$distinct_id``), then one
    ``properties.<key>`` column per profile property, typed by the same policy as
    events over all profiles (ints, floats, bools, strings, lists; anything mixed
    becomes a string column in which every value can be recovered). String columns
    whose every value is a project-local ``YYYY-MM-DDTHH:MM:SS`` (``$created``,
    ``$last_seen``, ...) become UTC timestamps (``parse_dates=False`` keeps them).

    ``where`` (the expression language of exports, with ``properties["..."]``) is
    sent verbatim; ``output_properties`` asks for those properties only, and then
    the columns are exactly these, in this order. ``page_size`` asks for smaller
    pages than the server's default (1000). ``parquet_path`` also writes the table
    to that single Parquet file, atomically (a temporary file renamed over it).
    The secret and timezone default to ``ROBOTMIA_API_SECRET`` and
    ``ROBOTMIA_PROJECT_TIMEZONE``; errors are those of exports. ``dtype`` and
    ``on_type_mismatch`` pin column types as for events (``docs/type-policy.md``).

    Example:
        >>> from robotmia_frames.emulator import ExportServer
        >>> import robotmia_frames as rf
        >>> with ExportServer(generate_profiles=5, api_secret="s") as srv:
        ...     client = rf.Client(api_secret="s", project_timezone="UTC")
        ...     t = client.read_robotmia_profiles(  # which calls read_profiles
        ...         profiles_url=srv.engage_url, output_properties=["plan", "$city"],
        ...         return_type="arrow")
        >>> t.column_names, t.num_rows
        (['distinct_id', 'properties.plan', 'properties.$city'], 5)
    """
    where_ = _options.where(where)
    names = _output_properties(output_properties)
    tz = conn.timezone(project_timezone)
    rtype = _options.return_type(return_type)
    backend = _options.dtype_backend(dtype_backend)
    pinned = Pinned.checked(dtype, on_type_mismatch)
    if page_size is not None:
        page_size = _options.positive_int(page_size, "page_size")
    _options.flag(parse_dates, "parse_dates")
    restarts = _options.positive_int(max_session_restarts, "max_session_restarts", allow_zero=True)
    url = profiles_url or (
        transport.PROFILES_REGION_URLS[conn.region] if conn.region else DEFAULT_PROFILES_URL
    )
    config = conn.transport_config(transport.validate_base_url(url))
    params: dict[str, str] = {}
    if where_ is not None:
        params["where"] = where_
    if names is not None:
        params["output_properties"] = json.dumps(names, ensure_ascii=False, separators=(",", ":"))
    if page_size is not None:
        params["page_size"] = str(page_size)
    keys = frozenset(names) if names is not None else None
    query = _Query(config, params, keys, restarts, conn.limiter)

    with (
        tempfile.TemporaryDirectory(prefix="robotmia-profiles-") as tmp,
        transport.make_session(user_agent=config.user_agent) as session,
    ):
        spill = _Spill(tmp)
        try:
            export = _Export(query, session, spill)
            export.run()
            table = _build(export, names if names is not None else list(export.kinds))
        finally:
            spill.close()
    if parse_dates:
        table = _parse_dates(table, export.kinds, tz)
    table = pinned.apply(table, "the profiles", names)
    if parquet_path is not None:
        _write_parquet(table, parquet_path)
    return deliver(table, rtype, backend)
