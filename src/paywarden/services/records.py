"""The objects services return, and their one wire form.

The wire form is shared by the HTTP API, the outbox events and the CLI, so it lives here,
next to the records, rather than in any one entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paywarden.kernel.clock import rfc3339
from paywarden.payments.holds import Hold
from paywarden.payments.ledger import Account, Posting

__all__ = [
    "ApiKeyRecord",
    "HoldView",
    "MerchantRecord",
    "Page",
    "RefundRecord",
    "TopUpRecord",
    "TransferRecord",
    "UserRecord",
    "wire",
]


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    livemode: bool
    email: str
    name: str
    created_at: datetime
    wallets: Sequence[Account] = ()


@dataclass(frozen=True, slots=True)
class MerchantRecord:
    id: str
    livemode: bool
    name: str
    category: str
    currency: str
    fee_bps: int
    created_at: datetime
    account: Account | None = None


@dataclass(frozen=True, slots=True)
class TransferRecord:
    id: str
    livemode: bool
    kind: str
    currency: str
    amount: int
    source_account_id: str
    destination_account_id: str
    created_at: datetime
    postings: Sequence[Posting] = ()
    hold_id: str | None = None
    refund_id: str | None = None
    top_up_id: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRecord:
    id: str
    livemode: bool
    hold_id: str
    currency: str
    amount: int
    reason: str | None
    transfer_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TopUpRecord:
    id: str
    livemode: bool
    account_id: str
    currency: str
    amount: int
    status: str
    failure_code: str | None
    card_brand: str
    card_last4: str
    transfer_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    livemode: bool
    principal_type: str
    principal_id: str | None
    secret_hint: str
    api_version: str
    created_at: datetime
    revoked_at: datetime | None = None
    secret: str | None = None  # only on creation: shown once, never stored


@dataclass(frozen=True, slots=True)
class HoldView:
    hold: Hold
    created_at: datetime
    capture_transfer_id: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[Any]
    has_more: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _account(account: Account) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": account.id,
        "object": "account",
        "livemode": account.livemode,
        "kind": account.kind.value,
        "currency": account.currency,
        "owner": account.owner_id,
        "non_negative": account.non_negative,
        "balance": {
            "posted": account.posted,
            "pending": account.pending_out,
            "available": account.available,
        },
    }
    if account.created_at is not None:
        body["created"] = rfc3339(account.created_at)
    return body


def wire(item: Any) -> dict[str, Any]:
    """The JSON object for a record, in the shape every client sees."""
    if isinstance(item, Account):
        return _account(item)
    if isinstance(item, UserRecord):
        return {
            "id": item.id,
            "object": "user",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "email": item.email,
            "name": item.name,
            "wallets": [_account(account) for account in item.wallets],
        }
    if isinstance(item, MerchantRecord):
        return {
            "id": item.id,
            "object": "merchant",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "name": item.name,
            "category": item.category,
            "currency": item.currency,
            "fee_bps": item.fee_bps,
            "account": _account(item.account) if item.account else None,
        }
    if isinstance(item, TransferRecord):
        return {
            "id": item.id,
            "object": "transfer",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "kind": item.kind,
            "amount": item.amount,
            "currency": item.currency,
            "source": item.source_account_id,
            "destination": item.destination_account_id,
            "hold": item.hold_id,
            "refund": item.refund_id,
            "top_up": item.top_up_id,
            "description": item.description,
            "postings": [
                {"account": p.account_id, "amount": p.amount, "currency": p.currency}
                for p in item.postings
            ],
        }
    if isinstance(item, HoldView):
        hold = item.hold
        return {
            "id": hold.id,
            "object": "hold",
            "livemode": hold.livemode,
            "created": rfc3339(item.created_at),
            "status": hold.status.value,
            "amount": hold.amount,
            "currency": hold.currency,
            "source": hold.source_account_id,
            "destination": hold.destination_account_id,
            "amount_captured": hold.captured_amount,
            "amount_refunded": hold.refunded_amount,
            "fee_amount": hold.fee_amount,
            "expires_at": rfc3339(hold.expires_at),
            "capture_transfer": item.capture_transfer_id,
            "description": item.description,
        }
    if isinstance(item, RefundRecord):
        return {
            "id": item.id,
            "object": "refund",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "hold": item.hold_id,
            "amount": item.amount,
            "currency": item.currency,
            "reason": item.reason,
            "transfer": item.transfer_id,
        }
    if isinstance(item, TopUpRecord):
        return {
            "id": item.id,
            "object": "top_up",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "account": item.account_id,
            "amount": item.amount,
            "currency": item.currency,
            "status": item.status,
            "failure_code": item.failure_code,
            "card": {"brand": item.card_brand, "last4": item.card_last4},
            "transfer": item.transfer_id,
        }
    if isinstance(item, ApiKeyRecord):
        body = {
            "id": item.id,
            "object": "api_key",
            "livemode": item.livemode,
            "created": rfc3339(item.created_at),
            "principal_type": item.principal_type,
            "principal": item.principal_id,
            "secret_hint": item.secret_hint,
            "api_version": item.api_version,
            "revoked": rfc3339(item.revoked_at) if item.revoked_at else None,
        }
        if item.secret is not None:
            body["secret"] = item.secret
        return body
    raise TypeError(f"no wire form for {type(item).__name__}")
