"""Constraint wording for the consent page: every type of the vocabulary has a sentence
(no browser needed; it lives here beside the page it words)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paywarden.authorization.constraints import (
    AgentRecurrence,
    AllowedPayees,
    AmountRange,
    Budget,
    ConfirmationThreshold,
    Constraint,
    CountCap,
    ExecutionDate,
    Frequency,
    MerchantCategories,
    Period,
    PeriodBudget,
    parse_constraints,
)
from paywarden.web.wording import describe

NY = "America/New_York"


@pytest.mark.parametrize(
    ("constraint", "words"),
    [
        (AmountRange("cny", 4_000), "At most 40.00 CNY per payment"),
        (AmountRange("usd", 4_000, 100), "From 1.00 USD to 40.00 USD per payment"),
        (AmountRange("jpy", 5_000), "At most 5000 JPY per payment"),
        (Budget("usd", 100_000), "At most 1000.00 USD in total"),
        (
            PeriodBudget(Period.WEEKLY, "usd", 10_000),
            "At most 100.00 USD per week (weeks start Monday, America/New_York)",
        ),
        (
            PeriodBudget(Period.DAILY, "eur", 2_000),
            "At most 20.00 EUR per day (days in America/New_York)",
        ),
        (
            PeriodBudget(Period.MONTHLY, "usd", 50_000),
            "At most 500.00 USD per month (calendar months, America/New_York)",
        ),
        (CountCap(1), "At most 1 payment in total"),
        (CountCap(5, Period.DAILY), "At most 5 payments per day (days in America/New_York)"),
        (AgentRecurrence(Frequency.MONTHLY, 12), "At most 12 payments, at least a month apart"),
        (AgentRecurrence(Frequency.WEEKLY), "Payments at least a week apart"),
        (AgentRecurrence(Frequency.ON_DEMAND), "Payments whenever needed"),
        (AgentRecurrence(Frequency.ON_DEMAND, 3), "At most 3 payments"),
        (AllowedPayees(frozenset({"mer_1"})), "Only at: Harbour Coffee"),
        (AllowedPayees(frozenset({"mer_1", "mer_2"})), "Only at: Harbour Coffee, mer_2"),
        (
            MerchantCategories(frozenset({"groceries", "coffee"})),
            "Only at merchants in these categories: coffee, groceries",
        ),
        (
            ExecutionDate(
                datetime(2026, 3, 31, 4, 0, tzinfo=UTC), datetime(2026, 5, 1, 3, 59, 59, tzinfo=UTC)
            ),
            "Only from 2026-03-31 00:00:00 (America/New_York)"
            " to 2026-04-30 23:59:59 (America/New_York)",
        ),
        (
            ExecutionDate(not_after=datetime(2026, 5, 1, 3, 59, 59, tzinfo=UTC)),
            "Not after 2026-04-30 23:59:59 (America/New_York)",
        ),
        (
            ConfirmationThreshold("usd", 10_000),
            "Any payment above 100.00 USD needs your confirmation",
        ),
    ],
)
def test_each_constraint_in_plain_words(constraint: Constraint, words: str) -> None:
    assert describe(constraint, timezone=NY, names={"mer_1": "Harbour Coffee"}) == words


def test_the_default_zone_is_utc_and_parsed_constraints_word_the_same() -> None:
    parsed = parse_constraints(
        [{"type": "paywarden.period_budget", "period": "weekly", "currency": "usd", "max": 10_000}],
        currency="usd",
    )
    assert describe(parsed[0]) == "At most 100.00 USD per week (weeks start Monday, UTC)"
