"""Shared Hypothesis strategies: JSON values, property keys, export events."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
BIG_INTS = st.one_of(
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(max_value=-(2**63) - 1, min_value=-(2**80)),
)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
TEXT = st.text(max_size=12)

scalars = st.one_of(st.none(), st.booleans(), INT64, FLOATS, TEXT)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(scalars, BIG_INTS),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(TEXT, children, max_size=3),
    ),
    max_leaves=8,
)

# Keys: anything but "time", which the export reserves.
keys = st.one_of(
    st.sampled_from(["$os", "Project ID", "a.b", "distinct_id", "Plan", "plan", "", "é", "🎉"]),
    st.text(max_size=8),
).filter(lambda k: k != "time")

# Columns draw their values from one of a few "families", so that columns are mostly
# consistent (like real data) and sometimes conflicting.
_families = st.sampled_from(["int", "float", "bool", "str", "list", "any"])


def _family_values(family: str) -> st.SearchStrategy[Any]:
    return {
        "int": st.one_of(st.none(), INT64),
        "float": st.one_of(INT64, FLOATS),
        "bool": st.booleans(),
        "str": TEXT,
        "list": st.lists(st.one_of(st.none(), INT64, FLOATS), max_size=3),
        "any": json_values,
    }[family]


times = st.one_of(
    st.integers(min_value=0, max_value=4_102_444_800),
    st.floats(min_value=-1e10, max_value=1e10, allow_nan=False),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
)


@st.composite
def events(draw: st.DrawFn, max_events: int = 12) -> list[dict[str, Any]]:
    """A list of export lines that share a pool of keys."""
    pool = draw(
        st.lists(st.tuples(keys, _families), min_size=1, max_size=6, unique_by=lambda x: x[0])
    )
    n = draw(st.integers(min_value=0, max_value=max_events))
    out = []
    for _ in range(n):
        props: dict[str, Any] = {}
        for key, family in pool:
            if draw(st.booleans()):
                props[key] = draw(_family_values(family))
        if draw(st.integers(0, 9)) > 0:
            props["time"] = draw(times)
        out.append({"event": draw(st.one_of(TEXT, st.none())), "properties": props})
    return out
