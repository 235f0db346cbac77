"""What the SDK, MCP and chat tests share: SDK clients bound to the in-process app (through the
TestClient's transport, the SDK's one I/O seam) or to a live server, and a world of a funded
user, a merchant, an agent and an active mandate made through the API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.sdk import AgentKey, Client, generate_agent_key


class ThroughTestClient(httpx.BaseTransport):
    """An ``httpx`` transport that hands each request to Starlette's TestClient (which speaks
    ``httpx2``), so the SDK's own transport seam reaches the real ASGI app in-process."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method,
            str(request.url),
            content=request.read(),
            headers=[(k.decode(), v.decode()) for k, v in request.headers.raw],
        )
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.multi_items()), content=answer.content
        )


def in_process(api: Api, clock: FakeClock, **options: Any) -> Client:
    """A client of the in-process app (signing with the fake clock the app reads)."""
    transport = ThroughTestClient(api.client)
    return Client("http://testserver", transport=transport, clock=clock.now, **options)


@dataclass
class AgentWorld:
    user: dict[str, Any]
    user_key: str
    merchant: dict[str, Any]
    merchant_key: str
    other_merchant: dict[str, Any]
    agent_id: str
    agent_key: AgentKey
    agent_jwk: dict[str, str]
    platform_key: str


def agent_world(
    post: Any, admin_key: str, *, funded: int = 100_000, currency: str = "usd"
) -> AgentWorld:
    """A funded user, two merchants and an Ed25519 agent, made with ``post(path, key, body)``
    (an httpx-like answer)."""
    tag = secrets.token_hex(4)
    user = post(
        "/v1/users",
        admin_key,
        {"email": f"sdk-{tag}@example.com", "name": "Payer", "currency": currency},
    ).json()
    if funded:
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
        top = post(
            "/v1/top_ups",
            user["secret_key"],
            {"amount": funded, "currency": currency, "card": card},
        )
        assert top.status_code == 201, top.text
    merchants = [
        post(
            "/v1/merchants",
            admin_key,
            {"name": name, "category": "coffee", "currency": currency, "fee_bps": 0},
        ).json()
        for name in ("Harbour Coffee", "Elsewhere")
    ]
    made = post(
        "/v1/agent_platforms",
        admin_key,
        {"name": "Agents", "origin": f"https://agents-{tag}.example"},
    )
    assert made.status_code == 201, made.text
    key, jwk = generate_agent_key()
    agent = post(
        "/v1/agents", made.json()["secret_key"], {"name": "Shopper", "keys": [key.public_jwk()]}
    )
    assert agent.status_code == 201, agent.text
    return AgentWorld(
        user,
        user["secret_key"],
        merchants[0],
        merchants[0]["secret_key"],
        merchants[1],
        agent.json()["id"],
        key,
        jwk,
        made.json()["secret_key"],
    )


def budget(max_amount: int, currency: str = "usd") -> dict[str, Any]:
    return {"type": "payment.budget", "currency": currency, "max": max_amount}


def payees(*merchant_ids: str) -> dict[str, Any]:
    return {"type": "payment.allowed_payees", "allowed": list(merchant_ids)}


def confirm_above(amount: int, currency: str = "usd") -> dict[str, Any]:
    return {"type": "paywarden.confirmation_threshold", "currency": currency, "above": amount}


def active_mandate(
    agent: Client,
    user: Client,
    user_id: str,
    constraints: list[dict[str, Any]],
    currency: str = "usd",
) -> str:
    """A mandate the agent asked for and the user consented to; its id."""
    asked = agent.mandates.request(
        user=user_id,
        currency=currency,
        constraints=constraints,
        conversation_excerpt="buy me coffee",
    )
    assert asked["status"] == "pending_consent", asked
    assert user.mandates.consent(asked["id"])["status"] == "active"
    return str(asked["id"])
