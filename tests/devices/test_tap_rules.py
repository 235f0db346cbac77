"""The pure rules of trust/tap.py and trust/devices.py, as properties: a cryptogram covers
every field, counters only move forward, a step-up is needed exactly above the limits, and a
QR payload or a confirmation changed by one byte is refused."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.devices import simulators
from paywarden.kernel.errors import InvalidRequest
from paywarden.trust.devices import (
    Confirmation,
    PaymentRequestClaims,
    confirmation_bytes,
    decode_payment_request,
    encode_payment_request,
    verify_confirmation,
    verify_payment_request,
)
from paywarden.trust.keys import b64url_encode, ed25519_private_key
from paywarden.trust.pan import looks_like_card_number
from paywarden.trust.tap import (
    Limits,
    TapData,
    TapState,
    judge,
    message_hash,
    over_limits,
    sign_tap,
    verify_cryptogram,
)

KEY = ed25519_private_key(bytes(range(32)))
TERMINAL, MERCHANT = "trm_01JD6Z0000000000000000000T", "mer_01JD6Z0000000000000000000M"


def _tap(counter: int = 5, amount: int = 450, uv: str = "none") -> TapData:
    return TapData("dtk_x", amount, "usd", MERCHANT, TERMINAL, "0a1b2c3d4e5f6071", counter, uv)


def _state(last: int = 4, *, spent: int = 0, limits: Limits | None = None) -> TapState:
    return TapState(
        cryptogram_valid=True,
        token_status="active",
        device_status="active",
        terminal_kind="pos",
        terminal_id=TERMINAL,
        terminal_merchant=MERCHANT,
        last_counter=last,
        counter_window=50,
        limits=limits or Limits("usd", 5_000, 20_000),
        spent_today=spent,
    )


FIELDS = st.sampled_from(
    ["amount", "currency", "merchant", "terminal", "unpredictable_number", "counter", "token"]
)


@settings(max_examples=60, deadline=None)
@given(field=FIELDS, salt=st.integers(min_value=1, max_value=10**6))
def test_the_cryptogram_covers_every_field(field: str, salt: int) -> None:
    tap = _tap()
    cryptogram = sign_tap(tap, KEY.sign)
    assert verify_cryptogram(KEY.public_key, tap, cryptogram)
    changed = {
        "amount": tap.amount + salt,
        "currency": "eur",
        "merchant": f"mer_{salt}",
        "terminal": f"trm_{salt}",
        "unpredictable_number": f"{salt:016x}",
        "counter": tap.counter + salt,
        "token": f"dtk_{salt}",
    }[field]
    forged = replace(tap, **{field: changed})
    assert not verify_cryptogram(KEY.public_key, forged, cryptogram)
    assert message_hash(forged, cryptogram) != message_hash(tap, cryptogram)


@settings(max_examples=200, deadline=None)
@given(
    last=st.integers(min_value=0, max_value=10_000),
    counter=st.integers(min_value=1, max_value=10_100),
    uv=st.sampled_from(["none", "voice", "pin", "biometric"]),
)
def test_counters_only_move_forward(last: int, counter: int, uv: str) -> None:
    verdict = judge(_tap(counter, uv=uv), _state(last))
    if counter <= last:
        assert verdict.reasons == ("counter_replayed",) and not verdict.advance_counter
    if verdict.approved or verdict.advance_counter:
        assert counter > last
    if counter > last + 50:
        assert verdict.flagged
        assert verdict.approved == (uv in {"pin", "biometric"})


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=30_000),
    spent=st.integers(min_value=0, max_value=30_000),
    uv=st.sampled_from(["none", "voice", "pin", "biometric"]),
)
def test_a_step_up_is_needed_exactly_above_the_limits(amount: int, spent: int, uv: str) -> None:
    limits = Limits("usd", 5_000, 20_000)
    verdict = judge(_tap(amount=amount, uv=uv), _state(spent=spent, limits=limits))
    above = amount > 5_000 or spent + amount > 20_000
    assert over_limits(amount, "usd", limits, spent) == above
    assert verdict.approved == (not above or uv in {"pin", "biometric"})
    if not verdict.approved:
        assert verdict.reasons == ("step_up_required",)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cryptogram_valid": False}, "cryptogram_invalid"),
        ({"token_status": None}, "token_unknown"),
        ({"token_status": "revoked"}, "token_revoked"),
        ({"device_status": "revoked"}, "device_revoked"),
        ({"terminal_kind": "online"}, "token_domain_mismatch"),
        ({"terminal_kind": "table_tag"}, "token_domain_mismatch"),
        ({"terminal_id": "trm_other"}, "terminal_mismatch"),
        ({"terminal_merchant": "mer_other"}, "terminal_mismatch"),
    ],
)
def test_each_refusal_has_its_reason(change: dict[str, object], reason: str) -> None:
    verdict = judge(_tap(uv="biometric"), replace(_state(), **change))  # type: ignore[arg-type]
    assert (verdict.approved, verdict.reasons, verdict.advance_counter) == (False, (reason,), False)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0, max_value=10_000), amount=st.integers(1, 10**9))
def test_a_qr_payload_changed_anywhere_is_refused(position: int, amount: int) -> None:
    secret = b"s" * 32
    claims = PaymentRequestClaims("qr_1", MERCHANT, "Shop", amount, "usd", "ref", 1_800_000_000)
    payload = encode_payment_request(claims, secret)
    assert verify_payment_request(payload, secret) == claims == decode_payment_request(payload)
    index = position % len(payload)
    swapped = "A" if payload[index] != "A" else "B"
    tampered = payload[:index] + swapped + payload[index + 1 :]
    with pytest.raises(InvalidRequest):
        verify_payment_request(tampered, secret)
    with pytest.raises(InvalidRequest):
        verify_payment_request(payload, b"t" * 32)


def test_a_confirmation_binds_every_field_and_its_user_check() -> None:
    confirmation = Confirmation(450, "usd", MERCHANT, "abc", secrets.token_urlsafe(16), "voice")
    signature = b64url_encode(KEY.sign(confirmation_bytes(confirmation)))
    assert verify_confirmation(KEY.public_key, confirmation, signature)
    for change in (
        {"amount": 451},
        {"currency": "eur"},
        {"payee": "mer_other"},
        {"cart_hash": None},
        {"nonce": "x" * 16},
        {"user_verification": "pin"},
    ):
        assert not verify_confirmation(KEY.public_key, replace(confirmation, **change), signature)
    assert not verify_confirmation(KEY.public_key, confirmation, signature + "A")
    with pytest.raises(InvalidRequest):
        Confirmation(0, "usd", MERCHANT, None, "n" * 16, "voice")


def test_a_simulated_terminal_never_draws_what_the_card_number_screen_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16 hex digits are all decimal, network-prefixed and Luhn-valid about once in 50,000
    draws; the platform would refuse such a tap (``card_number_in_text``), so the simulator
    draws again (a test on PostgreSQL failed now and then on it)."""
    assert all(not looks_like_card_number(simulators.unpredictable_number()) for _ in range(500))
    draws = iter(["4242424242424242", "4111111111111111", "9f3a00112233aabb"])
    monkeypatch.setattr(simulators.secrets, "token_hex", lambda _n: next(draws))
    assert simulators.unpredictable_number() == "9f3a00112233aabb"
