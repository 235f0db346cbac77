"""Money in and between accounts: top-ups through the sandbox rail, direct transfers, and
reading accounts and transfers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, or_, select

from paywarden.adapters.ids import new_id
from paywarden.kernel.errors import InvalidRequest, NotFound
from paywarden.kernel.ids import id_prefix
from paywarden.kernel.money import parse_amount, parse_currency
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments import ledger
from paywarden.payments.ledger import Account, AccountKind, Posting, TransferKind
from paywarden.payments.rails.sandbox import authorize_card
from paywarden.services import access
from paywarden.services.listing import page_rows
from paywarden.services.records import Page, TopUpRecord, TransferRecord, wire
from paywarden.store import schema
from paywarden.store.ledger_repo import (
    account_from_row,
    insert_transfer,
    load_accounts,
    owned_with_system,
    prefetch_owned_with_system,
    save_accounts,
    system_account,
)
from paywarden.store.outbox import emit
from paywarden.store.prepared import prepare_all
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "Card",
    "get_account",
    "get_top_up",
    "get_transfer",
    "list_accounts",
    "list_transfers",
    "own_account",
    "post_transfer",
    "prefetch_wallet",
    "prefetch_with_system",
    "resolve_account",
    "resolve_with_system",
    "top_up",
    "transfer",
]


@dataclass(frozen=True, slots=True)
class Card:
    number: str
    exp_month: int
    exp_year: int


# Run several times by every payment: built once (building and keying costs more than running).
_ACCOUNT_BY_ID = select(schema.accounts).where(
    schema.accounts.c.id == bindparam("account_id"),
    schema.accounts.c.livemode == bindparam("livemode"),
)
_ACCOUNT_BY_OWNER = select(schema.accounts).where(
    schema.accounts.c.owner_id == bindparam("owner_id"),
    schema.accounts.c.currency == bindparam("currency"),
    schema.accounts.c.livemode == bindparam("livemode"),
)
# The same, locked as it is read (FOR NO KEY UPDATE, as ledger_repo.load_accounts locks).
_LOCKED = {
    _ACCOUNT_BY_ID: _ACCOUNT_BY_ID.with_for_update(key_share=True),
    _ACCOUNT_BY_OWNER: _ACCOUNT_BY_OWNER.with_for_update(key_share=True),
}


def _by_owner(owner_id: str, currency: str, principal: Principal) -> dict[str, Any]:
    """The parameters an account is read by its owner with (:func:`prefetch_wallet` sends
    ahead exactly what :func:`resolve_account` then reads)."""
    return {"owner_id": owner_id, "currency": currency, "livemode": principal.livemode}


def resolve_account(
    uow: UnitOfWork,
    principal: Principal,
    reference: Any,
    currency: str,
    param: str,
    *,
    lock: bool = False,
) -> Account:
    """An account named by its own id, or by its owner's id (``usr_``/``mer_``) and currency;
    with ``lock``, its row is locked for update as it is read."""
    if not isinstance(reference, str):
        raise InvalidRequest("expected an account, user or merchant id", param=param)
    prefix = id_prefix(reference)
    if prefix == "acct":
        query, named = _ACCOUNT_BY_ID, {"account_id": reference, "livemode": principal.livemode}
    elif prefix in {"usr", "mer"}:
        query, named = _ACCOUNT_BY_OWNER, _by_owner(reference, currency, principal)
    else:
        raise InvalidRequest(
            f"{reference!r} is not an account, user or merchant id", code="invalid_id", param=param
        )
    if lock:
        query = _LOCKED[query]
    row = uow.execute(query, named).first()
    if row is None:
        raise NotFound(f"no {currency} account for {reference}", param=param)
    return account_from_row(row)


def prefetch_wallet(uow: UnitOfWork, user: Principal, currency: str) -> None:
    """Send ahead (``UnitOfWork.prefetch``) the read of the user's wallet, locked, that
    :func:`own_account` with ``lock`` makes (the lock is taken when it is sent)."""
    if user.type is PrincipalType.USER and user.id is not None:
        uow.prefetch(_LOCKED[_ACCOUNT_BY_OWNER], _by_owner(user.id, currency, user))


def prefetch_with_system(
    uow: UnitOfWork, principal: Principal, owner_id: str, currency: str, kind: AccountKind
) -> None:
    """Send ahead the read :func:`resolve_with_system` makes of an owner's account."""
    prefetch_owned_with_system(uow, owner_id, currency, principal.livemode, kind)


def resolve_with_system(
    uow: UnitOfWork,
    principal: Principal,
    reference: Any,
    currency: str,
    param: str,
    kind: AccountKind,
) -> tuple[Account, Account]:
    """:func:`resolve_account` (no lock), and the platform's own account of ``kind`` in
    ``currency`` (made on first use): in one statement when ``reference`` is an owner."""
    if isinstance(reference, str) and id_prefix(reference) in {"usr", "mer"}:
        owned, system = owned_with_system(uow, reference, currency, principal.livemode, kind)
        if owned is None:
            raise NotFound(f"no {currency} account for {reference}", param=param)
        return owned, system
    account = resolve_account(uow, principal, reference, currency, param)
    made = system_account(uow, kind, currency, principal.livemode)
    return account, load_accounts(uow, [made], lock=False)[made]


