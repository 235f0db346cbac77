"""The audit log's tables: append under the partition's head lock, load, write checkpoints.

An append locks its partition's row in ``audit_heads`` (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite every writing transaction already holds the database through
``BEGIN IMMEDIATE``), seals the record with the pure :func:`paywarden.trust.audit.seal`,
inserts it and moves the head, all in the caller's transaction: the audit record commits
with the change it records, or neither does. Writers of different partitions never wait for
each other.

:func:`load_all` reads checkpoints, then heads, then records. At READ COMMITTED each
statement sees a later moment than the one before, and chains only grow, so every head and
checkpoint read refers to records the later read still sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Text, bindparam, case, cast, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.kernel.invariant import invariant
from paywarden.store import schema
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditRecord,
    ChainHead,
    Checkpoint,
    Signer,
    make_checkpoint,
    seal,
)

__all__ = [
    "UNDECODABLE_DATA_KEY",
    "StoredLog",
    "append",
    "append_all",
    "load_all",
    "load_checkpoints",
    "load_heads",
    "load_records",
    "record_from_row",
    "write_checkpoint",
]

# A record whose stored data is not a JSON object loads as {UNDECODABLE_DATA_KEY: raw text}:
# its hash then fails to match, and verification names it instead of crashing on it.
UNDECODABLE_DATA_KEY = "$undecodable"

_records = schema.audit_records
_heads = schema.audit_heads
_checkpoints = schema.audit_checkpoints


@dataclass(frozen=True, slots=True)
class StoredLog:
    records: dict[int, list[AuditRecord]]  # by partition, each in sequence order
    heads: dict[int, ChainHead]
    checkpoints: list[Checkpoint]  # by id


_HEAD_LOCKED = (
    select(_heads.c.last_sequence, _heads.c.head_hash)
    .where(_heads.c.partition == bindparam("head_partition"))
    .with_for_update()
)
_INSERT_RECORD = insert(_records)
_MOVE_HEAD = (
    update(_heads)
    .where(
        _heads.c.partition == bindparam("head_partition"),
        _heads.c.last_sequence == bindparam("head_sequence"),
    )
    .values(last_sequence=bindparam("new_sequence"), head_hash=bindparam("new_hash"))
)
# The same move on PostgreSQL, checked by the server: unless it moved the head, the cast
# fails, and the error carries the reason. The check then needs no answer before the
# transaction's COMMIT, which goes in the same round trip (UnitOfWork.commit(finish=True)):
# the server skips it after the failure.
_HEAD_MOVED_UNDER_LOCK = "audit head moved under its lock"
_MOVED = _MOVE_HEAD.returning(_heads.c.partition).cte("moved")
_MOVE_HEAD_CHECKED = select(
    cast(case((func.count() == 1, "1"), else_=_HEAD_MOVED_UNDER_LOCK), Integer).label("moved")
).select_from(_MOVED)


def append(uow: UnitOfWork, audit_entry: AuditEntry) -> AuditRecord:
    """Append to the entry's partition inside the caller's transaction."""
    invariant(not uow.read_only, "audit records are not written in a read-only transaction")
    head = _lock_head(uow, audit_entry.partition)
    record = seal(audit_entry, sequence=head.sequence + 1, prev_hash=head.hash)
    uow.write(_INSERT_RECORD, _row(record))
    _move_head(uow, head, ChainHead(record.partition, record.sequence, record.hash))
    return record


def append_all(uow: UnitOfWork, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
    """Append ``entries`` in order, locking their partitions' heads in partition order
    first (so that two transactions appending at once never deadlock)."""
    invariant(not uow.read_only, "audit records are not written in a read-only transaction")
    partitions = sorted({entry.partition for entry in entries})
    for partition in partitions:  # every head's lock in one round trip, in this order
        uow.prefetch(_HEAD_LOCKED, {"head_partition": partition})
    heads = {p: _lock_head(uow, p) for p in partitions}
    moved = dict(heads)
    records = []
    for audit_entry in entries:
        head = moved[audit_entry.partition]
        record = seal(audit_entry, sequence=head.sequence + 1, prev_hash=head.hash)
        moved[record.partition] = ChainHead(record.partition, record.sequence, record.hash)
        records.append(record)
    uow.write(_INSERT_RECORD, [_row(record) for record in records])
    for partition, head in heads.items():
        _move_head(uow, head, moved[partition])
    return records


def _move_head(uow: UnitOfWork, head: ChainHead, to: ChainHead) -> None:
    moved = {
        "head_partition": head.partition,
        "head_sequence": head.sequence,
        "new_sequence": to.sequence,
        "new_hash": to.hash,
    }
    if uow.dialect == "postgresql":
        uow.write(_MOVE_HEAD_CHECKED, moved)
        return
    lost = f"{_HEAD_MOVED_UNDER_LOCK} (partition {head.partition})"
    uow.write(_MOVE_HEAD, moved, rows=1, lost=lost)


def _lock_head(uow: UnitOfWork, partition: int) -> ChainHead:
    row = _select_head(uow, partition)
    if row is None:
        # The partition's first append: create its head, or wait for whoever is creating it.
        flavour = postgresql_insert if uow.dialect == "postgresql" else sqlite_insert
        uow.execute(
            flavour(_heads)
            .values(partition=partition, last_sequence=0, head_hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["partition"])
        )
        row = _select_head(uow, partition)
    invariant(row is not None, f"audit head {partition} is missing after its insert")
    return ChainHead(partition, int(row.last_sequence), row.head_hash)


def _select_head(uow: UnitOfWork, partition: int) -> Any:
    return uow.execute(_HEAD_LOCKED, {"head_partition": partition}).one_or_none()


def _row(record: AuditRecord) -> dict[str, Any]:
    return {
        "partition": record.partition,
        "sequence": record.sequence,
        "event_type": record.event_type,
        "actor_type": record.actor_type,
        "actor_id": record.actor_id,
        "subject_id": record.subject_id,
        "data": dict(record.data),
        "occurred_at": record.occurred_at,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def record_from_row(row: Mapping[str, Any]) -> AuditRecord:
    """A stored record, with ``data`` as the stored JSON text (never parsed by the driver, so
    that a corrupted value loads as a failing record rather than an exception)."""
    return AuditRecord(
        partition=int(row["partition"]),
        sequence=int(row["sequence"]),
        event_type=row["event_type"],
        actor_type=row["actor_type"],
        actor_id=row["actor_id"],
        subject_id=row["subject_id"],
        data=_decode_data(row["data"]),
        occurred_at=row["occurred_at"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _decode_data(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {UNDECODABLE_DATA_KEY: raw}
    return value if isinstance(value, dict) else {UNDECODABLE_DATA_KEY: raw}


def load_records(uow: UnitOfWork) -> dict[int, list[AuditRecord]]:
    columns = [column for column in _records.c if column.name not in {"id", "data"}]
    query = select(*columns, cast(_records.c.data, Text).label("data")).order_by(
        _records.c.partition, _records.c.sequence
    )
    by_partition: dict[int, list[AuditRecord]] = {}
    for row in uow.execute(query).mappings():
        record = record_from_row(row)
        by_partition.setdefault(record.partition, []).append(record)
    return by_partition


def load_heads(uow: UnitOfWork) -> dict[int, ChainHead]:
    rows = uow.execute(select(_heads).order_by(_heads.c.partition)).all()
    return {
        row.partition: ChainHead(row.partition, int(row.last_sequence), row.head_hash)
        for row in rows
    }


def load_checkpoints(uow: UnitOfWork) -> list[Checkpoint]:
    rows = uow.execute(_checkpoint_query().order_by(_checkpoints.c.id)).all()
    return [_checkpoint_from_row(row) for row in rows]


def load_all(uow: UnitOfWork) -> StoredLog:
    """The whole log, read in the order that keeps it consistent (see the module docstring)."""
    checkpoints = load_checkpoints(uow)
    heads = load_heads(uow)
    return StoredLog(records=load_records(uow), heads=heads, checkpoints=checkpoints)


def _checkpoint_query() -> Any:
    columns = [column for column in _checkpoints.c if column.name != "heads"]
    return select(*columns, cast(_checkpoints.c.heads, Text).label("heads"))


def _checkpoint_from_row(row: Any) -> Checkpoint:
    return Checkpoint(
        id=int(row.id),
        created_at=row.created_at,
        heads=_decode_heads(row.heads),
        prev_checkpoint_hash=row.prev_checkpoint_hash,
        key_id=row.key_id,
        hash=row.hash,
        signature=_decode_signature(row.signature),
    )


def _decode_heads(raw: str) -> tuple[ChainHead, ...]:
    """The stored heads; unreadable ones as one impossible head, so the hash fails."""
    try:
        return tuple(
            ChainHead(int(head["partition"]), int(head["sequence"]), str(head["hash"]))
            for head in json.loads(raw)
        )
    except (ValueError, TypeError, KeyError):
        return (ChainHead(-1, -1, raw),)


def _decode_signature(raw: str) -> bytes:
    try:
        return bytes.fromhex(raw)
    except ValueError:
        return b""  # verifies under no key


def write_checkpoint(uow: UnitOfWork, signer: Signer) -> Checkpoint:
    """Sign every partition's current head, chained to the previous checkpoint.

    The heads are read in one statement, so they are one moment's committed state; appends
    are not blocked. Checkpoint writers queue on a table lock (PostgreSQL) or on the SQLite
    write lock, so each one follows the one before.
    """
    invariant(not uow.read_only, "checkpoints are not written in a read-only transaction")
    if uow.dialect == "postgresql":
        uow.execute(text("LOCK TABLE audit_checkpoints IN EXCLUSIVE MODE"))
    last = uow.execute(_checkpoint_query().order_by(_checkpoints.c.id.desc()).limit(1)).first()
    previous = _checkpoint_from_row(last) if last is not None else None
    checkpoint = make_checkpoint(
        created_at=uow.clock.now(),
        heads=list(load_heads(uow).values()),
        previous=previous,
        signer=signer,
    )
    uow.execute(
        insert(_checkpoints).values(
            id=checkpoint.id,
            created_at=checkpoint.created_at,
            heads=[
                {"partition": h.partition, "sequence": h.sequence, "hash": h.hash}
                for h in checkpoint.heads
            ],
            prev_checkpoint_hash=checkpoint.prev_checkpoint_hash,
            hash=checkpoint.hash,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature.hex(),
        )
    )
    return checkpoint


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
