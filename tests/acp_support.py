"""What the ACP tests share: the spec files (skipping when ../shared is absent), a JSON
Schema validator for ACP's shapes, and an ACP world made through the API: a merchant whose
catalog maps the spec examples' item ids to real products (``sku`` = the example id), a
funded user, a signed agent with an ACP bearer token and an active mandate, and a client that
speaks ACP to ``/acp/{merchant_id}``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

import payment_support
from conftest import Api, make_api
from payment_support import SignedAgent, budget, payees
from paywarden.kernel.clock import FakeClock, rfc3339
from paywarden.store.unit_of_work import Store
from paywarden.trust.keys import ed25519_private_key

SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "acp-2026-04-17"
VERSION = "2026-04-17"
# Risk rules that never fire, so completions pay at once (pending_approval has its own test).
NO_RISK = asdict(payment_support.NO_RISK)
# The example item ids, sold by the test merchant under these skus (minor units).
EXAMPLE_PRODUCTS = {"item_123": 300, "item_456": 7_999, "item_3ds_001": 5_000}
SHIPPING_AMOUNT = 500
TAX_BPS = 1_000


def spec_file(relative: str) -> Path:
    path = SPEC / relative
    if not path.exists():
        pytest.skip(f"the ACP spec is not at {SPEC} (../shared/specs/acp-2026-04-17)")
    return path


def examples() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        spec_file("examples/examples.agentic_checkout.json").read_text()
    )
    return loaded


class AcpSchema:
    """Validates instances against one ``$defs`` entry of schema.agentic_checkout.json."""

    def __init__(self) -> None:
        bundle = json.loads(spec_file("json-schema/schema.agentic_checkout.json").read_text())
        self._id = bundle["$id"]
        self._registry: Registry[Any] = Registry().with_resource(
            self._id, Resource.from_contents(bundle)
        )

    def errors(self, name: str, instance: Any) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{self._id}#/$defs/{name}"},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [
            f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
            for error in validator.iter_errors(instance)
        ]

    def check(self, name: str, instance: Any) -> None:
        problems = self.errors(name, instance)
        assert not problems, (
            f"not a valid ACP {name}: {problems[:5]}\n{json.dumps(instance)[:2000]}"
        )


@dataclass
class AcpWorld:
    api: Api
    clock: FakeClock
    merchant_id: str
    merchant_key: str
    user_id: str
    user_key: str
    agent: SignedAgent
    platform_key: str
    token: str
    mandate_id: str
    products: dict[str, str] = field(default_factory=dict)  # sku -> prd_

    @property
    def base(self) -> str:
        return f"/acp/{self.merchant_id}"

    def headers(self, idempotency_key: str | None = "auto", **extra: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "API-Version": VERSION,
            "Content-Type": "application/json",
        }
        if idempotency_key == "auto":
            idempotency_key = secrets.token_hex(8)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        headers.update(extra)
        return headers

    def post(self, path: str, body: Any, **headers: Any) -> Any:
        key = headers.pop("idempotency_key", "auto")
        return self.api.client.post(
            self.base + path, content=json.dumps(body), headers=self.headers(key, **headers)
        )

    def get(self, path: str, **headers: str) -> Any:
        return self.api.client.get(self.base + path, headers=self.headers(None, **headers))

    def create(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post("/checkout_sessions", body or default_create())
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def mint(
        self,
        session_id: str,
        max_amount: int,
        *,
        currency: str = "usd",
        merchant_id: str | None = None,
        expires_in: timedelta | None = None,
        mandate_id: str | None = None,
    ) -> Any:
        allowance: dict[str, Any] = {
            "reason": "one_time",
            "max_amount": max_amount,
            "currency": currency,
            "checkout_session_id": session_id,
            "merchant_id": merchant_id or self.merchant_id,
        }
        if expires_in is not None:
            allowance["expires_at"] = rfc3339(self.clock.now() + expires_in)
        return self.agent.post(
            f"/v1/mandates/{mandate_id or self.mandate_id}/delegated_tokens",
            {"allowance": allowance},
        )

    def token_for(self, session: dict[str, Any], **kwargs: Any) -> str:
        total = next(t["amount"] for t in session["totals"] if t["type"] == "total")
        minted = self.mint(session["id"], total, **kwargs)
        assert minted.status_code == 201, minted.text
        token: str = minted.json()["id"]
        return token


ADDRESS = {
    "name": "Ada Buyer",
    "line_one": "1 Test Street",
    "city": "San Francisco",
    "state": "CA",
    "country": "US",
    "postal_code": "94131",
}


def default_create(*item_ids: str) -> dict[str, Any]:
    return {
        "currency": "usd",
        "line_items": [{"id": item_id} for item_id in (item_ids or ("item_123",))],
        "capabilities": {},
        "fulfillment_details": {"name": "Ada Buyer", "address": ADDRESS},
    }


def payment_data(token: str) -> dict[str, Any]:
    return {
        "handler_id": "paywarden_mandate",
        "instrument": {
            "type": "mandate",
            "credential": {"type": "delegated_token", "token": token},
        },
    }


def _ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def register_signed_agent(api: Api, clock: FakeClock) -> tuple[SignedAgent, str]:
    """A new agent platform (its secret key) and one Ed25519 agent under it."""
    origin = f"https://agents-{secrets.token_hex(4)}.example"
    made = _ok(api.post("/v1/agent_platforms", api.admin_key, {"name": "Agents", "origin": origin}))
    key = ed25519_private_key(secrets.token_bytes(32))
    registered = _ok(
        api.post("/v1/agents", made["secret_key"], {"name": "Shopper", "keys": [key.public_jwk()]})
    )
    return SignedAgent(api, clock, key, registered["id"]), made["secret_key"]


def issue_acp_token(api: Api, platform_key: str, agent_id: str) -> str:
    issued = _ok(api.post(f"/v1/agents/{agent_id}/acp_tokens", platform_key, {}))
    secret: str = issued["secret_key"]
    return secret


def grant_mandate(
    api: Api,
    agent: SignedAgent,
    user_id: str,
    user_key: str,
    merchant_id: str,
    limit: int,
    *extra: dict[str, Any],
) -> str:
    constraints = [budget(limit), payees(merchant_id), *extra]
    asked = agent.post(
        "/v1/mandates", {"user": user_id, "currency": "usd", "constraints": constraints}
    )
    mandate_id: str = _ok(asked)["id"]
    _ok(api.post(f"/v1/mandates/{mandate_id}/consent", user_key, {}), 200)
    return mandate_id


def make_acp_world(api: Api, clock: FakeClock, *, funded: int = 200_000) -> AcpWorld:
    merchant, merchant_key = api.merchant("usd")
    merchant_id = merchant["id"]
    _ok(
        api.post(
            f"/v1/merchants/{merchant_id}/profile",
            merchant_key,
            {
                "tax_bps": TAX_BPS,
                "fulfillment": [
                    {"type": "shipping", "amount": SHIPPING_AMOUNT},
                    {"type": "digital", "amount": 0},
                ],
            },
        ),
        200,
    )
    products = {}
    for sku, amount in EXAMPLE_PRODUCTS.items():
        made = _ok(
            api.post(
                "/v1/products",
                merchant_key,
                {"sku": sku, "title": f"Example {sku}", "amount": amount, "stock": 50},
            )
        )
        products[sku] = made["id"]
    user, user_key = api.user("usd", funded=funded)
    agent, platform_key = register_signed_agent(api, clock)
    token = issue_acp_token(api, platform_key, agent.id)
    mandate_id = grant_mandate(api, agent, user["id"], user_key, merchant_id, funded)
    return AcpWorld(
        api,
        clock,
        merchant_id,
        merchant_key,
        user["id"],
        user_key,
        agent,
        platform_key,
        token,
        mandate_id,
        products,
    )


# --- fixtures, imported by the ACP test modules ---------------------------------------------


@pytest.fixture
def acp_api(store: Store) -> Iterator[Api]:
    """The API on both backends, with risk rules that never step up."""
    yield from make_api(store, risk=NO_RISK)


@pytest.fixture
def world(acp_api: Api, clock: FakeClock) -> AcpWorld:
    return make_acp_world(acp_api, clock)


@pytest.fixture(scope="module")
def schema() -> AcpSchema:
    return AcpSchema()
