"""A mixed load on ``paywarden serve``: what agents, users and merchants do side by side.

Each of N keep-alive clients walks the same cycle of :data:`CYCLE` (20 requests, from its own
starting point) until the time is up, so the shares are fixed:

- ``payment`` 40 %: ``POST /v1/payments``, signed by the client's agent (its own mandate);
- ``search`` 20 %: ``GET /v1/products?q=...`` (catalog search), with the user's key;
- ``mandate_read`` 15 %: ``GET /v1/mandates/{id}`` (status and what remains), the user's key;
- ``checkout`` 15 %: ``POST /v1/checkout_sessions``, signed by the agent (one line item);
- ``refund`` 10 %: ``POST /v1/refunds`` of 1 cent of a payment made during setup, the
  merchant's key.

Setup (before the clock): the agent world of :mod:`paywarden.bench.agents`, the merchant's
catalog (:data:`PRODUCTS`, through the API) and one payment per client whose hold the
refunds draw on. Afterwards the run is verified: every answer was the expected one, and in
SQL the payments (with their receipts, audit records, usage and the books, see
:func:`~paywarden.bench.agents.verify_payments`), the checkout sessions, the refunds and the
idempotency records are exactly what was sent.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from paywarden.bench import agents
from paywarden.bench.agents import AgentWorld, PreparedRequest
from paywarden.bench.loopback import Client, Exhausted, drive
from paywarden.bench.model import Outcome, Run, check
from paywarden.store import schema
from paywarden.store.engine import make_engine
from paywarden.store.tables_checkout import checkout_sessions

__all__ = ["CYCLE", "KINDS", "SHARES", "mixed"]

KINDS = ("payment", "search", "mandate_read", "checkout", "refund")
P, S, R, C, F = KINDS
CYCLE = (P, S, P, R, C, P, F, S, P, R, P, C, S, P, R, P, C, F, S, P)
SHARES = {kind: CYCLE.count(kind) / len(CYCLE) for kind in KINDS}
PRODUCTS = [
    {"sku": "tea", "title": "Green tea", "amount": 300, "category": "drinks"},
    {"sku": "teapot", "title": "Teapot", "amount": 2500, "category": "kitchen"},
    {"sku": "coffee", "title": "Coffee beans", "amount": 1500, "category": "drinks"},
]
SEARCH = "/v1/products?q=tea"
REFUND_POOL = 1_000_000  # each client's setup payment: a cent refunded per refund request


def _post(path: str, body: dict[str, Any], auth: str) -> PreparedRequest:
    headers = [("Authorization", f"Bearer {auth}"), ("Idempotency-Key", secrets.token_hex(12))]
    return PreparedRequest("POST", path, json.dumps(body).encode(), headers)


def _get(path: str, auth: str) -> PreparedRequest:
    return PreparedRequest("GET", path, b"", [("Authorization", f"Bearer {auth}")])


async def _ok(client: Client, request: PreparedRequest, status: int) -> dict[str, Any]:
    got, body = await agents.send(client, request)
    if got != status:
        raise ValueError(f"{request.method} {request.path}: status {got}: {body[:300]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


def _prepare(world: AgentWorld, port: int) -> list[str]:
    """The catalog and one refundable payment per payer, through the API; their hold ids."""
    import asyncio  # noqa: PLC0415

    authority = f"127.0.0.1:{port}"

    async def run() -> list[str]:
        client = await Client.open(port)
        try:
            for product in PRODUCTS:
                await _ok(client, _post("/v1/products", product, world.merchant_key), 201)
            holds = []
            now = world.store.clock.now()
            for payer in world.payers:
                body: dict[str, Any] = {"mandate": payer.mandate, "merchant": world.merchant}
                body |= {"amount": REFUND_POOL, "currency": "usd"}
                signed = agents.sign(
                    payer, "POST", agents.PAYMENTS_PATH, body, authority=authority, now=now
                )
                holds.append((await _ok(client, signed, 201))["hold"])
            return holds
        finally:
            await client.close()

    return asyncio.run(run())


def _requests(
    world: AgentWorld, authority: str, holds: list[str], worker: int, count: int
) -> list[tuple[str, PreparedRequest]]:
    payer = world.payers[worker]
    now = world.store.clock.now()
    out = []
    body: dict[str, Any]
    for seq in range(count):
        kind = CYCLE[(worker * 3 + seq) % len(CYCLE)]
        if kind == "payment":
            request = agents.payment_request(world, payer, authority=authority, now=now)
        elif kind == "checkout":
            body = {"merchant": world.merchant, "line_items": [{"item": "tea", "quantity": 1}]}
            request = agents.sign(
                payer, "POST", "/v1/checkout_sessions", body, authority=authority, now=now
            )
        elif kind == "refund":
            body = {"hold": holds[worker], "amount": 1}
            request = _post("/v1/refunds", body, world.merchant_key)
        elif kind == "search":
            request = _get(SEARCH, payer.user_key)
        else:
            request = _get(f"/v1/mandates/{payer.mandate}", payer.user_key)
        out.append((kind, request))
    return out


_EXPECTED = {"payment": 201, "checkout": 201, "refund": 201, "search": 200, "mandate_read": 200}


def _answered(kind: str, status: int, body: bytes, world: AgentWorld) -> str | None:
    if status != _EXPECTED[kind]:
        return f"{kind}: status {status}: {body[:300]!r}"
    answer = json.loads(body)
    if kind == "payment" and answer.get("status") != "succeeded":
        return f"payment not succeeded: {body[:300]!r}"
    if kind == "search" and not any(p.get("sku") == "tea" for p in answer.get("data", [])):
        return f"search did not find the tea: {body[:300]!r}"
    if kind == "mandate_read" and answer.get("status") != "active":
        return f"mandate not active: {body[:300]!r}"
    return None


def mixed(
    database_url: str,
    *,
    concurrency: int,
    duration_s: float,
    scratch: Path,
    log_path: Path,
) -> Outcome:
    """N clients walk :data:`CYCLE` against ``paywarden serve`` for ``duration_s``."""
    sent: list[Counter[str]] = [Counter() for _ in range(concurrency)]
    serving = agents.serving(database_url, concurrency, scratch=scratch, log_path=log_path)
    with serving as (world, port):
        holds = _prepare(world, port)
        authority = f"127.0.0.1:{port}"
        per_worker = max(len(CYCLE), int(duration_s * agents.PRESIGN_PER_S / concurrency))
        pools = [
            iter(_requests(world, authority, holds, worker, per_worker))
            for worker in range(concurrency)
        ]

        async def step(client: Client, worker: int, _seq: int) -> str | None:
            item = next(pools[worker], None)
            if item is None:
                raise Exhausted
            kind, request = item
            status, body = await agents.send(client, request)
            error = _answered(kind, status, body, world)
            if error is None:
                sent[worker][kind] += 1
            return error

        load = drive(port, concurrency, duration_s, step)
    check(not load.errors, f"{len(load.errors)} requests failed, first: {load.errors[:1]}")
    kinds: Counter[str] = sum(sent, Counter())
    check(sum(kinds.values()) == load.count > 0, "no request completed")
    setup_posts = len(PRODUCTS) + concurrency
    payments = kinds["payment"] + concurrency
    engine = make_engine(database_url)
    try:
        checks = agents.verify_payments(
            engine,
            payments,
            idempotency_records=setup_posts
            + kinds["payment"]
            + kinds["checkout"]
            + kinds["refund"],
        )
        with engine.connect() as connection:
            sessions = connection.execute(
                select(func.count()).select_from(checkout_sessions)
            ).scalar_one()
            r = schema.refunds
            refunds, refunded = connection.execute(
                select(func.count(), func.coalesce(func.sum(r.c.amount), 0))
            ).one()
    finally:
        engine.dispose()
    check(sessions == kinds["checkout"], f"{sessions} checkout sessions, {kinds['checkout']} made")
    check(
        refunds == refunded == kinds["refund"],
        f"{refunds} refunds of {refunded} cents, {kinds['refund']} made",
    )
    checks += [
        f"{sessions} checkout sessions stored",
        f"{refunds} refunds of 1 cent stored",
        "every search found the product, every mandate read answered active",
        *agents.cut_short(load, duration_s),
    ]
    return Outcome(
        Run(
            load.count,
            load.elapsed_s,
            load.latencies_s,
            checks,
            {kind: kinds[kind] for kind in KINDS},
        )
    )
