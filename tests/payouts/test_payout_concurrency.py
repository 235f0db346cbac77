"""Concurrent payout requests never overdraw a merchant, on both backends: threads released
together ask for more than the balance holds, in fixed amounts and as "everything"; the
merchant account's lock admits them one at a time, so what they took never exceeds what
was there, and every refusal is ``insufficient_funds``."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from payout_support import Money, assert_ties_out
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Unprocessable
from paywarden.store.unit_of_work import Store

THREADS = 12
JOIN_TIMEOUT_S = 120.0


def _race(money: Money, work: list[Any]) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(len(work))
    results: list[Any] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(job: Any) -> None:
        barrier.wait(timeout=JOIN_TIMEOUT_S)
        try:
            outcome = job()
        except BaseException as error:  # collected and asserted below
            with lock:
                failures.append(error)
            return
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "payout requests still running"
    return results, failures


@pytest.mark.parametrize("amount", [1_500, None], ids=["fixed", "everything"])
def test_concurrent_payouts_cannot_overdraw(
    store: Store, clock: FakeClock, amount: int | None
) -> None:
    money = Money(store, clock)
    shop, payer = money.merchant(), money.payer()
    money.capture(payer, shop, 10_000)

    results, failures = _race(money, [lambda: money.payout(shop, amount) for _ in range(THREADS)])

    codes = Counter(getattr(error, "code", repr(error)) for error in failures)
    assert all(isinstance(error, Unprocessable) for error in failures), failures
    assert set(codes) <= {"insufficient_funds"}
    taken = sum(record.payout.amount for record in results)
    expected = 9_000 if amount else 10_000  # six of 1 500, or one payout of everything
    assert taken == expected
    assert len(results) == (6 if amount else 1)
    balance = money.balance(shop)
    assert balance.account.posted == 10_000 - taken >= 0
    assert balance.pending_payouts == taken
    money.process()
    assert_ties_out(money, [shop])
