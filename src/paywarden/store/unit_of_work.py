"""The unit of work: one database transaction, committed once or rolled back.

::

    result = store.run(lambda uow: services.ledger.transfer(uow, ...))

``Store.run`` opens a transaction, calls the function, commits, and retries the whole
function when the database reports a transient conflict (a PostgreSQL serialization
failure or deadlock, a SQLite lock that outlived the busy timeout). A function that raises
anything else is rolled back and the error propagates: money side effects fail loudly.

Before the commit the unit of work runs its paired SQL checks: every transfer written in
it balances to zero per currency, computed by the database from the stored postings.

``Store.run_grouped`` is group commit: units of work submitted from many threads at once
share one transaction and so one durable commit (one fsync), each inside a savepoint of its
own, so that each stays atomic (a unit that raises is rolled back to its savepoint alone,
and its paired checks run before its savepoint is released); a group of one has no
savepoint, its transaction being its unit's own. No caller gets its result
before the commit that holds its effect has returned. Batches form by themselves: while one
batch runs, the units that arrive wait and make up the next one, so a lone request is never
delayed to wait for company.

Rows that every payment writes (the merchant's and the platform's fee account, the audit
chains' heads) would otherwise stay locked from a group's first payment to its commit. A
unit may put its writes to them off to the end of its transaction (its :class:`Tail`:
credits to accounts, audit appends), and a group applies its units' tails together at its
end, in a fixed order, just before the commit. On PostgreSQL several groups then run at
once (``lanes``, each on its own connection) instead of taking turns on those rows; SQLite
has one writer, so one lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, Select, bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from paywarden.adapters.clock import SystemClock
from paywarden.kernel.clock import Clock
from paywarden.kernel.errors import Unavailable
from paywarden.kernel.invariant import invariant
from paywarden.store import pipeline, schema
from paywarden.store.engine import SQLITE_BUSY_TIMEOUT_MS
from paywarden.store.prepared import (
    FastResult,
    Pending,
    form_of,
    miscounted,
    prepared,
    run_driver_sql,
    run_prepared,
    send_pending,
)
from paywarden.store.writers import WriterQueue
from paywarden.trust.audit import AuditEntry

__all__ = ["Store", "Tail", "UnitOfWork"]

T = TypeVar("T")

RETRY_ATTEMPTS_MAX = 8
RETRY_BACKOFF_S_BASE = 0.005
RETRY_BACKOFF_S_MAX = 0.25
GROUP_SIZE_MAX = 64  # units of work per group commit
LANES_POSTGRESQL = 2  # groups committing at once on PostgreSQL (SQLite: one writer, one lane)
# SQLSTATEs that mean "run the transaction again": serialization failure, deadlock.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


_POSTING_SUMS = prepared(  # built once: every unit that moves money runs it before its commit
    select(
        schema.postings.c.transfer_id,
        schema.postings.c.currency,
        func.sum(schema.postings.c.amount),
    )
    .where(schema.postings.c.transfer_id.in_(bindparam("transfer_ids", expanding=True)))
    .group_by(schema.postings.c.transfer_id, schema.postings.c.currency)
)


@dataclass
class Tail:
    """Writes put off to the end of a transaction (see the module docstring): amounts to add
    to accounts' posted balances, by account id, audit entries to append, in order, and
    outbox events to insert, in order (a group inserts all of its units' events at once)."""

    credits: dict[str, int] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.credits or self.audit or self.events)

    def absorb(self, other: Tail) -> None:
        """Add ``other``'s writes after this tail's own."""
        for account_id, amount in other.credits.items():
            self.credits[account_id] = self.credits.get(account_id, 0) + amount
        self.audit.extend(other.audit)
        self.events.extend(other.events)

    def mark(self) -> tuple[dict[str, int], int, int]:
        """What the tail holds now, for :meth:`restore` (a savepoint's)."""
        return dict(self.credits), len(self.audit), len(self.events)

    def restore(self, mark: tuple[dict[str, int], int, int]) -> None:
        """Forget what was put off since ``mark`` was taken."""
        credits, audited, evented = mark
        self.credits = dict(credits)
        del self.audit[audited:]
        del self.events[evented:]


