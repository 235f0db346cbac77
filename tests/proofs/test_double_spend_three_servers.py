"""The double spend across nodes: three ``paywarden serve`` processes on one PostgreSQL database.

A mandate allows ``L`` a day; 32 signed ``POST /v1/payments`` of ``a`` each, spread
round-robin over the three servers, are released together from a barrier. Every sender
counts itself in flight before the barrier (see :class:`live_server.InFlight`), so the peak
proves at least 16 requests were outstanding at once. Exactly ``floor(L / a)`` succeed, the
rest are declined on the daily budget, and the database shows exactly that much captured
and used: the mandate row lock (``SELECT … FOR UPDATE``) serializes the payments whichever
node serves them.

The servers run the default risk rules, which step up a fourth payment under one mandate in
ten minutes; ``L`` and ``a`` are chosen so that the budget, not risk, is what stops the rest:
``floor(2_400 / 700) = 3``, and 300 is left that no payment fits.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from proof_support import captured, daily_budget
from sqlalchemy import select

from conftest import fresh_database
from live_server import CLIENT_TIMEOUT, InFlight, LiveServer, prepare, release_together, start, stop
from payment_support import signed_headers
from paywarden.config import create_master_key_file
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.unit_of_work import Store
from paywarden.trust.keys import ed25519_private_key

pytestmark = pytest.mark.postgres

SERVERS = 3
ATTEMPTS = 32
IN_FLIGHT_MIN = 16
DAILY_LIMIT = 2_400
AMOUNT = 700
FUNDED = 100_000
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0


def _agent(server: LiveServer, client: httpx.Client) -> tuple[str, bytes]:
    """A platform and its agent through the API; (agent id, key seed)."""
    seed = bytes(range(100, 132))
    made = client.post(
        "/v1/agent_platforms",
        json={"name": "Agents", "origin": "https://agents.example"},
        headers=server.headers(server.admin_key),
    )
    assert made.status_code == 201, made.text
    registered = client.post(
        "/v1/agents",
        json={"name": "Shopper", "keys": [ed25519_private_key(seed).public_jwk()]},
        headers=server.headers(made.json()["secret_key"]),
    )
    assert registered.status_code == 201, registered.text
    return str(registered.json()["id"]), seed


def _signed_post(base_url: str, seed: bytes, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.post``: the JSON body signed for ``base_url``."""
    raw = json.dumps(body).encode()
    authority = base_url.removeprefix("http://")
    headers = signed_headers(
        ed25519_private_key(seed),
        "POST",
        path,
        created=datetime.now(UTC),
        body=raw,
        authority=authority,
    )
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = f"pay-{time.monotonic_ns()}-{threading.get_ident()}"
    return {"content": raw, "headers": headers}


