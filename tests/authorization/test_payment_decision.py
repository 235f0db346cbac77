"""The payment decision: every evaluator at its boundaries, and how reasons combine."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from paywarden.authorization.constraints import Period, parse_constraints
from paywarden.authorization.decision import (
    Decision,
    Outcome,
    PaymentRequest,
    Violation,
    decide,
    evaluate,
)
from paywarden.authorization.mandates import (
    Mandate,
    PeriodKey,
    Spent,
    Usage,
    consent,
    new_mandate,
    pause,
    revoke,
)
from paywarden.authorization.risk import Action, RiskSignal
from paywarden.kernel.errors import InvariantViolation

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
BUDGET = {"type": "payment.budget", "currency": "usd", "max": 1_000_000}


def mandate(*raw: dict[str, Any]) -> Mandate:
    constraints = parse_constraints([*raw, BUDGET], currency="usd")
    created = datetime(2026, 1, 1, tzinfo=UTC)
    return consent(
        new_mandate("mnd_1", "usr_1", "agt_1", "usd", "UTC", constraints, created), created
    )


def pay(
    m: Mandate,
    amount: int = 100,
    *,
    usage: Usage | None = None,
    now: datetime = NOW,
    payee: str = "mer_a",
    category: str | None = "groceries",
    currency: str = "usd",
    risk: list[RiskSignal] | None = None,
) -> Decision:
    request = PaymentRequest(amount, currency, payee, category, cart_hash="sha256:abc")
    return decide(m, usage or Usage(), request, risk or [], now, UTC)


def approved(decision: Decision) -> bool:
    return decision.outcome is Outcome.APPROVE and decision.reasons == ()


# --- payment.amount_range ------------------------------------------------------------------


def test_amount_equal_to_max_is_approved_one_minor_unit_more_is_denied() -> None:
    m = mandate({"type": "payment.amount_range", "currency": "usd", "max": 5000, "min": 100})
    assert approved(pay(m, 5000))
    assert pay(m, 5001).reasons == ("amount_above_max",)
    assert approved(pay(m, 100))
    assert pay(m, 99).reasons == ("amount_below_min",)


# --- payment.budget ------------------------------------------------------------------------


def test_the_budget_counts_what_was_already_spent() -> None:
    m = mandate({"type": "payment.budget", "currency": "usd", "max": 10_000})
    spent = Usage(Spent(9_000, 3))
    assert approved(pay(m, 1_000, usage=spent))
    denied = pay(m, 1_001, usage=spent)
    assert (denied.outcome, denied.reasons) == (Outcome.DENY, ("budget_exceeded",))
    assert denied.violations == (
        Violation("budget_exceeded", Action.DENY, "9000 spent used + 1001 > 10000"),
    )


# --- payment.agent_recurrence --------------------------------------------------------------


def test_recurrence_allows_max_occurrences_and_no_more() -> None:
    m = mandate(
        {"type": "payment.agent_recurrence", "frequency": "ON_DEMAND", "max_occurrences": 3}
    )
    assert approved(pay(m, usage=Usage(Spent(200, 2), last_payment_at=NOW)))
    assert pay(m, usage=Usage(Spent(300, 3), last_payment_at=NOW)).reasons == (
        "max_occurrences_reached",
    )


def test_a_monthly_recurrence_waits_until_the_same_day_next_month() -> None:
    m = mandate({"type": "payment.agent_recurrence", "frequency": "MONTHLY"})
    usage = Usage(Spent(100, 1), last_payment_at=datetime(2026, 3, 15, 14, 0, tzinfo=UTC))
    too_soon = datetime(2026, 4, 14, 23, 59, 59, tzinfo=UTC)
    assert pay(m, usage=usage, now=too_soon).reasons == ("recurrence_too_soon",)
    # An earlier hour than last time is fine: spacing is in calendar days.
    assert approved(pay(m, usage=usage, now=datetime(2026, 4, 15, 0, 0, tzinfo=UTC)))
    assert approved(pay(m, usage=Usage()))  # the first payment is never too soon


# --- payment.allowed_payees ----------------------------------------------------------------


def test_another_merchant_is_denied() -> None:
    m = mandate({"type": "payment.allowed_payees", "allowed": ["mer_a", {"id": "mer_b"}]})
    assert approved(pay(m, payee="mer_a"))
    assert approved(pay(m, payee="mer_b"))
    assert pay(m, payee="mer_c").reasons == ("payee_not_allowed",)


# --- payment.execution_date ----------------------------------------------------------------


def test_the_last_valid_instant_is_accepted_and_one_second_later_denied() -> None:
    m = mandate(
        {
            "type": "payment.execution_date",
            "not_before": "2026-03-31T00:00:00Z",
            "not_after": "2026-04-30T23:59:59Z",
        }
    )
    last = datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)
    assert approved(pay(m, now=last))
    assert pay(m, now=last + timedelta(seconds=1)).reasons == ("outside_execution_window",)
    first = datetime(2026, 3, 31, tzinfo=UTC)
    assert approved(pay(m, now=first))
    assert pay(m, now=first - timedelta(microseconds=1)).reasons == ("outside_execution_window",)


# --- paywarden.period_budget ---------------------------------------------------------------


def test_each_period_budget_checks_its_own_current_period() -> None:
    m = mandate(
        {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 1_000},
        {"type": "paywarden.period_budget", "period": "monthly", "currency": "usd", "max": 5_000},
    )
    today = PeriodKey(Period.DAILY, date(2026, 4, 15))
    yesterday = PeriodKey(Period.DAILY, date(2026, 4, 14))
    month = PeriodKey(Period.MONTHLY, date(2026, 4, 1))
    usage = Usage(
        Spent(4_500, 5), {today: Spent(600, 1), yesterday: Spent(900, 1), month: Spent(4_500, 5)}
    )
    assert approved(pay(m, 400, usage=usage))
    assert pay(m, 401, usage=usage).reasons == ("period_budget_exceeded:daily",)
    only_month = Usage(Spent(4_500, 5), {today: Spent(400, 1), month: Spent(4_500, 5)})
    both = pay(m, 501, usage=only_month)
    assert both.reasons == ("period_budget_exceeded:monthly",)
    assert pay(m, 600, usage=usage).reasons == (
        "period_budget_exceeded:daily",
        "period_budget_exceeded:monthly",
    )


# --- paywarden.merchant_categories ---------------------------------------------------------


def test_a_category_outside_the_list_or_no_category_is_denied() -> None:
    m = mandate({"type": "paywarden.merchant_categories", "allowed": ["groceries", "books"]})
    assert approved(pay(m, category="books"))
    assert pay(m, category="gambling").reasons == ("category_not_allowed",)
    assert pay(m, category=None).reasons == ("category_not_allowed",)


# --- paywarden.count_cap -------------------------------------------------------------------


def test_count_caps_lifetime_and_weekly() -> None:
    lifetime = mandate({"type": "paywarden.count_cap", "max": 2})
    assert approved(pay(lifetime, usage=Usage(Spent(100, 1))))
    assert pay(lifetime, usage=Usage(Spent(200, 2))).reasons == ("count_cap_reached",)
    weekly = mandate({"type": "paywarden.count_cap", "max": 2, "period": "weekly"})
    this_week = PeriodKey(Period.WEEKLY, date(2026, 4, 13))
    last_week = PeriodKey(Period.WEEKLY, date(2026, 4, 6))
    assert approved(pay(weekly, usage=Usage(Spent(900, 9), {last_week: Spent(200, 2)})))
    full = Usage(Spent(900, 9), {this_week: Spent(200, 2)})
    assert pay(weekly, usage=full).reasons == ("count_cap_reached:weekly",)


# --- paywarden.confirmation_threshold ------------------------------------------------------


def test_above_the_threshold_asks_the_user_instead_of_denying() -> None:
    m = mandate({"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 10_000})
    assert approved(pay(m, 10_000))
    asked = pay(m, 10_001)
    assert asked.outcome is Outcome.REQUIRES_CONFIRMATION
    assert asked.reasons == ("above_confirmation_threshold",)


def test_a_hard_violation_beats_a_confirmation() -> None:
    m = mandate(
        {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 100},
        {"type": "payment.amount_range", "currency": "usd", "max": 500},
    )
    denied = pay(m, 501)
    assert denied.outcome is Outcome.DENY
    assert denied.reasons == ("amount_above_max", "above_confirmation_threshold")


# --- the mandate itself, currency, risk ----------------------------------------------------


def test_only_an_active_mandate_pays() -> None:
    m = mandate()
    assert pay(pause(m, NOW)).reasons == ("mandate_not_active",)
    assert pay(revoke(m, NOW)).outcome is Outcome.DENY
    pending = new_mandate("mnd_1", "usr_1", "agt_1", "usd", "UTC", m.constraints, NOW)
    assert pay(pending).reasons == ("mandate_not_active",)


def test_another_currency_is_denied() -> None:
    m = mandate({"type": "paywarden.confirmation_threshold", "currency": "usd", "above": 100})
    denied = pay(m, 50, currency="eur")
    assert denied.outcome is Outcome.DENY
    assert denied.reasons == ("currency_mismatch",)


def test_risk_signals_step_up_or_deny() -> None:
    m = mandate()
    step_up = [RiskSignal("risk_new_merchant", Action.STEP_UP)]
    asked = pay(m, risk=step_up)
    assert (asked.outcome, asked.reasons) == (Outcome.REQUIRES_CONFIRMATION, ("risk_new_merchant",))
    both = [RiskSignal("risk_agent_velocity", Action.DENY), *step_up]
    denied = pay(m, risk=both)
    assert (denied.outcome, denied.reasons) == (
        Outcome.DENY,
        ("risk_agent_velocity", "risk_new_merchant"),
    )


def test_evaluate_returns_nothing_when_satisfied() -> None:
    (budget,) = mandate().constraints
    request = PaymentRequest(1, "usd", "mer_a")
    assert evaluate(budget, request, Usage(), NOW, UTC) == []


def test_a_payment_request_must_be_positive_integer_minor_units() -> None:
    with pytest.raises(InvariantViolation):
        PaymentRequest(0, "usd", "mer_a")
    with pytest.raises(InvariantViolation):
        PaymentRequest(True, "usd", "mer_a")
