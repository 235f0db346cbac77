"""The native API under /v1. Each handler: parse, call one service, render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from paywarden.api import schemas as s
from paywarden.api.http import body_docs, post, read
from paywarden.kernel.errors import NotFound
from paywarden.kernel.money import parse_currency
from paywarden.kernel.principals import Principal
from paywarden.services import access, identity, ledger
from paywarden.services import holds as hold_service
from paywarden.services.records import wire
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["router"]

router = APIRouter(prefix="/v1")
Limit = Query(None, ge=1, le=100, description="page size, 1 to 100 (default 10)")
After = Query(None, max_length=40, description="id of the last item of the previous page")


def _with_key(pair: tuple[Any, Any]) -> tuple[int, dict[str, Any]]:
    record, key = pair
    return 201, {**wire(record), "secret_key": key.secret}


@router.post("/users", status_code=201, openapi_extra=body_docs(s.UserCreate), tags=["users"])
async def create_user(request: Request) -> Response:
    """Create a user with a wallet, and the user's secret key (shown once). Admin only."""

    def work(uow: UnitOfWork, p: Principal, b: s.UserCreate) -> Any:
        access.require_admin(p)
        currency = parse_currency(b.currency)
        return identity.create_user(
            uow, email=b.email, name=b.name, currency=currency, livemode=p.livemode, actor=p
        )

    return await post(request, s.UserCreate, work, render=_with_key)


def _self_or_admin(p: Principal, object_id: str, kind: str) -> None:
    if not (p.is_admin or p.id == object_id):
        raise NotFound(f"no such {kind}: {object_id}", param=f"$.{kind}")


@router.get("/users/{user_id}", tags=["users"])
async def get_user(request: Request, user_id: str) -> Response:
    def work(uow: UnitOfWork, p: Principal) -> Any:
        _self_or_admin(p, user_id, "user")
        return identity.get_user(uow, user_id, p.livemode)

    return await read(request, work)


@router.post(
    "/users/{user_id}/wallets",
    status_code=201,
    openapi_extra=body_docs(s.WalletCreate),
    tags=["users"],
)
async def add_wallet(request: Request, user_id: str) -> Response:
    """Open another wallet for the user, in another currency."""

    def work(uow: UnitOfWork, p: Principal, b: s.WalletCreate) -> Any:
        _self_or_admin(p, user_id, "user")
        return identity.add_wallet(uow, user_id, parse_currency(b.currency), p.livemode)

    return await post(request, s.WalletCreate, work, status=201)


@router.post(
    "/merchants", status_code=201, openapi_extra=body_docs(s.MerchantCreate), tags=["merchants"]
)
async def create_merchant(request: Request) -> Response:
    """Create a merchant with its account, and its secret key (shown once). Admin only."""

    def work(uow: UnitOfWork, p: Principal, b: s.MerchantCreate) -> Any:
        access.require_admin(p)
        return identity.create_merchant(
            uow,
            name=b.name,
            category=b.category,
            currency=parse_currency(b.currency),
            fee_bps=b.fee_bps,
            livemode=p.livemode,
            actor=p,
        )

    return await post(request, s.MerchantCreate, work, render=_with_key)


@router.get("/merchants/{merchant_id}", tags=["merchants"])
async def get_merchant(request: Request, merchant_id: str) -> Response:
    def work(uow: UnitOfWork, p: Principal) -> Any:
        _self_or_admin(p, merchant_id, "merchant")
        return identity.get_merchant(uow, merchant_id, p.livemode)

    return await read(request, work)


@router.get("/accounts", tags=["accounts"])
async def list_accounts(
    request: Request,
    limit: int | None = Limit,
    starting_after: str | None = After,
    owner: str | None = Query(None, max_length=40, description="admin: one owner's accounts"),
) -> Response:
    """Accounts with their balances: posted, pending (held) and available."""
    return await read(
        request,
        lambda uow, p: ledger.list_accounts(
            uow, p, limit=limit, starting_after=starting_after, owner=owner
        ),
    )


@router.get("/accounts/{account_id}", tags=["accounts"])
async def get_account(request: Request, account_id: str) -> Response:
    return await read(request, lambda uow, p: ledger.get_account(uow, p, account_id))


