"""Alembic environment: runs on a connection handed over by paywarden.store.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from paywarden.store.schema import metadata

config = context.config


def run() -> None:
    connection: Connection | None = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `paywarden migrate`")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
