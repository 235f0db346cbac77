"""The agent payment, ``POST /v1/payments``: an agent pays a merchant under a mandate with an
RFC 9421 signed request; in-process, over HTTP at its peak, and paced at half the peak.

The world (set up before the clock starts): one merchant (1 % fee), one agent platform, and
``payers`` triples of a user funded by a card top-up, an Ed25519 agent and a mandate the agent
requested and the user consented to (budget :data:`BUDGET`, payee the merchant). Payments go
round-robin over the mandates, so one hot mandate row is not all that is measured; each
payment still locks its mandate and reads its recent history (risk), so more payments per
mandate cost a little more (up to ``RiskConfig.history_size_max`` index entries).

Every request is signed before the clock starts (a fresh nonce and ``created`` each, valid
for :data:`VALIDITY`), so what is timed is the verification, not the signing.

In-process runs what the route runs, through the same functions, one payment after
another: ``verify_agent`` (RFC 9421 with ``AGENT_POLICY`` and the server's key cache), then
one unit of work under group commit (``grouped_unit`` on ``Store.run_grouped``): admission
(key status, nonce remembered), the idempotency claim, ``PaymentCreate`` validation, the
route's effect (``payment_work``: ``payments.pay``) and the stored response. One after
another, each group holds one payment, so in-process pays one durable commit per payment;
over HTTP, concurrent payments share commits.

Risk rules are evaluated (their inputs are read) with thresholds set never to fire
(:data:`RISK`); the server gets them through ``PAYWARDEN_RISK``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from paywarden.api.http import (
    grouped_unit,
    parse_json_object,
    signed_admission,
    verify_agent,
)
from paywarden.api.routes_mandates import PaymentCreate, payment_work, render_payment
from paywarden.api.runtime import Runtime
from paywarden.bench import ledger as bench_ledger
from paywarden.bench.loopback import Client, Exhausted, Load, drive, server
from paywarden.bench.model import Outcome, Run, check
from paywarden.config import Settings
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import agents, audit, idempotency, identity, keys, mandates
from paywarden.services import platform as platform_service
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.tables_agents import request_nonces
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.keys import PrivateKey, ed25519_private_key
from paywarden.trust.receipts import verify_receipt
from paywarden.trust.signatures import RequestParts, content_digest, sign_request

__all__ = [
    "RISK",
    "SEEDED_PREFIX",
    "AgentWorld",
    "Payer",
    "PreparedRequest",
    "cut_short",
    "in_process",
    "measure_in_process",
    "over_http",
    "paced",
    "pay_in_process",
    "payment_request",
    "send",
    "serving",
    "setup",
    "sign",
    "verify_payments",
]

AMOUNT = 500
FEE_BPS = bench_ledger.FEE_BPS
BUDGET = bench_ledger.FUNDS  # per mandate: more than any run spends
VALIDITY = timedelta(seconds=280)  # under AGENT_POLICY.max_age (300 s); covers any run
PAYMENTS_PATH = "/v1/payments"
IN_PROCESS_AUTHORITY = "bench.invalid"
IN_PROCESS_MANDATES = 8
# Thresholds set never to fire, while every rule still reads its inputs for every payment:
# the counts up to history_size_max rows, the mandate's amounts (outlier_history_min stays
# at its default, so the median is read; no amount is a billion percent of it).
RISK: dict[str, int | bool] = {
    "agent_step_up_min": 1_000_000_000,
    "agent_deny_min": 1_000_000_000,
    "mandate_step_up_min": 1_000_000_000,
    "mandate_deny_min": 1_000_000_000,
    "outlier_percent_of_median": 1_000_000_000,
    "new_merchant_step_up": False,
    "failure_step_up_min": 1_000_000_000,
    "failure_deny_min": 1_000_000_000,
}
SEEDED_PREFIX = "00s"  # after "pay_": bulk-seeded payments (scale); real ids begin "01"
PRESIGN_PER_S = 1000  # requests signed per second of an HTTP run; a faster run ends early
WARM_S = 1.0  # the peak is measured after this long at it, on the same connections


@dataclass
class Payer:
    """A funded user, its agent (Ed25519) and a consented mandate naming them both."""

    user: Principal
    user_key: str  # the user's secret API key
    agent: Principal
    agent_key: PrivateKey
    mandate: str


@dataclass
class AgentWorld:
    store: Store
    secret: bytes  # the instance secret (idempotency fingerprints)
    master_key: bytes
    admin: Principal
    merchant: str
    merchant_key: str
    merchant_account: str
    payers: list[Payer] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedRequest:
    """A request built (and, for an agent, signed) before the clock starts: what the client
    sends besides Host."""

    method: str
    path: str
    body: bytes
    headers: list[tuple[str, str]]

    def parts(self, authority: str) -> RequestParts:
        """The request as ``api/http.py`` hands it to ``verify_request``."""
        headers = [("host", authority), *self.headers]
        if self.body:
            headers.append(("content-type", "application/json"))
        return RequestParts(self.method, "http", authority, self.path, "", headers, self.body)


def setup(database_url: str, payers: int, *, pool_size: int = 5) -> AgentWorld:
    """Migrate, then make the merchant, the agent platform and ``payers`` payers."""
    engine = make_engine(database_url, pool_size=max(pool_size, payers))
    migrate.upgrade(engine)
    store = Store(engine)
    secret = store.run(platform_service.instance_secret)
    admin_key = store.run(platform_service.bootstrap_admin)
    assert admin_key is not None and admin_key.secret is not None
    admin_secret: str = admin_key.secret
    admin = store.run(lambda uow: identity.authenticate(uow, admin_secret))
    merchant, merchant_key = store.run(
        lambda uow: identity.create_merchant(
            uow, name="Bench", category="bench", currency="usd", fee_bps=FEE_BPS, livemode=False
        )
    )
    assert merchant_key.secret is not None and merchant.account is not None
    world = AgentWorld(
        store,
        secret,
        secrets.token_bytes(32),
        admin,
        merchant.id,
        merchant_key.secret,
        merchant.account.id,
    )
    _platform, platform_key = store.run(
        lambda uow: agents.create_platform(
            uow, admin, name="Bench agents", origin=f"https://bench-{secrets.token_hex(4)}.example"
        )
    )
    assert platform_key.secret is not None
    platform_secret: str = platform_key.secret
    platform = store.run(lambda uow: identity.authenticate(uow, platform_secret))
    for index in range(payers):
        world.payers.append(store.run(partial(_payer, world=world, platform=platform, index=index)))
    return world


def _payer(uow: UnitOfWork, *, world: AgentWorld, platform: Principal, index: int) -> Payer:
    user, user_key = bench_ledger.funded_user(uow, index=index, secret=world.secret)
    key = ed25519_private_key(secrets.token_bytes(32))
    agent = agents.register_agent(uow, platform, name=f"Bench {index}", keys=[key.public_jwk()])
    agent_principal = _agent_principal(agent.id, key)
    view = mandates.request_mandate(
        uow,
        agent_principal,
        user=str(user.id),
        currency="usd",
        constraints=[
            {"type": "payment.budget", "currency": "usd", "max": BUDGET},
            {"type": "payment.allowed_payees", "allowed": [world.merchant]},
        ],
        timezone="UTC",
    )
    mandates.consent(uow, user, view.mandate.id)
    return Payer(user, user_key, agent_principal, key, view.mandate.id)


def _agent_principal(agent_id: str, key: PrivateKey) -> Principal:
    return Principal(PrincipalType.AGENT, agent_id, False, key.keyid, identity.API_VERSION)


def sign(
    payer: Payer,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    authority: str,
    now: datetime,
    idempotency_key: bool = True,
) -> PreparedRequest:
    """``method path`` signed by the payer's agent as ``AGENT_POLICY`` demands: @method,
    @authority, @path (and content-digest with a body), created, expires, nonce, keyid, tag."""
    raw = json.dumps(body).encode() if body is not None else b""
    fields = [("content-digest", content_digest(raw))] if raw else []
    components = ["@method", "@authority", "@path"] + (["content-digest"] if raw else [])
    signature_input, signature = sign_request(
        RequestParts(method, "http", authority, path, "", fields, raw),
        key=payer.agent_key,
        components=components,
        created=now,
        expires=now + VALIDITY,
        nonce=secrets.token_urlsafe(16),
        tag="agent-payer-auth",
    )
    headers = [*fields, ("signature-input", signature_input), ("signature", signature)]
    if idempotency_key:
        headers.append(("idempotency-key", secrets.token_hex(12)))
    return PreparedRequest(method, path, raw, headers)


def payment_request(
    world: AgentWorld, payer: Payer, *, authority: str, now: datetime
) -> PreparedRequest:
    body = {"mandate": payer.mandate, "merchant": world.merchant, "amount": AMOUNT}
    return sign(
        payer, "POST", PAYMENTS_PATH, {**body, "currency": "usd"}, authority=authority, now=now
    )


class _Pipeline:
    """``POST /v1/payments`` as ``api/http.py`` runs it, without Starlette and uvicorn: the
    signature verified (the same key cache), then admission, the key's claim, the payment
    and the stored response as one unit of work under group commit (``grouped_unit``,
    ``Store.run_grouped``), the route's own effect (``payment_work``)."""

    def __init__(self, world: AgentWorld) -> None:
        self.world = world
        settings = Settings(database_url="sqlite://", risk=RISK)
        self.runtime = Runtime(
            settings, world.store, _secret=world.secret, _master_key=world.master_key
        )
        self.work = payment_work(self.runtime, f"http://{IN_PROCESS_AUTHORITY}")

    def pay(self, request: PreparedRequest) -> dict[str, Any]:
        store = self.world.store
        verified = verify_agent(store, request.parts(IN_PROCESS_AUTHORITY))
        key = idempotency.check_key(dict(request.headers).get("idempotency-key"))
        unit = grouped_unit(
            self.runtime,
            signed_admission(store, verified),
            path=request.path,
            key=key,
            raw=parse_json_object(request.body),
            model=PaymentCreate,
            work=self.work,
            render=render_payment,
        )
        answer = store.run_grouped(unit)
        check(answer.status == 201, f"a payment answered {answer.status}: {answer.body[:300]}")
        paid: dict[str, Any] = json.loads(answer.body)
        return paid


