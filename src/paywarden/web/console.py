"""The merchant console: a merchant signs in with its secret key and runs its shop.

- ``GET /merchant``: orders as they arrive (the table refreshes itself every few seconds from
  ``GET /merchant/orders/live``, no reload; a polite live region announces new ones), and the
  balances.
- ``GET /merchant/orders/{id}``: the order, the next statuses it may take
  (``POST …/status``), its refunds and a refund form (``POST …/refund``, full or partial,
  with a reason).
- ``POST /merchant/refund_requests/{id}/approve`` | ``…/decline``: an agent's request for a
  refund of the order, decided by the merchant.
- ``GET /merchant/catalog``; ``POST /merchant/catalog/{product_id}``: price, stock and
  availability of each product.
- ``GET /merchant/payouts``; ``POST /merchant/payouts``; ``GET /merchant/reconciliation.csv``.
- ``GET /merchant/webhooks``; ``POST /merchant/webhooks`` (a new endpoint, its secret shown
  once); ``POST /merchant/webhooks/deliveries/{id}/resend``.
- ``GET /merchant/keys``; ``POST /merchant/keys`` (a new secret key, shown once);
  ``POST /merchant/keys/{id}/revoke``.

Every page calls the same services as the API with the merchant's principal, so a merchant
sees and changes only its own objects (another merchant's id is a 404).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paywarden.api.http import runtime
from paywarden.commerce.orders import OrderStatus, allowed_next
from paywarden.kernel.errors import InvalidRequest, NotFound, PaywardenError
from paywarden.kernel.money import format_amount
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import (
    catalog,
    identity,
    orders,
    payouts,
    reconciliation,
    refund_requests,
    webhooks,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.web import amounts, pages
from paywarden.web.session import Session
from paywarden.worker.delivery import retry_policy

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

LIVE_ORDERS = 25
CATALOG_PAGE = 100
STATUS_WORDS = {
    "created": "New",
    "confirmed": "Confirmed",
    "preparing": "Preparing",
    "ready_for_pickup": "Ready for pickup",
    "out_for_delivery": "Out for delivery",
    "shipped": "Shipped",
    "completed": "Completed",
    "canceled": "Canceled",
}


@dataclass(frozen=True, slots=True)
class Shop:
    session: Session
    merchant: Principal

    @property
    def id(self) -> str:
        return str(self.merchant.id)


async def _signed_in(request: Request) -> Shop | Response:
    session = pages.web_session(request)
    merchant = await pages.signed_in_merchant(request, session)
    if session is None or merchant is None:
        if await pages.signed_in_user(request, session) is not None:
            return pages.error_page(
                request, 404, "Not found", "There is no such page.", session=session
            )
        return pages.to_sign_in(request)
    return Shop(session, merchant)


async def _page(
    request: Request,
    template: str,
    section: str,
    context_of: Callable[[UnitOfWork, Shop], dict[str, Any]],
) -> Response:
    shop = await _signed_in(request)
    if isinstance(shop, Response):
        return shop

    def read(uow: UnitOfWork) -> dict[str, Any]:
        record = identity.get_merchant(uow, shop.id, shop.merchant.livemode)
        return context_of(uow, shop) | {"section": section, "shop_name": record.name}

    try:
        context = await run_in_threadpool(runtime(request).store.run, read, read_only=True)
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such page.", session=shop.session
        )
    return pages.render(request, template, context, session=shop.session)


async def _post(
    request: Request,
    work: Callable[[UnitOfWork, Shop, pages.Form], Any],
    then: Callable[[Any], str],
) -> Response:
    """A checked console form: CSRF first, then the merchant, then the change."""
    session = pages.web_session(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    shop = await _signed_in(request)
    if isinstance(shop, Response):
        return shop
    try:
        result = await run_in_threadpool(
            runtime(request).store.run, lambda uow: work(uow, shop, form)
        )
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such page.", session=shop.session
        )
    except PaywardenError as error:  # the API's own status: 400 bad input, 409 conflict, ...
        status = error.status if 400 <= error.status < 500 else 409
        return pages.error_page(request, status, "Not done", error.message, session=shop.session)
    if isinstance(result, Response):
        return result
    return pages.redirect(then(result))


def _money(amount: int, currency: str) -> str:
    return format_amount(amount, currency)


# --- orders -----------------------------------------------------------------------------------


def _order_row(record: orders.OrderRecord) -> dict[str, Any]:
    items = ", ".join(
        f"{line.get('quantity', 1)} x {line.get('title') or line.get('sku') or line.get('item')}"
        for line in record.line_items
    )
    return {
        "id": record.id,
        "when": f"{record.created_at:%Y-%m-%d %H:%M} UTC",
        "summary": items,
        "total": _money(record.amount_total, record.currency),
        "refunded": _money(record.amount_refunded, record.currency)
        if record.amount_refunded
        else "",
        "status": record.status,
        "status_words": STATUS_WORDS.get(record.status, record.status),
        "fulfillment": record.fulfillment_type or "",
    }


def _recent_orders(uow: UnitOfWork, shop: Shop) -> list[dict[str, Any]]:
    listed = orders.list_orders(uow, shop.merchant, limit=LIVE_ORDERS, starting_after=None)
    return [_order_row(record) for record in listed.items]


@router.get("/merchant")
async def console_home(request: Request) -> Response:
    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        balances = payouts.payout_balances(uow, shop.merchant, shop.id)
        return {
            "title": "Orders",
            "orders": _recent_orders(uow, shop),
            "balances": [
                {
                    "balance": _money(b.account.posted, b.account.currency),
                    "payable": _money(b.payable, b.account.currency),
                }
                for b in balances
            ],
        }

    return await _page(request, "console_home.html", "orders", context)


@router.get("/merchant/orders/live")
async def console_live_orders(request: Request) -> Response:
    """The orders table's rows alone, for the page's refresh."""
    shop = await _signed_in(request)
    if isinstance(shop, Response):
        return Response(status_code=401)
    rows = await run_in_threadpool(
        runtime(request).store.run, lambda uow: _recent_orders(uow, shop), read_only=True
    )
    return pages.render(request, "_console_orders.html", {"orders": rows}, session=shop.session)


@router.get("/merchant/orders/{order_id}")
async def console_order(request: Request, order_id: str) -> Response:
    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        record = orders.get(uow, shop.merchant, order_id)
        if record.merchant_id != shop.id:
            raise NotFound(order_id)
        nexts = allowed_next(OrderStatus(record.status), record.fulfillment_type)
        remaining = record.amount_total - record.amount_refunded
        return {
            "title": f"Order {record.id}",
            "order": _order_row(record),
            "lines": record.line_items,
            "totals": [(name, _money(amount, record.currency)) for name, amount in record.totals],
            "next": [(s.value, STATUS_WORDS[s.value]) for s in OrderStatus if s in nexts],
            "refunds": [
                {
                    "amount": _money(r.amount, record.currency),
                    "reason": r.reason,
                    "when": f"{r.created_at:%Y-%m-%d %H:%M} UTC",
                }
                for r in record.refunds
            ],
            "refundable": _money(remaining, record.currency) if remaining > 0 else None,
            "requests": [
                {
                    "id": r.id,
                    "amount": _money(r.amount, record.currency) if r.amount else "all",
                    "reason": r.reason,
                    "status": r.status,
                }
                for r in refund_requests.list_for_order(uow, shop.merchant, order_id)
            ],
            "step": amounts.step(record.currency),
            "currency": record.currency.upper(),
        }

    return await _page(request, "console_order.html", "orders", context)


@router.post("/merchant/orders/{order_id}/status")
async def console_order_status(request: Request, order_id: str) -> Response:
    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        orders.update_status(uow, shop.merchant, order_id, form.get("status"))

    return await _post(request, work, lambda _: f"/merchant/orders/{order_id}")


@router.post("/merchant/orders/{order_id}/refund")
async def console_order_refund(request: Request, order_id: str) -> Response:
    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        record = orders.get(uow, shop.merchant, order_id)
        amount = amounts.parse_decimal(form.get("amount"), record.currency, "$.amount")
        orders.refund(uow, shop.merchant, order_id, amount=amount, reason=form.get("reason"))

    return await _post(request, work, lambda _: f"/merchant/orders/{order_id}")


async def _decide_refund_request(
    request: Request, refund_request_id: str, *, approve: bool
) -> Response:
    order_of: dict[str, str] = {}

    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        decided = refund_requests.decide(uow, shop.merchant, refund_request_id, approve=approve)
        order_of["id"] = decided.order_id

    return await _post(request, work, lambda _: f"/merchant/orders/{order_of['id']}")


@router.post("/merchant/refund_requests/{refund_request_id}/approve")
async def console_refund_request_approve(request: Request, refund_request_id: str) -> Response:
    """Approve an agent's refund request: the refund is made now, to the wallet that paid."""
    return await _decide_refund_request(request, refund_request_id, approve=True)


