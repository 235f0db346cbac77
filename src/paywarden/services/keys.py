"""The platform's signing keys: sign with the active one, rotate, publish, verify.

::

    signer = keys.active_signer(uow, Purpose.RECEIPT, master_key)   # made on first use
    keys.rotate(uow, Purpose.RECEIPT, master_key)                   # old key retired
    keys.published_jwks(uow)      # {"keys": [...]}: active + retired within their overlap
    keys.verification_keys(uow)   # {"keys": [...]}: every key not revoked

The master key (32 bytes) is read at the edge (``paywarden.config.load_master_key``) and
passed down; only sealed secrets reach the database (:mod:`paywarden.trust.custody`). The
randomness for new keys and nonces is drawn here, never in the domain. Creating and rotating
a key are security decisions, so each writes an audit record in the same transaction.

Concurrency: the database allows one active key per purpose (a partial unique index). Two
nodes creating the first key at once both insert with ON CONFLICT DO NOTHING and then both
sign with whichever key won; two rotations at once lock the active row, and the later one
fails with a conflict instead of retiring a key it never saw.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.kernel.errors import Conflict, InvariantViolation
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal
from paywarden.services import audit
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_keys import platform_keys
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust import custody
from paywarden.trust.custody import (
    ALG_FOR_PURPOSE,
    NONCE_BYTES,
    PUBLISH_OVERLAP_DEFAULT,
    RANDOM_BYTES,
    KeyRecord,
    KeyStatus,
    PlatformSigner,
    Purpose,
)
from paywarden.trust.keys import PrivateKey, b64url_decode

__all__ = [
    "OpenedSigners",
    "PlatformSigner",
    "active_signer",
    "audit_public_keys",
    "list_keys",
    "prefetch_active",
    "published_jwks",
    "rotate",
    "verification_keys",
]

_keys = platform_keys
# 'active' is written into the SQL, not bound: SQLite can then use the partial unique index
# (status = 'active') when it prepares the statement, instead of preparing it anew on every
# run to check a bound value against the index (65 to 72 µs for this one-row read, timed).
_IS_ACTIVE = _keys.c.status == literal_column(f"'{KeyStatus.ACTIVE.value}'")
_ACTIVE = select(_keys).where(_keys.c.purpose == bindparam("purpose"), _IS_ACTIVE)
_ACTIVE_LOCKED = _ACTIVE.with_for_update()
_ACTIVE_KID = select(_keys.c.kid, _keys.c.alg).where(
    _keys.c.purpose == bindparam("purpose"), _IS_ACTIVE
)


def prefetch_active(uow: UnitOfWork, purpose: Purpose) -> None:
    """Send ahead (``UnitOfWork.prefetch``, stable: no payment writes a key) the read of
    which key is active for ``purpose`` that :func:`active_signer` makes first."""
    uow.prefetch(_ACTIVE_KID, {"purpose": purpose.value}, stable=True)


class OpenedSigners:
    """Signers already opened (``custody.open_signer``), by kid, purpose, algorithm and master
    key; thread-safe, bounded (cleared when full). A kid is its key's thumbprint, so what it
    opens to never changes: only the unsealing and the rebuilding of the key (about as
    costly as a signature) are remembered. Which key is active stays the caller's to read
    every time, so a rotation or a revocation takes effect at once."""

    def __init__(self, size_max: int = 64) -> None:
        invariant(size_max >= 1, "the opened signers hold at least one")
        self._size_max = size_max
        self._opened: dict[tuple[str, str, str, bytes], PlatformSigner] = {}
        self._lock = threading.Lock()

    def known(
        self, kid: str, purpose: Purpose, alg: str, master_key: bytes
    ) -> PlatformSigner | None:
        """The signer of ``kid`` if it was opened already, without reading its secret."""
        with self._lock:
            return self._opened.get((kid, str(purpose), alg, master_key))

    def open(self, record: KeyRecord, master_key: bytes) -> PlatformSigner:
        """``custody.open_signer``, once a key: opened before, the same signer again."""
        signer = self.known(record.kid, record.purpose, record.alg, master_key)
        if signer is None:
            signer = custody.open_signer(record, master_key)
            with self._lock:
                if len(self._opened) >= self._size_max:
                    self._opened.clear()
                self._opened[(record.kid, str(record.purpose), record.alg, master_key)] = signer
        return signer


_OPENED = OpenedSigners()


def active_signer(uow: UnitOfWork, purpose: Purpose, master_key: bytes) -> PlatformSigner:
    """The key that signs for ``purpose``, opened; the first one is made on demand.

    Which key is active is read from the store every time, so a rotation on any node takes
    effect at once everywhere; only the opening (unsealing the secret and rebuilding the
    key, which every receipt would otherwise pay for) is remembered, by kid: a kid is its
    key's thumbprint, so what it opens to never changes. Once opened, the key's id is all
    that is read (not its sealed secret)."""
    active = uow.execute(_ACTIVE_KID, {"purpose": purpose.value}).one_or_none()
    if active is not None:
        known = _OPENED.known(active.kid, purpose, active.alg, master_key)
        if known is not None:
            return known
    record = _active(uow, purpose)
    if record is None:
        _create_first(uow, purpose, master_key)
        record = _active(uow, purpose)
    if record is None:
        raise InvariantViolation(f"an active {purpose} key was just inserted, yet none is found")
    return _OPENED.open(record, master_key)


def rotate(
    uow: UnitOfWork,
    purpose: Purpose,
    master_key: bytes,
    *,
    overlap: timedelta = PUBLISH_OVERLAP_DEFAULT,
    actor: Principal | None = None,
) -> KeyRecord:
    """Make a new active key for ``purpose``; the old one is retired and stays published for
    ``overlap``, and keeps verifying what it signed. Returns the new key's record."""
    now = uow.clock.now()
    old = _active(uow, purpose, for_update=True)
    new, _private = _new_key(purpose, master_key, now)
    changed = custody.rotate([old] if old else [], new, now, overlap)
    for record in changed:
        # Another rotation that committed first shows as a retired row that no longer matches
        # or as an active row the insert collides with; either way this one must not proceed.
        if record.kid == new.kid:
            written = _insert_unless_active_exists(uow, record)
        else:
            written = uow.execute(
                update(_keys)
                .where(_keys.c.kid == record.kid, _keys.c.status == KeyStatus.ACTIVE.value)
                .values(_row(record))
            ).rowcount
        if written != 1:
            raise Conflict(f"the {purpose} key was rotated concurrently; run again")
    audit.record(
        uow,
        "platform_key.rotated",
        actor,
        new.kid,
        {
            "purpose": purpose.value,
            "alg": new.alg,
            "retired_kid": old.kid if old else None,
            "publish_overlap_s": int(overlap.total_seconds()),
        },
    )
    return new


