"""Scan to pay: a merchant's QR payment requests, and paying one.

::

    request = payment_requests.create(uow, merchant, amount=450, currency="usd",
                                      reference="order 42", expires_in_s=600, secret=...)
    svg = payment_requests.qr_svg(request.payload)

- **Static** requests (no amount) are the merchant's standing QR: the payer says the amount.
  **Dynamic** requests carry an amount and a reference, expire, and are paid once.
- The QR holds ``request.payload`` (:func:`paywarden.trust.devices.encode_payment_request`):
  the claims a device shows, tagged by the platform; paying checks the tag and that the
  payload is the one the platform issued for that ``qr_`` id.
- Paying goes through the same decisions as every other payment:
  :func:`pay_with_device` (a user's device, under the device's limits, a step-up above
  them: the device's confirmation must then carry a PIN or biometric check) or
  :func:`pay_with_mandate` (an agent under a mandate, through
  :func:`paywarden.services.payments.pay`, step-up approvals included).
- The request row is locked ``FOR UPDATE`` while it is paid, so a dynamic request is paid at
  most once: a second payer is declined ``payment_request_paid`` (a pending agent payment
  awaiting its approval holds it too; declined, it frees the request again).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import segno
from sqlalchemy import insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.authorization.risk import RiskConfig
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit, devices, payments
from paywarden.services.devices import ConfirmationRecord, DeviceRecord
from paywarden.store import schema
from paywarden.store.outbox import emit
from paywarden.store.tables_devices import device_confirmations, payment_requests
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.devices import (
    STRONG_VERIFICATION,
    Confirmation,
    PaymentRequestClaims,
    encode_payment_request,
    verify_payment_request,
)
from paywarden.trust.tap import Limits, over_limits

__all__ = [
    "PaymentRequestRecord",
    "create",
    "get",
    "pay_with_device",
    "pay_with_mandate",
    "qr_png",
    "qr_svg",
    "wire_payment_request",
]

REFERENCE_LENGTH_MAX = 200
TTL_S_DEFAULT = 900
TTL_S_MAX = 30 * 86_400


@dataclass(frozen=True, slots=True)
class PaymentRequestRecord:
    id: str
    livemode: bool
    merchant_id: str
    kind: str
    amount: int | None
    currency: str
    reference: str | None
    payload: str
    expires_at: datetime | None
    paid_by: str | None
    created_at: datetime
    status: str = "open"  # computed: open, paid or expired


def _record(row: Any) -> PaymentRequestRecord:
    return PaymentRequestRecord(
        id=row.id,
        livemode=bool(row.livemode),
        merchant_id=row.merchant_id,
        kind=row.kind,
        amount=None if row.amount is None else int(row.amount),
        currency=row.currency,
        reference=row.reference,
        payload=row.payload,
        expires_at=row.expires_at,
        paid_by=row.paid_by,
        created_at=row.created_at,
    )


def create(
    uow: UnitOfWork,
    principal: Principal,
    *,
    amount: Any = None,
    currency: Any,
    reference: Any = None,
    expires_in_s: Any = None,
    secret: bytes,
) -> PaymentRequestRecord:
    """A merchant's QR payment request: static without ``amount``, dynamic with one."""
    if principal.type is not PrincipalType.MERCHANT or principal.id is None:
        raise PermissionDenied("a merchant makes its own payment requests")
    m = schema.merchants
    merchant = uow.execute(select(m.c.name).where(m.c.id == principal.id)).one()
    dynamic = amount is not None
    if reference is not None and (
        not isinstance(reference, str) or not 0 < len(reference) <= REFERENCE_LENGTH_MAX
    ):
        raise InvalidRequest(
            f"reference is 1 to {REFERENCE_LENGTH_MAX} characters",
            code="invalid_value",
            param="$.reference",
        )
    now = uow.clock.now()
    expires_at = now + timedelta(seconds=_ttl(expires_in_s)) if dynamic else None
    if not dynamic and expires_in_s is not None:
        raise InvalidRequest("a static request (no amount) does not expire", param="$.expires_in_s")
    claims = PaymentRequestClaims(
        qr=new_id("qr"),
        merchant=principal.id,
        merchant_name=str(merchant.name),
        amount=parse_amount(amount) if dynamic else None,
        currency=parse_currency(currency),
        reference=reference,
        exp=int(expires_at.timestamp()) if expires_at else None,
    )
    record = PaymentRequestRecord(
        id=claims.qr,
        livemode=principal.livemode,
        merchant_id=principal.id,
        kind="dynamic" if dynamic else "static",
        amount=claims.amount,
        currency=claims.currency,
        reference=reference,
        payload=encode_payment_request(claims, secret),
        expires_at=expires_at,
        paid_by=None,
        created_at=now,
    )
    values = {name: getattr(record, name) for name in PaymentRequestRecord.__slots__}
    del values["status"]
    uow.execute(insert(payment_requests).values(**values))
    audit.record(uow, "payment_request.created", principal, record.id, {"amount": record.amount})
    emit(uow, "payment_request.created", record.livemode, wire_payment_request(record))
    return record


