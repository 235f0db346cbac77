"""The hold lifecycle as use cases: place, capture, void, expire, refund."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select

from paywarden.adapters.ids import new_id
from paywarden.kernel.errors import InvalidRequest, NotFound, PermissionDenied, Unprocessable
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments import holds as hold_rules
from paywarden.payments import ledger
from paywarden.payments.holds import Hold, HoldStatus
from paywarden.payments.ledger import Account, AccountKind, TransferKind
from paywarden.payments.refunds import refund_postings, require_captured
from paywarden.services import access
from paywarden.services.ledger import (
    own_account,
    post_transfer,
    resolve_account,
    resolve_with_system,
)
from paywarden.services.listing import page_rows
from paywarden.services.records import HoldView, Page, RefundRecord, wire
from paywarden.store import schema
from paywarden.store.ledger_repo import (
    hold_from_row,
    insert_hold,
    load_accounts,
    load_accounts_with_system,
    load_hold,
    save_accounts,
    save_hold,
)
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "HOLD_TTL_DEFAULT",
    "HOLD_TTL_MAX",
    "capture_hold",
    "create_and_capture",
    "create_hold",
    "expire_holds",
    "get_hold",
    "list_holds",
    "refund",
    "void_hold",
]

HOLD_TTL_DEFAULT = timedelta(days=7)
HOLD_TTL_MAX = timedelta(days=30)
EXPIRE_BATCH_MAX = 500


def _view(uow: UnitOfWork, hold_id: str) -> HoldView:
    hold, row = load_hold(uow, hold_id, lock=False)
    return HoldView(hold, row.created_at, row.capture_transfer_id, row.description)


def create_hold(
    uow: UnitOfWork,
    principal: Principal,
    *,
    destination: Any,
    amount: Any,
    currency: Any,
    source: Any = None,
    expires_in_s: Any = None,
    description: str | None = None,
) -> HoldView:
    access.require_type(principal, PrincipalType.USER)
    currency = parse_currency(currency)
    amount = parse_amount(amount)
    now = uow.clock.now()
    expires_at = now + _ttl(expires_in_s)
    payer, payee = _hold_accounts(uow, principal, source, destination, currency, description)
    locked = load_accounts(uow, [payer.id], lock=True)
    reserved = ledger.reserve(locked[payer.id], amount)
    save_accounts(uow, [reserved])
    hold = _pending_hold(payer, payee, currency, amount, expires_at)
    insert_hold(uow, hold, description, now)
    view = HoldView(hold, now, None, description)
    emit(uow, "hold.created", hold.livemode, wire(view))
    return view


def _pending_hold(
    payer: Account, payee: Account, currency: str, amount: int, expires_at: datetime
) -> Hold:
    return Hold(
        id=new_id("hold"),
        livemode=payer.livemode,
        source_account_id=payer.id,
        destination_account_id=payee.id,
        currency=currency,
        amount=amount,
        status=HoldStatus.PENDING,
        expires_at=expires_at,
    )


def _hold_accounts(
    uow: UnitOfWork,
    principal: Principal,
    source: Any,
    destination: Any,
    currency: str,
    description: str | None,
    *,
    lock_payer: bool = False,
) -> tuple[Account, Account]:
    """A new hold's payer and payee accounts, checked (and its description); with
    ``lock_payer``, the payer's row is locked as it is read."""
    payer = own_account(uow, principal, source, currency, "$.source", lock=lock_payer)
    payee = resolve_account(uow, principal, destination, currency, "$.destination")
    _check_accounts(payer, payee, currency, description)
    return payer, payee


def _check_accounts(payer: Account, payee: Account, currency: str, description: str | None) -> None:
    if payer.currency != currency or payee.currency != currency:
        raise InvalidRequest(
            "both accounts must hold the hold's currency",
            code="currency_mismatch",
            param="$.currency",
        )
    if payee.kind is not AccountKind.MERCHANT:
        raise InvalidRequest(
            "a hold pays a merchant account", code="invalid_destination", param="$.destination"
        )
    if description is not None and len(description) > 500:
        raise InvalidRequest("description is at most 500 characters", param="$.description")


