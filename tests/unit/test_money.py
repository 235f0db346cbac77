"""Worked examples for paywarden.kernel.money and the ISO 4217 table it ships with."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.money import (
    AMOUNT_MINOR_MAX,
    Money,
    currencies,
    format_amount,
    minor_units,
    parse_amount,
    parse_currency,
)

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("jpy", 0),  # yen: no subdivision
        ("usd", 2),  # cents
        ("eur", 2),
        ("kwd", 3),  # fils: 1 dinar = 1000 fils
        ("iqd", 3),  # ISO says 3 even though CLDR displays 0
        ("bhd", 3),
        ("tnd", 3),
        ("clf", 4),  # Unidad de Fomento, a unit of account
        ("uyw", 4),  # Unidad Previsional
        ("isk", 0),
        ("krw", 0),
        ("vnd", 0),
        ("clp", 0),
        ("xof", 0),
    ],
)
def test_minor_unit_exponents(code: str, exponent: int) -> None:
    assert minor_units(code) == exponent
    # Uppercase input is normalised, so the answer is the same.
    assert minor_units(code.upper()) == exponent


def test_zero_three_and_four_digit_currencies_are_exactly_the_known_ones() -> None:
    by_exponent: dict[int, set[str]] = {}
    for code, currency in currencies().items():
        by_exponent.setdefault(currency.minor_units, set()).add(code)
    zero = {"bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "pyg"}
    zero |= {"rwf", "ugx", "uyi", "vnd", "vuv", "xaf", "xof", "xpf"}
    assert by_exponent[0] == zero
    assert by_exponent[3] == {"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"}
    assert by_exponent[4] == {"clf", "uyw"}


def test_every_entry_is_well_formed() -> None:
    table = currencies()
    assert len(table) > 150
    for code, currency in table.items():
        assert currency.code == code
        assert len(code) == 3
        assert code.isascii()
        assert code.isalpha()
        assert currency.numeric.isdigit()
        assert len(currency.numeric) == 3  # zero-padded: "008" for ALL, not "8"
        assert currency.minor_units in {0, 2, 3, 4}
        assert currency.name.strip() == currency.name != ""


def test_json_keys_are_uppercase_and_sorted() -> None:
    raw = json.loads(
        resources.files("paywarden.kernel").joinpath("iso4217.json").read_text("utf-8")
    )
    assert raw["source"].startswith("ISO 4217 list one")
    keys = list(raw["currencies"])
    assert keys == sorted(keys)
    assert all(key.isupper() and len(key) == 3 for key in keys)
    for entry in raw["currencies"].values():
        assert set(entry) == {"numeric", "minor_units", "name"}
        assert isinstance(entry["numeric"], str)
        assert type(entry["minor_units"]) is int


def test_numeric_codes_are_unique() -> None:
    # No legitimate duplicate exists in list one today: ANG (532) was withdrawn when XCG
    # (also 532) replaced it, so only XCG carries 532.
    seen: dict[str, str] = {}
    for code, currency in currencies().items():
        assert currency.numeric not in seen, (code, seen.get(currency.numeric))
        seen[currency.numeric] = code


@pytest.mark.parametrize(
    ("code", "numeric"),
    [("usd", "840"), ("eur", "978"), ("jpy", "392"), ("all", "008"), ("xcg", "532")],
)
def test_some_numeric_codes(code: str, numeric: str) -> None:
    assert currencies()[code].numeric == numeric


@pytest.mark.parametrize(
    "code",
    # Recent additions and replacements that are in list one.
    ["zwg", "ves", "ved", "mru", "stn", "sle", "xcg", "byn"],
)
def test_recent_codes_are_present(code: str) -> None:
    assert code in currencies()


@pytest.mark.parametrize(
    "code",
    # Withdrawn: replaced by a new code, or by the euro.
    ["zwl", "sll", "hrk", "ang", "mro", "std", "vef", "byr", "ltl", "lvl"],
)
def test_withdrawn_codes_are_absent(code: str) -> None:
    assert code not in currencies()


@pytest.mark.parametrize(
    "code",
    # Fund codes carry minor units and so belong in the table.
    ["clf", "uyw", "uyi", "bov", "che", "chw", "cou", "mxv", "usn"],
)
def test_fund_codes_with_minor_units_are_present(code: str) -> None:
    assert code in currencies()


# ---------------------------------------------------------------------------------------------
# parse_currency
# ---------------------------------------------------------------------------------------------


def test_parse_currency_normalises_to_lowercase() -> None:
    assert parse_currency("USD") == "usd"
    assert parse_currency("usd") == "usd"
    assert parse_currency("Jpy") == "jpy"


@pytest.mark.parametrize(
    "code",
    # Gold, SDR, "no currency" and the testing code: their minor unit is N.A., so an amount
    # in them cannot be counted in minor units.
    ["XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XBD", "XSU", "XUA", "XTS", "XXX"],
)
def test_codes_without_minor_units_are_absent_and_rejected(code: str) -> None:
    assert code.lower() not in currencies()
    with pytest.raises(InvalidRequest) as caught:
        parse_currency(code)
    assert caught.value.code == "unknown_currency"
    assert caught.value.param == "$.currency"


@pytest.mark.parametrize("value", ["us", "usdd", "", 840, None, "ÜSD", "abc", b"usd"])
def test_parse_currency_rejects(value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_currency(value)
    assert caught.value.code == "unknown_currency"
    assert caught.value.param == "$.currency"


def test_parse_currency_reports_the_given_param() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_currency("xxx", param="$.lines[0].currency")
    assert caught.value.param == "$.lines[0].currency"


# ---------------------------------------------------------------------------------------------
# parse_amount
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 1234, AMOUNT_MINOR_MAX])
def test_parse_amount_accepts(value: int) -> None:
    assert parse_amount(value) == value


def test_parse_amount_zero_only_when_allowed() -> None:
    assert parse_amount(0, allow_zero=True) == 0
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(0)
    assert caught.value.code == "invalid_amount"


@pytest.mark.parametrize(
    "value",
    [0, -1, 1.0, 1.5, True, False, "100", None, AMOUNT_MINOR_MAX + 1, 2**64],
)
@pytest.mark.parametrize("param", ["$.amount", "$.lines[2].amount"])
def test_parse_amount_rejects(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(value, param)
    assert caught.value.code == "invalid_amount"
    assert caught.value.param == param


def test_parse_amount_default_param() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(-1)
    assert caught.value.param == "$.amount"


@pytest.mark.parametrize("value", [-1, 1.0, True, AMOUNT_MINOR_MAX + 1])
def test_parse_amount_allow_zero_still_rejects(value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_amount(value, allow_zero=True)
    assert caught.value.code == "invalid_amount"


# ---------------------------------------------------------------------------------------------
# format_amount and Money
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "usd", "12.34 USD"),
        (5, "jpy", "5 JPY"),
        (-1005, "kwd", "-1.005 KWD"),
        (1, "clf", "0.0001 CLF"),
        (0, "usd", "0.00 USD"),
        (-5, "usd", "-0.05 USD"),
        (100, "USD", "1.00 USD"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


def test_money_str_and_validation() -> None:
    assert str(Money(1234, "usd")) == "12.34 USD"
    with pytest.raises(ValueError, match="lowercase"):
        Money(1234, "USD")
    with pytest.raises(TypeError):
        Money(True, "usd")
    with pytest.raises(InvalidRequest):
        Money(1, "xau")


def _parse_formatted(text: str) -> tuple[int, str]:
    """The inverse of format_amount: "-1.005 KWD" -> (-1005, "kwd")."""
    number, code = text.split(" ")
    sign = -1 if number.startswith("-") else 1
    digits = number.removeprefix("-")
    exponent = minor_units(code)
    if exponent:
        whole, fraction = digits.split(".")
        assert len(fraction) == exponent
    else:
        assert "." not in digits
        whole, fraction = digits, ""
    return sign * int(whole + fraction), code.lower()


@settings(database=None)
@given(
    amount=st.integers(min_value=-(2**70), max_value=2**70),
    currency=st.sampled_from(sorted(currencies())),
)
def test_format_amount_round_trips(amount: int, currency: str) -> None:
    assert _parse_formatted(format_amount(amount, currency)) == (amount, currency)
