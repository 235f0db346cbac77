"""Refund requests (:mod:`paywarden.services.refund_requests`): the agent asks, the merchant
decides.

- ``POST /v1/orders/{id}/refund_requests`` (the order's own agent, signed: ``{"amount"?,
  "reason"}``): 201 with a ``refund_request`` in status ``requested``; nothing moves yet.
- ``GET /v1/orders/{id}/refund_requests``: the order's requests, for its parties.
- ``GET /v1/refund_requests/{id}``: the request, for the merchant, the agent, the user.
- ``POST /v1/refund_requests/{id}/approve`` | ``/decline`` (the merchant or an admin):
  approving refunds to the wallet that paid, at once; a decided request is a 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictStr

from paywarden.api import schemas as s
from paywarden.api.http import (
    body_docs,
    post,
    read_json,
)
from paywarden.kernel.principals import Principal
from paywarden.services import refund_requests
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
_TAGS: list[str | Any] = ["orders"]


class RefundRequestIn(s.Body):
    amount: s.AmountField | None = None
    reason: StrictStr = Field(max_length=64, description="why the user wants the money back")


def _render(status: int) -> Callable[[refund_requests.RefundRequest], tuple[int, dict[str, Any]]]:
    return lambda record: (status, refund_requests.wire_refund_request(record))


@router.post(
    "/v1/orders/{order_id}/refund_requests",
    status_code=201,
    openapi_extra=body_docs(RefundRequestIn),
    tags=_TAGS,
)
async def request_refund(request: Request, order_id: str) -> Response:
    """The order's agent asks for a refund to the wallet that paid; the merchant decides."""

    def work(uow: UnitOfWork, p: Principal, b: RefundRequestIn) -> Any:
        return refund_requests.request(uow, p, order_id, amount=b.amount, reason=b.reason)

    return await post(request, RefundRequestIn, work, render=_render(201), allow_agents=True)


async def _read(request: Request, work: Callable[[UnitOfWork, Principal], Any]) -> Response:
    return await read_json(request, work, allow_agents=True)


@router.get("/v1/orders/{order_id}/refund_requests", tags=_TAGS)
async def list_refund_requests(request: Request, order_id: str) -> Response:
    """The order's refund requests, oldest first."""

    def work(uow: UnitOfWork, p: Principal) -> dict[str, Any]:
        found = refund_requests.list_for_order(uow, p, order_id)
        data = [refund_requests.wire_refund_request(r) for r in found]
        return {"object": "list", "data": data, "has_more": False}

    return await _read(request, work)


@router.get("/v1/refund_requests/{refund_request_id}", tags=_TAGS)
async def get_refund_request(request: Request, refund_request_id: str) -> Response:
    return await _read(
        request,
        lambda uow, p: refund_requests.wire_refund_request(
            refund_requests.get(uow, p, refund_request_id)
        ),
    )


@router.post(
    "/v1/refund_requests/{refund_request_id}/approve",
    openapi_extra=body_docs(s.Empty),
    tags=_TAGS,
)
async def approve_refund_request(request: Request, refund_request_id: str) -> Response:
    """The merchant approves: the refund is made now, to the wallet that paid."""

    def work(uow: UnitOfWork, p: Principal, _b: s.Empty) -> Any:
        return refund_requests.decide(uow, p, refund_request_id, approve=True)

    return await post(request, s.Empty, work, render=_render(200))


@router.post(
    "/v1/refund_requests/{refund_request_id}/decline",
    openapi_extra=body_docs(s.Empty),
    tags=_TAGS,
)
async def decline_refund_request(request: Request, refund_request_id: str) -> Response:
    """The merchant declines: nothing moves."""

    def work(uow: UnitOfWork, p: Principal, _b: s.Empty) -> Any:
        return refund_requests.decide(uow, p, refund_request_id, approve=False)

    return await post(request, s.Empty, work, render=_render(200))
