"""Tables for settlement and payouts.

``payout_accounts`` holds where a merchant's payouts go, one bank account per (merchant,
currency): the rail's reference, the routing number and the last four digits of the account
number. The account number itself is never stored.

``payouts`` holds each payout and links its transfers: ``transfer_id`` (merchant → clearing,
at creation) and ``settlement_transfer_id`` (clearing → external funding when paid, clearing
→ merchant when failed). ``settled_at`` is when the rail answered; the reconciliation reads
a payout's status at any instant from it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["payout_accounts", "payouts"]

payout_accounts = Table(
    "payout_accounts",
    metadata,
    Column("id", String(40), primary_key=True, comment="ba_"),
    Column("livemode", Boolean, nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    # The rail's reference: a keyed hash of the bank details, never the account number.
    Column("reference", String(80), nullable=False),
    Column("routing_number", String(9), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("holder_name", String(200), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    UniqueConstraint("merchant_id", "currency", name="uq_payout_accounts_merchant_currency"),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", String(40), primary_key=True, comment="po_"),
    Column("livemode", Boolean, nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("payout_account_id", String(40), ForeignKey("payout_accounts.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    Column("destination", String(80), nullable=False),
    Column("destination_last4", String(4), nullable=False),
    Column("description", String(500), nullable=True),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    Column("settlement_transfer_id", String(40), ForeignKey("transfers.id"), nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("settled_at", Instant(), nullable=True),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('pending', 'paid', 'failed')", name="status_known"),
    CheckConstraint(
        "(status = 'pending') = (settled_at IS NULL AND settlement_transfer_id IS NULL)",
        name="settled_when_not_pending",
    ),
    CheckConstraint("(status = 'failed') = (failure_code IS NOT NULL)", name="failure_code"),
)
Index("ix_payouts_status", payouts.c.status, payouts.c.id)
