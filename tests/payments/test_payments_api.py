"""Mandates and payments over HTTP, on SQLite and PostgreSQL: the agent signs (RFC 9421),
the user consents with their key, the agent pays, everyone reads, revocation wins.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import Api, make_api
from payment_support import SignedAgent, register_agent, signed_headers
from paywarden.api.app import create_app
from paywarden.config import Settings
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import AuthenticationFailed
from paywarden.store.unit_of_work import Store
from paywarden.trust.keys import ed25519_private_key
from paywarden.trust.receipts import ReceiptStatus, verify_receipt
from paywarden.trust.tokens import verify_mandate_token


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(store, master_key_file=tmp_path / "master.key")


Agent = SignedAgent


@pytest.fixture
def agent(api: Api, clock: FakeClock) -> Agent:
    return register_agent(api, clock)


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def _granted(api: Api, agent: Agent, user: dict[str, Any], user_key: str, merchant: str) -> str:
    asked = agent.post(
        "/v1/mandates",
        {
            "user": user["id"],
            "currency": "USD",
            "timezone": "Europe/Paris",
            "constraints": [
                {
                    "type": "paywarden.period_budget",
                    "period": "daily",
                    "currency": "usd",
                    "max": 5_000,
                },
                {"type": "payment.allowed_payees", "allowed": [merchant]},
            ],
            "conversation_excerpt": "get me my usual coffee beans",
        },
    )
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert (body["object"], body["status"], body["agent"]) == (
        "mandate",
        "pending_consent",
        agent.id,
    )
    assert body["consent_url"] == f"http://testserver/mandates/{body['id']}/consent"
    consented = api.post(f"/v1/mandates/{body['id']}/consent", user_key)
    assert consented.status_code == 200, consented.text
    assert consented.json()["status"] == "active" and consented.json()["consent_url"] is None
    return str(body["id"])


def test_an_agent_asks_the_user_consents_and_the_agent_pays(api: Api, agent: Agent) -> None:
    user, user_key = api.user(funded=20_000)
    merchant, merchant_key = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])

    paid = agent.post(
        "/v1/payments",
        {"mandate": mandate_id, "merchant": merchant["id"], "amount": 1_200, "currency": "usd"},
    )
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert (payment["object"], payment["status"], payment["reasons"]) == (
        "payment",
        "succeeded",
        [],
    )
    jwks = api.client.get("/.well-known/jwks.json").json()
    receipt = verify_receipt(payment["receipt"], jwks)
    assert receipt.status is ReceiptStatus.SUCCESS and receipt.payment_id == payment["id"]

    for reader in (
        agent.get(f"/v1/payments/{payment['id']}"),
        api.get(f"/v1/payments/{payment['id']}", user_key),
        api.get(f"/v1/payments/{payment['id']}", merchant_key),
    ):
        assert reader.status_code == 200, reader.text
        assert reader.json() == payment
    seen = agent.get(f"/v1/mandates/{mandate_id}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["remaining"][0]["amount_left"] == 5_000 - 1_200


def test_a_retried_payment_is_replayed_not_paid_twice(api: Api, agent: Agent) -> None:
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 700, "currency": "usd"}
    first = agent.post("/v1/payments", body, idempotency_key="pay-once")
    again = agent.post("/v1/payments", body, idempotency_key="pay-once")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    left = api.get(f"/v1/mandates/{mandate_id}", user_key).json()["remaining"][0]["amount_left"]
    assert left == 5_000 - 700


def test_a_key_revoked_after_it_paid_is_refused_at_once(api: Api, clock: FakeClock) -> None:
    """The key's material is cached once it has signed (the payment route then verifies on
    the event loop); whether it may still sign is read with every payment."""
    origin = f"https://agents-{secrets.token_hex(4)}.example"
    platform = api.post("/v1/agent_platforms", api.admin_key, {"name": "A", "origin": origin})
    platform_key = platform.json()["secret_key"]
    key = ed25519_private_key(secrets.token_bytes(32))
    made = api.post("/v1/agents", platform_key, {"name": "Shopper", "keys": [key.public_jwk()]})
    agent = Agent(api, clock, key, made.json()["id"])
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 300, "currency": "usd"}
    assert agent.post("/v1/payments", body).status_code == 201
    revoked = api.post(f"/v1/agents/{agent.id}/keys/{key.keyid}/revoke", platform_key)
    assert revoked.status_code == 200, revoked.text
    refused = agent.post("/v1/payments", body)
    assert refused.status_code == 401 and _code(refused) == "key_revoked", refused.text
    left = api.get(f"/v1/mandates/{mandate_id}", user_key).json()["remaining"][0]["amount_left"]
    assert left == 5_000 - 300


def test_revoked_by_an_admin_the_next_payment_is_declined(api: Api, agent: Agent) -> None:
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    revoked = api.post(f"/v1/mandates/{mandate_id}/revoke", api.admin_key)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    declined = agent.post(
        "/v1/payments",
        {"mandate": mandate_id, "merchant": merchant["id"], "amount": 100, "currency": "usd"},
    )
    assert declined.status_code == 201, declined.text
    assert (declined.json()["status"], declined.json()["reasons"]) == (
        "declined",
        ["mandate_not_active"],
    )
    jwks = api.client.get("/.well-known/jwks.json").json()
    assert verify_receipt(declined.json()["receipt"], jwks).status is ReceiptStatus.ERROR


def test_agent_signatures_never_grant_and_keys_never_pay(api: Api, agent: Agent) -> None:
    user, user_key = api.user(funded=1_000)
    merchant, _ = api.merchant()
    asked = agent.post(
        "/v1/mandates",
        {
            "user": user["id"],
            "currency": "usd",
            "constraints": [{"type": "payment.budget", "currency": "usd", "max": 500}],
        },
    )
    mandate_id = asked.json()["id"]
    refused = agent.post(f"/v1/mandates/{mandate_id}/consent", {})
    assert (refused.status_code, _code(refused)) == (401, "agent_not_allowed")
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 100, "currency": "usd"}
    by_user = api.post("/v1/payments", user_key, body)
    assert by_user.status_code == 403, by_user.text
    unknown = agent.post(
        "/v1/mandates",
        {
            "user": user["id"],
            "currency": "usd",
            "constraints": [
                {"type": "payment.budget", "currency": "usd", "max": 500},
                {"type": "payment.reference", "id": "x"},
            ],
        },
    )
    assert (unknown.status_code, _code(unknown)) == (400, "unknown_constraint")


def test_the_agent_takes_a_token_bound_to_its_key_that_verifies_offline(
    api: Api, agent: Agent
) -> None:
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    taken = agent.post(f"/v1/mandates/{mandate_id}/token", {})
    assert taken.status_code == 200, taken.text
    token = taken.json()["token"]
    jwks = api.client.get("/.well-known/jwks.json").json()
    claims = verify_mandate_token(
        token, jwks, agent.clock.now(), presenter_thumbprint=agent.key.public_key.thumbprint
    )
    assert claims.mandate_id == mandate_id
    other = ed25519_private_key(secrets.token_bytes(32)).public_key.thumbprint
    with pytest.raises(AuthenticationFailed):
        verify_mandate_token(token, jwks, agent.clock.now(), presenter_thumbprint=other)
    # Only the agent takes it; a paused mandate gets none.
    assert api.post(f"/v1/mandates/{mandate_id}/token", user_key).status_code in {401, 403}
    assert api.post(f"/v1/mandates/{mandate_id}/pause", user_key).status_code == 200
    assert agent.post(f"/v1/mandates/{mandate_id}/token", {}).status_code == 409


def test_an_amended_mandate_pays_nothing_until_the_user_consents_again(
    api: Api, agent: Agent
) -> None:
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    wider = [
        {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 50_000},
        {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
    ]
    amended = agent.post(f"/v1/mandates/{mandate_id}/amend", {"constraints": wider})
    assert amended.status_code == 200, amended.text
    assert amended.json()["status"] == "pending_consent"
    refused = agent.post(
        "/v1/payments",
        {"mandate": mandate_id, "merchant": merchant["id"], "amount": 100, "currency": "usd"},
    )
    assert refused.status_code == 201 and refused.json()["status"] == "declined"
    assert "mandate_not_active" in refused.json()["reasons"]
    assert api.post(f"/v1/mandates/{mandate_id}/consent", user_key).status_code == 200
    paid = agent.post(
        "/v1/payments",
        {"mandate": mandate_id, "merchant": merchant["id"], "amount": 100, "currency": "usd"},
    )
    assert paid.json()["status"] == "succeeded", paid.text


def test_risk_thresholds_are_configuration(store: Store) -> None:
    with pytest.raises(ValueError, match="unknown threshold"):
        create_app(Settings(database_url="sqlite://", risk={"no_such_rule": 1}), store)
    with pytest.raises(ValueError, match="step-up"):
        create_app(Settings(database_url="sqlite://", risk={"mandate_step_up_min": 50}), store)
    app = create_app(
        Settings(database_url="sqlite://", risk={"new_merchant_step_up": False}), store
    )
    assert app.state.runtime.risk.new_merchant_step_up is False


def test_a_refused_payment_keeps_its_stored_error_and_its_nonce(api: Api, agent: Agent) -> None:
    """One unit of work (group commit): a 4xx from the payment itself is stored against the
    key and replayed, the agent's nonce stays used, and nothing of the effect remains."""
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    body = {"mandate": mandate_id, "merchant": "mer_unknown", "amount": 700, "currency": "usd"}
    raw = json.dumps(body).encode()
    headers = signed_headers(agent.key, "POST", "/v1/payments", created=agent.clock.now(), body=raw)
    headers |= {"Content-Type": "application/json", "Idempotency-Key": "refused-once"}
    first = api.client.post("/v1/payments", content=raw, headers=headers)
    assert first.status_code == 404, first.text
    again = agent.post("/v1/payments", body, idempotency_key="refused-once")  # fresh nonce
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (404, "true")
    assert again.json() == first.json()
    replayed = api.client.post("/v1/payments", content=raw, headers=headers)  # same nonce
    assert (replayed.status_code, _code(replayed)) == (401, "nonce_replayed")
    left = api.get(f"/v1/mandates/{mandate_id}", user_key).json()["remaining"][0]["amount_left"]
    assert left == 5_000


