"""Reading and writing ledger rows. Locks are taken in id order to avoid deadlocks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paywarden.adapters.ids import new_id
from paywarden.kernel.errors import NotFound
from paywarden.kernel.money import BALANCE_MINOR_MAX
from paywarden.payments.holds import Hold, HoldStatus
from paywarden.payments.ledger import Account, AccountKind, Posting
from paywarden.store import schema
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "account_from_row",
    "create_account",
    "credit",
    "hold_from_row",
    "insert_hold",
    "insert_transfer",
    "load_accounts",
    "load_hold",
    "owned_with_system",
    "prefetch_owned_with_system",
    "save_accounts",
    "save_hold",
    "system_account",
]

A = schema.accounts
H = schema.holds


def account_from_row(row: Any) -> Account:
    return Account(
        id=row.id,
        kind=AccountKind(row.kind),
        currency=row.currency,
        non_negative=bool(row.non_negative),
        posted=int(row.posted),
        pending_out=int(row.pending_out),
        livemode=bool(row.livemode),
        owner_id=row.owner_id,
        created_at=row.created_at,
    )


def create_account(
    uow: UnitOfWork,
    *,
    kind: AccountKind,
    currency: str,
    livemode: bool,
    owner_id: str | None,
    non_negative: bool,
) -> Account:
    now = uow.clock.now()
    account = Account(
        id=new_id("acct"),
        kind=kind,
        currency=currency,
        non_negative=non_negative,
        posted=0,
        pending_out=0,
        livemode=livemode,
        owner_id=owner_id,
        created_at=now,
    )
    uow.execute(
        insert(A).values(
            id=account.id,
            livemode=livemode,
            kind=kind.value,
            currency=currency,
            owner_id=owner_id,
            non_negative=non_negative,
            posted=0,
            pending_out=0,
            created_at=now,
        )
    )
    return account


def _system_key(kind: AccountKind, currency: str, livemode: bool) -> str:
    return f"{kind.value}:{currency}:{'live' if livemode else 'test'}"


def system_account(uow: UnitOfWork, kind: AccountKind, currency: str, livemode: bool) -> str:
    """The id of the platform's own account of ``kind`` in ``currency``, created on first use.

    Concurrent first uses race on the unique ``system_key``; ``ON CONFLICT DO NOTHING`` lets
    the loser read the winner's row instead of failing.
    """
    key = _system_key(kind, currency, livemode)
    found = uow.execute(_SYSTEM_ACCOUNT, {"system_key": key}).scalar_one_or_none()
    if found is not None:
        return str(found)
    values = {
        "id": new_id("acct"),
        "livemode": livemode,
        "kind": kind.value,
        "currency": currency,
        "owner_id": None,
        "system_key": key,
        "non_negative": kind not in {AccountKind.EXTERNAL_FUNDING, AccountKind.CLEARING},
        "posted": 0,
        "pending_out": 0,
        "created_at": uow.clock.now(),
    }
    dialect_insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    uow.execute(dialect_insert(A).values(**values).on_conflict_do_nothing())
    return str(uow.execute(select(A.c.id).where(A.c.system_key == key)).scalar_one())


# Statements of the payment path, built once (building and keying one costs more than
# running it); each runs with its parameters.
_ACCOUNTS = select(A).where(A.c.id.in_(bindparam("ids", expanding=True))).order_by(A.c.id)
# FOR NO KEY UPDATE (PostgreSQL; SQLite has no row locks): a balance update never changes
# the key, and this lock does not conflict with the KEY SHARE locks that inserting a hold,
# transfer or posting takes on the accounts it references. FOR UPDATE would: two payments
# that each inserted a hold for one merchant then both waited to lock that merchant's
# account for the capture (a deadlock, seen with concurrent payments on PostgreSQL).
_ACCOUNTS_LOCKED = _ACCOUNTS.with_for_update(key_share=True)
_ACCOUNTS_AND_SYSTEM = (
    select(A)
    .where(
        or_(A.c.id.in_(bindparam("ids", expanding=True)), A.c.system_key == bindparam("system_key"))
    )
    .order_by(A.c.id)
)
_ACCOUNTS_AND_SYSTEM_LOCKED = _ACCOUNTS_AND_SYSTEM.with_for_update(key_share=True)
# An owner's account (in a currency and mode, as services.ledger finds it by owner) and a
# system account: a payee and the platform's fees.
_OWNED_AND_SYSTEM = select(A).where(
    or_(
        and_(
            A.c.owner_id == bindparam("owner_id"),
            A.c.currency == bindparam("currency"),
            A.c.livemode == bindparam("livemode"),
        ),
        A.c.system_key == bindparam("system_key"),
    )
)
_SAVE_ACCOUNT = (
    update(A)
    .where(A.c.id == bindparam("account_id"))
    .values(posted=bindparam("new_posted"), pending_out=bindparam("new_pending_out"))
)
_CREDIT_ACCOUNT = (
    update(A)
    .where(A.c.id == bindparam("account_id"), A.c.posted <= bindparam("posted_max"))
    .values(posted=A.c.posted + bindparam("amount"))
)
_INSERT_TRANSFER = insert(schema.transfers)
_INSERT_POSTINGS = insert(schema.postings)
_HOLD = select(H).where(H.c.id == bindparam("hold_id"))
_HOLD_LOCKED = _HOLD.with_for_update()
_INSERT_HOLD = insert(H)
_SYSTEM_ACCOUNT = select(A.c.id).where(A.c.system_key == bindparam("system_key"))
_HOLD_COLUMNS = (
    "status",
    "captured_amount",
    "refunded_amount",
    "fee_amount",
    "fee_refunded",
    "updated_at",
)
_SAVE_HOLD = {
    captured: update(H)
    .where(H.c.id == bindparam("hold_id"))
    .values(
        {
            name: bindparam(f"new_{name}")
            for name in (*_HOLD_COLUMNS, *(["capture_transfer_id"] if captured else []))
        }
    )
    for captured in (False, True)
}


def load_accounts(
    uow: UnitOfWork, ids: Iterable[str], *, lock: bool, livemode: bool | None = None
) -> dict[str, Account]:
    """Load accounts by id, locked for update in id order when ``lock``; all must exist."""
    wanted = sorted(set(ids))
    query = _ACCOUNTS_LOCKED if lock else _ACCOUNTS
    found = {row.id: account_from_row(row) for row in uow.execute(query, {"ids": wanted})}
    return _all_found(found, wanted, livemode)


def _all_found(
    found: dict[str, Account], wanted: Iterable[str], livemode: bool | None = None
) -> dict[str, Account]:
    for account_id in wanted:
        account = found.get(account_id)
        if account is None or (livemode is not None and account.livemode != livemode):
            raise NotFound(f"no such account: {account_id}", param="$.account")
    return found


def load_accounts_with_system(
    uow: UnitOfWork,
    ids: Iterable[str],
    kind: AccountKind,
    currency: str,
    livemode: bool,
    *,
    lock: bool = True,
) -> dict[str, Account]:
    """:func:`load_accounts` of ``ids`` (locked when ``lock``), and the platform's own
    account of ``kind`` (:func:`system_account`) with them, in one statement."""
    wanted = sorted(set(ids))
    key = _system_key(kind, currency, livemode)
    query = _ACCOUNTS_AND_SYSTEM_LOCKED if lock else _ACCOUNTS_AND_SYSTEM
    rows = uow.execute(query, {"ids": wanted, "system_key": key}).all()
    if not any(row.system_key == key for row in rows):  # its first use: made, then read
        return load_accounts(
            uow, [*wanted, system_account(uow, kind, currency, livemode)], lock=lock
        )
    return _all_found({row.id: account_from_row(row) for row in rows}, wanted)


def _owned_with_system_params(
    owner_id: str, currency: str, livemode: bool, kind: AccountKind
) -> dict[str, Any]:
    return {
        "owner_id": owner_id,
        "currency": currency,
        "livemode": livemode,
        "system_key": _system_key(kind, currency, livemode),
    }


def prefetch_owned_with_system(
    uow: UnitOfWork, owner_id: str, currency: str, livemode: bool, kind: AccountKind
) -> None:
    """Send ahead (``UnitOfWork.prefetch``) the read :func:`owned_with_system` makes."""
    uow.prefetch(_OWNED_AND_SYSTEM, _owned_with_system_params(owner_id, currency, livemode, kind))


def owned_with_system(
    uow: UnitOfWork, owner_id: str, currency: str, livemode: bool, kind: AccountKind
) -> tuple[Account | None, Account]:
    """The account ``owner_id`` holds in ``currency`` (None if none) and the platform's own
    account of ``kind`` (:func:`system_account`, made on first use), read without a lock in
    one statement; what ``resolve_account`` by owner then :func:`load_accounts_with_system`
    read in two."""
    params = _owned_with_system_params(owner_id, currency, livemode, kind)
    owned = system = None
    for row in uow.execute(_OWNED_AND_SYSTEM, params):
        if row.system_key == params["system_key"]:
            system = account_from_row(row)
        elif owned is None:
            owned = account_from_row(row)
    if system is None:  # its first use: made, then read
        made = system_account(uow, kind, currency, livemode)
        system = load_accounts(uow, [made], lock=False)[made]
    return owned, system


def save_accounts(uow: UnitOfWork, accounts: Iterable[Account]) -> None:
    for account in accounts:
        uow.write(
            _SAVE_ACCOUNT,
            {
                "account_id": account.id,
                "new_posted": account.posted,
                "new_pending_out": account.pending_out,
            },
            rows=1,
            lost=f"account {account.id} vanished during a transfer",
        )


def credit(uow: UnitOfWork, account_id: str, amount: int) -> None:
    """Add ``amount`` to the account's posted balance, under its row lock but without
    reading it (see ``UnitOfWork.credit_at_end``); the balance ceiling holds."""
    uow.write(
        _CREDIT_ACCOUNT,
        {"account_id": account_id, "amount": amount, "posted_max": BALANCE_MINOR_MAX - amount},
        rows=1,
        lost=f"account {account_id} vanished, or a credit would pass the balance ceiling",
    )


def insert_transfer(
    uow: UnitOfWork,
    *,
    kind: str,
    livemode: bool,
    currency: str,
    amount: int,
    source_account_id: str,
    destination_account_id: str,
    postings: Sequence[Posting],
    now: datetime,
    hold_id: str | None = None,
    refund_id: str | None = None,
    top_up_id: str | None = None,
    description: str | None = None,
) -> str:
    transfer_id = new_id("txf")
    uow.write(
        _INSERT_TRANSFER,
        {
            "id": transfer_id,
            "livemode": livemode,
            "kind": kind,
            "currency": currency,
            "amount": amount,
            "source_account_id": source_account_id,
            "destination_account_id": destination_account_id,
            "hold_id": hold_id,
            "refund_id": refund_id,
            "top_up_id": top_up_id,
            "description": description,
            "created_at": now,
        },
    )
    uow.write(
        _INSERT_POSTINGS,
        [
            {
                "transfer_id": transfer_id,
                "account_id": p.account_id,
                "currency": p.currency,
                "amount": p.amount,
                "created_at": now,
            }
            for p in postings
        ],
    )
    uow.wrote_transfer(transfer_id)
    return transfer_id


def hold_from_row(row: Any) -> Hold:
    return Hold(
        id=row.id,
        livemode=bool(row.livemode),
        source_account_id=row.source_account_id,
        destination_account_id=row.destination_account_id,
        currency=row.currency,
        amount=int(row.amount),
        status=HoldStatus(row.status),
        expires_at=row.expires_at,
        captured_amount=int(row.captured_amount),
        refunded_amount=int(row.refunded_amount),
        fee_amount=int(row.fee_amount),
        fee_refunded=int(row.fee_refunded),
    )


def load_hold(uow: UnitOfWork, hold_id: str, *, lock: bool) -> tuple[Hold, Any]:
    row = uow.execute(_HOLD_LOCKED if lock else _HOLD, {"hold_id": hold_id}).one_or_none()
    if row is None:
        raise NotFound(f"no such hold: {hold_id}", param="$.hold")
    return hold_from_row(row), row


def insert_hold(
    uow: UnitOfWork,
    hold: Hold,
    description: str | None,
    now: datetime,
    capture_transfer_id: str | None = None,
) -> None:
    """Write a new hold as it stands (pending, or captured already with its transfer)."""
    uow.write(
        _INSERT_HOLD,
        {
            "id": hold.id,
            "livemode": hold.livemode,
            "source_account_id": hold.source_account_id,
            "destination_account_id": hold.destination_account_id,
            "currency": hold.currency,
            "amount": hold.amount,
            "status": hold.status.value,
            "captured_amount": hold.captured_amount,
            "refunded_amount": hold.refunded_amount,
            "fee_amount": hold.fee_amount,
            "fee_refunded": hold.fee_refunded,
            "capture_transfer_id": capture_transfer_id,
            "description": description,
            "expires_at": hold.expires_at,
            "created_at": now,
            "updated_at": now,
        },
    )


def save_hold(
    uow: UnitOfWork, hold: Hold, now: datetime, capture_transfer_id: str | None = None
) -> None:
    values: dict[str, Any] = {
        "hold_id": hold.id,
        "new_status": hold.status.value,
        "new_captured_amount": hold.captured_amount,
        "new_refunded_amount": hold.refunded_amount,
        "new_fee_amount": hold.fee_amount,
        "new_fee_refunded": hold.fee_refunded,
        "new_updated_at": now,
    }
    if capture_transfer_id is not None:
        values["new_capture_transfer_id"] = capture_transfer_id
    uow.write(
        _SAVE_HOLD[capture_transfer_id is not None], values, rows=1, lost=f"hold {hold.id} vanished"
    )


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
