"""Two-phase transfers: a hold reserves money, then is captured, voided or expires.

A hold moves nothing when it is placed: it reserves ``amount`` on the source account
(``pending_out``), so the money stays the payer's but can no longer be spent twice. Then
exactly one of these happens, once:

- **capture** posts a transfer of any amount up to the hold (in full or in part) from the
  source to the destination, with the platform's fee split off to the fee account, and
  releases the whole reservation;
- **void** releases the reservation and moves nothing;
- **expire** does the same as void when the deadline has passed without a capture.

Afterwards the captured amount can be refunded, in full or in part, as often as wanted,
but never more than was captured in total (:mod:`paywarden.payments.refunds`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from paywarden.kernel.errors import Conflict, Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.payments.ledger import Posting

__all__ = [
    "Hold",
    "HoldStatus",
    "capture_postings",
    "check_capturable",
    "expire",
    "fee_for",
    "is_expired",
    "void",
]

FEE_BPS_MAX = 10_000


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    livemode: bool
    source_account_id: str
    destination_account_id: str
    currency: str
    amount: int
    status: HoldStatus
    expires_at: datetime
    captured_amount: int = 0
    refunded_amount: int = 0
    fee_amount: int = 0
    fee_refunded: int = 0

    @property
    def refundable_amount(self) -> int:
        return self.captured_amount - self.refunded_amount


def fee_for(amount: int, fee_bps: int) -> int:
    """The platform's fee in basis points, rounded down in the merchant's favour."""
    invariant(0 <= fee_bps <= FEE_BPS_MAX, "fee_bps is between 0 and 10000")
    return amount * fee_bps // FEE_BPS_MAX


def check_capturable(hold: Hold, amount: int, now: datetime) -> None:
    """Raise unless ``hold`` can be captured for ``amount`` at ``now``."""
    _require_pending(hold, now, "captured")
    if amount > hold.amount:
        raise Unprocessable(
            f"cannot capture {amount}: the hold is for {hold.amount}",
            code="amount_exceeds_hold",
            param="$.amount",
        )


def capture_postings(
    hold: Hold, amount: int, fee_bps: int, fee_account_id: str
) -> tuple[Hold, list[Posting]]:
    """The posted hold and the capture transfer's postings (source → destination + fee)."""
    invariant(hold.status is HoldStatus.PENDING, "only a pending hold is captured")
    invariant(0 < amount <= hold.amount, "capture within the hold")
    fee = fee_for(amount, fee_bps)
    postings = [
        Posting(hold.source_account_id, -amount, hold.currency),
        Posting(hold.destination_account_id, amount - fee, hold.currency),
    ]
    if fee:
        postings.append(Posting(fee_account_id, fee, hold.currency))
    if amount == fee:  # a 100 % fee leaves the merchant nothing: no zero posting
        postings.pop(1)
    captured = replace(hold, status=HoldStatus.POSTED, captured_amount=amount, fee_amount=fee)
    return captured, postings


def void(hold: Hold, now: datetime) -> Hold:
    _require_pending(hold, now, "voided")
    return replace(hold, status=HoldStatus.VOIDED)


def expire(hold: Hold, now: datetime) -> Hold:
    """Expire a pending hold whose deadline has passed."""
    invariant(hold.status is HoldStatus.PENDING, "only a pending hold expires")
    invariant(now > hold.expires_at, "a hold expires only after its deadline")
    return replace(hold, status=HoldStatus.EXPIRED)


def is_expired(hold: Hold, now: datetime) -> bool:
    """A hold's ``expires_at`` is its last valid instant."""
    return hold.status is HoldStatus.PENDING and now > hold.expires_at


def _require_pending(hold: Hold, now: datetime, verb: str) -> None:
    if hold.status is HoldStatus.PENDING and is_expired(hold, now):
        raise Conflict(
            f"hold {hold.id} expired at its deadline and can no longer be {verb}",
            code="hold_expired",
        )
    if hold.status is not HoldStatus.PENDING:
        raise Conflict(
            f"hold {hold.id} is {hold.status.value} and can no longer be {verb}",
            code=f"hold_{hold.status.value}",
        )
