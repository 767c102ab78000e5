"""The optional C scanner (``robotmia_frames.parse._scan``) changes speed, never results.

Every table read with the scanner must equal the table the pure-Python engine
gives (``ROBOTMIA_FRAMES_NATIVE=0``): same schema, same values, same bad-line
errors and warnings. Export lines here are built token by token, as bytes, so
that they hold what a JSON encoder would never write: odd escapes, lone
surrogates, invalid UTF-8, integers beyond int64, floats beyond double range,
duplicate and escaped keys, deep nesting, stray whitespace and malformed lines.

``clean`` lines stay inside what the scanner accepts (checked directly below), so
the scanner path really runs; ``wild`` lines may fall outside it, so the
Python fallback runs too, for a whole file or (with small batches) for some
chunks only.
"""

from __future__ import annotations

import gzip
import itertools
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from robotmia_frames import parse, read_export_file
from robotmia_frames import parse as engine
from robotmia_frames.errors import ParseError
from tests.strategies import FLOATS, TEXT

try:
    from robotmia_frames.parse import _scan
except ImportError:  # pragma: no cover - built without a C compiler
    _scan = None  # type: ignore[assignment]

needs_scanner = pytest.mark.skipif(_scan is None, reason="the C scanner is not built")

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
OnBadLines = Literal["error", "skip", "warn"]
ON_BAD_LINES: tuple[OnBadLines, ...] = ("skip", "error", "warn")

# ------------------------------------------------------------------ tokens

#: Whitespace between tokens (JSON's own; ``\n`` would split the line).
_WS = st.sampled_from([b"", b"", b"", b" ", b"  ", b"\t", b"\r", b" \r\t "])

#: Pieces of a string's body that any JSON parser accepts.
_CLEAN_PIECES = [
    b"a",
    b"Z",
    b" ",
    b"'",
    b"time",
    b"event",
    b'\\"',
    b"\\\\",
    b"\\/",
    b"\\n",
    b"\\t",
    b"\\r",
    b"\\b",
    b"\\f",
    b"\\u00e9",
    b"\\u00E9",
    b"\\u0000",
    b"\\u001f",
    b"\\u20ac",
    b"\\u2028",
    b"\\ud83d\\ude00",
    b"\\uD83D\\uDE00",
    b"\\udbff\\udfff",
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    "\u2028".encode(),
    "\U0010ffff".encode(),
    b"\x7f",
]
#: Pieces that are legal JSON the scanner leaves to Python (lone surrogates), or
#: not JSON at all (invalid UTF-8, raw control characters, bad escapes).
_WILD_PIECES = [
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d",
    b"\\ude00\\ud83d",
    b"\\ud800\\u0041",
    b"\\ud800\\n",
    b"\xff",
    b"\xc3",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8
    b"\xc0\xaf",  # overlong
    b"\xe0\x80\x80",  # overlong
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\x00",
    b"\x01",
    b"\x1f",
    b"\t",
    b"\\x41",
    b"\\q",
    b"\\u12",
    b"\\u12G4",
    b"\\U00e9",
]


def _encoded_text(text: str, ascii_only: bool) -> bytes:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1].encode()


_text_body = st.builds(_encoded_text, TEXT, st.booleans())


def string_body(wild: bool) -> st.SearchStrategy[bytes]:
    pieces = _CLEAN_PIECES + (_WILD_PIECES if wild else [])
    # Runs of plain bytes move the special pieces across 8-byte words.
    pad = st.integers(1, 17).map(lambda k: (b"abcdefgh" * 3)[:k])
    piece = st.one_of(st.sampled_from(pieces), _text_body, pad)
    return st.lists(piece, max_size=5).map(b"".join)


def string(wild: bool) -> st.SearchStrategy[bytes]:
    return string_body(wild).map(lambda body: b'"' + body + b'"')


#: Numbers the scanner reads itself: int64, and finite floats in under 128 chars.
_CLEAN_NUMBER_TOKENS = [
    b"0",
    b"-0",
    b"0.0",
    b"-0.0",
    b"1",
    b"-1",
    b"1E5",
    b"1e5",
    b"1E+05",
    b"1e-5",
    b"2.5e-3",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9007199254740992",
    b"9007199254740993",
    b"-9007199254740993",
    b"1e19",
    b"9.3e18",
    b"1e-400",  # underflows to 0.0
    b"5e-324",
    b"2.4703282292062327e-324",  # just below half the smallest subnormal
    b"2.4703282292062328e-324",  # just above it
    b"1.7976931348623157e308",
    b"1.7976931348623158e308",  # rounds down to the largest double
    b"0.1000000000000000055511151231257827021181583404541015625",
    b"1.00000000000000011102230246251565404236316680908203125",  # a tie: to even
    b"1.00000000000000011102230246251565404236316680908203126",
    b"3.14159265358979323846264338327950288419716939937510582097494459",
    b"123456789012345678.9",
]
#: Numbers beyond the scanner (beyond int64, beyond double range, 128+ chars) or
#: not JSON at all.
_WILD_NUMBER_TOKENS = [
    b"9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-18446744073709551616",
    b"100000000000000000000000000000",
    b"1e400",
    b"-1e400",
    b"1E999999999",
    b"1.7976931348623159e308",
    b"0." + b"1" * 140,
    b"1" * 25 + b".5",
    b"01",
    b"-01",
    b"1.",
    b".5",
    b"+1",
    b"-",
    b"1e",
    b"1e+",
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"0x10",
]


