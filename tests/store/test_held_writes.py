"""Writes held back by ``UnitOfWork.write`` (sent on PostgreSQL in the round trip of the next
statement that needs an answer) keep the meaning of writes run at once, on both backends:
later reads see them in order, their errors and row checks are raised before the innermost
savepoint around them is released or the transaction commits, and a savepoint's rollback
undoes exactly what followed it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from paywarden.kernel.errors import InvariantViolation
from paywarden.store import schema
from paywarden.store.prepared import prepared
from paywarden.store.unit_of_work import Store, UnitOfWork, _Unit
from round_trip_support import record_round_trips

E = schema.events
INSERT_EVENT = prepared(insert(E))
RETYPE = prepared(update(E).where(E.c.id == bindparam("event_id")).values(type=bindparam("new")))
TYPES = prepared(select(E.c.id, E.c.type).where(E.c.id.like("evt_held%")).order_by(E.c.id))
EVENT_TYPE = prepared(select(E.c.type).where(E.c.id == bindparam("event_id")))
TYPES_IN = prepared(
    select(E.c.type).where(E.c.id.in_(bindparam("event_ids", expanding=True))).order_by(E.c.id)
)
NOT_PREPARED = update(E).where(E.c.id == bindparam("event_id")).values(type=bindparam("new"))
AT = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def _event(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "livemode": False,
        "type": "test.held",
        "data": {"object": {}},
        "created_at": AT,
    }


def _types(store: Store) -> dict[str, str]:
    return store.run(lambda uow: dict(uow.execute(TYPES).all()), read_only=True)


def test_a_read_sees_the_writes_held_before_it_in_order(store: Store) -> None:
    def work(uow: UnitOfWork) -> dict[str, str]:
        uow.write(INSERT_EVENT, _event("evt_held_a"))
        uow.write(RETYPE, {"event_id": "evt_held_a", "new": "test.once"}, rows=1, lost="gone")
        uow.write(INSERT_EVENT, [_event("evt_held_b"), _event("evt_held_c")])
        uow.write(RETYPE, {"event_id": "evt_held_a", "new": "test.twice"}, rows=1, lost="gone")
        uow.write(NOT_PREPARED, {"event_id": "evt_held_c", "new": "test.plain"})  # runs at once
        return dict(uow.execute(TYPES).all())

    seen = store.run(work)
    assert seen == {
        "evt_held_a": "test.twice",
        "evt_held_b": "test.held",
        "evt_held_c": "test.plain",
    }
    assert _types(store) == seen


def test_held_writes_are_sent_before_the_commit(store: Store) -> None:
    store.run(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_last")))
    assert _types(store) == {"evt_held_last": "test.held"}


def test_a_held_write_that_fails_beside_the_commit_commits_nothing(store: Store) -> None:
    """On PostgreSQL the last writes and the COMMIT share a round trip: the server skips the
    COMMIT after the duplicate key, and the write before it is undone with the rest."""
    store.run(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_a")))
    with pytest.raises(IntegrityError):
        store.run(_a_write_then_a_duplicate)
    assert _types(store) == {"evt_held_a": "test.held"}
    store.run(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_c")))  # the connection works
    assert set(_types(store)) == {"evt_held_a", "evt_held_c"}


def _a_write_then_a_duplicate(uow: UnitOfWork) -> None:
    """evt_held_b, then evt_held_a again (stored already): a duplicate key."""
    uow.write(INSERT_EVENT, _event("evt_held_b"))
    uow.write(INSERT_EVENT, _event("evt_held_a"))


def test_a_failed_row_check_raises_and_nothing_commits(store: Store) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.write(INSERT_EVENT, _event("evt_held_a"))
        uow.write(RETYPE, {"event_id": "evt_held_none", "new": "x"}, rows=1, lost="no such row")

    with pytest.raises(InvariantViolation, match="no such row"):
        store.run(work)
    assert _types(store) == {}


def test_a_grouped_unit_whose_last_row_check_fails_is_undone_alone(store: Store) -> None:
    """The row check of a write still held at the unit's end is answered before the unit's
    own savepoint is released: the unit is undone alone, and its group goes on."""

    def failing(uow: UnitOfWork) -> None:
        uow.write(INSERT_EVENT, _event("evt_held_a"))
        uow.write(RETYPE, {"event_id": "evt_held_none", "new": "x"}, rows=1, lost="no such row")

    with pytest.raises(InvariantViolation, match="no such row"):
        store.run_grouped(failing)
    store.run_grouped(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_b")))
    assert _types(store) == {"evt_held_b": "test.held"}


def test_a_failed_held_write_raises_as_itself_and_its_savepoint_undoes_it(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> str:
        uow.write(INSERT_EVENT, _event("evt_held_b"))  # before the savepoint: kept
        savepoint = uow.savepoint()
        try:  # raised by the write itself on SQLite, by the next read on PostgreSQL
            uow.write(INSERT_EVENT, _event("evt_held_c"))
            uow.write(INSERT_EVENT, _event("evt_held_a"))  # a duplicate key
            uow.execute(TYPES).all()
        except IntegrityError as error:
            savepoint.rollback()
            return str(error.statement)
        raise AssertionError("the duplicate was not refused")

    statement = store.run(work)
    assert statement.startswith("INSERT INTO events")  # the write's, not the read's
    assert _types(store) == {"evt_held_a": "test.held", "evt_held_b": "test.held"}


def test_a_savepoints_release_raises_what_was_held_inside_it(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> None:
        savepoint = uow.savepoint()
        try:  # at the latest when the savepoint is released
            uow.write(INSERT_EVENT, _event("evt_held_a"))
            savepoint.commit()
        except IntegrityError:
            savepoint.rollback()
            uow.write(INSERT_EVENT, _event("evt_held_b"))
            return
        raise AssertionError("the duplicate was not refused")

    store.run(work)
    assert _types(store) == {"evt_held_a": "test.held", "evt_held_b": "test.held"}


@pytest.mark.parametrize("read_inside", [False, True])
def test_a_rollback_drops_what_followed_the_savepoint_and_keeps_what_preceded_it(
    store: Store, read_inside: bool
) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.write(INSERT_EVENT, _event("evt_held_a"))
        outer = uow.savepoint()
        uow.write(INSERT_EVENT, _event("evt_held_b"))
        inner = uow.savepoint()
        uow.write(INSERT_EVENT, _event("evt_held_c"))
        if read_inside:  # the savepoints and writes so far are sent with this read
            assert len(uow.execute(TYPES).all()) == 3
        uow.write(INSERT_EVENT, _event("evt_held_d"))
        inner.rollback()
        uow.write(INSERT_EVENT, _event("evt_held_e"))
        outer.commit()

    store.run(work)
    assert set(_types(store)) == {"evt_held_a", "evt_held_b", "evt_held_e"}


def test_a_grouped_unit_whose_held_write_fails_is_undone_alone(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))
    with pytest.raises(IntegrityError):
        store.run_grouped(_a_write_then_a_duplicate)
    store.run_grouped(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_c")))
    assert set(_types(store)) == {"evt_held_a", "evt_held_c"}


@pytest.mark.postgres
def test_on_postgresql_a_held_write_costs_no_round_trip_of_its_own(pg_store: Store) -> None:
    """Held back until needed: a write undone by its savepoint's rollback before any read is
    never sent (a duplicate key that was never sent raises nothing)."""
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> None:
        savepoint = uow.savepoint()
        uow.write(INSERT_EVENT, _event("evt_held_a"))
        savepoint.rollback()

    pg_store.run(work)
    assert _types(pg_store) == {"evt_held_a": "test.held"}


def test_on_postgresql_a_grouped_units_release_goes_with_the_next_round_trip(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two grouped units of one read each: three round trips with the commit, not five.
    The first unit's ``RELEASE`` goes with the second unit's read, the second's with the
    group's ``COMMIT``; both units' writes are kept."""
    rounds = record_round_trips(monkeypatch)

    def unit(event_id: str) -> Any:
        def work(uow: UnitOfWork) -> str:
            uow.write(INSERT_EVENT, _event(event_id))
            return str(uow.execute(EVENT_TYPE, {"event_id": event_id}).scalar_one())

        return work

    units: list[_Unit[str]] = [_Unit(unit("evt_held_one")), _Unit(unit("evt_held_two"))]
    pg_store._commit_group(units)
    monkeypatch.undo()
    assert [u.value for u in units] == ["test.held", "test.held"]
    assert len(rounds) == 3, rounds
    assert rounds[1][0] == "RELEASE SAVEPOINT pw_savepoint_1", rounds
    assert rounds[2] == ["RELEASE SAVEPOINT pw_savepoint_2", "COMMIT"], rounds
    assert set(_types(pg_store)) == {"evt_held_one", "evt_held_two"}


