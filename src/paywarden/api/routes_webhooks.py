"""Webhook endpoints, events, deliveries and re-sends.

- ``POST /v1/webhook_endpoints`` (admin, user, merchant, platform): register; the answer
  carries ``secret_key`` (``whsec_…``) once. ``GET`` list / one, ``POST …/{id}`` update,
  ``DELETE …/{id}``, ``POST …/{id}/rotate_secret`` (the old secret keeps signing beside the
  new one for ``expire_previous_in_s``).
- ``GET /v1/events`` (the caller's own events, newest first; ``type`` filters, ``order.*``
  too), ``GET /v1/events/{id}``, ``POST /v1/events/{id}/resend``,
  ``POST /v1/events/trigger`` (a sample event, test mode).
- ``GET /v1/webhook_endpoints/{id}/deliveries`` and ``GET /v1/events/{id}/deliveries``: the
  delivery log; ``GET /v1/webhook_deliveries/{id}`` one delivery with its attempts;
  ``POST /v1/webhook_deliveries/{id}/resend`` (also for dead ones).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import authenticated, body_docs, json_response, post, refuse_nul, runtime
from paywarden.kernel.principals import Principal
from paywarden.services import webhook_delivery, webhooks
from paywarden.services.records import Page
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.worker.delivery import retry_policy

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])
DISPATCH_BATCHES_MAX = 50
Limit = Query(None, ge=1, le=100, description="page size, 1 to 100 (default 10)")
After = Query(None, max_length=40, description="id of the last item of the previous page")
Before = Query(None, max_length=40, description="only items newer than this id")


class EndpointCreate(s.Body):
    url: StrictStr = Field(max_length=2048, description="http(s); loopback in test mode")
    enabled_events: list[StrictStr] = Field(
        default_factory=lambda: ["*"], description="event types, `resource.*`, or `*`"
    )
    format: StrictStr = Field("standard", description="standard (Standard Webhooks) or acp")
    description: StrictStr | None = Field(None, max_length=500)


class EndpointUpdate(s.Body):
    url: StrictStr | None = Field(None, max_length=2048)
    enabled_events: list[StrictStr] | None = None
    description: StrictStr | None = Field(None, max_length=500)
    status: StrictStr | None = Field(None, description="enabled or disabled")


class RotateSecret(s.Body):
    expire_previous_in_s: StrictInt = Field(
        webhooks.OVERLAP_S_DEFAULT, description="how long the old secret keeps signing too"
    )


class EventResend(s.Body):
    endpoint: StrictStr | None = Field(None, max_length=40, description="one endpoint only")


class EventTrigger(s.Body):
    type: StrictStr = Field(max_length=64, description="the event type to sample")


def _ok(status: int) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    return lambda body: (status, _render(body))


def _render(result: Any) -> dict[str, Any]:
    if isinstance(result, Page):
        data = list(result.items)
        return {
            "object": "list",
            "data": data,
            "has_more": result.has_more,
            "next_cursor": data[-1]["id"] if result.has_more and data else None,
        }
    return dict(result)


async def _get(
    request: Request, work: Callable[[UnitOfWork, Principal], Any], *, dispatch: bool = False
) -> Response:
    """A GET for any principal but agents; ``dispatch`` first indexes new events, so the
    caller sees its events at once even when no worker runs."""
    principal, version = await authenticated(request)
    refuse_nul(request)
    rt = runtime(request)
    if dispatch:
        policy = retry_policy(rt.settings)
        for _batch in range(DISPATCH_BATCHES_MAX):  # a backlog is indexed on first read
            if not await run_in_threadpool(
                rt.store.run, lambda uow: webhook_delivery.fan_out(uow, policy)
            ):
                break
    body = await run_in_threadpool(rt.store.run, lambda uow: work(uow, principal), read_only=True)
    return json_response(200, json.dumps(_render(body)), version=version)


# --- endpoints ------------------------------------------------------------------------------


@router.post("/v1/webhook_endpoints", status_code=201, openapi_extra=body_docs(EndpointCreate))
async def create_endpoint(request: Request) -> Response:
    """Register a webhook endpoint; its signing secret is in this answer only."""
    rt = runtime(request)

    def work(uow: UnitOfWork, p: Principal, b: EndpointCreate) -> Any:
        return webhooks.create_endpoint(
            uow,
            p,
            url=b.url,
            event_types=b.enabled_events,
            endpoint_format=b.format,
            description=b.description,
            master_key=rt.master_key,
        )

    return await post(request, EndpointCreate, work, render=_ok(201))


@router.get("/v1/webhook_endpoints")
async def list_endpoints(
    request: Request, limit: int | None = Limit, starting_after: str | None = After
) -> Response:
    """The caller's endpoints (an admin: every endpoint of its mode), newest first."""
    return await _get(
        request,
        lambda uow, p: webhooks.list_endpoints(uow, p, limit=limit, starting_after=starting_after),
    )


@router.get("/v1/webhook_endpoints/{endpoint_id}")
async def get_endpoint(request: Request, endpoint_id: str) -> Response:
    """One of the caller's endpoints."""
    return await _get(request, lambda uow, p: webhooks.get_endpoint(uow, p, endpoint_id))


