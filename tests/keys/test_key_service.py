"""Platform keys in the store, on SQLite and PostgreSQL: made on first use, rotated with an
overlap, published and trusted by the rule, audited, and never stored in clear."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, InvalidRequest, PaywardenError
from paywarden.services import audit, keys, receipts
from paywarden.store import schema
from paywarden.store.tables_keys import platform_keys
from paywarden.store.unit_of_work import Store
from paywarden.trust import custody
from paywarden.trust.custody import KeyStatus, Purpose
from paywarden.trust.keys import b64url_encode
from paywarden.trust.receipts import AuthorizedPayment, verify_receipt

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
AUTHORIZED = AuthorizedPayment(1_250, "eur", "mer_shop", "mnd_budget", None)


def issue(store: Store, number: int) -> str:
    return store.run(
        lambda uow: receipts.issue_receipt(
            uow,
            MASTER,
            issuer="https://pay.example",
            payment_id=f"pay_{number}",
            authorized=AUTHORIZED,
            transfer_id=f"txf_{number}",
        )
    )


def kids(jwks: dict[str, list[dict[str, str]]]) -> list[str]:
    return [jwk["kid"] for jwk in jwks["keys"]]


def test_the_first_signer_is_made_on_demand_and_then_reused(store: Store) -> None:
    assert store.run(keys.published_jwks) == {"keys": []}
    first = store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    again = store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    assert first.key_id == again.key_id
    assert (first.alg, first.purpose) == ("ES256", Purpose.RECEIPT)
    checkpoint = store.run(lambda uow: keys.active_signer(uow, Purpose.AUDIT_CHECKPOINT, MASTER))
    assert checkpoint.alg == "EdDSA"
    records = store.run(keys.list_keys)
    assert sorted(r.purpose for r in records) == [Purpose.AUDIT_CHECKPOINT, Purpose.RECEIPT]
    created = store.run(lambda uow: audit.verify(uow, {})).records
    assert created == 2  # platform_key.created, once per key


def test_rotation_keeps_old_receipts_verifying_and_publishes_both_only_during_the_overlap(
    store: Store, clock: FakeClock
) -> None:
    old_receipt = issue(store, 1)
    old = store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER)).key_id
    clock.advance(timedelta(days=100))
    new = store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, MASTER)).kid
    new_receipt = issue(store, 2)

    published = store.run(keys.published_jwks)
    assert kids(published) == [new, old]  # the active key first
    assert {jwk["use"] for jwk in published["keys"]} == {"sig"}
    for token in (old_receipt, new_receipt):
        assert store.run(lambda uow, t=token: receipts.verify(uow, t)).payment_id.startswith("pay_")

    clock.advance(timedelta(days=30))  # the overlap's last instant: still published
    assert kids(store.run(keys.published_jwks)) == [new, old]
    clock.advance(timedelta(microseconds=1))
    assert kids(store.run(keys.published_jwks)) == [new]
    # Old receipts keep verifying after the overlap, against the platform's trusted keys.
    assert store.run(lambda uow: receipts.verify(uow, old_receipt)).payment_id == "pay_1"
    assert set(kids(store.run(keys.verification_keys))) == {old, new}
    with pytest.raises(InvalidRequest):  # but not against the published set alone
        verify_receipt(old_receipt, store.run(keys.published_jwks))

    statuses = {r.kid: r.status for r in store.run(keys.list_keys)}
    assert statuses == {old: KeyStatus.RETIRED, new: KeyStatus.ACTIVE}


def test_a_rotation_is_audited(store: Store) -> None:
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    new = store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, MASTER))
    rows = store.run(
        lambda uow: uow.execute(
            select(schema.audit_records.c.event_type, schema.audit_records.c.subject_id).order_by(
                schema.audit_records.c.occurred_at, schema.audit_records.c.id
            )
        ).all()
    )
    assert [tuple(row) for row in rows][-1] == ("platform_key.rotated", new.kid)


def test_rotating_a_purpose_with_no_key_makes_its_first(store: Store) -> None:
    new = store.run(lambda uow: keys.rotate(uow, Purpose.MANDATE_TOKEN, MASTER))
    signer = store.run(lambda uow: keys.active_signer(uow, Purpose.MANDATE_TOKEN, MASTER))
    assert signer.key_id == new.kid


def test_a_revoked_key_is_neither_published_nor_trusted(store: Store) -> None:
    token = issue(store, 3)
    kid = store.run(keys.list_keys)[0].kid
    store.run(
        lambda uow: uow.execute(
            update(platform_keys).where(platform_keys.c.kid == kid).values(status="revoked")
        )
    )
    assert store.run(keys.published_jwks) == {"keys": []}
    assert store.run(keys.verification_keys) == {"keys": []}
    with pytest.raises(InvalidRequest) as info:
        store.run(lambda uow: receipts.verify(uow, token))
    assert info.value.code == "receipt_invalid"


def test_the_database_allows_one_active_key_per_purpose(store: Store) -> None:
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    row = dict(store.run(lambda uow: uow.execute(select(platform_keys)).mappings().one()))
    with pytest.raises(IntegrityError):
        store.run(lambda uow: uow.execute(insert(platform_keys).values({**row, "kid": "other"})))
    # A second retired key of the purpose is fine.
    store.run(
        lambda uow: uow.execute(
            insert(platform_keys).values({**row, "kid": "other", "status": "retired"})
        )
    )


def test_a_wrong_master_key_fails_loudly(store: Store) -> None:
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    with pytest.raises(PaywardenError) as info:
        store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, OTHER_MASTER))
    assert info.value.code == "master_key_mismatch"


def test_a_ciphertext_moved_to_another_key_row_does_not_open(store: Store) -> None:
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, MASTER))
    records = {r.status: r for r in store.run(keys.list_keys)}
    active, retired = records[KeyStatus.ACTIVE], records[KeyStatus.RETIRED]
    store.run(
        lambda uow: uow.execute(
            update(platform_keys)
            .where(platform_keys.c.kid == active.kid)
            .values(private_ciphertext=retired.private_ciphertext)
        )
    )
    with pytest.raises(PaywardenError) as info:
        store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    assert info.value.code == "key_unseal_failed"


def test_the_checkpoint_signer_signs_audit_checkpoints_that_verify(store: Store) -> None:
    signer = store.run(lambda uow: keys.active_signer(uow, Purpose.AUDIT_CHECKPOINT, MASTER))
    store.run(lambda uow: audit.checkpoint(uow, signer))
    public_keys = store.run(keys.audit_public_keys)
    report = store.run(lambda uow: audit.verify(uow, public_keys))
    assert report.ok and report.signatures_verified == 1


def test_no_private_key_is_in_the_sqlite_files_in_clear(
    sqlite_store: Store, tmp_path: Path
) -> None:
    signers = [
        sqlite_store.run(lambda uow, p=p: keys.active_signer(uow, p, MASTER))
        for p in (Purpose.RECEIPT, Purpose.AUDIT_CHECKPOINT)
    ]
    sqlite_store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, MASTER))
    secrets_in_clear = []
    publics = []
    for record in sqlite_store.run(keys.list_keys):
        secret = custody.open_secret(MASTER, record.kid, record.purpose, record.private_ciphertext)
        secrets_in_clear += [secret, b64url_encode(secret).encode(), secret.hex().encode()]
        publics.append(record.public_jwk["x"].encode())
    assert len(secrets_in_clear) == 9 and signers
    stored = b"".join(
        path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("paywarden.db")
    )
    # The main file and the WAL are both read. The scan sees the table (the public keys are
    # there), yet finds no secret in any spelling.
    assert all(public in stored for public in publics)
    for secret in secrets_in_clear:
        assert secret not in stored


def test_issuing_needs_either_a_transfer_or_an_error(store: Store) -> None:
    with pytest.raises(InvalidRequest):
        store.run(
            lambda uow: receipts.issue_receipt(
                uow, MASTER, issuer="x", payment_id="pay_1", authorized=AUTHORIZED
            )
        )
    token = store.run(
        lambda uow: receipts.issue_receipt(
            uow,
            MASTER,
            issuer="x",
            payment_id="pay_1",
            authorized=AUTHORIZED,
            error="insufficient_funds",
            error_description="The wallet's balance is too low.",
        )
    )
    assert store.run(lambda uow: receipts.verify(uow, token)).error == "insufficient_funds"


def test_nodes_racing_for_the_first_key_all_sign_with_one_key(store: Store) -> None:
    threads_max = 8
    barrier = threading.Barrier(threads_max, timeout=30)
    found: list[str] = []

    def first_use() -> None:
        barrier.wait()
        found.append(store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER)).key_id)

    threads = [threading.Thread(target=first_use) for _ in range(threads_max)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == threads_max and len(set(found)) == 1
    assert [r.kid for r in store.run(keys.list_keys)] == found[:1]
    assert store.run(lambda uow: audit.verify(uow, {})).records == 1  # created once


def test_a_lost_insert_race_writes_nothing(store: Store) -> None:
    """The ON CONFLICT path, deterministically: a second first-key insert is a no-op."""
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    store.run(lambda uow: keys._create_first(uow, Purpose.RECEIPT, MASTER))
    assert len(store.run(keys.list_keys)) == 1
    assert store.run(lambda uow: audit.verify(uow, {})).records == 1


def test_concurrent_rotations_succeed_or_conflict_and_leave_one_active_key(store: Store) -> None:
    store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    threads_max = 6
    barrier = threading.Barrier(threads_max, timeout=30)
    outcomes: list[str] = []

    def rotate() -> None:
        barrier.wait()
        try:
            store.run(lambda uow: keys.rotate(uow, Purpose.RECEIPT, MASTER))
            outcomes.append("rotated")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=rotate) for _ in range(threads_max)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == threads_max and "rotated" in outcomes
    statuses = sorted(r.status.value for r in store.run(keys.list_keys))
    assert statuses == ["active"] + ["retired"] * outcomes.count("rotated")
