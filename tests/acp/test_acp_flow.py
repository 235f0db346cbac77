"""The ACP face end to end: create → update → complete pays under the mandate and makes an
order; cancel; the version, auth, signature, idempotency and error shapes ACP fixes."""

from __future__ import annotations

from typing import Any

import acp_support
from acp_support import (
    AcpSchema,
    AcpWorld,
    payment_data,
)

# The shared fixtures (tests/acp_support.py), bound here so pytest finds them.
acp_api, world, schema = acp_support.acp_api, acp_support.world, acp_support.schema


def total(session: dict[str, Any]) -> int:
    return int(next(t["amount"] for t in session["totals"] if t["type"] == "total"))


def test_create_update_complete_pays_and_makes_an_order(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    schema.check("CheckoutSession", session)
    assert session["status"] == "ready_for_payment"
    assert session["line_items"][0]["item"]["id"] == "item_123"
    # 300 + 10% tax + 500 shipping (the first option is selected by default)
    assert total(session) == 300 + 30 + 500
    assert session["metadata"]["cart_hash"] and session["metadata"]["cart_signature"]

    updated = world.post(
        f"/checkout_sessions/{session['id']}",
        {
            "selected_fulfillment_options": [
                {"type": "digital", "option_id": "digital", "item_ids": ["item_123"]}
            ]
        },
    )
    assert updated.status_code == 200, updated.text
    schema.check("CheckoutSession", updated.json())
    assert total(updated.json()) == 330

    token = world.token_for(updated.json())
    completed = world.post(
        f"/checkout_sessions/{session['id']}/complete", {"payment_data": payment_data(token)}
    )
    assert completed.status_code == 200, completed.text
    body = completed.json()
    schema.check("CheckoutSessionWithOrder", body)
    assert body["status"] == "completed"
    assert body["order"]["id"].startswith("ord_")

    fetched = world.get(f"/checkout_sessions/{session['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "completed"


def test_cancel_then_cancel_again_is_405(world: AcpWorld, schema: AcpSchema) -> None:
    session = world.create()
    canceled = world.post(f"/checkout_sessions/{session['id']}/cancel", {})
    assert canceled.status_code == 200, canceled.text
    schema.check("CheckoutSession", canceled.json())
    assert canceled.json()["status"] == "canceled"
    again = world.post(f"/checkout_sessions/{session['id']}/cancel", {})
    assert again.status_code == 405, again.text
    schema.check("Error", again.json())
