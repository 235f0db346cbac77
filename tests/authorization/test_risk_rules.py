"""First-version risk rules: each one at its threshold, and thresholds as data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paywarden.authorization.risk import (
    Action,
    RiskConfig,
    RiskInputs,
    RiskSignal,
    agent_velocity,
    amount_outlier,
    assess,
    mandate_velocity,
    median,
    new_merchant,
    recent_failures,
)
from paywarden.kernel.errors import InvariantViolation

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
CONFIG = RiskConfig()


def test_agent_velocity_steps_up_at_ten_an_hour_and_denies_at_thirty() -> None:
    assert agent_velocity(RiskInputs(agent_payments_recent=9), 1, NOW, CONFIG) is None
    ten = RiskInputs(agent_payments_recent=10)
    assert agent_velocity(ten, 1, NOW, CONFIG) == RiskSignal("risk_agent_velocity", Action.STEP_UP)
    thirty = RiskInputs(agent_payments_recent=30)
    assert agent_velocity(thirty, 1, NOW, CONFIG) == RiskSignal("risk_agent_velocity", Action.DENY)


def test_mandate_velocity_steps_up_at_three() -> None:
    # Which payments fall inside the window is counted by the store: test_risk_inputs.py.
    assert mandate_velocity(RiskInputs(mandate_payments_recent=2), 1, NOW, CONFIG) is None
    assert mandate_velocity(RiskInputs(mandate_payments_recent=3), 1, NOW, CONFIG) == RiskSignal(
        "risk_mandate_velocity", Action.STEP_UP
    )


def test_an_amount_far_above_the_median_steps_up() -> None:
    history = RiskInputs(mandate_history=5, mandate_median=median([1000, 1200, 900, 1100, 1000]))
    assert amount_outlier(history, 3000, NOW, CONFIG) is None  # exactly 3x
    assert amount_outlier(history, 3001, NOW, CONFIG) == RiskSignal(
        "risk_amount_outlier", Action.STEP_UP
    )
    short = RiskInputs(mandate_history=4, mandate_median=10)
    assert amount_outlier(short, 10**9, NOW, CONFIG) is None  # too little history to judge
    even = RiskInputs(mandate_history=6, mandate_median=median([100, 100, 101, 101, 500, 500]))
    assert even.mandate_median == 101  # (101 + 101) // 2
    assert amount_outlier(even, 303, NOW, CONFIG) is None
    assert amount_outlier(even, 304, NOW, CONFIG) is not None
    assert median([1, 2]) == 1 and median([7]) == 7  # the floor of the middle two


def test_a_new_merchant_steps_up_unless_configured_off() -> None:
    new = RiskInputs(merchant_is_new=True)
    assert new_merchant(new, 1, NOW, CONFIG) == RiskSignal("risk_new_merchant", Action.STEP_UP)
    assert new_merchant(new, 1, NOW, RiskConfig(new_merchant_step_up=False)) is None
    assert new_merchant(RiskInputs(), 1, NOW, CONFIG) is None


def test_recent_failures_step_up_then_deny() -> None:
    assert recent_failures(RiskInputs(failures_recent=2), 1, NOW, CONFIG) is None
    three = RiskInputs(failures_recent=3)
    assert recent_failures(three, 1, NOW, CONFIG) == RiskSignal(
        "risk_recent_failures", Action.STEP_UP
    )
    strict = RiskConfig(failure_step_up_min=1, failure_deny_min=3)
    assert recent_failures(three, 1, NOW, strict) == RiskSignal("risk_recent_failures", Action.DENY)


def test_assess_runs_every_rule_and_sorts_the_signals() -> None:
    inputs = RiskInputs(agent_payments_recent=30, merchant_is_new=True, failures_recent=3)
    assert assess(inputs, 1, NOW, CONFIG) == [
        RiskSignal("risk_agent_velocity", Action.DENY),
        RiskSignal("risk_new_merchant", Action.STEP_UP),
        RiskSignal("risk_recent_failures", Action.STEP_UP),
    ]
    assert assess(RiskInputs(), 1, NOW, CONFIG) == []


def test_history_beyond_the_bound_is_a_bug_in_the_caller() -> None:
    with pytest.raises(InvariantViolation):
        assess(RiskInputs(mandate_history=11), 1, NOW, RiskConfig(history_size_max=10))
    with pytest.raises(InvariantViolation):
        assess(RiskInputs(failures_recent=-1), 1, NOW, CONFIG)


def test_a_config_that_denies_before_it_steps_up_is_refused() -> None:
    with pytest.raises(InvariantViolation):
        RiskConfig(agent_step_up_min=5, agent_deny_min=4)
    with pytest.raises(InvariantViolation):
        RiskConfig(mandate_window_s=0)