def test_a_replayed_nonce_under_a_new_key_pays_nothing_and_keeps_no_claim(
    api: Api, agent: Agent
) -> None:
    """The nonce's check goes out with the key's claim (one round trip on PostgreSQL): a
    replay is refused there, and the claim made with it is undone, so the new key is
    still free and nothing was paid."""
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 700, "currency": "usd"}
    raw = json.dumps(body).encode()
    headers = signed_headers(agent.key, "POST", "/v1/payments", created=agent.clock.now(), body=raw)
    headers |= {"Content-Type": "application/json", "Idempotency-Key": "first-key"}
    assert api.client.post("/v1/payments", content=raw, headers=headers).status_code == 201
    replayed = api.client.post(
        "/v1/payments", content=raw, headers={**headers, "Idempotency-Key": "second-key"}
    )
    assert (replayed.status_code, _code(replayed)) == (401, "nonce_replayed")
    fresh = agent.post("/v1/payments", body, idempotency_key="second-key")  # a new nonce
    assert (fresh.status_code, fresh.headers.get("Idempotent-Replayed")) == (201, None)
    left = api.get(f"/v1/mandates/{mandate_id}", user_key).json()["remaining"][0]["amount_left"]
    assert left == 5_000 - 2 * 700


def test_concurrent_retries_of_one_payment_pay_once_and_replay(api: Api, agent: Agent) -> None:
    """The same key sent at once from many threads: one payment, and every other answer is
    its replay (the second waits for the first's commit instead of a 409)."""
    user, user_key = api.user(funded=20_000)
    merchant, _ = api.merchant()
    mandate_id = _granted(api, agent, user, user_key, merchant["id"])
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 300, "currency": "usd"}
    start = threading.Barrier(8)

    def send(_index: int) -> Any:
        start.wait()
        return agent.post("/v1/payments", body, idempotency_key="pay-at-once")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert {answer.status_code for answer in answers} == {201}, [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") != "true" for answer in answers) == 1
    left = api.get(f"/v1/mandates/{mandate_id}", user_key).json()["remaining"][0]["amount_left"]
    assert left == 5_000 - 300
