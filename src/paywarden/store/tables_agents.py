"""Tables for agent platforms, agents, agent keys and request nonces.

An agent platform (``plt_``) registers agents (``agt_``); each agent signs its requests with
one of its public keys, named by its RFC 7638 thumbprint (``kid``), which is therefore the
primary key: a key belongs to exactly one agent. ``request_nonces`` is the replay guard
shared by every API node: a signature's nonce is inserted once, and the primary key on
(keyid, nonce) refuses the second insert on any backend, whatever node it comes from.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["agent_keys", "agent_platforms", "agents", "request_nonces"]

KID_LENGTH_MAX = 64  # a SHA-256 thumbprint is 43 base64url characters
NONCE_LENGTH_MAX = 512  # trust.signatures.STRING_PARAMETER_LENGTH_MAX

agent_platforms = Table(
    "agent_platforms",
    metadata,
    Column("id", String(40), primary_key=True, comment="plt_"),
    Column("livemode", Boolean, nullable=False),
    Column("name", String(200), nullable=False),
    # The https origin (scheme://host[:port], normalized) whose directory lists its agents.
    Column("origin", String(300), nullable=False),
    Column("created_at", Instant(), nullable=False),
    # Origin first: the directory looks platforms up by origin alone.
    UniqueConstraint("origin", "livemode", name="uq_agent_platforms_origin_livemode"),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(40), primary_key=True, comment="agt_"),
    Column("livemode", Boolean, nullable=False),
    Column("platform_id", String(40), ForeignKey("agent_platforms.id"), nullable=False, index=True),
    # The user the agent acts for; set when a mandate binds it.
    Column("user_id", String(40), ForeignKey("users.id"), nullable=True, index=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("revoked_at", Instant(), nullable=True),
    CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
)

agent_keys = Table(
    "agent_keys",
    metadata,
    Column("kid", String(KID_LENGTH_MAX), primary_key=True, comment="JWK thumbprint"),
    Column("agent_id", String(40), ForeignKey("agents.id"), nullable=False, index=True),
    Column("alg", String(32), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    # After a rotation the old key keeps working until not_after (inclusive), then stops.
    Column("not_after", Instant(), nullable=True),
    Column("revoked_at", Instant(), nullable=True),
    CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
)

request_nonces = Table(
    "request_nonces",
    metadata,
    Column("keyid", String(KID_LENGTH_MAX), nullable=False),
    Column("nonce", String(NONCE_LENGTH_MAX), nullable=False),
    # After this instant the signature that carried the nonce is refused by its times alone,
    # so the row may go.
    Column("expires_at", Instant(), nullable=False, index=True),
    PrimaryKeyConstraint("keyid", "nonce", name="pk_request_nonces"),
)
