"""The reconciliation export: per merchant account, what moved its balance over a period.

The period is ``(start, end]``: a balance *at* an instant includes what happened at that
instant, so consecutive periods neither overlap nor leave gaps. ``start`` of ``None`` means
"from the beginning" (opening balance zero); ``end`` defaults to now.

Each row is computed from the transfers, holds and payouts tables, and its balances from the
postings, independently; the export refuses to render a row whose figures do not add up::

    closing = opening + net - payouts_paid - payouts_pending + payouts_returned + other
    net     = gross_captured - fees - refunds + fees_returned

- ``gross_captured``: captures into the account; ``fees``: their platform fee share.
- ``refunds``: refunds out of the account's captures (gross); ``fees_returned``: the fee
  share those refunds took back from the platform.
- ``payouts_paid`` / ``payouts_pending``: payouts created in the period that were paid / not
  yet answered at ``end``. A payout created and failed within the period moved nothing net.
- ``payouts_returned``: payouts created before the period that failed within it (their
  money came back in the period).
- ``other``: postings of any other kind (direct transfers to or from the merchant).

Summed over every merchant from the beginning, ``fees - fees_returned`` equals the platform
fee account's balance, and ``payouts_pending`` the payout part of the clearing account.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select

from paywarden.kernel.clock import rfc3339
from paywarden.kernel.errors import InvalidRequest, NotFound
from paywarden.kernel.invariant import invariant
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.ledger import AccountKind, TransferKind
from paywarden.payments.payouts import PayoutStatus
from paywarden.services import access
from paywarden.store import schema
from paywarden.store.tables_payouts import payouts
from paywarden.store.unit_of_work import UnitOfWork

__all__ = [
    "COLUMNS",
    "Reconciliation",
    "ReconciliationRow",
    "parse_instant",
    "reconcile",
    "to_csv",
]

A, T, P = schema.accounts, schema.transfers, schema.postings


@dataclass(slots=True)
class ReconciliationRow:
    merchant: str
    currency: str
    account: str
    opening_balance: int = 0
    gross_captured: int = 0
    fees: int = 0
    refunds: int = 0
    fees_returned: int = 0
    net: int = 0
    payouts_paid: int = 0
    payouts_pending: int = 0
    payouts_returned: int = 0
    other: int = 0
    closing_balance: int = 0

    def expected_closing(self) -> int:
        return (
            self.opening_balance
            + self.net
            - self.payouts_paid
            - self.payouts_pending
            + self.payouts_returned
            + self.other
        )


AMOUNT_COLUMNS = tuple(f.name for f in fields(ReconciliationRow))[3:]
COLUMNS = ("merchant", "currency", "account", "from", "to", *AMOUNT_COLUMNS)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    livemode: bool
    start: datetime | None
    end: datetime
    rows: list[ReconciliationRow]
    # Per currency, the platform fee account's balance at ``end`` (admin reports only).
    platform_fees: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, ReconciliationRow]:
        """One row per currency summing every merchant's."""
        sums: dict[str, ReconciliationRow] = {}
        for row in self.rows:
            total = sums.setdefault(row.currency, ReconciliationRow("total", row.currency, ""))
            for name in AMOUNT_COLUMNS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return sums


