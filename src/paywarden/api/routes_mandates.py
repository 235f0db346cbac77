"""Mandates and the payments agents make under them.

- ``POST /v1/mandates`` (agent, signed): ask a user for a mandate; it answers
  ``pending_consent`` with a ``consent_url``: the consent page on the trusted surface
  (``paywarden.web``); the user may also consent with their own key at ``…/consent``.
- ``POST /v1/mandates/{id}/consent|pause|resume`` (the mandate's user), ``…/revoke`` (the
  user or an admin). Agent signatures never reach these: they grant or change authority.
- ``GET /v1/mandates/{id}`` (the user, the agent or an admin), with ``remaining``.
- ``POST /v1/payments`` (agent, signed, ``Idempotency-Key``): 201 with the payment, whose
  ``status`` is ``succeeded``, ``requires_confirmation`` or ``declined`` with ``reasons`` and
  a signed ``receipt``; ``GET /v1/payments/{id}`` for its agent, user, merchant or an admin.
  ``requires_confirmation`` carries ``approval`` (``apr_…``) and ``approval_url``; see
  :mod:`paywarden.api.routes_approvals`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictStr

from paywarden.api import schemas as s
from paywarden.api.http import (
    body_docs,
    post,
    read_json,
    runtime,
)
from paywarden.api.runtime import Runtime
from paywarden.kernel.errors import PermissionDenied
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import approvals, mandates, payments, tokens
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()


class MandateCreate(s.Body):
    user: StrictStr = Field(max_length=40, description="the user (usr_…) asked for the mandate")
    currency: s.CurrencyField
    constraints: list[Any] = Field(description="AP2 payment.* and paywarden.* constraints")
    timezone: StrictStr = Field("UTC", max_length=64, description="IANA zone of the periods")
    conversation_excerpt: StrictStr | None = Field(
        None, description="what the user asked, shown on the consent page"
    )


class MandateAmend(s.Body):
    constraints: list[Any] = Field(description="the new constraints; fresh consent is needed")


class PaymentCreate(s.Body):
    mandate: StrictStr = Field(max_length=40)
    merchant: StrictStr = Field(max_length=40)
    amount: s.AmountField
    currency: s.CurrencyField
    cart_hash: StrictStr | None = Field(None, max_length=100)


def _mandate(status: int, request: Request) -> Callable[[Any], tuple[int, dict[str, Any]]]:
    base_url = str(request.base_url).rstrip("/")
    return lambda view: (status, mandates.wire_mandate(view, base_url=base_url))


@router.post(
    "/v1/mandates", status_code=201, openapi_extra=body_docs(MandateCreate), tags=["mandates"]
)
async def request_mandate(request: Request) -> Response:
    """An agent asks a user for a mandate. Agent (signed) only."""

    def work(uow: UnitOfWork, p: Principal, b: MandateCreate) -> Any:
        return mandates.request_mandate(
            uow,
            p,
            user=b.user,
            currency=b.currency,
            constraints=b.constraints,
            timezone=b.timezone,
            conversation_excerpt=b.conversation_excerpt,
            excerpt_ttl=timedelta(days=runtime(request).settings.excerpt_retention_days),
        )

    return await post(
        request, MandateCreate, work, render=_mandate(201, request), allow_agents=True
    )


def _transition(name: str) -> Any:
    change = getattr(mandates, name)

    async def handler(request: Request, mandate_id: str) -> Response:
        def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
            return change(uow, p, mandate_id)

        return await post(request, s.Empty, work, render=_mandate(200, request))

    handler.__name__ = f"{name}_mandate"
    handler.__doc__ = {
        "consent": "The user consents: pending_consent → active.",
        "pause": "The user pauses an active mandate.",
        "resume": "The user resumes a paused mandate.",
        "revoke": "Revoke for good (the user or an admin); no payment commits after this.",
    }[name]
    return handler


for _name in ("consent", "pause", "resume", "revoke"):
    router.add_api_route(
        f"/v1/mandates/{{mandate_id}}/{_name}",
        _transition(_name),
        methods=["POST"],
        openapi_extra=body_docs(s.Empty),
        tags=["mandates"],
    )


@router.post(
    "/v1/mandates/{mandate_id}/amend", openapi_extra=body_docs(MandateAmend), tags=["mandates"]
)
async def amend_mandate(request: Request, mandate_id: str) -> Response:
    """New constraints (the user, or the agent asking for more): the mandate returns to
    pending_consent and pays nothing until the user consents again."""

    def work(uow: UnitOfWork, p: Principal, b: MandateAmend) -> Any:
        return mandates.amend(uow, p, mandate_id, b.constraints)

    return await post(request, MandateAmend, work, render=_mandate(200, request), allow_agents=True)


@router.post("/v1/mandates/{mandate_id}/token", openapi_extra=body_docs(s.Empty), tags=["mandates"])
async def mandate_token(request: Request, mandate_id: str) -> Response:
    """The active mandate as a portable JWS (ES256) bound (`cnf.jkt`) to the key that
    signed this request; verify it with /.well-known/jwks.json. Its agent only. The
    database stays the source of truth for status and usage."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        view = mandates.get_mandate(uow, p, mandate_id)
        if p.type is not PrincipalType.AGENT or view.mandate.agent != p.id:
            raise PermissionDenied("only the mandate's agent takes its token")
        token = tokens.issue(uow, view.mandate, p.key_id, rt.master_key, issuer=issuer)
        return {"object": "mandate_token", "mandate": mandate_id, "token": token}

    return await post(request, s.Empty, work, render=lambda body: (200, body), allow_agents=True)


