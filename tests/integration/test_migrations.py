"""Migrations on SQLite and PostgreSQL: each revision in order, data carried across an upgrade,
idempotent re-runs, no drift from ``schema.metadata``, and the CHECK constraints in force."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from conftest import START, create_pg_database, drop_pg_database, require_pg, sqlite_url
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal
from paywarden.payments.ledger import AccountKind
from paywarden.services import holds, identity, ledger, platform
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.ledger_repo import create_account
from paywarden.store.schema import metadata
from paywarden.store.unit_of_work import Store, UnitOfWork


def _revisions() -> list[str]:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("paywarden.store") / "migrations")
    )
    script = ScriptDirectory.from_config(config)
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


REVISIONS = _revisions()
# The tables each known revision adds; a later revision only has to keep what came before.
TABLES_ADDED = {
    "0001": {
        "accounts",
        "api_keys",
        "holds",
        "merchants",
        "postings",
        "refunds",
        "top_ups",
        "transfers",
        "users",
    },
    "0002": {"events", "idempotency_keys", "platform_settings"},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a brand-new, empty database."""
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path))
        yield engine
        engine.dispose()
        return
    require_pg()
    url = create_pg_database()
    engine = make_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_pg_database(url)


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def rows(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        connection.info["paywarden_read_only"] = True
        return [tuple(row) for row in connection.execute(text(sql))]


# --- revision by revision ---------------------------------------------------------------


def test_the_revisions_form_one_line_starting_at_0001() -> None:
    assert REVISIONS[:2] == ["0001", "0002"]
    assert REVISIONS[-1] == migrate.head_revision()
    assert len(set(REVISIONS)) == len(REVISIONS)


def test_an_empty_database_upgrades_through_each_revision_in_order(empty_engine: Engine) -> None:
    assert migrate.current_revision(empty_engine) is None
    assert table_names(empty_engine) == set()
    seen: set[str] = set()
    for revision in REVISIONS:
        migrate.upgrade(empty_engine, revision)
        assert migrate.current_revision(empty_engine) == revision
        tables = table_names(empty_engine) - {"alembic_version"}
        assert seen <= tables, f"{revision} dropped {seen - tables}"
        assert TABLES_ADDED.get(revision, set()) <= tables - seen, revision
        seen = tables
    assert seen == set(metadata.tables)
    assert rows(empty_engine, "SELECT version_num FROM alembic_version") == [(REVISIONS[-1],)]


def test_migrating_twice_is_a_no_op(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    store = Store(empty_engine, FakeClock(START))
    user, _key = store.run(
        lambda uow: identity.create_user(
            uow, email="ada@example.com", name="Ada", currency="usd", livemode=False
        )
    )
    tables = table_names(empty_engine)
    migrate.upgrade(empty_engine)
    migrate.upgrade(empty_engine, "head")
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    assert table_names(empty_engine) == tables
    assert rows(empty_engine, "SELECT id, email FROM users") == [(user.id, "ada@example.com")]
    assert rows(empty_engine, "SELECT count(*) FROM alembic_version") == [(1,)]


# --- data written at 0001 survives the upgrade to head ----------------------------------

MICROS = int(START.timestamp()) * 1_000_000
ALICE_SECRET = "pw_test_" + "a" * 43
SHOP_SECRET = "pw_test_" + "s" * 43
ALICE, SHOP = "usr_01JD6Z5R3K8M9N0P1Q2R3S4T5V", "mer_01JD6Z5R3K8M9N0P1Q2R3S4T5V"
WALLET, SHOP_ACCOUNT = "acct_01JD6Z5R3K8M9N0P1Q2R3S4T51", "acct_01JD6Z5R3K8M9N0P1Q2R3S4T52"
FUNDING, FEES = "acct_01JD6Z5R3K8M9N0P1Q2R3S4T53", "acct_01JD6Z5R3K8M9N0P1Q2R3S4T54"
TOP_UP_TXF, PAY_TXF = "txf_01JD6Z5R3K8M9N0P1Q2R3S4T51", "txf_01JD6Z5R3K8M9N0P1Q2R3S4T52"
TOP_UP = "top_01JD6Z5R3K8M9N0P1Q2R3S4T5V"
HOLD = "hold_01JD6Z5R3K8M9N0P1Q2R3S4T5V"


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def seed_at_0001(engine: Engine) -> None:
    """What a 0001 installation holds after some use, written in plain SQL: Alice topped up
    100.00, paid the shop 15.00 directly, and has a pending hold of 20.00 for it."""
    now = MICROS
    account_sql = (
        "INSERT INTO accounts (id, livemode, kind, currency, owner_id, system_key,"
        " non_negative, posted, pending_out, created_at) VALUES"
        " (:id, false, :kind, 'usd', :owner, :system_key, :non_negative, :posted, :pending,"
        " :now)"
    )
    transfer_sql = (
        "INSERT INTO transfers (id, livemode, kind, currency, amount, source_account_id,"
        " destination_account_id, top_up_id, created_at)"
        " VALUES (:id, false, :kind, 'usd', :amount, :source, :destination, :top_up, :now)"
    )
    posting_sql = (
        "INSERT INTO postings (transfer_id, account_id, currency, amount, created_at)"
        " VALUES (:transfer, :account, 'usd', :amount, :now)"
    )
    key_sql = (
        "INSERT INTO api_keys (id, livemode, principal_type, principal_id, secret_hash,"
        " secret_hint, api_version, created_at)"
        " VALUES (:id, false, :type, :owner, :hash, 'pw_test_…aaaa', '2026-11-29', :now)"
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, livemode, email, name, created_at)"
                " VALUES (:id, false, 'alice@example.com', 'Alice', :now)"
            ),
            {"id": ALICE, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO merchants (id, livemode, name, category, currency, fee_bps,"
                " created_at) VALUES (:id, false, 'Corner Coffee', 'coffee', 'usd', 250, :now)"
            ),
            {"id": SHOP, "now": now},
        )
        connection.execute(
            text(account_sql),
            [
                {
                    "id": WALLET,
                    "kind": "user_wallet",
                    "owner": ALICE,
                    "system_key": None,
                    "non_negative": True,
                    "posted": 8_500,
                    "pending": 2_000,
                    "now": now,
                },
                {
                    "id": SHOP_ACCOUNT,
                    "kind": "merchant",
                    "owner": SHOP,
                    "system_key": None,
                    "non_negative": True,
                    "posted": 1_500,
                    "pending": 0,
                    "now": now,
                },
                {
                    "id": FUNDING,
                    "kind": "external_funding",
                    "owner": None,
                    "system_key": "external_funding:usd:test",
                    "non_negative": False,
                    "posted": -10_000,
                    "pending": 0,
                    "now": now,
                },
                {
                    "id": FEES,
                    "kind": "platform_fees",
                    "owner": None,
                    "system_key": "platform_fees:usd:test",
                    "non_negative": True,
                    "posted": 0,
                    "pending": 0,
                    "now": now,
                },
            ],
        )
        connection.execute(
            text(transfer_sql),
            [
                {
                    "id": TOP_UP_TXF,
                    "kind": "top_up",
                    "amount": 10_000,
                    "source": FUNDING,
                    "destination": WALLET,
                    "top_up": TOP_UP,
                    "now": now,
                },
                {
                    "id": PAY_TXF,
                    "kind": "transfer",
                    "amount": 1_500,
                    "source": WALLET,
                    "destination": SHOP_ACCOUNT,
                    "top_up": None,
                    "now": now,
                },
            ],
        )
        connection.execute(
            text(posting_sql),
            [
                {"transfer": TOP_UP_TXF, "account": FUNDING, "amount": -10_000, "now": now},
                {"transfer": TOP_UP_TXF, "account": WALLET, "amount": 10_000, "now": now},
                {"transfer": PAY_TXF, "account": WALLET, "amount": -1_500, "now": now},
                {"transfer": PAY_TXF, "account": SHOP_ACCOUNT, "amount": 1_500, "now": now},
            ],
        )
        connection.execute(
            text(
                "INSERT INTO top_ups (id, livemode, account_id, currency, amount, status,"
                " card_token, card_brand, card_last4, transfer_id, created_at) VALUES"
                " (:id, false, :account, 'usd', 10000, 'succeeded', 'tok_0123456789abcdef01234567',"
                " 'visa', '4242', :transfer, :now)"
            ),
            {"id": TOP_UP, "account": WALLET, "transfer": TOP_UP_TXF, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO holds (id, livemode, source_account_id, destination_account_id,"
                " currency, amount, status, captured_amount, refunded_amount, fee_amount,"
                " fee_refunded, description, expires_at, created_at, updated_at) VALUES"
                " (:id, false, :source, :destination, 'usd', 2000, 'pending', 0, 0, 0, 0,"
                " 'two flat whites', :expires, :now, :now)"
            ),
            {
                "id": HOLD,
                "source": WALLET,
                "destination": SHOP_ACCOUNT,
                "expires": now + 7 * 86_400 * 1_000_000,
                "now": now,
            },
        )
        connection.execute(
            text(key_sql),
            [
                {
                    "id": "key_01JD6Z5R3K8M9N0P1Q2R3S4T51",
                    "type": "user",
                    "owner": ALICE,
                    "hash": _secret_hash(ALICE_SECRET),
                    "now": now,
                },
                {
                    "id": "key_01JD6Z5R3K8M9N0P1Q2R3S4T52",
                    "type": "merchant",
                    "owner": SHOP,
                    "hash": _secret_hash(SHOP_SECRET),
                    "now": now,
                },
            ],
        )


def balances(engine: Engine) -> dict[str, tuple[int, int]]:
    return {
        row[0]: (int(row[1]), int(row[2]))
        for row in rows(engine, "SELECT id, posted, pending_out FROM accounts")
    }


def assert_ledger_consistent(engine: Engine) -> None:
    """Balances sum to zero per currency and each equals the sum of its postings."""
    assert (
        rows(
            engine,
            "SELECT currency, sum(posted) FROM accounts GROUP BY currency HAVING sum(posted) <> 0",
        )
        == []
    )
    assert (
        rows(
            engine,
            "SELECT transfer_id FROM postings"
            " GROUP BY transfer_id, currency HAVING sum(amount) <> 0",
        )
        == []
    )
    assert (
        rows(
            engine,
            "SELECT a.id FROM accounts a LEFT JOIN postings p ON p.account_id = a.id"
            " GROUP BY a.id, a.posted HAVING a.posted <> coalesce(sum(p.amount), 0)",
        )
        == []
    )


def test_data_written_at_0001_survives_the_upgrade_and_the_services_use_it(
    empty_engine: Engine,
) -> None:
    engine = empty_engine
    migrate.upgrade(engine, "0001")
    seed_at_0001(engine)
    assert_ledger_consistent(engine)
    before = {
        table: rows(engine, f"SELECT * FROM {table} ORDER BY 1")
        for table in sorted(TABLES_ADDED["0001"])
    }

    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == migrate.head_revision()
    after = {
        table: rows(engine, f"SELECT * FROM {table} ORDER BY 1")
        for table in sorted(TABLES_ADDED["0001"])
    }
    assert after == before
    assert TABLES_ADDED["0002"] <= table_names(engine)
    for table in sorted(TABLES_ADDED["0002"]):
        assert rows(engine, f"SELECT count(*) FROM {table}") == [(0,)]

    clock = FakeClock(START + timedelta(hours=1))
    store = Store(engine, clock)
    bob, _bob_key = store.run(
        lambda uow: identity.create_user(
            uow, email="bob@example.com", name="Bob", currency="usd", livemode=False
        )
    )
    alice: Principal = store.run(lambda uow: identity.authenticate(uow, ALICE_SECRET))
    shop: Principal = store.run(lambda uow: identity.authenticate(uow, SHOP_SECRET))
    assert (alice.id, shop.id) == (ALICE, SHOP)

    def top_up(uow: UnitOfWork) -> Any:
        return ledger.top_up(
            uow,
            alice,
            amount=5_000,
            currency="usd",
            card=ledger.Card("4242424242424242", 12, 2099),
            token_key=platform.instance_secret(uow),
        )

    assert store.run(top_up).status == "succeeded"
    store.run(
        lambda uow: ledger.transfer(uow, alice, destination=bob.id, amount=1_000, currency="usd")
    )
    captured = store.run(lambda uow: holds.capture_hold(uow, shop, HOLD, amount=1_200))
    assert captured.hold.fee_amount == 30  # 2.5 % of 12.00, from the fee_bps stored at 0001

    bob_wallet = bob.wallets[0].id
    assert balances(engine) == {
        WALLET: (8_500 + 5_000 - 1_000 - 1_200, 0),
        SHOP_ACCOUNT: (1_500 + 1_170, 0),
        FUNDING: (-15_000, 0),  # the top-up reused the system account written at 0001
        FEES: (30, 0),
        bob_wallet: (1_000, 0),
    }
    assert_ledger_consistent(engine)
    events = {row[0] for row in rows(engine, "SELECT type FROM events")}
    assert {"user.created", "top_up.succeeded", "transfer.created", "hold.captured"} <= events


# --- the migrated schema is the declared schema -----------------------------------------


def test_the_migrated_database_matches_schema_metadata(store: Store) -> None:
    with store.engine.connect() as connection:
        connection.info["paywarden_read_only"] = True
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


# --- CHECK constraints hold in SQL ------------------------------------------------------


def make_account(store: Store, kind: AccountKind, non_negative: bool) -> str:
    account = store.run(
        lambda uow: create_account(
            uow, kind=kind, currency="usd", livemode=False, owner_id=None, non_negative=non_negative
        )
    )
    return account.id


def execute(store: Store, sql: str, **parameters: Any) -> None:
    store.run(lambda uow: uow.execute(text(sql), parameters))


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("UPDATE accounts SET posted = -1 WHERE id = :id", "available_not_negative"),
        (
            "UPDATE accounts SET posted = 100, pending_out = 101 WHERE id = :id",
            "available_not_negative",
        ),
        ("UPDATE accounts SET pending_out = -1 WHERE id = :id", "pending_out_not_negative"),
        ("UPDATE accounts SET posted = 4611686018427387905 WHERE id = :id", "posted_bounded"),
    ],
)
def test_account_checks_refuse_impossible_balances(store: Store, sql: str, constraint: str) -> None:
    wallet = make_account(store, AccountKind.USER_WALLET, non_negative=True)
    execute(store, "UPDATE accounts SET posted = 100, pending_out = 100 WHERE id = :id", id=wallet)
    with pytest.raises(IntegrityError, match=constraint):
        execute(store, sql, id=wallet)
    assert balances(store.engine)[wallet] == (100, 100)


