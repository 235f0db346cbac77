"""The user's dashboard on the trusted surface: wallet, mandates, approvals, payments,
agents, data and settings.

- ``GET /`` sends a signed-in user to ``/home``, anyone else to ``/signin``.
- ``GET /home``: balances, this week's spending per active mandate against its limit (a
  chart drawn as inline SVG: no JavaScript, nothing loaded from elsewhere), the approvals
  waiting (also a badge in the header of every page), recent payments.
- ``GET /mandates``, ``GET /mandates/{id}``: each mandate in plain words with what is left
  and its payments; ``POST /mandates/{id}/state`` pauses, resumes or revokes it;
  ``POST /mandates/{id}/amend`` changes its amount limits (then the user consents again).
- ``GET /approvals``: the payments waiting for the user (each opens the approval page).
- ``GET /payments``; ``GET /payments/{id}/receipt``: the signed receipt, to download and
  verify offline (``paywarden verify``).
- ``GET /orders``: the user's orders, with each payment's receipt.
- ``GET /devices``; ``POST /devices/{id}/revoke``: the user's devices; a lost one is revoked
  at once, with its tap tokens.
- ``GET /agents``: the agents that hold or asked for the user's mandates.
- ``GET /privacy``; ``GET /privacy/export`` (a JSON download); ``POST /privacy/erase``.
- ``GET /settings``; ``POST /settings/password``; ``POST /settings/sessions/end``; the
  passkeys listed there are added and removed through ``web/routes.py``.
- ``GET /lang/{en|zh}?next=``: the language switch (a cookie).

Every page needs a signed-in user and shows only that user's objects: an id that is not
theirs is a 404, the same as one that does not exist. Every POST checks the CSRF token first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from paywarden.api.http import runtime
from paywarden.authorization.constraints import (
    AmountRange,
    Budget,
    Period,
    PeriodBudget,
    to_json,
)
from paywarden.authorization.mandates import MandateStatus
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, PaywardenError
from paywarden.kernel.money import format_amount
from paywarden.kernel.principals import Principal
from paywarden.services import (
    dashboard,
    devices,
    mandates,
    orders,
    passkeys,
    payments,
    privacy,
    receipts,
    web_access,
)
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.web import amounts, i18n, pages
from paywarden.web.session import Session
from paywarden.web.wording import describe_all

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

CHART_WIDTH = 560
CHART_ROW = 44
ERASE_WORD = "DELETE"
_LIMIT_TYPES = (AmountRange, Budget, PeriodBudget)
_THIS_PERIOD = {Period.DAILY: "today", Period.WEEKLY: "this week", Period.MONTHLY: "this month"}


@dataclass(frozen=True, slots=True)
class Shown:
    """A signed-in page request: the session and its user."""

    session: Session
    user: Principal


async def _signed_in(request: Request) -> Shown | Response:
    session = pages.web_session(request)
    user = await pages.signed_in_user(request, session)
    if session is None or user is None:
        return pages.to_sign_in(request)
    return Shown(session, user)


async def _page(
    request: Request,
    template: str,
    section: str,
    context_of: Callable[[UnitOfWork, Principal], dict[str, Any]],
) -> Response:
    """Render a dashboard page for its signed-in user (404 for another user's id)."""
    shown = await _signed_in(request)
    if isinstance(shown, Response):
        return shown
    store = runtime(request).store

    def read(uow: UnitOfWork) -> dict[str, Any]:
        context = context_of(uow, shown.user)
        return context | {
            "section": section,
            "pending_count": dashboard.pending_approval_count(uow, shown.user),
            "livemode": shown.user.livemode,
        }

    try:
        context = await run_in_threadpool(store.run, read, read_only=True)
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such page.", session=shown.session
        )
    return pages.render(request, template, context, session=shown.session)


async def _checked_post(request: Request) -> tuple[Shown, pages.Form] | Response:
    session = pages.web_session(request)
    form = await pages.read_form(request)
    if not pages.csrf_ok(request, session, form):
        return pages.error_page(request, 403, "Refused", "The form expired. Reload and retry.")
    shown = await _signed_in(request)
    if isinstance(shown, Response):
        return shown
    return shown, form


