"""Concurrent checkouts of the last items in stock never sell more than there is (threads,
on SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from commerce_support import Shop, make_shop
from paywarden.commerce.catalog import LineRequest
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Conflict
from paywarden.services.checkout import CheckoutRecord
from paywarden.store.unit_of_work import Store

BUYERS = 8
JOIN_TIMEOUT_S = 120


@pytest.mark.parametrize("sku,stock", [("beans", 3), ("mug", 1)])
def test_the_last_items_are_sold_once(store: Store, clock: FakeClock, sku: str, stock: int) -> None:
    shop: Shop = make_shop(store, clock, funded=1_000_000)
    mandate = shop.mandate(1_000_000)
    sessions = [shop.create(LineRequest(sku, 1)) for _ in range(BUYERS)]
    barrier = threading.Barrier(BUYERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def buy(session: CheckoutRecord) -> None:
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        try:
            done = shop.complete(session, mandate)
            outcome = done.status if done.status == "completed" else done.messages[0]["code"]
        except Conflict as error:
            outcome = error.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=buy, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    counts = Counter(outcomes)
    assert len(outcomes) == BUYERS
    assert counts["completed"] == stock, counts
    assert set(counts) <= {"completed", "out_of_stock"}, counts
    assert shop.stock(sku) == 0
    price = sessions[0].amount_total
    assert shop.world.balance(shop.world.merchant) == stock * price


def test_one_session_completed_at_once_is_paid_once(store: Store, clock: FakeClock) -> None:
    """The agent retries a completion with fresh idempotency keys while the first runs:
    exactly one payment, one order."""
    shop: Shop = make_shop(store, clock)
    mandate = shop.mandate()
    session = shop.create(LineRequest("beans", 1))
    barrier = threading.Barrier(BUYERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def complete() -> None:
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        try:
            outcome = shop.complete(session, mandate).status
        except Conflict as error:
            outcome = error.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=complete) for _ in range(BUYERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    counts = Counter(outcomes)
    assert counts == {"completed": 1, "checkout_session_completed": BUYERS - 1}, counts
    assert shop.stock("beans") == 2
    assert shop.world.balance(shop.world.merchant) == session.amount_total