class UnitOfWork:
    """A transaction plus what the services need around it: the clock and id source."""

    def __init__(
        self,
        connection: Connection,
        clock: Clock,
        *,
        read_only: bool,
        held: list[Pending] | None = None,
        savepoints: int = 0,
    ) -> None:
        """``held``: writes an earlier unit of the same transaction left to go out first (a
        grouped unit's savepoint release); ``savepoints``: how many savepoints that
        transaction named before this unit, so that this unit's names are new."""
        self.connection = connection
        self.clock = clock
        self.read_only = read_only
        self.dialect = connection.dialect.name
        self.transfer_ids: list[str] = []
        self._committed = False
        self._savepoints = savepoints
        # Writes held back until a statement needs an answer (see write): on PostgreSQL
        # through psycopg, whose pipeline mode sends them in that statement's round trip.
        self._defers = connection.dialect.driver == "psycopg" and pipeline.supported()
        self._pending: list[Pending] = list(held or ())
        # Reads sent ahead (see prefetch): their result, once in, and the count of changes
        # made in this unit when each was queued; any later change makes it stale (None:
        # a stable read, never stale).
        self._reads: dict[tuple[int, Any], tuple[list[FastResult], int | None]] = {}
        self._changes = 0
        self.tail = Tail()

    def execute(self, statement: Any, parameters: Any = None) -> Any:
        """Run a statement; one registered with :func:`~paywarden.store.prepared.prepared`
        runs on the driver directly (see that module). Writes held back by :meth:`write`
        go first, in the same round trip when the statement runs on the driver."""
        if self._reads:
            served = self._prefetched(statement, parameters)
            if served is not None:
                return served
        if not isinstance(statement, Select):
            self._changes += 1
        pending, self._pending = self._pending, []
        result = run_prepared(self.connection, statement, parameters, pending)
        if result is None:
            send_pending(self.connection, pending)
            return self.connection.execute(statement, parameters)
        return result

    def prefetch(self, statement: Any, parameters: Any, *, stable: bool = False) -> None:
        """Send a read the unit is about to run ahead, with the next round trip: the first
        :meth:`execute` of the same statement with equal parameters gets its result, unless
        the unit changed anything since (then that execute runs it again). With ``stable``
        the result is used even so: for a read of what no unit on that path writes (the
        active signing key). On PostgreSQL a payment sends its first reads together this
        way; elsewhere this does nothing."""
        if not self._defers:
            return
        key = _read_key(statement, parameters)
        if key is None:
            return
        form = form_of(self.connection, statement, parameters)
        if form is None or form.many or form.rows is None:
            return
        box: list[FastResult] = []
        self._pending.append(Pending(form, parameters, None, "", box))
        self._reads[key] = (box, None if stable else self._changes)

    def _prefetched(self, statement: Any, parameters: Any) -> FastResult | None:
        key = _read_key(statement, parameters)
        entry = self._reads.pop(key, None) if key is not None else None
        if entry is None or entry[1] not in (None, self._changes):
            return None
        box = entry[0]
        if not box:  # still held back: send it now, with what was held before it
            self.send_pending()
        return box[0] if box else None

    def write(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        rows: int | None = None,
        lost: str | Exception = "",
    ) -> None:
        """Run a write whose result the caller does not read. It must report ``rows`` rows
        when given (else :class:`~paywarden.kernel.errors.InvariantViolation` with
        ``lost``, or ``lost`` itself when it is an error: a refusal the count decides).

        On PostgreSQL the write is held back and sent, in order, in the round trip of the
        next statement that needs an answer: a read, a savepoint's release or rollback, the
        commit: a payment's writes cost no round trip of their own. Its errors (and
        its row check) are raised there, so at the latest when the innermost savepoint
        around it is released, and never by a ``rollback()`` of that savepoint, which drops
        what was held back after it. Elsewhere it runs at once. Only a statement registered
        with :func:`~paywarden.store.prepared.prepared` is held back; others run at once."""
        self._changes += 1
        if self._defers:
            form = form_of(self.connection, statement, parameters)
            if form is not None:
                self._pending.append(Pending(form, parameters, rows, lost))
                return
        result = self.execute(statement, parameters)
        if rows is not None and result.rowcount != rows:
            raise miscounted(lost)

    def send_pending(self) -> None:
        """Send what :meth:`write` held back now (before the commit)."""
        pending, self._pending = self._pending, []
        send_pending(self.connection, pending)

    def savepoint(self) -> Savepoint:
        """A savepoint in this transaction, issued on the driver directly (SQLAlchemy's
        nested transaction costs several times the statement); release it with
        ``commit()``, or undo what followed it with ``rollback()``. Savepoints nest: release
        or roll back the inner one first. On PostgreSQL the ``SAVEPOINT`` itself is sent
        with the next statement, as a held-back write."""
        self._savepoints += 1
        self._changes += 1
        return Savepoint(self, f"pw_savepoint_{self._savepoints}")

    def credit_at_end(self, account_id: str, amount: int) -> None:
        """Add ``amount`` (> 0) to the account's posted balance at the end of the transaction,
        without locking it before: for a credit to an account many payments credit at
        once, whose balance the caller does not need (no check can fail on a credit but the
        balance ceiling, checked again as it is applied). Until then, reads of the account
        in this transaction (or in this unit's group) do not include it."""
        invariant(amount > 0, "only a credit is put off to the end of the transaction")
        invariant(not self.read_only, "no balance moves in a read-only transaction")
        self.tail.credits[account_id] = self.tail.credits.get(account_id, 0) + amount

    def audit_at_end(self, entry: AuditEntry) -> None:
        """Append ``entry`` to its audit chain at the end of the transaction (its sequence
        and hash are given then, under its partition's head lock, held only to the commit)."""
        invariant(not self.read_only, "audit records are not written in a read-only transaction")
        self.tail.audit.append(entry)

    def event_at_end(self, row: dict[str, Any]) -> None:
        """Insert the outbox event ``row`` at the end of the transaction: a group inserts its
        units' events in one statement. Until then, reads of the outbox in this transaction
        do not see it."""
        invariant(not self.read_only, "events are not written in a read-only transaction")
        self.tail.events.append(row)

    def wrote_transfer(self, transfer_id: str) -> None:
        """``transfer_id`` and its postings are written (or held back). For the unit's
        first transfer, the check's read (:meth:`check_before_commit`) is sent ahead after
        them, stable (a transfer's postings never change once written): if no other
        transfer follows (a payment has one), it costs no round trip of its own; if one
        does, the check reads them all at the end, as before, and only this read is spare."""
        self.transfer_ids.append(transfer_id)
        if len(self.transfer_ids) == 1:
            self.prefetch(_POSTING_SUMS, {"transfer_ids": [transfer_id]}, stable=True)

    def check_before_commit(self) -> None:
        """The SQL half of the paired ledger checks, in one query: per transfer written in
        this unit and currency, the sum of its stored postings."""
        if not self.transfer_ids:
            return
        sums = self.execute(_POSTING_SUMS, {"transfer_ids": self.transfer_ids}).all()
        unbalanced = [row for row in sums if row[2] != 0]
        invariant(not unbalanced, f"stored postings do not sum to zero: {unbalanced}")
        with_postings = {row[0] for row in sums}
        invariant(
            with_postings == set(self.transfer_ids), "a transfer was written without postings"
        )

    def commit(self, *, with_tail: bool = True, finish: bool = False) -> None:
        """Run the paired checks and send what is held back; with ``with_tail``, apply the
        tail first. A grouped unit (no tail: it is applied with its group's, at the group's
        end) leaves what it still holds back to its savepoint's release, which sends it and
        raises its errors, unless a write among them has a row check.

        With ``finish`` (the transaction's end: nothing runs in it after this) the
        transaction's ``COMMIT`` goes out on PostgreSQL in the round trip of the last writes
        held back, when none of them has a row check: the server skips it after any
        failure before it, so it commits only if every write succeeded (a row check is
        answered only once the round trip is back: then the writes go first, and the
        ``COMMIT`` after). SQLAlchemy's own commit then finds nothing left to commit."""
        if with_tail and self.tail:
            from paywarden.store.tail import apply_tail  # noqa: PLC0415 -- it imports this module

            tail, self.tail = self.tail, Tail()
            apply_tail(self, tail)
        self.check_before_commit()
        checked = any(held.rows is not None for held in self._pending)
        if finish and self._pending and not checked:
            pending, self._pending = self._pending, []
            run_driver_sql(self.connection, "COMMIT", pending)
        elif with_tail or checked:
            # A row check must be answered before the savepoint's release: after it, the
            # unit could no longer be undone alone.
            self.send_pending()
        self._committed = True


