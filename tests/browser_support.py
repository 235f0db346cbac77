"""What the browser tests share: Debian's chromium through Playwright (never a downloaded
browser), the screenshot folder, and an agent that signs its requests to a live server."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright

from live_server import LiveServer
from paywarden.trust.keys import PrivateKey, ed25519_private_key
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-results" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium; without one, a skip (a failure when CI=true)."""
    if not CHROMIUM.exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and CI=true: the browser tests must run")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str) -> None:
    """``name``-desktop.png and ``name``-phone.png, full page; the phone layout must not
    scroll sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width} px)"
    page.set_viewport_size(size or DESKTOP)


def signed_headers(key: PrivateKey, method: str, url: str, body: bytes) -> dict[str, str]:
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


@dataclass
class LiveAgent:
    """An agent registered on a live server, signing each request with its key."""

    server: LiveServer
    key: PrivateKey
    id: str

    def post(self, path: str, body: dict[str, Any]) -> Any:
        raw = json.dumps(body).encode()
        url = self.server.base_url + path
        headers = signed_headers(self.key, "POST", url, raw)
        headers |= {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
        return httpx.post(url, content=raw, headers=headers, timeout=30)


def live_agent(
    server: LiveServer, client: httpx.Client, name: str = "Shopping helper"
) -> LiveAgent:
    platform = client.post(
        "/v1/agent_platforms",
        json={"name": "Acme Agents", "origin": f"https://agents-{secrets.token_hex(4)}.example"},
        headers=server.headers(server.admin_key),
    )
    assert platform.status_code == 201, platform.text
    key = ed25519_private_key(secrets.token_bytes(32))
    agent = client.post(
        "/v1/agents",
        json={"name": name, "keys": [key.public_jwk()]},
        headers=server.headers(platform.json()["secret_key"]),
    )
    assert agent.status_code == 201, agent.text
    return LiveAgent(server, key, agent.json()["id"])


def live_merchant(server: LiveServer, client: httpx.Client, name: str) -> dict[str, Any]:
    made = client.post(
        "/v1/merchants",
        json={"name": name, "category": "coffee", "currency": "usd", "fee_bps": 0},
        headers=server.headers(server.admin_key),
    )
    assert made.status_code == 201, made.text
    merchant: dict[str, Any] = made.json()
    return merchant
