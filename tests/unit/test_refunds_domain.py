"""Refunds as worked examples: never more than captured, and the fee comes back in step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.kernel.errors import Conflict, Unprocessable
from paywarden.kernel.money import AMOUNT_MINOR_MAX
from paywarden.payments.holds import (
    FEE_BPS_MAX,
    Hold,
    HoldStatus,
    capture_postings,
    fee_for,
)
from paywarden.payments.ledger import (
    Account,
    AccountKind,
    Posting,
    apply_postings,
    check_balanced,
    release,
    reserve,
)
from paywarden.payments.refunds import refund_postings

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
FEES = "acct_fees"
PROPERTY = settings(max_examples=300, deadline=None, database=None)


def pending_hold(amount: int) -> Hold:
    return Hold(
        id="hold_1",
        livemode=False,
        source_account_id="acct_payer",
        destination_account_id="acct_shop",
        currency="usd",
        amount=amount,
        status=HoldStatus.PENDING,
        expires_at=NOW + timedelta(days=7),
    )


def captured_hold(amount: int, fee_bps: int, held: int | None = None) -> Hold:
    captured, _ = capture_postings(pending_hold(held or amount), amount, fee_bps, FEES)
    return captured


def fee_share(postings: list[Posting]) -> int:
    return -sum(posting.amount for posting in postings if posting.account_id == FEES)


# --- worked examples --------------------------------------------------------------------


def test_a_full_refund_returns_the_merchants_part_and_the_whole_fee() -> None:
    hold = captured_hold(4_000, 300)  # the merchant got 3880, the platform 120
    after, postings = refund_postings(hold, 4_000, FEES)
    assert postings == [
        Posting("acct_payer", 4_000, "usd"),
        Posting("acct_shop", -3_880, "usd"),
        Posting(FEES, -120, "usd"),
    ]
    assert (after.refunded_amount, after.fee_refunded, after.refundable_amount) == (4_000, 120, 0)
    assert after.status is HoldStatus.POSTED


def test_a_refund_of_a_partial_capture_returns_only_what_was_captured() -> None:
    hold = captured_hold(3_000, 300, held=4_000)
    assert hold.refundable_amount == 3_000
    with pytest.raises(Unprocessable) as caught:
        refund_postings(hold, 3_001, FEES)
    assert caught.value.code == "refund_exceeds_captured"
    assert caught.value.param == "$.amount"
    after, postings = refund_postings(hold, 1_000, FEES)
    assert postings == [
        Posting("acct_payer", 1_000, "usd"),
        Posting("acct_shop", -970, "usd"),
        Posting(FEES, -30, "usd"),
    ]
    assert after.refundable_amount == 2_000


def test_partial_refunds_that_add_up_return_exactly_the_whole_fee() -> None:
    # Fee 30 on 1000. Thirds of it, rounded down each time, would give back 9 + 9 + 9 = 27;
    # the running total gives 9, then 19 - 9 = 10, then 30 - 19 = 11.
    hold = captured_hold(1_000, 300)
    shares = []
    for amount in (333, 333, 334):
        hold, postings = refund_postings(hold, amount, FEES)
        check_balanced(postings)
        shares.append(fee_share(postings))
    assert shares == [9, 10, 11]
    assert sum(shares) == hold.fee_amount == hold.fee_refunded == 30
    assert hold.refundable_amount == 0


def test_a_small_refund_whose_fee_share_rounds_to_zero_has_no_fee_posting() -> None:
    hold = captured_hold(1_000, 300)
    after, postings = refund_postings(hold, 10, FEES)
    assert postings == [Posting("acct_payer", 10, "usd"), Posting("acct_shop", -10, "usd")]
    assert after.fee_refunded == 0


def test_refunding_a_capture_without_a_fee_touches_only_payer_and_merchant() -> None:
    hold = captured_hold(1_000, 0)
    _, postings = refund_postings(hold, 1_000, FEES)
    assert postings == [Posting("acct_payer", 1_000, "usd"), Posting("acct_shop", -1_000, "usd")]


def test_a_refund_after_a_hundred_percent_fee_comes_from_the_fee_account_alone() -> None:
    hold = captured_hold(600, FEE_BPS_MAX)
    after, postings = refund_postings(hold, 250, FEES)
    assert postings == [Posting("acct_payer", 250, "usd"), Posting(FEES, -250, "usd")]
    assert after.fee_refunded == 250


def test_nothing_more_can_be_refunded_after_a_full_refund() -> None:
    hold, _ = refund_postings(captured_hold(1_000, 300), 1_000, FEES)
    with pytest.raises(Unprocessable) as caught:
        refund_postings(hold, 1, FEES)
    assert caught.value.code == "refund_exceeds_captured"


@pytest.mark.parametrize("status", [HoldStatus.PENDING, HoldStatus.VOIDED, HoldStatus.EXPIRED])
def test_only_a_captured_hold_can_be_refunded(status: HoldStatus) -> None:
    hold = replace(pending_hold(1_000), status=status)
    with pytest.raises(Conflict) as caught:
        refund_postings(hold, 100, FEES)
    assert caught.value.code == "hold_not_captured"


# --- properties -------------------------------------------------------------------------


@st.composite
def captures_and_refund_splits(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """A captured amount, a fee in basis points, and refunds that add up to the capture."""
    captured = draw(st.integers(1, AMOUNT_MINOR_MAX), label="captured")
    fee_bps = draw(st.integers(0, FEE_BPS_MAX), label="fee_bps")
    cut_count_max = min(captured - 1, 12)
    cuts = draw(
        st.lists(st.integers(1, max(captured - 1, 1)), max_size=cut_count_max, unique=True),
        label="cuts",
    )
    bounds = [0, *sorted(cuts), captured]
    refunds = [high - low for low, high in pairwise(bounds) if high > low]
    return captured, fee_bps, refunds


@PROPERTY
@given(captures_and_refund_splits())
def test_refund_fee_shares_always_add_up_to_exactly_the_fee(
    case: tuple[int, int, list[int]],
) -> None:
    captured, fee_bps, refunds = case
    assert sum(refunds) == captured
    hold = captured_hold(captured, fee_bps)
    shares = []
    for amount in refunds:
        hold, postings = refund_postings(hold, amount, FEES)
        check_balanced(postings)
        assert sum(posting.amount for posting in postings) == 0
        share = fee_share(postings)
        assert 0 <= share <= amount
        shares.append(share)
    assert sum(shares) == fee_for(captured, fee_bps) == hold.fee_amount == hold.fee_refunded
    assert hold.refunded_amount == captured
    assert hold.refundable_amount == 0


def non_negative(account_id: str, kind: AccountKind, posted: int = 0) -> Account:
    return Account(account_id, kind, "usd", True, posted, 0, False)


@PROPERTY
@given(captures_and_refund_splits())
def test_capture_then_refunds_in_any_split_leave_every_account_where_it_started(
    case: tuple[int, int, list[int]],
) -> None:
    # Merchant and fee accounts are non-negative: no refund may take either below zero on
    # the way, and after the last refund the payer holds exactly what it held before.
    captured, fee_bps, refunds = case
    accounts = {
        "acct_payer": non_negative("acct_payer", AccountKind.USER_WALLET, captured),
        "acct_shop": non_negative("acct_shop", AccountKind.MERCHANT),
        FEES: non_negative(FEES, AccountKind.PLATFORM_FEES),
    }
    hold = pending_hold(captured)
    accounts["acct_payer"] = reserve(accounts["acct_payer"], captured)
    hold, postings = capture_postings(hold, captured, fee_bps, FEES)
    accounts["acct_payer"] = release(accounts["acct_payer"], captured)
    accounts.update(apply_postings(accounts, postings))
    for amount in refunds:
        hold, postings = refund_postings(hold, amount, FEES)
        accounts.update(apply_postings(accounts, postings))
    assert {key: account.posted for key, account in accounts.items()} == {
        "acct_payer": captured,
        "acct_shop": 0,
        FEES: 0,
    }
