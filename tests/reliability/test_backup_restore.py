"""Backup and restore: ``paywarden backup`` of a live database (payments keep committing
while it runs) restores, with ``paywarden restore``, to a platform whose ledger, audit chain
and receipts all verify, on SQLite (the online backup API) and PostgreSQL (pg_dump, on a
private cluster the test creates)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from conftest import make_api
from crash_support import check_invariants
from figures_support import report
from paywarden.cli.main import app as cli
from paywarden.kernel.clock import FakeClock
from paywarden.services import keys
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.tables_mandates import payments
from paywarden.store.unit_of_work import Store
from paywarden.trust.receipts import verify_receipt
from pg_cluster_support import private_cluster
from security_support import make_principals

PAYMENTS_DURING_BACKUP = 15


def _payments_during(
    agent: Any, body: dict[str, Any], done: threading.Event, statuses: list[int]
) -> None:
    for _ in range(PAYMENTS_DURING_BACKUP):
        statuses.append(agent.post("/v1/payments", body).status_code)
        if done.is_set() and len(statuses) >= 3:
            break


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_an_online_backup_restores_to_a_platform_that_verifies(
    backend: str, tmp_path: Path, clock: FakeClock
) -> None:
    runner = CliRunner()
    with _databases(backend, tmp_path) as (source_url, target_url):
        engine = make_engine(source_url)
        migrate.upgrade(engine)
        store = Store(engine, clock)
        statuses: list[int] = []
        for api in make_api(store):
            principals = make_principals(api, clock)
            agent = principals.victim_agent
            body = {
                "mandate": principals.victim.ids["mnd"],
                "merchant": principals.victim.ids["mer"],
                "amount": 100,
                "currency": "usd",
            }
            done = threading.Event()
            worker = threading.Thread(target=_payments_during, args=(agent, body, done, statuses))
            worker.start()
            out = tmp_path / "paywarden.backup"
            made = runner.invoke(cli, ["backup", "--out", str(out), "--database-url", source_url])
            done.set()
            worker.join(timeout=120)
            assert made.exit_code == 0, made.output
        engine.dispose()
        assert statuses and all(status == 201 for status in statuses), statuses
        again = runner.invoke(
            cli, ["restore", "--from", str(out), "--database-url", target_url, "--force"]
        )
        assert again.exit_code == 0, again.output
        restored, receipts = _verify(target_url)
    assert restored >= 2  # the victim's two payments made before the backup at least
    report(
        f"backup/restore [{backend}]: {restored} payments restored ({len(statuses)} made during "
        f"the backup), ledger and audit chain verify, {receipts} receipts verify"
    )


@contextmanager
def _databases(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source URL, restore target URL): two SQLite files, or two databases on a private
    PostgreSQL cluster."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'restored.db'}"
        return
    with private_cluster() as cluster:
        yield cluster.create_database("source"), cluster.create_database("restored")


def _verify(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        store = Store(engine)
        rows = store.run(lambda uow: list(uow.execute(select(payments))), read_only=True)
        key_set = store.run(keys.verification_keys, read_only=True)
    finally:
        engine.dispose()
    check_invariants(database_url, [], {row.id for row in rows})
    verified = 0
    for row in rows:
        if row.receipt:
            assert verify_receipt(row.receipt, key_set) is not None
            verified += 1
    assert verified, "no receipt to verify"
    return len(rows), verified


def test_backup_refuses_to_overwrite_and_restore_to_replace_without_force(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    out = tmp_path / "b.backup"
    assert runner.invoke(cli, ["backup", "--out", str(out), "--database-url", url]).exit_code == 0
    second = runner.invoke(cli, ["backup", "--out", str(out), "--database-url", url])
    assert second.exit_code == 1 and "exists" in second.output
    refused = runner.invoke(cli, ["restore", "--from", str(out), "--database-url", url])
    assert refused.exit_code == 1 and "force" in refused.output
