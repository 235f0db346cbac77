"""Agent platforms, agents, their keys, and request nonces.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_platforms",
        sa.Column("id", sa.String(length=40), nullable=False, comment="plt_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_platforms")),
        sa.UniqueConstraint("origin", "livemode", name="uq_agent_platforms_origin_livemode"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=40), nullable=False, comment="agt_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("platform_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_agents_status_known")),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["agent_platforms.id"],
            name=op.f("fk_agents_platform_id_agent_platforms"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_agents_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_platform_id"), ["platform_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agents_user_id"), ["user_id"], unique=False)

    op.create_table(
        "agent_keys",
        sa.Column("kid", sa.String(length=64), nullable=False, comment="JWK thumbprint"),
        sa.Column("agent_id", sa.String(length=40), nullable=False),
        sa.Column("alg", sa.String(length=32), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_agent_keys_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_keys_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_agent_keys")),
    )
    with op.batch_alter_table("agent_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_keys_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "request_nonces",
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=512), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("keyid", "nonce", name="pk_request_nonces"),
    )
    with op.batch_alter_table("request_nonces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_nonces_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("request_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_nonces_expires_at"))
    op.drop_table("request_nonces")
    with op.batch_alter_table("agent_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_keys_agent_id"))
    op.drop_table("agent_keys")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agents_user_id"))
        batch_op.drop_index(batch_op.f("ix_agents_platform_id"))
    op.drop_table("agents")
    op.drop_table("agent_platforms")