@st.composite
def _long_mantissa(draw: st.DrawFn) -> bytes:
    """A float with many digits (under the scanner's 128-character limit)."""
    whole = draw(st.from_regex(r"-?(0|[1-9][0-9]{0,30})", fullmatch=True))
    frac = draw(st.from_regex(r"[0-9]{1,60}", fullmatch=True))
    exp = draw(st.one_of(st.just(""), st.from_regex(r"[eE][+-]?[0-9]{1,3}", fullmatch=True)))
    text = f"{whole}.{frac}{exp}"
    if exp and abs(int(exp[1:])) > 250:
        text = f"{whole}.{frac}"  # keep it finite
    return text.encode()


def _spellings(f: float) -> list[bytes]:
    """Ways to write ``f``: Python's repr and spellings that are not it."""
    return [
        repr(f).encode(),
        f"{f:.17g}".encode(),
        f"{f:.16e}".encode(),
        f"{f:E}".encode(),
        repr(f).replace("e", "E").encode(),
        (repr(f) + "0").encode() if "e" not in repr(f) else repr(f).encode(),
    ]


def _float_text(f: float) -> st.SearchStrategy[bytes]:
    return st.sampled_from([t for t in _spellings(f) if b"inf" not in t.lower()])


_INTS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=-(2**63) + 3),
    st.integers(min_value=2**63 - 4, max_value=2**63 - 1),
    st.integers(min_value=-1000, max_value=1000),
).map(lambda i: str(i).encode())
_FLOATS = st.one_of(FLOATS.flatmap(_float_text), _long_mantissa())


def number(wild: bool) -> st.SearchStrategy[bytes]:
    parts = [st.sampled_from(_CLEAN_NUMBER_TOKENS), _INTS, _FLOATS]
    if wild:
        big = st.one_of(
            st.integers(min_value=2**63, max_value=2**64 + 2),
            st.integers(min_value=-(2**64) - 2, max_value=-(2**63) - 1),
            st.integers(min_value=2**64, max_value=2**90),
        ).map(lambda i: str(i).encode())
        parts += [st.sampled_from(_WILD_NUMBER_TOKENS), big]
    return st.one_of(*parts)


_LITERALS = st.sampled_from([b"null", b"true", b"false"])
_WILD_LITERALS = st.sampled_from([b"nul", b"tru", b"True", b"None", b"undefined"])


def _join(draw: st.DrawFn, items: list[bytes], open_: bytes, close: bytes) -> bytes:
    out = [open_, draw(_WS)]
    for i, item in enumerate(items):
        if i:
            out += [draw(_WS), b",", draw(_WS)]
        out.append(item)
    out += [draw(_WS), close]
    return b"".join(out)


@st.composite
def nested(draw: st.DrawFn, wild: bool, depth: int = 0) -> bytes:
    """Any JSON value: lists and objects of mixed types, with any keys.

    Keys inside (escaped, duplicated) are fine for the scanner: Python reads
    them. Numbers out of range come with ``wild`` only.
    """
    kind = draw(st.integers(0, 9))
    if depth >= 4 or kind < 5:
        leaf = [string(wild), number(wild), _LITERALS]
        if wild:
            leaf.append(_WILD_LITERALS)
        out: bytes = draw(st.one_of(*leaf))
        return out
    if kind == 5 and draw(st.integers(0, 7)) == 0:
        deep = draw(st.sampled_from([3, 50, 250] + ([256, 300] if wild else [])))
        inner = draw(st.sampled_from([b"", b"1", b'"x"', b"{}", b'{"a":[1.5]}']))
        return b"[" * deep + inner + b"]" * deep
    n = draw(st.integers(0, 3))
    if kind < 8:
        items = [draw(nested(wild, depth + 1)) for _ in range(n)]
        return _join(draw, items, b"[", b"]")
    members = []
    for _ in range(n):
        key = draw(st.one_of(st.sampled_from([b'"a"', b'"\\u0061"', b'"b"']), string(wild)))
        members.append(key + draw(_WS) + b":" + draw(_WS) + draw(nested(wild, depth + 1)))
    return _join(draw, members, b"{", b"}")


def value(wild: bool) -> st.SearchStrategy[bytes]:
    """A property value: a scalar, mostly, sometimes a list or an object."""
    return st.one_of(
        string(wild),
        number(wild),
        _LITERALS,
        nested(wild),
        *([_WILD_LITERALS] if wild else []),
    )


#: Keys the scanner takes: no escapes. Few of them, so that columns get values
#: from many rows (and type conflicts).
_CLEAN_KEYS = [b"a", b"b", b"$os", b"Project ID", b"x.y", b"", "é".encode(), "🎉".encode()]
_WILD_KEYS = [
    b"\\u0061",  # "a", escaped: a duplicate of "a" once decoded
    b'a\\"b',
    b"ti\\u006de",  # "time", escaped
    b"\\ud800",
    b"\xff",
    b"a\x01",
]


#: Value families: each key of a file keeps to one, mostly, so that columns come
#: out int, float, bool, string or list typed (and sometimes conflicting).
FAMILIES = ("int", "float", "num", "bool", "str", "list", "any")
_SCALAR_FAMILIES = ("int", "float", "num", "bool", "str")


def _scalar(family: str, wild: bool) -> st.SearchStrategy[bytes]:
    return {
        "int": _INTS,
        "float": _FLOATS,
        "num": st.one_of(_INTS, _FLOATS),
        "bool": st.sampled_from([b"true", b"false"]),
        "str": string(wild),
    }[family]


