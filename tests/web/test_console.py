"""The merchant console through its real forms (in-process app, both backends): orders as
they arrive, status moves, partial refunds, catalog edits, payouts and the reconciliation
export, webhook endpoints and their log, API keys."""

from __future__ import annotations

import secrets
from typing import Any

from commerce_support import ApiShop, make_api_shop
from conftest import Api
from paywarden.kernel.clock import FakeClock
from paywarden.trust.keys import ed25519_private_key
from web_support import Browser, csrf_of, person, signed_in_with_key


def console(api: Api, merchant_key: str) -> Browser:
    return signed_in_with_key(api, merchant_key, "/merchant")


def paid_order(shop: ApiShop) -> dict[str, Any]:
    created = shop.create([{"item": "beans", "quantity": 2}])
    assert created.status_code == 201, created.text
    done = shop.complete(created.json())
    assert done.status_code == 200, done.text
    session = done.json()
    assert session["status"] == "completed", session
    order: dict[str, Any] = shop.api.get(f"/v1/orders/{session['order']}", shop.merchant_key).json()
    return order


def revocable_key(merchant: Browser) -> str:
    """The newest key the console offers to revoke (any key but the session's own)."""
    listed = merchant.get("/merchant/keys").text
    return listed.split('action="/merchant/keys/')[1].split("/")[0]


def _submit(browser: Browser, page: str, action: str, form: dict[str, str]) -> Any:
    token = csrf_of(browser.get(page).text)
    return browser.post(action, {"csrf_token": token, **form})


