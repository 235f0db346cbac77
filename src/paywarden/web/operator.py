"""The operator view: ``GET /operator`` (vital counts, the risk engine's recent decisions,
the audit chain's last verification) and ``POST /operator/audit`` (verify the audit log now).

Only a session signed in with the admin secret key sees it; anyone else is sent to sign in
(a signed-in user gets 404: the page does not exist for them)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paywarden.api.http import runtime
from paywarden.kernel.money import format_amount
from paywarden.kernel.principals import Principal
from paywarden.services import operations
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.audit import VerifyReport
from paywarden.web import pages

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _report_words(report: VerifyReport) -> dict[str, Any]:
    first = report.first
    where = None
    if first is not None:
        where = (
            f"checkpoint {first.checkpoint_id}"
            if first.checkpoint_id is not None
            else f"partition {first.partition}, sequence {first.sequence} (index {first.index})"
        )
    return {
        "ok": report.ok,
        "records": report.records,
        "partitions": report.partitions,
        "checkpoints": report.checkpoints,
        "signatures": report.signatures_verified,
        "problems": len(report.problems),
        "first": f"{where}: {first.kind.value}: {first.detail}" if first is not None else None,
    }


async def _operator_page(request: Request, *, verify: bool) -> Response:
    session = pages.web_session(request)
    admin = await pages.signed_in_operator(request, session)
    if admin is None:
        if await pages.signed_in_user(request, session) is not None:
            return pages.error_page(
                request, 404, "Not found", "There is no such page.", session=session
            )
        return pages.to_sign_in(request)

    def read(uow: UnitOfWork, principal: Principal = admin) -> dict[str, Any]:
        decisions = operations.risk_decisions(uow, principal)
        return {
            "title": "Operator",
            "vitals": operations.vitals(uow, principal),
            "decisions": [
                {
                    "id": d.id,
                    "when": f"{d.created_at:%Y-%m-%d %H:%M} UTC",
                    "agent": d.agent_id,
                    "amount": format_amount(d.amount, d.currency),
                    "status": d.status,
                    "reasons": ", ".join(d.reasons),
                }
                for d in decisions
            ],
            "audit": _report_words(operations.audit_report(uow, principal)) if verify else None,
        }

    context = await run_in_threadpool(runtime(request).store.run, read, read_only=True)
    return pages.render(request, "operator.html", context, session=session)


@router.get("/operator")
async def operator_page(request: Request) -> Response:
    return await _operator_page(request, verify=False)


@router.post("/operator/audit")
async def operator_verify(request: Request) -> Response:
    session = pages.web_session(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    return await _operator_page(request, verify=True)
