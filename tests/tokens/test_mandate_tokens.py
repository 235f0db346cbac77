"""Mandate tokens, pure: an active mandate as an ES256 JWS bound to the agent's key (RFC 7800
``cnf.jkt``), strict about every byte, and exact about time: ``exp`` is the first instant
NOT accepted (RFC 7519 §4.1.4), so a token is accepted at ``exp - 1 µs`` and refused at ``exp``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.authorization import constraints as constraints_module
from paywarden.authorization.constraints import parse_constraints
from paywarden.authorization.mandates import Mandate, consent, new_mandate, pause, revoke
from paywarden.kernel.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    InvariantViolation,
)
from paywarden.trust import custody
from paywarden.trust.custody import RANDOM_BYTES, PlatformSigner, Purpose
from paywarden.trust.keys import b64url_decode, b64url_encode, ed25519_private_key
from paywarden.trust.keys import es256_private_key as wrap_es256
from paywarden.trust.tokens import (
    LEEWAY_MAX,
    MANDATE_TOKEN_TYP,
    MANDATE_VCT,
    TTL_MAX,
    issue_mandate_token,
    verify_mandate_token,
)

MASTER = bytes(range(32))
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ISSUER = "https://pay.example"
TTL = timedelta(minutes=15)
AGENT = ed25519_private_key(bytes(range(32))).public_key.thumbprint
OTHER_AGENT = wrap_es256(ec.derive_private_key(7, ec.SECP256R1())).public_key.thumbprint
RAW_CONSTRAINTS: list[dict[str, Any]] = [
    {"type": "payment.budget", "currency": "EUR", "max": 50_000},
    {"type": "paywarden.period_budget", "period": "weekly", "currency": "eur", "max": 10_000},
    {"type": "payment.allowed_payees", "allowed": ["mer_b", {"id": "mer_a", "name": "A"}]},
    {"type": "payment.agent_recurrence", "frequency": "monthly", "max_occurrences": 12},
]


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


SIGNER, JWK = signer_for(Purpose.MANDATE_TOKEN, 1)
JWKS = {"keys": [JWK]}


def active_mandate(raw: list[dict[str, Any]] | None = None) -> Mandate:
    parsed = parse_constraints(RAW_CONSTRAINTS if raw is None else raw, currency="eur")
    pending = new_mandate(
        "mnd_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        "usr_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        "agt_01JD6Z5R3K8M9N0P1Q2R3S4T5V",
        "eur",
        "Europe/Paris",
        parsed,
        NOW - timedelta(days=1),
    )
    return consent(pending, NOW - timedelta(hours=1))


MANDATE = active_mandate()
TOKEN = issue_mandate_token(MANDATE, AGENT, SIGNER, NOW, TTL, issuer=ISSUER)
EXP = NOW + TTL


def refused(
    token: str, jwks: Any = JWKS, now: datetime = NOW, **options: Any
) -> InvalidRequest | AuthenticationFailed:
    with pytest.raises((InvalidRequest, AuthenticationFailed)) as info:
        verify_mandate_token(token, jwks, now, **options)
    error = info.value
    assert isinstance(error, InvalidRequest | AuthenticationFailed)
    assert error.code == "mandate_token_invalid"
    assert error.message.startswith("mandate token invalid: ")
    return error


def forge(header: dict[str, Any], claims: dict[str, Any], signer: PlatformSigner = SIGNER) -> str:
    """A token signed by a real key over whatever header and claims are given."""
    signing_input = b64url_encode(json.dumps(header).encode()) + "."
    signing_input += b64url_encode(json.dumps(claims).encode())
    return signing_input + "." + b64url_encode(signer.sign(signing_input.encode()))


GOOD_HEADER = {"alg": "ES256", "kid": SIGNER.key_id, "typ": MANDATE_TOKEN_TYP}


def claims_of(token: str = TOKEN) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return parsed


# --- the round trip and the claim set ------------------------------------------------------


def test_a_token_round_trips_with_exactly_the_documented_claims() -> None:
    verified = verify_mandate_token(TOKEN, JWKS, NOW, presenter_thumbprint=AGENT)
    iat = int(NOW.timestamp())
    expected = {
        "iss": ISSUER,
        "sub": MANDATE.user,
        "jti": MANDATE.id,
        "iat": iat,
        "nbf": iat,
        "exp": iat + int(TTL.total_seconds()),
        "cnf": {"jkt": AGENT},
        "vct": MANDATE_VCT,
        "mandate": {
            "id": MANDATE.id,
            "revision": MANDATE.revision,
            "currency": "eur",
            "constraints": [constraints_module.to_json(c) for c in MANDATE.constraints],
            "timezone": "Europe/Paris",
        },
    }
    assert claims_of() == expected
    assert verified.claims() == expected
    assert (verified.mandate_id, verified.jkt, verified.kid) == (MANDATE.id, AGENT, SIGNER.key_id)
    assert verified.expires_at == EXP
    header = json.loads(b64url_decode(TOKEN.split(".")[0]))
    assert header == {"alg": "ES256", "kid": SIGNER.key_id, "typ": "mandate+jwt"}


def test_the_tokens_constraints_are_the_stored_form_of_the_mandates() -> None:
    stored = [constraints_module.to_json(c) for c in MANDATE.constraints]
    assert claims_of()["mandate"]["constraints"] == stored
    assert [dict(c) for c in verify_mandate_token(TOKEN, JWKS, NOW).constraints] == stored
    # The stored form is normalised (currency lowercased, payees sorted ids, enum values).
    assert stored[0] == {"type": "payment.budget", "currency": "eur", "max": 50_000}
    assert stored[2] == {"type": "payment.allowed_payees", "allowed": ["mer_a", "mer_b"]}


def test_header_and_claims_are_rfc8785_canonical_json() -> None:
    header_part, payload_part, _ = TOKEN.split(".")
    assert b64url_decode(header_part) == rfc8785.dumps(GOOD_HEADER)
    assert b64url_decode(payload_part) == rfc8785.dumps(claims_of())


def test_issuing_is_deterministic() -> None:
    assert issue_mandate_token(MANDATE, AGENT, SIGNER, NOW, TTL, issuer=ISSUER) == TOKEN


# --- time: exp is the first instant not accepted ---------------------------------------------


def test_exp_is_the_first_instant_not_accepted_and_nbf_the_first_accepted() -> None:
    assert verify_mandate_token(TOKEN, JWKS, EXP - timedelta(microseconds=1)).jti == MANDATE.id
    assert "expired at 2026-11-29T09:15:00.000Z" in refused(TOKEN, now=EXP).message
    assert isinstance(refused(TOKEN, now=EXP), AuthenticationFailed)
    assert verify_mandate_token(TOKEN, JWKS, NOW).jti == MANDATE.id
    assert "not valid before" in refused(TOKEN, now=NOW - timedelta(microseconds=1)).message


def test_leeway_is_small_explicit_and_capped() -> None:
    skew = timedelta(seconds=30)
    assert verify_mandate_token(TOKEN, JWKS, EXP + skew - timedelta(microseconds=1), leeway=skew)
    refused(TOKEN, now=EXP + skew, leeway=skew)
    assert verify_mandate_token(TOKEN, JWKS, NOW - skew, leeway=skew)
    with pytest.raises(InvariantViolation):
        verify_mandate_token(TOKEN, JWKS, NOW, leeway=LEEWAY_MAX + timedelta(seconds=1))


def test_a_sub_second_issue_instant_rounds_down() -> None:
    later = NOW + timedelta(milliseconds=999)
    token = issue_mandate_token(MANDATE, AGENT, SIGNER, later, TTL, issuer=ISSUER)
    claims = claims_of(token)
    assert (claims["iat"], claims["exp"]) == (int(NOW.timestamp()), int(EXP.timestamp()))


def test_exp_never_outlives_the_execution_window() -> None:
    not_after = NOW + timedelta(minutes=5)
    window = {
        "type": "payment.execution_date",
        "not_after": not_after.isoformat().replace("+00:00", "Z"),
    }
    mandate = active_mandate([*RAW_CONSTRAINTS, window])
    token = issue_mandate_token(mandate, AGENT, SIGNER, NOW, TTL, issuer=ISSUER)
    assert claims_of(token)["exp"] == int(not_after.timestamp())
    # The window's not_after is its last valid instant (inclusive); the token is conservative
    # and dies at that instant, so it is never accepted at an instant the mandate refuses.
    assert verify_mandate_token(token, JWKS, not_after - timedelta(microseconds=1))
    refused(token, now=not_after)
    # A long window leaves the ttl in charge.
    far = {**window, "not_after": "2027-01-01T00:00:00Z"}
    far_token = issue_mandate_token(
        active_mandate([*RAW_CONSTRAINTS, far]), AGENT, SIGNER, NOW, TTL, issuer=ISSUER
    )
    assert claims_of(far_token)["exp"] == int(EXP.timestamp())
    # An ended window issues nothing.
    with pytest.raises(Conflict) as info:
        issue_mandate_token(mandate, AGENT, SIGNER, not_after, TTL, issuer=ISSUER)
    assert info.value.code == "mandate_window_ended"


# --- binding to the agent's key --------------------------------------------------------------


def test_the_wrong_presenter_key_is_refused() -> None:
    error = refused(TOKEN, presenter_thumbprint=OTHER_AGENT)
    assert isinstance(error, AuthenticationFailed)
    assert f"bound to key {AGENT}" in error.message
    assert verify_mandate_token(TOKEN, JWKS, NOW, presenter_thumbprint=AGENT).jkt == AGENT


def test_a_token_for_another_agent_key_carries_that_key() -> None:
    other = issue_mandate_token(MANDATE, OTHER_AGENT, SIGNER, NOW, TTL, issuer=ISSUER)
    assert claims_of(other)["cnf"] == {"jkt": OTHER_AGENT}
    refused(other, presenter_thumbprint=AGENT)


def test_another_issuer_is_refused_when_one_is_expected() -> None:
    assert verify_mandate_token(TOKEN, JWKS, NOW, issuer=ISSUER).iss == ISSUER
    assert "issued by" in refused(TOKEN, issuer="https://other.example").message


# --- what is issued at all -------------------------------------------------------------------


def test_only_an_active_mandate_is_issued() -> None:
    for mandate, code in (
        (pause(MANDATE, NOW), "mandate_paused"),
        (revoke(MANDATE, NOW), "mandate_revoked"),
        (
            new_mandate("mnd_x", "usr_x", "agt_x", "eur", "UTC", MANDATE.constraints, NOW),
            "mandate_pending_consent",
        ),
    ):
        with pytest.raises(Conflict) as info:
            issue_mandate_token(mandate, AGENT, SIGNER, NOW, TTL, issuer=ISSUER)
        assert info.value.code == code


def test_bad_ttl_thumbprint_issuer_or_signer_are_refused() -> None:
    for ttl in (timedelta(0), -TTL, TTL_MAX + timedelta(seconds=1)):
        with pytest.raises(InvalidRequest, match="lives"):
            issue_mandate_token(MANDATE, AGENT, SIGNER, NOW, ttl, issuer=ISSUER)
    for thumbprint in ("", "kid", AGENT + "A", AGENT[:-1] + "=", "x" * 43 + "\n"):
        with pytest.raises(InvalidRequest) as info:
            issue_mandate_token(MANDATE, thumbprint, SIGNER, NOW, TTL, issuer=ISSUER)
        assert info.value.code == "invalid_thumbprint"
    with pytest.raises(InvalidRequest):
        issue_mandate_token(MANDATE, AGENT, SIGNER, NOW, TTL, issuer="")
    receipt_signer, _ = signer_for(Purpose.RECEIPT, 2)
    with pytest.raises(InvariantViolation, match="signs no tokens"):
        issue_mandate_token(MANDATE, AGENT, receipt_signer, NOW, TTL, issuer=ISSUER)


# --- strictness ------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_every_single_byte_change_of_header_payload_or_signature_is_detected(
    data: st.DataObject,
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(TOKEN) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"
        ).filter(lambda c: c != TOKEN[position]),
        label="replacement",
    )
    refused(TOKEN[:position] + replacement + TOKEN[position + 1 :])


@settings(max_examples=200, deadline=None)
@given(part=st.sampled_from([0, 1, 2]), data=st.data())
def test_every_single_byte_change_of_the_decoded_parts_is_detected(
    part: int, data: st.DataObject
) -> None:
    """A byte flipped inside the decoded header, payload or signature, re-encoded canonically:
    the signature no longer verifies (or the header no longer parses)."""
    parts = TOKEN.split(".")
    raw = bytearray(b64url_decode(parts[part]))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    raw[index] ^= flip
    parts[part] = b64url_encode(bytes(raw))
    refused(".".join(parts))


def test_every_position_is_covered() -> None:
    """Exhaustively: each position, changed to the next base64url letter, is refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position, character in enumerate(TOKEN):
        if character != ".":
            replacement = alphabet[(alphabet.index(character) + 1) % len(alphabet)]
            refused(TOKEN[:position] + replacement + TOKEN[position + 1 :])


