"""Step-up approvals: the user approves or declines, on the trusted surface, a payment that
``requires_confirmation``; on approval the platform completes the payment itself.

::

    record = payments.pay(...)                       # status requires_confirmation
    approval = approvals.get(uow, user, record.approval_id)
    approvals.approve(uow, user, approval.id, expected_binding_hash=approval.binding_hash,
                      reauthenticated=True, master_key=..., issuer=...)

- :func:`create` runs inside :func:`~paywarden.services.payments.pay`, in its transaction: one
  approval per payment, bound by :func:`binding_hash` to amount, currency, payee, cart hash
  and payment id, expiring after ``ApprovalPolicy.ttl_s``; above ``reauth_above`` (minor
  units, whatever the currency) the user must re-authenticate to approve.
- :func:`approve` takes the mandate row lock (as every payment and revocation does), then the
  approval row, and refuses: an approval no longer pending (``approval_not_pending``), a
  binding other than the one stored (``approval_binding_mismatch``), a missing
  re-authentication (``reauthentication_required``). An approval past its deadline becomes
  ``expired``; a payment whose amount, currency, payee or cart hash no longer matches the
  binding voids it (``voided``). Otherwise it re-runs the mandate decision with the current
  usage, ignoring only the confirmation reasons (the threshold, risk step-ups): any hard limit
  (a revoked or paused mandate, the budget, a deny-level risk signal, the funds) declines the
  approval and the payment with that reason. Else the money moves as in ``pay()`` (a hold
  captured at once), and the payment row becomes ``succeeded`` with its transfer, hold and
  signed receipt, with the usage, audit records and the events ``payment.succeeded`` and
  ``approval.approved``, all in one transaction.
- :func:`decline` (the user): the payment is declined with ``declined_by_user``.
- :func:`expire_due` (the background sweep): pending approvals past their deadline expire,
  and their payments are declined with ``approval_expired``.

A payment declined here carries no receipt (receipts are issued when the platform decides
on the money; a user's decline or an expiry is recorded in the audit log and the events).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.authorization.decision import (
    Decision,
    Outcome,
    PaymentRequest,
    decide,
    usage_after,
)
from paywarden.authorization.risk import Action, RiskConfig, assess
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, NotFound, PermissionDenied
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit, payments
from paywarden.services.mandates import zone
from paywarden.store.mandate_repo import load_mandate, load_usage, save_usage
from paywarden.store.outbox import emit
from paywarden.store.tables_approvals import approvals
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.canonical import canonical

__all__ = [
    "APPROVAL_URL",
    "ApprovalPolicy",
    "ApprovalRecord",
    "approval_for_payment",
    "approve",
    "binding_hash",
    "create",
    "decline",
    "expire_due",
    "get",
    "void_pending",
    "wire_approval",
]

# The approval page on the trusted surface, relative to the issuer's base URL.
APPROVAL_URL = "/approvals/{id}"
DECLINED_BY_USER = "declined_by_user"
APPROVAL_EXPIRED = "approval_expired"
APPROVAL_VOIDED = "approval_voided"
EXPIRE_BATCH_MAX = 500


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """``ttl_s``: how long the user has to decide; ``reauth_above``: amounts (minor units)
    above which approving needs a fresh re-authentication."""

    ttl_s: int = 900
    reauth_above: int = 10_000

    def __post_init__(self) -> None:
        invariant(self.ttl_s > 0, "an approval lives a positive time")
        invariant(self.reauth_above >= 0, "the re-authentication level is not negative")


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: str
    livemode: bool
    payment_id: str
    mandate_id: str
    user_id: str
    agent_id: str
    merchant_id: str
    amount: int
    currency: str
    cart_hash: str | None
    binding_hash: str
    status: str
    reasons: tuple[str, ...]
    reauth_required: bool
    expires_at: datetime
    decided_at: datetime | None
    created_at: datetime


def binding_hash(
    amount: int, currency: str, payee: str, cart_hash: str | None, payment_id: str
) -> str:
    """SHA-256 (hex) over the RFC 8785 canonical JSON of what the user approves."""
    approved = canonical(
        {
            "amount": amount,
            "currency": currency,
            "payee": payee,
            "cart_hash": cart_hash,
            "payment_id": payment_id,
        }
    )
    return hashlib.sha256(approved).hexdigest()


def _from_row(row: Any) -> ApprovalRecord:
    return ApprovalRecord(
        id=row.id,
        livemode=bool(row.livemode),
        payment_id=row.payment_id,
        mandate_id=row.mandate_id,
        user_id=row.user_id,
        agent_id=row.agent_id,
        merchant_id=row.merchant_id,
        amount=int(row.amount),
        currency=row.currency,
        cart_hash=row.cart_hash,
        binding_hash=row.binding_hash,
        status=row.status,
        reasons=tuple(row.reasons),
        reauth_required=bool(row.reauth_required),
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        created_at=row.created_at,
    )


def create(
    uow: UnitOfWork,
    principal: Principal,
    payment: payments.PaymentRecord,
    policy: ApprovalPolicy,
) -> ApprovalRecord:
    """The approval of a payment that requires confirmation, in the payment's transaction."""
    invariant(payment.status == "requires_confirmation", "only a pending payment is approved")
    now = uow.clock.now()
    record = ApprovalRecord(
        id=new_id("apr"),
        livemode=payment.livemode,
        payment_id=payment.id,
        mandate_id=payment.mandate_id,
        user_id=payment.user_id,
        agent_id=payment.agent_id,
        merchant_id=payment.merchant_id,
        amount=payment.amount,
        currency=payment.currency,
        cart_hash=payment.cart_hash,
        binding_hash=binding_hash(
            payment.amount, payment.currency, payment.merchant_id, payment.cart_hash, payment.id
        ),
        status="pending",
        reasons=payment.reasons,
        reauth_required=payment.amount > policy.reauth_above,
        expires_at=now + timedelta(seconds=policy.ttl_s),
        decided_at=None,
        created_at=now,
    )
    values = {name: getattr(record, name) for name in ApprovalRecord.__slots__}
    values["reasons"] = list(record.reasons)
    uow.execute(insert(approvals).values(**values))
    _announce(uow, "approval.requested", principal, record)
    return record