class Savepoint:
    """One ``SAVEPOINT`` on the driver; see :meth:`UnitOfWork.savepoint`. What the unit's
    statements changed after it is undone by :meth:`rollback`, kept by :meth:`commit`."""

    def __init__(self, uow: UnitOfWork, name: str) -> None:
        self._uow, self._name = uow, name
        # What the unit put off to its end, and the transfers it checks, as they stood: a
        # rollback forgets what came after, as the database forgets the rows.
        self._tail = uow.tail.mark()
        self._transfers = len(uow.transfer_ids)
        self._marker: Pending | None = None
        if uow._defers:
            self._marker = Pending(None, f"SAVEPOINT {name}", None, "")
            uow._pending.append(self._marker)
        else:
            run_driver_sql(uow.connection, f"SAVEPOINT {name}")

    def commit(self, *, hold: bool = False) -> None:
        """Release the savepoint, after sending what was held back (its errors raise here).
        With ``hold``, on PostgreSQL, when nothing else is held back, the ``RELEASE`` itself
        is held back instead, for whoever sends the unit's writes next (a grouped unit's
        own savepoint: see ``Store._run_in_savepoint``)."""
        uow = self._uow
        uow._changes += 1
        release = f"RELEASE SAVEPOINT {self._name}"
        if hold and uow._defers and not uow._pending:
            uow._pending.append(Pending(None, release, None, ""))
            return
        pending, uow._pending = uow._pending, []
        run_driver_sql(uow.connection, release, pending)

    def rollback(self) -> None:
        """Undo what followed the savepoint: what was held back after it is dropped unsent;
        if the ``SAVEPOINT`` itself was never sent, nothing after it was either."""
        uow = self._uow
        uow._changes += 1
        uow.tail.restore(self._tail)
        del uow.transfer_ids[self._transfers :]
        uow._reads.clear()  # reads sent ahead may have been dropped unsent, or seen undone rows
        held = next((i for i, w in enumerate(uow._pending) if w is self._marker), None)
        if held is not None:
            del uow._pending[held:]
            return
        uow._pending.clear()  # all of it came after the savepoint, which was sent
        name = self._name
        run_driver_sql(uow.connection, f"ROLLBACK TO SAVEPOINT {name}")
        run_driver_sql(uow.connection, f"RELEASE SAVEPOINT {name}")


