"""An agent pays a merchant under a mandate: decide, move the money, record, sign a receipt.

:func:`pay` runs in one transaction, in this order:

1. lock the mandate row ``FOR UPDATE`` (payments under one mandate, and its revocation, are
   serialized: a payment that commits after the revocation commit would have had to read
   the mandate after it, and then it reads ``revoked`` and is declined);
2. load the usage, the merchant's category and fee, and the recent payments risk looks at
   (the first two go out with the mandate's lock, in one round trip on PostgreSQL, with the
   receipt key and the payee's and the fee account; the risk reads go out in the next,
   with the user's wallet, locked: a payment then declined has held that lock for nothing);
3. :func:`~paywarden.authorization.decision.decide`;
4. approve: a hold on the user's wallet for the merchant, captured at once, through the hold
   services (``holds.create_and_capture``: the platform acts for the user, who authorized it
   by the mandate, and for the merchant, whose capture it is), then the usage after the
   payment; too little available in the wallet declines with ``insufficient_funds``, with
   nothing written; deny: nothing moves;
   requires_confirmation: nothing moves yet; an approval (:mod:`~paywarden.services.approvals`)
   is created in the same transaction, and the user's approval completes the payment;
5. the payment row, an audit record, the outbox event and a signed receipt (``Success`` with
   the ledger transfer, ``Error`` with the first reason; none while confirmation is pending).

Because the usage is read and written under the mandate lock, concurrent payments can never
spend more than the mandate allows, on SQLite or PostgreSQL, from any number of API nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from paywarden.adapters.ids import new_id
from paywarden.authorization.constraints import AllowedPayees
from paywarden.authorization.decision import Decision, Outcome, PaymentRequest, decide, usage_after
from paywarden.authorization.mandates import Mandate
from paywarden.authorization.risk import RiskConfig, RiskInputs, assess
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied, Unprocessable
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.ledger import AccountKind
from paywarden.services import approvals, audit, holds, receipts
from paywarden.services.ledger import own_account, prefetch_wallet, prefetch_with_system
from paywarden.services.mandates import zone
from paywarden.store import schema
from paywarden.store.mandate_repo import (
    load_mandate,
    load_usage,
    prefetch_mandate_and_usage,
    save_usage,
)
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.tables_mandates import payments
from paywarden.store.unit_of_work import UnitOfWork
from paywarden.trust.receipts import AuthorizedPayment

__all__ = [
    "RISK_DEFAULT",
    "PaymentRecord",
    "from_row",
    "funded",
    "get_payment",
    "merchant_category",
    "pay",
    "receipt",
    "risk_inputs",
    "settle",
    "wire_payment",
]

RISK_DEFAULT = RiskConfig()
CART_HASH_LENGTH_MAX = 100
INSUFFICIENT_FUNDS = "insufficient_funds"
_EVENT = {
    Outcome.APPROVE: "payment.succeeded",
    Outcome.DENY: "payment.declined",
    Outcome.REQUIRES_CONFIRMATION: "payment.requires_confirmation",
}
_STATUS = {
    Outcome.APPROVE: "succeeded",
    Outcome.DENY: "declined",
    Outcome.REQUIRES_CONFIRMATION: "requires_confirmation",
}


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: str
    livemode: bool
    mandate_id: str
    agent_id: str
    user_id: str
    merchant_id: str
    amount: int
    currency: str
    status: str
    reasons: tuple[str, ...]
    hold_id: str | None
    transfer_id: str | None
    receipt: str | None
    cart_hash: str | None
    created_at: datetime
    approval_id: str | None = None  # stored in approvals.payment_id, not in this row


def pay(
    uow: UnitOfWork,
    principal: Principal,
    mandate_id: str,
    merchant_id: str,
    amount: Any,
    currency: Any,
    cart_hash: str | None = None,
    *,
    master_key: bytes,
    issuer: str,
    risk: RiskConfig = RISK_DEFAULT,
    approval: approvals.ApprovalPolicy | None = None,
) -> PaymentRecord:
    """Decide and, if approved, settle one payment; see the module docstring."""
    if principal.type is not PrincipalType.AGENT or principal.id is None:
        raise PermissionDenied("only an agent (a signed request) pays under a mandate")
    amount, currency = parse_amount(amount), parse_currency(currency)
    cart_hash = _cart_hash(cart_hash)
    # The first reads go out together (one round trip on PostgreSQL), in this order: the
    # mandate's lock before its usage, the merchant's terms, the receipt key, the payee's
    # and the fee account; each is then read below as if on its own. The risk windows are
    # not among them: they end at the payment's instant, read under the lock.
    prefetch_mandate_and_usage(uow, mandate_id)
    uow.prefetch(_MERCHANT, _merchant_params(merchant_id, principal.livemode))
    receipts.prefetch_signer(uow)
    prefetch_with_system(uow, principal, merchant_id, currency, AccountKind.PLATFORM_FEES)
    stored = load_mandate(uow, mandate_id, lock=True)
    mandate = stored.mandate
    if mandate.agent != principal.id or stored.livemode != principal.livemode:
        raise NotFound(f"no such mandate: {mandate_id}", param="$.mandate")
    # The wallet's lock goes out with the risk reads (the mandate's lock is held: the same
    # order as ever); a payment that is then declined has held it to the commit for nothing.
    prefetch_wallet(
        uow, _acting_for(principal, PrincipalType.USER, mandate.user, mandate), currency
    )
    category, fee_bps = _merchant_terms(uow, merchant_id, stored.livemode)
    request = PaymentRequest(amount, currency, merchant_id, category, cart_hash)
    now, tz = uow.clock.now(), zone(mandate)
    usage = load_usage(uow, mandate.id)
    signals = assess(risk_inputs(uow, mandate, merchant_id, now, risk), request.amount, now, risk)
    decision = decide(mandate, usage, request, signals, now, tz)
    payment_id = new_id("pay")
    hold_id = transfer_id = None
    if decision.outcome is Outcome.APPROVE:
        try:  # funds are checked as the hold is placed, before any of its rows is written
            hold_id, transfer_id = settle(
                uow, principal, mandate, request, payment_id, fee_bps=fee_bps
            )
        except Unprocessable as error:
            if error.code != INSUFFICIENT_FUNDS:
                raise
            decision = Decision(Outcome.DENY, (INSUFFICIENT_FUNDS,), ())
        else:
            save_usage(uow, mandate.id, usage, usage_after(usage, request, now, tz))
    record = PaymentRecord(
        id=payment_id,
        livemode=stored.livemode,
        mandate_id=mandate.id,
        agent_id=mandate.agent,
        user_id=mandate.user,
        merchant_id=merchant_id,
        amount=request.amount,
        currency=request.currency,
        status=_STATUS[decision.outcome],
        reasons=decision.reasons,
        hold_id=hold_id,
        transfer_id=transfer_id,
        receipt=receipt(
            uow, master_key, issuer, payment_id, mandate, request, decision, transfer_id
        ),
        cart_hash=request.cart_hash,
        created_at=now,
    )
    _insert(uow, record)
    if decision.outcome is Outcome.REQUIRES_CONFIRMATION:
        policy = approval or approvals.ApprovalPolicy()
        created = approvals.create(uow, principal, record, policy)
        record = replace(record, approval_id=created.id)
    audit.record_at_end(
        uow,
        _EVENT[decision.outcome],
        principal,
        payment_id,
        {"mandate": mandate.id, "amount": request.amount, "reasons": list(decision.reasons)},
    )
    emit(uow, _EVENT[decision.outcome], record.livemode, wire_payment(record), at_end=True)
    return record


def _cart_hash(value: str | None) -> str | None:
    if value is not None and (not value or len(value) > CART_HASH_LENGTH_MAX):
        raise InvalidRequest(
            f"cart_hash is 1 to {CART_HASH_LENGTH_MAX} characters", param="$.cart_hash"
        )
    return value


def merchant_category(uow: UnitOfWork, merchant_id: str, livemode: bool) -> str:
    return _merchant_terms(uow, merchant_id, livemode)[0]


def _merchant_params(merchant_id: str, livemode: bool) -> dict[str, Any]:
    return {"merchant_id": merchant_id, "livemode": livemode}


def _merchant_terms(uow: UnitOfWork, merchant_id: str, livemode: bool) -> tuple[str, int]:
    """The merchant's category (for the mandate's rules) and platform fee (for the capture),
    read at once."""
    row = uow.execute(_MERCHANT, _merchant_params(merchant_id, livemode)).first()
    if row is None:
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    return str(row.category), int(row.fee_bps)


# The payment path's own statements, built once (building and keying one costs more than
# running it). A window's count stops at ``cap`` rows: the store scans no further.
_INSERT_PAYMENT = insert(payments)
_MERCHANT = select(schema.merchants.c.category, schema.merchants.c.fee_bps).where(
    schema.merchants.c.id == bindparam("merchant_id"),
    schema.merchants.c.livemode == bindparam("livemode"),
)
_SUCCEEDED = payments.c.status == "succeeded"


def _capped_count(window: str, *conditions: Any) -> Any:
    """How many rows match, counting no further than ``cap_<window>`` rows of those after
    ``since_<window>``."""
    capped = (  # created_at, not id: the count reads the index alone
        select(payments.c.created_at)
        .where(*conditions, payments.c.created_at > bindparam(f"since_{window}"))
        .limit(bindparam(f"cap_{window}"))
        .subquery()
    )
    return select(func.count()).select_from(capped).scalar_subquery()


_HISTORY = (
    select(payments.c.amount)
    .where(payments.c.mandate_id == bindparam("mandate_id"), _SUCCEEDED)
    .order_by(payments.c.created_at.desc())
    .limit(bindparam("size"))
    .cte("history")
)
# The history's size n, and the sum of its middle one or two amounts in amount order: the
# two from offset (n - 1) // 2 when n is even, the one there when n is odd. An ORDER BY
# with that LIMIT and OFFSET, not a window function: on SQLite, ranking 1,000 amounts with
# row_number() and count() over them took twice as long (tests/payments/test_risk_inputs.py
# holds the result to risk.median on both backends). n is counted once, in its own CTE:
# PostgreSQL runs every scalar subquery on its own, and three counts read the history thrice.
_HISTORY_SIZE = select(func.count().label("n")).select_from(_HISTORY).cte("history_size")
_MIDDLE = (
    select(_HISTORY.c.amount)
    .order_by(_HISTORY.c.amount)
    .limit(select(2 - _HISTORY_SIZE.c.n % 2).scalar_subquery())
    .offset(select((_HISTORY_SIZE.c.n - 1) // 2).scalar_subquery())
    .subquery()
)
# The three windows and the history's size and middle in one statement (one round trip).
_RISK = select(
    _capped_count("agent", payments.c.agent_id == bindparam("agent_id"), _SUCCEEDED).label(
        "agent_recent"
    ),
    _capped_count("mandate", payments.c.mandate_id == bindparam("mandate_id"), _SUCCEEDED).label(
        "mandate_recent"
    ),
    _capped_count(
        "failure", payments.c.agent_id == bindparam("agent_id"), payments.c.status == "declined"
    ).label("failures_recent"),
    select(_HISTORY_SIZE.c.n).scalar_subquery().label("history"),
    select(func.coalesce(func.sum(_MIDDLE.c.amount), 0)).scalar_subquery().label("middle_sum"),
)
_PAID_BEFORE = (
    select(payments.c.id)
    .where(
        payments.c.user_id == bindparam("user_id"),
        payments.c.merchant_id == bindparam("merchant_id"),
        _SUCCEEDED,
    )
    .limit(1)
)


def count_cap(step_up_min: int, deny_min: int, size: int) -> int:
    """How far a window's count goes: to the highest of its rule's thresholds that a count
    of at most ``size`` rows can reach, 0 (not read) if neither can. The rule decides on
    the capped count as on the whole one: beyond the deny threshold a higher count denies
    alike, and a threshold above ``size`` never fires (the count stops there)."""
    return max((t for t in (step_up_min, deny_min) if t <= size), default=0)


def _risk_counts_params(
    mandate_id: str, agent_id: str | None, now: datetime, risk: RiskConfig
) -> dict[str, Any]:
    def window(name: str, window_s: int, step_up_min: int, deny_min: int) -> dict[str, Any]:
        return {
            f"since_{name}": now - timedelta(seconds=window_s),
            f"cap_{name}": count_cap(step_up_min, deny_min, risk.history_size_max),
        }

    return {
        "mandate_id": mandate_id,
        "size": risk.history_size_max,
        "agent_id": agent_id,
        **window("agent", risk.agent_window_s, risk.agent_step_up_min, risk.agent_deny_min),
        **window("mandate", risk.mandate_window_s, risk.mandate_step_up_min, risk.mandate_deny_min),
        **window("failure", risk.failure_window_s, risk.failure_step_up_min, risk.failure_deny_min),
    }


def risk_inputs(
    uow: UnitOfWork, mandate: Mandate, merchant_id: str, now: datetime, risk: RiskConfig
) -> RiskInputs:
    """Recent history, each read bounded by ``history_size_max`` rows, so the cost of a
    decision does not grow with the history: a count stops there or sooner
    (:func:`count_cap`)."""

    counts = uow.execute(_RISK, _risk_counts_params(mandate.id, mandate.agent, now, risk)).one()
    known = int(counts.history)
    # The median of the middle one or two (the floor of their mean, as risk.median), only
    # where the outlier rule reads it.
    mandate_median = 0
    if known >= risk.outlier_history_min:
        mandate_median = int(counts.middle_sum) // (2 - known % 2)
    named = any(
        isinstance(c, AllowedPayees) and merchant_id in c.merchant_ids for c in mandate.constraints
    )
    paid_before = (
        named
        or uow.execute(_PAID_BEFORE, {"user_id": mandate.user, "merchant_id": merchant_id}).first()
        is not None
    )
    return RiskInputs(
        agent_payments_recent=int(counts.agent_recent),
        mandate_payments_recent=int(counts.mandate_recent),
        mandate_history=known,
        mandate_median=mandate_median,
        # A merchant the user named in the mandate is not new to them, whatever the history.
        merchant_is_new=not paid_before,
        failures_recent=int(counts.failures_recent),
    )


def _acting_for(
    principal: Principal, kind: PrincipalType, owner: str, mandate: Mandate
) -> Principal:
    """The principal the platform acts as under ``mandate``: its user or the payee."""
    return Principal(
        type=kind,
        id=owner,
        livemode=principal.livemode,
        key_id=f"mandate:{mandate.id}",
        api_version=principal.api_version,
    )


def funded(
    uow: UnitOfWork, principal: Principal, mandate: Mandate, request: PaymentRequest
) -> bool:
    user = _acting_for(principal, PrincipalType.USER, mandate.user, mandate)
    wallet = own_account(uow, user, None, request.currency, "$.currency")
    return wallet.available >= request.amount


def settle(
    uow: UnitOfWork,
    principal: Principal,
    mandate: Mandate,
    request: PaymentRequest,
    payment_id: str,
    *,
    fee_bps: int | None = None,
) -> tuple[str, str]:
    """Hold on the user's wallet, captured by the payee at once; (hold id, transfer id).
    ``fee_bps``: the merchant's fee when the caller read it already (else read here)."""
    user = _acting_for(principal, PrincipalType.USER, mandate.user, mandate)
    payee = _acting_for(principal, PrincipalType.MERCHANT, request.payee, mandate)
    captured = holds.create_and_capture(
        uow,
        user,
        payee,
        destination=request.payee,
        amount=request.amount,
        currency=request.currency,
        description=f"payment {payment_id} under mandate {mandate.id}",
        fee_bps=fee_bps,
    )
    transfer_id = captured.capture_transfer_id
    if transfer_id is None:
        raise InvalidRequest(f"hold {captured.hold.id} was captured without a transfer")
    return captured.hold.id, transfer_id