def in_process(database_url: str, count: int) -> Outcome:
    """``count`` agent payments through the pipeline, one after another, over
    :data:`IN_PROCESS_MANDATES` mandates."""
    world = setup(database_url, IN_PROCESS_MANDATES)
    try:
        return Outcome(measure_in_process(world, count, checked_from=0))
    finally:
        world.store.engine.dispose()


def pay_in_process(
    world: AgentWorld, count: int, latencies: list[float] | None = None
) -> list[dict[str, Any]]:
    """``count`` payments through the pipeline, round-robin over the payers, each one
    checked to have succeeded; their latencies are appended to ``latencies``."""
    pipeline = _Pipeline(world)
    now = world.store.clock.now()
    requests = [
        payment_request(
            world, world.payers[i % len(world.payers)], authority=IN_PROCESS_AUTHORITY, now=now
        )
        for i in range(count)
    ]
    records = []
    for request in requests:
        t0 = time.perf_counter()
        record = pipeline.pay(request)
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        check(record["status"] == "succeeded", f"a payment was {record['status']}: {record}")
        records.append(record)
    return records


def measure_in_process(world: AgentWorld, count: int, *, checked_from: int, seeded: int = 0) -> Run:
    """Pay ``count`` times and verify, counting the ``checked_from`` payments made before
    through the pipeline and ``seeded`` stored in bulk (:mod:`paywarden.bench.scale`)."""
    latencies: list[float] = []
    started = time.perf_counter()
    pay_in_process(world, count, latencies)
    elapsed = time.perf_counter() - started
    checks = verify_payments(world.store.engine, checked_from + count, seeded=seeded)
    return Run(count, elapsed, latencies, checks)


