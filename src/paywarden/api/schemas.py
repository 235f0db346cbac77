"""Request bodies: their shape (names, types, no unknown fields) and their documentation.

Amounts and currencies are typed loosely here on purpose: the services check them with the
kernel's parsers, so every entry point (HTTP, SDK, CLI) answers the same precise code
(``invalid_amount``, ``unknown_currency``) rather than a generic type error.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, WithJsonSchema

__all__ = [
    "AmountField",
    "CardIn",
    "CurrencyField",
    "Empty",
    "HoldCapture",
    "HoldCreate",
    "MerchantCreate",
    "RefundCreate",
    "TopUpCreate",
    "TransferCreate",
    "UserCreate",
    "WalletCreate",
]

AmountField = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": 999_999_999_999_999,
            "description": "minor units of the currency (cents for usd, yen for jpy)",
        }
    ),
]
CurrencyField = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z]{3}$",
            "description": "ISO 4217 code, lowercase on output (usd)",
        }
    ),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Empty(Body):
    pass


class UserCreate(Body):
    email: StrictStr = Field(max_length=320)
    name: StrictStr = Field(max_length=200)
    currency: CurrencyField = Field(description="currency of the user's first wallet")


class WalletCreate(Body):
    currency: CurrencyField


class MerchantCreate(Body):
    name: StrictStr = Field(max_length=200)
    category: StrictStr = Field(max_length=100, description="for example coffee, grocery")
    currency: CurrencyField
    fee_bps: StrictInt = Field(0, description="platform fee in basis points (0 to 10000)")


class CardIn(Body):
    number: StrictStr = Field(max_length=32, description="card number; never stored")
    exp_month: StrictInt
    exp_year: StrictInt
    cvc: StrictStr | None = Field(None, max_length=4, description="checked, never stored")


class TopUpCreate(Body):
    amount: AmountField
    currency: CurrencyField
    card: CardIn
    account: StrictStr | None = Field(
        None, description="wallet to credit; a user key defaults to its wallet in currency"
    )


class HoldCreate(Body):
    destination: StrictStr = Field(description="merchant id or merchant account id")
    amount: AmountField
    currency: CurrencyField
    source: StrictStr | None = Field(None, description="payer account; defaults to the wallet")
    expires_in_s: Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 1})] = Field(
        None, description="seconds until the hold expires uncaptured (default 7 days)"
    )
    description: StrictStr | None = Field(None, max_length=500)


class HoldCapture(Body):
    amount: AmountField = Field(None, description="defaults to the whole hold")


class RefundCreate(Body):
    hold: StrictStr = Field(description="the captured hold to refund")
    amount: AmountField = Field(None, description="defaults to all that remains refundable")
    reason: StrictStr | None = Field(None, max_length=64)


class TransferCreate(Body):
    destination: StrictStr = Field(description="account, user or merchant id")
    amount: AmountField
    currency: CurrencyField
    source: StrictStr | None = None
    description: StrictStr | None = Field(None, max_length=500)
