"""Prepared statements (store.prepared) answer exactly what SQLAlchemy answers for the same
statement, on both backends: the same rows with the same Python types, the same errors, and
SQLAlchemy's own path where a form needs its execution context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound, StatementError

from paywarden.store import schema
from paywarden.store.prepared import FastResult, prepared
from paywarden.store.unit_of_work import Store, UnitOfWork

E = schema.events
INSERT_EVENT = prepared(insert(E))
EVENT = prepared(select(E).where(E.c.id == bindparam("event_id")))
EVENT_PLAIN = select(E).where(E.c.id == bindparam("event_id"))  # not registered
EVENTS_OF_TYPE = prepared(
    select(E.c.id, E.c.livemode.label("live"), E.c.data)
    .where(E.c.type == bindparam("event_type"))
    .order_by(E.c.id)
)
LIVE_EVENTS = prepared(select(E.c.id).where(E.c.livemode.is_(True), E.c.type == "test.prepared"))
RETYPE = prepared(update(E).where(E.c.type == bindparam("old")).values(type=bindparam("new")))
DROP = prepared(delete(E).where(E.c.type == bindparam("event_type")))
INSERT_RETURNING = prepared(insert(E).returning(E.c.sequence, E.c.created_at))
EVENTS_IN = prepared(select(E.c.id).where(E.c.id.in_(bindparam("ids", expanding=True))))

AT = datetime(2026, 11, 29, 9, 0, 0, 123456, tzinfo=UTC)


def _event(event_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "livemode": False,
        "type": "test.prepared",
        "data": {"object": {"n": 1, "s": "é", "list": [1, None, True]}},
        "created_at": AT,
        **changes,
    }


def _write(store: Store, *events: dict[str, Any]) -> None:
    def work(uow: UnitOfWork) -> None:
        for event in events:
            uow.execute(INSERT_EVENT, event)

    store.run(work)


def test_rows_and_types_match_sqlalchemys(store: Store) -> None:
    _write(store, _event("evt_a", livemode=True), _event("evt_b"))

    def read(uow: UnitOfWork) -> tuple[Any, Any]:
        fast = uow.execute(EVENT, {"event_id": "evt_a"})
        plain = uow.connection.execute(EVENT_PLAIN, {"event_id": "evt_a"})
        return fast, plain

    def read_rows(uow: UnitOfWork) -> tuple[Any, Any]:
        fast, plain = read(uow)
        assert isinstance(fast, FastResult) and isinstance(plain, CursorResult)
        return fast.one(), plain.one()

    row, expected = store.run(read_rows, read_only=True)
    assert tuple(row) == tuple(expected)
    assert [type(value) for value in row] == [type(value) for value in expected]
    assert row.livemode is True and row.data == _event("evt_a")["data"]
    assert row.created_at == expected.created_at
    assert dict(row._mapping) == dict(expected._mapping)


def test_result_methods(store: Store) -> None:
    _write(store, _event("evt_a", livemode=True), _event("evt_b"), _event("evt_c"))

    def read(uow: UnitOfWork) -> None:
        def of_type(kind: str = "test.prepared") -> Any:
            return uow.execute(EVENTS_OF_TYPE, {"event_type": kind})

        assert of_type().scalars().all() == ["evt_a", "evt_b", "evt_c"]
        assert [row.live for row in of_type()] == [True, False, False]
        assert of_type().first().id == "evt_a"
        assert of_type("none").first() is None
        assert of_type("none").one_or_none() is None
        assert of_type("none").scalar() is None
        assert of_type().mappings().first()["live"] is True
        assert len(of_type().all()) == 3
        with pytest.raises(MultipleResultsFound):
            of_type().one()
        with pytest.raises(NoResultFound):
            of_type("none").one()
        with pytest.raises(NoResultFound):
            of_type("none").scalar_one()
        assert uow.execute(LIVE_EVENTS).scalar_one() == "evt_a"  # a bound literal kept

    store.run(read, read_only=True)


def test_dml_rowcount_and_returning(store: Store) -> None:
    _write(store, _event("evt_a"), _event("evt_b"))

    def change(uow: UnitOfWork) -> None:
        moved = uow.execute(RETYPE, {"old": "test.prepared", "new": "test.moved"})
        assert moved.rowcount == 2
        returned = uow.execute(INSERT_RETURNING, _event("evt_c")).one()
        assert returned.sequence > 0 and returned.created_at == AT
        assert uow.execute(DROP, {"event_type": "test.moved"}).rowcount == 2

    store.run(change)
    assert store.run(lambda uow: uow.execute(EVENT, {"event_id": "evt_c"}).one().id) == "evt_c"


def test_executemany(store: Store) -> None:
    _write(store, *(_event(f"evt_{n}") for n in range(5)))
    seen = store.run(
        lambda uow: uow.execute(EVENTS_OF_TYPE, {"event_type": "test.prepared"}).scalars().all()
    )
    assert seen == [f"evt_{n}" for n in range(5)]

    def many(uow: UnitOfWork) -> Any:
        return uow.execute(INSERT_EVENT, [_event("evt_x"), _event("evt_y")])

    assert isinstance(store.run(many), FastResult)


def test_driver_errors_are_sqlalchemys(store: Store) -> None:
    _write(store, _event("evt_a"))
    with pytest.raises(IntegrityError):
        _write(store, _event("evt_a"))
    with pytest.raises(StatementError):  # SQLAlchemy's own "a value is required" error
        store.run(lambda uow: uow.execute(EVENT, {}), read_only=True)
    # The transaction that failed left nothing behind, and the store works on.
    assert store.run(lambda uow: uow.execute(EVENT, {"event_id": "evt_a"}).one().id) == "evt_a"


def test_expanding_in_runs_raw_per_list_length(store: Store) -> None:
    _write(store, _event("evt_a"), _event("evt_b"), _event("evt_c"))

    def ids(uow: UnitOfWork, wanted: list[str]) -> Any:
        return uow.execute(EVENTS_IN, {"ids": wanted})

    for wanted in (["evt_a"], ["evt_c", "evt_a"], ["evt_a", "evt_b", "evt_c", "evt_x"]):
        result = store.run(lambda uow, w=wanted: ids(uow, w), read_only=True)  # type: ignore[misc]
        assert isinstance(result, FastResult)
        assert sorted(result.scalars()) == sorted(set(wanted) - {"evt_x"})

    # An empty IN is SQLAlchemy's own SQL: it runs through SQLAlchemy, with the same answer.
    def empty(uow: UnitOfWork) -> tuple[bool, list[Any]]:
        result = ids(uow, [])
        return isinstance(result, CursorResult), result.all()

    assert store.run(empty, read_only=True) == (True, [])


def test_only_statements_are_prepared() -> None:
    with pytest.raises(TypeError):
        prepared("SELECT 1")


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    live=st.booleans(),
    data=st.dictionaries(_TEXT, _JSON, max_size=4),
    offset_us=st.integers(0, 10**12),
)
def test_any_value_round_trips_as_sqlalchemy_reads_it(
    store: Store, live: bool, data: dict[str, Any], offset_us: int
) -> None:
    """On PostgreSQL the prepared statements go through libpq (store.pipeline), the plain
    one through psycopg's cursor: both read the same."""
    at = AT - timedelta(microseconds=offset_us)
    event_id = f"evt_{offset_us}_{int(live)}"

    def round_trip(uow: UnitOfWork) -> tuple[Any, Any]:
        uow.execute(INSERT_EVENT, _event(event_id, livemode=live, data=data, created_at=at))
        fast = uow.execute(EVENT, {"event_id": event_id}).one()
        plain = uow.connection.execute(EVENT_PLAIN, {"event_id": event_id}).one()
        uow.execute(DROP, {"event_type": "test.prepared"})
        return fast, plain

    fast, plain = store.run(round_trip)
    assert tuple(fast) == tuple(plain)
    assert (fast.livemode, fast.data, fast.created_at) == (live, data, at)