@dataclass(eq=False)  # compared by identity: two units are never "equal"
class _Unit(Generic[T]):
    """One submitted unit of work and, once its batch has committed, its outcome."""

    work: Callable[[UnitOfWork], T]
    done: bool = False
    value: Any = None
    error: BaseException | None = None
    retry_alone: bool = False
    leads: bool = False  # this caller's thread commits the groups for now
    woken: threading.Event = field(default_factory=threading.Event)
    # A unit awaited on an event loop (Store.grouped) has no thread of its own: its outcome
    # goes to this future, on its loop, and a lane's thread leads in its stead.
    future: asyncio.Future[None] | None = None

    def outcome(self) -> T:
        """What its work returned, or the error it raised (once its batch is done)."""
        if self.error is not None:
            raise self.error
        value: T = self.value
        return value


class Store:
    def __init__(
        self,
        engine: Engine,
        clock: Clock | None = None,
        *,
        group_size_max: int = GROUP_SIZE_MAX,
        lanes: int | None = None,
    ) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.dialect = engine.dialect.name
        invariant(group_size_max >= 1, "a group holds at least one unit of work")
        self.group_size_max = group_size_max
        if lanes is None:
            lanes = LANES_POSTGRESQL if self.dialect == "postgresql" else 1
        invariant(lanes >= 1, "group commit runs in at least one lane")
        self.lanes = 1 if self.dialect == "sqlite" else lanes
        self._group_lock = threading.Lock()
        self._pending: list[_Unit[Any]] = []
        self._leaders = 0
        # Threads that lead in place of units awaited on an event loop, one per lane at most.
        self._lane_threads: ThreadPoolExecutor | None = None
        # SQLite's writers of this process take turns in arrival order (store.writers).
        self._writers = (
            WriterQueue(SQLITE_BUSY_TIMEOUT_MS / 1000) if self.dialect == "sqlite" else None
        )

    def run(self, work: Callable[[UnitOfWork], T], *, read_only: bool = False) -> T:
        """Run ``work`` in one transaction, retrying transient conflicts with backoff."""
        for attempt in range(1, RETRY_ATTEMPTS_MAX + 1):
            try:
                return self._run_once(work, read_only=read_only)
            except DBAPIError as error:
                if not _is_transient(error) or attempt == RETRY_ATTEMPTS_MAX:
                    if _is_transient(error) or _is_unavailable(error):
                        raise _unavailable(error) from error
                    raise
                backoff_s = min(RETRY_BACKOFF_S_MAX, RETRY_BACKOFF_S_BASE * 2**attempt)
                time.sleep(random.uniform(0, backoff_s))  # noqa: S311 -- jitter, not crypto
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_once(self, work: Callable[[UnitOfWork], T], *, read_only: bool) -> T:
        with self._write_turn(read_only), self.engine.connect() as connection:
            connection.info["paywarden_read_only"] = read_only
            with connection.begin() as transaction:
                uow = UnitOfWork(connection, self.clock, read_only=read_only)
                result = work(uow)
                if read_only:
                    transaction.rollback()
                else:
                    uow.commit(finish=True)
                return result

    def _write_turn(self, read_only: bool = False) -> contextlib.AbstractContextManager[None]:
        """This process's turn to write (SQLite; nothing to wait for on PostgreSQL, nor to
        read)."""
        if read_only or self._writers is None:
            return contextlib.nullcontext()
        return self._writers.turn()

    def run_grouped(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work`` atomically in a transaction it may share with concurrent callers (group
        commit; see the module docstring). Returns once the commit holding its effect has
        returned, or raises what ``work`` raised (its effect rolled back, the others' kept).

        ``work`` must be re-runnable, as for :meth:`run`: a transient conflict re-runs it
        alone. A caller that finds fewer than ``lanes`` groups running leads: it commits
        groups of the waiting units, oldest first, until its own unit is done (by its lane
        or another), then hands its lane to the oldest unit still waiting, if any.
        """
        unit: _Unit[T] = _Unit(work)
        with self._group_lock:
            self._pending.append(unit)
            if self._leaders < self.lanes:
                self._leaders += 1
                unit.leads = True
        while True:
            if unit.leads:
                self._lead(unit)
            if unit.done:
                break
            unit.woken.wait()  # done by a lane, or handed a lane to lead
            unit.woken.clear()
        if unit.retry_alone:  # a transient conflict inside the group: run it on its own
            return self.run(work)
        return unit.outcome()

    async def grouped(self, work: Callable[[UnitOfWork], T]) -> T:
        """:meth:`run_grouped` for a caller on an event loop: the same groups, without a
        thread per caller. The unit waits in the same queue; a lane's thread of this store
        leads where the caller's own thread would, and a group's outcomes reach their loop
        in one callback. Per payment that saves the hops to and from a worker thread and
        the leader's wake-up of each waiting one (see docs/operations.md)."""
        loop = asyncio.get_running_loop()
        unit: _Unit[T] = _Unit(work, future=loop.create_future())
        with self._group_lock:
            self._pending.append(unit)
            detach = self._leaders < self.lanes
            if detach:
                self._leaders += 1
        if detach:
            self._detach_lead()
        assert unit.future is not None
        await unit.future
        if unit.retry_alone:  # a transient conflict inside the group: run it on its own
            return await loop.run_in_executor(None, self.run, work)
        return unit.outcome()

    def close(self) -> None:
        """Stop the lanes' threads once the groups in flight have committed (at shutdown,
        before the engine is disposed). A later :meth:`grouped` starts them again."""
        with self._group_lock:
            threads, self._lane_threads = self._lane_threads, None
        if threads is not None:
            threads.shutdown(wait=True)

    def _detach_lead(self) -> None:
        """Lead on a lane's thread (a unit awaited on a loop has none of its own to lend)."""
        with self._group_lock:
            if self._lane_threads is None:
                self._lane_threads = ThreadPoolExecutor(
                    max_workers=self.lanes, thread_name_prefix="paywarden-lane"
                )
            threads = self._lane_threads
        threads.submit(self._lead, None)

    def _lead(self, unit: _Unit[Any] | None) -> None:
        """Commit groups of waiting units until ``unit`` is done or no unit waits (its own
        is then in another lane's group), then hand the lane on or give it up. A lane's
        thread (``unit`` None) leads until no unit waits."""
        try:
            while unit is None or not unit.done:
                with self._group_lock:
                    batch = self._pending[: self.group_size_max]
                    del self._pending[: self.group_size_max]
                if not batch:
                    break
                try:
                    self._commit_group(batch)
                except Exception:
                    if unit is not None:
                        raise  # the group failed beyond its units: to this caller too
                finally:
                    _tell(batch, unit)
        finally:  # also when a group failed beyond its units (the error reaches this caller)
            detach = False
            with self._group_lock:
                if unit is not None:
                    unit.leads = False
                    if unit in self._pending:
                        self._pending.remove(unit)
                successor = next((u for u in self._pending if not u.leads), None)
                if successor is None:
                    self._leaders -= 1
                elif successor.future is None:
                    successor.leads = True
                    successor.woken.set()
                else:
                    detach = True  # awaited on a loop: a lane's thread leads for it
            if detach:
                self._detach_lead()

    def _commit_group(self, batch: list[_Unit[Any]]) -> None:
        try:
            with self._write_turn(), self.engine.connect() as connection:
                connection.info["paywarden_read_only"] = False
                with connection.begin() as transaction:
                    tail = Tail()
                    held: list[Pending] = []
                    named = 0
                    # A group of one needs no savepoint: its transaction is its unit's own,
                    # and the unit's failure rolls that back (two statements fewer, the
                    # SAVEPOINT and its RELEASE, where a group's savepoint rollback and the
                    # commit of nothing did the same).
                    alone = len(batch) == 1
                    for unit in batch:
                        held, named = self._run_in_savepoint(
                            connection, unit, tail, held, named, alone=alone
                        )
                    if alone and (batch[0].error is not None or batch[0].retry_alone):
                        transaction.rollback()
                        return
                    # The units' writes to the rows they all share, at once, with the last
                    # unit's savepoint release.
                    end = UnitOfWork(connection, self.clock, read_only=False, held=held)
                    end.tail = tail
                    end.commit(finish=True)
        except DBAPIError as error:  # the group's transaction failed: none of its units holds
            # A conflict rolled it back for sure: each unit runs again on its own. A lost
            # connection may have lost the COMMIT's answer, not the commit: 503, and the
            # client's retry with its Idempotency-Key finds the stored answer or runs afresh.
            for unit in batch:
                unit.value, unit.retry_alone = None, _is_transient(error)
                unit.error = None
                if not unit.retry_alone:
                    unit.error = _unavailable(error) if _is_unavailable(error) else error
        except BaseException as error:
            for unit in batch:
                unit.value, unit.error = None, error
            raise
        finally:
            for unit in batch:
                unit.done = True

    def _run_in_savepoint(
        self,
        connection: Connection,
        unit: _Unit[Any],
        tail: Tail,
        held: list[Pending],
        named: int,
        *,
        alone: bool = False,
    ) -> tuple[list[Pending], int]:
        """Run ``unit`` in a savepoint of the group's transaction, after ``held`` (the group's
        last unit left its savepoint's release to go out with this unit's first round trip)
        and the ``named`` savepoints before it; returns what this unit leaves held back, and
        how many savepoints are named now. ``alone`` (a group of one): no savepoint, and a
        failed unit leaves its transaction for the caller to roll back.

        On PostgreSQL the unit's own ``RELEASE`` waits for the next round trip when nothing
        else does, which saves one a unit. It has no answer to wait for: a ``RELEASE`` fails
        only where the transaction has failed already, or the savepoint is gone. Should it
        fail all the same, the next unit's first statement raises, and that unit's
        ``ROLLBACK TO`` its own savepoint (never sent, its name new in the group) fails in
        turn: the whole group fails, as a group does, and no unit is undone unseen."""
        uow = UnitOfWork(connection, self.clock, read_only=False, held=held, savepoints=named)
        savepoint = None if alone else uow.savepoint()
        try:
            value = unit.work(uow)
            uow.commit(with_tail=False)  # its paired checks, before its savepoint is released
            if savepoint is not None:
                savepoint.commit(hold=True)
            unit.value = value
            tail.absorb(uow.tail)  # applied at the group's end, with the others'
        except DBAPIError as error:
            if _is_unavailable(error) and not _is_transient(error):
                raise  # the connection is gone: the whole group answers 503 (see _commit_group)
            if savepoint is not None:
                savepoint.rollback()
            unit.retry_alone = _is_transient(error)
            unit.error = None if unit.retry_alone else error
        except Exception as error:  # the unit's own failure: its effect alone is undone
            if savepoint is not None:
                savepoint.rollback()
            unit.error = error
        left, uow._pending = uow._pending, []
        return left, uow._savepoints

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _tell(batch: list[_Unit[Any]], leader: _Unit[Any] | None) -> None:
    """Tell a committed batch's units their outcome: a waiting thread is woken; the futures
    of units awaited on event loops are settled in one callback per loop."""
    loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for committed in batch:
        if committed.future is not None:
            loops.setdefault(committed.future.get_loop(), []).append(committed.future)
        elif committed is not leader:
            committed.woken.set()
    for loop, futures in loops.items():
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: no one awaits
            loop.call_soon_threadsafe(_settle, futures)


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a cancelled caller (its client went away) is not waiting
            future.set_result(None)


def _read_key(statement: Any, parameters: Any) -> tuple[int, Any] | None:
    """What a prefetched read is found by: the statement and its parameters, a list (an
    expanding ``IN``) as a tuple (None when they cannot be compared)."""
    if not isinstance(parameters, Mapping):
        return None
    items = sorted(parameters.items())
    key = (id(statement), tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in items))
    try:
        hash(key)
    except TypeError:
        return None
    return key


@functools.cache
def _unavailable(error: DBAPIError) -> Unavailable:
    unavailable = Unavailable(
        "the database is busy or unavailable; retry with the same Idempotency-Key",
        retry_after_s=1,
    )
    unavailable.__cause__ = error
    return unavailable


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
