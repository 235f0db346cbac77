"""Group commit (``Store.run_grouped``), on SQLite and PostgreSQL.

Many threads submit units of work at once: they share commits (fewer commits than units),
every unit's effect is there once its caller has its answer, and none is acknowledged
before the commit that holds it. A unit that fails is rolled back alone (its savepoint),
including a unit whose postings do not balance (its paired check runs inside it); a
transient conflict inside the group re-runs that unit on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import OperationalError

from paywarden.kernel.errors import InvalidRequest, InvariantViolation, Unavailable
from paywarden.store.tables_agents import request_nonces
from paywarden.store.unit_of_work import Store, UnitOfWork

UNITS = 64
THREADS = 16


def _add(nonce: str, *, fail: bool = False) -> Callable[[UnitOfWork], str]:
    def work(uow: UnitOfWork) -> str:
        expires = uow.clock.now() + timedelta(hours=1)
        uow.execute(insert(request_nonces).values(keyid="group", nonce=nonce, expires_at=expires))
        if fail:
            raise InvalidRequest(f"unit {nonce} fails after its write")
        return nonce

    return work


def _stored(store: Store) -> set[str]:
    def read(uow: UnitOfWork) -> set[str]:
        rows = uow.execute(select(request_nonces.c.nonce).where(request_nonces.c.keyid == "group"))
        return {row.nonce for row in rows}

    result: set[str] = store.run(read, read_only=True)
    return result


def _count_commits(store: Store) -> list[int]:
    commits = [0]

    @event.listens_for(store.engine, "commit")
    def _on_commit(_connection: Any) -> None:
        commits[0] += 1

    return commits


def test_concurrent_units_share_commits_and_each_is_durable_when_answered(store: Store) -> None:
    commits = _count_commits(store)
    seen_after_answer: list[bool] = []
    start = threading.Barrier(THREADS)

    def submit(index: int) -> str:
        if index < THREADS:
            start.wait()  # the first wave arrives together
        nonce = store.run_grouped(_add(f"n{index:03d}"))
        # Acknowledged only after the commit: a fresh transaction sees it at once.
        seen_after_answer.append(nonce in _stored(store))
        return nonce

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(submit, range(UNITS)))
    assert answers == [f"n{i:03d}" for i in range(UNITS)]
    assert all(seen_after_answer) and len(seen_after_answer) == UNITS
    assert _stored(store) == set(answers)
    # Reads above commit too on neither backend (read-only transactions roll back), so every
    # counted commit is a group; fewer groups than units means units shared commits.
    assert commits[0] < UNITS, f"{commits[0]} commits for {UNITS} units"


def test_a_failing_unit_is_rolled_back_alone(store: Store) -> None:
    start = threading.Barrier(THREADS)

    def submit(index: int) -> str | BaseException:
        start.wait()
        try:
            return store.run_grouped(_add(f"f{index:02d}", fail=index % 3 == 0))
        except InvalidRequest as error:
            return error

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(submit, range(THREADS)))
    failed = {i for i, outcome in enumerate(outcomes) if isinstance(outcome, InvalidRequest)}
    assert failed == {i for i in range(THREADS) if i % 3 == 0}
    assert _stored(store) == {f"f{i:02d}" for i in range(THREADS) if i not in failed}


def test_a_unit_whose_postings_do_not_balance_is_refused_by_its_own_check(store: Store) -> None:
    def unbalanced(uow: UnitOfWork) -> None:
        uow.wrote_transfer("tr_unbalanced")  # claims a transfer that has no postings

    with pytest.raises(InvariantViolation):
        store.run_grouped(unbalanced)
    assert store.run_grouped(_add("after")) == "after"  # the group goes on
    assert _stored(store) == {"after"}


def test_a_transient_conflict_inside_a_group_reruns_the_unit_alone(store: Store) -> None:
    attempts = [0]

    def flaky(uow: UnitOfWork) -> str:
        attempts[0] += 1
        _add(f"t{attempts[0]}")(uow)
        if attempts[0] == 1:
            raise OperationalError("INSERT …", {}, Exception("database is locked"))
        return "ok"

    assert store.run_grouped(flaky) == "ok"
    assert attempts[0] == 2
    assert _stored(store) == {"t2"}  # the first attempt's write was rolled back


def test_a_lost_connection_answers_503_and_keeps_nothing_of_the_group(store: Store) -> None:
    """The connection broke: whether the commit happened is unknown to the caller, so no unit
    is re-run (it could be twice); each answers 503 and its client retries with its key."""

    def lost(uow: UnitOfWork) -> str:
        _add("lost")(uow)
        raise OperationalError("UPDATE …", {}, Exception("server closed the connection"))

    with pytest.raises(Unavailable) as info:
        store.run_grouped(lost)
    assert info.value.status == 503
    assert _stored(store) == set()


def test_waves_of_units_from_many_threads_all_finish(store: Store) -> None:
    """Leadership passes from caller to caller: every unit of several overlapping waves is
    answered (a lost hand-over would leave callers waiting: each result has a deadline)."""
    threads, per_thread = 12, 8
    with ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(
                lambda t=t: [store.run_grouped(_add(f"w{t:02d}-{i}")) for i in range(per_thread)]
            )
            for t in range(threads)
        ]
        answers = [future.result(timeout=120) for future in futures]
    assert sum(len(a) for a in answers) == threads * per_thread
    assert len(_stored(store)) == threads * per_thread
