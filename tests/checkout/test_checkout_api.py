"""Checkout sessions and orders end to end over the API, with a signed agent, on both
backends: create, read, complete under a mandate, the order, its lifecycle, refunds and
evidence; approvals; who may see what."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from commerce_support import ApiShop, make_api_shop
from conftest import Api
from payment_support import budget, payees, register_agent
from paywarden.commerce.cart import hash_payload
from paywarden.kernel.clock import FakeClock


@pytest.fixture
def shop(api: Api, clock: FakeClock) -> ApiShop:
    return make_api_shop(api, clock)


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_an_agent_buys_and_the_merchant_fulfils_and_refunds(shop: ApiShop) -> None:
    api = shop.api
    created = shop.create([{"item": "beans", "quantity": 2}])
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["object"] == "checkout_session" and session["id"].startswith("cs_")
    assert session["status"] == "ready_for_payment"
    assert hash_payload(session["cart"]) == session["cart_hash"]
    assert shop.agent.get(f"/v1/checkout_sessions/{session['id']}").json() == session
    done = shop.complete(session)
    assert done.status_code == 200, done.text
    paid = done.json()
    assert paid["status"] == "completed" and paid["order"].startswith("ord_")
    order_path = f"/v1/orders/{paid['order']}"
    order = api.get(order_path, shop.merchant_key).json()
    assert (order["status"], order["amount_total"]) == ("created", session["amount_total"])
    # the user can read the session now: it was paid from their wallet
    assert api.get(f"/v1/checkout_sessions/{session['id']}", shop.user_key).status_code == 200
    for status in ("confirmed", "preparing", "ready_for_pickup"):
        moved = api.post(order_path, shop.merchant_key, {"status": status})
        assert moved.status_code == 200, moved.text
    wrong = api.post(order_path, shop.merchant_key, {"status": "shipped"})
    assert (wrong.status_code, _code(wrong)) == (409, "invalid_order_transition")
    part = api.post(f"{order_path}/refunds", shop.merchant_key, {"amount": 1000, "reason": "dent"})
    assert part.status_code == 201, part.text
    too_much = api.post(
        f"{order_path}/refunds",
        shop.merchant_key,
        {"amount": session["amount_total"], "reason": "x"},
    )
    assert (too_much.status_code, _code(too_much)) == (422, "refund_exceeds_captured")
    no_reason = api.post(f"{order_path}/refunds", shop.merchant_key, {"amount": 1})
    assert no_reason.status_code == 400
    user_wallet = api.get("/v1/accounts", shop.user_key).json()["data"][0]
    assert user_wallet["balance"]["posted"] == 100_000 - session["amount_total"] + 1000
    evidence = api.get(f"{order_path}/evidence", shop.merchant_key).json()
    assert evidence["object"] == "order_evidence"
    assert evidence["signed_cart"]["signature_verified"] is True
    assert evidence["signed_cart"]["cart_hash_recomputed"] == session["cart_hash"]
    assert evidence["receipt"] and evidence["mandate"]["id"] == shop.mandate
    assert evidence["consent"]["records"], "the user's consent is in the bundle"
    kinds = {record["event_type"] for record in evidence["audit_records"]}
    assert {"order.created", "order.refunded", "payment.succeeded"} <= kinds
    assert {"order.created", "checkout_session.completed"} <= {
        e["type"] for e in evidence["events"]
    }
    assert shop.agent.get(f"{order_path}/evidence").status_code == 404


def test_other_principals_get_404(shop: ApiShop, clock: FakeClock) -> None:
    api = shop.api
    session = shop.create().json()
    paid = shop.complete(session).json()
    _, other_merchant_key = api.merchant()
    _, other_user_key = api.user()
    other_agent = register_agent(api, clock)
    for path in (f"/v1/checkout_sessions/{session['id']}", f"/v1/orders/{paid['order']}"):
        assert api.get(path, other_merchant_key).status_code == 404
        assert api.get(path, other_user_key).status_code == 404
        assert other_agent.get(path).status_code == 404
    for path in (f"/v1/orders/{paid['order']}/refunds", f"/v1/orders/{paid['order']}"):
        body = {"reason": "x"} if path.endswith("refunds") else {"status": "confirmed"}
        assert api.post(path, other_merchant_key, body).status_code == 404
    refund_by_user = api.post(f"/v1/orders/{paid['order']}/refunds", shop.user_key, {"reason": "x"})
    assert refund_by_user.status_code in (403, 404)
    stolen = other_agent.post(f"/v1/checkout_sessions/{session['id']}/cancel", {})
    assert stolen.status_code == 404
    listed = api.get("/v1/orders", other_merchant_key).json()
    assert listed["data"] == []
    mine = api.get("/v1/orders", shop.merchant_key).json()
    assert [o["id"] for o in mine["data"]] == [paid["order"]]


THRESHOLD = {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1000}


def _pending(
    api: Api, clock: FakeClock, quantity: int
) -> tuple[ApiShop, dict[str, Any], dict[str, Any]]:
    """A shop whose mandate asks the user above 10.00, and a session for ``quantity`` bags
    of beans completed into ``pending_approval``: (shop, session, pending session)."""
    shop = make_api_shop(api, clock)
    shop = _with_mandate(shop, [budget(50_000), payees(shop.merchant["id"]), THRESHOLD])
    session = shop.create([{"item": "beans", "quantity": quantity}]).json()
    pending = shop.complete(session).json()
    assert pending["status"] == "pending_approval", pending
    return shop, session, pending


def test_a_payment_needing_approval_completes_when_the_user_approves(
    api: Api, clock: FakeClock
) -> None:
    shop, session, pending = _pending(api, clock, 1)
    assert pending["messages"][0]["code"] == "approval_required"
    assert pending["approval"].startswith("apr_")
    again = shop.complete(session)  # polling by completing again is harmless
    assert again.json()["status"] == "pending_approval"
    approval = api.get(f"/v1/approvals/{pending['approval']}", shop.user_key).json()
    approved = api.post(
        f"/v1/approvals/{pending['approval']}/approve",
        shop.user_key,
        {"binding_hash": approval["binding_hash"]},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    after = shop.agent.get(f"/v1/checkout_sessions/{session['id']}").json()
    assert after["status"] == "completed" and after["order"].startswith("ord_")


def test_a_declined_approval_releases_the_stock(api: Api, clock: FakeClock) -> None:
    shop, session, pending = _pending(api, clock, 3)
    assert _stock(api, shop, "beans") == 0  # held while the user decides
    declined = api.post(f"/v1/approvals/{pending['approval']}/decline", shop.user_key)
    assert declined.status_code == 200, declined.text
    assert _stock(api, shop, "beans") == 3
    after = shop.agent.get(f"/v1/checkout_sessions/{session['id']}").json()
    assert after["status"] == "ready_for_payment"
    assert after["messages"][0]["code"] == "payment_declined"


def test_canceling_a_session_under_approval_voids_it(api: Api, clock: FakeClock) -> None:
    shop, session, pending = _pending(api, clock, 1)
    canceled = shop.agent.post(f"/v1/checkout_sessions/{session['id']}/cancel", {})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert _stock(api, shop, "beans") == 3
    approval = api.get(f"/v1/approvals/{pending['approval']}", shop.user_key).json()
    assert approval["status"] == "voided"


def test_a_tampered_cart_is_refused_over_the_api(shop: ApiShop) -> None:
    """The agent shows the user a cart with any of price, quantity, total, currency or
    merchant changed: completing with that cart's hash is refused, and nothing moves."""
    session = shop.create([{"item": "beans", "quantity": 1}]).json()
    other_merchant, _ = shop.api.merchant()
    tampers = {
        "price": lambda c: c["line_items"][0].update(unit_amount=1),
        "quantity": lambda c: c["line_items"][0].update(quantity=2),
        "total": lambda c: c["totals"].update(total=1),
        "currency": lambda c: c.update(currency="eur"),
        "merchant": lambda c: c.update(merchant=other_merchant["id"]),
    }
    for field, tamper in tampers.items():
        shown = copy.deepcopy(session["cart"])
        tamper(shown)
        assert shown != session["cart"], field
        refused = shop.complete(session, cart_hash=hash_payload(shown))
        assert (refused.status_code, _code(refused)) == (409, "cart_hash_mismatch"), field
    after = shop.agent.get(f"/v1/checkout_sessions/{session['id']}").json()
    assert (after["status"], after["payment"]) == ("ready_for_payment", None)


def _with_mandate(shop: ApiShop, constraints: list[dict[str, Any]]) -> ApiShop:
    asked = shop.agent.post(
        "/v1/mandates", {"user": shop.user["id"], "currency": "usd", "constraints": constraints}
    )
    assert asked.status_code == 201, asked.text
    consented = shop.api.post(f"/v1/mandates/{asked.json()['id']}/consent", shop.user_key)
    assert consented.status_code == 200, consented.text
    shop.mandate = asked.json()["id"]
    return shop


def _stock(api: Api, shop: ApiShop, sku: str) -> int:
    found = api.get(f"/v1/products?merchant={shop.merchant['id']}&q={sku}", shop.merchant_key)
    assert found.status_code == 200, found.text
    product = next(p for p in found.json()["data"] if p["sku"] == sku)
    return int(product["stock"])
