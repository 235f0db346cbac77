"""Registered statements on PostgreSQL go out through libpq directly (store.pipeline):
prepared once per connection under names of ours, whatever psycopg does with its own,
with values of any width, and a lost connection is reported and replaced as before."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import bindparam, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from paywarden.kernel.errors import Unavailable
from paywarden.store import engine as engine_module
from paywarden.store import pipeline, schema
from paywarden.store.pipeline import convert
from paywarden.store.prepared import prepared
from paywarden.store.unit_of_work import Store, UnitOfWork

E = schema.events
INSERT_EVENT = prepared(insert(E))
AFTER = prepared(select(E.c.id).where(E.c.sequence > bindparam("n")).order_by(E.c.id))
OF_TYPE = select(E.c.id).where(E.c.type == bindparam("event_type"))  # not registered
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


EVENT = {"livemode": False, "type": "test.pipeline", "data": {}, "created_at": AT}


def _event(event_id: str) -> dict[str, Any]:
    return {**EVENT, "id": event_id}


def _names(uow: UnitOfWork) -> list[str]:
    rows = uow.connection.exec_driver_sql("SELECT name FROM pg_prepared_statements ORDER BY name")
    return [row[0] for row in rows]


def test_placeholders_are_numbered_in_order_of_first_use() -> None:
    assert convert("a = %(x)s AND b = %(y)s OR c = %(x)s") == (
        b"a = $1 AND b = $2 OR c = $1",
        ("x", "y"),
    )
    assert convert("x LIKE 'a%%' AND y = %(y)s") == (b"x LIKE 'a%' AND y = $1", ("y",))
    assert convert("x % 2 = %(y)s") is None  # a % of its own: psycopg's cursor runs it
    assert convert("SELECT 1") == (b"SELECT 1", ())


@pytest.mark.postgres
def test_a_statement_is_prepared_once_per_connection_under_our_name(pg_store: Store) -> None:
    def work(uow: UnitOfWork) -> list[str]:
        for index in range(3):
            uow.execute(INSERT_EVENT, _event(f"evt_p{index}"))
        assert [row[0] for row in uow.execute(AFTER, {"n": 0})] == ["evt_p0", "evt_p1", "evt_p2"]
        return _names(uow)

    names = pg_store.run(work)
    assert names and all(name.startswith("pw_") for name in names), names
    assert len(names) == len(set(names)) == 2  # the insert and the read, each once


@pytest.mark.postgres
def test_values_of_any_width_bind_as_psycopg_binds_them(pg_store: Store) -> None:
    """psycopg dumps a small int as int2, a larger one as int4 or int8: one statement is
    prepared once per set of parameter types, and each answers right."""

    def work(uow: UnitOfWork) -> list[list[str]]:
        uow.execute(INSERT_EVENT, _event("evt_w"))
        return [
            [row[0] for row in uow.execute(AFTER, {"n": n})]
            for bound in (1, 2**20, 2**40)
            for n in (-bound, bound)
        ]

    assert pg_store.run(work) == [["evt_w"], []] * 3


@pytest.mark.postgres
def test_a_statement_prepared_in_a_failed_batch_is_not_prepared_twice(pg_store: Store) -> None:
    """The server keeps what it prepared when the statement's execution failed after it (a
    value out of the column's range here): its name is not given again."""
    for n in (2**70, -(2**70)):  # numeric: a statement of its own; beyond bigint
        with pytest.raises(DBAPIError, match="out of range"):
            pg_store.run(lambda uow, n=n: uow.execute(AFTER, {"n": n}).all())
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_f")))
    found = pg_store.run(lambda uow: [row[0] for row in uow.execute(AFTER, {"n": -1})])
    assert found == ["evt_f"]
    kept = pg_store.run(
        lambda uow: uow.connection.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%sequence > $1%%'"
        ).scalar_one()
    )
    assert kept == 2  # one for numeric (prepared once, by the first failed run), one for int2


@pytest.mark.postgres
def test_psycopgs_rollback_leaves_our_statements_prepared(pg_store: Store) -> None:
    """psycopg deallocates every prepared statement of a connection after a ROLLBACK when
    it prepared some of its own; the engine turns its own off, so ours survive."""

    def warm(uow: UnitOfWork) -> None:
        uow.execute(INSERT_EVENT, _event("evt_r0"))
        for _ in range(8):  # past psycopg's own threshold for preparing a statement
            uow.connection.execute(OF_TYPE, {"event_type": "test.pipeline"}).all()

    pg_store.run(warm)

    def fail(uow: UnitOfWork) -> None:
        uow.execute(INSERT_EVENT, _event("evt_r1"))
        raise RuntimeError("roll back")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            pg_store.run(fail)

    def again(uow: UnitOfWork) -> list[str]:
        uow.execute(INSERT_EVENT, _event("evt_r2"))
        return [row[0] for row in uow.execute(AFTER, {"n": 0})]

    assert pg_store.run(again) == ["evt_r0", "evt_r2"]


