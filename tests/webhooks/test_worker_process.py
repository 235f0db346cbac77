"""The issue's proof: the delivery worker, a separate process, is SIGKILLed mid-delivery again
and again while a loopback receiver first refuses, then accepts; every event is still
processed exactly once by id, each signature verified (Standard Webhooks by the
``standardwebhooks`` package, ACP by an HMAC check written from the ACP spec)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from conftest import fresh_database
from paywarden.kernel.principals import PrincipalType
from paywarden.services import agents, identity, webhooks
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.tables_webhooks import webhook_deliveries
from paywarden.store.unit_of_work import Store
from paywarden.trust.keys import ed25519_private_key
from webhook_support import (
    ADMIN,
    Received,
    acp_signature_valid,
    emit_event,
    order_object,
    principal,
    receiver,
)

KILLS_MIN = 10
REFUSED_FIRST = 8  # the receiver answers 503 to this many requests, then 200
ANSWER_DELAY_S = 0.25  # long enough that a kill lands while the worker awaits the answer
TIMEOUT_S = 60.0


def worker_command(database_url: str, batch_max: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "paywarden.worker",
        "--database-url",
        database_url,
        "--poll-interval",
        "0.05",
        "--batch-max",
        str(batch_max),  # small while killing: a kill strands at most this many leases
    ]


def worker_env(master_key: bytes) -> dict[str, str]:
    return {
        **os.environ,
        "PAYWARDEN_MASTER_KEY": base64.urlsafe_b64encode(master_key).decode().rstrip("="),
        "PAYWARDEN_WEBHOOK_TIMEOUT_S": "1",
        "PAYWARDEN_WEBHOOK_LEASE_S": "2",
        "PAYWARDEN_WEBHOOK_RETRY_BASE_S": "0.2",
        "PAYWARDEN_WEBHOOK_RETRY_CAP_S": "1",
    }


def setup_world(store: Store, master_key: bytes, url: str) -> dict[str, Any]:
    """A merchant (standard endpoint), an agent platform (acp endpoint), an agent, and the
    events: orders by the platform's agent at the merchant, payouts of the merchant, and
    orders of another merchant that neither endpoint may receive."""

    def work(uow: Any) -> dict[str, Any]:
        shop = identity.create_merchant(
            uow, name="Shop", category="coffee", currency="usd", fee_bps=0, livemode=False
        )[0]
        other = identity.create_merchant(
            uow, name="Other", category="coffee", currency="usd", fee_bps=0, livemode=False
        )[0]
        platform, _key = agents.create_platform(
            uow, ADMIN, name="Agents", origin=f"https://a-{secrets.token_hex(3)}.example"
        )
        platform_principal = principal(PrincipalType.PLATFORM, platform.id)
        agent = agents.register_agent(uow, platform_principal, name="Shopper", keys=[_agent_jwk()])
        standard = webhooks.create_endpoint(
            uow,
            principal(PrincipalType.MERCHANT, shop.id),
            url=url + "/standard",
            event_types=["order.*", "payout.*"],
            endpoint_format="standard",
            description=None,
            master_key=master_key,
        )
        acp = webhooks.create_endpoint(
            uow,
            platform_principal,
            url=url + "/acp",
            event_types=["order.*"],
            endpoint_format="acp",
            description=None,
            master_key=master_key,
        )
        return {"shop": shop.id, "other": other.id, "agent": agent.id, "s": standard, "a": acp}

    world: dict[str, Any] = store.run(work)
    return world


def _agent_jwk() -> dict[str, str]:
    return ed25519_private_key(secrets.token_bytes(32)).public_jwk()


def emit_events(store: Store, world: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(standard ids, acp ids, ids no endpoint may receive)."""
    standard: set[str] = set()
    acp: set[str] = set()
    foreign: set[str] = set()
    for n in range(12):
        order = {**order_object(f"ord_{n}", world["shop"]), "agent_id": world["agent"]}
        for kind, status in (("order.created", "created"), ("order.updated", "confirmed")):
            event_id = emit_event(store, kind, {**order, "status": status})
            standard.add(event_id)
            acp.add(event_id)
    for n in range(6):
        payout = {"id": f"po_{n}", "object": "payout", "merchant": world["shop"], "amount": 100}
        standard.add(emit_event(store, "payout.created", payout))
        foreign.add(emit_event(store, "order.created", order_object(f"ord_x{n}", world["other"])))
    return standard, acp, foreign


