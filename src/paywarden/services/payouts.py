"""Money to merchants: the platform fee, settlement, payout accounts and payouts.

- **Fee.** Each merchant's ``fee_bps`` is read by every capture when it happens (see
  :mod:`paywarden.services.holds`); :func:`set_fee` changes it for the captures that follow,
  never for those already made. Admin only, audited, event ``merchant.updated``.
- **Settlement.** A capture posts the merchant's share straight into its ledger account: that
  balance is the merchant's. What recent captures left on it stays *unsettled* for
  ``settlement_delay`` after the capture and cannot be paid out yet (see
  :mod:`paywarden.payments.payouts`); nothing moves when it settles.
- **Payout accounts.** A merchant registers a sandbox bank account per currency; only the
  rail's reference, the routing number and the last four digits are kept.
- **Payouts.** Created against the payable balance under the merchant account's lock (so
  concurrent requests cannot overdraw it), then settled by the rail in
  :func:`process_payouts`, which ``paywarden serve`` runs in its maintenance loop and
  ``paywarden payouts process`` runs on demand.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update

from paywarden.adapters.ids import new_id
from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments import payouts as rules
from paywarden.payments.holds import FEE_BPS_MAX, HoldStatus
from paywarden.payments.ledger import Account, AccountKind, TransferKind
from paywarden.payments.payouts import Payout, PayoutStatus
from paywarden.payments.rails import sandbox
from paywarden.services import access, audit, identity
from paywarden.services.ledger import post_transfer
from paywarden.services.listing import page_rows
from paywarden.services.records import MerchantRecord, Page, wire
from paywarden.store import schema
from paywarden.store.ledger_repo import account_from_row, load_accounts, system_account
from paywarden.store.outbox import emit
from paywarden.store.tables_payouts import payout_accounts, payouts
from paywarden.store.unit_of_work import Store, UnitOfWork

__all__ = [
    "PROCESS_BATCH_MAX",
    "PayoutAccountRecord",
    "PayoutBalance",
    "PayoutRecord",
    "create_payout",
    "due_payouts",
    "get_payout",
    "get_payout_account",
    "list_payouts",
    "payout_balances",
    "process_payouts",
    "register_payout_account",
    "set_fee",
    "settle_payout",
    "wire_balance",
    "wire_payout",
    "wire_payout_account",
]

PROCESS_BATCH_MAX = 100
HOLDER_NAME_LENGTH_MAX = 200


@dataclass(frozen=True, slots=True)
class PayoutAccountRecord:
    id: str
    livemode: bool
    merchant_id: str
    currency: str
    reference: str
    routing_number: str
    last4: str
    holder_name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutRecord:
    payout: Payout
    payout_account_id: str
    destination_last4: str
    description: str | None
    transfer_id: str
    settlement_transfer_id: str | None


@dataclass(frozen=True, slots=True)
class PayoutBalance:
    """A merchant account's balance as payouts see it."""

    merchant_id: str
    livemode: bool
    account: Account
    unsettled: int
    payable: int
    pending_payouts: int


# --- the platform fee ----------------------------------------------------------------------


