"""Devices, terminals, tap tokens and counters, QR requests.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=40), nullable=False, comment="dev_ or trm_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("merchant_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=True, comment="JWK thumbprint"),
        sa.Column("public_jwk", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("tap_limit", sa.BigInteger(), nullable=True),
        sa.Column("daily_limit", sa.BigInteger(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('phone', 'glasses', 'watch', 'card', 'tag', "
            "'pos', 'gate', 'online', 'table_tag')",
            name=op.f("ck_devices_kind_known"),
        ),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_devices_status_known")),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (merchant_id IS NULL)", name=op.f("ck_devices_one_owner")
        ),
        sa.CheckConstraint(
            "daily_limit IS NULL OR daily_limit >= 0",
            name=op.f("ck_devices_daily_limit_not_negative"),
        ),
        sa.CheckConstraint(
            "tap_limit IS NULL OR tap_limit >= 0", name=op.f("ck_devices_tap_limit_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_devices_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("kid", name="uq_devices_kid"),
    )
    op.create_index(op.f("ix_devices_merchant_id"), "devices", ["merchant_id"], unique=False)
    op.create_index(op.f("ix_devices_user_id"), "devices", ["user_id"], unique=False)
    op.create_table(
        "payment_requests",
        sa.Column("id", sa.String(length=40), nullable=False, comment="qr_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("paid_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('static', 'dynamic')", name=op.f("ck_payment_requests_kind_known")
        ),
        sa.CheckConstraint(
            "amount IS NULL OR amount > 0", name=op.f("ck_payment_requests_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_payment_requests_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_requests")),
    )
    op.create_index(
        op.f("ix_payment_requests_merchant_id"), "payment_requests", ["merchant_id"], unique=False
    )
    op.create_table(
        "device_confirmations",
        sa.Column("id", sa.String(length=40), nullable=False, comment="cnf_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("device_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False, comment="qr_ or apr_"),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payee", sa.String(length=40), nullable=False),
        sa.Column("cart_hash", sa.String(length=100), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("user_verification", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('succeeded', 'declined')", name=op.f("ck_device_confirmations_status_known")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_device_confirmations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_confirmations_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_device_confirmations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_confirmations")),
        sa.UniqueConstraint("device_id", "nonce", name="uq_device_confirmations_device_id"),
    )
    op.create_index(
        "ix_device_confirmations_device_created",
        "device_confirmations",
        ["device_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_device_confirmations_user_id"), "device_confirmations", ["user_id"], unique=False
    )
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.String(length=40), nullable=False, comment="dtk_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("device_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("domain", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_counter", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("domain IN ('in_person')", name=op.f("ck_device_tokens_domain_known")),
        sa.CheckConstraint(
            "status IN ('active', 'revoked')", name=op.f("ck_device_tokens_status_known")
        ),
        sa.CheckConstraint("last_counter >= 0", name=op.f("ck_device_tokens_counter_not_negative")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_tokens_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_device_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_tokens")),
    )
    op.create_index(
        op.f("ix_device_tokens_device_id"), "device_tokens", ["device_id"], unique=False
    )
    op.create_table(
        "taps",
        sa.Column("id", sa.String(length=40), nullable=False, comment="tap_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("message_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=40), nullable=False),
        sa.Column("device_id", sa.String(length=40), nullable=True),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("terminal_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.Column("unpredictable_number", sa.String(length=32), nullable=False),
        sa.Column("user_verification", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("journey_id", sa.String(length=40), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('payment', 'entry', 'exit')", name=op.f("ck_taps_kind_known")),
        sa.CheckConstraint("status IN ('approved', 'declined')", name=op.f("ck_taps_status_known")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_taps_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_taps_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["devices.id"], name=op.f("fk_taps_terminal_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_taps")),
        sa.UniqueConstraint("message_hash", name="uq_taps_message_hash"),
    )
    op.create_index("ix_taps_device_created", "taps", ["device_id", "created_at"], unique=False)
    op.create_table(
        "journeys",
        sa.Column("id", sa.String(length=40), nullable=False, comment="ent_"),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("token_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("entry_terminal_id", sa.String(length=40), nullable=False),
        sa.Column("exit_terminal_id", sa.String(length=40), nullable=True),
        sa.Column("entry_zone", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("fare", sa.BigInteger(), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_journeys_status_known")),
        sa.ForeignKeyConstraint(
            ["entry_terminal_id"],
            ["devices.id"],
            name=op.f("fk_journeys_entry_terminal_id_devices"),
        ),
        sa.ForeignKeyConstraint(
            ["exit_terminal_id"], ["devices.id"], name=op.f("fk_journeys_exit_terminal_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_journeys_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["device_tokens.id"], name=op.f("fk_journeys_token_id_device_tokens")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_journeys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
    )
    op.create_index(op.f("ix_journeys_token_id"), "journeys", ["token_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_journeys_token_id"), table_name="journeys")
    op.drop_table("journeys")
    op.drop_index("ix_taps_device_created", table_name="taps")
    op.drop_table("taps")
    op.drop_index(op.f("ix_device_tokens_device_id"), table_name="device_tokens")
    op.drop_table("device_tokens")
    op.drop_index(op.f("ix_device_confirmations_user_id"), table_name="device_confirmations")
    op.drop_index("ix_device_confirmations_device_created", table_name="device_confirmations")
    op.drop_table("device_confirmations")
    op.drop_index(op.f("ix_payment_requests_merchant_id"), table_name="payment_requests")
    op.drop_table("payment_requests")
    op.drop_index(op.f("ix_devices_user_id"), table_name="devices")
    op.drop_index(op.f("ix_devices_merchant_id"), table_name="devices")
    op.drop_table("devices")
