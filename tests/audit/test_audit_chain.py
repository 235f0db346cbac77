"""The pure audit log (paywarden.trust.audit): the exact bytes a record's hash covers, partitions,
checkpoints, and every kind of tampering named by ``verify`` at the right place."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.signing
import pytest

from paywarden.kernel.errors import InvariantViolation
from paywarden.trust.audit import (
    GENESIS_HASH,
    AuditRecord,
    ChainHead,
    Checkpoint,
    Ed25519Signer,
    ProblemKind,
    checkpoint_hash,
    checkpoint_message,
    ed25519_key_id,
    entry,
    make_checkpoint,
    partition_for,
    record_hash,
    record_message,
    seal,
    verify,
)

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SIGNER = Ed25519Signer(nacl.signing.SigningKey(b"\x01" * 32))
KEYS = {SIGNER.key_id: SIGNER.public_key}
Chains = dict[int, list[AuditRecord]]


def build(count: int, partitions: int = 1, start: int = 0) -> Chains:
    """``count`` records about subjects sub_0, sub_1, ... sealed into their chains."""
    chains: Chains = {}
    for number in range(start, start + count):
        audit_entry = entry(
            event_type="mandate.approved",
            actor_type="user",
            actor_id="usr_ada",
            subject_id=f"sub_{number}",
            data={"amount": 1_000 + number, "currency": "usd"},
            occurred_at=START + timedelta(seconds=number),
            partitions=partitions,
        )
        chain = chains.setdefault(audit_entry.partition, [])
        prev = chain[-1].hash if chain else GENESIS_HASH
        chain.append(seal(audit_entry, len(chain) + 1, prev))
    return chains


def extend(chains: Chains, count: int, start: int) -> Chains:
    """The log after ``count`` more single-partition appends."""
    chain = list(chains[0])
    for number in range(start, start + count):
        audit_entry = entry(
            event_type="mandate.approved",
            actor_type=None,
            actor_id=None,
            subject_id=f"sub_{number}",
            data={"n": number},
            occurred_at=START,
            partitions=1,
        )
        chain.append(seal(audit_entry, len(chain) + 1, chain[-1].hash))
    return {0: chain}


def checkpoints_of(*states: Chains, signer: Any = SIGNER) -> list[Checkpoint]:
    made: list[Checkpoint] = []
    for number, state in enumerate(states):
        heads = [ChainHead(p, chain[-1].sequence, chain[-1].hash) for p, chain in state.items()]
        previous = made[-1] if made else None
        made.append(
            make_checkpoint(
                created_at=START + timedelta(hours=number),
                heads=heads,
                previous=previous,
                signer=signer,
            )
        )
    return made


def first_problem(chains: Chains, checkpoints: list[Checkpoint] | None = None) -> Any:
    report = verify(chains, checkpoints or [], KEYS)
    assert not report.ok
    return report.first


def renumbered(record: AuditRecord, sequence: int) -> AuditRecord:
    return replace(record, sequence=sequence)


# --- the format ----------------------------------------------------------------------------


def test_a_record_hash_is_sha256_of_exactly_these_canonical_bytes() -> None:
    record = seal(
        entry(
            event_type="mandate.approved",
            actor_type="user",
            actor_id="usr_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
            subject_id="mnd_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
            data={"currency": "usd", "amount": 1500, "reasons": ["within_limit"], "x": None},
            occurred_at=datetime(2026, 11, 29, 10, 4, 57, 123456, tzinfo=UTC),
            partitions=16,
        ),
        sequence=1,
        prev_hash=GENESIS_HASH,
    )
    expected = (
        '{"actor_id":"usr_01JD6Z5R3K8M9N0P1Q2R3S4T5V","actor_type":"user",'
        '"data":{"amount":1500,"currency":"usd","reasons":["within_limit"],"x":null},'
        '"event_type":"mandate.approved","occurred_at":"2026-11-29T10:04:57.123456Z",'
        f'"partition":{record.partition},"prev_hash":"{"0" * 64}","sequence":1,'
        '"subject_id":"mnd_01JD6Z5R3K8M9N0P1Q2R3S4T5V"}'
    ).encode()
    assert record_message(record) == expected
    assert record.hash == hashlib.sha256(expected).hexdigest() == record_hash(record)


def test_the_partition_is_sha256_of_the_subject_modulo_n() -> None:
    digest = hashlib.sha256(b"mnd_123").digest()
    assert partition_for("mnd_123", 16) == int.from_bytes(digest[:8], "big") % 16
    assert {partition_for(f"sub_{n}", 16) for n in range(200)} == set(range(16))
    made = entry(
        event_type="key.revoked",
        actor_type="admin",
        actor_id=None,
        subject_id="mnd_123",
        data={},
        occurred_at=START,
    )
    assert made.partition == partition_for("mnd_123", 16)


def test_without_a_subject_the_actor_chooses_the_partition() -> None:
    made = entry(
        event_type="key.rotated",
        actor_type="user",
        actor_id="usr_ada",
        subject_id=None,
        data={},
        occurred_at=START,
        partitions=7,
    )
    assert made.partition == partition_for("user:usr_ada", 7)


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("mandate.approved", {"amount": 1.5}),
        ("mandate.approved", {"amount": 2**53}),
        ("mandate.approved", {1: "key"}),
        ("mandate.approved", {"when": START}),
        ("approved", {}),
        ("Mandate.Approved", {}),
    ],
)
def test_entries_refuse_floats_huge_integers_and_unnamed_events(
    event_type: str, data: dict[Any, Any]
) -> None:
    with pytest.raises(InvariantViolation):
        entry(
            event_type=event_type,
            actor_type=None,
            actor_id=None,
            subject_id="s",
            data=data,
            occurred_at=START,
        )


def test_an_entry_keeps_a_copy_of_its_data() -> None:
    data: dict[str, Any] = {"items": [1, 2]}
    made = entry(
        event_type="a.b",
        actor_type=None,
        actor_id=None,
        subject_id="s",
        data=data,
        occurred_at=START,
    )
    record = seal(made, 1, GENESIS_HASH)
    data["items"].append(3)
    assert record.data == {"items": [1, 2]}
    assert record_hash(record) == record.hash


def test_the_key_id_is_the_rfc_7638_jwk_thumbprint() -> None:
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert ed25519_key_id(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# --- a sound log ---------------------------------------------------------------------------


def test_a_sound_log_with_checkpoints_verifies_and_counts_signatures() -> None:
    first = build(10, partitions=4)
    second = build(20, partitions=4)
    checkpoints = checkpoints_of(first, second)
    report = verify(second, checkpoints, KEYS)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.signatures_verified) == (20, 2, 2)
    assert report.partitions == len(second)


def test_without_public_keys_signatures_are_unverified_not_failed() -> None:
    chains = build(5)
    report = verify(chains, checkpoints_of(chains), {})
    assert report.ok
    assert (report.signatures_verified, report.signatures_unverified) == (0, 1)


def test_a_checkpoint_refuses_to_sign_heads_that_went_backwards() -> None:
    chains = build(5)
    [previous] = checkpoints_of(chains)
    shorter = [ChainHead(0, 4, chains[0][3].hash)]
    with pytest.raises(InvariantViolation, match="went back from 5 to 4"):
        make_checkpoint(created_at=START, heads=shorter, previous=previous, signer=SIGNER)


# --- each kind of tampering, at its place ---------------------------------------------------


def test_a_changed_data_byte_is_modified_at_that_record() -> None:
    chains = build(6)
    chains[0][3] = replace(chains[0][3], data={"amount": 1_004, "currency": "usd"})
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.MODIFIED, 4, 3)


def test_a_changed_hash_is_modified_at_that_record() -> None:
    chains = build(6)
    chains[0][2] = replace(chains[0][2], hash="f" * 64)
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.MODIFIED, 3, 2)


def test_a_record_rewritten_with_a_fresh_hash_is_modified_at_that_record() -> None:
    chains = build(6)
    forged = replace(chains[0][2], data={"amount": 1})
    chains[0][2] = replace(forged, hash=record_hash(forged))
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.MODIFIED, 3, 2)


def test_a_deleted_record_is_a_gap_where_it_stood() -> None:
    chains = build(6)
    del chains[0][2]
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.GAP, 3, 2)


def test_a_deleted_record_with_the_rest_renumbered_is_still_a_gap() -> None:
    chains = build(6)
    rest = [renumbered(r, r.sequence - 1) for r in chains[0][3:]]
    chains[0] = chains[0][:2] + rest
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.GAP, 3, 2)


def test_two_records_in_each_others_places_are_reordered() -> None:
    chains = build(6)
    third, fourth = chains[0][2], chains[0][3]
    chains[0][2], chains[0][3] = renumbered(fourth, 3), renumbered(third, 4)
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.REORDERED, 3, 2)


def test_two_records_listed_out_of_order_are_reordered() -> None:
    chains = build(6)
    chains[0][2], chains[0][3] = chains[0][3], chains[0][2]
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.REORDERED, 3, 2)


def test_a_forged_record_slipped_in_is_inserted_at_its_place() -> None:
    chains = build(6)
    forged = seal(
        entry(
            event_type="mandate.approved",
            actor_type="admin",
            actor_id=None,
            subject_id="sub_x",
            data={"amount": 999_999},
            occurred_at=START,
            partitions=1,
        ),
        sequence=3,
        prev_hash=chains[0][1].hash,
    )
    shifted = [renumbered(r, r.sequence + 1) for r in chains[0][2:]]
    chains[0] = [*chains[0][:2], forged, *shifted]
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.INSERTED, 3, 2)


def test_a_second_record_claiming_a_sequence_is_inserted_not_the_one_the_chain_follows() -> None:
    chains = build(6)
    forged = seal(
        entry(
            event_type="mandate.approved",
            actor_type=None,
            actor_id=None,
            subject_id="sub_x",
            data={},
            occurred_at=START,
            partitions=1,
        ),
        sequence=3,
        prev_hash=chains[0][1].hash,
    )
    chains[0].insert(3, forged)
    problem = first_problem(chains)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.INSERTED, 4, 3)


def test_a_duplicated_record_is_inserted_at_the_copy() -> None:
    chains = build(6)
    chains[0].insert(3, chains[0][2])
    problem = first_problem(chains)
    assert (problem.kind, problem.index) == (ProblemKind.INSERTED, 3)


def test_a_tail_cut_after_a_checkpoint_is_truncated() -> None:
    chains = build(8)
    checkpoints = checkpoints_of(chains)
    chains[0] = chains[0][:5]
    problem = first_problem(chains, checkpoints)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.TRUNCATED, 6, 5)


def test_a_tail_cut_and_regrown_after_a_checkpoint_is_truncated_at_the_checkpointed_head() -> None:
    chains = build(8)
    checkpoints = checkpoints_of(chains)
    regrown = extend({0: chains[0][:5]}, 4, start=100)
    problem = first_problem(regrown, checkpoints)
    assert (problem.kind, problem.sequence, problem.index) == (ProblemKind.TRUNCATED, 8, 7)


def test_a_tail_cut_behind_the_head_row_is_truncated() -> None:
    chains = build(8)
    head = ChainHead(0, 8, chains[0][-1].hash)
    report = verify({0: chains[0][:6]}, [], KEYS, heads={0: head})
    assert report.first is not None
    assert (report.first.kind, report.first.sequence, report.first.index) == (
        ProblemKind.TRUNCATED,
        7,
        6,
    )


def test_a_whole_partition_deleted_after_a_checkpoint_is_truncated() -> None:
    chains = build(30, partitions=3)
    checkpoints = checkpoints_of(chains)
    before = len(chains[0])
    del chains[1]
    problem = first_problem(chains, checkpoints)
    assert (problem.kind, problem.partition, problem.sequence, problem.index) == (
        ProblemKind.TRUNCATED,
        1,
        1,
        before,
    )


def test_the_index_counts_records_in_partition_then_sequence_order() -> None:
    chains = build(40, partitions=4)
    chains[2][1] = replace(chains[2][1], event_type="mandate.denied")
    chains[3][0] = replace(chains[3][0], event_type="mandate.denied")
    report = verify(chains, [], KEYS)
    expected = len(chains[0]) + len(chains[1]) + 1
    assert [p.index for p in report.problems] == [expected, expected + len(chains[2]) - 1]
    assert report.first is not None
    assert (report.first.partition, report.first.sequence) == (2, 2)


def test_a_well_formed_append_after_the_newest_checkpoint_is_beyond_what_the_log_proves() -> None:
    # Documented limit: hashes carry no secret, so only a later checkpoint (or one published
    # outside the database) can expose a well-formed forgery at the end of a chain.
    chains = build(4)
    checkpoints = checkpoints_of(chains)
    assert verify(extend(chains, 1, start=50), checkpoints, KEYS).ok


# --- checkpoints ---------------------------------------------------------------------------


def three_checkpoints() -> tuple[Chains, list[Checkpoint]]:
    first = build(4)
    second = extend(first, 3, start=10)
    third = extend(second, 3, start=20)
    return third, checkpoints_of(first, second, third)


def test_a_changed_checkpoint_no_longer_matches_its_hash() -> None:
    chains, checkpoints = three_checkpoints()
    checkpoints[1] = replace(checkpoints[1], heads=(ChainHead(0, 9, chains[0][8].hash),))
    report = verify(chains, checkpoints, KEYS)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [
        (ProblemKind.CHECKPOINT_MODIFIED, 2)
    ]


def test_a_changed_and_rehashed_checkpoint_fails_its_signature_and_breaks_the_chain() -> None:
    chains, checkpoints = three_checkpoints()
    changed = replace(checkpoints[1], created_at=START + timedelta(days=1))
    checkpoints[1] = replace(changed, hash=checkpoint_hash(changed))
    report = verify(chains, checkpoints, KEYS)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [
        (ProblemKind.BAD_SIGNATURE, 2),
        (ProblemKind.BROKEN_CHECKPOINT_CHAIN, 3),
    ]


def test_a_signature_by_another_key_under_the_platform_key_id_is_bad() -> None:
    chains, checkpoints = three_checkpoints()
    impostor = Ed25519Signer(nacl.signing.SigningKey(b"\x02" * 32), key_id=SIGNER.key_id)
    forged = impostor.sign(checkpoint_message(checkpoints[0]))
    checkpoints[0] = replace(checkpoints[0], signature=forged)
    report = verify(chains, checkpoints, KEYS)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [(ProblemKind.BAD_SIGNATURE, 1)]


def test_a_checkpoint_by_an_unknown_key_is_bad() -> None:
    chains = build(3)
    stranger = Ed25519Signer(nacl.signing.SigningKey(b"\x03" * 32))
    report = verify(chains, checkpoints_of(chains, signer=stranger), KEYS)
    assert report.first is not None
    assert report.first.kind is ProblemKind.BAD_SIGNATURE
    assert "unknown key" in report.first.detail


def test_a_deleted_checkpoint_breaks_the_checkpoint_chain() -> None:
    chains, checkpoints = three_checkpoints()
    del checkpoints[1]
    report = verify(chains, checkpoints, KEYS)
    assert [(p.kind, p.checkpoint_id) for p in report.problems] == [
        (ProblemKind.BROKEN_CHECKPOINT_CHAIN, 3)
    ]


def test_a_bad_checkpoint_is_not_trusted_to_claim_truncation() -> None:
    chains = build(4)
    [checkpoint] = checkpoints_of(chains)
    inflated = replace(checkpoint, heads=(ChainHead(0, 40, "a" * 64),))
    inflated = replace(inflated, hash=checkpoint_hash(inflated))
    report = verify(chains, [inflated], KEYS)
    assert [p.kind for p in report.problems] == [ProblemKind.BAD_SIGNATURE]