@router.post("/merchant/refund_requests/{refund_request_id}/decline")
async def console_refund_request_decline(request: Request, refund_request_id: str) -> Response:
    """Decline an agent's refund request: nothing moves."""
    return await _decide_refund_request(request, refund_request_id, approve=False)


# --- catalog ---------------------------------------------------------------------------------


@router.get("/merchant/catalog")
async def console_catalog(request: Request) -> Response:
    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        products, more = catalog.list_products(
            uow, shop.id, shop.merchant.livemode, limit=CATALOG_PAGE
        )
        rows = []
        for product in products:
            rows.append(
                {
                    "id": product.id,
                    "sku": product.sku,
                    "title": product.title,
                    "price": amounts.decimal_text(product.draft.amount, product.currency),
                    "step": amounts.step(product.currency),
                    "stock": "" if product.draft.stock is None else product.draft.stock,
                    "available": product.draft.available,
                    "variants": len(product.variants),
                }
            )
        return {"title": "Catalog", "products": rows, "more": more}

    return await _page(request, "console_catalog.html", "catalog", context)


@router.post("/merchant/catalog/{product_id}")
async def console_catalog_update(request: Request, product_id: str) -> Response:
    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        product = catalog.get_product(uow, shop.id, shop.merchant.livemode, product_id)
        changes: dict[str, Any] = {"available": form.get("available") == "on"}
        price = amounts.parse_decimal(form.get("price"), product.currency, "$.amount")
        if price is not None:
            changes["amount"] = price
        stock = (form.get("stock") or "").strip()
        if not product.variants:
            if stock and not stock.isdigit():
                raise InvalidRequest("stock is a whole number, or blank for unlimited")
            changes["stock"] = int(stock) if stock else None
        catalog.update_product(
            uow, shop.merchant, shop.id, shop.merchant.livemode, product.id, changes
        )

    return await _post(request, work, lambda _: "/merchant/catalog")


