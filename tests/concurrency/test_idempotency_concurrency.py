"""One Idempotency-Key, many requests at the same instant, against the real server.

Thirty-two threads release together from a barrier and POST the same body with the same
key. The ledger must show exactly one effect; every answer must be that effect's 201 (the
original, or a replay marked ``Idempotent-Replayed: true``, never a 409: a POST's claim,
effect and stored answer commit together, so a second request waits for the first and
replays it); and the key with a different body must answer 422 ``idempotency_conflict``
and change nothing.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from live_server import release_together
from paywarden.store import schema

REQUESTS = 32
AMOUNT = 1_234
FUNDED = 10_000
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0  # barrier plus one request timeout (30 s), with margin
REPLAYED = "Idempotent-Replayed"


def _fire(server: Any, path: str, headers: dict[str, str], body: dict[str, Any], in_flight: Any):
    """REQUESTS identical POSTs released together; returns (responses, failures)."""

    def send(barrier: threading.Barrier) -> httpx.Response:
        with server.client() as client:
            in_flight.enter()  # before the barrier: see InFlight
            try:
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
                response = client.post(path, json=body, headers=headers)
            finally:
                in_flight.leave()
            response.read()
        return response

    return release_together(REQUESTS, send, JOIN_TIMEOUT_S)


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _effects(server: Any, endpoint: str, payer_wallet: str) -> tuple[int, int, int]:
    """(effects in the ledger, payer's posted, payer's pending) straight from SQL."""
    engine = server.engine()
    a, t, h = schema.accounts, schema.transfers, schema.holds
    try:
        with engine.connect() as connection:
            if endpoint == "transfers":
                query = select(func.count()).select_from(t).where(t.c.kind == "transfer")
            else:
                query = select(func.count()).select_from(h)
            effects = connection.execute(query).scalar_one()
            row = connection.execute(
                select(a.c.posted, a.c.pending_out).where(a.c.id == payer_wallet)
            ).one()
            return int(effects), int(row.posted), int(row.pending_out)
    finally:
        engine.dispose()


@pytest.mark.parametrize("endpoint", ["transfers", "holds"])
def test_one_key_many_concurrent_requests(live_server: Any, in_flight: Any, endpoint: str) -> None:
    server = live_server
    with server.client() as client:
        payer, payer_key = server.create_user(client, funded=FUNDED)
        if endpoint == "transfers":
            payee_id = server.create_user(client)[0]["id"]
        else:
            payee_id = server.create_merchant(client)[0]["id"]
    payer_wallet = payer["wallets"][0]["id"]
    path = f"/v1/{endpoint}"
    body = {"destination": payee_id, "amount": AMOUNT, "currency": "usd"}
    headers = server.headers(payer_key, idempotency_key=f"once-{secrets.token_hex(8)}")

    responses, failures = _fire(server, path, headers, body, in_flight)
    assert not failures, failures[0]
    assert len(responses) == REQUESTS
    assert in_flight.peak >= REQUESTS

    other = [r for r in responses if r.status_code != 201]
    assert not other, [(r.status_code, r.text) for r in other] + [server.log_tail()]
    originals = [r for r in responses if r.headers.get(REPLAYED) != "true"]
    assert len(originals) == 1, "exactly one request runs the effect; the rest replay"
    stored = originals[0].text
    assert all(r.text == stored for r in responses), "a replay differs from the original"
    replays = len(responses) - 1

    with server.client() as client:
        effects, posted, pending = _effects(server, endpoint, payer_wallet)
        assert effects == 1
        if endpoint == "transfers":
            assert (posted, pending) == (FUNDED - AMOUNT, 0)
        else:
            assert (posted, pending) == (FUNDED, AMOUNT)
        wallet = client.get(
            f"/v1/accounts/{payer_wallet}",
            headers=server.headers(payer_key, idempotency_key=None),
        )
        assert wallet.status_code == 200, wallet.text
        assert wallet.json()["balance"]["posted"] == posted

        # The same key with another body is refused for good, and moves nothing.
        for changed in ({**body, "amount": AMOUNT + 1}, {**body, "description": "other"}):
            conflict = client.post(path, json=changed, headers=headers)
            assert conflict.status_code == 422, conflict.text
            assert _error_code(conflict) == "idempotency_conflict"
        # ...while the original body still replays the stored answer.
        again = client.post(path, json=body, headers=headers)
        assert again.status_code == 201 and again.text == stored
        assert again.headers.get(REPLAYED) == "true"
    assert _effects(server, endpoint, payer_wallet) == (effects, posted, pending)

    print(
        f"\n[idempotency {server.backend} {path}] {REQUESTS} concurrent requests, one key: "
        f"1 ran the effect, {replays} replayed; max in flight {in_flight.peak}"
    )
