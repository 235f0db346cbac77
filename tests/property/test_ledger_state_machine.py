"""A stateful property test of the ledger through the service layer, on both backends.

Random sequences of top-ups (magic cards included), transfers, holds, captures, voids,
expiries and refunds run against a fresh store per example. A pure-Python model predicts
every balance, every hold and every refused request (error class *and* code); after every
step the model is compared with the database exactly, and independent SQL aggregates check
the ledger's rules (``check_ledger_sql``), written here in plain SQL text rather than
through the repository functions under test.

Planted bugs, one at a time, show that these checks catch what they are meant to catch:
with the model (``full``) and with the SQL invariants alone (``sql_only``), on a SQLite
schema stripped of its CHECK constraints so the database cannot catch the bug first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import CheckConstraint, Engine, MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

import paywarden.payments.holds as hold_rules
import paywarden.payments.ledger as ledger_rules
import paywarden.services.holds as holds_service
from conftest import START, require_pg, sqlite_url
from paywarden.kernel.clock import FakeClock
from paywarden.kernel.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaywardenError,
    PermissionDenied,
    Unprocessable,
)
from paywarden.kernel.money import AMOUNT_MINOR_MAX
from paywarden.kernel.principals import Principal, PrincipalType
from paywarden.payments.holds import Hold, HoldStatus
from paywarden.payments.ledger import Posting
from paywarden.services import identity
from paywarden.services import ledger as ledger_service
from paywarden.store import migrate, schema
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store, UnitOfWork

T = TypeVar("T")

TOKEN_KEY = b"state-machine-token-key"
FEE_BPS_MAX = 10_000
HOLD_TTL_DEFAULT = timedelta(days=7)
USERS = 3
# Merchants 0 and 1 take usd at 0 and 250 bps; merchant 2 takes jpy at a drawn rate.
MERCHANT_SETUP = (("usd", 0), ("usd", 250), ("jpy", None))

CARDS = {
    "4242424242424242": None,
    "5555555555554444": None,
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000119": "processing_error",
}
# (exp_month, exp_year): far future, the start month (expires once the clock moves on), the
# month before the start (already expired), early next year.
EXPIRIES = ((12, 2099), (11, 2026), (10, 2026), (1, 2027))

TOP_UP_AMOUNTS = st.one_of(
    st.integers(1, 100_000),
    st.integers(1, AMOUNT_MINOR_MAX),
    st.sampled_from([1, AMOUNT_MINOR_MAX]),
)
# An amount relative to a limit (available funds, the hold, what remains refundable).
HOW_MUCH = st.sampled_from(["within", "within", "exact", "beyond", "huge"])
FRACTIONS = st.integers(0, 2**32)
CLOCK_STEPS = st.sampled_from(
    [
        timedelta(microseconds=1),
        timedelta(seconds=1),
        timedelta(seconds=1),
        timedelta(seconds=61),
        timedelta(seconds=61),
        timedelta(hours=1, seconds=1),
        timedelta(days=1),
        timedelta(days=8),
        timedelta(days=31),
    ]
)
HOLD_TTLS = st.sampled_from([None, None, None, 1, 60, 3_600, 30 * 86_400])


class LedgerCheckFailed(AssertionError):
    """A check of this test failed: ``[model] …`` or ``[sql] …``."""


def amount_for(how: str, fraction: int, limit: int) -> int:
    """An amount within ``limit``, exactly it, just beyond it, or the largest allowed."""
    if how == "within" and limit > 1:
        return 1 + fraction % (limit - 1)
    if how in {"within", "exact"} and limit >= 1:
        return limit
    if how == "huge":
        return AMOUNT_MINOR_MAX
    return limit + 1 + fraction % 1_000


Expected = tuple[type[PaywardenError], str] | None


def _describe(expected: Expected) -> str:
    return "success" if expected is None else f"{expected[0].__name__}({expected[1]})"


@dataclass
class ModelHold:
    id: str
    payer: int
    merchant: int
    source: str
    destination: str
    currency: str
    amount: int
    expires_at: datetime
    fee_bps: int
    status: str = "pending"
    captured: int = 0
    refunded: int = 0
    fee: int = 0
    fee_refunded: int = 0


# --- the SQL invariants, independent of the code under test ------------------------------


# Each query lists what breaks a rule; all of them must come back empty.
MUST_BE_EMPTY: list[tuple[str, str]] = [
    (
        "a transfer's postings do not sum to zero in a currency",
        """SELECT transfer_id, currency, SUM(amount) FROM postings
           GROUP BY transfer_id, currency HAVING SUM(amount) <> 0""",
    ),
    (
        "postings do not sum to zero over all transfers",
        "SELECT currency, SUM(amount) FROM postings GROUP BY currency HAVING SUM(amount) <> 0",
    ),
    (
        "balances do not sum to zero",
        "SELECT currency, SUM(posted) FROM accounts GROUP BY currency HAVING SUM(posted) <> 0",
    ),
    (
        "an account's posted balance is not the sum of its postings",
        """SELECT a.id, a.posted, COALESCE(SUM(p.amount), 0)
           FROM accounts a LEFT JOIN postings p ON p.account_id = a.id
           GROUP BY a.id, a.posted HAVING a.posted <> COALESCE(SUM(p.amount), 0)""",
    ),
    (
        "a posting's currency is not its account's",
        """SELECT p.id, p.currency, a.currency FROM postings p
           JOIN accounts a ON a.id = p.account_id WHERE p.currency <> a.currency""",
    ),
    (
        "a non-negative account is overdrawn (posted - pending_out < 0)",
        """SELECT id, kind, posted, pending_out FROM accounts
           WHERE non_negative = TRUE AND posted - pending_out < 0""",
    ),
    (
        "a negative reservation",
        "SELECT id, pending_out FROM accounts WHERE pending_out < 0",
    ),
    (
        "an account's pending_out is not the sum of its pending holds",
        """SELECT a.id, a.pending_out, COALESCE(SUM(h.amount), 0)
           FROM accounts a
           LEFT JOIN holds h ON h.source_account_id = a.id AND h.status = 'pending'
           GROUP BY a.id, a.pending_out
           HAVING a.pending_out <> COALESCE(SUM(h.amount), 0)""",
    ),
    (
        "a transfer has fewer than two postings, a zero posting, or credits other than its amount",
        """SELECT t.id, t.kind, t.amount, COUNT(p.id),
                  COALESCE(SUM(CASE WHEN p.amount > 0 THEN p.amount ELSE 0 END), 0)
           FROM transfers t LEFT JOIN postings p ON p.transfer_id = t.id
           GROUP BY t.id, t.kind, t.amount
           HAVING COUNT(p.id) < 2
              OR SUM(CASE WHEN p.amount = 0 THEN 1 ELSE 0 END) > 0
              OR COALESCE(SUM(CASE WHEN p.amount > 0 THEN p.amount ELSE 0 END), 0) <> t.amount""",
    ),
    (
        "a top-up's status and transfer disagree",
        """SELECT t.id, t.status, t.transfer_id, t.failure_code FROM top_ups t
           LEFT JOIN transfers x ON x.id = t.transfer_id
           WHERE (t.status = 'succeeded' AND (x.id IS NULL OR x.kind <> 'top_up'
                                              OR x.amount <> t.amount))
              OR (t.status = 'failed' AND (t.transfer_id IS NOT NULL OR t.failure_code IS NULL))
              OR t.status NOT IN ('succeeded', 'failed')""",
    ),
    (
        "the external funding account does not mirror the succeeded top-ups",
        """SELECT a.currency, a.posted,
                  (SELECT COALESCE(SUM(t.amount), 0) FROM top_ups t
                   WHERE t.currency = a.currency AND t.status = 'succeeded')
           FROM accounts a WHERE a.kind = 'external_funding'
             AND a.posted <> -(SELECT COALESCE(SUM(t.amount), 0) FROM top_ups t
                               WHERE t.currency = a.currency AND t.status = 'succeeded')""",
    ),
    (
        "the fee account does not hold the fees kept",
        """SELECT a.currency, a.posted FROM accounts a WHERE a.kind = 'platform_fees'
             AND a.posted <> (SELECT COALESCE(SUM(h.fee_amount - h.fee_refunded), 0)
                              FROM holds h WHERE h.currency = a.currency)""",
    ),
    (
        "a hold's amounts are out of bounds or its status is unknown",
        """SELECT id, status, amount, captured_amount, refunded_amount, fee_amount, fee_refunded
           FROM holds
           WHERE amount <= 0 OR captured_amount < 0 OR captured_amount > amount
              OR refunded_amount < 0 OR refunded_amount > captured_amount
              OR fee_amount < 0 OR fee_amount > captured_amount
              OR fee_refunded < 0 OR fee_refunded > fee_amount
              OR status NOT IN ('pending', 'posted', 'voided', 'expired')
              OR (status = 'posted' AND (captured_amount = 0 OR capture_transfer_id IS NULL))
              OR (status <> 'posted' AND (captured_amount <> 0 OR refunded_amount <> 0
                                          OR capture_transfer_id IS NOT NULL))""",
    ),
    (
        "a refund row does not match its transfer",
        """SELECT r.id, r.hold_id, r.amount FROM refunds r
           LEFT JOIN transfers t ON t.id = r.transfer_id
           WHERE t.id IS NULL OR t.kind <> 'refund' OR t.hold_id <> r.hold_id
              OR t.amount <> r.amount""",
    ),
]
# One round trip counts every violation; only a failing query is run again, for details.
_COUNT_VIOLATIONS = "SELECT " + ", ".join(
    f"(SELECT COUNT(*) FROM ({sql}) AS violation_{index})"
    for index, (_what, sql) in enumerate(MUST_BE_EMPTY)
)


def check_ledger_sql(connection: Connection) -> None:
    """The ledger's rules, checked with plain SQL aggregates over the stored rows."""
    counts = connection.execute(text(_COUNT_VIOLATIONS)).one()
    for (what, sql), count in zip(MUST_BE_EMPTY, counts, strict=True):
        if count:
            rows = [tuple(row) for row in connection.execute(text(sql)).all()[:5]]
            raise LedgerCheckFailed(f"[sql] {what}: {rows}")
    _check_holds_sql(connection)


