"""Apply a transaction's :class:`~paywarden.store.unit_of_work.Tail`: the writes to rows that
every payment touches, put off to the transaction's end (see ``store.unit_of_work``).

Rows are locked in one order everywhere, accounts by id and then audit heads by partition,
so two groups applying their tails at once wait for each other but never deadlock. Each
account is credited once per tail, with the sum of its credits, and its balance ceiling is
checked as it is; audit entries are sealed in the order they were put off. Outbox events go
first, all in one statement, before any of those locks is taken.
"""

from __future__ import annotations

from paywarden.store import audit_repo, ledger_repo, outbox
from paywarden.store.unit_of_work import Tail, UnitOfWork

__all__ = ["apply_tail"]


def apply_tail(uow: UnitOfWork, tail: Tail) -> None:
    if tail.events:  # new rows, no lock on a shared one: before the locks are taken
        outbox.insert_all(uow, tail.events)
    for account_id in sorted(tail.credits):
        ledger_repo.credit(uow, account_id, tail.credits[account_id])
    if tail.audit:
        audit_repo.append_all(uow, tail.audit)