@router.post("/v1/webhook_endpoints/{endpoint_id}", openapi_extra=body_docs(EndpointUpdate))
async def update_endpoint(request: Request, endpoint_id: str) -> Response:
    """Change the URL, event types, description, or enable/disable."""

    def work(uow: UnitOfWork, p: Principal, b: EndpointUpdate) -> Any:
        return webhooks.update_endpoint(
            uow,
            p,
            endpoint_id,
            url=b.url,
            event_types=b.enabled_events,
            description=b.description,
            status=b.status,
        )

    return await post(request, EndpointUpdate, work, render=_ok(200))


@router.delete("/v1/webhook_endpoints/{endpoint_id}")
async def delete_endpoint(request: Request, endpoint_id: str) -> Response:
    """Remove the endpoint; pending deliveries to it are canceled."""
    principal, version = await authenticated(request)
    refuse_nul(request)
    store = runtime(request).store
    body = await run_in_threadpool(
        store.run, lambda uow: webhooks.delete_endpoint(uow, principal, endpoint_id)
    )
    return json_response(200, json.dumps(body), version=version)


@router.post(
    "/v1/webhook_endpoints/{endpoint_id}/rotate_secret", openapi_extra=body_docs(RotateSecret)
)
async def rotate_secret(request: Request, endpoint_id: str) -> Response:
    """A new signing secret (shown once); the old one signs beside it for the overlap."""
    rt = runtime(request)

    def work(uow: UnitOfWork, p: Principal, b: RotateSecret) -> Any:
        return webhooks.rotate_secret(
            uow, p, endpoint_id, overlap_s=b.expire_previous_in_s, master_key=rt.master_key
        )

    return await post(request, RotateSecret, work, render=_ok(200))


@router.get("/v1/webhook_endpoints/{endpoint_id}/deliveries")
async def endpoint_deliveries(
    request: Request,
    endpoint_id: str,
    limit: int | None = Limit,
    starting_after: str | None = After,
) -> Response:
    """The endpoint's delivery log, newest first."""
    return await _get(
        request,
        lambda uow, p: webhooks.list_deliveries(
            uow, p, endpoint_id=endpoint_id, limit=limit, starting_after=starting_after
        ),
    )


# --- events ---------------------------------------------------------------------------------


@router.get("/v1/events")
async def list_events(
    request: Request,
    type: str | None = Query(None, max_length=64, description="a type or `resource.*`"),
    limit: int | None = Limit,
    starting_after: str | None = After,
    ending_before: str | None = Before,
) -> Response:
    """The caller's events (about its own objects), newest first."""
    return await _get(
        request,
        lambda uow, p: webhooks.list_events(
            uow,
            p,
            event_type=type,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        ),
        dispatch=True,
    )


@router.post("/v1/events/trigger", status_code=201, openapi_extra=body_docs(EventTrigger))
async def trigger_event(request: Request) -> Response:
    """Emit a sample event of a type (test mode) that reaches only the caller's endpoints."""

    def work(uow: UnitOfWork, p: Principal, b: EventTrigger) -> Any:
        return webhooks.trigger(uow, p, b.type)

    return await post(request, EventTrigger, work, render=_ok(201))


@router.get("/v1/events/{event_id}")
async def get_event(request: Request, event_id: str) -> Response:
    """One of the caller's events."""
    return await _get(request, lambda uow, p: webhooks.get_event(uow, p, event_id), dispatch=True)


@router.get("/v1/events/{event_id}/deliveries")
async def event_deliveries(
    request: Request, event_id: str, limit: int | None = Limit, starting_after: str | None = After
) -> Response:
    """Where the event went among the caller's endpoints."""
    return await _get(
        request,
        lambda uow, p: webhooks.list_deliveries(
            uow, p, event_id=event_id, limit=limit, starting_after=starting_after
        ),
        dispatch=True,
    )


@router.post("/v1/events/{event_id}/resend", openapi_extra=body_docs(EventResend))
async def resend_event(request: Request, event_id: str) -> Response:
    """Send the event again now: to one endpoint, or to every endpoint that had it."""
    policy = retry_policy(runtime(request).settings)

    def work(uow: UnitOfWork, p: Principal, b: EventResend) -> Any:
        return webhooks.resend_event(uow, p, event_id, b.endpoint, policy)

    return await post(request, EventResend, work, render=_ok(200))


# --- deliveries -----------------------------------------------------------------------------


@router.get("/v1/webhook_deliveries/{delivery_id}")
async def get_delivery(request: Request, delivery_id: str) -> Response:
    """One delivery with its attempts: status code, latency, error, response excerpt."""
    return await _get(request, lambda uow, p: webhooks.get_delivery(uow, p, delivery_id))


@router.post("/v1/webhook_deliveries/{delivery_id}/resend", openapi_extra=body_docs(s.Empty))
async def resend_delivery(request: Request, delivery_id: str) -> Response:
    """Send again now, with a fresh retry window (delivered and dead ones too)."""
    policy = retry_policy(runtime(request).settings)

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return webhooks.resend_delivery(uow, p, delivery_id, policy)

    return await post(request, s.Empty, work, render=_ok(200))
