"""Signed receipts, pure: AP2's Payment Receipt claims in a compact ES256 JWS, bound to what
was authorized, and refused when any single byte of the token changes."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.kernel.errors import InvalidRequest, InvariantViolation
from paywarden.trust import custody
from paywarden.trust.custody import RANDOM_BYTES, PlatformSigner, Purpose
from paywarden.trust.keys import b64url_decode, b64url_encode
from paywarden.trust.receipts import (
    RECEIPT_TYP,
    AuthorizedPayment,
    ReceiptStatus,
    error_receipt,
    sign_receipt,
    success_receipt,
    verify_receipt,
)

MASTER = bytes(range(32))
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
AUTHORIZED = AuthorizedPayment(
    amount=1_250,
    currency="eur",
    payee="mer_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
    mandate_id="mnd_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
    cart_hash="x3Xnt1ft5jDNCqERO9ECZhqziCnKUqZCKreChi8mhkY",
)


def signer_for(purpose: Purpose, seed: int) -> tuple[PlatformSigner, dict[str, Any]]:
    alg = custody.ALG_FOR_PURPOSE[purpose]
    record, _ = custody.new_key(
        purpose,
        randomness=bytes([seed]) * RANDOM_BYTES[alg],
        nonce=bytes([seed]) * 12,
        master_key=MASTER,
        now=NOW,
    )
    return custody.open_signer(record, MASTER), custody.public_jwk(record)


SIGNER, JWK = signer_for(Purpose.RECEIPT, 1)
JWKS = {"keys": [JWK]}


def success_token() -> str:
    receipt = success_receipt(
        issuer="https://pay.example",
        now=NOW,
        authorized=AUTHORIZED,
        payment_id="pay_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        transfer_id="txf_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
    )
    return sign_receipt(receipt, SIGNER)


TOKEN = success_token()


def refused(token: str, jwks: Any = JWKS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        verify_receipt(token, jwks)
    assert info.value.code == "receipt_invalid"
    return info.value


def forge(header: dict[str, Any], claims: dict[str, Any], signer: PlatformSigner = SIGNER) -> str:
    """A token signed by a real key over whatever header and claims are given."""
    signing_input = b64url_encode(json.dumps(header).encode()) + "."
    signing_input += b64url_encode(json.dumps(claims).encode())
    return signing_input + "." + b64url_encode(signer.sign(signing_input.encode()))


def test_a_success_receipt_verifies_and_carries_the_ap2_claims() -> None:
    receipt = verify_receipt(TOKEN, JWKS)
    assert receipt.claims() == {
        "status": "Success",
        "iss": "https://pay.example",
        "iat": int(NOW.timestamp()),
        "reference": AUTHORIZED.reference(),
        "payment_id": "pay_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        "psp_confirmation_id": "pay_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        "network_confirmation_id": "txf_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
    }
    header = json.loads(b64url_decode(TOKEN.split(".")[0]))
    assert header == {"alg": "ES256", "kid": SIGNER.key_id, "typ": RECEIPT_TYP}


def test_a_decline_receipt_carries_the_error_and_no_confirmations() -> None:
    receipt = error_receipt(
        issuer="https://pay.example",
        now=NOW,
        authorized=AUTHORIZED,
        payment_id="pay_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        error="mandate_limit_exceeded",
        error_description="The payment exceeds the mandate's remaining budget.",
    )
    verified = verify_receipt(sign_receipt(receipt, SIGNER), JWKS)
    assert verified == receipt
    assert verified.status == ReceiptStatus.ERROR
    assert "psp_confirmation_id" not in verified.claims()


def test_the_reference_is_base64url_sha256_of_the_canonical_authorized_payment() -> None:
    canonical = (
        b'{"amount":1250,"cart_hash":"x3Xnt1ft5jDNCqERO9ECZhqziCnKUqZCKreChi8mhkY",'
        b'"currency":"eur","mandate_id":"mnd_01JD6Z5R3K8M9N0P1Q2R3S4T5V",'
        b'"payee":"mer_01JD6Z5R3K8M9N0P1Q2R3S4T5V"}'
    )
    assert AUTHORIZED.canonical_json() == canonical
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=")
    assert AUTHORIZED.reference() == digest.decode()
    # Any difference in what was authorized gives another reference.
    other = AuthorizedPayment(1_251, "eur", AUTHORIZED.payee, AUTHORIZED.mandate_id, None)
    assert other.reference() != AUTHORIZED.reference()


def test_no_cart_and_no_mandate_are_null_not_absent() -> None:
    bare = AuthorizedPayment(100, "usd", "mer_x", None, None)
    assert json.loads(bare.canonical_json()) == {
        "amount": 100,
        "cart_hash": None,
        "currency": "usd",
        "mandate_id": None,
        "payee": "mer_x",
    }


@settings(max_examples=400)
@given(data=st.data())
def test_every_single_byte_modification_is_detected(data: st.DataObject) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(TOKEN) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"
        ).filter(lambda c: c != TOKEN[position]),
        label="replacement",
    )
    tampered = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    refused(tampered)


def test_every_position_of_header_payload_and_signature_is_covered() -> None:
    """Exhaustively: each position, changed to the next base64url letter, is refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position, character in enumerate(TOKEN):
        if character == ".":
            continue
        replacement = alphabet[(alphabet.index(character) + 1) % len(alphabet)]
        refused(TOKEN[:position] + replacement + TOKEN[position + 1 :])


