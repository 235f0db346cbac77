"""Step-up approvals over HTTP, on SQLite and PostgreSQL: the agent's payment waits with an
approval, the agent polls it, the user approves with their key (re-authenticating with the
``Paywarden-Reauth`` header above the level) or declines; agent signatures never decide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Api, make_api
from payment_support import SignedAgent, register_agent
from paywarden.kernel.clock import FakeClock
from paywarden.store.unit_of_work import Store
from paywarden.trust.receipts import ReceiptStatus, verify_receipt

REAUTH_ABOVE = 5_000


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    yield from make_api(store, approval_reauth_above=REAUTH_ABOVE, approval_ttl_s=600)


Agent = SignedAgent


@pytest.fixture
def agent(api: Api, clock: FakeClock) -> Agent:
    return register_agent(api, clock)


def _reauthed(api: Api, path: str, key: str, body: dict[str, Any], reauth: str) -> Any:
    """A POST with the user's key and ``Paywarden-Reauth``."""
    headers = {**api.headers(key), "Paywarden-Reauth": reauth}
    return api.client.post(path, json=body, headers=headers)


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def _pending(api: Api, agent: Agent, amount: int) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A funded user, a merchant, a granted mandate with a 1000 threshold, and a payment of
    ``amount`` that waits: (payment, user key, merchant)."""
    user, user_key = api.user(funded=50_000)
    merchant, _ = api.merchant()
    asked = agent.post(
        "/v1/mandates",
        {
            "user": user["id"],
            "currency": "usd",
            "constraints": [
                {"type": "payment.budget", "currency": "usd", "max": 20_000},
                {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
                {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 1_000},
            ],
        },
    )
    assert asked.status_code == 201, asked.text
    consented = api.post(f"/v1/mandates/{asked.json()['id']}/consent", user_key)
    assert consented.status_code == 200, consented.text
    paid = agent.post(
        "/v1/payments",
        {
            "mandate": asked.json()["id"],
            "merchant": merchant["id"],
            "amount": amount,
            "currency": "usd",
        },
    )
    assert paid.status_code == 201, paid.text
    payment = paid.json()
    assert payment["status"] == "requires_confirmation", payment
    assert payment["approval"].startswith("apr_")
    assert payment["approval_url"] == f"/approvals/{payment['approval']}"
    return payment, user_key, merchant


def test_the_agent_polls_and_the_user_approves_with_reauthentication(
    api: Api, agent: Agent
) -> None:
    payment, user_key, _ = _pending(api, agent, REAUTH_ABOVE + 1)
    path = f"/v1/approvals/{payment['approval']}"
    polled = agent.get(path)
    assert polled.status_code == 200, polled.text
    approval = polled.json()
    assert (approval["object"], approval["status"], approval["payment"]) == (
        "approval",
        "pending",
        payment["id"],
    )
    assert approval["reauth_required"] is True
    assert api.get(path, user_key).json() == approval
    assert api.get(path, api.admin_key).status_code == 200

    binding = {"binding_hash": approval["binding_hash"]}
    refused = agent.post(f"{path}/approve", binding)
    assert (refused.status_code, _code(refused)) == (401, "agent_not_allowed")
    no_reauth = api.post(f"{path}/approve", user_key, {**binding, "reauthenticated": True})
    assert (no_reauth.status_code, _code(no_reauth)) == (403, "reauthentication_required")
    _, other_key = api.user()
    wrong = _reauthed(api, f"{path}/approve", user_key, binding, other_key)
    assert (wrong.status_code, _code(wrong)) == (401, "reauthentication_failed")
    mismatch = _reauthed(api, f"{path}/approve", user_key, {"binding_hash": "0" * 64}, user_key)
    assert (mismatch.status_code, _code(mismatch)) == (409, "approval_binding_mismatch")

    approved = _reauthed(api, f"{path}/approve", user_key, binding, user_key)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    after = agent.get(f"/v1/payments/{payment['id']}").json()
    assert after["status"] == "succeeded" and after["approval"] == payment["approval"]
    jwks = api.client.get("/.well-known/jwks.json").json()
    assert verify_receipt(after["receipt"], jwks).status is ReceiptStatus.SUCCESS
    assert agent.get(path).json()["status"] == "approved"

    again = _reauthed(api, f"{path}/approve", user_key, binding, user_key)
    assert (again.status_code, _code(again)) == (409, "approval_not_pending")
    merchant_account = api.get(f"/v1/payments/{payment['id']}", api.admin_key).json()
    assert merchant_account["transfer"] == after["transfer"]


def test_the_user_declines_and_nothing_moves(api: Api, agent: Agent) -> None:
    payment, user_key, _ = _pending(api, agent, 2_000)
    path = f"/v1/approvals/{payment['approval']}"
    declined = api.post(f"{path}/decline", user_key)
    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["reasons"]) == (
        "declined",
        ["declined_by_user"],
    )
    after = agent.get(f"/v1/payments/{payment['id']}").json()
    assert (after["status"], after["transfer"]) == ("declined", None)
    binding = {"binding_hash": declined.json()["binding_hash"]}
    late = api.post(f"{path}/approve", user_key, binding)
    assert (late.status_code, _code(late)) == (409, "approval_not_pending")


def test_a_revoked_mandate_declines_the_approval(api: Api, agent: Agent) -> None:
    payment, user_key, _ = _pending(api, agent, 2_000)
    revoked = api.post(f"/v1/mandates/{payment['mandate']}/revoke", user_key)
    assert revoked.status_code == 200, revoked.text
    path = f"/v1/approvals/{payment['approval']}"
    binding = {"binding_hash": agent.get(path).json()["binding_hash"]}
    ended = api.post(f"{path}/approve", user_key, binding)
    assert (ended.status_code, _code(ended)) == (409, "approval_declined")
    assert ended.json()["error"]["approval"]["reasons"] == ["mandate_not_active"]
    assert agent.get(f"/v1/payments/{payment['id']}").json()["transfer"] is None
