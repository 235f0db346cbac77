"""Fixtures for the concurrency tests: the real ``paywarden serve`` as a subprocess.

``live_server`` migrates a fresh database (a SQLite file in ``tmp_path``, or a new
PostgreSQL database), creates the admin key through the service layer, starts the server
console script on a free port, waits for ``/readyz`` and stops it at teardown (terminate,
a bounded wait, then kill). Every test that uses it runs on both backends.

Test modules here cannot import helpers from this file by name (see the note on
``conftest`` below), so what they need comes as fixtures and as methods of
:class:`LiveServer`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from paywarden.services import platform
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store

_ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
SERVER_START_TIMEOUT_S = 60.0
SERVER_STOP_TIMEOUT_S = 15.0
SERVER_START_ATTEMPTS_MAX = 3
CLIENT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099}


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """Give the name ``conftest`` back to tests/conftest.py once this file is loaded.

    Directories without ``__init__.py`` all load their conftest.py as the module
    ``conftest``; pytest drops the previous one from ``sys.modules`` first, so without this
    a test collected after this directory that does ``from conftest import Api`` would get
    this file instead of tests/conftest.py.
    """
    if getattr(plugin, "__file__", None) != __file__:
        return
    root = manager.get_plugin(str(_ROOT_CONFTEST))
    if root is not None:
        sys.modules["conftest"] = root


def _root(config: pytest.Config) -> Any:
    """The tests/conftest.py module (its PostgreSQL and SQLite helpers)."""
    module = config.pluginmanager.get_plugin(str(_ROOT_CONFTEST))
    if module is None:  # pragma: no cover
        raise RuntimeError("tests/conftest.py is not loaded")
    return module


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


@pytest.fixture
def in_flight() -> InFlight:
    return InFlight()


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWARDEN_")}
    env["PAYWARDEN_LOG_LEVEL"] = "warning"
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=SERVER_STOP_TIMEOUT_S)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str) -> bool:
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
            time.sleep(0.1)
    raise TimeoutError(f"the server at {base_url} was not ready in {SERVER_START_TIMEOUT_S} s")


def _start(database_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    executable = Path(sys.executable).parent / "paywarden"
    for _attempt in range(SERVER_START_ATTEMPTS_MAX):
        port = _free_port()  # another process may take it before the server binds: retry
        base_url = f"http://127.0.0.1:{port}"
        command = [str(executable), "serve", "--database-url", database_url]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # the log file stays open in the child
                command, stdout=log, stderr=subprocess.STDOUT, env=_server_env()
            )
        try:
            if _wait_ready(process, base_url):
                return process, base_url
        except BaseException:
            _stop(process)
            raise
        _stop(process)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the server did not start in {SERVER_START_ATTEMPTS_MAX} tries:\n{tail}")


def _prepare(database_url: str) -> str:
    """Migrate and create the admin key (before the server, which then prints none)."""
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        key = Store(engine).run(platform.bootstrap_admin)
    finally:
        engine.dispose()
    assert key is not None and key.secret
    return key.secret


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """The real server on a fresh database, on SQLite and on PostgreSQL."""
    backend: str = request.param
    root = _root(request.config)
    if backend == "postgres":
        root.require_pg()
        database_url: str = root.create_pg_database()
    else:
        database_url = root.sqlite_url(tmp_path)
    try:
        admin_key = _prepare(database_url)
        log_path = tmp_path / "server.log"
        process, base_url = _start(database_url, log_path)
        try:
            yield LiveServer(backend, base_url, database_url, admin_key, log_path)
        finally:
            _stop(process)
    finally:
        if backend == "postgres":
            root.drop_pg_database(database_url)
