"""Issue signed payment receipts (:mod:`paywarden.trust.receipts`) with the active key.

The payment service calls one of these inside the transaction that settles or declines the
payment, and hands the token to the user, the agent and the merchant::

    token = receipts.issue_receipt(
        uow, master_key, issuer="https://pay.example", payment_id=payment.id,
        authorized=AuthorizedPayment(amount, currency, merchant_id, mandate_id, cart_hash),
        transfer_id=transfer.id,
    )

Anyone verifies it offline with ``paywarden verify TOKEN --jwks URL`` against the platform's
``/.well-known/jwks.json``; rotation keeps old receipts verifying.
"""

from __future__ import annotations

from paywarden.kernel.errors import InvalidRequest
from paywarden.services import keys
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.custody import Purpose
from paywarden.trust.receipts import (
    AuthorizedPayment,
    Receipt,
    error_receipt,
    sign_receipt,
    success_receipt,
    verify_receipt,
)

__all__ = ["issue_receipt", "prefetch_signer", "verify"]


def prefetch_signer(uow: UnitOfWork) -> None:
    """Send ahead the read of the receipt key :func:`issue_receipt` will sign with (one round
    trip fewer a payment on PostgreSQL; see ``keys.prefetch_active``)."""
    keys.prefetch_active(uow, Purpose.RECEIPT)


def issue_receipt(
    uow: UnitOfWork,
    master_key: bytes,
    *,
    issuer: str,
    payment_id: str,
    authorized: AuthorizedPayment,
    transfer_id: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> str:
    """A signed receipt: ``Success`` with the ledger ``transfer_id``, or ``Error`` with the
    decline's ``error`` code and ``error_description`` (give one or the other)."""
    if (transfer_id is None) == (error is None):
        raise InvalidRequest("a receipt has a transfer (Success) or an error (Error), not both")
    now = uow.clock.now()
    receipt = (
        success_receipt(
            issuer=issuer,
            now=now,
            authorized=authorized,
            payment_id=payment_id,
            transfer_id=transfer_id,
        )
        if transfer_id is not None
        else error_receipt(
            issuer=issuer,
            now=now,
            authorized=authorized,
            payment_id=payment_id,
            error=error or "",
            error_description=error_description or "",
        )
    )
    return sign_receipt(receipt, keys.active_signer(uow, Purpose.RECEIPT, master_key))


def verify(uow: UnitOfWork, token: str) -> Receipt:
    """Verify a receipt against every key this platform still trusts."""
    return verify_receipt(token, keys.verification_keys(uow))
