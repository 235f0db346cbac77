"""Tables for the trusted surface: user passwords and dashboard sessions.

``user_passwords`` holds one scrypt hash per user (the format carries its own parameters, so
they can be raised later without a migration). ``web_sessions`` holds one row per signed-in
browser session (a user's, a merchant's, or an operator's signed in with the admin key), keyed
by the SHA-256 of the session id in the cookie. The cookie alone never suffices: signing out
ends the row, and every request reads it.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, String, Table

from paywarden.store.schema import Instant, metadata

__all__ = ["user_passwords", "web_sessions"]

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
)
# The maintenance pass deletes sessions long past their expiry.
Index("ix_web_sessions_expires", web_sessions.c.expires_at)
