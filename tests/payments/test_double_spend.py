"""The concurrent double spend: 32 payments released together against one daily budget.

A mandate allows ``L`` a day; 32 threads, each with its own transaction through
``Store.run(payments.pay…)``, wait at a barrier and then each pay ``a``. Exactly
``floor(L / a)`` must be approved, the others declined with the period budget as reason,
and the ledger must show exactly that much captured: the mandate row lock serializes them
on PostgreSQL, and ``BEGIN IMMEDIATE`` on SQLite.

The same race under 32 mandates of one user (no mandate lock in common) against the wallet
itself: only what the wallet holds is paid, the others are declined for insufficient funds,
and no debit is lost (the wallet's row lock, taken by the read that finds it).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from payment_support import World, budget, make_world
from paywarden.kernel.clock import FakeClock
from paywarden.services import mandates
from paywarden.services.payments import PaymentRecord
from paywarden.store import schema
from paywarden.store.unit_of_work import Store

ATTEMPTS = 32
DAILY_LIMIT = 10_000
AMOUNT = 700  # floor(10_000 / 700) = 14 approvals, 200 left that no payment fits
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0


@pytest.fixture
def world(store: Store, clock: FakeClock) -> World:
    return make_world(store, clock, funded=100_000)


def _released_together(world: World, mandate_ids: list[str]) -> list[PaymentRecord]:
    """One payment of ``AMOUNT`` under each of ``mandate_ids`` (repeats allowed), each on
    its own thread and transaction, all released at once by a barrier; none may fail."""
    barrier = threading.Barrier(len(mandate_ids), timeout=BARRIER_TIMEOUT_S)
    results: list[PaymentRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt(mandate_id: str) -> None:
        try:
            barrier.wait()
            record = world.pay(mandate_id, AMOUNT)
        except BaseException as error:
            with lock:
                errors.append(error)
            return
        with lock:
            results.append(record)

    threads = [threading.Thread(target=attempt, args=(m,)) for m in mandate_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a payment never finished"
    assert errors == []
    return results


def test_concurrent_payments_never_spend_past_the_daily_budget(world: World) -> None:
    daily = {
        "type": "paywarden.period_budget",
        "period": "daily",
        "currency": "usd",
        "max": DAILY_LIMIT,
    }
    mandate_id = world.mandate([daily])
    results = _released_together(world, [mandate_id] * ATTEMPTS)
    expected = DAILY_LIMIT // AMOUNT
    assert Counter(record.status for record in results) == {
        "succeeded": expected,
        "declined": ATTEMPTS - expected,
    }
    assert {r.reasons for r in results if r.status == "declined"} == {
        ("period_budget_exceeded:daily",)
    }
    assert world.balance(world.merchant) == expected * AMOUNT
    assert world.balance(str(world.user.id)) == 100_000 - expected * AMOUNT
    captured = world.store.run(
        lambda uow: uow.execute(
            select(func.coalesce(func.sum(schema.transfers.c.amount), 0)).where(
                schema.transfers.c.kind == "capture"
            )
        ).scalar_one(),
        read_only=True,
    )
    assert captured == expected * AMOUNT


def test_concurrent_payments_under_separate_mandates_never_overdraw_the_wallet(
    store: Store, clock: FakeClock
) -> None:
    funds = 10_000
    world = make_world(store, clock, funded=funds)
    mandate_ids = [world.mandate([budget(50_000)]) for _ in range(ATTEMPTS)]
    results = _released_together(world, mandate_ids)
    expected = funds // AMOUNT
    assert Counter(record.status for record in results) == {
        "succeeded": expected,
        "declined": ATTEMPTS - expected,
    }
    assert {r.reasons for r in results if r.status == "declined"} == {("insufficient_funds",)}
    assert world.balance(str(world.user.id)) == funds - expected * AMOUNT
    assert world.balance(world.merchant) == expected * AMOUNT


PAYERS = 16
PAYMENTS_PER_PAYER = 4


def test_no_payment_commits_after_the_revocation(store: Store, clock: FakeClock) -> None:
    """Payers race a revocation on a real clock: every payment stamped after the revocation
    instant (both are read under the mandate lock) is declined, and none before it is."""
    live = Store(store.engine)  # the system clock: instants order the lock holders
    world = make_world(live, clock, funded=100_000)
    mandate_id = world.mandate([{"type": "payment.budget", "currency": "usd", "max": 100_000}])
    barrier = threading.Barrier(PAYERS + 1, timeout=BARRIER_TIMEOUT_S)
    results: list[PaymentRecord] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def payer() -> None:
        try:
            barrier.wait()
            mine = [world.pay(mandate_id, 10) for _ in range(PAYMENTS_PER_PAYER)]
        except BaseException as error:
            with lock:
                errors.append(error)
            return
        with lock:
            results.extend(mine)

    def revoker() -> None:
        try:
            barrier.wait()
            world.run(lambda uow: mandates.revoke(uow, world.user, mandate_id))
        except BaseException as error:
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=payer) for _ in range(PAYERS)]
    threads.append(threading.Thread(target=revoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a payment never finished"
    assert errors == []

    view = world.run(lambda uow: mandates.get_mandate(uow, world.user, mandate_id))
    revoked_at = view.mandate.revoked_at
    assert revoked_at is not None and len(results) == PAYERS * PAYMENTS_PER_PAYER
    for record in results:
        if record.created_at > revoked_at:
            assert (record.status, record.reasons) == ("declined", ("mandate_not_active",))
        else:
            assert record.status == "succeeded", record
    succeeded = sum(1 for record in results if record.status == "succeeded")
    assert world.balance(world.merchant) == succeeded * 10