def approval_for_payment(uow: UnitOfWork, payment_id: str) -> str | None:
    found = uow.execute(select(approvals.c.id).where(approvals.c.payment_id == payment_id))
    row = found.first()
    return str(row.id) if row is not None else None


def _announce(
    uow: UnitOfWork, event: str, principal: Principal | None, record: ApprovalRecord
) -> None:
    audit.record(
        uow,
        event,
        principal,
        record.id,
        {
            "payment": record.payment_id,
            "mandate": record.mandate_id,
            "amount": record.amount,
            "binding_hash": record.binding_hash,
            "reasons": list(record.reasons),
        },
    )
    emit(uow, event, record.livemode, wire_approval(record))


def _hidden(approval_id: str) -> NotFound:
    return NotFound(f"no such approval: {approval_id}", param="$.approval")


def _may_see(principal: Principal, record: ApprovalRecord) -> bool:
    if principal.livemode != record.livemode:
        return False
    return principal.is_admin or principal.id in {record.user_id, record.agent_id}


def _load(uow: UnitOfWork, approval_id: str, *, lock: bool) -> ApprovalRecord | None:
    query = select(approvals).where(approvals.c.id == approval_id)
    row = uow.execute(query.with_for_update() if lock else query).first()
    return _from_row(row) if row is not None else None


def get(uow: UnitOfWork, principal: Principal, approval_id: str) -> ApprovalRecord:
    """The approval, for its user, its agent or an admin; a pending one past its deadline
    reads as ``expired`` even before the sweep writes it."""
    record = _load(uow, approval_id, lock=False)
    if record is None or not _may_see(principal, record):
        raise _hidden(approval_id)
    if record.status == "pending" and uow.clock.now() > record.expires_at:
        return replace(record, status="expired")
    return record


def _locked_for_user(uow: UnitOfWork, principal: Principal, approval_id: str) -> ApprovalRecord:
    """Lock the mandate row (as payments and revocations do), then the approval row; only
    the approval's user, with their own key, decides."""
    seen = _load(uow, approval_id, lock=False)
    if seen is None or not _may_see(principal, seen):
        raise _hidden(approval_id)
    if principal.type is not PrincipalType.USER or principal.id != seen.user_id:
        raise PermissionDenied("only the payment's user approves or declines it")
    load_mandate(uow, seen.mandate_id, lock=True)
    record = _load(uow, approval_id, lock=True)
    invariant(record is not None, f"approval {approval_id} vanished under its mandate lock")
    assert record is not None
    if record.status != "pending":
        raise Conflict(f"the approval is already {record.status}", code="approval_not_pending")
    return record