def set_fee(
    uow: UnitOfWork, principal: Principal, merchant_id: str, fee_bps: Any
) -> MerchantRecord:
    """Set the merchant's platform fee for the captures that follow. Admin only."""
    access.require_admin(principal)
    if (
        isinstance(fee_bps, bool)
        or not isinstance(fee_bps, int)
        or not (0 <= fee_bps <= FEE_BPS_MAX)
    ):
        raise InvalidRequest(
            f"fee_bps must be an integer from 0 to {FEE_BPS_MAX}",
            code="invalid_fee",
            param="$.fee_bps",
        )
    m = schema.merchants
    row = uow.execute(
        select(m.c.fee_bps)
        .where(m.c.id == merchant_id, m.c.livemode == principal.livemode)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such merchant: {merchant_id}", param="$.merchant")
    uow.execute(update(m).where(m.c.id == merchant_id).values(fee_bps=fee_bps))
    record = identity.get_merchant(uow, merchant_id, principal.livemode)
    emit(uow, "merchant.updated", record.livemode, wire(record))
    audit.record(
        uow,
        "merchant.fee_changed",
        principal,
        merchant_id,
        {"fee_bps": fee_bps, "previous_fee_bps": int(row.fee_bps)},
    )
    return record


# --- who may act for which merchant ----------------------------------------------------------


def _merchant_for(principal: Principal, merchant: Any) -> str:
    """The merchant a request acts for: the merchant itself, or the one an admin names."""
    if principal.is_admin:
        if not isinstance(merchant, str):
            raise InvalidRequest(
                "an admin names the merchant", code="parameter_missing", param="$.merchant"
            )
        return merchant
    access.require_type(principal, PrincipalType.MERCHANT)
    if merchant is not None and merchant != principal.id:
        raise NotFound(f"no such merchant: {merchant}", param="$.merchant")
    invariant(principal.id is not None, "a merchant principal has an id")
    return str(principal.id)


# --- payout accounts -----------------------------------------------------------------------


def _account_record(row: Any) -> PayoutAccountRecord:
    return PayoutAccountRecord(
        row.id,
        bool(row.livemode),
        row.merchant_id,
        row.currency,
        row.reference,
        row.routing_number,
        row.last4,
        row.holder_name,
        row.created_at,
        row.updated_at,
    )


def _find_payout_account(
    uow: UnitOfWork, merchant_id: str, currency: str, livemode: bool
) -> PayoutAccountRecord | None:
    pa = payout_accounts
    row = uow.execute(
        select(pa).where(
            pa.c.merchant_id == merchant_id, pa.c.currency == currency, pa.c.livemode == livemode
        )
    ).one_or_none()
    return None if row is None else _account_record(row)


def register_payout_account(
    uow: UnitOfWork,
    principal: Principal,
    merchant_id: str,
    *,
    routing_number: str,
    account_number: str,
    holder_name: str,
    currency: Any = None,
    token_key: bytes,
) -> PayoutAccountRecord:
    """Where the merchant's payouts in ``currency`` go (its home currency by default); a new
    registration replaces the previous one for later payouts. The account number is checked
    by the rail and dropped: only its reference and last four digits are kept."""
    merchant_id = _merchant_for(principal, merchant_id)
    merchant = identity.get_merchant(uow, merchant_id, principal.livemode)
    currency = merchant.currency if currency is None else parse_currency(currency)
    name = holder_name.strip()
    if not name or len(name) > HOLDER_NAME_LENGTH_MAX:
        raise InvalidRequest(
            f"account_holder_name must be 1 to {HOLDER_NAME_LENGTH_MAX} characters",
            param="$.account_holder_name",
        )
    bank = sandbox.register_bank_account(routing_number, account_number, token_key)
    now = uow.clock.now()
    existing = _find_payout_account(uow, merchant_id, currency, principal.livemode)
    values = {
        "reference": bank.reference,
        "routing_number": bank.routing_number,
        "last4": bank.last4,
        "holder_name": name,
        "updated_at": now,
    }
    if existing is None:
        record_id = new_id("ba")
        uow.execute(
            insert(payout_accounts).values(
                id=record_id,
                livemode=principal.livemode,
                merchant_id=merchant_id,
                currency=currency,
                created_at=now,
                **values,
            )
        )
    else:
        record_id = existing.id
        uow.execute(update(payout_accounts).where(payout_accounts.c.id == record_id).values(values))
    record = get_payout_account(uow, principal, merchant_id, currency)
    body = wire_payout_account(record)
    emit(uow, "merchant.updated", record.livemode, wire(merchant))
    audit.record(uow, "payout_account.registered", principal, merchant_id, body)
    return record


def get_payout_account(
    uow: UnitOfWork, principal: Principal, merchant_id: str, currency: Any = None
) -> PayoutAccountRecord:
    merchant_id = _merchant_for(principal, merchant_id)
    merchant = identity.get_merchant(uow, merchant_id, principal.livemode)
    currency = merchant.currency if currency is None else parse_currency(currency)
    record = _find_payout_account(uow, merchant_id, currency, principal.livemode)
    if record is None:
        raise NotFound(
            f"merchant {merchant_id} has no {currency} payout account",
            code="payout_account_missing",
            param="$.currency",
        )
    return record


# --- balances and settlement ---------------------------------------------------------------


def _unsettled(uow: UnitOfWork, account_id: str, now: datetime, delay: timedelta) -> int:
    """What captures newer than ``delay`` still leave on the account (net of fees, refunds)."""
    if delay <= timedelta(0):
        return 0
    h, t = schema.holds, schema.transfers
    left = h.c.captured_amount - h.c.fee_amount - h.c.refunded_amount + h.c.fee_refunded
    total = uow.execute(
        select(func.coalesce(func.sum(left), 0))
        .select_from(h.join(t, t.c.id == h.c.capture_transfer_id))
        .where(
            h.c.destination_account_id == account_id,
            h.c.status == HoldStatus.POSTED.value,
            t.c.created_at > now - delay,
        )
    ).scalar_one()
    return int(total)


def _merchant_account(uow: UnitOfWork, merchant_id: str, currency: str, livemode: bool) -> Account:
    a = schema.accounts
    row = uow.execute(
        select(a)
        .where(
            a.c.owner_id == merchant_id,
            a.c.kind == AccountKind.MERCHANT.value,
            a.c.currency == currency,
            a.c.livemode == livemode,
        )
        .order_by(a.c.id)
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"merchant {merchant_id} has no {currency} account", param="$.currency")
    return account_from_row(row)


def _pending_total(uow: UnitOfWork, account_id: str) -> int:
    p = payouts
    total = uow.execute(
        select(func.coalesce(func.sum(p.c.amount), 0)).where(
            p.c.account_id == account_id, p.c.status == PayoutStatus.PENDING.value
        )
    ).scalar_one()
    return int(total)


def payout_balances(
    uow: UnitOfWork,
    principal: Principal,
    merchant_id: str,
    *,
    settlement_delay: timedelta = timedelta(0),
) -> list[PayoutBalance]:
    """Each of the merchant's accounts: balance, unsettled, payable and pending payouts."""
    merchant_id = _merchant_for(principal, merchant_id)
    identity.get_merchant(uow, merchant_id, principal.livemode)
    a = schema.accounts
    rows = uow.execute(
        select(a)
        .where(
            a.c.owner_id == merchant_id,
            a.c.kind == AccountKind.MERCHANT.value,
            a.c.livemode == principal.livemode,
        )
        .order_by(a.c.currency, a.c.id)
    )
    now = uow.clock.now()
    balances = []
    for account in (account_from_row(row) for row in rows):
        unsettled = _unsettled(uow, account.id, now, settlement_delay)
        balances.append(
            PayoutBalance(
                merchant_id,
                principal.livemode,
                account,
                unsettled,
                rules.payable(account.available, unsettled),
                _pending_total(uow, account.id),
            )
        )
    return balances


# --- payouts ---------------------------------------------------------------------------------


def create_payout(
    uow: UnitOfWork,
    principal: Principal,
    *,
    amount: Any = None,
    currency: Any = None,
    merchant: Any = None,
    description: str | None = None,
    settlement_delay: timedelta = timedelta(0),
) -> PayoutRecord:
    """Send ``amount`` (by default all that is payable) toward the merchant's bank account:
    merchant → clearing now, status ``pending``; the rail settles it later."""
    merchant_id = _merchant_for(principal, merchant)
    record = identity.get_merchant(uow, merchant_id, principal.livemode)
    currency = record.currency if currency is None else parse_currency(currency)
    if description is not None and len(description) > 500:
        raise InvalidRequest("description is at most 500 characters", param="$.description")
    destination = _find_payout_account(uow, merchant_id, currency, principal.livemode)
    if destination is None:
        raise Conflict(
            f"register a {currency} payout account first: "
            f"POST /v1/merchants/{merchant_id}/payout_account",
            code="payout_account_missing",
            param="$.currency",
        )
    account = _merchant_account(uow, merchant_id, currency, principal.livemode)
    clearing = system_account(uow, AccountKind.CLEARING, currency, principal.livemode)
    # The lock on the merchant's account serializes payouts, captures and refunds touching
    # it; the payable amount is read under it, so two payouts cannot both spend it.
    locked = load_accounts(uow, [account.id, clearing], lock=True)
    now = uow.clock.now()
    payable = rules.payable(
        locked[account.id].available, _unsettled(uow, account.id, now, settlement_delay)
    )
    if amount is None:
        if payable == 0:
            raise Unprocessable(
                "nothing is available for payout yet", code="insufficient_funds", param="$.amount"
            )
        amount = payable
    amount = parse_amount(amount)
    rules.check_amount(amount, payable)
    payout = Payout(
        id=new_id("po"),
        livemode=principal.livemode,
        merchant_id=merchant_id,
        account_id=account.id,
        currency=currency,
        amount=amount,
        status=PayoutStatus.PENDING,
        destination=destination.reference,
        created_at=now,
    )
    transfer = post_transfer(
        uow,
        kind=TransferKind.PAYOUT,
        livemode=payout.livemode,
        currency=currency,
        amount=amount,
        source_id=account.id,
        destination_id=clearing,
        postings=rules.creation_postings(payout, clearing),
        locked=locked,
        description=f"payout {payout.id}",
    )
    uow.execute(
        insert(payouts).values(
            id=payout.id,
            livemode=payout.livemode,
            merchant_id=merchant_id,
            account_id=account.id,
            payout_account_id=destination.id,
            currency=currency,
            amount=amount,
            status=payout.status.value,
            failure_code=None,
            destination=destination.reference,
            destination_last4=destination.last4,
            description=description,
            transfer_id=transfer.id,
            settlement_transfer_id=None,
            created_at=now,
            settled_at=None,
        )
    )
    view = PayoutRecord(payout, destination.id, destination.last4, description, transfer.id, None)
    body = wire_payout(view)
    emit(uow, "payout.created", payout.livemode, body)
    audit.record(uow, "payout.created", principal, payout.id, _audit_data(view))
    return view


def _audit_data(record: PayoutRecord) -> dict[str, Any]:
    payout = record.payout
    return {
        "merchant": payout.merchant_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status.value,
        "failure_code": payout.failure_code,
        "payout_account": record.payout_account_id,
    }


def _payout_from_row(row: Any) -> PayoutRecord:
    payout = Payout(
        id=row.id,
        livemode=bool(row.livemode),
        merchant_id=row.merchant_id,
        account_id=row.account_id,
        currency=row.currency,
        amount=int(row.amount),
        status=PayoutStatus(row.status),
        destination=row.destination,
        created_at=row.created_at,
        failure_code=row.failure_code,
        settled_at=row.settled_at,
    )
    return PayoutRecord(
        payout,
        row.payout_account_id,
        row.destination_last4,
        row.description,
        row.transfer_id,
        row.settlement_transfer_id,
    )


def due_payouts(uow: UnitOfWork, *, batch_size_max: int = PROCESS_BATCH_MAX) -> list[str]:
    """The oldest pending payouts' ids, at most ``batch_size_max``."""
    p = payouts
    rows = uow.execute(
        select(p.c.id)
        .where(p.c.status == PayoutStatus.PENDING.value)
        .order_by(p.c.id)
        .limit(batch_size_max)
    )
    return [str(row.id) for row in rows]


def settle_payout(uow: UnitOfWork, payout_id: str) -> PayoutRecord | None:
    """Ask the rail about one pending payout and move its money on: paid, clearing → external
    funding; failed, clearing → the merchant. None when it was settled already."""
    row = uow.execute(
        select(payouts).where(payouts.c.id == payout_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such payout: {payout_id}", param="$.payout")
    record = _payout_from_row(row)
    payout = record.payout
    if payout.status is not PayoutStatus.PENDING:
        return None
    now = uow.clock.now()
    answer = sandbox.send_payout(payout.destination, payout.amount, payout.currency)
    if answer.paid:
        settled = rules.pay(payout, now)
    else:
        settled = rules.fail(payout, answer.failure_code or "could_not_process", now)
    clearing = system_account(uow, AccountKind.CLEARING, payout.currency, payout.livemode)
    funding = system_account(uow, AccountKind.EXTERNAL_FUNDING, payout.currency, payout.livemode)
    locked = load_accounts(uow, [clearing, funding, payout.account_id], lock=True)
    postings = rules.settlement_postings(settled, clearing, funding)
    transfer = post_transfer(
        uow,
        kind=TransferKind.PAYOUT,
        livemode=payout.livemode,
        currency=payout.currency,
        amount=payout.amount,
        source_id=clearing,
        destination_id=postings[1].account_id,
        postings=postings,
        locked=locked,
        description=f"payout {payout.id} {settled.status.value}",
    )
    uow.execute(
        update(payouts)
        .where(payouts.c.id == payout.id)
        .values(
            status=settled.status.value,
            failure_code=settled.failure_code,
            settled_at=now,
            settlement_transfer_id=transfer.id,
        )
    )
    after = replace(record, payout=settled, settlement_transfer_id=transfer.id)
    event = f"payout.{settled.status.value}"
    emit(uow, event, payout.livemode, wire_payout(after))
    audit.record(uow, event, None, payout.id, _audit_data(after))
    return after


def process_payouts(store: Store, *, batch_size_max: int = PROCESS_BATCH_MAX) -> int:
    """Settle up to ``batch_size_max`` pending payouts, each in its own transaction (a
    payout's locks are never held while another's are taken); how many were settled."""
    due = store.run(lambda uow: due_payouts(uow, batch_size_max=batch_size_max))
    settled = 0
    for payout_id in due:
        if store.run(functools.partial(settle_payout, payout_id=payout_id)) is not None:
            settled += 1
    return settled


def get_payout(uow: UnitOfWork, principal: Principal, payout_id: str) -> PayoutRecord:
    row = uow.execute(
        select(payouts).where(payouts.c.id == payout_id, payouts.c.livemode == principal.livemode)
    ).one_or_none()
    if row is None or not (principal.is_admin or row.merchant_id == principal.id):
        raise NotFound(f"no such payout: {payout_id}", param="$.payout")
    return _payout_from_row(row)


def list_payouts(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None,
    starting_after: str | None,
    status: str | None = None,
    merchant: str | None = None,
) -> Page:
    """Payouts, newest first: a merchant's own, or for an admin all (or one merchant's)."""
    p = payouts
    conditions = [p.c.livemode == principal.livemode]
    if principal.is_admin:
        if merchant is not None:
            conditions.append(p.c.merchant_id == merchant)
    else:
        conditions.append(p.c.merchant_id == _merchant_for(principal, merchant))
    if status is not None:
        if status not in {s.value for s in PayoutStatus}:
            raise InvalidRequest("status is pending, paid or failed", param="$.status")
        conditions.append(p.c.status == status)
    rows, has_more = page_rows(uow, p, conditions, limit=limit, starting_after=starting_after)
    return Page([_payout_from_row(row) for row in rows], has_more)


# --- wire forms ------------------------------------------------------------------------------


def wire_payout_account(record: PayoutAccountRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "payout_account",
        "livemode": record.livemode,
        "created": rfc3339(record.created_at),
        "updated": rfc3339(record.updated_at),
        "merchant": record.merchant_id,
        "currency": record.currency,
        "rail": "sandbox",
        "reference": record.reference,
        "routing_number": record.routing_number,
        "last4": record.last4,
        "account_number": f"****{record.last4}",
        "account_holder_name": record.holder_name,
    }


def wire_payout(record: PayoutRecord) -> dict[str, Any]:
    payout = record.payout
    return {
        "id": payout.id,
        "object": "payout",
        "livemode": payout.livemode,
        "created": rfc3339(payout.created_at),
        "merchant": payout.merchant_id,
        "account": payout.account_id,
        "amount": payout.amount,
        "currency": payout.currency,
        "status": payout.status.value,
        "failure_code": payout.failure_code,
        "destination": {
            "payout_account": record.payout_account_id,
            "account_number": f"****{record.destination_last4}",
        },
        "description": record.description,
        "transfer": record.transfer_id,
        "settlement_transfer": record.settlement_transfer_id,
        "settled": rfc3339(payout.settled_at) if payout.settled_at else None,
    }


def wire_balance(balance: PayoutBalance) -> dict[str, Any]:
    account = balance.account
    return {
        "object": "payout_balance",
        "livemode": balance.livemode,
        "merchant": balance.merchant_id,
        "account": account.id,
        "currency": account.currency,
        "posted": account.posted,
        "available": account.available,
        "unsettled": balance.unsettled,
        "payable": balance.payable,
        "pending_payouts": balance.pending_payouts,
    }
