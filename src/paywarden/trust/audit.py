"""The tamper-evident audit log: hash-chained records in partitions, and signed checkpoints.

Records
    Every security decision is one :class:`AuditRecord`. Records live in ``N`` independent
    hash chains (partitions, ``N`` = 16 by default) so that no single chain head is a row every
    writer waits for. A record's partition is the first 8 bytes of SHA-256 over its partition
    key, as a big-endian integer, modulo ``N``; the key is the subject id, else
    ``actor_type:actor_id``, else the event type. Every event about one subject therefore lands,
    in order, in one chain. Changing ``N`` later is safe: old chains stay valid, and the
    partition number is part of each record's hash.

Record hash
    ``hash`` is the lowercase hex SHA-256 of the RFC 8785 canonical JSON of the object::

        {"partition": int, "sequence": int, "event_type": str,
         "actor_type": str | null, "actor_id": str | null, "subject_id": str | null,
         "data": {...}, "occurred_at": "2026-11-29T09:00:00.000000Z", "prev_hash": "<hex>"}

    ``sequence`` starts at 1 in each partition; ``prev_hash`` is the previous record's hash in
    the partition, or 64 zeros (:data:`GENESIS_HASH`) for the first. ``occurred_at`` is RFC 3339
    in UTC with microseconds, the precision the store keeps, so no stored digit escapes the hash.
    ``data`` holds JSON values only, with integers (amounts in minor units) and never floats.

Checkpoints
    A :class:`Checkpoint` takes every partition's head ``(partition, sequence, hash)`` at one
    moment and is chained to the previous checkpoint. Its ``hash`` is the SHA-256 of the RFC
    8785 canonical JSON of ``{"type": "paywarden.audit.checkpoint.v1", "id", "created_at",
    "heads": [{"partition", "sequence", "hash"}, ...] (by partition), "prev_checkpoint_hash",
    "key_id"}``, and ``signature`` is Ed25519 over those same canonical bytes. The first
    checkpoint (id 1) has ``prev_checkpoint_hash`` = 64 zeros.

What verification can and cannot prove
    Anyone with write access to the database can recompute SHA-256, so the chains alone catch
    careless edits; signed checkpoints make everything up to the newest checkpoint provable. A
    well-formed record appended after the newest checkpoint, or the removal of the newest
    checkpoints together with the records they cover, is caught only by publishing checkpoint
    hashes somewhere the database's writers cannot reach.

Nothing here reads the clock, draws randomness or touches storage: times and signers come in.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import nacl.exceptions
import nacl.signing

from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.errors import InvariantViolation
from paywarden.kernel.invariant import invariant
from paywarden.trust.canonical import canonical

__all__ = [
    "GENESIS_HASH",
    "PARTITIONS_DEFAULT",
    "AuditEntry",
    "AuditRecord",
    "ChainHead",
    "Checkpoint",
    "Ed25519Signer",
    "Problem",
    "ProblemKind",
    "Signer",
    "VerifyReport",
    "checkpoint_hash",
    "checkpoint_message",
    "ed25519_key_id",
    "entry",
    "make_checkpoint",
    "partition_for",
    "record_hash",
    "record_message",
    "seal",
    "timestamp",
    "verify",
]

GENESIS_HASH = "0" * 64
PARTITIONS_DEFAULT = 16
PARTITIONS_MAX = 4096
CHECKPOINT_TYPE = "paywarden.audit.checkpoint.v1"
EVENT_TYPE_LENGTH_MAX = 64
DATA_DEPTH_MAX = 16
# RFC 8785 (I-JSON) numbers: integers beyond 2**53 - 1 have no exact canonical form.
JSON_INTEGER_MAX = 2**53 - 1
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# What hashing stored (possibly tampered) values can raise: such a record simply fails.
_UNHASHABLE = (InvariantViolation, ValueError, TypeError, OverflowError)


# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a service records; the store gives it its place in the chain (:func:`seal`)."""

    partition: int
    event_type: str
    actor_type: str | None
    actor_id: str | None
    subject_id: str | None
    data: Mapping[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    partition: int
    sequence: int
    event_type: str
    actor_type: str | None
    actor_id: str | None
    subject_id: str | None
    data: Mapping[str, Any]
    occurred_at: datetime
    prev_hash: str
    hash: str


def partition_for(key: str, partitions: int) -> int:
    """The partition of a partition key: SHA-256, first 8 bytes big-endian, modulo ``N``."""
    invariant(1 <= partitions <= PARTITIONS_MAX, f"partitions must be 1 to {PARTITIONS_MAX}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def entry(
    *,
    event_type: str,
    actor_type: str | None,
    actor_id: str | None,
    subject_id: str | None,
    data: Mapping[str, Any],
    occurred_at: datetime,
    partitions: int = PARTITIONS_DEFAULT,
) -> AuditEntry:
    """A checked entry, placed in its partition. ``data`` is copied, so later edits of the
    caller's dict cannot reach a record after its hash is taken."""
    invariant(
        len(event_type) <= EVENT_TYPE_LENGTH_MAX and _EVENT_TYPE.match(event_type) is not None,
        f"audit event types are named resource.action: {event_type!r}",
    )
    invariant(actor_id is None or actor_type is not None, "an actor id needs an actor type")
    if subject_id:
        key = subject_id
    elif actor_type is not None:
        key = f"{actor_type}:{actor_id or ''}"
    else:
        key = event_type
    return AuditEntry(
        partition=partition_for(key, partitions),
        event_type=event_type,
        actor_type=actor_type,
        actor_id=actor_id,
        subject_id=subject_id,
        data=_json_object(data),
        occurred_at=ensure_utc(occurred_at),
    )


def seal(audit_entry: AuditEntry, sequence: int, prev_hash: str) -> AuditRecord:
    """The record at ``sequence`` of its partition, after the record whose hash is
    ``prev_hash``."""
    invariant(sequence >= 1, "audit sequences start at 1")
    invariant(_HEX64.match(prev_hash) is not None, "prev_hash is 64 lowercase hex digits")
    invariant((sequence == 1) == (prev_hash == GENESIS_HASH), "only sequence 1 follows genesis")
    unsealed = AuditRecord(
        partition=audit_entry.partition,
        sequence=sequence,
        event_type=audit_entry.event_type,
        actor_type=audit_entry.actor_type,
        actor_id=audit_entry.actor_id,
        subject_id=audit_entry.subject_id,
        data=audit_entry.data,
        occurred_at=audit_entry.occurred_at,
        prev_hash=prev_hash,
        hash="",
    )
    return replace(unsealed, hash=record_hash(unsealed))


def timestamp(instant: datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2026-11-29T09:00:00.000000Z``."""
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def record_message(record: AuditRecord) -> bytes:
    """The canonical bytes a record's hash covers: every field but ``hash``."""
    body: dict[str, Any] = {
        "partition": record.partition,
        "sequence": record.sequence,
        "event_type": record.event_type,
        "actor_type": record.actor_type,
        "actor_id": record.actor_id,
        "subject_id": record.subject_id,
        "data": _json_object(record.data),
        "occurred_at": timestamp(record.occurred_at),
        "prev_hash": record.prev_hash,
    }
    return canonical(body)


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(record_message(record)).hexdigest()


def _json_object(data: Mapping[str, Any]) -> dict[str, Any]:
    invariant(isinstance(data, Mapping), "audit data is a JSON object")
    invariant(all(isinstance(key, str) for key in data), "audit data keys are strings")
    return {key: _json_value(item, 1) for key, item in data.items()}


def _json_value(value: Any, depth: int) -> Any:
    """A deep copy of ``value`` if it is JSON without floats; raises otherwise."""
    invariant(depth <= DATA_DEPTH_MAX, f"audit data nests deeper than {DATA_DEPTH_MAX}")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        invariant(abs(value) <= JSON_INTEGER_MAX, "audit data integers fit in 53 bits")
        return value
    if isinstance(value, Mapping):
        invariant(all(isinstance(k, str) for k in value), "audit data keys are strings")
        return {key: _json_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item, depth + 1) for item in value]
    raise InvariantViolation(f"audit data holds JSON without floats, not {type(value).__name__}")


# --- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainHead:
    partition: int
    sequence: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    created_at: datetime
    heads: tuple[ChainHead, ...]
    prev_checkpoint_hash: str
    key_id: str
    hash: str
    signature: bytes


class Signer(Protocol):
    """What checkpoints need of a signing key; key custody supplies the real one."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature (64 bytes) over ``message``."""
        ...


class Ed25519Signer:
    """A :class:`Signer` over a PyNaCl signing key held in memory."""

    def __init__(self, signing_key: nacl.signing.SigningKey, key_id: str | None = None) -> None:
        self._signing_key = signing_key
        self.public_key = bytes(signing_key.verify_key)
        self._key_id = key_id or ed25519_key_id(self.public_key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(message).signature)


def ed25519_key_id(public_key: bytes) -> str:
    """The RFC 7638 JWK thumbprint of an Ed25519 public key (base64url, no padding)."""
    invariant(len(public_key) == 32, "an Ed25519 public key is 32 bytes")
    jwk: dict[str, Any] = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(public_key)}
    return _b64url(hashlib.sha256(canonical(jwk)).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def checkpoint_message(checkpoint: Checkpoint) -> bytes:
    """The canonical bytes a checkpoint's hash and signature cover."""
    body: dict[str, Any] = {
        "type": CHECKPOINT_TYPE,
        "id": checkpoint.id,
        "created_at": timestamp(checkpoint.created_at),
        "heads": [
            {"partition": head.partition, "sequence": head.sequence, "hash": head.hash}
            for head in sorted(checkpoint.heads, key=lambda head: head.partition)
        ],
        "prev_checkpoint_hash": checkpoint.prev_checkpoint_hash,
        "key_id": checkpoint.key_id,
    }
    return canonical(body)


def checkpoint_hash(checkpoint: Checkpoint) -> str:
    return hashlib.sha256(checkpoint_message(checkpoint)).hexdigest()


def make_checkpoint(
    *,
    created_at: datetime,
    heads: Sequence[ChainHead],
    previous: Checkpoint | None,
    signer: Signer,
) -> Checkpoint:
    """The next checkpoint after ``previous``, signed. Refuses heads that went backwards
    since ``previous``: signing them would bless a truncated or rewritten log."""
    if previous is not None:
        backwards = _backwards(previous.heads, heads)
        invariant(backwards is None, f"refusing to sign the audit log: {backwards}")
    unsigned = Checkpoint(
        id=previous.id + 1 if previous else 1,
        created_at=ensure_utc(created_at),
        heads=tuple(sorted(heads, key=lambda head: head.partition)),
        prev_checkpoint_hash=previous.hash if previous else GENESIS_HASH,
        key_id=signer.key_id,
        hash="",
        signature=b"",
    )
    message = checkpoint_message(unsigned)
    return replace(
        unsigned, hash=hashlib.sha256(message).hexdigest(), signature=signer.sign(message)
    )


def _backwards(before: Sequence[ChainHead], after: Sequence[ChainHead]) -> str | None:
    """How ``after`` contradicts ``before`` (a chain shorter, or different at equal length)."""
    now = {head.partition: head for head in after}
    for head in before:
        later = now.get(head.partition)
        if later is None or later.sequence < head.sequence:
            reached = later.sequence if later else 0
            return f"partition {head.partition} went back from {head.sequence} to {reached}"
        if later.sequence == head.sequence and later.hash != head.hash:
            return f"partition {head.partition} changed its head at sequence {head.sequence}"
    return None


# --- verification ------------------------------------------------------------------------


class ProblemKind(StrEnum):
    MODIFIED = "modified"  # the stored hash does not match the record, or the link is wrong
    GAP = "gap"  # records deleted: a sequence is missing
    REORDERED = "reordered"  # a record stands at another record's place
    INSERTED = "inserted"  # a record the rest of the chain does not know
    TRUNCATED = "truncated"  # a checkpoint or head row shows records that are gone or differ
    CHECKPOINT_MODIFIED = "checkpoint_modified"  # its stored hash does not match its contents
    BAD_SIGNATURE = "bad_signature"
    BROKEN_CHECKPOINT_CHAIN = "broken_checkpoint_chain"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong. For records: the partition, the sequence that belongs at the bad place,
    and ``index``, the place in the log ordered by (partition, sequence). For checkpoints: the
    checkpoint's id."""

    kind: ProblemKind
    detail: str
    partition: int | None = None
    sequence: int | None = None
    index: int | None = None
    checkpoint_id: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    records: int
    partitions: int
    checkpoints: int
    signatures_verified: int
    signatures_unverified: int  # no public keys were given: chains checked, signatures not
    problems: tuple[Problem, ...]  # record problems by index (one per partition), then checkpoints

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def verify(
    records_by_partition: Mapping[int, Sequence[AuditRecord]],
    checkpoints: Sequence[Checkpoint],
    public_keys: Mapping[str, bytes],
    *,
    heads: Mapping[int, ChainHead] | None = None,
) -> VerifyReport:
    """Check every chain, the checkpoint chain and signatures, and every chain against the
    trusted checkpoints and (unsigned) ``heads`` rows. With no ``public_keys``, signatures are
    counted as unverified rather than failed. Records are given in stored order, each
    partition's sorted by sequence; checkpoints by id."""
    trusted, checkpoint_problems, verified, unverified = _check_checkpoints(
        checkpoints, public_keys
    )
    # What each partition was said to have reached, once per (sequence, hash), first source.
    claims: dict[int, dict[tuple[int, str], str]] = {}
    said = [(f"checkpoint {c.id}", head) for c in trusted for head in c.heads]
    said += [("the store's head row", head) for head in (heads or {}).values()]
    for source, head in said:
        claims.setdefault(head.partition, {}).setdefault((head.sequence, head.hash), source)
    record_problems: list[Problem] = []
    base_index = 0
    for partition in sorted(set(records_by_partition) | set(claims)):
        records = records_by_partition.get(partition, ())
        found = [
            _check_chain(partition, records, base_index),
            _check_claims(partition, claims.get(partition, {}), records, base_index),
        ]
        located = [problem for problem in found if problem is not None]
        if located:
            record_problems.append(min(located, key=lambda problem: problem.index or 0))
        base_index += len(records)
    return VerifyReport(
        records=base_index,
        partitions=sum(1 for records in records_by_partition.values() if records),
        checkpoints=len(checkpoints),
        signatures_verified=verified,
        signatures_unverified=unverified,
        problems=(*sorted(record_problems, key=lambda p: p.index or 0), *checkpoint_problems),
    )


def _check_chain(partition: int, records: Sequence[AuditRecord], base: int) -> Problem | None:
    expected_sequence, expected_prev = 1, GENESIS_HASH
    for position, record in enumerate(records):
        found = _judge(partition, records, position, expected_sequence, expected_prev)
        if found is not None:
            kind, detail = found
            return Problem(kind, detail, partition, expected_sequence, base + position)
        expected_sequence, expected_prev = record.sequence + 1, record.hash
    return None


def _judge(
    partition: int, records: Sequence[AuditRecord], position: int, sequence: int, prev: str
) -> tuple[ProblemKind, str] | None:
    """What is wrong with the record at ``position``, where ``sequence`` belongs, after a
    record with hash ``prev``; None when it and its link to the next record are sound."""
    record = records[position]
    if record.partition != partition:
        return ProblemKind.MODIFIED, f"a record of partition {record.partition} is filed here"
    if record.sequence != sequence:
        return _out_of_place(records, position, sequence)
    if not _sound(record):
        return _unsound(records, position, sequence)
    if record.prev_hash != prev:
        return ProblemKind.MODIFIED, f"prev_hash {record.prev_hash} should be {prev}"
    return _judge_link(records, position)


def _out_of_place(
    records: Sequence[AuditRecord], position: int, sequence: int
) -> tuple[ProblemKind, str]:
    stored = records[position].sequence
    if stored < 1:
        return ProblemKind.MODIFIED, f"sequence {stored} is not a sequence number"
    if stored == sequence - 1:
        return ProblemKind.INSERTED, f"a second record claims sequence {stored}"
    if stored < sequence or any(r.sequence == sequence for r in records[position + 1 :]):
        return ProblemKind.REORDERED, f"sequence {stored} stands where {sequence} belongs"
    return ProblemKind.GAP, _missing(sequence, stored - 1)


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"sequence {first} is missing"
    return f"sequences {first} to {last} are missing"


def _unsound(
    records: Sequence[AuditRecord], position: int, sequence: int
) -> tuple[ProblemKind, str]:
    """A record whose stored hash does not match: moved from elsewhere, or altered."""
    record = records[position]
    top = max(r.sequence for r in records) + 1
    moved_from = next(
        (s for s in range(1, top + 1) if s != sequence and _sound(replace(record, sequence=s))),
        None,
    )
    if moved_from is None:
        return ProblemKind.MODIFIED, "the stored hash does not match the record's contents"
    rightful_later = any(_sound(replace(r, sequence=sequence)) for r in records[position + 1 :])
    if moved_from > sequence and not rightful_later:
        renumbered = f"the record of sequence {moved_from} was renumbered {sequence}"
        return ProblemKind.GAP, f"{renumbered}: {_missing(sequence, moved_from - 1)}"
    return ProblemKind.REORDERED, f"the record of sequence {moved_from} stands at {sequence}"


def _judge_link(records: Sequence[AuditRecord], position: int) -> tuple[ProblemKind, str] | None:
    """Blame a sound record that the next record does not follow: it was slipped in before the
    next one (both name the same predecessor), or rewritten with a fresh hash."""
    record = records[position]
    following = records[position + 1] if position + 1 < len(records) else None
    if following is None or following.prev_hash == record.hash:
        return None
    if following.prev_hash == record.prev_hash:
        after = records[position + 2] if position + 2 < len(records) else None
        if after is not None and after.prev_hash == record.hash:
            return None  # the chain goes on from this record: the next one is the intruder
        return ProblemKind.INSERTED, "the chain goes on from the next record, not this one"
    if following.sequence == record.sequence + 1 and _sound(following):
        return ProblemKind.MODIFIED, "rewritten: the next record links to a different hash"
    return None


def _check_claims(
    partition: int, claims: Mapping[tuple[int, str], str], records: Sequence[AuditRecord], base: int
) -> Problem | None:
    """The earliest place where a chain contradicts what a checkpoint (or head row) says it
    had reached: a sequence that is gone, or a different record at the claimed head."""
    if not claims:
        return None
    position_of: dict[int, int] = {}
    for place, record in enumerate(records):
        position_of.setdefault(record.sequence, place)
    missing = 1
    while missing in position_of:
        missing += 1
    found: list[Problem] = []
    for (sequence, head_hash), source in claims.items():
        position = position_of.get(sequence)
        if sequence == 0 or (position is not None and records[position].hash == head_hash):
            continue
        if position is None:
            before = sum(1 for record in records if record.sequence < missing)
            detail = f"{source} says the chain reached sequence {sequence}; {missing} is gone"
            found.append(Problem(ProblemKind.TRUNCATED, detail, partition, missing, base + before))
            continue
        detail = (
            f"{source} says sequence {sequence} had hash {head_hash}; the stored record has "
            f"{records[position].hash} (cut back and regrown, or rewritten)"
        )
        found.append(Problem(ProblemKind.TRUNCATED, detail, partition, sequence, base + position))
    return min(found, key=lambda problem: problem.index or 0) if found else None


def _sound(record: AuditRecord) -> bool:
    """Whether the stored hash matches the record; data that cannot be hashed does not."""
    try:
        return record_hash(record) == record.hash
    except _UNHASHABLE:
        return False


def _check_checkpoints(
    checkpoints: Sequence[Checkpoint], public_keys: Mapping[str, bytes]
) -> tuple[list[Checkpoint], list[Problem], int, int]:
    """The checkpoints to trust, the problems found, and signatures verified and unchecked."""
    trusted: list[Checkpoint] = []
    problems: list[Problem] = []
    verified = unverified = 0
    previous: Checkpoint | None = None
    for checkpoint in checkpoints:
        found = (
            _checkpoint_problem(checkpoint, previous)
            or _heads_problem(checkpoint, trusted[-1] if trusted else None)
            or _signature_problem(checkpoint, public_keys)
        )
        if found is not None:
            problems.append(Problem(found[0], found[1], checkpoint_id=checkpoint.id))
        else:
            trusted.append(checkpoint)
            if public_keys:
                verified += 1
            else:
                unverified += 1
        previous = checkpoint
    return trusted, problems, verified, unverified


def _checkpoint_problem(
    checkpoint: Checkpoint, previous: Checkpoint | None
) -> tuple[ProblemKind, str] | None:
    try:
        recomputed = checkpoint_hash(checkpoint)
    except _UNHASHABLE:
        recomputed = ""
    if recomputed != checkpoint.hash:
        return ProblemKind.CHECKPOINT_MODIFIED, "the stored hash does not match its contents"
    expected_id = previous.id + 1 if previous else 1
    expected_prev = previous.hash if previous else GENESIS_HASH
    if checkpoint.id != expected_id or checkpoint.prev_checkpoint_hash != expected_prev:
        return ProblemKind.BROKEN_CHECKPOINT_CHAIN, (
            f"checkpoint {checkpoint.id} should be {expected_id} and follow {expected_prev}, "
            f"but follows {checkpoint.prev_checkpoint_hash}"
        )
    return None


def _heads_problem(
    checkpoint: Checkpoint, last_trusted: Checkpoint | None
) -> tuple[ProblemKind, str] | None:
    backwards = _backwards(last_trusted.heads, checkpoint.heads) if last_trusted else None
    if backwards is not None:
        return ProblemKind.BROKEN_CHECKPOINT_CHAIN, backwards
    return None


def _signature_problem(
    checkpoint: Checkpoint, public_keys: Mapping[str, bytes]
) -> tuple[ProblemKind, str] | None:
    if not public_keys:
        return None
    public_key = public_keys.get(checkpoint.key_id)
    if public_key is None:
        return ProblemKind.BAD_SIGNATURE, f"signed by unknown key {checkpoint.key_id}"
    try:
        nacl.signing.VerifyKey(public_key).verify(
            checkpoint_message(checkpoint), checkpoint.signature
        )
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return ProblemKind.BAD_SIGNATURE, f"the signature does not verify under {checkpoint.key_id}"
    return None
