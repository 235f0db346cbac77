"""Tables for step-up approvals.

An ``approvals`` row is the question put to the user when a payment ``requires_confirmation``:
one per payment, bound to what the user is shown. ``binding_hash`` is the SHA-256 (hex) of the
RFC 8785 canonical JSON of ``{amount, currency, payee, cart_hash, payment_id}``; an approval is
only accepted with that exact hash, and a payment whose amount or payee no longer matches it
voids the approval. ``reasons`` are the confirmation reasons of the decision (the threshold,
risk step-ups); ``reauth_required`` says the user must re-authenticate to approve.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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

__all__ = ["APPROVAL_STATUSES", "approvals"]

APPROVAL_STATUSES = ("pending", "approved", "declined", "expired", "voided")

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True, comment="apr_"),
    Column("livemode", Boolean, nullable=False),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("cart_hash", String(100), nullable=True),
    Column("binding_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("reauth_required", Boolean, nullable=False),
    Column("expires_at", Instant(), nullable=False),
    Column("decided_at", Instant(), nullable=True),
    Column("created_at", Instant(), nullable=False),
    UniqueConstraint("payment_id", name="uq_approvals_payment_id"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(
        "status IN ('pending', 'approved', 'declined', 'expired', 'voided')",
        name="status_known",
    ),
)
# The expiry sweep looks for pending approvals past their deadline.
Index("ix_approvals_status_expires", approvals.c.status, approvals.c.expires_at)
