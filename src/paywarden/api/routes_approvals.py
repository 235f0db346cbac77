"""Step-up approvals over HTTP.

- ``GET /v1/approvals/{id}``: the approval, for its user, its agent (signed: it polls) or an
  admin.
- ``POST /v1/approvals/{id}/approve`` (the user's secret key, ``Idempotency-Key``), body
  ``{"binding_hash": "…"}``: the hash the user was shown; above ``approval_reauth_above`` the
  request must also carry ``Paywarden-Reauth: <the user's own secret key>`` (the web page
  will ask for a password instead). A ``reauthenticated`` field in the body is accepted but
  proves nothing: only the header counts. 200 with the approval as it ends (``approved``);
  409 ``approval_expired``, ``approval_voided``, ``approval_declined`` (a hard limit failed,
  for example ``mandate_not_active``) when it ended otherwise, which is committed too.
- ``POST /v1/approvals/{id}/decline`` (the user): the payment is declined, nothing moves;
  ``binding_hash`` may be sent and is not checked (declining is always safe).

Agent signatures never reach the two POSTs: they would grant authority.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, StrictBool, StrictStr

from paywarden.api import schemas as s
from paywarden.api.http import (
    body_docs,
    post,
    read_json,
    runtime,
)
from paywarden.kernel.errors import AuthenticationFailed, Conflict
from paywarden.kernel.principals import Principal
from paywarden.services import approvals, identity
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter()
REAUTH_HEADER = "Paywarden-Reauth"


class ApprovalDecision(s.Body):
    binding_hash: StrictStr = Field(max_length=64, description="the binding the user was shown")
    reauthenticated: StrictBool | None = Field(
        None, description="ignored: re-authentication is the Paywarden-Reauth header"
    )


class ApprovalDecline(s.Body):
    binding_hash: StrictStr | None = Field(None, max_length=64)


def _reauthenticated(uow: UnitOfWork, caller: Principal, secret: str | None) -> bool:
    """The header holds the caller's own secret key (any of their live keys)."""
    if not secret:
        return False
    again = identity.authenticate(uow, secret.strip())
    if (again.type, again.id, again.livemode) != (caller.type, caller.id, caller.livemode):
        raise AuthenticationFailed(
            f"{REAUTH_HEADER} is not a key of the caller", code="reauthentication_failed"
        )
    return True


def _render(wanted: str) -> Any:
    return lambda record: _rendered(record, wanted)


def _rendered(record: approvals.ApprovalRecord, wanted: str) -> tuple[int, dict[str, Any]]:
    """200 with the approval when it ended as asked; else 409 ``approval_<status>`` (the
    approval expired or was voided, or a hard limit declined it), the approval included."""
    body = approvals.wire_approval(record)
    if record.status == wanted:
        return 200, body
    error = Conflict(
        f"the approval ended {record.status}: " + ", ".join(record.reasons or (record.status,)),
        code=f"approval_{record.status}",
    ).to_wire()
    return 409, {"error": {**error, "approval": body}}


@router.get("/v1/approvals/{approval_id}", tags=["approvals"])
async def get_approval(request: Request, approval_id: str) -> Response:
    """The approval: for its user, its agent (signed) or an admin."""
    return await read_json(
        request,
        lambda uow, p: approvals.wire_approval(approvals.get(uow, p, approval_id)),
        allow_agents=True,
    )


@router.post(
    "/v1/approvals/{approval_id}/approve",
    openapi_extra=body_docs(ApprovalDecision),
    tags=["approvals"],
)
async def approve(request: Request, approval_id: str) -> Response:
    """The user approves; the platform completes the payment. The user's key only."""
    rt = runtime(request)
    issuer = str(request.base_url).rstrip("/")
    reauth = request.headers.get(REAUTH_HEADER)

    def work(uow: UnitOfWork, p: Principal, b: ApprovalDecision) -> Any:
        return approvals.approve(
            uow,
            p,
            approval_id,
            expected_binding_hash=b.binding_hash,
            reauthenticated=_reauthenticated(uow, p, reauth),
            master_key=rt.master_key,
            issuer=issuer,
            risk=rt.risk,
        )

    return await post(request, ApprovalDecision, work, render=_render("approved"))


@router.post(
    "/v1/approvals/{approval_id}/decline",
    openapi_extra=body_docs(ApprovalDecline),
    tags=["approvals"],
)
async def decline(request: Request, approval_id: str) -> Response:
    """The user declines; the payment is declined and nothing moves. The user's key only."""

    def work(uow: UnitOfWork, p: Principal, b: ApprovalDecline) -> Any:
        return approvals.decline(uow, p, approval_id)

    return await post(request, ApprovalDecline, work, render=_render("declined"))
