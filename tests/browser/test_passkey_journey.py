"""Passkeys in Debian's chromium against the real server, with chromium's own virtual
authenticator (over CDP: a platform authenticator holding discoverable credentials, user
verification on): sign in with a key, add a passkey on /settings, sign out, sign in with the
passkey and nothing typed, remove it, and see the next passkey sign-in refused.

Chromium refuses an IP address as an RP ID, so the pages are browsed at ``localhost`` (the
live server binds 127.0.0.1, where localhost resolves)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser_support import chromium, screenshot
from live_server import LiveServer

pytestmark = pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _at_localhost(server: LiveServer) -> str:
    url = urlsplit(server.base_url)
    return f"{url.scheme}://localhost:{url.port}"


def _path(page: Any) -> str:
    return str(urlsplit(page.url).path)


def test_a_user_signs_in_with_a_passkey_and_removes_it(
    browser: Any, live_server: LiveServer
) -> None:
    base = _at_localhost(live_server)
    with live_server.client() as client:
        user, user_key = live_server.create_user(client)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})

    # Signed in with the secret key, the user adds a passkey on /settings.
    page.goto(base + "/signin")
    page.get_by_label("Your secret key").fill(user_key)
    with page.expect_navigation():
        page.get_by_role("button", name="Use secret key").click()
    assert _path(page) == "/home"
    page.get_by_role("link", name="Settings").click()
    assert page.locator("#no-passkeys").is_visible()
    page.get_by_label("Name for a new passkey").fill("Work laptop")
    with page.expect_navigation(url="**/settings?passkey=added"):
        page.get_by_role("button", name="Add a passkey").click()
    assert page.locator("#passkey-note").inner_text() == "Your passkey was added."
    assert page.locator("#passkey-list .passkey-name").all_inner_texts() == ["Work laptop"]
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": added["authenticatorId"]})
    assert [c["isResidentCredential"] for c in stored["credentials"]] == [True]
    assert stored["credentials"][0]["rpId"] == "localhost"
    screenshot(page, "settings-passkeys")

    # Signed out, the passkey signs the user in: no email, no password, no key typed.
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out", exact=True).click()
    assert _path(page) == "/signin"
    with page.expect_navigation(url="**/home"):
        page.get_by_role("button", name="Sign in with a passkey").click()
    assert page.get_by_role("heading", name="Your wallet").is_visible()
    assert user["email"] not in page.content()

    # Removing the passkey ends the session it opened; the next passkey sign-in is refused.
    page.goto(base + "/settings")
    assert "last used" in page.locator("#passkey-list").inner_text()
    with page.expect_navigation():
        page.get_by_role("button", name="Remove: Work laptop").click()
    assert _path(page) == "/signin"
    button = page.get_by_role("button", name="Sign in with a passkey")
    button.focus()  # the keyboard reaches it and starts it
    page.keyboard.press("Enter")
    status = page.locator("#passkey-status")
    status.filter(has_text="not accepted").wait_for()
    assert status.get_attribute("aria-live") == "polite"
    assert _path(page) == "/signin"
    page.goto(base + "/home")
    assert _path(page) == "/signin"
    context.close()
