"""The bank test: many clients move money between wallets of the real server at once, and
every read, taken as one consistent snapshot, sees the money neither created nor lost.

Eight wallets are funded by card top-ups. Sixteen threads, each with its own HTTP client,
release together from a barrier and make random transfers between the wallets (some far
beyond any balance, which the server must refuse with 422 ``insufficient_funds``), reading
all eight balances in one admin request in between. Every read must show the funded total
and no negative balance; afterwards the database must show postings summing to zero, each
balance equal to the sum of its postings, and exactly one transfer per 201 answered.
"""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from typing import Any

import httpx

from ledger_checks import check_ledger

USERS = 8
WORKERS = 16
OPS_PER_WORKER = 24  # every 4th a read, every 8th (from the 2nd) an overdraw
READ_EVERY = 4
OVERDRAW_EVERY = 8
TRANSFER_AMOUNT_MAX = 3_000
RUN_DEADLINE_S = 90.0  # no op starts after this; each request is bounded by its timeout
JOIN_GRACE_S = 45.0  # one request timeout (30 s) plus margin
BARRIER_TIMEOUT_S = 60.0


class Bank:
    """What the workers share: the wallets, the counters and the failures they found."""

    def __init__(self, server: Any, users: list[tuple[dict[str, Any], str]], funded: int) -> None:
        self.server = server
        self.users = users
        self.wallet_ids = {user["wallets"][0]["id"] for user, _key in users}
        self.funded = funded
        self.lock = threading.Lock()
        self.committed = 0
        self.refused = 0
        self.overdraws_refused = 0
        self.reads = 0
        self.failures: list[str] = []

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def check_transfer(self, response: httpx.Response, amount: int, overdraw: bool) -> None:
        if response.status_code == 201:
            body = response.json()
            if overdraw or body.get("amount") != amount or body.get("object") != "transfer":
                self.fail(f"transfer of {amount} answered 201 with {response.text}")
                return
            with self.lock:
                self.committed += 1
            return
        code = _error_code(response)
        if response.status_code == 422 and code == "insufficient_funds":
            with self.lock:
                self.refused += 1
                self.overdraws_refused += overdraw
            return
        self.fail(f"transfer of {amount}: {response.status_code} {response.text}")

    def check_read(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            self.fail(f"balance read: {response.status_code} {response.text}")
            return
        body = response.json()
        wallets = [a for a in body["data"] if a["kind"] == "user_wallet"]
        ids = {a["id"] for a in wallets}
        total = sum(a["balance"]["posted"] for a in wallets)
        negative = [a for a in wallets if min(a["balance"].values()) < 0]
        if body["has_more"] or ids != self.wallet_ids:
            self.fail(f"the read did not return exactly the {USERS} wallets: {body}")
        elif total != self.funded or negative:
            balances = [a["balance"] for a in wallets]
            self.fail(f"read total {total} != funded {self.funded}, or negative: {balances}")
        with self.lock:
            self.reads += 1


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _worker(
    bank: Bank,
    index: int,
    seed: int,
    barrier: threading.Barrier,
    in_flight: Any,
    deadline: float,
) -> None:
    rng = random.Random(seed * 1_000 + index)
    server = bank.server
    read_headers = server.headers(server.admin_key, idempotency_key=None)
    with server.client() as client:
        for op in range(OPS_PER_WORKER):
            if time.monotonic() > deadline:
                break
            if op % READ_EVERY == READ_EVERY - 1:
                request: dict[str, Any] = {
                    "method": "GET",
                    "url": "/v1/accounts",
                    "params": {"limit": 100},
                    "headers": read_headers,
                }
            else:
                payer, payee = rng.sample(bank.users, 2)
                overdraw = op % OVERDRAW_EVERY == 1
                amount = (
                    bank.funded + rng.randint(1, 1_000)
                    if overdraw
                    else rng.randint(1, TRANSFER_AMOUNT_MAX)
                )
                request = {
                    "method": "POST",
                    "url": "/v1/transfers",
                    "json": {"destination": payee[0]["id"], "amount": amount, "currency": "usd"},
                    "headers": server.headers(payer[1]),
                }
            # Counted in flight before the barrier on the first op: see InFlight.
            in_flight.enter()
            try:
                if op == 0:
                    barrier.wait(timeout=BARRIER_TIMEOUT_S)
                response = client.request(**request)
            finally:
                in_flight.leave()
            if request["method"] == "GET":
                bank.check_read(response)
            else:
                bank.check_transfer(response, amount, overdraw)


def _run_workers(bank: Bank, seed: int, in_flight: Any) -> None:
    barrier = threading.Barrier(WORKERS)
    deadline = time.monotonic() + RUN_DEADLINE_S

    def run(index: int) -> None:
        try:
            _worker(bank, index, seed, barrier, in_flight, deadline)
        except BaseException:
            barrier.abort()  # release the others at once rather than at the timeout
            bank.fail(f"worker {index} raised:\n{traceback.format_exc()}")

    threads = [
        threading.Thread(target=run, args=(index,), name=f"bank-{index}", daemon=True)
        for index in range(WORKERS)
    ]
    for thread in threads:
        thread.start()
    join_deadline = deadline + JOIN_GRACE_S
    for thread in threads:
        thread.join(timeout=max(0.0, join_deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"workers still running after the deadline: {stuck}"


def _check_ledger_in_sql(server: Any, bank: Bank) -> None:
    engine = server.engine()
    try:
        with engine.connect() as connection:
            check_ledger(
                connection,
                is_wallet=lambda row: row.id in bank.wallet_ids,
                wallet_ok=lambda row: row.posted >= 0 and row.pending_out == 0,
                wallets=USERS,
                funded=bank.funded,
                committed=bank.committed,
            )
    finally:
        engine.dispose()


def test_bank(live_server: Any, in_flight: Any) -> None:
    seed = int(os.environ.get("PAYWARDEN_TEST_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    users = []
    funded = 0
    with live_server.client() as client:
        for _ in range(USERS):
            amount = rng.randint(5_000, 20_000)
            users.append(live_server.create_user(client, funded=amount))
            funded += amount
    bank = Bank(live_server, users, funded)

    started = time.monotonic()
    _run_workers(bank, seed, in_flight)
    elapsed = time.monotonic() - started

    print(
        f"\n[bank {live_server.backend}] seed={seed} funded={funded}: "
        f"{bank.committed} transfers committed, {bank.refused} refused "
        f"({bank.overdraws_refused} deliberate overdraws), {bank.reads} snapshot reads, "
        f"max in flight {in_flight.peak}, {elapsed:.1f} s"
    )
    failures = "\n".join(bank.failures[:10])
    assert not bank.failures, f"{len(bank.failures)} failures, the first:\n{failures}\n" + (
        live_server.log_tail()
    )
    assert in_flight.peak >= WORKERS
    assert in_flight.current == 0
    assert bank.committed > 0
    assert bank.overdraws_refused > 0
    assert bank.reads > 0

    with live_server.client() as client:
        final = client.get(
            "/v1/accounts",
            params={"limit": 100},
            headers=live_server.headers(live_server.admin_key, idempotency_key=None),
        )
    bank.check_read(final)
    assert not bank.failures, bank.failures
    _check_ledger_in_sql(live_server, bank)