def _finish(
    uow: UnitOfWork,
    principal: Principal | None,
    record: ApprovalRecord,
    status: str,
    reasons: tuple[str, ...],
    payment_values: dict[str, Any],
) -> ApprovalRecord:
    """Write the approval's outcome and its payment's, with audit records and events."""
    now = uow.clock.now()
    done = uow.execute(
        update(approvals)
        .where(approvals.c.id == record.id, approvals.c.status == "pending")
        .values(status=status, reasons=list(reasons), decided_at=now)
    )
    invariant(done.rowcount == 1, f"approval {record.id} changed under its row lock")
    p = payments_table
    changed = uow.execute(
        update(p)
        .where(p.c.id == record.payment_id, p.c.status == "requires_confirmation")
        .values(**payment_values)
    )
    invariant(changed.rowcount == 1, f"payment {record.payment_id} is no longer pending")
    finished = replace(record, status=status, reasons=reasons, decided_at=now)
    _announce(uow, f"approval.{status}", principal, finished)
    payment = _payment(uow, record.payment_id)
    event = "payment.succeeded" if payment.status == "succeeded" else "payment.declined"
    audit.record(
        uow,
        event,
        principal,
        payment.id,
        {"mandate": payment.mandate_id, "amount": payment.amount, "approval": record.id},
    )
    emit(uow, event, payment.livemode, payments.wire_payment(payment))
    _tell_checkout(uow, principal, payment)
    return finished


def _tell_checkout(
    uow: UnitOfWork, principal: Principal | None, payment: payments.PaymentRecord
) -> None:
    """A payment made for a checkout session moves the session on: completed with its
    order, or its stock released. Imported here: checkout imports this module."""
    from paywarden.services import checkout  # noqa: PLC0415

    checkout.payment_decided(uow, principal, payment)


def _checkout_wants(uow: UnitOfWork, record: ApprovalRecord) -> bool:
    """False when the payment's checkout was canceled or its cart is no longer the one
    the approval is bound to (a cart swapped under the approval)."""
    from paywarden.services import checkout  # noqa: PLC0415

    return checkout.payment_still_wanted(uow, _payment(uow, record.payment_id))


def void_pending(
    uow: UnitOfWork, principal: Principal | None, payment_id: str
) -> ApprovalRecord | None:
    """Void the pending approval of a payment nobody wants any more (its checkout was
    canceled); the caller holds the mandate lock. None when nothing was pending."""
    found = approval_for_payment(uow, payment_id)
    record = _load(uow, found, lock=True) if found is not None else None
    if record is None or record.status != "pending":
        return None
    return _finish(uow, principal, record, "voided", record.reasons, _declined((APPROVAL_VOIDED,)))


def _payment(uow: UnitOfWork, payment_id: str) -> payments.PaymentRecord:
    row = uow.execute(select(payments_table).where(payments_table.c.id == payment_id)).one()
    return replace(payments.from_row(row), approval_id=approval_for_payment(uow, payment_id))


def _declined(reasons: tuple[str, ...]) -> dict[str, Any]:
    return {"status": "declined", "reasons": list(reasons)}


def _still_bound(uow: UnitOfWork, record: ApprovalRecord) -> bool:
    """The payment still is what the user is asked about: amount, currency, payee, cart."""
    payment = _payment(uow, record.payment_id)
    current = binding_hash(
        payment.amount, payment.currency, payment.merchant_id, payment.cart_hash, payment.id
    )
    return payment.status == "requires_confirmation" and current == record.binding_hash


def approve(
    uow: UnitOfWork,
    principal: Principal,
    approval_id: str,
    *,
    expected_binding_hash: str,
    reauthenticated: bool,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig | None = None,
) -> ApprovalRecord:
    """The user approves; see the module docstring. Returns the approval as it ends:
    ``approved``, or ``expired``, ``voided`` or ``declined`` (with the hard reasons)."""
    # Resolved at call time: payments imports this module, so its names are not ready yet
    # while this one loads.
    risk = risk or payments.RISK_DEFAULT
    record = _locked_for_user(uow, principal, approval_id)
    now = uow.clock.now()
    if now > record.expires_at:
        return _finish(uow, principal, record, "expired", record.reasons, _expired())
    if not _still_bound(uow, record) or not _checkout_wants(uow, record):
        return _finish(
            uow, principal, record, "voided", record.reasons, _declined((APPROVAL_VOIDED,))
        )
    if expected_binding_hash != record.binding_hash:
        raise Conflict(
            "the payment shown is not the payment pending: reload it and approve again",
            code="approval_binding_mismatch",
            param="$.binding_hash",
        )
    if record.reauth_required and not reauthenticated:
        raise PermissionDenied(
            "this amount needs a fresh re-authentication to approve",
            code="reauthentication_required",
        )
    return _complete(uow, principal, record, master_key=master_key, issuer=issuer, risk=risk)


