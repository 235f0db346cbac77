"""The native checkout record in ACP's shapes: ``CheckoutSession``, ``Error``, discovery.

The native service already speaks ACP's statuses, totals and message kinds
(:mod:`paywarden.commerce.checkout`); this module renames and fills what ACP requires:

- ``line_items[i].item.id`` is the id the agent asked for (a product's ``sku`` or ``prd_``);
- fulfillment options get ACP's ``totals`` (and a ``location`` for pickup); the selected one
  becomes ``selected_fulfillment_options`` covering every line;
- a message code outside ACP's enums is mapped (an unknown error code becomes ``invalid``, an
  unknown warning an ``info`` without code), and native JSON paths to ACP's fields;
- ``metadata`` carries ``cart_hash`` and ``cart_signature`` (the merchant's ES256 JWS over the
  hash), and the payment and approval when there are;
- a ``pending_approval`` session's ``continue_url`` is the approval page on the trusted
  surface; a completed session carries its ``order``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from paywarden.api.acp_models import Buyer, FulfillmentDetails
from paywarden.commerce.checkout import TOTAL_TITLES
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import PaywardenError
from paywarden.services import approvals
from paywarden.services.checkout import CheckoutRecord

__all__ = [
    "CREDENTIAL_TYPE",
    "HANDLER_ID",
    "HANDLER_NAME",
    "INSTRUMENT_TYPE",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "acp_param",
    "declined_message",
    "error_body",
    "payment_handler",
    "session_body",
]

VERSION = "2026-04-17"
SUPPORTED_VERSIONS = (VERSION,)
HANDLER_ID = "paywarden_mandate"
HANDLER_NAME = "dev.paywarden.delegated_mandate"
INSTRUMENT_TYPE = "mandate"
CREDENTIAL_TYPE = "delegated_token"

STATUSES = frozenset(
    {
        "incomplete",
        "not_ready_for_payment",
        "requires_escalation",
        "authentication_required",
        "ready_for_payment",
        "pending_approval",
        "complete_in_progress",
        "completed",
        "canceled",
        "in_progress",
        "expired",
    }
)
ERROR_CODES = frozenset(
    {
        "missing",
        "invalid",
        "out_of_stock",
        "payment_declined",
        "requires_sign_in",
        "requires_3ds",
        "low_stock",
        "quantity_exceeded",
        "coupon_invalid",
        "coupon_expired",
        "minimum_not_met",
        "maximum_exceeded",
        "region_restricted",
        "age_verification_required",
        "approval_required",
        "unsupported",
        "not_found",
        "conflict",
        "rate_limited",
        "expired",
        "intervention_required",
    }
)
WARNING_CODES = frozenset(
    {
        "low_stock",
        "high_demand",
        "shipping_delay",
        "price_change",
        "expiring_promotion",
        "limited_availability",
    }
)
RESOLUTIONS = frozenset({"recoverable", "requires_buyer_input", "requires_buyer_review"})
# Native JSON paths that name a field the ACP session calls otherwise.
_PARAM_PREFIXES = (
    ("$.fulfillment.", "$.selected_fulfillment_options[0]."),
    ("$.cart_signature", "$.metadata.cart_signature"),
    ("$.cart_hash", "$.metadata.cart_hash"),
    ("$.payment", "$.payment_data"),
)


def error_body(error: PaywardenError) -> dict[str, Any]:
    """ACP's ``Error``: ``type`` is ``invalid_request`` for every 4xx, ``service_unavailable``
    for a 503 and ``processing_error`` for any other 5xx; ``param`` only when known."""
    if error.status == 503:
        kind = "service_unavailable"
    elif error.status >= 500:
        kind = "processing_error"
    else:
        kind = "invalid_request"
    body: dict[str, Any] = {"type": kind, "code": error.code, "message": error.message}
    if error.param:
        body["param"] = error.param
    return body


def payment_handler(base_url: str) -> dict[str, Any]:
    """The one payment handler paywarden offers: a wallet payment under the agent's mandate,
    paid with a one-time delegated token (``dlg_…``) the agent mints from that mandate."""
    return {
        "id": HANDLER_ID,
        "name": HANDLER_NAME,
        "display_name": "paywarden wallet (agent mandate)",
        "version": VERSION,
        "spec": f"{base_url}/acp/handlers/{HANDLER_ID}",
        "requires_delegate_payment": True,
        "requires_pci_compliance": False,
        "psp": "paywarden",
        "config_schema": f"{base_url}/acp/handlers/{HANDLER_ID}#config",
        "instrument_schemas": [f"{base_url}/acp/handlers/{HANDLER_ID}#instrument"],
        "config": {
            "instrument_type": INSTRUMENT_TYPE,
            "credential_type": CREDENTIAL_TYPE,
            "mint_url": f"{base_url}/v1/mandates/{{mandate_id}}/delegated_tokens",
        },
    }


def _totals(pairs: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": str(kind),
            "display_text": TOTAL_TITLES.get(str(kind), str(kind)),
            "amount": amount,
        }
        for kind, amount in pairs
    ]


def _line(line: Mapping[str, Any], asked: Mapping[str, Any] | None) -> dict[str, Any]:
    item_id = str(asked["item"]) if asked else str(line["sku"])
    body: dict[str, Any] = {
        "id": line["id"],
        "item": {"id": item_id, "name": line["title"], "unit_amount": line["unit_amount"]},
        "quantity": line["quantity"],
        "name": line["title"],
        "unit_amount": line["unit_amount"],
        "product_id": line["product"],
        "sku": line["sku"],
        "availability_status": "in_stock" if line["available"] else "out_of_stock",
        "totals": _totals(line["totals"]),
    }
    if line.get("variant"):
        body["variant_id"] = line["variant"]
    if line.get("stock_available") is not None:
        body["available_quantity"] = max(0, int(line["stock_available"]))
    options = line.get("options") or {}
    if options:
        body["custom_attributes"] = [
            {"display_name": str(name), "value": str(value)} for name, value in options.items()
        ]
    return body


def _fulfillment_option(option: Mapping[str, Any]) -> dict[str, Any]:
    title = str(option.get("title") or option["type"])
    body: dict[str, Any] = {
        "type": option["type"],
        "id": option["id"],
        "title": title,
        "totals": [{"type": "total", "display_text": title, "amount": option["amount"]}],
    }
    if option.get("description"):
        body["description"] = option["description"]
    if option["type"] == "pickup":
        place = str(option.get("location") or title)
        # The store's address is one line of text natively; ACP's Address wants parts.
        address = {
            "name": title,
            "line_one": place,
            "city": "",
            "state": "",
            "country": "",
            "postal_code": "",
        }
        body["location"] = {"name": place.split(",", maxsplit=1)[0], "address": address}
        body["pickup_type"] = "in_store"
    return body


def acp_param(param: Any) -> str | None:
    if not isinstance(param, str):
        return None
    for native, acp in _PARAM_PREFIXES:
        if param.startswith(native):
            return acp + param[len(native) :]
    return param


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    kind, code = message.get("type"), message.get("code")
    body: dict[str, Any] = {"type": "info", "content_type": "plain"}
    if kind == "error":
        body = {**body, "type": "error", "code": code if code in ERROR_CODES else "invalid"}
    elif kind == "warning" and code in WARNING_CODES:
        body = {**body, "type": "warning", "code": code}
    body["content"] = str(message.get("content", ""))
    if message.get("resolution") in RESOLUTIONS:
        body["resolution"] = message["resolution"]
    param = acp_param(message.get("param"))
    if param is not None:
        body["param"] = param
    return body


def declined_message(reason: str) -> dict[str, Any]:
    """A ``payment_declined`` message for a completion refused before any payment."""
    return {
        "type": "error",
        "code": "payment_declined",
        "content": f"the payment was declined: {reason}",
        "param": "$.authentication_result",
        "resolution": "requires_buyer_input",
    }


def _echo(model: type[BaseModel], value: Any) -> dict[str, Any] | None:
    """A stored object back in ACP's shape, or None when it is not one (set natively)."""
    if not value:
        return None
    try:
        return model.model_validate(value).model_dump(exclude_none=True)
    except ValidationError:
        return None