@st.composite
def family_value(draw: st.DrawFn, family: str, wild: bool) -> bytes:
    roll = draw(st.integers(0, 15))
    if roll == 0:
        return b"null"
    if roll == 1 or family == "any":
        return draw(value(wild))  # a conflict, now and then
    if family != "list":
        return draw(_scalar(family, wild))
    item = draw(st.sampled_from(_SCALAR_FAMILIES))  # lists: of one family per line
    items = draw(
        st.lists(st.one_of(_scalar(item, wild), _scalar(item, wild), st.just(b"null")), max_size=4)
    )
    return _join(draw, items, b"[", b"]")


def time_value(wild: bool) -> st.SearchStrategy[bytes]:
    clean = st.one_of(
        st.integers(min_value=-(2**53), max_value=2**53).map(lambda i: str(i).encode()),
        st.integers(min_value=0, max_value=4_102_444_800).map(lambda i: str(i).encode()),
        st.floats(min_value=-1e10, max_value=1e10, allow_nan=False).map(lambda f: repr(f).encode()),
        st.sampled_from(
            [
                b"1710036000",
                b"1710036000.5",
                b"1.7100360005E9",
                b"-0",
                b"-0.0",
                b"1e300",
                b"1e-400",
                b'"1710036000"',
                b"true",
                b"false",
                b"null",
                b"[1710036000]",
                b'{"t":1}',
            ]
        ),
    )
    if not wild:
        return clean
    return st.one_of(
        clean,
        st.sampled_from(
            [
                b"9007199254740993",
                b"-9007199254740993",
                b"9223372036854775808",
                b"18446744073709551616",
                b"1e400",
                b"-01",
                b"tru",
            ]
        ),
    )


Families = dict[bytes, str]


@st.composite
def properties(draw: st.DrawFn, wild: bool, families: Families | None = None) -> bytes:
    keys = _CLEAN_KEYS + (_WILD_KEYS if wild else [])
    chosen = draw(st.lists(st.sampled_from(keys), max_size=5, unique=not wild))
    members = []
    for k in chosen:
        family = (families or {}).get(k, "any")
        members.append(
            b'"' + k + b'"' + draw(_WS) + b":" + draw(_WS) + draw(family_value(family, wild))
        )
    for _ in range(draw(st.integers(0, 2 if wild else 1))):
        at = draw(st.integers(0, len(members)))
        members.insert(at, b'"time"' + draw(_WS) + b":" + draw(_WS) + draw(time_value(wild)))
    return _join(draw, members, b"{", b"}")


@st.composite
def line(draw: st.DrawFn, wild: bool = False, families: Families | None = None) -> bytes:
    """One export line (bytes, no newline): an event, blank, or (wild) malformed."""
    shape = draw(st.integers(0, 19))
    if shape == 0:
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r", b"\x0b", b"\x0c", b" \x0b\r\x0c "]))
    if wild and shape == 1:
        return draw(
            st.sampled_from(
                [
                    b"[1,2]",
                    b"[]",
                    b'[{"event":"a"}]',
                    b"1",
                    b'"x"',
                    b"null",
                    b"true",
                    b"{",
                    b"}",
                    b'{"event":"a"',
                    b'{"event":"a"}x',
                    b'{"event":"a"}{}',
                    b'{"event":"a"},',
                    b'\xef\xbb\xbf{"event":"a"}',
                    b'\x0b{"event":"a"}',
                    b'{"event":"a"}\x0c',
                    b'{"event":"a"}\x00',
                    b"\x00",
                    b"terminated early",
                ]
            )
        )
    members = []
    event_shape = draw(st.integers(0, 9))
    if event_shape < 6:
        members.append(b'"event"' + draw(_WS) + b":" + draw(_WS) + draw(string(wild)))
    elif event_shape < 8:
        members.append(b'"event":null')
    elif wild and event_shape == 8:
        event = draw(st.one_of(number(False), st.sampled_from([b"true", b"[]", b'{"a":1}'])))
        members.append(b'"event":' + event)
    props_shape = draw(st.integers(0, 9))
    if props_shape < 8:
        members.append(
            b'"properties"' + draw(_WS) + b":" + draw(_WS) + draw(properties(wild, families))
        )
    elif props_shape == 8:
        members.append(b'"properties":null')
    elif wild:
        other = draw(st.sampled_from([b"[]", b'"x"', b"1", b"true", b'[{"a":1}]']))
        members.append(b'"properties":' + other)
    if draw(st.integers(0, 4)) == 0:  # keys the export ignores, even duplicated
        extras = [b'"mp_extra"', b'"other"'] + ([b'"\\u0065vent"'] if wild else [])
        extra = draw(st.sampled_from(extras))
        for _ in range(draw(st.integers(1, 2))):
            members.append(extra + b":" + draw(nested(wild)))
    if wild and draw(st.integers(0, 5)) == 0:  # the same key twice at the top
        members.append(draw(st.sampled_from([b'"event":"again"', b'"properties":{}'])))
    order = draw(st.permutations(range(len(members))))
    text = _join(draw, [members[i] for i in order], b"{", b"}")
    if wild and draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]  # truncated
    return draw(_WS) + text + draw(st.sampled_from([b"", b"", b"\r", b" ", b" \r"]))


@st.composite
def key_families(draw: st.DrawFn) -> Families:
    return {k: draw(st.sampled_from(FAMILIES)) for k in _CLEAN_KEYS + _WILD_KEYS}


