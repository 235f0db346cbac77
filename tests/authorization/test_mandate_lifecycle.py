"""The mandate's lifecycle, its exhaustion and expiry, and the status view (remaining)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from paywarden.authorization.constraints import Period, parse_constraints
from paywarden.authorization.mandates import (
    BudgetRemaining,
    Mandate,
    MandateStatus,
    PeriodKey,
    Spent,
    Usage,
    amend,
    consent,
    exhaust,
    expire,
    is_exhausted,
    new_mandate,
    pause,
    remaining,
    resume,
    revoke,
)
from paywarden.kernel.errors import Conflict, InvalidRequest, InvariantViolation

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
BUDGET = {"type": "payment.budget", "currency": "usd", "max": 10_000}
WINDOW_END = "2026-03-31T23:59:59Z"


def pending(*raw: dict[str, Any], timezone: str = "UTC") -> Mandate:
    constraints = parse_constraints(list(raw) or [BUDGET], currency="usd")
    return new_mandate("mnd_1", "usr_1", "agt_1", "USD", timezone, constraints, T0)


def test_a_new_mandate_waits_for_consent() -> None:
    mandate = pending()
    assert (mandate.status, mandate.currency, mandate.revision) == ("pending_consent", "usd", 1)
    assert mandate.consented_at is None and mandate.created == T0


def test_consent_pause_resume_revoke() -> None:
    active = consent(pending(), T0 + timedelta(minutes=1))
    assert active.status is MandateStatus.ACTIVE
    assert active.consented_at == T0 + timedelta(minutes=1) and active.revision == 2
    paused = pause(active, T0 + timedelta(minutes=2))
    assert (paused.status, paused.paused_at) == ("paused", T0 + timedelta(minutes=2))
    resumed = resume(paused, T0 + timedelta(minutes=3))
    assert (resumed.status, resumed.paused_at, resumed.revision) == ("active", None, 4)
    revoked = revoke(resumed, T0 + timedelta(minutes=4))
    assert (revoked.status, revoked.revoked_at) == ("revoked", T0 + timedelta(minutes=4))


def test_amend_replaces_constraints_and_needs_fresh_consent() -> None:
    active = consent(pending(), T0)
    wider = parse_constraints([{**BUDGET, "max": 50_000}], currency="usd")
    amended = amend(active, wider, T0 + timedelta(hours=1))
    assert amended.status is MandateStatus.PENDING_CONSENT
    assert amended.consented_at is None and amended.constraints == wider
    again = consent(amended, T0 + timedelta(hours=2))
    assert again.status is MandateStatus.ACTIVE and again.revision == 4


@pytest.mark.parametrize(
    ("action", "code"),
    [
        (lambda m: consent(m, T0), "mandate_revoked"),
        (lambda m: pause(m, T0), "mandate_revoked"),
        (lambda m: resume(m, T0), "mandate_revoked"),
        (lambda m: amend(m, m.constraints, T0), "mandate_revoked"),
        (lambda m: revoke(m, T0), "mandate_revoked"),
        (lambda m: exhaust(m, Usage(), T0), "mandate_revoked"),
    ],
)
def test_nothing_moves_a_revoked_mandate(action: Any, code: str) -> None:
    revoked = revoke(consent(pending(), T0), T0)
    with pytest.raises(Conflict) as caught:
        action(revoked)
    assert caught.value.code == code


def test_illegal_transitions_name_the_blocking_status() -> None:
    active = consent(pending(), T0)
    cases = [
        (lambda: consent(active, T0), "mandate_active"),
        (lambda: resume(active, T0), "mandate_active"),
        (lambda: pause(pending(), T0), "mandate_pending_consent"),
        (lambda: pause(pause(active, T0), T0), "mandate_paused"),
    ]
    for action, code in cases:
        with pytest.raises(Conflict) as caught:
            action()
        assert caught.value.code == code


def test_expire_only_after_the_last_valid_instant() -> None:
    window = {"type": "payment.execution_date", "not_after": WINDOW_END}
    active = consent(pending(BUDGET, window), T0)
    last_valid = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    with pytest.raises(Conflict) as caught:
        expire(active, last_valid)
    assert caught.value.code == "mandate_window_open"
    expired = expire(active, last_valid + timedelta(seconds=1))
    assert (expired.status, expired.ended_at) == ("expired", last_valid + timedelta(seconds=1))
    with pytest.raises(Conflict) as again:
        consent(expired, T0)
    assert again.value.code == "mandate_expired"
    assert revoke(expired, T0).status is MandateStatus.REVOKED  # revocation always wins


def test_a_mandate_without_a_window_never_expires() -> None:
    with pytest.raises(Conflict):
        expire(consent(pending(), T0), T0 + timedelta(days=10_000))


def test_exhaust_when_the_budget_or_a_lifetime_count_is_used_up() -> None:
    active = consent(pending(), T0)
    assert not is_exhausted(active, Usage(Spent(9_999, 3)))
    with pytest.raises(Conflict) as caught:
        exhaust(active, Usage(Spent(9_999, 3)), T0)
    assert caught.value.code == "mandate_not_exhausted"
    exhausted = exhaust(active, Usage(Spent(10_000, 4)), T0)
    assert exhausted.status is MandateStatus.EXHAUSTED and exhausted.ended_at == T0
    capped = consent(pending(BUDGET, {"type": "paywarden.count_cap", "max": 2}), T0)
    assert is_exhausted(capped, Usage(Spent(10, 2)))
    daily = consent(
        pending(BUDGET, {"type": "paywarden.count_cap", "max": 2, "period": "daily"}), T0
    )
    assert not is_exhausted(daily, Usage(Spent(10, 2)))  # a daily cap resets tomorrow
    recurring = {"type": "payment.agent_recurrence", "frequency": "MONTHLY", "max_occurrences": 3}
    assert is_exhausted(consent(pending(BUDGET, recurring), T0), Usage(Spent(30, 3)))


def test_a_bad_zone_name_or_a_foreign_constraint_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        pending(timezone="../etc/passwd")
    assert (caught.value.code, caught.value.param) == ("invalid_timezone", "$.timezone")
    with pytest.raises(InvalidRequest):
        pending(timezone="Asia/Shanghai\n")
    assert pending(timezone="Etc/GMT+5").timezone == "Etc/GMT+5"
    euros = parse_constraints([{**BUDGET, "currency": "eur"}], currency="eur")
    with pytest.raises(InvariantViolation):
        new_mandate("mnd_1", "usr_1", "agt_1", "usd", "UTC", euros, T0)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        consent(pending(), datetime(2026, 3, 2, 9, 0))


def test_remaining_reports_every_limit_in_mandate_order() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    mandate = consent(
        pending(
            {"type": "payment.amount_range", "currency": "usd", "max": 5_000},
            BUDGET,
            {"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 3_000},
            {"type": "paywarden.count_cap", "max": 5, "period": "weekly"},
            {"type": "paywarden.count_cap", "max": 9},
            {"type": "payment.agent_recurrence", "frequency": "DAILY", "max_occurrences": 7},
            timezone="Asia/Shanghai",
        ),
        T0,
    )
    now = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # 23:00 Wednesday in Shanghai
    last = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)  # 09:00 Wednesday in Shanghai
    usage = Usage(
        Spent(4_000, 4),
        {
            PeriodKey(Period.DAILY, now.astimezone(zone).date()): Spent(1_000, 1),
            PeriodKey(Period.WEEKLY, datetime(2026, 3, 2).date()): Spent(4_000, 4),
        },
        last_payment_at=last,
    )
    assert remaining(mandate, usage, now, zone) == [
        BudgetRemaining("payment.budget", currency="usd", amount_left=6_000),
        BudgetRemaining(
            "paywarden.period_budget",
            Period.DAILY,
            "usd",
            amount_left=2_000,
            period_end=datetime(2026, 3, 4, 16, 0, tzinfo=UTC),  # midnight in Shanghai
        ),
        BudgetRemaining(
            "paywarden.count_cap",
            Period.WEEKLY,
            count_left=1,
            period_end=datetime(2026, 3, 8, 16, 0, tzinfo=UTC),  # Monday 9 March, 00:00 +08
        ),
        BudgetRemaining("paywarden.count_cap", count_left=5),
        BudgetRemaining(
            "payment.agent_recurrence",
            count_left=3,
            next_allowed_at=datetime(2026, 3, 4, 16, 0, tzinfo=UTC),
        ),
    ]


def test_remaining_never_goes_negative() -> None:
    mandate = consent(pending(), T0)
    assert remaining(mandate, Usage(Spent(12_000, 1)), T0, UTC)[0].amount_left == 0


def test_a_zone_that_is_not_the_mandates_is_a_bug() -> None:
    mandate = consent(pending(timezone="Asia/Shanghai"), T0)
    with pytest.raises(InvariantViolation):
        remaining(mandate, Usage(), T0, ZoneInfo("America/New_York"))
