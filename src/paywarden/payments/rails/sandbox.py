"""The sandbox card rail, with magic test card numbers in the style people already know.

| number              | outcome                                   |
| ------------------- | ----------------------------------------- |
| 4242 4242 4242 4242 | succeeds                                  |
| 4000 0000 0000 0002 | declined: ``card_declined``               |
| 4000 0000 0000 9995 | declined: ``insufficient_funds``          |
| 4000 0000 0000 0069 | declined: ``expired_card``                |
| 4000 0000 0000 0119 | declined: ``processing_error``            |

Any other Luhn-valid number of 12 to 19 digits succeeds. A card whose expiry date lies in
the past is declined with ``expired_card`` too. The full number never leaves this module:
callers get a token, the brand and the last four digits, which is all paywarden stores.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from paywarden.kernel.errors import InvalidRequest

__all__ = ["CardResult", "authorize_card", "luhn_valid"]

_MAGIC_DECLINES = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000119": "processing_error",
}
# Brand by leading digits: (lowest prefix, highest prefix, brand), compared on equal length.
_BRANDS = (
    ("4", "4", "visa"),
    ("51", "55", "mastercard"),
    ("2221", "2720", "mastercard"),
    ("34", "34", "amex"),
    ("37", "37", "amex"),
    ("62", "62", "unionpay"),
    ("6011", "6011", "discover"),
    ("65", "65", "discover"),
)


def _brand(digits: str) -> str:
    for low, high, name in _BRANDS:
        if low <= digits[: len(low)] <= high:
            return name
    return "unknown"


@dataclass(frozen=True, slots=True)
class CardResult:
    approved: bool
    decline_code: str | None
    token: str  # tok_… derived by a keyed hash: stable for one card, reveals nothing
    brand: str
    last4: str


def luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def authorize_card(
    number: str, exp_month: int, exp_year: int, now: datetime, token_key: bytes
) -> CardResult:
    """Decide a sandbox card charge. Raises ``InvalidRequest`` for malformed card data."""
    digits = number.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and 12 <= len(digits) <= 19):
        raise InvalidRequest(
            "card number must be 12 to 19 digits",
            code="invalid_card_number",
            param="$.card.number",
        )
    if not luhn_valid(digits):
        raise InvalidRequest(
            "card number fails its check digit",
            code="invalid_card_number",
            param="$.card.number",
        )
    if not 1 <= exp_month <= 12:
        raise InvalidRequest(
            "exp_month must be 1 to 12", code="invalid_expiry_month", param="$.card.exp_month"
        )
    if not 2000 <= exp_year <= 2200:
        raise InvalidRequest(
            "exp_year must be a four-digit year",
            code="invalid_expiry_year",
            param="$.card.exp_year",
        )
    decline = _MAGIC_DECLINES.get(digits)
    if decline is None and (exp_year, exp_month) < (now.year, now.month):
        decline = "expired_card"
    digest = hmac.new(token_key, digits.encode(), hashlib.sha256).hexdigest()
    brand = _brand(digits)
    return CardResult(
        approved=decline is None,
        decline_code=decline,
        token=f"tok_{digest[:24]}",
        brand=brand,
        last4=digits[-4:],
    )
