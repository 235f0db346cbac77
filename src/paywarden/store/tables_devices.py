"""Tables for devices, terminals, tap tokens and counters, QR requests.

- ``devices``: what a user binds (``dev_``: phone, glasses, watch, card, tag) and what a
  merchant registers (``trm_``: a point-of-sale terminal, a gate, a table tag). Each signing
  device has its own Ed25519 or P-256 public key, named by its RFC 7638 thumbprint (``kid``,
  unique: a key belongs to one device); the private key never reaches the platform. A user's
  device carries its limits: ``tap_limit`` (one payment without a step-up) and
  ``daily_limit`` (the cumulative amount per UTC day before a step-up), in ``currency``.
- ``device_tokens``: a device payment token (``dtk_``) bound to its user and device, usable
  only in its ``domain`` (``in_person``), with the application transaction counter last
  accepted (``last_counter``), written in the same transaction as the capture it allowed.
- ``taps``: every tap message a terminal submitted, whatever its outcome. ``message_hash``
  (SHA-256 of the canonical message, cryptogram included) is unique: the identical message
  retried finds its row and gets its stored ``response``, never a second charge.
- ``journeys``: a tap in at a gate (``ent_``) and, for distance fares, the tap out that
  closes it and captures the fare from the hold placed at entry.
- ``payment_requests``: a merchant's QR payment request (``qr_``), static (the payer says the
  amount) or dynamic (amount and reference, expiring, paid once).
- ``device_confirmations``: every confirmation a device signed for its user (``cnf_``), of a
  QR payment request or of a pending approval; (device, nonce) is unique, so a signed
  confirmation counts once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from paywarden.store.schema import Instant, metadata

__all__ = [
    "device_confirmations",
    "device_tokens",
    "devices",
    "journeys",
    "payment_requests",
    "taps",
]

devices = Table(
    "devices",
    metadata,
    Column("id", String(40), primary_key=True, comment="dev_ or trm_"),
    Column("livemode", Boolean, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=True, index=True),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=True, index=True),
    Column("name", String(200), nullable=False),
    Column("kid", String(64), nullable=True, comment="JWK thumbprint"),
    Column("public_jwk", JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=True),
    Column("tap_limit", BigInteger, nullable=True),
    Column("daily_limit", BigInteger, nullable=True),
    # Gates: fare rule and zone; table tags: the table's label.
    Column("settings", JSON, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("revoked_at", Instant(), nullable=True),
    UniqueConstraint("kid", name="uq_devices_kid"),
    CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    CheckConstraint(
        "kind IN ('phone', 'glasses', 'watch', 'card', 'tag', "
        "'pos', 'gate', 'online', 'table_tag')",
        name="kind_known",
    ),
    CheckConstraint("(user_id IS NULL) <> (merchant_id IS NULL)", name="one_owner"),
    CheckConstraint("tap_limit IS NULL OR tap_limit >= 0", name="tap_limit_not_negative"),
    CheckConstraint("daily_limit IS NULL OR daily_limit >= 0", name="daily_limit_not_negative"),
)

device_tokens = Table(
    "device_tokens",
    metadata,
    Column("id", String(40), primary_key=True, comment="dtk_"),
    Column("livemode", Boolean, nullable=False),
    Column("device_id", String(40), ForeignKey("devices.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("domain", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_counter", BigInteger, nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("revoked_at", Instant(), nullable=True),
    CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    CheckConstraint("domain IN ('in_person')", name="domain_known"),
    CheckConstraint("last_counter >= 0", name="counter_not_negative"),
)

taps = Table(
    "taps",
    metadata,
    Column("id", String(40), primary_key=True, comment="tap_"),
    Column("livemode", Boolean, nullable=False),
    Column("message_hash", String(64), nullable=False),
    # As the message named it: an unknown or foreign token is recorded too, so no foreign key.
    Column("token_id", String(40), nullable=False),
    Column("device_id", String(40), nullable=True),
    Column("user_id", String(40), nullable=True),
    Column("terminal_id", String(40), ForeignKey("devices.id"), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("unpredictable_number", String(32), nullable=False),
    Column("user_verification", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("hold_id", String(40), nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("journey_id", String(40), nullable=True),
    Column("receipt", Text, nullable=True),
    Column("response", JSON, nullable=False),
    Column("created_at", Instant(), nullable=False),
    UniqueConstraint("message_hash", name="uq_taps_message_hash"),
    CheckConstraint("amount >= 0", name="amount_not_negative"),
    CheckConstraint("status IN ('approved', 'declined')", name="status_known"),
    CheckConstraint("kind IN ('payment', 'entry', 'exit')", name="kind_known"),
)
# The cumulative limit sums a device's approved taps of the day.
Index("ix_taps_device_created", taps.c.device_id, taps.c.created_at)

journeys = Table(
    "journeys",
    metadata,
    Column("id", String(40), primary_key=True, comment="ent_"),
    Column("livemode", Boolean, nullable=False),
    Column("token_id", String(40), ForeignKey("device_tokens.id"), nullable=False, index=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False),
    Column("entry_terminal_id", String(40), ForeignKey("devices.id"), nullable=False),
    Column("exit_terminal_id", String(40), ForeignKey("devices.id"), nullable=True),
    Column("entry_zone", Integer, nullable=False),
    Column("hold_id", String(40), nullable=True),
    Column("fare", BigInteger, nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", Instant(), nullable=False),
    Column("closed_at", Instant(), nullable=True),
    CheckConstraint("status IN ('open', 'closed')", name="status_known"),
)

payment_requests = Table(
    "payment_requests",
    metadata,
    Column("id", String(40), primary_key=True, comment="qr_"),
    Column("livemode", Boolean, nullable=False),
    Column("merchant_id", String(40), ForeignKey("merchants.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("payload", Text, nullable=False),
    Column("expires_at", Instant(), nullable=True),
    # A dynamic request's payment once paid: a device confirmation (cnf_) or a payment (pay_).
    Column("paid_by", String(40), nullable=True),
    Column("created_at", Instant(), nullable=False),
    CheckConstraint("kind IN ('static', 'dynamic')", name="kind_known"),
    CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
)

device_confirmations = Table(
    "device_confirmations",
    metadata,
    Column("id", String(40), primary_key=True, comment="cnf_"),
    Column("livemode", Boolean, nullable=False),
    Column("device_id", String(40), ForeignKey("devices.id"), nullable=False),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("target_id", String(40), nullable=False, comment="qr_ or apr_"),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payee", String(40), nullable=False),
    Column("cart_hash", String(100), nullable=True),
    Column("nonce", String(64), nullable=False),
    Column("user_verification", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("hold_id", String(40), nullable=True),
    Column("transfer_id", String(40), nullable=True),
    Column("receipt", Text, nullable=True),
    Column("created_at", Instant(), nullable=False),
    UniqueConstraint("device_id", "nonce", name="uq_device_confirmations_device_id"),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('succeeded', 'declined')", name="status_known"),
)
Index(
    "ix_device_confirmations_device_created",
    device_confirmations.c.device_id,
    device_confirmations.c.created_at,
)
