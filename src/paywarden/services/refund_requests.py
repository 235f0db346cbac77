"""Refund requests: the agent asks, the merchant decides.

An agent may not refund anything itself (refunds move the merchant's money); it may *ask*,
for its user, that one of its own orders be refunded — always to the wallet that paid, never
anywhere else. The merchant (or an admin) approves, which makes the refund through
:func:`paywarden.services.orders.refund` (never more than remains refundable, the fee share
returned), or declines, which moves nothing::

    asked = request(uow, agent, "ord_…", amount=500, reason="one bag arrived torn")
    decide(uow, merchant, asked.id, approve=True)     # → status approved, refund_id ref_…

Both steps are audited and announced (``refund_request.*`` events; the user's and the agent's
platform's webhooks receive them, as do the merchant's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from paywarden.adapters.ids import new_id
from paywarden.commerce.orders import refundable
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import access, audit, orders
from paywarden.store.outbox import emit
from paywarden.store.tables_refund_requests import refund_requests
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["RefundRequest", "decide", "get", "list_for_order", "request", "wire_refund_request"]

_R = refund_requests


@dataclass(frozen=True, slots=True)
class RefundRequest:
    id: str
    livemode: bool
    order_id: str
    merchant_id: str
    agent_id: str
    user_id: str
    amount: int | None
    currency: str
    reason: str
    status: str
    refund_id: str | None
    created_at: datetime
    decided_at: datetime | None


def _from_row(row: Any) -> RefundRequest:
    return RefundRequest(
        id=row.id,
        livemode=bool(row.livemode),
        order_id=row.order_id,
        merchant_id=row.merchant_id,
        agent_id=row.agent_id,
        user_id=row.user_id,
        amount=None if row.amount is None else int(row.amount),
        currency=row.currency,
        reason=row.reason,
        status=row.status,
        refund_id=row.refund_id,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


def _hidden(request_id: str) -> NotFound:
    return NotFound(f"no such refund request: {request_id}", param="$.refund_request")


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > orders.REASON_LENGTH_MAX:
        raise InvalidRequest(
            f"a refund request needs a reason of 1 to {orders.REASON_LENGTH_MAX} characters",
            code="parameter_missing" if value is None else "invalid_value",
            param="$.reason",
        )
    return value.strip()


def _amount(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequest(
            "amount is a positive integer in minor units", code="invalid_amount", param="$.amount"
        )
    return value


def request(
    uow: UnitOfWork, principal: Principal, order_id: str, *, amount: Any = None, reason: Any
) -> RefundRequest:
    """The order's own agent asks for ``amount`` (all that remains when None) back to the
    wallet that paid. Another agent's order is a 404; asking beyond what remains refundable
    is 422 ``refund_exceeds_captured``."""
    access.require_type(principal, PrincipalType.AGENT)
    text, wanted = _reason(reason), _amount(amount)
    order = orders.get(uow, principal, order_id)  # 404 unless a party to it
    if not principal.is_admin and principal.id != order.agent_id:
        raise NotFound(f"no such order: {order_id}", param="$.order")
    remaining = refundable(order.amount_total, order.amount_refunded)
    if remaining <= 0 or (wanted is not None and wanted > remaining):
        raise Unprocessable(
            f"at most {remaining} remains refundable on {order_id}",
            code="refund_exceeds_captured",
            param="$.amount",
        )
    record = RefundRequest(
        id=new_id("rfr"),
        livemode=order.livemode,
        order_id=order.id,
        merchant_id=order.merchant_id,
        agent_id=order.agent_id,
        user_id=order.user_id,
        amount=wanted,
        currency=order.currency,
        reason=text,
        status="requested",
        refund_id=None,
        created_at=uow.clock.now(),
        decided_at=None,
    )
    uow.execute(
        sa.insert(_R).values(
            id=record.id,
            livemode=record.livemode,
            order_id=record.order_id,
            merchant_id=record.merchant_id,
            agent_id=record.agent_id,
            user_id=record.user_id,
            amount=record.amount,
            currency=record.currency,
            reason=record.reason,
            status=record.status,
            created_at=record.created_at,
        )
    )
    audit.record(
        uow, "refund_request.created", principal, record.id, {"order": order_id, "amount": wanted}
    )
    emit(uow, "refund_request.created", record.livemode, wire_refund_request(record))
    return record


def _may_see(principal: Principal, record: RefundRequest) -> bool:
    if principal.livemode != record.livemode:
        return False
    parties = {record.merchant_id, record.agent_id, record.user_id}
    return principal.is_admin or principal.id in parties


def _load(uow: UnitOfWork, request_id: str, *, lock: bool) -> RefundRequest | None:
    query = sa.select(_R).where(_R.c.id == request_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _from_row(row)


def get(uow: UnitOfWork, principal: Principal, request_id: str) -> RefundRequest:
    record = _load(uow, request_id, lock=False)
    if record is None or not _may_see(principal, record):
        raise _hidden(request_id)
    return record


def list_for_order(uow: UnitOfWork, principal: Principal, order_id: str) -> list[RefundRequest]:
    orders.get(uow, principal, order_id)  # 404 unless a party to the order
    rows = uow.execute(sa.select(_R).where(_R.c.order_id == order_id).order_by(_R.c.id))
    return [r for r in map(_from_row, rows) if _may_see(principal, r)]


def decide(
    uow: UnitOfWork, principal: Principal, request_id: str, *, approve: bool
) -> RefundRequest:
    """The order's merchant (or an admin) approves — the refund is made now, to the wallet
    that paid — or declines. A request decided already is a 409."""
    record = _load(uow, request_id, lock=True)
    if record is None or not _may_see(principal, record):
        raise _hidden(request_id)
    access.require_type(principal, PrincipalType.MERCHANT)
    if not principal.is_admin and principal.id != record.merchant_id:
        raise _hidden(request_id)
    if record.status != "requested":
        raise Conflict(
            f"this refund request was {record.status} already", code="refund_request_decided"
        )
    refund_id = None
    if approve:
        made = orders.refund(
            uow, principal, record.order_id, amount=record.amount, reason=record.reason
        )
        refund_id = made.id
    status, now = ("approved" if approve else "declined"), uow.clock.now()
    uow.execute(
        sa.update(_R)
        .where(_R.c.id == request_id)
        .values(status=status, refund_id=refund_id, decided_at=now)
    )
    decided = _load(uow, request_id, lock=False)
    assert decided is not None
    event = f"refund_request.{status}"
    audit.record(uow, event, principal, request_id, {"order": record.order_id, "refund": refund_id})
    emit(uow, event, decided.livemode, wire_refund_request(decided))
    return decided


def wire_refund_request(record: RefundRequest) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "refund_request",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "order": record.order_id,
        "merchant": record.merchant_id,
        "agent": record.agent_id,
        "user": record.user_id,
        "amount": record.amount,
        "currency": record.currency,
        "reason": record.reason,
        "status": record.status,
        "refund": record.refund_id,
        "decided": rfc3339(record.decided_at) if record.decided_at else None,
    }
