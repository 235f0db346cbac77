"""Database faults provoked on purpose: real PostgreSQL deadlocks and serialization
failures between two ``Store.run`` calls, lined up with a barrier so they happen on every
run (tests/reliability/test_database_faults.py).

Each of the two workers changes rows of a private table ``fault_rows`` in a fresh database
(never the migrated schema); on its *first* attempt it waits at a shared barrier after its
first statement, so both transactions hold what the other needs before either goes on.
Retried attempts skip the barrier: the retry is what is being proved. A retried attempt
first waits until the other worker has finished: the tests record the backoff sleep instead
of sleeping it, and without any pause the retry could take its first lock again before the
winner is granted its own, and deadlock a second time (a real race that the backoff's
jitter makes unlikely, which a deterministic test must rule out).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text

from paywarden.store.unit_of_work import Store, UnitOfWork

__all__ = ["Duel", "make_rows", "row_values"]

JOIN_TIMEOUT_S = 60.0
BARRIER_TIMEOUT_S = 30.0
# PostgreSQL looks for a deadlock after this long waiting on a lock (default 1 s).
DEADLOCK_TIMEOUT = "100ms"


def make_rows(store: Store, names: list[str]) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.execute(text("CREATE TABLE fault_rows (name text PRIMARY KEY, value int NOT NULL)"))
        for name in names:
            uow.execute(text("INSERT INTO fault_rows VALUES (:n, 0)"), {"n": name})

    store.run(work)


def row_values(store: Store) -> dict[str, int]:
    rows = store.run(
        lambda uow: uow.execute(text("SELECT name, value FROM fault_rows")).all(), read_only=True
    )
    return {str(name): int(value) for name, value in rows}


def bump(uow: UnitOfWork, name: str) -> None:
    uow.execute(text("UPDATE fault_rows SET value = value + 1 WHERE name = :n"), {"n": name})


@dataclass
class Duel:
    """Two workers, each a list of steps run in one ``Store.run``; the barrier sits after
    step ``meet_after`` of each first attempt. ``setup`` runs first in every attempt (to set
    the isolation level, which must precede any query)."""

    store: Store
    steps: dict[str, list[Callable[[UnitOfWork], None]]]
    meet_after: int = 1
    setup: Callable[[UnitOfWork], None] | None = None
    attempts: Counter[str] = field(default_factory=Counter)
    errors: dict[str, BaseException] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _done: dict[str, threading.Event] = field(default_factory=dict)

    def run(self) -> None:
        self._done = {name: threading.Event() for name in self.steps}
        barrier = threading.Barrier(len(self.steps), timeout=BARRIER_TIMEOUT_S)
        threads = [
            threading.Thread(target=self._worker, args=(name, barrier), daemon=True)
            for name in self.steps
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)
        assert not any(t.is_alive() for t in threads), "a worker never finished"

    def _worker(self, name: str, barrier: threading.Barrier) -> None:
        def work(uow: UnitOfWork) -> None:
            with self._lock:
                self.attempts[name] += 1
                first = self.attempts[name] == 1
            if not first:
                others = [event for other, event in self._done.items() if other != name]
                assert all(event.wait(JOIN_TIMEOUT_S) for event in others), "the winner hangs"
            if self.setup is not None:
                self.setup(uow)
            uow.execute(text(f"SET LOCAL deadlock_timeout = '{DEADLOCK_TIMEOUT}'"))
            for index, step in enumerate(self.steps[name]):
                if first and index == self.meet_after:
                    barrier.wait()
                step(uow)

        try:
            self.store.run(work)
        except Exception as error:
            barrier.abort()
            self.errors[name] = error
        finally:
            self._done[name].set()