_HOLD_AGGREGATES = """
SELECT h.id, h.status, h.amount, h.captured_amount, h.refunded_amount, h.fee_amount,
       h.fee_refunded, h.capture_transfer_id, m.fee_bps,
       (SELECT COUNT(*) FROM transfers t WHERE t.hold_id = h.id AND t.kind = 'capture')
           AS captures,
       (SELECT COUNT(*) FROM transfers t WHERE t.id = h.capture_transfer_id
           AND t.kind = 'capture' AND t.hold_id = h.id AND t.amount = h.captured_amount)
           AS capture_row,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p
           WHERE p.transfer_id = h.capture_transfer_id AND p.account_id = h.source_account_id)
           AS capture_source,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p
           WHERE p.transfer_id = h.capture_transfer_id
             AND p.account_id = h.destination_account_id) AS capture_destination,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN accounts a ON a.id = p.account_id
           WHERE p.transfer_id = h.capture_transfer_id AND a.kind = 'platform_fees')
           AS capture_fee,
       (SELECT COUNT(*) FROM postings p JOIN accounts a ON a.id = p.account_id
           WHERE p.transfer_id = h.capture_transfer_id AND a.kind <> 'platform_fees'
             AND p.account_id <> h.source_account_id
             AND p.account_id <> h.destination_account_id) AS capture_strays,
       (SELECT COUNT(*) FROM transfers t WHERE t.hold_id = h.id AND t.kind = 'refund')
           AS refund_transfers,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN transfers t ON t.id = p.transfer_id
           WHERE t.hold_id = h.id AND t.kind = 'refund' AND p.account_id = h.source_account_id)
           AS refund_source,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN transfers t ON t.id = p.transfer_id
           WHERE t.hold_id = h.id AND t.kind = 'refund'
             AND p.account_id = h.destination_account_id) AS refund_destination,
       (SELECT COALESCE(SUM(p.amount), 0) FROM postings p JOIN transfers t ON t.id = p.transfer_id
           JOIN accounts a ON a.id = p.account_id
           WHERE t.hold_id = h.id AND t.kind = 'refund' AND a.kind = 'platform_fees')
           AS refund_fee,
       (SELECT COUNT(*) FROM postings p JOIN transfers t ON t.id = p.transfer_id
           JOIN accounts a ON a.id = p.account_id
           WHERE t.hold_id = h.id AND t.kind = 'refund' AND a.kind <> 'platform_fees'
             AND p.account_id <> h.source_account_id
             AND p.account_id <> h.destination_account_id) AS refund_strays,
       (SELECT COUNT(*) FROM refunds r WHERE r.hold_id = h.id) AS refund_rows,
       (SELECT COALESCE(SUM(r.amount), 0) FROM refunds r WHERE r.hold_id = h.id) AS refund_sum
FROM holds h
LEFT JOIN accounts d ON d.id = h.destination_account_id
LEFT JOIN merchants m ON m.id = d.owner_id
ORDER BY h.id
"""


