"""Refund requests: only the order's own agent may ask, nothing moves until the merchant
approves, the refund then goes to the wallet that paid and never beyond what remains."""

from __future__ import annotations

from typing import Any

from commerce_support import ApiShop, make_api_shop
from conftest import Api
from payment_support import register_agent
from paywarden.kernel.clock import FakeClock


def _order(shop: ApiShop) -> dict[str, Any]:
    created = shop.create([{"item": "beans", "quantity": 2}])
    assert created.status_code == 201, created.text
    done = shop.complete(created.json())
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    order: dict[str, Any] = shop.api.get(
        f"/v1/orders/{done.json()['order']}", shop.merchant_key
    ).json()
    return order


def _wallet(shop: ApiShop) -> int:
    account = shop.user["wallets"][0]["id"]
    posted: int = shop.api.get(f"/v1/accounts/{account}", shop.user_key).json()["balance"]["posted"]
    return posted


def _ask(shop: ApiShop, order_id: str, **body: Any) -> Any:
    return shop.agent.post(
        f"/v1/orders/{order_id}/refund_requests", {"reason": "one bag arrived torn", **body}
    )


def test_the_agent_asks_and_the_merchant_approves(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    order = _order(shop)
    before = _wallet(shop)
    asked = _ask(shop, order["id"], amount=500)
    assert asked.status_code == 201, asked.text
    request = asked.json()
    assert (request["status"], request["amount"], request["refund"]) == ("requested", 500, None)
    assert _wallet(shop) == before  # nothing moves on a request
    seen = shop.agent.get(f"/v1/refund_requests/{request['id']}")
    assert seen.status_code == 200 and seen.json()["status"] == "requested"
    approved = api.post(f"/v1/refund_requests/{request['id']}/approve", shop.merchant_key)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["refund"].startswith("ref_")
    assert _wallet(shop) == before + 500
    again = api.post(f"/v1/refund_requests/{request['id']}/approve", shop.merchant_key)
    assert again.status_code == 409
    assert _wallet(shop) == before + 500
    listed = shop.agent.get(f"/v1/orders/{order['id']}/refund_requests")
    assert [r["id"] for r in listed.json()["data"]] == [request["id"]]


def test_a_declined_request_moves_nothing(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    order = _order(shop)
    before = _wallet(shop)
    request = _ask(shop, order["id"]).json()
    assert request["amount"] is None  # all that remains
    declined = api.post(f"/v1/refund_requests/{request['id']}/decline", shop.merchant_key)
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert _wallet(shop) == before
    order_now = api.get(f"/v1/orders/{order['id']}", shop.merchant_key).json()
    assert order_now["amount_refunded"] == 0


def test_only_the_orders_agent_asks_and_only_its_merchant_decides(
    api: Api, clock: FakeClock
) -> None:
    shop = make_api_shop(api, clock)
    order = _order(shop)
    stranger = register_agent(api, clock)
    refused = stranger.post(
        f"/v1/orders/{order['id']}/refund_requests", {"reason": "give it to me"}
    )
    assert refused.status_code == 404
    assert (
        api.post(
            f"/v1/orders/{order['id']}/refund_requests", shop.user_key, {"reason": "x"}
        ).status_code
        == 403
    )
    request = _ask(shop, order["id"], amount=100).json()
    _rival, rival_key = api.merchant()
    assert api.post(f"/v1/refund_requests/{request['id']}/approve", rival_key).status_code == 404
    assert api.post(f"/v1/refund_requests/{request['id']}/approve", shop.user_key).status_code in (
        403,
        404,
    )
    assert stranger.get(f"/v1/refund_requests/{request['id']}").status_code == 404
    assert shop.agent.post(f"/v1/refund_requests/{request['id']}/approve", {}).status_code in (
        401,
        403,
    )


def test_never_beyond_what_remains(api: Api, clock: FakeClock) -> None:
    shop = make_api_shop(api, clock)
    order = _order(shop)
    too_much = _ask(shop, order["id"], amount=order["amount_total"] + 1)
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "refund_exceeds_captured"
    request = _ask(shop, order["id"], amount=order["amount_total"]).json()
    made = api.post(
        f"/v1/orders/{order['id']}/refunds", shop.merchant_key, {"amount": 100, "reason": "x"}
    )
    assert made.status_code == 201, made.text
    late = api.post(f"/v1/refund_requests/{request['id']}/approve", shop.merchant_key)
    assert late.status_code == 422  # only amount_total - 100 remains
    still = api.get(f"/v1/refund_requests/{request['id']}", shop.merchant_key).json()
    assert still["status"] == "requested"
