"""The real ``paywarden serve`` as a subprocess, for tests that talk to it over HTTP.

:func:`prepare` migrates a database and creates the admin key through the service layer;
:func:`serving` starts the server console script on a free port, waits for ``/readyz`` and
stops it on exit (terminate, a bounded wait, then kill). The ``live_server`` and
``in_flight`` fixtures in tests/conftest.py are built from these; any test area can import
them with ``from live_server import ...`` (tests/ is on ``sys.path``).
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine

from paywarden.services import platform
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store

T = TypeVar("T")
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 15.0
SERVER_START_ATTEMPTS_MAX = 3
READY_POLL_S = 0.02
CLIENT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}


# --- in-flight accounting ----------------------------------------------------------------


class InFlight:
    """Requests between 'about to send' and 'response received', with the peak seen.

    Workers call :meth:`enter` *before* ``barrier.wait()`` for their first request, so when
    the barrier releases every worker is already counted: the peak is at least the number
    of workers however fast the server answers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        with self._lock:
            self.current -= 1


def release_together(
    count: int, send: Callable[[threading.Barrier], T], join_timeout_s: float
) -> tuple[list[T], list[str]]:
    """Run ``send(barrier)`` on ``count`` threads sharing one barrier; (results, failures).

    ``send`` waits on the barrier right before its request, so all requests leave together.
    A thread that raises aborts the barrier (the others stop waiting at once rather than at
    its timeout) and its traceback is one of the failures. Fails if a thread still runs
    ``join_timeout_s`` after the start.
    """
    barrier = threading.Barrier(count)
    lock = threading.Lock()
    results: list[T] = []
    failures: list[str] = []

    def run() -> None:
        try:
            result = send(barrier)
            with lock:
                results.append(result)
        except BaseException:
            barrier.abort()
            with lock:
                failures.append(traceback.format_exc())

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "requests still running"
    return results, failures


# --- the server ----------------------------------------------------------------------------


@dataclass
class LiveServer:
    backend: str
    base_url: str
    database_url: str
    admin_key: str
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT)

    @staticmethod
    def headers(key: str, idempotency_key: str | None = "auto") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if idempotency_key == "auto":
            idempotency_key = secrets.token_hex(12)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def create_user(self, client: httpx.Client, funded: int = 0) -> tuple[dict[str, Any], str]:
        """A user with a usd wallet, topped up by card through the API when ``funded``."""
        tag = secrets.token_hex(4)
        response = client.post(
            "/v1/users",
            json={"email": f"user-{tag}@example.com", "name": f"User {tag}", "currency": "usd"},
            headers=self.headers(self.admin_key),
        )
        assert response.status_code == 201, response.text
        user = response.json()
        if funded:
            top = client.post(
                "/v1/top_ups",
                json={"amount": funded, "currency": "usd", "card": CARD},
                headers=self.headers(user["secret_key"]),
            )
            assert top.status_code == 201, top.text
        return user, user["secret_key"]

    def create_merchant(self, client: httpx.Client) -> tuple[dict[str, Any], str]:
        response = client.post(
            "/v1/merchants",
            json={"name": "Shop", "category": "coffee", "currency": "usd", "fee_bps": 0},
            headers=self.headers(self.admin_key),
        )
        assert response.status_code == 201, response.text
        merchant = response.json()
        return merchant, merchant["secret_key"]

    def engine(self) -> Engine:
        """A fresh engine on the server's database, for SQL checks; dispose it after."""
        return make_engine(self.database_url)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWARDEN_")}
    env["PAYWARDEN_LOG_LEVEL"] = "warning"
    return env


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)


def wait_ready(process: subprocess.Popen[bytes], base_url: str) -> bool:
    """True once /readyz answers 200; False if the process exits first (port taken?)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if probe.get("/readyz").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(READY_POLL_S)
    raise TimeoutError(f"the server at {base_url} was not ready in {SERVER_START_TIMEOUT_S} s")


def start(database_url: str, log_path: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``paywarden serve`` (plus ``options``) on a free port; (process, base URL)."""
    executable = Path(sys.executable).parent / "paywarden"
    for _attempt in range(SERVER_START_ATTEMPTS_MAX):
        port = free_port()  # another process may take it before the server binds: retry
        base_url = f"http://127.0.0.1:{port}"
        command = [str(executable), "serve", "--database-url", database_url, *options]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # the log file stays open in the child
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(),
                cwd=log_path.parent,  # its paywarden-data/ (master key) lands in the tmp dir
            )
        try:
            if wait_ready(process, base_url):
                return process, base_url
        except BaseException:
            stop(process)
            raise
        stop(process)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the server did not start in {SERVER_START_ATTEMPTS_MAX} tries:\n{tail}")


@contextmanager
def serving(database_url: str, log_path: Path, *options: str) -> Iterator[str]:
    """The server running on ``database_url`` while the block runs; yields its base URL."""
    process, base_url = start(database_url, log_path, *options)
    try:
        yield base_url
    finally:
        stop(process)


def prepare(database_url: str) -> str:
    """Migrate and create the admin key (before the server, which then prints none)."""
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        key = Store(engine).run(platform.bootstrap_admin)
    finally:
        engine.dispose()
    assert key is not None and key.secret
    return key.secret