@st.composite
def export_lines(draw: st.DrawFn, max_lines: int = 10, wild: bool | None = None) -> list[bytes]:
    """Lines of a file: all clean, or with some wild ones among them."""
    families = draw(key_families())
    clean = line(families=families)
    if wild is None:
        wild = draw(st.booleans())
    if not wild:
        return draw(st.lists(clean, max_size=max_lines))
    messy = st.one_of(clean, clean, line(wild=True, families=families))
    return draw(st.lists(messy, max_size=max_lines))


# ---------------------------------------------------------------- reading


def write(tmp: Path, lines: list[bytes], *, gz: bool = False, final_newline: bool = True) -> Path:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp / ("export.jsonl.gz" if gz else "export.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def outcome(path: Path, on_bad_lines: OnBadLines, **kwargs: Any) -> Any:
    """The table (or the error) and the warnings of one read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got: Any = read_export_file(
                path,
                project_timezone="UTC",
                return_type="arrow",
                on_bad_lines=on_bad_lines,
                **kwargs,
            )
        except ParseError as exc:
            got = ("ParseError", exc.line_number, str(exc))
        except Exception as exc:
            got = (type(exc).__name__, None, str(exc))
    return got, [(w.category, str(w.message)) for w in caught]


def assert_same(native: Any, pure: Any) -> None:
    (got, native_warnings), (want, pure_warnings) = native, pure
    # Without a built scanner, the "scanner on" run also says so (once): not a difference.
    missing = "The C scanner of robotmia-frames is not built"
    native_warnings = [w for w in native_warnings if not str(w[1]).startswith(missing)]
    assert native_warnings == pure_warnings
    if isinstance(want, tuple):
        assert got == want, f"scanner: {got!r}\npython:  {want!r}"
        return
    assert isinstance(got, pa.Table), f"scanner raised {got!r}; python gave a table"
    assert got.schema == want.schema, f"scanner: {got.schema}\npython:  {want.schema}"
    assert got.equals(want), f"scanner:\n{got.to_pylist()}\npython:\n{want.to_pylist()}"


def both(monkeypatch: pytest.MonkeyPatch, read: Any) -> tuple[Any, Any]:
    """``read()`` with the scanner (where built), then with pure Python."""
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", "1")
    native = read()
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", "0")
    assert not engine.native_enabled()
    pure = read()
    monkeypatch.delenv("ROBOTMIA_FRAMES_NATIVE")
    return native, pure


def engine_table(path: Path, on_bad_lines: OnBadLines, batch_rows: int) -> Any:
    """The engine's table for ``path`` in chunks of ``batch_rows`` lines (no time stage)."""
    try:
        batches = list(
            engine.read_raw_batches(
                path, source="t", on_bad_lines=on_bad_lines, batch_rows=batch_rows
            )
        )
        kinds: dict[str, Any] = {}
        for batch in batches:
            engine.merge_kinds(kinds, batch)
        schema = parse.export_schema(kinds)
        return pa.Table.from_batches(
            [engine.conform(b, kinds, schema, path=path) for b in batches if b.num_rows],
            schema=schema,
        )
    except ParseError as exc:
        return ("ParseError", exc.line_number, str(exc))


def assert_tables(got: Any, want: Any) -> None:
    if isinstance(want, tuple) or isinstance(got, tuple):
        assert got == want
        return
    assert got.schema == want.schema, f"{got.schema}\n!=\n{want.schema}"
    assert got.equals(want), f"{got.to_pylist()}\n!=\n{want.to_pylist()}"


# ------------------------------------------------------- equivalence properties


@PROPERTY
@given(lines=export_lines(), gz=st.booleans(), final_newline=st.booleans())
@example(
    lines=[b'{"event":"a","properties":{"n":1}}', b'{"event":1}'], gz=False, final_newline=True
)
@example(
    lines=[b'{"event":"\\ud83d\\ude00","properties":{"s":"\\u00e9\\/\\"\\\\\\n","time":1.5}}\r'],
    gz=True,
    final_newline=False,
)
@example(lines=[b'{"properties":{"s":"\\ud800"}}', b"\x0b", b""], gz=False, final_newline=True)
@example(
    lines=[
        b'{"properties":{"n":9223372036854775807}}',
        b'{"properties":{"n":9223372036854775808}}',
    ],
    gz=False,
    final_newline=True,
)
@example(lines=[b'{"properties":{"a":1,"a":"x"}}'], gz=False, final_newline=True)
@example(lines=[b'{"properties":{"a":1,"\\u0061":2}}'], gz=False, final_newline=True)
@example(lines=[b'{"properties":{"f":1e400}}', b"[1]"], gz=False, final_newline=True)
@example(lines=[b'{"properties":{"s":"\xff"}}'], gz=False, final_newline=True)
@example(
    lines=[
        b'{"properties":{"m":1E5}}',
        b'{"properties":{"m":"x"}}',
        b'{"properties":{"m":-0}}',
        b'{"properties":{"m":1.50}}',
        b'{"properties":{"m":true}}',
    ],
    gz=False,
    final_newline=True,
)
@example(
    lines=[
        b'{"properties":{"l":[1,2.5,null],"k":["a",null],"j":[]}}',
        b'{"properties":{"l":null,"k":[],"j":[[1]]}}',
    ],
    gz=False,
    final_newline=False,
)
def test_read_export_file_same_with_and_without_scanner(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    gz: bool,
    final_newline: bool,
) -> None:
    path = write(tmp_path_factory.mktemp("scan"), lines, gz=gz, final_newline=final_newline)
    for on_bad_lines in ON_BAD_LINES:
        native, pure = both(monkeypatch, lambda: outcome(path, on_bad_lines))  # noqa: B023
        assert_same(native, pure)


_PY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@PROPERTY
@given(values=st.lists(st.lists(_PY_JSON, min_size=1, max_size=3), min_size=1, max_size=8))
def test_objects_and_lists_written_compactly_same_with_and_without_scanner(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    values: list[list[Any]],
) -> None:
    # Values serialised as json_text writes them (compact, keys in order), which
    # the scanner may keep as they are for a text column: the same table.
    lines = [
        json.dumps(
            {"event": "e", "properties": {f"k{i}": v for i, v in enumerate(row)}},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        for row in values
    ]
    path = write(tmp_path_factory.mktemp("compact"), lines)
    native, pure = both(monkeypatch, lambda: outcome(path, "error"))
    assert_same(native, pure)


@PROPERTY
@given(lines=export_lines(), data=st.data())
def test_projection_same_with_and_without_scanner(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    data: st.DataObject,
) -> None:
    names = [
        "event",
        "time",
        "properties.time",
        "properties.never",
        *("properties." + k.decode() for k in _CLEAN_KEYS),
    ]
    columns = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=5), label="columns")
    path = write(tmp_path_factory.mktemp("scan"), lines)
    for on_bad_lines in ON_BAD_LINES[:2]:
        native, pure = both(
            monkeypatch,
            lambda: outcome(path, on_bad_lines, columns=columns),  # noqa: B023
        )
        assert_same(native, pure)
        table = native[0]
        if isinstance(table, pa.Table):
            assert table.column_names == list(dict.fromkeys(columns))


