"""Tables for mandates, their usage, and the payments agents make under them.

A ``mandates`` row is the authority an agent spends under; every payment and every
lifecycle change locks it ``FOR UPDATE`` first, so on PostgreSQL payments under one mandate
and its revocation are serialized by the database (SQLite's ``BEGIN IMMEDIATE`` already
serializes every writer). ``constraints`` holds the stored form of
:func:`paywarden.authorization.constraints.to_json`.

``mandate_usage`` is what was already spent: one row per (mandate, period), the period being
``str(PeriodKey)`` (``daily:2026-11-29``) or ``lifetime``; the lifetime row also carries the
instant of the last payment, which recurrence limits need.
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
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["LIFETIME", "mandate_usage", "mandates", "payments"]

LIFETIME = "lifetime"  # the mandate_usage.period of the lifetime totals
EXCERPT_LENGTH_MAX = 4000

mandates = Table(
    "mandates",
    metadata,
    Column("id", String(40), primary_key=True, comment="mnd_"),
    Column("livemode", Boolean, nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("constraints", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("consented_at", Instant(), nullable=True),
    Column("paused_at", Instant(), nullable=True),
    Column("revoked_at", Instant(), nullable=True),
    Column("ended_at", Instant(), nullable=True),
    # What the user said to the agent when asking; shown on the consent page, then dropped.
    Column("conversation_excerpt", Text, nullable=True),
    Column("excerpt_expires_at", Instant(), nullable=True),
    CheckConstraint(
        "status IN ('pending_consent', 'active', 'paused', 'revoked', 'expired', 'exhausted')",
        name="status_known",
    ),
    CheckConstraint("revision >= 1", name="revision_positive"),
)

mandate_usage = Table(
    "mandate_usage",
    metadata,
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False),
    Column("period", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_payment_at", Instant(), nullable=True),
    PrimaryKeyConstraint("mandate_id", "period", name="pk_mandate_usage"),
    CheckConstraint("amount >= 0 AND count >= 0", name="usage_not_negative"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", String(40), primary_key=True, comment="pay_"),
    Column("livemode", Boolean, nullable=False),
    # (mandate_id, created_at) and (agent_id, created_at) are indexed below, for risk's history.
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("hold_id", String(40), nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("receipt", Text, nullable=True),
    Column("cart_hash", String(100), nullable=True),
    Column("created_at", Instant(), nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint(
        "status IN ('succeeded', 'declined', 'requires_confirmation')", name="status_known"
    ),
)
# The risk reads of every payment (payments.risk_inputs) scan these alone (migration 0018);
# every other read of a mandate's or an agent's payments, and their foreign keys, use them
# too (0019 dropped the (mandate_id, created_at) and (agent_id, created_at) indexes).
Index(
    "ix_payments_mandate_history",
    payments.c.mandate_id,
    payments.c.status,
    payments.c.created_at,
    payments.c.amount,
)
Index("ix_payments_agent_history", payments.c.agent_id, payments.c.status, payments.c.created_at)
