"""Online backup and restore of the platform's database.

- **SQLite**: SQLite's online backup API (``sqlite3.Connection.backup``) copies a consistent
  snapshot page by page while the server keeps serving; the copy is checked with
  ``PRAGMA integrity_check`` before it is kept. Restore copies the backup into the target
  the same way (the target's ``-wal`` and ``-shm`` files are removed first: a stale WAL
  would be replayed over the restored pages).
- **PostgreSQL**: ``pg_dump --format=custom`` (a consistent snapshot in one transaction,
  online) and ``pg_restore --clean --if-exists --no-owner --single-transaction``. The
  client tools must be on ``PATH`` (or under ``/usr/lib/postgresql/*/bin``), of the
  server's major version or newer.

The master key is not in the database: back up ``master.key`` (or ``PAYWARDEN_MASTER_KEY``)
separately; without it the restored platform's signing keys cannot be opened.
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

__all__ = ["BackupResult", "backup", "restore"]

PAGES_PER_STEP = 1_024  # the backup API copies this many pages, then lets writers in
TOOL_TIMEOUT_S = 3_600


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    backend: str


def backup(database_url: str, out: Path) -> BackupResult:
    """Write an online, consistent backup of ``database_url`` to ``out`` (not overwritten)."""
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new file for the backup")
    out.parent.mkdir(parents=True, exist_ok=True)
    backend = _backend(database_url)
    if backend == "sqlite":
        _sqlite_copy(_sqlite_path(database_url), out)
    else:
        _run_tool("pg_dump", "--format=custom", f"--file={out}", _libpq_url(database_url))
    return BackupResult(out, out.stat().st_size, backend)


def restore(backup_file: Path, database_url: str, *, force: bool = False) -> None:
    """Restore ``backup_file`` into ``database_url``. An existing SQLite file, or a
    PostgreSQL database, is replaced only with ``force``."""
    if not backup_file.is_file():
        raise FileNotFoundError(f"no backup at {backup_file}")
    if _backend(database_url) == "sqlite":
        target = _sqlite_path(database_url)
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; pass force to replace it")
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        _sqlite_copy(backup_file, target)
        return
    if not force:
        raise FileExistsError("restoring into PostgreSQL replaces its tables: pass force")
    _run_tool(
        "pg_restore",
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        f"--dbname={_libpq_url(database_url)}",
        str(backup_file),
    )


def _backend(database_url: str) -> str:
    name = make_url(database_url).get_backend_name()
    if name not in {"sqlite", "postgresql"}:
        raise ValueError(f"cannot back up a {name} database")
    return name


def _sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database has nothing to back up")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup of ``source`` into a new ``target``, checked, then fsynced."""
    if not source.is_file():
        raise FileNotFoundError(f"no SQLite database at {source}")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, pages=PAGES_PER_STEP)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        (result,) = dst.execute("PRAGMA integrity_check").fetchone()
    finally:
        dst.close()
        src.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"the copy fails PRAGMA integrity_check: {result}")
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(target)


def _libpq_url(database_url: str) -> str:
    """The URL as libpq tools take it (no SQLAlchemy driver suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if candidates:
        return candidates[-1]
    raise FileNotFoundError(f"{name} is not installed (PostgreSQL client tools)")


def _run_tool(name: str, *args: str) -> None:
    # The arguments are this module's own flags, a path and the configured URL; no shell.
    result = subprocess.run(  # noqa: S603
        [_tool(name), *args],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed: {result.stderr.strip()[-2000:]}")