def create_and_capture(
    uow: UnitOfWork,
    user: Principal,
    payee: Principal,
    *,
    destination: str,
    amount: int,
    currency: str,
    description: str,
    fee_bps: int | None = None,
) -> HoldView:
    """A hold captured in full as it is placed: what :func:`create_hold` by ``user`` then
    :func:`capture_hold` by ``payee`` leave behind (the hold, the capture transfer and its
    postings, the balances, ``hold.created`` and ``hold.captured``), in a third of the
    statements. The payer's reservation, placed and released in one transaction, is checked
    (``insufficient_funds`` as :func:`create_hold` raises it) but never written. An agent's
    payment (``services.payments``) pays this way, passing the merchant's ``fee_bps`` it
    read with the merchant's category; tests/payments/test_capture_at_once.py holds it to
    the two-step path.

    Only the payer's account is locked, by the read that finds it (once: no second read
    under a lock). The payee's and the platform's fee account, which
    every payment to that merchant credits, are read together without a lock and credited
    at the end of the transaction (``UnitOfWork.credit_at_end``; a group of payments
    credits each once, at the group's end): their rows stay free until then. Each of
    those two reads may have been sent ahead (``services.payments`` does)."""
    access.require_type(user, PrincipalType.USER)
    now = uow.clock.now()
    payer = own_account(uow, user, None, currency, "$.source", lock=True)
    to, fees = resolve_with_system(
        uow, user, destination, currency, "$.destination", AccountKind.PLATFORM_FEES
    )
    _check_accounts(payer, to, currency, description)
    if not access.owns(payee, to):
        raise PermissionDenied("only the payee (or an admin) may capture a hold")
    accounts = {to.id: to, fees.id: fees}
    hold = _pending_hold(payer, to, currency, amount, now + HOLD_TTL_DEFAULT)
    accounts[payer.id] = ledger.reserve(payer, amount)  # as read under its lock; in memory only
    captured, transfer_id = _post_capture(uow, hold, accounts, amount, now, fee_bps)
    insert_hold(uow, captured, description, now, capture_transfer_id=transfer_id)
    created = wire(HoldView(hold, now, None, description))
    emit(uow, "hold.created", hold.livemode, created, at_end=True)  # see outbox.emit
    view = HoldView(captured, now, transfer_id, description)
    emit(uow, "hold.captured", hold.livemode, wire(view), at_end=True)
    return view


def _ttl(expires_in_s: Any) -> timedelta:
    if expires_in_s is None:
        return HOLD_TTL_DEFAULT
    max_s = int(HOLD_TTL_MAX.total_seconds())
    if (
        isinstance(expires_in_s, bool)
        or not isinstance(expires_in_s, int)
        or not (1 <= expires_in_s <= max_s)
    ):
        raise InvalidRequest(
            f"expires_in_s must be an integer from 1 to {max_s}",
            code="invalid_expiry",
            param="$.expires_in_s",
        )
    return timedelta(seconds=expires_in_s)


def _locked_hold(
    uow: UnitOfWork,
    principal: Principal,
    hold_id: str,
    *,
    payee_only: bool,
    payer_only: bool = False,
) -> tuple[Hold, dict[str, Account]]:
    """Lock the hold, then its accounts in id order (always in this order: no deadlocks):
    with ``payer_only``, the payer's alone, the payee's and the fee account read without a
    lock (for a capture, which only credits them, at the end of the transaction)."""
    hold, _row = load_hold(uow, hold_id, lock=True)
    if hold.livemode != principal.livemode:
        raise NotFound(f"no such hold: {hold_id}", param="$.hold")
    ids = [hold.source_account_id, hold.destination_account_id]
    fees, currency, livemode = AccountKind.PLATFORM_FEES, hold.currency, hold.livemode
    if payer_only:
        accounts = load_accounts_with_system(uow, ids[1:], fees, currency, livemode, lock=False)
        accounts.update(load_accounts(uow, ids[:1], lock=True))
    else:
        accounts = load_accounts_with_system(uow, ids, fees, currency, livemode)
    payer, payee = accounts[hold.source_account_id], accounts[hold.destination_account_id]
    if not access.visible(principal, [payer, payee]):
        raise NotFound(f"no such hold: {hold_id}", param="$.hold")
    if payee_only and not access.owns(principal, payee):
        raise PermissionDenied("only the payee (or an admin) may do this to a hold")
    return hold, accounts


