"""``trust.canonical`` writes exactly the bytes of ``rfc8785`` (the reference JCS library):
on generated JSON values of every kind, including those it hands to ``rfc8785`` (floats,
integers beyond 2**53, keys beyond U+FFFF), and on the cases where a naive encoder would
differ."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.trust.canonical import canonical

KEYS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["a", "b", "\ue000", "\U0001f600", "\x7f", "\u2028", "é", "A", ""]),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(),
    st.text(),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(KEYS, inner, max_size=5),
    ),
    max_leaves=20,
)


def _reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as error:  # the reference refuses it: so must we, the same way
        return type(error)


def _ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical(value)
    except Exception as error:
        return type(error)


@settings(max_examples=500)
@given(VALUES)
def test_the_same_bytes_as_the_reference_library(value: Any) -> None:
    assert _ours(value) == _reference(value)


@pytest.mark.parametrize(
    "value",
    [
        {"\ue000": 1, "\U0001f600": 2},  # code points and UTF-16 code units order these apart
        {"b": '\x00\x1f\x7f\u2028"\\/é\U0001f600', "a": [True, False, None]},
        {"n": 2**53 - 1, "m": -(2**53) + 1},
        {"big": 2**53},  # refused, as the reference refuses it
        {"f": 1.5, "g": 1e21, "h": -0.0},
        {"t": ("x", 1)},
        {1: "a non-string key"},
    ],
)
def test_the_cases_where_a_plain_encoder_would_differ(value: Any) -> None:
    assert _ours(value) == _reference(value)
