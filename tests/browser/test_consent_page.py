"""The consent page in a real browser (Debian's chromium through Playwright) against the real
server (``paywarden serve`` as a subprocess, SQLite): an agent asks for a mandate with a signed
request, the user signs in, reads the page and consents; the mandate is then active.

No browser is ever downloaded: the tests use /usr/bin/chromium, skip when it is absent, and
fail when CI=true (CI must run them). Screenshots go to test-results/screenshots/.
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

EXCERPT = 'Get me my usual beans from Harbour Coffee, <b>not</b> more than $40 a week & "fast".'

# SQLite only: the browser checks the pages, the backends are covered by the API tests.
pytestmark = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


# --- the agent side, over HTTP ------------------------------------------------------------


def _signed(key: PrivateKey, method: str, url: str, body: bytes) -> dict[str, str]:
    parts = urlsplit(url)
    fields = [("Content-Digest", content_digest(body))] if body else []
    components = ["@method", "@authority", "@path"] + (["content-digest"] if body else [])
    request = RequestParts(method, parts.scheme, parts.netloc, parts.path, "", fields, body)
    created = datetime.now(UTC)
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


def _agent(server: LiveServer, client: httpx.Client) -> tuple[dict[str, Any], PrivateKey]:
    made = client.post(
        "/v1/agent_platforms",
        json={"name": "Acme Agents", "origin": f"https://agents-{secrets.token_hex(4)}.example"},
        headers=server.headers(server.admin_key),
    )
    assert made.status_code == 201, made.text
    key = ed25519_private_key(secrets.token_bytes(32))
    registered = client.post(
        "/v1/agents",
        json={"name": "Shopping helper", "keys": [key.public_jwk()]},
        headers=server.headers(made.json()["secret_key"]),
    )
    assert registered.status_code == 201, registered.text
    return registered.json(), key


def _merchant(server: LiveServer, client: httpx.Client) -> dict[str, Any]:
    made = client.post(
        "/v1/merchants",
        json={"name": "Harbour Coffee", "category": "coffee", "currency": "usd", "fee_bps": 0},
        headers=server.headers(server.admin_key),
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _ask(server: LiveServer, key: PrivateKey, user: str, merchant: str) -> dict[str, Any]:
    body = json.dumps(
        {
            "user": user,
            "currency": "usd",
            "timezone": "America/New_York",
            "constraints": [
                {"type": "payment.amount_range", "currency": "usd", "max": 4_000},
                {
                    "type": "paywarden.period_budget",
                    "period": "weekly",
                    "currency": "usd",
                    "max": 10_000,
                },
                {"type": "payment.allowed_payees", "allowed": [merchant]},
            ],
            "conversation_excerpt": EXCERPT,
        }
    ).encode()
    url = server.base_url + "/v1/mandates"
    headers = _signed(key, "POST", url, body)
    headers |= {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
    asked = httpx.post(url, content=body, headers=headers, timeout=30)
    assert asked.status_code == 201, asked.text
    mandate: dict[str, Any] = asked.json()
    return mandate


@pytest.fixture
def world(live_server: LiveServer) -> Iterator[dict[str, Any]]:
    with live_server.client() as client:
        user, user_key = live_server.create_user(client)
        _other, other_key = live_server.create_user(client)
        agent, agent_key = _agent(live_server, client)
        merchant = _merchant(live_server, client)
    mandate = _ask(live_server, agent_key, user["id"], merchant["id"])
    yield {
        "server": live_server,
        "user_key": user_key,
        "other_key": other_key,
        "agent": agent,
        "mandate": mandate,
    }


# --- the user side, in the browser --------------------------------------------------------


def _session_cookie(context: Any) -> dict[str, Any]:
    found = [c for c in context.cookies() if c["name"] == "paywarden_session"]
    assert len(found) == 1, context.cookies()
    cookie: dict[str, Any] = found[0]
    return cookie


def _sign_in(page: Any, secret_key: str) -> None:
    page.get_by_label("Your secret key").fill(secret_key)
    page.get_by_role("button", name="Use secret key").click()


def test_the_user_signs_in_reads_the_page_and_consents(browser: Any, world: dict[str, Any]) -> None:
    server, mandate = world["server"], world["mandate"]
    consent_url = mandate["consent_url"]
    assert consent_url == f"{server.base_url}/mandates/{mandate['id']}/consent"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()

    # Not signed in: the page sends the browser to sign in, with an anonymous session.
    page.goto(consent_url)
    assert urlsplit(page.url).path == "/signin"
    before = _session_cookie(context)
    token_before = page.locator("input[name=csrf_token]").first.input_value()
    assert before["httpOnly"] and before["sameSite"] == "Lax" and not before["secure"]

    # A wrong key is refused, and the form says so.
    _sign_in(page, "pw_test_" + "x" * 43)
    assert page.get_by_role("alert").inner_text() == "That is not a valid secret key."

    # Sign in: back on the consent page, with a new session cookie (fixation).
    _sign_in(page, world["user_key"])
    page.wait_for_url(consent_url)
    after = _session_cookie(context)
    assert after["value"] != before["value"]
    assert after["httpOnly"] and after["sameSite"] == "Lax"
    # A new session id, so a token bound to the old one (planted before sign-in) is worthless.
    assert page.locator("form.decide input[name=csrf_token]").input_value() != token_before

    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#agent-name").inner_text() == "Shopping helper"
    assert "Acme Agents" in page.locator("#agent-platform").inner_text()
    kid = world["agent"]["keys"][0]["kid"]
    assert page.locator("code.kid").all_inner_texts() == [kid]
    assert page.locator("#rules li").all_inner_texts() == [
        "At most 40.00 USD per payment",
        "At most 100.00 USD per week (weeks start Monday, America/New_York)",
        "Only at: Harbour Coffee",
    ]
    # The excerpt is shown as text, never as markup.
    assert page.locator("#excerpt").inner_text() == EXCERPT
    assert page.locator("#excerpt b").count() == 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "consent-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SCREENSHOTS / "consent-phone.png"), full_page=True)
    # On a phone the page fits its width: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # A form posted without its CSRF token is refused, and changes nothing.
    page.locator("form.decide input[name=csrf_token]").evaluate("node => node.remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.get_by_role("button", name="Consent").click()
    assert refused.value.status == 403
    _assert_status(server, world["user_key"], mandate["id"], "pending_consent")

    # Consent, by keyboard: focus the button and press Enter.
    page.goto(consent_url)
    page.get_by_role("button", name="Consent").focus()
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    assert "You consented" in page.get_by_role("status").inner_text()
    assert page.get_by_role("button", name="Consent").count() == 0
    _assert_status(server, world["user_key"], mandate["id"], "active")
    context.close()


def _assert_status(server: LiveServer, key: str, mandate_id: str, status: str) -> None:
    with server.client() as client:
        read = client.get(f"/v1/mandates/{mandate_id}", headers=server.headers(key, None))
    assert read.status_code == 200, read.text
    assert read.json()["status"] == status


def test_another_user_gets_404_and_the_owner_may_decline(
    browser: Any, world: dict[str, Any]
) -> None:
    server, mandate = world["server"], world["mandate"]
    consent_url = mandate["consent_url"]

    stranger = browser.new_context()
    page = stranger.new_page()
    page.goto(consent_url)
    _sign_in(page, world["other_key"])
    page.wait_for_url(consent_url)
    assert page.get_by_role("heading", level=1).inner_text() == "Not found"
    assert page.request.get(consent_url).status == 404
    assert "Shopping helper" not in page.content()
    stranger.close()

    owner = browser.new_context(viewport={"width": 390, "height": 844})
    page = owner.new_page()
    page.goto(consent_url)
    _sign_in(page, world["user_key"])
    page.wait_for_url(consent_url)
    page.get_by_role("button", name="Decline").click()
    page.wait_for_load_state()
    assert "revoked" in page.get_by_role("status").inner_text()
    _assert_status(server, world["user_key"], mandate["id"], "revoked")

    # Signing out ends the session: the page asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    page.goto(consent_url)
    assert urlsplit(page.url).path == "/signin"
    owner.close()
