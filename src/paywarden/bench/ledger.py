"""paywarden's ledger path: a hold placed and captured, in-process and over HTTP.

Both paths do for each payment what ``POST /v1/holds`` then ``POST /v1/holds/{id}/capture``
do: for each request, the idempotency key's claim, the effect and the response stored
against the key as one unit of work under group commit (the API's ``grouped_unit``); so
two units a payment. In-process runs those units one after another on
``Store.run_grouped`` (the principals are authenticated once), each a group of one. Over
HTTP, N concurrent clients, each with its own user, drive ``paywarden serve`` in a
subprocess; the merchant captures.

Setup (a merchant with a 1 % fee, the users, a card top-up for each) runs before the clock
starts. Afterwards the run is verified in SQL: N holds captured, the postings of each
currency sum to zero, every balance equals the sum of its postings, the merchant holds
what it was paid, and there are 2N finished idempotency records.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, func, select

from paywarden.api.http import grouped_unit
from paywarden.api.runtime import Runtime
from paywarden.api.schemas import HoldCapture, HoldCreate
from paywarden.bench.loopback import Client, drive, server
from paywarden.bench.model import Outcome, Run, check
from paywarden.config import Settings
from paywarden.kernel.principals import Principal
from paywarden.services import holds, identity, ledger, platform
from paywarden.services.ledger import Card
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork

__all__ = [
    "check_books",
    "funded_user",
    "idempotent",
    "in_process",
    "over_http",
    "serve_command",
    "serve_workers",
]

AMOUNT = 500
FEE_BPS = 100
FUNDS = 10_000_000_000  # per user: far more than any run spends
CARD = Card("4242424242424242", 12, 2099)
M = TypeVar("M", bound=BaseModel)


@dataclass
class _World:
    store: Store
    secret: bytes
    merchant: Principal
    merchant_key: str
    merchant_account: str
    users: list[tuple[Principal, str]]  # (principal, secret key)


def _setup(database_url: str, users: int) -> _World:
    engine = make_engine(database_url, pool_size=max(5, users))
    migrate.upgrade(engine)
    store = Store(engine)
    secret = store.run(platform.instance_secret)
    store.run(platform.bootstrap_admin)
    merchant, merchant_key = store.run(
        lambda uow: identity.create_merchant(
            uow, name="Bench", category="bench", currency="usd", fee_bps=FEE_BPS, livemode=False
        )
    )
    assert merchant_key.secret is not None and merchant.account is not None
    merchant_secret: str = merchant_key.secret
    world = _World(
        store,
        secret,
        store.run(lambda uow: identity.authenticate(uow, merchant_secret)),
        merchant_secret,
        merchant.account.id,
        [],
    )
    for index in range(users):
        world.users.append(store.run(partial(funded_user, index=index, secret=secret)))
    return world


def funded_user(uow: UnitOfWork, *, index: int, secret: bytes) -> tuple[Principal, str]:
    """A user with a usd wallet topped up by card with :data:`FUNDS`, in one transaction."""
    tag = f"{index}-{secrets.token_hex(4)}"
    _user, key = identity.create_user(
        uow, email=f"bench-{tag}@example.com", name="Bench", currency="usd", livemode=False
    )
    assert key.secret is not None
    principal = identity.authenticate(uow, key.secret)
    top = ledger.top_up(uow, principal, amount=FUNDS, currency="usd", card=CARD, token_key=secret)
    check(top.status == "succeeded", f"the setup top-up failed: {top.failure_code}")
    return principal, key.secret


def idempotent(
    runtime: Runtime,
    principal: Principal,
    path: str,
    body: dict[str, Any],
    model: type[M],
    work: Callable[[UnitOfWork, Principal, M], Any],
    status: int,
) -> dict[str, Any]:
    """What the API's ``post`` does for ``principal``'s POST of ``body`` to ``path``: the
    key's claim, ``work`` and its stored response as one unit (``grouped_unit``), here on
    ``Store.run_grouped``; returns the answer's body."""
    unit = grouped_unit(
        runtime,
        lambda uow: principal,
        path=path,
        key=secrets.token_hex(12),
        raw=body,
        model=model,
        work=work,
        status=status,
    )
    answer = runtime.store.run_grouped(unit)
    check(answer.status == status, f"{path} answered {answer.status}: {answer.body[:300]}")
    answered: dict[str, Any] = json.loads(answer.body)
    return answered


