"""The ACP face's use cases over the checkout service: a session seen through one merchant's
ACP base URL, and completion paid with a one-time delegated token.

:func:`complete_with_token` runs in one transaction: reserve the token (locked, checked
against this session, merchant, total and currency), complete the checkout under the token's
mandate, and spend the token only if a payment was attempted (succeeded, declined or waiting
for the user's approval). A completion that re-prices the cart (prices or stock changed) pays
nothing and leaves the token unspent; a refusal anywhere rolls everything back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.errors import NotFound, PaywardenError
from paywarden.kernel.principals import Principal
from paywarden.services import approvals, checkout, delegated
from paywarden.services.checkout import CheckoutRecord
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["complete_with_token", "session_of_merchant"]


def session_of_merchant(
    uow: UnitOfWork, principal: Principal, merchant_id: str, session_id: str
) -> CheckoutRecord:
    """The session if the principal may see it and it belongs to ``merchant_id``; else 404
    (a session is only reachable under its own merchant's base URL)."""
    record = checkout.get(uow, principal, session_id)
    if record.merchant_id != merchant_id:
        raise NotFound(f"no such checkout session: {session_id}", param="$.checkout_session")
    return record


def complete_with_token(
    uow: UnitOfWork,
    principal: Principal,
    merchant_id: str,
    session_id: str,
    *,
    token: str,
    cart_hash: str | None,
    buyer: Mapping[str, Any] | None,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig,
    approval: approvals.ApprovalPolicy,
) -> CheckoutRecord | PaywardenError:
    """The completed (or pending, declined, re-priced) session; or the token's refusal,
    returned rather than raised: nothing else was written, and its audit record is to be
    committed with the refusal response."""
    record = session_of_merchant(uow, principal, merchant_id, session_id)
    try:
        reserved = delegated.reserve(
            uow,
            principal,
            token,
            merchant_id=merchant_id,
            checkout_session_id=session_id,
            amount=record.amount_total,
            currency=record.currency,
        )
    except PaywardenError as refusal:
        if refusal.status >= 500:
            raise
        return refusal
    shown = cart_hash or record.cart_hash
    if buyer is not None and dict(buyer) != (record.buyer or {}):
        # The buyer is not in the cart; re-pricing gives the same cart under a new salt.
        before = record.cart_hash
        record = checkout.update(uow, principal, session_id, buyer=buyer, master_key=master_key)
        shown = record.cart_hash if shown == before else shown
    result = checkout.complete(
        uow,
        principal,
        session_id,
        mandate_id=reserved.mandate_id,
        cart_hash=shown,
        master_key=master_key,
        issuer=issuer,
        risk=risk,
        approval=approval,
    )
    if result.payment_id is not None and result.payment_id != record.payment_id:
        delegated.spend(uow, principal, reserved)
    return result
