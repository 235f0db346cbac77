"""A user's data: export it, erase it (:mod:`paywarden.services.privacy`).

- ``GET /v1/users/{id}/export``: everything stored about the user (never a secret).
- ``POST /v1/users/{id}/erase`` (``Idempotency-Key``): revoke the user's mandates and keys,
  blank their personal data, keep the ledger, payments and audit log; 409 ``money_pending``
  while a hold is pending.

Both for the user itself or an admin; anyone else gets 404. Agent signatures never reach
these routes.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import authenticated, body_docs, json_response, post, refuse_nul, runtime
from paywarden.kernel.principals import Principal
from paywarden.services import privacy
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/users/{user_id}/export", tags=["users"])
async def export_user(request: Request, user_id: str) -> Response:
    """Everything stored about the user: the user itself or an admin."""
    principal, version = await authenticated(request)
    refuse_nul(request)
    user = privacy.subject(principal, user_id)
    body = await run_in_threadpool(
        runtime(request).store.run, lambda uow: privacy.export(uow, user), read_only=True
    )
    return json_response(200, json.dumps(body), version=version)


@router.post("/users/{user_id}/erase", openapi_extra=body_docs(s.Empty), tags=["users"])
async def erase_user(request: Request, user_id: str) -> Response:
    """Erase the user's personal data and revoke their authority: the user itself or an admin."""

    def work(uow: UnitOfWork, p: Principal, b: s.Empty) -> Any:
        return privacy.erase(uow, privacy.subject(p, user_id), actor=p)

    return await post(request, s.Empty, work, render=lambda summary: (200, summary))
