"""What ACP fixes around the calls: API-Version, the bearer token (issued, revoked, another
agent's), the RFC 9421 signature's agent, Request-Id, discovery, sessions reachable only
under their own merchant, and ``pending_approval`` when the user must confirm."""

from __future__ import annotations

import json
import secrets

import pytest

import acp_support
from acp_support import (
    AcpSchema,
    AcpWorld,
    default_create,
    grant_mandate,
    issue_acp_token,
    payment_data,
    register_signed_agent,
)
from conftest import Api
from payment_support import signed_headers
from paywarden.kernel.clock import FakeClock

# The shared fixtures (tests/acp_support.py), bound here so pytest finds them.
acp_api, world, schema = acp_support.acp_api, acp_support.world, acp_support.schema


def _error(response: object, schema: AcpSchema, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    schema.check("Error", body)
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize(
    ("version", "code"),
    [
        (None, "missing_api_version"),
        ("2025-09-29", "unsupported_api_version"),
        ("x", "unsupported_api_version"),
    ],
)
def test_api_version_missing_or_unknown_is_400_listing_the_supported(
    world: AcpWorld, schema: AcpSchema, version: str | None, code: str
) -> None:
    headers = world.headers()
    del headers["API-Version"]
    if version is not None:
        headers["API-Version"] = version
    response = world.api.client.post(
        f"{world.base}/checkout_sessions", content=json.dumps(default_create()), headers=headers
    )
    body = _error(response, schema, 400, code)
    assert "2026-04-17" in str(body["message"])


def test_bearer_token_is_required_and_revocable(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    path = f"{world.base}/checkout_sessions/{session['id']}"
    headers = world.headers(None)
    del headers["Authorization"]
    response = world.api.client.get(path, headers=headers)
    _error(response, schema, 401, "missing_bearer_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = world.api.client.get(path, headers={**headers, "Authorization": "Bearer acp_test_nope"})
    _error(bad, schema, 401, "invalid_api_key")
    # A native secret key is not an ACP token.
    native = world.api.client.get(
        path, headers={**headers, "Authorization": f"Bearer {world.user_key}"}
    )
    _error(native, schema, 401, "invalid_api_key")

    token_id = world.api.post(
        f"/v1/agents/{world.agent.id}/acp_tokens", world.platform_key, {}
    ).json()["id"]
    revoked = world.api.post(
        f"/v1/agents/{world.agent.id}/acp_tokens/{token_id}/revoke", world.platform_key, {}
    )
    assert revoked.status_code == 200, revoked.text
    assert world.get(f"/checkout_sessions/{session['id']}").status_code == 200  # the other token


def test_revoked_token_stops_working(world: AcpWorld, schema: AcpSchema) -> None:
    issued = world.api.post(f"/v1/agents/{world.agent.id}/acp_tokens", world.platform_key, {})
    token = issued.json()
    assert token["secret_key"].startswith("acp_test_")
    world.token = token["secret_key"]
    assert world.get("/checkout_sessions/cs_01M8JV0J3HES7QMQY0J9CPEXA6").status_code == 404
    world.api.post(
        f"/v1/agents/{world.agent.id}/acp_tokens/{token['id']}/revoke", world.platform_key, {}
    )
    _error(world.get("/checkout_sessions/x"), schema, 401, "invalid_api_key")


def test_only_the_agents_platform_issues_its_tokens(
    world: AcpWorld, acp_api: Api, clock: FakeClock
) -> None:
    _, other_platform_key = register_signed_agent(acp_api, clock)
    refused = acp_api.post(f"/v1/agents/{world.agent.id}/acp_tokens", other_platform_key, {})
    assert refused.status_code == 404, refused.text
    by_user = acp_api.post(f"/v1/agents/{world.agent.id}/acp_tokens", world.user_key, {})
    assert by_user.status_code in (403, 404), by_user.text


def test_another_agents_session_is_404(
    world: AcpWorld, acp_api: Api, clock: FakeClock, schema: AcpSchema
) -> None:
    session = world.create()
    other, platform_key = register_signed_agent(acp_api, clock)
    world.token = issue_acp_token(acp_api, platform_key, other.id)
    _error(world.get(f"/checkout_sessions/{session['id']}"), schema, 404, "resource_missing")
    _error(
        world.post(f"/checkout_sessions/{session['id']}/cancel", {}),
        schema,
        404,
        "resource_missing",
    )


def test_a_session_is_only_reachable_under_its_merchant(
    world: AcpWorld, acp_api: Api, schema: AcpSchema
) -> None:
    session = world.create()
    other, _ = acp_api.merchant("usd")
    response = acp_api.client.get(
        f"/acp/{other['id']}/checkout_sessions/{session['id']}", headers=world.headers(None)
    )
    _error(response, schema, 404, "resource_missing")


def test_signature_must_be_the_bearer_agents(
    world: AcpWorld, acp_api: Api, clock: FakeClock, schema: AcpSchema
) -> None:
    path = f"{world.base}/checkout_sessions"
    raw = json.dumps(default_create()).encode()
    signed = signed_headers(world.agent.key, "POST", path, created=clock.now(), body=raw)
    ok = acp_api.client.post(path, content=raw, headers={**world.headers(), **signed})
    assert ok.status_code == 201, ok.text
    other, _ = register_signed_agent(acp_api, clock)
    foreign = signed_headers(other.key, "POST", path, created=clock.now(), body=raw)
    refused = acp_api.client.post(path, content=raw, headers={**world.headers(), **foreign})
    _error(refused, schema, 401, "signature_agent_mismatch")
    # A replayed signature (same nonce) is refused, as on the native API.
    replayed = acp_api.client.post(path, content=raw, headers={**world.headers(), **signed})
    _error(replayed, schema, 401, "nonce_replayed")


def test_request_id_is_echoed_or_generated(world: AcpWorld) -> None:
    echoed = world.get("/checkout_sessions/cs_x", **{"Request-Id": "req-abc-123"})
    assert echoed.headers["Request-Id"] == "req-abc-123"
    assert echoed.headers.get_list("Request-Id") == ["req-abc-123"]
    generated = world.get("/checkout_sessions/cs_x")
    assert generated.headers["Request-Id"].startswith("req_")


def test_discovery_lists_every_merchants_base_url(world: AcpWorld, schema: AcpSchema) -> None:
    response = world.api.client.get("/.well-known/acp.json")
    assert response.status_code == 200
    body = response.json()
    listed = {m["id"]: m["api_base_url"] for m in body.pop("merchants")}
    assert listed[world.merchant_id] == f"http://testserver/acp/{world.merchant_id}"
    schema.check("DiscoveryResponse", body)
    assert body["protocol"]["supported_versions"] == ["2026-04-17"]
    one = world.api.client.get(f"/acp/{world.merchant_id}/.well-known/acp.json").json()
    schema.check("DiscoveryResponse", one)
    assert one["api_base_url"] == f"http://testserver/acp/{world.merchant_id}"


def test_payment_needing_confirmation_is_pending_approval(
    world: AcpWorld, schema: AcpSchema
) -> None:
    """Under a mandate that asks for confirmation above 1.00, the session is
    pending_approval with an approval_required message and the trusted page as continue_url;
    once the user approves, it is completed with its order."""
    world.mandate_id = grant_mandate(
        world.api,
        world.agent,
        world.user_id,
        world.user_key,
        world.merchant_id,
        100_000,
        {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 100},
    )
    session = world.create()
    token = world.token_for(session)
    response = world.post(
        f"/checkout_sessions/{session['id']}/complete", {"payment_data": payment_data(token)}
    )
    assert response.status_code == 200, response.text
    pending = response.json()
    schema.check("CheckoutSession", pending)
    assert pending["status"] == "pending_approval"
    assert [m["code"] for m in pending["messages"]] == ["approval_required"]
    assert pending["messages"][0]["resolution"] == "requires_buyer_review"
    approval_id = pending["metadata"]["approval_id"]
    assert pending["continue_url"].endswith(f"/approvals/{approval_id}")

    approval = world.api.get(f"/v1/approvals/{approval_id}", world.user_key).json()
    approved = world.api.post(
        f"/v1/approvals/{approval_id}/approve",
        world.user_key,
        {"binding_hash": approval["binding_hash"]},
    )
    assert approved.status_code == 200, approved.text
    done = world.get(f"/checkout_sessions/{session['id']}").json()
    schema.check("CheckoutSessionWithOrder", done)
    assert done["status"] == "completed"


def test_malformed_bodies_are_acp_errors(world: AcpWorld, schema: AcpSchema) -> None:
    bad_json = world.api.client.post(
        f"{world.base}/checkout_sessions", content=b"{", headers=world.headers()
    )
    _error(bad_json, schema, 400, "invalid_json")
    missing = world.post("/checkout_sessions", {"currency": "usd"})
    body = _error(missing, schema, 400, "parameter_missing")
    assert body["param"] == "$.line_items"
    wrong_type = world.post("/checkout_sessions", {"currency": "usd", "line_items": [{"id": 5}]})
    assert _error(wrong_type, schema, 400, "invalid_value")["param"] == "$.line_items[0].id"
    currency = world.post("/checkout_sessions", {**default_create(), "currency": "eur"})
    assert _error(currency, schema, 400, "unsupported_currency")["param"] == "$.currency"
    handler = world.post(
        f"/checkout_sessions/{world.create()['id']}/complete",
        {
            "payment_data": {
                "handler_id": "card_tokenized",
                "instrument": {"type": "card", "credential": {"type": "spt", "token": "spt_123"}},
            }
        },
    )
    _error(handler, schema, 400, "unsupported_payment_handler")
    _ = secrets
