"""Does a payment cost more when many are stored? The agent payment in-process on a database
already holding 10,000 and then 1,000,000 payments (full profile, or ``--scale``).

Seeding is bulk SQL, the same statements on both backends: one real payment per payer is made
through the pipeline, then ``INSERT ... SELECT`` copies its rows (payment, hold, capture
transfer, its three postings) once per number of a numbers table (filled by
``generate_series`` on PostgreSQL, a recursive CTE on SQLite), with new ids (sorted before the
real ones, as older ids are) and ``created_at`` two days back and older (out of every risk
window, as old history is). Balances and mandate usage are moved by what was copied, so the
books and the usage still verify. Audit records and outbox events are not seeded: the audit
log is a hash chain, written record by record.

The database of one size is seeded once and kept for all rounds; each round measures
``count`` more payments and verifies the whole database (the payments of the run in full,
the seeded ones by count, usage and the books).
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager, ExitStack
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Table, text, update

from paywarden.bench import agents
from paywarden.bench.agents import SEEDED_PREFIX, AgentWorld
from paywarden.bench.model import Outcome, check
from paywarden.store import schema
from paywarden.store.tables_mandates import mandate_usage
from paywarden.store.tables_mandates import payments as payments_table

__all__ = ["SEEDED_PREFIX", "Scaled", "label", "seed"]

AGE = timedelta(days=2)
_STEP_US = 1000  # seeded payments are a millisecond apart


def label(size: int) -> str:
    """10000 -> 10k, 1000000 -> 1m."""
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}m"
    if size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def _numbers(connection: Connection, size: int) -> None:
    connection.execute(text("CREATE TABLE bench_numbers (i BIGINT PRIMARY KEY)"))
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("INSERT INTO bench_numbers SELECT generate_series(0, :last)"), {"last": size - 1}
        )
    else:
        connection.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO bench_numbers SELECT i FROM n"
            ),
            {"last": size - 1},
        )


def _payers(connection: Connection) -> int:
    return int(connection.execute(text("SELECT count(*) FROM bench_templates")).scalar_one())


def seed(world: AgentWorld, size: int) -> None:
    """Store ``size`` more succeeded payments, copied from one real payment per payer."""
    templates = agents.pay_in_process(world, len(world.payers))
    check(len(templates) == len(world.payers), "the template payments were not made")
    p, h, t, po = payments_table, schema.holds, schema.transfers, schema.postings
    age_us = int(AGE.total_seconds() * 1_000_000)
    when = f"t.created_at - {age_us} - (:size - n.i) * {_STEP_US}"
    ids = {
        prefix: f"'{prefix}_{SEEDED_PREFIX}' || (100000000 + n.i)"
        for prefix in ("pay", "hold", "txf")
    }
    with world.store.engine.begin() as connection:
        _numbers(connection, size)
        connection.execute(
            text(
                "CREATE TABLE bench_templates (j INTEGER PRIMARY KEY, payment_id VARCHAR(40), "
                "hold_id VARCHAR(40), transfer_id VARCHAR(40))"
            )
        )
        for j, record in enumerate(templates):
            connection.execute(
                text("INSERT INTO bench_templates VALUES (:j, :p, :h, :t)"),
                {"j": j, "p": record["id"], "h": record["hold"], "t": record["transfer"]},
            )
        sized = {"size": size}
        for table, join, overrides in (
            (
                p,
                "t.id = b.payment_id",
                {"id": ids["pay"], "hold_id": ids["hold"], "transfer_id": ids["txf"]},
            ),
            (h, "t.id = b.hold_id", {"id": ids["hold"], "capture_transfer_id": ids["txf"]}),
            (t, "t.id = b.transfer_id", {"id": ids["txf"], "hold_id": ids["hold"]}),
            (po, "t.transfer_id = b.transfer_id", {"transfer_id": ids["txf"]}),
        ):
            timed = {n: when for n in ("created_at", "updated_at", "expires_at") if n in table.c}
            _copy_sized(connection, table, join, overrides | timed, sized)
        _move_balances(connection, templates, size)
        connection.execute(text("DROP TABLE bench_templates"))
        connection.execute(text("DROP TABLE bench_numbers"))
    if world.store.engine.dialect.name == "postgresql":
        with world.store.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _copy_sized(
    connection: Connection, table: Table, join: str, overrides: dict[str, str], params: Any
) -> None:
    columns = [c.name for c in table.columns if not (c.name == "id" and c.autoincrement is True)]
    select_list = ", ".join(overrides.get(name, f"t.{name}") for name in columns)
    connection.execute(
        text(
            f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 -- our own names
            f"SELECT {select_list} FROM bench_numbers n "
            f"JOIN bench_templates b ON b.j = n.i % :payers JOIN {table.name} t ON {join}"
        ),
        {"payers": _payers(connection), **params},
    )


def _move_balances(connection: Connection, templates: list[Any], size: int) -> None:
    """Each copy of template ``j`` moves what ``j`` moved: the balances and the usage."""
    copies = Counter(i % len(templates) for i in range(size))
    moved: Counter[str] = Counter()
    for j, record in enumerate(templates):
        rows = connection.execute(
            text("SELECT account_id, amount FROM postings WHERE transfer_id = :t"),
            {"t": record["transfer"]},
        )
        for account, amount in rows:
            moved[account] += copies[j] * amount
        u = mandate_usage
        connection.execute(
            update(u)
            .where(u.c.mandate_id == record["mandate"], u.c.period == "lifetime")
            .values(amount=u.c.amount + copies[j] * record["amount"], count=u.c.count + copies[j])
        )
    a = schema.accounts
    for account, amount in moved.items():
        connection.execute(update(a).where(a.c.id == account).values(posted=a.c.posted + amount))


class Scaled:
    """The scale databases of one backend, each seeded once, dropped by :meth:`close`."""

    def __init__(self, database: Any, payers: int) -> None:
        self._database: Any = database  # () -> AbstractContextManager[str]
        self._payers = payers
        self._stack = ExitStack()
        self._worlds: dict[int, tuple[AgentWorld, int]] = {}  # size -> (world, payments made)

    def measure(self, size: int, count: int) -> Outcome:
        if size not in self._worlds:
            database: AbstractContextManager[str] = self._database()
            url = self._stack.enter_context(database)
            world = agents.setup(url, self._payers)
            self._stack.callback(world.store.engine.dispose)
            seed(world, size)
            self._worlds[size] = (world, self._payers)
        world, made = self._worlds[size]
        run = agents.measure_in_process(world, count, checked_from=made, seeded=size)
        self._worlds[size] = (world, made + count)
        return Outcome(run)

    def close(self) -> None:
        self._stack.close()