def reconcile(
    uow: UnitOfWork,
    principal: Principal,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    merchant: str | None = None,
) -> Reconciliation:
    """The reconciliation over ``(start, end]``: a merchant's own accounts, or for an admin
    every merchant's (or the one named)."""
    if principal.is_admin:
        owner = merchant
    else:
        access.require_type(principal, PrincipalType.MERCHANT)
        if merchant is not None and merchant != principal.id:
            raise NotFound(f"no such merchant: {merchant}", param="$.merchant")
        owner = principal.id
    end = uow.clock.now() if end is None else end
    if start is not None and start >= end:
        raise InvalidRequest("from must be before to", code="invalid_period", param="$.from")
    scope = _scope(uow, principal.livemode, owner)
    rows = list(scope.rows.values())
    _fill_balances(uow, scope, start, end)
    _fill_captures_and_refunds(uow, scope, start, end, principal.livemode)
    _fill_payouts(uow, scope, start, end)
    _fill_other(uow, scope, start, end)
    for row in rows:
        row.net = row.gross_captured - row.fees - row.refunds + row.fees_returned
        invariant(
            row.expected_closing() == row.closing_balance,
            f"reconciliation of {row.account} does not tie out: expected "
            f"{row.expected_closing()}, the ledger holds {row.closing_balance}",
        )
    fees = _platform_fees(uow, principal.livemode, end) if principal.is_admin else {}
    return Reconciliation(principal.livemode, start, end, rows, fees)


@dataclass(frozen=True, slots=True)
class _Scope:
    """The rows being filled, by account id, and those accounts' ids as a subquery (the
    queries below name the accounts by it, not by a list as long as the merchants)."""

    rows: dict[str, ReconciliationRow]
    accounts: Select[tuple[str]]


def _scope(uow: UnitOfWork, livemode: bool, owner: str | None) -> _Scope:
    conditions = [A.c.kind == AccountKind.MERCHANT.value, A.c.livemode == livemode]
    if owner is not None:
        conditions.append(A.c.owner_id == owner)
    query = select(A.c.id, A.c.owner_id, A.c.currency).where(*conditions)
    result = uow.execute(query.order_by(A.c.owner_id, A.c.currency, A.c.id))
    rows = {r.id: ReconciliationRow(str(r.owner_id), r.currency, r.id) for r in result}
    return _Scope(rows, select(A.c.id).where(*conditions))


def _in_period(column: Any, start: datetime | None, end: datetime) -> ColumnElement[bool]:
    if start is None:
        return column <= end  # type: ignore[no-any-return]
    return and_(column > start, column <= end)


def _fill_balances(uow: UnitOfWork, scope: _Scope, start: datetime | None, end: datetime) -> None:
    """Opening and closing balances: the sums of the accounts' postings at each instant."""
    for instant, attribute in ((start, "opening_balance"), (end, "closing_balance")):
        if instant is None:
            continue
        for account_id, total in _sum_by(
            uow,
            select(P.c.account_id, func.sum(P.c.amount))
            .where(P.c.account_id.in_(scope.accounts), P.c.created_at <= instant)
            .group_by(P.c.account_id),
        ):
            setattr(scope.rows[account_id], attribute, total)


def _sum_by(uow: UnitOfWork, query: Any) -> Iterable[tuple[str, int]]:
    return ((str(key), int(total or 0)) for key, total in uow.execute(query))


def _fill_captures_and_refunds(
    uow: UnitOfWork,
    scope: _Scope,
    start: datetime | None,
    end: datetime,
    livemode: bool,
) -> None:
    when = _in_period(T.c.created_at, start, end)
    capture = T.c.kind == TransferKind.CAPTURE.value
    refund = T.c.kind == TransferKind.REFUND.value
    gross = select(T.c.destination_account_id, func.sum(T.c.amount))
    for account_id, total in _sum_by(
        uow,
        gross.where(capture, when, T.c.destination_account_id.in_(scope.accounts)).group_by(
            T.c.destination_account_id
        ),
    ):
        scope.rows[account_id].gross_captured = total
    refunded = select(T.c.source_account_id, func.sum(T.c.amount))
    for account_id, total in _sum_by(
        uow,
        refunded.where(refund, when, T.c.source_account_id.in_(scope.accounts)).group_by(
            T.c.source_account_id
        ),
    ):
        scope.rows[account_id].refunds = total
    # The fee share of each capture and refund: its posting on a platform fee account.
    fee_accounts = select(A.c.id).where(
        A.c.kind == AccountKind.PLATFORM_FEES.value, A.c.livemode == livemode
    )
    for kind, side, attribute, sign in (
        (capture, T.c.destination_account_id, "fees", 1),
        (refund, T.c.source_account_id, "fees_returned", -1),
    ):
        query = (
            select(side, func.sum(P.c.amount))
            .select_from(T.join(P, P.c.transfer_id == T.c.id))
            .where(kind, when, side.in_(scope.accounts), P.c.account_id.in_(fee_accounts))
            .group_by(side)
        )
        for account_id, total in _sum_by(uow, query):
            setattr(scope.rows[account_id], attribute, sign * total)