def _money(amount: int | None, currency: str) -> str:
    return "—" if amount is None else format_amount(amount, currency)


# --- home -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChartRow:
    y: int
    label: str
    used_width: int
    over: bool
    caption: str


def _chart(bars: tuple[dashboard.BudgetBar, ...], words: Callable[[str], str]) -> list[ChartRow]:
    """Geometry of the spending chart: one row per mandate, bar widths in SVG units."""
    rows = []
    for index, bar in enumerate(bars):
        limit = bar.limit or 0
        share = min(1.0, bar.spent / limit) if limit else (1.0 if bar.spent else 0.0)
        kind = words(f"limit.{bar.limit_kind}")
        caption = f"{_money(bar.spent, bar.currency)} / {_money(bar.limit, bar.currency)} ({kind})"
        rows.append(
            ChartRow(
                y=index * CHART_ROW,
                label=bar.agent_name,
                used_width=round(share * CHART_WIDTH),
                over=bool(limit) and bar.spent >= limit,
                caption=caption,
            )
        )
    return rows


@router.get("/")
async def root(request: Request) -> Response:
    user = await pages.signed_in_user(request, pages.web_session(request))
    return pages.redirect("/home" if user is not None else "/signin")


@router.get("/home")
async def home(request: Request) -> Response:
    words = i18n.translator(i18n.language(request))

    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        view = dashboard.overview(uow, user)
        names = dashboard.merchant_names(uow, {p.merchant_id for p in view.recent}, user.livemode)
        return {
            "title": words("home.title"),
            "wallets": [
                {
                    "id": w.id,
                    "posted": _money(w.posted, w.currency),
                    "available": _money(w.available, w.currency),
                }
                for w in view.wallets
            ],
            "chart": _chart(view.bars, words),
            "chart_width": CHART_WIDTH,
            "chart_height": max(1, len(view.bars)) * CHART_ROW,
            "bars": view.bars,
            "recent": [_payment_row(p, names) for p in view.recent],
            "approvals_waiting": view.pending_approvals,
        }

    return await _page(request, "home.html", "home", context)


# --- mandates -------------------------------------------------------------------------------


def _mandate_row(uow: UnitOfWork, view: mandates.MandateView) -> dict[str, Any]:
    mandate = view.mandate
    return {
        "id": mandate.id,
        "agent": dashboard.agent_summary(uow, mandate.agent).name,
        "status": mandate.status.value,
        "rules": describe_all(mandate.constraints, timezone=mandate.timezone, names={}),
        "pending": mandate.status is MandateStatus.PENDING_CONSENT,
    }


@router.get("/mandates")
async def mandate_list(request: Request) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        views = dashboard.user_mandates(uow, user)
        return {"title": "Mandates", "mandates": [_mandate_row(uow, v) for v in views]}

    return await _page(request, "mandates.html", "mandates", context)


def _own_mandate(uow: UnitOfWork, user: Principal, mandate_id: str) -> mandates.MandateView:
    view = mandates.get_mandate(uow, user, mandate_id)
    if view.mandate.user != user.id:
        raise NotFound(f"no such mandate: {mandate_id}")
    return view


def _left_words(view: mandates.MandateView) -> list[str]:
    words = []
    for entry in view.remaining:
        parts = []
        if entry.amount_left is not None and entry.currency:
            parts.append(f"{format_amount(entry.amount_left, entry.currency)} left")
        if entry.count_left is not None:
            parts.append(f"{entry.count_left} payments left")
        if entry.period is not None:
            parts.append(_THIS_PERIOD[entry.period])
        if entry.next_allowed_at is not None:
            parts.append(f"next payment allowed from {entry.next_allowed_at:%Y-%m-%d %H:%M} UTC")
        if parts:
            words.append(", ".join(parts))
    return words


