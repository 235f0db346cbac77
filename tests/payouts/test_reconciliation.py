"""The reconciliation export ties out to the ledger (issue 4's "Done when"), on both backends.

A mixed run: hold captures (in full and in part) and agent payments under a mandate, full
and partial refunds, a fee change between captures, payouts that are paid, one that fails
and one still pending. Afterwards every merchant's closing balance is its ledger balance,
the platform fee account holds the net fees, and the clearing account the pending payouts.
Split into two periods, the balances chain and the flows add up; the CSV and the command
line say the same.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from conftest import sqlite_url
from payment_support import budget, make_world, payees
from payout_support import (
    ADMIN,
    FAILING_ACCOUNT,
    Money,
    assert_ties_out,
    principal,
    system_balance,
)
from paywarden.cli.main import app as cli
from paywarden.kernel.clock import FakeClock, rfc3339
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import reconciliation
from paywarden.store import migrate
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FLOWS = ("gross_captured", "fees", "refunds", "fees_returned", "net", "other")


def _balance_at(store: Store, account: str, instant: datetime) -> int:
    with store.engine.connect() as connection:
        total = connection.execute(
            text(
                "SELECT COALESCE(SUM(p.amount), 0) FROM postings p"
                " JOIN transfers t ON t.id = p.transfer_id"
                " WHERE p.account_id = :account AND t.created_at <= :at"
            ),
            {"account": account, "at": (instant - EPOCH) // timedelta(microseconds=1)},
        ).scalar_one()
    return int(total)


def _mixed_run(money: Money) -> tuple[list[Principal], datetime, datetime]:
    """The run; returns the merchants, the instant between the two halves, and the end."""
    step = timedelta(minutes=7)
    cafe, grocer = money.merchant(fee_bps=250), money.merchant(account=FAILING_ACCOUNT)
    books = money.merchant(fee_bps=1_000)
    world = make_world(money.store, money.clock, funded=200_000)
    agent_shop = principal(PrincipalType.MERCHANT, world.merchant)
    money.register(agent_shop, "000123456789")
    alice, bob = money.payer(), money.payer()
    noodles, yen_payer = money.merchant(fee_bps=300, currency="jpy"), money.payer(currency="jpy")

    first = money.capture(alice, cafe, 10_001)  # fee 250
    money.clock.advance(step)
    partial = money.capture(bob, cafe, 8_000, captured=6_333)  # fee 158
    money.capture(alice, grocer, 5_000)
    odd = money.capture(bob, books, 999)  # fee 99
    mandate = world.mandate([budget(100_000), payees(world.merchant)])
    paid_by_agent = world.pay(mandate, 4_321)
    world.pay(mandate, 1_000)
    money.clock.advance(step)
    money.refund(cafe, first)  # in full: the whole fee comes back
    money.refund(cafe, partial, 1_111)
    money.refund(cafe, partial, 7)  # partial refunds: fee shares rounded on running totals
    money.refund(books, odd, 333)
    money.refund(agent_shop, str(paid_by_agent.hold_id), 21)
    money.set_fee(cafe, 500)
    money.capture(alice, cafe, 2_000)  # at the new fee: 100
    money.payout(cafe, 3_000)
    money.payout(agent_shop)
    money.process()
    money.payout(grocer, 1_234)  # pending at `middle`; fails after it: money back then
    money.clock.advance(step)
    middle = money.clock.now()
    money.clock.advance(step)
    money.payout(grocer, 766)
    money.process()  # both grocer payouts fail (the first one's return is after `middle`)
    money.capture(bob, books, 10_000, captured=9_999)
    yen = money.capture(yen_payer, noodles, 1_480, currency="jpy")  # fee 44
    money.refund(noodles, yen, 480)
    money.payout(noodles, 600)
    money.set_fee(books, 0)
    money.capture(alice, books, 1_234)
    money.payout(books, 5_000)
    money.process()
    money.payout(cafe, 1_000)  # left pending
    money.clock.advance(step)
    return [cafe, grocer, books, agent_shop, noodles], middle, money.clock.now()


def test_the_export_ties_out_to_the_ledger_after_a_mixed_run(
    store: Store, clock: FakeClock
) -> None:
    money = Money(store, clock)
    merchants, middle, end = _mixed_run(money)

    report = assert_ties_out(money, merchants)

    rows = {row.merchant: row for row in report.rows}
    cafe, grocer = rows[str(merchants[0].id)], rows[str(merchants[1].id)]
    assert (cafe.gross_captured, cafe.refunds) == (10_001 + 6_333 + 2_000, 10_001 + 1_118)
    assert cafe.payouts_paid == 3_000 and cafe.payouts_pending == 1_000
    assert grocer.payouts_paid == grocer.payouts_pending == 0  # both failed, money back
    assert grocer.closing_balance == 5_000
    assert system_balance(store, "clearing") == 1_000
    assert report.totals()["usd"].fees > 0 and report.totals()["usd"].fees_returned > 0
    assert (report.totals()["jpy"].fees, report.totals()["jpy"].fees_returned) == (44, 14)
    assert system_balance(store, "platform_fees", "jpy") == 30

    first = money.reconcile(end=middle)
    second = money.reconcile(start=middle, end=end)
    whole = {row.account: row for row in report.rows}
    for before, after in zip(first.rows, second.rows, strict=True):
        assert before.account == after.account
        assert before.closing_balance == after.opening_balance
        assert before.closing_balance == _balance_at(store, before.account, middle)
        assert after.closing_balance == whole[after.account].closing_balance
        for name in FLOWS:
            assert getattr(before, name) + getattr(after, name) == getattr(
                whole[after.account], name
            ), name
    late = {row.merchant: row for row in second.rows}[grocer.merchant]
    assert late.payouts_returned == 1_234  # made before `middle`, failed after it


def test_the_csv_has_a_row_per_merchant_and_a_total_per_currency(
    store: Store, clock: FakeClock
) -> None:
    money = Money(store, clock)
    shop, other, payer = money.merchant(fee_bps=100), money.merchant(), money.payer()
    money.capture(payer, shop, 5_000)
    money.capture(payer, other, 700)

    parsed = list(csv.DictReader(io.StringIO(reconciliation.to_csv(money.reconcile()))))

    assert list(parsed[0]) == list(reconciliation.COLUMNS)
    by_merchant = {row["merchant"]: row for row in parsed}
    assert set(by_merchant) == {str(shop.id), str(other.id), "total"}
    total = by_merchant["total"]
    assert total["gross_captured"] == "5700" and total["fees"] == "50"
    assert total["closing_balance"] == str(4_950 + 700)


def test_a_merchant_reconciles_only_itself(store: Store, clock: FakeClock) -> None:
    money = Money(store, clock)
    shop, other = money.merchant(), money.merchant()
    report = money.reconcile(shop)

    assert [row.merchant for row in report.rows] == [shop.id]
    assert report.platform_fees == {}  # the platform's own figures are for admins
    with pytest.raises(Exception, match="no such merchant"):
        money.reconcile(shop, merchant=str(other.id))
    with pytest.raises(Exception, match="from must be before to"):
        money.reconcile(ADMIN, start=clock.now(), end=clock.now())


def test_the_command_line_settles_payouts_and_writes_the_export(
    tmp_path: Path, clock: FakeClock
) -> None:
    url = sqlite_url(tmp_path)
    engine = make_engine(url)
    migrate.upgrade(engine)
    money = Money(Store(engine, clock), clock)
    shop, payer = money.merchant(fee_bps=200), money.payer()
    money.capture(payer, shop, 10_000)
    money.payout(shop, 4_000)
    runner = CliRunner()

    processed = runner.invoke(cli, ["payouts", "process", "--database-url", url])
    out = tmp_path / "reconciliation.csv"
    # The data was written at the fake time, the payout settled by the command line at the
    # real one: the export must reach past both (the fake clock starts at a fixed instant).
    end = rfc3339(max(clock.now(), datetime.now(UTC)) + timedelta(hours=1))
    exported = runner.invoke(
        cli, ["payouts", "reconcile", "--out", str(out), "--to", end, "--database-url", url]
    )

    assert processed.exit_code == 0, processed.output
    assert "settled 1 payout(s)" in processed.output
    assert exported.exit_code == 0, exported.output
    assert "usd: net fees 200 = platform fee account" in exported.output
    rows = {
        row["merchant"]: row for row in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))
    }
    assert rows[str(shop.id)]["payouts_paid"] == "4000"
    assert rows[str(shop.id)]["closing_balance"] == "5800"
    engine.dispose()
