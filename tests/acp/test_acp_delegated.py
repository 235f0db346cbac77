"""The one-time delegated payment token: minted only by the mandate's agent for its own
session, refused when used, expired, for another session or merchant, over its max_amount or
in another currency, and spent exactly once even when completions race."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import acp_support
from acp_support import (
    AcpSchema,
    AcpWorld,
    grant_mandate,
    issue_acp_token,
    payment_data,
    register_signed_agent,
)
from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict, InvalidRequest
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import delegated, identity
from paywarden.store import schema as tables
from paywarden.store.tables_acp import delegated_tokens
from paywarden.store.unit_of_work import UnitOfWork

# The shared fixtures (tests/acp_support.py), bound here so pytest finds them.
acp_api, world, schema = acp_support.acp_api, acp_support.world, acp_support.schema

RACE_ROUNDS = 6


def _agent(world: AcpWorld) -> Principal:
    return Principal(PrincipalType.AGENT, world.agent.id, False, "kid", identity.API_VERSION)


def _reserve(
    world: AcpWorld, token_id: str, session_id: str, currency: str = "usd"
) -> Callable[[UnitOfWork], delegated.DelegatedToken]:
    def reserve(uow: UnitOfWork) -> delegated.DelegatedToken:
        return delegated.reserve(
            uow,
            _agent(world),
            token_id,
            merchant_id=world.merchant_id,
            checkout_session_id=session_id,
            amount=1,
            currency=currency,
        )

    return reserve


def total(session: dict[str, Any]) -> int:
    return int(next(t["amount"] for t in session["totals"] if t["type"] == "total"))


def complete(world: AcpWorld, session_id: str, token: str, key: str | None = None) -> Any:
    body = {"payment_data": payment_data(token)}
    if key is None:
        return world.post(f"/checkout_sessions/{session_id}/complete", body)
    return world.post(f"/checkout_sessions/{session_id}/complete", body, idempotency_key=key)


def refused(response: Any, schema: AcpSchema, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    schema.check("Error", response.json())
    assert response.json()["code"] == code
    assert response.json()["param"] == "$.payment_data.instrument.credential.token"


def payments_of(world: AcpWorld) -> int:
    count: int = world.api.store.run(
        lambda uow: uow.execute(
            select(func.count()).where(tables.audit_records.c.event_type == "delegated_token.used")
        ).scalar_one(),
        read_only=True,
    )
    return count


def test_mint_shapes_the_allowance_like_acp(world: AcpWorld) -> None:
    session = world.create()
    minted = world.mint(session["id"], 1_000, currency="USD", expires_in=timedelta(minutes=5))
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["id"].startswith("dlg_") and body["object"] == "delegated_token"
    assert body["allowance"] == {
        "reason": "one_time",
        "max_amount": 1_000,
        "currency": "usd",
        "checkout_session_id": session["id"],
        "merchant_id": world.merchant_id,
        "expires_at": body["allowance"]["expires_at"],
    }
    assert body["used_at"] is None


def test_mint_is_refused_outside_the_agents_own_mandate_and_session(
    world: AcpWorld, acp_api: Api, clock: FakeClock
) -> None:
    session = world.create()
    # Another agent cannot mint from this mandate.
    other, _ = register_signed_agent(acp_api, clock)
    foreign = other.post(
        f"/v1/mandates/{world.mandate_id}/delegated_tokens",
        {
            "allowance": {
                "max_amount": 100,
                "currency": "usd",
                "checkout_session_id": session["id"],
                "merchant_id": world.merchant_id,
            }
        },
    )
    assert foreign.status_code == 404, foreign.text
    # A user key cannot mint either: only the agent (signed) does.
    by_user = acp_api.post(
        f"/v1/mandates/{world.mandate_id}/delegated_tokens",
        world.user_key,
        {"allowance": {"max_amount": 1}},
    )
    assert by_user.status_code == 403, by_user.text
    # Currency other than the mandate's, a far expiry, another merchant, bad reason.
    eur = world.mint(session["id"], 100, currency="eur")
    assert eur.json()["error"]["code"] == "currency_mismatch"
    far = world.mint(session["id"], 100, expires_in=timedelta(days=2))
    assert far.status_code == 400 and far.json()["error"]["param"] == "$.allowance.expires_at"
    other_shop, _ = acp_api.merchant("usd")
    mismatch = world.mint(session["id"], 100, merchant_id=other_shop["id"])
    assert mismatch.json()["error"]["code"] == "payment_token_mismatch", mismatch.text
    # A revoked mandate mints nothing.
    acp_api.post(f"/v1/mandates/{world.mandate_id}/revoke", world.user_key, {})
    assert world.mint(session["id"], 100).status_code == 409


def test_token_is_spent_once(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    token = world.token_for(session)
    assert complete(world, session["id"], token).status_code == 200
    second = world.create()
    # The token names the first session; and it is used.
    refused(complete(world, second["id"], token), schema, 409, "payment_token_used")


def test_token_for_another_session_is_refused(world: AcpWorld, schema: AcpSchema) -> None:
    first, second = world.create(), world.create()
    token = world.token_for(first)
    refused(complete(world, second["id"], token), schema, 400, "payment_token_mismatch")
    # Refused tokens are not spent: it still pays for its own session.
    assert complete(world, first["id"], token).json()["status"] == "completed"


def test_expired_token_is_refused(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    token = world.token_for(session, expires_in=timedelta(minutes=2))
    world.clock.advance(timedelta(minutes=2, seconds=1))
    refused(complete(world, session["id"], token), schema, 400, "payment_token_expired")


def test_total_over_max_amount_is_refused(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    minted = world.mint(session["id"], total(session) - 1)
    refused(
        complete(world, session["id"], minted.json()["id"]),
        schema,
        400,
        "amount_exceeds_allowance",
    )
    exact = world.mint(session["id"], total(session)).json()["id"]
    assert complete(world, session["id"], exact).json()["status"] == "completed"


def test_unknown_or_another_agents_token_is_refused(
    world: AcpWorld, acp_api: Api, clock: FakeClock, schema: AcpSchema
) -> None:
    session = world.create()
    refused(complete(world, session["id"], "dlg_nope"), schema, 400, "invalid_payment_token")
    refused(complete(world, session["id"], "spt_123"), schema, 400, "invalid_payment_token")
    # A second agent of the same user, with its own mandate, cannot spend the first's token.
    token = world.token_for(session)
    other, platform_key = register_signed_agent(acp_api, clock)
    other_mandate = grant_mandate(
        acp_api, other, world.user_id, world.user_key, world.merchant_id, 10_000
    )
    assert other_mandate
    world.token = issue_acp_token(acp_api, platform_key, other.id)
    # The session is the first agent's: to the second it does not exist.
    assert complete(world, session["id"], token).status_code == 404


def test_refusals_are_audited(world: AcpWorld) -> None:
    session = world.create()
    complete(world, session["id"], "dlg_nope")
    count = world.api.store.run(
        lambda uow: uow.execute(
            select(func.count()).where(
                tables.audit_records.c.event_type == "delegated_token.refused"
            )
        ).scalar_one(),
        read_only=True,
    )
    assert count == 1


def test_currency_other_than_the_tokens_is_refused(world: AcpWorld) -> None:
    """The service refuses a charge in another currency than the allowance's."""
    session = world.create()
    token = world.token_for(session)
    with pytest.raises(InvalidRequest) as caught:
        world.api.store.run(_reserve(world, token, session["id"], currency="eur"))
    assert caught.value.code == "currency_mismatch"