def _check_holds_sql(connection: Connection) -> None:
    for row in connection.execute(text(_HOLD_AGGREGATES)).mappings():
        if row["fee_bps"] is None:
            raise LedgerCheckFailed(f"[sql] hold {row['id']} pays an account that is no merchant's")
        captured, refunded = int(row["captured_amount"]), int(row["refunded_amount"])
        fee, fee_refunded = int(row["fee_amount"]), int(row["fee_refunded"])
        posted = row["status"] == "posted"
        expected = {
            "captures": 1 if posted else 0,
            "capture_row": 1 if posted else 0,
            "capture_source": -captured,
            "capture_destination": captured - fee,
            "capture_fee": fee,
            "capture_strays": 0,
            "refund_transfers": row["refund_rows"],
            "refund_sum": refunded,
            "refund_source": refunded,
            "refund_destination": -(refunded - fee_refunded),
            "refund_fee": -fee_refunded,
            "refund_strays": 0,
        }
        wrong = {
            name: (int(row[name]), int(value))
            for name, value in expected.items()
            if int(row[name]) != int(value)
        }
        # The fee, in Python to stay exact for any amount: rounded down, and its share
        # returned on the running total of refunds, rounded down too.
        if fee != captured * int(row["fee_bps"]) // FEE_BPS_MAX:
            wrong["fee_amount"] = (fee, captured * int(row["fee_bps"]) // FEE_BPS_MAX)
        fee_refunded_due = fee * refunded // captured if captured else 0
        if fee_refunded != fee_refunded_due:
            wrong["fee_refunded"] = (fee_refunded, fee_refunded_due)
        if wrong:
            raise LedgerCheckFailed(f"[sql] hold {row['id']} ({row['status']}) disagrees: {wrong}")


def clear_all(engine: Engine) -> None:
    """Empty every table; faster than TRUNCATE on PostgreSQL for tables this small."""
    with engine.begin() as connection:
        for table in reversed(schema.metadata.sorted_tables):
            connection.execute(table.delete())


# --- the state machine -------------------------------------------------------------------

# How a rule picks a hold: usually (3 in 4) among those in the state it wants, else any.
HOLD_PICKS = st.tuples(st.integers(0, 3).map(bool), FRACTIONS)
# Fewer, broader rules: hypothesis's swarm testing switches whole rules off per example, and
# a hold must be made, funded and settled within one example to test anything.
SETTLE_ACTIONS = ["capture"] * 3 + ["refund"] * 3 + ["void"] * 2 + ["trespass"]


class LedgerMachine(RuleBasedStateMachine):
    """Drives the services; ``sql_only`` turns off the model's predictions and comparison
    (the model then follows the database) to show what the SQL invariants catch alone."""

    def __init__(self, engine: Engine, *, sql_only: bool = False) -> None:
        super().__init__()
        self.clock = FakeClock(START)
        self.store = Store(engine, self.clock)
        clear_all(engine)
        # One reading connection per example for the checks, in plain read transactions.
        self.reader = engine.connect()
        self.reader.info["paywarden_read_only"] = True
        self.sql_only = sql_only
        self.users: list[Principal] = []
        self.merchants: list[Principal] = []
        self.merchant_fee: list[int] = []
        # (owner index, currency) → account id; owners 0-2 are users, 3-5 merchants.
        self.accounts: dict[tuple[int, str], str] = {}
        # Balances by account id, or "kind:currency" for the platform's own accounts.
        self.posted: Counter[str] = Counter()
        self.pending: Counter[str] = Counter()
        self.non_negative: dict[str, bool] = {}
        self.model_holds: dict[str, ModelHold] = {}
        self.transfers: Counter[str] = Counter()
        self.top_ups: Counter[str] = Counter()
        self.refund_count = 0

    def teardown(self) -> None:
        self.reader.close()

    # --- plumbing ------------------------------------------------------------------------

    def _run(self, what: str, work: Callable[[UnitOfWork], T], expected: Expected) -> T | None:
        """Run one use case; refusals must be exactly ``expected``. ``None`` when refused."""
        try:
            result = self.store.run(work)
        except PaywardenError as error:
            if self.sql_only:
                return None
            if expected is None or type(error) is not expected[0] or error.code != expected[1]:
                raise LedgerCheckFailed(
                    f"[model] {what}: expected {_describe(expected)}, got {error!r}"
                ) from error
            return None
        except Exception as error:
            if self.sql_only:
                raise
            raise LedgerCheckFailed(
                f"[model] {what}: expected {_describe(expected)}, got {error!r}"
            ) from error
        if expected is not None and not self.sql_only:
            raise LedgerCheckFailed(
                f"[model] {what}: expected {_describe(expected)}, but it succeeded"
            )
        return result

    @staticmethod
    def _system(kind: str, currency: str) -> str:
        return f"{kind}:{currency}"

    def _available(self, key: str) -> int:
        return self.posted[key] - self.pending[key]

    def _overdraws(self, deltas: dict[str, int]) -> bool:
        return any(
            self.non_negative.get(key, True) and self._available(key) + delta < 0
            for key, delta in deltas.items()
        )

    def _post(self, kind: str, deltas: dict[str, int]) -> None:
        for key, delta in deltas.items():
            self.posted[key] += delta
        self.transfers[kind] += 1

    def _principal(self, owner: int) -> Principal:
        return self.users[owner] if owner < USERS else self.merchants[owner - USERS]

    def _pick(self, pick: tuple[bool, int], wanted: Callable[[ModelHold], bool]) -> ModelHold:
        prefer, fraction = pick
        every = list(self.model_holds.values())
        preferred = [hold for hold in every if wanted(hold)]
        pool = preferred if prefer and preferred else every
        return pool[fraction % len(pool)]

    def _live(self, hold: ModelHold) -> bool:
        return hold.status == "pending" and self.clock.now() <= hold.expires_at

    def _hold_error(self, hold: ModelHold) -> Expected:
        """What a capture or void of ``hold`` meets first, now: a deadline, then its state."""
        if hold.status == "pending" and self.clock.now() > hold.expires_at:
            return Conflict, "hold_expired"
        if hold.status != "pending":
            return Conflict, f"hold_{hold.status}"
        return None

    def _release(self, hold: ModelHold, status: str) -> None:
        hold.status = status
        self.pending[hold.source] -= hold.amount

    # --- setup ---------------------------------------------------------------------------

    @initialize(
        jpy_fee_bps=st.sampled_from([1, 333, FEE_BPS_MAX]),
        funding=st.lists(st.integers(0, 1_000_000), min_size=4, max_size=4),
        opening_holds=st.lists(
            st.tuples(
                st.integers(0, USERS - 1),
                st.sampled_from([0, 1, 2]),
                FRACTIONS,
                st.sampled_from(["keep", "all", "within"]),
            ),
            min_size=1,
            max_size=3,
        ),
        floats=st.lists(FRACTIONS, min_size=3, max_size=3),
    )
    def setup(
        self,
        jpy_fee_bps: int,
        funding: list[int],
        opening_holds: list[tuple[int, int, int, str]],
        floats: list[int],
    ) -> None:
        """Three users (user 0 with a yen wallet too), three merchants, funding, merchants'
        takings from earlier sales, and a few holds, some captured, all through the services."""
        fees = [jpy_fee_bps if bps is None else bps for _currency, bps in MERCHANT_SETUP]

        def parties(uow: UnitOfWork) -> Any:
            users = [
                identity.create_user(
                    uow, email=f"u{i}@example.com", name=f"User {i}", currency="usd", livemode=False
                )
                for i in range(USERS)
            ]
            yen = identity.add_wallet(uow, users[0][0].id, "jpy", livemode=False)
            merchants = [
                identity.create_merchant(
                    uow, name=f"Shop {i}", category="coffee", currency=c, fee_bps=b, livemode=False
                )
                for i, ((c, _), b) in enumerate(zip(MERCHANT_SETUP, fees, strict=True))
            ]
            return users, yen, merchants

        users, yen, merchants = self.store.run(parties)
        for index, (user, key) in enumerate(users):
            self.users.append(
                Principal(PrincipalType.USER, user.id, False, key.id, identity.API_VERSION)
            )
            self._open(index, "usd", user.wallets[0].id)
        self._open(0, "jpy", next(w.id for w in yen.wallets if w.currency == "jpy"))
        for index, (merchant, key) in enumerate(merchants):
            assert merchant.account is not None
            self.merchants.append(
                Principal(PrincipalType.MERCHANT, merchant.id, False, key.id, identity.API_VERSION)
            )
            self.merchant_fee.append(merchant.fee_bps)
            self._open(USERS + index, merchant.currency, merchant.account.id)
        for (user, currency), amount in zip(
            [(0, "usd"), (1, "usd"), (2, "usd"), (0, "jpy")], funding, strict=True
        ):
            if amount:
                self.top_up(user, currency, amount, "4242424242424242", EXPIRIES[0])
        for merchant, (payer, currency) in enumerate([(1, "usd"), (2, "usd"), (0, "jpy")]):
            self.transfer(payer, USERS + merchant, currency, "within", floats[merchant])
        for payer, payee, fraction, capture in opening_holds:
            made = len(self.model_holds)
            self.create_hold(payer, payee, False, "within", fraction, None)
            if capture != "keep" and len(self.model_holds) > made:
                self._capture(list(self.model_holds.values())[-1], capture, fraction)

    def _open(self, owner: int, currency: str, account_id: str) -> None:
        self.accounts[owner, currency] = account_id
        self.non_negative[account_id] = True
        for kind, non_negative in (("external_funding", False), ("platform_fees", True)):
            self.non_negative[self._system(kind, currency)] = non_negative

    # --- money in and between accounts ---------------------------------------------------

    @rule(
        user=st.integers(0, USERS - 1),
        currency=st.sampled_from(["usd", "usd", "jpy"]),
        amount=TOP_UP_AMOUNTS,
        card=st.sampled_from(sorted(CARDS)),
        expiry=st.sampled_from(EXPIRIES),
    )
    def top_up(
        self, user: int, currency: str, amount: int, card: str, expiry: tuple[int, int]
    ) -> None:
        wallet = self.accounts.get((user, currency))
        now = self.clock.now()
        decline = CARDS[card]
        if decline is None and (expiry[1], expiry[0]) < (now.year, now.month):
            decline = "expired_card"
        expected: Expected = (NotFound, "resource_missing") if wallet is None else None
        card_data = ledger_service.Card(card, expiry[0], expiry[1])
        record = self._run(
            f"top up {amount} {currency} for user {user} with {card}",
            lambda uow: ledger_service.top_up(
                uow,
                self.users[user],
                amount=amount,
                currency=currency,
                card=card_data,
                token_key=TOKEN_KEY,
            ),
            expected,
        )
        if record is None or wallet is None:
            return
        if not self.sql_only and (
            record.status != ("failed" if decline else "succeeded")
            or record.failure_code != decline
            or (record.transfer_id is None) != bool(decline)
            or record.amount != amount
        ):
            raise LedgerCheckFailed(
                f"[model] top-up with {card}: expected {decline or 'success'}: {record}"
            )
        self.top_ups[record.status] += 1
        if decline is None:
            funding = self._system("external_funding", currency)
            self._post("top_up", {funding: -amount, wallet: amount})

    @rule(
        source=st.integers(0, USERS - 1),
        destination=st.integers(0, USERS + len(MERCHANT_SETUP) - 1),
        currency=st.sampled_from(["usd", "usd", "jpy"]),
        how=HOW_MUCH,
        fraction=FRACTIONS,
    )
    def transfer(
        self, source: int, destination: int, currency: str, how: str, fraction: int
    ) -> None:
        source_id = self.accounts.get((source, currency))
        target_id = self.accounts.get((destination, currency))
        amount = amount_for(how, fraction, self._available(source_id) if source_id else 1)
        expected: Expected = None
        if amount > AMOUNT_MINOR_MAX:
            expected = (InvalidRequest, "invalid_amount")
        elif source_id is None or target_id is None:
            expected = (NotFound, "resource_missing")
        elif source_id == target_id:
            expected = (InvalidRequest, "same_account")
        elif self._overdraws({source_id: -amount}):
            expected = (Unprocessable, "insufficient_funds")
        target = self._principal(destination).id
        record = self._run(
            f"transfer {amount} {currency} from user {source} to owner {destination}",
            lambda uow: ledger_service.transfer(
                uow, self.users[source], destination=target, amount=amount, currency=currency
            ),
            expected,
        )
        if record is not None and source_id is not None and target_id is not None:
            self._post("transfer", {source_id: -amount, target_id: amount})

    # --- holds ---------------------------------------------------------------------------

    @rule(
        payer=st.integers(0, USERS - 1),
        payee=st.sampled_from([0, 0, 0, 1, 1, 1, 2, 2, "user"]),
        other_currency=st.sampled_from([False] * 7 + [True]),
        how=st.sampled_from(["within", "within", "within", "within", "exact", "beyond", "huge"]),
        fraction=FRACTIONS,
        ttl_s=HOLD_TTLS,
    )
    def create_hold(
        self,
        payer: int,
        payee: int | str,
        other_currency: bool,
        how: str,
        fraction: int,
        ttl_s: int | None,
    ) -> None:
        if isinstance(payee, int):
            owner, currency = USERS + payee, MERCHANT_SETUP[payee][0]
            if other_currency:
                currency = "jpy" if currency == "usd" else "usd"
        else:
            owner, currency = (payer + 1) % USERS, "usd"
        source_id = self.accounts.get((payer, currency))
        target_id = self.accounts.get((owner, currency))
        amount = amount_for(how, fraction, self._available(source_id) if source_id else 1)
        expected: Expected = None
        if amount > AMOUNT_MINOR_MAX:
            expected = (InvalidRequest, "invalid_amount")
        elif source_id is None or target_id is None:
            expected = (NotFound, "resource_missing")
        elif owner < USERS:
            expected = (InvalidRequest, "invalid_destination")
        elif amount > self._available(source_id):
            expected = (Unprocessable, "insufficient_funds")
        now = self.clock.now()
        destination = self._principal(owner).id
        view = self._run(
            f"hold {amount} {currency} from user {payer} to owner {owner}",
            lambda uow: holds_service.create_hold(
                uow,
                self.users[payer],
                destination=destination,
                amount=amount,
                currency=currency,
                expires_in_s=ttl_s,
            ),
            expected,
        )
        if view is None or source_id is None or target_id is None:
            return
        ttl = HOLD_TTL_DEFAULT if ttl_s is None else timedelta(seconds=ttl_s)
        hold = ModelHold(
            id=view.hold.id,
            payer=payer,
            merchant=owner - USERS,
            source=source_id,
            destination=target_id,
            currency=currency,
            amount=amount,
            expires_at=now + ttl,
            fee_bps=self.merchant_fee[owner - USERS] if owner >= USERS else 0,
        )
        if not self.sql_only and (
            view.hold.expires_at != hold.expires_at
            or view.hold.amount != amount
            or view.hold.status is not HoldStatus.PENDING
        ):
            raise LedgerCheckFailed(f"[model] new hold {view.hold} is not the one asked: {hold}")
        self.model_holds[hold.id] = hold
        self.pending[source_id] += amount

    @precondition(lambda self: self.model_holds)
    @rule(
        action=st.sampled_from(SETTLE_ACTIONS),
        pick=HOLD_PICKS,
        how=st.sampled_from(["all", "within", "within", "exact", "beyond", "huge"]),
        fraction=FRACTIONS,
        by_payee=st.booleans(),
        actor=st.sampled_from(["stranger_voids", "payer_captures", "payer_refunds", "rival"]),
    )
    def settle_hold(
        self,
        action: str,
        pick: tuple[bool, int],
        how: str,
        fraction: int,
        by_payee: bool,
        actor: str,
    ) -> None:
        """Capture (in full, in part, beyond the hold), refund (the rest, in part, beyond
        what remains), void, or have someone without the right try."""
        if action == "capture":
            self.capture(pick, how, fraction)
        elif action == "refund":
            self.refund(pick, how, fraction)
        elif action == "void":
            self.void(pick, by_payee)
        else:
            self.trespass(pick, actor)

    def capture(self, pick: tuple[bool, int], how: str, fraction: int) -> None:
        self._capture(self._pick(pick, self._live), how, fraction)

    def _capture(self, hold: ModelHold, how: str, fraction: int) -> None:
        amount = None if how == "all" else amount_for(how, fraction, hold.amount)
        expected: Expected = None
        if amount is not None and amount > AMOUNT_MINOR_MAX:
            expected = (InvalidRequest, "invalid_amount")
        else:
            expected = self._hold_error(hold)
            if expected is None and amount is not None and amount > hold.amount:
                expected = (Unprocessable, "amount_exceeds_hold")
        view = self._run(
            f"capture {amount} of {hold}",
            lambda uow: holds_service.capture_hold(
                uow, self.merchants[hold.merchant], hold.id, amount=amount
            ),
            expected,
        )
        if view is None:
            return
        captured = hold.amount if amount is None else amount
        fee = captured * hold.fee_bps // FEE_BPS_MAX
        self._release(hold, "posted")
        hold.captured, hold.fee = captured, fee
        fees = self._system("platform_fees", hold.currency)
        deltas = {hold.source: -captured, hold.destination: captured - fee, fees: fee}
        self._post("capture", {key: delta for key, delta in deltas.items() if delta})

    def void(self, pick: tuple[bool, int], by_payee: bool) -> None:
        hold = self._pick(pick, self._live)
        principal = self.merchants[hold.merchant] if by_payee else self.users[hold.payer]
        view = self._run(
            f"void {hold} by {principal.type.value}",
            lambda uow: holds_service.void_hold(uow, principal, hold.id),
            self._hold_error(hold),
        )
        if view is not None:
            self._release(hold, "voided")

    def refund(self, pick: tuple[bool, int], how: str, fraction: int) -> None:
        hold = self._pick(pick, lambda h: h.status == "posted" and h.refunded < h.captured)
        refundable = hold.captured - hold.refunded
        amount = None if how == "all" else amount_for(how, fraction, refundable)
        effective = refundable if amount is None else amount
        share = 0
        expected: Expected = None
        if hold.status != "posted":
            expected = (Conflict, "hold_not_captured")
        elif amount is None and refundable == 0:
            expected = (Unprocessable, "refund_exceeds_captured")
        elif effective > AMOUNT_MINOR_MAX or effective == 0:
            expected = (InvalidRequest, "invalid_amount")
        elif effective > refundable:
            expected = (Unprocessable, "refund_exceeds_captured")
        else:
            share = hold.fee * (hold.refunded + effective) // hold.captured - hold.fee_refunded
        fees = self._system("platform_fees", hold.currency)
        deltas = {hold.source: effective, hold.destination: share - effective, fees: -share}
        deltas = {key: delta for key, delta in deltas.items() if delta}
        if expected is None and self._overdraws(deltas):
            expected = (Unprocessable, "insufficient_funds")
        record = self._run(
            f"refund {amount} of {hold}",
            lambda uow: holds_service.refund(
                uow, self.merchants[hold.merchant], hold_id=hold.id, amount=amount
            ),
            expected,
        )
        if record is None:
            return
        if not self.sql_only and record.amount != effective:
            raise LedgerCheckFailed(f"[model] refund of {effective} recorded as {record.amount}")
        hold.refunded += effective
        hold.fee_refunded += share
        self.refund_count += 1
        self._post("refund", deltas)

    def trespass(self, pick: tuple[bool, int], actor: str) -> None:
        """Parties without the right to act on a hold are refused and change nothing."""
        hold = self._pick(pick, self._live)
        payer = self.users[hold.payer]
        stranger = self.users[(hold.payer + 1) % USERS]
        rival = self.merchants[(hold.merchant + 1) % len(self.merchants)]
        attempts: dict[str, tuple[Callable[[UnitOfWork], Any], Expected]] = {
            "stranger_voids": (
                lambda uow: holds_service.void_hold(uow, stranger, hold.id),
                (NotFound, "resource_missing"),
            ),
            "payer_captures": (
                lambda uow: holds_service.capture_hold(uow, payer, hold.id),
                (PermissionDenied, "permission_denied"),
            ),
            "payer_refunds": (
                lambda uow: holds_service.refund(uow, payer, hold_id=hold.id, amount=1),
                (PermissionDenied, "permission_denied"),
            ),
            "rival": (
                lambda uow: holds_service.capture_hold(uow, rival, hold.id),
                (NotFound, "resource_missing"),
            ),
        }
        work, expected = attempts[actor]
        if self._run(f"{actor} on {hold}", work, expected) is not None and not self.sql_only:
            raise LedgerCheckFailed(f"[model] {actor} on {hold} was allowed")

    # --- time ----------------------------------------------------------------------------

    @rule(
        action=st.sampled_from(["advance", "advance", "to_deadline", "expire", "expire"]),
        step=CLOCK_STEPS,
        pick=HOLD_PICKS,
        offset=st.sampled_from([timedelta(0), timedelta(microseconds=1), timedelta(seconds=1)]),
    )
    def pass_time(
        self, action: str, step: timedelta, pick: tuple[bool, int], offset: timedelta
    ) -> None:
        """Move the clock on (by a step, or to a live hold's last valid instant or just past
        it), or run the expiry job."""
        if action == "expire":
            self.expire_holds()
        elif action == "to_deadline" and self.model_holds:
            target = self._pick(pick, self._live).expires_at + offset
            if target > self.clock.now():
                self.clock.set(target)
        else:
            self.clock.advance(step)

    def expire_holds(self) -> None:
        now = self.clock.now()
        due = [
            hold
            for hold in self.model_holds.values()
            if hold.status == "pending" and hold.expires_at < now
        ]
        count = self._run("expire holds", holds_service.expire_holds, None)
        if count is None:
            return
        if not self.sql_only and count != len(due):
            raise LedgerCheckFailed(f"[model] expire_holds expired {count}, expected {len(due)}")
        for hold in due:
            self._release(hold, "expired")

    # --- checks after every step ---------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        try:
            yield self.reader
        finally:
            self.reader.rollback()

    @invariant()
    def ledger_rules_hold_in_sql(self) -> None:
        with self._reading() as connection:
            check_ledger_sql(connection)

    @invariant()
    def model_matches_database(self) -> None:
        with self._reading() as connection:
            balances = self._stored_balances(connection)
            stored_holds = {
                row.id: row
                for row in connection.execute(
                    text(
                        """SELECT id, status, amount, captured_amount, refunded_amount,
                                  fee_amount, fee_refunded FROM holds"""
                    )
                )
            }
            counted: dict[str, dict[str, int]] = {"transfers": {}, "top_ups": {}, "refunds": {}}
            for table, kind, count in connection.execute(
                text(
                    """SELECT 'transfers', kind, COUNT(*) FROM transfers GROUP BY kind
                       UNION ALL SELECT 'top_ups', status, COUNT(*) FROM top_ups GROUP BY status
                       UNION ALL SELECT 'refunds', 'all', COUNT(*) FROM refunds"""
                )
            ):
                counted[table][kind] = int(count)
            transfers, top_ups = counted["transfers"], counted["top_ups"]
            refunds = counted["refunds"]["all"]
        if self.sql_only:
            self._follow(balances, stored_holds)
            return
        expected_balances = {
            key: (self.posted[key], self.pending[key])
            for key in set(self.posted) | set(self.pending)
            if self.posted[key] or self.pending[key]
        }
        if balances != expected_balances:
            diff = {
                key: (balances.get(key), expected_balances.get(key))
                for key in set(balances) | set(expected_balances)
                if balances.get(key) != expected_balances.get(key)
            }
            raise LedgerCheckFailed(f"[model] balances (stored, expected) differ: {diff}")
        for hold in self.model_holds.values():
            row = stored_holds.get(hold.id)
            stored = None if row is None else tuple(row)[1:]
            model = (
                hold.status,
                hold.amount,
                hold.captured,
                hold.refunded,
                hold.fee,
                hold.fee_refunded,
            )
            if stored != model:
                raise LedgerCheckFailed(f"[model] hold {hold.id} stored as {stored}, not {model}")
        if len(stored_holds) != len(self.model_holds):
            raise LedgerCheckFailed(
                f"[model] {len(stored_holds)} holds stored, {len(self.model_holds)} made"
            )
        counts = (dict(+self.transfers), dict(+self.top_ups), self.refund_count)
        if (transfers, top_ups, refunds) != counts:
            raise LedgerCheckFailed(
                f"[model] rows stored {(transfers, top_ups, refunds)}, expected {counts}"
            )

    def _stored_balances(self, connection: Connection) -> dict[str, tuple[int, int]]:
        balances = {}
        for row in connection.execute(
            text("SELECT id, kind, currency, owner_id, posted, pending_out FROM accounts")
        ):
            key = row.id if row.owner_id is not None else self._system(row.kind, row.currency)
            if row.posted or row.pending_out:
                balances[key] = (int(row.posted), int(row.pending_out))
        return balances

    def _follow(self, balances: dict[str, tuple[int, int]], stored_holds: dict[str, Any]) -> None:
        """``sql_only``: take the database's word, so the next steps build on what is."""
        self.posted = Counter({key: posted for key, (posted, _) in balances.items()})
        self.pending = Counter({key: pending for key, (_, pending) in balances.items()})
        for hold in self.model_holds.values():
            row = stored_holds[hold.id]
            hold.status = row.status
            hold.captured, hold.refunded = int(row.captured_amount), int(row.refunded_amount)
            hold.fee, hold.fee_refunded = int(row.fee_amount), int(row.fee_refunded)


# --- running it ----------------------------------------------------------------------------

# Silent when green. A real failure prints its shrunk steps and a blob for @reproduce_failure
# (captured by pytest, shown only with the failure); planted failures print nothing.
COMMON: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
QUIET: dict[str, Any] = {**COMMON, "verbosity": Verbosity.quiet}
MACHINE_SETTINGS = {
    "sqlite": settings(max_examples=50, stateful_step_count=40, print_blob=True, **COMMON),
    "postgres": settings(max_examples=30, stateful_step_count=40, print_blob=True, **COMMON),
}
# A planted bug must be caught, the same way every run: fixed seed, no shrinking, one bug.
PLANTED_SETTINGS = settings(
    max_examples=300,  # a run stops at its first catch; most bugs fall within 20
    stateful_step_count=50,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
    **QUIET,
)


def run_machine(engine: Engine, machine_settings: settings, *, sql_only: bool = False) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(engine, sql_only=sql_only), settings=machine_settings
    )


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """The migrated schema, CHECKs and all. Durability is beside the point here (the crash
    tests in tests/reliability prove it): no fsync per commit, which is most of the time
    of a commit and changes nothing a transaction sees."""
    engine = make_engine(sqlite_url(tmp_path), sqlite_synchronous="NORMAL")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def unchecked_sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """The schema without its CHECK constraints: the database's safety net removed."""
    bare = MetaData()
    for table in schema.metadata.sorted_tables:
        copy = table.to_metadata(bare)
        for constraint in [c for c in copy.constraints if isinstance(c, CheckConstraint)]:
            copy.constraints.discard(constraint)
    # Durability is beside the point here: skip the fsync per commit.
    engine = make_engine(sqlite_url(tmp_path), sqlite_synchronous="NORMAL")
    bare.create_all(engine)
    with engine.connect() as connection:
        ddl = connection.execute(text("SELECT group_concat(sql) FROM sqlite_master")).scalar_one()
    assert not re.search(r"\bCHECK\s*\(", ddl, re.IGNORECASE), ddl
    yield engine
    engine.dispose()


