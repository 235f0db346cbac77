"""Settlement and payouts: merchants' bank accounts for payouts, and the payouts.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payout_accounts",
        sa.Column("id", sa.String(length=40), nullable=False, comment="ba_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("routing_number", sa.String(length=9), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payout_accounts_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_accounts")),
        sa.UniqueConstraint("merchant_id", "currency", name="uq_payout_accounts_merchant_currency"),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.String(length=40), nullable=False, comment="po_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("payout_account_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("destination", sa.String(length=80), nullable=False),
        sa.Column("destination_last4", sa.String(length=4), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=False),
        sa.Column("settlement_transfer_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("settled_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payouts_amount_positive")),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'failed')", name=op.f("ck_payouts_status_known")
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (settled_at IS NULL AND settlement_transfer_id IS NULL)",
            name=op.f("ck_payouts_settled_when_not_pending"),
        ),
        sa.CheckConstraint(
            "(status = 'failed') = (failure_code IS NOT NULL)",
            name=op.f("ck_payouts_failure_code"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payouts_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_payouts_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["payout_account_id"],
            ["payout_accounts.id"],
            name=op.f("fk_payouts_payout_account_id_payout_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["settlement_transfer_id"],
            ["transfers.id"],
            name=op.f("fk_payouts_settlement_transfer_id_transfers"),
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_payouts_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index("ix_payouts_status", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index("ix_payouts_status")
        batch_op.drop_index(batch_op.f("ix_payouts_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_payouts_account_id"))
    op.drop_table("payouts")
    op.drop_table("payout_accounts")
