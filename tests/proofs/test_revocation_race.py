"""Revocation wins, 20 times over: payers race a revocation, then the commit order is read back.

Each run grants a fresh mandate; payer threads pay under it (each stops after its first
``mandate_not_active`` or after ``PAYMENTS_PER_PAYER_MAX``) while a revoker thread revokes
once a random number of payments have returned.

The commit order comes from the outbox: ``events.sequence`` (an autoincrement key; a
PostgreSQL sequence with the default cache of 1, and SQLite's rowid). Both a payment
(``payment.succeeded``/``payment.declined``) and the revocation (``mandate.revoked``) emit
their event *after* locking the mandate row and before committing, and the lock is held to
the commit. So for two transactions on one mandate, the one that locked first takes its
sequence number and commits before the other can take its own: sequence order is commit
order for everything under one mandate. (The mandate's ``revision`` cannot serve: payments
do not change it. The audit log's sequences are per partition, not global.)

Asserted per run: exactly one ``mandate.revoked``; every payment whose marker is below it
succeeded; every payment above it was declined ``mandate_not_active`` and moved nothing;
the merchant received exactly the payments before. Over all runs some payments committed
before and some were refused after (not asserted per run: a run may revoke after the last
payment or before the first).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from proof_support import World, captured, grant, make_world, pay
from sqlalchemy import func, select

from conftest import create_pg_database, drop_pg_database, sqlite_url
from paywarden.services import mandates
from paywarden.services.payments import PaymentRecord
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork

RUNS = 20
PAYERS = 6
PAYMENTS_PER_PAYER_MAX = 6
AMOUNT = 10
REVOKE_AFTER = (1, 12)  # the revoker waits for this many returned payments (random in range)
BARRIER_TIMEOUT_S = 30.0
JOIN_TIMEOUT_S = 60.0
PAYMENT_EVENTS = ("payment.succeeded", "payment.declined", "payment.requires_confirmation")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A real-clock store on a fresh, migrated database."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else create_pg_database()
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        yield Store(engine)
    finally:
        engine.dispose()
        if request.param != "sqlite":
            drop_pg_database(url)


def _race(store: Store, world: World, mandate_id: str, revoke_after: int) -> list[PaymentRecord]:
    barrier = threading.Barrier(PAYERS + 1, timeout=BARRIER_TIMEOUT_S)
    returned = threading.Semaphore(0)
    lock = threading.Lock()
    results: list[PaymentRecord] = []
    errors: list[BaseException] = []

    def payer() -> None:
        try:
            barrier.wait()
            for _ in range(PAYMENTS_PER_PAYER_MAX):
                record = pay(store, world, mandate_id, AMOUNT)
                with lock:
                    results.append(record)
                returned.release()
                if record.status != "succeeded":
                    return
        except BaseException as error:
            barrier.abort()
            with lock:
                errors.append(error)

    def revoker() -> None:
        try:
            barrier.wait()
            deadline = time.monotonic() + JOIN_TIMEOUT_S / 2
            for _ in range(revoke_after):
                if not returned.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break  # every payer finished first: revoke anyway
            store.run(lambda uow: mandates.revoke(uow, world.user, mandate_id))
        except BaseException as error:
            barrier.abort()
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=payer) for _ in range(PAYERS)]
    threads.append(threading.Thread(target=revoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a payment never finished"
    assert errors == [], errors
    return results


def _markers(uow: UnitOfWork, since: int, mandate_id: str) -> tuple[int, dict[str, int]]:
    """(the revocation's marker, each payment's marker) under ``mandate_id``."""
    e = schema.events
    rows = uow.execute(
        select(e.c.sequence, e.c.type, e.c.data)
        .where(e.c.sequence > since, e.c.type.in_([*PAYMENT_EVENTS, "mandate.revoked"]))
        .order_by(e.c.sequence)
    )
    revoked: list[int] = []
    paid: dict[str, int] = {}
    for row in rows:
        body = row.data["object"]
        if row.type == "mandate.revoked" and body["id"] == mandate_id:
            revoked.append(int(row.sequence))
        elif row.type in PAYMENT_EVENTS and body["mandate"] == mandate_id:
            paid[body["id"]] = int(row.sequence)
    assert len(revoked) == 1, revoked
    return revoked[0], paid


def _last_sequence(uow: UnitOfWork) -> int:
    return int(uow.execute(select(func.coalesce(func.max(schema.events.c.sequence), 0))).scalar())


def test_no_payment_commits_after_the_revocation_20_runs(store: Store) -> None:
    world = make_world(store, funded=1_000_000)
    rng = random.Random()
    totals = {"before": 0, "after": 0}
    started = time.monotonic()
    lines = []
    for run in range(1, RUNS + 1):
        mandate_id = grant(
            store, world, [{"type": "payment.budget", "currency": "usd", "max": 1_000_000}]
        )
        since = store.run(_last_sequence, read_only=True)
        paid_before, _ = store.run(lambda uow: captured(uow, world.merchant_id), read_only=True)
        revoke_after = rng.randint(*REVOKE_AFTER)

        results = _race(store, world, mandate_id, revoke_after)

        revoked_at, markers = store.run(
            lambda uow, m=mandate_id, s=since: _markers(uow, s, m), read_only=True
        )
        assert set(markers) == {record.id for record in results}
        before = [r for r in results if markers[r.id] < revoked_at]
        after = [r for r in results if markers[r.id] > revoked_at]
        assert len(before) + len(after) == len(results)
        assert all(r.status == "succeeded" and r.transfer_id for r in before), before
        assert all(
            (r.status, r.reasons, r.transfer_id) == ("declined", ("mandate_not_active",), None)
            for r in after
        ), after
        paid_now, posted = store.run(lambda uow: captured(uow, world.merchant_id), read_only=True)
        assert paid_now - paid_before == len(before) * AMOUNT
        assert posted == paid_now
        totals["before"] += len(before)
        totals["after"] += len(after)
        lines.append(
            f"run {run:2}: revoke after {revoke_after:2} returned -> "
            f"{len(before):2} committed before, {len(after):2} refused after"
        )
    elapsed = time.monotonic() - started
    print(f"\n[revocation race, {store.dialect}] " + "\n  ".join(["", *lines]))
    print(
        f"  total: {totals['before']} committed before, {totals['after']} refused after, "
        f"{RUNS} runs in {elapsed:.1f} s"
    )
    assert totals["before"] > 0 and totals["after"] > 0, totals
