"""Calendar periods in the mandate's zone: days, Monday weeks, months, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from paywarden.authorization.constraints import Frequency, Period, parse_constraints
from paywarden.authorization.decision import Outcome, PaymentRequest, decide, usage_after
from paywarden.authorization.mandates import (
    PeriodKey,
    Usage,
    consent,
    new_mandate,
    next_allowed_at,
    period_end,
    period_key,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_shanghai_day_starts_at_16_utc() -> None:
    assert period_key(Period.DAILY, utc(2026, 3, 4, 15, 59, 59), SHANGHAI).start == date(2026, 3, 4)
    assert period_key(Period.DAILY, utc(2026, 3, 4, 16, 0, 0), SHANGHAI).start == date(2026, 3, 5)
    key = PeriodKey(Period.DAILY, date(2026, 3, 4))
    assert period_end(key, SHANGHAI) == utc(2026, 3, 4, 16, 0)
    assert str(key) == "daily:2026-03-04"


def test_sunday_2330_in_new_york_belongs_to_that_week_although_utc_says_monday() -> None:
    sunday_night = datetime(2026, 3, 15, 23, 30, tzinfo=NEW_YORK)  # Monday 03:30 UTC
    assert sunday_night.astimezone(UTC).weekday() == 0
    key = period_key(Period.WEEKLY, sunday_night, NEW_YORK)
    assert key == PeriodKey(Period.WEEKLY, date(2026, 3, 9))  # the Monday before
    assert period_end(key, NEW_YORK) == utc(2026, 3, 16, 4, 0)  # Monday 00:00 EDT


def test_the_week_of_a_shanghai_monday_0030_is_the_new_week() -> None:
    monday_early = datetime(2026, 3, 9, 0, 30, tzinfo=SHANGHAI)  # Sunday 16:30 UTC
    assert period_key(Period.WEEKLY, monday_early, SHANGHAI).start == date(2026, 3, 9)


def test_the_spring_forward_day_in_new_york_lasts_23_hours() -> None:
    key = PeriodKey(Period.DAILY, date(2026, 3, 8))  # clocks jump 02:00 -> 03:00
    start = datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert start == utc(2026, 3, 8, 5, 0)
    assert period_end(key, NEW_YORK) == utc(2026, 3, 9, 4, 0)
    assert period_end(key, NEW_YORK) - start == timedelta(hours=23)
    assert period_key(Period.DAILY, utc(2026, 3, 9, 3, 59, 59), NEW_YORK).start == key.start
    assert period_key(Period.DAILY, utc(2026, 3, 9, 4, 0, 0), NEW_YORK).start == date(2026, 3, 9)


def test_the_fall_back_day_in_new_york_lasts_25_hours() -> None:
    key = PeriodKey(Period.DAILY, date(2026, 11, 1))
    start = datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert period_end(key, NEW_YORK) - start == timedelta(hours=25)
    # 01:30 happens twice that night; both belong to 1 November.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=0)
    second = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK, fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert period_key(Period.DAILY, first, NEW_YORK) == period_key(Period.DAILY, second, NEW_YORK)


def test_months_start_on_the_first_and_a_dst_month_ends_at_local_midnight() -> None:
    key = period_key(Period.MONTHLY, utc(2026, 3, 31, 23, 0), NEW_YORK)  # 19:00 EDT
    assert key == PeriodKey(Period.MONTHLY, date(2026, 3, 1))
    assert period_end(key, NEW_YORK) == utc(2026, 4, 1, 4, 0)
    december = PeriodKey(Period.MONTHLY, date(2026, 12, 1))
    assert period_end(december, SHANGHAI) == utc(2026, 12, 31, 16, 0)


def test_a_daily_budget_resets_at_local_midnight_not_utc_midnight() -> None:
    raw = [{"type": "paywarden.period_budget", "period": "daily", "currency": "usd", "max": 1000}]
    mandate = new_mandate(
        "mnd_1",
        "usr_1",
        "agt_1",
        "usd",
        "America/New_York",
        parse_constraints(raw, currency="usd"),
        utc(2026, 3, 1),
    )
    mandate = consent(mandate, utc(2026, 3, 1))
    late_saturday = utc(2026, 3, 8, 4, 30)  # 23:30 EST on Saturday 7 March
    paid = usage_after(Usage(), PaymentRequest(1000, "usd", "mer_a"), late_saturday, NEW_YORK)
    one_cent = PaymentRequest(1, "usd", "mer_a")
    same_local_day = utc(2026, 3, 8, 4, 59)  # still Saturday in New York, Sunday in UTC
    assert decide(mandate, paid, one_cent, [], same_local_day, NEW_YORK).reasons == (
        "period_budget_exceeded:daily",
    )
    next_local_day = utc(2026, 3, 8, 5, 0)
    assert decide(mandate, paid, one_cent, [], next_local_day, NEW_YORK).outcome is Outcome.APPROVE


def test_usage_after_books_every_current_period_and_drops_old_ones() -> None:
    request = PaymentRequest(250, "usd", "mer_a")
    first = usage_after(Usage(), request, utc(2026, 3, 4, 15, 0), SHANGHAI)  # Wed 23:00
    assert dict(first.periods) == {
        PeriodKey(Period.DAILY, date(2026, 3, 4)): first.lifetime,
        PeriodKey(Period.WEEKLY, date(2026, 3, 2)): first.lifetime,
        PeriodKey(Period.MONTHLY, date(2026, 3, 1)): first.lifetime,
    }
    second = usage_after(first, request, utc(2026, 3, 4, 16, 0), SHANGHAI)  # Thu 00:00
    assert (second.lifetime.amount, second.lifetime.count) == (500, 2)
    assert second.in_period(PeriodKey(Period.DAILY, date(2026, 3, 5))).amount == 250
    assert second.in_period(PeriodKey(Period.WEEKLY, date(2026, 3, 2))).amount == 500
    assert PeriodKey(Period.DAILY, date(2026, 3, 4)) not in second.periods
    assert second.last_payment_at == utc(2026, 3, 4, 16, 0)


def test_recurrence_spacing_is_counted_in_local_calendar_days() -> None:
    last = datetime(2026, 1, 31, 14, 0, tzinfo=SHANGHAI)
    assert next_allowed_at(Frequency.MONTHLY, last, SHANGHAI) == datetime(
        2026, 2, 28, 0, 0, tzinfo=SHANGHAI
    )  # clamped to February's last day
    assert next_allowed_at(Frequency.QUARTERLY, last, SHANGHAI) == datetime(
        2026, 4, 30, tzinfo=SHANGHAI
    )
    assert next_allowed_at(Frequency.ANNUALLY, last, SHANGHAI) == datetime(
        2027, 1, 31, tzinfo=SHANGHAI
    )
    assert next_allowed_at(Frequency.BIWEEKLY, last, SHANGHAI) == datetime(
        2026, 2, 14, tzinfo=SHANGHAI
    )
    assert next_allowed_at(Frequency.DAILY, last, SHANGHAI) == datetime(2026, 2, 1, tzinfo=SHANGHAI)
    assert next_allowed_at(Frequency.ON_DEMAND, last, SHANGHAI) is None
    assert next_allowed_at(Frequency.WEEKLY, None, SHANGHAI) is None
