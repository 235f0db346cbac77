"""The unit of work: one database transaction, committed once or rolled back.

::

    result = store.run(lambda uow: services.ledger.transfer(uow, ...))

``Store.run`` opens a transaction, calls the function, commits, and retries the whole
function when the database reports a transient conflict (a PostgreSQL serialization
failure or deadlock, a SQLite lock that outlived the busy timeout). A function that raises
anything else is rolled back and the error propagates: money side effects fail loudly.

Before the commit the unit of work runs its paired SQL checks: every transfer written in
it balances to zero per currency, computed by the database from the stored postings.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from paywarden.adapters.clock import SystemClock
from paywarden.kernel.clock import Clock
from paywarden.kernel.errors import Unavailable
from paywarden.kernel.invariant import invariant
from paywarden.store import schema

__all__ = ["Store", "UnitOfWork"]

T = TypeVar("T")

RETRY_ATTEMPTS_MAX = 8
RETRY_BACKOFF_S_BASE = 0.005
RETRY_BACKOFF_S_MAX = 0.25
# SQLSTATEs that mean "run the transaction again": serialization failure, deadlock.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


class UnitOfWork:
    """A transaction plus what the services need around it: the clock and id source."""

    def __init__(self, connection: Connection, clock: Clock, *, read_only: bool) -> None:
        self.connection = connection
        self.clock = clock
        self.read_only = read_only
        self.dialect = connection.dialect.name
        self.transfer_ids: list[str] = []
        self._committed = False

    def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.connection.execute(statement, parameters)

    def wrote_transfer(self, transfer_id: str) -> None:
        self.transfer_ids.append(transfer_id)

    def check_before_commit(self) -> None:
        """The SQL half of the paired ledger checks."""
        if not self.transfer_ids:
            return
        p = schema.postings
        unbalanced = self.connection.execute(
            select(p.c.transfer_id, p.c.currency, func.sum(p.c.amount))
            .where(p.c.transfer_id.in_(self.transfer_ids))
            .group_by(p.c.transfer_id, p.c.currency)
            .having(func.sum(p.c.amount) != 0)
        ).all()
        invariant(not unbalanced, f"stored postings do not sum to zero: {unbalanced}")
        counted = self.connection.execute(
            select(func.count(func.distinct(p.c.transfer_id))).where(
                p.c.transfer_id.in_(self.transfer_ids)
            )
        ).scalar_one()
        invariant(counted == len(set(self.transfer_ids)), "a transfer was written without postings")

    def commit(self) -> None:
        self.check_before_commit()
        self._committed = True


class Store:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.dialect = engine.dialect.name

    def run(self, work: Callable[[UnitOfWork], T], *, read_only: bool = False) -> T:
        """Run ``work`` in one transaction, retrying transient conflicts with backoff."""
        for attempt in range(1, RETRY_ATTEMPTS_MAX + 1):
            try:
                return self._run_once(work, read_only=read_only)
            except DBAPIError as error:
                if not _is_transient(error) or attempt == RETRY_ATTEMPTS_MAX:
                    if _is_transient(error) or _is_unavailable(error):
                        raise Unavailable(
                            "the database is busy or unavailable; retry with the same "
                            "Idempotency-Key",
                            retry_after_s=1,
                        ) from error
                    raise
                backoff_s = min(RETRY_BACKOFF_S_MAX, RETRY_BACKOFF_S_BASE * 2**attempt)
                time.sleep(random.uniform(0, backoff_s))  # noqa: S311 -- jitter, not crypto
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_once(self, work: Callable[[UnitOfWork], T], *, read_only: bool) -> T:
        with self.engine.connect() as connection:
            connection.info["paywarden_read_only"] = read_only
            with connection.begin() as transaction:
                uow = UnitOfWork(connection, self.clock, read_only=read_only)
                result = work(uow)
                if read_only:
                    transaction.rollback()
                else:
                    uow.commit()
                return result

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _sqlstate(error: DBAPIError) -> str | None:
    original = error.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return str(state) if state else None


def _is_transient(error: DBAPIError) -> bool:
    if _sqlstate(error) in _RETRYABLE_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return isinstance(error, OperationalError) and (
        "database is locked" in message or "database is busy" in message
    )


def _is_unavailable(error: DBAPIError) -> bool:
    return isinstance(error, OperationalError) or bool(error.connection_invalidated)
