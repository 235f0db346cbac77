"""Crash safety: ``paywarden serve`` under concurrent signed payments, killed with SIGKILL
at random moments and restarted, cycle after cycle (see tests/crash_support.py).

After every kill, with the server down, the database is opened afresh and checked: SQLite's
``PRAGMA integrity_check``; postings sum to zero and balances equal their postings; every
acknowledged payment is there as acknowledged; no idempotency key applied twice; each
mandate's usage equals the sum of its payments; the audit chain verifies; every payment has
its outbox event. On PostgreSQL the database is a private cluster, which is also crashed
(immediate shutdown) every other cycle. ``--long`` runs four times the cycles.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from crash_support import Launcher, Payer, Payers, check_invariants, write_config
from figures_support import report
from live_server import free_port, prepare
from payment_support import signed_headers
from paywarden.config import create_master_key_file
from paywarden.trust.keys import ed25519_private_key
from pg_cluster_support import PgCluster, private_cluster

CLIENTS = 4
FUNDED = 100_000_000
# How long the load runs between a restart and the next kill (PostgreSQL payments are
# slower, and the first ones after a restart open connections).
LOAD_S = {"sqlite": (0.0, 0.3), "postgres": (0.0, 0.6)}
# Which starts exec the console script (the production path, migrations checked first)
# rather than fork from the zygote: the first, and every COLD_EVERY-th after it. Each cold
# start costs seconds; SQLite's 50 cycles get cold restarts after the kills of cycles 24
# and 49, PostgreSQL's 20 after cycle 18's, a kill that also crashed the database.
COLD_EVERY = {"sqlite": 25, "postgres": 19}


def _cycles(request: pytest.FixtureRequest, base: int) -> int:
    cycles = int(os.environ.get("PAYWARDEN_CRASH_CYCLES", "0")) or base  # for debugging
    return cycles * 4 if request.config.getoption("--long") else cycles


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": f"setup-{time.monotonic_ns()}"}


def _signed(base_url: str, seed: bytes, path: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(body).encode()
    headers = signed_headers(
        ed25519_private_key(seed), "POST", path, created=datetime.now(UTC), body=raw,
        authority=base_url.removeprefix("http://"),
    )  # fmt: skip
    headers |= {"Content-Type": "application/json", "Idempotency-Key": f"s-{time.monotonic_ns()}"}
    return {"content": raw, "headers": headers}


def _world(base_url: str, admin_key: str) -> list[Payer]:
    """A funded user, a merchant, and CLIENTS agents each with a consented mandate."""
    with httpx.Client(base_url=base_url, timeout=30.0) as client:

        def post(path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, json=body, headers=_headers(key))
            assert response.status_code in (200, 201), response.text
            result: dict[str, Any] = response.json()
            return result

        user = post(
            "/v1/users",
            admin_key,
            {"email": "crash@example.com", "name": "Crash", "currency": "usd"},
        )
        card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}
        post("/v1/top_ups", user["secret_key"], {"amount": FUNDED, "currency": "usd", "card": card})
        merchant = post(
            "/v1/merchants",
            admin_key,
            {"name": "Shop", "category": "coffee", "currency": "usd", "fee_bps": 0},
        )
        made = post("/v1/agent_platforms", admin_key, {"name": "A", "origin": "https://a.example"})
        payers = []
        for index in range(CLIENTS):
            seed = bytes([index + 1]) * 32
            jwk = ed25519_private_key(seed).public_jwk()
            post("/v1/agents", made["secret_key"], {"name": f"Agent {index}", "keys": [jwk]})
            constraints = [
                {"type": "payment.budget", "currency": "usd", "max": FUNDED},
                {"type": "payment.allowed_payees", "allowed": [merchant["id"]]},
            ]
            body = {"user": user["id"], "currency": "usd", "constraints": constraints}
            asked = client.post("/v1/mandates", **_signed(base_url, seed, "/v1/mandates", body))
            assert asked.status_code == 201, asked.text
            mandate_id = asked.json()["id"]
            post(f"/v1/mandates/{mandate_id}/consent", user["secret_key"], {})
            payers.append(Payer(seed, mandate_id, merchant["id"]))
        return payers


@contextmanager
def _launched(tmp_path: Path, database_url: str, *, cold_every: int = 10) -> Iterator[Launcher]:
    master_key = tmp_path / "paywarden-data" / "master.key"
    create_master_key_file(master_key)
    config = write_config(tmp_path / "paywarden.toml", database_url, master_key)
    launcher = Launcher(tmp_path, config, free_port(), cold_every=cold_every)
    try:
        yield launcher
    finally:
        launcher.close()


def _run_cycles(
    launcher: Launcher,
    database_url: str,
    admin_key: str,
    cycles: int,
    tmp_path: Path,
    label: str,
    cluster: PgCluster | None = None,
) -> None:
    rng = random.Random(9)
    launcher.start()
    payers = Payers(launcher.base_url, _world(launcher.base_url, admin_key), tmp_path / "acks", 9)
    payers.start()
    in_flight_at_kill: list[int] = []
    crashes_of_the_database = 0
    phases: Counter[str] = Counter()
    try:
        for cycle in range(cycles):
            # Each cycle sees progress (one more acknowledgement) before its kill lands at a
            # random moment, so a slow machine slows the run but never empties it.
            payers.wait_for_acks(len(payers.acks) + 1)
            time.sleep(rng.uniform(*LOAD_S["postgres" if cluster else "sqlite"]))
            in_flight_at_kill.append(payers.in_flight.current)
            mark = time.monotonic()
            launcher.kill()
            if cluster is not None and cycle % 2 == 0:
                cluster.crash()
                cluster.start()
                crashes_of_the_database += 1
            phases["kill"] += time.monotonic() - mark
            assert not payers.failures, payers.failures[:3]
            mark = time.monotonic()
            check_invariants(database_url, list(payers.acks), set(payers.keys_sent))
            phases["check"] += time.monotonic() - mark
            mark = time.monotonic()
            launcher.start()
            phases["restart"] += time.monotonic() - mark
        payers.finish()
        assert not payers.failures, payers.failures[:3]
        launcher.kill()
        final = check_invariants(database_url, payers.acks, payers.keys_sent, final=True)
    finally:
        payers.abandon()
    nonzero = sum(1 for count in in_flight_at_kill if count > 0)
    report(
        f"crash safety [{label}]: {cycles} SIGKILL cycles survived "
        f"({launcher.cold_starts} cold `paywarden serve` starts, the rest forked), "
        f"database crashes {crashes_of_the_database}; in flight at each kill: "
        f"{in_flight_at_kill} (non-zero on {nonzero}/{cycles}); {final.acked} payments "
        f"acknowledged ({final.succeeded} succeeded), {payers.retries} retries "
        f"({dict(payers.retry_reasons)}); seconds spent: "
        f"{ {name: round(value, 1) for name, value in phases.items()} }"
    )
    assert final.acked >= cycles, "too little load to prove anything"
    assert nonzero * 2 >= cycles, f"requests in flight at only {nonzero} of {cycles} kills"
    if cycles >= launcher.cold_every:
        assert launcher.cold_starts >= 2, "no cold `paywarden serve` start after a kill"


@pytest.mark.timeout(900)  # about 30 s on a quiet machine; the bound is for a busy one
def test_sqlite_survives_sigkill_cycles(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    database_url = f"sqlite:///{tmp_path / 'paywarden.db'}"
    admin_key = prepare(database_url)
    with _launched(tmp_path, database_url, cold_every=COLD_EVERY["sqlite"]) as launcher:
        _run_cycles(launcher, database_url, admin_key, _cycles(request, 50), tmp_path, "sqlite")


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_postgres_survives_sigkill_and_immediate_shutdown(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with private_cluster() as cluster:
        database_url = cluster.create_database("paywarden_crash")
        admin_key = prepare(database_url)
        with _launched(tmp_path, database_url, cold_every=COLD_EVERY["postgres"]) as launcher:
            _run_cycles(
                launcher,
                database_url,
                admin_key,
                _cycles(request, 20),
                tmp_path,
                f"postgres private cluster :{cluster.port}",
                cluster,
            )