@router.post("/top_ups", status_code=201, openapi_extra=body_docs(s.TopUpCreate), tags=["money"])
async def create_top_up(request: Request) -> Response:
    """Add money to a wallet from a card on the sandbox rail. A declined card answers 402
    with the decline code; the failed top-up is kept for the record."""
    secret = request.app.state.runtime.secret

    def work(uow: UnitOfWork, p: Principal, b: s.TopUpCreate) -> Any:
        card = ledger.Card(b.card.number, b.card.exp_month, b.card.exp_year)
        return ledger.top_up(
            uow,
            p,
            amount=b.amount,
            currency=b.currency,
            card=card,
            account=b.account,
            token_key=secret,
        )

    def render(record: Any) -> tuple[int, dict[str, Any]]:
        if record.status == "succeeded":
            return 201, wire(record)
        return 402, {
            "error": {
                "type": "card_error",
                "code": record.failure_code,
                "param": "$.card",
                "message": f"the card was declined: {record.failure_code}",
                "top_up": wire(record),
            }
        }

    return await post(request, s.TopUpCreate, work, render=render)


@router.get("/top_ups/{top_up_id}", tags=["money"])
async def get_top_up(request: Request, top_up_id: str) -> Response:
    return await read(request, lambda uow, p: ledger.get_top_up(uow, p, top_up_id))


@router.post("/holds", status_code=201, openapi_extra=body_docs(s.HoldCreate), tags=["money"])
async def create_hold(request: Request) -> Response:
    """Reserve money on the payer's account for a merchant, to capture later."""

    def work(uow: UnitOfWork, p: Principal, b: s.HoldCreate) -> Any:
        return hold_service.create_hold(
            uow,
            p,
            destination=b.destination,
            amount=b.amount,
            currency=b.currency,
            source=b.source,
            expires_in_s=b.expires_in_s,
            description=b.description,
        )

    return await post(request, s.HoldCreate, work, status=201)


@router.get("/holds", tags=["money"])
async def list_holds(
    request: Request,
    limit: int | None = Limit,
    starting_after: str | None = After,
    status: str | None = Query(None, description="pending, posted, voided or expired"),
) -> Response:
    return await read(
        request,
        lambda uow, p: hold_service.list_holds(
            uow, p, limit=limit, starting_after=starting_after, status=status
        ),
    )


@router.get("/holds/{hold_id}", tags=["money"])
async def get_hold(request: Request, hold_id: str) -> Response:
    return await read(request, lambda uow, p: hold_service.get_hold(uow, p, hold_id))


@router.post("/holds/{hold_id}/capture", openapi_extra=body_docs(s.HoldCapture), tags=["money"])
async def capture_hold(request: Request, hold_id: str) -> Response:
    """Capture a pending hold in full or in part (the payee or an admin); the rest is
    released."""
    return await post(
        request,
        s.HoldCapture,
        lambda uow, p, b: hold_service.capture_hold(uow, p, hold_id, amount=b.amount),
    )


@router.post("/holds/{hold_id}/void", openapi_extra=body_docs(s.Empty), tags=["money"])
async def void_hold(request: Request, hold_id: str) -> Response:
    """Release a pending hold without moving money."""
    return await post(request, s.Empty, lambda uow, p, b: hold_service.void_hold(uow, p, hold_id))


@router.post("/refunds", status_code=201, openapi_extra=body_docs(s.RefundCreate), tags=["money"])
async def create_refund(request: Request) -> Response:
    """Refund a captured hold in full or in part; never more than was captured."""
    return await post(
        request,
        s.RefundCreate,
        lambda uow, p, b: hold_service.refund(
            uow, p, hold_id=b.hold, amount=b.amount, reason=b.reason
        ),
        status=201,
    )


@router.post(
    "/transfers", status_code=201, openapi_extra=body_docs(s.TransferCreate), tags=["money"]
)
async def create_transfer(request: Request) -> Response:
    """Move money from one of your accounts to a user's wallet or a merchant."""
    return await post(
        request,
        s.TransferCreate,
        lambda uow, p, b: ledger.transfer(
            uow,
            p,
            source=b.source,
            destination=b.destination,
            amount=b.amount,
            currency=b.currency,
            description=b.description,
        ),
        status=201,
    )


@router.get("/transfers", tags=["money"])
async def list_transfers(
    request: Request, limit: int | None = Limit, starting_after: str | None = After
) -> Response:
    return await read(
        request,
        lambda uow, p: ledger.list_transfers(uow, p, limit=limit, starting_after=starting_after),
    )


@router.get("/transfers/{transfer_id}", tags=["money"])
async def get_transfer(request: Request, transfer_id: str) -> Response:
    return await read(request, lambda uow, p: ledger.get_transfer(uow, p, transfer_id))
