"""Mandates, their usage per period, and the payments agents make under them.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandates",
        sa.Column("id", sa.String(length=40), nullable=False, comment="mnd_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("constraints", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("consented_at", sa.BigInteger(), nullable=True),
        sa.Column("paused_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("conversation_excerpt", sa.Text(), nullable=True),
        sa.Column("excerpt_expires_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending_consent', 'active', 'paused', 'revoked', 'expired', 'exhausted')",
            name=op.f("ck_mandates_status_known"),
        ),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_mandates_revision_positive")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_mandates_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_mandates_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
    )
    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mandates_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mandates_user_id"), ["user_id"], unique=False)

    op.create_table(
        "mandate_usage",
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_payment_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "amount >= 0 AND count >= 0", name=op.f("ck_mandate_usage_usage_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_mandate_usage_mandate_id_mandates")
        ),
        sa.PrimaryKeyConstraint("mandate_id", "period", name="pk_mandate_usage"),
    )

    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False, comment="pay_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("cart_hash", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "status IN ('succeeded', 'declined', 'requires_confirmation')",
            name=op.f("ck_payments_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_payments_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_payments_mandate_id_mandates")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payments_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            "ix_payments_mandate_created", ["mandate_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_payments_agent_created", ["agent_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_agent_created")
        batch_op.drop_index("ix_payments_mandate_created")
        batch_op.drop_index(batch_op.f("ix_payments_user_id"))
    op.drop_table("payments")
    op.drop_table("mandate_usage")
    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mandates_user_id"))
        batch_op.drop_index(batch_op.f("ix_mandates_agent_id"))
    op.drop_table("mandates")
