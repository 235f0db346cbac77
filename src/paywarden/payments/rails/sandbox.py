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

Payouts go to US-style bank accounts: a 9-digit ABA routing number (its check digit is
verified; ``110000000`` is the sandbox bank) and an account number of 4 to 17 digits.
Registering one returns a reference, the routing number and the last four digits; the
account number itself is never returned or stored. The reference decides what the rail does
with every payout to that account, as a test bank's token would:

| account number | payouts                                    |
| -------------- | ------------------------------------------ |
| 000123456789   | paid                                       |
| 000111111116   | failed: ``no_account``                     |
| 000111111113   | failed: ``account_closed``                 |
| 000333333335   | failed: ``could_not_process``              |

Any other valid account number is paid.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from paywarden.kernel.errors import InvalidRequest

__all__ = [
    "BankAccount",
    "CardResult",
    "PayoutResult",
    "authorize_card",
    "luhn_valid",
    "register_bank_account",
    "send_payout",
]

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


# Account numbers whose payouts the sandbox refuses, and the failure code it answers.
_MAGIC_PAYOUT_FAILURES = {
    "000111111116": "no_account",
    "000111111113": "account_closed",
    "000333333335": "could_not_process",
}
_FAILING_REFERENCE = "sbx_fails_"
_ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


@dataclass(frozen=True, slots=True)
class BankAccount:
    reference: str  # what payouts are sent to; derived by a keyed hash, reveals nothing
    routing_number: str
    last4: str


@dataclass(frozen=True, slots=True)
class PayoutResult:
    paid: bool
    failure_code: str | None


def _digits(value: str, param: str, low: int, high: int, what: str) -> str:
    digits = value.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and low <= len(digits) <= high):
        size = f"{low}" if low == high else f"{low} to {high}"
        raise InvalidRequest(f"{what} must be {size} digits", code=f"invalid_{what}", param=param)
    return digits


def register_bank_account(
    routing_number: str, account_number: str, token_key: bytes
) -> BankAccount:
    """Check sandbox bank details and return what paywarden may keep of them."""
    routing = _digits(routing_number, "$.routing_number", 9, 9, "routing_number")
    checksum = sum(int(d) * w for d, w in zip(routing, _ABA_WEIGHTS, strict=True))
    if checksum % 10:
        raise InvalidRequest(
            "routing_number fails its check digit",
            code="invalid_routing_number",
            param="$.routing_number",
        )
    account = _digits(account_number, "$.account_number", 4, 17, "account_number")
    message = f"{routing}:{account}".encode()
    digest = hmac.new(token_key, message, hashlib.sha256).hexdigest()[:24]
    failure = _MAGIC_PAYOUT_FAILURES.get(account)
    reference = f"{_FAILING_REFERENCE}{failure}_{digest}" if failure else f"sbx_ba_{digest}"
    return BankAccount(reference=reference, routing_number=routing, last4=account[-4:])


def send_payout(reference: str, amount: int, currency: str) -> PayoutResult:
    """The sandbox rail's answer to a payout: decided by the account's reference alone."""
    if amount <= 0 or len(currency) != 3:
        return PayoutResult(paid=False, failure_code="could_not_process")
    if reference.startswith(_FAILING_REFERENCE):
        code = reference.removeprefix(_FAILING_REFERENCE).rpartition("_")[0]
        return PayoutResult(paid=False, failure_code=code or "could_not_process")
    return PayoutResult(paid=True, failure_code=None)
