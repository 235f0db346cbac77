"""Checkout sessions, orders, order refunds.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _instant(name: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def _checkout_sessions() -> None:
    statuses = (
        "'not_ready_for_payment', 'ready_for_payment', 'pending_approval', 'completed', "
        "'canceled', 'expired'"
    )
    op.create_table(
        "checkout_sessions",
        sa.Column("id", sa.String(length=40), nullable=False, comment="cs_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("line_items", sa.JSON(), nullable=False),
        sa.Column("fulfillment_options", sa.JSON(), nullable=False),
        sa.Column("fulfillment", sa.JSON(), nullable=True),
        sa.Column("fulfillment_details", sa.JSON(), nullable=True),
        sa.Column("buyer", sa.JSON(), nullable=True),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("cart", sa.JSON(), nullable=False),
        sa.Column("cart_hash", sa.String(length=64), nullable=False),
        sa.Column("cart_signature", sa.Text(), nullable=True),
        _instant("expires_at"),
        sa.Column("mandate_id", sa.String(length=40), nullable=True),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("order_id", sa.String(length=40), nullable=True),
        sa.Column("stock_reserved", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _instant("created_at"),
        _instant("updated_at"),
        sa.CheckConstraint(
            f"status IN ({statuses})", name=op.f("ck_checkout_sessions_status_known")
        ),
        sa.CheckConstraint(
            "amount_total >= 0", name=op.f("ck_checkout_sessions_amount_total_not_negative")
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_checkout_sessions_revision_positive")),
        _fk("checkout_sessions", "agent_id", "agents"),
        _fk("checkout_sessions", "mandate_id", "mandates"),
        _fk("checkout_sessions", "merchant_id", "merchants"),
        _fk("checkout_sessions", "payment_id", "payments"),
        _fk("checkout_sessions", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_sessions")),
    )
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        for column in ("agent_id", "merchant_id", "payment_id", "user_id"):
            batch_op.create_index(
                batch_op.f(f"ix_checkout_sessions_{column}"), [column], unique=False
            )
        batch_op.create_index(
            "ix_checkout_sessions_status_expires", ["status", "expires_at"], unique=False
        )


def _orders() -> None:
    statuses = (
        "'created', 'confirmed', 'preparing', 'ready_for_pickup', 'out_for_delivery', "
        "'shipped', 'completed', 'canceled'"
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(length=40), nullable=False, comment="ord_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_total", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("fulfillment_type", sa.String(length=20), nullable=True),
        sa.Column("line_items", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("fulfillment", sa.JSON(), nullable=True),
        sa.Column("cart", sa.JSON(), nullable=False),
        sa.Column("cart_hash", sa.String(length=64), nullable=False),
        sa.Column("cart_signature", sa.Text(), nullable=True),
        _instant("created_at"),
        _instant("updated_at"),
        sa.CheckConstraint(f"status IN ({statuses})", name=op.f("ck_orders_status_known")),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount_total",
            name=op.f("ck_orders_refunded_within_total"),
        ),
        sa.CheckConstraint("amount_total > 0", name=op.f("ck_orders_amount_total_positive")),
        _fk("orders", "agent_id", "agents"),
        _fk("orders", "checkout_session_id", "checkout_sessions"),
        _fk("orders", "mandate_id", "mandates"),
        _fk("orders", "merchant_id", "merchants"),
        _fk("orders", "payment_id", "payments"),
        _fk("orders", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("checkout_session_id", name="uq_orders_checkout_session_id"),
        sa.UniqueConstraint("payment_id", name="uq_orders_payment_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for column in ("agent_id", "merchant_id", "user_id"):
            batch_op.create_index(batch_op.f(f"ix_orders_{column}"), [column], unique=False)


def _order_refunds() -> None:
    op.create_table(
        "order_refunds",
        sa.Column("id", sa.String(length=40), nullable=False, comment="ref_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=40), nullable=True),
        _instant("created_at"),
        sa.CheckConstraint("amount > 0", name=op.f("ck_order_refunds_amount_positive")),
        _fk("order_refunds", "id", "refunds"),
        _fk("order_refunds", "order_id", "orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
    )
    with op.batch_alter_table("order_refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_refunds_order_id"), ["order_id"], unique=False)


def upgrade() -> None:
    _checkout_sessions()
    _orders()
    _order_refunds()


def downgrade() -> None:
    with op.batch_alter_table("order_refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_refunds_order_id"))
    op.drop_table("order_refunds")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        for column in ("user_id", "merchant_id", "agent_id"):
            batch_op.drop_index(batch_op.f(f"ix_orders_{column}"))
    op.drop_table("orders")
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_checkout_sessions_status_expires")
        for column in ("user_id", "payment_id", "merchant_id", "agent_id"):
            batch_op.drop_index(batch_op.f(f"ix_checkout_sessions_{column}"))
    op.drop_table("checkout_sessions")
