"""One signed request, sent 32 times at the same instant to the real server, is admitted once.

``paywarden serve`` runs as a subprocess on a free port, on a fresh SQLite file and once on a
fresh PostgreSQL database. Thirty-two threads release together from a barrier and send the
very same signed request; the nonce store must let exactly one through (200) and answer
every other copy 401 ``nonce_replayed``, and a later copy too. The server reads the real
clock, so the request is signed at the real time.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from agent_support import create_platform, ed_key, error_code, register_agent, signed_headers

from conftest import fresh_database
from live_server import CLIENT_TIMEOUT, prepare, release_together, serving

REQUESTS = 32
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0


class Server:
    """Just enough of the Api helper for agent_support: admin key, post with a Bearer."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.admin_key = admin_key
        self.client = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT)

    def post(self, path: str, key: str, body: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(12)}
        return self.client.post(path, json=body, headers=headers)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with fresh_database(request.param, tmp_path) as database_url:
        admin_key = prepare(database_url)
        with serving(database_url, tmp_path / "server.log", "--no-migrate") as base_url:
            live = Server(base_url, admin_key)
            try:
                yield live
            finally:
                live.client.close()


def _fire(server: Server, path: str, headers: dict[str, str]) -> list[httpx.Response]:
    def send(barrier: threading.Barrier) -> httpx.Response:
        with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
            client.get("/healthz")  # connect first: after the barrier only the request goes
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
            return client.get(path, headers=headers)

    responses, failures = release_together(REQUESTS, send, JOIN_TIMEOUT_S)
    assert not failures, failures[0]
    return responses


def test_32_copies_of_one_signed_request_at_once_are_admitted_exactly_once(
    server: Server,
) -> None:
    _platform, platform_key = create_platform(server)
    agent = register_agent(server, platform_key, ed_key(60))
    path = f"/v1/agents/{agent['id']}"
    authority = server.base_url.removeprefix("http://")
    now = datetime.now(UTC)
    headers = signed_headers(ed_key(60), "GET", path, created=now, authority=authority)

    responses = _fire(server, path, headers)

    outcomes = sorted((r.status_code, error_code(r)) for r in responses)
    assert outcomes == [(200, None)] + [(401, "nonce_replayed")] * (REQUESTS - 1), outcomes
    admitted = next(r for r in responses if r.status_code == 200)
    assert admitted.json()["id"] == agent["id"]
    again = server.client.get(path, headers=headers)
    assert (again.status_code, error_code(again)) == (401, "nonce_replayed")
    fresh = signed_headers(ed_key(60), "GET", path, created=now, authority=authority)
    assert server.client.get(path, headers=fresh).status_code == 200
