"""Store.run: one transaction, committed once after the paired SQL checks, or rolled back;
transient conflicts retried, everything else raised at once."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from paywarden.kernel.errors import InvariantViolation, Unavailable
from paywarden.payments.ledger import AccountKind, Posting
from paywarden.services import identity
from paywarden.store import ledger_repo, unit_of_work
from paywarden.store.unit_of_work import RETRY_ATTEMPTS_MAX, RETRY_BACKOFF_S_MAX, Store, UnitOfWork


def count(store: Store, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"
    return int(store.run(lambda uow: uow.execute(text(sql)).scalar_one(), read_only=True))


def create_user(uow: UnitOfWork, email: str = "ada@example.com") -> Any:
    return identity.create_user(uow, email=email, name="Ada", currency="usd", livemode=False)


def two_accounts(store: Store) -> tuple[str, str]:
    def work(uow: UnitOfWork) -> tuple[str, str]:
        funding = ledger_repo.create_account(
            uow,
            kind=AccountKind.EXTERNAL_FUNDING,
            currency="usd",
            livemode=False,
            owner_id=None,
            non_negative=False,
        )
        wallet = ledger_repo.create_account(
            uow,
            kind=AccountKind.USER_WALLET,
            currency="usd",
            livemode=False,
            owner_id=None,
            non_negative=True,
        )
        return funding.id, wallet.id

    return store.run(work)


def write_transfer(uow: UnitOfWork, postings: list[Posting]) -> str:
    return ledger_repo.insert_transfer(
        uow,
        kind="transfer",
        livemode=False,
        currency="usd",
        amount=100,
        source_account_id=postings[0].account_id,
        destination_account_id=postings[-1].account_id,
        postings=postings,
        now=uow.clock.now(),
    )


# --- commit and rollback ----------------------------------------------------------------


def test_a_run_commits_what_its_work_wrote(store: Store) -> None:
    user, _key = store.run(create_user)
    assert count(store, "users") == 1
    assert store.run(lambda uow: identity.get_user(uow, user.id, False), read_only=True) == user


def test_an_exception_rolls_back_everything_the_work_wrote(store: Store) -> None:
    def work(uow: UnitOfWork) -> None:
        create_user(uow)
        raise RuntimeError("the card network fell over")

    with pytest.raises(RuntimeError, match="card network"):
        store.run(work)
    for table in ("users", "accounts", "api_keys", "events"):
        assert count(store, table) == 0, table


def test_a_balanced_transfer_passes_the_paired_check_and_commits(store: Store) -> None:
    funding, wallet = two_accounts(store)
    transfer_id = store.run(
        lambda uow: write_transfer(
            uow, [Posting(funding, -100, "usd"), Posting(wallet, 100, "usd")]
        )
    )
    assert transfer_id.startswith("txf_")
    assert count(store, "transfers") == 1
    assert count(store, "postings") == 2


def test_stored_postings_that_do_not_sum_to_zero_stop_the_commit(store: Store) -> None:
    funding, wallet = two_accounts(store)
    with pytest.raises(InvariantViolation, match="do not sum to zero"):
        store.run(
            lambda uow: write_transfer(
                uow, [Posting(funding, -100, "usd"), Posting(wallet, 99, "usd")]
            )
        )
    assert count(store, "transfers") == 0
    assert count(store, "postings") == 0


def test_postings_balanced_in_amount_but_not_per_currency_stop_the_commit(store: Store) -> None:
    funding, wallet = two_accounts(store)
    with pytest.raises(InvariantViolation, match="do not sum to zero"):
        store.run(
            lambda uow: write_transfer(
                uow, [Posting(funding, -100, "usd"), Posting(wallet, 100, "eur")]
            )
        )
    assert count(store, "transfers") == 0


def test_a_transfer_written_without_postings_stops_the_commit(store: Store) -> None:
    funding, wallet = two_accounts(store)
    transfer_id = "txf_01JD6Z5R3K8M9N0P1Q2R3S4T5V"

    def work(uow: UnitOfWork) -> None:
        uow.execute(
            text(
                "INSERT INTO transfers (id, livemode, kind, currency, amount, source_account_id,"
                " destination_account_id, created_at)"
                " VALUES (:id, false, 'transfer', 'usd', 100, :source, :destination, 0)"
            ),
            {"id": transfer_id, "source": funding, "destination": wallet},
        )
        uow.wrote_transfer(transfer_id)

    with pytest.raises(InvariantViolation, match="without postings"):
        store.run(work)
    assert count(store, "transfers") == 0


def test_a_read_only_run_returns_its_result_but_writes_nothing(store: Store) -> None:
    def write_a_row(uow: UnitOfWork) -> str:
        uow.execute(
            text(
                "INSERT INTO users (id, livemode, email, name, created_at) "
                "VALUES ('usr_x', false, 'ada@example.com', 'Ada', 0)"
            )
        )
        return "written"

    assert store.run(write_a_row, read_only=True) == "written"
    assert count(store, "users") == 0


def test_an_audited_service_refuses_to_run_read_only(store: Store) -> None:
    # Its audit record could not survive the run, so the service must not appear to succeed.
    with pytest.raises(InvariantViolation, match="read-only"):
        store.run(create_user, read_only=True)
    for table in ("users", "accounts", "api_keys", "events", "audit_records"):
        assert count(store, table) == 0, table


def test_a_read_only_run_does_not_run_the_paired_check(store: Store) -> None:
    # Nothing it wrote survives, so there is nothing to check: the run returns normally.
    funding, wallet = two_accounts(store)
    store.run(
        lambda uow: write_transfer(
            uow, [Posting(funding, -100, "usd"), Posting(wallet, 99, "usd")]
        ),
        read_only=True,
    )
    assert count(store, "transfers") == 0


# --- retries ----------------------------------------------------------------------------


class _SerializationFailure(Exception):
    sqlstate = "40001"


class _DeadlockDetected(Exception):
    sqlstate = "40P01"


TRANSIENT_ERRORS = {
    "sqlite database is locked": lambda: OperationalError(
        "INSERT", {}, sqlite3.OperationalError("database is locked")
    ),
    "sqlite database is busy": lambda: OperationalError(
        "INSERT", {}, sqlite3.OperationalError("database is busy")
    ),
    "postgres serialization failure": lambda: OperationalError(
        "UPDATE", {}, _SerializationFailure("could not serialize access")
    ),
    "postgres deadlock": lambda: OperationalError(
        "UPDATE", {}, _DeadlockDetected("deadlock detected")
    ),
}


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff instead of waiting it out."""
    recorded: list[float] = []
    monkeypatch.setattr(unit_of_work.time, "sleep", recorded.append)
    return recorded


