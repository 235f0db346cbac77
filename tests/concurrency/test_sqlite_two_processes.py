"""Two OS processes, several threads each, moving money in one SQLite file at once.

This is what SQLite's file locking (``BEGIN IMMEDIATE``, WAL, the busy timeout) has to get
right without any help from a server: the processes share nothing but the file. Each
thread makes random transfers through the service layer, some beyond any balance (refused
with ``insufficient_funds``), and reads the wallets' total in a read-only transaction in
between; every read must see the funded total and no negative balance. Afterwards the
totals are conserved, no balance is negative, postings sum to zero and match the balances,
and exactly the committed transfers are stored.

That the processes really run at once rests on a cross-process barrier: all threads of both
processes are released together into their first ``BEGIN IMMEDIATE``. How often the commit
order then switches between the processes is printed, not asserted: SQLite's busy handler
is not fair, and a run may let one process's writers through in long stretches (runs with
2 switches among ~150 commits were seen), so asserting interleaving would be flaky.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import random
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from ledger_checks import check_ledger
from paywarden.kernel.errors import Unprocessable
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import identity, ledger, platform
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork

USERS = 8
PROCESSES = 2
THREADS = 4
OPS_PER_THREAD = 30  # every 5th a read, every 10th (from the 2nd) an overdraw
READ_EVERY = 5
OVERDRAW_EVERY = 10
TRANSFER_AMOUNT_MAX = 3_000
RUN_DEADLINE_S = 90.0  # no op starts after this
BARRIER_TIMEOUT_S = 120.0  # both processes must import and open the database first
RESULT_TIMEOUT_S = 240.0
CARD = ledger.Card("4242424242424242", 12, 2099)


def _principal(user_id: str, key_id: str) -> Principal:
    return Principal(PrincipalType.USER, user_id, False, key_id, identity.API_VERSION)


def _wallet_totals(uow: UnitOfWork) -> tuple[int, int, int]:
    """(wallets, sum of posted, lowest available) in one statement: one snapshot."""
    a = schema.accounts
    row = uow.execute(
        select(func.count(), func.sum(a.c.posted), func.min(a.c.posted - a.c.pending_out)).where(
            a.c.kind == "user_wallet"
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _thread_ops(
    store: Store,
    users: list[tuple[str, str]],
    funded: int,
    tag: str,
    rng: random.Random,
    deadline: float,
    stats: dict[str, int],
    failures: list[str],
) -> None:
    for op in range(OPS_PER_THREAD):
        if time.monotonic() > deadline:
            return
        if op % READ_EVERY == READ_EVERY - 1:
            count, total, lowest = store.run(_wallet_totals, read_only=True)
            stats["reads"] += 1
            if (count, total) != (USERS, funded) or lowest < 0:
                failures.append(f"{tag} read {count} wallets, total {total}, lowest {lowest}")
            continue
        (payer_id, key_id), (payee_id, _key) = rng.sample(users, 2)
        overdraw = op % OVERDRAW_EVERY == 1
        amount = funded + rng.randint(1, 1_000) if overdraw else rng.randint(1, TRANSFER_AMOUNT_MAX)
        principal = _principal(payer_id, key_id)
        try:
            store.run(
                lambda uow, p=principal, to=payee_id, n=amount: ledger.transfer(
                    uow, p, destination=to, amount=n, currency="usd", description=tag
                )
            )
        except Unprocessable as error:
            if error.code != "insufficient_funds":
                raise
            stats["refused"] += 1
            stats["overdraws_refused"] += overdraw
        else:
            if overdraw:
                failures.append(f"{tag} overdraw of {amount} was committed")
            stats["committed"] += 1


def _process_main(
    url: str,
    users: list[tuple[str, str]],
    funded: int,
    index: int,
    seed: int,
    barrier: Any,
    results: Any,
) -> None:
    """One OS process: THREADS threads on their own Store; puts its figures on ``results``."""
    engine = make_engine(url)
    store = Store(engine)
    lock = threading.Lock()
    totals = {"committed": 0, "refused": 0, "overdraws_refused": 0, "reads": 0}
    failures: list[str] = []

    def run(thread: int) -> None:
        stats = dict.fromkeys(totals, 0)
        found: list[str] = []
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
            deadline = time.monotonic() + RUN_DEADLINE_S
            rng = random.Random(seed * 1_000 + index * 100 + thread)
            _thread_ops(store, users, funded, f"p{index}t{thread}", rng, deadline, stats, found)
        except BaseException:
            barrier.abort()
            found.append(f"p{index}t{thread} raised:\n{traceback.format_exc()}")
        with lock:
            for name, value in stats.items():
                totals[name] += value
            failures.extend(found)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RESULT_TIMEOUT_S)
    if any(thread.is_alive() for thread in threads):
        failures.append(f"process {index}: threads still running")
    engine.dispose()
    results.put({"index": index, "pid": os.getpid(), **totals, "failures": failures})


def _setup(url: str, seed: int) -> tuple[list[tuple[str, str]], int]:
    """Migrate, then create and fund the users through the service layer."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        store = Store(engine)
        secret = store.run(platform.instance_secret)
        rng = random.Random(seed)
        users, funded = [], 0
        for number in range(USERS):
            user, key = store.run(
                lambda uow, n=number: identity.create_user(
                    uow, email=f"u{n}@example.com", name=f"User {n}", currency="usd", livemode=False
                )
            )
            amount = rng.randint(5_000, 20_000)
            payer = _principal(user.id, key.id)
            top = store.run(
                lambda uow, p=payer, n=amount: ledger.top_up(
                    uow, p, amount=n, currency="usd", card=CARD, token_key=secret
                )
            )
            assert top.status == "succeeded"
            users.append((user.id, key.id))
            funded += amount
        return users, funded
    finally:
        engine.dispose()