def _fill_payouts(uow: UnitOfWork, scope: _Scope, start: datetime | None, end: datetime) -> None:
    p = payouts
    created = _in_period(p.c.created_at, start, end)
    query = select(p.c.account_id, p.c.amount, p.c.status, p.c.created_at, p.c.settled_at).where(
        p.c.account_id.in_(scope.accounts),
        created if start is None else (created | _in_period(p.c.settled_at, start, end)),
    )
    for row in uow.execute(query):
        target = scope.rows[row.account_id]
        settled = row.settled_at is not None and row.settled_at <= end
        status = PayoutStatus(row.status) if settled else PayoutStatus.PENDING
        created_in_period = start is None or row.created_at > start
        if created_in_period and status is PayoutStatus.PAID:
            target.payouts_paid += int(row.amount)
        elif created_in_period and status is PayoutStatus.PENDING:
            target.payouts_pending += int(row.amount)
        elif not created_in_period and status is PayoutStatus.FAILED:
            target.payouts_returned += int(row.amount)


def _fill_other(uow: UnitOfWork, scope: _Scope, start: datetime | None, end: datetime) -> None:
    """Postings of every other kind of transfer on the merchant accounts."""
    known = [TransferKind.CAPTURE.value, TransferKind.REFUND.value, TransferKind.PAYOUT.value]
    query = (
        select(P.c.account_id, func.sum(P.c.amount))
        .select_from(P.join(T, T.c.id == P.c.transfer_id))
        .where(
            P.c.account_id.in_(scope.accounts),
            T.c.kind.not_in(known),
            _in_period(T.c.created_at, start, end),
        )
        .group_by(P.c.account_id)
    )
    for account_id, total in _sum_by(uow, query):
        scope.rows[account_id].other = total


def _platform_fees(uow: UnitOfWork, livemode: bool, end: datetime) -> dict[str, int]:
    query = (
        select(A.c.currency, func.sum(P.c.amount))
        .select_from(A.join(P, P.c.account_id == A.c.id))
        .where(
            A.c.kind == AccountKind.PLATFORM_FEES.value,
            A.c.livemode == livemode,
            P.c.created_at <= end,
        )
        .group_by(A.c.currency)
    )
    return dict(_sum_by(uow, query))


def to_csv(report: Reconciliation, *, with_totals: bool = True) -> str:
    """The report as CSV: one row per merchant account, then one ``total`` row per currency.
    Amounts are integers in minor units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    start = rfc3339(report.start) if report.start else ""
    end = rfc3339(report.end)
    rows = list(report.rows)
    if with_totals:
        rows += [report.totals()[c] for c in sorted(report.totals())]
    for row in rows:
        amounts = [getattr(row, name) for name in AMOUNT_COLUMNS]
        writer.writerow([row.merchant, row.currency, row.account, start, end, *amounts])
    return out.getvalue()


def parse_instant(value: str | None, param: str) -> datetime | None:
    """A period bound from input: RFC 3339 with an offset (``2026-11-29T09:00:00Z``), or a
    date (``2026-11-29``, meaning its first instant in UTC)."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        instant = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        raise InvalidRequest(
            f"{param[2:]} must be an RFC 3339 instant with an offset, or a date",
            code="invalid_timestamp",
            param=param,
        )
    return instant.astimezone(UTC)
