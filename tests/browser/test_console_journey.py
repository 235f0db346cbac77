"""The merchant's side in Debian's chromium against the real server (SQLite): the merchant
signs in to the console, an agent's checkout completes and the order appears in the open page
without a reload, the merchant moves it to "ready for pickup" and refunds part of it.
Screenshots of the console pages at desktop and phone widths go to test-results/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser_support import chromium, live_agent, live_merchant, screenshot
from commerce_support import HOURS, PRODUCTS, TAX_BPS
from live_server import LiveServer

pytestmark = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def world(live_server: LiveServer) -> dict[str, Any]:
    server = live_server
    with server.client() as client:
        merchant = live_merchant(server, client, "Harbour Coffee")
        key = merchant["secret_key"]
        base = f"/v1/merchants/{merchant['id']}"
        store = _ok(
            client.post(
                f"{base}/stores",
                json={"name": "Quay", "address": "1 Quay St", "timezone": "UTC", "hours": HOURS},
                headers=server.headers(key),
            ),
            201,
        )
        profile = {
            "tax_bps": TAX_BPS,
            "fulfillment": [{"type": "pickup", "amount": 0, "stores": [store["id"]]}],
        }
        _ok(client.post(f"{base}/profile", json=profile, headers=server.headers(key)))
        for product in PRODUCTS:
            _ok(client.post("/v1/products", json=product, headers=server.headers(key)), 201)
        user, user_key = server.create_user(client, funded=100_000)
        agent = live_agent(server, client)
        constraints = [
            {"type": "payment.budget", "currency": "usd", "max": 50_000},
            {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
        ]
        asked = _ok(
            agent.post(
                "/v1/mandates",
                {"user": user["id"], "currency": "usd", "constraints": constraints},
            ),
            201,
        )
        _ok(client.post(f"/v1/mandates/{asked['id']}/consent", headers=server.headers(user_key)))
    return {
        "server": server,
        "merchant": merchant,
        "key": key,
        "agent": agent,
        "store": store["id"],
        "mandate": asked["id"],
    }


def _buy(world: dict[str, Any]) -> str:
    agent = world["agent"]
    created = agent.post(
        "/v1/checkout_sessions",
        {
            "merchant": world["merchant"]["id"],
            "line_items": [{"item": "beans", "quantity": 2}],
            "fulfillment": {"option_id": f"pickup_{world['store']}"},
        },
    )
    session = _ok(created, 201)
    done = agent.post(
        f"/v1/checkout_sessions/{session['id']}/complete",
        {"mandate": world["mandate"], "cart_hash": session["cart_hash"]},
    )
    completed = _ok(done)
    assert completed["status"] == "completed", completed
    return str(completed["order"])


def _click(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def test_a_merchant_sees_the_order_arrive_marks_it_ready_and_refunds_part(
    browser: Any, world: dict[str, Any]
) -> None:
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(base + "/merchant")
    page.get_by_label("Your secret key").fill(world["key"])
    _click(page, "Use secret key")
    assert page.url == base + "/merchant"
    page.evaluate("window.stayed = true")  # gone if the page reloads

    order = _buy(world)
    page.wait_for_selector(f"#order-{order}", timeout=20_000)
    assert page.evaluate("window.stayed === true"), "the page reloaded"
    assert "2 x Beans 1 kg" in page.locator(f"#order-{order}").inner_text()
    assert page.locator("#orders-announce").inner_text() == "1 new order"
    screenshot(page, "console-orders")

    page.get_by_role("link", name="2 x Beans 1 kg").click()
    for button in ("Mark confirmed", "Mark preparing", "Mark ready for pickup"):
        _click(page, button)
    assert page.locator("#order-status").inner_text() == "Ready for pickup"
    page.get_by_label("Amount to refund (USD; blank for all 44.00 USD)").fill("5.00")
    page.get_by_label("Reason").fill("one bag arrived torn")
    _click(page, "Refund")
    assert "5.00 USD" in page.locator("#refunds").inner_text()
    assert "one bag arrived torn" in page.locator("#refunds").inner_text()
    screenshot(page, "console-order")

    with world["server"].client() as client:
        read = client.get(
            f"/v1/orders/{order}", headers=world["server"].headers(world["key"], None)
        )
    body = _ok(read)
    assert (body["status"], body["amount_refunded"]) == ("ready_for_pickup", 500)

    for path, name in (
        ("/merchant/catalog", "console-catalog"),
        ("/merchant/payouts", "console-payouts"),
        ("/merchant/webhooks", "console-webhooks"),
    ):
        page.goto(base + path)
        screenshot(page, name)
    context.close()
