"""Holds as worked examples: reserve, then capture (in full or in part), void or expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.kernel.errors import Conflict, InvariantViolation, Unprocessable
from paywarden.kernel.money import AMOUNT_MINOR_MAX
from paywarden.payments.holds import (
    FEE_BPS_MAX,
    Hold,
    HoldStatus,
    capture_postings,
    check_capturable,
    expire,
    fee_for,
    is_expired,
    void,
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

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(days=7)
ONE_MICROSECOND = timedelta(microseconds=1)
FEES = "acct_fees"
PROPERTY = settings(max_examples=200, deadline=None, database=None)


def pending_hold(amount: int = 1_000, status: HoldStatus = HoldStatus.PENDING) -> Hold:
    return Hold(
        id="hold_1",
        livemode=False,
        source_account_id="acct_payer",
        destination_account_id="acct_shop",
        currency="usd",
        amount=amount,
        status=status,
        expires_at=DEADLINE,
    )


def account(account_id: str, kind: AccountKind, posted: int = 0) -> Account:
    return Account(
        id=account_id,
        kind=kind,
        currency="usd",
        non_negative=True,
        posted=posted,
        pending_out=0,
        livemode=False,
    )


def payer_shop_and_fees(payer_posted: int) -> dict[str, Account]:
    return {
        "acct_payer": account("acct_payer", AccountKind.USER_WALLET, payer_posted),
        "acct_shop": account("acct_shop", AccountKind.MERCHANT),
        FEES: account(FEES, AccountKind.PLATFORM_FEES),
    }


# --- fees -------------------------------------------------------------------------------


def test_a_three_percent_fee_on_thirty_dollars_is_ninety_cents() -> None:
    assert fee_for(3_000, 300) == 90


def test_the_fee_rounds_down_in_the_merchants_favour() -> None:
    assert fee_for(999, 100) == 9  # 9.99 cents
    assert fee_for(1, 9_999) == 0  # 0.9999 of a cent


def test_a_fee_of_ten_thousand_basis_points_takes_everything() -> None:
    assert fee_for(12_345, FEE_BPS_MAX) == 12_345


@pytest.mark.parametrize("fee_bps", [-1, FEE_BPS_MAX + 1])
def test_a_fee_outside_zero_to_ten_thousand_basis_points_is_a_bug(fee_bps: int) -> None:
    with pytest.raises(InvariantViolation):
        fee_for(1_000, fee_bps)


# --- capture ----------------------------------------------------------------------------


def test_a_full_capture_pays_the_merchant_less_the_fee() -> None:
    captured, postings = capture_postings(pending_hold(4_000), 4_000, 300, FEES)
    assert postings == [
        Posting("acct_payer", -4_000, "usd"),
        Posting("acct_shop", 3_880, "usd"),
        Posting(FEES, 120, "usd"),
    ]
    assert captured.status is HoldStatus.POSTED
    assert (captured.captured_amount, captured.fee_amount) == (4_000, 120)
    assert captured.refundable_amount == 4_000


def test_a_capture_without_a_fee_has_no_fee_posting() -> None:
    _, postings = capture_postings(pending_hold(), 1_000, 0, FEES)
    assert postings == [Posting("acct_payer", -1_000, "usd"), Posting("acct_shop", 1_000, "usd")]


def test_a_fee_that_rounds_to_zero_has_no_fee_posting() -> None:
    captured, postings = capture_postings(pending_hold(), 33, 300, FEES)
    assert captured.fee_amount == 0
    assert [posting.account_id for posting in postings] == ["acct_payer", "acct_shop"]


def test_a_hundred_percent_fee_leaves_no_zero_posting_for_the_merchant() -> None:
    captured, postings = capture_postings(pending_hold(), 600, FEE_BPS_MAX, FEES)
    assert postings == [Posting("acct_payer", -600, "usd"), Posting(FEES, 600, "usd")]
    assert captured.fee_amount == 600
    check_balanced(postings)


def test_capture_in_part_releases_the_whole_reservation() -> None:
    hold = pending_hold(1_000)
    accounts = payer_shop_and_fees(payer_posted=5_000)
    accounts["acct_payer"] = reserve(accounts["acct_payer"], hold.amount)
    assert accounts["acct_payer"].available == 4_000

    check_capturable(hold, 600, NOW)
    captured, postings = capture_postings(hold, 600, 0, FEES)
    accounts["acct_payer"] = release(accounts["acct_payer"], hold.amount)
    accounts.update(apply_postings(accounts, postings))

    payer = accounts["acct_payer"]
    assert (payer.posted, payer.pending_out, payer.available) == (4_400, 0, 4_400)
    assert accounts["acct_shop"].posted == 600
    assert captured.captured_amount == 600
    assert captured.refundable_amount == 600


def test_capturing_more_than_the_hold_is_refused() -> None:
    with pytest.raises(Unprocessable) as caught:
        check_capturable(pending_hold(1_000), 1_001, NOW)
    assert caught.value.code == "amount_exceeds_hold"
    assert caught.value.param == "$.amount"


def test_capturing_exactly_the_hold_is_allowed() -> None:
    check_capturable(pending_hold(1_000), 1_000, NOW)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (HoldStatus.POSTED, "hold_posted"),
        (HoldStatus.VOIDED, "hold_voided"),
        (HoldStatus.EXPIRED, "hold_expired"),
    ],
)
def test_a_hold_that_is_no_longer_pending_cannot_be_captured(status: HoldStatus, code: str) -> None:
    with pytest.raises(Conflict) as caught:
        check_capturable(pending_hold(status=status), 100, NOW)
    assert caught.value.code == code
    assert caught.value.status == 409


@pytest.mark.parametrize("status", [HoldStatus.POSTED, HoldStatus.VOIDED, HoldStatus.EXPIRED])
def test_a_hold_that_is_no_longer_pending_cannot_be_voided(status: HoldStatus) -> None:
    with pytest.raises(Conflict) as caught:
        void(pending_hold(status=status), NOW)
    assert caught.value.code == f"hold_{status.value}"


def test_capture_postings_refuse_a_hold_that_is_not_pending() -> None:
    with pytest.raises(InvariantViolation):
        capture_postings(pending_hold(status=HoldStatus.VOIDED), 100, 0, FEES)


@pytest.mark.parametrize("amount", [0, -1, 1_001])
def test_capture_postings_refuse_an_amount_outside_the_hold(amount: int) -> None:
    with pytest.raises(InvariantViolation):
        capture_postings(pending_hold(1_000), amount, 0, FEES)


# --- expiry: expires_at is the last valid instant ---------------------------------------


def test_a_hold_can_still_be_captured_at_exactly_its_deadline() -> None:
    hold = pending_hold()
    assert not is_expired(hold, DEADLINE)
    check_capturable(hold, 1_000, DEADLINE)


def test_a_hold_cannot_be_captured_one_microsecond_after_its_deadline() -> None:
    hold = pending_hold()
    assert is_expired(hold, DEADLINE + ONE_MICROSECOND)
    with pytest.raises(Conflict) as caught:
        check_capturable(hold, 1_000, DEADLINE + ONE_MICROSECOND)
    assert caught.value.code == "hold_expired"


def test_a_hold_can_be_voided_at_its_deadline_but_not_after() -> None:
    assert void(pending_hold(), DEADLINE).status is HoldStatus.VOIDED
    with pytest.raises(Conflict) as caught:
        void(pending_hold(), DEADLINE + ONE_MICROSECOND)
    assert caught.value.code == "hold_expired"


def test_a_hold_does_not_expire_at_exactly_its_deadline() -> None:
    with pytest.raises(InvariantViolation):
        expire(pending_hold(), DEADLINE)


def test_a_hold_expires_one_microsecond_after_its_deadline() -> None:
    expired = expire(pending_hold(), DEADLINE + ONE_MICROSECOND)
    assert expired.status is HoldStatus.EXPIRED
    assert expired.captured_amount == 0


@pytest.mark.parametrize("status", [HoldStatus.POSTED, HoldStatus.VOIDED, HoldStatus.EXPIRED])
def test_only_a_pending_hold_expires(status: HoldStatus) -> None:
    hold = pending_hold(status=status)
    assert not is_expired(hold, DEADLINE + timedelta(days=1))
    with pytest.raises(InvariantViolation):
        expire(hold, DEADLINE + timedelta(days=1))


def test_voiding_and_expiring_move_no_money() -> None:
    hold = pending_hold()
    for finished in (void(hold, NOW), expire(hold, DEADLINE + ONE_MICROSECOND)):
        assert (finished.captured_amount, finished.fee_amount, finished.refundable_amount) == (
            0,
            0,
            0,
        )


# --- properties -------------------------------------------------------------------------


@PROPERTY
@given(
    st.integers(1, AMOUNT_MINOR_MAX),
    st.data(),
    st.integers(0, FEE_BPS_MAX),
)
def test_capture_postings_always_balance_and_split_the_amount(
    held: int, data: st.DataObject, fee_bps: int
) -> None:
    amount = data.draw(st.integers(1, held), label="amount")
    captured, postings = capture_postings(pending_hold(held), amount, fee_bps, FEES)
    check_balanced(postings)
    assert sum(posting.amount for posting in postings) == 0
    assert all(posting.amount != 0 for posting in postings)
    credits = {posting.account_id: posting.amount for posting in postings if posting.amount > 0}
    assert credits.get(FEES, 0) == captured.fee_amount == fee_for(amount, fee_bps)
    assert credits.get("acct_shop", 0) == amount - captured.fee_amount
    assert 0 <= captured.fee_amount <= amount


@PROPERTY
@given(st.integers(1, AMOUNT_MINOR_MAX), st.data(), st.integers(0, FEE_BPS_MAX))
def test_a_capture_never_takes_the_payer_below_zero(
    held: int, data: st.DataObject, fee_bps: int
) -> None:
    amount = data.draw(st.integers(1, held), label="amount")
    hold = pending_hold(held)
    accounts = payer_shop_and_fees(payer_posted=held)
    accounts["acct_payer"] = reserve(accounts["acct_payer"], held)
    _, postings = capture_postings(hold, amount, fee_bps, FEES)
    accounts["acct_payer"] = release(accounts["acct_payer"], held)
    accounts.update(apply_postings(accounts, postings))
    assert accounts["acct_payer"].available == held - amount
    assert sum(a.posted for a in accounts.values()) == held
