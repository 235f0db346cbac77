"""Orders (``ord_``): what a completed checkout became, its lifecycle, its refunds, and the
evidence a dispute needs.

- :func:`create_for_checkout` runs inside the transaction that completes a checkout (its
  payment succeeded): the order keeps the signed cart, the payment and its hold.
- :func:`update_status` (the merchant or an admin) follows :mod:`paywarden.commerce.orders`;
  canceling a paid order refunds what remains, to the original wallet.
- :func:`refund` (the merchant or an admin): full or partial, with a reason, through
  :func:`paywarden.services.holds.refund` on the payment's hold, so the money goes back to
  the wallet that paid and never more than was captured (checked on the order, on the hold
  and by the ``orders`` CHECK constraint).
- :func:`evidence`: one JSON document with the mandate and its consent, the approval, the
  signed cart, the receipt, the audit records, the events and their webhook deliveries.

Who sees an order: its merchant, its user, its agent, an admin; anyone else gets 404.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import insert, select

from paywarden.adapters.ids import new_id
from paywarden.commerce.cart import hash_payload
from paywarden.commerce.orders import OrderStatus, check_transition, refundable
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound, PaywardenError, Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import access, approvals, audit, holds, mandates, merchants, payments
from paywarden.services.listing import page_rows
from paywarden.services.records import Page
from paywarden.store import schema
from paywarden.store.audit_repo import record_from_row
from paywarden.store.outbox import emit
from paywarden.store.tables_checkout import checkout_sessions, order_refunds, orders
from paywarden.store.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from paywarden.services.checkout import CheckoutRecord

__all__ = [
    "OrderRecord",
    "OrderRefund",
    "create_for_checkout",
    "evidence",
    "get",
    "list_orders",
    "refund",
    "update_status",
    "wire_order",
    "wire_refund",
]

REASON_LENGTH_MAX = 64
EVIDENCE_ROWS_MAX = 1000
CANCELED_REASON = "order_canceled"
_O = orders


@dataclass(frozen=True, slots=True)
class OrderRefund:
    id: str
    livemode: bool
    order_id: str
    amount: int
    currency: str
    reason: str | None
    actor_type: str
    actor_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    livemode: bool
    checkout_session_id: str
    merchant_id: str
    agent_id: str
    user_id: str
    mandate_id: str
    payment_id: str
    hold_id: str
    currency: str
    amount_total: int
    amount_refunded: int
    status: str
    fulfillment_type: str | None
    line_items: tuple[dict[str, Any], ...]
    totals: tuple[tuple[str, int], ...]
    fulfillment: dict[str, Any] | None
    cart: dict[str, Any]
    cart_hash: str
    cart_signature: str | None
    created_at: datetime
    updated_at: datetime
    refunds: tuple[OrderRefund, ...] = ()


def _from_row(row: Any, refunds: tuple[OrderRefund, ...] = ()) -> OrderRecord:
    return OrderRecord(
        id=row.id,
        livemode=bool(row.livemode),
        checkout_session_id=row.checkout_session_id,
        merchant_id=row.merchant_id,
        agent_id=row.agent_id,
        user_id=row.user_id,
        mandate_id=row.mandate_id,
        payment_id=row.payment_id,
        hold_id=row.hold_id,
        currency=row.currency,
        amount_total=int(row.amount_total),
        amount_refunded=int(row.amount_refunded),
        status=row.status,
        fulfillment_type=row.fulfillment_type,
        line_items=tuple(row.line_items),
        totals=tuple((str(kind), int(amount)) for kind, amount in row.totals),
        fulfillment=row.fulfillment,
        cart=dict(row.cart),
        cart_hash=row.cart_hash,
        cart_signature=row.cart_signature,
        created_at=row.created_at,
        updated_at=row.updated_at,
        refunds=refunds,
    )


def _refunds_of(uow: UnitOfWork, order_id: str, currency: str) -> tuple[OrderRefund, ...]:
    r = order_refunds
    rows = uow.execute(select(r).where(r.c.order_id == order_id).order_by(r.c.id))
    return tuple(
        OrderRefund(
            row.id,
            bool(row.livemode),
            row.order_id,
            int(row.amount),
            currency,
            row.reason,
            row.actor_type,
            row.actor_id,
            row.created_at,
        )
        for row in rows
    )


def _load(uow: UnitOfWork, order_id: str, *, lock: bool) -> OrderRecord | None:
    query = select(_O).where(_O.c.id == order_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    return _from_row(row, _refunds_of(uow, row.id, row.currency))


def _may_see(principal: Principal, record: OrderRecord) -> bool:
    if principal.livemode != record.livemode:
        return False
    parties = {record.merchant_id, record.user_id, record.agent_id}
    return principal.is_admin or principal.id in parties


def _hidden(order_id: str) -> NotFound:
    return NotFound(f"no such order: {order_id}", param="$.order")


def create_for_checkout(
    uow: UnitOfWork,
    principal: Principal | None,
    session: CheckoutRecord,
    payment: payments.PaymentRecord,
) -> str:
    """The order of a checkout whose payment succeeded, in the same transaction."""
    invariant(payment.status == "succeeded", "an order is created for a paid checkout only")
    invariant(payment.hold_id is not None, "a paid checkout has a captured hold")
    invariant(payment.amount == session.amount_total, "the order is the amount paid")
    now = uow.clock.now()
    order_id = new_id("ord")
    uow.execute(
        insert(_O).values(
            id=order_id,
            livemode=session.livemode,
            checkout_session_id=session.id,
            merchant_id=session.merchant_id,
            agent_id=session.agent_id,
            user_id=payment.user_id,
            mandate_id=payment.mandate_id,
            payment_id=payment.id,
            hold_id=payment.hold_id,
            currency=session.currency,
            amount_total=payment.amount,
            amount_refunded=0,
            status=OrderStatus.CREATED.value,
            fulfillment_type=(session.fulfillment or {}).get("type"),
            line_items=list(session.line_items),
            totals=[list(pair) for pair in session.totals],
            fulfillment=session.fulfillment,
            cart=session.cart,
            cart_hash=session.cart_hash,
            cart_signature=session.cart_signature,
            created_at=now,
            updated_at=now,
        )
    )
    record = _load(uow, order_id, lock=False)
    assert record is not None
    audit.record(
        uow,
        "order.created",
        principal,
        order_id,
        {"checkout_session": session.id, "payment": payment.id, "amount": payment.amount},
    )
    emit(uow, "order.created", record.livemode, wire_order(record))
    return order_id


def get(uow: UnitOfWork, principal: Principal, order_id: str) -> OrderRecord:
    """The order, for its merchant, user, agent or an admin; else 404."""
    record = _load(uow, order_id, lock=False)
    if record is None or not _may_see(principal, record):
        raise _hidden(order_id)
    return record


def list_orders(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None,
    starting_after: str | None,
    status: str | None = None,
) -> Page:
    """The principal's orders, newest first: a merchant's, a user's, an agent's (all: admin)."""
    conditions = [_O.c.livemode == principal.livemode]
    column = {
        PrincipalType.MERCHANT: _O.c.merchant_id,
        PrincipalType.USER: _O.c.user_id,
        PrincipalType.AGENT: _O.c.agent_id,
    }.get(principal.type)
    if not principal.is_admin:
        if column is None:
            raise NotFound("no orders here: orders belong to merchants, users and agents")
        conditions.append(column == principal.id)
    if status is not None:
        if status not in {s.value for s in OrderStatus}:
            raise InvalidRequest("unknown order status", param="$.status")
        conditions.append(_O.c.status == status)
    rows, has_more = page_rows(uow, _O, conditions, limit=limit, starting_after=starting_after)
    return Page([_from_row(row) for row in rows], has_more)


def _merchant_locked(uow: UnitOfWork, principal: Principal, order_id: str) -> OrderRecord:
    record = _load(uow, order_id, lock=True)
    if record is None or not _may_see(principal, record):
        raise _hidden(order_id)
    access.require_type(principal, PrincipalType.MERCHANT)
    if not principal.is_admin and principal.id != record.merchant_id:
        raise _hidden(order_id)
    return record


def update_status(uow: UnitOfWork, principal: Principal, order_id: str, status: Any) -> OrderRecord:
    """The merchant moves the order along its lifecycle (409 for a move it forbids)."""
    try:
        target = OrderStatus(status)
    except ValueError:
        raise InvalidRequest(
            f"status is one of {[s.value for s in OrderStatus]}", param="$.status"
        ) from None
    record = _merchant_locked(uow, principal, order_id)
    check_transition(OrderStatus(record.status), target, record.fulfillment_type)
    if target is OrderStatus.CANCELED and refundable(record.amount_total, record.amount_refunded):
        _refund_locked(uow, principal, record, None, CANCELED_REASON)
        record = _merchant_locked(uow, principal, order_id)
    uow.execute(
        sa.update(_O)
        .where(_O.c.id == order_id)
        .values(status=target.value, updated_at=uow.clock.now())
    )
    audit.record(
        uow, "order.updated", principal, order_id, {"from": record.status, "to": target.value}
    )
    return _announce(uow, order_id)


def _announce(uow: UnitOfWork, order_id: str) -> OrderRecord:
    record = _load(uow, order_id, lock=False)
    assert record is not None
    emit(uow, "order.updated", record.livemode, wire_order(record))
    return record


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > REASON_LENGTH_MAX:
        raise InvalidRequest(
            f"a refund needs a reason of 1 to {REASON_LENGTH_MAX} characters",
            code="parameter_missing" if value is None else "invalid_value",
            param="$.reason",
        )
    return value.strip()


def refund(
    uow: UnitOfWork,
    principal: Principal,
    order_id: str,
    *,
    amount: Any = None,
    reason: Any,
) -> OrderRefund:
    """Refund ``amount`` (all that remains when None) to the wallet that paid."""
    reason = _reason(reason)
    record = _merchant_locked(uow, principal, order_id)
    made = _refund_locked(uow, principal, record, amount, reason)
    _announce(uow, order_id)
    return made


def _refund_locked(
    uow: UnitOfWork, principal: Principal, record: OrderRecord, amount: Any, reason: str
) -> OrderRefund:
    remaining = refundable(record.amount_total, record.amount_refunded)
    if amount is not None and (
        isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0
    ):
        raise InvalidRequest(
            "amount is a positive integer count of minor units",
            code="invalid_amount",
            param="$.amount",
        )
    if remaining == 0 or (amount is not None and amount > remaining):
        raise Unprocessable(
            f"cannot refund {amount if amount is not None else 'the rest'}: "
            f"{remaining} of the order's {record.amount_total} remains refundable",
            code="refund_exceeds_captured",
            param="$.amount",
        )
    value = remaining if amount is None else amount
    made = holds.refund(uow, principal, hold_id=record.hold_id, amount=value, reason=reason)
    now = uow.clock.now()
    uow.execute(
        insert(order_refunds).values(
            id=made.id,
            livemode=record.livemode,
            order_id=record.id,
            amount=value,
            reason=reason,
            actor_type=principal.type.value,
            actor_id=principal.id,
            created_at=now,
        )
    )
    done = uow.execute(
        sa.update(_O)
        .where(_O.c.id == record.id, _O.c.amount_refunded == record.amount_refunded)
        .values(amount_refunded=record.amount_refunded + value, updated_at=now)
    )
    invariant(done.rowcount == 1, f"order {record.id} changed under its row lock")
    audit.record(
        uow,
        "order.refunded",
        principal,
        record.id,
        {"refund": made.id, "amount": value, "reason": reason},
    )
    return OrderRefund(
        made.id,
        record.livemode,
        record.id,
        value,
        record.currency,
        reason,
        principal.type.value,
        principal.id,
        now,
    )


# --- the dispute evidence bundle -----------------------------------------------------------


def _as_admin(principal: Principal, livemode: bool) -> Principal:
    """The platform reads the related records for a principal already allowed the order."""
    return Principal(PrincipalType.ADMIN, None, livemode, principal.key_id, principal.api_version)


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _audit_records(uow: UnitOfWork, subjects: Iterable[str]) -> list[dict[str, Any]]:
    a = schema.audit_records
    # The stored text, as the audit log's own loader reads it (the driver never parses it).
    columns = [column for column in a.c if column.name not in {"id", "data"}]
    rows = uow.execute(
        select(*columns, sa.cast(a.c.data, sa.Text).label("data"))
        .where(a.c.subject_id.in_(sorted(subjects)))
        .order_by(a.c.occurred_at, a.c.partition, a.c.sequence)
        .limit(EVIDENCE_ROWS_MAX)
    ).mappings()
    out = []
    for row in rows:
        record = record_from_row(row)
        out.append(
            {
                "partition": record.partition,
                "sequence": record.sequence,
                "event_type": record.event_type,
                "actor_type": record.actor_type,
                "actor_id": record.actor_id,
                "subject_id": record.subject_id,
                "data": record.data,
                "occurred_at": rfc3339(record.occurred_at),
                "prev_hash": record.prev_hash,
                "hash": record.hash,
            }
        )
    return out


def _events(
    uow: UnitOfWork, ids: set[str], since: datetime, livemode: bool
) -> list[dict[str, Any]]:
    e = schema.events
    rows = uow.execute(
        select(e)
        .where(e.c.livemode == livemode, e.c.created_at >= since)
        .order_by(e.c.created_at, e.c.id)
        .limit(EVIDENCE_ROWS_MAX * 10)
    )
    found = []
    for row in rows:
        subject = (row.data or {}).get("object", {})
        if isinstance(subject, dict) and subject.get("id") in ids:
            found.append(
                {
                    "id": row.id,
                    "type": row.type,
                    "created": rfc3339(row.created_at),
                    "data": row.data,
                }
            )
    return found[:EVIDENCE_ROWS_MAX]


def _webhook_deliveries(uow: UnitOfWork, event_ids: list[str]) -> list[dict[str, Any]] | None:
    """Delivery attempts of these events, when the webhook tables exist; else None."""
    table = schema.metadata.tables.get("webhook_deliveries")
    if table is None or "event_id" not in table.c or not event_ids:
        return None if table is None else []
    rows = uow.execute(
        select(table).where(table.c.event_id.in_(event_ids)).limit(EVIDENCE_ROWS_MAX)
    ).mappings()
    return [{key: _json_safe(value) for key, value in row.items()} for row in rows]


def _signed_cart(uow: UnitOfWork, record: OrderRecord) -> dict[str, Any]:

    verified = record.cart_signature is not None
    if record.cart_signature is not None:
        try:
            merchants.verify_cart_signature(
                uow, record.merchant_id, record.livemode, record.cart_hash, record.cart_signature
            )
        except PaywardenError:
            verified = False
    return {
        "cart": record.cart,
        "cart_hash": record.cart_hash,
        "cart_hash_recomputed": hash_payload(record.cart),
        "cart_signature": record.cart_signature,
        "signature_verified": verified,
    }


def evidence(uow: UnitOfWork, principal: Principal, order_id: str) -> dict[str, Any]:
    """The dispute evidence bundle of an order, for its merchant, its user or an admin."""
    record = get(uow, principal, order_id)
    if principal.type is PrincipalType.AGENT:
        raise _hidden(order_id)
    admin = _as_admin(principal, record.livemode)
    payment = payments.get_payment(uow, admin, record.payment_id)
    mandate = mandates.wire_mandate(mandates.get_mandate(uow, admin, record.mandate_id))
    approval = (
        approvals.wire_approval(approvals.get(uow, admin, payment.approval_id))
        if payment.approval_id
        else None
    )
    session_row = uow.execute(
        select(checkout_sessions).where(checkout_sessions.c.id == record.checkout_session_id)
    ).first()
    assert session_row is not None
    refund_ids = {refund.id for refund in record.refunds}
    subjects = {record.id, record.checkout_session_id, record.payment_id, record.mandate_id}
    subjects |= refund_ids | ({payment.approval_id} if payment.approval_id else set())
    events = _events(uow, subjects | {record.hold_id}, session_row.created_at, record.livemode)
    return {
        "object": "order_evidence",
        "livemode": record.livemode,
        "created": rfc3339(uow.clock.now()),
        "order": wire_order(record),
        "payment": payments.wire_payment(payment),
        "mandate": mandate,
        "consent": {
            "mandate": record.mandate_id,
            "consented_at": mandate.get("consented_at"),
            "records": [
                r
                for r in _audit_records(uow, {record.mandate_id})
                if r["event_type"] in {"mandate.granted", "mandate.requested", "mandate.amended"}
            ],
        },
        "approval": approval,
        "signed_cart": _signed_cart(uow, record),
        "receipt": payment.receipt,
        "audit_records": _audit_records(uow, subjects),
        "events": events,
        "webhook_deliveries": _webhook_deliveries(uow, [event["id"] for event in events]),
    }


# --- the wire form -------------------------------------------------------------------------


def wire_refund(refund: OrderRefund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "object": "order_refund",
        "livemode": refund.livemode,
        "created": rfc3339(refund.created_at),
        "order": refund.order_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason,
        "requested_by": {"type": refund.actor_type, "id": refund.actor_id},
    }


def wire_order(record: OrderRecord) -> dict[str, Any]:
    from paywarden.services.checkout import totals_json  # noqa: PLC0415 -- checkout imports us

    return {
        "id": record.id,
        "object": "order",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "updated": rfc3339(record.updated_at),
        "status": record.status,
        "checkout_session": record.checkout_session_id,
        "merchant": record.merchant_id,
        "agent": record.agent_id,
        "user": record.user_id,
        "mandate": record.mandate_id,
        "payment": record.payment_id,
        "hold": record.hold_id,
        "currency": record.currency,
        "amount_total": record.amount_total,
        "amount_refunded": record.amount_refunded,
        "fulfillment": record.fulfillment,
        "line_items": [
            {**line, "totals": totals_json(line["totals"])} for line in record.line_items
        ],
        "totals": totals_json([*record.totals, ("amount_refunded", record.amount_refunded)]),
        "cart_hash": record.cart_hash,
        "cart_signature": record.cart_signature,
        "refunds": [wire_refund(refund) for refund in record.refunds],
    }
