"""Browser-like sessions against the in-process app: sign in through the real forms, keep
one cookie jar per person, read CSRF tokens off the pages."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from conftest import Api
from payment_support import SignedAgent, register_agent
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import web_access

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Browser:
    """One person's browser: its own cookies, swapped into the shared TestClient per call."""

    api: Api
    cookies: list[Any] = field(default_factory=list)  # the jar's Cookie objects

    def _enter(self) -> None:
        self.api.client.cookies.clear()
        for cookie in self.cookies:
            self.api.client.cookies.jar.set_cookie(cookie)

    def _leave(self) -> None:
        self.cookies = list(self.api.client.cookies.jar)
        self.api.client.cookies.clear()

    def get(self, path: str, **headers: str) -> Any:
        self._enter()
        try:
            return self.api.client.get(path, headers=headers, follow_redirects=False)
        finally:
            self._leave()

    def post(self, path: str, form: dict[str, str]) -> Any:
        self._enter()
        try:
            return self.api.client.post(path, data=form, follow_redirects=False)
        finally:
            self._leave()

    def post_json(self, path: str, body: Any, headers: dict[str, str]) -> Any:
        self._enter()
        try:
            return self.api.client.post(path, json=body, headers=headers, follow_redirects=False)
        finally:
            self._leave()

    def csrf(self, path: str = "/signin") -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page.text)

    def sign_in(self, email: str, password: str = PASSWORD) -> Any:
        token = self.csrf("/signin")
        return self.post("/signin", {"csrf_token": token, "email": email, "password": password})


def signed_in_with_key(api: Api, secret: str, landing: str) -> Browser:
    """A browser signed in with a secret key (a user's, a merchant's or the admin's), which
    must land on ``landing``."""
    browser = Browser(api)
    token = browser.csrf("/signin")
    signed = browser.post("/signin", {"csrf_token": token, "secret_key": secret})
    assert signed.status_code == 303 and signed.headers["location"] == landing, signed.text
    return browser


@dataclass
class Person:
    user: dict[str, Any]
    key: str
    browser: Browser

    @property
    def id(self) -> str:
        return str(self.user["id"])


def person(api: Api, *, funded: int = 0, signed_in: bool = True) -> Person:
    """A user with a password, optionally signed in through the form."""
    user, key = api.user(funded=funded)
    admin = Principal(PrincipalType.ADMIN, None, False, "key_admin", "2026-11-29")
    api.store.run(lambda uow: web_access.set_password(uow, admin, user["id"], PASSWORD))
    browser = Browser(api)
    if signed_in:
        done = browser.sign_in(user["email"])
        assert done.status_code == 303, done.text
    return Person(user, key, browser)


@dataclass
class Shop:
    """A user with a funded wallet, an agent holding an active mandate of theirs at one
    merchant (a budget, and a confirmation threshold above ``confirm_above``)."""

    owner: Person
    agent: SignedAgent
    merchant: dict[str, Any]
    mandate: str

    def pay(self, amount: int) -> dict[str, Any]:
        body = {
            "mandate": self.mandate,
            "merchant": self.merchant["id"],
            "amount": amount,
            "currency": "usd",
        }
        paid = self.agent.post("/v1/payments", body)
        assert paid.status_code in (201, 403, 409), paid.text
        result: dict[str, Any] = paid.json()
        return result


def shop(api: Api, clock: FakeClock, *, confirm_above: int = 5_000) -> Shop:
    owner = person(api, funded=100_000)
    agent = register_agent(api, clock)
    merchant, _ = api.merchant()
    constraints = [
        {"type": "paywarden.period_budget", "period": "weekly", "currency": "usd", "max": 20_000},
        {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
        {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": confirm_above},
    ]
    asked = agent.post(
        "/v1/mandates",
        {"user": owner.id, "currency": "usd", "constraints": constraints},
    )
    assert asked.status_code == 201, asked.text
    mandate = asked.json()["id"]
    granted = api.post(f"/v1/mandates/{mandate}/consent", owner.key)
    assert granted.status_code == 200, granted.text
    return Shop(owner, agent, merchant, mandate)


def token() -> str:
    return secrets.token_urlsafe(8)
