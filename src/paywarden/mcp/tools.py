"""The shopping tools, as plain functions over the SDK: what the MCP server exposes and what
the chat agent calls. The model never authorizes anything: each tool is one or two signed API
calls made as the configured agent, and the server decides (mandate, cart, risk).

A refusal is a :class:`Refused` carrying the server's wire error (``type``, ``code``,
``message``, ``param``); a declined payment is an answer, not an error (``status:
"declined"`` with ``reasons``). Amounts are integers in minor units (cents, fen);
currencies lowercase ISO 4217.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from paywarden.kernel.errors import PaywardenError
from paywarden.sdk import Client, details

__all__ = ["TOOL_NAMES", "Refused", "ShoppingTools", "ToolSpec"]

Json = dict[str, Any]


class Refused(Exception):
    """The server refused the call; ``error`` is its wire error."""

    def __init__(self, error: Json) -> None:
        super().__init__(json.dumps({"refused": True, "error": error}))
        self.error = error

    @property
    def code(self) -> str:
        return str(self.error.get("code"))


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    read_only: bool
    parameters: Json  # JSON Schema of the arguments (what an OpenAI-compatible model is shown)


def _schema(properties: Mapping[str, Json], required: Sequence[str] = ()) -> Json:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": list(required),
        "additionalProperties": False,
    }


_ID = {"type": "string", "maxLength": 64}
_AMOUNT = {"type": "integer", "minimum": 0, "description": "minor units (cents, fen)"}
_CURRENCY = {"type": "string", "description": "ISO 4217, lowercase: usd, cny"}
_ITEMS = {
    "type": "array",
    "maxItems": 50,
    "items": {
        "type": "object",
        "properties": {
            "item": {"type": "string", "description": "the product id (prd_…)"},
            "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
            "options": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": 'chosen options, e.g. {"size": "large", "milk": "oat"}',
            },
            "variant": {"type": "string", "description": "a variant id, when the product has"},
        },
        "required": ["item", "quantity"],
    },
}
_FULFILLMENT = {
    "type": "object",
    "description": 'e.g. {"type": "pickup", "pickup_at": "2026-11-29T15:00:00+08:00"}',
}

SPECS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "search_products",
        "Search the catalog by keywords. Prices are integers in minor units (cents, fen) "
        "with their currency.",
        True,
        _schema(
            {
                "query": {"type": "string", "maxLength": 200},
                "merchant": {**_ID, "description": "only this merchant (mer_…)"},
                "max_amount": {**_AMOUNT, "description": "price ceiling, minor units"},
                "in_stock": {"type": "boolean"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            ["query"],
        ),
    ),
    ToolSpec(
        "get_product",
        "One product (prd_…) with its options and price in minor units.",
        True,
        _schema({"product_id": _ID}, ["product_id"]),
    ),
    ToolSpec(
        "create_checkout",
        "Start a checkout at one merchant with line items; the merchant prices and signs the "
        "cart. Returns the session (cs_…) with totals in minor units.",
        False,
        _schema(
            {"merchant": _ID, "items": _ITEMS, "fulfillment": _FULFILLMENT},
            ["merchant", "items"],
        ),
    ),
    ToolSpec(
        "update_checkout",
        "Replace the items and/or fulfillment of an open checkout (cs_…); the cart is "
        "priced and signed again.",
        False,
        _schema(
            {"checkout_id": _ID, "items": _ITEMS, "fulfillment": _FULFILLMENT}, ["checkout_id"]
        ),
    ),
    ToolSpec(
        "get_checkout",
        "A checkout (cs_…): items, totals in minor units, status, messages.",
        True,
        _schema({"checkout_id": _ID}, ["checkout_id"]),
    ),
    ToolSpec(
        "cancel_checkout",
        "Cancel an open checkout (cs_…). Nothing is charged.",
        False,
        _schema({"checkout_id": _ID}, ["checkout_id"]),
    ),
    ToolSpec(
        "complete_checkout",
        "Pay a checkout (cs_…) under the mandate. The answer is the order when paid, or "
        "status requires_confirmation with approval_url: show that link to the user and "
        "poll get_approval; or declined with reasons.",
        False,
        _schema(
            {
                "checkout_id": _ID,
                "mandate": {**_ID, "description": "mnd_…; default: mine"},
                "cart_hash": {
                    "type": "string",
                    "description": "the cart_hash the user was shown; default: the last shown",
                },
            },
            ["checkout_id"],
        ),
    ),
    ToolSpec(
        "get_order",
        "An order (ord_…): items, total in minor units, status, refunds.",
        True,
        _schema({"order_id": _ID}, ["order_id"]),
    ),
    ToolSpec(
        "list_orders",
        "My recent orders, newest first.",
        True,
        _schema({"limit": {"type": "integer", "minimum": 1, "maximum": 50}}),
    ),
    ToolSpec(
        "request_refund",
        "Ask the merchant to refund an order (ord_…) to the wallet that paid; amount in minor "
        "units, omit for the whole remaining amount. Returns a request (rfr_…) that the "
        "merchant approves or declines; nothing moves before that.",
        False,
        _schema(
            {"order_id": _ID, "amount": _AMOUNT, "reason": {"type": "string", "maxLength": 64}},
            ["order_id"],
        ),
    ),
    ToolSpec(
        "get_mandate",
        "The mandate (mnd_…) with its status and what it still allows: amount_left (minor "
        "units) and count_left per budget.",
        True,
        _schema({"mandate_id": {**_ID, "description": "mnd_…; default: mine"}}),
    ),
    ToolSpec(
        "request_mandate",
        "Ask the user for a new mandate. Returns consent_url: the user must open it and "
        "consent; nothing can be paid under it before that.",
        False,
        _schema(
            {
                "user": {**_ID, "description": "usr_…; default: my user"},
                "currency": _CURRENCY,
                "max_amount": {**_AMOUNT, "description": "total budget, minor units"},
                "merchants": {"type": "array", "items": _ID, "maxItems": 20},
                "confirm_above": {**_AMOUNT, "description": "ask the user above this"},
                "conversation_excerpt": {"type": "string", "maxLength": 2000},
            },
            ["currency", "max_amount"],
        ),
    ),
    ToolSpec(
        "get_approval",
        "A payment approval (apr_…): pending, approved, declined, expired or voided.",
        True,
        _schema({"approval_id": _ID}, ["approval_id"]),
    ),
    ToolSpec(
        "pay_merchant",
        "Pay a merchant (mer_…) directly under the mandate: amount in minor units. Status "
        "succeeded, requires_confirmation (with approval_url) or declined (with reasons).",
        False,
        _schema(
            {
                "merchant": _ID,
                "amount": _AMOUNT,
                "currency": _CURRENCY,
                "mandate": {**_ID, "description": "mnd_…; default: mine"},
            },
            ["merchant", "amount", "currency"],
        ),
    ),
    ToolSpec(
        "get_payment",
        "A payment (pay_…): status, amount in minor units, reasons.",
        True,
        _schema({"payment_id": _ID}, ["payment_id"]),
    ),
)
TOOL_NAMES: tuple[str, ...] = tuple(spec.name for spec in SPECS)


@dataclass
class ShoppingTools:
    """The tools bound to one agent's SDK client; ``mandate`` and ``user`` are defaults."""

    client: Client
    mandate: str | None = None
    user: str | None = None
    allowed: frozenset[str] = frozenset(TOOL_NAMES)
    calls: list[tuple[str, Json]] = field(default_factory=list)  # what was asked, in order
    # The cart hash of each checkout as last shown (returned by a tool): completing pays for
    # that cart, so a cart changed behind the user's back fails with cart_hash_mismatch.
    shown_carts: dict[str, str] = field(default_factory=dict)

    def specs(self) -> list[ToolSpec]:
        return [spec for spec in SPECS if spec.name in self.allowed]

    def call(self, name: str, arguments: Mapping[str, Any]) -> Json:
        """Run tool ``name``; raise :class:`Refused` with the server's error, or
        ``KeyError`` for a tool that is not offered."""
        if name not in self.allowed:
            raise Refused(
                {
                    "type": "permission_error",
                    "code": "tool_not_allowed",
                    "message": f"the tool {name!r} is not offered here",
                    "param": None,
                }
            )
        handler: Callable[..., Json] = getattr(self, f"_{name}")
        self.calls.append((name, dict(arguments)))
        try:
            return self._absolute(handler(**arguments))
        except PaywardenError as error:
            found = details(error)
            wire = found.body if found else error.to_wire()
            raise Refused({**wire, "status": found.status if found else error.status}) from None
        except TypeError as error:  # unknown or missing arguments from the model
            raise Refused(
                {
                    "type": "invalid_request_error",
                    "code": "invalid_tool_arguments",
                    "message": str(error),
                    "param": None,
                }
            ) from None

    def _absolute(self, body: Json) -> Json:
        if body.get("object") == "checkout_session" and isinstance(body.get("cart_hash"), str):
            self.shown_carts[str(body["id"])] = body["cart_hash"]
        base = self.client.base_url
        for name in ("approval_url", "url", "consent_url"):
            value = body.get(name)
            if isinstance(value, str) and value.startswith("/"):
                body[name] = base + value
        return body

    def _mandate_id(self, given: str | None) -> str:
        mandate = given or self.mandate
        if not mandate:
            raise Refused(
                {
                    "type": "invalid_request_error",
                    "code": "mandate_missing",
                    "message": "no mandate: request one with request_mandate",
                    "param": "$.mandate",
                }
            )
        return mandate

    # --- the tools (names are ``_`` + the tool's name) -------------------------------------

    def _search_products(
        self,
        query: str,
        merchant: str | None = None,
        max_amount: int | None = None,
        in_stock: bool | None = None,
        limit: int = 10,
    ) -> Json:
        return self.client.products.search(
            query, merchant=merchant, max_amount=max_amount, in_stock=in_stock, limit=limit
        )

    def _get_product(self, product_id: str) -> Json:
        return self.client.products.get(product_id)

    def _create_checkout(
        self, merchant: str, items: list[Json], fulfillment: Json | None = None
    ) -> Json:
        body = {"merchant": merchant, "line_items": items, "fulfillment": fulfillment}
        return self.client.checkout_sessions.create({k: v for k, v in body.items() if v})

    def _update_checkout(
        self, checkout_id: str, items: list[Json] | None = None, fulfillment: Json | None = None
    ) -> Json:
        body = {"line_items": items, "fulfillment": fulfillment}
        return self.client.checkout_sessions.update(
            checkout_id, {k: v for k, v in body.items() if v is not None}
        )

    def _get_checkout(self, checkout_id: str) -> Json:
        return self.client.checkout_sessions.get(checkout_id)

    def _cancel_checkout(self, checkout_id: str) -> Json:
        return self.client.checkout_sessions.cancel(checkout_id)

    def _complete_checkout(
        self, checkout_id: str, mandate: str | None = None, cart_hash: str | None = None
    ) -> Json:
        shown = cart_hash or self.shown_carts.get(checkout_id)
        if shown is None:
            shown = str(self.client.checkout_sessions.get(checkout_id).get("cart_hash") or "")
        body = {"mandate": self._mandate_id(mandate), "cart_hash": shown}
        return self.client.checkout_sessions.complete(checkout_id, body)

    def _get_order(self, order_id: str) -> Json:
        return self.client.orders.get(order_id)

    def _list_orders(self, limit: int = 10) -> Json:
        return self.client.orders.list(limit=limit)

    def _request_refund(
        self, order_id: str, amount: int | None = None, reason: str | None = None
    ) -> Json:
        return self.client.orders.request_refund(
            order_id, amount=amount, reason=reason or "requested by the user"
        )

    def _get_mandate(self, mandate_id: str | None = None) -> Json:
        return self.client.mandates.get(self._mandate_id(mandate_id))

    def _request_mandate(
        self,
        currency: str,
        max_amount: int,
        user: str | None = None,
        merchants: list[str] | None = None,
        confirm_above: int | None = None,
        conversation_excerpt: str | None = None,
    ) -> Json:
        constraints: list[Json] = [
            {"type": "payment.budget", "currency": currency.lower(), "max": max_amount}
        ]
        if merchants:
            constraints.append({"type": "payment.allowed_payees", "allowed": list(merchants)})
        if confirm_above is not None:
            constraints.append(
                {
                    "type": "paywarden.confirmation_threshold",
                    "currency": currency.lower(),
                    "above": confirm_above,
                }
            )
        return self.client.mandates.request(
            user=user or self.user or "",
            currency=currency,
            constraints=constraints,
            conversation_excerpt=conversation_excerpt,
        )

    def _get_approval(self, approval_id: str) -> Json:
        return self.client.approvals.get(approval_id)

    def _pay_merchant(
        self, merchant: str, amount: int, currency: str, mandate: str | None = None
    ) -> Json:
        return self.client.payments.create(
            mandate=self._mandate_id(mandate), merchant=merchant, amount=amount, currency=currency
        )

    def _get_payment(self, payment_id: str) -> Json:
        return self.client.payments.get(payment_id)
