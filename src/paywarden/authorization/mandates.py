"""The mandate, its lifecycle, its usage, and the calendar periods budgets are counted in.

Lifecycle (each transition is a pure function returning the next mandate, revision + 1)::

    pending_consent --consent--> active --pause--> paused --resume--> active
    pending_consent | active | paused --amend--> pending_consent  (fresh consent needed)
    pending_consent | active | paused --expire--> expired    (its window has ended)
    active | paused --exhaust--> exhausted                     (budget or count used up)
    anything but revoked --revoke--> revoked                   (revocation always wins)

An illegal transition raises ``Conflict`` with code ``mandate_<status>`` (``mandate_revoked``
when acting on a revoked mandate). Only an active mandate pays.

**Usage** is what was already spent: a lifetime total and count, and totals and counts per
calendar period, keyed by the period's first local date (``weekly:2026-03-02``). Periods are
calendar days, Monday-to-Sunday weeks and months in the mandate's IANA zone, computed with
aware datetimes in the ``tzinfo`` the caller passes, so a day across a DST change lasts 23 or
25 hours and 23:30 on a Sunday in New York belongs to that week although it is Monday in UTC.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from paywarden.authorization.constraints import (
    AgentRecurrence,
    Budget,
    Constraint,
    CountCap,
    ExecutionDate,
    Frequency,
    Period,
    PeriodBudget,
)
from paywarden.kernel.clock import ensure_utc
from paywarden.kernel.errors import Conflict, InvalidRequest
from paywarden.kernel.invariant import invariant
from paywarden.kernel.money import parse_currency

__all__ = [
    "BudgetRemaining",
    "Mandate",
    "MandateStatus",
    "PeriodKey",
    "Spent",
    "Usage",
    "amend",
    "check_zone",
    "consent",
    "exhaust",
    "expire",
    "is_exhausted",
    "new_mandate",
    "next_allowed_at",
    "pause",
    "period_end",
    "period_key",
    "remaining",
    "resume",
    "revoke",
    "window_end",
]

_ZONE_RE = re.compile(r"UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){1,2}")


class MandateStatus(StrEnum):
    PENDING_CONSENT = "pending_consent"
    ACTIVE = "active"
    PAUSED = "paused"
    REVOKED = "revoked"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Mandate:
    id: str  # mnd_…
    user: str  # usr_… who granted it
    agent: str  # agt_… who may spend under it
    currency: str
    timezone: str  # IANA name; the caller resolves it to a tzinfo
    constraints: tuple[Constraint, ...]
    status: MandateStatus
    created: datetime
    revision: int = 1  # +1 on every transition, so caches can tell they are stale
    consented_at: datetime | None = None
    paused_at: datetime | None = None
    revoked_at: datetime | None = None
    ended_at: datetime | None = None  # when it expired or was exhausted


@dataclass(frozen=True, slots=True)
class Spent:
    amount: int = 0
    count: int = 0

    def __post_init__(self) -> None:
        invariant(self.amount >= 0 and self.count >= 0, "usage is never negative")


@dataclass(frozen=True, slots=True, order=True)
class PeriodKey:
    period: Period
    start: date  # first local date: the day itself, a Monday, or the 1st of the month

    def __str__(self) -> str:
        return f"{self.period.value}:{self.start.isoformat()}"


@dataclass(frozen=True, slots=True)
class Usage:
    lifetime: Spent = Spent()
    periods: Mapping[PeriodKey, Spent] = field(default_factory=dict)
    last_payment_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "periods", MappingProxyType(dict(self.periods)))
        if self.last_payment_at is not None:
            object.__setattr__(self, "last_payment_at", ensure_utc(self.last_payment_at))

    def in_period(self, key: PeriodKey) -> Spent:
        return self.periods.get(key, Spent())


@dataclass(frozen=True, slots=True)
class BudgetRemaining:
    """What one limit still allows, for the status view; ``None`` where it does not apply."""

    constraint: str  # the constraint type, such as paywarden.period_budget
    period: Period | None = None
    currency: str | None = None
    amount_left: int | None = None
    count_left: int | None = None
    period_end: datetime | None = None  # first instant of the next period (exclusive)
    next_allowed_at: datetime | None = None  # agent_recurrence: earliest next payment


def new_mandate(
    id: str,
    user: str,
    agent: str,
    currency: str,
    timezone: str,
    constraints: Sequence[Constraint],
    now: datetime,
) -> Mandate:
    """A mandate awaiting the user's consent. Parse ``constraints`` with ``parse_constraints``."""
    if not _ZONE_RE.fullmatch(timezone):
        raise InvalidRequest(
            "timezone must be an IANA zone name", code="invalid_timezone", param="$.timezone"
        )
    code = parse_currency(currency)
    own = _own(constraints, code)
    status = MandateStatus.PENDING_CONSENT
    return Mandate(id, user, agent, code, timezone, own, status, created=ensure_utc(now))