@PROPERTY
@given(lines=export_lines(max_lines=14), batch_rows=st.integers(min_value=1, max_value=5))
@example(
    lines=[
        b'{"properties":{"n":1,"l":[1,2]}}',
        b'{"properties":{"n":2,"l":[3]}}',
        b'{"properties":{"n":18446744073709551616,"l":[1.5,"x"]}}',
        b'{"properties":{"n":3,"l":[]}}',
    ],
    batch_rows=2,
)
@example(
    lines=[
        b'{"properties":{"a":true}}',
        b'{"properties":{"a":"\\ud800"}}',
        b'{"properties":{"a":2}}',
    ],
    batch_rows=1,
)
@example(lines=[b"", b"", b'{"properties":{"a":1}}', b"\r", b"", b"x"], batch_rows=2)
def test_small_batches_same_with_and_without_scanner(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    batch_rows: int,
) -> None:
    # Small chunks: the scanner takes some, Python the others (those with a wild line).
    path = write(tmp_path_factory.mktemp("scan"), lines)
    for on_bad_lines in ON_BAD_LINES[:2]:
        native, pure = both(
            monkeypatch,
            lambda: engine_table(path, on_bad_lines, batch_rows),  # noqa: B023
        )
        assert_tables(native, pure)


@pytest.mark.parametrize("native", ["1", "0"])
def test_batch_boundaries_do_not_matter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, native: str
) -> None:
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", native)
    lines = [b'{"properties":{"b":0}}', b'{"properties":{"b":1.5}}', b'{"properties":{"b":"x"}}']
    one_batch = engine_table(write(tmp_path, lines), "error", 3)
    assert one_batch.column("properties.b").to_pylist() == ["0", "1.5", "x"]
    # The same lines in batches of engine.BATCH_ROWS, "x" alone in the second.
    size = engine.BATCH_ROWS
    (tmp_path / "big").mkdir()
    path = write(tmp_path / "big", [*lines[:2], *[b"{}"] * (size - 2), lines[2]])
    table = read_export_file(path, project_timezone="UTC", return_type="arrow")
    assert isinstance(table, pa.Table)
    assert table.column("properties.b")[0].as_py() == "0"


@pytest.mark.parametrize("native", ["1", "0"])
def test_skip_survives_an_exact_redecode_and_a_rebuild(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, native: str
) -> None:
    size = engine.BATCH_ROWS
    lines = [b"[1,2]", b'{"properties":{"a":[1,1e19]}}']
    lines += [b"{}"] * (size - len(lines)) + [b'{"properties":{"a":"x"}}']
    monkeypatch.setenv("ROBOTMIA_FRAMES_NATIVE", native)
    one_batch = read_export_file(
        write(tmp_path, [*lines[:2], lines[-1]]),
        project_timezone="UTC",
        return_type="arrow",
        on_bad_lines="skip",
    )
    assert isinstance(one_batch, pa.Table)
    expected = one_batch.column("properties.a")[0].as_py()
    assert expected == "[1,1e+19]"
    (tmp_path / "big").mkdir()
    path = write(tmp_path / "big", lines)
    table = read_export_file(path, project_timezone="UTC", return_type="arrow", on_bad_lines="skip")
    assert isinstance(table, pa.Table)
    assert table.num_rows == size
    assert table.column("properties.a")[0].as_py() == expected


def test_many_keys_same_with_and_without_scanner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Enough distinct keys that the scanner's key table grows several times,
    # in varying orders (its next-key guess misses), with some keys repeated.
    lines = []
    for i in range(300):
        keys = [(i * 7 + j * 13) % 700 for j in range(1 + i % 9)]
        props = ",".join(f'"k{k}":{k if j % 3 else f"{k}.5"}' for j, k in enumerate(keys))
        lines.append(f'{{"event":"e{i % 5}","properties":{{{props},"time":{i}}}}}'.encode())
    path = write(tmp_path, lines)
    assert _scan is None or _scan.scan(b"\n".join(lines)) is not None
    native, pure = both(monkeypatch, lambda: outcome(path, "error"))
    assert_same(native, pure)
    assert native[0].num_columns > 500


