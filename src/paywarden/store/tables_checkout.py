"""Tables for checkout sessions, orders, order refunds.

A ``checkout_sessions`` row is one priced, signed cart and where it stands: ``cart`` holds the
exact payload whose RFC 8785 canonical JSON hashes to ``cart_hash`` (see
:mod:`paywarden.commerce.cart`), ``cart_signature`` the merchant's ES256 JWS over that hash.
``items`` are the lines as the agent asked for them (re-priced on every change and on
completion), ``line_items`` and ``totals`` as priced. ``stock_reserved`` says the session
holds stock (from completion until its payment is decided). ``user_id`` is set when a payment
is made from a user's wallet: that user may then read the session.

An ``orders`` row is a paid checkout: the amounts captured and refunded (``amount_refunded``
never exceeds ``amount_total``, checked here and in code), the status in its lifecycle, and
the signed cart it was bought as. ``order_refunds`` ties each refund (``refunds.id``) to its
order, with the reason and who asked.
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
    String,
    Table,
    Text,
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["CHECKOUT_STATUSES", "ORDER_STATUSES", "checkout_sessions", "order_refunds", "orders"]

CHECKOUT_STATUSES = (
    "not_ready_for_payment",
    "ready_for_payment",
    "pending_approval",
    "completed",
    "canceled",
    "expired",
)
ORDER_STATUSES = (
    "created",
    "confirmed",
    "preparing",
    "ready_for_pickup",
    "out_for_delivery",
    "shipped",
    "completed",
    "canceled",
)


def _in(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{value}'" for value in values) + ")"


checkout_sessions = Table(
    "checkout_sessions",
    metadata,
    Column("id", String(40), primary_key=True, comment="cs_"),
    Column("livemode", Boolean, nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=True, index=True),
    Column("status", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("items", JSON, nullable=False),
    Column("line_items", JSON, nullable=False),
    Column("fulfillment_options", JSON, nullable=False),
    Column("fulfillment", JSON, nullable=True),
    Column("fulfillment_details", JSON, nullable=True),
    Column("buyer", JSON, nullable=True),
    Column("totals", JSON, nullable=False),
    Column("messages", JSON, nullable=False),
    Column("amount_total", BigInteger, nullable=False),
    Column("cart", JSON, nullable=False),
    Column("cart_hash", String(64), nullable=False),
    Column("cart_signature", Text, nullable=True),
    Column("expires_at", Instant(), nullable=False),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=True),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=True, index=True),
    Column("order_id", String(40), nullable=True),
    Column("stock_reserved", Boolean, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    CheckConstraint(_in(CHECKOUT_STATUSES), name="status_known"),
    CheckConstraint("amount_total >= 0", name="amount_total_not_negative"),
    CheckConstraint("revision >= 1", name="revision_positive"),
)
# The expiry sweep looks for open sessions past their deadline.
Index(
    "ix_checkout_sessions_status_expires",
    checkout_sessions.c.status,
    checkout_sessions.c.expires_at,
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(40), primary_key=True, comment="ord_"),
    Column("livemode", Boolean, nullable=False),
    Column("checkout_session_id", String(40), ForeignKey("checkout_sessions.id"), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False),
    Column("payment_id", String(40), ForeignKey("payments.id"), nullable=False),
    Column("hold_id", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_total", BigInteger, nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("fulfillment_type", String(20), nullable=True),
    Column("line_items", JSON, nullable=False),
    Column("totals", JSON, nullable=False),
    Column("fulfillment", JSON, nullable=True),
    Column("cart", JSON, nullable=False),
    Column("cart_hash", String(64), nullable=False),
    Column("cart_signature", Text, nullable=True),
    Column("created_at", Instant(), nullable=False),
    Column("updated_at", Instant(), nullable=False),
    UniqueConstraint("checkout_session_id", name="uq_orders_checkout_session_id"),
    UniqueConstraint("payment_id", name="uq_orders_payment_id"),
    CheckConstraint(_in(ORDER_STATUSES), name="status_known"),
    CheckConstraint("amount_total > 0", name="amount_total_positive"),
    CheckConstraint(
        "amount_refunded >= 0 AND amount_refunded <= amount_total", name="refunded_within_total"
    ),
)

order_refunds = Table(
    "order_refunds",
    metadata,
    Column("id", String(40), ForeignKey("refunds.id"), primary_key=True, comment="ref_"),
    Column("livemode", Boolean, nullable=False),
    Column("order_id", String(40), ForeignKey("orders.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("reason", String(64), nullable=True),
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(40), nullable=True),
    Column("created_at", Instant(), nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
)