def _limit_fields(view: mandates.MandateView) -> list[dict[str, Any]]:
    """The amount limits a user may change on the page, as decimal strings."""
    fields = []
    for index, c in enumerate(view.mandate.constraints):
        if isinstance(c, _LIMIT_TYPES):
            label = describe_all([c], timezone=view.mandate.timezone, names={})[0]
            fields.append(
                {
                    "name": f"limit_{index}",
                    "label": label,
                    "value": amounts.decimal_text(c.max_amount, c.currency),
                    "step": amounts.step(c.currency),
                }
            )
    return fields


@router.get("/mandates/{mandate_id}")
async def mandate_page(request: Request, mandate_id: str) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        view = _own_mandate(uow, user, mandate_id)
        history = dashboard.user_payments(uow, user, mandate_id=mandate_id)
        names = dashboard.merchant_names(uow, {p.merchant_id for p in history}, user.livemode)
        payees = set().union(
            *(getattr(c, "merchant_ids", frozenset()) for c in view.mandate.constraints)
        )
        payee_names = dashboard.merchant_names(uow, payees, user.livemode)
        mandate = view.mandate
        return {
            "title": "Mandate",
            "mandate": mandate,
            "status": mandate.status.value,
            "agent": dashboard.agent_summary(uow, mandate.agent),
            "rules": describe_all(
                mandate.constraints, timezone=mandate.timezone, names=payee_names
            ),
            "left": _left_words(view),
            "history": [_payment_row(p, names) for p in history],
            "limits": _limit_fields(view),
            "can_pause": mandate.status is MandateStatus.ACTIVE,
            "can_resume": mandate.status is MandateStatus.PAUSED,
            "can_revoke": mandate.status
            in {MandateStatus.ACTIVE, MandateStatus.PAUSED, MandateStatus.PENDING_CONSENT},
            "pending": mandate.status is MandateStatus.PENDING_CONSENT,
        }

    return await _page(request, "mandate.html", "mandates", context)


_CHANGES = {"pause": mandates.pause, "resume": mandates.resume, "revoke": mandates.revoke}


@router.post("/mandates/{mandate_id}/state")
async def mandate_state(request: Request, mandate_id: str) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, form = checked
    change = _CHANGES.get(form.get("action") or "")
    if change is None:
        return pages.error_page(request, 400, "Bad request", "Choose pause, resume or revoke.")

    def work(uow: UnitOfWork) -> None:
        _own_mandate(uow, shown.user, mandate_id)
        change(uow, shown.user, mandate_id)

    return await _run_change(request, shown, work, f"/mandates/{mandate_id}")


def _amended(view: mandates.MandateView, form: pages.Form) -> list[dict[str, Any]]:
    """The mandate's constraints as JSON with the amount limits the form changed."""
    out = []
    for index, c in enumerate(view.mandate.constraints):
        body = to_json(c)
        raw = form.get(f"limit_{index}")
        typed = amounts.parse_decimal(raw, c.currency) if isinstance(c, _LIMIT_TYPES) else None
        if typed is not None:
            body["max"] = typed
        out.append(body)
    return out


@router.post("/mandates/{mandate_id}/amend")
async def mandate_amend(request: Request, mandate_id: str) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, form = checked

    def work(uow: UnitOfWork) -> None:
        view = _own_mandate(uow, shown.user, mandate_id)
        mandates.amend(uow, shown.user, mandate_id, _amended(view, form))

    return await _run_change(
        request, shown, work, f"/mandates/{mandate_id}/consent", back=f"/mandates/{mandate_id}"
    )


async def _run_change(
    request: Request,
    shown: Shown,
    work: Callable[[UnitOfWork], None],
    then: str,
    *,
    back: str | None = None,
) -> Response:
    try:
        await run_in_threadpool(runtime(request).store.run, work)
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such page.", session=shown.session
        )
    except Conflict:
        return pages.redirect(back or then)  # changed meanwhile: show it as it is now
    except InvalidRequest as error:
        return pages.error_page(request, 400, "Not changed", error.message, session=shown.session)
    return pages.redirect(then)


# --- approvals and payments ------------------------------------------------------------------