def _run_processes(url: str, users: list[tuple[str, str]], funded: int, seed: int) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES * THREADS)
    results = context.Queue()
    processes = [
        context.Process(
            target=_process_main,
            args=(url, users, funded, index, seed, barrier, results),
            name=f"sqlite-writer-{index}",
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
                break  # every process is gone and nothing more will come
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
    return sorted(collected, key=lambda result: result["index"])


def _check_ledger(url: str, funded: int, committed: int) -> int:
    """The SQL checks; returns how often the commit order switches between processes."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            check_ledger(
                connection,
                is_wallet=lambda row: row.kind == "user_wallet",
                wallet_ok=lambda row: row.posted - row.pending_out >= 0,
                wallets=USERS,
                funded=funded,
                committed=committed,
            )
            # rowid follows insertion, and BEGIN IMMEDIATE serialises writers: commit order.
            order = connection.execute(
                text("SELECT description FROM transfers WHERE kind = 'transfer' ORDER BY rowid")
            ).scalars()
            process_of = [description.split("t")[0] for description in order]
            switches = sum(1 for x, y in itertools.pairwise(process_of) if x != y)
            return switches
    finally:
        engine.dispose()


def test_two_processes_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    seed = int(os.environ.get("PAYWARDEN_TEST_SEED", random.randrange(1_000_000)))
    users, funded = _setup(url, seed)

    started = time.monotonic()
    results = _run_processes(url, users, funded, seed)
    elapsed = time.monotonic() - started

    failures = [failure for result in results for failure in result["failures"]]
    assert not failures, "\n".join(failures[:10])
    committed = sum(result["committed"] for result in results)
    switches = _check_ledger(url, funded, committed)
    per_process = ", ".join(
        f"pid {r['pid']}: {r['committed']} committed, {r['refused']} refused, {r['reads']} reads"
        for r in results
    )
    print(
        f"\n[sqlite 2 processes x {THREADS} threads] seed={seed} funded={funded}: {per_process}; "
        f"commit order switches process {switches} times, {elapsed:.1f} s"
    )
    assert all(result["committed"] > 0 for result in results)
    assert all(result["overdraws_refused"] > 0 for result in results)
    assert all(result["reads"] > 0 for result in results)