def test_ledger_state_machine_sqlite(sqlite_engine: Engine) -> None:
    run_machine(sqlite_engine, MACHINE_SETTINGS["sqlite"])


@pytest.mark.postgres
def test_ledger_state_machine_postgres(pg_database: str) -> None:
    require_pg()
    engine = make_engine(pg_database, pool_size=2)
    try:
        run_machine(engine, MACHINE_SETTINGS["postgres"])
    finally:
        engine.dispose()


# --- planted bugs ----------------------------------------------------------------------------


def _skip_non_negative_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_rules, "_check_account", lambda account: None)


def _capture_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    original = hold_rules.capture_postings

    def doubled(
        hold: Hold, amount: int, fee_bps: int, fee_account_id: str
    ) -> tuple[Hold, list[Posting]]:
        captured, postings = original(hold, amount, fee_bps, fee_account_id)
        return captured, [replace(p, amount=2 * p.amount) for p in postings]

    monkeypatch.setattr(hold_rules, "capture_postings", doubled)


def _skip_refund_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def unlimited(hold: Hold, amount: int, fee_account_id: str) -> tuple[Hold, list[Posting]]:
        if hold.status is not HoldStatus.POSTED:
            raise Conflict("not captured", code="hold_not_captured")
        refunded_after = hold.refunded_amount + amount  # no check against refundable_amount
        fee_refunded_after = min(
            hold.fee_amount, hold.fee_amount * refunded_after // hold.captured_amount
        )
        share = fee_refunded_after - hold.fee_refunded
        postings = [Posting(hold.source_account_id, amount, hold.currency)]
        if amount - share:
            postings.append(Posting(hold.destination_account_id, share - amount, hold.currency))
        if share:
            postings.append(Posting(fee_account_id, -share, hold.currency))
        after = replace(hold, refunded_amount=refunded_after, fee_refunded=fee_refunded_after)
        return after, postings

    monkeypatch.setattr(holds_service, "refund_postings", unlimited)


