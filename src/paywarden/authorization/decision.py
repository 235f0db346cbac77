"""The payment decision: one evaluator per constraint, then approve, confirm or deny.

Each evaluator has the shape ``(constraint, request, usage, now, tz) -> list[Violation]`` and
returns ``[]`` when the constraint holds. A violation carries an action: ``deny`` (a hard
limit) or ``step_up`` (the user may still confirm). :func:`decide` then applies one rule:
any ``deny`` → **deny**; else any ``step_up`` (a confirmation threshold, a risk signal) →
**requires_confirmation**; else **approve**. Reasons are sorted and unique, deny reasons
first, so neither the order of constraints nor of risk signals changes the decision.

Reason codes: ``mandate_not_active``, ``currency_mismatch``, ``amount_above_max``,
``amount_below_min``, ``budget_exceeded``, ``period_budget_exceeded:<period>``,
``max_occurrences_reached``, ``recurrence_too_soon``, ``payee_not_allowed``,
``category_not_allowed``, ``outside_execution_window``, ``count_cap_reached`` (lifetime) or
``count_cap_reached:<period>``, ``above_confirmation_threshold``, and the ``risk_*`` codes of
:mod:`paywarden.authorization.risk`.

Nothing is reserved here: the service reserves usage atomically and records
:func:`usage_after` in the same transaction as the payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import assert_never

from paywarden.authorization.constraints import (
    AgentRecurrence,
    AllowedPayees,
    AmountRange,
    Budget,
    ConfirmationThreshold,
    Constraint,
    CountCap,
    ExecutionDate,
    MerchantCategories,
    Period,
    PeriodBudget,
)
from paywarden.authorization.mandates import (
    Mandate,
    MandateStatus,
    Spent,
    Usage,
    check_zone,
    next_allowed_at,
    period_key,
)
from paywarden.authorization.risk import Action, RiskSignal
from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.invariant import invariant

__all__ = [
    "Decision",
    "Outcome",
    "PaymentRequest",
    "Violation",
    "decide",
    "evaluate",
    "usage_after",
]


class Outcome(StrEnum):
    APPROVE = "approve"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    amount: int  # minor units
    currency: str
    payee: str  # merchant id
    merchant_category: str | None = None
    cart_hash: str | None = None

    def __post_init__(self) -> None:
        invariant(type(self.amount) is int and self.amount > 0, "a payment amount is positive")


@dataclass(frozen=True, slots=True, order=True)
class Violation:
    code: str
    action: Action
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...]
    violations: tuple[Violation, ...]


def _deny(code: str, detail: str) -> list[Violation]:
    return [Violation(code, Action.DENY, detail)]


def _over(spent: int, amount: int, cap: int, code: str, unit: str) -> list[Violation]:
    if spent + amount > cap:
        return _deny(code, f"{spent} {unit} used + {amount} > {cap}")
    return []


def _currency(currency: str, request: PaymentRequest) -> list[Violation]:
    if request.currency != currency:
        return _deny("currency_mismatch", f"{request.currency} is not {currency}")
    return []


def evaluate_amount_range(
    c: AmountRange, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if mismatch := _currency(c.currency, request):
        return mismatch
    if request.amount > c.max_amount:
        return _deny("amount_above_max", f"{request.amount} > {c.max_amount}")
    if request.amount < c.min_amount:
        return _deny("amount_below_min", f"{request.amount} < {c.min_amount}")
    return []


def evaluate_budget(
    c: Budget, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    spent = usage.lifetime.amount
    return _currency(c.currency, request) or _over(
        spent, request.amount, c.max_amount, "budget_exceeded", "spent"
    )


def evaluate_agent_recurrence(
    c: AgentRecurrence, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    found: list[Violation] = []
    if c.max_occurrences is not None:
        found += _over(
            usage.lifetime.count, 1, c.max_occurrences, "max_occurrences_reached", "payments"
        )
    following = next_allowed_at(c.frequency, usage.last_payment_at, tz)
    if following is not None and now < following:
        found += _deny("recurrence_too_soon", f"next {c.frequency.value} payment from {following}")
    return found


def evaluate_allowed_payees(
    c: AllowedPayees, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if request.payee not in c.merchant_ids:
        return _deny("payee_not_allowed", f"{request.payee} is not an allowed payee")
    return []


def evaluate_execution_date(
    c: ExecutionDate, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if c.not_before is not None and now < c.not_before:
        return _deny("outside_execution_window", f"before {c.not_before}")
    if c.not_after is not None and now > c.not_after:
        return _deny("outside_execution_window", f"after {c.not_after}")
    return []


def evaluate_period_budget(
    c: PeriodBudget, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    key = period_key(c.period, now, tz)
    spent = usage.in_period(key).amount
    code = f"period_budget_exceeded:{c.period.value}"
    unit = f"spent in {key}"
    return _currency(c.currency, request) or _over(spent, request.amount, c.max_amount, code, unit)


def evaluate_merchant_categories(
    c: MerchantCategories, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if request.merchant_category not in c.categories:
        return _deny("category_not_allowed", f"category {request.merchant_category} not allowed")
    return []


def evaluate_count_cap(
    c: CountCap, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if c.period is None:
        return _over(usage.lifetime.count, 1, c.max_count, "count_cap_reached", "payments")
    key = period_key(c.period, now, tz)
    code = f"count_cap_reached:{c.period.value}"
    return _over(usage.in_period(key).count, 1, c.max_count, code, f"payments in {key}")


def evaluate_confirmation_threshold(
    c: ConfirmationThreshold, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    if mismatch := _currency(c.currency, request):
        return mismatch
    if request.amount > c.above_amount:
        detail = f"{request.amount} > {c.above_amount}"
        return [Violation("above_confirmation_threshold", Action.STEP_UP, detail)]
    return []


def evaluate(
    c: Constraint, request: PaymentRequest, usage: Usage, now: datetime, tz: tzinfo
) -> list[Violation]:
    """Dispatch to the constraint's evaluator."""
    match c:
        case AmountRange():
            return evaluate_amount_range(c, request, usage, now, tz)
        case Budget():
            return evaluate_budget(c, request, usage, now, tz)
        case AgentRecurrence():
            return evaluate_agent_recurrence(c, request, usage, now, tz)
        case AllowedPayees():
            return evaluate_allowed_payees(c, request, usage, now, tz)
        case ExecutionDate():
            return evaluate_execution_date(c, request, usage, now, tz)
        case PeriodBudget():
            return evaluate_period_budget(c, request, usage, now, tz)
        case MerchantCategories():
            return evaluate_merchant_categories(c, request, usage, now, tz)
        case CountCap():
            return evaluate_count_cap(c, request, usage, now, tz)
        case ConfirmationThreshold():
            return evaluate_confirmation_threshold(c, request, usage, now, tz)
        case _:
            assert_never(c)