def test_orders_arrive_move_along_and_refund_in_part(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    merchant = console(api, shop.merchant_key)
    assert "No orders yet" in merchant.get("/merchant/orders/live").text
    order = paid_order(shop)
    live = merchant.get("/merchant/orders/live")
    assert f'id="order-{order["id"]}"' in live.text, live.text
    assert "2 x Beans 1 kg" in live.text, live.text
    page = f"/merchant/orders/{order['id']}"
    for status in ("confirmed", "preparing", "ready_for_pickup"):
        moved = _submit(merchant, page, f"{page}/status", {"status": status})
        assert moved.status_code == 303, moved.text
    assert api.get(f"/v1/orders/{order['id']}", shop.merchant_key).json()["status"] == (
        "ready_for_pickup"
    )
    wallet = shop.user["wallets"][0]["id"]
    before = api.get(f"/v1/accounts/{wallet}", shop.user_key).json()["balance"]["posted"]
    refunded = _submit(
        merchant, page, f"{page}/refund", {"amount": "5.00", "reason": "one bag was torn"}
    )
    assert refunded.status_code == 303, refunded.text
    after = api.get(f"/v1/accounts/{wallet}", shop.user_key).json()["balance"]["posted"]
    assert after - before == 500
    shown = merchant.get(page)
    assert "one bag was torn" in shown.text and "5.00 USD" in shown.text
    too_much = _submit(merchant, page, f"{page}/refund", {"amount": "999.00", "reason": "x"})
    assert too_much.status_code == 422
    no_reason = _submit(merchant, page, f"{page}/refund", {"amount": "1.00", "reason": ""})
    assert no_reason.status_code == 400
    backwards = _submit(merchant, page, f"{page}/status", {"status": "created"})
    assert backwards.status_code == 409
    asked = shop.agent.post(
        f"/v1/orders/{order['id']}/refund_requests", {"amount": 300, "reason": "cold coffee"}
    ).json()
    shown_request = merchant.get(page)
    assert "cold coffee" in shown_request.text and "Approve refund" in shown_request.text
    approved = _submit(merchant, page, f"/merchant/refund_requests/{asked['id']}/approve", {})
    assert approved.status_code == 303 and approved.headers["location"] == page
    after_request = api.get(f"/v1/accounts/{wallet}", shop.user_key).json()["balance"]["posted"]
    assert after_request - after == 300


def test_another_merchant_and_a_user_see_nothing(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    order = paid_order(shop)
    _other, other_key = api.merchant()
    rival = console(api, other_key)
    page = f"/merchant/orders/{order['id']}"
    assert rival.get(page).status_code == 404
    assert order["id"] not in rival.get("/merchant/orders/live").text
    refused = _submit(rival, "/merchant", f"{page}/refund", {"amount": "1.00", "reason": "x"})
    assert refused.status_code == 404
    user = person(api)
    assert user.browser.get("/merchant").status_code == 404
    assert Browser(api).get("/merchant").headers["location"] == "/signin?next=/merchant"
    assert api.get(f"/v1/orders/{order['id']}", shop.merchant_key).json()["amount_refunded"] == 0


def test_catalog_price_stock_and_availability(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    merchant = console(api, shop.merchant_key)
    page = merchant.get("/merchant/catalog")
    assert 'id="product-beans"' in page.text
    product = api.get("/v1/products/beans?merchant=" + shop.merchant["id"], shop.merchant_key)
    product_id = product.json()["id"] if product.status_code == 200 else _product_id(shop)
    saved = _submit(
        merchant,
        "/merchant/catalog",
        f"/merchant/catalog/{product_id}",
        {"price": "21.50", "stock": "7"},  # the box left unticked: not for sale
    )
    assert saved.status_code == 303, saved.text
    changed = _product(shop, product_id)
    assert (changed["amount"], changed["stock"], changed["available"]) == (2150, 7, False)


def _product_id(shop: ApiShop) -> str:
    listed = shop.api.get("/v1/products?merchant=" + shop.merchant["id"], shop.merchant_key)
    return next(p["id"] for p in listed.json()["data"] if p["sku"] == "beans")


def _product(shop: ApiShop, product_id: str) -> dict[str, Any]:
    found: dict[str, Any] = shop.api.get(f"/v1/products/{product_id}", shop.merchant_key).json()
    return found


def test_payouts_reconciliation_webhooks_and_keys(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    paid_order(shop)
    merchant = console(api, shop.merchant_key)
    assert "Payable now" in merchant.get("/merchant/payouts").text
    no_account = _submit(merchant, "/merchant/payouts", "/merchant/payouts", {"amount": "1.00"})
    assert no_account.status_code == 409 and "payout account" in no_account.text
    csv = merchant.get("/merchant/reconciliation.csv")
    assert csv.status_code == 200 and shop.merchant["id"] in csv.text

    made = _submit(
        merchant,
        "/merchant/webhooks",
        "/merchant/webhooks",
        {"url": "http://127.0.0.1:9/hooks"},
    )
    assert made.status_code == 200 and "whsec_" in made.text, made.text
    assert "http://127.0.0.1:9/hooks" in merchant.get("/merchant/webhooks").text

    key = _submit(merchant, "/merchant/keys", "/merchant/keys", {})
    assert key.status_code == 200 and "pw_test_" in key.text
    new_secret = key.text.split('id="secret">')[1].split("<")[0]
    assert api.get("/v1/orders", new_secret).status_code == 200
    new_id = revocable_key(merchant)
    revoked = _submit(merchant, "/merchant/keys", f"/merchant/keys/{new_id}/revoke", {})
    assert revoked.status_code == 303
    assert api.get("/v1/orders", new_secret).status_code == 401


def bind_device(api: Api, user_key: str, name: str = "My glasses") -> str:
    key = ed25519_private_key(secrets.token_bytes(32))
    made = api.post(
        "/v1/devices",
        user_key,
        {
            "kind": "glasses",
            "name": name,
            "public_jwk": key.public_jwk(),
            "currency": "usd",
            "tap_limit": 2_000,
            "daily_limit": 10_000,
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_the_user_sees_orders_and_revokes_a_lost_device(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    order = paid_order(shop)
    user = signed_in_with_key(api, shop.user_key, "/home")
    listed = user.get("/orders")
    assert f'id="order-{order["id"]}"' in listed.text and "2 x Beans 1 kg" in listed.text
    assert f"/payments/{order['payment']}/receipt" in listed.text
    device = bind_device(api, shop.user_key)
    page = user.get("/devices")
    assert f'id="device-{device}"' in page.text and "20.00 USD" in page.text
    revoked = user.post(f"/devices/{device}/revoke", {"csrf_token": csrf_of(page.text)})
    assert revoked.status_code == 303
    assert api.get(f"/v1/devices/{device}", shop.user_key).json()["status"] == "revoked"
