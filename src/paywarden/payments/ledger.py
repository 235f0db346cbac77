"""The double-entry ledger: accounts, transfers and postings.

An *account* holds money of one currency for one owner: a user's wallet, a merchant, the
platform's fees, the external funding account through which money enters and leaves
paywarden, and clearing accounts for money in transit. Balances are signed, seen from the
account holder: a wallet holding 10.00 USD has ``posted = 1000``; the external funding
account that paid it in stands at ``-1000``.

A *transfer* moves money and is immutable once written. It consists of *postings*, one per
account touched, each a signed amount. The postings of a transfer sum to zero in every
currency, so money is never created or destroyed, only moved; summed over all accounts,
balances are therefore zero per currency, and each balance equals the sum of its postings.

An account may be flagged ``non_negative``: its *available* balance (posted minus what is
reserved by pending holds) may never go below zero. Wallets and merchant accounts carry the
flag; the external funding account does not, because it mirrors money owed to the outside.

This module checks every one of those rules before anything is written; the store checks
them again in SQL before the commit (paired checks).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from paywarden.kernel.errors import Unprocessable
from paywarden.kernel.invariant import invariant
from paywarden.kernel.money import BALANCE_MINOR_MAX

__all__ = [
    "Account",
    "AccountKind",
    "Posting",
    "TransferKind",
    "apply_postings",
    "check_balanced",
    "release",
    "reserve",
]


class AccountKind(StrEnum):
    USER_WALLET = "user_wallet"
    MERCHANT = "merchant"
    PLATFORM_FEES = "platform_fees"
    EXTERNAL_FUNDING = "external_funding"
    CLEARING = "clearing"


class TransferKind(StrEnum):
    TOP_UP = "top_up"
    CAPTURE = "capture"
    TRANSFER = "transfer"
    REFUND = "refund"
    PAYOUT = "payout"


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    kind: AccountKind
    currency: str
    non_negative: bool
    posted: int
    pending_out: int
    livemode: bool
    owner_id: str | None = None
    created_at: datetime | None = None

    @property
    def available(self) -> int:
        return self.posted - self.pending_out


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: str
    amount: int  # signed minor units: positive credits the account holder
    currency: str


def check_balanced(postings: Iterable[Posting]) -> None:
    """Every transfer has at least two postings, none zero, summing to zero per currency."""
    postings = list(postings)
    invariant(len(postings) >= 2, "a transfer needs at least two postings")
    accounts = [p.account_id for p in postings]
    invariant(len(set(accounts)) == len(accounts), "a transfer touches each account once")
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        invariant(posting.amount != 0, "a posting never has a zero amount")
        sums[posting.currency] += posting.amount
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    invariant(not unbalanced, f"postings do not sum to zero: {unbalanced}")


def apply_postings(
    accounts: Mapping[str, Account], postings: Iterable[Posting]
) -> dict[str, Account]:
    """The accounts after a balanced transfer, or :class:`Unprocessable` when a
    non-negative account would go below zero. The input mapping is not changed."""
    postings = list(postings)
    check_balanced(postings)
    updated: dict[str, Account] = {}
    for posting in postings:
        account = accounts[posting.account_id]
        invariant(
            account.currency == posting.currency,
            f"posting in {posting.currency} to {account.id} held in {account.currency}",
        )
        after = replace(account, posted=account.posted + posting.amount)
        _check_account(after)
        updated[account.id] = after
    return updated


def reserve(account: Account, amount: int) -> Account:
    """Reserve ``amount`` for a pending hold: it stays posted but is no longer available."""
    invariant(amount > 0, "a reservation is positive")
    after = replace(account, pending_out=account.pending_out + amount)
    _check_account(after)
    return after


def release(account: Account, amount: int) -> Account:
    """Release a reservation made by :func:`reserve` (a hold posted, voided or expired)."""
    invariant(0 < amount <= account.pending_out, "released more than was reserved")
    return replace(account, pending_out=account.pending_out - amount)


def _check_account(account: Account) -> None:
    if account.non_negative and account.available < 0:
        raise Unprocessable(
            f"account {account.id} has insufficient available funds",
            code="insufficient_funds",
            param="$.amount",
        )
    if abs(account.posted) > BALANCE_MINOR_MAX or account.pending_out > BALANCE_MINOR_MAX:
        raise Unprocessable(
            f"account {account.id} would exceed the largest balance paywarden keeps",
            code="balance_limit_exceeded",
            param="$.amount",
        )
