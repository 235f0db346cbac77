"""`paywarden audit verify` on a SQLite file: a clean log exits 0 and says plainly that checkpoint
signatures were not checked without platform keys; a tampered one exits 1 naming the record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nacl.signing
from sqlalchemy import text
from typer.testing import CliRunner

from conftest import sqlite_url
from paywarden.cli.main import app
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import audit
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork
from paywarden.trust.audit import Ed25519Signer

SIGNER = Ed25519Signer(nacl.signing.SigningKey(b"\x09" * 32))
ADA = Principal(PrincipalType.USER, "usr_ada", False, "key_ada", "2026-11-29")


def write_log(store: Store) -> None:
    def work(uow: UnitOfWork) -> None:
        for number in range(12):
            audit.record(uow, "mandate.approved", ADA, f"mnd_{number % 5}", {"amount": number})

    store.run(work)
    store.run(lambda uow: audit.checkpoint(uow, SIGNER))


def run_cli(tmp_path: Path, *extra: str) -> Any:
    # The user's own PAYWARDEN_* settings must not pick another database.
    env = {name: None for name in os.environ if name.startswith("PAYWARDEN_")}
    runner = CliRunner(env=env)
    arguments = ["audit", "verify", "--database-url", sqlite_url(tmp_path), *extra]
    return runner.invoke(app, arguments, catch_exceptions=False)


def test_a_clean_log_verifies_and_says_the_signatures_were_not_checked(
    sqlite_store: Store, tmp_path: Path
) -> None:
    write_log(sqlite_store)
    result = run_cli(tmp_path)
    assert result.exit_code == 0, result.output
    assert "12 record(s)" in result.output
    assert "unverified signature: no platform keys yet" in result.output
    assert "the audit log verifies" in result.output


def test_with_the_platform_key_the_signatures_are_verified(
    sqlite_store: Store, tmp_path: Path
) -> None:
    write_log(sqlite_store)
    key = f"{SIGNER.key_id}={SIGNER.public_key.hex()}"
    result = run_cli(tmp_path, "--public-key", key)
    assert result.exit_code == 0, result.output
    assert "checkpoint signatures verified: 1" in result.output
    assert "unverified" not in result.output


def test_a_tampered_record_exits_1_and_is_named(sqlite_store: Store, tmp_path: Path) -> None:
    write_log(sqlite_store)

    def tamper(uow: UnitOfWork) -> tuple[int, int, int]:
        partition, sequence = uow.execute(
            text(
                "SELECT partition, sequence FROM audit_records WHERE sequence = 2"
                " ORDER BY partition LIMIT 1"
            )
        ).one()
        uow.execute(
            text(
                "UPDATE audit_records SET data = '{\"amount\": 99999}'"
                " WHERE partition = :p AND sequence = :s"
            ),
            {"p": partition, "s": sequence},
        )
        index = uow.execute(
            text(
                "SELECT count(*) FROM audit_records WHERE partition < :p"
                " OR (partition = :p AND sequence < :s)"
            ),
            {"p": partition, "s": sequence},
        ).scalar_one()
        return partition, sequence, index

    partition, sequence, index = sqlite_store.run(tamper)
    result = run_cli(tmp_path)
    assert result.exit_code == 1, result.output
    assert (
        f"first bad record: partition {partition}, sequence {sequence} (index {index} "
        in result.output
    )
    assert "modified" in result.output


def test_a_bad_public_key_option_is_refused(sqlite_store: Store, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--public-key", "no-equals-sign")
    assert result.exit_code == 2


def test_a_database_from_before_the_audit_log_says_to_migrate(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path))
    migrate.upgrade(engine, "0002")
    engine.dispose()
    result = run_cli(tmp_path)
    assert result.exit_code == 2
    assert "paywarden migrate" in result.output