def verify_payments(
    engine: Engine,
    count: int,
    *,
    idempotency_records: int | None = None,
    seeded: int = 0,
) -> list[str]:
    """What ``count`` agent payments must have left behind, in SQL and by signature.

    ``idempotency_records`` is how many keys to expect (default ``count``: payments only).
    The audit chain is checked (hash chains and heads; no checkpoint is written by a run).
    """
    p, k = payments_table, schema.idempotency_keys
    with engine.connect() as connection:
        succeeded = connection.execute(
            select(func.count()).select_from(p).where(p.c.status == "succeeded")
        ).scalar_one()
        total = connection.execute(select(func.count()).select_from(p)).scalar_one()
        check(
            succeeded == total == count + seeded,
            f"{succeeded} of {total} payments succeeded, {count} made and {seeded} seeded",
        )
        keys_done = connection.execute(
            select(func.count()).select_from(k).where(k.c.state == "done")
        ).scalar_one()
        keys_all = connection.execute(select(func.count()).select_from(k)).scalar_one()
        expected = count if idempotency_records is None else idempotency_records
        check(
            keys_done == keys_all == expected,
            f"{keys_done} finished of {keys_all} idempotency records, {expected} expected",
        )
        nonces = connection.execute(select(func.count()).select_from(request_nonces)).scalar_one()
        check(nonces >= count, f"{nonces} nonces remembered for {count} signed payments")
        a = schema.audit_records
        audited = connection.execute(
            select(func.count()).select_from(a).where(a.c.event_type == "payment.succeeded")
        ).scalar_one()
        check(audited == count, f"{audited} payment.succeeded audit records, {count} payments")
        usage = connection.execute(
            select(func.sum(mandate_usage.c.amount), func.sum(mandate_usage.c.count)).where(
                mandate_usage.c.period == "lifetime"
            )
        ).one()
        paid = connection.execute(select(func.sum(p.c.amount))).scalar_one() or 0
        check(
            (usage[0] or 0) == paid and (usage[1] or 0) == count + seeded,
            f"mandate usage {usage[0]} in {usage[1]} payments; paid {paid} in {count + seeded}",
        )
        _rows, books = bench_ledger.check_books(connection)
        made = select(p.c.receipt).where(~p.c.id.startswith(f"pay_{SEEDED_PREFIX}"))
        tokens = list(connection.execute(made).scalars())
    store = Store(engine)  # not the world's: its engine is disposed while the server runs
    report = store.run(lambda uow: audit.verify(uow, {}), read_only=True)
    check(report.ok, f"the audit chain does not verify: {report.first}")
    trusted = store.run(keys.verification_keys, read_only=True)
    for token in tokens:
        check(token is not None, "a payment has no receipt")
        verify_receipt(token, trusted)  # raises on a bad signature
    return [
        f"{succeeded} payments succeeded" + (f" ({seeded} of them seeded)" if seeded else ""),
        f"{keys_done} idempotency records, all finished",
        f"{nonces} nonces remembered",
        f"{audited} payment audit records; audit chain verifies ({report.records} records)",
        f"{len(tokens)} receipts verify",
        *books,
        "mandate usage equals the payments",
    ]


