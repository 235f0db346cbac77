"""First-version risk rules: pure functions over plain inputs, thresholds as data.

The service gathers :class:`RiskInputs` (how many payments the agent and the mandate made
in their windows, the median of this mandate's past amounts, whether the merchant is new to
the user, how many attempts failed recently). The store reads at most
``RiskConfig.history_size_max`` rows for each, so the cost of a decision does not grow with
the history: a count stops there or at the highest threshold it can reach, and is not read
where neither can be reached (a threshold above ``history_size_max`` never fires). Each
rule returns a :class:`RiskSignal` or ``None``;
:func:`~paywarden.authorization.decision.decide` turns ``step_up`` signals into
``requires_confirmation`` and ``deny`` signals into a denial. Signals:

- ``risk_agent_velocity``   many payments by this agent (any mandate) in a short window
- ``risk_mandate_velocity`` many payments under this mandate in a short window
- ``risk_amount_outlier``   far above the median of this mandate's past amounts
- ``risk_new_merchant``     the user has never paid this merchant
- ``risk_recent_failures``  many failed attempts (declines, bad signatures) recently

A window counts payments made in ``(now - window, now]`` and also any later ones, which only
clock skew between nodes produces: counting them errs on the side of caution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from paywarden.kernel.invariant import invariant

__all__ = [
    "RULES",
    "Action",
    "RiskConfig",
    "RiskInputs",
    "RiskSignal",
    "agent_velocity",
    "amount_outlier",
    "assess",
    "mandate_velocity",
    "median",
    "new_merchant",
    "recent_failures",
]


class Action(StrEnum):
    STEP_UP = "step_up"  # ask the user on a trusted surface
    DENY = "deny"


@dataclass(frozen=True, slots=True, order=True)
class RiskSignal:
    code: str
    action: Action


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Thresholds; ``*_min`` is the count at which the rule fires (this payment not included)."""

    agent_window_s: int = 3600
    agent_step_up_min: int = 10
    agent_deny_min: int = 30
    mandate_window_s: int = 600
    mandate_step_up_min: int = 3
    mandate_deny_min: int = 10
    outlier_history_min: int = 5  # fewer past amounts than this: no opinion
    outlier_percent_of_median: int = 300  # above 3x the median: step up
    new_merchant_step_up: bool = True
    failure_window_s: int = 900
    failure_step_up_min: int = 3
    failure_deny_min: int = 10
    history_size_max: int = 1000  # rows read at most for a count or the median

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            invariant(isinstance(value, bool) or value > 0, f"RiskConfig.{item.name} is positive")
        invariant(self.agent_step_up_min <= self.agent_deny_min, "agent: step-up before deny")
        invariant(self.mandate_step_up_min <= self.mandate_deny_min, "mandate: step-up first")
        invariant(self.failure_step_up_min <= self.failure_deny_min, "failures: step-up first")


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """Counts are of the window the config names (``agent_window_s``, ...), ending now, as
    far as the rule needs them: the store stops at the highest threshold a count can reach
    (``services.payments.count_cap``), and reads 0 where neither can be reached."""

    agent_payments_recent: int = 0
    mandate_payments_recent: int = 0
    mandate_history: int = 0  # past successful payments under the mandate, at most the bound
    mandate_median: int = 0  # their amounts' median (of an even count: floor of the middle two)
    merchant_is_new: bool = False
    failures_recent: int = 0


def _tiered(code: str, count: int, step_up_min: int, deny_min: int) -> RiskSignal | None:
    if count >= deny_min:
        return RiskSignal(code, Action.DENY)
    if count >= step_up_min:
        return RiskSignal(code, Action.STEP_UP)
    return None


def agent_velocity(
    inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig
) -> RiskSignal | None:
    count = inputs.agent_payments_recent
    return _tiered("risk_agent_velocity", count, config.agent_step_up_min, config.agent_deny_min)


def mandate_velocity(
    inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig
) -> RiskSignal | None:
    count = inputs.mandate_payments_recent
    return _tiered(
        "risk_mandate_velocity", count, config.mandate_step_up_min, config.mandate_deny_min
    )


def amount_outlier(
    inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig
) -> RiskSignal | None:
    """Integer arithmetic only."""
    if inputs.mandate_history < config.outlier_history_min:
        return None
    if amount * 100 > inputs.mandate_median * config.outlier_percent_of_median:
        return RiskSignal("risk_amount_outlier", Action.STEP_UP)
    return None


def median(values: list[int]) -> int:
    """The median of ``values`` (not empty); of an even count, the floor of the middle two."""
    invariant(bool(values), "the median of nothing")
    ordered, middle = sorted(values), len(values) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def new_merchant(
    inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig
) -> RiskSignal | None:
    if inputs.merchant_is_new and config.new_merchant_step_up:
        return RiskSignal("risk_new_merchant", Action.STEP_UP)
    return None


def recent_failures(
    inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig
) -> RiskSignal | None:
    count = inputs.failures_recent
    return _tiered(
        "risk_recent_failures", count, config.failure_step_up_min, config.failure_deny_min
    )


Rule = Callable[[RiskInputs, int, datetime, RiskConfig], RiskSignal | None]
RULES: tuple[Rule, ...] = (
    agent_velocity,
    mandate_velocity,
    amount_outlier,
    new_merchant,
    recent_failures,
)


def assess(inputs: RiskInputs, amount: int, now: datetime, config: RiskConfig) -> list[RiskSignal]:
    """Every rule's signal for a payment of ``amount`` at ``now``, sorted."""
    counts = (inputs.agent_payments_recent, inputs.mandate_payments_recent, inputs.failures_recent)
    invariant(all(count >= 0 for count in counts), "risk counts are not negative")
    invariant(inputs.mandate_history <= config.history_size_max, "risk history is bounded")
    return sorted(signal for rule in RULES if (signal := rule(inputs, amount, now, config)))