async def _get(
    request: Request, work: Callable[[UnitOfWork, Principal], dict[str, Any]]
) -> Response:
    return await read_json(request, work, allow_agents=True)


@router.get("/v1/mandates/{mandate_id}", tags=["mandates"])
async def get_mandate(request: Request, mandate_id: str) -> Response:
    """The mandate with what it still allows: for its user, its agent or an admin."""
    base_url = str(request.base_url).rstrip("/")
    return await _get(
        request,
        lambda uow, p: mandates.wire_mandate(
            mandates.get_mandate(uow, p, mandate_id), base_url=base_url
        ),
    )


@router.post(
    "/v1/payments", status_code=201, openapi_extra=body_docs(PaymentCreate), tags=["payments"]
)
async def create_payment(request: Request) -> Response:
    """An agent pays a merchant under a mandate. Agent (signed) only."""
    work = payment_work(runtime(request), str(request.base_url).rstrip("/"))
    return await post(request, PaymentCreate, work, render=render_payment, allow_agents=True)


def payment_work(
    rt: Runtime, issuer: str
) -> Callable[[UnitOfWork, Principal, PaymentCreate], payments.PaymentRecord]:
    """The effect of ``POST /v1/payments`` with this server's settings (``paywarden bench``
    runs the same in-process)."""

    def work(uow: UnitOfWork, p: Principal, b: PaymentCreate) -> payments.PaymentRecord:
        return payments.pay(
            uow,
            p,
            b.mandate,
            b.merchant,
            b.amount,
            b.currency,
            b.cart_hash,
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
            approval=approvals.ApprovalPolicy(
                rt.settings.approval_ttl_s, rt.settings.approval_reauth_above
            ),
        )

    return work


def render_payment(record: payments.PaymentRecord) -> tuple[int, dict[str, Any]]:
    return 201, payments.wire_payment(record)


@router.get("/v1/payments/{payment_id}", tags=["payments"])
async def get_payment(request: Request, payment_id: str) -> Response:
    """The payment: for its agent, its user, its merchant or an admin."""
    return await _get(
        request,
        lambda uow, p: payments.wire_payment(payments.get_payment(uow, p, payment_id)),
    )
