"""The audit log as the other services use it: record a decision, checkpoint, verify.

Every security decision (approve, deny, step-up, revoke, key change) calls :func:`record`
inside the transaction that makes the decision, so the record commits with it or not at all::

    audit.record(uow, "mandate.revoked", principal, mandate.id, {"reason": reason})

Checkpoints are signed by the platform's checkpoint key. All this module needs of it is a
:class:`~paywarden.trust.audit.Signer` (``key_id`` and ``sign(bytes) -> bytes``, Ed25519) to
write one, and ``public_keys`` (key id -> raw 32-byte Ed25519 public key, old keys included)
to verify; key custody supplies both. An in-memory key works meanwhile::

    signer = Ed25519Signer(nacl.signing.SigningKey(seed))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paywarden.kernel.principals import Principal
from paywarden.store import audit_repo
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust import audit
from paywarden.trust.audit import (
    PARTITIONS_DEFAULT,
    AuditRecord,
    Checkpoint,
    Signer,
    VerifyReport,
)

__all__ = ["checkpoint", "record", "record_at_end", "verify"]


def record(
    uow: UnitOfWork,
    event_type: str,
    actor: Principal | None,
    subject_id: str | None,
    data: Mapping[str, Any],
    *,
    partitions: int = PARTITIONS_DEFAULT,
) -> AuditRecord:
    """Append one audit record in the caller's transaction. ``actor`` is None for the
    platform acting on its own (an expiry, a scheduled job)."""
    return audit_repo.append(uow, _entry(uow, event_type, actor, subject_id, data, partitions))


def _entry(
    uow: UnitOfWork,
    event_type: str,
    actor: Principal | None,
    subject_id: str | None,
    data: Mapping[str, Any],
    partitions: int,
) -> audit.AuditEntry:
    return audit.entry(
        event_type=event_type,
        actor_type=actor.type.value if actor else None,
        actor_id=actor.id if actor else None,
        subject_id=subject_id,
        data=data,
        occurred_at=uow.clock.now(),
        partitions=partitions,
    )


def record_at_end(
    uow: UnitOfWork,
    event_type: str,
    actor: Principal | None,
    subject_id: str | None,
    data: Mapping[str, Any],
) -> None:
    """:func:`record`, appended at the end of the caller's transaction (its partition's
    head is then locked only until the commit; see ``UnitOfWork.audit_at_end``)."""
    uow.audit_at_end(_entry(uow, event_type, actor, subject_id, data, PARTITIONS_DEFAULT))


def checkpoint(uow: UnitOfWork, signer: Signer) -> Checkpoint:
    """Sign every partition's head now, chained to the previous checkpoint."""
    return audit_repo.write_checkpoint(uow, signer)


def verify(uow: UnitOfWork, public_keys: Mapping[str, bytes]) -> VerifyReport:
    """Check the whole stored log. Without ``public_keys`` the chains, the checkpoint chain
    and the heads are checked, and signatures are reported as unverified."""
    log = audit_repo.load_all(uow)
    return audit.verify(log.records, log.checkpoints, public_keys, heads=log.heads)