@needs_scanner
@PROPERTY
@given(lines=export_lines(max_lines=12, wild=False))
def test_scanner_takes_clean_lines(lines: list[bytes]) -> None:
    # The clean lines above are within what the scanner reads itself, so the
    # equivalence tests really compare the two engines.
    got = _scan.scan(b"\n".join(lines))
    assert got is not None, lines
    assert got[0] == sum(1 for x in lines if x.strip())


@needs_scanner
@PROPERTY
@given(lines=export_lines(max_lines=14), data=st.data())
def test_a_sparse_scan_laid_out_over_its_rows_is_the_dense_scan(
    lines: list[bytes], data: st.DataObject
) -> None:
    # A sparse scan keeps each key's own values and their rows; laid out again
    # over every row, each column is the one the dense scan gives, to the bit.
    from robotmia_frames.parse._native import from_scan, scan_chunk

    chunk = b"\n".join(lines)
    keys = data.draw(st.none() | st.frozensets(st.sampled_from(["a", "b", "s", "time", "x"])))
    dense, sparse = scan_chunk(chunk, keys), scan_chunk(chunk, keys, sparse=True)
    assert (dense is None) == (sparse is None)
    if dense is None or sparse is None:
        return
    batch, compact = from_scan(dense, 1, 0, "t"), from_scan(sparse, 1, 0, "t")
    assert (batch is None) == (compact is None)
    if batch is None or compact is None:
        return
    n = batch.num_rows
    assert compact.num_rows == n and list(compact.columns) == list(batch.columns)
    assert compact.event.equals(batch.event) and compact.time.equals(batch.time)
    for key, col in batch.columns.items():
        part = compact.columns[key]
        assert part.rows is not None
        rows = part.rows.to_pylist()
        assert rows == sorted(set(rows)) and all(0 <= r < n for r in rows)
        assert len(rows) == len(part.array)
        whole = part.dense(n)
        assert (whole.kind, whole.exact) == (col.kind, col.exact), key
        assert whole.array.equals(col.array), key
        assert (whole.text is None) == (col.text is None), key
        assert col.text is None or col.text.equals(whole.text), key


# ------------------------------------------------------------ the scanner itself

# Tags of values left to Python, and the codes of the kinds the scanner settles.
T_NULL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_RAW, T_LIST = range(1, 9)
K_PY, K_NULL, K_INT, K_FLOAT, K_BOOL, K_STR, K_TEXT, K_LIST = range(-1, 7)
_FIELDS = [
    "key",
    "code",
    "valid",
    "values",
    "text",
    "item_code",
    "item_exact",
    "item_valid",
    "item_values",
    "item_text",
    "rows",
    "tags",
    "ints",
    "floats",
    "text_ends",
    "raw_ends",
    "raw",
]


@pytest.fixture
def scan_module() -> Any:
    return pytest.importorskip("robotmia_frames.parse._scan")


def scan(module: Any, lines: list[bytes], wanted: list[str] | None = None) -> Any:
    """``_scan.scan`` over lines, as the engine calls it (one newline-joined chunk).

    The scanner hands back read-only ``_scan.Buffer`` objects (its own memory,
    no copy); they are turned into bytes here so the tests can compare them.
    """
    got = module.scan(b"\n".join(lines), wanted)
    if got is None:
        return None

    def plain(x: Any) -> Any:
        if isinstance(x, module.Buffer):
            return bytes(x)
        if isinstance(x, (list, tuple)):
            return type(x)(plain(v) for v in x)
        return x

    return plain(got)