def _presigned(
    world: AgentWorld, authority: str, concurrency: int, per_worker: int
) -> list[Iterator[PreparedRequest]]:
    now = world.store.clock.now()
    return [
        iter(
            [
                payment_request(
                    world, world.payers[worker % len(world.payers)], authority=authority, now=now
                )
                for _ in range(per_worker)
            ]
        )
        for worker in range(concurrency)
    ]


async def send(client: Client, request: PreparedRequest) -> tuple[int, bytes]:
    return await client.request(request.method, request.path, request.body, request.headers)


def _paid(status: int, body: bytes) -> str | None:
    if status != 201:
        return f"payment: status {status}: {body[:300]!r}"
    if json.loads(body).get("status") != "succeeded":
        return f"payment not succeeded: {body[:300]!r}"
    return None


@contextmanager
def serving(
    database_url: str, payers: int, *, scratch: Path, log_path: Path
) -> Iterator[tuple[AgentWorld, int]]:
    """An agent world with ``payers`` payers, served by ``paywarden serve`` with :data:`RISK`
    (``PAYWARDEN_RISK``); yields the world and the server's port."""
    world = setup(database_url, payers)
    world.store.engine.dispose()  # the server has the database to itself while measured
    command, env = bench_ledger.serve_command(database_url, {"PAYWARDEN_RISK": json.dumps(RISK)})
    with server(command, ready_path="/readyz", log_path=log_path, cwd=scratch, env=env) as port:
        yield world, port


def over_http(
    database_url: str,
    *,
    concurrency: int,
    duration_s: float,
    scratch: Path,
    log_path: Path,
) -> Outcome:
    """N keep-alive clients POST pre-signed payments to ``paywarden serve`` for
    ``duration_s`` (or until their requests run out); each client pays under its own mandate."""
    with serving(database_url, concurrency, scratch=scratch, log_path=log_path) as (world, port):
        authority = f"127.0.0.1:{port}"
        per_worker = max(4, int((duration_s + WARM_S) * PRESIGN_PER_S / concurrency))
        pools = _presigned(world, authority, concurrency, per_worker)

        async def step(client: Client, worker: int, _seq: int) -> str | None:
            request = next(pools[worker], None)
            if request is None:
                raise Exhausted
            return _paid(*await send(client, request))

        load = drive(port, concurrency, duration_s, step, warm_s=WARM_S)
    run = _checked(load, world, database_url, made=load.count + load.warm_count)
    run.checks += cut_short(load, duration_s)
    return Outcome(run)