def test_spend_is_conditional(world: AcpWorld) -> None:
    """Two completions that both reserved the token before either spent it: the second
    spend finds it used (the conditional UPDATE), whatever the interleaving."""
    session = world.create()
    reserve = _reserve(world, world.token_for(session), session["id"])
    first, second = world.api.store.run(reserve), world.api.store.run(reserve)
    world.api.store.run(lambda uow: delegated.spend(uow, _agent(world), first))
    with pytest.raises(Conflict) as caught:
        world.api.store.run(lambda uow: delegated.spend(uow, _agent(world), second))
    assert caught.value.code == "payment_token_used"


def test_racing_redemptions_spend_a_token_once(world: AcpWorld) -> None:
    """Threads reserve and spend the same token at once (each in one transaction), round
    after round: exactly one wins each round."""
    session = world.create()
    for _ in range(RACE_ROUNDS):
        reserve = _reserve(world, world.token_for(session), session["id"])
        barrier = threading.Barrier(3)
        outcomes: list[str] = []

        def redeem(
            gate: threading.Barrier = barrier,
            results: list[str] = outcomes,
            reserve: Callable[[UnitOfWork], delegated.DelegatedToken] = reserve,
        ) -> None:
            gate.wait(timeout=30)
            try:
                world.api.store.run(lambda uow: delegated.spend(uow, _agent(world), reserve(uow)))
                results.append("spent")
            except Conflict as error:
                results.append(error.code)

        threads = [threading.Thread(target=redeem) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["payment_token_used", "payment_token_used", "spent"]
    used = world.api.store.run(
        lambda uow: uow.execute(
            select(func.count()).where(delegated_tokens.c.used_at.is_not(None))
        ).scalar_one(),
        read_only=True,
    )
    assert used == RACE_ROUNDS


def test_racing_completions_pay_once(world: AcpWorld) -> None:
    """Two ACP completes of one session with one token and different Idempotency-Keys, at
    once: one pays, the other is refused; one payment, the token spent once."""
    session = world.create()
    token = world.token_for(session)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def go(key: str) -> None:
        barrier.wait(timeout=30)
        statuses.append(complete(world, session["id"], token, key).status_code)

    threads = [threading.Thread(target=go, args=(f"race-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses)[0] == 200 and sorted(statuses)[1] in (409,), statuses
    assert payments_of(world) == 1
