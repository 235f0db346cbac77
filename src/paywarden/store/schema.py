"""Tables, in SQLAlchemy Core. One schema serves SQLite and PostgreSQL.

Instants are stored as integer microseconds since the Unix epoch (UTC): exact, sortable,
and identical on both backends. Amounts are BIGINT minor units. The CHECK constraints
repeat in SQL the ledger rules the domain checks in code, so a bug in one is caught by the
other before the commit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = ["Instant", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Instant(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime stored as integer microseconds since the epoch."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _EPOCH + timedelta(microseconds=int(value))  # exact: integer arithmetic


def _id(prefix_comment: str) -> Column[str]:
    return Column("id", String(40), primary_key=True, comment=prefix_comment)


def _created() -> Column[datetime]:
    return Column("created_at", Instant(), nullable=False)


users = Table(
    "users",
    metadata,
    _id("usr_"),
    Column("livemode", Boolean, nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    _created(),
    UniqueConstraint("livemode", "email", name="uq_users_livemode_email"),
)

merchants = Table(
    "merchants",
    metadata,
    _id("mer_"),
    Column("livemode", Boolean, nullable=False),
    Column("name", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("fee_bps", Integer, nullable=False),
    _created(),
    CheckConstraint("fee_bps >= 0 AND fee_bps <= 10000", name="fee_bps_range"),
)

accounts = Table(
    "accounts",
    metadata,
    _id("acct_"),
    Column("livemode", Boolean, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("owner_id", String(40), nullable=True, index=True),
    # One row per (kind, currency, mode) for the platform's own accounts, created on demand.
    Column("system_key", String(80), nullable=True, unique=True),
    Column("non_negative", Boolean, nullable=False),
    Column("posted", BigInteger, nullable=False, default=0),
    Column("pending_out", BigInteger, nullable=False, default=0),
    _created(),
    CheckConstraint("pending_out >= 0", name="pending_out_not_negative"),
    CheckConstraint(
        "non_negative = false OR posted - pending_out >= 0", name="available_not_negative"
    ),
    CheckConstraint(
        "posted >= -4611686018427387904 AND posted <= 4611686018427387904",
        name="posted_bounded",
    ),
)

transfers = Table(
    "transfers",
    metadata,
    _id("txf_"),
    Column("livemode", Boolean, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("source_account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("destination_account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("hold_id", String(40), nullable=True, index=True),
    Column("refund_id", String(40), nullable=True),
    Column("top_up_id", String(40), nullable=True),
    Column("description", String(500), nullable=True),
    _created(),
    CheckConstraint("amount > 0", name="amount_positive"),
)

postings = Table(
    "postings",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    # Looked up by the unique (transfer_id, account_id) below (0019 dropped its own index).
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    _created(),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
    UniqueConstraint("transfer_id", "account_id", name="uq_postings_transfer_account"),
)

holds = Table(
    "holds",
    metadata,
    _id("hold_"),
    Column("livemode", Boolean, nullable=False),
    Column("source_account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column(
        "destination_account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True
    ),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("captured_amount", BigInteger, nullable=False, default=0),
    Column("refunded_amount", BigInteger, nullable=False, default=0),
    Column("fee_amount", BigInteger, nullable=False, default=0),
    Column("fee_refunded", BigInteger, nullable=False, default=0),
    Column("capture_transfer_id", String(40), nullable=True),
    Column("description", String(500), nullable=True),
    Column("expires_at", Instant(), nullable=False),
    _created(),
    Column("updated_at", Instant(), nullable=False),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("captured_amount >= 0 AND captured_amount <= amount", name="captured_le_held"),
    CheckConstraint(
        "refunded_amount >= 0 AND refunded_amount <= captured_amount",
        name="refunded_le_captured",
    ),
    CheckConstraint(
        "fee_refunded >= 0 AND fee_refunded <= fee_amount AND fee_amount <= captured_amount",
        name="fee_bounds",
    ),
    CheckConstraint("status IN ('pending', 'posted', 'voided', 'expired')", name="status_known"),
)
Index("ix_holds_pending_expiry", holds.c.status, holds.c.expires_at)

refunds = Table(
    "refunds",
    metadata,
    _id("ref_"),
    Column("livemode", Boolean, nullable=False),
    Column("hold_id", String(40), ForeignKey("holds.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("reason", String(64), nullable=True),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=False),
    _created(),
    CheckConstraint("amount > 0", name="amount_positive"),
)

top_ups = Table(
    "top_ups",
    metadata,
    _id("top_"),
    Column("livemode", Boolean, nullable=False),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure_code", String(64), nullable=True),
    # Only a keyed-hash token and the last four digits: never the card number.
    Column("card_token", String(64), nullable=False),
    Column("card_brand", String(16), nullable=False),
    Column("card_last4", String(4), nullable=False),
    Column("transfer_id", String(40), ForeignKey("transfers.id"), nullable=True),
    _created(),
    CheckConstraint("amount > 0", name="amount_positive"),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id("key_"),
    Column("livemode", Boolean, nullable=False),
    Column("principal_type", String(16), nullable=False),
    Column("principal_id", String(40), nullable=True, index=True),
    # SHA-256 of the secret: secrets carry 256 bits of randomness, so a fast hash suffices.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("secret_hint", String(24), nullable=False),
    Column("api_version", String(10), nullable=False),
    _created(),
    Column("revoked_at", Instant(), nullable=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("principal", String(80), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(500), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    # in_flight while a request holds the key; done once its response is stored.
    Column("state", String(16), nullable=False),
    Column("lock_token", String(64), nullable=True),
    Column("locked_until", Instant(), nullable=True),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    _created(),
    Column("expires_at", Instant(), nullable=False, index=True),
    UniqueConstraint("principal", "method", "path", "key", name="uq_idempotency_scope"),
)

events = Table(
    "events",
    metadata,
    # The outbox: written in the same transaction as the change it announces.
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("id", String(40), nullable=False, unique=True),
    Column("livemode", Boolean, nullable=False),
    Column("type", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    _created(),
    # Set when the webhook fan-out has indexed the event's owners and queued its deliveries
    # (paywarden.services.webhooks); null means not yet.
    Column("dispatched_at", Instant(), nullable=True),
)
# The fan-out reads the undispatched events in order: a small partial index.
Index(
    "ix_events_undispatched",
    events.c.sequence,
    postgresql_where=events.c.dispatched_at.is_(None),
    sqlite_where=events.c.dispatched_at.is_(None),
)

settings_table = Table(
    "platform_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The tamper-evident audit log (paywarden.trust.audit): one hash chain per partition, so that
# concurrent writers lock different head rows; signed checkpoints over every chain's head.
audit_records = Table(
    "audit_records",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("partition", Integer, nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("actor_type", String(16), nullable=True),
    Column("actor_id", String(40), nullable=True),
    Column("subject_id", String(64), nullable=True, index=True),
    Column("data", JSON, nullable=False),
    Column("occurred_at", Instant(), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("partition", "sequence", name="uq_audit_records_partition_sequence"),
    CheckConstraint("partition >= 0", name="partition_not_negative"),
    CheckConstraint("sequence >= 1", name="sequence_positive"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    # The row an append locks FOR UPDATE to take the next sequence of its partition.
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    CheckConstraint("last_sequence >= 0", name="last_sequence_not_negative"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    _created(),
    Column("heads", JSON, nullable=False),
    # Unique: two checkpoints can never both follow the same one (no forks in the chain).
    Column("prev_checkpoint_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(100), nullable=False),
    Column("signature", String(128), nullable=False),
    CheckConstraint("id >= 1", name="id_positive"),
)

# Tables kept in their own modules register themselves on `metadata` when imported here.
from paywarden.store import (  # noqa: E402,F401
    tables_acp,
    tables_agents,
    tables_approvals,
    tables_catalog,
    tables_checkout,
    tables_devices,
    tables_keys,
    tables_mandates,
    tables_payouts,
    tables_privacy,
    tables_refund_requests,
    tables_web,
    tables_webhooks,
)