def cut_short(load: Load, duration_s: float) -> list[str]:
    """A note when the clients used up their pre-signed requests before ``duration_s``
    (the rate is still count over time, of a shorter run): sign more, see PRESIGN_PER_S."""
    if load.elapsed_s >= 0.95 * duration_s:
        return []
    return [f"ran out of pre-signed requests after {load.elapsed_s:.1f} of {duration_s:g} s"]


def _checked(load: Load, world: AgentWorld, database_url: str, made: int | None = None) -> Run:
    check(not load.errors, f"{len(load.errors)} payments failed, first: {load.errors[:1]}")
    check(load.count > 0, "no payment completed")
    engine = make_engine(database_url)
    try:
        checks = verify_payments(engine, made if made is not None else load.count)
    finally:
        engine.dispose()
    return Run(load.count, load.elapsed_s, load.latencies_s, checks)


def paced(
    database_url: str,
    *,
    rate: float,
    connections: int,
    duration_s: float,
    scratch: Path,
    log_path: Path,
) -> Outcome:
    """An open-loop run: a payment is due every ``1/rate`` seconds for ``duration_s``,
    whatever the server's pace; any of ``connections`` free clients sends it. A sample is
    from the time it was due to its answer, so queueing behind a slow server counts. The
    server is warmed first by ``WARM_S`` at the same pace on the same connections (verified,
    not timed; a warm-up of one payment per connection had left each process's first
    connections and statements in the measured run)."""
    check(rate > 0, "no peak rate to pace at")
    total = max(1, int(rate * duration_s))
    with serving(database_url, connections, scratch=scratch, log_path=log_path) as (world, port):
        authority = f"127.0.0.1:{port}"
        now = world.store.clock.now()
        warming = max(connections, int(rate * WARM_S))
        requests = [
            payment_request(world, world.payers[i % connections], authority=authority, now=now)
            for i in range(warming + total)
        ]
        warm, load = asyncio.run(_warm_then_paced(port, connections, 1 / rate, requests, warming))
        check(not warm.errors, f"a warm-up payment failed: {warm.errors[:1]}")
    return Outcome(_checked(load, world, database_url, made=load.count + warming))


async def _warm_then_paced(
    port: int,
    connections: int,
    interval_s: float,
    requests: list[PreparedRequest],
    warming: int,
) -> tuple[Load, Load]:
    """The first ``warming`` requests at the pace, unmeasured, then the rest, measured, on
    the same connections: each connection stays with the server process that accepted it,
    so the measured run starts on processes it warmed. (With connections opened afresh, a
    process the warm-up had left idle took the first payments of the measured run cold:
    its first statements on each pooled connection, up to 260 ms, set the p99 of a short
    run on PostgreSQL.)"""
    clients = [await Client.open(port) for _ in range(connections)]
    try:
        warm = await _open_loop(clients, interval_s, requests[:warming])
        return warm, await _open_loop(clients, interval_s, requests[warming:])
    finally:
        for client in clients:
            await client.close()


async def _open_loop(
    clients: list[Client], interval_s: float, requests: list[PreparedRequest]
) -> Load:
    load = Load()
    queue: asyncio.Queue[tuple[float, PreparedRequest] | None] = asyncio.Queue()
    started = time.perf_counter()

    async def produce() -> None:
        for index, request in enumerate(requests):
            due = started + index * interval_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((due, request))
        for _ in clients:
            queue.put_nowait(None)

    async def consume(client: Client) -> None:
        while (item := await queue.get()) is not None:
            due, request = item
            try:
                error = _paid(*await send(client, request))
            except (OSError, ValueError, asyncio.IncompleteReadError) as failure:
                error = f"{type(failure).__name__}: {failure}"
            load.latencies_s.append(time.perf_counter() - due)
            if error is None:
                load.count += 1
            else:
                load.errors.append(error)

    await asyncio.gather(produce(), *(consume(client) for client in clients))
    load.elapsed_s = time.perf_counter() - started
    return load
