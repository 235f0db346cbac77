"""Platform signing keys, encrypted at rest under the master key.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_keys",
        sa.Column("kid", sa.String(length=64), nullable=False, comment="RFC 7638 JWK thumbprint"),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_ciphertext", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("activated_at", sa.BigInteger(), nullable=True),
        sa.Column("retired_at", sa.BigInteger(), nullable=True),
        sa.Column("publish_until", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'revoked')",
            name=op.f("ck_platform_keys_status_known"),
        ),
        sa.CheckConstraint(
            "purpose IN ('receipt', 'mandate_token', 'audit_checkpoint', 'cart')",
            name=op.f("ck_platform_keys_purpose_known"),
        ),
        sa.CheckConstraint("alg IN ('ES256', 'EdDSA')", name=op.f("ck_platform_keys_alg_known")),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_platform_keys")),
    )
    # At most one active key per purpose, enforced by the database as well as in code.
    with op.batch_alter_table("platform_keys", schema=None) as batch_op:
        batch_op.create_index(
            "uq_platform_keys_one_active_per_purpose",
            ["purpose"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("platform_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_platform_keys_one_active_per_purpose")
    op.drop_table("platform_keys")