def _never_refund_fee(monkeypatch: pytest.MonkeyPatch) -> None:
    original = holds_service.refund_postings

    def fee_kept(hold: Hold, amount: int, fee_account_id: str) -> tuple[Hold, list[Posting]]:
        after, postings = original(replace(hold, fee_amount=0), amount, fee_account_id)
        return replace(after, fee_amount=hold.fee_amount), postings

    monkeypatch.setattr(holds_service, "refund_postings", fee_kept)


def _round_fee_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hold_rules, "fee_for", lambda amount, bps: -(-amount * bps // FEE_BPS_MAX))


def _void_without_release(monkeypatch: pytest.MonkeyPatch) -> None:
    def void_hold(uow: UnitOfWork, principal: Principal, hold_id: str) -> Any:
        hold, _accounts = holds_service._locked_hold(uow, principal, hold_id, payee_only=False)
        now = uow.clock.now()
        holds_service.save_hold(uow, hold_rules.void(hold, now), now)  # no release
        return holds_service._view(uow, hold.id)

    monkeypatch.setattr(holds_service, "void_hold", void_hold)


PLANTED_BUGS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "non_negative_check_skipped": _skip_non_negative_check,
    "capture_posted_twice": _capture_twice,
    "refund_limit_skipped": _skip_refund_limit,
    "fee_never_refunded": _never_refund_fee,
    "fee_rounded_up": _round_fee_up,
    "void_keeps_reservation": _void_without_release,
}


