"""Read-only reports over the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from paywarden.store import schema
from paywarden.store.unit_of_work import UnitOfWork

__all__ = ["BalanceTotal", "balance_totals"]


@dataclass(frozen=True, slots=True)
class BalanceTotal:
    currency: str
    kind: str
    accounts: int
    posted: int
    pending: int


def balance_totals(uow: UnitOfWork, *, livemode: bool) -> list[BalanceTotal]:
    a = schema.accounts
    rows = uow.execute(
        select(
            a.c.currency, a.c.kind, func.count(), func.sum(a.c.posted), func.sum(a.c.pending_out)
        )
        .where(a.c.livemode == livemode)
        .group_by(a.c.currency, a.c.kind)
        .order_by(a.c.currency, a.c.kind)
    )
    return [BalanceTotal(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]
