"""Hypothesis strategies for ``where`` expressions (random typed ASTs) and for events
that the Arrow table represents without loss.

"Lossless" events avoid the three things the table contract cannot keep (see
``docs/where.md``): a top-level JSON null (a null cell reads as a missing key), a
string in a mixed-type column that is the JSON text of another value (``"3"`` next
to ``3``), and a project-local time in a daylight-saving gap.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from hypothesis import strategies as st

from robotmia_frames.where import (
    AnyExpr,
    Arith,
    BoolOp,
    Call,
    Compare,
    Expr,
    Index,
    ListExpr,
    Literal,
    Negate,
    Not,
    Now,
    Property,
    Variable,
)

EPOCH = dt.datetime(1970, 1, 1)
UTC = dt.timezone.utc

#: Transitions of the test timezones (local seconds): New York spring-forward and
#: fall-back, Paris spring-forward, Lord Howe (30-minute DST).
ANCHORS = [
    (dt.datetime(2024, 3, 10, 2) - EPOCH).total_seconds(),
    (dt.datetime(2024, 11, 3, 1, 30) - EPOCH).total_seconds(),
    (dt.datetime(2024, 3, 31, 2) - EPOCH).total_seconds(),
    (dt.datetime(2024, 4, 7, 2) - EPOCH).total_seconds(),
]
TIMEZONES = ["UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata", "Australia/Lord_Howe"]


def roundtrips(t: float, tz: str) -> bool:
    """Whether local seconds ``t`` survive local -> UTC (fold=0) -> local: not in a gap."""
    local = EPOCH + dt.timedelta(seconds=t)
    instant = local.replace(tzinfo=ZoneInfo(tz), fold=0).astimezone(UTC)
    back = instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return back == local


# ------------------------------------------------------------------------------ files


def write_export(events: list[dict[str, Any]], path: Path) -> Path:
    """``events`` as an export file (one JSON line each) at ``path``."""
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def insert_ids(table: pa.Table) -> list[str]:
    """The ``$insert_id`` of each row of a table read back, in order."""
    if "properties.$insert_id" not in table.column_names:  # an empty read has no columns
        return []
    return [str(v) for v in table.column("properties.$insert_id").to_pylist()]


# ------------------------------------------------------------------------------ events

SAFE_TEXT = st.text(alphabet="abxyz é-", max_size=4)  # never JSON text of a non-string
STR_CONSTS = ["", "a", "b", "ab", "abc", "A", "x", "é", "3", "true", "Linux"]
DATE_STRINGS = [
    "2024-03-10",
    "2024-11-03",
    "2024-3-9",
    "2024-11-03T01:30:00",
    "2024-11-03T06:30:00Z",
    "2024-03-10T02:30:00",
    "2024-03-31T01:00:00+05:30",
    "2024-04-07T01:45:00.5",
    "2024-13-01",
    "nope",
]


def _time_values() -> st.SearchStrategy[float | int]:
    offsets = st.integers(min_value=-2 * 86400, max_value=2 * 86400)
    whole = st.builds(lambda a, o: int(a) + o, st.sampled_from(ANCHORS), offsets)
    frac = st.builds(lambda w, q: w + q / 4, whole, st.integers(1, 3))
    return st.one_of(whole, whole, frac, st.sampled_from([1, 0, -5, 4294967295]))


FAMILIES: dict[str, st.SearchStrategy[Any]] = {
    "n": st.one_of(st.integers(-5, 5), st.integers(-(2**63), 2**63 - 1), st.integers(2**63, 2**70)),
    "f": st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0.5, -0.0, 2.5, 1e20, 0.1]),
        st.integers(-3, 3),
    ),
    "s": st.one_of(st.sampled_from(STR_CONSTS), st.text(alphabet="abAé3 -", max_size=4)),
    "d": st.sampled_from(DATE_STRINGS),
    "b": st.booleans(),
    "l": st.lists(st.sampled_from(["a", "b", "", "ab", None]), max_size=3),
    "ln": st.lists(
        st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.5]), st.none()), max_size=3
    ),
    "ll": st.lists(st.lists(st.integers(0, 2), max_size=2), max_size=2),
    "m": st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.5]), SAFE_TEXT, st.booleans()),
    "o": st.one_of(
        st.fixed_dictionaries({"k": st.integers(0, 2)}, optional={"s": SAFE_TEXT}), SAFE_TEXT
    ),
    "ml": st.lists(st.one_of(st.integers(0, 2), SAFE_TEXT, st.booleans()), max_size=3),
}


@st.composite
def lossless_events(draw: st.DrawFn, tz: str, max_events: int = 8) -> list[dict[str, Any]]:
    """Export lines (each with a unique ``$insert_id``) the table represents exactly."""
    names = draw(st.lists(st.sampled_from(sorted(FAMILIES)), min_size=1, max_size=5, unique=True))
    n = draw(st.integers(0, max_events))
    out = []
    for i in range(n):
        props: dict[str, Any] = {"$insert_id": f"id-{i}"}
        for name in names:
            if draw(st.booleans()):
                props[name] = draw(FAMILIES[name])
        if draw(st.integers(0, 9)) > 0:
            t = draw(_time_values().filter(lambda t: roundtrips(t, tz)))
            props["time"] = t
        out.append({"event": "e", "properties": props})
    return out


#: Values of the mixed family ``m`` including the strings a fold to text confuses
#: with other values: ``"3"`` next to ``3``, ``"true"`` next to ``true``.
LOSSY_MIXED = st.one_of(
    FAMILIES["m"],
    st.sampled_from(["3", "-1", "2.5", "0", "true", "false", "[1]", '{"k":1}', "1e2"]),
)


@st.composite
def mixed_events(draw: st.DrawFn, tz: str, max_events: int = 8) -> list[dict[str, Any]]:
    """:func:`lossless_events` where ``m`` also holds strings that spell other values.

    Only the raw lines tell those strings from the values they spell.
    """
    events = draw(lossless_events(tz, max_events))
    for e in events:
        if draw(st.integers(0, 2)) > 0:
            e["properties"]["m"] = draw(LOSSY_MIXED)
    return events


# ------------------------------------------------------------------------- expressions

NUM_CONSTS = [0.0, 1.0, 2.0, 3.0, 0.5, 2.5, 100.0, 1e20, 4294967295.0]
NUM_CONSTS += [float(int(a) + d) for a in ANCHORS for d in (-3600, 0, 0.5, 1800, 86400)]
_VARS = ["X", "Y", "Z"]


def P(name: str) -> Property:
    return Property("properties", name)


def _leaf(kind: str, scope: tuple[str, ...]) -> st.SearchStrategy[Expr]:
    options: list[st.SearchStrategy[Expr]] = []
    if kind == "num":
        options += [
            st.sampled_from([P("n"), P("f"), P("m"), P("time")]),
            st.sampled_from(NUM_CONSTS).map(Literal),
        ]
    elif kind == "str":
        options += [
            st.sampled_from([P("s"), P("d"), P("m"), P("o")]),
            st.sampled_from(STR_CONSTS + DATE_STRINGS).map(Literal),
        ]
    elif kind == "bool":
        options += [st.sampled_from([P("b"), P("m")]), st.booleans().map(Literal)]
    elif kind == "list":
        options += [st.sampled_from([P("l"), P("ln"), P("ml"), P("ll")])]
    elif kind == "dt":
        options += [
            st.just(Property("event", "$time")),
            st.sampled_from(DATE_STRINGS).map(lambda s: Call("datetime", (Literal(s),))),
        ]
    else:
        options += [
            st.sampled_from([P("zz"), P("o"), Property("user", "x"), Property("event", "x"), Now()])
        ]
    if scope:
        options.append(st.sampled_from([Variable(v) for v in scope]))
    return st.one_of(*options)


@st.composite
def expressions(
    draw: st.DrawFn, kind: str = "bool", depth: int = 3, scope: tuple[str, ...] = ()
) -> Expr:
    """A random, type-directed AST of ``kind`` (num str bool list dt any)."""
    if kind == "any":
        kind = draw(st.sampled_from(["num", "str", "bool", "list", "dt", "other"]))
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(_leaf(kind, scope))

    def sub(k: str, s: tuple[str, ...] = scope) -> Expr:
        return draw(expressions(k, depth - 1, s))

    if kind == "num":
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return Arith(draw(st.sampled_from("+-*/%")), sub("num"), sub("num"))
        if choice == 1:
            return Negate(sub("num"))
        if choice == 2:
            return Call(draw(st.sampled_from(["floor", "ceil", "round"])), (sub("num"),))
        if choice == 3:
            return Call("number", (sub("any"),))
        return Index(sub("other"), "k")
    if kind == "str":
        choice = draw(st.integers(0, 2))
        if choice == 0:
            return Arith("+", sub("str"), sub("str"))
        if choice == 1:
            return Call("string", (sub("any"),))
        return Call("string", (sub("any"), Literal(draw(st.sampled_from(["u", "-"])))))
    if kind == "list":
        if draw(st.booleans()):
            return Call("list", (sub("any"),))
        return ListExpr(tuple(sub("any") for _ in range(draw(st.integers(0, 3)))))
    if kind == "dt":
        return Call("datetime", (sub(draw(st.sampled_from(["num", "str"]))),))
    if kind == "other":
        return sub(draw(st.sampled_from(["num", "str", "bool", "list", "dt"])))
    # bool
    choice = draw(st.integers(0, 9))
    if choice <= 2:
        pair = draw(
            st.sampled_from(
                [("num", "num"), ("str", "str"), ("dt", "dt"), ("dt", "str"), ("dt", "num"),
                 ("any", "any"), ("list", "list")]
            )
        )  # fmt: skip
        left, right = sub(pair[0]), sub(pair[1])
        if draw(st.booleans()):
            left, right = right, left
        return Compare(draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])), left, right)
    if choice == 3:
        if draw(st.booleans()):
            return Compare("in", sub("str"), sub("str"))
        inner = Compare("in", sub("any"), sub("list"))
        return Not(inner) if draw(st.booleans()) else inner
    if choice == 4:
        return Not(sub(draw(st.sampled_from(["bool", "any"]))))
    if choice == 5:
        operands = [sub(draw(st.sampled_from(["bool", "bool", "any"]))) for _ in range(2)]
        operands = [Compare("==", o, Literal(1.0)) if _is_literal(o) else o for o in operands]
        return BoolOp(draw(st.sampled_from(["and", "or"])), tuple(operands))
    if choice == 6:
        return Call(draw(st.sampled_from(["defined", "boolean"])), (sub("any"),))
    if choice == 7:
        return Call("has_prefix", (sub("str"), sub("str")))
    var = _VARS[len(scope) % len(_VARS)]
    return AnyExpr(var, sub("list"), sub("bool", (*scope, var)))


def _is_literal(node: Expr) -> bool:
    """Whether the parser may take ``node`` for a literal, which it refuses as an
    operand of ``and``/``or`` (``--0`` too: it looks through every minus)."""
    if isinstance(node, Negate):
        return _is_literal(node.operand)
    return isinstance(node, (ListExpr, Now)) or (
        isinstance(node, Literal) and not isinstance(node.value, bool)
    )
