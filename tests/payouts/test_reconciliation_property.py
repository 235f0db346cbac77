"""A property test over random sequences of captures (in full and in part), refunds (full
and partial), fee changes, payouts (to accounts the rail pays and to one it refuses), rail
runs and waits, with and without a settlement delay, on both backends.

After every sequence the reconciliation ties out to the ledger for every merchant (see
``payout_support.assert_ties_out``), no wallet or merchant account is below zero, and a
small model agrees with the export: gross captured, the fees at the rate in force when each
capture happened, payouts paid (never to the refusing account) and pending.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from payout_support import FAILING_ACCOUNT, PAID_ACCOUNT, Money, assert_ties_out
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import Unprocessable
from paywarden.kernel.principals import Principal
from paywarden.store.unit_of_work import Store

MERCHANTS = 3  # merchant 1 registers the account the sandbox refuses
EXPECTED_REFUSALS = {"insufficient_funds", "refund_exceeds_captured"}
AMOUNT = st.integers(min_value=1, max_value=50_000)
FEE = st.integers(min_value=0, max_value=10_000)
WHO = st.integers(min_value=0, max_value=MERCHANTS - 1)

OPERATIONS = st.one_of(
    st.tuples(st.just("capture"), WHO, AMOUNT, st.booleans()),
    st.tuples(st.just("refund"), st.integers(0, 30), st.none() | AMOUNT),
    st.tuples(st.just("fee"), WHO, FEE),
    st.tuples(st.just("payout"), WHO, st.none() | AMOUNT),
    st.tuples(st.just("process")),
    st.tuples(st.just("wait"), st.integers(1, 3_600)),
)


@dataclass
class Model:
    fee_bps: list[int]
    gross: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    fees: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    holds: list[tuple[int, str]] = field(default_factory=list)  # (merchant, hold id)
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)  # payout -> (who, amount)
    paid: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _apply(
    money: Money, model: Model, shops: list[Principal], payer: Principal, op: Any, delay: timedelta
) -> None:
    kind = op[0]
    if kind == "capture":
        _, who, amount, partial = op
        captured = max(1, amount // 2) if partial else amount
        model.holds.append((who, money.capture(payer, shops[who], amount, captured=captured)))
        model.gross[who] += captured
        model.fees[who] += captured * model.fee_bps[who] // 10_000
    elif kind == "refund" and model.holds:
        _, index, amount = op
        who, hold_id = model.holds[index % len(model.holds)]
        money.refund(shops[who], hold_id, amount)
    elif kind == "fee":
        _, who, bps = op
        money.set_fee(shops[who], bps)
        model.fee_bps[who] = bps
    elif kind == "payout":
        _, who, amount = op
        record = money.payout(shops[who], amount, delay=delay)
        model.pending[record.payout.id] = (who, record.payout.amount)
    elif kind == "process":
        _settle(money, model)
    elif kind == "wait":
        money.clock.advance(timedelta(seconds=op[1]))


def _settle(money: Money, model: Model) -> None:
    money.process()
    for who, amount in model.pending.values():
        if who != 1:
            model.paid[who] += amount
    model.pending.clear()


def _no_negative_balances(store: Store) -> None:
    with store.engine.connect() as connection:
        negative = connection.execute(
            text(
                "SELECT id, kind, posted, pending_out FROM accounts WHERE kind IN"
                " ('user_wallet', 'merchant') AND (posted < 0 OR posted - pending_out < 0)"
            )
        ).all()
    assert not negative, negative


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operations=st.lists(OPERATIONS, min_size=1, max_size=18),
    fees=st.lists(FEE, min_size=MERCHANTS, max_size=MERCHANTS),
    delay_s=st.sampled_from([0, 1_800]),
)
def test_random_runs_tie_out_and_stay_non_negative(
    store: Store, clock: FakeClock, operations: list[Any], fees: list[int], delay_s: int
) -> None:
    money = Money(store, clock)
    shops = [
        money.merchant(fee_bps=fee, account=FAILING_ACCOUNT if who == 1 else PAID_ACCOUNT)
        for who, fee in enumerate(fees)
    ]
    payer = money.payer(funded=10_000_000)
    model = Model(fee_bps=list(fees))
    opening = [("capture", who, 10_000, False) for who in range(MERCHANTS)]  # money to move
    for op in opening + operations:
        try:
            _apply(money, model, shops, payer, op, timedelta(seconds=delay_s))
        except Unprocessable as refused:
            assert refused.code in EXPECTED_REFUSALS, (op, refused.code)
        _no_negative_balances(store)

    report = assert_ties_out(money, shops)
    rows = {row.merchant: row for row in report.rows}
    for who, shop in enumerate(shops):
        row = rows[str(shop.id)]
        assert (row.gross_captured, row.fees) == (model.gross[who], model.fees[who])
        assert row.payouts_paid == model.paid[who]
        pending = sum(amount for w, amount in model.pending.values() if w == who)
        assert row.payouts_pending == pending
    assert rows[str(shops[1].id)].payouts_paid == 0
    _settle(money, model)
    assert_ties_out(money, shops)
