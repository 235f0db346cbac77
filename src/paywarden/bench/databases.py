"""Scratch databases for one run: a SQLite file in a temporary folder, or a PostgreSQL
database ``pw_bench_<random>`` created on the server and dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["DEFAULT_PG_URL", "pg_reachable", "scratch_postgres", "scratch_sqlite"]

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
_CONNECT_TIMEOUT_S = 3


def pg_reachable(url: str) -> str | None:
    """``None`` when the server at ``url`` answers, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
    return None


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A fresh database on the server of ``server_url``; yields its URL, drops it after."""
    name = f"pw_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _old = server_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(
            server_url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        ) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def scratch_sqlite(folder: Path, name: str) -> Iterator[Path]:
    """A database file path under ``folder``, with its WAL files removed afterwards."""
    path = folder / f"{name}-{secrets.token_hex(4)}.db"
    try:
        yield path
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
