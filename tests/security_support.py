"""What the security tests share: every route of the application (from its own route table,
included routers, pages and mounted apps alike), the id prefix each path parameter names, a
victim's objects and the other principals' credentials, and a minimal body built from the
OpenAPI document.

When a new route has a path parameter whose name does not say its id prefix, add it to
:data:`PARAM_PREFIX`; when the victim world has no object of a new prefix, add a factory to
:data:`VICTIM_FACTORIES` (until then the route is swept with a well-formed id of that prefix
that names nothing, and the sweep reports it as "prefix only").
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount

from conftest import Api
from payment_support import SignedAgent, register_agent, signed_headers
from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.ids import PREFIXES

__all__ = [
    "NON_ID_PARAMS",
    "PARAM_PREFIX",
    "VICTIM_FACTORIES",
    "Principals",
    "RouteInfo",
    "Victim",
    "all_routes",
    "make_principals",
    "minimal_body",
    "param_prefix",
]

# Path parameters whose names do not spell their prefix's description.
PARAM_PREFIX: dict[str, str] = {
    "kid": "kid",  # an agent key's RFC 7638 thumbprint, not a prefixed id
    "top_up_id": "top",
    "key_id": "key",
    "platform_id": "plt",
    "endpoint_id": "whe",
    "session_id": "cs",
    "checkout_session_id": "cs",
    "delivery_id": "whd",
    "terminal_id": "trm",
    "bank_account_id": "ba",
    "variant_id": "var",
    "store_id": "sto",
    "import_id": "imp",
    "confirmation_id": "cnf",
    "token_id": "dtk",
    "entry_id": "ent",
    "qr_id": "qr",
    "request_id": "qr",  # /v1/payment_requests/{request_id}: a QR payment request
    "refund_request_id": "rfr",
}


# Path parameters that are not object ids, with a value to fill them (routes whose only
# parameters are these are not id-bearing).
NON_ID_PARAMS: dict[str, str] = {
    "code": "en",  # /lang/{code}: the interface language
    "kind": "svg",  # /v1/payment_requests/{id}/qr.{kind}: the image format
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    in_schema: bool
    kind: str  # "api" (JSON, in /v1 or operational), "page" (HTML), "mount"

    @property
    def all_params(self) -> list[str]:
        return re.findall(r"{([^}:]+)(?::[^}]*)?}", self.path)

    @property
    def params(self) -> list[str]:
        """The parameters that name objects."""
        return [name for name in self.all_params if name not in NON_ID_PARAMS]


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router (0.16x)
            inner = route.include_context.prefix
            yield from _walk(route.original_router.routes, prefix + inner)
        elif isinstance(route, Mount):
            yield prefix, route
        else:
            yield prefix, route


def all_routes(app: FastAPI) -> list[RouteInfo]:
    """Every (method, path) the application answers, HEAD aside."""
    found: list[RouteInfo] = []
    for prefix, route in _walk(list(app.routes)):
        path = prefix + getattr(route, "path", "")
        if isinstance(route, Mount):
            found.append(RouteInfo("*", path, False, "mount"))
            continue
        in_schema = bool(getattr(route, "include_in_schema", False))
        api = path.startswith("/v1") or in_schema or path.startswith("/acp")
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                found.append(RouteInfo(method, path, in_schema, "api" if api else "page"))
    return found


def param_prefix(name: str) -> str | None:
    """The id prefix a path parameter names: ``mandate_id`` → ``mnd``; None if unknown."""
    if name in PARAM_PREFIX:
        return PARAM_PREFIX[name]
    stem = name.removesuffix("_id")
    if stem in PREFIXES:
        return stem
    for prefix, description in PREFIXES.items():
        if description.split(" (")[0].replace(" ", "_").replace("-", "_") == stem:
            return prefix
    return None


# --- principals and the victim's objects ----------------------------------------------------


@dataclass
class Victim:
    """Objects that belong to one user, its agent and its merchant; by id prefix."""

    ids: dict[str, str] = field(default_factory=dict)

    def id_for(self, prefix: str) -> tuple[str, bool]:
        """(an id of ``prefix``, whether it names a real victim object)."""
        if prefix in self.ids:
            return self.ids[prefix], True
        if prefix == "kid":
            return secrets.token_urlsafe(32), False
        return new_id(prefix), False

    def leaks(self, text: str) -> list[str]:
        return [value for value in self.ids.values() if len(value) > 8 and value in text]


@dataclass
class Principals:
    victim: Victim
    victim_user_key: str
    victim_merchant_key: str
    victim_agent: SignedAgent
    other_user_key: str
    other_merchant_key: str
    other_platform_key: str
    other_agent: SignedAgent


def _made(response: Any) -> str:
    assert response.status_code in (200, 201), response.text
    made: str = response.json()["id"]
    return made


def _product(api: Api, p: Principals) -> str:
    body = {"sku": "victim-latte", "title": "Latte", "category": "coffee", "amount": 450}
    return _made(api.post("/v1/products", p.victim_merchant_key, body))


def _webhook_endpoint(api: Api, p: Principals) -> str:
    body = {"url": "http://127.0.0.1:9/hooks"}  # loopback: allowed in test mode, never sent
    return _made(api.post("/v1/webhook_endpoints", p.victim_merchant_key, body))


VICTIM_FACTORIES: dict[str, Callable[[Api, Principals], str]] = {
    "prd": _product,
    "whe": _webhook_endpoint,
}
"""prefix → a function that makes an object of that prefix owned by the victim (its user,
agent or merchant) and returns its id. Parts that land later add theirs here."""


def make_principals(api: Api, clock: FakeClock) -> Principals:
    """A victim (user, merchant, agent, mandate, payment, approval, top-up, hold, transfer,
    account) and another user, merchant, platform and agent."""
    user, user_key = api.user(funded=500_000)
    merchant, merchant_key = api.merchant()
    agent = register_agent(api, clock)
    ids = {"usr": user["id"], "mer": merchant["id"], "agt": agent.id}
    agent_json = agent.get(f"/v1/agents/{agent.id}").json()
    ids["kid"] = agent_json["keys"][0]["kid"]
    mandate_id = _mandate(api, agent, user, user_key, merchant["id"], above=10_000)
    ids["mnd"] = mandate_id
    body = {"mandate": mandate_id, "merchant": merchant["id"], "amount": 500, "currency": "usd"}
    paid = agent.post("/v1/payments", body)
    assert paid.status_code == 201 and paid.json()["status"] == "succeeded", paid.text
    payment = paid.json()
    ids["pay"] = payment["id"]
    big = agent.post("/v1/payments", {**body, "amount": 20_000})
    assert big.json()["status"] == "requires_confirmation", big.text
    ids["apr"] = big.json()["approval"]
    accounts = api.get("/v1/accounts", user_key).json()["data"]
    ids["acct"] = accounts[0]["id"]
    stored = _first(api, "/v1/transfers", user_key)
    if stored:
        ids["txf"] = stored
    holds = _first(api, "/v1/holds", user_key)
    if holds:
        ids["hold"] = holds
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
    top = api.post("/v1/top_ups", user_key, {"amount": 100, "currency": "usd", "card": card})
    ids["top"] = top.json()["id"]
    other_user, other_user_key = api.user(funded=1_000)
    _other_merchant, other_merchant_key = api.merchant()
    made = api.post(
        "/v1/agent_platforms",
        api.admin_key,
        {"name": "Other", "origin": f"https://o-{secrets.token_hex(3)}.example"},
    )
    other_agent = register_agent(api, clock)
    principals = Principals(
        Victim(ids),
        user_key,
        merchant_key,
        agent,
        other_user_key,
        other_merchant_key,
        made.json()["secret_key"],
        other_agent,
    )
    for prefix, factory in VICTIM_FACTORIES.items():
        ids[prefix] = factory(api, principals)
    _ = other_user
    return principals


def _first(api: Api, path: str, key: str) -> str | None:
    response = api.get(path, key)
    if response.status_code != 200 or not response.json().get("data"):
        return None
    value: str = response.json()["data"][0]["id"]
    return value


def _mandate(
    api: Api, agent: SignedAgent, user: dict[str, Any], key: str, merchant: str, above: int
) -> str:
    constraints = [
        {"type": "payment.budget", "currency": "usd", "max": 400_000},
        {"type": "payment.allowed_payees", "allowed": [merchant]},
        {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": above},
    ]
    asked = agent.post(
        "/v1/mandates", {"user": user["id"], "currency": "usd", "constraints": constraints}
    )
    assert asked.status_code == 201, asked.text
    mandate_id: str = asked.json()["id"]
    consented = api.post(f"/v1/mandates/{mandate_id}/consent", key, {})
    assert consented.status_code == 200, consented.text
    return mandate_id


# --- bodies -------------------------------------------------------------------------------

_FIELD_PREFIX = {
    "user": "usr",
    "merchant": "mer",
    "mandate": "mnd",
    "payment": "pay",
    "hold": "hold",
    "agent": "agt",
    "account": "acct",
    "source": "acct",
    "destination": "acct",
    "owner": "usr",
    "approval": "apr",
}


def minimal_body(schema: dict[str, Any] | None, victim: Victim, root: dict[str, Any]) -> Any:
    """A body with every required field filled plausibly, ids pointing at the victim's."""
    return _value(schema or {}, victim, root, "", 0)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _value(
    schema: dict[str, Any], victim: Victim, root: dict[str, Any], name: str, depth: int
) -> Any:
    schema = _resolve(schema, root)
    if depth > 6:
        return None
    for choice in ("anyOf", "oneOf"):
        if choice in schema:
            options = [o for o in schema[choice] if _resolve(o, root).get("type") != "null"]
            return _value(options[0] if options else {}, victim, root, name, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if kind == "object":
        defs = {**root, **{"$defs": schema.get("$defs", root.get("$defs", {}))}}
        properties = schema.get("properties", {})
        return {
            key: _value(properties.get(key, {}), victim, defs, key, depth + 1)
            for key in schema.get("required", [])
        }
    if kind == "array":
        return []
    if kind == "integer":
        return max(100, int(schema.get("minimum", 0)))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if name == "currency":
        return "usd"
    prefix = _FIELD_PREFIX.get(name) or (param_prefix(name) if name.endswith("_id") else None)
    if prefix:
        return victim.id_for(prefix)[0]
    return "x" * max(1, int(schema.get("minLength", 1)))


def body_schema(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    operation = openapi.get("paths", {}).get(path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return schema if isinstance(schema, dict) else None


ACP_VERSION = {"API-Version": "2026-04-17"}  # the ACP face checks it before credentials


def signed(agent: SignedAgent, method: str, path: str, body: Any) -> Any:
    """``agent``'s RFC 9421 signed request (any method), redirects not followed."""
    raw = json.dumps(body).encode() if method != "GET" and body is not None else b""
    headers = signed_headers(agent.key, method, path, created=agent.clock.now(), body=raw)
    headers |= {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
    headers |= ACP_VERSION
    return agent.api.client.request(
        method, path, content=raw or None, headers=headers, follow_redirects=False
    )
