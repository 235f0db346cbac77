"""No page lets one user or merchant reach another's objects. The id-bearing pages are taken
from the application's own route table, so a page added later is tried automatically (and
fails here until this test knows which object fills its parameter)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from test_console import bind_device, console, paid_order, revocable_key

from commerce_support import make_api_shop
from conftest import Api
from passkey_support import SoftAuthenticator, add_passkey
from paywarden.kernel.clock import FakeClock
from paywarden.services import webhook_delivery
from paywarden.services.webhook_delivery import RetryPolicy
from security_support import all_routes
from web_support import Browser, csrf_of, person, signed_in_with_key

# Which object of the owners' world fills each path parameter of a page.
PARAM_OBJECTS = {
    "mandate_id": "mandate",
    "approval_id": "approval",
    "payment_id": "payment",
    "order_id": "order",
    "product_id": "product",
    "delivery_id": "delivery",
    "key_id": "key",
    "device_id": "device",
    "refund_request_id": "refund_request",
    "passkey_id": "passkey",
}
# Paths outside the pages: the API (its own authorization tests), discovery, static files,
# the language switch (its parameter is a language, not an object).
NOT_PAGES = ("/v1/", "/acp/", "/.well-known/", "/mcp", "/static/", "/healthz", "/readyz", "/lang/")
# A refusal: not found, or (for a page of another kind of principal) back to sign-in.
REFUSED = {404}


def page_routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the app that is a page with an id in its path (the route
    table as the authorization sweep reads it: tests/security_support.all_routes)."""
    return [
        (route.method, route.path)
        for route in all_routes(api.client.app)  # type: ignore[arg-type]
        if route.kind == "page" and "{" in route.path and not route.path.startswith(NOT_PAGES)
    ]


def _fill(path: str, objects: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in PARAM_OBJECTS, (
            f"page {path} takes {{{name}}}: add it to PARAM_OBJECTS in this test so that "
            "another user's and merchant's access to it is tried"
        )
        return objects[PARAM_OBJECTS[name]]

    return re.sub(r"\{(\w+)\}", one, path)


def _world(api: Api, clock: FakeClock) -> tuple[dict[str, str], Browser, Browser, list[str]]:
    """A merchant with an order, a product, a webhook delivery and a second key; a user with a
    mandate, a payment, an approval waiting and a passkey; their two browsers; words that must
    not leak."""
    shop = make_api_shop(api, clock)
    merchant = console(api, shop.merchant_key)
    hook = api.post(
        "/v1/webhook_endpoints",
        shop.merchant_key,
        {"url": "http://127.0.0.1:9/h", "enabled_events": ["*"]},
    )
    assert hook.status_code == 201, hook.text
    order = paid_order(shop)
    api.store.run(lambda uow: webhook_delivery.fan_out(uow, RetryPolicy()))
    deliveries = api.get(f"/v1/webhook_endpoints/{hook.json()['id']}/deliveries", shop.merchant_key)
    assert deliveries.status_code == 200, deliveries.text
    delivery = deliveries.json()["data"][0]["id"]
    made = merchant.post("/merchant/keys", {"csrf_token": csrf_of(merchant.get("/merchant").text)})
    assert made.status_code == 200, made.text
    key_id = revocable_key(merchant)
    body = {"mandate": shop.mandate, "merchant": shop.merchant["id"], "currency": "usd"}
    paid = shop.agent.post("/v1/payments", body | {"amount": 1_000}).json()
    assert paid["status"] == "succeeded", paid
    user = signed_in_with_key(api, shop.user_key, "/home")
    product = next(
        p["id"]
        for p in api.get("/v1/products?merchant=" + shop.merchant["id"], shop.merchant_key).json()[
            "data"
        ]
        if p["sku"] == "beans"
    )
    objects = {
        "mandate": shop.mandate,
        "payment": paid["id"],
        "approval": _approval(api, shop),
        "order": order["id"],
        "product": product,
        "delivery": delivery,
        "key": key_id,
        "device": bind_device(api, shop.user_key),
        "refund_request": shop.agent.post(
            f"/v1/orders/{order['id']}/refund_requests", {"reason": "torn bag"}
        ).json()["id"],
        "passkey": add_passkey(user, SoftAuthenticator())["id"],
    }
    return objects, user, merchant, [shop.merchant["name"], "Beans 1 kg", "44.00", "10.00"]


def _approval(api: Api, shop: Any) -> str:
    """A payment above a fresh mandate's confirmation threshold: its approval waits."""
    asked = shop.agent.post(
        "/v1/mandates",
        {
            "user": shop.user["id"],
            "currency": "usd",
            "constraints": [
                {"type": "payment.budget", "currency": "usd", "max": 50_000},
                {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 100},
            ],
        },
    ).json()
    assert api.post(f"/v1/mandates/{asked['id']}/consent", shop.user_key).status_code == 200
    body = {"mandate": asked["id"], "merchant": shop.merchant["id"], "currency": "usd"}
    waiting = shop.agent.post("/v1/payments", body | {"amount": 1_000}).json()
    assert waiting["status"] == "requires_confirmation", waiting
    return str(waiting["approval"])


def test_no_page_shows_another_users_or_merchants_objects(api: Api, clock: FakeClock) -> None:
    objects, user, merchant, words = _world(api, clock)
    intruders = {"user": person(api, funded=100).browser}
    _rival, rival_key = api.merchant()
    intruders["merchant"] = console(api, rival_key)
    tokens = {name: csrf_of(b.get("/signin").text) for name, b in intruders.items()}
    routes = page_routes(api)
    assert len(routes) >= 15, routes
    tried = 0
    for method, template in routes:
        path = _fill(template, objects)
        owner = merchant if path.startswith("/merchant") else user
        if method == "GET":
            mine = owner.get(path)
            assert mine.status_code == 200, (path, mine.status_code)
        for name, intruder in intruders.items():
            if method == "GET":
                theirs = intruder.get(path)
            else:
                form = {
                    "csrf_token": tokens[name],
                    "decision": "consent" if path.endswith("/consent") else "approve",
                    "action": "revoke",
                    "binding_hash": "x" * 64,
                    "status": "canceled",
                    "amount": "1.00",
                    "reason": "intrusion",
                    "price": "0.01",
                }
                theirs = intruder.post(path, form)
            refused = theirs.status_code in REFUSED or (
                theirs.status_code == 303 and theirs.headers["location"].startswith("/signin")
            )
            assert refused, (name, method, path, theirs.status_code)
            shown = theirs.text.replace(quote(path, safe=""), "").replace(path, "")
            for secret in [*objects.values(), *words]:
                assert secret not in shown, (name, method, path, secret)
            tried += 1
    print(f"\npage access: {len(routes)} id-bearing page routes, {tried} intrusions refused")
    # Nothing the intruders posted changed anything.
    assert api.get(f"/v1/mandates/{objects['mandate']}", api.admin_key).json()["status"] == "active"
    order = api.get(f"/v1/orders/{objects['order']}", api.admin_key).json()
    assert (order["status"], order["amount_refunded"]) == ("created", 0)
    approval = api.get(f"/v1/approvals/{objects['approval']}", api.admin_key).json()
    assert approval["status"] == "pending"
    assert objects["passkey"] in user.get("/settings").text
