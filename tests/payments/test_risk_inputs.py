"""What the store tells the risk rules (``payments.risk_inputs``), on SQLite and PostgreSQL.

The rules themselves are pure (tests/authorization/test_risk_rules.py); here: which payments
fall inside a window (``(now - window, now]``), that a count stops at the deny threshold (a
higher one decides the same) and the amounts at ``history_size_max``, and that the median
the store computes is the one the rule defines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payment_support import NO_RISK, World, budget, make_world, payees
from paywarden.authorization.risk import RiskConfig, RiskInputs, agent_velocity, median
from paywarden.kernel.clock import FakeClock
from paywarden.services import payments
from paywarden.store.mandate_repo import load_mandate
from paywarden.store.unit_of_work import Store


@pytest.fixture
def world(store: Store, clock: FakeClock) -> World:
    return make_world(store, clock, funded=10_000_000)


def _inputs(world: World, mandate_id: str, merchant: str, config: RiskConfig) -> RiskInputs:
    def read(uow: object) -> RiskInputs:
        mandate = load_mandate(uow, mandate_id, lock=False).mandate  # type: ignore[arg-type]
        now = world.clock.now()
        return payments.risk_inputs(uow, mandate, merchant, now, config)  # type: ignore[arg-type]

    result: RiskInputs = world.store.run(read, read_only=True)
    return result


def test_a_window_holds_what_is_younger_than_it(world: World) -> None:
    mandate_id = world.mandate([budget(10_000_000)])
    for _ in range(3):
        assert world.pay(mandate_id, 100).status == "succeeded"
    config = RiskConfig(mandate_window_s=600)
    assert _inputs(world, mandate_id, world.merchant, config).mandate_payments_recent == 3
    world.clock.advance(timedelta(seconds=599))
    assert _inputs(world, mandate_id, world.merchant, config).mandate_payments_recent == 3
    world.clock.advance(timedelta(seconds=1))  # exactly one window later: outside
    inputs = _inputs(world, mandate_id, world.merchant, config)
    assert inputs.mandate_payments_recent == 0
    assert inputs.agent_payments_recent == 3  # the agent's window is an hour
    assert inputs.mandate_history == 3  # history has no window


def test_counts_stop_at_the_deny_threshold_and_amounts_at_the_bound(world: World) -> None:
    mandate_id = world.mandate([budget(10_000_000)])
    amounts = [100, 900, 300, 700, 500, 200]
    for amount in amounts:
        assert world.pay(mandate_id, amount).status == "succeeded"
        world.clock.advance(timedelta(seconds=1))  # "the last n" is by time
    config = RiskConfig(
        agent_step_up_min=2, agent_deny_min=4, mandate_step_up_min=2, mandate_deny_min=5
    )
    inputs = _inputs(world, mandate_id, world.merchant, config)
    assert (inputs.agent_payments_recent, inputs.mandate_payments_recent) == (4, 5)
    assert (inputs.mandate_history, inputs.mandate_median) == (6, median(amounts))
    bounded = _inputs(
        world, mandate_id, world.merchant, RiskConfig(history_size_max=3, outlier_history_min=3)
    )
    # the last three amounts (700, 500, 200): their median
    assert (bounded.mandate_history, bounded.mandate_median) == (3, 500)
    odd = _inputs(world, mandate_id, world.merchant, RiskConfig(history_size_max=5))
    assert (odd.mandate_history, odd.mandate_median) == (5, 500)  # 900 300 700 500 200
    short = _inputs(world, mandate_id, world.merchant, RiskConfig(outlier_history_min=7))
    assert short.mandate_history == 6 and short.mandate_median == 0  # not read: no opinion


def test_failures_count_declines_and_a_named_merchant_is_not_new(world: World) -> None:
    mandate_id = world.mandate([budget(1_000), payees(world.merchant)])
    assert world.pay(mandate_id, 600).status == "succeeded"
    assert world.pay(mandate_id, 600).status == "declined"  # over the budget
    inputs = _inputs(world, mandate_id, world.other_merchant, RiskConfig())
    assert inputs.failures_recent == 1
    assert inputs.merchant_is_new  # never paid, not named
    assert not _inputs(world, mandate_id, world.merchant, NO_RISK).merchant_is_new  # named


def test_a_count_no_threshold_can_reach_is_not_read(world: World) -> None:
    mandate_id = world.mandate([budget(10_000_000)])
    for _ in range(4):
        assert world.pay(mandate_id, 100).status == "succeeded"
    reachable = RiskConfig(history_size_max=10, agent_step_up_min=10, agent_deny_min=11)
    assert _inputs(world, mandate_id, world.merchant, reachable).agent_payments_recent == 4
    beyond = RiskConfig(history_size_max=10, agent_step_up_min=11, agent_deny_min=12)
    inputs = _inputs(world, mandate_id, world.merchant, beyond)
    assert inputs.agent_payments_recent == 0  # no threshold reachable: not read
    assert inputs.mandate_payments_recent == 4  # its thresholds (3, 10) are: read
    assert NO_RISK.failure_deny_min > NO_RISK.history_size_max
    assert _inputs(world, mandate_id, world.merchant, NO_RISK).mandate_payments_recent == 0


@given(
    count=st.integers(0, 3_000),
    thresholds=st.lists(st.integers(1, 2_000), min_size=2, max_size=2).map(sorted),
    size=st.integers(1, 1_500),
)
def test_a_capped_count_decides_as_the_whole_count(
    count: int, thresholds: list[int], size: int
) -> None:
    """The store's count stops at ``count_cap``; before, at the deny threshold or the bound.
    The rule decides alike on either, and as on a count stopped at the bound alone."""
    step_up_min, deny_min = thresholds
    config = RiskConfig(
        agent_step_up_min=step_up_min, agent_deny_min=deny_min, history_size_max=size
    )

    def decided(stopped_at: int) -> object:
        inputs = RiskInputs(agent_payments_recent=min(count, stopped_at))
        return agent_velocity(inputs, 100, datetime(2026, 1, 1, tzinfo=UTC), config)

    capped = decided(payments.count_cap(step_up_min, deny_min, size))
    assert capped == decided(min(deny_min, size)) == decided(size)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.integers(min_value=1, max_value=50), min_size=0, max_size=9),
    size=st.integers(min_value=1, max_value=10),
)
def test_the_median_the_store_computes_is_the_rules_median(
    world: World, amounts: list[int], size: int
) -> None:
    """Over the last ``size`` amounts, duplicates and ties included: the store's one pass
    (ranks in SQL) gives the count and the median ``risk.median`` defines."""
    mandate_id = world.mandate([budget(10_000_000)])
    for amount in amounts:
        assert world.pay(mandate_id, amount).status == "succeeded"
        world.clock.advance(timedelta(seconds=1))
    config = RiskConfig(history_size_max=size, outlier_history_min=1)
    inputs = _inputs(world, mandate_id, world.merchant, config)
    last = amounts[-size:]
    assert inputs.mandate_history == len(last)
    assert inputs.mandate_median == (median(last) if last else 0)