def _capture(uow: UnitOfWork, p: Principal, b: HoldCapture, *, hold_id: str) -> Any:
    return holds.capture_hold(uow, p, hold_id, amount=b.amount)


def check_books(connection: Connection) -> tuple[list[Any], list[str]]:
    """The ledger's own invariants, in SQL: the postings of each currency sum to zero, every
    balance equals the sum of its postings, no reservation is left. Returns the account rows
    (id, posted) and what was confirmed."""
    p, a = schema.postings, schema.accounts
    by_currency = connection.execute(
        select(p.c.currency, func.sum(p.c.amount)).group_by(p.c.currency)
    ).all()
    check(all(total == 0 for _c, total in by_currency), f"postings do not sum to 0: {by_currency}")
    sums = (
        select(p.c.account_id, func.sum(p.c.amount).label("total"))
        .group_by(p.c.account_id)
        .subquery()
    )
    rows = connection.execute(
        select(a.c.id, a.c.posted, a.c.pending_out, sums.c.total).select_from(
            a.outerjoin(sums, sums.c.account_id == a.c.id)
        )
    ).all()
    drifted = [row.id for row in rows if row.posted != (row.total or 0)]
    check(not drifted, f"balances differ from the sum of their postings: {drifted[:3]}")
    reserved = [row.id for row in rows if row.pending_out != 0]
    check(not reserved, f"accounts still hold reservations: {reserved[:3]}")
    return list(rows), [
        "postings sum to zero per currency",
        "balances = sum of postings",
        "no reservation left",
    ]


def _verify(engine: Engine, payments: int, merchant_account: str) -> list[str]:
    h, k = schema.holds, schema.idempotency_keys
    with engine.connect() as connection:
        captured = connection.execute(
            select(func.count()).select_from(h).where(h.c.status == "posted")
        ).scalar_one()
        check(captured == payments, f"{captured} holds captured, {payments} payments made")
        pending = connection.execute(
            select(func.count()).select_from(h).where(h.c.status != "posted")
        ).scalar_one()
        check(pending == 0, f"{pending} holds left uncaptured")
        rows, books = check_books(connection)
        paid = next(row.posted for row in rows if row.id == merchant_account)
        fee = AMOUNT * FEE_BPS // 10_000
        check(
            paid == payments * (AMOUNT - fee),
            f"the merchant holds {paid}, not {payments} x {AMOUNT - fee}",
        )
        done = connection.execute(
            select(func.count()).select_from(k).where(k.c.state == "done")
        ).scalar_one()
        keys = connection.execute(select(func.count()).select_from(k)).scalar_one()
        check(
            done == keys == 2 * payments,
            f"{done} finished of {keys} idempotency records, {2 * payments} expected",
        )
    return [
        f"{captured} holds captured",
        *books,
        "merchant paid in full",
        f"{done} idempotency records (2 per payment)",
    ]


