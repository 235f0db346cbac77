"""Concurrent payments in separate transactions (API nodes that do not share a group
commit) never deadlock on PostgreSQL.

A payment inserts a hold, which takes a KEY SHARE lock on the merchant's account (the
foreign key), and then locks the accounts to capture it. Locked ``FOR UPDATE``, two such
payments to one merchant each waited for the other's KEY SHARE lock: a deadlock, which
PostgreSQL broke after a second by failing one (retried, and under load, 503). The
accounts are locked ``FOR NO KEY UPDATE``, which does not conflict with KEY SHARE.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from paywarden.authorization.risk import RiskConfig
from paywarden.bench import agents as bench_agents
from paywarden.payments.holds import fee_for
from paywarden.services import payments
from paywarden.store import schema, unit_of_work
from paywarden.store.tables_mandates import payments as payments_table
from paywarden.store.unit_of_work import Store

pytestmark = pytest.mark.postgres

PAYERS = 8
PAYMENTS_EACH = 6
AMOUNT = 100
NO_RISK = RiskConfig(**bench_agents.RISK)  # rules evaluated, set not to fire


def test_concurrent_payments_to_one_merchant_never_deadlock(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight payers (each a user, an agent and a mandate) pay one merchant (1 % fee)
    at once, each payment in its own transaction."""
    world = bench_agents.setup(pg_store.engine.url.render_as_string(False), PAYERS)
    conflicts: list[str] = []
    transient = unit_of_work._is_transient

    def counted(error: DBAPIError) -> bool:
        if unit_of_work._sqlstate(error) == "40P01":
            conflicts.append(str(error.orig).splitlines()[0])
        return transient(error)

    monkeypatch.setattr(unit_of_work, "_is_transient", counted)
    start = threading.Barrier(PAYERS)
    failures: list[BaseException] = []

    def payer(who: bench_agents.Payer) -> None:
        start.wait()
        try:
            for _ in range(PAYMENTS_EACH):
                paid = world.store.run(
                    lambda uow: payments.pay(
                        uow,
                        who.agent,
                        who.mandate,
                        world.merchant,
                        AMOUNT,
                        "usd",
                        master_key=world.master_key,
                        issuer="https://paywarden.test",
                        risk=NO_RISK,
                    )
                )
                assert paid.status == "succeeded", paid.reasons
        except BaseException as error:  # reported below, with the deadlocks seen
            failures.append(error)

    threads = [threading.Thread(target=payer, args=(who,)) for who in world.payers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not conflicts, f"{len(conflicts)} deadlocks, first: {conflicts[0]}"
        assert not failures, failures[0]
        paid = PAYERS * PAYMENTS_EACH
        with world.store.engine.connect() as connection:
            stored = connection.execute(
                select(func.count())
                .select_from(payments_table)
                .where(payments_table.c.status == "succeeded")
            ).scalar_one()
            postings = connection.execute(select(func.sum(schema.postings.c.amount))).scalar()
            merchant = connection.execute(
                select(schema.accounts.c.posted).where(
                    schema.accounts.c.id == world.merchant_account
                )
            ).scalar_one()
        fee = fee_for(AMOUNT, bench_agents.FEE_BPS)
        assert (stored, postings, merchant) == (paid, 0, paid * (AMOUNT - fee))
    finally:
        world.store.engine.dispose()
