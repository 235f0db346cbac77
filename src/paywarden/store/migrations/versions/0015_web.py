"""The trusted surface: user passwords and server-side dashboard sessions.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_passwords",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("hash", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_passwords_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_passwords")),
    )
    op.create_table(
        "web_sessions",
        sa.Column(
            "id", sa.String(length=64), nullable=False, comment="SHA-256 (hex) of the cookie's sid"
        ),
        sa.Column(
            "principal_type",
            sa.String(length=16),
            nullable=False,
            comment="user | merchant | admin",
        ),
        sa.Column(
            "principal_id", sa.String(length=40), nullable=True, comment="usr_/mer_; None: admin"
        ),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column(
            "key_id",
            sa.String(length=40),
            nullable=True,
            comment="the key signed in with; None: password",
        ),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_web_sessions_principal_id"), ["principal_id"], unique=False
        )
        batch_op.create_index("ix_web_sessions_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_web_sessions_expires")
        batch_op.drop_index(batch_op.f("ix_web_sessions_principal_id"))
    op.drop_table("web_sessions")
    op.drop_table("user_passwords")