@pytest.mark.parametrize("fails", [None, "its own error", "a duplicate key"])
def test_a_group_of_one_runs_without_a_savepoint_and_its_failure_undoes_it_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch, fails: str | None
) -> None:
    """A unit committed alone is its transaction: no ``SAVEPOINT`` (nor its ``RELEASE``) is
    sent, and when it fails, the transaction's rollback undoes all it wrote; grouped with
    another, each unit has its savepoint, and the failed one alone is undone."""
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))
    rounds = record_round_trips(monkeypatch)

    def work(uow: UnitOfWork) -> str:
        uow.write(INSERT_EVENT, _event("evt_held_b"))
        seen = str(uow.execute(EVENT_TYPE, {"event_id": "evt_held_b"}).scalar_one())
        if fails == "its own error":
            raise InvariantViolation("the unit's own failure")
        if fails == "a duplicate key":
            uow.execute(INSERT_EVENT, _event("evt_held_a"))
        return seen

    alone: list[_Unit[str]] = [_Unit(work)]
    store._commit_group(alone)
    sent = [sql for round_trip in rounds for sql in round_trip]
    assert not [sql for sql in sent if "SAVEPOINT" in sql], sent
    assert (alone[0].error is None) == (fails is None)
    assert set(_types(store)) == ({"evt_held_a"} if fails else {"evt_held_a", "evt_held_b"})
    if fails:  # the same failure beside a unit that succeeds: undone alone, in its savepoint
        pair: list[_Unit[str]] = [
            _Unit(lambda uow: uow.write(INSERT_EVENT, _event("evt_held_c"))),
            _Unit(work),
        ]
        store._commit_group(pair)
        assert pair[0].error is None and pair[1].error is not None
        assert set(_types(store)) == {"evt_held_a", "evt_held_c"}


