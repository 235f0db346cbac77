"""The double spend from two OS processes on one SQLite file, through the service layer.

The processes share nothing but the file. Each runs 16 threads, each with its own
transaction through ``Store.run(payments.pay…)``; all 32 wait at one cross-process barrier
and count themselves in flight (a shared counter) before it, so the peak proves at least 16
payments outstanding at once. The mandate allows ``L`` a day and every payment is ``a``:
exactly ``floor(L / a)`` are approved across both processes, the rest declined on the daily
budget, and the file shows exactly that much captured and used (``BEGIN IMMEDIATE``
serializes the writers of both processes).
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from proof_support import World, captured, daily_budget, grant, make_world, pay
from sqlalchemy import select

from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.unit_of_work import Store

PROCESSES = 2
THREADS = 16
ATTEMPTS = PROCESSES * THREADS
IN_FLIGHT_MIN = 16
DAILY_LIMIT = 10_000
AMOUNT = 700  # floor(10_000 / 700) = 14 approvals, 200 left that no payment fits
FUNDED = 100_000
BARRIER_TIMEOUT_S = 120.0  # both processes must import and open the database first
RESULT_TIMEOUT_S = 180.0


def _process_main(
    url: str,
    world: World,
    mandate_id: str,
    index: int,
    barrier: Any,
    counters: Any,
    results: Any,
) -> None:
    """One OS process: THREADS payers on one Store; puts (statuses, reasons, failures)."""
    engine = make_engine(url)
    store = Store(engine)
    lock = threading.Lock()
    outcomes: list[tuple[str, tuple[str, ...]]] = []
    failures: list[str] = []

    def payer() -> None:
        try:
            with counters.get_lock():
                counters[0] += 1  # in flight
                counters[1] = max(counters[1], counters[0])  # peak
            try:
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
                record = pay(store, world, mandate_id, AMOUNT)
            finally:
                with counters.get_lock():
                    counters[0] -= 1
            with lock:
                outcomes.append((record.status, record.reasons))
        except BaseException:
            barrier.abort()
            with lock:
                failures.append(f"process {index} raised:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=payer, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RESULT_TIMEOUT_S)
    if any(thread.is_alive() for thread in threads):
        failures.append(f"process {index}: threads still running")
    engine.dispose()
    results.put({"index": index, "outcomes": outcomes, "failures": failures})


def _run(url: str, world: World, mandate_id: str) -> tuple[list[Any], int]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(ATTEMPTS)
    counters = context.Array("i", [0, 0])
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_main,
            args=(url, world, mandate_id, index, barrier, counters, results),
            name=f"sqlite-payer-{index}",
        )
        for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    collected: list[Any] = []
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    try:
        while len(collected) < PROCESSES and time.monotonic() < deadline:
            if not any(p.is_alive() for p in processes) and results.empty():
                break
            try:
                collected.append(results.get(timeout=1.0))
            except queue.Empty:
                continue
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
        results.close()
        results.join_thread()
    codes = [process.exitcode for process in processes]
    assert len(collected) == PROCESSES, f"results from {len(collected)} processes, exit {codes}"
    assert codes == [0] * PROCESSES, codes
    return sorted(collected, key=lambda result: result["index"]), int(counters[1])


def test_two_processes_never_spend_past_the_daily_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        store = Store(engine)
        world = make_world(store, funded=FUNDED)
        mandate_id = grant(store, world, [daily_budget(DAILY_LIMIT)])
    finally:
        engine.dispose()

    started = time.monotonic()
    results, peak = _run(url, world, mandate_id)
    elapsed = time.monotonic() - started
    failures = [failure for result in results for failure in result["failures"]]
    assert not failures, "\n".join(failures[:5])
    assert peak >= IN_FLIGHT_MIN, peak

    outcomes = [outcome for result in results for outcome in result["outcomes"]]
    assert len(outcomes) == ATTEMPTS
    expected = DAILY_LIMIT // AMOUNT
    statuses = Counter(status for status, _reasons in outcomes)
    assert statuses == {"succeeded": expected, "declined": ATTEMPTS - expected}, statuses
    assert {reasons for status, reasons in outcomes if status == "declined"} == {
        ("period_budget_exceeded:daily",)
    }
    engine = make_engine(url)
    try:
        store = Store(engine)
        total, posted = store.run(lambda uow: captured(uow, world.merchant_id), read_only=True)
        used = store.run(
            lambda uow: uow.execute(
                select(mandate_usage.c.amount, mandate_usage.c.count).where(
                    mandate_usage.c.mandate_id == mandate_id,
                    mandate_usage.c.period.like("daily:%"),
                )
            ).one(),
            read_only=True,
        )
    finally:
        engine.dispose()
    assert total == posted == expected * AMOUNT
    assert (int(used.amount), int(used.count)) == (expected * AMOUNT, expected)
    per_process = ", ".join(
        f"process {r['index']}: "
        f"{sum(1 for status, _ in r['outcomes'] if status == 'succeeded')} succeeded"
        for r in results
    )
    print(
        f"\n[sqlite 2 processes x {THREADS} threads] L={DAILY_LIMIT} a={AMOUNT}: "
        f"peak in flight {peak}, succeeded {statuses['succeeded']} ({per_process}), "
        f"declined {statuses['declined']}; captured {total} = floor(L/a)*a = "
        f"{expected * AMOUNT}; {elapsed:.1f} s"
    )
