"""The bodies webhooks carry: native events, ACP order events, and sample events.

Native (``standard`` endpoints): the event object, as ``GET /v1/events/{id}`` shows it, plus
Standard Webhooks' recommended ``timestamp``::

    {"id": "evt_…", "object": "event", "type": "order.updated", "livemode": false,
     "created": "…", "timestamp": "…", "data": {"object": {…}}}

ACP (``acp`` endpoints): ``order.created`` / ``order.updated`` become ACP's ``WebhookEvent``
(``{"type": "order_create" | "order_update", "data": Order}``, the full order, never a
delta), mapped defensively from paywarden's order: fields it does not carry are left out,
statuses map onto ACP's defined values, and refunds become ``adjustments``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from paywarden.kernel.clock import rfc3339

__all__ = [
    "ACP_EVENT_TYPES",
    "acp_body",
    "acp_order",
    "event_object",
    "sample_object",
    "standard_body",
]

ACP_EVENT_TYPES = {"order.created": "order_create", "order.updated": "order_update"}
# paywarden's order lifecycle onto ACP's defined order statuses.
_ACP_STATUS = {
    "created": "created",
    "confirmed": "confirmed",
    "preparing": "processing",
    "ready_for_pickup": "processing",
    "out_for_delivery": "shipped",
    "shipped": "shipped",
    "completed": "completed",
    "canceled": "canceled",
}
_ACP_TOTAL_TYPES = frozenset(
    {
        "items_base_amount",
        "items_discount",
        "subtotal",
        "discount",
        "fulfillment",
        "tax",
        "fee",
        "gift_wrap",
        "tip",
        "store_credit",
        "total",
        "amount_refunded",
    }
)
# paywarden's totals (a mapping) onto ACP Total types.
_ACP_TOTALS = (
    ("items", "items_base_amount", "Items"),
    ("subtotal", "subtotal", "Subtotal"),
    ("discounts", "discount", "Discounts"),
    ("discount", "discount", "Discounts"),
    ("fulfillment", "fulfillment", "Fulfillment"),
    ("tax", "tax", "Tax"),
    ("fees", "fee", "Fees"),
    ("fee", "fee", "Fees"),
    ("total", "total", "Total"),
)


def event_object(
    event_id: str, event_type: str, livemode: bool, created: datetime, data: Any
) -> dict[str, Any]:
    """The wire event, as listed by the API and posted to ``standard`` endpoints."""
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "livemode": livemode,
        "created": rfc3339(created),
        "timestamp": rfc3339(created),
        "data": data if isinstance(data, dict) else {"object": data},
    }


def standard_body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def acp_body(event_type: str, data: Any, permalink_base: str) -> bytes | None:
    """ACP's WebhookEvent for an order event, or ``None`` for any other event."""
    acp_type = ACP_EVENT_TYPES.get(event_type)
    order = data.get("object") if isinstance(data, dict) else None
    if acp_type is None or not isinstance(order, dict) or not isinstance(order.get("id"), str):
        return None
    body = {"type": acp_type, "data": acp_order(order, permalink_base)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _text(order: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = order.get(name)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return str(value["id"])
    return None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def acp_order(order: dict[str, Any], permalink_base: str) -> dict[str, Any]:
    """ACP ``Order`` (with ``type: order``) from paywarden's wire order."""
    order_id = str(order["id"])
    status = str(order.get("status") or "created")
    body: dict[str, Any] = {
        "type": "order",
        "id": order_id,
        "checkout_session_id": _text(order, "checkout_session_id", "checkout_session") or "",
        "permalink_url": _text(order, "permalink_url")
        or f"{permalink_base.rstrip('/')}/v1/orders/{order_id}",
        "status": _ACP_STATUS.get(status, status),
    }
    line_items = [_acp_line_item(i, item) for i, item in enumerate(_list(order, "line_items"))]
    if line_items:
        body["line_items"] = [item for item in line_items if item is not None]
    currency = _text(order, "currency")
    adjustments = [_acp_refund(r, currency) for r in _list(order, "refunds")]
    body["adjustments"] = [a for a in adjustments if a is not None]
    totals = _acp_totals(order)
    if totals:
        body["totals"] = totals
    return body


def _list(order: dict[str, Any], name: str) -> list[Any]:
    value = order.get(name)
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]  # a list object
    return value if isinstance(value, list) else []


def _acp_line_item(index: int, item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    quantity = _integer(item.get("quantity"))
    if isinstance(item.get("quantity"), dict):
        quantity = _integer(item["quantity"].get("ordered"))
    quantity = max(1, quantity or 1)
    title = _text(item, "title", "name", "product_name", "description") or "Item"
    line: dict[str, Any] = {
        "id": _text(item, "id") or f"li_{index + 1}",
        "title": title,
        "quantity": {"ordered": quantity, "current": quantity, "fulfilled": 0},
    }
    product = _text(item, "product_id", "product")
    if product:
        line["product_id"] = product
    unit = _integer(item.get("unit_amount")) or _integer(item.get("unit_price"))
    if unit is not None:
        line["unit_price"] = unit
    subtotal = _integer(item.get("subtotal")) or _integer(item.get("amount"))
    if subtotal is None and unit is not None:
        subtotal = unit * quantity
    if subtotal is not None:
        line["subtotal"] = subtotal
    return line


def _acp_refund(refund: Any, currency: str | None) -> dict[str, Any] | None:
    if not isinstance(refund, dict) or not isinstance(refund.get("id"), str):
        return None
    adjustment: dict[str, Any] = {
        "id": refund["id"],
        "type": "refund",
        "occurred_at": _text(refund, "created", "created_at") or "1970-01-01T00:00:00Z",
        "status": "completed",
    }
    amount = _integer(refund.get("amount"))
    if amount is not None:
        adjustment["amount"] = amount
    refund_currency = _text(refund, "currency") or currency
    if refund_currency:
        adjustment["currency"] = refund_currency.lower()
    reason = _text(refund, "reason")
    if reason:
        adjustment["reason"] = reason
    return adjustment


def _acp_totals(order: dict[str, Any]) -> list[dict[str, Any]]:
    totals = order.get("totals")
    result: list[dict[str, Any]] = []
    if isinstance(totals, list):  # already ACP-shaped: keep the types ACP defines
        for entry in totals:
            if isinstance(entry, dict) and _integer(entry.get("amount")) is not None:
                kind = _text(entry, "type") or ""
                if kind not in _ACP_TOTAL_TYPES:
                    continue
                text = _text(entry, "display_text") or kind.replace("_", " ").title()
                result.append({"type": kind, "display_text": text, "amount": entry["amount"]})
    elif isinstance(totals, dict):
        for name, kind, text in _ACP_TOTALS:
            amount = _integer(totals.get(name))
            if amount is not None and not any(t["type"] == kind for t in result):
                result.append({"type": kind, "display_text": text, "amount": amount})
    total = _integer(order.get("amount_total")) or _integer(order.get("amount"))
    if total is not None and not any(t["type"] == "total" for t in result):
        result.append({"type": "total", "display_text": "Total", "amount": total})
    refunded = _integer(order.get("amount_refunded"))
    if refunded and not any(t["type"] == "amount_refunded" for t in result):
        result.append({"type": "amount_refunded", "display_text": "Refunded", "amount": refunded})
    return result


def sample_object(
    event_type: str, owner_type: str, owner_id: str | None, object_id: str, now: datetime
) -> dict[str, Any]:
    """A sample object for ``paywarden trigger``: marked ``sample: true``, and naming only
    the caller as its party, so that it reaches only the caller's endpoints."""
    resource = event_type.partition(".")[0]
    party = {"user": "user", "merchant": "merchant", "platform": "platform"}.get(owner_type)
    body: dict[str, Any] = {
        "id": object_id,
        "object": resource,
        "livemode": False,
        "created": rfc3339(now),
        "sample": True,
    }
    if party and owner_id:
        body[party] = owner_id
    if resource == "order":
        status = "created" if event_type == "order.created" else "confirmed"
        body.update(
            checkout_session_id="cs_sample",
            status=status,
            currency="usd",
            line_items=[
                {"id": "li_1", "name": "Flat white", "quantity": 2, "unit_amount": 450},
            ],
            totals={"items": 900, "tax": 72, "total": 972},
            amount_total=972,
            amount_refunded=0,
            refunds=[],
        )
    return body