@pytest.mark.parametrize("checks", ["full", "sql_only"])
@pytest.mark.parametrize("bug", list(PLANTED_BUGS))
def test_planted_bug_is_caught(
    bug: str, checks: str, unchecked_sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database's CHECKs gone, the model (``full``) and the SQL invariants alone
    (``sql_only``) each catch the bug."""
    PLANTED_BUGS[bug](monkeypatch)
    with pytest.raises((AssertionError, Exception)) as caught:
        run_machine(unchecked_sqlite_engine, PLANTED_SETTINGS, sql_only=checks == "sql_only")
    error = caught.value
    assert isinstance(error, LedgerCheckFailed), f"not caught by a check: {error!r}"
    assert str(error).startswith("[sql]" if checks == "sql_only" else ("[model]", "[sql]"))


def test_planted_overdraft_meets_the_database_check(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real schema the SQL CHECK refuses what the skipped code check let through,
    and the model reports that refusal as the wrong outcome."""
    _skip_non_negative_check(monkeypatch)
    with pytest.raises((AssertionError, Exception)) as caught:
        run_machine(sqlite_engine, PLANTED_SETTINGS)
    error = caught.value
    assert isinstance(error, LedgerCheckFailed), f"not caught by a check: {error!r}"
    assert isinstance(error.__cause__, IntegrityError), repr(error)
    assert "available_not_negative" in str(error.__cause__)
