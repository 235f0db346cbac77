"""Parsing a mandate's constraint list: every type, AP2's shapes, and failing closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from paywarden.authorization.constraints import (
    AgentRecurrence,
    AllowedPayees,
    AmountRange,
    Budget,
    ConfirmationThreshold,
    ConstraintError,
    CountCap,
    ExecutionDate,
    Frequency,
    MerchantCategories,
    Period,
    PeriodBudget,
    parse_constraints,
    to_json,
)
from paywarden.kernel.errors import InvalidRequest

LIMIT = {"type": "payment.budget", "currency": "usd", "max": 100_000}


def parse_one(raw: dict[str, Any], currency: str = "usd") -> object:
    """Parse one constraint, next to a budget so the list has a spending limit."""
    parsed = parse_constraints([raw, LIMIT], currency=currency)
    return parsed[0]


def problems_of(raw: object, currency: str = "usd") -> list[tuple[str, str]]:
    with pytest.raises(ConstraintError) as caught:
        parse_constraints(raw, currency=currency)
    return [(problem.code, problem.param) for problem in caught.value.problems]


# --- every type, worked examples -----------------------------------------------------------


def test_amount_range_with_and_without_min() -> None:
    raw = {"type": "payment.amount_range", "currency": "USD", "max": 5000, "min": 100}
    assert parse_one(raw) == AmountRange("usd", 5000, 100)
    no_min = {"type": "payment.amount_range", "currency": "usd", "max": 5000}
    assert parse_one(no_min) == AmountRange("usd", 5000, 0)


def test_budget() -> None:
    assert parse_one({"type": "payment.budget", "currency": "usd", "max": 1}) == Budget("usd", 1)


def test_agent_recurrence_maps_ap2_frequency_and_occurrences() -> None:
    raw = {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 12}
    assert parse_one(raw) == AgentRecurrence(Frequency.MONTHLY, 12)
    lower = {"type": "payment.agent_recurrence", "frequency": "on_demand"}
    assert parse_one(lower) == AgentRecurrence(Frequency.ON_DEMAND, None)


def test_allowed_payees_takes_ids_and_ap2_merchant_objects() -> None:
    ap2 = {"id": "merchant_1", "name": "Demo Merchant", "website": "https://demo.example"}
    raw = {"type": "payment.allowed_payees", "allowed": ["mer_a", ap2, "mer_a"]}
    assert parse_one(raw) == AllowedPayees(frozenset({"mer_a", "merchant_1"}))


def test_execution_date_is_read_as_utc_instants() -> None:
    raw = {
        "type": "payment.execution_date",
        "not_before": "2026-03-31T08:00:00+08:00",
        "not_after": "2026-04-30T23:59:59Z",
    }
    assert parse_one(raw) == ExecutionDate(
        datetime(2026, 3, 31, 0, 0, tzinfo=UTC), datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)
    )
    half_open = {"type": "payment.execution_date", "not_before": "2026-03-31T00:00:00.5Z"}
    assert parse_one(half_open) == ExecutionDate(datetime(2026, 3, 31, 0, 0, 0, 500_000, UTC))


def test_period_budget() -> None:
    raw = {"type": "paywarden.period_budget", "period": "weekly", "currency": "usd", "max": 20000}
    assert parse_one(raw) == PeriodBudget(Period.WEEKLY, "usd", 20000)


def test_merchant_categories() -> None:
    raw = {"type": "paywarden.merchant_categories", "allowed": ["groceries", "5411"]}
    assert parse_one(raw) == MerchantCategories(frozenset({"groceries", "5411"}))


def test_count_cap_lifetime_and_per_period() -> None:
    assert parse_one({"type": "paywarden.count_cap", "max": 3}) == CountCap(3)
    daily = {"type": "paywarden.count_cap", "max": 3, "period": "daily"}
    assert parse_one(daily) == CountCap(3, Period.DAILY)


def test_confirmation_threshold_may_be_zero_to_confirm_every_payment() -> None:
    raw = {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 0}
    assert parse_one(raw) == ConfirmationThreshold("usd", 0)


def test_to_json_reads_back_to_the_same_constraints() -> None:
    raw = [
        {"type": "payment.amount_range", "currency": "USD", "max": 5000},
        {"type": "payment.agent_recurrence", "frequency": "weekly"},
        {"type": "payment.allowed_payees", "allowed": [{"id": "mer_b", "name": "B"}, "mer_a"]},
        {"type": "payment.execution_date", "not_after": "2026-04-30T23:59:59.123456+02:00"},
        {"type": "paywarden.period_budget", "period": "DAILY", "currency": "usd", "max": 7},
        {"type": "paywarden.count_cap", "max": 2, "period": "monthly"},
    ]
    parsed = parse_constraints(raw, currency="usd")
    stored = [to_json(c) for c in parsed]
    assert parse_constraints(stored, currency="usd") == parsed
    assert stored[0] == {"type": "payment.amount_range", "currency": "usd", "max": 5000, "min": 0}
    assert stored[2] == {"type": "payment.allowed_payees", "allowed": ["mer_a", "mer_b"]}
    assert stored[3]["not_after"] == "2026-04-30T21:59:59.123456Z"


def test_the_ap2_spec_example_constraints_parse_except_the_reference() -> None:
    # From payment_mandate.md's SD-JWT example, with the merchant disclosure resolved.
    ap2 = [
        {"type": "payment.amount_range", "currency": "USD", "max": 20000, "min": 0},
        {"type": "payment.allowed_payees", "allowed": [{"id": "merchant_1", "name": "Demo"}]},
    ]
    assert len(parse_constraints(ap2, currency="usd")) == 2
    reference = {"type": "payment.reference", "conditional_transaction_id": "FzLo"}
    assert problems_of([*ap2, reference]) == [("unknown_constraint", "$.constraints[2].type")]


# --- failing closed ------------------------------------------------------------------------


def test_an_unknown_constraint_is_rejected_at_parse() -> None:
    assert problems_of([LIMIT, {"type": "payment.vibes", "max": 1}]) == [
        ("unknown_constraint", "$.constraints[1].type")
    ]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "payment.budget", "currency": "usd", "max": 1000.00},  # AP2's own example
        {"type": "payment.budget", "currency": "usd", "max": 1.5},
        {"type": "payment.budget", "currency": "usd", "max": "1000"},
        {"type": "payment.budget", "currency": "usd", "max": True},
        {"type": "payment.budget", "currency": "usd", "max": None},
        {"type": "payment.budget", "currency": "usd", "max": 0},
        {"type": "payment.budget", "currency": "usd", "max": -5},
        {"type": "payment.budget", "currency": "usd", "max": 10**15},
    ],
)
def test_a_budget_max_that_is_not_a_positive_integer_of_minor_units_is_refused(
    raw: dict[str, Any],
) -> None:
    assert problems_of([raw]) == [("invalid_constraint", "$.constraints[0].max")]


def test_an_unknown_or_foreign_currency_is_refused() -> None:
    unknown = {"type": "payment.budget", "currency": "xyz", "max": 10}
    foreign = {"type": "payment.budget", "currency": "eur", "max": 10}
    assert problems_of([unknown]) == [("invalid_constraint", "$.constraints[0].currency")]
    assert problems_of([foreign]) == [("invalid_constraint", "$.constraints[0].currency")]


def test_every_problem_is_listed_with_its_path_and_the_first_sets_the_code() -> None:
    raw = [
        {"type": "payment.amount_range", "currency": "usd", "max": 100, "min": 200},
        {"type": "paywarden.count_cap", "max": 0, "period": "hourly", "maxx": 3},
        {"type": "payment.allowed_payees", "allowed": ["mer_a", "has space"]},
        "not an object",
        {"max": 5},
        {"type": "payment.execution_date"},
        {"type": "payment.budget", "currency": "usd"},
    ]
    with pytest.raises(InvalidRequest) as caught:
        parse_constraints(raw, currency="usd")
    assert (caught.value.code, caught.value.param) == ("invalid_constraint", "$.constraints[0].min")
    assert "$.constraints[1].maxx: is not a field" in caught.value.message
    assert problems_of(raw) == [
        ("invalid_constraint", "$.constraints[0].min"),
        ("invalid_constraint", "$.constraints[1].maxx"),
        ("invalid_constraint", "$.constraints[1].max"),
        ("invalid_constraint", "$.constraints[1].period"),
        ("invalid_constraint", "$.constraints[2].allowed[1]"),
        ("invalid_constraint", "$.constraints[3]"),
        ("invalid_constraint", "$.constraints[4].type"),
        ("invalid_constraint", "$.constraints[5]"),
        ("invalid_constraint", "$.constraints[6].max"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "payment.execution_date", "not_after": "2026-04-30"},  # which zone, which end?
        {"type": "payment.execution_date", "not_after": "2026-04-30T23:59:59"},  # no offset
        {"type": "payment.execution_date", "not_after": "2026-04-31T00:00:00Z"},
        {"type": "payment.execution_date", "not_after": 1777345957},
    ],
)
def test_a_window_edge_must_be_an_rfc3339_instant_with_an_offset(raw: dict[str, Any]) -> None:
    assert problems_of([LIMIT, raw]) == [("invalid_constraint", "$.constraints[1].not_after")]


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    raw = {
        "type": "payment.execution_date",
        "not_before": "2026-05-01T00:00:00Z",
        "not_after": "2026-04-30T23:59:59Z",
    }
    assert problems_of([LIMIT, raw]) == [("invalid_constraint", "$.constraints[1].not_before")]


def test_empty_allow_lists_and_odd_categories_are_refused() -> None:
    assert problems_of([LIMIT, {"type": "payment.allowed_payees", "allowed": []}]) == [
        ("invalid_constraint", "$.constraints[1].allowed")
    ]
    odd = {"type": "paywarden.merchant_categories", "allowed": ["Groceries"]}
    assert problems_of([LIMIT, odd]) == [("invalid_constraint", "$.constraints[1].allowed[0]")]
    newline = {"type": "paywarden.merchant_categories", "allowed": ["books", "books\n"]}
    assert problems_of([LIMIT, newline]) == [("invalid_constraint", "$.constraints[1].allowed[1]")]
    trailing = {"type": "payment.allowed_payees", "allowed": ["mer_a\n"]}
    assert problems_of([LIMIT, trailing]) == [("invalid_constraint", "$.constraints[1].allowed[0]")]
    undisclosed = {"type": "payment.allowed_payees", "allowed": [{"...": "oEH7i1gy"}]}
    assert problems_of([LIMIT, undisclosed]) == [
        ("invalid_constraint", "$.constraints[1].allowed[0]")
    ]


def test_a_list_without_any_spending_limit_is_refused() -> None:
    only_payees = [{"type": "payment.allowed_payees", "allowed": ["mer_a"]}]
    assert problems_of(only_payees) == [("invalid_constraint", "$.constraints")]
    assert problems_of([]) == [("invalid_constraint", "$.constraints")]


def test_a_list_that_is_not_an_array_or_too_long_is_refused() -> None:
    assert problems_of({"type": "payment.budget"}) == [("invalid_constraint", "$.constraints")]
    assert problems_of([LIMIT] * 65) == [("invalid_constraint", "$.constraints")]
    assert len(parse_constraints([LIMIT] * 64, currency="usd")) == 64


def test_odd_keys_still_give_a_valid_json_path() -> None:
    raw = {"type": "payment.budget", "currency": "usd", "max": 5, "a b": 1}
    assert problems_of([raw]) == [("invalid_constraint", '$.constraints[0]["a b"]')]


def test_the_mandate_currency_itself_is_checked() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_constraints([LIMIT], currency="zzz")
    assert caught.value.code == "unknown_currency"


def test_an_instant_keeps_its_meaning_whatever_offset_it_was_written_in() -> None:
    plus_eight = timezone(timedelta(hours=8))
    raw = {"type": "payment.execution_date", "not_before": "2026-01-01T08:00:00+08:00"}
    window = parse_one(raw)
    assert isinstance(window, ExecutionDate)
    assert window.not_before == datetime(2026, 1, 1, 8, 0, tzinfo=plus_eight)
    assert window.not_before is not None and window.not_before.tzinfo is UTC
