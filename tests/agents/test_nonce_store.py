"""The nonce store on its own, on SQLite and PostgreSQL: a nonce is taken once per key until
it expires, and expired nonces are purged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from paywarden.api.app import drain
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import AuthenticationFailed
from paywarden.services import agents
from paywarden.store.tables_agents import request_nonces
from paywarden.store.unit_of_work import Store, UnitOfWork


def remember(store: Store, keyid: str, nonce: str, lifetime: timedelta) -> None:
    store.run(lambda uow: agents.remember_nonce(uow, keyid, nonce, uow.clock.now() + lifetime))


def stored(store: Store) -> int:
    query = select(func.count()).select_from(request_nonces)
    return int(store.run(lambda uow: uow.execute(query).scalar_one(), read_only=True))


def test_a_nonce_is_taken_once_per_key(store: Store) -> None:
    remember(store, "kid-a", "n1", timedelta(minutes=5))
    remember(store, "kid-b", "n1", timedelta(minutes=5))
    with pytest.raises(AuthenticationFailed) as info:
        remember(store, "kid-a", "n1", timedelta(minutes=5))
    assert (info.value.code, info.value.status) == ("nonce_replayed", 401)
    assert stored(store) == 2


def test_an_expired_nonce_may_be_used_again_and_waits_for_the_purge(
    store: Store, clock: FakeClock
) -> None:
    remember(store, "kid-a", "old", timedelta(minutes=5))
    remember(store, "kid-b", "other", timedelta(minutes=5))
    clock.advance(timedelta(minutes=5))
    with pytest.raises(AuthenticationFailed) as info:  # it expires at now: still remembered
        remember(store, "kid-a", "old", timedelta(minutes=5))
    assert info.value.code == "nonce_replayed"
    clock.advance(timedelta(seconds=1))
    remember(store, "kid-a", "new", timedelta(minutes=5))
    assert stored(store) == 3  # signing again drops nothing: expired rows wait for the purge
    remember(store, "kid-a", "old", timedelta(minutes=5))  # its signature can no longer verify
    assert stored(store) == 3  # the expired row was taken over, not added to
    with pytest.raises(AuthenticationFailed):  # and it is remembered again, until then
        remember(store, "kid-a", "old", timedelta(minutes=5))
    assert store.run(agents.purge_expired_nonces) == 1  # kid-b's


def test_the_purge_forgets_expired_nonces_in_bounded_batches(
    store: Store, clock: FakeClock
) -> None:
    for number in range(5):
        remember(store, f"kid-{number}", "n", timedelta(minutes=1))
    remember(store, "kid-live", "n", timedelta(hours=1))
    clock.advance(timedelta(minutes=2))
    assert store.run(lambda uow: agents.purge_expired_nonces(uow, batch_size_max=3)) == 3
    assert store.run(agents.purge_expired_nonces) == 2
    assert store.run(agents.purge_expired_nonces) == 0
    assert stored(store) == 1


def test_a_maintenance_round_drains_every_expired_nonce_batch_by_batch(
    store: Store, clock: FakeClock
) -> None:
    for number in range(7):
        remember(store, "kid-a", f"n{number}", timedelta(minutes=1))
    remember(store, "kid-live", "n", timedelta(hours=1))
    clock.advance(timedelta(minutes=2))
    batches: list[int] = []

    def purge(uow: UnitOfWork) -> int:
        batches.append(agents.purge_expired_nonces(uow, batch_size_max=3))
        return batches[-1]

    assert drain(store, purge, 3) == 7
    assert batches == [3, 3, 1]  # one transaction each; a short batch ends the round
    assert stored(store) == 1
