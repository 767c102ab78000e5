"""The emulator's people-profile query, ``/api/2.0/engage``, and a profile generator.

:class:`~robotmia_frames.emulator.ExportServer` routes ``GET``/``POST`` requests for
``/api/2.0/engage`` here, after the same Basic auth check and fault queue as exports
(so ``Fault(status=..)``, ``truncate_at``, ``reset``, ``retry_after`` ... apply to a
page as well). Parameters:

- ``page_size``: at most the endpoint's ``page_size`` (default 1000), which is also
  the default;
- ``session_id`` and ``page`` (from 0): a follow-up page of an open session, which
  keeps the profile list of its first request; an unknown or expired session is a
  400 ``{"error": ...}``, as robotmia answers;
- ``output_properties``: a JSON array of property names, the only ones returned;
- ``where``: evaluated by :func:`robotmia_frames.where.matches` with
  ``{"properties": profile_properties}`` when that module exists, else a clear 400.

A page body is exactly::

    {"page": N, "page_size": S, "session_id": "...", "status": "ok", "total": T,
     "results": [{"$distinct_id": "...", "$properties": {...}}, ...]}

Knobs for tests: :meth:`EngageEndpoint.expire_sessions`,
:meth:`EngageEndpoint.expire_after`, :attr:`EngageEndpoint.session_pages` and
:attr:`EngageEndpoint.results_first` (``results`` before ``session_id``, as in
robotmia's own alphabetical bodies).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import importlib
import importlib.util
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .generator import _GENRES, _PLACES, _PLANS, _user_profiles

__all__ = ["ENGAGE_PATH", "EngageEndpoint", "EngageError", "generate_profiles"]

ENGAGE_PATH = "/api/2.0/engage"
_MAX_SESSIONS = 1000

# --------------------------------------------------------------------------- generator

_FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Hedy", "Dennis", "Barbara", "Ken"]
_FIRST += ["Frances", "Guido", "Radia", "Tim", "Sophie", "Yukihiro", "Chloé", "José", "Zoë"]
_LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Lamarr", "Ritchie", "Liskov"]
_LAST += ["Thompson", "Allen", "van Rossum", "Perlman", "Berners-Lee", "Wilson", "Matsumoto"]
_CREATED_FROM = _dt.datetime(2022, 1, 1)
_CREATED_SPAN = 2 * 365 * 86400
_LAST_SEEN_MAX = _dt.datetime(2024, 3, 31, 23, 59, 59)
_FMT = "%Y-%m-%dT%H:%M:%S"


def _profile(i: int, rng: random.Random, user: dict[str, Any] | None) -> dict[str, Any]:
    first = _FIRST[int(rng.random() * len(_FIRST))]
    last = _LAST[int(rng.random() * len(_LAST))]
    if user is not None:
        city, region, country = user["$city"], user["$region"], user["mp_country_code"]
    else:
        city, region, country = _PLACES[int(rng.random() * len(_PLACES))]
    created = _CREATED_FROM + _dt.timedelta(seconds=int(rng.random() * _CREATED_SPAN))
    seen_span = (_LAST_SEEN_MAX - created).total_seconds()
    last_seen = created + _dt.timedelta(seconds=int(rng.random() ** 0.3 * seen_span))
    email_name = f"{first}.{last}".lower().replace(" ", "")
    props: dict[str, Any] = {
        "$email": f"{email_name}{i}@example.com",
        "$name": f"{first} {last}",
        "$city": city,
        "$region": region,
        "$country_code": country,
        "$created": created.strftime(_FMT),
        "$last_seen": last_seen.strftime(_FMT),
        "plan": _PLANS[int(rng.random() ** 1.6 * len(_PLANS))],
        "sessions": int(rng.random() ** 2 * 2_000),
        "lifetime_value": round(rng.random() ** 3 * 5_000, 2),
        "is_paying": rng.random() < 0.3,
        "favorite_genres": [
            _GENRES[int(rng.random() * len(_GENRES))] for _ in range(int(rng.random() * 4))
        ],
    }
    if user is not None:
        props["$os"] = user["$os"]
        props["$browser"] = user["$browser"]
    if rng.random() < 0.6:
        props["team_size"] = 1 + int(rng.random() ** 3 * 500)
    if rng.random() < 0.1:
        props["preferences"] = {"newsletter": rng.random() < 0.5, "theme": "dark"}
    r = rng.random()
    if r < 0.01 and "team_size" in props:  # a type conflict, as real projects have them
        props["team_size"] = "n/a" if rng.random() < 0.5 else str(props["team_size"])
    elif r < 0.02:
        props["lifetime_value"] = None
    return {"$distinct_id": f"user-{i:05d}", "$properties": props}


def generate_profiles(n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` people profiles, deterministic by ``seed``, for the generated events' users.

    Profile ``i`` is ``user-{i:05d}``, the distinct_id that
    :func:`~robotmia_frames.emulator.generate_events` gives its user ``i``; the first
    20,000 (every user events can have) share their ``$city``, ``$region``, ``$os``
    and ``$browser`` with those events. Properties: ``$email``, ``$name``, ``$city``,
    ``$region``, ``$country_code``, ``$created`` and ``$last_seen`` (project-local
    ``YYYY-MM-DDTHH:MM:SS`` strings), ``plan``, ``sessions`` (int), ``lifetime_value``
    (float), ``is_paying`` (bool), ``favorite_genres`` (list), sometimes
    ``team_size`` (about 1% of them strings: a type conflict) and a nested
    ``preferences`` object.

    Example:
        >>> p = generate_profiles(3, seed=1)
        >>> p[2]["$distinct_id"], sorted(p[0]["$properties"])[:3]
        ('user-00002', ['$browser', '$city', '$country_code'])
        >>> p == generate_profiles(3, seed=1)
        True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    users = _user_profiles(seed)
    rng = random.Random(f"robotmia-profiles:{seed}")
    return [_profile(i, rng, users[i][1] if i < len(users) else None) for i in range(n)]


# --------------------------------------------------------------------------- endpoint


class EngageError(Exception):
    """An error answer: ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass
class _Session:
    indices: list[int]
    keys: list[str] | None
    page_size: int
    served: int = 0
    expire_at: int | None = None  # expire once this many pages were served


def _positive(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise EngageError(400, f"invalid {name} {raw!r}: expected a non-negative integer")
    return int(raw)


def _where_matcher(expr: str, project_timezone: str) -> Callable[[dict[str, Any]], bool]:
    """``properties -> bool`` for a ``where``, or a 400 if there is no evaluator."""
    if importlib.util.find_spec("robotmia_frames.where") is None:
        raise EngageError(
            400,
            "where is not supported by this emulator yet (robotmia_frames.where is "
            "missing); drop the where parameter",
        )
    matches = importlib.import_module("robotmia_frames.where").matches

    def match(props: dict[str, Any]) -> bool:
        return bool(matches(expr, {"properties": props}, project_timezone=project_timezone))

    try:
        match({})
    except ValueError as exc:
        raise EngageError(400, f"invalid where parameter: {exc}") from None
    return match


class EngageEndpoint:
    """Profiles served by the emulator's ``/api/2.0/engage`` (``ExportServer.engage``).

    ``page_size`` is the default and largest page; ``session_pages``, when set,
    expires every session once it has served that many pages.

    Example:
        >>> ep = EngageEndpoint(generate_profiles(3), page_size=2)
        >>> body = json.loads(ep.answer({}))
        >>> body["total"], len(body["results"]), body["page"]
        (3, 2, 0)
        >>> len(json.loads(ep.answer({"session_id": body["session_id"], "page": "1"}))["results"])
        1
    """

    def __init__(
        self,
        profiles: Iterable[dict[str, Any]] | None = None,
        *,
        generate: int | None = None,
        seed: int = 0,
        page_size: int = 1000,
        project_timezone: str = "UTC",
    ) -> None:
        if profiles is not None and generate is not None:
            raise ValueError("pass either profiles or generate_profiles, not both")
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        items = (
            list(profiles) if profiles is not None else generate_profiles(generate or 0, seed=seed)
        )
        for p in items:
            if not isinstance(p, dict) or not isinstance(p.get("$properties", {}), dict):
                raise TypeError(
                    'profiles must be dicts {"$distinct_id": ..., "$properties": {...}}'
                )
        self.profiles: list[dict[str, Any]] = items
        self.page_size = page_size
        self.project_timezone = project_timezone
        self.session_pages: int | None = None
        self.results_first = False
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()
        self._expiries: list[list[int]] = []  # [pages, sessions left]
        self._lock = threading.Lock()

    # -- knobs --------------------------------------------------------------------

    def expire_sessions(self) -> int:
        """Expire every open session now; returns how many there were."""
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    def expire_after(self, pages: int, *, times: int = 1) -> None:
        """The next ``times`` new sessions expire after serving ``pages`` pages: the
        request for page ``pages`` (and later) gets a 400.

        Example:
            >>> ep = EngageEndpoint(generate_profiles(3), page_size=1)
            >>> ep.expire_after(1)
            >>> sid = json.loads(ep.answer({}))["session_id"]
            >>> ep.answer({"session_id": sid, "page": "1"})
            Traceback (most recent call last):
            ...
            robotmia_frames.emulator.engage.EngageError: session_id ... has expired; ...
        """
        if pages < 1 or times < 1:
            raise ValueError("pages and times must be >= 1")
        with self._lock:
            self._expiries.append([pages, times])

    # -- requests -----------------------------------------------------------------

    def answer(self, params: Mapping[str, str]) -> bytes:
        """The JSON body for one request, or raise :class:`EngageError`."""
        size = _positive(params, "page_size")
        if size == 0:
            raise EngageError(400, "invalid page_size '0': expected a positive integer")
        page = _positive(params, "page") or 0
        session_id = params.get("session_id") or None
        if session_id is not None:
            session = self._resume(session_id)
        else:
            session_id, session = self._open(params, size)
        with self._lock:
            if session.expire_at is not None and session.served >= session.expire_at:
                self._sessions.pop(session_id, None)
                raise EngageError(400, f"session_id {session_id} has expired; start again")
            session.served += 1
            if self.session_pages is not None and session.served >= self.session_pages:
                session.expire_at = session.served
        start = page * session.page_size
        chosen = session.indices[start : start + session.page_size]
        keys = None if session.keys is None else frozenset(session.keys)
        results = [self._result(self.profiles[i], keys) for i in chosen]
        body: dict[str, Any] = {"page": page, "page_size": session.page_size}
        if self.results_first:
            body["results"] = results
        body.update(session_id=session_id, status="ok", total=len(session.indices))
        if not self.results_first:
            body["results"] = results
        try:
            return orjson.dumps(body)
        except TypeError:  # ints beyond 64 bits, lone surrogates: the exact slow path
            return json.dumps(body, separators=(",", ":")).encode("ascii")

    def _resume(self, session_id: str) -> _Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise EngageError(400, f"session_id {session_id} is unknown or has expired")
        return session

    def _open(self, params: Mapping[str, str], size: int | None) -> tuple[str, _Session]:
        keys: list[str] | None = None
        raw = params.get("output_properties")
        if raw is not None:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(k, str) for k in parsed):
                raise EngageError(
                    400,
                    f"invalid output_properties {raw!r}: expected a JSON array of strings",
                )
            keys = parsed
        indices = list(range(len(self.profiles)))
        where = params.get("where") or None
        if where is not None:
            match = _where_matcher(where, self.project_timezone)
            try:
                indices = [i for i in indices if match(self.profiles[i].get("$properties") or {})]
            except ValueError as exc:
                raise EngageError(400, f"invalid where parameter: {exc}") from None
        page_size = min(size or self.page_size, self.page_size)
        session = _Session(indices, keys, page_size)
        session_id = uuid.uuid4().hex
        with self._lock:
            if self._expiries:
                entry = self._expiries[0]
                session.expire_at = entry[0]
                entry[1] -= 1
                if entry[1] <= 0:
                    del self._expiries[0]
            self._sessions[session_id] = session
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id, session

    @staticmethod
    def _result(profile: dict[str, Any], keys: frozenset[str] | None) -> dict[str, Any]:
        props = profile.get("$properties") or {}
        if keys is not None:
            props = {k: v for k, v in props.items() if k in keys}
        return {"$distinct_id": profile.get("$distinct_id"), "$properties": props}