def test_unknown_or_impostor_keys_are_refused() -> None:
    assert "no key with kid" in refused(TOKEN, {"keys": []}).message
    _other, other_jwk = signer_for(Purpose.MANDATE_TOKEN, 3)
    assert "no key with kid" in refused(TOKEN, {"keys": [other_jwk]}).message
    impostor = {**other_jwk, "kid": SIGNER.key_id}
    assert "different key" in refused(TOKEN, {"keys": [impostor]}).message
    assert isinstance(refused(TOKEN, {"keys": []}), AuthenticationFailed)


def test_other_headers_are_refused_even_when_signed() -> None:
    claims = claims_of()
    assert verify_mandate_token(forge(GOOD_HEADER, claims), JWKS, NOW).claims() == claims
    for header in (
        {**GOOD_HEADER, "alg": "none"},
        {**GOOD_HEADER, "alg": "HS256"},
        {**GOOD_HEADER, "typ": "JWT"},
        {**GOOD_HEADER, "typ": "payment-receipt+jwt"},
        {**GOOD_HEADER, "crit": ["exp"]},
        {"alg": "ES256", "kid": SIGNER.key_id},
    ):
        assert isinstance(refused(forge(header, claims)), InvalidRequest)


def test_a_receipt_is_not_a_mandate_token() -> None:
    receipt_signer, receipt_jwk = signer_for(Purpose.RECEIPT, 4)
    header = {**GOOD_HEADER, "kid": receipt_signer.key_id, "typ": "payment-receipt+jwt"}
    error = refused(forge(header, claims_of(), receipt_signer), {"keys": [receipt_jwk]})
    assert "not a mandate token" in error.message


