"""SQLite's writers of one process take turns in arrival order (``store.writers``): the turn
is handed to the oldest waiter, so the writer that releases it cannot take it back first,
and a writer outside the group commit is not starved by groups committing back to back.
No test here measures time: waits are for events, with generous bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from paywarden.kernel.errors import Unavailable
from paywarden.store import schema
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.store.writers import WriterQueue

WAIT_S = 10.0  # an upper bound for a thread to get where it is going, never a measure


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "a thread never got there"
        time.sleep(0.001)


def _queued(queue: WriterQueue) -> int:
    return len(queue._waiting)


def test_turns_are_given_in_arrival_order_and_handed_over() -> None:
    queue = WriterQueue(timeout_s=WAIT_S)
    order: list[str] = []

    def writer(name: str) -> None:
        with queue.turn():
            order.append(name)

    with queue.turn():  # held while the others arrive, one after another
        threads = []
        for number, name in enumerate(["b", "c", "d"], start=1):
            threads.append(threading.Thread(target=writer, args=(name,)))
            threads[-1].start()
            _until(lambda number=number: _queued(queue) == number)
    # The holder asks again at once, before any woken thread can run: the turn was handed
    # to b as it was released, so the holder waits behind all three.
    writer("a again")
    for thread in threads:
        thread.join(WAIT_S)
    assert order == ["b", "c", "d", "a again"]
    with queue.turn():  # free again
        assert _queued(queue) == 0


def test_a_turn_not_given_in_time_is_sqlites_transient_busy_error() -> None:
    queue = WriterQueue(timeout_s=0.05)
    served: list[str] = []

    def late_writer() -> None:
        with queue.turn():
            served.append("late")

    with queue.turn():
        with pytest.raises(OperationalError, match="database is locked"), queue.turn():
            pass  # pragma: no cover -- never given
        assert _queued(queue) == 0  # the one that gave up left the queue
    late = threading.Thread(target=late_writer)
    late.start()
    late.join(WAIT_S)
    assert served == ["late"]


def test_a_write_outside_the_group_gets_the_next_turn(sqlite_store: Store) -> None:
    """A grouped unit holds the write turn; a plain write arrives, then another grouped
    unit: the plain write commits before the second group (which the leader takes its turn
    for once the first has committed, behind the plain write)."""
    queue = sqlite_store._writers
    assert queue is not None
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def first_group(uow: UnitOfWork) -> None:
        order.append("group 1")
        inside.set()
        release.wait(WAIT_S)

    def plain(uow: UnitOfWork) -> None:
        order.append("plain write")

    def second_group(uow: UnitOfWork) -> None:
        order.append("group 2")

    group = threading.Thread(target=lambda: sqlite_store.run_grouped(first_group))
    group.start()
    assert inside.wait(WAIT_S)
    writer = threading.Thread(target=lambda: sqlite_store.run(plain))
    writer.start()
    _until(lambda: _queued(queue) == 1)
    later = threading.Thread(target=lambda: sqlite_store.run_grouped(second_group))
    later.start()
    _until(lambda: len(sqlite_store._pending) == 1)  # waiting for the leader's next group
    reads = threading.Thread(  # a read needs no turn: it runs beside the writer
        target=lambda: sqlite_store.run(
            lambda uow: uow.execute(select(schema.events.c.id).limit(1)).all(), read_only=True
        )
    )
    reads.start()
    reads.join(WAIT_S)
    assert not reads.is_alive()
    release.set()
    for thread in (group, writer, later):
        thread.join(WAIT_S)
    assert order == ["group 1", "plain write", "group 2"]


def test_a_writer_that_never_gets_a_turn_answers_unavailable(sqlite_store: Store) -> None:
    sqlite_store._writers = WriterQueue(timeout_s=0.01)
    inside, release = threading.Event(), threading.Event()

    def holder(uow: UnitOfWork) -> None:
        inside.set()
        release.wait(WAIT_S)

    thread = threading.Thread(target=lambda: sqlite_store.run(holder))
    thread.start()
    assert inside.wait(WAIT_S)
    try:
        with pytest.raises(Unavailable):  # retried as SQLite's busy error is, then 503
            sqlite_store.run(lambda uow: None)
    finally:
        release.set()
        thread.join(WAIT_S)
    sqlite_store.run(lambda uow: None)  # and the next one writes