def consent(mandate: Mandate, now: datetime) -> Mandate:
    _require(mandate, "consented to", {MandateStatus.PENDING_CONSENT})
    return _move(mandate, MandateStatus.ACTIVE, consented_at=ensure_utc(now))


def pause(mandate: Mandate, now: datetime) -> Mandate:
    _require(mandate, "paused", {MandateStatus.ACTIVE})
    return _move(mandate, MandateStatus.PAUSED, paused_at=ensure_utc(now))


def resume(mandate: Mandate, now: datetime) -> Mandate:
    _require(mandate, "resumed", {MandateStatus.PAUSED})
    ensure_utc(now)
    return _move(mandate, MandateStatus.ACTIVE, paused_at=None)


def amend(mandate: Mandate, constraints: Sequence[Constraint], now: datetime) -> Mandate:
    """New constraints need fresh consent; usage so far still counts against them."""
    _require(mandate, "amended", _LIVE)
    ensure_utc(now)
    own = _own(constraints, mandate.currency)
    return _move(
        mandate, MandateStatus.PENDING_CONSENT, constraints=own, consented_at=None, paused_at=None
    )


def revoke(mandate: Mandate, now: datetime) -> Mandate:
    _require(mandate, "revoked", set(MandateStatus) - {MandateStatus.REVOKED})
    return _move(mandate, MandateStatus.REVOKED, revoked_at=ensure_utc(now))


def expire(mandate: Mandate, now: datetime) -> Mandate:
    _require(mandate, "expired", _LIVE)
    end = window_end(mandate)
    if end is None or ensure_utc(now) <= end:
        raise Conflict(f"mandate {mandate.id} has not reached its end", code="mandate_window_open")
    return _move(mandate, MandateStatus.EXPIRED, ended_at=ensure_utc(now))


def exhaust(mandate: Mandate, usage: Usage, now: datetime) -> Mandate:
    _require(mandate, "exhausted", {MandateStatus.ACTIVE, MandateStatus.PAUSED})
    if not is_exhausted(mandate, usage):
        raise Conflict(f"mandate {mandate.id} is not used up", code="mandate_not_exhausted")
    return _move(mandate, MandateStatus.EXHAUSTED, ended_at=ensure_utc(now))


_LIVE = {MandateStatus.PENDING_CONSENT, MandateStatus.ACTIVE, MandateStatus.PAUSED}


def _require(mandate: Mandate, verb: str, allowed: set[MandateStatus]) -> None:
    if mandate.status not in allowed:
        raise Conflict(
            f"mandate {mandate.id} is {mandate.status.value} and cannot be {verb}",
            code=f"mandate_{mandate.status.value}",
        )


def _move(mandate: Mandate, status: MandateStatus, **changes: Any) -> Mandate:
    return replace(mandate, status=status, revision=mandate.revision + 1, **changes)


def _own(constraints: Sequence[Constraint], currency: str) -> tuple[Constraint, ...]:
    for constraint in constraints:
        other = getattr(constraint, "currency", currency)
        invariant(other == currency, f"a {currency} mandate holds a {other} constraint")
    return tuple(constraints)


def check_zone(mandate: Mandate, tz: tzinfo) -> None:
    """Refuse a ``tzinfo`` that names another zone than the mandate's (a caller's bug)."""
    key = getattr(tz, "key", None)
    invariant(key is None or key == mandate.timezone, f"zone {key} is not {mandate.timezone}")