def test_claims_of_the_wrong_shape_are_refused_even_when_signed() -> None:
    claims = claims_of()
    mandate = claims["mandate"]
    broken_mandates = (
        {**mandate, "id": "mnd_other"},
        {**mandate, "revision": 0},
        {**mandate, "revision": True},
        {**mandate, "currency": "EUR"},
        {**mandate, "currency": "xyz"},
        {**mandate, "timezone": ""},
        {**mandate, "constraints": []},
        {**mandate, "constraints": [{"type": "payment.budget", "currency": "eur", "max": 5.5}]},
        {**mandate, "constraints": [{"type": "payment.budget", "currency": "EUR", "max": 5}]},
        {**mandate, "agent": "agt_x"},
        {k: v for k, v in mandate.items() if k != "timezone"},
    )
    for broken in (
        *({**claims, "mandate": m} for m in broken_mandates),
        {**claims, "vct": "paywarden.mandate.2"},
        {**claims, "iss": ""},
        {**claims, "sub": "agt_x"},
        {**claims, "jti": "pay_x"},
        {**claims, "iat": "now"},
        {**claims, "exp": claims["iat"]},
        {**claims, "nbf": claims["iat"] - 1},
        {**claims, "exp": claims["iat"] + int(TTL_MAX.total_seconds()) + 1},
        {**claims, "cnf": {"jwk": JWK}},
        {**claims, "cnf": {"jkt": "short"}},
        {**claims, "scope": "everything"},
        {k: v for k, v in claims.items() if k != "cnf"},
    ):
        assert isinstance(refused(forge(GOOD_HEADER, broken)), InvalidRequest), broken


def test_malformed_tokens_and_key_sets_are_refused_clearly() -> None:
    for token in ("", "a.b", "a.b.c.d", TOKEN + "." + TOKEN, "é" * 10, "x" * 70_000):
        assert isinstance(refused(token), InvalidRequest)
    bad_sets: list[Any] = [{}, {"keys": "no"}, [], {"keys": [{"kid": SIGNER.key_id, "kty": "RSA"}]}]
    for jwks in bad_sets:
        refused(TOKEN, jwks)