def test_an_unknown_kid_is_refused() -> None:
    error = refused(TOKEN, {"keys": []})
    assert "no key with kid" in error.message
    _other, other_jwk = signer_for(Purpose.RECEIPT, 2)
    assert "no key with kid" in refused(TOKEN, {"keys": [other_jwk]}).message


def test_a_key_set_naming_another_key_under_the_kid_is_refused() -> None:
    _other, other_jwk = signer_for(Purpose.RECEIPT, 3)
    impostor = {**other_jwk, "kid": SIGNER.key_id}
    assert "different key" in refused(TOKEN, {"keys": [impostor]}).message


def test_a_signature_by_another_key_of_the_set_is_refused() -> None:
    other, other_jwk = signer_for(Purpose.RECEIPT, 4)
    token = TOKEN.split(".")
    resigned = token[0] + "." + token[1] + "." + b64url_encode(other.sign(b"anything"))
    refused(resigned, {"keys": [JWK, other_jwk]})


def test_headers_other_than_es256_with_the_receipt_typ_are_refused() -> None:
    claims = verify_receipt(TOKEN, JWKS).claims()
    good = {"alg": "ES256", "kid": SIGNER.key_id, "typ": RECEIPT_TYP}
    assert verify_receipt(forge(good, claims), JWKS).claims() == claims
    for header in (
        {**good, "alg": "none"},
        {**good, "alg": "HS256"},
        {**good, "typ": "JWT"},
        {**good, "crit": ["exp"]},
        {"alg": "ES256", "kid": SIGNER.key_id},
    ):
        refused(forge(header, claims))


def test_claims_that_break_ap2s_shape_are_refused_even_when_signed() -> None:
    header = {"alg": "ES256", "kid": SIGNER.key_id, "typ": RECEIPT_TYP}
    claims = verify_receipt(TOKEN, JWKS).claims()
    for broken in (
        {**claims, "status": "Pending"},
        {**claims, "error": "declined"},
        {**claims, "iat": "today"},
        {**claims, "iat": True},
        {**claims, "amount": 5},
        {k: v for k, v in claims.items() if k != "network_confirmation_id"},
        {k: v for k, v in claims.items() if k != "reference"},
    ):
        refused(forge(header, broken))


def test_a_checkpoint_or_token_key_cannot_sign_receipts() -> None:
    checkpoint, _ = signer_for(Purpose.AUDIT_CHECKPOINT, 5)
    receipt = verify_receipt(TOKEN, JWKS)
    with pytest.raises(InvariantViolation, match="signs no receipts"):
        sign_receipt(receipt, checkpoint)


def test_an_ed25519_key_in_the_set_is_not_accepted_for_a_receipt() -> None:
    checkpoint, checkpoint_jwk = signer_for(Purpose.AUDIT_CHECKPOINT, 6)
    header = {"alg": "ES256", "kid": checkpoint.key_id, "typ": RECEIPT_TYP}
    claims = verify_receipt(TOKEN, JWKS).claims()
    assert (
        "not a P-256 key"
        in refused(forge(header, claims, checkpoint), {"keys": [checkpoint_jwk]}).message
    )


def test_malformed_tokens_and_key_sets_are_refused_clearly() -> None:
    for token in ("", "a.b", "a.b.c.d", TOKEN + "." + TOKEN, "é" * 10, "x" * 10_000):
        refused(token)
    for jwks in ({}, {"keys": "no"}, [], {"keys": [{"kid": SIGNER.key_id, "kty": "RSA"}]}):
        refused(TOKEN, jwks)


def test_the_canonical_form_is_what_is_signed() -> None:
    header_part, payload_part, _ = TOKEN.split(".")
    assert b64url_decode(payload_part) == rfc8785.dumps(verify_receipt(TOKEN, JWKS).claims())
    assert b64url_decode(header_part) == rfc8785.dumps(
        {"alg": "ES256", "kid": SIGNER.key_id, "typ": RECEIPT_TYP}
    )
