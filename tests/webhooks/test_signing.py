"""Webhook signatures against independent verifiers, ACP bodies against the ACP schema, and
secrets sealed at rest."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from standardwebhooks import Webhook, WebhookVerificationError

from paywarden.kernel.errors import InvalidRequest, PaywardenError
from paywarden.services import webhook_payloads, webhooks
from paywarden.trust import webhook_signing as ws
from webhook_support import acp_signature_valid, order_object

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "acp-2026-04-17"


def new_secret() -> str:
    return ws.format_secret(secrets.token_bytes(32))


def test_standard_webhooks_verifies_our_signature() -> None:
    secret = new_secret()
    body = json.dumps({"type": "order.created", "data": {"object": {"id": "ord_1"}}}).encode()
    now = int(time.time())
    headers = ws.standard_headers([secret], "evt_1", now, body).as_dict()
    assert Webhook(secret).verify(body, headers) is not None
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "evt_2"})


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    body = b'{"a":1}'
    headers = ws.standard_headers([new, old], "evt_9", int(time.time()), body).as_dict()
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        Webhook(secret).verify(body, headers)
        assert ws.verify_standard(secret, headers, body, now_s=int(time.time()))


def test_our_own_standard_check_refuses_stale_or_forged() -> None:
    secret = new_secret()
    headers = ws.standard_headers([secret], "evt_1", 1_000_000, b"{}").as_dict()
    assert ws.verify_standard(secret, headers, b"{}", now_s=1_000_000 + ws.TOLERANCE_S)
    assert not ws.verify_standard(secret, headers, b"{}", now_s=1_000_000 + ws.TOLERANCE_S + 1)
    assert not ws.verify_standard(secret, headers, b"{ }", now_s=1_000_000)


def test_the_acp_merchant_signature_matches_the_spec() -> None:
    secret = new_secret()
    body = b'{"type":"order_create","data":{"type":"order","id":"ord_1"}}'
    header = ws.merchant_signature(secret, 1_709_123_456, body)
    assert acp_signature_valid(secret, header, body)  # the check written from the spec
    assert not acp_signature_valid(secret, header, body[:-1] + b" ")
    assert not acp_signature_valid(new_secret(), header, body)
    assert ws.verify_merchant_signature(secret, header, body, now_s=1_709_123_456 + 300)
    assert not ws.verify_merchant_signature(secret, header, body, now_s=1_709_123_456 + 301)
    assert ws.parse_merchant_signature("t=1,v1=zz") is None


def _acp_event_validator() -> Draft202012Validator:
    if not SPEC.is_dir():
        pytest.skip(f"the ACP spec is not at {SPEC}")
    webhook = yaml.safe_load((SPEC / "openapi/openapi.agentic_checkout_webhook.yaml").read_text())
    checkout = yaml.safe_load((SPEC / "openapi/openapi.agentic_checkout.yaml").read_text())
    base = "https://acp.example/openapi/"
    registry = Registry().with_resources(
        [
            (base + "openapi.agentic_checkout_webhook.yaml", Resource.opaque(webhook)),
            (base + "openapi.agentic_checkout.yaml", Resource.opaque(checkout)),
        ]
    )
    schema: dict[str, Any] = {
        "$id": base + "event.json",
        "$ref": "openapi.agentic_checkout_webhook.yaml#/components/schemas/WebhookEvent",
    }
    return Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize(
    "event_type, status, refunds",
    [
        ("order.created", "created", []),
        ("order.updated", "ready_for_pickup", []),
        (
            "order.updated",
            "completed",
            [{"id": "ref_1", "amount": 300, "currency": "usd", "created": "2026-11-29T10:00:00Z"}],
        ),
    ],
)
def test_acp_order_events_follow_the_acp_webhook_schema(
    event_type: str, status: str, refunds: list[dict[str, Any]]
) -> None:
    validator = _acp_event_validator()
    order = {**order_object("ord_7", "mer_1", status), "refunds": refunds}
    order["amount_refunded"] = sum(r["amount"] for r in refunds)
    body = webhook_payloads.acp_body(event_type, {"object": order}, "https://pay.example")
    assert body is not None
    event = json.loads(body)
    errors = [e.message for e in validator.iter_errors(event)]
    assert errors == []
    assert event["type"] == webhook_payloads.ACP_EVENT_TYPES[event_type]
    assert event["data"]["permalink_url"] == "https://pay.example/v1/orders/ord_7"
    assert event["data"]["status"] in {"created", "processing", "completed"}
    if refunds:
        assert event["data"]["adjustments"][0]["type"] == "refund"
    assert webhook_payloads.acp_body("payment.succeeded", {"object": order}, "x") is None


def commerce_order() -> dict[str, Any]:
    """An order shaped as paywarden.services.orders.wire_order shapes it."""
    return {
        "id": "ord_9",
        "object": "order",
        "status": "out_for_delivery",
        "checkout_session": "cs_9",
        "merchant": "mer_1",
        "agent": "agt_1",
        "currency": "usd",
        "amount_total": 1250,
        "amount_refunded": 250,
        "line_items": [
            {
                "id": "line_1",
                "product": "prd_1",
                "title": "Latte",
                "quantity": 2,
                "unit_amount": 500,
                "totals": [{"type": "subtotal", "display_text": "Subtotal", "amount": 1000}],
            }
        ],
        "totals": [
            {"type": "items_base_amount", "display_text": "Item(s) total", "amount": 1000},
            {"type": "fulfillment", "display_text": "Delivery", "amount": 250},
            {"type": "total", "display_text": "Total", "amount": 1250},
            {"type": "amount_refunded", "display_text": "Refunded", "amount": 250},
            {"type": "made_up", "display_text": "?", "amount": 1},
        ],
        "refunds": [
            {
                "id": "ref_1",
                "object": "order_refund",
                "created": "2026-11-29T10:00:00.000Z",
                "amount": 250,
                "currency": "usd",
                "reason": "late",
            }
        ],
    }


def test_a_commerce_order_maps_onto_the_acp_schema() -> None:
    validator = _acp_event_validator()
    body = webhook_payloads.acp_body("order.updated", {"object": commerce_order()}, "http://x")
    assert body is not None
    event = json.loads(body)
    assert [e.message for e in validator.iter_errors(event)] == []
    data = event["data"]
    assert data["checkout_session_id"] == "cs_9" and data["status"] == "shipped"
    assert [t["type"] for t in data["totals"]].count("amount_refunded") == 1
    assert "made_up" not in {t["type"] for t in data["totals"]}
    assert data["line_items"][0]["subtotal"] == 1000
    assert data["adjustments"][0]["amount"] == 250


def test_secrets_are_sealed_to_their_endpoint() -> None:
    master = secrets.token_bytes(32)
    secret = new_secret()
    sealed = ws.seal_webhook_secret(master, secrets.token_bytes(12), "whe_a", secret)
    assert secret not in sealed and secret.removeprefix("whsec_") not in sealed
    assert ws.open_webhook_secret(master, "whe_a", sealed) == secret
    with pytest.raises(PaywardenError, match="does not open"):
        ws.open_webhook_secret(master, "whe_b", sealed)  # copied to another endpoint's row
    with pytest.raises(PaywardenError, match="another master key"):
        ws.open_webhook_secret(secrets.token_bytes(32), "whe_a", sealed)


@pytest.mark.parametrize(
    "url, livemode, ok",
    [
        ("http://127.0.0.1:4242/hooks", False, True),  # loopback: development, test mode
        ("http://localhost/hooks", False, True),
        ("https://hooks.example.com/x", True, True),
        ("http://hooks.example.com/x", True, False),  # live mode: https only
        ("https://127.0.0.1/x", True, False),  # ... and no loopback
        ("https://10.0.0.8/x", True, False),  # ... nor private addresses
        ("https://localhost/x", True, False),
        ("ftp://hooks.example.com/x", False, False),
        ("https://user:pw@hooks.example.com/x", False, False),
        ("https:///nohost", False, False),
    ],
)
def test_endpoint_urls(url: str, livemode: bool, ok: bool) -> None:
    if ok:
        assert webhooks.check_url(url, livemode) == url
    else:
        with pytest.raises(InvalidRequest):
            webhooks.check_url(url, livemode)


def test_acp_endpoints_take_only_order_events() -> None:
    assert webhooks.check_event_types(["order.*"], "acp") == ["order.*"]
    with pytest.raises(InvalidRequest):
        webhooks.check_event_types(["payment.succeeded"], "acp")
    assert webhooks.check_event_types(["payment.*", "*"], "standard") == ["*", "payment.*"]
