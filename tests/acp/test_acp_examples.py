"""Every request example of the ACP spec (examples.agentic_checkout.json) replayed against a
test merchant whose catalog sells the examples' item ids (``sku`` = ``item_123``…), and every
response validated against the spec's JSON Schema.

What is substituted, because the spec's values are placeholders for another seller's data:
the session id (the one our create returned), the fulfillment option id (the example's
``fulfillment_option_456`` is a shipping option: ours of that type), and ``payment_data``'s
handler and credential (a card token at a PSP: ours is a ``dlg_`` token minted from the
agent's mandate for that session). Everything else is sent as written, unknown fields
(``order_notes``, ``marketing_consents``, attribution) included.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import acp_support
from acp_support import (
    AcpSchema,
    AcpWorld,
    examples,
    payment_data,
)
from paywarden.services import idempotency

# Error examples that cannot happen here, and why.

# The shared fixtures (tests/acp_support.py), bound here so pytest finds them.
acp_api, world, schema = acp_support.acp_api, acp_support.world, acp_support.schema
NOT_APPLICABLE = {
    "error_400_requires_3ds": (
        "paywarden's payment handler pays from a wallet under a mandate, never with a card, so "
        "no session enters authentication_required and requires_3ds cannot arise"
    ),
}


def _ours(example: dict[str, Any], world: AcpWorld, session: dict[str, Any]) -> dict[str, Any]:
    """A complete request with its payment_data handler and credential made ours."""
    body = copy.deepcopy(example)
    data = body["payment_data"]
    data.update(payment_data(world.token_for(session)))
    return body


def _shipping_choice(example: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(example)
    for selected in body["selected_fulfillment_options"]:
        selected["option_id"] = next(
            o["id"] for o in session["fulfillment_options"] if o["type"] == selected["type"]
        )
    return body


def _create(world: AcpWorld, name: str, schema: AcpSchema) -> dict[str, Any]:
    response = world.post("/checkout_sessions", examples()[name])
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    schema.check("CheckoutSession", session)
    assert session["line_items"][0]["item"]["id"] == "item_123"
    assert any(t["type"] == "total" and t["amount"] > 0 for t in session["totals"])
    return session


def _session_with_address(world: AcpWorld, schema: AcpSchema) -> dict[str, Any]:
    return _create(world, "create_checkout_session_request", schema)


def replay_create(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    session = _create(world, name, schema)
    if "fulfillment_details" in examples()[name]:
        assert session["status"] == "ready_for_payment"
        assert session["fulfillment_details"]["address"]["postal_code"] == "94131"
    else:  # shipping is selected first and has no address yet: priced, not payable
        assert session["status"] == "not_ready_for_payment"
        assert any(m["type"] == "error" and m["code"] == "missing" for m in session["messages"])


def replay_update(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    session = _session_with_address(world, schema)
    response = world.post(
        f"/checkout_sessions/{session['id']}", _shipping_choice(examples()[name], session)
    )
    assert response.status_code == 200, response.text
    schema.check("CheckoutSession", response.json())
    assert response.json()["selected_fulfillment_options"][0]["type"] == "shipping"


def replay_complete(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    session = _session_with_address(world, schema)
    body = _ours(examples()[name], world, session)
    response = world.post(f"/checkout_sessions/{session['id']}/complete", body)
    assert response.status_code == 200, response.text
    completed = response.json()
    schema.check("CheckoutSessionWithOrder", completed)
    assert completed["status"] == "completed"
    assert completed["order"]["id"].startswith("ord_")
    assert completed["buyer"]["email"] == examples()[name]["buyer"]["email"]


def replay_complete_denied(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    """The issuer denied authentication: nothing is paid, the session says why, and the
    token stays unspent (a later complete with it succeeds)."""
    session = _session_with_address(world, schema)
    body = _ours(examples()[name], world, session)
    response = world.post(f"/checkout_sessions/{session['id']}/complete", body)
    assert response.status_code == 200, response.text
    refused = response.json()
    schema.check("CheckoutSession", refused)
    assert refused["status"] == "ready_for_payment"
    assert [m["code"] for m in refused["messages"]] == ["payment_declined"]
    del body["authentication_result"]
    paid = world.post(f"/checkout_sessions/{session['id']}/complete", body)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "completed"


def replay_cancel(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    session = _session_with_address(world, schema)
    response = world.post(f"/checkout_sessions/{session['id']}/cancel", examples()[name])
    assert response.status_code == 200, response.text
    schema.check("CheckoutSession", response.json())
    assert response.json()["status"] == "canceled"


REQUESTS: dict[str, Callable[[AcpWorld, AcpSchema, str], None]] = {
    "create_checkout_session_request": replay_create,
    "create_checkout_session_request_with_first_touch_attribution": replay_create,
    "update_checkout_session_request": replay_update,
    "complete_checkout_session_request": replay_complete,
    "complete_checkout_session_request_seller_backed": replay_complete,
    "complete_checkout_session_request_with_last_touch_attribution": replay_complete,
    "complete_session_with_authentication_result_request": replay_complete,
    "complete_session_with_denied_authentication_request": replay_complete_denied,
    "cancel_checkout_session_request": replay_cancel,
    "cancel_checkout_session_request_timing_deferred": replay_cancel,
}


def test_every_request_example_has_a_replay() -> None:
    named = {name for name in examples() if "_request" in name}
    assert named == set(REQUESTS), named ^ set(REQUESTS)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_example_replays(world: AcpWorld, schema: AcpSchema, name: str) -> None:
    REQUESTS[name](world, schema, name)


def _expect(response: Any, example: str, schema: AcpSchema, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    schema.check("Error", body)
    expected = examples()[example]
    schema.check("Error", expected)
    assert (body["type"], body["code"]) == (expected["type"], expected["code"])
    if "param" in expected:
        assert body["param"] == expected["param"]


def test_error_400_invalid_item(world: AcpWorld, schema: AcpSchema) -> None:
    body = {**examples()["create_checkout_session_request"], "line_items": [{"id": "invalid_item"}]}
    _expect(world.post("/checkout_sessions", body), "error_400_invalid_item", schema, 400)


def test_error_400_idempotency_key_required(world: AcpWorld, schema: AcpSchema) -> None:
    response = world.post(
        "/checkout_sessions", examples()["create_checkout_session_request"], idempotency_key=None
    )
    _expect(response, "error_400_idempotency_key_required", schema, 400)


def test_error_422_idempotency_conflict(world: AcpWorld, schema: AcpSchema) -> None:
    key = secrets.token_hex(8)
    first = world.post(
        "/checkout_sessions", examples()["create_checkout_session_request"], idempotency_key=key
    )
    assert first.status_code == 201, first.text
    replay = world.post(
        "/checkout_sessions", examples()["create_checkout_session_request"], idempotency_key=key
    )
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    other = examples()["create_checkout_session_request_with_first_touch_attribution"]
    _expect(
        world.post("/checkout_sessions", other, idempotency_key=key),
        "error_422_idempotency_conflict",
        schema,
        422,
    )


def test_error_409_idempotency_in_flight(world: AcpWorld, schema: AcpSchema) -> None:
    """A first request still running holds the key (claimed, not completed): a retry gets
    409 with Retry-After."""
    key = secrets.token_hex(8)
    body = examples()["create_checkout_session_request"]
    scope = idempotency.Scope(
        f"agent:{world.agent.id}:test", "POST", f"{world.base}/checkout_sessions", key
    )
    secret = world.api.client.app.state.runtime.secret  # type: ignore[attr-defined]
    fingerprint = idempotency.fingerprint(body, secret)
    claimed = world.api.store.run(
        lambda uow: idempotency.claim(
            uow, scope, fingerprint, retention=timedelta(days=1), lock_s=60
        )
    )
    assert isinstance(claimed, idempotency.Claimed)
    response = world.post("/checkout_sessions", body, idempotency_key=key)
    _expect(response, "error_409_idempotency_in_flight", schema, 409)
    assert response.headers["Retry-After"] == "1"


def test_every_error_example_is_replayed_or_explained(schema: AcpSchema) -> None:
    replayed = {
        "error_400_invalid_item",
        "error_400_idempotency_key_required",
        "error_422_idempotency_conflict",
        "error_409_idempotency_in_flight",
    }
    errors = {name for name in examples() if name.startswith("error_")}
    assert errors == replayed | set(NOT_APPLICABLE)
    for name in errors:
        schema.check("Error", examples()[name])
