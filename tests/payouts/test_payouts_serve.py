"""``paywarden serve`` settles pending payouts in its maintenance loop, on both backends: the
real server, started as a subprocess with a short maintenance interval, pays one payout and
fails another (money back), and the reconciliation still ties out to the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from conftest import fresh_database, wait_for
from live_server import prepare, serving
from payout_support import FAILING_ACCOUNT, Money, assert_ties_out
from paywarden.kernel.clock import FakeClock
from paywarden.store.engine import make_engine
from paywarden.store.unit_of_work import Store


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_serve_settles_pending_payouts(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    with fresh_database(backend, tmp_path) as database_url:
        prepare(database_url)
        engine = make_engine(database_url)
        try:
            money = Money(Store(engine, clock), clock)
            paid_to, failing = money.merchant(), money.merchant(account=FAILING_ACCOUNT)
            payer = money.payer()
            money.capture(payer, paid_to, 3_000)
            money.capture(payer, failing, 2_000)
            money.payout(paid_to)
            money.payout(failing, 500)
            config = tmp_path / "paywarden.toml"
            config.write_text("hold_expiry_interval_s = 0.2\n", encoding="utf-8")

            def statuses() -> list[str]:
                with engine.connect() as connection:
                    rows = connection.execute(text("SELECT status FROM payouts ORDER BY id"))
                    return [str(row[0]) for row in rows]

            with serving(database_url, tmp_path / "server.log", "--config", str(config)):
                wait_for(lambda: "pending" not in statuses(), timeout_s=60)

            assert sorted(statuses()) == ["failed", "paid"]
            # The server settled on the real clock; the report must reach that far (the test's
            # own clock starts at a fixed instant, which the real time may have passed).
            clock.set(max(clock.now(), datetime.now(UTC)) + timedelta(minutes=1))
            assert money.balance(failing).account.posted == 2_000
            assert money.balance(paid_to).account.posted == 0
            assert_ties_out(money, [paid_to, failing])
        finally:
            engine.dispose()