def _mandate(server: LiveServer, client: httpx.Client, agent: tuple[str, bytes]) -> tuple[str, str]:
    """A funded user and a granted mandate for the agent at one merchant; (mandate, merchant)."""
    user, user_key = server.create_user(client, funded=FUNDED)
    merchant, _key = server.create_merchant(client)
    constraints = [
        daily_budget(DAILY_LIMIT),
        {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
    ]
    body = {"user": user["id"], "currency": "usd", "constraints": constraints}
    asked = client.post(
        "/v1/mandates", **_signed_post(server.base_url, agent[1], "/v1/mandates", body)
    )
    assert asked.status_code == 201, asked.text
    mandate_id = str(asked.json()["id"])
    consented = client.post(
        f"/v1/mandates/{mandate_id}/consent", json={}, headers=server.headers(user_key)
    )
    assert consented.status_code == 200, consented.text
    return mandate_id, str(merchant["id"])


def test_three_api_processes_never_spend_past_the_daily_budget(tmp_path: Path) -> None:
    started = time.monotonic()
    with fresh_database("postgres", tmp_path) as database_url:
        admin_key = prepare(database_url)
        # One master key for all nodes, made before they start (as `paywarden migrate` does):
        # each server runs in tmp_path and reads paywarden-data/master.key from there.
        create_master_key_file(tmp_path / "paywarden-data" / "master.key")
        processes: list[subprocess.Popen[bytes]] = []
        try:
            urls = []
            for index in range(SERVERS):
                process, base_url = start(
                    database_url, tmp_path / f"server{index}.log", "--no-migrate"
                )
                processes.append(process)
                urls.append(base_url)
            servers = [
                LiveServer("postgres", url, database_url, admin_key, tmp_path / f"server{i}.log")
                for i, url in enumerate(urls)
            ]
            ready_s = time.monotonic() - started
            _prove(servers, database_url, ready_s)
        finally:
            for process in processes:
                stop(process)
    print(f"[3 servers] whole test {time.monotonic() - started:.1f} s")


def _warm(servers: list[LiveServer], seed: bytes, mandate_id: str) -> None:
    """One signed read per server, so no node starts the race with cold caches."""
    path = f"/v1/mandates/{mandate_id}"
    for server in servers:
        authority = server.base_url.removeprefix("http://")
        headers = signed_headers(
            ed25519_private_key(seed), "GET", path, created=datetime.now(UTC), authority=authority
        )
        with server.client() as client:
            assert client.get(path, headers=headers).status_code == 200


def _prove(servers: list[LiveServer], database_url: str, ready_s: float) -> None:
    with servers[0].client() as client:
        agent = _agent(servers[0], client)
        mandate_id, merchant_id = _mandate(servers[0], client, agent)
    _warm(servers, agent[1], mandate_id)
    body = {"mandate": mandate_id, "merchant": merchant_id, "amount": AMOUNT, "currency": "usd"}
    turn = iter(range(ATTEMPTS))
    turn_lock = threading.Lock()
    in_flight = InFlight()

    def send(barrier: threading.Barrier) -> tuple[int, httpx.Response]:
        with turn_lock:
            index = next(turn) % SERVERS
        server = servers[index]
        with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
            # Connect first and warm the server's database pool (readyz queries it): after
            # the barrier only the payment goes.
            client.get("/readyz")
            request = _signed_post(server.base_url, agent[1], "/v1/payments", body)
            in_flight.enter()
            try:
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
                return index, client.post("/v1/payments", **request)
            finally:
                in_flight.leave()

    sent = time.monotonic()
    results, failures = release_together(ATTEMPTS, send, JOIN_TIMEOUT_S)
    burst_s = time.monotonic() - sent
    assert not failures, failures[0] + "\n" + servers[0].log_tail()
    assert in_flight.peak >= IN_FLIGHT_MIN, in_flight.peak

    assert all(response.status_code == 201 for _i, response in results), [
        response.text for _i, response in results if response.status_code != 201
    ]
    payments = [(index, response.json()) for index, response in results]
    expected = DAILY_LIMIT // AMOUNT
    statuses = Counter(payment["status"] for _i, payment in payments)
    assert statuses == {"succeeded": expected, "declined": ATTEMPTS - expected}, statuses
    declined_reasons = {tuple(p["reasons"]) for _i, p in payments if p["status"] == "declined"}
    assert all("period_budget_exceeded:daily" in reasons for reasons in declined_reasons)
    per_server = Counter(index for index, _payment in payments)
    won = Counter(index for index, payment in payments if payment["status"] == "succeeded")

    engine = servers[0].engine()
    try:
        store = Store(engine)
        total, posted = store.run(lambda uow: captured(uow, merchant_id), read_only=True)
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
    print(
        f"\n[3 servers, PostgreSQL] L={DAILY_LIMIT} a={AMOUNT}: {ATTEMPTS} attempts "
        f"(per server {dict(sorted(per_server.items()))}), peak in flight {in_flight.peak}, "
        f"succeeded {statuses['succeeded']} (per server {dict(sorted(won.items()))}), "
        f"declined {statuses['declined']}; captured {total} = floor(L/a)*a = "
        f"{expected * AMOUNT}; servers ready in {ready_s:.1f} s, burst {burst_s:.2f} s"
    )