# --- payouts ---------------------------------------------------------------------------------


def _delay(request: Request) -> timedelta:
    return timedelta(seconds=runtime(request).settings.payout_settlement_delay_s)


@router.get("/merchant/payouts")
async def console_payouts(request: Request) -> Response:
    delay = _delay(request)

    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        balances = payouts.payout_balances(uow, shop.merchant, shop.id, settlement_delay=delay)
        listed = payouts.list_payouts(uow, shop.merchant, limit=50, starting_after=None)
        return {
            "title": "Payouts",
            "balances": [payouts.wire_balance(b) for b in balances],
            "payouts": [payouts.wire_payout(p) for p in listed.items],
            "money": _money,
            "step": amounts.step(
                identity.get_merchant(uow, shop.id, shop.merchant.livemode).currency
            ),
        }

    return await _page(request, "console_payouts.html", "payouts", context)


@router.post("/merchant/payouts")
async def console_payout(request: Request) -> Response:
    delay = _delay(request)

    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        merchant = identity.get_merchant(uow, shop.id, shop.merchant.livemode)
        amount = amounts.parse_decimal(form.get("amount"), merchant.currency, "$.amount")
        payouts.create_payout(uow, shop.merchant, amount=amount, settlement_delay=delay)

    return await _post(request, work, lambda _: "/merchant/payouts")


