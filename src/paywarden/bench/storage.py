"""The storage limit: the writes of one paid hold as a raw SQL loop, no ORM, no checks.

One payment through the API (POST /v1/holds, then POST /v1/holds/{id}/capture) writes
these statements, which the loop repeats on a minimal schema with the same shape:

    INSERT idempotency key (hold)        UPDATE payer account (reserve)
    INSERT hold                          INSERT event hold.created
    UPDATE idempotency key (done)        INSERT idempotency key (capture)
    UPDATE 3 accounts (payer, payee, fee)
    INSERT transfer                      INSERT 3 postings (one executemany)
    UPDATE hold (posted)                 INSERT event hold.captured
    UPDATE idempotency key (done)

``commit_each`` commits once per payment (what a durable payment needs at least),
``batch`` commits every ``batch_size`` payments (what batching could buy). SQLite runs in
WAL mode with ``synchronous=FULL``, as paywarden does; PostgreSQL with its defaults
(``synchronous_commit=on``). The loop then verifies the rows it wrote.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from paywarden.bench.model import Outcome, Run, check

__all__ = ["STATEMENTS_PER_PAYMENT", "raw_postgres", "raw_sqlite"]

FEE = 3
AMOUNT = 500
STATEMENTS_PER_PAYMENT = 14  # the executemany of postings counts as one

_SCHEMA = [
    "CREATE TABLE accounts (id TEXT PRIMARY KEY, posted BIGINT NOT NULL,"
    " pending_out BIGINT NOT NULL)",
    "CREATE TABLE holds (id TEXT PRIMARY KEY, source TEXT NOT NULL, destination TEXT NOT NULL,"
    " amount BIGINT NOT NULL, status TEXT NOT NULL, captured BIGINT NOT NULL,"
    " transfer_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE transfers (id TEXT PRIMARY KEY, kind TEXT NOT NULL, amount BIGINT NOT NULL,"
    " source TEXT NOT NULL, destination TEXT NOT NULL, hold_id TEXT, created_at TEXT NOT NULL)",
    "CREATE TABLE postings ({serial}, transfer_id TEXT NOT NULL, account_id TEXT NOT NULL,"
    " amount BIGINT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE INDEX postings_account ON postings (account_id)",
    "CREATE TABLE events (id TEXT PRIMARY KEY, type TEXT NOT NULL, data TEXT NOT NULL,"
    " created_at TEXT NOT NULL)",
    "CREATE TABLE idem ({serial}, principal TEXT NOT NULL, method TEXT NOT NULL,"
    " path TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, state TEXT NOT NULL,"
    " lock_token TEXT, response_status INTEGER, response_body TEXT, created_at TEXT NOT NULL,"
    " UNIQUE (principal, method, path, key))",
]
_SERIAL = {
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgres": "id BIGSERIAL PRIMARY KEY",
}
PAYER, PAYEE, FEES = "acct_payer", "acct_payee", "acct_fees"
_BODY = '{"id": "%s", "object": "hold", "amount": 500, "currency": "usd", "status": "%s"}'


Execute = Callable[[str, Any], Any]


def _payment(execute: Execute, many: Execute, ph: str, i: int) -> None:
    """The writes of payment ``i`` (placeholder style ``ph``: ``?`` or ``%s``)."""

    def q(text: str) -> str:
        return text.replace("?", ph)

    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    hold, transfer = f"hold_{i:09d}", f"tr_{i:09d}"
    execute(
        q(
            "INSERT INTO idem (principal, method, path, key, request_hash, state, lock_token,"
            " created_at) VALUES (?, 'POST', '/v1/holds', ?, ?, 'in_flight', ?, ?)"
        ),
        ("usr_1", f"k{i}h", "f" * 64, "t" * 32, now),
    )
    execute(q("UPDATE accounts SET pending_out = pending_out + ? WHERE id = ?"), (AMOUNT, PAYER))
    execute(
        q(
            "INSERT INTO holds (id, source, destination, amount, status, captured, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)"
        ),
        (hold, PAYER, PAYEE, AMOUNT, now, now),
    )
    execute(
        q("INSERT INTO events (id, type, data, created_at) VALUES (?, 'hold.created', ?, ?)"),
        (f"evt_{i:09d}_c", _BODY % (hold, "pending"), now),
    )
    done = (
        "UPDATE idem SET state = 'done', response_status = ?, response_body = ?,"
        " lock_token = NULL WHERE principal = ? AND method = 'POST' AND path = ? AND key = ?"
    )
    execute(q(done), (201, _BODY % (hold, "pending"), "usr_1", "/v1/holds", f"k{i}h"))
    capture_path = f"/v1/holds/{hold}/capture"
    execute(
        q(
            "INSERT INTO idem (principal, method, path, key, request_hash, state, lock_token,"
            " created_at) VALUES (?, 'POST', ?, ?, ?, 'in_flight', ?, ?)"
        ),
        ("mer_1", capture_path, f"k{i}c", "f" * 64, "t" * 32, now),
    )
    execute(
        q("UPDATE accounts SET posted = posted - ?, pending_out = pending_out - ? WHERE id = ?"),
        (AMOUNT, AMOUNT, PAYER),
    )
    execute(q("UPDATE accounts SET posted = posted + ? WHERE id = ?"), (AMOUNT - FEE, PAYEE))
    execute(q("UPDATE accounts SET posted = posted + ? WHERE id = ?"), (FEE, FEES))
    execute(
        q(
            "INSERT INTO transfers (id, kind, amount, source, destination, hold_id, created_at)"
            " VALUES (?, 'capture', ?, ?, ?, ?, ?)"
        ),
        (transfer, AMOUNT, PAYER, PAYEE, hold, now),
    )
    many(
        q("INSERT INTO postings (transfer_id, account_id, amount, created_at) VALUES (?, ?, ?, ?)"),
        [
            (transfer, PAYER, -AMOUNT, now),
            (transfer, PAYEE, AMOUNT - FEE, now),
            (transfer, FEES, FEE, now),
        ],
    )
    execute(
        q(
            "UPDATE holds SET status = 'posted', captured = ?, transfer_id = ?, updated_at = ?"
            " WHERE id = ?"
        ),
        (AMOUNT, transfer, now, hold),
    )
    execute(
        q("INSERT INTO events (id, type, data, created_at) VALUES (?, 'hold.captured', ?, ?)"),
        (f"evt_{i:09d}_p", _BODY % (hold, "posted"), now),
    )
    execute(q(done), (200, _BODY % (hold, "posted"), "mer_1", capture_path, f"k{i}c"))


def _verify(fetch: Callable[[str], Any], payments: int) -> list[str]:
    captured = fetch("SELECT count(*) FROM holds WHERE status = 'posted'")
    check(captured == payments, f"{captured} holds captured, {payments} expected")
    total = fetch("SELECT coalesce(sum(amount), 0) FROM postings")
    check(total == 0, f"postings sum to {total}, not zero")
    drift = fetch(
        "SELECT count(*) FROM accounts a WHERE a.posted <>"
        " (SELECT coalesce(sum(p.amount), 0) FROM postings p WHERE p.account_id = a.id)"
    )
    check(drift == 0, f"{drift} accounts differ from the sum of their postings")
    keys = fetch("SELECT count(*) FROM idem WHERE state = 'done'")
    check(keys == 2 * payments, f"{keys} idempotency records done, {2 * payments} expected")
    return [
        f"{captured} holds captured",
        "postings sum to zero",
        "balances = sum of postings",
        f"{keys} idempotency records (2 per payment)",
    ]


def _loop(
    payments: int,
    batch_size: int,
    begin: Callable[[], object],
    commit: Callable[[], object],
    one: Callable[[int], None],
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    i = 0
    while i < payments:
        t0 = time.perf_counter()
        begin()
        for _ in range(min(batch_size, payments - i)):
            one(i)
            i += 1
        commit()
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - started, latencies


def raw_sqlite(path: Path, payments: int, batch_size: int) -> Outcome:
    """``payments`` payments, committing every ``batch_size``, on a fresh SQLite file."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            connection.execute(statement.format(serial=_SERIAL["sqlite"]))
        connection.executemany(
            "INSERT INTO accounts VALUES (?, 0, 0)", [(PAYER,), (PAYEE,), (FEES,)]
        )
        cursor = connection.cursor()

        def one(i: int) -> None:
            _payment(cursor.execute, cursor.executemany, "?", i)

        elapsed, latencies = _loop(
            payments,
            batch_size,
            lambda: cursor.execute("BEGIN IMMEDIATE"),
            lambda: cursor.execute("COMMIT"),
            one,
        )

        def fetch(query: str) -> Any:
            return connection.execute(query).fetchone()[0]

        checks = _verify(fetch, payments)
    finally:
        connection.close()
    return Outcome(Run(payments, elapsed, latencies, checks))


def raw_postgres(url: str, payments: int, batch_size: int) -> Outcome:
    """The same loop with psycopg on a fresh PostgreSQL database at ``url``."""
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            for statement in _SCHEMA:
                cursor.execute(statement.format(serial=_SERIAL["postgres"]).encode())
            cursor.executemany(
                "INSERT INTO accounts VALUES (%s, 0, 0)", [(PAYER,), (PAYEE,), (FEES,)]
            )
        connection.commit()
        cursor = connection.cursor()

        def execute(query: str, params: Any) -> Any:
            return cursor.execute(query.encode(), params)

        def many(query: str, params: Any) -> Any:
            return cursor.executemany(query.encode(), params)

        def one(i: int) -> None:
            _payment(execute, many, "%s", i)

        elapsed, latencies = _loop(payments, batch_size, lambda: None, connection.commit, one)

        def fetch(query: str) -> Any:
            row = cursor.execute(query.encode()).fetchone()
            return None if row is None else row[0]

        checks = _verify(fetch, payments)
        cursor.close()
    return Outcome(Run(payments, elapsed, latencies, checks))
