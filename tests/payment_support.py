"""What the payment tests share: a world made through the services (a funded user, two
merchants, an agent), mandates granted in one call, payments through ``Store.run``, balances,
and RFC 9421 signed headers for the API tests (as in tests/agents/agent_support.py)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from conftest import Api
from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, identity, ledger, mandates, payments, platform
from paywarden.services.ledger import Card
from paywarden.services.payments import PaymentRecord
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.keys import PrivateKey, ed25519_private_key
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

MASTER_KEY = bytes(range(32))
ISSUER = "https://paywarden.test"
CARD = Card("4242424242424242", 12, 2099)
# Risk rules that never fire, for tests about constraints, usage and concurrency alone.
NO_RISK = RiskConfig(
    agent_step_up_min=1_000_000,
    agent_deny_min=1_000_000,
    mandate_step_up_min=1_000_000,
    mandate_deny_min=1_000_000,
    outlier_history_min=1_000,
    new_merchant_step_up=False,
    failure_step_up_min=1_000_000,
    failure_deny_min=1_000_000,
)


def budget(max_amount: int = 50_000) -> dict[str, Any]:
    return {"type": "payment.budget", "currency": "usd", "max": max_amount}


def payees(*merchant_ids: str) -> dict[str, Any]:
    return {"type": "payment.allowed_payees", "allowed": list(merchant_ids)}


def _principal(kind: PrincipalType, owner: str | None, key_id: str) -> Principal:
    return Principal(kind, owner, False, key_id, identity.API_VERSION)


@dataclass
class World:
    store: Store
    clock: FakeClock
    admin: Principal
    user: Principal
    agent: Principal
    agent_key: PrivateKey
    merchant: str
    other_merchant: str

    def run(self, work: Any) -> Any:
        return self.store.run(work)

    def request(
        self, constraints: list[dict[str, Any]], *, timezone: str = "UTC"
    ) -> mandates.MandateView:
        return self.run(
            lambda uow: mandates.request_mandate(
                uow,
                self.agent,
                user=str(self.user.id),
                currency="usd",
                constraints=constraints,
                timezone=timezone,
                conversation_excerpt="buy me coffee, at most 5 a day",
            )
        )

    def mandate(self, constraints: list[dict[str, Any]], *, timezone: str = "UTC") -> str:
        """A mandate the user has consented to; its id."""
        mandate_id = self.request(constraints, timezone=timezone).mandate.id
        self.run(lambda uow: mandates.consent(uow, self.user, mandate_id))
        return mandate_id

    def pay(
        self,
        mandate_id: str,
        amount: int,
        merchant: str | None = None,
        *,
        risk: RiskConfig = NO_RISK,
        cart_hash: str | None = None,
    ) -> PaymentRecord:
        return self.run(
            lambda uow: payments.pay(
                uow,
                self.agent,
                mandate_id,
                merchant or self.merchant,
                amount,
                "usd",
                cart_hash,
                master_key=MASTER_KEY,
                issuer=ISSUER,
                risk=risk,
            )
        )

    def balance(self, owner: str) -> int:
        """The posted balance of ``owner``'s usd account."""

        def read(uow: UnitOfWork) -> int:
            account = ledger.resolve_account(uow, self.admin, owner, "usd", "$.owner")
            return account.posted

        result: int = self.store.run(read, read_only=True)
        return result


def make_world(store: Store, clock: FakeClock, *, funded: int = 100_000) -> World:
    admin = _principal(PrincipalType.ADMIN, None, "key_admin")
    agent_key = ed25519_private_key(secrets.token_bytes(32))

    def setup(uow: UnitOfWork) -> World:
        tag = secrets.token_hex(4)
        user_record, user_key = identity.create_user(
            uow, email=f"pay-{tag}@example.com", name="Payer", currency="usd", livemode=False
        )
        user = _principal(PrincipalType.USER, user_record.id, user_key.id)
        shops = [
            identity.create_merchant(
                uow, name=name, category="coffee", currency="usd", fee_bps=0, livemode=False
            )[0].id
            for name in ("Coffee", "Elsewhere")
        ]
        platform_record, platform_key = agents.create_platform(
            uow, admin, name="Agents", origin=f"https://agents-{tag}.example"
        )
        platform_principal = _principal(PrincipalType.PLATFORM, platform_record.id, platform_key.id)
        agent = agents.register_agent(
            uow, platform_principal, name="Shopper", keys=[agent_key.public_jwk()]
        )
        agent_principal = _principal(PrincipalType.AGENT, agent.id, "kid")
        if funded:
            ledger.top_up(
                uow,
                user,
                amount=funded,
                currency="usd",
                card=CARD,
                token_key=platform.instance_secret(uow),
            )
        return World(store, clock, admin, user, agent_principal, agent_key, *shops)

    world: World = store.run(setup)
    return world


def signed_headers(
    key: PrivateKey,
    method: str,
    path: str,
    *,
    created: datetime,
    body: bytes = b"",
    authority: str = "testserver",
) -> dict[str, str]:
    """Headers of a request signed as an agent signs it (see tests/agents/agent_support.py),
    for the server at ``authority`` (the in-process TestClient's by default)."""
    fields = [("Content-Digest", content_digest(body))] if body else []
    components = ["@method", "@authority", "@path"] + (["content-digest"] if body else [])
    request = RequestParts(method, "http", authority, path, "", fields, body)
    signature_input, signature = sign_request(
        request,
        key=key,
        components=components,
        created=created,
        expires=created + timedelta(seconds=60),
        nonce=secrets.token_urlsafe(16),
        tag="agent-payer-auth",
    )
    return {**dict(fields), "Signature-Input": signature_input, "Signature": signature}


@dataclass
class SignedAgent:
    """An agent registered through the API that signs its requests to the in-process app."""

    api: Api
    clock: FakeClock
    key: PrivateKey
    id: str

    def post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        raw = json.dumps(body).encode()
        headers = signed_headers(self.key, "POST", path, created=self.clock.now(), body=raw)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = idempotency_key or secrets.token_hex(8)
        return self.api.client.post(path, content=raw, headers=headers)

    def get(self, path: str) -> Any:
        headers = signed_headers(self.key, "GET", path, created=self.clock.now())
        return self.api.client.get(path, headers=headers)


def register_agent(api: Api, clock: FakeClock) -> SignedAgent:
    """A new agent platform and one Ed25519 agent under it."""
    origin = f"https://agents-{secrets.token_hex(4)}.example"
    made = api.post("/v1/agent_platforms", api.admin_key, {"name": "Agents", "origin": origin})
    assert made.status_code == 201, made.text
    key = ed25519_private_key(secrets.token_bytes(32))
    registered = api.post(
        "/v1/agents", made.json()["secret_key"], {"name": "Shopper", "keys": [key.public_jwk()]}
    )
    assert registered.status_code == 201, registered.text
    return SignedAgent(api, clock, key, registered.json()["id"])
