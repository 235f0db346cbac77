"""What the payout and reconciliation tests share: merchants, payers, captures, refunds and
payouts made through the services, and the tie-out check of the reconciliation against the
ledger (written in plain SQL over the postings, not through the code under test)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from paywarden.kernel.clock import FakeClock
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.services import holds, identity, ledger, payouts, platform, reconciliation
from paywarden.services.ledger import Card
from paywarden.store.unit_of_work import Store, UnitOfWork

TOKEN_KEY = b"payout-tests-token-key"
CARD = Card("4242424242424242", 12, 2099)
ROUTING = "110000000"
PAID_ACCOUNT = "000123456789"
FAILING_ACCOUNT = "000111111116"  # the sandbox answers no_account


def principal(kind: PrincipalType, owner: str | None) -> Principal:
    return Principal(kind, owner, False, f"key_{secrets.token_hex(4)}", identity.API_VERSION)


ADMIN = principal(PrincipalType.ADMIN, None)


@dataclass
class Money:
    """Merchants and payers in one store, and the operations the payout tests mix."""

    store: Store
    clock: FakeClock

    def run(self, work: Any) -> Any:
        return self.store.run(work)

    def merchant(
        self, *, fee_bps: int = 0, currency: str = "usd", account: str | None = PAID_ACCOUNT
    ) -> Principal:
        """A merchant (its principal), with a payout account unless ``account`` is None."""

        def make(uow: UnitOfWork) -> str:
            record, _key = identity.create_merchant(
                uow,
                name=f"Shop {secrets.token_hex(3)}",
                category="coffee",
                currency=currency,
                fee_bps=fee_bps,
                livemode=False,
            )
            return record.id

        shop = principal(PrincipalType.MERCHANT, self.run(make))
        if account is not None:
            self.register(shop, account)
        return shop

    def register(self, shop: Principal, account_number: str) -> payouts.PayoutAccountRecord:
        return self.run(
            lambda uow: payouts.register_payout_account(
                uow,
                shop,
                str(shop.id),
                routing_number=ROUTING,
                account_number=account_number,
                holder_name="Shop Owner",
                token_key=TOKEN_KEY,
            )
        )

    def payer(self, funded: int = 1_000_000, currency: str = "usd") -> Principal:
        def make(uow: UnitOfWork) -> str:
            record, _key = identity.create_user(
                uow,
                email=f"payer-{secrets.token_hex(4)}@example.com",
                name="Payer",
                currency=currency,
                livemode=False,
            )
            user = principal(PrincipalType.USER, record.id)
            ledger.top_up(
                uow,
                user,
                amount=funded,
                currency=currency,
                card=CARD,
                token_key=platform.instance_secret(uow),
            )
            return record.id

        return principal(PrincipalType.USER, self.run(make))

    def capture(
        self,
        payer: Principal,
        shop: Principal,
        amount: int,
        *,
        captured: int | None = None,
        currency: str = "usd",
    ) -> str:
        """A hold from ``payer`` to ``shop``, captured by the shop (in part if ``captured``)."""
        hold = self.run(
            lambda uow: holds.create_hold(
                uow, payer, destination=shop.id, amount=amount, currency=currency
            )
        )
        self.run(lambda uow: holds.capture_hold(uow, shop, hold.hold.id, amount=captured))
        return str(hold.hold.id)

    def refund(self, shop: Principal, hold_id: str, amount: int | None = None) -> Any:
        return self.run(lambda uow: holds.refund(uow, shop, hold_id=hold_id, amount=amount))

    def set_fee(self, shop: Principal, fee_bps: int) -> Any:
        return self.run(lambda uow: payouts.set_fee(uow, ADMIN, str(shop.id), fee_bps))

    def payout(
        self, shop: Principal, amount: int | None = None, *, delay: timedelta = timedelta(0)
    ) -> payouts.PayoutRecord:
        return self.run(
            lambda uow: payouts.create_payout(uow, shop, amount=amount, settlement_delay=delay)
        )

    def process(self) -> int:
        return payouts.process_payouts(self.store)

    def balance(self, shop: Principal, currency: str | None = None) -> payouts.PayoutBalance:
        """The shop's balance in ``currency`` (by default its only, or first, currency)."""
        found = self.run(lambda uow: payouts.payout_balances(uow, shop, str(shop.id)))
        return next(b for b in found if currency in {None, b.account.currency})

    def reconcile(
        self,
        who: Principal = ADMIN,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        merchant: str | None = None,
    ) -> reconciliation.Reconciliation:
        return self.store.run(
            lambda uow: reconciliation.reconcile(uow, who, start=start, end=end, merchant=merchant),
            read_only=True,
        )


def ledger_balances(store: Store) -> dict[str, int]:
    """Every account's balance as the sum of its postings (plain SQL)."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT account_id, SUM(amount) FROM postings GROUP BY account_id")
        ).all()
    return {str(account): int(total) for account, total in rows}


def system_balance(store: Store, kind: str, currency: str = "usd") -> int:
    with store.engine.connect() as connection:
        total = connection.execute(
            text(
                "SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN accounts a"
                " ON a.id = p.account_id WHERE a.kind = :kind AND a.currency = :currency"
                " AND a.livemode = :live"
            ),
            {"kind": kind, "currency": currency, "live": False},
        ).scalar_one()
    return int(total)


def assert_ties_out(money: Money, merchants: list[Principal]) -> reconciliation.Reconciliation:
    """The export over all time: every merchant row's closing balance is its ledger balance
    (and its posted balance), the figures add up, the platform fee account holds the net
    fees, the clearing account the pending payouts, and no merchant account is negative."""
    report = money.reconcile()
    balances = ledger_balances(money.store)
    rows = {row.merchant: row for row in report.rows}
    for shop in merchants:
        row = rows[str(shop.id)]
        posted = money.balance(shop).account.posted
        assert row.closing_balance == balances.get(row.account, 0) == posted, row
        assert row.opening_balance == 0
        assert row.closing_balance == row.expected_closing(), row
        assert row.net == row.gross_captured - row.fees - row.refunds + row.fees_returned
        assert row.closing_balance >= 0
    for currency, total in report.totals().items():
        assert report.platform_fees.get(currency, 0) == total.fees - total.fees_returned
        assert system_balance(money.store, "platform_fees", currency) == (
            total.fees - total.fees_returned
        )
        assert system_balance(money.store, "clearing", currency) == total.payouts_pending
    return report