def _fee_bps(uow: UnitOfWork, payee: Account) -> int:
    if payee.kind is not AccountKind.MERCHANT or payee.owner_id is None:
        return 0
    return int(uow.execute(_FEE_BPS, {"merchant_id": payee.owner_id}).scalar_one())


_FEE_BPS = select(schema.merchants.c.fee_bps).where(
    schema.merchants.c.id == bindparam("merchant_id")
)


def _fee_account(accounts: dict[str, Account]) -> str:
    return next(a.id for a in accounts.values() if a.kind is AccountKind.PLATFORM_FEES)


def _post_capture(
    uow: UnitOfWork,
    hold: Hold,
    accounts: dict[str, Account],
    amount: int,
    now: datetime,
    fee_bps: int | None = None,
) -> tuple[Hold, str]:
    """Capture ``amount`` of a pending hold whose payer's account is locked (its payee's and
    the platform's fee account read without a lock, and credited at the end of the
    transaction): release the payer's reservation, post payer → payee less the fee → fees.
    The captured hold, to be saved, and the capture transfer's id. ``fee_bps``: the payee's
    fee when the caller read it in this transaction already."""
    hold_rules.check_capturable(hold, amount, now)
    payee = accounts[hold.destination_account_id]
    if fee_bps is None:
        fee_bps = _fee_bps(uow, payee)
    captured, postings = hold_rules.capture_postings(hold, amount, fee_bps, _fee_account(accounts))
    payer_id = hold.source_account_id
    credited = {key: account for key, account in accounts.items() if key != payer_id}
    record = post_transfer(
        uow,
        kind=TransferKind.CAPTURE,
        livemode=hold.livemode,
        currency=hold.currency,
        amount=amount,
        source_id=hold.source_account_id,
        destination_id=hold.destination_account_id,
        postings=postings,
        locked={payer_id: ledger.release(accounts[payer_id], hold.amount)},
        credited_at_end=credited,
        hold_id=hold.id,
    )
    return captured, record.id


def capture_hold(
    uow: UnitOfWork, principal: Principal, hold_id: str, *, amount: Any = None
) -> HoldView:
    hold, accounts = _locked_hold(uow, principal, hold_id, payee_only=True, payer_only=True)
    now = uow.clock.now()
    amount = hold.amount if amount is None else parse_amount(amount)
    captured, transfer_id = _post_capture(uow, hold, accounts, amount, now)
    save_hold(uow, captured, now, capture_transfer_id=transfer_id)
    view = _view(uow, hold.id)
    emit(uow, "hold.captured", hold.livemode, wire(view))
    return view


def void_hold(uow: UnitOfWork, principal: Principal, hold_id: str) -> HoldView:
    hold, accounts = _locked_hold(uow, principal, hold_id, payee_only=False)
    now = uow.clock.now()
    voided = hold_rules.void(hold, now)
    save_accounts(uow, [ledger.release(accounts[hold.source_account_id], hold.amount)])
    save_hold(uow, voided, now)
    view = _view(uow, hold.id)
    emit(uow, "hold.voided", hold.livemode, wire(view))
    return view


