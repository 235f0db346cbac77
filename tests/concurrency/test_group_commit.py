"""Group commit (``Store.run_grouped``, and ``Store.grouped`` on an event loop), on SQLite
and PostgreSQL.

Many threads submit units of work at once: they share commits (fewer commits than units),
every unit's effect is there once its caller has its answer, and none is acknowledged
before the commit that holds it. A unit that fails is rolled back alone (its savepoint),
including a unit whose postings do not balance (its paired check runs inside it); a
transient conflict inside the group re-runs that unit on its own.

Units awaited on an event loop (``Store.grouped``) have the same guarantees; a lane's thread
leads for them. Callers on threads and on a loop mix in one queue and every one is answered
(each wait has a deadline, so a lost hand-over fails a test instead of hanging it). An
awaiter that goes away does not stop its unit.
"""

from __future__ import annotations

import asyncio
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
DEADLINE_S = 120  # generous: only a lost hand-over comes near it


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


def _flaky(attempts: list[int]) -> Callable[[UnitOfWork], str]:
    """A unit that meets a transient conflict on its first attempt, after its write."""

    def flaky(uow: UnitOfWork) -> str:
        attempts[0] += 1
        _add(f"t{attempts[0]}")(uow)
        if attempts[0] == 1:
            raise OperationalError("INSERT …", {}, Exception("database is locked"))
        return "ok"

    return flaky


@pytest.mark.parametrize("caller", ["thread", "loop"])
def test_a_transient_conflict_inside_a_group_reruns_the_unit_alone(
    store: Store, caller: str
) -> None:
    attempts = [0]
    flaky = _flaky(attempts)
    answer = store.run_grouped(flaky) if caller == "thread" else _run(store.grouped(flaky))
    assert answer == "ok"
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


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, DEADLINE_S))


def test_units_awaited_on_a_loop_share_commits_and_each_is_durable_when_answered(
    store: Store,
) -> None:
    commits = _count_commits(store)
    seen_after_answer: list[bool] = []

    async def submit(index: int) -> str:
        nonce: str = await store.grouped(_add(f"a{index:03d}"))
        seen_after_answer.append(nonce in _stored(store))  # acknowledged after its commit
        return nonce

    async def main() -> list[str]:
        return list(await asyncio.gather(*(submit(i) for i in range(UNITS))))

    answers = _run(main())
    assert answers == [f"a{i:03d}" for i in range(UNITS)]
    assert all(seen_after_answer) and len(seen_after_answer) == UNITS
    assert _stored(store) == set(answers)
    assert commits[0] < UNITS, f"{commits[0]} commits for {UNITS} units"


def test_a_failing_unit_awaited_on_a_loop_is_rolled_back_alone(store: Store) -> None:
    async def submit(index: int) -> str | BaseException:
        try:
            result: str = await store.grouped(_add(f"f{index:02d}", fail=index % 3 == 0))
            return result
        except InvalidRequest as error:
            return error

    async def main() -> list[str | BaseException]:
        return list(await asyncio.gather(*(submit(i) for i in range(16))))

    outcomes = _run(main())
    failed = {i for i, outcome in enumerate(outcomes) if isinstance(outcome, InvalidRequest)}
    assert failed == {i for i in range(16) if i % 3 == 0}
    assert _stored(store) == {f"f{i:02d}" for i in range(16) if i not in failed}


def test_a_lost_connection_answers_the_awaiter_503(store: Store) -> None:
    def lost(uow: UnitOfWork) -> str:
        _add("lost")(uow)
        raise OperationalError("UPDATE …", {}, Exception("server closed the connection"))

    with pytest.raises(Unavailable):
        _run(store.grouped(lost))
    assert _stored(store) == set()


def test_a_group_that_fails_beyond_its_units_answers_its_awaiters_and_later_units_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's transaction cannot even start: its awaiters get the error (not a hang),
    and units awaited after it still commit."""
    connect = store.engine.connect
    calls = [0]

    def broken_once() -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("no connection this time")
        return connect()

    monkeypatch.setattr(store.engine, "connect", broken_once)
    with pytest.raises(RuntimeError, match="no connection this time"):
        _run(store.grouped(_add("first")))
    assert _run(store.grouped(_add("second"))) == "second"
    assert _stored(store) == {"second"}


def test_callers_on_threads_and_on_a_loop_share_the_queue_and_all_finish(store: Store) -> None:
    """Leadership passes between callers' threads and lanes' threads in both directions."""
    threads, per_thread, per_loop = 8, 6, 48

    def on_thread(t: int) -> list[str]:
        return [store.run_grouped(_add(f"s{t:02d}-{i}")) for i in range(per_thread)]

    async def on_loop() -> list[str]:
        async def one(i: int) -> str:
            await asyncio.sleep(0.001 * (i % 4))  # arrivals spread over the threads' waves
            result: str = await store.grouped(_add(f"l{i:03d}"))
            return result

        return list(await asyncio.gather(*(one(i) for i in range(per_loop))))

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(on_thread, t) for t in range(threads)]
        looped = _run(on_loop())
        threaded = [future.result(timeout=DEADLINE_S) for future in futures]
    assert len(looped) == per_loop and sum(len(a) for a in threaded) == threads * per_thread
    assert len(_stored(store)) == per_loop + threads * per_thread


def test_an_awaiter_that_goes_away_leaves_its_unit_to_commit(store: Store) -> None:
    """A client that disconnects cancels its request's task; the unit is already in a group
    and commits (its idempotency key answers a retry), and the lane goes on."""
    inside = threading.Event()
    release = threading.Event()

    def slow(uow: UnitOfWork) -> str:
        inside.set()
        assert release.wait(DEADLINE_S)
        return _add("slow")(uow)

    async def main() -> str:
        task = asyncio.ensure_future(store.grouped(slow))
        while not inside.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        after: str = await store.grouped(_add("after"))
        return after

    assert _run(main()) == "after"
    assert _stored(store) == {"slow", "after"}


def test_a_leading_thread_hands_its_lane_to_a_unit_awaited_on_a_loop(store: Store) -> None:
    """A caller's thread leads; a unit awaited on a loop arrives while it commits, and nothing
    after it. The thread, done, must hand its lane on, or that unit would wait forever."""
    one_lane = Store(store.engine, store.clock, lanes=1)
    inside, release = threading.Event(), threading.Event()

    def slow(uow: UnitOfWork) -> str:
        inside.set()
        assert release.wait(DEADLINE_S)
        return _add("thread")(uow)

    async def after_it() -> str:
        task = asyncio.ensure_future(one_lane.grouped(_add("loop")))
        await asyncio.sleep(0.05)  # queued behind the thread's group, which holds the lane
        release.set()
        result: str = await task
        return result

    with ThreadPoolExecutor(1) as pool:
        led = pool.submit(one_lane.run_grouped, slow)
        assert inside.wait(DEADLINE_S)
        assert _run(after_it()) == "loop"
        assert led.result(timeout=DEADLINE_S) == "thread"
    assert _stored(store) == {"thread", "loop"}
