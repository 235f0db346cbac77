"""Drop three indexes that every payment wrote and no read needs.

- ``ix_payments_agent_created`` (agent_id, created_at): every read of an agent's payments
  (the risk windows) goes by ``ix_payments_agent_history`` (agent_id, status, created_at),
  which also leads with the agent for its foreign key.
- ``ix_payments_mandate_created`` (mandate_id, created_at): the mandate's reads go by
  ``ix_payments_mandate_history`` (mandate_id, status, created_at, amount), which leads
  with the mandate as well.
- ``ix_postings_transfer_id`` (transfer_id): the unique constraint on (transfer_id,
  account_id) is an index that leads with the transfer.

A payment writes one payment row and three postings: five index entries fewer each.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_payments_agent_created", table_name="payments")
    op.drop_index("ix_payments_mandate_created", table_name="payments")
    op.drop_index("ix_postings_transfer_id", table_name="postings")


def downgrade() -> None:
    op.create_index("ix_postings_transfer_id", "postings", ["transfer_id"])
    op.create_index("ix_payments_mandate_created", "payments", ["mandate_id", "created_at"])
    op.create_index("ix_payments_agent_created", "payments", ["agent_id", "created_at"])