def window_end(mandate: Mandate) -> datetime | None:
    """The last valid instant of the mandate's execution window, if it has one."""
    ends = [c.not_after for c in mandate.constraints if isinstance(c, ExecutionDate)]
    return min((end for end in ends if end is not None), default=None)


def is_exhausted(mandate: Mandate, usage: Usage) -> bool:
    """Whether a lifetime limit leaves nothing: budget spent, or payment count reached."""
    for c in mandate.constraints:
        if isinstance(c, Budget) and usage.lifetime.amount >= c.max_amount:
            return True
        if isinstance(c, CountCap) and c.period is None and usage.lifetime.count >= c.max_count:
            return True
        limit = c.max_occurrences if isinstance(c, AgentRecurrence) else None
        if limit is not None and usage.lifetime.count >= limit:
            return True
    return False


def period_key(period: Period, now: datetime, tz: tzinfo) -> PeriodKey:
    """The calendar period containing ``now`` in zone ``tz``."""
    local = ensure_utc(now).astimezone(tz).date()
    if period is Period.DAILY:
        return PeriodKey(period, local)
    if period is Period.WEEKLY:
        return PeriodKey(period, local - timedelta(days=local.weekday()))
    return PeriodKey(period, local.replace(day=1))


def period_end(key: PeriodKey, tz: tzinfo) -> datetime:
    """The first instant (UTC) of the period after ``key``: local midnight in ``tz``."""
    if key.period is Period.MONTHLY:
        following = _add_months(key.start, 1)
    else:
        following = key.start + timedelta(days=1 if key.period is Period.DAILY else 7)
    return _local_midnight(following, tz)


_STEP_MONTHS = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3, Frequency.ANNUALLY: 12}
_STEP_DAYS = {Frequency.DAILY: 1, Frequency.WEEKLY: 7, Frequency.BIWEEKLY: 14}


def next_allowed_at(frequency: Frequency, last: datetime | None, tz: tzinfo) -> datetime | None:
    """Earliest instant of the next recurring payment: local midnight ``frequency`` after the
    local date of ``last`` (months clamp to the month's end); ``None`` when not restricted."""
    if last is None or frequency is Frequency.ON_DEMAND:
        return None
    day = ensure_utc(last).astimezone(tz).date()
    if frequency in _STEP_MONTHS:
        return _local_midnight(_add_months(day, _STEP_MONTHS[frequency]), tz)
    return _local_midnight(day + timedelta(days=_STEP_DAYS[frequency]), tz)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last_day))


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    # A midnight skipped by DST resolves (fold=0) to the instant the day actually begins.
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def remaining(mandate: Mandate, usage: Usage, now: datetime, tz: tzinfo) -> list[BudgetRemaining]:
    """What each budget, count and recurrence limit still allows at ``now``, in mandate order."""
    check_zone(mandate, tz)
    found = (_left(c, usage, ensure_utc(now), tz) for c in mandate.constraints)
    return [entry for entry in found if entry is not None]


def _left(c: Constraint, usage: Usage, now: datetime, tz: tzinfo) -> BudgetRemaining | None:
    match c:
        case Budget():
            left = max(0, c.max_amount - usage.lifetime.amount)
            return BudgetRemaining(c.type, currency=c.currency, amount_left=left)
        case PeriodBudget():
            key = period_key(c.period, now, tz)
            left = max(0, c.max_amount - usage.in_period(key).amount)
            return BudgetRemaining(c.type, c.period, c.currency, left, None, period_end(key, tz))
        case CountCap(period=None):
            return BudgetRemaining(c.type, count_left=max(0, c.max_count - usage.lifetime.count))
        case CountCap(period=Period() as period):
            key = period_key(period, now, tz)
            left = max(0, c.max_count - usage.in_period(key).count)
            return BudgetRemaining(c.type, period, count_left=left, period_end=period_end(key, tz))
        case AgentRecurrence():
            limit = c.max_occurrences
            count_left = None if limit is None else max(0, limit - usage.lifetime.count)
            following = next_allowed_at(c.frequency, usage.last_payment_at, tz)
            return BudgetRemaining(c.type, count_left=count_left, next_allowed_at=following)
    return None