def _expired() -> dict[str, Any]:
    return _declined((APPROVAL_EXPIRED,))


def _complete(
    uow: UnitOfWork,
    principal: Principal,
    record: ApprovalRecord,
    *,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig,
) -> ApprovalRecord:
    """Re-decide under the mandate lock (held since :func:`_locked_for_user`), ignoring only
    step-up reasons, then move the money exactly as ``pay()`` does."""
    stored = load_mandate(uow, record.mandate_id, lock=True)
    mandate, now = stored.mandate, uow.clock.now()
    tz = zone(mandate)
    category = payments.merchant_category(uow, record.merchant_id, record.livemode)
    request = PaymentRequest(
        record.amount, record.currency, record.merchant_id, category, record.cart_hash
    )
    usage = load_usage(uow, mandate.id)
    inputs = payments.risk_inputs(uow, mandate, record.merchant_id, now, risk)
    signals = assess(inputs, request.amount, now, risk)
    decision = decide(mandate, usage, request, signals, now, tz)
    hard = tuple(sorted({v.code for v in decision.violations if v.action is Action.DENY}))
    if not hard and not payments.funded(uow, principal, mandate, request):
        hard = (payments.INSUFFICIENT_FUNDS,)
    if hard:
        return _finish(uow, principal, record, "declined", hard, _declined(hard))
    hold_id, transfer_id = payments.settle(uow, principal, mandate, request, record.payment_id)
    save_usage(uow, mandate.id, usage, usage_after(usage, request, now, tz))
    receipt = payments.receipt(
        uow,
        master_key,
        issuer,
        record.payment_id,
        mandate,
        request,
        Decision(Outcome.APPROVE, (), ()),
        transfer_id,
    )
    values: dict[str, Any] = {
        "status": "succeeded",
        "reasons": [],
        "hold_id": hold_id,
        "transfer_id": transfer_id,
        "receipt": receipt,
    }
    return _finish(uow, principal, record, "approved", record.reasons, values)


def decline(uow: UnitOfWork, principal: Principal, approval_id: str) -> ApprovalRecord:
    """The user declines: the payment is declined with ``declined_by_user``; nothing moves.
    An approval past its deadline expires instead."""
    record = _locked_for_user(uow, principal, approval_id)
    if uow.clock.now() > record.expires_at:
        return _finish(uow, principal, record, "expired", record.reasons, _expired())
    reasons = (DECLINED_BY_USER,)
    return _finish(uow, principal, record, "declined", reasons, _declined(reasons))


def expire_due(uow: UnitOfWork, *, limit: int = EXPIRE_BATCH_MAX) -> int:
    """Expire up to ``limit`` pending approvals past their deadline (the platform acts, no
    principal); their payments are declined with ``approval_expired``. How many expired."""
    now = uow.clock.now()
    a = approvals
    due = uow.execute(
        select(a.c.id, a.c.mandate_id)
        .where(a.c.status == "pending", a.c.expires_at < now)
        .order_by(a.c.expires_at, a.c.id)
        .limit(limit)
    ).all()
    expired = 0
    for row in due:
        load_mandate(uow, row.mandate_id, lock=True)
        record = _load(uow, row.id, lock=True)
        if record is None or record.status != "pending" or now <= record.expires_at:
            continue
        _finish(uow, None, record, "expired", record.reasons, _expired())
        expired += 1
    return expired


def wire_approval(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "approval",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "payment": record.payment_id,
        "mandate": record.mandate_id,
        "user": record.user_id,
        "agent": record.agent_id,
        "merchant": record.merchant_id,
        "amount": record.amount,
        "currency": record.currency,
        "cart_hash": record.cart_hash,
        "binding_hash": record.binding_hash,
        "status": record.status,
        "reasons": list(record.reasons),
        "reauth_required": record.reauth_required,
        "expires_at": rfc3339(record.expires_at),
        "decided_at": rfc3339(record.decided_at) if record.decided_at is not None else None,
        "url": APPROVAL_URL.format(id=record.id),
    }
