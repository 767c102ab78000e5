"""The ``where`` language (issue 6): spec examples, syntax, semantics, errors, API.

``where-expressions.md`` is the specification; section numbers below refer to it.
Equivalence of the evaluator, the Arrow filter and the emulator is in
``test_where_equivalence.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import robotmia_frames as rf
from robotmia_frames.emulator import ExportServer
from robotmia_frames.where import (
    MAX_DEPTH,
    UNDEFINED,
    AnyExpr,
    BoolOp,
    Call,
    Compare,
    Compiled,
    DateTime,
    Index,
    Literal,
    Negate,
    Not,
    Property,
    Variable,
    WhereSyntaxError,
    compile_where,
    evaluate,
    filter_table,
    format_where,
    matches,
    parse_where,
    validate_where,
)

SECRET = "where-test-secret"

# ------------------------------------------------------------------ section 7

SAMPLE = {
    "event": "Purchase",
    "properties": {
        "time": 1704103200,
        "distinct_id": "u1",
        "$os": "Linux",
        "$referring_domain": "www.facebook.com",
        "amount": 42.5,
        "quantity": 3,
        "account_id": 2,
        "plan": "Pro",
        "signed_up": "true",
        "is_trial": False,
        "tags": ["a", "b"],
        "zip": "02139",
        "signup_date": "2023-12-31T08:00:00",
        "nothing": None,
    },
}

EXAMPLES = [
    (1, 'properties["$os"]=="Linux"', True),
    (2, 'properties["$os"] == "linux"', False),
    (3, 'properties["city"] == "Paris"', False),
    (4, 'properties["city"] != "Paris"', True),
    (5, 'properties["zip"] > 2000', UNDEFINED),
    (6, 'number(properties["zip"]) > 2000', True),
    (7, 'properties["account_id"] in [1,2,3,4]', True),
    (8, '"facebook" in properties["$referring_domain"]', True),
    (9, '"a" in properties["tags"]', True),
    (10, 'not "x" in properties["tags"]', True),
    (11, 'not defined(properties["city"])', True),
    (12, 'defined(properties["nothing"])', True),
    (13, 'boolean(properties["signed_up"]) and not properties["is_trial"]', True),
    (14, 'not (properties["city"] > 3)', True),
    (15, 'properties["amount"] * properties["quantity"] >= 127.5', True),
    (16, 'properties["plan"] + "-" + properties["$os"] == "Pro-Linux"', True),
    (17, 'properties["amount"] / 0 > 1', UNDEFINED),
    (18, 'event["$time"] >= datetime("2024-01-01T00:00:00")', True),
    (19, 'datetime(properties["signup_date"]) < datetime("2024-01-01")', True),
    (
        20,
        'properties["quantity"] > 2 AND (properties["plan"] == "Free" OR '
        'any(X, properties["tags"], X == "b"))',
        True,
    ),
    (21, 'properties["$os"] == "Linux" and properties["amount"]', UNDEFINED),
]


@pytest.fixture(scope="module")
def sample_table(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    path = tmp_path_factory.mktemp("sample") / "sample.jsonl"
    path.write_text(json.dumps(SAMPLE) + "\n")
    return rf.read_export_file(path, project_timezone="UTC", return_type="arrow")


@pytest.mark.parametrize(("n", "text", "value"), EXAMPLES, ids=[f"ex{n}" for n, _, _ in EXAMPLES])
def test_spec_examples(n: int, text: str, value: Any, sample_table: pa.Table) -> None:
    assert evaluate(text, SAMPLE) is value
    assert matches(text, SAMPLE) is (value is True)
    # The table cannot tell the JSON null of example 12 from a missing key.
    kept = value is True and n != 12
    assert filter_table(sample_table, text, project_timezone="UTC").num_rows == int(kept)


def test_engage_examples() -> None:
    profile = {"$last_seen": "2024-03-05T12:00:00", "$email": "a@example.com"}
    record = {"properties": profile}
    assert matches('properties["$last_seen"] > datetime("2024-01-01T00:00:00")', record)
    assert matches('user["$last_seen"] >= "2024-01-01T00:00:00"', record, user=profile)
    assert not matches('user["$last_seen"] >= "2024-01-01T00:00:00"', record)  # an export
    seen_recently = 'datetime(properties["$last_seen"]) >= datetime(NOW - 604800)'
    march_8 = dt.datetime(2024, 3, 8, tzinfo=dt.timezone.utc).timestamp()
    assert matches(seen_recently, record, now=march_8)
    assert not matches(seen_recently, record, now=march_8 + 30 * 86400)
    assert matches(seen_recently.replace("NOW - ", "NOW -"), record, now=march_8)


# ------------------------------------------------------------- section 3: precedence


def p(name: str) -> Property:
    return Property("properties", name)


def test_not_binds_looser_than_in_and_comparisons() -> None:
    assert parse_where('not "x" in properties["p"]') == Not(Compare("in", Literal("x"), p("p")))
    assert parse_where('properties["a"] == 1 and not "c" in properties["d"]') == BoolOp(
        "and",
        (Compare("==", p("a"), Literal(1.0)), Not(Compare("in", Literal("c"), p("d")))),
    )
    assert parse_where('not defined(properties["p"])') == Not(Call("defined", (p("p"),)))
    assert parse_where("not 1 == 2") == Not(Compare("==", Literal(1.0), Literal(2.0)))
    assert parse_where("not not true") == Not(Not(Literal(True)))


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Compare("==", p(x), Literal(1.0)) for x in "abc")
    text = 'properties["a"] == 1 or properties["b"] == 1 and properties["c"] == 1'
    assert parse_where(text) == BoolOp("or", (a, BoolOp("and", (b, c))))
    text = 'not properties["a"] == 1 and properties["b"] == 1'
    assert parse_where(text) == BoolOp("and", (Not(a), b))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 - 2 - 3", -4.0),
        ("8 / 4 / 2", 1.0),
        ("2 * 3 + 4", 10.0),
        ("2 + 3 * 4", 14.0),
        ("7 % 4 * 2", 6.0),
        ("- 2 * 3", -6.0),
        ("--2", 2.0),
        ("-(1 + 2)", -3.0),
        ("(1 + 2) * 3", 9.0),
        ('"a" + "b" + "c"', "abc"),
    ],
)
def test_arithmetic_precedence_and_left_associativity(text: str, value: Any) -> None:
    assert evaluate(text, {}) == value


def test_comparisons_do_not_chain() -> None:
    for text in ("1 < 2 < 3", "1 == 1 == true", '"a" in "ab" in "abc"'):
        with pytest.raises(WhereSyntaxError, match="cannot be chained"):
            parse_where(text)
    assert parse_where("(1 < 2) == true") == Compare(
        "==", Compare("<", Literal(1.0), Literal(2.0)), Literal(True)
    )


def test_not_in_and_unary_minus_of_an_index() -> None:
    assert parse_where('"x" not in properties["t"]') == Not(Compare("in", Literal("x"), p("t")))
    assert parse_where('-properties["o"]["k"]') == Negate(Index(p("o"), "k"))
    with pytest.raises(WhereSyntaxError, match="'not' cannot appear here"):
        parse_where("1 + not true")
    with pytest.raises(WhereSyntaxError, match="'not' cannot appear here"):
        parse_where("1 == not true")


# --------------------------------------------------------------- section 1: lexical


def test_whitespace_is_optional_and_may_be_newlines() -> None:
    compact = parse_where('properties["$os"]=="Linux"')
    assert parse_where(' properties [ "$os" ]\t==\r\n"Linux"\n') == compact
    text = 'properties["a"] == 1\n    AND\n    properties["b"] == 2'
    assert isinstance(parse_where(text), BoolOp)
    with pytest.raises(WhereSyntaxError, match="unexpected character"):
        parse_where('properties["a"]\f== 1')


def test_strings_and_escapes() -> None:
    assert evaluate(r'"a\"b\\c\/d"', {}) == 'a"b\\c/d'
    assert evaluate(r'"\b\f\n\r\t"', {}) == "\b\f\n\r\t"
    assert evaluate(r'"caf\u00e9 \ud83c\udf89"', {}) == "café 🎉"
    assert evaluate('properties["a b \\"c\\""]', {"properties": {'a b "c"': 1}}) == 1.0
    for bad, reason in [
        ('"abc', "unterminated string"),
        (r'"\q"', r"invalid escape '\\q'"),
        (r'"\u12"', "4 hex digits"),
        (r'"\udc00"', "lone surrogate"),
        ("'Linux'", "single quotes"),
    ]:
        with pytest.raises(WhereSyntaxError, match=reason):
            parse_where(bad)


def test_numbers() -> None:
    assert evaluate("9.5", {}) == 9.5
    assert evaluate("10", {}) == 10.0 and isinstance(evaluate("10", {}), float)
    assert evaluate("1e3", {}) == evaluate("1E+3", {}) == 1000.0
    assert evaluate("2.5e-1", {}) == 0.25
    assert parse_where("-10") == Negate(Literal(10.0))
    for bad in ("1.", ".5", "1e", "0x10"):
        with pytest.raises(WhereSyntaxError):
            parse_where(bad)


def test_keywords_are_case_insensitive_accessors_are_not() -> None:
    text = 'DEFINED(properties["a"]) AND NOT properties["b"] IN ["x"] Or TRUE'
    assert parse_where(text) == parse_where(text.lower().replace('["x"]', '["x"]'))
    assert evaluate("FALSE or True", {}) is True
    assert evaluate('Any(X, [1, 2], X = 2) and HAS_PREFIX("Abc", "a")', {}) is True
    assert isinstance(evaluate("now", {}), float)
    for bad in ('Properties["a"]', 'USER["a"]', 'Event["$time"]'):
        with pytest.raises(WhereSyntaxError, match="accessors are lower case"):
            parse_where(bad)


def test_operators() -> None:
    assert parse_where("1 = 1") == parse_where("1 == 1")
    assert evaluate("1 != 2", {}) is True
    for bad, hint in [("true && true", "'and'"), ("true || true", "'or'"), ("!true", "'not'")]:
        with pytest.raises(WhereSyntaxError, match=hint):
            parse_where(bad)


def test_identifiers_only_as_any_variables() -> None:
    assert parse_where("any(X, [1], X == 1)") == AnyExpr(
        "X", parse_where("[1]"), Compare("==", Variable("X"), Literal(1.0))
    )
    assert evaluate("any(X, [[1, 2]], any(Y, X, Y == 2))", {}) is True  # nested scopes
    for bad, reason in [
        ("X == 1", "unknown name 'X'"),
        ("any(X, [1], x == 1)", "unknown name 'x'"),  # case-sensitive
        ("any(X, [X], true)", "unknown name 'X'"),  # not bound in the list
        ("any(not, [1], true)", "variable name"),
        ("any(properties, [1], true)", "variable name"),
        ("Linux", "bare words"),
        ("foo(1)", "unknown function 'foo'"),
        ('properties.os == "Linux"', "dotted name"),
    ]:
        with pytest.raises(WhereSyntaxError, match=reason):
            parse_where(bad)


def test_now_minus_without_a_space_is_subtraction() -> None:
    assert parse_where("NOW -604800") == parse_where("NOW - 604800")
    assert evaluate("NOW -604800", {}, now=1e6) == 1e6 - 604800


def test_function_arity() -> None:
    for bad in ("defined()", "defined(1, 2)", "string()", "string(1, 2, 3)", "has_prefix(1)"):
        with pytest.raises(WhereSyntaxError, match="takes"):
            parse_where(bad)


def test_printer_round_trips() -> None:
    for text, _, _ in [(t, 0, 0) for _, t, _ in EXAMPLES]:
        expr = parse_where(text)
        assert parse_where(format_where(expr)) == expr
    assert format_where(parse_where('(properties["a"]+1)*2 = 4 OR NOT (true)')) == (
        '(properties["a"] + 1) * 2 == 4 or not true'
    )
    assert format_where(parse_where("1 - (2 - 3)")) == "1 - (2 - 3)"
    assert format_where(parse_where("-(-1)")) == "--1"


# ---------------------------------------------------------------------- errors


def test_error_names_the_column_and_puts_a_caret_under_it() -> None:
    text = 'properties["$os"] == "Linux" and properties["n"] >> 3'
    with pytest.raises(WhereSyntaxError) as info:
        parse_where(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, rf.InvalidArgumentError)
    assert err.position == text.index(">> 3") + 1
    assert err.column == err.position + 1 and err.line == 1
    first, shown, caret = str(err).splitlines()
    assert f"column {err.column}" in first
    assert shown == "  " + text
    assert caret == "  " + " " * err.position + "^"


def test_error_in_a_multi_line_expression_names_the_line() -> None:
    text = 'properties["a"] == 1\n  and properties["b"] === 2'
    with pytest.raises(WhereSyntaxError) as info:
        parse_where(text)
    err = info.value
    assert (err.line, err.column) == (2, text.splitlines()[1].index("= 2") + 1)
    first, shown, caret = str(err).splitlines()
    assert "line 2, column 25" in first
    assert shown == '    and properties["b"] === 2'
    assert caret.index("^") == shown.index("= 2")


def test_error_in_a_long_expression_shows_a_window() -> None:
    text = " or ".join(f'properties["p{i}"] == {i}' for i in range(40)) + " or ?"
    with pytest.raises(WhereSyntaxError) as info:
        parse_where(text)
    _, shown, caret = str(info.value).splitlines()
    assert len(shown) < 90 and shown.lstrip().startswith("...")
    assert shown[caret.index("^")] == "?"


def test_errors_at_the_end_and_for_empty_input() -> None:
    with pytest.raises(WhereSyntaxError, match="end of expression") as info:
        parse_where('properties["a"] ==')
    assert info.value.column == len('properties["a"] ==') + 1
    for empty in ("", "   "):
        with pytest.raises(WhereSyntaxError, match="empty expression"):
            parse_where(empty)
    with pytest.raises(WhereSyntaxError, match="unbalanced"):
        parse_where('properties["a"] == 1)')


def test_literal_operands_of_and_or_are_errors_at_validation() -> None:
    for text, kind in [
        ('properties["a"] == 1 and 5', "number"),
        ('"yes" or properties["b"]', "string"),
        ("true and [1]", "list"),
        ("true and -1", "number"),
        ("NOW or true", "number"),
    ]:
        with pytest.raises(WhereSyntaxError, match=f"not a {kind} literal"):
            validate_where(text)
    validate_where("true and false")  # boolean literals are fine
    validate_where('true and properties["n"]')  # a property: undefined per row, no error
    assert evaluate('true and properties["n"]', {"properties": {"n": 1}}) is UNDEFINED
    assert evaluate("true and (1 + 1)", {}) is UNDEFINED  # not a literal: per row


def test_depth_is_capped() -> None:
    ok = "(" * (MAX_DEPTH - 1) + "true" + ")" * (MAX_DEPTH - 1)
    assert parse_where(ok) == Literal(True)
    for deep in (
        "(" * 5000 + "1" + ")" * 5000,
        "[" * 5000,
        "not " * 5000 + "true",
        "-" * 5000 + "1",
        " + ".join(["1"] * (MAX_DEPTH + 5)),
        "defined(" * 500,
    ):
        with pytest.raises(WhereSyntaxError, match="nested too deeply"):
            parse_where(deep)
    # an `or` of many operands is flat, not deep
    assert len(parse_where(" or ".join(["true"] * 2000)).operands) == 2000  # type: ignore[attr-defined]


TOKENS = st.sampled_from(
    ['properties["a"]', 'user["u"]', 'event["$time"]', "X", "any", "(", ")", "[", "]", ",",
     "==", "=", "!=", "<", ">=", "+", "-", "*", "/", "%", "and", "or", "not", "in", "true",
     "1", "2.5e3", '"s"', '"\\u00e9"', "defined", "datetime", "string", "NOW", "!", "'", "&&",
     ".", "\n", " "]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=60), st.lists(TOKENS, max_size=30).map(" ".join)))
def test_fuzzed_text_raises_only_value_errors(text: str) -> None:
    try:
        expr = parse_where(text)
    except ValueError as exc:
        assert isinstance(exc, WhereSyntaxError)
        assert "^" in str(exc)
        return
    assert parse_where(format_where(expr)) == expr
    evaluate(expr, {"properties": {"a": 1, "time": 1704067200}})


CLOSERS = {"(": ")", "[": "]", "not ": "", "-": "", "defined(": ")", "any(X, [": "], true)",
           "string(": ")", "X + (": ")"}  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(opener=st.sampled_from(sorted(CLOSERS)), depth=st.integers(MAX_DEPTH + 1, 1500))
def test_deep_nesting_is_a_syntax_error(opener: str, depth: int) -> None:
    inner = "true" if opener == "not " else "1"
    text = opener * depth + inner + CLOSERS[opener] * depth
    if opener.startswith("X"):
        text = f"any(X, [1], {text} == 1)"
    with pytest.raises(WhereSyntaxError, match="nested too deeply"):
        parse_where(text)


# ------------------------------------------------------------ section 5: semantics


def ev(text: str, **props: Any) -> Any:
    return evaluate(text, {"properties": props}, now=1e9)


def test_undefined_and_null() -> None:
    assert ev('properties["x"]') is UNDEFINED
    assert ev('properties["x"]', x=None) is None
    assert ev('defined(properties["x"])', x=None) is True
    assert ev('properties["x"] == properties["y"]') is True  # undefined == undefined
    assert ev('properties["x"] == properties["y"]', x=None, y=None) is True
    assert ev('properties["x"] == properties["y"]', x=None) is False  # null vs undefined
    assert ev('properties["x"] != 1') is True
    assert ev('not properties["x"]', x=None) is True
    assert ev("not 1") is UNDEFINED
    assert ev('string(properties["x"])', x=None) is None
    assert ev('string(properties["x"], "u")', x=None) == "u"
    assert ev('string(properties["x"], "u")') == "u"


def test_equality_and_ordering_by_type() -> None:
    assert ev("1 == 1.0") is True
    assert ev('1 == "1"') is False
    assert ev("true == 1") is False
    assert ev('properties["t"] == "a"', t=["a"]) is False
    assert ev('properties["t"] == ["a", "b"]', t=["a", "b"]) is True
    assert ev('properties["o"] == properties["p"]', o={"k": 1}, p={"k": 1.0}) is True
    assert ev('"B" < "a"') is True  # code points
    assert ev('"é" > "z"') is True
    assert ev('1 < "2"') is UNDEFINED
    assert ev("true < false") is UNDEFINED
    assert ev("[1] < [2]") is UNDEFINED


def test_datetimes() -> None:
    assert ev('datetime("2024-01-01T00:00:00.9") == datetime("2024-01-01")') is True
    assert ev('datetime("2024-01-01T00:00:01") > datetime("2024-01-01T00:00:00.9")') is True
    assert ev("datetime(1704067200) == datetime(1704067200000)") is True  # ms above 2**32
    assert ev("datetime(0)") is UNDEFINED
    assert ev("datetime(-1)") is UNDEFINED
    assert ev('datetime("2024-3-9")') == DateTime(1709942400.0)
    assert ev('datetime("2024-02-30")') is UNDEFINED
    assert ev('datetime("not a date")') is UNDEFINED
    assert ev("datetime(true)") is UNDEFINED
    assert ev('string(datetime("2024-03-09T10:11:12.5"))') == "2024-03-09T10:11:12"
    assert ev('number(datetime("1970-01-02"))') == 86400.0
    # coercion of the other operand for comparisons
    assert ev('datetime("2024-01-01") == "2024-01-01T00:00:00"') is True
    assert ev('datetime("2024-01-01") < 1704067201') is True
    assert ev('datetime("2024-01-01") == "garbage"') is False
    assert ev('datetime("2024-01-01") < "garbage"') is UNDEFINED
    assert ev('properties["time"] >= datetime("2024-01-01")', time=1704067200) is True


def test_datetime_strings_are_read_in_the_project_timezone() -> None:
    paris = {"project_timezone": "Europe/Paris"}
    e = {"properties": {"time": 1704067200}}  # 2024-01-01T00:00 Paris wall clock
    assert matches('event["$time"] == datetime("2024-01-01T00:00:00")', e, **paris)
    assert matches('event["$time"] == datetime("2023-12-31T23:00:00Z")', e, **paris)
    assert matches('event["$time"] == datetime("2023-12-31T18:00:00-05:00")', e, **paris)
    assert not matches('event["$time"] == datetime("2024-01-01T00:00:00Z")', e, **paris)
    assert matches('event["$time"] == datetime("2024-01-01T00:00:00Z")', e)  # UTC


def test_in() -> None:
    assert ev('"" in "abc"') is True
    assert ev('"B" in "abc"') is False
    assert ev('1 in "123"') is UNDEFINED
    assert ev('"a" in properties["t"]', t=["a", None]) is True
    assert ev('2 in properties["t"]', t=[1, 2]) is True
    assert ev('"2" in properties["t"]', t=[1, 2]) is False
    assert ev('properties["x"] in properties["t"]', t=[None]) is False  # undefined vs null
    assert ev('properties["x"] in properties["t"]', x=None, t=[None]) is True
    assert ev('"a" in properties["t"]') is UNDEFINED
    assert ev('"a" in 5') is UNDEFINED
    assert ev("[1] in [[1], 2]") is True


def test_logic() -> None:
    assert ev('properties["x"] or true') is True  # undefined counts as false
    assert ev('properties["x"] and true') is False
    assert ev('properties["x"] or true', x=None) is True
    assert ev('properties["n"] or true', n=1) is UNDEFINED  # a type error: no row kept
    assert ev('not (properties["n"] or true)', n=1) is True
    assert ev('not properties["t"]', t=[]) is UNDEFINED


def test_arithmetic() -> None:
    assert ev("7 / 2") == 3.5
    assert ev("1 / 0") is UNDEFINED
    assert ev("5 % 0") is UNDEFINED
    assert ev("-7 % 3") == -1.0  # the sign of the dividend
    assert ev("7 % -3") == 1.0
    assert ev("5.5 % 2") == 1.5
    assert ev('"a" + 1') is UNDEFINED
    assert ev('"a" - "b"') is UNDEFINED
    assert ev('-"a"') is UNDEFINED
    assert ev("1e308 * 10") == math.inf


def test_casts() -> None:
    for text, value in [
        ('boolean("false")', False),
        ('boolean("")', False),
        ("boolean(0)", False),
        ('boolean(properties["x"])', False),
        ('boolean("true")', True),
        ('boolean("False")', True),
        ('boolean("no")', True),
        ("boolean(2)", True),
        ("boolean([])", True),
        ('number("02139")', 2139.0),
        ('number("-1.5e3")', -1500.0),
        ('number(" 12")', UNDEFINED),
        ('number("1,000")', UNDEFINED),
        ("number(true)", 1.0),
        ('number(properties["x"])', UNDEFINED),
        ("string(3)", "3"),
        ("string(3.0)", "3"),
        ("string(0.1)", "0.1"),
        ("string(1e20)", "100000000000000000000"),
        ("string(1e-7)", "1e-07"),
        ("string(false)", "false"),
        ("string([1])", UNDEFINED),
        ("floor(-2.5)", -3.0),
        ("ceil(-2.5)", -2.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(0.49999999999999994)", 0.0),
        ('floor("2.5")', UNDEFINED),
        ("list([1])", [1.0]),
        ('list("a")', UNDEFINED),
        ('has_prefix("Linux", "lin")', True),
        ('has_prefix("Émile", "é")', False),  # ASCII case folding only
        ('has_prefix("Linux", 1)', UNDEFINED),
        ('any(X, "abc", true)', UNDEFINED),
        ("any(X, [], true)", False),
    ]:
        assert ev(text) == value if value is not UNDEFINED else ev(text) is UNDEFINED, text


def test_accessors() -> None:
    e = {"properties": {"time": 1704067200, "o": {"k": 2, "n": None}}}
    assert evaluate('event["$time"]', e) == DateTime(1704067200.0)
    assert evaluate('event["name"]', e) is UNDEFINED
    assert evaluate('user["$email"]', e) is UNDEFINED
    assert evaluate('properties["o"]["k"]', e) == 2.0
    assert evaluate('properties["o"]["n"]', e) is None
    assert evaluate('properties["o"]["z"]', e) is UNDEFINED
    assert evaluate('properties["time"]["k"]', e) is UNDEFINED
    assert evaluate('properties["x"]', {"event": "a"}) is UNDEFINED  # no properties at all


# ------------------------------------------------------------------- section 9


def _table(rows: list[dict[str, Any]], tmp_path: Path, tz: str = "UTC") -> pa.Table:
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rf.read_export_file(path, project_timezone=tz, return_type="arrow")


def test_what_is_pushed_down_and_what_is_residual(tmp_path: Path) -> None:
    table = _table(
        [{"event": "e", "properties": {"time": 1704067200, "n": 1, "s": "a", "t": ["a"],
                                       "m": 1}},
         {"event": "e", "properties": {"time": 1704067300, "m": "x"}}],
        tmp_path,
        "Europe/Paris",
    )  # fmt: skip
    schema = table.schema

    def kinds(text: str) -> tuple[bool, bool]:
        c = compile_where(text, schema, project_timezone="Europe/Paris")
        return c.expression is not None, c.has_residual

    assert kinds('properties["n"] > 0 and properties["s"] == "a"') == (True, False)
    assert kinds('event["$time"] >= datetime("2024-01-01")') == (True, False)  # UTC range
    assert kinds('properties["time"] < 1704067250') == (True, False)
    assert kinds('"a" in properties["s"] and properties["s"] in ["a", "b"]') == (True, False)
    assert kinds('defined(properties["m"]) and number(properties["s"]) > 1') == (True, False)
    assert kinds('"a" in properties["t"]') == (False, True)  # list membership
    assert kinds('properties["m"] == 1') == (False, True)  # folded to text
    assert kinds('properties["n"] > 0 and any(X, properties["t"], X == "a")') == (True, True)
    assert kinds('properties["nope"] == 1') == (True, False)  # constant false
    assert kinds('properties["nope"] != 1') == (False, False)  # constant true


def test_vectorisable_constructs_do_not_fall_back_to_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"event": "e", "properties": {"time": 1704067200 + i * 3600, "n": i, "t": ["a", "b"][: i % 3],
                                      "m": [i, "x", True, 2.5][i % 4], "s": f"2024-01-0{i % 9 + 1}"}}
        for i in range(40)
    ]  # fmt: skip
    table = _table(rows, tmp_path, "America/New_York")

    def boom(*_: Any) -> Any:
        raise AssertionError("row-by-row evaluation")

    monkeypatch.setattr(Compiled, "_rows", boom)
    for text in [
        '"b" in properties["t"]',
        'any(X, properties["t"], X == "b" or X + "!" == "a!")',
        'properties["n"] % 3 == 1',
        'string(properties["n"]) == "7"',
        'datetime(properties["s"]) < datetime("2024-01-05")',
        'properties["m"] > 1 or properties["m"] == "x" or properties["m"]',
        'properties["time"] % 86400 < 43200',
        'properties["n"] in properties["t"] or "a" in properties["t"]',
    ]:
        expected = [matches(text, r, project_timezone="America/New_York") for r in rows]
        got = filter_table(table, text, project_timezone="America/New_York")
        assert got.num_rows == sum(expected), text


def test_filter_table_keeps_order_and_columns(tmp_path: Path) -> None:
    rows = [{"event": str(i), "properties": {"time": 1704067200 + i, "n": i % 3}} for i in range(9)]
    table = _table(rows, tmp_path)
    out = filter_table(table, 'properties["n"] != 1')
    assert out.schema == table.schema
    assert out.column("event").to_pylist() == ["0", "2", "3", "5", "6", "8"]


def test_compile_rejects_a_time_column_that_is_not_a_timestamp() -> None:
    with pytest.raises(ValueError, match="time column"):
        compile_where("true", pa.schema([("time", pa.float64())]))


# ------------------------------------------------------------------------- the API


def _write(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"event": "a", "properties": {"time": 1704067200 + i * 3600, "$insert_id": f"i{i}",
                                  "n": i, "os": ["Linux", "iOS"][i % 2], "t": ["x"] * (i % 2)}}
    for i in range(48)
]  # fmt: skip


def test_invalid_where_raises_before_any_request() -> None:
    with ExportServer(ROWS, api_secret=SECRET) as srv:
        for fn in (rf.read_robotmia_export, rf.export_to_parquet):
            args = ("2024-01-01", "2024-01-02") if fn is rf.read_robotmia_export else (
                "/nonexistent", "2024-01-01", "2024-01-02")  # fmt: skip
            with pytest.raises(WhereSyntaxError, match="column 16"):
                fn(*args, where='properties["n" == 1', api_secret=SECRET,  # type: ignore[operator]
                   project_timezone="UTC", base_url=srv.url)  # fmt: skip
        assert srv.requests == []
    rf.validate_where('properties["n"] == 1')
    assert rf.WhereSyntaxError is WhereSyntaxError


def test_emulator_filters_with_the_evaluator_and_answers_400_on_a_typo() -> None:
    with ExportServer(ROWS, api_secret=SECRET, project_timezone="UTC") as srv:
        df = rf.read_robotmia_export(
            "2024-01-01", "2024-01-02", where='properties["os"] == "Linux" and properties["n"] < 10',
            api_secret=SECRET, project_timezone="UTC", base_url=srv.url,
        )  # fmt: skip
        assert df["properties.n"].tolist() == [0, 2, 4, 6, 8]
        params = {"from_date": "2024-01-01", "to_date": "2024-01-01", "where": "n === 1"}
        r = requests.get(srv.url, params=params, auth=(SECRET, ""), timeout=10)
        assert r.status_code == 400
        message = orjson.loads(r.content)["error"]
        assert "invalid where expression" in message and "column 1" in message and "^" in message
        params["where"] = "true and 5"  # a literal type error is a 400 too
        assert (
            requests.get(srv.url, params=params, auth=(SECRET, ""), timeout=10).status_code == 400
        )


def test_emulator_where_uses_the_project_timezone() -> None:
    rows = [{"event": "a", "properties": {"time": 1704067200, "$insert_id": "x"}}]
    where = 'event["$time"] == datetime("2023-12-31T23:00:00Z")'
    with ExportServer(rows, api_secret=SECRET, project_timezone="Europe/Paris") as srv:
        got = rf.read_robotmia_export("2024-01-01", "2024-01-01", where=where, api_secret=SECRET,
                                      project_timezone="Europe/Paris", base_url=srv.url)  # fmt: skip
        assert len(got) == 1


def test_read_export_file_where(tmp_path: Path) -> None:
    path = _write(ROWS, tmp_path / "e.jsonl")
    df = rf.read_export_file(path, project_timezone="UTC", where='"x" in properties["t"]')
    assert df["properties.n"].tolist() == list(range(1, 48, 2))
    # the filter may use columns that are not returned
    df = rf.read_export_file(path, project_timezone="UTC", columns=["event"],
                             where='properties["n"] >= 46')  # fmt: skip
    assert list(df.columns) == ["event"] and len(df) == 2
    with pytest.raises(WhereSyntaxError):
        rf.read_export_file(path, project_timezone="UTC", where="n >= 46")


@pytest.mark.parametrize("partition_by", [("date",), ("date", "event")])
def test_read_parquet_dataset_where(tmp_path: Path, partition_by: tuple[str, ...]) -> None:
    rows = [{**r, "event": ["a", "b"][i % 3 == 0]} for i, r in enumerate(ROWS)]
    with ExportServer(rows, api_secret=SECRET, project_timezone="America/New_York") as srv:
        rf.export_to_parquet(tmp_path / "ds", "2024-01-01", "2024-01-03", api_secret=SECRET,
                             project_timezone="America/New_York", base_url=srv.url,
                             partition_by=partition_by)  # fmt: skip
    where = 'event["$time"] >= datetime("2024-01-02T00:00:00") and properties["os"] == "Linux"'
    expected = sorted(
        r["properties"]["$insert_id"]
        for r in rows
        if matches(where, r, project_timezone="America/New_York")
    )
    table = rf.read_parquet_dataset(tmp_path / "ds", where=where, return_type="arrow")
    assert sorted(table.column("properties.$insert_id").to_pylist()) == expected
    # the dataset records its timezone; an explicit one wins
    other = rf.read_parquet_dataset(tmp_path / "ds", where=where, project_timezone="Asia/Tokyo",
                                    return_type="arrow")  # fmt: skip
    assert other.num_rows != table.num_rows
    narrow = rf.read_parquet_dataset(tmp_path / "ds", where='"x" in properties["t"]',
                                     columns=["event"], event=["a"], return_type="arrow")  # fmt: skip
    assert narrow.column_names == ["event"]
    assert narrow.num_rows == sum(1 for i, r in enumerate(rows) if i % 2 and i % 3)
