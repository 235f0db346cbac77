"""The user's whole journey on the trusted surface, in Debian's chromium against the real
server (SQLite): sign in with a key, set a password, sign in with it, consent to the mandate
an agent asked for, watch the agent pay, approve a step-up payment from the approvals badge,
revoke the mandate and see the agent's next payment refused. Screenshots of each main page at
desktop and phone widths go to test-results/screenshots/ (the README shows them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser_support import LiveAgent, chromium, live_agent, live_merchant, screenshot
from live_server import LiveServer

EXCERPT = "Order my usual flat white every weekday, and ask me before anything over $20."
PASSWORD = "a long and unguessable phrase"

pytestmark = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def world(live_server: LiveServer) -> dict[str, Any]:
    server = live_server
    with server.client() as client:
        user, user_key = server.create_user(client, funded=50_000)
        agent = live_agent(server, client)
        merchant = live_merchant(server, client, "Harbour Coffee")
    asked = agent.post(
        "/v1/mandates",
        {
            "user": user["id"],
            "currency": "usd",
            "constraints": [
                {
                    "type": "paywarden.period_budget",
                    "period": "weekly",
                    "currency": "usd",
                    "max": 10_000,
                },
                {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
                {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 2_000},
            ],
            "conversation_excerpt": EXCERPT,
        },
    )
    assert asked.status_code == 201, asked.text
    return {
        "server": server,
        "user": user,
        "user_key": user_key,
        "agent": agent,
        "merchant": merchant,
        "mandate": asked.json()["id"],
        "consent_url": asked.json()["consent_url"],
    }


def _pay(world: dict[str, Any], amount: int) -> dict[str, Any]:
    agent: LiveAgent = world["agent"]
    body = {"mandate": world["mandate"], "merchant": world["merchant"]["id"], "amount": amount}
    paid = agent.post("/v1/payments", body | {"currency": "usd"})
    assert paid.status_code in (201, 403), paid.text
    result: dict[str, Any] = paid.json()
    return result


def _click(page: Any, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def test_a_users_journey(browser: Any, world: dict[str, Any]) -> None:
    base = world["server"].base_url
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()

    # Sign in with the secret key, set a password, sign out, sign in with the password.
    page.goto(base + "/home")
    assert urlsplit(page.url).path == "/signin"
    screenshot(page, "signin")
    page.get_by_label("Your secret key").fill(world["user_key"])
    _click(page, "Use secret key")
    assert urlsplit(page.url).path == "/home"
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("New password").fill(PASSWORD)
    _click(page, "Save password")
    assert page.locator("#saved").is_visible()
    _click(page, "Sign out")
    page.get_by_label("Email").fill(world["user"]["email"])
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    _click(page, "Sign in")
    assert urlsplit(page.url).path == "/home"
    assert page.locator("#balance-1").inner_text() == "500.00 USD"

    # The agent asked for a mandate: the user reads it and consents.
    page.goto(base + urlsplit(world["consent_url"]).path)
    assert page.locator("#excerpt").inner_text() == EXCERPT
    _click(page, "Consent")
    page.goto(base + "/mandates")
    screenshot(page, "mandates")

    # The agent pays within the mandate; the home page shows it against the weekly budget.
    assert _pay(world, 1_500)["status"] == "succeeded"
    page.goto(base + "/home")
    assert page.locator("#balance-1").inner_text() == "485.00 USD"
    assert "15.00 USD / 100.00 USD" in page.locator("#spending-chart").text_content()

    # A payment above the threshold waits for the user: badge, list, approval page, approve.
    asked = _pay(world, 3_000)
    assert asked["status"] == "requires_confirmation"
    page.reload()
    assert page.locator("#pending-count").inner_text() == "1"
    screenshot(page, "home")
    page.locator("#nav-approvals").click()
    screenshot(page, "approvals")
    page.get_by_role("link", name="Review").click()
    assert urlsplit(page.url).path == f"/approvals/{asked['approval']}"
    _click(page, "Approve")
    page.goto(base + "/payments")
    assert page.locator(f"#payment-{asked['id']} .payment-status").inner_text().startswith("paid")
    screenshot(page, "payments")
    page.goto(base + "/home")
    assert page.locator("#balance-1").inner_text() == "455.00 USD"
    assert page.locator("#pending-count").count() == 0

    # The user revokes the mandate; the agent's next payment is refused.
    page.goto(base + f"/mandates/{world['mandate']}")
    screenshot(page, "mandate")
    _click(page, "Revoke for good")
    assert page.locator("#mandate-status").inner_text() == "revoked"
    refused = _pay(world, 500)
    assert refused["status"] == "declined" and "mandate_not_active" in refused["reasons"]
    page.goto(base + "/home")
    assert page.locator("#balance-1").inner_text() == "455.00 USD"

    # The same home page in Chinese.
    page.get_by_role("link", name="中文").click()
    assert page.locator("html").get_attribute("lang") == "zh"
    screenshot(page, "home-zh")
    context.close()


def test_keyboard_reaches_every_control_of_the_mandate_page(
    browser: Any, world: dict[str, Any]
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    base = world["server"].base_url
    page.goto(base + "/signin")
    page.get_by_label("Your secret key").fill(world["user_key"])
    _click(page, "Use secret key")
    page.goto(base + urlsplit(world["consent_url"]).path)
    _click(page, "Consent")
    page.goto(base + f"/mandates/{world['mandate']}")
    reached = set()
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.textContent.trim()"))
    for control in ("Pause", "Revoke for good", "Save and review", "Mandates", "Sign out"):
        assert control in reached, (control, reached)
    context.close()
