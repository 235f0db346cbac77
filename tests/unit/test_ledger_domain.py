"""The double-entry ledger as worked examples: balanced postings, balances, reservations."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.kernel.errors import InvariantViolation, Unprocessable
from paywarden.kernel.money import AMOUNT_MINOR_MAX, BALANCE_MINOR_MAX
from paywarden.payments.ledger import (
    Account,
    AccountKind,
    Posting,
    apply_postings,
    check_balanced,
    release,
    reserve,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def wallet(
    account_id: str = "acct_wallet", posted: int = 0, pending_out: int = 0, currency: str = "usd"
) -> Account:
    return Account(
        id=account_id,
        kind=AccountKind.USER_WALLET,
        currency=currency,
        non_negative=True,
        posted=posted,
        pending_out=pending_out,
        livemode=False,
    )


def funding(account_id: str = "acct_funding", posted: int = 0, currency: str = "usd") -> Account:
    return Account(
        id=account_id,
        kind=AccountKind.EXTERNAL_FUNDING,
        currency=currency,
        non_negative=False,
        posted=posted,
        pending_out=0,
        livemode=False,
    )


def by_id(*accounts: Account) -> dict[str, Account]:
    return {account.id: account for account in accounts}


# --- check_balanced ---------------------------------------------------------------------


def test_two_postings_that_sum_to_zero_balance() -> None:
    check_balanced([Posting("acct_a", -500, "usd"), Posting("acct_b", 500, "usd")])


def test_a_split_over_three_accounts_balances() -> None:
    check_balanced(
        [
            Posting("acct_a", -1_000, "usd"),
            Posting("acct_b", 970, "usd"),
            Posting("acct_c", 30, "usd"),
        ]
    )


def test_a_transfer_with_one_posting_is_refused() -> None:
    with pytest.raises(InvariantViolation, match="at least two postings"):
        check_balanced([Posting("acct_a", 0, "usd")])


def test_a_transfer_with_no_postings_is_refused() -> None:
    with pytest.raises(InvariantViolation, match="at least two postings"):
        check_balanced([])


def test_a_zero_posting_is_refused_even_when_the_rest_balances() -> None:
    with pytest.raises(InvariantViolation, match="zero amount"):
        check_balanced(
            [
                Posting("acct_a", -500, "usd"),
                Posting("acct_b", 500, "usd"),
                Posting("acct_c", 0, "usd"),
            ]
        )


def test_an_account_posted_to_twice_in_one_transfer_is_refused() -> None:
    with pytest.raises(InvariantViolation, match="each account once"):
        check_balanced(
            [
                Posting("acct_a", -500, "usd"),
                Posting("acct_b", 200, "usd"),
                Posting("acct_b", 300, "usd"),
            ]
        )


def test_postings_that_do_not_sum_to_zero_are_refused() -> None:
    with pytest.raises(InvariantViolation, match="do not sum to zero"):
        check_balanced([Posting("acct_a", -500, "usd"), Posting("acct_b", 499, "usd")])


def test_amounts_that_cancel_across_currencies_do_not_balance() -> None:
    # -500 usd and +500 eur sum to zero as numbers, but each currency is off by 500.
    with pytest.raises(InvariantViolation, match="do not sum to zero"):
        check_balanced([Posting("acct_a", -500, "usd"), Posting("acct_b", 500, "eur")])


def test_one_unbalanced_currency_among_balanced_ones_is_refused() -> None:
    postings = [
        Posting("acct_a", -500, "usd"),
        Posting("acct_b", 500, "usd"),
        Posting("acct_c", -300, "eur"),
        Posting("acct_d", 299, "eur"),
    ]
    with pytest.raises(InvariantViolation, match="eur"):
        check_balanced(postings)


def test_a_transfer_balanced_in_each_of_two_currencies_passes() -> None:
    check_balanced(
        [
            Posting("acct_a", -500, "usd"),
            Posting("acct_b", 500, "usd"),
            Posting("acct_c", -300, "eur"),
            Posting("acct_d", 300, "eur"),
        ]
    )


# --- apply_postings ---------------------------------------------------------------------


def test_a_top_up_moves_money_from_the_funding_account_into_the_wallet() -> None:
    accounts = by_id(wallet(), funding())
    after = apply_postings(
        accounts, [Posting("acct_funding", -1_000, "usd"), Posting("acct_wallet", 1_000, "usd")]
    )
    assert after["acct_wallet"].posted == 1_000
    assert after["acct_funding"].posted == -1_000
    assert sum(account.posted for account in after.values()) == 0


def test_applying_postings_leaves_the_input_accounts_unchanged() -> None:
    accounts = by_id(wallet(posted=1_000), funding(posted=-1_000))
    before = dict(accounts)
    apply_postings(
        accounts, [Posting("acct_wallet", -400, "usd"), Posting("acct_funding", 400, "usd")]
    )
    assert accounts == before


def test_a_wallet_cannot_spend_more_than_it_holds() -> None:
    accounts = by_id(wallet(posted=1_000), funding(posted=-1_000))
    with pytest.raises(Unprocessable) as caught:
        apply_postings(
            accounts, [Posting("acct_wallet", -1_001, "usd"), Posting("acct_funding", 1_001, "usd")]
        )
    assert caught.value.code == "insufficient_funds"


def test_a_wallet_can_spend_exactly_what_it_holds() -> None:
    accounts = by_id(wallet(posted=1_000), funding(posted=-1_000))
    after = apply_postings(
        accounts, [Posting("acct_wallet", -1_000, "usd"), Posting("acct_funding", 1_000, "usd")]
    )
    assert after["acct_wallet"].available == 0


def test_money_reserved_by_a_hold_cannot_be_spent_again() -> None:
    # 1000 posted, 600 reserved: only 400 is available, so spending 401 is refused.
    accounts = by_id(wallet(posted=1_000, pending_out=600), funding(posted=-1_000))
    with pytest.raises(Unprocessable) as caught:
        apply_postings(
            accounts, [Posting("acct_wallet", -401, "usd"), Posting("acct_funding", 401, "usd")]
        )
    assert caught.value.code == "insufficient_funds"
    after = apply_postings(
        accounts, [Posting("acct_wallet", -400, "usd"), Posting("acct_funding", 400, "usd")]
    )
    assert (after["acct_wallet"].posted, after["acct_wallet"].pending_out) == (600, 600)
    assert after["acct_wallet"].available == 0


def test_the_external_funding_account_may_go_below_zero() -> None:
    accounts = by_id(wallet(), funding(posted=0))
    after = apply_postings(
        accounts, [Posting("acct_funding", -5_000, "usd"), Posting("acct_wallet", 5_000, "usd")]
    )
    assert after["acct_funding"].posted == -5_000


def test_unbalanced_postings_are_refused_before_any_balance_changes() -> None:
    accounts = by_id(wallet(), funding())
    with pytest.raises(InvariantViolation):
        apply_postings(
            accounts, [Posting("acct_funding", -5_000, "usd"), Posting("acct_wallet", 4_999, "usd")]
        )


def test_a_posting_in_the_wrong_currency_for_its_account_is_refused() -> None:
    accounts = by_id(wallet(currency="usd"), funding(currency="eur"))
    with pytest.raises(InvariantViolation, match="held in"):
        apply_postings(
            accounts, [Posting("acct_funding", -100, "eur"), Posting("acct_wallet", 100, "eur")]
        )


def test_a_balance_may_reach_the_bound_but_not_pass_it() -> None:
    accounts = by_id(wallet(posted=BALANCE_MINOR_MAX - 1), funding(posted=-(BALANCE_MINOR_MAX - 1)))
    at_bound = apply_postings(
        accounts, [Posting("acct_funding", -1, "usd"), Posting("acct_wallet", 1, "usd")]
    )
    assert at_bound["acct_wallet"].posted == BALANCE_MINOR_MAX
    assert at_bound["acct_funding"].posted == -BALANCE_MINOR_MAX
    with pytest.raises(Unprocessable) as caught:
        apply_postings(
            at_bound, [Posting("acct_funding", -1, "usd"), Posting("acct_wallet", 1, "usd")]
        )
    assert caught.value.code == "balance_limit_exceeded"


def test_a_negative_balance_is_bounded_too() -> None:
    accounts = by_id(wallet(posted=0), funding(posted=-BALANCE_MINOR_MAX))
    with pytest.raises(Unprocessable) as caught:
        apply_postings(
            accounts, [Posting("acct_funding", -1, "usd"), Posting("acct_wallet", 1, "usd")]
        )
    assert caught.value.code == "balance_limit_exceeded"


# --- reserve and release ----------------------------------------------------------------


def test_a_reservation_keeps_money_posted_but_not_available() -> None:
    reserved = reserve(wallet(posted=1_000), 700)
    assert (reserved.posted, reserved.pending_out, reserved.available) == (1_000, 700, 300)


def test_reserving_more_than_is_available_is_refused() -> None:
    with pytest.raises(Unprocessable) as caught:
        reserve(wallet(posted=1_000, pending_out=700), 301)
    assert caught.value.code == "insufficient_funds"


def test_reserving_all_that_is_available_is_allowed() -> None:
    assert reserve(wallet(posted=1_000, pending_out=700), 300).available == 0


@pytest.mark.parametrize("amount", [0, -1])
def test_a_reservation_must_be_positive(amount: int) -> None:
    with pytest.raises(InvariantViolation):
        reserve(wallet(posted=1_000), amount)


def test_release_undoes_a_reservation() -> None:
    account = wallet(posted=1_000)
    assert release(reserve(account, 700), 700) == account


def test_releasing_more_than_was_reserved_is_refused() -> None:
    with pytest.raises(InvariantViolation, match="released more than was reserved"):
        release(wallet(posted=1_000, pending_out=700), 701)


def test_releasing_nothing_is_refused() -> None:
    with pytest.raises(InvariantViolation):
        release(wallet(posted=1_000, pending_out=700), 0)


def test_an_account_without_the_flag_may_reserve_beyond_its_balance_up_to_the_bound() -> None:
    clearing = replace(funding(), kind=AccountKind.CLEARING)
    assert reserve(clearing, BALANCE_MINOR_MAX).pending_out == BALANCE_MINOR_MAX
    with pytest.raises(Unprocessable) as caught:
        reserve(clearing, BALANCE_MINOR_MAX + 1)
    assert caught.value.code == "balance_limit_exceeded"


# --- properties -------------------------------------------------------------------------


@st.composite
def balanced_transfers(draw: st.DrawFn) -> list[Posting]:
    """A random balanced transfer over accounts acct_0..acct_5, one currency."""
    count = draw(st.integers(min_value=2, max_value=6))
    credits = draw(
        st.lists(st.integers(1, AMOUNT_MINOR_MAX), min_size=count - 1, max_size=count - 1)
    )
    ids = draw(st.permutations([f"acct_{index}" for index in range(6)]))[:count]
    amounts = [*credits, -sum(credits)]
    return [
        Posting(account_id, amount, "usd") for account_id, amount in zip(ids, amounts, strict=True)
    ]


@PROPERTY
@given(st.lists(balanced_transfers(), min_size=1, max_size=10))
def test_balances_always_sum_to_zero_and_equal_the_sum_of_their_postings(
    transfers: list[list[Posting]],
) -> None:
    accounts = {f"acct_{index}": funding(f"acct_{index}") for index in range(6)}
    posted_sums = dict.fromkeys(accounts, 0)
    for postings in transfers:
        check_balanced(postings)
        accounts.update(apply_postings(accounts, postings))
        for posting in postings:
            posted_sums[posting.account_id] += posting.amount
    assert sum(account.posted for account in accounts.values()) == 0
    assert {account_id: account.posted for account_id, account in accounts.items()} == posted_sums


@PROPERTY
@given(
    st.integers(0, AMOUNT_MINOR_MAX),
    st.integers(0, AMOUNT_MINOR_MAX),
    st.integers(1, AMOUNT_MINOR_MAX),
)
def test_a_non_negative_account_never_ends_below_zero_available(
    posted: int, reserved: int, spend: int
) -> None:
    account = wallet(posted=posted)
    if reserved:
        try:
            account = reserve(account, reserved)
        except Unprocessable:
            assert reserved > posted
    accounts = by_id(account, funding(posted=-posted))
    postings = [Posting("acct_wallet", -spend, "usd"), Posting("acct_funding", spend, "usd")]
    try:
        after = apply_postings(accounts, postings)
    except Unprocessable:
        assert spend > account.available
    else:
        assert spend <= account.available
        assert after["acct_wallet"].available >= 0
