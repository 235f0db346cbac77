"""Tables for the trusted surface: user passwords, passkeys and dashboard sessions.

``user_passwords`` holds one scrypt hash per user (the format carries its own parameters, so
they can be raised later without a migration). ``web_sessions`` holds one row per signed-in
browser session (a user's, a merchant's, or an operator's signed in with the admin key), keyed
by the SHA-256 of the session id in the cookie. The cookie alone never suffices: signing out
ends the row, and every request reads it.

``passkeys`` holds a user's WebAuthn credentials: the public key (COSE), the last signature
counter the authenticator reported, and nothing secret. ``webauthn_challenges`` holds the
challenge of each ceremony in flight, as its SHA-256, bound to the browser session that asked
for it; a challenge is deleted when it is used (once, whatever the outcome) and purged when
it expires.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
)

from paywarden.store.schema import Instant, metadata

__all__ = ["passkeys", "user_passwords", "web_sessions", "webauthn_challenges"]

user_passwords = Table(
    "user_passwords",
    metadata,
    Column("user_id", String(40), ForeignKey("users.id"), primary_key=True),
    Column("hash", String(200), nullable=False),
    Column("updated_at", Instant(), nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True, comment="SHA-256 (hex) of the cookie's sid"),
    Column("principal_type", String(16), nullable=False, comment="user | merchant | admin"),
    Column("principal_id", String(40), nullable=True, index=True, comment="usr_/mer_; None: admin"),
    Column("livemode", Boolean, nullable=False),
    Column("key_id", String(40), nullable=True, comment="the key signed in with; None: password"),
    Column("method", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("expires_at", Instant(), nullable=False),
    Column("ended_at", Instant(), nullable=True),
    Column("passkey_id", String(40), nullable=True, comment="the passkey signed in with"),
)
# The maintenance pass deletes sessions long past their expiry.
Index("ix_web_sessions_expires", web_sessions.c.expires_at)

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(40), primary_key=True, comment="psk_"),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("credential_id", String(1400), nullable=False, unique=True, comment="base64url"),
    Column("public_key", LargeBinary, nullable=False, comment="COSE_Key"),
    Column("sign_count", BigInteger, nullable=False),
    Column("transports", String(200), nullable=False, comment="comma-separated"),
    Column("name", String(60), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("last_used_at", Instant(), nullable=True),
    CheckConstraint("sign_count >= 0", name="sign_count_non_negative"),
)

webauthn_challenges = Table(
    "webauthn_challenges",
    metadata,
    Column("id", String(64), primary_key=True, comment="SHA-256 (hex) of the challenge"),
    Column("purpose", String(16), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=True),
    Column("session_id", String(64), nullable=False, comment="SHA-256 (hex) of the sid that asked"),
    Column("expires_at", Instant(), nullable=False, index=True),
    CheckConstraint("purpose IN ('register', 'authenticate')", name="purpose_known"),
    CheckConstraint("(purpose = 'register') = (user_id IS NOT NULL)", name="register_names_user"),
)