class Gate:
    """Counts requests in flight at the receiver, so a kill can wait for one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived = 0
        self.answered = 0
        self.rejected = 0  # bad signature: a body cut short by a kill

    def in_flight(self) -> int:
        with self.lock:
            return self.arrived - self.answered


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_every_event_is_processed_exactly_once_through_repeated_sigkills(
    backend: str, tmp_path: Path
) -> None:
    master_key = secrets.token_bytes(32)
    gate = Gate()
    verified: dict[str, str] = {}
    box: dict[str, Any] = {}

    def answer(request: Received) -> int:
        if request.path.endswith("/acp"):  # one event goes to both endpoints: key them apart
            request.headers["webhook-id"] = "acp:" + request.headers["request-id"]
        with gate.lock:
            gate.arrived += 1
            number = gate.arrived
        time.sleep(ANSWER_DELAY_S)
        with gate.lock:
            gate.answered += 1
        if number <= REFUSED_FIRST:
            return 503
        try:  # as a real receiver does: verify before processing (a killed sender may have
            # sent half a body)
            verified[request.headers["webhook-id"]] = check_signature(box["world"], request)
        except Exception:
            with gate.lock:
                gate.rejected += 1
            return 401
        return 200

    with fresh_database(backend, tmp_path) as database_url, receiver(answer) as hooks:
        engine = make_engine(database_url)
        migrate.upgrade(engine)
        store = Store(engine)
        world = box["world"] = setup_world(store, master_key, hooks.url.removesuffix("/hooks"))
        standard_ids, acp_ids, foreign_ids = emit_events(store, world)
        kills = kills_mid_delivery = 0
        started = time.monotonic()
        log = (tmp_path / "worker.log").open("ab")
        try:
            while kills_mid_delivery < KILLS_MIN and kills < 2 * KILLS_MIN:
                process = subprocess.Popen(
                    worker_command(database_url),
                    env=worker_env(master_key),
                    cwd=tmp_path,
                    stdout=log,
                    stderr=log,
                )
                before = gate.arrived
                wait_until(lambda b=before: gate.arrived > b, TIMEOUT_S, "a delivery to start")
                if gate.in_flight() > 0:
                    kills_mid_delivery += 1
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                kills += 1
            process = subprocess.Popen(
                worker_command(database_url, batch_max=16),
                env=worker_env(master_key),
                cwd=tmp_path,
                stdout=log,
                stderr=log,
            )

            killing_s = time.monotonic() - started

            def all_processed() -> bool:
                """Every event processed, and every delivery known as delivered (a worker
                killed after the receiver's 200 left one pending: it is sent again)."""
                with hooks.lock:
                    got = set(hooks.processed)
                if not got >= standard_ids | {f"acp:{i}" for i in acp_ids}:
                    return False
                return set(delivery_statuses(store)) == {"delivered"}

            wait_until(all_processed, TIMEOUT_S, "every event to be processed")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0  # SIGTERM stops it cleanly
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
        elapsed_s = time.monotonic() - started

        for received in hooks.processed.values():  # checked again, after the fact
            assert check_signature(world, received) in ("standard", "acp")
        delivered = len(hooks.accepted())
        with hooks.lock:
            processed = dict(hooks.processed)
            duplicates = hooks.duplicates
            refused = sum(1 for r in hooks.received if r.status == 503)
        statuses = delivery_statuses(store)
        engine.dispose()

    print(
        f"\n[{backend}] events created: {len(standard_ids | acp_ids | foreign_ids)} "
        f"({len(standard_ids)} for the merchant's standard endpoint, {len(acp_ids)} for the "
        f"platform's acp endpoint, {len(foreign_ids)} for nobody here); "
        f"requests refused: {refused}; workers SIGKILLed: {kills} "
        f"({kills_mid_delivery} mid-delivery); delivered (2xx, duplicates included): "
        f"{delivered}; rejected for a bad signature: {gate.rejected}; "
        f"processed: {len(processed)}; duplicates dropped by webhook-id: "
        f"{duplicates}; {elapsed_s:.1f} s ({killing_s:.1f} s of kills and restarts)"
    )
    assert kills_mid_delivery >= KILLS_MIN
    assert refused >= REFUSED_FIRST
    expected = standard_ids | {f"acp:{i}" for i in acp_ids}
    assert set(processed) == expected  # every event exactly once by id, nothing foreign
    assert delivered == len(processed) + duplicates
    assert set(verified) == expected and set(verified.values()) == {"standard", "acp"}
    assert set(statuses) == {"delivered"}


def delivery_statuses(store: Store) -> list[str]:
    return list(
        store.run(
            lambda uow: [r.status for r in uow.execute(select(webhook_deliveries.c.status))],
            read_only=True,
        )
    )


def check_signature(world: dict[str, Any], received: Received) -> str:
    if received.path.endswith("/acp"):
        header = received.headers["merchant-signature"]
        assert acp_signature_valid(world["a"]["secret_key"], header, received.body)
        return "acp"
    Webhook(world["s"]["secret_key"]).verify(received.body, received.headers)
    return "standard"
