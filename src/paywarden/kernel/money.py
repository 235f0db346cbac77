"""Money: an integer count of minor units and an ISO 4217 currency. No floats, anywhere.

Currencies are written lowercase (``usd``), as on the wire; uppercase input is accepted and
normalised. Minor-unit exponents come from the ISO 4217 table shipped beside this module
(``iso4217.json``), not from CLDR: CLDR's *display* digits differ for some currencies (it
shows ``IQD``, ``LBP`` and ``RSD`` with 0 digits where ISO says 3, 2 and 2), and amounts
must follow ISO.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from paywarden.kernel.errors import InvalidRequest

__all__ = [
    "AMOUNT_MINOR_MAX",
    "BALANCE_MINOR_MAX",
    "Currency",
    "Money",
    "currencies",
    "format_amount",
    "minor_units",
    "parse_amount",
    "parse_currency",
]

# One amount may not exceed 10^15 - 1 minor units (ten trillion dollars): far above any
# payment, and far enough below 2^63 that sums of many amounts still fit a BIGINT.
AMOUNT_MINOR_MAX = 999_999_999_999_999
# An account's balance is kept within +/- 2^62 so that one more posting can never overflow.
BALANCE_MINOR_MAX = 2**62


@dataclass(frozen=True, slots=True)
class Currency:
    code: str  # lowercase ISO 4217 alphabetic code
    numeric: str
    minor_units: int
    name: str


@cache
def currencies() -> dict[str, Currency]:
    """The ISO 4217 table, keyed by lowercase code; only currencies with a minor-unit count."""
    raw = json.loads(resources.files(__package__).joinpath("iso4217.json").read_text("utf-8"))
    table: dict[str, Currency] = {}
    for code, entry in raw["currencies"].items():
        table[code.lower()] = Currency(
            code=code.lower(),
            numeric=entry["numeric"],
            minor_units=int(entry["minor_units"]),
            name=entry["name"],
        )
    return table


def minor_units(currency: str) -> int:
    """The ISO 4217 exponent of ``currency`` (``usd`` → 2, ``jpy`` → 0, ``kwd`` → 3)."""
    return currencies()[parse_currency(currency)].minor_units


def parse_currency(value: Any, param: str = "$.currency") -> str:
    """Normalise a currency code from input, or raise ``unknown_currency``."""
    if not isinstance(value, str) or not value.isascii() or len(value) != 3:
        raise InvalidRequest(
            "currency must be a three-letter ISO 4217 code, such as usd",
            code="unknown_currency",
            param=param,
        )
    code = value.lower()
    if code not in currencies():
        raise InvalidRequest(
            f"{value!r} is not an ISO 4217 currency with minor units",
            code="unknown_currency",
            param=param,
        )
    return code


def parse_amount(value: Any, param: str = "$.amount", *, allow_zero: bool = False) -> int:
    """Validate an amount in minor units: a JSON integer, positive, at most AMOUNT_MINOR_MAX.

    ``bool`` is rejected although Python counts it as an int; floats are rejected even when
    integral (``1.0``), because on the wire a fraction or an exponent means the caller mixed
    up major and minor units.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(
            "amount must be an integer count of minor units (cents), without fraction or exponent",
            code="invalid_amount",
            param=param,
        )
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidRequest(
            "amount must be positive" if not allow_zero else "amount must not be negative",
            code="invalid_amount",
            param=param,
        )
    if value > AMOUNT_MINOR_MAX:
        raise InvalidRequest(
            f"amount must be at most {AMOUNT_MINOR_MAX} minor units",
            code="invalid_amount",
            param=param,
        )
    return value


def format_amount(amount_minor: int, currency: str) -> str:
    """A plain decimal rendering for logs and the CLI: ``format_amount(1234, "usd")`` →
    ``"12.34 USD"``. Locale-aware display belongs to the web layer."""
    exponent = minor_units(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    text = f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{text} {currency.upper()}"


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("Money.amount_minor must be an int")
        if self.currency != parse_currency(self.currency):
            raise ValueError("Money.currency must be a normalised lowercase ISO 4217 code")

    def __str__(self) -> str:
        return format_amount(self.amount_minor, self.currency)