@pytest.mark.parametrize("make_error", TRANSIENT_ERRORS.values(), ids=TRANSIENT_ERRORS.keys())
def test_a_transient_error_is_retried_until_the_work_succeeds(
    store: Store, sleeps: list[float], make_error: Any
) -> None:
    attempts: list[int] = []

    def work(uow: UnitOfWork) -> str:
        attempts.append(len(attempts) + 1)
        # Each attempt writes; only the one that succeeds may leave its row behind.
        uow.execute(
            text("INSERT INTO platform_settings (name, value) VALUES (:name, 'x')"),
            {"name": f"attempt-{len(attempts)}"},
        )
        if len(attempts) <= 2:
            raise make_error()
        return "done"

    assert store.run(work) == "done"
    assert attempts == [1, 2, 3]
    names = store.run(
        lambda uow: [row.name for row in uow.execute(text("SELECT name FROM platform_settings"))],
        read_only=True,
    )
    assert names == ["attempt-3"]
    assert len(sleeps) == 2
    assert all(0 <= seconds <= RETRY_BACKOFF_S_MAX for seconds in sleeps)


def test_a_transient_error_that_persists_becomes_unavailable_after_the_last_attempt(
    store: Store, sleeps: list[float]
) -> None:
    attempts: list[int] = []

    def work(uow: UnitOfWork) -> None:
        attempts.append(1)
        raise TRANSIENT_ERRORS["sqlite database is locked"]()

    with pytest.raises(Unavailable) as caught:
        store.run(work)
    assert len(attempts) == RETRY_ATTEMPTS_MAX
    assert len(sleeps) == RETRY_ATTEMPTS_MAX - 1
    assert caught.value.status == 503
    assert caught.value.retry_after_s == 1
    assert isinstance(caught.value.__cause__, OperationalError)


def test_a_non_transient_database_error_is_not_retried(store: Store, sleeps: list[float]) -> None:
    attempts: list[int] = []

    def duplicate_key(uow: UnitOfWork) -> None:
        attempts.append(1)
        for _ in range(2):
            uow.execute(text("INSERT INTO platform_settings (name, value) VALUES ('same', 'x')"))

    with pytest.raises(IntegrityError):
        store.run(duplicate_key)
    assert attempts == [1]
    assert sleeps == []
    assert count(store, "platform_settings") == 0


def test_an_operational_error_that_is_not_a_conflict_is_unavailable_at_once(
    store: Store, sleeps: list[float]
) -> None:
    attempts: list[int] = []

    def work(uow: UnitOfWork) -> None:
        attempts.append(1)
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))

    with pytest.raises(Unavailable):
        store.run(work)
    assert attempts == [1]
    assert sleeps == []


def test_a_domain_error_is_not_retried(store: Store, sleeps: list[float]) -> None:
    attempts: list[int] = []

    def work(uow: UnitOfWork) -> None:
        attempts.append(1)
        raise InvariantViolation("a bug")

    with pytest.raises(InvariantViolation):
        store.run(work)
    assert attempts == [1]
    assert sleeps == []


# --- SQLite set up for money ------------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_full_sync_and_foreign_keys(sqlite_store: Store) -> None:
    def pragmas(uow: UnitOfWork) -> dict[str, Any]:
        names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "temp_store")
        return {name: uow.execute(text(f"PRAGMA {name}")).scalar_one() for name in names}

    for read_only in (True, False):
        assert sqlite_store.run(pragmas, read_only=read_only) == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "busy_timeout": 30_000,
            "temp_store": 2,  # memory: savepoint journals are not temporary files
        }


def test_the_pool_hands_out_the_connection_returned_last(store: Store) -> None:
    """SQLite: its page cache is still valid; PostgreSQL: its statements are prepared, and it
    was not idle long enough to need a ping (see store.engine)."""
    engine = store.engine
    first, second = engine.connect(), engine.connect()
    first_dbapi, second_dbapi = (
        first.connection.dbapi_connection,
        second.connection.dbapi_connection,
    )
    first.close()
    second.close()  # returned last
    with engine.connect() as again:
        assert again.connection.dbapi_connection is second_dbapi
        assert again.connection.dbapi_connection is not first_dbapi


def test_sqlite_enforces_foreign_keys(sqlite_store: Store) -> None:
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        sqlite_store.run(
            lambda uow: uow.execute(
                text(
                    "INSERT INTO postings (transfer_id, account_id, currency, amount, created_at)"
                    " VALUES ('txf_missing', 'acct_missing', 'usd', 1, 0)"
                )
            )
        )
