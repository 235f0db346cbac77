"""Payouts: money leaves a merchant's balance for its bank account, in two steps.

Captures are settled into the merchant's ledger account at once (its ``posted`` balance is
the merchant's balance), but a capture stays *unsettled* for a configurable settlement delay
after it lands: what it left on the account counts towards the balance and not towards what
may be paid out. The *payable* amount is the account's available balance minus what recent
captures left on it, never below zero. No money moves when the delay passes, so the ledger
is the same with or without a delay; only the payout check changes.

A payout (``po_``) moves money out in two transfers:

- at creation, the merchant's account → the clearing account (status ``pending``): the
  money is no longer the merchant's to spend, and not yet outside;
- when the rail confirms, clearing → external funding (``paid``); when the rail refuses,
  clearing → the merchant's account (``failed``): the money is back, nothing is lost.

Each step is one balanced transfer, so the ledger stays zero-sum throughout, and the
clearing account's balance is exactly the sum of pending payouts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from paywarden.kernel.errors import Conflict, Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.payments.ledger import Posting

__all__ = [
    "Payout",
    "PayoutStatus",
    "check_amount",
    "creation_postings",
    "fail",
    "pay",
    "payable",
    "settlement_postings",
]


class PayoutStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    livemode: bool
    merchant_id: str
    account_id: str  # the merchant's ledger account the money comes from
    currency: str
    amount: int
    status: PayoutStatus
    destination: str  # the rail's reference of the bank account
    created_at: datetime
    failure_code: str | None = None
    settled_at: datetime | None = None

    def status_at(self, instant: datetime) -> PayoutStatus:
        """The status as it stood at ``instant`` (pending until the rail's answer)."""
        if self.settled_at is None or self.settled_at > instant:
            return PayoutStatus.PENDING
        return self.status


def payable(available: int, unsettled: int) -> int:
    """What may be paid out: the available balance less what is still unsettled."""
    invariant(unsettled >= 0, "unsettled amounts are never negative")
    return max(0, available - unsettled)


def check_amount(amount: int, payable_amount: int) -> None:
    """A payout is positive and never more than the payable balance."""
    invariant(amount > 0, "a payout amount is positive")
    if amount > payable_amount:
        raise Unprocessable(
            f"cannot pay out {amount}: {payable_amount} is available for payout",
            code="insufficient_funds",
            param="$.amount",
        )


def creation_postings(payout: Payout, clearing_id: str) -> list[Posting]:
    """Merchant → clearing: the money is on its way."""
    return [
        Posting(payout.account_id, -payout.amount, payout.currency),
        Posting(clearing_id, payout.amount, payout.currency),
    ]


def settlement_postings(payout: Payout, clearing_id: str, funding_id: str) -> list[Posting]:
    """Where a settled payout's money goes from clearing: outside when paid, back when failed."""
    invariant(payout.status is not PayoutStatus.PENDING, "only a settled payout moves on")
    target = funding_id if payout.status is PayoutStatus.PAID else payout.account_id
    return [
        Posting(clearing_id, -payout.amount, payout.currency),
        Posting(target, payout.amount, payout.currency),
    ]


def pay(payout: Payout, now: datetime) -> Payout:
    _require_pending(payout)
    return replace(payout, status=PayoutStatus.PAID, settled_at=now)


def fail(payout: Payout, failure_code: str, now: datetime) -> Payout:
    _require_pending(payout)
    invariant(bool(failure_code), "a failed payout names its failure")
    return replace(payout, status=PayoutStatus.FAILED, failure_code=failure_code, settled_at=now)


def _require_pending(payout: Payout) -> None:
    if payout.status is not PayoutStatus.PENDING:
        raise Conflict(
            f"payout {payout.id} is {payout.status.value} already",
            code=f"payout_{payout.status.value}",
        )
