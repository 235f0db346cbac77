"""Mandate constraints in plain words, for the consent page (and later the approval page).

::

    describe(AmountRange("cny", 4000))                       # "At most 40.00 CNY per payment"
    describe(PeriodBudget(Period.WEEKLY, "usd", 10000), timezone="America/New_York")
    # "At most 100.00 USD per week (weeks start Monday, America/New_York)"
    describe(AllowedPayees(frozenset({"mer_1"})), names={"mer_1": "Harbour Coffee"})
    # "Only at: Harbour Coffee"

Amounts use :func:`paywarden.kernel.money.format_amount` (minor units, ISO 4217 exponent);
instants are shown in the mandate's time zone. Every constraint type of the vocabulary has a
sentence: a type without one fails loudly (``TypeError``) rather than being left off a page
the user consents on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
)
from paywarden.kernel.money import format_amount

__all__ = ["describe", "describe_all"]

_PER = {Period.DAILY: "per day", Period.WEEKLY: "per week", Period.MONTHLY: "per month"}
_SPACING = {
    Frequency.DAILY: "at least a day apart",
    Frequency.WEEKLY: "at least a week apart",
    Frequency.BIWEEKLY: "at least two weeks apart",
    Frequency.MONTHLY: "at least a month apart",
    Frequency.QUARTERLY: "at least three months apart",
    Frequency.ANNUALLY: "at least a year apart",
}


def _calendar(period: Period, timezone: str) -> str:
    """How the period is counted: calendar periods in the mandate's zone."""
    if period is Period.DAILY:
        return f"(days in {timezone})"
    if period is Period.WEEKLY:
        return f"(weeks start Monday, {timezone})"
    return f"(calendar months, {timezone})"


def _payments(count: int) -> str:
    return f"{count} payment" if count == 1 else f"{count} payments"


def _instant(value: datetime, timezone: str) -> str:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M:%S} ({timezone})"


def _per_payment(low: int, high: int, currency: str) -> str:
    if low:
        return f"From {format_amount(low, currency)} to {format_amount(high, currency)} per payment"
    return f"At most {format_amount(high, currency)} per payment"


def _recurrence(frequency: Frequency, count: int | None) -> str:
    spacing = _SPACING.get(frequency)  # ON_DEMAND has none
    if count is None:
        return f"Payments {spacing}" if spacing else "Payments whenever needed"
    return f"At most {_payments(count)}" + (f", {spacing}" if spacing else "")


def _window(start: datetime | None, end: datetime | None, timezone: str) -> str:
    if start is not None and end is not None:
        return f"Only from {_instant(start, timezone)} to {_instant(end, timezone)}"
    if start is not None:
        return f"Not before {_instant(start, timezone)}"
    if end is not None:
        return f"Not after {_instant(end, timezone)}"
    raise ValueError("an execution date needs not_before, not_after or both")


def describe(
    constraint: Constraint, *, timezone: str = "UTC", names: Mapping[str, str] | None = None
) -> str:
    """One sentence for one constraint. ``timezone`` is the mandate's IANA zone; ``names``
    maps merchant ids to display names (an id without a name is shown as the id)."""
    names = names or {}
    match constraint:
        case AmountRange(currency=currency, max_amount=high, min_amount=low):
            return _per_payment(low, high, currency)
        case Budget(currency=currency, max_amount=high):
            return f"At most {format_amount(high, currency)} in total"
        case PeriodBudget(period=period, currency=currency, max_amount=high):
            return (
                f"At most {format_amount(high, currency)} {_PER[period]} "
                f"{_calendar(period, timezone)}"
            )
        case CountCap(max_count=count, period=None):
            return f"At most {_payments(count)} in total"
        case CountCap(max_count=count, period=Period() as period):
            return f"At most {_payments(count)} {_PER[period]} {_calendar(period, timezone)}"
        case AgentRecurrence(frequency=frequency, max_occurrences=count):
            return _recurrence(frequency, count)
        case AllowedPayees(merchant_ids=ids):
            shown = sorted(names.get(merchant, merchant) for merchant in ids)
            return "Only at: " + ", ".join(shown)
        case MerchantCategories(categories=categories):
            return "Only at merchants in these categories: " + ", ".join(sorted(categories))
        case ExecutionDate(not_before=start, not_after=end):
            return _window(start, end, timezone)
        case ConfirmationThreshold(currency=currency, above_amount=above):
            return f"Any payment above {format_amount(above, currency)} needs your confirmation"
    raise TypeError(f"no wording for constraint type {type(constraint).__name__}")


def describe_all(
    constraints: tuple[Constraint, ...] | list[Constraint],
    *,
    timezone: str = "UTC",
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """The sentences of a mandate's constraints, in the mandate's order."""
    return [describe(c, timezone=timezone, names=names) for c in constraints]
