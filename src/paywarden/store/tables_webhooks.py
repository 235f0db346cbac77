"""Tables for webhook endpoints, the event index, deliveries and attempts.

The outbox (``events``, in schema.py) is fanned out by :mod:`paywarden.services.webhooks`:
each event not yet dispatched (``events.dispatched_at`` null) gets its owners written to
``event_owners`` (who may list it and whose endpoints receive it) and one
``webhook_deliveries`` row per matching endpoint, in one transaction, then is marked
dispatched. The unique (event, endpoint) pair makes a second fan-out of the same event a
no-op.

A delivery is ``pending`` until a 2xx (``delivered``), until its retry window closes
(``dead``), or until its endpoint is deleted (``canceled``). A worker claims a due pending
delivery by setting ``lease_until`` and ``lease_token``; a worker killed mid-delivery simply
lets its lease lapse and another claims the row again (at-least-once). Every POST is
recorded in ``webhook_attempts``.
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
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = [
    "DELIVERY_STATUSES",
    "ENDPOINT_FORMATS",
    "OWNER_TYPES",
    "event_owners",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
]

ENDPOINT_FORMATS = ("standard", "acp")
OWNER_TYPES = ("admin", "user", "merchant", "platform")
DELIVERY_STATUSES = ("pending", "delivered", "dead", "canceled")
URL_LENGTH_MAX = 2048
RESPONSE_EXCERPT_CHARS_MAX = 1024

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True, comment="whe_"),
    Column("livemode", Boolean, nullable=False),
    Column("owner_type", String(16), nullable=False),
    # usr_/mer_/plt_ id; null for an admin endpoint (which may receive every event).
    Column("owner_id", String(40), nullable=True),
    Column("url", String(URL_LENGTH_MAX), nullable=False),
    Column("description", String(500), nullable=True),
    Column("event_types", JSON, nullable=False),  # a list of types, or ["*"]
    Column("format", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    # pws1 envelopes (paywarden.trust.webhook_signing), never the secret in clear.
    Column("secret_sealed", Text, nullable=False),
    Column("secret_hint", String(24), nullable=False),
    Column("previous_secret_sealed", Text, nullable=True),
    Column("previous_secret_expires_at", Instant(), nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    Column("deleted_at", Instant(), nullable=True),
    CheckConstraint("format IN ('standard', 'acp')", name="format_known"),
    CheckConstraint("status IN ('enabled', 'disabled', 'deleted')", name="status_known"),
    CheckConstraint(
        "owner_type IN ('admin', 'user', 'merchant', 'platform')", name="owner_type_known"
    ),
)
Index(
    "ix_webhook_endpoints_owner",
    webhook_endpoints.c.livemode,
    webhook_endpoints.c.owner_id,
)

event_owners = Table(
    "event_owners",
    metadata,
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False),
    Column("owner_id", String(40), nullable=False),
    PrimaryKeyConstraint("owner_id", "event_id", name="pk_event_owners"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(40), primary_key=True, comment="whd_"),
    Column("livemode", Boolean, nullable=False),
    Column("event_id", String(40), ForeignKey("events.id"), nullable=False, index=True),
    Column(
        "endpoint_id", String(40), ForeignKey("webhook_endpoints.id"), nullable=False, index=True
    ),
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("next_attempt_at", Instant(), nullable=True),
    # After this instant a failure dead-letters the delivery (three days by default).
    Column("retry_until", Instant(), nullable=False),
    Column("lease_until", Instant(), nullable=True),
    Column("lease_token", String(40), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    Column("delivered_at", Instant(), nullable=True),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
    CheckConstraint("status IN ('pending', 'delivered', 'dead', 'canceled')", name="status_known"),
    CheckConstraint("attempt_count >= 0", name="attempt_count_not_negative"),
)
# Workers look for pending deliveries that are due.
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.status,
    webhook_deliveries.c.next_attempt_at,
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "delivery_id",
        String(40),
        ForeignKey("webhook_deliveries.id"),
        nullable=False,
        index=True,
    ),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Instant(), nullable=False),
    Column("url", String(URL_LENGTH_MAX), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("outcome", String(16), nullable=False),
    CheckConstraint("outcome IN ('delivered', 'failed', 'dead')", name="outcome_known"),
)
