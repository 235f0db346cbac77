"""Shared fixtures: stores on SQLite and PostgreSQL, a fake clock, the API in-process, and
the real server as a subprocess (``live_server``, see tests/live_server.py).

PostgreSQL tests use a fresh database per test session on the server named by
``PAYWARDEN_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, whose
server hosts it). When that server is unreachable they skip locally, and fail when
``CI=true``: CI must run them for real.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from figures_support import FIGURES
from live_server import InFlight, LiveServer, prepare, serving
from paywarden.api.app import create_app
from paywarden.config import Settings
from paywarden.kernel.clock import FakeClock
from paywarden.services import platform
from paywarden.store import migrate
from paywarden.store.engine import make_engine, normalise_url
from paywarden.store.schema import metadata
from paywarden.store.unit_of_work import Store

PG_URL = os.environ.get("PAYWARDEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED = Path(__file__).resolve().parents[2] / "shared"
START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="run the long fault and fuzz runs")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_AREA_TIMES] = defaultdict(float)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long run: pass --long (scripts/test --long)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_AREA_TIMES = pytest.StashKey[dict[str, float]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = Path(report.fspath).parts
    area = parts[parts.index("tests") + 1] if "tests" in parts else "other"
    area = area.removesuffix(".py")
    config = _CONFIG.get("config")
    if config is not None:
        config.stash[_AREA_TIMES][area] += report.duration


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if FIGURES:  # the fault and attack suite's proven figures (tests/figures_support.py)
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
    times = config.stash.get(_AREA_TIMES, {})
    if not times:
        return
    terminalreporter.section("time per area")
    for area, seconds in sorted(times.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{area:<14} {seconds:8.1f} s")
    terminalreporter.write_line(f"{'total':<14} {sum(times.values()):8.1f} s")


# --- PostgreSQL -------------------------------------------------------------------------


def _pg_admin_url() -> str:
    return normalise_url(PG_URL)


def pg_available() -> bool:
    try:
        engine = create_engine(_pg_admin_url(), connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def require_pg() -> None:
    if pg_available():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable and CI=true: these tests must run")
    pytest.skip(f"PostgreSQL at {PG_URL} is unreachable (set CI=true to make this a failure)")


def create_pg_database() -> str:
    """A fresh, empty database on the test server; returns its URL. Its commits do not wait
    for the WAL flush (``synchronous_commit=off``): what a transaction sees and locks is
    unchanged, only a crash of the shared server could lose the last commits, and no test
    crashes it (the crash tests run their own cluster, tests/pg_cluster_support.py)."""
    require_pg()
    name = f"pw_test_{secrets.token_hex(6)}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    return make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; tests truncate what they need."""
    url = create_pg_database()
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


@contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in ``directory`` ("sqlite"), or a
    PostgreSQL database ("postgres") dropped when the block ends."""
    if backend != "postgres":
        yield sqlite_url(directory)
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


# The sequences owned by columns of the given tables (what RESTART IDENTITY restarts).
_OWNED_SEQUENCES = text(
    """SELECT s.oid::regclass::text FROM pg_class s
       JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                       AND d.deptype IN ('a', 'i')
       JOIN pg_class t ON t.oid = d.refobjid
       WHERE s.relkind = 'S' AND t.relname = ANY(:names)
         AND t.relnamespace = current_schema()::regnamespace"""
)


def truncate_all(store: Store) -> None:
    """Empty every table and restart the id sequences. DELETE in dependency order, not
    TRUNCATE: on tables this small TRUNCATE costs about a second per call on PostgreSQL
    (new files for some fifty tables), DELETE a few milliseconds."""
    with store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
        if store.dialect == "postgresql":
            names = [table.name for table in metadata.sorted_tables]
            for sequence in connection.execute(_OWNED_SEQUENCES, {"names": names}).scalars():
                connection.execute(text("SELECT setval(:s, 1, false)"), {"s": sequence})


# --- stores -----------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'paywarden.db'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database made once per session; tests get a copy of the file
    (running the migrations costs about half a second per test)."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    engine = make_engine(sqlite_url(folder))
    migrate.upgrade(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    path = folder / "paywarden.db"
    assert not path.with_name(path.name + "-wal").exists(), "the template kept its WAL"
    return path


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock, sqlite_template: Path) -> Iterator[Store]:
    shutil.copyfile(sqlite_template, tmp_path / "paywarden.db")
    engine = make_engine(sqlite_url(tmp_path))
    store = Store(engine, clock)
    yield store
    engine.dispose()


@pytest.fixture
def pg_store(pg_database: str, clock: FakeClock) -> Iterator[Store]:
    engine = make_engine(pg_database)
    store = Store(engine, clock)
    truncate_all(store)
    yield store
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test on both backends."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    value: Store = request.getfixturevalue(name)
    return value


# --- the API in-process -----------------------------------------------------------------


class Api:
    """A TestClient bound to the app, with the admin key and helpers to make principals."""

    def __init__(self, client: TestClient, store: Store, admin_key: str) -> None:
        self.client = client
        self.store = store
        self.admin_key = admin_key
        self._counter = 0

    def headers(self, key: str, idempotency_key: str | None = "auto") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}"}
        if idempotency_key == "auto":
            idempotency_key = secrets.token_hex(8)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def post(self, path: str, key: str, body: Any = None, **kwargs: Any) -> Any:
        idem = kwargs.pop("idempotency_key", "auto")
        return self.client.post(
            path, json=body if body is not None else {}, headers=self.headers(key, idem), **kwargs
        )

    def get(self, path: str, key: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(key, None), **kwargs)

    def user(self, currency: str = "usd", funded: int = 0) -> tuple[dict[str, Any], str]:
        self._counter += 1
        response = self.post(
            "/v1/users",
            self.admin_key,
            {
                "email": f"user{self._counter}-{secrets.token_hex(3)}@example.com",
                "name": f"User {self._counter}",
                "currency": currency,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        if funded:
            top = self.post(
                "/v1/top_ups",
                body["secret_key"],
                {
                    "amount": funded,
                    "currency": currency,
                    "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099},
                },
            )
            assert top.status_code == 201, top.text
        return body, body["secret_key"]

    def merchant(self, currency: str = "usd", fee_bps: int = 0) -> tuple[dict[str, Any], str]:
        self._counter += 1
        response = self.post(
            "/v1/merchants",
            self.admin_key,
            {
                "name": f"Shop {self._counter}",
                "category": "coffee",
                "currency": currency,
                "fee_bps": fee_bps,
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body, body["secret_key"]


def make_api(store: Store, **settings: Any) -> Iterator[Api]:
    if "master_key" not in settings and "master_key_file" not in settings:
        # A fresh master key per app, held in memory: tests never write key files into
        # the working tree.
        settings["master_key"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        settings["master_key"] = settings["master_key"].rstrip("=")
    # No background webhook sender in-process: tests that deliver drive the worker
    # themselves (and a fuzzer's endpoints must never be posted to).
    settings.setdefault("webhook_delivery_in_process", False)
    app = create_app(Settings(database_url="sqlite://", **settings), store)
    key = store.run(platform.bootstrap_admin)
    assert key is not None and key.secret
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, store, key.secret)


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    """The API on both backends."""
    yield from make_api(store)


@pytest.fixture
def sqlite_api(sqlite_store: Store) -> Iterator[Api]:
    yield from make_api(sqlite_store)


# --- the real server as a subprocess -----------------------------------------------------


@pytest.fixture
def in_flight() -> InFlight:
    return InFlight()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """The real server on a fresh database, on SQLite and on PostgreSQL."""
    backend: str = request.param
    with fresh_database(backend, tmp_path) as database_url:
        admin_key = prepare(database_url)
        log_path = tmp_path / "server.log"
        with serving(database_url, log_path) as base_url:
            yield LiveServer(backend, base_url, database_url, admin_key, log_path)


def wait_for(predicate: Any, timeout_s: float = 20.0, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise TimeoutError("condition not met in time")