def test_a_prefetched_read_answers_as_the_read_itself(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> tuple[Any, Any]:
        uow.prefetch(TYPES, {})
        uow.prefetch(EVENT_TYPE, {"event_id": "evt_held_a"})
        first = uow.execute(EVENT_TYPE, {"event_id": "evt_held_a"}).one()
        return first, uow.execute(TYPES, {}).all()

    first, every = store.run(work)
    assert tuple(first) == ("test.held",) and [tuple(row) for row in every] == [
        ("evt_held_a", "test.held")
    ]


def test_a_change_after_a_prefetch_makes_the_read_run_again(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> list[str]:
        seen = []
        for change in (
            lambda: uow.write(RETYPE, {"event_id": "evt_held_a", "new": "test.written"}),
            lambda: uow.execute(RETYPE, {"event_id": "evt_held_a", "new": "test.executed"}),
            lambda: uow.savepoint().commit(),
        ):
            uow.prefetch(EVENT_TYPE, {"event_id": "evt_held_a"})
            uow.execute(TYPES, {}).all()  # the prefetch goes out with this read
            change()
            seen.append(uow.execute(EVENT_TYPE, {"event_id": "evt_held_a"}).scalar_one())
        return seen

    assert store.run(work) == ["test.written", "test.executed", "test.executed"]


@pytest.mark.postgres
def test_on_postgresql_a_stable_prefetch_is_served_after_a_change(pg_store: Store) -> None:
    """``stable``: the unit's own writes do not make it stale (for reads of what the unit
    never writes); a plain prefetch of the same read is run again."""
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork, stable: bool) -> str:
        uow.prefetch(EVENT_TYPE, {"event_id": "evt_held_a"}, stable=stable)
        uow.execute(TYPES, {}).all()  # the prefetch goes out with this read
        uow.write(RETYPE, {"event_id": "evt_held_a", "new": f"test.{stable}"})
        return str(uow.execute(EVENT_TYPE, {"event_id": "evt_held_a"}).scalar_one())

    assert pg_store.run(lambda uow: work(uow, True)) == "test.held"  # as sent ahead
    assert pg_store.run(lambda uow: work(uow, False)) == "test.False"


def test_a_read_with_other_parameters_is_not_served_a_prefetched_one(store: Store) -> None:
    store.run(lambda uow: uow.execute(INSERT_EVENT, [_event("evt_held_a"), _event("evt_held_b")]))

    def work(uow: UnitOfWork) -> str:
        uow.write(RETYPE, {"event_id": "evt_held_b", "new": "test.other"})
        uow.prefetch(EVENT_TYPE, {"event_id": "evt_held_a"})
        return str(uow.execute(EVENT_TYPE, {"event_id": "evt_held_b"}).scalar_one())

    assert store.run(work) == "test.other"


@pytest.mark.postgres
def test_on_postgresql_a_prefetched_read_is_answered_from_its_round_trip(pg_store: Store) -> None:
    """The read is not run again: a change another transaction commits after the prefetch
    went out is not seen (at READ COMMITTED a fresh read would see it)."""
    pg_store.run(lambda uow: uow.execute(INSERT_EVENT, _event("evt_held_a")))

    def work(uow: UnitOfWork) -> tuple[str, str]:
        uow.prefetch(EVENT_TYPE, {"event_id": "evt_held_a"})
        uow.execute(TYPES, {}).all()  # the prefetch goes out with this read
        pg_store.run(lambda other: other.execute(RETYPE, {"event_id": "evt_held_a", "new": "x"}))
        served = uow.execute(EVENT_TYPE, {"event_id": "evt_held_a"}).scalar_one()
        return served, uow.execute(EVENT_TYPE, {"event_id": "evt_held_a"}).scalar_one()

    assert pg_store.run(work) == ("test.held", "x")


@pytest.mark.postgres
def test_on_postgresql_a_prefetched_read_with_a_list_is_answered_from_its_round_trip(
    pg_store: Store,
) -> None:
    """An expanding ``IN`` (a list parameter) is served too, to an equal list only."""
    pg_store.run(
        lambda uow: uow.execute(INSERT_EVENT, [_event("evt_held_a"), _event("evt_held_b")])
    )

    def work(uow: UnitOfWork) -> tuple[list[str], list[str], list[str]]:
        uow.prefetch(TYPES_IN, {"event_ids": ["evt_held_a", "evt_held_b"]})
        uow.execute(TYPES, {}).all()  # the prefetch goes out with this read
        pg_store.run(lambda other: other.execute(RETYPE, {"event_id": "evt_held_a", "new": "x"}))
        served = uow.execute(TYPES_IN, {"event_ids": ["evt_held_a", "evt_held_b"]}).scalars()
        other = uow.execute(TYPES_IN, {"event_ids": ["evt_held_a"]}).scalars()
        again = uow.execute(TYPES_IN, {"event_ids": ["evt_held_a", "evt_held_b"]}).scalars()
        return list(served), list(other), list(again)

    assert pg_store.run(work) == (["test.held", "test.held"], ["x"], ["x", "test.held"])


def test_a_units_held_release_that_fails_fails_its_group_and_undoes_no_unit_unseen(
    store: Store,
) -> None:
    """On PostgreSQL a grouped unit's own ``RELEASE`` goes out with the next unit's first
    round trip. Here it fails there: the first unit swallowed a database error, which left the
    transaction failed. The next unit's first statement then raises, and its rollback must
    not reach back to the first unit's savepoint (same name, one unit earlier), undo the
    first unit's write and let the group commit with the first unit answered as if it had
    succeeded. Every unit answered with success has its write stored; on SQLite (a failed
    statement leaves the transaction usable) both commit."""

    def swallows(uow: UnitOfWork) -> str:
        uow.write(INSERT_EVENT, _event("evt_held_first"))
        with pytest.raises(DBAPIError):
            uow.execute(text("SELECT * FROM no_such_table"))
        return "first"

    def second(uow: UnitOfWork) -> str:
        uow.execute(INSERT_EVENT, _event("evt_held_second"))
        return "second"

    units: list[_Unit[str]] = [_Unit(swallows), _Unit(second)]
    store._commit_group(units)  # one group of the two, in this order
    answered = {unit.value for unit in units if unit.error is None and not unit.retry_alone}
    stored = {event_id.removeprefix("evt_held_") for event_id in _types(store)}
    assert answered <= stored, f"answered {answered}, stored {stored}"
    if store.dialect == "sqlite":
        assert answered == {"first", "second"}