def decide(
    mandate: Mandate,
    usage: Usage,
    request: PaymentRequest,
    risk: list[RiskSignal],
    now: datetime,
    tz: tzinfo,
) -> Decision:
    """Evaluate every constraint and risk signal; deterministic and order-independent."""
    now = ensure_utc(now)
    check_zone(mandate, tz)
    found: list[Violation] = []
    if mandate.status is not MandateStatus.ACTIVE:
        found += _deny("mandate_not_active", f"mandate is {mandate.status.value}")
    found += _currency(mandate.currency, request)
    for constraint in mandate.constraints:
        found += evaluate(constraint, request, usage, now, tz)
    found += [Violation(signal.code, signal.action, "risk signal") for signal in risk]
    violations = tuple(sorted(set(found)))
    denials = sorted({v.code for v in violations if v.action is Action.DENY})
    step_ups = sorted({v.code for v in violations if v.action is Action.STEP_UP} - set(denials))
    if denials:
        outcome = Outcome.DENY
    elif step_ups:
        outcome = Outcome.REQUIRES_CONFIRMATION
    else:
        outcome = Outcome.APPROVE
    return Decision(outcome, tuple(denials + step_ups), violations)


def usage_after(usage: Usage, request: PaymentRequest, now: datetime, tz: tzinfo) -> Usage:
    """Usage once ``request`` is paid at ``now``: lifetime and every current period grow.

    Only the periods containing ``now`` are kept, so usage stays small; periods are counted
    whether or not the mandate limits them today, so an amendment that adds a limit sees
    what was already spent.
    """
    now = ensure_utc(now)
    keys = [period_key(period, now, tz) for period in Period]
    periods = {
        key: Spent(usage.in_period(key).amount + request.amount, usage.in_period(key).count + 1)
        for key in keys
    }
    lifetime = Spent(usage.lifetime.amount + request.amount, usage.lifetime.count + 1)
    last = now if usage.last_payment_at is None else max(usage.last_payment_at, now)
    return Usage(lifetime, periods, last)
