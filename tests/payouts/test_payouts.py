"""Payouts through the services, on both backends: the pending → paid and pending → failed
paths with their transfers, events and audit records; the payable limit, the settlement
delay, and who may ask."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from payout_support import ADMIN, FAILING_ACCOUNT, Money, assert_ties_out, principal, system_balance
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    Unprocessable,
)
from paywarden.kernel.principals import PrincipalType
from paywarden.payments.payouts import PayoutStatus
from paywarden.services import payouts
from paywarden.store.unit_of_work import Store


@pytest.fixture
def money(store: Store, clock: FakeClock) -> Money:
    return Money(store, clock)


def _events(store: Store, kind: str) -> list[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT data FROM events WHERE type = :t ORDER BY id"), {"t": kind}
        ).all()
    return [str(row[0]) for row in rows]


def _audit_types(store: Store, subject: str) -> list[str]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_type FROM audit_records WHERE subject_id = :s"), {"s": subject}
        ).all()
    return sorted(str(row[0]) for row in rows)


def test_a_paid_payout_moves_the_balance_to_clearing_then_outside(money: Money) -> None:
    shop, payer = money.merchant(fee_bps=250), money.payer()
    money.capture(payer, shop, 10_000)  # the shop keeps 9 750, the platform 250
    funding_before = system_balance(money.store, "external_funding")

    created = money.payout(shop)

    assert created.payout.status is PayoutStatus.PENDING
    assert created.payout.amount == 9_750
    assert money.balance(shop).account.posted == 0
    assert money.balance(shop).pending_payouts == 9_750
    assert system_balance(money.store, "clearing") == 9_750
    assert money.process() == 1
    paid = money.run(lambda uow: payouts.get_payout(uow, shop, created.payout.id))
    assert paid.payout.status is PayoutStatus.PAID
    assert paid.settlement_transfer_id is not None and paid.payout.settled_at is not None
    assert system_balance(money.store, "clearing") == 0
    assert system_balance(money.store, "external_funding") == funding_before + 9_750
    assert money.balance(shop).pending_payouts == 0
    assert len(_events(money.store, "payout.created")) == 1
    assert len(_events(money.store, "payout.paid")) == 1
    assert _audit_types(money.store, created.payout.id) == ["payout.created", "payout.paid"]
    assert money.process() == 0  # settled once only
    assert_ties_out(money, [shop])


def test_a_failed_payout_returns_the_money_to_the_merchant(money: Money) -> None:
    shop, payer = money.merchant(account=FAILING_ACCOUNT), money.payer()
    money.capture(payer, shop, 4_000)

    created = money.payout(shop, 1_500)
    assert money.balance(shop).account.posted == 2_500
    money.process()

    failed = money.run(lambda uow: payouts.get_payout(uow, ADMIN, created.payout.id))
    assert failed.payout.status is PayoutStatus.FAILED
    assert failed.payout.failure_code == "no_account"
    assert money.balance(shop).account.posted == 4_000
    assert system_balance(money.store, "clearing") == 0
    assert len(_events(money.store, "payout.failed")) == 1
    assert _audit_types(money.store, created.payout.id) == ["payout.created", "payout.failed"]
    assert_ties_out(money, [shop])


def test_a_payout_never_exceeds_the_available_balance(money: Money) -> None:
    shop, payer = money.merchant(), money.payer()
    money.capture(payer, shop, 1_000)

    with pytest.raises(Unprocessable) as refused:
        money.payout(shop, 1_001)
    assert refused.value.code == "insufficient_funds"
    money.payout(shop, 600)
    with pytest.raises(Unprocessable):
        money.payout(shop, 401)
    assert money.payout(shop).payout.amount == 400  # "all" is what is left
    with pytest.raises(Unprocessable) as empty:
        money.payout(shop)
    assert empty.value.code == "insufficient_funds"
    assert money.balance(shop).account.posted == 0


def test_a_refund_after_a_payout_can_only_use_what_is_left(money: Money) -> None:
    shop, payer = money.merchant(), money.payer()
    hold = money.capture(payer, shop, 1_000)
    money.payout(shop, 900)

    with pytest.raises(Unprocessable) as refused:
        money.refund(shop, hold, 200)
    assert refused.value.code == "insufficient_funds"
    money.refund(shop, hold, 100)
    assert money.balance(shop).account.posted == 0


def test_recent_captures_stay_unsettled_for_the_settlement_delay(money: Money) -> None:
    delay = timedelta(days=2)
    shop, payer = money.merchant(fee_bps=1_000), money.payer()
    money.capture(payer, shop, 1_000)  # leaves 900
    money.clock.advance(timedelta(days=3))
    recent = money.capture(payer, shop, 2_000)  # leaves 1 800, unsettled for two days
    balances = money.run(
        lambda uow: payouts.payout_balances(uow, shop, str(shop.id), settlement_delay=delay)
    )
    assert (balances[0].unsettled, balances[0].payable) == (1_800, 900)

    with pytest.raises(Unprocessable):
        money.payout(shop, 901, delay=delay)
    money.refund(shop, recent, 500)  # a refund of a recent capture shrinks what is unsettled
    money.payout(shop, 900, delay=delay)
    money.clock.advance(timedelta(days=2, seconds=1))
    assert money.payout(shop, delay=delay).payout.amount == 1_350


def test_a_payout_needs_a_payout_account_in_its_currency(money: Money) -> None:
    shop, payer = money.merchant(account=None), money.payer()
    money.capture(payer, shop, 1_000)

    with pytest.raises(Conflict) as missing:
        money.payout(shop)
    assert missing.value.code == "payout_account_missing"


def test_only_the_merchant_or_an_admin_asks_for_a_payout(money: Money) -> None:
    shop, other, payer = money.merchant(), money.merchant(), money.payer()
    money.capture(payer, shop, 1_000)

    with pytest.raises(PermissionDenied):
        money.run(lambda uow: payouts.create_payout(uow, payer))
    agent = principal(PrincipalType.AGENT, "agt_x")
    with pytest.raises(PermissionDenied):
        money.run(lambda uow: payouts.create_payout(uow, agent, merchant=shop.id))
    with pytest.raises(NotFound):
        money.run(lambda uow: payouts.create_payout(uow, other, merchant=shop.id))
    with pytest.raises(InvalidRequest):
        money.run(lambda uow: payouts.create_payout(uow, ADMIN))
    created = money.run(lambda uow: payouts.create_payout(uow, ADMIN, merchant=shop.id))
    assert created.payout.merchant_id == shop.id
    with pytest.raises(NotFound):
        money.run(lambda uow: payouts.get_payout(uow, other, created.payout.id))
    listed = money.run(
        lambda uow: payouts.list_payouts(uow, other, limit=None, starting_after=None)
    )
    assert listed.items == []


def test_the_status_at_an_instant_is_pending_until_the_rail_answered(money: Money) -> None:
    shop, payer = money.merchant(), money.payer()
    money.capture(payer, shop, 1_000)
    created = money.payout(shop)
    asked = money.clock.now()
    money.clock.advance(timedelta(hours=1))
    money.process()
    paid = money.run(lambda uow: payouts.get_payout(uow, shop, created.payout.id)).payout

    assert paid.status_at(asked) is PayoutStatus.PENDING
    assert paid.status_at(money.clock.now()) is PayoutStatus.PAID
