"""On PostgreSQL an agent's payment (``payments.pay``) makes a fixed, small number of round
trips: its reads go out together where what they need is known (``UnitOfWork.prefetch``)
and its writes ride with the next statement that needs an answer (``UnitOfWork.write``).
A change that adds a round trip to the hot path fails here, not only in the benchmark."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from payment_support import ISSUER, MASTER_KEY, NO_RISK, World, budget, make_world, payees
from paywarden.kernel.clock import FakeClock
from paywarden.services import payments
from paywarden.store import prepared
from paywarden.store.unit_of_work import Store, UnitOfWork

pytestmark = pytest.mark.postgres

# 1. the mandate (locked), its usage, the merchant's terms, the payee's and the fee
# account, the receipt key; 2. the risk windows, with the payer's wallet (locked). Every
# write is held back to the commit, with the check that the transfer's postings balance.
PAY_ROUND_TRIPS = 2


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []
    run = prepared._execute

    def counted(connection: Any, form: Any, parameters: Any, *args: Any) -> Any:
        sent.append(form.sql if form is not None else str(parameters))
        return run(connection, form, parameters, *args)

    monkeypatch.setattr(prepared, "_execute", counted)

    @event.listens_for(store.engine, "before_cursor_execute")
    def through_sqlalchemy(*args: Any) -> None:
        sent.append(str(args[2]))  # a statement not registered runs through SQLAlchemy

    return sent


def test_an_approved_payment_makes_two_round_trips_before_its_commit(
    pg_store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    world: World = make_world(pg_store, clock, funded=10_000_000)
    mandate_id = world.mandate([budget(1_000_000), payees(world.merchant)])
    assert world.pay(mandate_id, 100).status == "succeeded"  # first uses (keys) made
    sent = _counting(pg_store, monkeypatch)
    during: list[int] = []

    def work(uow: UnitOfWork) -> str:
        before = len(sent)
        record = payments.pay(
            uow,
            world.agent,
            mandate_id,
            world.merchant,
            100,
            "usd",
            master_key=MASTER_KEY,
            issuer=ISSUER,
            risk=NO_RISK,
        )
        during.append(len(sent) - before)
        return record.status

    assert pg_store.run(work) == "succeeded"
    assert during == [PAY_ROUND_TRIPS], sent
    # and at the commit, the postings' check went with the writes: it was not read again
    assert not [sql for sql in sent if "sum(postings.amount)" in sql], sent
