"""Native checkout sessions and orders.

- ``POST /v1/checkout_sessions`` (agent, signed): a priced, merchant-signed session (201).
  ``POST /v1/checkout_sessions/{id}`` changes lines, fulfillment or buyer (a new priced
  state); ``…/complete`` pays it under a mandate with the ``cart_hash`` the user saw (the same
  payment service as ``POST /v1/payments``); ``…/cancel``. Only the session's agent.
- ``POST /v1/checkout_sessions/{id}/signature`` (the merchant, when it signs with its own
  key): attach its ES256 JWS over the current ``cart_hash``.
- ``GET /v1/checkout_sessions/{id}`` and ``GET /v1/checkout_sessions``: the agent, the
  merchant, the user whose wallet paid, an admin; anyone else gets 404.
- ``GET /v1/orders`` (the merchant's, the user's or the agent's), ``GET /v1/orders/{id}``;
  ``POST /v1/orders/{id}`` (the merchant: ``{"status": …}``, 409 for a move the lifecycle
  forbids); ``POST /v1/orders/{id}/refunds`` (the merchant or an admin: ``{"amount"?,
  "reason"}``, to the original wallet, never more than captured);
  ``GET /v1/orders/{id}/evidence`` (the merchant, the user or an admin): the dispute bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field, StrictInt, StrictStr

from paywarden.api import schemas as s
from paywarden.api.http import (
    body_docs,
    post,
    read_json,
    runtime,
)
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.principals import Principal
from paywarden.services import approvals, checkout, orders
from paywarden.services.records import Page
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
_CHECKOUT: list[Any] = ["checkout"]
_ORDERS: list[Any] = ["orders"]
Limit = Query(None, ge=1, le=100, description="page size, 1 to 100 (default 10)")
After = Query(None, max_length=40, description="id of the last item of the previous page")


class LineIn(s.Body):
    item: StrictStr = Field(max_length=64, description="a prd_ id or the merchant's sku")
    quantity: StrictInt = Field(description="units, 1 to 1000")
    options: dict[str, StrictStr] = Field(
        default_factory=dict, description="option group name -> chosen value"
    )
    variant: StrictStr | None = Field(None, max_length=64, description="var_ id or variant sku")


class FulfillmentIn(s.Body):
    option_id: StrictStr = Field(max_length=64, description="one of the fulfillment_options")
    pickup_at: StrictStr | None = Field(None, max_length=40, description="RFC 3339, pickup only")


class SessionCreate(s.Body):
    merchant: StrictStr = Field(max_length=40)
    line_items: list[LineIn] = Field(max_length=100)
    fulfillment: FulfillmentIn | None = None
    fulfillment_details: dict[str, Any] | None = Field(
        None, description="contact and address (name, phone_number, email, address)"
    )
    buyer: dict[str, Any] | None = None


class SessionUpdate(s.Body):
    line_items: list[LineIn] | None = Field(None, max_length=100)
    fulfillment: FulfillmentIn | None = None
    fulfillment_details: dict[str, Any] | None = None
    buyer: dict[str, Any] | None = None


class SessionComplete(s.Body):
    mandate: StrictStr = Field(max_length=40)
    cart_hash: StrictStr = Field(max_length=100, description="the cart hash shown to the user")


class SignatureIn(s.Body):
    cart_hash: StrictStr = Field(max_length=100)
    signature: StrictStr = Field(max_length=2000, description="ES256 compact JWS")


class OrderUpdate(s.Body):
    status: StrictStr = Field(max_length=32)


class RefundIn(s.Body):
    amount: s.AmountField | None = None
    reason: StrictStr = Field(max_length=64)


def _lines(lines: list[LineIn]) -> list[LineRequest]:
    return [LineRequest(li.item, li.quantity, dict(li.options), li.variant) for li in lines]


def _session(status: int) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    return lambda record: (status, checkout.wire_checkout(record))


def _dump(model: Any) -> dict[str, Any] | None:
    return model.model_dump() if model is not None else None


async def _get(
    request: Request, work: Callable[[UnitOfWork, Principal], dict[str, Any]]
) -> Response:
    return await read_json(request, work, allow_agents=True)


def _page(page: Page, url: str, render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    data = [render(item) for item in page.items]
    return {
        "object": "list",
        "url": url,
        "data": data,
        "has_more": page.has_more,
        "next_cursor": data[-1]["id"] if page.has_more and data else None,
    }


# --- checkout sessions ---------------------------------------------------------------------


@router.post(
    "/v1/checkout_sessions",
    status_code=201,
    openapi_extra=body_docs(SessionCreate),
    tags=_CHECKOUT,
)
async def create_session(request: Request) -> Response:
    """An agent opens a checkout session with a merchant. Agent (signed) only."""
    rt = runtime(request)

    def work(uow: UnitOfWork, p: Principal, b: SessionCreate) -> Any:
        return checkout.create(
            uow,
            p,
            merchant_id=b.merchant,
            items=_lines(b.line_items),
            fulfillment=_dump(b.fulfillment),
            buyer=b.buyer,
            master_key=rt.master_key,
            fulfillment_details=b.fulfillment_details,
        )

    return await post(request, SessionCreate, work, render=_session(201), allow_agents=True)


@router.get("/v1/checkout_sessions", tags=_CHECKOUT)
async def list_sessions(
    request: Request, limit: int | None = Limit, starting_after: str | None = After
) -> Response:
    """Checkout sessions of the agent, the merchant or the user; newest first."""
    return await _get(
        request,
        lambda uow, p: _page(
            checkout.list_sessions(uow, p, limit=limit, starting_after=starting_after),
            request.url.path,
            checkout.wire_checkout,
        ),
    )


@router.get("/v1/checkout_sessions/{session_id}", tags=_CHECKOUT)
async def get_session(request: Request, session_id: str) -> Response:
    """The session: its agent, its merchant, the paying user or an admin."""
    return await _get(
        request, lambda uow, p: checkout.wire_checkout(checkout.get(uow, p, session_id))
    )


@router.post(
    "/v1/checkout_sessions/{session_id}",
    openapi_extra=body_docs(SessionUpdate),
    tags=_CHECKOUT,
)
async def update_session(request: Request, session_id: str) -> Response:
    """Change lines, fulfillment, its details or the buyer: a new priced, signed cart."""
    rt = runtime(request)

    def work(uow: UnitOfWork, p: Principal, b: SessionUpdate) -> Any:
        return checkout.update(
            uow,
            p,
            session_id,
            items=_lines(b.line_items) if b.line_items is not None else None,
            fulfillment=_dump(b.fulfillment),
            buyer=b.buyer,
            master_key=rt.master_key,
            fulfillment_details=b.fulfillment_details,
        )

    return await post(request, SessionUpdate, work, render=_session(200), allow_agents=True)


@router.post(
    "/v1/checkout_sessions/{session_id}/complete",
    openapi_extra=body_docs(SessionComplete),
    tags=_CHECKOUT,
)
async def complete_session(request: Request, session_id: str) -> Response:
    """Pay under a mandate for the cart the user saw (``cart_hash``): ``completed`` with an
    order, ``pending_approval`` (the user must approve), or payable again with a
    ``payment_declined`` message."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, p: Principal, b: SessionComplete) -> Any:
        return checkout.complete(
            uow,
            p,
            session_id,
            mandate_id=b.mandate,
            cart_hash=b.cart_hash,
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
            approval=approvals.ApprovalPolicy(
                rt.settings.approval_ttl_s, rt.settings.approval_reauth_above
            ),
        )

    return await post(request, SessionComplete, work, render=_session(200), allow_agents=True)


