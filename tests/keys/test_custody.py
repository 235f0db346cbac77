"""Key custody, pure: the sealed envelope opens only under its master key and for its own row,
and the rotation rule publishes the old key for the overlap and trusts it until revoked."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paywarden.kernel.errors import InvariantViolation, PaywardenError
from paywarden.trust import audit, custody
from paywarden.trust.custody import (
    EDDSA,
    ES256,
    PUBLISH_OVERLAP_DEFAULT,
    RANDOM_BYTES,
    KeyRecord,
    KeyStatus,
    Purpose,
)
from paywarden.trust.keys import b64url_decode, b64url_encode, parse_public_jwk

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
NONCE = b"\x01" * 12
SECRET = b"\x5a" * 32
KID = "kid-of-the-row"
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def make_key(purpose: Purpose, seed: int, now: datetime = NOW) -> KeyRecord:
    alg = custody.ALG_FOR_PURPOSE[purpose]
    record, _private = custody.new_key(
        purpose,
        randomness=bytes([seed]) * RANDOM_BYTES[alg],
        nonce=bytes([seed]) * 12,
        master_key=MASTER,
        now=now,
    )
    return record


def unseal_error(master: bytes, kid: str, purpose: Purpose, sealed: str) -> PaywardenError:
    with pytest.raises(PaywardenError) as info:
        custody.open_secret(master, kid, purpose, sealed)
    return info.value


# --- the envelope ------------------------------------------------------------------------


def test_a_sealed_secret_opens_to_the_same_bytes_and_is_versioned() -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    assert sealed.startswith("pwk1." + custody.master_key_id(MASTER) + ".")
    assert custody.open_secret(MASTER, KID, Purpose.RECEIPT, sealed) == SECRET


def test_the_envelope_does_not_contain_the_secret_in_clear() -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    assert "WlpaWlpa" not in sealed  # base64url of the repeated 0x5a bytes
    assert SECRET not in sealed.encode()


def test_a_wrong_master_key_is_named_as_such() -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    error = unseal_error(OTHER_MASTER, KID, Purpose.RECEIPT, sealed)
    assert error.code == "master_key_mismatch"
    assert custody.master_key_id(MASTER) in error.message


def test_a_wrong_master_key_fails_even_when_the_envelope_claims_it() -> None:
    """Relabelling the envelope with the other key's id does not help: GCM still refuses."""
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    relabelled = sealed.replace(custody.master_key_id(MASTER), custody.master_key_id(OTHER_MASTER))
    error = unseal_error(OTHER_MASTER, KID, Purpose.RECEIPT, relabelled)
    assert error.code == "key_unseal_failed"


def test_a_ciphertext_moved_to_another_row_does_not_open() -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    moved = unseal_error(MASTER, "another-kid", Purpose.RECEIPT, sealed)
    relabelled = unseal_error(MASTER, KID, Purpose.MANDATE_TOKEN, sealed)
    assert moved.code == relabelled.code == "key_unseal_failed"
    assert "moved from another key's row" in moved.message


@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_character_of_the_envelope_is_refused(position: int, replacement: str) -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    position %= len(sealed)
    if sealed[position] == replacement:
        return
    tampered = sealed[:position] + replacement + sealed[position + 1 :]
    error = unseal_error(MASTER, KID, Purpose.RECEIPT, tampered)
    assert error.code in {"key_unseal_failed", "master_key_mismatch"}