def expire_holds(uow: UnitOfWork, *, batch_size_max: int = EXPIRE_BATCH_MAX) -> int:
    """Release pending holds whose deadline has passed; returns how many expired."""
    now = uow.clock.now()
    h = schema.holds
    due = [
        row.id
        for row in uow.execute(
            select(h.c.id)
            .where(h.c.status == HoldStatus.PENDING.value, h.c.expires_at < now)
            .order_by(h.c.id)
            .limit(batch_size_max)
        )
    ]
    expired = 0
    for hold_id in due:
        hold, _row = load_hold(uow, hold_id, lock=True)
        if not hold_rules.is_expired(hold, now):
            continue  # captured or voided since we looked
        expired += 1
        source = load_accounts(uow, [hold.source_account_id], lock=True)
        save_accounts(uow, [ledger.release(source[hold.source_account_id], hold.amount)])
        save_hold(uow, hold_rules.expire(hold, now), now)
        emit(uow, "hold.expired", hold.livemode, wire(_view(uow, hold.id)))
    return expired


def refund(
    uow: UnitOfWork,
    principal: Principal,
    *,
    hold_id: Any,
    amount: Any = None,
    reason: str | None = None,
) -> RefundRecord:
    """Give captured money back to the payer, with the fee's share returned too."""
    if not isinstance(hold_id, str):
        raise InvalidRequest("hold must be a hold id", code="parameter_missing", param="$.hold")
    hold, accounts = _locked_hold(uow, principal, hold_id, payee_only=True)
    require_captured(hold)
    if amount is None and hold.refundable_amount == 0:
        raise Unprocessable(
            f"hold {hold.id} has been refunded in full already",
            code="refund_exceeds_captured",
            param="$.amount",
        )
    amount = hold.refundable_amount if amount is None else parse_amount(amount)
    if reason is not None and len(reason) > 64:
        raise InvalidRequest("reason is at most 64 characters", param="$.reason")
    after, postings = refund_postings(hold, amount, _fee_account(accounts))
    refund_id = new_id("ref")
    now = uow.clock.now()
    record = post_transfer(
        uow,
        kind=TransferKind.REFUND,
        livemode=hold.livemode,
        currency=hold.currency,
        amount=amount,
        source_id=hold.destination_account_id,
        destination_id=hold.source_account_id,
        postings=postings,
        locked=accounts,
        hold_id=hold.id,
        refund_id=refund_id,
    )
    refund_record = RefundRecord(
        refund_id, hold.livemode, hold.id, hold.currency, amount, reason, record.id, now
    )
    uow.execute(
        _INSERT_REFUND,
        {
            "id": refund_id,
            "livemode": hold.livemode,
            "hold_id": hold.id,
            "currency": hold.currency,
            "amount": amount,
            "reason": reason,
            "transfer_id": record.id,
            "created_at": now,
        },
    )
    save_hold(uow, after, now)
    emit(uow, "refund.created", hold.livemode, wire(refund_record))
    return refund_record


def get_hold(uow: UnitOfWork, principal: Principal, hold_id: str) -> HoldView:
    view = _view(uow, hold_id)
    accounts = load_accounts(
        uow, [view.hold.source_account_id, view.hold.destination_account_id], lock=False
    )
    if view.hold.livemode != principal.livemode or not access.visible(principal, accounts.values()):
        raise NotFound(f"no such hold: {hold_id}", param="$.hold")
    return view


def list_holds(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None,
    starting_after: str | None,
    status: str | None = None,
) -> Page:
    h = schema.holds
    conditions = [h.c.livemode == principal.livemode]
    owned = access.owned_account_ids(uow, principal)
    if owned is not None:
        conditions.append(
            or_(h.c.source_account_id.in_(owned), h.c.destination_account_id.in_(owned))
        )
    if status is not None:
        if status not in {s.value for s in HoldStatus}:
            raise InvalidRequest("unknown hold status", param="$.status")
        conditions.append(h.c.status == status)
    rows, has_more = page_rows(uow, h, conditions, limit=limit, starting_after=starting_after)
    return Page(
        [
            HoldView(hold_from_row(row), row.created_at, row.capture_transfer_id, row.description)
            for row in rows
        ],
        has_more,
    )


_INSERT_REFUND = insert(schema.refunds)
prepare_all(globals())  # the statements built above run on the driver (store.prepared)