def columns_of(got: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for col in got[6]:
        assert len(col) == len(_FIELDS), "the scanner's column layout changed"
        out[col[0]] = dict(zip(_FIELDS, col, strict=True))
    return out


def i32(data: bytes) -> list[int]:
    return [int(x) for x in np.frombuffer(data, dtype=np.int32)]


@pytest.mark.parametrize(
    "line",
    [
        b'{"event":1}',
        b'{"event":true}',
        b'{"event":{"a":1}}',
        b'{"event":"a","event":"b"}',
        b'{"properties":{"a":1,"a":2}}',
        b'{"properties":{"a":1,"b":2,"a":3}}',
        b'{"properties":{"time":1,"time":2}}',
        b'{"properties":{"\\u0061":1}}',
        b'{"properties":{"ti\\u006de":1}}',
        b'{"\\u0065vent":"a"}',
        b'{"properties":{"n":9223372036854775808}}',
        b'{"properties":{"n":-9223372036854775809}}',
        b'{"properties":{"n":18446744073709551616}}',
        b'{"properties":{"l":[18446744073709551616]}}',
        b'{"properties":{"f":1e400}}',
        b'{"properties":{"f":-1e400}}',
        b'{"properties":{"f":0.' + b"1" * 140 + b"}}",
        b'{"properties":{"time":9007199254740993}}',
        b'{"properties":{"time":1e400}}',
        b'{"properties":{"s":"\\ud800"}}',
        b'{"properties":{"s":"\\udc00"}}',
        b'{"properties":{"s":"\\ud83d\\u0041"}}',
        b'{"event":"\\ud800"}',
        b'{"properties":{"o":{"k":"\\ud800"}}}',
        b'{"properties":{"s":"\xff"}}',
        b'{"properties":{"s":"\xed\xa0\x80"}}',
        b'{"properties":{"s":"\xc0\xaf"}}',
        b'{"event":"\xc3"}',
        b'{"properties":{"s":"a\x01"}}',
        b'{"properties":{"s":"\\q"}}',
        b'{"properties":[]}',
        b'{"properties":"x"}',
        b'{"properties":{"l":' + b"[" * 300 + b"]" * 300 + b"}}",
        b"[1,2]",
        b'[{"event":"a"}]',
        b"1",
        b"null",
        b'"x"',
        b'{"event":"a"',
        b'{"event":"a"}x',
        b'\x0b{"event":"a"}',
        b'\xef\xbb\xbf{"event":"a"}',
        b'{"properties":{"n":01}}',
        b'{"properties":{"n":+1}}',
        b'{"properties":{"n":NaN}}',
        b'{"properties":{"n":Infinity}}',
    ],
)
def test_scan_declines(scan_module: Any, line: bytes) -> None:
    assert scan(scan_module, [line]) is None
    # One such line declines its whole chunk, wherever it is.
    plain = b'{"event":"a","properties":{"n":1}}'
    assert scan(scan_module, [plain, line, plain]) is None
    assert scan(scan_module, [plain, plain]) is not None


@pytest.mark.parametrize(
    "line",
    [
        b"{}",
        b'{"event":null,"properties":null}',
        b'{"event":"a"}',
        b'{"properties":{}}',
        b' { "event" : "a" , "properties" : { "n" : 1 } } \r',
        b'{\t"event":\r"a"}\r',
        b'{"properties":{"n":9223372036854775807,"m":-9223372036854775808,"z":-0}}',
        b'{"properties":{"time":"1710036000","s":"\\ud83d\\ude00\\u00e9\\/\\u0000"}}',
        b'{"properties":{"time":true,"l":[1,"x",[true],{"a":1,"a":2}]}}',
        b'{"properties":{"o":{"\\u0061":18446744073709551616,"b":1e400}}}',
        b'{"properties":{"l":[[18446744073709551616]]}}',
        b'{"properties":{"f":1e-400,"g":-0.0,"h":1E5,"i":5e-324}}',
        b'{"properties":{"l":' + b"[" * 250 + b"]" * 250 + b"}}",
        b'{"mp":1,"mp":[1e400],"x":{"\\u0065vent":1}}',
        '{"event":"é","properties":{"é":"😀","🎉":["€"]}}'.encode(),
    ],
)
def test_scan_takes_plain_lines(scan_module: Any, line: bytes) -> None:
    got = scan(scan_module, [line, b"", b" \x0b\x0c", b"\r"])
    assert isinstance(got, tuple)
    assert got[0] == 1  # blank lines are not rows


def test_scan_rows_events_and_times(scan_module: Any) -> None:
    lines = [
        b'{"event":"e0","properties":{"time":1710036000}}',
        b"",
        b'{"event":"e1","properties":{"time":1.5}}',
        b'{"properties":{"x":1}}',
        b'{"event":null,"properties":{"time":"1710036000"}}',
        b"  \x0b",
        b'{"event":"e\\"4","properties":{"time":true}}',
        b'{"event":"\\u00e9","properties":{"time":-0}}',
    ]
    got = scan(scan_module, lines)
    assert got is not None
    n, ev_offsets, ev_data, ev_ok, times, time_ok, _ = got
    assert n == 6
    assert i32(ev_offsets) == [0, 2, 4, 4, 4, 7, 9]
    assert ev_data == 'e0e1e"4é'.encode()
    assert list(ev_ok) == [1, 1, 0, 0, 1, 1]
    assert list(time_ok) == [1, 1, 0, 0, 0, 1]
    t = np.frombuffer(times, dtype=np.float64)
    assert [t[0], t[1], t[5]] == [1710036000.0, 1.5, 0.0]


def test_scan_tags_of_a_mixed_column(scan_module: Any) -> None:
    # Objects mixed with scalars whose JSON text is not canonical (the space in
    # the object) are left to Python: per-value tags.
    values = [b"null", b"false", b"true", b"-7", b"2.5", b'"s\\n"', b'{"a": [1]}', b"[1,null]"]
    lines = [b'{"properties":{"v":%s}}' % v for v in values]
    got = scan(scan_module, lines)
    assert got is not None
    assert got[0] == len(values)
    v = columns_of(got)["v"]
    assert v["code"] == K_PY
    assert i32(v["rows"]) == list(range(len(values)))
    assert list(v["tags"]) == [T_NULL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STR, T_RAW, T_LIST]
    assert np.frombuffer(v["ints"], dtype=np.int64).tolist() == [-7]
    assert np.frombuffer(v["floats"], dtype=np.float64).tolist() == [2.5]
    assert v["raw"] == b'{"a": [1]}[1,null]'  # raw JSON text, as written
    assert i32(v["raw_ends"]) == [10, 18]
    text = v["text"]  # every scalar's text: strings decoded, others as JSON
    ends = i32(v["text_ends"])
    assert [text[a:b] for a, b in zip([0, *ends], ends, strict=False)] == [
        b"",
        b"false",
        b"true",
        b"-7",
        b"2.5",
        b"s\n",
        b"",
        b"",
    ]


def test_scan_objects_with_canonical_text_make_a_text_column(scan_module: Any) -> None:
    # Objects, and lists mixed with scalars, already written as json_text writes
    # them: the scanner makes the text column itself. Anything else: Python.
    lines = [
        b'{"properties":{"o":{"a":[1,2.5,"\xc3\xa9"],"b":{"a":null}},"m":[1,"x"],"n":null}}',
        b'{"properties":{"o":"s","m":3,"n":{"x":1,"x":2}}}',
        b'{"properties":{"o":true,"m":"y","n":{"y":-0}}}',
    ]
    cols = columns_of(scan(scan_module, lines))
    o, m, n = cols["o"], cols["m"], cols["n"]
    assert (o["code"], m["code"]) == (K_TEXT, K_TEXT)
    ends = i32(o["values"])
    assert [o["text"][a:b] for a, b in itertools.pairwise(ends)] == [
        '{"a":[1,2.5,"é"],"b":{"a":null}}'.encode(),
        b"s",
        b"true",
    ]
    ends = i32(m["values"])
    assert [m["text"][a:b] for a, b in itertools.pairwise(ends)] == [
        b'[1,"x"]',
        b"3",
        b"y",
    ]
    assert n["code"] == K_PY  # a key twice, and -0: not canonical


def test_scan_settled_columns(scan_module: Any) -> None:
    lines = [
        b'{"properties":{"i":1,"f":1,"b":true,"s":"\\u00e9","t":1,"l":[1,null,2]}}',
        b'{"properties":{"i":-0,"f":2.5,"b":null,"s":"x","t":"y","l":[]}}',
        b'{"properties":{"i":null,"f":null,"b":false,"t":false,"l":null}}',
    ]
    got = scan(scan_module, lines)
    assert got is not None
    cols = columns_of(got)
    assert list(cols) == ["i", "f", "b", "s", "t", "l"]  # first appearance
    assert {k: c["code"] for k, c in cols.items()} == {
        "i": K_INT,
        "f": K_FLOAT,
        "b": K_BOOL,
        "s": K_STR,
        "t": K_TEXT,
        "l": K_LIST,
    }
    assert np.frombuffer(cols["i"]["values"], dtype=np.int64).tolist()[:2] == [1, 0]
    assert np.frombuffer(cols["f"]["values"], dtype=np.float64).tolist()[:2] == [1.0, 2.5]
    s, t = cols["s"], cols["t"]
    assert (i32(s["values"]), s["text"]) == ([0, 2, 3, 3], "éx".encode())
    assert (i32(t["values"]), t["text"]) == ([0, 1, 2, 7], b"1yfalse")
    assert cols["l"]["item_code"] == K_INT
    assert i32(cols["l"]["values"]) == [0, 3, 3, 3]  # list offsets over the rows


def test_scan_wanted_keys(scan_module: Any) -> None:
    lines = [b'{"properties":{"a":1,"b":"x","c":[1]}}', b'{"properties":{"c":{"d":2},"a":3}}']
    got = scan(scan_module, lines, ["c", "never"])
    assert got is not None
    assert got[0] == 2
    assert list(columns_of(got)) == ["c"]
    # Unwanted keys are still checked: a duplicate among them declines the chunk.
    assert scan(scan_module, [b'{"properties":{"a":1,"a":2}}'], ["c"]) is None
    assert scan(scan_module, [b'{"properties":{"a":"\\ud800"}}'], ["c"]) is None
    assert scan(scan_module, [], None)[0] == 0
    assert scan(scan_module, [b'{"properties":{"a":1}}'], [])[6] == []


def test_cut(scan_module: Any) -> None:
    data = b"a\n\nbb\nc"
    assert scan_module.cut(data, 0, 1) == 2
    assert scan_module.cut(data, 0, 3) == 6
    assert scan_module.cut(data, 2, 2) == 6
    # Fewer than n newlines: -1 - (the newlines found).
    assert scan_module.cut(data, 0, 4) == -4  # the last line has no newline
    assert scan_module.cut(data, 6, 1) == -1
    assert scan_module.cut(data, 2, 5) == -3


# ------------------------------------------------- batches of the real size


@needs_scanner
@pytest.mark.parametrize("on_bad_lines", ["skip", "error"])
@pytest.mark.parametrize("gz", [False, True])
def test_only_a_later_batch_needs_python(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, on_bad_lines: OnBadLines, gz: bool
) -> None:
    size = engine.BATCH_ROWS
    first = [
        b'{"event":"e%d","properties":{"time":%d,"n":%d,"l":[%d],"s":"x%d","b":true}}'
        % (i % 7, 1_700_000_000 + i, i, i, i)
        for i in range(size)
    ]
    second = [
        b'{"event":"late","properties":{"n":18446744073709551616,"l":[1.5,"y"],"s":"\\ud800"}}',
        b"not json",
        b'{"event":"e","properties":{"n":-1,"b":"yes","new":1e5}}',
    ]
    path = write(tmp_path, first + second, gz=gz)

    # The scanner reads the first chunk and declines the second.
    chunks = list(engine.iter_line_chunks(path, label="t"))
    assert [len(c) for _, c in chunks] == [size, len(second)]
    assert _scan.scan(b"\n".join(chunks[0][1])) is not None
    assert _scan.scan(b"\n".join(chunks[1][1])) is None

    native, pure = both(monkeypatch, lambda: outcome(path, on_bad_lines))
    assert_same(native, pure)
    table = native[0]
    if on_bad_lines == "error":
        assert table[:2] == ("ParseError", size + 2)
        return
    assert table.num_rows == size + 2
    # Types settle export-wide, whichever batch the conflict came from.
    assert table.schema.field("properties.n").type == pa.string()
    assert table.column("properties.n")[0].as_py() == "0"
    assert table.column("properties.n")[size].as_py() == "18446744073709551616"
    assert table.schema.field("properties.l").type == pa.list_(pa.string())
    assert table.column("properties.l")[1].as_py() == ["1"]
    assert table.column("properties.b")[0].as_py() == "true"
    assert table.column("properties.s")[size].as_py() == "\ufffd"