@router.get("/merchant/reconciliation.csv")
async def console_reconciliation(request: Request) -> Response:
    shop = await _signed_in(request)
    if isinstance(shop, Response):
        return shop
    report = await run_in_threadpool(
        runtime(request).store.run,
        lambda uow: reconciliation.reconcile(uow, shop.merchant),
        read_only=True,
    )
    response = Response(reconciliation.to_csv(report), media_type="text/csv")
    response.headers.update(pages.SECURITY_HEADERS)
    response.headers["Content-Disposition"] = 'attachment; filename="reconciliation.csv"'
    return response


# --- webhooks --------------------------------------------------------------------------------


@router.get("/merchant/webhooks")
async def console_webhooks(request: Request) -> Response:
    created = request.query_params.get("created")

    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        endpoints = webhooks.list_endpoints(uow, shop.merchant, limit=50, starting_after=None)
        deliveries = webhooks.list_deliveries(uow, shop.merchant, limit=50, starting_after=None)
        return {
            "title": "Webhooks",
            "endpoints": endpoints.items,
            "deliveries": deliveries.items,
            "created": created,
        }

    return await _page(request, "console_webhooks.html", "webhooks", context)


@router.post("/merchant/webhooks")
async def console_webhook_create(request: Request) -> Response:
    master_key = runtime(request).master_key
    shown: dict[str, str] = {}

    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> Response:
        made = webhooks.create_endpoint(
            uow,
            shop.merchant,
            url=(form.get("url") or "").strip(),
            event_types=[
                name.strip() for name in (form.get("events") or "*").split(",") if name.strip()
            ],
            endpoint_format="standard",
            description=(form.get("description") or "").strip() or None,
            master_key=master_key,
        )
        shown["secret"] = str(made.get("secret_key") or made.get("secret") or "")
        shown["id"] = str(made["id"])
        context = {"title": "New webhook endpoint", "endpoint": made, "secret": shown["secret"]}
        return pages.render(request, "console_secret.html", context, session=shop.session)

    return await _post(request, work, lambda _: "/merchant/webhooks")


@router.post("/merchant/webhooks/deliveries/{delivery_id}/resend")
async def console_webhook_resend(request: Request, delivery_id: str) -> Response:
    policy = retry_policy(runtime(request).settings)

    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        webhooks.resend_delivery(uow, shop.merchant, delivery_id, policy)

    return await _post(request, work, lambda _: "/merchant/webhooks")


# --- keys ------------------------------------------------------------------------------------


def _merchant_keys(uow: UnitOfWork, shop: Shop) -> list[dict[str, Any]]:
    listed = identity.list_keys(uow, PrincipalType.MERCHANT, shop.id, shop.merchant.livemode)
    return [
        {
            "id": key.id,
            "created": f"{key.created_at:%Y-%m-%d %H:%M} UTC",
            "revoked": f"{key.revoked_at:%Y-%m-%d %H:%M} UTC" if key.revoked_at else None,
            "current": key.id == shop.merchant.key_id,
        }
        for key in listed
    ]


@router.get("/merchant/keys")
async def console_keys(request: Request) -> Response:
    def context(uow: UnitOfWork, shop: Shop) -> dict[str, Any]:
        return {"title": "API keys", "keys": _merchant_keys(uow, shop)}

    return await _page(request, "console_keys.html", "keys", context)


@router.post("/merchant/keys")
async def console_key_create(request: Request) -> Response:
    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> Response:
        made = identity.issue_key(
            uow, PrincipalType.MERCHANT, shop.id, shop.merchant.livemode, actor=shop.merchant
        )
        context = {"title": "New secret key", "endpoint": None, "secret": made.secret}
        return pages.render(request, "console_secret.html", context, session=shop.session)

    return await _post(request, work, lambda _: "/merchant/keys")


@router.post("/merchant/keys/{key_id}/revoke")
async def console_key_revoke(request: Request, key_id: str) -> Response:
    def work(uow: UnitOfWork, shop: Shop, form: pages.Form) -> None:
        if key_id not in {key["id"] for key in _merchant_keys(uow, shop)}:
            raise NotFound(key_id)
        if key_id == shop.merchant.key_id:
            raise InvalidRequest("this console is signed in with that key: use another first")
        identity.revoke_key(uow, key_id, actor=shop.merchant)

    return await _post(request, work, lambda _: "/merchant/keys")