def list_keys(uow: UnitOfWork) -> list[KeyRecord]:
    """Every key, by purpose, newest first."""
    rows = uow.execute(
        select(_keys).order_by(_keys.c.purpose, _keys.c.created_at.desc(), _keys.c.kid)
    ).all()
    return [_record(row) for row in rows]


def published_jwks(uow: UnitOfWork) -> dict[str, list[dict[str, Any]]]:
    """The JWK set relying parties fetch: active keys, and retired ones within their overlap."""
    now = uow.clock.now()
    published = [r for r in list_keys(uow) if custody.is_published(r, now)]
    published.sort(key=lambda r: r.status != KeyStatus.ACTIVE)  # stable: active keys first
    return {"keys": [custody.public_jwk(r) for r in published]}


def verification_keys(uow: UnitOfWork) -> dict[str, list[dict[str, Any]]]:
    """Every key whose signatures are still accepted (all but revoked ones), as a JWK set:
    what verifies old receipts after any number of rotations."""
    return {"keys": [custody.public_jwk(r) for r in list_keys(uow) if custody.is_trusted(r)]}


def audit_public_keys(uow: UnitOfWork) -> dict[str, bytes]:
    """Audit checkpoint keys for :func:`paywarden.services.audit.verify`: kid -> raw Ed25519."""
    return {
        r.kid: b64url_decode(r.public_jwk["x"])
        for r in list_keys(uow)
        if r.purpose == Purpose.AUDIT_CHECKPOINT and custody.is_trusted(r)
    }


# --- helpers -----------------------------------------------------------------------------


def _new_key(purpose: Purpose, master_key: bytes, now: datetime) -> tuple[KeyRecord, PrivateKey]:
    alg = ALG_FOR_PURPOSE[purpose]
    return custody.new_key(
        purpose,
        randomness=secrets.token_bytes(RANDOM_BYTES[alg]),
        nonce=secrets.token_bytes(NONCE_BYTES),
        master_key=master_key,
        now=now,
    )


def _create_first(uow: UnitOfWork, purpose: Purpose, master_key: bytes) -> None:
    record, _private = _new_key(purpose, master_key, uow.clock.now())
    if _insert_unless_active_exists(uow, record) == 1:
        audit.record(
            uow,
            "platform_key.created",
            None,
            record.kid,
            {"purpose": purpose.value, "alg": record.alg},
        )


def _insert_unless_active_exists(uow: UnitOfWork, record: KeyRecord) -> int:
    """Insert a key; 0 rows when its purpose already has an active key (unique index)."""
    dialect_insert = postgresql_insert if uow.dialect == "postgresql" else sqlite_insert
    statement = (
        dialect_insert(_keys)
        .values(**_row(record))
        .on_conflict_do_nothing()
        .returning(_keys.c.kid)  # rowcount is -1 for this statement on psycopg
    )
    return len(uow.execute(statement).all())


def _active(uow: UnitOfWork, purpose: Purpose, *, for_update: bool = False) -> KeyRecord | None:
    query = _ACTIVE_LOCKED if for_update else _ACTIVE
    row = uow.execute(query, {"purpose": purpose.value}).one_or_none()
    return _record(row) if row is not None else None


def _row(record: KeyRecord) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "purpose": record.purpose.value,
        "alg": record.alg,
        "public_jwk": dict(record.public_jwk),
        "private_ciphertext": record.private_ciphertext,
        "status": record.status.value,
        "created_at": record.created_at,
        "activated_at": record.activated_at,
        "retired_at": record.retired_at,
        "publish_until": record.publish_until,
    }


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        kid=row.kid,
        purpose=Purpose(row.purpose),
        alg=row.alg,
        public_jwk={str(k): str(v) for k, v in row.public_jwk.items()},
        private_ciphertext=row.private_ciphertext,
        status=KeyStatus(row.status),
        created_at=row.created_at,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
        publish_until=row.publish_until,
    )


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