def receipt(
    uow: UnitOfWork,
    master_key: bytes,
    issuer: str,
    payment_id: str,
    mandate: Mandate,
    request: PaymentRequest,
    decision: Decision,
    transfer_id: str | None,
) -> str | None:
    if decision.outcome is Outcome.REQUIRES_CONFIRMATION:
        return None
    authorized = AuthorizedPayment(
        request.amount, request.currency, request.payee, mandate.id, request.cart_hash
    )
    if decision.outcome is Outcome.APPROVE:
        return receipts.issue_receipt(
            uow,
            master_key,
            issuer=issuer,
            payment_id=payment_id,
            authorized=authorized,
            transfer_id=transfer_id,
        )
    return receipts.issue_receipt(
        uow,
        master_key,
        issuer=issuer,
        payment_id=payment_id,
        authorized=authorized,
        error=decision.reasons[0],
        error_description="declined: " + ", ".join(decision.reasons),
    )


def _insert(uow: UnitOfWork, record: PaymentRecord) -> None:
    values = {item.name: getattr(record, item.name) for item in fields(record)}
    del values["approval_id"]
    values["reasons"] = list(record.reasons)
    uow.write(_INSERT_PAYMENT, values)


def from_row(row: Any) -> PaymentRecord:
    return PaymentRecord(
        id=row.id,
        livemode=bool(row.livemode),
        mandate_id=row.mandate_id,
        agent_id=row.agent_id,
        user_id=row.user_id,
        merchant_id=row.merchant_id,
        amount=int(row.amount),
        currency=row.currency,
        status=row.status,
        reasons=tuple(row.reasons),
        hold_id=row.hold_id,
        transfer_id=row.transfer_id,
        receipt=row.receipt,
        cart_hash=row.cart_hash,
        created_at=row.created_at,
    )


def get_payment(uow: UnitOfWork, principal: Principal, payment_id: str) -> PaymentRecord:
    """The payment, for its agent, its user, its merchant or an admin; 404 for anyone else."""
    row = uow.execute(select(payments).where(payments.c.id == payment_id)).first()
    parties = {row.agent_id, row.user_id, row.merchant_id} if row is not None else set()
    if (
        row is None
        or bool(row.livemode) != principal.livemode
        or not (principal.is_admin or principal.id in parties)
    ):
        raise NotFound(f"no such payment: {payment_id}", param="$.payment")
    return replace(from_row(row), approval_id=approvals.approval_for_payment(uow, payment_id))


def wire_payment(record: PaymentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "payment",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "mandate": record.mandate_id,
        "agent": record.agent_id,
        "user": record.user_id,
        "merchant": record.merchant_id,
        "amount": record.amount,
        "currency": record.currency,
        "status": record.status,
        "reasons": list(record.reasons),
        "hold": record.hold_id,
        "transfer": record.transfer_id,
        "receipt": record.receipt,
        "cart_hash": record.cart_hash,
        "approval": record.approval_id,
        "approval_url": (
            approvals.APPROVAL_URL.format(id=record.approval_id) if record.approval_id else None
        ),
    }


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
