"""The Agentic Commerce Protocol (ACP 2026-04-17) checkout face.

Every merchant is served under its own base URL ``/acp/{merchant_id}``:

- ``POST /checkout_sessions`` (201), ``POST /checkout_sessions/{id}`` (update),
  ``GET /checkout_sessions/{id}``, ``POST /checkout_sessions/{id}/complete``,
  ``POST /checkout_sessions/{id}/cancel`` (405 when it can no longer be canceled);
- discovery: ``GET /.well-known/acp.json`` (all merchants' base URLs) and
  ``GET /acp/{merchant_id}/.well-known/acp.json`` (one merchant's, spec-exact).

The native routes ACP needs: ``POST /v1/agents/{id}/acp_tokens`` (its platform or an admin
issues the agent's bearer token; ``…/acp_tokens/{token_id}/revoke``), and
``POST /v1/mandates/{id}/delegated_tokens`` (the signed agent mints a one-time ``dlg_`` token
for one checkout). See docs/acp.md. The ACP face and the native API are two faces of the same
services (:mod:`paywarden.services.checkout`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictInt
from starlette.concurrency import run_in_threadpool

from paywarden.api import acp_render
from paywarden.api import schemas as s
from paywarden.api.acp_http import acp_get, acp_post, base_url
from paywarden.api.acp_models import (
    CancelRequest,
    CompleteRequest,
    CreateRequest,
    Item,
    UpdateRequest,
)
from paywarden.api.http import body_docs, post, runtime
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, PaywardenError
from paywarden.kernel.principals import Principal
from paywarden.services import (
    acp_checkout,
    acp_discovery,
    agent_tokens,
    approvals,
    checkout,
    delegated,
)
from paywarden.services.checkout import CheckoutRecord
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
_TAGS: list[str | Any] = ["acp"]
_BASE = "/acp/{merchant_id}/checkout_sessions"
_LINE_ITEM = re.compile(r"^\$\.line_items\[(\d+)\]\.item$")
Result = tuple[int, dict[str, Any]]
# 3-D Secure outcomes that let a payment go ahead; any other reported outcome declines it.
AUTHENTICATED = frozenset({"authenticated", "attempt_acknowledged", "informational"})


class NotCancelable(Conflict):
    """ACP answers a cancel of a completed or canceled session with 405."""

    status = 405


def _acp_error(error: PaywardenError) -> PaywardenError:
    """A service error in ACP's terms: an unknown item is ``invalid_item_id`` at the item's
    id (as ACP's example names it), and native JSON paths become the ACP request's."""
    found = _LINE_ITEM.match(error.param or "")
    if isinstance(error, NotFound) and found:
        return InvalidRequest(
            error.message, code="invalid_item_id", param=f"$.line_items[{found[1]}].item.id"
        )
    param = acp_render.acp_param(error.param)
    if param != error.param:
        error.param = param
    return error


def _lines(items: list[Item]) -> list[LineRequest]:
    return [LineRequest(item=item.id, quantity=item.quantity) for item in items]


def _dump(model: Any) -> dict[str, Any] | None:
    return model.model_dump(exclude_none=True) if model is not None else None


def _session(status: int, record: CheckoutRecord, request: Request) -> Result:
    return status, acp_render.session_body(record, base_url(request))


@router.post(_BASE, status_code=201, openapi_extra=body_docs(CreateRequest), tags=_TAGS)
async def create_session(request: Request, merchant_id: str) -> Response:
    """ACP createCheckoutSession: a priced, merchant-signed session (201)."""
    master_key = runtime(request).master_key

    def work(uow: UnitOfWork, p: Principal, b: CreateRequest) -> Result:
        try:
            record = checkout.create(
                uow,
                p,
                merchant_id=merchant_id,
                items=_lines(b.line_items),
                fulfillment=None,
                buyer=_dump(b.buyer),
                master_key=master_key,
                fulfillment_details=_dump(b.fulfillment_details),
            )
        except PaywardenError as error:
            raise _acp_error(error) from None
        if b.currency.lower() != record.currency:
            raise InvalidRequest(
                f"this merchant sells in {record.currency}, not {b.currency}",
                code="unsupported_currency",
                param="$.currency",
            )
        return _session(201, record, request)

    return await acp_post(request, CreateRequest, work)


@router.post(_BASE + "/{session_id}", openapi_extra=body_docs(UpdateRequest), tags=_TAGS)
async def update_session(request: Request, merchant_id: str, session_id: str) -> Response:
    """ACP updateCheckoutSession: new items, buyer, fulfillment details or option."""
    master_key = runtime(request).master_key

    def work(uow: UnitOfWork, p: Principal, b: UpdateRequest) -> Result:
        acp_checkout.session_of_merchant(uow, p, merchant_id, session_id)
        selected = b.selected_fulfillment_options
        try:
            record = checkout.update(
                uow,
                p,
                session_id,
                items=_lines(b.line_items) if b.line_items is not None else None,
                fulfillment={"option_id": selected[0].option_id} if selected else None,
                buyer=_dump(b.buyer),
                master_key=master_key,
                fulfillment_details=_dump(b.fulfillment_details),
            )
        except PaywardenError as error:
            raise _acp_error(error) from None
        return _session(200, record, request)

    return await acp_post(request, UpdateRequest, work)


@router.get(_BASE + "/{session_id}", tags=_TAGS)
async def get_session(request: Request, merchant_id: str, session_id: str) -> Response:
    """ACP getCheckoutSession: the session's latest state."""

    def work(uow: UnitOfWork, p: Principal) -> Result:
        record = acp_checkout.session_of_merchant(uow, p, merchant_id, session_id)
        return _session(200, record, request)

    return await acp_get(request, work)


@router.post(_BASE + "/{session_id}/complete", openapi_extra=body_docs(CompleteRequest), tags=_TAGS)
async def complete_session(request: Request, merchant_id: str, session_id: str) -> Response:
    """ACP completeCheckoutSession, paid with a one-time delegated token (see docs/acp.md)."""
    rt = runtime(request)
    issuer = base_url(request)
    policy = approvals.ApprovalPolicy(rt.settings.approval_ttl_s, rt.settings.approval_reauth_above)

    def work(uow: UnitOfWork, p: Principal, b: CompleteRequest) -> Result:
        token = _token(b)
        outcome_3ds = b.authentication_result.outcome if b.authentication_result else None
        if outcome_3ds is not None and outcome_3ds not in AUTHENTICATED:
            record = acp_checkout.session_of_merchant(uow, p, merchant_id, session_id)
            declined = acp_render.declined_message(f"authentication {outcome_3ds}")
            body = acp_render.session_body(record, issuer, extra_messages=[declined])
            return 200, body
        outcome = acp_checkout.complete_with_token(
            uow,
            p,
            merchant_id,
            session_id,
            token=token,
            cart_hash=b.metadata.cart_hash if b.metadata else None,
            buyer=_dump(b.buyer),
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
            approval=policy,
        )
        if isinstance(outcome, PaywardenError):  # the token's refusal, committed with its audit
            return outcome.status, acp_render.error_body(outcome)
        return _session(200, outcome, request)

    return await acp_post(request, CompleteRequest, work)


def _token(body: CompleteRequest) -> str:
    data = body.payment_data
    if data.handler_id != acp_render.HANDLER_ID or data.instrument is None:
        raise InvalidRequest(
            f"paywarden takes payment_data with handler_id {acp_render.HANDLER_ID!r} and an "
            f"instrument whose credential is a {acp_render.CREDENTIAL_TYPE} (dlg_…)",
            code="unsupported_payment_handler",
            param="$.payment_data.handler_id",
        )
    credential = data.instrument.credential
    if credential.type != acp_render.CREDENTIAL_TYPE:
        raise InvalidRequest(
            f"the credential type is {acp_render.CREDENTIAL_TYPE!r}",
            code="unsupported_credential",
            param="$.payment_data.instrument.credential.type",
        )
    return credential.token


@router.post(_BASE + "/{session_id}/cancel", openapi_extra=body_docs(CancelRequest), tags=_TAGS)
async def cancel_session(request: Request, merchant_id: str, session_id: str) -> Response:
    """ACP cancelCheckoutSession (405 once completed, canceled or expired)."""

    def work(uow: UnitOfWork, p: Principal, b: CancelRequest) -> Result:
        acp_checkout.session_of_merchant(uow, p, merchant_id, session_id)
        try:
            record = checkout.cancel(uow, p, session_id)
        except Conflict as error:
            raise NotCancelable(error.message, code=error.code) from None
        return _session(200, record, request)

    return await acp_post(request, CancelRequest, work)


# --- discovery -----------------------------------------------------------------------------


def _discovery(api_base_url: str) -> dict[str, Any]:
    return {
        "protocol": {
            "name": "acp",
            "version": acp_render.VERSION,
            "supported_versions": list(acp_render.SUPPORTED_VERSIONS),
            "documentation_url": "https://agenticcommerce.dev",
        },
        "api_base_url": api_base_url,
        "transports": ["rest"],
        "capabilities": {"services": ["checkout"]},
    }


def _public(body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/.well-known/acp.json", tags=_TAGS)
async def discovery(request: Request) -> Response:
    """Public: the ACP version(s) and every merchant's base URL (``merchants``)."""
    base = base_url(request)
    listed = await run_in_threadpool(
        runtime(request).store.run, acp_discovery.listed_merchants, read_only=True
    )
    body = _discovery(f"{base}/acp")
    body["merchants"] = [
        {
            "id": m.id,
            "name": m.name,
            "currency": m.currency,
            "livemode": m.livemode,
            "api_base_url": f"{base}/acp/{m.id}",
        }
        for m in listed
    ]
    return _public(body)


@router.get("/acp/{merchant_id}/.well-known/acp.json", tags=_TAGS)
async def merchant_discovery(request: Request, merchant_id: str) -> Response:
    """Public: one merchant's ACP discovery document, exactly as ACP defines it."""
    return _public(_discovery(f"{base_url(request)}/acp/{merchant_id}"))


# --- the native routes ACP needs -----------------------------------------------------------


class AcpTokenCreate(s.Body):
    ttl_days: StrictInt | None = Field(None, description="days until it expires; none: never")


class DelegatedTokenCreate(s.Body):
    allowance: dict[str, Any] = Field(
        description="reason one_time, max_amount, currency, checkout_session_id, merchant_id, "
        "expires_at (at most 24 h ahead; 15 min when absent)"
    )


@router.post(
    "/v1/agents/{agent_id}/acp_tokens",
    status_code=201,
    openapi_extra=body_docs(AcpTokenCreate),
    tags=_TAGS,
)
async def issue_acp_token(request: Request, agent_id: str) -> Response:
    """The agent's platform (or an admin) issues it an ACP bearer token, shown once."""

    def work(uow: UnitOfWork, p: Principal, b: AcpTokenCreate) -> Any:
        return agent_tokens.issue(uow, p, agent_id, ttl_days=b.ttl_days)

    return await post(
        request, AcpTokenCreate, work, render=lambda t: (201, agent_tokens.wire_token(t))
    )


@router.post(
    "/v1/agents/{agent_id}/acp_tokens/{token_id}/revoke",
    openapi_extra=body_docs(s.Empty),
    tags=_TAGS,
)
async def revoke_acp_token(request: Request, agent_id: str, token_id: str) -> Response:
    """Revoke one of the agent's ACP tokens, at once (its platform or an admin)."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return agent_tokens.revoke(uow, p, agent_id, token_id)

    return await post(request, s.Empty, work, render=lambda t: (200, agent_tokens.wire_token(t)))


@router.post(
    "/v1/mandates/{mandate_id}/delegated_tokens",
    status_code=201,
    openapi_extra=body_docs(DelegatedTokenCreate),
    tags=_TAGS,
)
async def mint_delegated_token(request: Request, mandate_id: str) -> Response:
    """The mandate's agent (signed) mints a one-time token for one ACP checkout."""

    def work(uow: UnitOfWork, p: Principal, b: DelegatedTokenCreate) -> Any:
        return delegated.mint(uow, p, mandate_id, b.allowance)

    return await post(
        request,
        DelegatedTokenCreate,
        work,
        render=lambda t: (201, delegated.wire_delegated_token(t)),
        allow_agents=True,
    )
