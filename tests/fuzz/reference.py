"""An independent reference for the C scanner: ``json.loads`` and the type policy.

Used by the differential fuzzer (``tests/fuzz/fuzz_scan.py``), its corpus replay
(``tests/test_scan_reference.py``) and the sanitizer job. It shares no code with
the Python engine: each line is read with the standard library's ``json``, and
each column is typed by the rules of the design's "Types" paragraph, written out
again here.

``expected(chunk, wanted)`` gives what an accepted chunk must read as, or
:data:`MUST_DECLINE` when the scanner has to hand the chunk to the Python engine
(a line that is not a JSON object, a non-string ``event``, a duplicate key, a
lone surrogate, ``NaN``...). The scanner may decline any chunk; it may never
accept one with a different reading.
"""

from __future__ import annotations

import json
import math
from typing import Any

MUST_DECLINE = None

_INT64 = (-(2**63), 2**63 - 1)


class _Refuse(Exception):
    """The chunk is one the scanner must decline."""


def _no_constant(name: str) -> Any:
    raise _Refuse(f"{name} is not JSON")


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Nested objects keep the last value of a repeated key (as json.loads does).
    return dict(pairs)


def _has_surrogate(value: Any) -> bool:
    if type(value) is str:
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if type(value) is list:
        return any(_has_surrogate(v) for v in value)
    if type(value) is dict:
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


def _load(line: bytes) -> Any:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refuse("not UTF-8") from exc
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _Refuse("not JSON") from exc


def _top_pairs(line: bytes) -> list[tuple[str, Any]]:
    """The line's top-level pairs; a repeated ``event`` or ``properties`` refuses."""
    seen: list[list[tuple[str, Any]]] = []

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        seen.append(pairs)
        return dict(pairs)

    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refuse("not UTF-8") from exc
    try:
        top = json.loads(text, object_pairs_hook=hook, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _Refuse("not JSON") from exc
    if type(top) is not dict:
        raise _Refuse("not an object")
    pairs = seen[-1]  # the outermost object closes last
    keys = [k for k, _ in pairs]
    if keys.count("event") > 1 or keys.count("properties") > 1:
        raise _Refuse("a repeated event or properties")
    return pairs


Kind = Any  # "null", "bool", "int", "float", "str", "text" or ("list", item kind)


def unify(a: Kind, b: Kind) -> Kind:
    """The kind of a column holding values of kinds ``a`` and ``b``."""
    if a == b:
        return a
    if a == "null":
        return b
    if b == "null":
        return a
    if type(a) is tuple and type(b) is tuple:
        return ("list", unify(a[1], b[1]))
    if {a, b} == {"int", "float"}:
        return "float"
    return "text"  # str and text, or any other mix


def kind_of(value: Any) -> Kind:
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "bool"
    if t is int:
        return "int" if _INT64[0] <= value <= _INT64[1] else "text"
    if t is float:
        return "float"
    if t is str:
        return "str"
    if t is list:
        item: Kind = "null"
        for v in value:
            item = unify(item, kind_of(v))
        return ("list", item)
    return "text"  # an object


def json_text(value: Any) -> str:
    """A value as a text column holds it: strings as they are, anything else as
    compact JSON text (keys in source order, non-ASCII kept, floats as repr)."""
    if type(value) is str:
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _typed(value: Any, kind: Kind) -> Any:
    """A value as a column of ``kind`` holds it."""
    if value is None:
        return None
    if kind in ("str", "text"):
        return json_text(value)
    if kind == "float":
        return float(value)
    if type(kind) is tuple:
        return [_typed(v, kind[1]) for v in value]
    return value


def _check_finite(value: Any) -> None:
    if type(value) is float and not math.isfinite(value):
        raise _Refuse("a float beyond double range")
    if type(value) is list:
        for v in value:
            _check_finite(v)
    elif type(value) is dict:
        for v in value.values():
            _check_finite(v)


def expected(chunk: bytes, wanted: list[str] | None = None) -> dict[str, Any] | None:
    """The reading of an accepted chunk, or :data:`MUST_DECLINE`.

    The reading is ``{"rows", "event", "time", "columns"}``; ``columns`` maps each
    stored key, in order of first appearance, to its typed values (one per row).
    """
    try:
        return _expected(chunk, wanted)
    except _Refuse:
        return MUST_DECLINE


def _expected(chunk: bytes, wanted: list[str] | None) -> dict[str, Any]:
    events: list[Any] = []
    times: list[Any] = []
    props: list[dict[str, Any]] = []
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue  # blank lines (bytes.strip's whitespace) are no rows
        pairs = _top_pairs(line)
        top = dict(pairs)
        _load(line)  # the plain reading must agree (no hooks)
        event = top.get("event")
        if event is not None and type(event) is not str:
            raise _Refuse("a non-string event")
        p = top.get("properties")
        if p is None:
            p = {}
        elif type(p) is not dict:
            raise _Refuse("properties is not an object")
        elif not _unique_keys(line):
            raise _Refuse("a repeated properties key")
        if _has_surrogate(event) or _has_surrogate(p.get("time")):
            raise _Refuse("a lone surrogate")
        for k, v in p.items():
            if wanted is None or k in wanted:
                _check_finite(v)  # values not stored are only validated
                if _has_surrogate(v):
                    raise _Refuse("a lone surrogate")
        t = p.get("time")
        if type(t) is int and abs(t) > 2**53:
            raise _Refuse("an int time beyond 2**53")
        events.append(event)
        times.append(float(t) if type(t) in (int, float) else None)
        props.append({k: v for k, v in p.items() if k != "time"})
    order: list[str] = []
    seen: set[str] = set()
    for p in props:
        for k in p:
            if k not in seen and (wanted is None or k in wanted):
                seen.add(k)
                order.append(k)
    columns = {}
    for key in order:
        raw = [p.get(key) for p in props]
        kind: Kind = "null"
        for v in raw:
            kind = unify(kind, kind_of(v))
        columns[key] = [_typed(v, kind) for v in raw]
    return {"rows": len(props), "event": events, "time": times, "columns": columns}


def _unique_keys(line: bytes) -> bool:
    """No key twice in the line's properties object (nested objects may repeat)."""
    found: list[bool] = []

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        return _Pairs(pairs)

    top = json.loads(line.decode("utf-8"), object_pairs_hook=hook)
    for k, v in top.pairs:
        if k == "properties" and isinstance(v, _Pairs):
            keys = [pk for pk, _ in v.pairs]
            found.append(len(set(keys)) == len(keys))
    return all(found)


class _Pairs:
    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (floats by their repr, so -0.0 differs from 0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return repr(a) == repr(b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)