@pytest.mark.postgres
def test_statements_deallocated_behind_our_back_are_prepared_again(pg_store: Store) -> None:
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_d0")))

    def deallocate(uow: UnitOfWork) -> None:
        uow.connection.execute(text("DEALLOCATE ALL"))

    pg_store.run(deallocate)
    with pytest.raises(DBAPIError, match="does not exist"):  # the one that finds it gone
        pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_d1")))
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_d2")))
    found = pg_store.run(lambda uow: [row[0] for row in uow.execute(AFTER, {"n": 0})])
    assert found == ["evt_d0", "evt_d2"]


@pytest.mark.postgres
def test_a_connection_lost_mid_transaction_is_reported_and_replaced(pg_store: Store) -> None:
    def killed(uow: UnitOfWork) -> None:
        uow.execute(INSERT_EVENT, _event("evt_k0"))
        pid = uow.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_store.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        uow.execute(INSERT_EVENT, _event("evt_k1"))

    with pytest.raises(Unavailable) as raised:
        pg_store.run(killed)
    assert isinstance(raised.value.__cause__, DBAPIError)
    assert raised.value.__cause__.connection_invalidated
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_k2")))
    found = pg_store.run(lambda uow: [row[0] for row in uow.execute(AFTER, {"n": 0})])
    assert found == ["evt_k2"]


@pytest.mark.postgres
def test_a_pooled_connection_whose_session_ended_is_replaced_before_use(pg_store: Store) -> None:
    """No ping for a connection used a moment ago, but one whose server session was
    terminated while it sat in the pool is found out at checkout and replaced: the next
    unit of work runs as if nothing happened."""
    pid = pg_store.run(
        lambda uow: uow.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    )
    other = create_engine(pg_store.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with other.connect() as connection:  # autocommit: pg_stat_activity is read afresh each time
        connection.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        deadline = time.monotonic() + 30
        while connection.exec_driver_sql(  # until the session is gone, its goodbye sent
            f"SELECT count(*) FROM pg_stat_activity WHERE pid = {int(pid)}"
        ).scalar_one():
            assert time.monotonic() < deadline, "the terminated session lingers"
            time.sleep(0.01)
    other.dispose()
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_t0")))
    found = pg_store.run(lambda uow: [row[0] for row in uow.execute(AFTER, {"n": 0})])
    assert found == ["evt_t0"]


@pytest.mark.postgres
def test_only_a_connection_idle_a_while_is_pinged(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    ping = pg_store.engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(pg_store.engine.dialect, "do_ping", counted)
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 3600.0)  # a busy machine's pauses too
    for _ in range(3):
        pg_store.run(lambda uow: uow.execute(AFTER, {"n": 0}).all())
    assert pings == []  # each checked in less than PING_IDLE_S before
    monkeypatch.setattr(engine_module, "PING_IDLE_S", 0.0)
    pg_store.run(lambda uow: uow.execute(AFTER, {"n": 0}).all())
    assert len(pings) == 1


@pytest.mark.postgres
def test_a_batch_broken_off_mid_protocol_closes_its_connection(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round trip that fails between its sends and its sync (here: reading the answers)
    leaves the connection in pipeline mode with answers unread: the batch closes it before
    its error leaves (whatever SQLAlchemy then does with the failed transaction), and the
    pool opens another for the next unit of work."""
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_m0")))
    answer, run_batch = pipeline._answer, pipeline.run_batch
    failures = [psycopg.OperationalError("lost mid-batch")]
    closed_as_it_failed: list[bool] = []

    def failing(driver: Any, pgconn: Any) -> list[Any]:
        if failures:
            raise failures.pop()
        return answer(driver, pgconn)

    def watched(info: Any, driver: Any, batch: Any) -> Any:
        try:
            return run_batch(info, driver, batch)
        except pipeline.BatchFailed:
            closed_as_it_failed.append(driver.closed)
            raise

    monkeypatch.setattr(pipeline, "_answer", failing)
    monkeypatch.setattr(pipeline, "run_batch", watched)
    with pytest.raises(Unavailable):
        pg_store.run(lambda uow: uow.execute(AFTER, {"n": 0}).all())
    assert closed_as_it_failed == [True]
    found = pg_store.run(lambda uow: [row[0] for row in uow.execute(AFTER, {"n": 0})])
    assert found == ["evt_m0"]
