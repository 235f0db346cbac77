"""Tables for refund requests: an agent asks, for its user, that an order be refunded to the
wallet that paid; the merchant approves (the refund happens) or declines."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Column, ForeignKey, String, Table

from paywarden.store.schema import Instant, metadata

__all__ = ["REFUND_REQUEST_STATUSES", "refund_requests"]

REFUND_REQUEST_STATUSES = ("requested", "approved", "declined")

refund_requests = Table(
    "refund_requests",
    metadata,
    Column("id", String(40), primary_key=True, comment="rfr_"),
    Column("livemode", Boolean, nullable=False),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False, index=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("amount", BigInteger, nullable=True, comment="None: all that remains refundable"),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("refund_id", String(40), nullable=True, comment="ref_ once approved"),
    Column("created_at", Instant(), nullable=False),
    Column("decided_at", Instant(), nullable=True),
    CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('requested', 'approved', 'declined')", name="status_known"),
)
