"""Mandate tokens through the store, on SQLite and PostgreSQL: signed by the active
``mandate_token`` key (made on first use), verified against the platform's trusted
mandate-token keys, and still verifying after the key rotates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from paywarden.authorization.constraints import parse_constraints, to_json
from paywarden.authorization.mandates import Mandate, consent, new_mandate
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import AuthenticationFailed, InvalidRequest
from paywarden.services import keys, tokens
from paywarden.store.tables_keys import platform_keys
from paywarden.store.unit_of_work import Store
from paywarden.trust.custody import KeyStatus, Purpose
from paywarden.trust.jws import Profile, sign
from paywarden.trust.keys import ed25519_private_key
from paywarden.trust.tokens import MANDATE_TOKEN_TYP, TTL_DEFAULT, verify_mandate_token

MASTER = bytes(range(32))
ISSUER = "https://pay.example"
AGENT = ed25519_private_key(bytes(range(32))).public_key.thumbprint
OTHER_AGENT = ed25519_private_key(bytes(range(1, 33))).public_key.thumbprint


def mandate(clock: FakeClock) -> Mandate:
    raw = [
        {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 2_000},
        {"type": "paywarden.merchant_categories", "allowed": ["coffee"]},
    ]
    pending = new_mandate(
        "mnd_token_service",
        "usr_token_service",
        "agt_token_service",
        "usd",
        "America/New_York",
        parse_constraints(raw, currency="usd"),
        clock.now(),
    )
    return consent(pending, clock.now())


def issue(store: Store, clock: FakeClock, ttl: timedelta = TTL_DEFAULT) -> str:
    return store.run(
        lambda uow: tokens.issue(uow, mandate(clock), AGENT, MASTER, ttl, issuer=ISSUER)
    )


def refused(
    store: Store, token: str, clock: FakeClock, presenter_thumbprint: str | None = None
) -> InvalidRequest | AuthenticationFailed:
    with pytest.raises((InvalidRequest, AuthenticationFailed)) as info:
        store.run(lambda uow: tokens.verify(uow, token, clock.now(), presenter_thumbprint))
    error = info.value
    assert isinstance(error, InvalidRequest | AuthenticationFailed)
    assert error.code == "mandate_token_invalid"
    return error


def verified_kid(store: Store, token: str, clock: FakeClock) -> str:
    return store.run(lambda uow: tokens.verify(uow, token, clock.now(), AGENT)).kid


def test_a_token_round_trips_through_the_store(store: Store, clock: FakeClock) -> None:
    token = issue(store, clock)
    claims = store.run(lambda uow: tokens.verify(uow, token, clock.now(), AGENT, issuer=ISSUER))
    active = mandate(clock)
    assert (claims.jti, claims.sub, claims.jkt) == (active.id, active.user, AGENT)
    assert list(claims.constraints) == [to_json(c) for c in active.constraints]
    assert claims.expires_at == clock.now() + TTL_DEFAULT
    signer_kid = store.run(lambda uow: keys.active_signer(uow, Purpose.MANDATE_TOKEN, MASTER))
    assert claims.kid == signer_kid.key_id
    records = store.run(keys.list_keys)
    assert [(r.purpose, r.status) for r in records] == [(Purpose.MANDATE_TOKEN, KeyStatus.ACTIVE)]


def test_the_clock_and_the_presenter_decide(store: Store, clock: FakeClock) -> None:
    token = issue(store, clock, timedelta(minutes=5))
    assert isinstance(
        refused(store, token, clock, presenter_thumbprint=OTHER_AGENT), AuthenticationFailed
    )
    clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
    assert store.run(lambda uow: tokens.verify(uow, token, clock.now(), AGENT)).jkt == AGENT
    clock.advance(timedelta(microseconds=1))  # now == exp: the first instant not accepted
    assert "expired" in refused(store, token, clock, presenter_thumbprint=AGENT).message


def test_tokens_keep_verifying_after_the_key_rotates(store: Store, clock: FakeClock) -> None:
    before = issue(store, clock)
    old_kid = store.run(lambda uow: tokens.verify(uow, before, clock.now())).kid
    new = store.run(lambda uow: keys.rotate(uow, Purpose.MANDATE_TOKEN, MASTER))
    clock.advance(timedelta(minutes=1))
    after = issue(store, clock)
    for token, kid in ((before, old_kid), (after, new.kid)):
        assert verified_kid(store, token, clock) == kid
        # Relying parties outside use the published set, which keeps the retired key.
        published = store.run(keys.published_jwks)
        assert verify_mandate_token(token, published, clock.now(), presenter_thumbprint=AGENT)
    assert old_kid != new.kid
    store.run(lambda uow: keys.rotate(uow, Purpose.MANDATE_TOKEN, MASTER))
    assert verified_kid(store, before, clock) == old_kid


def test_a_revoked_key_vouches_for_nothing(store: Store, clock: FakeClock) -> None:
    token = issue(store, clock)
    kid = store.run(lambda uow: tokens.verify(uow, token, clock.now())).kid
    store.run(
        lambda uow: uow.execute(
            update(platform_keys)
            .where(platform_keys.c.kid == kid)
            .values(status=KeyStatus.REVOKED.value)
        )
    )
    assert "no key with kid" in refused(store, token, clock).message


def test_only_mandate_token_keys_vouch_for_mandate_tokens(store: Store, clock: FakeClock) -> None:
    """A receipt key is trusted for receipts; a mandate token it signed is still refused."""
    genuine = issue(store, clock)
    claims = store.run(lambda uow: tokens.verify(uow, genuine, clock.now())).claims()
    receipt_signer = store.run(lambda uow: keys.active_signer(uow, Purpose.RECEIPT, MASTER))
    profile = Profile(MANDATE_TOKEN_TYP, "mandate token", 65_536, InvalidRequest, InvalidRequest)
    forged = sign(profile, claims, receipt_signer)
    all_trusted = store.run(keys.verification_keys)
    assert verify_mandate_token(forged, all_trusted, clock.now())  # the unfiltered set would
    assert "no key with kid" in refused(store, forged, clock).message
    jwks = store.run(tokens.verification_jwks)
    token_kids = [r.kid for r in store.run(keys.list_keys) if r.purpose == Purpose.MANDATE_TOKEN]
    assert [jwk["kid"] for jwk in jwks["keys"]] == token_kids
