"""The --where language and sort keys."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp.errors import UsageError
from gitexp.query import compile_where, lookup, parse_duration, parse_path, parse_since, sort_key

RECORD = {
    "name": "train",
    "status": "failed",
    "tags": ["best", "sweep"],
    "message": None,
    "params": {"lr": 0.01, "seed": 1, "opt": "adam", "amp": True},
    "metrics": {"val_acc": {"last": 0.95, "max": 0.96, "min": 0.5}, "train/loss": {"last": 0.1}},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("metrics.val_acc.max > 0.9 and params.lr <= 0.01", True),
        ("metrics.val_acc.max > 0.99 or params.lr < 0.001", False),
        ("status in [failed, crashed]", True),
        ("status not in [failed, crashed]", False),
        ("params.seed exists", True),
        ("not params.missing exists", True),
        ("tags == best", True),
        ("tags == nope", False),
        ("tags != nope", True),
        ("metrics.val_acc > 0.9", True),  # a metric's summary compares its last value
        ('metrics."train/loss" < 0.2', True),
        ("name =~ '^tr'", True),
        ("params.lr = 1e-2", True),
        ("params.opt == 'adam' and params.amp == true", True),
        ("params.missing > 1", False),
        ("params.missing != 1", False),
        ("params.opt > 1", False),  # a string never orders against a number
        ("message == null", True),
        ("not (status == failed and name == train)", False),
        ("((params.seed == 1))", True),
    ],
)
def test_where_expressions(expression: str, expected: bool) -> None:
    assert compile_where(expression)(RECORD) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("metrics.val_acc >", "expected a value (a number, a quoted string, true, false or null) at column 18, found the end"),  # noqa: E501
        ("a >> 1", "expected a value (a number, a quoted string, true, false or null) at column 4, found '>'"),  # noqa: E501
        ("x in 3", "expected '[' to start a list at column 6, found '3'"),
        ("(a == 1", "expected ')' at column 8, found the end"),
        ("and", "expected a field name such as params.lr or metrics.loss.min at column 1, found 'and'"),  # noqa: E501
        ("a $ 1", "unexpected '$' at column 3"),
        ("a == 1 b", "expected the end of the expression at column 8, found 'b'"),
        ("name =~ '('", "bad regular expression"),
    ],
)  # fmt: skip
def test_malformed_expressions_say_where(expression: str, message: str) -> None:
    with pytest.raises(UsageError, match=r"^invalid --where expression: ") as raised:
        compile_where(expression)
    assert message in str(raised.value)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(UsageError, match="nested deeper"):
        compile_where("(" * 500 + "a == 1" + ")" * 500)
    with pytest.raises(UsageError, match="nested deeper"):
        compile_where("not " * 500 + "a exists")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_either_compiles_or_raises_query_error(text: str) -> None:
    try:
        predicate = compile_where(text)
    except UsageError as exc:
        assert "\n" not in str(exc).strip() or "\n" in text
        return
    predicate(RECORD)
    predicate({})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["params.lr", "<", "0.1", "and", "or", "not", "(", ")", "exists", "in", "[", "]", ",",
             "status", "==", "'x'", "metrics.loss", ">=", "true"]
        ),
        max_size=12,
    )
)  # fmt: skip
def test_token_soup_never_crashes(tokens: list[str]) -> None:
    with contextlib.suppress(UsageError):
        compile_where(" ".join(tokens))(RECORD)


def test_paths_and_lookup() -> None:
    assert parse_path('metrics."train/loss".min') == ["metrics", "train/loss", "min"]
    assert lookup(RECORD, ["params", "lr"]) == 0.01
    assert lookup(RECORD, ["metrics", "val_acc"]) == 0.95


def test_sort_key_puts_numbers_then_strings_then_missing() -> None:
    records = [{"params": {"lr": "x"}}, {}, {"params": {"lr": 0.5}}, {"params": {"lr": 0.1}}]
    ordered = sorted(records, key=sort_key(["params", "lr"]))
    assert [r.get("params", {}).get("lr") for r in ordered] == [0.1, 0.5, "x", None]


def test_since() -> None:
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    assert parse_since("2d", now) == now.timestamp() - 2 * 86400
    assert parse_since("90m", now) == now.timestamp() - 5400
    assert parse_since("2026-11-27T11:00:00+00:00", now) == now.timestamp() - 3600
    with pytest.raises(UsageError, match="invalid --since 'soon'"):
        parse_since("soon", now)


def test_parse_duration_is_the_one_grammar() -> None:
    day = 86400
    assert parse_duration("0", "--older-than") == 0
    assert parse_duration("30d", "--older-than") == 30 * day
    assert parse_duration("12h", "--older-than") == 12 * 3600
    assert parse_duration("2w", "--older-than") == 14 * day
    assert parse_duration("90m", "--older-than") == 90 * 60
    assert parse_duration(" 45s ", "--older-than") == 45
    assert parse_duration("1.5d", "--older-than") == 1.5 * day  # --since took it, gc did not
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    assert parse_since("1.5d", now) == now.timestamp() - 1.5 * day
    assert parse_since("0", now) == now.timestamp()
    for bad in ("", "30", "-1d", "3y", "d", "0.0"):
        with pytest.raises(UsageError) as caught:
            parse_duration(bad, "--older-than")
        assert str(caught.value) == (
            f"invalid --older-than '{bad}': use a duration (45s, 90m, 12h, 2d, 1w)"
        )
