"""SQL checks of the ledger after a concurrent run: money neither created nor lost.

Shared by the concurrency tests (the bank against the real server, and two processes on one
SQLite file); import with ``from ledger_checks import check_ledger``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, func, select

from paywarden.store import schema


def check_ledger(
    connection: Connection,
    *,
    is_wallet: Callable[[Row[Any]], bool],
    wallet_ok: Callable[[Row[Any]], bool],
    wallets: int,
    funded: int,
    committed: int,
) -> None:
    """Assert that the postings of each currency sum to zero, that every balance equals the
    sum of its postings, that there are ``wallets`` wallets (the account rows ``is_wallet``
    picks, with ``id``, ``kind``, ``posted`` and ``pending_out``) holding ``funded`` in all,
    each passing ``wallet_ok``, and that exactly ``committed`` transfers are stored.
    """
    a, p, t = schema.accounts, schema.postings, schema.transfers
    by_currency = connection.execute(
        select(p.c.currency, func.sum(p.c.amount)).group_by(p.c.currency)
    ).all()
    assert by_currency, "no postings at all"
    assert all(total == 0 for _currency, total in by_currency), by_currency
    sums = (
        select(p.c.account_id, func.sum(p.c.amount).label("total"))
        .group_by(p.c.account_id)
        .subquery()
    )
    rows = connection.execute(
        select(a.c.id, a.c.kind, a.c.posted, a.c.pending_out, sums.c.total).select_from(
            a.outerjoin(sums, sums.c.account_id == a.c.id)
        )
    ).all()
    drifted = [row for row in rows if row.posted != (row.total or 0)]
    assert not drifted, f"balances differ from the sum of their postings: {drifted}"
    found = [row for row in rows if is_wallet(row)]
    assert len(found) == wallets
    assert sum(row.posted for row in found) == funded
    assert all(wallet_ok(row) for row in found), found
    stored = connection.execute(
        select(func.count()).select_from(t).where(t.c.kind == "transfer")
    ).scalar_one()
    assert stored == committed, f"{stored} transfers stored, {committed} committed"
