"""Database faults on PostgreSQL: conflicts are retried, outages answered with 503.

1. Real deadlocks (40P01) and serialization failures (40001), provoked between two
   ``Store.run`` calls lined up with a barrier (tests/db_fault_support.py), are retried with
   a jittered backoff: the work completes exactly once, one extra attempt, one backoff
   sleep (the sleep is recorded, not slept). The Store itself runs at READ COMMITTED, where
   the same conflicting increments queue on the row lock and both apply without a retry.
2. The real ``paywarden serve`` on a private cluster (tests/pg_cluster_support.py) under
   concurrent signed agent payments, while the test restarts PostgreSQL (fast and
   immediate shutdowns, alternately) with requests in flight. Clients retry with the same
   Idempotency-Key, re-signed, until they get a definite answer. During the outages they
   see 503 or a refused connection, never another 5xx; afterwards every acknowledged
   payment is returned by ``GET /v1/payments/{id}`` and by a replay of its key, none is
   applied twice, postings sum to zero, the merchant's and the user's balances equal the sum
   of the acknowledged payments, the audit chain verifies. ``--long`` restarts 16 times.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from test_crash_safety import FUNDED, _launched, _world

from conftest import fresh_database
from crash_support import Ack, Payer, Payers, check_invariants
from db_fault_support import Duel, bump, make_rows, row_values
from figures_support import report
from live_server import prepare
from payment_support import signed_headers
from paywarden.store import schema, unit_of_work
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import RETRY_BACKOFF_S_BASE, Store, UnitOfWork
from paywarden.trust.keys import ed25519_private_key
from pg_cluster_support import PgCluster, private_cluster

pytestmark = pytest.mark.postgres

RESTARTS = 4
RESTARTS_LONG = 16
OUTAGE_TIMEOUT_S = 30.0


# --- 1. conflicts are retried -------------------------------------------------------------


@pytest.fixture
def fault_store(tmp_path: Path) -> Iterator[Store]:
    """A Store on a fresh database of the shared server holding only ``fault_rows``."""
    with fresh_database("postgres", tmp_path) as url:
        engine = make_engine(url)
        store = Store(engine)
        make_rows(store, ["a", "b"])
        yield store
        engine.dispose()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff sleeps Store.run asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(f"{unit_of_work.__name__}.time.sleep", recorded.append)
    return recorded


def _select(name: str) -> Callable[[UnitOfWork], None]:
    def step(uow: UnitOfWork) -> None:
        uow.execute(text("SELECT value FROM fault_rows WHERE name = :n"), {"n": name})

    return step


def _bump(name: str) -> Callable[[UnitOfWork], None]:
    return lambda uow: bump(uow, name)


def _isolation(level: str) -> Callable[[UnitOfWork], None]:
    return lambda uow: uow.execute(text(f"SET TRANSACTION ISOLATION LEVEL {level}"))


def _one_retry_with_backoff(duel: Duel, sleeps: list[float]) -> None:
    assert not duel.errors, duel.errors
    assert sorted(duel.attempts.values()) == [1, 2], f"attempts: {dict(duel.attempts)}"
    assert len(sleeps) == 1, f"backoff sleeps: {sleeps}"
    assert 0 <= sleeps[0] <= RETRY_BACKOFF_S_BASE * 2, sleeps  # the first backoff's ceiling


def test_a_real_deadlock_is_retried_with_backoff_and_applied_once(
    fault_store: Store, sleeps: list[float]
) -> None:
    duel = Duel(fault_store, {"ab": [_bump("a"), _bump("b")], "ba": [_bump("b"), _bump("a")]})
    duel.run()
    _one_retry_with_backoff(duel, sleeps)
    assert row_values(fault_store) == {"a": 2, "b": 2}  # each worker's work, exactly once


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_a_real_serialization_failure_is_retried_with_backoff_and_applied_once(
    fault_store: Store, sleeps: list[float], level: str
) -> None:
    steps = [_select("a"), _bump("a")]  # the snapshot is taken before the barrier
    duel = Duel(fault_store, {"one": steps, "two": steps}, setup=_isolation(level))
    duel.run()
    _one_retry_with_backoff(duel, sleeps)
    assert row_values(fault_store) == {"a": 2, "b": 0}


def test_at_the_stores_own_read_committed_a_conflicting_update_waits_instead(
    fault_store: Store, sleeps: list[float]
) -> None:
    """What the Store produces on its own: READ COMMITTED re-reads the locked row after the
    other commits, so both increments apply, neither is lost, nothing is retried."""
    isolation = fault_store.run(
        lambda uow: uow.execute(text("SHOW transaction_isolation")).scalar_one(), read_only=True
    )
    assert isolation == "read committed"
    steps = [_select("a"), _bump("a")]
    duel = Duel(fault_store, {"one": steps, "two": steps})
    duel.run()
    assert not duel.errors, duel.errors
    assert dict(duel.attempts) == {"one": 1, "two": 1}
    assert sleeps == []
    assert row_values(fault_store) == {"a": 2, "b": 0}


# --- 2. a database restart mid-load ----------------------------------------------------------


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = OUTAGE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _replay(client: httpx.Client, payer: Payer, ack: Ack) -> httpx.Response:
    """The acknowledged request again: same body, same Idempotency-Key, a fresh signature."""
    body = {"mandate": payer.mandate_id, "merchant": payer.merchant_id, "amount": ack.amount}
    raw = json.dumps(body | {"currency": "usd"}).encode()
    headers = signed_headers(
        ed25519_private_key(payer.agent_seed), "POST", "/v1/payments", created=datetime.now(UTC),
        body=raw, authority=str(client.base_url).removeprefix("http://").rstrip("/"),
    )  # fmt: skip
    headers |= {"Content-Type": "application/json", "Idempotency-Key": ack.key}
    return client.post("/v1/payments", content=raw, headers=headers)


def _outcomes_are_there_to_look_up(
    base_url: str, admin_key: str, payers: list[Payer], acks: list[Ack]
) -> None:
    by_mandate = {payer.mandate_id: payer for payer in payers}
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        for ack in acks:
            got = client.get(
                f"/v1/payments/{ack.payment_id}", headers={"Authorization": f"Bearer {admin_key}"}
            )
            assert got.status_code == 200, got.text
            assert (got.json()["status"], got.json()["amount"]) == (ack.status, ack.amount)
            again = _replay(client, by_mandate[ack.mandate_id], ack)
            assert again.status_code == ack.status_code, again.text
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.json()["id"] == ack.payment_id, "a replay made a second payment"


def _balances_match_the_acknowledged(
    database_url: str, payers: list[Payer], acks: list[Ack]
) -> int:
    """The merchant holds exactly the acknowledged payments; the user lost exactly them."""
    paid = sum(ack.amount for ack in acks if ack.status == "succeeded")
    engine = make_engine(database_url)
    try:
        store = Store(engine)

        def posted(owner: Any) -> int:
            a = schema.accounts
            query = select(func.coalesce(func.sum(a.c.posted), 0)).where(a.c.owner_id == owner)
            return int(store.run(lambda uow: uow.execute(query).scalar_one(), read_only=True))

        mandates = schema.metadata.tables["mandates"]
        user_id = store.run(
            lambda uow: uow.execute(
                select(mandates.c.user_id).where(mandates.c.id == payers[0].mandate_id)
            ).scalar_one(),
            read_only=True,
        )
        assert posted(payers[0].merchant_id) == paid, "merchant balance != acknowledged"
        assert posted(user_id) == FUNDED - paid, "user balance != funded - acknowledged"
    finally:
        engine.dispose()
    return paid


def _restart_under_load(tmp_path: Path, restarts: int) -> None:
    with private_cluster() as cluster:
        database_url = cluster.create_database("paywarden_db_faults")
        admin_key = prepare(database_url)
        with _launched(tmp_path, database_url) as launcher:
            launcher.start()
            world = _world(launcher.base_url, admin_key)
            payers = Payers(launcher.base_url, world, tmp_path / "acks", 17)
            payers.start()
            try:
                in_flight, immediate = _restarts(cluster, payers, restarts)
                payers.finish()
                assert not payers.failures, payers.failures[:3]
                _outcomes_are_there_to_look_up(launcher.base_url, admin_key, world, payers.acks)
            finally:
                payers.abandon()
            launcher.kill()
        final = check_invariants(database_url, payers.acks, payers.keys_sent, final=True)
        paid = _balances_match_the_acknowledged(database_url, world, payers.acks)
    reasons: Counter[str] = payers.retry_reasons
    wrong = {r: n for r, n in reasons.items() if r.startswith("5") and not r.startswith("503")}
    assert not wrong, f"5xx other than 503 during the outages: {wrong}"
    unavailable = sum(n for r, n in reasons.items() if r.startswith("503"))
    report(
        f"database faults [postgres private cluster :{cluster.port}]: {restarts} restarts "
        f"({immediate} immediate, {restarts - immediate} fast) under load; in "
        f"flight at each: {in_flight}; clients saw {unavailable} 503s and "
        f"{reasons['no connection']} refused connections ({dict(reasons)}); {final.acked} "
        f"payments acknowledged ({final.succeeded} succeeded, {paid} minor units), each "
        f"looked up by GET and by its Idempotency-Key"
    )
    assert unavailable + reasons["no connection"] > 0, "no client ever met an outage"
    assert final.acked >= restarts, "too little load to prove anything"


def _restarts(cluster: PgCluster, payers: Payers, restarts: int) -> tuple[list[int], int]:
    """Stop PostgreSQL (fast, then immediate, alternately) with requests in flight, keep it
    down until a client has met the outage, start it, and wait for payments to flow again."""
    in_flight: list[int] = []
    for number in range(restarts):
        payers.wait_for_acks(len(payers.acks) + len(payers.payers))
        _wait(lambda: payers.in_flight.current > 0, "a request in flight")
        in_flight.append(payers.in_flight.current)
        met = payers.retries

        def outage_met(met: int = met) -> bool:
            return payers.retries > met

        cluster.crash() if number % 2 else cluster.stop()
        _wait(outage_met, "a client to meet the outage")
        cluster.start()
        assert not payers.failures, payers.failures[:3]
    return in_flight, cluster.crashes


@pytest.mark.timeout(300)  # about a minute on a quiet machine
def test_postgres_restarts_mid_load_leave_definite_outcomes(tmp_path: Path) -> None:
    _restart_under_load(tmp_path, RESTARTS)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_postgres_restarts_mid_load_leave_definite_outcomes_long(tmp_path: Path) -> None:
    _restart_under_load(tmp_path, RESTARTS_LONG)
