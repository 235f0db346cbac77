"""Engines for SQLite (embedded default) and PostgreSQL (production), set up for money.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns),
foreign keys on, and a busy timeout. Writing transactions start with ``BEGIN IMMEDIATE``
so that two writers never both read and then collide on upgrade; read-only transactions
start with a plain ``BEGIN`` and read a snapshot without blocking writers.

PostgreSQL uses psycopg 3 at READ COMMITTED (registered statements go out through libpq,
prepared once per connection: see ``store.pipeline``); services lock the rows they change
with ``SELECT … FOR UPDATE`` in id order, so concurrent transfers queue instead of
deadlocking.
"""

from __future__ import annotations

import select
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

from paywarden.store.prepared import run_driver_sql

__all__ = ["PING_IDLE_S", "make_engine", "normalise_url"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_IDLE_S = 1.0  # a PostgreSQL connection idle this long is pinged before use
_IDLE_SINCE = "paywarden_idle_since"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 20, sqlite_synchronous: str = "FULL") -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_synchronous, pool_size)
    return _postgresql_engine(url, pool_size)


def _postgresql_engine(url: str, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Last in, first out: the fewest connections serve the load, each with its statements
        # prepared (store.pipeline prepares them once a connection) and none idle long enough
        # to be pinged (below). The mixed benchmark: 2 to 7 % more requests a second.
        pool_use_lifo=True,
        isolation_level="READ COMMITTED",
        # psycopg's own prepared statements off: after a ROLLBACK it deallocates all of a
        # connection's, ours too (store.pipeline prepares the registered statements itself;
        # the rest run unnamed, parsed each time).
        connect_args={"prepare_threshold": None},
    )

    # A pooled connection is checked before use when it may have gone stale: idle for
    # PING_IDLE_S or more, or with something to read on its socket while idle (a server
    # that stopped or terminated the session says so, or closes it, before it goes). Then
    # a round trip tells, and a dead one is replaced (SQLAlchemy's pre-ping did that round
    # trip at every checkout: one more per group commit, 2 to 4 % of a lone payment's CPU).
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check_if_stale(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        fresh = since is not None and time.monotonic() - since < PING_IDLE_S
        if fresh and not _hung_up(dbapi_connection, engine.dialect.loaded_dbapi.Error):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the pooled connection is gone") from error

    return engine


def _hung_up(dbapi_connection: Any, driver_error: type[Exception]) -> bool:
    """Whether an idle connection's socket has something to read (or is closed)."""
    try:
        readable, _, _ = select.select([dbapi_connection.pgconn.socket], [], [], 0)
    except (OSError, ValueError, driver_error):
        return True
    return bool(readable)


def _sqlite_engine(url: str, synchronous: str, pool_size: int) -> Engine:
    if synchronous not in {"FULL", "EXTRA", "NORMAL"}:
        raise ValueError("sqlite synchronous must be FULL, EXTRA or NORMAL")
    memory = url in {"sqlite://", "sqlite:///:memory:"}
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # Keep connections open in a pool: in WAL mode the last connection to close runs a
        # checkpoint, which would otherwise happen after every transaction. A connection
        # serves one thread at a time, handed over by the pool. Last in, first out: the
        # connection that wrote last comes back first, its page cache still valid (SQLite
        # drops a connection's cache once another has written); first in, first out, each
        # transaction took the connection idle longest and read its pages again (the mixed
        # benchmark: half the pread calls, measured with strace).
        **(
            {"poolclass": StaticPool}
            if memory
            else {"pool_size": pool_size, "max_overflow": pool_size, "pool_use_lifo": True}
        ),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module: we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # Savepoint and statement journals in memory: every grouped payment runs in a
        # savepoint, and with temporary files (this build's default) its statements cost
        # about a quarter more. Sorts that outgrow memory are not on any hot path.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.info.get("paywarden_read_only", False)
        # On the driver, as prepared statements run (about 6 µs less a transaction than
        # SQLAlchemy's exec_driver_sql, timed); errors are raised as SQLAlchemy's alike.
        run_driver_sql(connection, "BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
