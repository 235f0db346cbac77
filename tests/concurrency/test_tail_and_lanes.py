"""A transaction's tail and group commit in lanes, on SQLite and PostgreSQL.

A unit of work may put writes to rows that every payment shares off to the end of its
transaction (``UnitOfWork.credit_at_end``, ``UnitOfWork.audit_at_end``), and its outbox
events (``UnitOfWork.event_at_end``); under group commit the units' tails are applied
together at the group's end. What must hold: a tail is applied exactly when its unit
commits (never for a unit that failed, whatever the others did, nor what a savepoint
rolled back), credits add up, the balance ceiling holds, audit entries chain in order and
the log verifies, events keep the order they were emitted in. On PostgreSQL several groups
commit at once (``Store(lanes=…)``): a unit that arrives while a group runs may lead a group
of its own, no unit is ever left waiting, and the shared rows' balances come out exact.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from paywarden.kernel.errors import InvalidRequest, InvariantViolation
from paywarden.kernel.money import BALANCE_MINOR_MAX
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.ledger import AccountKind
from paywarden.services import audit as audit_service
from paywarden.store import outbox, schema
from paywarden.store.ledger_repo import create_account
from paywarden.store.tables_agents import request_nonces
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust import audit

THREADS = 12
UNITS = 60
JOIN_TIMEOUT_S = 120.0
ACTOR = Principal(
    PrincipalType.ADMIN, None, livemode=False, key_id="key_tail", api_version="2026-01-01"
)


def _accounts(store: Store, count: int = 2) -> list[str]:
    def make(uow: UnitOfWork) -> list[str]:
        return [
            create_account(
                uow,
                kind=AccountKind.MERCHANT,
                currency="usd",
                livemode=False,
                owner_id=None,
                non_negative=True,
            ).id
            for _ in range(count)
        ]

    made: list[str] = store.run(make)
    return made


def _posted(store: Store, account_id: str) -> int:
    accounts = schema.accounts

    def read(uow: UnitOfWork) -> int:
        query = select(accounts.c.posted).where(accounts.c.id == account_id)
        return int(uow.execute(query).scalar_one())

    value: int = store.run(read, read_only=True)
    return value


def _nonces(store: Store) -> set[str]:
    def read(uow: UnitOfWork) -> set[str]:
        rows = uow.execute(select(request_nonces.c.nonce).where(request_nonces.c.keyid == "tail"))
        return {row.nonce for row in rows}

    found: set[str] = store.run(read, read_only=True)
    return found


def _remember(uow: UnitOfWork, nonce: str) -> None:
    expires = uow.clock.now() + timedelta(hours=1)
    uow.execute(insert(request_nonces).values(keyid="tail", nonce=nonce, expires_at=expires))


def _verified(store: Store) -> audit.VerifyReport:
    report: audit.VerifyReport = store.run(
        lambda uow: audit_service.verify(uow, {}), read_only=True
    )
    return report


def _all_of(store: Store, count: int, submit: Callable[[int], object]) -> list[object]:
    """``submit(i)`` for ``i < count`` on :data:`THREADS` threads, the first wave together;
    fails (rather than hangs) if any is still waiting after :data:`JOIN_TIMEOUT_S`."""
    start = threading.Barrier(min(THREADS, count))

    def run(index: int) -> object:
        if index < THREADS:
            start.wait(timeout=JOIN_TIMEOUT_S)
        return submit(index)

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(run, index) for index in range(count)]
        return [future.result(timeout=JOIN_TIMEOUT_S) for future in futures]


def test_grouped_credits_add_up_and_a_failed_units_credit_is_never_applied(store: Store) -> None:
    hot, other = _accounts(store)

    def submit(index: int) -> str | InvalidRequest:
        def work(uow: UnitOfWork) -> str:
            uow.credit_at_end(hot, index + 1)
            uow.credit_at_end(other, 1)
            uow.credit_at_end(hot, 1000)  # twice in one unit: both count
            _remember(uow, f"c{index:03d}")
            if index % 5 == 0:
                raise InvalidRequest(f"unit {index} fails after its credits")
            return f"c{index:03d}"

        try:
            return store.run_grouped(work)
        except InvalidRequest as error:
            return error

    outcomes = _all_of(store, UNITS, submit)
    kept = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, str)]
    assert kept == [i for i in range(UNITS) if i % 5 != 0]
    assert _posted(store, hot) == sum(i + 1 + 1000 for i in kept)
    assert _posted(store, other) == len(kept)
    assert _nonces(store) == {f"c{i:03d}" for i in kept}


def test_a_credit_past_the_balance_ceiling_is_refused_and_nothing_commits(store: Store) -> None:
    (hot,) = _accounts(store, 1)
    accounts = schema.accounts
    store.run(
        lambda uow: uow.execute(
            update(accounts).where(accounts.c.id == hot).values(posted=BALANCE_MINOR_MAX - 5)
        )
    )

    def over(uow: UnitOfWork) -> None:
        _remember(uow, "over")
        uow.credit_at_end(hot, 6)

    with pytest.raises(InvariantViolation, match="balance ceiling"):
        store.run(over)
    assert _posted(store, hot) == BALANCE_MINOR_MAX - 5
    assert _nonces(store) == set()

    def to_the_ceiling(uow: UnitOfWork) -> None:
        uow.credit_at_end(hot, 5)

    store.run(to_the_ceiling)
    assert _posted(store, hot) == BALANCE_MINOR_MAX


def test_only_credits_are_put_off(store: Store) -> None:
    (hot,) = _accounts(store, 1)
    with pytest.raises(InvariantViolation, match="only a credit"):
        store.run(lambda uow: uow.credit_at_end(hot, -1))


def test_audit_entries_put_off_chain_in_order_and_the_log_verifies(store: Store) -> None:
    def submit(index: int) -> str | InvalidRequest:
        def work(uow: UnitOfWork) -> str:
            subject = f"pay_tail{index:03d}"
            audit_service.record_at_end(uow, "payment.tested", ACTOR, subject, {"i": index})
            if index % 3 == 0:  # some append at once, in the same chains
                audit_service.record(uow, "payment.noted", ACTOR, subject, {"i": index})
            if index % 7 == 0:
                raise InvalidRequest(f"unit {index} fails after its audit entries")
            return subject

        try:
            return store.run_grouped(work)
        except InvalidRequest as error:
            return error

    outcomes = _all_of(store, UNITS, submit)
    kept = {outcome for outcome in outcomes if isinstance(outcome, str)}
    assert len(kept) == len([i for i in range(UNITS) if i % 7 != 0])
    report = _verified(store)
    assert report.ok, report.problems
    records = schema.audit_records

    def stored(uow: UnitOfWork) -> list[tuple[str, str]]:
        rows = uow.execute(select(records.c.event_type, records.c.subject_id))
        return [(row.event_type, row.subject_id) for row in rows]

    found = store.run(stored, read_only=True)
    assert sorted(s for t, s in found if t == "payment.tested") == sorted(kept)
    noted = {f"pay_tail{i:03d}" for i in range(UNITS) if i % 3 == 0 and i % 7 != 0}
    assert {s for t, s in found if t == "payment.noted"} == noted


def test_sqlite_has_one_lane(sqlite_store: Store) -> None:
    assert Store(sqlite_store.engine, lanes=4).lanes == 1


@pytest.mark.postgres
def test_a_unit_arriving_while_a_group_runs_leads_a_group_of_its_own(pg_store: Store) -> None:
    """Two lanes: the second unit commits while the first unit's group is still running
    (each waits for the other inside its work; in one lane the first would wait alone)."""
    store = Store(pg_store.engine, pg_store.clock, lanes=2)
    inside = threading.Barrier(2, timeout=30)
    first_running = threading.Event()

    def unit(name: str) -> Callable[[UnitOfWork], str]:
        def work(uow: UnitOfWork) -> str:
            _remember(uow, name)
            first_running.set()
            inside.wait()  # both units are running, in two groups at once
            return name

        return work

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(store.run_grouped, unit("first"))
        assert first_running.wait(timeout=30)
        second = pool.submit(store.run_grouped, unit("second"))
        assert {first.result(timeout=60), second.result(timeout=60)} == {"first", "second"}
    assert _nonces(store) == {"first", "second"}


@pytest.mark.postgres
@pytest.mark.parametrize("lanes", [1, 2, 3])
def test_in_lanes_every_unit_is_answered_and_shared_balances_are_exact(
    pg_store: Store, lanes: int
) -> None:
    """Units of uneven length in several lanes: none is left waiting (a lane is handed on,
    or given up, by whoever leaves it), every credit to the shared rows lands once."""
    store = Store(pg_store.engine, pg_store.clock, lanes=lanes)
    merchant, fees = _accounts(store)
    rng = random.Random(lanes)
    pauses = [rng.choice([0.0, 0.0, 0.001, 0.004]) for _ in range(UNITS * 2)]

    def submit(index: int) -> str:
        def work(uow: UnitOfWork) -> str:
            _remember(uow, f"l{index:03d}")
            time.sleep(pauses[index])
            uow.credit_at_end(merchant, 100)
            uow.credit_at_end(fees, 1)
            audit_service.record_at_end(uow, "payment.tested", ACTOR, f"pay_l{index}", {})
            return f"l{index:03d}"

        return store.run_grouped(work)

    answers = _all_of(store, UNITS * 2, submit)
    assert answers == [f"l{i:03d}" for i in range(UNITS * 2)]
    assert _posted(store, merchant) == 100 * UNITS * 2
    assert _posted(store, fees) == UNITS * 2
    assert len(_nonces(store)) == UNITS * 2
    report = _verified(store)
    assert report.ok, report.problems


def test_a_read_only_transaction_puts_nothing_off(store: Store) -> None:
    (hot,) = _accounts(store, 1)
    with pytest.raises(InvariantViolation, match="read-only"):
        store.run(lambda uow: uow.credit_at_end(hot, 1), read_only=True)
    entry = audit.entry(
        event_type="payment.tested",
        actor_type=None,
        actor_id=None,
        subject_id="pay_ro",
        data={},
        occurred_at=store.clock.now(),
    )
    with pytest.raises(InvariantViolation, match="read-only"):
        store.run(lambda uow: uow.audit_at_end(entry), read_only=True)
    assert _posted(store, hot) == 0


def _events(store: Store) -> list[tuple[str, str]]:
    """The outbox, in its order: (type, the object's id)."""
    events = schema.events

    def read(uow: UnitOfWork) -> list[tuple[str, str]]:
        rows = uow.execute(select(events.c.type, events.c.data).order_by(events.c.sequence))
        return [(row.type, row.data["object"]["id"]) for row in rows]

    found: list[tuple[str, str]] = store.run(read, read_only=True)
    return found


@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "grouped"])
def test_what_a_savepoint_rolls_back_is_never_applied_from_the_tail(
    store: Store, grouped: bool
) -> None:
    """A unit puts off a credit, an audit entry and an event, then rolls back to a savepoint
    taken before them (as a grouped POST does on a 4xx): none of them may reach the
    database, though the unit commits what came before the savepoint."""
    (hot,) = _accounts(store, 1)

    def work(uow: UnitOfWork) -> str:
        uow.credit_at_end(hot, 5)
        outbox.emit(uow, "payment.succeeded", False, {"id": "pay_kept"}, at_end=True)
        savepoint = uow.savepoint()
        uow.credit_at_end(hot, 100)
        audit_service.record_at_end(uow, "payment.tested", ACTOR, "pay_undone", {})
        outbox.emit(uow, "payment.succeeded", False, {"id": "pay_undone"}, at_end=True)
        savepoint.rollback()
        return "committed"

    assert (store.run_grouped(work) if grouped else store.run(work)) == "committed"
    assert _posted(store, hot) == 5
    assert _events(store) == [("payment.succeeded", "pay_kept")]
    records = schema.audit_records
    subjects = store.run(
        lambda uow: [row.subject_id for row in uow.execute(select(records.c.subject_id))],
        read_only=True,
    )
    assert "pay_undone" not in subjects


def test_events_put_off_keep_their_order_with_those_that_follow(store: Store) -> None:
    """An event emitted after one put off is put off too: the outbox's order is the order
    of emission, across the units of a group as well."""

    def unit(index: int) -> Callable[[UnitOfWork], None]:
        def work(uow: UnitOfWork) -> None:
            outbox.emit(uow, "payment.succeeded", False, {"id": f"pay_{index}a"}, at_end=True)
            outbox.emit(uow, "payment.succeeded", False, {"id": f"pay_{index}b"})

        return work

    store.run(lambda uow: outbox.emit(uow, "payment.succeeded", False, {"id": "pay_first"}))
    store.run(unit(0))
    threads = [threading.Thread(target=store.run_grouped, args=(unit(i),)) for i in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    found = [subject for _type, subject in _events(store)]
    assert found[:3] == ["pay_first", "pay_0a", "pay_0b"]
    later = found[3:]
    assert sorted(later) == sorted(f"pay_{i}{s}" for i in (1, 2, 3) for s in "ab")
    for i in (1, 2, 3):  # each unit's pair in its order, whichever group it was in
        assert later.index(f"pay_{i}a") < later.index(f"pay_{i}b")
