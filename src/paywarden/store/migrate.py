"""Schema migrations with alembic, driven from code (``paywarden migrate``)."""

from __future__ import annotations

import functools
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["current_revision", "head_revision", "upgrade"]


def _config() -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("paywarden.store") / "migrations")
    )
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; safe to run on every start."""
    config = _config()
    with engine.connect() as connection:
        # SQLite: let alembic's own BEGIN run, not our BEGIN IMMEDIATE listener's twice.
        connection.info["paywarden_read_only"] = False
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


@functools.cache  # the migrations shipped with this code: read once (/readyz asks often)
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover -- the package always ships migrations
        raise RuntimeError("no migrations shipped")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        connection.info["paywarden_read_only"] = True
        return MigrationContext.configure(connection).get_current_revision()
