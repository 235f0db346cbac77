"""One signed request, sent 32 times at the same instant to the real server, is admitted once.

``paywarden serve`` runs as a subprocess on a free port, on a fresh SQLite file and once on a
fresh PostgreSQL database. Thirty-two threads release together from a barrier and send the
very same signed request; the nonce store must let exactly one through (200) and answer
every other copy 401 ``nonce_replayed``, and a later copy too. The server reads the real
clock, so the request is signed at the real time.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from agent_support import create_platform, ed_key, error_code, register_agent, signed_headers

from conftest import create_pg_database, drop_pg_database, require_pg, sqlite_url
from paywarden.services import platform
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store

REQUESTS = 32
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
BARRIER_TIMEOUT_S = 60.0
JOIN_TIMEOUT_S = 120.0
CLIENT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class Server:
    """Just enough of the Api helper for agent_support: admin key, post with a Bearer."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.base_url = base_url
        self.admin_key = admin_key
        self.client = httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT)

    def post(self, path: str, key: str, body: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(12)}
        return self.client.post(path, json=body, headers=headers)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _prepare(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        key = Store(engine).run(platform.bootstrap_admin)
    finally:
        engine.dispose()
    assert key is not None and key.secret
    return key.secret


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def _ready(process: subprocess.Popen[bytes], base_url: str) -> bool:
    """True once /readyz answers 200; False if the process exits first (port taken)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if probe.get("/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"the server at {base_url} was not ready in {START_TIMEOUT_S} s")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "postgres":
        require_pg()
        database_url = create_pg_database()
    else:
        database_url = sqlite_url(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWARDEN_")}
    env["PAYWARDEN_LOG_LEVEL"] = "warning"
    log_path = tmp_path / "server.log"
    executable = Path(sys.executable).parent / "paywarden"
    try:
        admin_key = _prepare(database_url)
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = _free_port()
            command = [str(executable), "serve", "--database-url", database_url, "--no-migrate"]
            command += ["--host", "127.0.0.1", "--port", str(port)]
            with log_path.open("ab") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                if _ready(process, f"http://127.0.0.1:{port}"):
                    live = Server(f"http://127.0.0.1:{port}", admin_key)
                    try:
                        yield live
                    finally:
                        live.client.close()
                    return
            finally:
                _stop(process)
        pytest.fail(f"the server did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
    finally:
        if request.param == "postgres":
            drop_pg_database(database_url)


def _fire(server: Server, path: str, headers: dict[str, str]) -> list[httpx.Response]:
    barrier = threading.Barrier(REQUESTS)
    lock = threading.Lock()
    responses: list[httpx.Response] = []
    failures: list[str] = []

    def run() -> None:
        try:
            with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
                client.get("/healthz")  # connect first: after the barrier only the request goes
                barrier.wait(timeout=BARRIER_TIMEOUT_S)
                response = client.get(path, headers=headers)
            with lock:
                responses.append(response)
        except BaseException:
            barrier.abort()
            with lock:
                failures.append(traceback.format_exc())

    threads = [threading.Thread(target=run, daemon=True) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "requests still running"
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
