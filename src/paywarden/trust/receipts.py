"""Signed payment receipts, shaped after AP2's Payment Receipt (AP2 v0.2).

A receipt says how a payment ended, and binds that to exactly what was authorized:

- ``status`` is ``Success`` or ``Error``; ``iss`` the issuing platform; ``iat`` Unix seconds;
- ``reference`` is the base64url SHA-256 (the way AP2 computes ``sd_hash``) of the RFC 8785
  canonical JSON of the authorized payment ``{"amount", "currency", "payee", "mandate_id",
  "cart_hash"}``, every member always present (``null`` when there is no mandate or cart), so
  one payment has one reference;
- ``payment_id`` and ``psp_confirmation_id`` are the paywarden payment id (``pay_…``);
  ``network_confirmation_id`` is the ledger transfer (``txf_…``). Those two confirmations are
  present if and only if the status is ``Success``; ``error`` and ``error_description`` if and
  only if it is ``Error`` (a decline).

It travels as a compact JWS (RFC 7515, the shape :mod:`paywarden.trust.jws` signs and checks
for every platform token): header ``{"alg": "ES256", "kid", "typ":
"payment-receipt+jwt"}``, both header and claims serialised as RFC 8785 canonical JSON, and
the signature ES256 as raw ``r || s``. ``typ`` keeps a receipt from being mistaken for any
other token the platform signs (RFC 8725 §3.11).

Verification is strict, so that each token has one accepted spelling and any changed byte is
caught: canonical base64url only, the exact header members, a ``kid`` that is the RFC 7638
thumbprint of exactly one P-256 key in the given key set, a valid signature over the bytes as
received, then claims of the right types and combination, and no others. Every failure is an
:class:`InvalidRequest` with code ``receipt_invalid`` and a message that says what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.errors import InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.trust import jws
from paywarden.trust.canonical import canonical
from paywarden.trust.custody import ES256, PlatformSigner, Purpose
from paywarden.trust.keys import b64url_encode

__all__ = [
    "RECEIPT_TYP",
    "AuthorizedPayment",
    "Receipt",
    "ReceiptStatus",
    "error_receipt",
    "sign_receipt",
    "success_receipt",
    "verify_receipt",
]

RECEIPT_TYP = "payment-receipt+jwt"
TOKEN_LENGTH_MAX = 8192  # characters; a receipt is well under 1 KiB
JWKS_KEYS_MAX = jws.JWKS_KEYS_MAX


class ReceiptStatus(StrEnum):
    SUCCESS = "Success"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class AuthorizedPayment:
    """What the user authorized, which a receipt's ``reference`` commits to."""

    amount: int  # minor units
    currency: str  # lowercase ISO 4217
    payee: str  # the merchant id
    mandate_id: str | None
    cart_hash: str | None

    def canonical_json(self) -> bytes:
        invariant(
            isinstance(self.amount, int) and not isinstance(self.amount, bool),
            "an amount is an integer of minor units",
        )
        invariant(self.amount > 0, "an authorized amount is positive")
        invariant(
            len(self.currency) == 3 and self.currency.isascii() and self.currency.islower(),
            "currency is lowercase ISO 4217",
        )
        return canonical(
            {
                "amount": self.amount,
                "currency": self.currency,
                "payee": self.payee,
                "mandate_id": self.mandate_id,
                "cart_hash": self.cart_hash,
            }
        )

    def reference(self) -> str:
        return b64url_encode(hashlib.sha256(self.canonical_json()).digest())


@dataclass(frozen=True, slots=True)
class Receipt:
    """A receipt's claims. Build one with :func:`success_receipt` or :func:`error_receipt`."""

    status: ReceiptStatus
    iss: str
    iat: int
    reference: str
    payment_id: str
    psp_confirmation_id: str | None = None
    network_confirmation_id: str | None = None
    error: str | None = None
    error_description: str | None = None

    def claims(self) -> dict[str, Any]:
        """The JSON claims, absent members omitted (AP2 has no nulls)."""
        claims: dict[str, Any] = {
            "status": self.status.value,
            "iss": self.iss,
            "iat": self.iat,
            "reference": self.reference,
            "payment_id": self.payment_id,
            "psp_confirmation_id": self.psp_confirmation_id,
            "network_confirmation_id": self.network_confirmation_id,
            "error": self.error,
            "error_description": self.error_description,
        }
        return {name: value for name, value in claims.items() if value is not None}