def in_process(database_url: str, payments: int) -> Outcome:
    """``payments`` holds placed and captured through the services, one after another."""
    world = _setup(database_url, users=1)
    try:
        user, _key = world.users[0]
        hold_body = {"destination": world.merchant_account, "amount": AMOUNT, "currency": "usd"}
        runtime = Runtime(Settings(database_url="sqlite://"), world.store, _secret=world.secret)
        latencies: list[float] = []
        started = time.perf_counter()
        for _ in range(payments):
            t0 = time.perf_counter()
            view = idempotent(
                runtime,
                user,
                "/v1/holds",
                hold_body,
                HoldCreate,
                lambda uow, p, b: holds.create_hold(
                    uow, p, destination=b.destination, amount=b.amount, currency=b.currency
                ),
                201,
            )
            hold_id = view["id"]
            idempotent(
                runtime,
                world.merchant,
                f"/v1/holds/{hold_id}/capture",
                {},
                HoldCapture,
                partial(_capture, hold_id=hold_id),
                200,
            )
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        checks = _verify(world.store.engine, payments, world.merchant_account)
    finally:
        world.store.engine.dispose()
    return Outcome(Run(payments, elapsed, latencies, checks))


def over_http(
    database_url: str,
    *,
    concurrency: int,
    duration_s: float,
    scratch: Path,
    log_path: Path,
) -> Outcome:
    """N clients place and capture holds against ``paywarden serve`` for ``duration_s``."""
    world = _setup(database_url, users=concurrency)
    world.store.engine.dispose()  # the server has the database to itself while measured
    merchant_auth = ("Authorization", f"Bearer {world.merchant_key}")
    hold_body = json.dumps(
        {"destination": world.merchant_account, "amount": AMOUNT, "currency": "usd"}
    ).encode()
    user_auth = [("Authorization", f"Bearer {key}") for _p, key in world.users]

    async def step(client: Client, worker: int, _seq: int) -> str | None:
        status, body = await client.request(
            "POST",
            "/v1/holds",
            hold_body,
            [user_auth[worker], ("Idempotency-Key", secrets.token_hex(12))],
        )
        if status != 201:
            return f"hold: status {status}: {body[:300]!r}"
        hold_id = json.loads(body)["id"]
        status, body = await client.request(
            "POST",
            f"/v1/holds/{hold_id}/capture",
            b"{}",
            [merchant_auth, ("Idempotency-Key", secrets.token_hex(12))],
        )
        if status != 200:
            return f"capture: status {status}: {body[:300]!r}"
        if json.loads(body).get("status") != "posted":
            return f"capture: not posted: {body[:300]!r}"
        return None

    # The one merchant captures every hold: its key's rate limit (100/s by default, per
    # process) is off, as a merchant of that volume would have it raised.
    command, env = serve_command(database_url, {"PAYWARDEN_RATE_LIMIT_KEY_PER_S": "0"})
    with server(command, ready_path="/readyz", log_path=log_path, cwd=scratch, env=env) as port:
        load = drive(port, concurrency, duration_s, step)
    check(not load.errors, f"{len(load.errors)} payments failed, first: {load.errors[:1]}")
    check(load.count > 0, "no payment completed")
    engine = make_engine(database_url)
    try:
        checks = _verify(engine, load.count, world.merchant_account)
    finally:
        engine.dispose()
    return Outcome(Run(load.count, load.elapsed_s, load.latencies_s, checks))


def serve_workers(database_url: str) -> int:
    """How many processes serve ``database_url`` in a benchmark, as docs/operations.md
    advises: one per core on PostgreSQL; one on SQLite, whose single writer more processes
    only make wait for each other."""
    if database_url.startswith("sqlite"):
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def serve_command(
    database_url: str, env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """``paywarden serve`` on ``database_url`` (migrated already), with a fresh master key
    and :func:`serve_workers` processes; ``env`` adds ``PAYWARDEN_*`` settings. The port
    comes from :func:`server`."""
    command = [
        sys.executable,
        "-c",
        "from paywarden.cli.main import main; main()",
        "serve",
        "--database-url",
        database_url,
        "--no-migrate",
    ]
    master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return command, {
        "PAYWARDEN_LOG_LEVEL": "warning",
        "PAYWARDEN_MASTER_KEY": master_key,
        "PAYWARDEN_WORKERS": str(serve_workers(database_url)),
        **(env or {}),
    }
