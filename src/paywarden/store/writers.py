"""One SQLite writer at a time in this process, first come, first served.

SQLite lets one connection write at a time. Another connection's ``BEGIN IMMEDIATE`` sleeps
in SQLite's busy handler, which polls at intervals growing to 100 ms. Under load the group
commit's leader takes the write lock again as soon as it has committed, so a write outside
the group (a refund, a checkout, a top-up) could poll for a second or more before it found
the lock free: the mixed benchmark's p99 on SQLite was 861 ms, its longest request 1.9 s.

:class:`WriterQueue` makes this process's writers wait their turn in arrival order instead,
each woken the moment the one before it is done; the turn is handed over, so the one that
released it cannot take it back first. ``Store`` takes a turn around every writing
transaction on SQLite, a group commit's included. Writers in other processes still meet
SQLite's busy handler, as before.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

__all__ = ["WriterQueue"]


class WriterQueue:
    """Turns to write, in arrival order; a turn not given within ``timeout_s`` raises what
    SQLite raises when its busy timeout runs out (a transient error: ``Store.run`` retries
    it, then answers 503)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._lock:
            mine = None
            if self._held:
                mine = threading.Event()
                self._waiting.append(mine)
            else:
                self._held = True
        if mine is not None and not mine.wait(self._timeout_s):
            with self._lock:
                handed = mine.is_set()  # the turn may have come as the wait timed out
                if not handed:
                    self._waiting.remove(mine)
            if not handed:
                raise _busy(self._timeout_s)
        try:
            yield
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting.popleft().set()  # handed over: still held
                else:
                    self._held = False


def _busy(timeout_s: float) -> OperationalError:
    message = f"database is locked: no turn to write within {timeout_s:g} s in this process"
    return OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(message))
