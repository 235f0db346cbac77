"""A private PostgreSQL cluster for fault tests: ``initdb`` in a temporary folder, its own
port, fsync on, started and stopped (cleanly or with an immediate shutdown, PostgreSQL's
crash) by the test. The machine's shared server is never touched.

``initdb`` and ``pg_ctl`` are looked up under ``/usr/lib/postgresql/*/bin`` (the newest
version), then on ``PATH``. PostgreSQL refuses to run as root; when the tests run as root
the cluster runs as the ``postgres`` system user (``runuser``), and its folder is handed to
that user. When none of this is possible, :func:`require_cluster` skips (or fails under
``CI=true``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from live_server import free_port

__all__ = ["PgCluster", "find_pg_bin", "private_cluster", "require_cluster"]

START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120.0
SYSTEM_USER = "postgres"


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_user() -> list[str]:
    """The prefix that runs a command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", SYSTEM_USER, "--"]


def require_cluster() -> Path:
    """The PostgreSQL bin folder, or skip (fail under ``CI=true``) with the reason."""
    reason = None
    pg_bin = find_pg_bin()
    if pg_bin is None:
        reason = "initdb not found under /usr/lib/postgresql/*/bin nor on PATH"
    elif os.geteuid() == 0 and shutil.which("runuser") is None:
        reason = "running as root without runuser: PostgreSQL will not start as root"
    if reason is None:
        assert pg_bin is not None
        return pg_bin
    if os.environ.get("CI") == "true":
        pytest.fail(f"private PostgreSQL cluster unavailable and CI=true: {reason}")
    pytest.skip(f"private PostgreSQL cluster unavailable: {reason}")


class PgCluster:
    """One cluster in ``folder`` on ``port`` (loopback and a socket in the folder)."""

    def __init__(self, pg_bin: Path, folder: Path, port: int) -> None:
        self.pg_bin = pg_bin
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self.log = folder / "postgres.log"
        self.starts = 0
        self.crashes = 0

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [*_as_user(), str(self.pg_bin / tool), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, SYSTEM_USER, SYSTEM_USER)
        # initdb's own sync of its fresh files is skipped (-N); the server runs with fsync on.
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=on -c synchronous_commit=on -c full_page_writes=on "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )  # fmt: skip
        self.starts += 1

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def crash(self) -> None:
        """An immediate shutdown: no checkpoint, the next start replays the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.crashes += 1

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text  # noqa: PLC0415

        engine = create_engine(
            self.admin_url.replace("postgresql://", "postgresql+psycopg://"),
            isolation_level="AUTOCOMMIT",
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    with engine.connect() as connection:
                        connection.execute(text(f'CREATE DATABASE "{name}"'))
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            engine.dispose()
        return self.url(name)


@contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started private cluster, stopped and deleted when the block ends."""
    pg_bin = require_cluster()
    folder = Path(tempfile.mkdtemp(prefix="pw_pgcluster_"))
    cluster = PgCluster(pg_bin, folder, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(Exception):
                cluster.crash()
        shutil.rmtree(folder, ignore_errors=True)
