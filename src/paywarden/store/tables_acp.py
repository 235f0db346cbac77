"""Tables for the ACP face: agent bearer tokens and one-time delegated payment tokens.

``acp_tokens``: ACP requires ``Authorization: Bearer`` on every checkout call. An agent's
platform (or an admin) issues the agent such a token; only its SHA-256 is kept, so a leaked
database does not leak working tokens. A token speaks for exactly one agent.

``delegated_tokens``: the ``dlg_…`` token an agent puts in ``payment_data`` when it
completes an ACP checkout. It is minted from one of the agent's mandates with an allowance
shaped like ACP's delegate-payment allowance (``reason`` ``one_time``, ``max_amount``,
``currency``, ``checkout_session_id``, ``merchant_id``, ``expires_at``). It is spent once:
``used_at`` goes from NULL to an instant by a conditional UPDATE in the completing
transaction, so two concurrent completes cannot both spend it. No card number is stored.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    String,
    Table,
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["acp_tokens", "delegated_tokens"]

acp_tokens = Table(
    "acp_tokens",
    metadata,
    Column("id", String(40), primary_key=True, comment="atk_"),
    Column("livemode", Boolean, nullable=False),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("secret_hint", String(32), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("expires_at", Instant(), nullable=True),
    Column("revoked_at", Instant(), nullable=True),
    UniqueConstraint("secret_hash", name="uq_acp_tokens_secret_hash"),
)

delegated_tokens = Table(
    "delegated_tokens",
    metadata,
    Column("id", String(40), primary_key=True, comment="dlg_"),
    Column("livemode", Boolean, nullable=False),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False),
    Column("mandate_id", String(40), ForeignKey("mandates.id"), nullable=False, index=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("checkout_session_id", String(40), nullable=False, index=True),
    Column("reason", String(16), nullable=False),
    Column("max_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expires_at", Instant(), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("used_at", Instant(), nullable=True),
    CheckConstraint("max_amount > 0", name="max_amount_positive"),
    CheckConstraint("reason IN ('one_time')", name="reason_known"),
)