def test_an_account_without_the_flag_may_go_below_zero_in_sql(store: Store) -> None:
    funding = make_account(store, AccountKind.EXTERNAL_FUNDING, non_negative=False)
    execute(
        store, "UPDATE accounts SET posted = -5000, pending_out = 10 WHERE id = :id", id=funding
    )
    assert balances(store.engine)[funding] == (-5_000, 10)


def test_a_zero_posting_is_refused_in_sql(store: Store) -> None:
    source = make_account(store, AccountKind.EXTERNAL_FUNDING, non_negative=False)
    destination = make_account(store, AccountKind.USER_WALLET, non_negative=True)
    transfer_id = "txf_01JD6Z5R3K8M9N0P1Q2R3S4T5V"

    def write(uow: UnitOfWork) -> None:
        uow.execute(
            text(
                "INSERT INTO transfers (id, livemode, kind, currency, amount, source_account_id,"
                " destination_account_id, created_at)"
                " VALUES (:id, false, 'transfer', 'usd', 1, :source, :destination, 0)"
            ),
            {"id": transfer_id, "source": source, "destination": destination},
        )
        uow.execute(
            text(
                "INSERT INTO postings (transfer_id, account_id, currency, amount, created_at)"
                " VALUES (:id, :account, 'usd', 0, 0)"
            ),
            {"id": transfer_id, "account": destination},
        )

    with pytest.raises(IntegrityError):
        store.run(write)
    assert rows(store.engine, "SELECT count(*) FROM transfers") == [(0,)]
    assert rows(store.engine, "SELECT count(*) FROM postings") == [(0,)]


def test_a_transfer_of_zero_is_refused_in_sql(store: Store) -> None:
    source = make_account(store, AccountKind.EXTERNAL_FUNDING, non_negative=False)
    destination = make_account(store, AccountKind.USER_WALLET, non_negative=True)
    with pytest.raises(IntegrityError):
        execute(
            store,
            "INSERT INTO transfers (id, livemode, kind, currency, amount, source_account_id,"
            " destination_account_id, created_at)"
            " VALUES ('txf_01JD6Z5R3K8M9N0P1Q2R3S4T5V', false, 'transfer', 'usd', 0, :source,"
            " :destination, 0)",
            source=source,
            destination=destination,
        )