@router.post(
    "/v1/checkout_sessions/{session_id}/cancel",
    openapi_extra=body_docs(s.Empty),
    tags=_CHECKOUT,
)
async def cancel_session(request: Request, session_id: str) -> Response:
    """Cancel the session; a pending approval is voided and held stock released."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return checkout.cancel(uow, p, session_id)

    return await post(request, s.Empty, work, render=_session(200), allow_agents=True)


@router.post(
    "/v1/checkout_sessions/{session_id}/signature",
    openapi_extra=body_docs(SignatureIn),
    tags=_CHECKOUT,
)
async def sign_session(request: Request, session_id: str) -> Response:
    """A merchant with its own cart key attaches its signature over the current cart hash."""

    def work(uow: UnitOfWork, p: Principal, b: SignatureIn) -> Any:
        return checkout.attach_signature(
            uow, p, session_id, cart_hash=b.cart_hash, signature=b.signature
        )

    return await post(request, SignatureIn, work, render=_session(200))


# --- orders --------------------------------------------------------------------------------


@router.get("/v1/orders", tags=_ORDERS)
async def list_orders(
    request: Request,
    limit: int | None = Limit,
    starting_after: str | None = After,
    status: str | None = Query(None, max_length=32),
) -> Response:
    """Orders of the merchant, the user or the agent; newest first."""
    return await _get(
        request,
        lambda uow, p: _page(
            orders.list_orders(uow, p, limit=limit, starting_after=starting_after, status=status),
            request.url.path,
            orders.wire_order,
        ),
    )


@router.get("/v1/orders/{order_id}", tags=_ORDERS)
async def get_order(request: Request, order_id: str) -> Response:
    """The order: its merchant, user, agent or an admin."""
    return await _get(request, lambda uow, p: orders.wire_order(orders.get(uow, p, order_id)))


@router.post("/v1/orders/{order_id}", openapi_extra=body_docs(OrderUpdate), tags=_ORDERS)
async def update_order(request: Request, order_id: str) -> Response:
    """The merchant moves the order on: confirmed, preparing, ready_for_pickup,
    out_for_delivery, shipped, completed, or canceled (which refunds what remains)."""

    def work(uow: UnitOfWork, p: Principal, b: OrderUpdate) -> Any:
        return orders.update_status(uow, p, order_id, b.status)

    return await post(request, OrderUpdate, work, render=lambda r: (200, orders.wire_order(r)))


@router.post(
    "/v1/orders/{order_id}/refunds",
    status_code=201,
    openapi_extra=body_docs(RefundIn),
    tags=_ORDERS,
)
async def refund_order(request: Request, order_id: str) -> Response:
    """Refund all that remains, or ``amount``, with a reason, to the wallet that paid."""

    def work(uow: UnitOfWork, p: Principal, b: RefundIn) -> Any:
        return orders.refund(uow, p, order_id, amount=b.amount, reason=b.reason)

    return await post(request, RefundIn, work, render=lambda r: (201, orders.wire_refund(r)))


@router.get("/v1/orders/{order_id}/evidence", tags=_ORDERS)
async def order_evidence(request: Request, order_id: str) -> Response:
    """The dispute evidence bundle: mandate and consent, approval, signed cart, receipt,
    audit records, events and webhook deliveries, as one JSON document."""
    return await _get(request, lambda uow, p: orders.evidence(uow, p, order_id))