def own_account(
    uow: UnitOfWork,
    principal: Principal,
    reference: Any,
    currency: str,
    param: str,
    *,
    lock: bool = False,
) -> Account:
    """The payer's account: named explicitly, or for users their wallet in ``currency``
    (locked as it is read, with ``lock``)."""
    if reference is None:
        if principal.type is not PrincipalType.USER or principal.id is None:
            raise InvalidRequest("name the account to use", code="parameter_missing", param=param)
        reference = principal.id
    account = resolve_account(uow, principal, reference, currency, param, lock=lock)
    access.require_owner(principal, account, param)
    return account


def _check_currency(account: Account, currency: str, param: str) -> None:
    if account.currency != currency:
        raise InvalidRequest(
            f"account {account.id} holds {account.currency}, not {currency}",
            code="currency_mismatch",
            param=param,
        )


def post_transfer(
    uow: UnitOfWork,
    *,
    kind: TransferKind,
    livemode: bool,
    currency: str,
    amount: int,
    source_id: str,
    destination_id: str,
    postings: list[Posting],
    locked: dict[str, Account],
    credited_at_end: Mapping[str, Account] | None = None,
    **links: Any,
) -> TransferRecord:
    """Apply postings to locked accounts, write the transfer, and return it. The postings
    to ``credited_at_end`` (accounts read without a lock, each credited) are added to their
    balances at the end of the transaction (``UnitOfWork.credit_at_end``)."""
    later = credited_at_end or {}
    updated = ledger.apply_postings({**locked, **later}, postings)
    save_accounts(uow, [account for key, account in updated.items() if key not in later])
    for posting in postings:
        if posting.account_id in later:
            uow.credit_at_end(posting.account_id, posting.amount)
    now = uow.clock.now()
    transfer_id = insert_transfer(
        uow,
        kind=kind.value,
        livemode=livemode,
        currency=currency,
        amount=amount,
        source_account_id=source_id,
        destination_account_id=destination_id,
        postings=postings,
        now=now,
        **links,
    )
    return TransferRecord(
        transfer_id,
        livemode,
        kind.value,
        currency,
        amount,
        source_id,
        destination_id,
        now,
        tuple(postings),
        **links,
    )


def top_up(
    uow: UnitOfWork,
    principal: Principal,
    *,
    amount: Any,
    currency: Any,
    card: Card,
    account: Any = None,
    token_key: bytes,
) -> TopUpRecord:
    """Charge a card on the sandbox rail and credit a wallet. A decline is recorded and
    returned with ``status = failed``; nothing moves."""
    access.require_type(principal, PrincipalType.USER)
    currency = parse_currency(currency)
    amount = parse_amount(amount)
    wallet = own_account(uow, principal, account, currency, "$.account")
    _check_currency(wallet, currency, "$.currency")
    now = uow.clock.now()
    result = authorize_card(card.number, card.exp_month, card.exp_year, now, token_key)
    top_up_id = new_id("top")
    transfer_id = None
    if result.approved:
        funding = system_account(uow, AccountKind.EXTERNAL_FUNDING, currency, wallet.livemode)
        locked = load_accounts(uow, [wallet.id, funding], lock=True)
        postings = [Posting(funding, -amount, currency), Posting(wallet.id, amount, currency)]
        transfer_id = post_transfer(
            uow,
            kind=TransferKind.TOP_UP,
            livemode=wallet.livemode,
            currency=currency,
            amount=amount,
            source_id=funding,
            destination_id=wallet.id,
            postings=postings,
            locked=locked,
            top_up_id=top_up_id,
        ).id
    record = TopUpRecord(
        id=top_up_id,
        livemode=wallet.livemode,
        account_id=wallet.id,
        currency=currency,
        amount=amount,
        status="succeeded" if result.approved else "failed",
        failure_code=result.decline_code,
        card_brand=result.brand,
        card_last4=result.last4,
        transfer_id=transfer_id,
        created_at=now,
    )
    uow.execute(
        insert(schema.top_ups).values(
            id=record.id,
            livemode=record.livemode,
            account_id=record.account_id,
            currency=currency,
            amount=amount,
            status=record.status,
            failure_code=record.failure_code,
            card_token=result.token,
            card_brand=result.brand,
            card_last4=result.last4,
            transfer_id=transfer_id,
            created_at=now,
        )
    )
    emit(uow, f"top_up.{record.status}", record.livemode, wire(record))
    return record