def test_every_flipped_bit_of_the_ciphertext_is_refused() -> None:
    sealed = custody.seal_secret(MASTER, NONCE, KID, Purpose.RECEIPT, SECRET)
    head, body = sealed.rsplit(".", 1)
    raw = b64url_decode(body)
    for index in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[index // 8] ^= 1 << (index % 8)
        tampered = head + "." + b64url_encode(bytes(flipped))
        assert unseal_error(MASTER, KID, Purpose.RECEIPT, tampered).code == "key_unseal_failed"


def test_nonces_and_master_keys_of_the_wrong_size_are_refused() -> None:
    with pytest.raises(InvariantViolation):
        custody.seal_secret(MASTER, b"\x00" * 8, KID, Purpose.RECEIPT, SECRET)
    with pytest.raises(InvariantViolation):
        custody.seal_secret(MASTER[:16], NONCE, KID, Purpose.RECEIPT, SECRET)


# --- keys --------------------------------------------------------------------------------


def test_receipt_and_token_keys_are_es256_and_checkpoint_keys_ed25519() -> None:
    assert make_key(Purpose.RECEIPT, 1).alg == ES256
    assert make_key(Purpose.MANDATE_TOKEN, 2).alg == ES256
    checkpoint = make_key(Purpose.AUDIT_CHECKPOINT, 3)
    assert checkpoint.alg == EDDSA
    assert checkpoint.public_jwk["crv"] == "Ed25519"


def test_the_kid_is_the_jwk_thumbprint_and_matches_the_audit_key_id() -> None:
    record = make_key(Purpose.AUDIT_CHECKPOINT, 4)
    public = parse_public_jwk(record.public_jwk)
    assert record.kid == public.thumbprint
    x = b64url_decode(record.public_jwk["x"])
    assert audit.ed25519_key_id(x) == record.kid


def test_an_opened_key_signs_and_its_public_jwk_verifies() -> None:
    for purpose in (Purpose.RECEIPT, Purpose.AUDIT_CHECKPOINT):
        record = make_key(purpose, 5)
        signer = custody.open_signer(record, MASTER)
        assert signer.key_id == record.kid
        public = parse_public_jwk(custody.public_jwk(record))
        assert public.verify(b"message", signer.sign(b"message"))


def test_a_key_row_whose_secret_belongs_to_another_key_is_refused() -> None:
    """Re-sealing another key's secret for this kid passes GCM but not the thumbprint check."""
    record = make_key(Purpose.RECEIPT, 6)
    other_secret = custody.open_secret(
        MASTER,
        make_key(Purpose.RECEIPT, 7).kid,
        Purpose.RECEIPT,
        make_key(Purpose.RECEIPT, 7).private_ciphertext,
    )
    swapped = replace(
        record,
        private_ciphertext=custody.seal_secret(
            MASTER, NONCE, record.kid, Purpose.RECEIPT, other_secret
        ),
    )
    with pytest.raises(PaywardenError) as info:
        custody.open_signer(swapped, MASTER)
    assert info.value.code == "key_unseal_failed"


@given(randomness=st.binary(min_size=40, max_size=40))
def test_p256_secrets_from_any_randomness_are_valid_scalars(randomness: bytes) -> None:
    record, private = custody.new_key(
        Purpose.RECEIPT, randomness=randomness, nonce=NONCE, master_key=MASTER, now=NOW
    )
    assert private.keyid == record.kid


def test_the_randomness_must_have_the_length_the_algorithm_needs() -> None:
    with pytest.raises(InvariantViolation):
        custody.new_key(
            Purpose.RECEIPT, randomness=b"\x01" * 32, nonce=NONCE, master_key=MASTER, now=NOW
        )


# --- rotation ----------------------------------------------------------------------------


def test_rotating_retires_the_old_key_and_publishes_it_for_the_overlap() -> None:
    old = make_key(Purpose.RECEIPT, 8)
    later = NOW + timedelta(days=90)
    new = make_key(Purpose.RECEIPT, 9, later)
    retired, active = custody.rotate([old], new, later)
    assert active == new
    assert (retired.kid, retired.status) == (old.kid, KeyStatus.RETIRED)
    assert retired.retired_at == later
    assert retired.publish_until == later + PUBLISH_OVERLAP_DEFAULT == later + timedelta(days=30)
    assert custody.active_key([retired, active], Purpose.RECEIPT) == active
    # During the overlap (its last instant included) both are published; after it, only the new.
    for moment in (later, retired.publish_until):
        assert custody.is_published(retired, moment) and custody.is_published(active, moment)
    after = retired.publish_until + timedelta(microseconds=1)
    assert not custody.is_published(retired, after)
    assert custody.is_published(active, after)
    # Retired keys keep verifying, for good.
    assert custody.is_trusted(retired)


def test_the_first_key_of_a_purpose_retires_nothing_and_other_purposes_are_untouched() -> None:
    checkpoint = make_key(Purpose.AUDIT_CHECKPOINT, 10)
    receipt = make_key(Purpose.RECEIPT, 11)
    assert custody.rotate([checkpoint], receipt, NOW) == [receipt]


def test_the_overlap_is_configurable() -> None:
    old, new = make_key(Purpose.RECEIPT, 12), make_key(Purpose.RECEIPT, 13)
    retired, _ = custody.rotate([old], new, NOW, overlap=timedelta(days=2))
    assert retired.publish_until == NOW + timedelta(days=2)


def test_a_revoked_key_is_neither_published_nor_trusted() -> None:
    revoked = custody.revoke(make_key(Purpose.RECEIPT, 14), NOW)
    assert revoked.status == KeyStatus.REVOKED
    assert not custody.is_published(revoked, NOW)
    assert not custody.is_trusted(revoked)


def test_two_active_keys_for_one_purpose_are_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolation):
        custody.active_key(
            [make_key(Purpose.RECEIPT, 15), make_key(Purpose.RECEIPT, 16)], Purpose.RECEIPT
        )


def test_the_published_jwk_names_its_kid_alg_and_use() -> None:
    record = make_key(Purpose.RECEIPT, 17)
    jwk = custody.public_jwk(record)
    assert jwk == {**record.public_jwk, "kid": record.kid, "alg": "ES256", "use": "sig"}
    assert "d" not in jwk
    parse_public_jwk(jwk)  # a valid public JWK, alg and use included