def _payment_row(record: payments.PaymentRecord, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": record.id,
        "when": f"{record.created_at:%Y-%m-%d %H:%M} UTC",
        "amount": _money(record.amount, record.currency),
        "payee": names.get(record.merchant_id, record.merchant_id),
        "status": record.status,
        "reasons": ", ".join(record.reasons),
        "mandate": record.mandate_id,
        "has_receipt": record.receipt is not None,
        "approval": record.approval_id if record.status == "requires_confirmation" else None,
    }


@router.get("/approvals")
async def approval_list(request: Request) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        waiting = dashboard.pending_approvals(uow, user)
        names = dashboard.merchant_names(uow, {a.merchant_id for a in waiting}, user.livemode)
        return {
            "title": "Approvals",
            "approvals": [
                {
                    "id": a.id,
                    "amount": _money(a.amount, a.currency),
                    "payee": names.get(a.merchant_id, a.merchant_id),
                    "agent": dashboard.agent_summary(uow, a.agent_id).name,
                    "expires": f"{a.expires_at:%Y-%m-%d %H:%M} UTC",
                }
                for a in waiting
            ],
        }

    return await _page(request, "approvals.html", "approvals", context)


@router.get("/payments")
async def payment_list(request: Request) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        listed = dashboard.user_payments(uow, user)
        names = dashboard.merchant_names(uow, {p.merchant_id for p in listed}, user.livemode)
        return {"title": "Payments", "payments": [_payment_row(p, names) for p in listed]}

    return await _page(request, "payments.html", "payments", context)


@router.get("/payments/{payment_id}/receipt")
async def payment_receipt(request: Request, payment_id: str) -> Response:
    """The payment's signed receipt (compact JWS), verified here before it is handed out."""
    shown = await _signed_in(request)
    if isinstance(shown, Response):
        return shown

    def read(uow: UnitOfWork) -> str:
        record = payments.get_payment(uow, shown.user, payment_id)
        if record.user_id != shown.user.id or record.receipt is None:
            raise NotFound(f"no receipt for {payment_id}")
        receipts.verify(uow, record.receipt)
        return record.receipt

    try:
        token = await run_in_threadpool(runtime(request).store.run, read, read_only=True)
    except NotFound:
        return pages.error_page(
            request, 404, "Not found", "There is no such receipt.", session=shown.session
        )
    response = Response(token + "\n", media_type="application/jose")
    response.headers.update(pages.SECURITY_HEADERS)
    response.headers["Content-Disposition"] = f'attachment; filename="{payment_id}.receipt.jws"'
    return response


@router.get("/orders")
async def order_list(request: Request) -> Response:
    """The user's orders (checkouts their agents paid), with the receipt of each payment."""

    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        listed = orders.list_orders(uow, user, limit=dashboard.LIST_SIZE_MAX, starting_after=None)
        names = dashboard.merchant_names(uow, {o.merchant_id for o in listed.items}, user.livemode)
        rows = [
            {
                "id": o.id,
                "when": f"{o.created_at:%Y-%m-%d %H:%M} UTC",
                "merchant": names.get(o.merchant_id, o.merchant_id),
                "summary": ", ".join(
                    f"{line.get('quantity', 1)} x {line.get('title') or line.get('sku')}"
                    for line in o.line_items
                ),
                "total": _money(o.amount_total, o.currency),
                "refunded": _money(o.amount_refunded, o.currency) if o.amount_refunded else "",
                "status": o.status.replace("_", " "),
                "payment": o.payment_id,
            }
            for o in listed.items
        ]
        return {"title": "Orders", "orders": rows}

    return await _page(request, "orders.html", "orders", context)


@router.get("/devices")
async def device_list(request: Request) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        rows = [
            {
                "id": d.id,
                "name": d.name,
                "kind": d.kind,
                "status": d.status,
                "tap_limit": _money(d.tap_limit, d.currency or "usd") if d.tap_limit else "—",
                "daily_limit": _money(d.daily_limit, d.currency or "usd") if d.daily_limit else "—",
                "created": f"{d.created_at:%Y-%m-%d %H:%M} UTC",
            }
            for d in devices.list_devices(uow, user)
        ]
        return {"title": "Devices", "devices": rows}

    return await _page(request, "devices.html", "devices", context)


