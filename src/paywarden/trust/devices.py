"""What a device signs for its user, and the QR payment requests it scans.

**A device confirmation** is the device saying "my user, checked locally, agrees to pay
exactly this": the device's key signs the RFC 8785 canonical JSON of ::

    {"typ": "paywarden-device-confirmation/1", "amount": 450, "currency": "usd",
     "payee": "mer_…", "cart_hash": "…" or null, "nonce": "…",
     "user_verification": "voice" | "pin" | "biometric" | "none"}

The nonce is the device's (16 to 64 base64url characters, fresh for each confirmation); the
platform records it, so one signed confirmation counts once. ``user_verification`` is the
local check the device made, signed with the rest: a spoken phrase (``voice``) verifies the
user; a PIN or a biometric (:data:`STRONG_VERIFICATION`) also re-authenticates them, which a
step-up above a device's limits, or an approval above the re-authentication level, needs.

**A QR payment request** is a merchant's request rendered as text in a QR code::

    PWQR1.<base64url canonical JSON claims>.<base64url HMAC-SHA256 tag>

with claims ``{"qr", "merchant", "merchant_name", "amount" (null for a static request),
"currency", "reference", "exp" (Unix seconds or null)}``. The tag is the platform's MAC under
its instance secret, domain-separated: the platform alone issues and checks it, and a payer's
device shows what the claims say before its user confirms. A changed byte is refused.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from paywarden.kernel.errors import InvalidRequest
from paywarden.trust.canonical import canonical
from paywarden.trust.keys import PublicKey, b64url_decode, b64url_encode

__all__ = [
    "CONFIRMATION_TYPE",
    "QR_PREFIX",
    "STRONG_VERIFICATION",
    "USER_VERIFICATIONS",
    "VERIFIED",
    "Confirmation",
    "PaymentRequestClaims",
    "confirmation_bytes",
    "decode_payment_request",
    "encode_payment_request",
    "verify_confirmation",
    "verify_payment_request",
]

CONFIRMATION_TYPE = "paywarden-device-confirmation/1"
QR_PREFIX = "PWQR1"
QR_LENGTH_MAX = 2000  # characters; a request is a few hundred
USER_VERIFICATIONS = ("none", "voice", "pin", "biometric")
VERIFIED = frozenset({"voice", "pin", "biometric"})  # the user was checked at all
STRONG_VERIFICATION = frozenset({"pin", "biometric"})  # enough for a step-up
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CURRENCY = re.compile(r"[a-z]{3}")
AMOUNT_MAX = 999_999_999_999_999
_QR_MAC_CONTEXT = b"paywarden payment request v1\x00"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a device confirms: exactly these fields, signed together."""

    amount: int
    currency: str
    payee: str
    cart_hash: str | None
    nonce: str
    user_verification: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not 1 <= self.amount <= AMOUNT_MAX:
            raise InvalidRequest(
                f"amount is 1 to {AMOUNT_MAX} minor units",
                code="invalid_amount",
                param="$.confirmation.amount",
            )
        if not _CURRENCY.fullmatch(self.currency):
            raise InvalidRequest(
                "currency is a lowercase ISO 4217 code",
                code="invalid_currency",
                param="$.confirmation.currency",
            )
        if not _NONCE.fullmatch(self.nonce):
            raise InvalidRequest(
                "a confirmation nonce is 16 to 64 base64url characters",
                code="invalid_value",
                param="$.confirmation.nonce",
            )
        if self.user_verification not in USER_VERIFICATIONS:
            raise InvalidRequest(
                f"user_verification is one of {', '.join(USER_VERIFICATIONS)}",
                code="invalid_value",
                param="$.confirmation.user_verification",
            )


def confirmation_bytes(confirmation: Confirmation) -> bytes:
    """The bytes a device signs for ``confirmation``."""
    return canonical(
        {
            "typ": CONFIRMATION_TYPE,
            "amount": confirmation.amount,
            "currency": confirmation.currency,
            "payee": confirmation.payee,
            "cart_hash": confirmation.cart_hash,
            "nonce": confirmation.nonce,
            "user_verification": confirmation.user_verification,
        }
    )


def verify_confirmation(key: PublicKey, confirmation: Confirmation, signature: str) -> bool:
    """Whether ``signature`` (base64url) is ``key``'s over exactly ``confirmation``."""
    raw = _signature_bytes(signature)
    return raw is not None and key.verify(confirmation_bytes(confirmation), raw)


def _signature_bytes(text: str) -> bytes | None:
    try:
        raw = b64url_decode(text)
    except (InvalidRequest, binascii.Error, ValueError):
        return None
    return raw if b64url_encode(raw) == text else None


# --- QR payment requests ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRequestClaims:
    qr: str
    merchant: str
    merchant_name: str
    amount: int | None
    currency: str
    reference: str | None
    exp: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "qr": self.qr,
            "merchant": self.merchant,
            "merchant_name": self.merchant_name,
            "amount": self.amount,
            "currency": self.currency,
            "reference": self.reference,
            "exp": self.exp,
        }


def _mac(secret: bytes, body: str) -> str:
    tag = hmac.new(secret, _QR_MAC_CONTEXT + body.encode("ascii"), hashlib.sha256).digest()
    return b64url_encode(tag)


def encode_payment_request(claims: PaymentRequestClaims, secret: bytes) -> str:
    """The QR text for ``claims``, tagged under the platform's ``secret``."""
    body = b64url_encode(canonical(claims.to_json()))
    return f"{QR_PREFIX}.{body}.{_mac(secret, body)}"


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(
        f"not a paywarden payment request: {message}",
        code="payment_request_invalid",
        param="$.payload",
    )


def decode_payment_request(text: str) -> PaymentRequestClaims:
    """The claims of a QR text, *unchecked*: for a device to show before it confirms."""
    parts = text.split(".") if len(text) <= QR_LENGTH_MAX and text.isascii() else []
    if len(parts) != 3 or parts[0] != QR_PREFIX:
        raise _invalid(f"expected {QR_PREFIX}.<claims>.<tag>")
    try:
        claims = json.loads(b64url_decode(parts[1]))
        return PaymentRequestClaims(
            qr=str(claims["qr"]),
            merchant=str(claims["merchant"]),
            merchant_name=str(claims["merchant_name"]),
            amount=None if claims["amount"] is None else int(claims["amount"]),
            currency=str(claims["currency"]),
            reference=None if claims["reference"] is None else str(claims["reference"]),
            exp=None if claims["exp"] is None else int(claims["exp"]),
        )
    except (InvalidRequest, ValueError, KeyError, TypeError, binascii.Error):
        raise _invalid("the claims do not decode") from None


def verify_payment_request(text: str, secret: bytes) -> PaymentRequestClaims:
    """The claims of a QR text whose tag the platform's ``secret`` made; else 400."""
    claims = decode_payment_request(text)
    _prefix, body, tag = text.split(".")
    if not hmac.compare_digest(tag, _mac(secret, body)):
        raise _invalid("the platform's tag does not match")
    return claims
