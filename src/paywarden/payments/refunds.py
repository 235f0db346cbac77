"""Refunds: money captured from a hold goes back to the payer, never more than captured.

A refund reverses part of a capture: the destination gives back the refund minus its share
of the platform's fee, and the fee account gives back that share. The fee share is computed
on the running total (``fee * refunded / captured``, rounded down), so partial refunds that
add up to the whole capture return exactly the whole fee, whatever the split.
"""

from __future__ import annotations

from dataclasses import replace

from paywarden.kernel.errors import Conflict, Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.payments.holds import Hold, HoldStatus
from paywarden.payments.ledger import Posting

__all__ = ["refund_postings", "require_captured"]


def require_captured(hold: Hold) -> None:
    """Only a captured (posted) hold has anything to refund."""
    if hold.status is not HoldStatus.POSTED:
        raise Conflict(
            f"hold {hold.id} is {hold.status.value}: only a captured hold can be refunded",
            code="hold_not_captured",
            param="$.hold",
        )


def refund_postings(hold: Hold, amount: int, fee_account_id: str) -> tuple[Hold, list[Posting]]:
    """The hold after refunding ``amount``, and the refund transfer's postings."""
    require_captured(hold)
    if amount > hold.refundable_amount:
        raise Unprocessable(
            f"cannot refund {amount}: {hold.refundable_amount} of the capture remains refundable",
            code="refund_exceeds_captured",
            param="$.amount",
        )
    refunded_after = hold.refunded_amount + amount
    fee_refunded_after = hold.fee_amount * refunded_after // hold.captured_amount
    fee_share = fee_refunded_after - hold.fee_refunded
    invariant(0 <= fee_share <= amount, "the fee share lies within the refund")
    postings = [Posting(hold.source_account_id, amount, hold.currency)]
    if amount - fee_share:
        postings.append(Posting(hold.destination_account_id, -(amount - fee_share), hold.currency))
    if fee_share:
        postings.append(Posting(fee_account_id, -fee_share, hold.currency))
    after = replace(hold, refunded_amount=refunded_after, fee_refunded=fee_refunded_after)
    return after, postings
