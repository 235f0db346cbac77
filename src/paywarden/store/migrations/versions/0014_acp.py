"""ACP: agent bearer tokens and one-time delegated payment tokens.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acp_tokens",
        sa.Column("id", sa.String(length=40), nullable=False, comment="atk_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("secret_hint", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_acp_tokens_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acp_tokens")),
        sa.UniqueConstraint("secret_hash", name="uq_acp_tokens_secret_hash"),
    )
    with op.batch_alter_table("acp_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_acp_tokens_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "delegated_tokens",
        sa.Column("id", sa.String(length=40), nullable=False, comment="dlg_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("mandate_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("max_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("max_amount > 0", name=op.f("ck_delegated_tokens_max_amount_positive")),
        sa.CheckConstraint("reason IN ('one_time')", name=op.f("ck_delegated_tokens_reason_known")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_delegated_tokens_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_delegated_tokens_mandate_id_mandates")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_delegated_tokens_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegated_tokens")),
    )
    with op.batch_alter_table("delegated_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delegated_tokens_mandate_id"), ["mandate_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_delegated_tokens_checkout_session_id"),
            ["checkout_session_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("delegated_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delegated_tokens_checkout_session_id"))
        batch_op.drop_index(batch_op.f("ix_delegated_tokens_mandate_id"))
    op.drop_table("delegated_tokens")
    with op.batch_alter_table("acp_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_acp_tokens_agent_id"))
    op.drop_table("acp_tokens")