@router.post("/devices/{device_id}/revoke")
async def device_revoke(request: Request, device_id: str) -> Response:
    """A lost device: revoked at once, with its payment tokens."""
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, _form = checked

    def work(uow: UnitOfWork) -> None:
        devices.revoke(uow, shown.user, device_id)

    return await _run_change(request, shown, work, "/devices")


# --- agents, data, settings ------------------------------------------------------------------


@router.get("/agents")
async def agent_list(request: Request) -> Response:
    def context(uow: UnitOfWork, user: Principal) -> dict[str, Any]:
        return {"title": "Agents", "agents": dashboard.connected_agents(uow, user)}

    return await _page(request, "agents.html", "agents", context)


@router.get("/privacy")
async def privacy_page(request: Request) -> Response:
    erased = request.query_params.get("erased") == "1"
    return await _page(
        request,
        "privacy.html",
        "privacy",
        lambda uow, user: {"title": "My data", "erased": erased, "erase_word": ERASE_WORD},
    )


@router.get("/privacy/export")
async def privacy_export(request: Request) -> Response:
    shown = await _signed_in(request)
    if isinstance(shown, Response):
        return shown
    store = runtime(request).store
    body = await run_in_threadpool(
        store.run, lambda uow: privacy.export(uow, shown.user), read_only=True
    )
    response = Response(
        json.dumps(body, indent=2, ensure_ascii=False, default=str) + "\n",
        media_type="application/json",
    )
    response.headers.update(pages.SECURITY_HEADERS)
    response.headers["Content-Disposition"] = 'attachment; filename="paywarden-my-data.json"'
    return response


@router.post("/privacy/erase")
async def privacy_erase(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, form = checked
    if (form.get("confirm") or "").strip() != ERASE_WORD:
        return pages.error_page(
            request,
            400,
            "Not erased",
            f"Type {ERASE_WORD} to confirm. Nothing was erased.",
            session=shown.session,
        )
    try:
        await run_in_threadpool(
            runtime(request).store.run, lambda uow: privacy.erase(uow, shown.user)
        )
    except PaywardenError as error:
        return pages.error_page(request, 409, "Not erased", error.message, session=shown.session)
    response = pages.redirect("/signin")
    pages.clear_session(request, response)
    return response


@router.get("/settings")
async def settings_page(request: Request) -> Response:
    saved = request.query_params.get("saved") == "1"
    passkey_note = request.query_params.get("passkey")  # "added" or "removed"
    return await _page(
        request,
        "settings.html",
        "settings",
        lambda uow, user: {
            "title": "Settings",
            "saved": saved,
            "passkeys": passkeys.list_passkeys(uow, user),
            "passkey_note": passkey_note if passkey_note in ("added", "removed") else None,
        },
    )


@router.post("/settings/password")
async def settings_password(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, form = checked
    password = form.get("password") or ""
    user_id = str(shown.user.id)

    def work(uow: UnitOfWork) -> None:
        web_access.set_password(uow, shown.user, user_id, password)

    return await _run_change(request, shown, work, "/settings?saved=1", back="/settings")


@router.post("/settings/sessions/end")
async def settings_end_sessions(request: Request) -> Response:
    checked = await _checked_post(request)
    if isinstance(checked, Response):
        return checked
    shown, _form = checked
    user_id = str(shown.user.id)
    await run_in_threadpool(
        runtime(request).store.run,
        lambda uow: web_access.end_all_sessions(uow, shown.user, user_id),
    )
    response = pages.redirect("/signin")
    pages.clear_session(request, response)
    return response


@router.get("/lang/{code}")
async def switch_language(request: Request, code: str) -> Response:
    if code not in i18n.LANGUAGES:
        return pages.error_page(request, 404, "Not found", "There is no such language.")
    response = pages.redirect(pages.safe_next(request.query_params.get("next")) or "/")
    response.set_cookie(
        i18n.LANG_COOKIE, code, max_age=365 * 86400, path="/", samesite="lax", httponly=True
    )
    return response
