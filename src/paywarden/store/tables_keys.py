"""The platform's own signing keys (paywarden.trust.custody), sealed under the master key.

``private_ciphertext`` holds only the AES-256-GCM envelope of a key's secret, bound to its
``kid`` and ``purpose``; the clear secret is never written. At most one key per purpose is
``active``: a partial unique index says so in SQL, as ``custody.active_key`` does in code.
"""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Index, String, Table, Text, text

from paywarden.store.schema import Instant, metadata

__all__ = ["platform_keys"]

platform_keys = Table(
    "platform_keys",
    metadata,
    Column("kid", String(64), primary_key=True, comment="RFC 7638 JWK thumbprint"),
    Column("purpose", String(32), nullable=False),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_ciphertext", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("activated_at", Instant(), nullable=True),
    Column("retired_at", Instant(), nullable=True),
    Column("publish_until", Instant(), nullable=True),
    CheckConstraint("status IN ('active', 'retired', 'revoked')", name="status_known"),
    CheckConstraint(
        "purpose IN ('receipt', 'mandate_token', 'audit_checkpoint', 'cart')",
        name="purpose_known",
    ),
    CheckConstraint("alg IN ('ES256', 'EdDSA')", name="alg_known"),
)
Index(
    "uq_platform_keys_one_active_per_purpose",
    platform_keys.c.purpose,
    unique=True,
    sqlite_where=text("status = 'active'"),
    postgresql_where=text("status = 'active'"),
)
