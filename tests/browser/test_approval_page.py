"""The approval page in a real browser (Debian's chromium through Playwright) against the real
server (SQLite): a signed agent payment above the mandate's confirmation threshold waits for
the user, who signs in, reads it and approves (re-entering their key: the amount is above
``approval_reauth_above``) or declines; only the payment's own user sees the page.

No browser is ever downloaded (see test_consent_page.py). Screenshots go to
test-results/screenshots/approval-*.png.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from browser_support import SCREENSHOTS, chromium
from live_server import LiveServer
from paywarden.trust.keys import PrivateKey, ed25519_private_key
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

EXCERPT = "Book the <b>usual</b> coffee order for the team & ask me if it's over $10."
FUNDED = 50_000
BIG = 12_000  # above the default approval_reauth_above (10_000): asks for the key again
SMALL = 3_000

pytestmark = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _signed_post(server: LiveServer, key: PrivateKey, path: str, body: dict[str, Any]) -> Any:
    raw = json.dumps(body).encode()
    url = server.base_url + path
    parts = urlsplit(url)
    fields = [("Content-Digest", content_digest(raw))]
    request = RequestParts("POST", parts.scheme, parts.netloc, parts.path, "", fields, raw)
    created = datetime.now(UTC)
    signature_input, signature = sign_request(
        request,
        key=key,
        components=["@method", "@authority", "@path", "content-digest"],
        created=created,
        expires=created + timedelta(seconds=60),
        nonce=secrets.token_urlsafe(16),
        tag="agent-payer-auth",
    )
    headers = {
        **dict(fields),
        "Signature-Input": signature_input,
        "Signature": signature,
        "Content-Type": "application/json",
        "Idempotency-Key": secrets.token_hex(8),
    }
    return httpx.post(url, content=raw, headers=headers, timeout=30)


@pytest.fixture
def world(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    server = live_server
    with server.client() as client:
        user, user_key = server.create_user(client, funded=FUNDED)
        _other, other_key = server.create_user(client)
        platform = client.post(
            "/v1/agent_platforms",
            json={
                "name": "Acme Agents",
                "origin": f"https://agents-{secrets.token_hex(4)}.example",
            },
            headers=server.headers(server.admin_key),
        )
        assert platform.status_code == 201, platform.text
        agent_key = ed25519_private_key(secrets.token_bytes(32))
        agent = client.post(
            "/v1/agents",
            json={"name": "Shopping helper", "keys": [agent_key.public_jwk()]},
            headers=server.headers(platform.json()["secret_key"]),
        )
        assert agent.status_code == 201, agent.text
        merchant = client.post(
            "/v1/merchants",
            json={"name": "Harbour Coffee", "category": "coffee", "currency": "usd", "fee_bps": 0},
            headers=server.headers(server.admin_key),
        )
        assert merchant.status_code == 201, merchant.text
        asked = _signed_post(
            server,
            agent_key,
            "/v1/mandates",
            {
                "user": user["id"],
                "currency": "usd",
                "constraints": [
                    {"type": "payment.budget", "currency": "usd", "max": 40_000},
                    {"type": "payment.allowed_payees", "allowed": [merchant.json()["id"]]},
                    {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1_000},
                ],
                "conversation_excerpt": EXCERPT,
            },
        )
        assert asked.status_code == 201, asked.text
        consented = client.post(
            f"/v1/mandates/{asked.json()['id']}/consent", headers=server.headers(user_key)
        )
        assert consented.status_code == 200, consented.text
    yield {
        "server": server,
        "user": user,
        "user_key": user_key,
        "other_key": other_key,
        "agent_key": agent_key,
        "mandate": asked.json()["id"],
        "merchant": merchant.json()["id"],
    }


def _pay(world: dict[str, Any], amount: int) -> dict[str, Any]:
    body = {"mandate": world["mandate"], "merchant": world["merchant"], "amount": amount}
    paid = _signed_post(
        world["server"], world["agent_key"], "/v1/payments", body | {"currency": "usd"}
    )
    assert paid.status_code == 201, paid.text
    payment: dict[str, Any] = paid.json()
    assert payment["status"] == "requires_confirmation", payment
    assert payment["approval_url"] == f"/approvals/{payment['approval']}"
    return payment


def _read(world: dict[str, Any], path: str) -> dict[str, Any]:
    server = world["server"]
    with server.client() as client:
        read = client.get(path, headers=server.headers(world["user_key"], None))
    assert read.status_code == 200, read.text
    body: dict[str, Any] = read.json()
    return body


def _wallet(world: dict[str, Any]) -> int:
    wallet = _read(world, f"/v1/accounts/{world['user']['wallets'][0]['id']}")
    posted: int = wallet["balance"]["posted"]
    return posted


def _sign_in(page: Any, secret_key: str) -> None:
    page.get_by_label("Your secret key").fill(secret_key)
    page.get_by_role("button", name="Use secret key").click()


def test_the_user_approves_then_declines(browser: Any, world: dict[str, Any]) -> None:
    server = world["server"]
    payment = _pay(world, BIG)
    url = server.base_url + payment["approval_url"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()

    page.goto(url)
    assert urlsplit(page.url).path == "/signin"
    _sign_in(page, world["user_key"])
    page.wait_for_url(url)
    assert page.locator("#amount").inner_text() == "120.00 USD"
    assert page.locator("#payee").inner_text() == "Harbour Coffee"
    assert "Shopping helper" in page.locator("#agent-name").inner_text()
    assert page.locator("#mandate").inner_text() == world["mandate"]
    assert "confirmation" in page.locator("#reasons").inner_text()
    assert page.locator("#excerpt").inner_text() == EXCERPT
    assert page.locator("#excerpt b").count() == 0
    approval = _read(world, f"/v1/approvals/{payment['approval']}")
    assert page.locator("input[name=binding_hash]").input_value() == approval["binding_hash"]

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "approval-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "approval-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 800})

    # Another user's key does not re-authenticate: refused, nothing moves.
    page.get_by_label("Your secret key").fill(world["other_key"])
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.get_by_role("button", name="Approve").click()
    assert refused.value.status == 403
    assert _read(world, f"/v1/payments/{payment['id']}")["status"] == "requires_confirmation"
    assert _wallet(world) == FUNDED

    page.goto(url)
    page.get_by_label("Your secret key").fill(world["user_key"])
    page.get_by_role("button", name="Approve").click()
    page.wait_for_load_state()
    assert "You approved" in page.get_by_role("status").inner_text()
    assert "succeeded" in page.get_by_role("status").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "approval-approved.png"), full_page=True)
    paid = _read(world, f"/v1/payments/{payment['id']}")
    assert paid["status"] == "succeeded" and paid["transfer"] and paid["receipt"]
    assert _wallet(world) == FUNDED - BIG
    # Posting again (another tab) changes nothing: the money moved once.
    page.go_back()
    page.reload()
    assert page.get_by_role("button", name="Approve").count() == 0
    assert _wallet(world) == FUNDED - BIG

    second = _pay(world, SMALL)
    page.goto(server.base_url + second["approval_url"])
    assert page.get_by_label("Your secret key").count() == 0  # below the re-auth level
    page.get_by_role("button", name="Decline").click()
    page.wait_for_load_state()
    assert "declined" in page.get_by_role("status").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "approval-declined.png"), full_page=True)
    declined = _read(world, f"/v1/payments/{second['id']}")
    assert declined["status"] == "declined" and declined["reasons"] == ["declined_by_user"]
    assert page.locator("#reasons").inner_text() == "You declined it."
    assert _wallet(world) == FUNDED - BIG
    context.close()


def test_another_user_gets_404(browser: Any, world: dict[str, Any]) -> None:
    server = world["server"]
    payment = _pay(world, SMALL)
    url = server.base_url + payment["approval_url"]
    stranger = browser.new_context()
    page = stranger.new_page()
    page.goto(url)
    _sign_in(page, world["other_key"])
    page.wait_for_url(url)
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    assert page.request.get(url).status == 404
    assert "Harbour Coffee" not in page.content()
    token = page.locator("input[name=csrf_token]").first.input_value()
    posted = page.request.post(url, form={"csrf_token": token, "decision": "decline"})
    assert posted.status == 404
    stranger.close()
    assert _read(world, f"/v1/payments/{payment['id']}")["status"] == "requires_confirmation"