def transfer(
    uow: UnitOfWork,
    principal: Principal,
    *,
    destination: Any,
    source: Any = None,
    amount: Any,
    currency: Any,
    description: str | None = None,
) -> TransferRecord:
    """Move money directly from one of the principal's accounts to another account."""
    access.require_type(principal, PrincipalType.USER)
    currency = parse_currency(currency)
    amount = parse_amount(amount)
    source_account = own_account(uow, principal, source, currency, "$.source")
    target = resolve_account(uow, principal, destination, currency, "$.destination")
    _check_currency(source_account, currency, "$.currency")
    _check_currency(target, currency, "$.destination")
    if target.id == source_account.id:
        raise InvalidRequest(
            "source and destination are the same account",
            code="same_account",
            param="$.destination",
        )
    if target.kind not in {AccountKind.USER_WALLET, AccountKind.MERCHANT} and not (
        principal.is_admin
    ):
        raise NotFound(f"no such account: {target.id}", param="$.destination")
    locked = load_accounts(uow, [source_account.id, target.id], lock=True)
    postings = [Posting(source_account.id, -amount, currency), Posting(target.id, amount, currency)]
    record = post_transfer(
        uow,
        kind=TransferKind.TRANSFER,
        livemode=principal.livemode,
        currency=currency,
        amount=amount,
        source_id=source_account.id,
        destination_id=target.id,
        postings=postings,
        locked=locked,
        description=_description(description),
    )
    emit(uow, "transfer.created", record.livemode, wire(record))
    return record


def _description(value: str | None) -> str | None:
    if value is not None and len(value) > 500:
        raise InvalidRequest("description is at most 500 characters", param="$.description")
    return value


def get_account(uow: UnitOfWork, principal: Principal, account_id: str) -> Account:
    found = load_accounts(uow, [account_id], lock=False, livemode=principal.livemode)
    account = found[account_id]
    access.require_owner(principal, account, "$.account")
    return account


def list_accounts(
    uow: UnitOfWork,
    principal: Principal,
    *,
    limit: int | None,
    starting_after: str | None,
    owner: str | None = None,
) -> Page:
    a = schema.accounts
    conditions = [a.c.livemode == principal.livemode]
    if not principal.is_admin:
        conditions.append(a.c.owner_id == principal.id)
    elif owner is not None:
        conditions.append(a.c.owner_id == owner)
    rows, has_more = page_rows(uow, a, conditions, limit=limit, starting_after=starting_after)
    return Page([account_from_row(row) for row in rows], has_more)


def _transfer_from_row(uow: UnitOfWork, row: Any) -> TransferRecord:
    p = schema.postings
    postings = tuple(
        Posting(r.account_id, int(r.amount), r.currency)
        for r in uow.execute(select(p).where(p.c.transfer_id == row.id).order_by(p.c.id))
    )
    return TransferRecord(
        row.id,
        bool(row.livemode),
        row.kind,
        row.currency,
        int(row.amount),
        row.source_account_id,
        row.destination_account_id,
        row.created_at,
        postings,
        row.hold_id,
        row.refund_id,
        row.top_up_id,
        row.description,
    )


def get_transfer(uow: UnitOfWork, principal: Principal, transfer_id: str) -> TransferRecord:
    t = schema.transfers
    row = uow.execute(
        select(t).where(t.c.id == transfer_id, t.c.livemode == principal.livemode)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no such transfer: {transfer_id}", param="$.transfer")
    record = _transfer_from_row(uow, row)
    parties = load_accounts(uow, [p.account_id for p in record.postings], lock=False)
    if not access.visible(principal, parties.values()):
        raise NotFound(f"no such transfer: {transfer_id}", param="$.transfer")
    return record


def list_transfers(
    uow: UnitOfWork, principal: Principal, *, limit: int | None, starting_after: str | None
) -> Page:
    t = schema.transfers
    conditions = [t.c.livemode == principal.livemode]
    owned = access.owned_account_ids(uow, principal)
    if owned is not None:
        conditions.append(
            or_(t.c.source_account_id.in_(owned), t.c.destination_account_id.in_(owned))
        )
    rows, has_more = page_rows(uow, t, conditions, limit=limit, starting_after=starting_after)
    return Page([_transfer_from_row(uow, row) for row in rows], has_more)


def get_top_up(uow: UnitOfWork, principal: Principal, top_up_id: str) -> TopUpRecord:
    t = schema.top_ups
    row = uow.execute(
        select(t).where(t.c.id == top_up_id, t.c.livemode == principal.livemode)
    ).one_or_none()
    if row is not None:
        account = load_accounts(uow, [row.account_id], lock=False)[row.account_id]
        if access.owns(principal, account):
            return TopUpRecord(
                row.id,
                bool(row.livemode),
                row.account_id,
                row.currency,
                int(row.amount),
                row.status,
                row.failure_code,
                row.card_brand,
                row.card_last4,
                row.transfer_id,
                row.created_at,
            )
    raise NotFound(f"no such top-up: {top_up_id}", param="$.top_up")


prepare_all(globals())  # the statements built above run on the driver (store.prepared)
