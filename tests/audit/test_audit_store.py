"""The audit log in the store, on SQLite and PostgreSQL: an append commits with its transaction,
sixteen threads keep every chain whole, checkpoints sign the heads, and each kind of tampering
with the stored rows is named by ``verify`` at its place in (partition, sequence) order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import nacl.signing
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import InvariantViolation
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.store import audit_repo, schema
from paywarden.store.outbox import emit
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.audit import (
    AuditEntry,
    AuditRecord,
    ChainHead,
    Ed25519Signer,
    ProblemKind,
    checkpoint_message,
    seal,
)
from round_trip_support import record_round_trips

PARTITIONS = 4
SIGNER = Ed25519Signer(nacl.signing.SigningKey(b"\x07" * 32))
KEYS = {SIGNER.key_id: SIGNER.public_key}
ADA = Principal(PrincipalType.USER, "usr_ada", False, "key_ada", "2026-11-29")
THREADS = 16
APPENDS_PER_THREAD = 10
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0


def record_many(store: Store, count: int, start: int = 0) -> None:
    def work(uow: UnitOfWork) -> None:
        for number in range(start, start + count):
            audit.record(
                uow,
                "mandate.approved",
                ADA,
                f"mnd_{number % 10}",
                {"amount": 100 + number, "n": number},
                partitions=PARTITIONS,
            )

    store.run(work)


def rows(store: Store, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    return store.run(
        lambda uow: [tuple(r) for r in uow.execute(text(sql), parameters)], read_only=True
    )


def execute(store: Store, sql: str, **parameters: Any) -> None:
    store.run(lambda uow: uow.execute(text(sql), parameters))


def verify(store: Store, keys: dict[str, bytes] | None = None) -> Any:
    chosen = KEYS if keys is None else keys
    return store.run(lambda uow: audit.verify(uow, chosen), read_only=True)


def assert_chains_whole(store: Store) -> None:
    """Independently of verify: sequences 1..n, each prev_hash the previous hash, heads last."""
    chains: dict[int, list[tuple[int, str, str]]] = {}
    for partition, sequence, prev_hash, hash_ in rows(
        store,
        "SELECT partition, sequence, prev_hash, hash FROM audit_records"
        " ORDER BY partition, sequence",
    ):
        chains.setdefault(partition, []).append((sequence, prev_hash, hash_))
    heads = {p: (s, h) for p, s, h in rows(store, "SELECT * FROM audit_heads")}
    assert set(heads) == set(chains)
    for partition, chain in chains.items():
        assert [s for s, _, _ in chain] == list(range(1, len(chain) + 1))
        links = [prev for _, prev, _ in chain]
        assert links == ["0" * 64] + [h for _, _, h in chain[:-1]]
        assert heads[partition] == (len(chain), chain[-1][2])


# --- appending -----------------------------------------------------------------------------


def test_appends_build_one_chain_per_partition(store: Store) -> None:
    record_many(store, 30)
    assert_chains_whole(store)
    report = verify(store)
    assert report.ok, report.problems
    assert (report.records, report.partitions) == (
        30,
        len(rows(store, "SELECT * FROM audit_heads")),
    )
    [(actor_type, actor_id, subject, data)] = rows(
        store,
        "SELECT actor_type, actor_id, subject_id, CAST(data AS TEXT) FROM audit_records"
        " WHERE subject_id = 'mnd_3' ORDER BY sequence LIMIT 1",
    )
    assert (actor_type, actor_id, subject) == ("user", "usr_ada", "mnd_3")
    assert '"amount": 103' in data


def test_a_record_returned_is_the_record_stored(store: Store, clock: FakeClock) -> None:
    clock.advance(timedelta(microseconds=123_457))
    made = store.run(lambda uow: audit.record(uow, "key.revoked", None, "key_1", {"why": "lost"}))
    loaded = store.run(audit_repo.load_records, read_only=True)
    assert loaded == {made.partition: [made]}
    assert made.occurred_at == clock.now() and made.actor_type is None


def test_an_audit_record_commits_with_its_transaction_or_not_at_all(store: Store) -> None:
    def decide_then_fail(uow: UnitOfWork) -> None:
        audit.record(uow, "mandate.revoked", ADA, "mnd_1", {"reason": "lost phone"})
        emit(uow, "api_key.revoked", False, {"id": "key_1"})
        raise RuntimeError("the decision failed after its audit record")

    with pytest.raises(RuntimeError):
        store.run(decide_then_fail)
    assert rows(store, "SELECT count(*) FROM audit_records") == [(0,)]
    assert rows(store, "SELECT count(*) FROM audit_heads") == [(0,)]
    assert rows(store, "SELECT count(*) FROM events") == [(0,)]

    def decide(uow: UnitOfWork) -> None:
        audit.record(uow, "mandate.revoked", ADA, "mnd_1", {"reason": "lost phone"})
        emit(uow, "api_key.revoked", False, {"id": "key_1"})

    store.run(decide)
    assert rows(store, "SELECT count(*) FROM audit_records") == [(1,)]
    assert rows(store, "SELECT count(*) FROM events") == [(1,)]
    assert verify(store).ok


def test_sixteen_threads_appending_and_checkpointing_keep_every_chain_whole(
    store: Store,
) -> None:
    barrier = threading.Barrier(THREADS, timeout=BARRIER_TIMEOUT_S)
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            barrier.wait()
            for step in range(APPENDS_PER_THREAD):
                # Half the writes share one subject: a hot partition; the rest spread out.
                subject = "mnd_hot" if step % 2 else f"mnd_{number}_{step}"
                store.run(
                    lambda uow, s=subject, n=step: audit.record(
                        uow, "mandate.approved", ADA, s, {"thread": number, "step": n}
                    )
                )
                if step == APPENDS_PER_THREAD // 2:
                    store.run(lambda uow: audit.checkpoint(uow, SIGNER))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert_chains_whole(store)
    report = verify(store)
    assert report.ok, report.problems
    assert report.records == THREADS * APPENDS_PER_THREAD
    assert (report.checkpoints, report.signatures_verified) == (THREADS, THREADS)


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoints_sign_every_head_and_chain_to_the_one_before(store: Store) -> None:
    record_many(store, 12)
    first = store.run(lambda uow: audit.checkpoint(uow, SIGNER))
    record_many(store, 12, start=12)
    second = store.run(lambda uow: audit.checkpoint(uow, SIGNER))
    assert (first.id, second.id) == (1, 2)
    assert (first.prev_checkpoint_hash, second.prev_checkpoint_hash) == ("0" * 64, first.hash)
    heads = {(p, s, h) for p, s, h in rows(store, "SELECT * FROM audit_heads")}
    assert {(h.partition, h.sequence, h.hash) for h in second.heads} == heads
    assert store.run(audit_repo.load_checkpoints, read_only=True) == [first, second]
    nacl.signing.VerifyKey(SIGNER.public_key).verify(checkpoint_message(second), second.signature)
    report = verify(store)
    assert report.ok and report.signatures_verified == 2
    unkeyed = verify(store, keys={})
    assert unkeyed.ok and unkeyed.signatures_unverified == 2


# --- tampering with the stored rows -------------------------------------------------------


class Log:
    """A stored log of 40 records in 4 partitions with checkpoints after 30 and after 40."""

    def __init__(self, store: Store) -> None:
        self.store = store
        record_many(store, 30)
        store.run(lambda uow: audit.checkpoint(uow, SIGNER))
        record_many(store, 10, start=30)
        store.run(lambda uow: audit.checkpoint(uow, SIGNER))
        self.order = [
            (p, s)
            for p, s in rows(
                store, "SELECT partition, sequence FROM audit_records ORDER BY partition, sequence"
            )
        ]
        counts: dict[int, int] = {}
        for partition, _sequence in self.order:
            counts[partition] = counts.get(partition, 0) + 1
        self.partition = max(counts, key=lambda p: counts[p])
        self.length = counts[self.partition]

    def index(self, sequence: int) -> int:
        return self.order.index((self.partition, sequence))

    def value(self, column: str, sequence: int) -> Any:
        [(value,)] = rows(
            self.store,
            f"SELECT {column} FROM audit_records WHERE partition = :p AND sequence = :s",
            p=self.partition,
            s=sequence,
        )
        return value

    def set(self, column: str, value: Any, sequence: int) -> None:
        cast = (
            "CAST(:v AS JSON)" if column == "data" and self.store.dialect == "postgresql" else ":v"
        )
        execute(
            self.store,
            f"UPDATE audit_records SET {column} = {cast} WHERE partition = :p AND sequence = :s",
            v=value,
            p=self.partition,
            s=sequence,
        )

    def renumber(self, old: int, new: int) -> None:
        execute(
            self.store,
            "UPDATE audit_records SET sequence = :new WHERE partition = :p AND sequence = :old",
            new=new,
            old=old,
            p=self.partition,
        )


def flip_first_digit(raw: str) -> str:
    position = next(i for i, char in enumerate(raw) if char.isdigit())
    return raw[:position] + str((int(raw[position]) + 1) % 10) + raw[position + 1 :]


def modify_a_data_byte(log: Log) -> tuple[ProblemKind, int]:
    raw = log.value("CAST(data AS TEXT)", 3)
    log.set("data", flip_first_digit(raw), 3)
    return ProblemKind.MODIFIED, 3


def modify_a_hash(log: Log) -> tuple[ProblemKind, int]:
    stored: str = log.value("hash", 2)
    log.set("hash", ("0" if stored[0] != "0" else "1") + stored[1:], 2)
    return ProblemKind.MODIFIED, 2


def delete_a_record(log: Log) -> tuple[ProblemKind, int]:
    execute(
        log.store,
        "DELETE FROM audit_records WHERE partition = :p AND sequence = 3",
        p=log.partition,
    )
    return ProblemKind.GAP, 3


def reorder_two_records(log: Log) -> tuple[ProblemKind, int]:
    log.renumber(3, 1_000_000)
    log.renumber(4, 3)
    log.renumber(1_000_000, 4)
    return ProblemKind.REORDERED, 3


def insert_a_forged_record(log: Log) -> tuple[ProblemKind, int]:
    for sequence in range(log.length, 2, -1):  # one row at a time: unique checks are per row
        log.renumber(sequence, sequence + 1)
    forged_entry = AuditEntry(
        partition=log.partition,
        event_type="mandate.approved",
        actor_type="admin",
        actor_id=None,
        subject_id="mnd_forged",
        data={"amount": 999_999},
        occurred_at=log.store.clock.now(),
    )
    forged = seal(forged_entry, 3, log.value("hash", 2))
    row = {name: getattr(forged, name) for name in forged.__slots__}
    log.store.run(lambda uow: uow.execute(insert(schema.audit_records).values(**row)))
    execute(
        log.store,
        "UPDATE audit_heads SET last_sequence = last_sequence + 1 WHERE partition = :p",
        p=log.partition,
    )
    return ProblemKind.INSERTED, 3


def truncate_the_tail(log: Log) -> tuple[ProblemKind, int]:
    keep = log.length - 2
    execute(
        log.store,
        "DELETE FROM audit_records WHERE partition = :p AND sequence > :keep",
        p=log.partition,
        keep=keep,
    )
    # Cover the tracks: the head row agrees with what is left; only the checkpoint remembers.
    execute(
        log.store,
        "UPDATE audit_heads SET last_sequence = :keep, head_hash = :hash WHERE partition = :p",
        keep=keep,
        hash=log.value("hash", keep),
        p=log.partition,
    )
    return ProblemKind.TRUNCATED, keep + 1


@pytest.mark.parametrize(
    "tamper",
    [
        modify_a_data_byte,
        modify_a_hash,
        delete_a_record,
        reorder_two_records,
        insert_a_forged_record,
        truncate_the_tail,
    ],
)
def test_tampering_with_a_record_is_named_at_its_place(
    store: Store, tamper: Callable[[Log], tuple[ProblemKind, int]]
) -> None:
    log = Log(store)
    assert verify(store).ok
    kind, sequence = tamper(log)
    report = verify(store)
    assert not report.ok
    first = report.first
    assert (first.kind, first.partition, first.sequence, first.index) == (
        kind,
        log.partition,
        sequence,
        log.index(sequence),
    ), report.problems


def test_a_changed_checkpoint_is_named(store: Store) -> None:
    Log(store)
    [(stored,)] = rows(store, "SELECT CAST(heads AS TEXT) FROM audit_checkpoints WHERE id = 1")
    heads = json.loads(stored)
    heads[0]["sequence"] -= 1  # hide the newest record of partition 0 from the checkpoint
    cast = "CAST(:v AS JSON)" if store.dialect == "postgresql" else ":v"
    execute(store, f"UPDATE audit_checkpoints SET heads = {cast} WHERE id = 1", v=json.dumps(heads))
    report = verify(store)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [
        (ProblemKind.CHECKPOINT_MODIFIED, 1)
    ]


def test_a_forged_checkpoint_signature_is_named(store: Store) -> None:
    Log(store)
    [first, _second] = store.run(audit_repo.load_checkpoints, read_only=True)
    impostor = nacl.signing.SigningKey(b"\x08" * 32)
    forged = impostor.sign(checkpoint_message(first)).signature.hex()
    execute(store, "UPDATE audit_checkpoints SET signature = :s WHERE id = 1", s=forged)
    report = verify(store)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [(ProblemKind.BAD_SIGNATURE, 1)]
    assert verify(store, keys={}).ok  # without keys the forgery cannot be seen: hence the warning


def test_a_deleted_checkpoint_breaks_the_checkpoint_chain(store: Store) -> None:
    Log(store)
    execute(store, "DELETE FROM audit_checkpoints WHERE id = 1")
    report = verify(store, keys={})
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [
        (ProblemKind.BROKEN_CHECKPOINT_CHAIN, 2)
    ]


def _payment_entry(partition: int, at: datetime) -> AuditEntry:
    return AuditEntry(
        partition=partition,
        event_type="payment.succeeded",
        actor_type="agent",
        actor_id="agt_one",
        subject_id=f"pay_{partition}",
        data={},
        occurred_at=at,
    )


@pytest.mark.postgres
def test_the_heads_of_every_partition_appended_to_are_locked_in_one_round_trip(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's payments land in many partitions (a record's partition comes from its
    subject): their heads are locked together, in partition order, not one round trip each."""

    def append(uow: UnitOfWork) -> list[AuditRecord]:
        at = pg_store.clock.now()
        return audit_repo.append_all(uow, [_payment_entry(p, at) for p in (3, 1, 2)])

    pg_store.run(append)
    rounds = record_round_trips(monkeypatch)
    records = pg_store.run(append)
    monkeypatch.undo()
    assert [(r.partition, r.sequence) for r in records] == [(3, 2), (1, 2), (2, 2)]
    # the heads' reads, then the records and the heads' moves with the commit
    assert len(rounds) == 2, rounds
    assert sum("audit_heads" in sql and "FOR UPDATE" in sql for sql in rounds[0]) == 3, rounds
    assert rounds[1][-1] == "COMMIT", rounds


def test_a_head_that_did_not_move_fails_the_append_and_nothing_commits(store: Store) -> None:
    """Moving a partition's head is checked (on PostgreSQL by the server, so that the check
    can share the COMMIT's round trip): a head that is not where the append found it fails
    the transaction with the reason, and neither the record nor the head's move is kept."""
    store.run(lambda uow: audit_repo.append_all(uow, [_payment_entry(1, store.clock.now())]))

    def stale(uow: UnitOfWork) -> None:
        head = ChainHead(1, 7, "0" * 64)  # not the head: sequence 1 is
        audit_repo._move_head(uow, head, ChainHead(1, 8, "f" * 64))

    refused = DBAPIError if store.dialect == "postgresql" else InvariantViolation
    with pytest.raises(refused, match="audit head moved under its lock"):
        store.run(stale)
    assert rows(store, "SELECT last_sequence FROM audit_heads WHERE partition = 1") == [(1,)]