def success_receipt(
    *, issuer: str, now: datetime, authorized: AuthorizedPayment, payment_id: str, transfer_id: str
) -> Receipt:
    """The receipt of a payment that went through: ``transfer_id`` is its ledger transfer."""
    return _checked(
        Receipt(
            status=ReceiptStatus.SUCCESS,
            iss=issuer,
            iat=_unix_seconds(now),
            reference=authorized.reference(),
            payment_id=payment_id,
            psp_confirmation_id=payment_id,
            network_confirmation_id=transfer_id,
        )
    )


def error_receipt(
    *,
    issuer: str,
    now: datetime,
    authorized: AuthorizedPayment,
    payment_id: str,
    error: str,
    error_description: str,
) -> Receipt:
    """The receipt of a declined payment, with its machine-readable code and a sentence."""
    return _checked(
        Receipt(
            status=ReceiptStatus.ERROR,
            iss=issuer,
            iat=_unix_seconds(now),
            reference=authorized.reference(),
            payment_id=payment_id,
            error=error,
            error_description=error_description,
        )
    )


def sign_receipt(receipt: Receipt, signer: PlatformSigner) -> str:
    """The receipt as a compact JWS signed by the platform's active receipt key."""
    invariant(signer.purpose == Purpose.RECEIPT, f"a {signer.purpose} key signs no receipts")
    invariant(signer.alg == ES256, "receipts are signed with ES256")
    _checked(receipt)
    return jws.sign(_PROFILE, receipt.claims(), signer)


def verify_receipt(token: str, jwks: Mapping[str, Any]) -> Receipt:
    """Check a receipt against a JWK set (``{"keys": [...]}``) and return its claims."""
    _kid, claims = jws.verify(_PROFILE, token, jwks)
    return _checked(_receipt_from_claims(claims))


# --- helpers -----------------------------------------------------------------------------


def _unix_seconds(now: datetime) -> int:
    return int(ensure_utc(now).timestamp())


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(f"receipt invalid: {message}", code="receipt_invalid")


_PROFILE = jws.Profile(
    typ=RECEIPT_TYP,
    noun="receipt",
    length_max=TOKEN_LENGTH_MAX,
    malformed=_invalid,
    untrusted=_invalid,
)


_STRING_CLAIMS = (
    "iss",
    "reference",
    "payment_id",
    "psp_confirmation_id",
    "network_confirmation_id",
    "error",
    "error_description",
)


def _receipt_from_claims(claims: Mapping[str, Any]) -> Receipt:
    unknown = set(claims) - {"status", "iat", *_STRING_CLAIMS}
    if unknown:
        raise _invalid(f"unknown claims {sorted(unknown)}")
    for name in _STRING_CLAIMS:
        if name in claims and not isinstance(claims[name], str):
            raise _invalid(f"claim {name!r} must be a string")
    iat = claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat < 0:
        raise _invalid("claim 'iat' must be a non-negative integer")
    status = claims.get("status")
    if status not in (ReceiptStatus.SUCCESS.value, ReceiptStatus.ERROR.value):
        raise _invalid("claim 'status' must be 'Success' or 'Error'")
    for name in ("iss", "reference", "payment_id"):
        if name not in claims:
            raise _invalid(f"claim {name!r} is required")
    return Receipt(
        status=ReceiptStatus(status),
        iss=claims["iss"],
        iat=iat,
        reference=claims["reference"],
        payment_id=claims["payment_id"],
        psp_confirmation_id=claims.get("psp_confirmation_id"),
        network_confirmation_id=claims.get("network_confirmation_id"),
        error=claims.get("error"),
        error_description=claims.get("error_description"),
    )


def _checked(receipt: Receipt) -> Receipt:
    """AP2's oneOf: confirmations exactly when Success, error fields exactly when Error."""
    success = receipt.status == ReceiptStatus.SUCCESS
    confirmations = (receipt.psp_confirmation_id, receipt.network_confirmation_id)
    errors = (receipt.error, receipt.error_description)
    if success and (None in confirmations or errors != (None, None)):
        raise _invalid("a Success receipt has both confirmation ids and no error")
    if not success and (None in errors or confirmations != (None, None)):
        raise _invalid("an Error receipt has error and error_description and no confirmations")
    if not all((receipt.iss, receipt.reference, receipt.payment_id)):
        raise _invalid("iss, reference and payment_id must not be empty")
    return receipt
