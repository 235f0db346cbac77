"""Covering indexes for the risk reads of every payment.

A payment counts the agent's and the mandate's recent successful payments and takes the
median of the mandate's last amounts (``payments.risk_inputs``), each bounded by
``history_size_max`` rows. With the status (and the amount) in the index, those reads scan
the index alone instead of fetching up to that many table rows each.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payments_mandate_history",
        "payments",
        ["mandate_id", "status", "created_at", "amount"],
    )
    op.create_index("ix_payments_agent_history", "payments", ["agent_id", "status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_payments_agent_history", table_name="payments")
    op.drop_index("ix_payments_mandate_history", table_name="payments")
