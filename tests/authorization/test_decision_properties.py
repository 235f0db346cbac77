"""Properties of decide(), checked against a model written independently of the code.

- Given any usage, decide() never lets a payment through (approve or confirm) that would take
  lifetime spend or the current day's, week's or month's spend above its cap; and with only
  caps in the mandate, it approves exactly the payments that fit.
- Paying a random sequence through decide() and usage_after() never lets the model's spend
  per calendar period exceed a cap, across zones with DST changes.
- Neither the order of the constraints nor the order of the risk signals changes the decision.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from paywarden.authorization.constraints import Period, parse_constraints
from paywarden.authorization.decision import Outcome, PaymentRequest, decide, usage_after
from paywarden.authorization.mandates import Mandate, PeriodKey, Spent, Usage, consent, new_mandate
from paywarden.authorization.risk import Action, RiskSignal

ZONES = ["UTC", "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe"]
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 12, 31, tzinfo=UTC)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


def model_period_start(period: str, instant: datetime, zone: ZoneInfo) -> date:
    """Written apart from period_key: the local wall-clock date, ISO weekday, first of month."""
    wall = instant.astimezone(zone)
    if period == "daily":
        return date(wall.year, wall.month, wall.day)
    if period == "weekly":
        return date(wall.year, wall.month, wall.day) - timedelta(days=wall.isoweekday() - 1)
    return date(wall.year, wall.month, 1)


@st.composite
def instants(draw: st.DrawFn, zone: ZoneInfo) -> datetime:
    """Any instant, or one within an hour of a local midnight (DST days included)."""
    if draw(st.booleans()):
        return draw(st.datetimes(START.replace(tzinfo=None), END.replace(tzinfo=None))).replace(
            tzinfo=UTC
        )
    day = draw(st.dates(START.date(), END.date()))
    near = draw(st.sampled_from([day, date(2026, 3, 8), date(2026, 11, 1), date(2026, 3, 29)]))
    midnight = datetime(near.year, near.month, near.day, tzinfo=zone).astimezone(UTC)
    return midnight + timedelta(seconds=draw(st.integers(-3600, 3600)))


def make_mandate(raw: list[dict[str, Any]], zone: str) -> Mandate:
    constraints = parse_constraints(raw, currency="usd")
    created = datetime(2025, 1, 1, tzinfo=UTC)
    return consent(
        new_mandate("mnd_p", "usr_p", "agt_p", "usd", zone, constraints, created), created
    )


caps = st.fixed_dictionaries(
    {},
    optional={
        "lifetime": st.integers(1, 20_000),
        "daily": st.integers(1, 5_000),
        "weekly": st.integers(1, 10_000),
        "monthly": st.integers(1, 15_000),
    },
).filter(bool)


def cap_constraints(limits: dict[str, int]) -> list[dict[str, Any]]:
    raw: list[dict[str, Any]] = []
    for name, cap in limits.items():
        if name == "lifetime":
            raw.append({"type": "payment.budget", "currency": "usd", "max": cap})
        else:
            raw.append(
                {"type": "paywarden.period_budget", "period": name, "currency": "usd", "max": cap}
            )
    return raw


@PROPERTY_SETTINGS
@given(data=st.data(), limits=caps, zone_name=st.sampled_from(ZONES))
def test_decide_never_lets_spend_exceed_a_cap_given_usage(
    data: st.DataObject, limits: dict[str, int], zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    now = data.draw(instants(zone))
    spent = {name: data.draw(st.integers(0, cap + 50)) for name, cap in limits.items()}
    periods: dict[PeriodKey, Spent] = {}
    for period in Period:
        start = model_period_start(period.value, now, zone)
        periods[PeriodKey(period, start - timedelta(days=40))] = Spent(10**6, 99)  # an old period
        periods[PeriodKey(period, start)] = Spent(spent.get(period.value, 0), 1)
    lifetime = Spent(max([spent.get("lifetime", 0), *spent.values()]), 1)
    amount = data.draw(st.integers(1, 6_000))
    risk = data.draw(st.lists(st.sampled_from([RiskSignal("risk_new_merchant", Action.STEP_UP)])))
    decision = decide(
        make_mandate(cap_constraints(limits), zone_name),
        Usage(lifetime, periods),
        PaymentRequest(amount, "usd", "mer_a"),
        risk,
        now,
        zone,
    )
    already = {"lifetime": lifetime.amount, **{p.value: spent.get(p.value, 0) for p in Period}}
    fits = all(already[name] + amount <= cap for name, cap in limits.items())
    if not fits:
        assert decision.outcome is Outcome.DENY
    else:
        expected = Outcome.REQUIRES_CONFIRMATION if risk else Outcome.APPROVE
        assert decision.outcome is expected


@PROPERTY_SETTINGS
@given(data=st.data(), limits=caps, zone_name=st.sampled_from(ZONES))
def test_a_sequence_of_approved_payments_never_exceeds_a_cap(
    data: st.DataObject, limits: dict[str, int], zone_name: str
) -> None:
    zone = ZoneInfo(zone_name)
    mandate = make_mandate(cap_constraints(limits), zone_name)
    now = data.draw(instants(zone))
    usage = Usage()
    model: dict[tuple[str, date | None], int] = defaultdict(int)
    for _ in range(data.draw(st.integers(1, 25))):
        now += timedelta(seconds=data.draw(st.integers(0, 3 * 86_400)))
        request = PaymentRequest(data.draw(st.integers(1, 4_000)), "usd", "mer_a")
        if decide(mandate, usage, request, [], now, zone).outcome is not Outcome.APPROVE:
            continue
        usage = usage_after(usage, request, now, zone)
        model["lifetime", None] += request.amount
        for period in ("daily", "weekly", "monthly"):
            model[period, model_period_start(period, now, zone)] += request.amount
        for (name, _start), total in model.items():
            assert name not in limits or total <= limits[name]
        assert usage.lifetime.amount == model["lifetime", None]


@st.composite
def any_constraint(draw: st.DrawFn) -> dict[str, Any]:
    amount = st.integers(1, 5_000)
    kind = draw(st.integers(0, 8))
    if kind == 0:
        low, high = sorted([draw(st.integers(0, 5_000)), draw(amount)])
        return {"type": "payment.amount_range", "currency": "usd", "max": max(high, 1), "min": low}
    if kind == 1:
        return {"type": "payment.budget", "currency": "usd", "max": draw(st.integers(1, 20_000))}
    if kind == 2:
        frequency = draw(st.sampled_from(["ON_DEMAND", "DAILY", "WEEKLY", "MONTHLY"]))
        return {"type": "payment.agent_recurrence", "frequency": frequency, "max_occurrences": 5}
    if kind == 3:
        allowed = draw(st.lists(st.sampled_from(["mer_a", "mer_b", "mer_c"]), min_size=1))
        return {"type": "payment.allowed_payees", "allowed": allowed}
    if kind == 4:
        edge = draw(st.datetimes(START.replace(tzinfo=None), END.replace(tzinfo=None)))
        key = draw(st.sampled_from(["not_before", "not_after"]))
        return {"type": "payment.execution_date", key: edge.isoformat() + "Z"}
    if kind == 5:
        period = draw(st.sampled_from(["daily", "weekly", "monthly"]))
        cap = draw(amount)
        return {"type": "paywarden.period_budget", "period": period, "currency": "usd", "max": cap}
    if kind == 6:
        allowed = draw(st.lists(st.sampled_from(["groceries", "books"]), min_size=1))
        return {"type": "paywarden.merchant_categories", "allowed": allowed}
    if kind == 7:
        period = draw(st.sampled_from([None, "daily", "weekly"]))
        cap = {"type": "paywarden.count_cap", "max": draw(st.integers(1, 4))}
        return cap if period is None else {**cap, "period": period}
    return {"type": "paywarden.confirmation_threshold", "currency": "usd", "above": draw(amount)}


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    raw=st.lists(any_constraint(), min_size=1, max_size=8),
    zone_name=st.sampled_from(ZONES),
    amount=st.integers(1, 6_000),
    payee=st.sampled_from(["mer_a", "mer_b", "mer_c"]),
    category=st.sampled_from(["groceries", "books", None]),
    risk=st.lists(
        st.builds(
            RiskSignal,
            st.sampled_from(["risk_new_merchant", "risk_amount_outlier"]),
            st.sampled_from(Action),
        ),
        max_size=3,
    ),
)
def test_the_order_of_constraints_and_risk_signals_never_changes_the_decision(
    data: st.DataObject,
    raw: list[dict[str, Any]],
    zone_name: str,
    amount: int,
    payee: str,
    category: str | None,
    risk: list[RiskSignal],
) -> None:
    raw = [{"type": "payment.budget", "currency": "usd", "max": 50_000}, *raw]
    zone = ZoneInfo(zone_name)
    now = data.draw(instants(zone))
    usage = usage_after(
        Usage(),
        PaymentRequest(data.draw(st.integers(1, 3_000)), "usd", "mer_a"),
        now - timedelta(hours=data.draw(st.integers(0, 24 * 40))),
        zone,
    )
    request = PaymentRequest(amount, "usd", payee, category)
    expected = decide(make_mandate(raw, zone_name), usage, request, risk, now, zone)
    shuffled = data.draw(st.permutations(raw))
    reordered_risk = data.draw(st.permutations(risk))
    again = decide(make_mandate(shuffled, zone_name), usage, request, reordered_risk, now, zone)
    assert again == expected
