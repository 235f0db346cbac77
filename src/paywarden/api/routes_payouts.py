"""Money to merchants over HTTP: the fee, payout accounts, payouts and reconciliation.

- ``POST /v1/merchants/{id}/fee`` (admin) ``{"fee_bps": 250}``: the platform fee for the
  captures that follow.
- ``POST /v1/merchants/{id}/payout_account`` (the merchant or an admin): sandbox bank
  details; the answer (and everything stored) holds only the reference and last four digits.
  ``GET`` the same path reads it back (``?currency=``).
- ``GET /v1/merchants/{id}/payout_balance``: balance, unsettled, payable, pending payouts.
- ``POST /v1/payouts`` (the merchant, or an admin naming ``merchant``): pay out ``amount``,
  or everything payable when it is absent; ``GET /v1/payouts`` and ``/v1/payouts/{id}``.
- ``GET /v1/reports/reconciliation?from=&to=&merchant=``: the CSV export.

Agents never reach these routes: they move a merchant's money or change its terms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from paywarden.api import schemas as s
from paywarden.api.http import authenticated, body_docs, post, read_json, refuse_nul, runtime
from paywarden.kernel.principals import Principal
from paywarden.services import payouts, reconciliation
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter(prefix="/v1")
Limit = Query(None, ge=1, le=100, description="page size, 1 to 100 (default 10)")
After = Query(None, max_length=40, description="id of the last item of the previous page")
CurrencyQuery = Query(None, max_length=3, description="ISO 4217 code; the merchant's by default")


class FeeUpdate(s.Body):
    fee_bps: StrictInt = Field(description="platform fee in basis points (0 to 10000)")


class PayoutAccountCreate(s.Body):
    routing_number: StrictStr = Field(max_length=16, description="9-digit ABA routing number")
    account_number: StrictStr = Field(max_length=24, description="4 to 17 digits; never stored")
    account_holder_name: StrictStr = Field(max_length=200)
    currency: s.CurrencyField = None


class PayoutCreate(s.Body):
    amount: s.AmountField = Field(None, description="minor units; everything payable if absent")
    currency: s.CurrencyField = None
    merchant: StrictStr | None = Field(None, max_length=40, description="admin: whose payout")
    description: StrictStr | None = Field(None, max_length=500)


def _delay(request: Request) -> timedelta:
    return timedelta(seconds=runtime(request).settings.payout_settlement_delay_s)


async def _get(request: Request, work: Callable[[UnitOfWork, Principal], Any]) -> Response:
    return await read_json(request, work)


@router.post("/merchants/{merchant_id}/fee", openapi_extra=body_docs(FeeUpdate), tags=["payouts"])
async def set_fee(request: Request, merchant_id: str) -> Response:
    """Set a merchant's platform fee (admin); captures from now on use it."""
    return await post(
        request, FeeUpdate, lambda uow, p, b: payouts.set_fee(uow, p, merchant_id, b.fee_bps)
    )


@router.post(
    "/merchants/{merchant_id}/payout_account",
    openapi_extra=body_docs(PayoutAccountCreate),
    tags=["payouts"],
)
async def register_payout_account(request: Request, merchant_id: str) -> Response:
    """Register (or replace) where the merchant's payouts in a currency go."""
    token_key = runtime(request).secret

    def work(uow: UnitOfWork, p: Principal, b: PayoutAccountCreate) -> Any:
        return payouts.register_payout_account(
            uow,
            p,
            merchant_id,
            routing_number=b.routing_number,
            account_number=b.account_number,
            holder_name=b.account_holder_name,
            currency=b.currency,
            token_key=token_key,
        )

    return await post(
        request,
        PayoutAccountCreate,
        work,
        render=lambda record: (200, payouts.wire_payout_account(record)),
    )


@router.get("/merchants/{merchant_id}/payout_account", tags=["payouts"])
async def get_payout_account(
    request: Request, merchant_id: str, currency: str | None = CurrencyQuery
) -> Response:
    return await _get(
        request,
        lambda uow, p: payouts.wire_payout_account(
            payouts.get_payout_account(uow, p, merchant_id, currency)
        ),
    )


@router.get("/merchants/{merchant_id}/payout_balance", tags=["payouts"])
async def payout_balance(request: Request, merchant_id: str) -> Response:
    """Per currency: the balance, what is still unsettled, what is payable now, and what
    pending payouts are carrying."""
    delay = _delay(request)

    def work(uow: UnitOfWork, p: Principal) -> Any:
        balances = payouts.payout_balances(uow, p, merchant_id, settlement_delay=delay)
        return {"object": "list", "data": [payouts.wire_balance(b) for b in balances]}

    return await _get(request, work)


@router.post("/payouts", status_code=201, openapi_extra=body_docs(PayoutCreate), tags=["payouts"])
async def create_payout(request: Request) -> Response:
    """Pay out the merchant's payable balance (all of it, or ``amount``): pending until the
    sandbox rail answers, then paid or failed (the money comes back)."""
    delay = _delay(request)

    def work(uow: UnitOfWork, p: Principal, b: PayoutCreate) -> Any:
        return payouts.create_payout(
            uow,
            p,
            amount=b.amount,
            currency=b.currency,
            merchant=b.merchant,
            description=b.description,
            settlement_delay=delay,
        )

    return await post(
        request, PayoutCreate, work, render=lambda record: (201, payouts.wire_payout(record))
    )


@router.get("/payouts", tags=["payouts"])
async def list_payouts(
    request: Request,
    limit: int | None = Limit,
    starting_after: str | None = After,
    status: str | None = Query(None, description="pending, paid or failed"),
    merchant: str | None = Query(None, max_length=40, description="admin: one merchant's"),
) -> Response:
    def work(uow: UnitOfWork, p: Principal) -> Any:
        page = payouts.list_payouts(
            uow, p, limit=limit, starting_after=starting_after, status=status, merchant=merchant
        )
        data = [payouts.wire_payout(item) for item in page.items]
        return {
            "object": "list",
            "url": request.url.path,
            "data": data,
            "has_more": page.has_more,
            "next_cursor": data[-1]["id"] if page.has_more and data else None,
        }

    return await _get(request, work)


@router.get("/payouts/{payout_id}", tags=["payouts"])
async def get_payout(request: Request, payout_id: str) -> Response:
    return await _get(
        request, lambda uow, p: payouts.wire_payout(payouts.get_payout(uow, p, payout_id))
    )


@router.get("/reports/reconciliation", tags=["payouts"])
async def reconciliation_report(
    request: Request,
    start: str | None = Query(None, alias="from", max_length=40, description="exclusive"),
    end: str | None = Query(None, alias="to", max_length=40, description="inclusive; now"),
    merchant: str | None = Query(None, max_length=40, description="admin: one merchant"),
) -> Response:
    """CSV, one row per merchant account and a total per currency, over ``(from, to]``:
    opening balance, gross captured, fees, refunds, fees returned, net, payouts paid,
    pending and returned, other movements, closing balance (the ledger's at ``to``)."""
    principal, version = await authenticated(request)
    refuse_nul(request)
    lower = reconciliation.parse_instant(start, "$.from")
    upper = reconciliation.parse_instant(end, "$.to")

    def work(uow: UnitOfWork) -> str:
        report = reconciliation.reconcile(uow, principal, start=lower, end=upper, merchant=merchant)
        return reconciliation.to_csv(report)

    text = await run_in_threadpool(runtime(request).store.run, work, read_only=True)
    return Response(
        text,
        media_type="text/csv",
        headers={
            "Paywarden-Version": version,
            "Content-Disposition": 'attachment; filename="reconciliation.csv"',
        },
    )