def _ttl(value: Any) -> int:
    if value is None:
        return TTL_S_DEFAULT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TTL_S_MAX:
        raise InvalidRequest(
            f"expires_in_s is 1 to {TTL_S_MAX}", code="invalid_value", param="$.expires_in_s"
        )
    return value


def _payment_counts(uow: UnitOfWork, paid_by: str | None) -> bool:
    """Whether the payment recorded on a request still holds it: a device confirmation
    that succeeded, or an agent payment that succeeded or awaits its approval."""
    if paid_by is None:
        return False
    if paid_by.startswith("cnf_"):
        c = device_confirmations
        row = uow.execute(select(c.c.status).where(c.c.id == paid_by)).first()
        return row is not None and row.status == "succeeded"
    p = payments_table
    row = uow.execute(select(p.c.status).where(p.c.id == paid_by)).first()
    return row is not None and row.status in {"succeeded", "requires_confirmation"}


def _load(uow: UnitOfWork, request_id: str, *, lock: bool) -> PaymentRequestRecord | None:
    query = select(payment_requests).where(payment_requests.c.id == request_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    record = _record(row)
    if record.kind == "dynamic" and _payment_counts(uow, record.paid_by):
        return replace(record, status="paid")
    if record.expires_at is not None and uow.clock.now() > record.expires_at:
        return replace(record, status="expired")
    return record


def get(uow: UnitOfWork, principal: Principal, request_id: str) -> PaymentRequestRecord:
    """The request, for its merchant or an admin."""
    record = _load(uow, request_id, lock=False)
    if (
        record is None
        or record.livemode != principal.livemode
        or not (principal.is_admin or principal.id == record.merchant_id)
    ):
        raise NotFound(f"no such payment request: {request_id}", param="$.payment_request")
    return record


def _payable(
    uow: UnitOfWork, payload: str, livemode: bool, amount: Any, secret: bytes
) -> tuple[PaymentRequestRecord, int]:
    """The request a payload names, locked, and the amount to pay; 4xx when it cannot be."""
    claims = verify_payment_request(payload, secret)
    record = _load(uow, claims.qr, lock=True)
    if record is None or record.payload != payload or record.livemode != livemode:
        raise NotFound("no such payment request", param="$.payload")
    if record.status != "open":
        raise InvalidRequest(
            f"this payment request is {record.status}", code=f"payment_request_{record.status}"
        )
    if record.amount is not None:
        if amount is not None and parse_amount(amount) != record.amount:
            raise InvalidRequest(
                "this request's amount is fixed", code="amount_mismatch", param="$.amount"
            )
        return record, record.amount
    if amount is None:
        raise InvalidRequest(
            "a static request needs the amount", code="parameter_missing", param="$.amount"
        )
    return record, parse_amount(amount)


def _mark_paid(uow: UnitOfWork, record: PaymentRequestRecord, paid_by: str) -> None:
    if record.kind != "dynamic":
        return
    uow.execute(
        update(payment_requests).where(payment_requests.c.id == record.id).values(paid_by=paid_by)
    )
    paid = replace(record, paid_by=paid_by, status="paid")
    emit(uow, "payment_request.paid", record.livemode, wire_payment_request(paid))


def pay_with_device(
    uow: UnitOfWork,
    device: DeviceRecord,
    payload: str,
    confirmation: Confirmation,
    signature: str,
    *,
    amount: Any = None,
    secret: bytes,
    master_key: bytes,
    issuer: str,
) -> ConfirmationRecord:
    """A user's device pays a QR request on its own word (see the module docstring); the
    confirmation record, ``succeeded`` with its transfer and receipt or ``declined``."""
    device = devices.current(uow, devices.user_device(device))
    record, value = _payable(uow, payload, device.livemode, amount, secret)
    expected = (value, record.currency, record.merchant_id, None)
    reasons = devices.confirmation_outcome(device, confirmation, signature, expected)
    user = devices.acting_user(device)
    now = uow.clock.now()
    if not reasons and confirmation.user_verification not in STRONG_VERIFICATION:
        spent = devices.spent_today(uow, device.id, record.currency, now)
        limits = _limits(device)
        if over_limits(value, record.currency, limits, spent):
            reasons = ("step_up_required",)
    if not reasons and not devices.funded(uow, user, value, record.currency):
        reasons = ("insufficient_funds",)
    confirmed = devices.new_confirmation(uow, device, record.id, confirmation, signature, reasons)
    if not reasons:
        hold_id, transfer_id = devices.settle(
            uow, user, record.merchant_id, value, record.currency, f"{confirmed.id} for {record.id}"
        )
        receipt = devices.receipt_for(
            uow,
            master_key,
            issuer,
            confirmed.id,
            value,
            record.currency,
            record.merchant_id,
            None,
            transfer_id,
        )
        confirmed = replace(confirmed, hold_id=hold_id, transfer_id=transfer_id, receipt=receipt)
    stored = devices.record_confirmation(uow, device, confirmed)
    if stored.status == "succeeded":
        _mark_paid(uow, record, stored.id)
    return stored


def _limits(device: DeviceRecord) -> Limits:
    return Limits(device.currency, device.tap_limit, device.daily_limit)


def pay_with_mandate(
    uow: UnitOfWork,
    principal: Principal,
    payload: str,
    mandate_id: str,
    *,
    amount: Any = None,
    secret: bytes,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig = payments.RISK_DEFAULT,
) -> payments.PaymentRecord:
    """An agent pays a QR request under a mandate, through ``payments.pay``."""
    record, value = _payable(uow, payload, principal.livemode, amount, secret)
    paid = payments.pay(
        uow,
        principal,
        mandate_id,
        record.merchant_id,
        value,
        record.currency,
        None,
        master_key=master_key,
        issuer=issuer,
        risk=risk,
    )
    if paid.status != "declined":
        _mark_paid(uow, record, paid.id)
    return paid


def qr_svg(payload: str, *, scale: int = 4) -> str:
    """The QR code of ``payload`` as an SVG document."""
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="svg", scale=scale, xmldecl=False)
    return out.getvalue().decode("utf-8")


def qr_png(payload: str, *, scale: int = 4) -> bytes:
    out = io.BytesIO()
    segno.make(payload, error="m").save(out, kind="png", scale=scale)
    return out.getvalue()


def wire_payment_request(record: PaymentRequestRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "payment_request",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "merchant": record.merchant_id,
        "kind": record.kind,
        "amount": record.amount,
        "currency": record.currency,
        "reference": record.reference,
        "expires_at": rfc3339(record.expires_at) if record.expires_at else None,
        "status": record.status,
        "paid_by": record.paid_by,
        "payload": record.payload,
        "qr_svg_url": f"/v1/payment_requests/{record.id}/qr.svg",
    }