def session_body(
    record: CheckoutRecord,
    base_url: str,
    *,
    extra_messages: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The session as ACP's ``CheckoutSession`` (``CheckoutSessionWithOrder`` once it has an
    order)."""
    asked_ids = [str(asked["item"]) for asked in record.items]
    lines = [
        _line(line, record.items[index] if index < len(record.items) else None)
        for index, line in enumerate(record.line_items)
    ]
    body: dict[str, Any] = {
        "id": record.id,
        "protocol": {"version": VERSION},
        "capabilities": {
            "payment": {"handlers": [payment_handler(base_url)]},
            "interventions": {"supported": [], "required": [], "enforcement": "optional"},
        },
        "status": record.status if record.status in STATUSES else "in_progress",
        "currency": record.currency,
        "line_items": lines,
        "fulfillment_options": [_fulfillment_option(o) for o in record.fulfillment_options],
        "totals": _totals(record.totals),
        "messages": [_message(m) for m in (*record.messages, *extra_messages)],
        "links": [],
        "created_at": rfc3339(record.created_at),
        "updated_at": rfc3339(record.updated_at),
        "expires_at": rfc3339(record.expires_at),
        "metadata": _metadata(record, base_url),
    }
    if record.fulfillment:
        body["selected_fulfillment_options"] = [
            {
                "type": record.fulfillment["type"],
                "option_id": record.fulfillment["option_id"],
                "item_ids": asked_ids,
            }
        ]
    for name, model, value in (
        ("buyer", Buyer, record.buyer),
        ("fulfillment_details", FulfillmentDetails, record.fulfillment_details),
    ):
        echoed = _echo(model, value)
        if echoed is not None:
            body[name] = echoed
    if record.status == "pending_approval" and record.approval_id:
        body["continue_url"] = base_url + approvals.APPROVAL_URL.format(id=record.approval_id)
    if record.order_id:
        body["order"] = {
            "type": "order",
            "id": record.order_id,
            "checkout_session_id": record.id,
            "permalink_url": f"{base_url}/v1/orders/{record.order_id}",
            "status": "created",
        }
    return body


def _metadata(record: CheckoutRecord, base_url: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "merchant_id": record.merchant_id,
        "cart_hash": record.cart_hash,
        "cart_signature": record.cart_signature,
    }
    if record.payment_id:
        metadata["payment_id"] = record.payment_id
    if record.approval_id:
        metadata["approval_id"] = record.approval_id
        metadata["approval_url"] = base_url + approvals.APPROVAL_URL.format(id=record.approval_id)
    return metadata
